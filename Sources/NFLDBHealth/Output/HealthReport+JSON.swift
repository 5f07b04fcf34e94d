import Foundation

/// The stable JSON document of `nfldb health --format json`.
public struct HealthJSON: Encodable {
    public var status: HealthStatus
    public var exitCode: Int32
    public var startedAt: Date
    public var durationMilliseconds: Double
    public var targets: [TargetReport]
    /// One object per check: name, target, role, status, value, unit, thresholds, message, hint, details.
    public var checks: [CheckResult]
    /// Alert deliveries of this run (with `--alert`), as plain objects.
    public var alerts: [[String: String]]?

    public init(report: HealthReport, alerts: [[String: String]]? = nil) {
        status = report.status
        exitCode = report.status.exitCode
        startedAt = report.startedAt
        durationMilliseconds = (report.durationMilliseconds * 100).rounded() / 100
        targets = report.targets
        checks = report.checks
        self.alerts = alerts
    }

    enum CodingKeys: String, CodingKey {
        case status, targets, checks, alerts
        case exitCode = "exit_code"
        case startedAt = "started_at"
        case durationMilliseconds = "duration_ms"
    }

    public func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
