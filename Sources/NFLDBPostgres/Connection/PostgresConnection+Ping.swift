import Foundation
import Logging
import NFLDBCore

/// What `nfldb ping` reports: who and where the server is, and how fast it answers.
public struct PingResult: Sendable, Codable {
    public let target: String
    public let serverVersion: String
    public let serverVersionNumber: Int
    public let user: String
    public let database: String
    /// `primary` or `standby` (`pg_is_in_recovery()`).
    public let role: String
    public let applicationName: String
    public let connectMilliseconds: Double
    /// The median of `samples` round trips of `SELECT 1`.
    public let roundTripMilliseconds: Double
    public let samples: Int
    /// Protocol, cipher and whether the server certificate was verified.
    public let tls: TLSSession
}

extension PostgresConnection {
    /// Connects, reads the session facts, times `rounds` round trips and closes.
    public static func ping(_ options: ConnectionOptions, rounds: Int, logger: Logger) throws -> PingResult {
        let connectStart = ContinuousClock.now
        let connection = try PostgresConnection.connect(options, logger: logger)
        defer { connection.close() }
        let connectTime = ContinuousClock.now - connectStart
        let info = try connection.query("""
            SELECT current_user AS usr, current_database() AS db, pg_is_in_recovery() AS standby,
                   current_setting('application_name') AS app
            """).singleRow("ping")
        var samples: [Duration] = []
        for _ in 0..<max(1, rounds) {
            let start = ContinuousClock.now
            try connection.query("SELECT 1")
            samples.append(ContinuousClock.now - start)
        }
        samples.sort()
        let standby = try info.decode("standby", as: Bool.self)
        return PingResult(
            target: connection.target, serverVersion: connection.serverVersion, serverVersionNumber: connection.serverVersionNumber,
            user: info["usr"] ?? "", database: info["db"] ?? "", role: standby ? "standby" : "primary",
            applicationName: info["app"] ?? "", connectMilliseconds: connectTime.inMilliseconds,
            roundTripMilliseconds: samples[samples.count / 2].inMilliseconds, samples: samples.count,
            tls: connection.tlsSession)
    }
}
