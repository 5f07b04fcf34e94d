import Foundation
import NFLDBCore
import NFLDBPostgres

/// One row of `nfl.etl_runs`.
public struct RunSummary: Sendable, Codable {
    public var id: Int64
    public var target: String?
    public var source: String
    public var status: String
    public var startedAt: String
    public var finishedAt: String?
    public var rowsRead: Int
    public var inserted: Int
    public var updated: Int
    public var unchanged: Int
    public var rejected: Int
    public var correlationID: String?
    public var checksum: String?
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case id = "run_id", target, source, status, startedAt = "started_at", finishedAt = "finished_at", rowsRead = "rows_read"
        case inserted, updated, unchanged, rejected, correlationID = "correlation_id", checksum = "input_checksum", error
    }
}

/// A stored finding of `nfl.data_quality_reports`.
public struct QualityFinding: Sendable, Codable {
    public var check: String
    public var severity: String
    public var column: String?
    public var rowRef: String?
    public var value: String?
    public var count: Int?
    public var message: String

    enum CodingKeys: String, CodingKey {
        case check, severity, column, rowRef = "row_ref", value, count, message
    }
}

/// `nfldb etl report RUN_ID`: the run, its findings and its first rejects.
public struct RunReport: Sendable, Codable {
    public var run: RunSummary
    public var findings: [QualityFinding]
    public var rejects: [StoredReject]
    public var rejectsTotal: Int

    enum CodingKeys: String, CodingKey { case run, findings, rejects, rejectsTotal = "rejects_total" }
}

public struct StoredReject: Sendable, Codable {
    public var row: Int
    public var key: String?
    public var reasons: String
    public var raw: String
}

public enum ETLRuns {
    static let select = """
        SELECT id, target_table, source, status, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started,
               to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished, rows_read, rows_inserted, rows_updated,
               rows_unchanged, rows_rejected, correlation_id, input_checksum, error
        FROM nfl.etl_runs
        """

    static func summary(_ row: PostgresRow) throws -> RunSummary {
        RunSummary(
            id: try row.decode("id"), target: row["target_table"], source: row["source"] ?? "", status: row["status"] ?? "",
            startedAt: row["started"] ?? "", finishedAt: row["finished"], rowsRead: try row.decode("rows_read"),
            inserted: try row.decode("rows_inserted"), updated: try row.decode("rows_updated"), unchanged: try row.decode("rows_unchanged"),
            rejected: try row.decode("rows_rejected"), correlationID: row["correlation_id"], checksum: row["input_checksum"], error: row["error"])
    }

    /// The newest runs first.
    public static func list(_ connection: PostgresConnection, limit: Int = 20) throws -> [RunSummary] {
        try connection.query("\(unsafeRaw: select) ORDER BY id DESC LIMIT \(limit)").rows.map(summary)
    }

    public static func report(_ connection: PostgresConnection, runID: Int64, rejectLimit: Int = 20) throws -> RunReport {
        guard let row = try connection.query("\(unsafeRaw: select) WHERE id = \(runID)").rows.first else {
            throw OperatorError("no ETL run \(runID) in nfl.etl_runs", hint: "List the runs with `nfldb etl runs`.")
        }
        let findings = try connection.query("""
            SELECT check_name, severity, column_name, row_ref, failure_value, failure_count, message FROM nfl.data_quality_reports
            WHERE etl_run_id = \(runID)
            ORDER BY CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, (row_ref IS NOT NULL), id
            """).rows.map { row in
            QualityFinding(check: row["check_name"] ?? "", severity: row["severity"] ?? "", column: row["column_name"], rowRef: row["row_ref"],
                           value: row["failure_value"], count: row["failure_count"].flatMap { Int($0) }, message: row["message"] ?? "")
        }
        let rejects = try connection.query("""
            SELECT row_number, row_key, reasons::text AS reasons, raw_line FROM nfl.etl_rejects WHERE etl_run_id = \(runID)
            ORDER BY row_number LIMIT \(rejectLimit)
            """).rows.map { StoredReject(row: try $0.decode("row_number"), key: $0["row_key"], reasons: $0["reasons"] ?? "", raw: $0["raw_line"] ?? "") }
        let total = try connection.query("SELECT count(*) FROM nfl.etl_rejects WHERE etl_run_id = \(runID)").scalar(Int.self)
        return RunReport(run: try summary(row), findings: findings, rejects: rejects, rejectsTotal: total)
    }
}

/// Human-readable renderings shared by the CLI commands.
public enum ETLText {
    public static func load(_ r: LoadResult) -> String {
        var lines: [String] = []
        let head = r.runID.map { "run \($0)" } ?? (r.status == "dry-run" ? "dry run (rolled back)" : "run")
        lines.append("\(head): \(r.status) — \(r.source)")
        if r.status == "skipped" {
            lines.append("upstream not modified since the last successful load (HTTP 304); nothing read")
            return lines.joined(separator: "\n")
        }
        lines.append("read \(r.rowsRead) rows (\(r.bytes) bytes, sha256 \(r.checksum?.prefix(12) ?? "-")…) in \(String(format: "%.1f", r.durationMS / 1000)) s")
        lines.append("nfl.games: \(r.inserted) inserted, \(r.updated) updated, \(r.unchanged) unchanged, \(r.rejected) rejected" +
                     (r.rowsRead > 0 ? String(format: " (%.2f %%)", r.invalidRatio * 100) : ""))
        for (table, c) in r.tables.sorted(by: { $0.key < $1.key }) where table != "nfl.games" {
            lines.append("\(table): \(c.inserted) inserted, \(c.updated) updated, \(c.unchanged) unchanged")
        }
        if !r.newTeams.isEmpty { lines.append("new team abbreviations: \(r.newTeams.joined(separator: ", "))") }
        lines.append(contentsOf: quality(r))
        if let error = r.error { lines.append("error: \(error)") }
        return lines.joined(separator: "\n")
    }

    /// Violations per check, then the first failures in long format.
    public static func quality(_ r: LoadResult, limit: Int = 20) -> [String] {
        var lines: [String] = []
        if !r.metrics.extraColumns.isEmpty {
            lines.append("extra columns ignored: \(r.metrics.extraColumns.joined(separator: ", "))")
        }
        if r.metrics.violations.isEmpty { return lines }
        lines.append("checks that failed (rows):")
        for (key, count) in r.metrics.violations.sorted(by: { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            let parts = key.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            lines.append("  \(String(count).leftPad(7))  \(parts[0].isEmpty ? "(row)" : String(parts[0])): \(parts[1])")
        }
        lines.append("failures (row, line, game_id, column, check, value, severity): \(r.failureCount) in total")
        let ordered = r.failures.filter { $0.severity == .error } + r.failures.filter { $0.severity != .error }
        for f in ordered.prefix(limit) {
            lines.append("  row \(f.row), line \(f.line), \(f.key ?? "-"), \(f.column ?? "-"), \(f.check), \(f.value ?? "NULL"), \(f.severity.rawValue)")
        }
        if r.failureCount > limit { lines.append("  … \(r.failureCount - limit) more (all of them with --format json)") }
        return lines
    }

    public static func runs(_ runs: [RunSummary]) -> String {
        if runs.isEmpty { return "no ETL runs yet" }
        var lines = ["run_id  status     started_at            inserted  updated  unchanged  rejected  source"]
        for r in runs {
            lines.append("\(String(r.id).rightPad(7)) \(r.status.rightPad(10)) \(r.startedAt.rightPad(21)) \(String(r.inserted).leftPad(8)) \(String(r.updated).leftPad(8)) \(String(r.unchanged).leftPad(10)) \(String(r.rejected).leftPad(9))  \(r.source)"
                         + (r.error.map { "\n        error: \($0)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    public static func report(_ report: RunReport) -> String {
        let r = report.run
        var lines = [
            "run \(r.id): \(r.status) — \(r.target ?? "?") from \(r.source)",
            "started \(r.startedAt), finished \(r.finishedAt ?? "-"), correlation id \(r.correlationID ?? "-"), input sha256 \(r.checksum ?? "-")",
            "rows: \(r.rowsRead) read, \(r.inserted) inserted, \(r.updated) updated, \(r.unchanged) unchanged, \(r.rejected) rejected",
        ]
        if let error = r.error { lines.append("error: \(error)") }
        let summary = report.findings.filter { $0.rowRef == nil }
        let individual = report.findings.filter { $0.rowRef != nil }
        if !summary.isEmpty {
            lines.append("findings:")
            for f in summary { lines.append("  \(f.severity.uppercased().rightPad(7)) \(f.check)\(f.column.map { " [\($0)]" } ?? ""): \(f.message)") }
        }
        if !individual.isEmpty {
            lines.append("failures (first \(min(individual.count, 20)) of \(individual.count) stored):")
            for f in individual.prefix(20) { lines.append("  \(f.rowRef ?? "-") \(f.column ?? "-") \(f.check) = \(f.value ?? "NULL") (\(f.severity)) — \(f.message)") }
        }
        if report.rejectsTotal > 0 {
            lines.append("rejected rows (first \(report.rejects.count) of \(report.rejectsTotal), in nfl.etl_rejects):")
            for x in report.rejects { lines.append("  row \(x.row) \(x.key ?? "-"): \(x.reasons)\n    \(x.raw)") }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
    func rightPad(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
