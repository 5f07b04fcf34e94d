import Foundation
import NFLDBHealth

/// One posture problem: what is wrong, why it matters, and how to fix it.
public struct Finding: Sendable, Hashable {
    public var severity: HealthStatus
    public var what: String
    public var why: String
    public var fix: String
    /// Extra detail columns (`role`, `file`, `line`…).
    public var fields: [String: String]

    public init(_ severity: HealthStatus, what: String, why: String, fix: String, fields: [String: String] = [:]) {
        self.severity = severity
        self.what = what
        self.why = why
        self.fix = fix
        self.fields = fields
    }

    var detail: Detail {
        var pairs: [(String, DetailValue)] = [
            ("severity", .string(severity.description)), ("what", .string(what)), ("why", .string(why)), ("fix", .string(fix)),
        ]
        for key in fields.keys.sorted() { pairs.append((key, .string(fields[key] ?? ""))) }
        return Detail(pairs)
    }
}

extension ProbeOutcome {
    /// The worst finding decides the status; the value is the number of findings; the message
    /// carries the first finding's what and why, the hint its fix; every finding is a detail.
    static func findings(_ findings: [Finding], clean: String) -> ProbeOutcome {
        guard let first = findings.sorted(by: { $0.severity.severity > $1.severity.severity }).first else {
            return ProbeOutcome(status: .ok, value: 0, message: clean)
        }
        let status = HealthStatus.worst(findings.map(\.severity))
        let more = findings.count > 1 ? " (and \(findings.count - 1) more finding\(findings.count == 2 ? "" : "s"), see details)" : ""
        return ProbeOutcome(
            status: status, value: Double(findings.count), message: "\(first.what): \(first.why)\(more)", hint: first.fix,
            details: findings.map(\.detail))
    }
}
