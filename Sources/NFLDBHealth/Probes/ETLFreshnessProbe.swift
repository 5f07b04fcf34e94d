import Foundation
import NFLDBCore
import NFLDBPostgres

/// Age of the last successful ETL run per target (`nfl.etl_runs`, written by `nfldb etl load`);
/// the value is the oldest of them. A 304-skipped run counts as successful (the data is current).
public struct ETLFreshnessProbe: Probe {
    public init() {}
    public let name = "etl_freshness"
    public let summary = "age of the last successful ETL run per target (nfl.etl_runs), in seconds; the oldest target counts"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 93_600, critical: 172_800)
    public let roles: Set<ServerRole> = [.primary]

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let access = try context.row("""
            SELECT to_regclass('nfl.etl_runs') IS NOT NULL AS present,
                   CASE WHEN to_regclass('nfl.etl_runs') IS NULL THEN false
                        ELSE has_table_privilege('nfl.etl_runs', 'SELECT') END AS readable
            """, "etl_runs access")
        guard try access.decode("present", as: Bool.self) else {
            return .unknown("no ETL records: table nfl.etl_runs does not exist in \(context.server.database)",
                            hint: "Run `nfldb migrate up` (migration 0006 creates it), or disable this check with health.checks.etl_freshness.enabled: false.")
        }
        guard try access.decode("readable", as: Bool.self) else {
            return .unknown("\(context.server.user) may not read nfl.etl_runs",
                            hint: "Grant it: apply roles/platform.yaml (nfl_monitor gets SELECT on nfl.etl_runs), or GRANT USAGE ON SCHEMA nfl, SELECT ON nfl.etl_runs TO \(context.server.user).")
        }
        let rows = try context.rows("""
            SELECT coalesce(target_table, source) AS target,
                   extract(epoch FROM now() - max(finished_at) FILTER (WHERE status = 'succeeded'))::float8 AS age_s,
                   count(*) FILTER (WHERE status = 'failed' AND finished_at > coalesce(
                       (SELECT max(r2.finished_at) FROM nfl.etl_runs r2 WHERE r2.status = 'succeeded'
                          AND coalesce(r2.target_table, r2.source) = coalesce(r.target_table, r.source)), '-infinity')) AS failed_since
            FROM nfl.etl_runs r GROUP BY 1 ORDER BY 1
            """)
        guard !rows.isEmpty else {
            return .unknown("no ETL run recorded in nfl.etl_runs yet", hint: "Run `nfldb etl load games` (and schedule it), or disable this check.")
        }
        var worst: Double = 0
        var status = HealthStatus.ok
        var parts: [String] = []
        var details: [Detail] = []
        for row in rows {
            let target = row["target"] ?? "?"
            let failed = (try? row.decode("failed_since", as: Int.self)) ?? 0
            details.append(Detail([("target", .string(target)), ("seconds_since_success", .number(try row.decode("age_s", as: Double?.self))),
                                   ("failed_runs_since", .number(Double(failed)))]))
            guard let age = try row.decode("age_s", as: Double?.self) else {
                status = .critical
                parts.append("\(target): no successful run")
                continue
            }
            worst = max(worst, age)
            status = status.worse(context.thresholds.status(for: age))
            parts.append("\(target): last success \(HealthFormat.duration(age)) ago" + (failed > 0 ? ", \(failed) failed since" : ""))
        }
        let hint = status == .ok ? nil
            : "Check the ETL job (cron, its log, `nfldb etl runs` and `nfldb etl report RUN_ID` of the failed runs) and run `nfldb etl load games` now."
        return ProbeOutcome(status: status, value: (worst * 10).rounded() / 10, message: parts.joined(separator: "; "), hint: hint, details: details)
    }
}
