import Foundation

extension HealthReport {
    /// Nagios/Icinga plugin output: a status line with every non-OK check, `|` perfdata of every
    /// check with a value (`'label'=value[UOM];warn;crit;min;max`), then one long-output line per
    /// check. The exit code is ``status``.
    public func renderNagios() -> String {
        let problems = checks.filter { $0.status != .ok }.sorted { $0.status.severity > $1.status.severity }
        let multiTarget = targets.count > 1
        func label(_ check: CheckResult) -> String { multiTarget ? "\(check.role):\(check.name)" : check.name }
        var summary: String
        if problems.isEmpty {
            summary = "all \(checks.count) checks OK"
        } else {
            summary = problems.map { "\(label($0)) \($0.status): \(Self.nagiosSafe($0.message))" }.joined(separator: "; ")
        }
        let perfdata = checks.compactMap { check -> String? in
            guard let value = check.value, value.isFinite else { return nil }
            var fields = [HealthFormat.plain(value) + check.unit.perfdataUOM]
            // Perfdata thresholds are "alert when outside": for lower-is-worse values that is `limit:`.
            let lower = check.thresholds.direction == .lowerIsWorse
            fields.append(check.thresholds.warning.map { HealthFormat.plain($0) + (lower ? ":" : "") } ?? "")
            fields.append(check.thresholds.critical.map { HealthFormat.plain($0) + (lower ? ":" : "") } ?? "")
            fields.append(check.unit == .percent || check.unit == .bytes || check.unit == .count || check.unit == .seconds ? "0" : "")
            fields.append(check.unit == .percent ? "100" : "")
            while fields.last == "" { fields.removeLast() }
            return "'\(label(check).replacingOccurrences(of: "'", with: "''"))'=" + fields.joined(separator: ";")
        }
        var lines = ["NFLDB HEALTH \(status) - \(summary) | " + perfdata.joined(separator: " ")]
        for check in checks {
            lines.append("[\(check.status)] \(label(check)) on \(check.target): \(Self.nagiosSafe(check.message))")
        }
        return lines.joined(separator: "\n")
    }

    /// Nagios reserves `|` for perfdata; replace it in messages.
    static func nagiosSafe(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "/").replacingOccurrences(of: "\n", with: " ")
    }
}
