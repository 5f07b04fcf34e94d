import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

extension MigrationVerifier {
    /// Runs `body` against a scratch database: the one `scratchDSN` names (it must be empty), or a
    /// new `<db>_nfldb_verify_<pid>` created from `template0` on `target`'s server and dropped
    /// afterwards (`WITH (FORCE)`), also when `body` throws. `body` gets the scratch database's
    /// connection options and a name for reports.
    public static func withScratchDatabase<T>(
        target: ConnectionOptions, scratchDSN: String?, logger: Logger, _ body: (ConnectionOptions, String) throws -> T
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
        let name = String("\(database)_nfldb_verify_\(getpid())".prefix(63))
        try admin.execute("CREATE DATABASE \(identifier: name) TEMPLATE template0")
        defer {
            do {
                try admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
            } catch {
                logger.warning("could not drop scratch database \(name): \(error)")
            }
        }
        return try body(try target.withDatabase(name), name)
    }
}
