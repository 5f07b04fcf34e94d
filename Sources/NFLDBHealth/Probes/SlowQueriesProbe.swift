import Foundation
import NFLDBCore
import NFLDBPostgres

/// The slowest statements by mean execution time in `pg_stat_statements` (PG 13+ column names
/// `mean_exec_time`/`total_exec_time`; `mean_time`/`total_time` before), for this database.
///
/// `CREATE EXTENSION pg_stat_statements` succeeds without the library preloaded, but every query
/// on the view then fails; so the preload is checked first and both gaps are UNKNOWN with the fix.
public struct SlowQueriesProbe: Probe {
    public init() {}
    public let name = "slow_queries"
    public let summary = "slowest statements by mean time in pg_stat_statements (calls >= slow_queries.min_calls), in ms"
    public let unit = HealthUnit.milliseconds
    public let defaultThresholds = Thresholds(warning: 1000, critical: 10000)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let server = context.server
        if !server.sharedPreloadLibrariesKnown, server.pgStatStatementsSchema == nil {
            return .unknown(
                "the pg_stat_statements extension is not created in database \(server.database) (and \(server.user) may not read shared_preload_libraries)",
                hint: "Run CREATE EXTENSION pg_stat_statements; in \(server.database) (the library must be in shared_preload_libraries), "
                    + "and run nfldb health as a member of pg_monitor: GRANT pg_monitor TO \(server.user);")
        }
        guard !server.sharedPreloadLibrariesKnown || server.sharedPreloadLibraries.contains("pg_stat_statements") else {
            let created = server.pgStatStatementsSchema != nil
                ? " The extension exists in database \(server.database), but it cannot collect anything without the preload." : ""
            return .unknown(
                "pg_stat_statements is not loaded: it is missing from shared_preload_libraries (currently '\(server.sharedPreloadLibraries.joined(separator: ","))')",
                hint: "Add pg_stat_statements to shared_preload_libraries in postgresql.conf and restart PostgreSQL, then run "
                    + "CREATE EXTENSION pg_stat_statements; in \(server.database).\(created)")
        }
        guard let schema = server.pgStatStatementsSchema else {
            return .unknown(
                "the pg_stat_statements extension is not created in database \(server.database) (the library is preloaded)",
                hint: "Run CREATE EXTENSION pg_stat_statements; in \(server.database) as a superuser or the database owner.")
        }
        let minCalls = context.settings.integer(.healthSlowMinCalls) ?? 0
        let modern = server.versionNumber >= 130000
        let mean = modern ? "mean_exec_time" : "mean_time"
        let total = modern ? "total_exec_time" : "total_time"
        let maxTime = modern ? "max_exec_time" : "max_time"
        let rows = try context.rows("""
            SELECT s.queryid::text AS queryid, s.calls, s.\(unsafeRaw: mean)::float8 AS mean_ms, s.\(unsafeRaw: total)::float8 AS total_ms,
                   s.\(unsafeRaw: maxTime)::float8 AS max_ms, s.rows, r.rolname,
                   left(regexp_replace(s.query, '\\s+', ' ', 'g'), 200) AS query
            FROM \(identifier: schema).pg_stat_statements s
            LEFT JOIN pg_roles r ON r.oid = s.userid
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls >= \(minCalls)
            ORDER BY s.\(unsafeRaw: mean) DESC
            LIMIT 5
            """)
        var details: [Detail] = rows.map { row in
            Detail([
                ("queryid", .text(row["queryid"])), ("calls", .integer((try? row.decode("calls", as: Int64?.self)) ?? nil)),
                ("mean_ms", .number(try? row.decode("mean_ms", as: Double.self))), ("total_ms", .number(try? row.decode("total_ms", as: Double.self))),
                ("max_ms", .number(try? row.decode("max_ms", as: Double.self))), ("user", .text(row["rolname"])),
                ("query", .text(HealthFormat.clip(row["query"], 200))),
            ])
        }
        if server.versionNumber >= 140000 {
            if let info = try? context.row("SELECT dealloc, stats_reset::text AS stats_reset FROM \(identifier: schema).pg_stat_statements_info", "pg_stat_statements_info") {
                details.append(Detail([("kind", .string("pg_stat_statements_info")), ("dealloc", .text(info["dealloc"])), ("stats_reset", .text(info["stats_reset"]))]))
            }
        }
        guard let slowest = rows.first else {
            return ProbeOutcome(status: .ok, value: 0, message: "no statement with at least \(minCalls) calls recorded in \(server.database)", details: details)
        }
        let meanMs: Double = try slowest.decode("mean_ms")
        let status = context.thresholds.status(for: meanMs)
        let message = "slowest statement averages \(HealthFormat.milliseconds(meanMs)) over \(slowest["calls"] ?? "?") calls "
            + "(queryid \(slowest["queryid"] ?? "?")): \(HealthFormat.clip(slowest["query"], 80))"
        let hint = status == .ok ? nil
            : "EXPLAIN (ANALYZE, BUFFERS) the statement and look for missing indexes or bad estimates; the figures are cumulative since "
                + "pg_stat_statements was last reset (SELECT pg_stat_statements_reset() after fixing)."
        return ProbeOutcome(status: status, value: (meanMs * 10).rounded() / 10, message: message, hint: hint, details: details)
    }
}
