import Foundation
import NFLDBCore
import NFLDBPostgres

/// Indexes left invalid by a failed `CREATE INDEX CONCURRENTLY` (excluding builds in progress).
public struct InvalidIndexesProbe: Probe {
    public init() {}
    public let name = "invalid_indexes"
    public let summary = "invalid indexes left by failed CREATE/REINDEX CONCURRENTLY (builds in progress excluded)"
    public let unit = HealthUnit.count
    public let defaultThresholds = Thresholds(warning: 1, critical: nil)
    public let roles: Set<ServerRole> = [.primary]

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT n.nspname, ic.relname AS index_name, tc.relname AS table_name, i.indisready
            FROM pg_index i
            JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_class tc ON tc.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = ic.relnamespace
            WHERE NOT i.indisvalid
              AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
            ORDER BY 1, 2
            """)
        let details = rows.map { row in
            Detail([
                ("index", .string("\(row["nspname"] ?? "").\(row["index_name"] ?? "")")), ("table", .text(row["table_name"])),
                ("ready", .bool((try? row.decode("indisready", as: Bool.self)) ?? false)),
            ])
        }
        guard let first = rows.first else {
            return ProbeOutcome(status: .ok, value: 0, message: "no invalid index")
        }
        let index = "\(first["nspname"] ?? "").\(first["index_name"] ?? "")"
        let status = context.thresholds.status(for: Double(rows.count))
        return ProbeOutcome(
            status: status, value: Double(rows.count),
            message: "\(rows.count) invalid index\(rows.count == 1 ? "" : "es"), e.g. \(index) on \(first["table_name"] ?? "?") "
                + "(never used by queries, but still maintained on every write)",
            hint: "Rebuild it with REINDEX INDEX CONCURRENTLY \(index); or drop it with DROP INDEX CONCURRENTLY \(index); and recreate it "
                + "after fixing the cause (often duplicate values for a UNIQUE index).",
            details: details)
    }
}

/// The size of the connected database (`pg_database_size`, which reads the directory and takes no
/// relation lock). Growth needs history; the alert state keeps it when `--alert` runs.
public struct DatabaseSizeProbe: Probe {
    public init() {}
    public let name = "database_size"
    public let summary = "size of the connected database in bytes (no thresholds by default)"
    public let unit = HealthUnit.bytes
    public let defaultThresholds = Thresholds(warning: nil, critical: nil)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let size: Double = try context.row(
            "SELECT pg_database_size(current_database())::float8 AS size", "database size").decode("size")
        let status = context.thresholds.status(for: size)
        let hint = status == .ok ? nil
            : "Find the largest relations (SELECT relname, pg_total_relation_size(oid) FROM pg_class ORDER BY 2 DESC LIMIT 10) and plan disk space or archiving of old data."
        return ProbeOutcome(
            status: status, value: size, message: "database \(context.server.database) is \(HealthFormat.bytes(size))", hint: hint,
            metrics: [HealthMetric("database_size_bytes", help: "Size of the connected database.", labels: ["database": context.server.database], value: size)])
    }
}
