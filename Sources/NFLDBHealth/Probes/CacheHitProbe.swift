import Foundation
import NFLDBCore
import NFLDBPostgres

/// Shared-buffer hit ratio per database (`blks_hit / (blks_hit + blks_read)`), lower is worse.
///
/// The `pg_stat_database` row for shared catalogs (`datid = 0`, `datname` NULL) is ignored.
/// Counters are cumulative since `stats_reset`; databases with fewer than
/// `cache_hit.min_blocks` block accesses are not judged.
public struct CacheHitProbe: Probe {
    public init() {}
    public let name = "cache_hit"
    public let summary = "lowest shared-buffer cache hit ratio of a database with enough traffic (%, lower is worse)"
    public let unit = HealthUnit.percent
    public let defaultThresholds = Thresholds(warning: 90, critical: nil, direction: .lowerIsWorse)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let minBlocks = Double(context.settings.integer(.healthCacheMinBlocks) ?? 0)
        let rows = try context.rows("""
            SELECT datname, blks_hit::float8 AS hit, blks_read::float8 AS read, stats_reset::text AS stats_reset
            FROM pg_stat_database
            WHERE datname IS NOT NULL
            ORDER BY datname
            """)
        var worst: (name: String, ratio: Double)?
        var details: [Detail] = []
        for row in rows {
            let hit: Double = try row.decode("hit")
            let read: Double = try row.decode("read")
            let name = row["datname"] ?? "?"
            let ratio = hit + read > 0 ? (hit / (hit + read) * 10000).rounded() / 100 : 100
            let judged = hit + read >= minBlocks
            if judged, worst.map({ ratio < $0.ratio }) ?? true { worst = (name, ratio) }
            details.append(Detail([
                ("database", .string(name)), ("hit_percent", .number(ratio)), ("blocks_hit", .number(hit)), ("blocks_read", .number(read)),
                ("judged", .bool(judged)), ("stats_reset", .text(row["stats_reset"])),
            ]))
        }
        guard let worst else {
            return ProbeOutcome(status: .ok, message: "no database has \(Int(minBlocks)) block accesses yet to judge", details: details)
        }
        let status = context.thresholds.status(for: worst.ratio)
        let hint = status == .ok ? nil
            : "Reads miss shared_buffers: check for sequential scans of big tables (missing indexes) and whether shared_buffers fits the working set."
        let metrics = details.compactMap { detail -> HealthMetric? in
            guard case .string(let name)? = detail["database"], case .double(let ratio)? = detail["hit_percent"] else { return nil }
            return HealthMetric("cache_hit_percent", help: "Shared-buffer hit ratio since stats_reset.", labels: ["database": name], value: ratio)
        }
        return ProbeOutcome(
            status: status, value: worst.ratio,
            message: "lowest cache hit ratio: \(HealthFormat.percent(worst.ratio)) in database \(worst.name) (cumulative since stats_reset)",
            hint: hint, details: details, metrics: metrics)
    }
}
