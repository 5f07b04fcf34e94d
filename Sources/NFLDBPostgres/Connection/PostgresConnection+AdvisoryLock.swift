import Foundation
import Logging
import NFLDBCore

/// A 64-bit advisory lock key derived from a readable name (FNV-1a), so every nfldb runner that
/// names the same resource takes the same lock. It appears in `pg_locks` as classid/objid.
public struct AdvisoryLockKey: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let value: Int64

    public init(_ name: String) {
        self.name = name
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        self.value = Int64(bitPattern: hash)
    }

    public var description: String { "\(name) (key \(value))" }

    /// The SQL condition that picks this key's rows of `pg_locks` (a bigint key is split into
    /// classid/objid, with objsubid 1); `alias` qualifies the columns.
    public func pgLocksCondition(alias: String? = "l") -> String {
        let p = alias.map { $0 + "." } ?? ""
        return "\(p)classid = ((\(value)::bigint >> 32) & 4294967295)::oid AND \(p)objid = (\(value)::bigint & 4294967295)::oid AND \(p)objsubid = 1"
    }
}

/// Another session holds the lock and did not release it within the wait.
public struct AdvisoryLockTimeout: NFLDBError, Sendable {
    public let key: AdvisoryLockKey
    public let waited: Duration
    public let holder: String?
    /// The flag or setting that sets the wait (`--lock-wait`, `etl.lock_wait`), for the hint.
    public var waitSetting: String? = nil

    public var diagnostic: Diagnostic {
        let (seconds, attoseconds) = waited.components
        let shown = String(format: "%.1f s", Double(seconds) + Double(attoseconds) / 1e18)
        return Diagnostic(
            "could not take advisory lock \(key.name) within \(shown)",
            detail: holder.map { "held by \($0)" },
            hint: "Another nfldb runner is working on this database; wait for it to finish, or "
                + (waitSetting.map { "wait longer with \($0)." } ?? "raise the wait limit."))
    }
}

extension PostgresConnection {
    /// Tries once to take a session-level advisory lock (`pg_try_advisory_lock`); never blocks.
    public func tryAdvisoryLock(_ key: AdvisoryLockKey) throws -> Bool {
        try query("SELECT pg_try_advisory_lock(\(key.value))").scalar(Bool.self)
    }

    /// Releases a session-level advisory lock; returns false if this session did not hold it.
    @discardableResult
    public func advisoryUnlock(_ key: AdvisoryLockKey) throws -> Bool {
        try query("SELECT pg_advisory_unlock(\(key.value))").scalar(Bool.self)
    }

    /// Tries once to take a session-level advisory lock in shared mode (`pg_try_advisory_lock_shared`):
    /// any number of sessions may hold it shared; an exclusive holder excludes them all.
    public func tryAdvisoryLockShared(_ key: AdvisoryLockKey) throws -> Bool {
        try query("SELECT pg_try_advisory_lock_shared(\(key.value))").scalar(Bool.self)
    }

    /// Releases a shared session-level advisory lock; returns false if this session did not hold it.
    @discardableResult
    public func advisoryUnlockShared(_ key: AdvisoryLockKey) throws -> Bool {
        try query("SELECT pg_advisory_unlock_shared(\(key.value))").scalar(Bool.self)
    }

    /// Who holds an advisory lock, for messages: `pid 123 (nfldb, since 05:30:01): <query>`.
    public func advisoryLockHolder(_ key: AdvisoryLockKey) throws -> String? {
        let rows = try query("""
            SELECT a.pid, coalesce(a.application_name, '') AS app, coalesce(a.usename::text, '') AS usename,
                   left(coalesce(a.query, ''), 120) AS query
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND \(unsafeRaw: key.pgLocksCondition())
            LIMIT 1
            """).rows
        guard let row = rows.first else { return nil }
        let pid = try row.decode("pid", as: Int.self)
        return "pid \(pid) (user \(row["usename"] ?? ""), application \(row["app"] ?? ""))"
    }

    /// Takes a session-level advisory lock, polling `pg_try_advisory_lock` with no transaction
    /// open, so a waiter never holds a snapshot or lock that the holder's
    /// `CREATE INDEX CONCURRENTLY` would have to wait for.
    ///
    /// - Parameters:
    ///   - wait: how long to keep trying before throwing ``AdvisoryLockTimeout``.
    ///   - onWait: called once, when the first attempt fails, with the holder's description.
    public func advisoryLock(
        _ key: AdvisoryLockKey, wait: Duration, waitSetting: String? = nil, pollInterval: Duration = .milliseconds(100),
        onWait: (String?) -> Void = { _ in }
    ) throws {
        let deadline = ContinuousClock.now + wait
        var announced = false
        var interval = pollInterval
        while true {
            if try tryAdvisoryLock(key) { return }
            let holder = try? advisoryLockHolder(key)
            if !announced {
                announced = true
                onWait(holder)
                logger.info("waiting for advisory lock", metadata: [
                    "db.lock": .string(key.name), "db.lock_holder": .string(holder ?? "unknown"),
                ])
            }
            if ContinuousClock.now >= deadline {
                throw AdvisoryLockTimeout(key: key, waited: wait, holder: holder, waitSetting: waitSetting)
            }
            Thread.sleep(forTimeInterval: interval.inSeconds)
            interval = min(interval * 2, .seconds(1))
        }
    }

    /// Runs `body` while holding a session-level advisory lock, releasing it afterwards (also on throw).
    /// If the process dies, the server releases the lock when the session ends.
    public func withAdvisoryLock<T>(
        _ key: AdvisoryLockKey, wait: Duration, waitSetting: String? = nil, onWait: (String?) -> Void = { _ in }, _ body: () throws -> T
    ) throws -> T {
        try advisoryLock(key, wait: wait, waitSetting: waitSetting, onWait: onWait)
        defer {
            if isAlive {
                rollbackQuietly()
                _ = try? advisoryUnlock(key)
            }
        }
        return try body()
    }
}
