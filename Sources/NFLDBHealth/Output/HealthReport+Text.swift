import Foundation

extension HealthReport {
    /// The human table: one line per check, then details and hints of every check that is not OK,
    /// then a summary line.
    public func renderText() -> String {
        let multiTarget = targets.count > 1
        var header = ["CHECK", "STATUS", "VALUE", "MESSAGE"]
        if multiTarget { header.insert("TARGET", at: 0) }
        var rows: [[String]] = []
        for target in targets {
            for check in target.checks {
                var row = [check.name, check.status.description, check.formattedValue, check.message]
                if multiTarget { row.insert("\(target.role) \(target.name)", at: 0) }
                rows.append(row)
            }
        }
        var lines = [Self.table(header: header, rows: rows)]
        let problems = checks.filter { $0.status != .ok }
        if !problems.isEmpty { lines.append("") }
        for check in problems {
            lines.append("\(check.status) \(check.name)\(multiTarget ? " on \(check.target)" : ""): \(check.message)")
            for detail in check.details.prefix(10) { lines.append("    \(detail)") }
            if let hint = check.hint { lines.append("    HINT: \(hint)") }
        }
        lines.append("")
        lines.append(summaryLine)
        return lines.joined(separator: "\n")
    }

    /// `nfldb health: CRITICAL (1 critical, 0 warning, 1 unknown, 13 ok) in 142 ms on 127.0.0.1:5432/nfl`.
    public var summaryLine: String {
        let counts = HealthStatus.allCases.map { status in (status, checks.filter { $0.status == status }.count) }
        let text = [HealthStatus.critical, .warning, .unknown, .ok].map { status in
            "\(counts.first { $0.0 == status }?.1 ?? 0) \(status.description.lowercased())"
        }.joined(separator: ", ")
        return "nfldb health: \(status) (\(text)) in \(Int(durationMilliseconds.rounded())) ms on \(targets.map(\.name).joined(separator: ", "))"
    }

    static func table(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count - 1 { widths[i] = max(widths[i], min(cell.count, 40)) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: max(widths[i], cell.count), withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
