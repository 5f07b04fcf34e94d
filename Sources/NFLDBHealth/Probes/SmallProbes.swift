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

/// Age of the last successful backup and verification, read from the records the backup capability
/// keeps in this database: `nfldb.backup_runs(finished_at timestamptz, status text)` and
/// `nfldb.backup_verifications(finished_at timestamptz, status text)`; `status` values `ok`,
/// `success`, `succeeded` or `completed` count as successful.
public struct BackupsProbe: Probe {
    public init() {}
    public let name = "backups"
    public let summary = "age of the last successful backup (nfldb.backup_runs) and verification (nfldb.backup_verifications), in seconds"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 93_600, critical: 172_800)
    public let roles: Set<ServerRole> = [.primary]

    static let successful = "('ok', 'success', 'succeeded', 'completed')"

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let tables = try context.row("""
            SELECT to_regclass('nfldb.backup_runs') IS NOT NULL AS runs, to_regclass('nfldb.backup_verifications') IS NOT NULL AS verifications
            """, "backup tables")
        guard try tables.decode("runs", as: Bool.self) else {
            return .unknown(
                "no backup records: table nfldb.backup_runs does not exist in \(context.server.database), so the age of the last backup is unknown",
                hint: "Backups recorded by nfldb's backup capability land in nfldb.backup_runs (not built yet); until then disable this check with "
                    + "health.checks.backups.enabled: false and monitor backups where they are taken.")
        }
        let last = try context.row("""
            SELECT extract(epoch FROM now() - max(finished_at))::float8 AS age_s, count(*) AS runs
            FROM nfldb.backup_runs WHERE lower(status) IN \(unsafeRaw: Self.successful)
            """, "last backup")
        var details: [Detail] = []
        guard let age = try last.decode("age_s", as: Double?.self) else {
            return ProbeOutcome(status: .critical, message: "no successful backup recorded in nfldb.backup_runs",
                                hint: "Run a backup now and check why none succeeded (the backup job's log).")
        }
        var status = context.thresholds.status(for: age)
        var message = "last successful backup finished \(HealthFormat.duration(age)) ago"
        details.append(Detail([("kind", .string("backup")), ("seconds_since_success", .number(age))]))
        if try tables.decode("verifications", as: Bool.self) {
            let verified = try context.row("""
                SELECT extract(epoch FROM now() - max(finished_at))::float8 AS age_s
                FROM nfldb.backup_verifications WHERE lower(status) IN \(unsafeRaw: Self.successful)
                """, "last verification").decode("age_s", as: Double?.self)
            let limit = context.settings.seconds(.healthVerifyWarning)
            details.append(Detail([("kind", .string("verification")), ("seconds_since_success", .number(verified))]))
            if let verified {
                message += "; last successful verification \(HealthFormat.duration(verified)) ago"
                if verified >= limit { status = status.worse(.warning) }
            } else {
                message += "; no successful verification recorded"
                status = status.worse(.warning)
            }
        } else {
            message += "; no verification records (nfldb.backup_verifications does not exist)"
        }
        let hint = status == .ok ? nil : "Check the backup job (cron, its log) and run a backup and a restore verification now."
        return ProbeOutcome(status: status, value: (age * 10).rounded() / 10, message: message, hint: hint, details: details)
    }
}
