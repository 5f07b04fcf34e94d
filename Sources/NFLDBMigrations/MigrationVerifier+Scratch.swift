import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

extension MigrationVerifier {
    /// Runs `body` against a scratch database: the one `scratchDSN` names (it must be empty), or a
    /// new `<db>_nfldb_verify_<pid>` created from `template0` on `target`'s server and dropped
    /// afterwards (`WITH (FORCE)`), also when `body` throws. `body` gets the scratch database's
    /// connection options and a name for reports. Scratch databases that an interrupted run left
    /// behind are dropped first (`report` says which); `onCreate` gets the new one's name, for a
    /// signal handler (``dropScratchDatabase(target:name:logger:)``).
    public static func withScratchDatabase<T>(
        target: ConnectionOptions, scratchDSN: String?, logger: Logger, report: (String) -> Void = { _ in },
        onCreate: (String) -> Void = { _ in }, _ body: (ConnectionOptions, String) throws -> T
    ) throws -> T {
        if let scratchDSN {
            SecretRedactor.shared.registerPassword(inDSN: scratchDSN)
            var scratch = ConnectionOptions(dsn: scratchDSN, password: target.password, connectTimeout: target.connectTimeout)
            scratch.requireTLS = target.requireTLS
            return try body(scratch, "(given by --scratch-dsn)")
        }
        let admin = try PostgresConnection.connect(target, logger: logger)
        defer { admin.close() }
        let database = try admin.query("SELECT current_database()").scalar(String.self)
        let prefix = String("\(database)_nfldb_verify_".prefix(63))
        // Copies that an interrupted verify (kill -9, a lost session) left behind: each live run holds a session
        // advisory lock on its scratch name, so one that can be locked belongs to no run and is dropped.
        let leftovers = try admin.query(
            "SELECT datname FROM pg_database WHERE left(datname, length(\(prefix)::text)) = \(prefix)::text ORDER BY datname"
        ).rows.compactMap { $0["datname"] }
        for old in leftovers where old.count > prefix.count {
            guard try admin.tryAdvisoryLock(scratchLock(old)) else { continue }
            defer { _ = try? admin.advisoryUnlock(scratchLock(old)) }
            try admin.execute("DROP DATABASE IF EXISTS \(identifier: old) WITH (FORCE)")
            report("dropped scratch database \(old), left behind by an interrupted migrate verify")
        }
        let name = String("\(prefix)\(getpid())".prefix(63))
        guard try admin.tryAdvisoryLock(scratchLock(name)) else {
            throw MigrationError.configuration("scratch database \(name) is in use by another migrate verify", hint: "Wait for it to finish, or give --scratch-dsn.")
        }
        defer { _ = try? admin.advisoryUnlock(scratchLock(name)) }
        try admin.execute("CREATE DATABASE \(identifier: name) TEMPLATE template0")
        onCreate(name)
        defer {
            do {
                try admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
            } catch {
                logger.warning("could not drop scratch database \(name): \(error)")
            }
        }
        return try body(try target.withDatabase(name), name)
    }

    /// The session advisory lock a live verify holds for as long as its scratch database exists.
    static func scratchLock(_ name: String) -> AdvisoryLockKey { AdvisoryLockKey("nfldb migrate verify scratch \(name)") }

    /// Drops a scratch database from another connection (a signal handler's): `WITH (FORCE)` ends the
    /// run's own sessions on it.
    public static func dropScratchDatabase(target: ConnectionOptions, name: String, logger: Logger) throws {
        let admin = try PostgresConnection.connect(target, logger: logger)
        defer { admin.close() }
        try admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
    }
}
