import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// `nfldb ping`: a connectivity check that prints the server version and latency.
struct Ping: GlobalOptionsCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect, print the server version and the connect and round-trip latency.",
        discussion: "Exit status 0 when the server answered, 1 when it could not be reached.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Round trips to time (the median is printed).")
    var count = 5

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let context = try global.makeContext(command: "ping")
        let connectStart = ContinuousClock.now
        let connection = try context.connect()
        let connectTime = ContinuousClock.now - connectStart
        let info = try connection.query("""
            SELECT current_user AS usr, current_database() AS db, pg_is_in_recovery() AS standby,
                   current_setting('application_name') AS app
            """).singleRow("ping")
        var samples: [Duration] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            try connection.query("SELECT 1")
            samples.append(ContinuousClock.now - start)
        }
        samples.sort()
        let median = samples[samples.count / 2]
        let standby = try info.decode("standby", as: Bool.self)
        let report = PingReport(
            target: connection.target, serverVersion: connection.serverVersion, serverVersionNumber: connection.serverVersionNumber,
            user: info["usr"] ?? "", database: info["db"] ?? "", role: standby ? "standby" : "primary",
            applicationName: info["app"] ?? "", connectMilliseconds: connectTime.inMilliseconds, roundTripMilliseconds: median.inMilliseconds,
            samples: count)
        switch format {
        case .text:
            context.output("ok: PostgreSQL \(report.serverVersion) at \(report.target) (\(report.role))")
            context.output(String(format: "connect %.2f ms, round trip %.3f ms (median of %d)", report.connectMilliseconds, report.roundTripMilliseconds, count))
        case .json:
            context.output(try JSONOutput.encode(report))
        }
        connection.close()
        finished(context, "ping ok")
    }
}

struct PingReport: Codable {
    let target: String
    let serverVersion: String
    let serverVersionNumber: Int
    let user: String
    let database: String
    let role: String
    let applicationName: String
    let connectMilliseconds: Double
    let roundTripMilliseconds: Double
    let samples: Int
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

enum JSONOutput {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return SecretRedactor.shared.redact(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
