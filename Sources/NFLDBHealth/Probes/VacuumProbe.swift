import Foundation
import NFLDBCore
import NFLDBPostgres

/// Tables that need VACUUM or ANALYZE and have not had it: dead (or modified) rows above their
/// autovacuum trigger, with per-table storage options honoured, and no (auto)vacuum/analyze for
/// longer than `health.checks.vacuum.grace`, or autovacuum disabled for the table.
public struct VacuumProbe: Probe {
    public init() {}
    public let name = "vacuum"
    public let summary = "tables above their autovacuum/autoanalyze trigger that have not been vacuumed/analyzed within vacuum.grace"
    public let unit = HealthUnit.count
    public let defaultThresholds = Thresholds(warning: 1, critical: nil)
    public let roles: Set<ServerRole> = [.primary]

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let grace = context.settings.seconds(.healthVacuumGrace)
        let minRows = context.settings.integer(.healthVacuumMinRows) ?? 0
        let rows = try context.rows("""
            SELECT s.schemaname, s.relname, s.n_live_tup::float8 AS live, s.n_dead_tup::float8 AS dead,
                   s.n_mod_since_analyze::float8 AS modified, greatest(c.reltuples, 0)::float8 AS reltuples,
                   extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 AS since_vacuum_s,
                   extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 AS since_analyze_s,
                   array_to_string(c.reloptions, ',') AS reloptions,
                   current_setting('autovacuum') = 'on' AS autovacuum,
                   current_setting('autovacuum_vacuum_threshold')::float8 AS vac_threshold,
                   current_setting('autovacuum_vacuum_scale_factor')::float8 AS vac_scale,
                   current_setting('autovacuum_analyze_threshold')::float8 AS an_threshold,
                   current_setting('autovacuum_analyze_scale_factor')::float8 AS an_scale
            FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.n_dead_tup >= \(minRows) OR s.n_mod_since_analyze >= \(minRows)
            ORDER BY s.n_dead_tup DESC
            LIMIT 200
            """)
        var overdue: [Detail] = []
        var first: String?
        for row in rows {
            var options: [String: String] = [:]
            for pair in (row["reloptions"] ?? "").split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { options[kv[0]] = kv[1] }
            }
            let tuples: Double = try row.decode("reltuples")
            let dead: Double = try row.decode("dead")
            let modified: Double = try row.decode("modified")
            let vacThreshold: Double = try row.decode("vac_threshold")
            let vacScale: Double = try row.decode("vac_scale")
            let anThreshold: Double = try row.decode("an_threshold")
            let anScale: Double = try row.decode("an_scale")
            let vacuumTrigger = (options["autovacuum_vacuum_threshold"].flatMap(Double.init) ?? vacThreshold)
                + (options["autovacuum_vacuum_scale_factor"].flatMap(Double.init) ?? vacScale) * tuples
            let analyzeTrigger = (options["autovacuum_analyze_threshold"].flatMap(Double.init) ?? anThreshold)
                + (options["autovacuum_analyze_scale_factor"].flatMap(Double.init) ?? anScale) * tuples
            let autovacuumOn: Bool = try row.decode("autovacuum")
            let tableAutovacuum = options["autovacuum_enabled"].map { !["false", "off", "no", "0"].contains($0.lowercased()) } ?? true
            let disabled = !autovacuumOn || !tableAutovacuum
            let sinceVacuum = try row.decode("since_vacuum_s", as: Double?.self)
            let sinceAnalyze = try row.decode("since_analyze_s", as: Double?.self)
            let needsVacuum = dead >= Double(minRows) && dead > vacuumTrigger && (disabled || sinceVacuum.map { $0 > grace } ?? true)
            let needsAnalyze = modified >= Double(minRows) && modified > analyzeTrigger && (disabled || sinceAnalyze.map { $0 > grace } ?? true)
            guard needsVacuum || needsAnalyze else { continue }
            let table = "\(row["schemaname"] ?? "").\(row["relname"] ?? "")"
            let live: Double = try row.decode("live")
            let deadPercent = live + dead > 0 ? (dead / (live + dead) * 1000).rounded() / 10 : 0
            if first == nil {
                let action = needsVacuum ? "VACUUM" : "ANALYZE"
                let last = (needsVacuum ? sinceVacuum : sinceAnalyze).map { "last \(action.lowercased()) \(HealthFormat.duration($0)) ago" } ?? "never \(needsVacuum ? "vacuumed" : "analyzed")"
                first = "\(table) needs \(action): \(Int(needsVacuum ? dead : modified)) \(needsVacuum ? "dead" : "modified") rows "
                    + "(trigger \(Int(needsVacuum ? vacuumTrigger : analyzeTrigger))\(needsVacuum ? ", \(HealthFormat.percent(deadPercent)) dead" : "")), \(last)"
                    + (disabled ? ", autovacuum disabled \(tableAutovacuum ? "globally" : "for this table")" : "")
            }
            overdue.append(Detail([
                ("table", .string(table)), ("needs", .string([needsVacuum ? "vacuum" : nil, needsAnalyze ? "analyze" : nil].compactMap { $0 }.joined(separator: "+"))),
                ("dead_rows", .number(dead)), ("dead_percent", .number(deadPercent)), ("vacuum_trigger", .number(vacuumTrigger.rounded())),
                ("modified_since_analyze", .number(modified)), ("analyze_trigger", .number(analyzeTrigger.rounded())),
                ("seconds_since_vacuum", .number(sinceVacuum)), ("seconds_since_analyze", .number(sinceAnalyze)),
                ("autovacuum_enabled", .bool(!disabled)),
            ]))
        }
        guard let first else {
            return ProbeOutcome(status: .ok, value: 0, message: "no table is overdue for vacuum or analyze")
        }
        let status = context.thresholds.status(for: Double(overdue.count))
        let message = "\(overdue.count) table\(overdue.count == 1 ? "" : "s") overdue for vacuum/analyze; \(first)"
        let hint = status == .ok ? nil
            : "Run VACUUM (ANALYZE) on the listed tables; re-enable autovacuum where it is off (ALTER TABLE … RESET (autovacuum_enabled)); "
                + "if autovacuum runs but cannot keep up, look for long transactions and raise autovacuum_vacuum_cost_limit."
        return ProbeOutcome(status: status, value: Double(overdue.count), message: message, hint: hint, details: Array(overdue.prefix(10)))
    }
}
