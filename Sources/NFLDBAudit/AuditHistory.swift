import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// One entry of audit.log.
public struct AuditLogEntry: Sendable, Codable {
    public let id: Int64
    public let loggedAt: String
    public let table: String
    public let operation: String
    /// JSON texts (nil when NULL).
    public let rowKey: String?
    public let oldRow: String?
    public let newRow: String?
    public let changed: String?
    public let txid: Int64
    public let sessionUser: String
    public let currentUser: String
    public let applicationName: String?
    public let clientAddr: String?
    public let correlationID: String?
}

/// What `prune` removed and created.
public struct AuditPruneResult: Sendable, Codable {
    public let cutoff: String
    public let droppedPartitions: [String]
    public let deletedDefaultRows: Int
    public let createdPartitions: [String]
    public let dryRun: Bool
}

extension AuditInstaller {
    /// The history of rows of `table` whose key contains `key` (a JSON object, e.g.
    /// `{"game_id": "2024_01_BAL_KC"}`; partial keys match every row they contain), plus the
    /// table's TRUNCATEs and rewrites (an ALTER TABLE that rewrote every row), oldest first.
    ///
    /// - Throws: ``OperatorError`` when `key` is not a JSON object or the log is not installed.
    public func history(table: String, key: String?, limit: Int = 200, since: Duration? = nil) throws -> [AuditLogEntry] {
        guard try connection.query("SELECT to_regclass('audit.log') IS NOT NULL").scalar(Bool.self) else {
            throw OperatorError("audit.log does not exist", hint: "Run `nfldb audit install --table …` first.")
        }
        if let key {
            guard let data = key.data(using: .utf8), (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
                throw OperatorError("--key must be a JSON object, e.g. '{\"game_id\":\"2024_01_BAL_KC\"}'", exitStatus: .usage)
            }
            if key.contains("\\u0000") {
                throw OperatorError("--key contains \\u0000, which no logged key can hold (jsonb has no NUL character)", exitStatus: .usage)
            }
        }
        let parts = table.split(separator: ".", maxSplits: 1).map(String.init)
        let schema: String? = parts.count == 2 ? parts[0] : nil
        let name = parts.last ?? table
        // Older than the log can be is "all of it" (and keeps now() - interval inside timestamp's range).
        let sinceSeconds: Int64? = since.map { DurationParser.milliseconds($0) / 1000 }.flatMap { $0 > Self.longestAge ? nil : $0 }
        let rows = try connection.query("""
            SELECT id, logged_at::text AS logged_at, table_schema || '.' || table_name AS tbl, operation, row_key::text AS row_key,
                   old_row::text AS old_row, new_row::text AS new_row, changed::text AS changed, txid, session_user_name,
                   current_user_name, application_name, host(client_addr) AS client_addr, correlation_id
            FROM audit.log
            WHERE table_name = \(name) AND (\(schema)::text IS NULL OR table_schema = \(schema))
              AND (\(key)::jsonb IS NULL OR row_key @> \(key)::jsonb OR operation IN ('TRUNCATE', 'REWRITE'))
              AND (\(sinceSeconds)::int8 IS NULL OR logged_at >= now() - make_interval(secs => \(sinceSeconds)::int8))
            ORDER BY logged_at, id
            LIMIT \(limit)
            """).rows
        return try rows.map { row in
            AuditLogEntry(
                id: try row.decode("id"), loggedAt: row["logged_at"] ?? "", table: row["tbl"] ?? "", operation: row["operation"] ?? "",
                rowKey: row["row_key"], oldRow: row["old_row"], newRow: row["new_row"], changed: row["changed"], txid: try row.decode("txid"),
                sessionUser: row["session_user_name"] ?? "", currentUser: row["current_user_name"] ?? "",
                applicationName: row["application_name"], clientAddr: row["client_addr"], correlationID: row["correlation_id"])
        }
    }

    /// Drops monthly partitions that end before `now() - olderThan`, deletes older entries from the
    /// DEFAULT partition (the guard lets only this through), and creates the coming months'
    /// partitions. Runs as the audit owner inside one transaction; needs a superuser connection.
    /// About 1,000 years in seconds: ages beyond it reach outside what the log can hold.
    static let longestAge: Int64 = 1000 * 365 * 86_400
    /// One day: a shorter retention is a typo (a missing unit, `h` for `d`), and a prune cannot be undone.
    static let shortestAge: Int64 = 86_400

    public func prune(olderThan: Duration, dryRun: Bool = false) throws -> AuditPruneResult {
        try requireSuperuser("audit prune")
        guard try connection.query("SELECT to_regclass('audit.log') IS NOT NULL").scalar(Bool.self) else {
            throw OperatorError("audit.log does not exist", hint: "Run `nfldb audit install --table …` first.")
        }
        let seconds = DurationParser.milliseconds(olderThan) / 1000
        if seconds < Self.shortestAge {
            throw OperatorError(
                "--older-than \(DurationParser.milliseconds(olderThan)) ms is shorter than one day: prune would delete entries written today, and they cannot be restored",
                hint: "Give the retention in days, such as 400d (an audit trail is usually kept for months).", exitStatus: .usage)
        }
        if seconds > Self.longestAge {
            throw OperatorError(
                "--older-than \(seconds / 86_400) days reaches back more than 1,000 years: no entry is that old",
                hint: "Give an age such as 400d (entries older than that are pruned).", exitStatus: .usage)
        }
        return try locked { try connection.withTransaction {
            try connection.execute("SET LOCAL lock_timeout = '5s'")
            let cutoffRow = try connection.query("""
                SELECT (now() - make_interval(secs => \(seconds)::int8))::text AS cutoff,
                       extract(epoch FROM now() - make_interval(secs => \(seconds)::int8))::float8 AS epoch
                """).singleRow()
            let cutoff = cutoffRow["cutoff"] ?? ""
            let cutoffEpoch = try cutoffRow.decode("epoch", as: Double.self)
            var dropped: [String] = []
            for partition in try partitions() {
                guard let (year, month) = AuditSQL.parsePartitionName(partition) else { continue }
                let next = AuditSQL.nextMonth(year, month)
                var components = DateComponents()
                components.year = next.0
                components.month = next.1
                components.day = 1
                var calendar = Calendar(identifier: .gregorian)
                calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
                guard let upper = calendar.date(from: components), upper.timeIntervalSince1970 <= cutoffEpoch else { continue }
                dropped.append(partition)
            }
            try connection.execute("SET LOCAL ROLE \(identifier: owner)")
            var deleted = 0
            if dryRun {
                deleted = try connection.query("SELECT count(*) FROM audit.log_default WHERE logged_at < \(cutoff)::timestamptz").scalar(Int.self)
                try connection.execute("RESET ROLE")
                return AuditPruneResult(cutoff: cutoff, droppedPartitions: dropped, deletedDefaultRows: deleted, createdPartitions: [], dryRun: true)
            }
            for partition in dropped {
                try connection.execute("DROP TABLE audit.\(identifier: partition)")
            }
            try connection.execute("SET LOCAL nfldb.audit_prune = 'on'")
            deleted = try connection.execute("DELETE FROM audit.log_default WHERE logged_at < \(cutoff)::timestamptz")
            try connection.execute("SET LOCAL nfldb.audit_prune = 'off'")
            let created = try ensurePartitions(adoptDefaultRows: !dryRun)
            try connection.execute("RESET ROLE")
            logger.info("audit pruned", metadata: [
                "audit.dropped_partitions": .stringConvertible(dropped.count), "audit.deleted_default_rows": .stringConvertible(deleted),
            ])
            return AuditPruneResult(cutoff: cutoff, droppedPartitions: dropped, deletedDefaultRows: deleted, createdPartitions: created, dryRun: false)
        } }
    }
}
