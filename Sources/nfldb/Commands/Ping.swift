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

    @ParentCommand var root: NFLDB

    @Option(help: "Round trips to time (the median is printed).")
    var count = 5

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    static let commandPath = "ping"

    func run(_ context: CommandContext) throws {
        let report = try PostgresConnection.ping(try context.connectionOptions(), rounds: count, logger: context.logger)
        switch format {
        case .text:
            context.output("ok: PostgreSQL \(report.serverVersion) at \(report.target) (\(report.role))")
            context.output(String(format: "connect %.2f ms, round trip %.3f ms (median of %d)", report.connectMilliseconds, report.roundTripMilliseconds, count))
            context.output(Self.tlsLine(report.tls))
        case .json:
            context.output(try JSONOutput.encode(report))
        }
        finished(context, "ping ok")
    }

    /// `tls: TLSv1.3 TLS_AES_256_GCM_SHA384, peer verified (sslmode=verify-full)` or why not.
    static func tlsLine(_ tls: TLSSession) -> String {
        guard tls.inUse else { return "tls: not in use (sslmode=\(tls.sslMode)): the connection is unencrypted" }
        let peer = tls.verified
            ? "peer verified (sslmode=\(tls.sslMode))"
            : "peer NOT verified (sslmode=\(tls.sslMode): encrypted, but the server's identity was not checked)"
        var line = "tls: \(tls.protocolVersion ?? "?") \(tls.cipher ?? "?"), \(peer)"
        if let notAfter = tls.peerNotAfter {
            line += ", certificate expires \(ISO8601DateFormatter().string(from: notAfter))"
        }
        return line
    }
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
