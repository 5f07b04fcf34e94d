import Foundation
import Logging
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres

/// Retention never expires what is being restored: `backup run` runs pgBackRest's expire only
/// while it holds ``PgBackRest/expireGuardLock(stanza:)`` exclusively, and every `backup verify`
/// and `backup restore` holds it shared (a session advisory lock on the primary) from before it
/// picks the backup until its restore is done.
public struct ExpireGuard {
    public let pgbackrest: PgBackRest
    public let connection: PostgresConnection
    public let logger: Logger

    public init(pgbackrest: PgBackRest, connection: PostgresConnection, logger: Logger) {
        self.pgbackrest = pgbackrest
        self.connection = connection
        self.logger = logger
    }

    public func release() {
        _ = try? connection.advisoryUnlockShared(PgBackRest.expireGuardLock(stanza: pgbackrest.stanza))
    }

    /// How long a verify waits for a `backup run` that holds the expire guard (while pgBackRest's
    /// expire runs) before it goes on unguarded, with a note in the receipt.
    public static let wait: Duration = .seconds(600)

    /// Takes ``PgBackRest/expireGuardLock(stanza:)`` shared on the primary; waits while a backup
    /// run's expire holds it exclusively. Then waits for a `pgbackrest … expire` of this stanza still
    /// running on this host without the guard: a `backup run` killed (kill -9, the OOM killer)
    /// during its expire loses the guard with its session while the orphaned pgBackRest goes on
    /// deleting. `taken` is false when the guard could not be taken; `note` says what was waited for.
    public func take(waitingTo activity: String) -> (taken: Bool, note: String?) {
        let key = PgBackRest.expireGuardLock(stanza: pgbackrest.stanza)
        let deadline = ContinuousClock.now + Self.wait
        var announced = false
        while true {
            // Who keeps the guard from being taken: a backup run's expire, here or in another database.
            let blocker: String?
            do {
                if try connection.tryAdvisoryLockShared(key) {
                    // Advisory locks are per database: a backup run connected to another database of
                    // this cluster takes its exclusive guard there (an attack probe restored through a
                    // DSN naming `postgres` while a run on `nfl` expired the set). Both sides look at
                    // the other databases after taking their own lock, so at least one sees the other.
                    guard let elsewhere = try Self.holders(of: key, mode: "ExclusiveLock", otherDatabasesOf: connection) else {
                        return (true, waitForUnguardedExpire(until: deadline))
                    }
                    _ = try? connection.advisoryUnlockShared(key)
                    blocker = elsewhere
                } else {
                    blocker = (try? connection.advisoryLockHolder(key)) ?? nil
                }
            } catch {
                logger.warning("could not take the expire guard", metadata: ["error": .string((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)")])
                return (false, nil)
            }
            if ContinuousClock.now >= deadline { return (false, nil) }
            if !announced {
                announced = true
                logger.info("waiting for a backup run's retention expire to finish before \(activity)", metadata: ["db.lock_holder": .string(blocker ?? "unknown")])
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Waits (until `deadline`) while a `pgbackrest … --stanza=<this> … expire` of this user or the
    /// cluster's OS user runs on this host; the note for the receipt, or nil when none ran.
    func waitForUnguardedExpire(until deadline: ContinuousClock.Instant) -> String? {
        let first = Self.running("expire", stanza: pgbackrest.stanza, configPath: pgbackrest.configPath, osUser: pgbackrest.osUser)
        guard !first.isEmpty else { return nil }
        let pids = first.map(String.init).joined(separator: ", ")
        logger.warning("a pgBackRest expire of this stanza runs without nfldb's guard (a killed backup run's?); waiting for it before restoring",
                       metadata: ["pids": .string(pids)])
        let began = ContinuousClock.now
        while !Self.running("expire", stanza: pgbackrest.stanza, configPath: pgbackrest.configPath, osUser: pgbackrest.osUser).isEmpty {
            if ContinuousClock.now >= deadline {
                let waited = String(format: "%.1f", (ContinuousClock.now - began).inSeconds)
                return "a pgBackRest expire of stanza \(pgbackrest.stanza) (pid \(pids)) runs without nfldb's expire guard and was still running after this run waited \(waited) s for it (its 10 min bound for the guard and this wait together): this run restores regardless, and that expire could remove the backup it restores"
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let waited = String(format: "%.1f", (ContinuousClock.now - began).inSeconds)
        return "waited \(waited) s for a pgBackRest expire of stanza \(pgbackrest.stanza) (pid \(pids)) that ran without nfldb's expire guard (left by a killed backup run?) to finish before restoring"
    }

    /// Whether this session still holds the guard (its session can end under it: an
    /// `idle_session_timeout`, a primary restart, a dropped link).
    public func held() -> Bool {
        let key = PgBackRest.expireGuardLock(stanza: pgbackrest.stanza)
        return (try? connection.query("""
            SELECT count(*) > 0 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted AND mode = 'ShareLock'
              AND \(unsafeRaw: key.pgLocksCondition(alias: nil))
            """).scalar(Bool.self)) ?? false
    }

    /// Sessions holding `key` in `mode` in a database other than `connection`'s, for messages; nil when none.
    public static func holders(of key: AdvisoryLockKey, mode: String, otherDatabasesOf connection: PostgresConnection) throws -> String? {
        let rows = try connection.query("""
            SELECT l.pid, coalesce(d.datname::text, '?') AS db, coalesce(a.usename::text, '') AS usename, coalesce(a.application_name, '') AS app
            FROM pg_locks l LEFT JOIN pg_database d ON d.oid = l.database LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.mode = \(mode)
              AND \(unsafeRaw: key.pgLocksCondition())
              AND l.database IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY l.pid LIMIT 3
            """).rows
        guard !rows.isEmpty else { return nil }
        return try rows.map { "pid \(try $0.decode("pid", as: Int.self)) (user \($0["usename"] ?? ""), application \($0["app"] ?? ""), database \($0["db"] ?? "?"))" }
            .joined(separator: ", ")
    }

    /// Pids of `pgbackrest` processes running `command` for `stanza` (with this config, or none
    /// named), owned by this user or `osUser`, from /proc.
    public static func running(_ command: String, stanza: String, configPath: String, osUser: String?) -> [pid_t] {
        var owners: Set<uid_t> = [geteuid()]
        if let osUser, let account = getpwnam(osUser) { owners.insert(account.pointee.pw_uid) }
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init).filter { pid in
            guard pid != getpid(), ScratchLeftovers.processUID(pid).map(owners.contains) == true,
                  let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !raw.isEmpty else { return false }
            let args = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            guard let program = args.first, (program as NSString).lastPathComponent == "pgbackrest", args.contains(command),
                  args.contains("--stanza=\(stanza)") else { return false }
            let configs = args.filter { $0.hasPrefix("--config=") }
            return configs.isEmpty || configs.contains("--config=\(configPath)")
        }
    }
}
