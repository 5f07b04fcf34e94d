import Foundation
import NFLDBCore
import NFLDBPostgres

/// Statistics-based estimate of wasted space in tables and btree indexes above a size floor.
///
/// For each relation the expected size is computed from `reltuples`, the average row width in
/// `pg_stats` (`avg_width`, `null_frac`), tuple and page overheads and the fill factor; the
/// difference to `relpages` is the estimated waste. Only relations of at least
/// `health.checks.bloat.min_size` bytes are examined, so thousands of small tables cost nothing,
/// and sizes come from `relpages` (no relation locks). A relation whose columns have no statistics
/// visible to this role is "not applicable", not "0% bloat": with pgstattuple installed its
/// `pgstattuple_approx()` is used instead; otherwise the check says so.
public struct BloatProbe: Probe {
    public init() {}
    public let name = "bloat"
    public let summary = "estimated wasted bytes in tables and btree indexes (statistics-based; relations above bloat.min_size)"
    public let unit = HealthUnit.bytes
    public let defaultThresholds = Thresholds(warning: 1_073_741_824, critical: 5_368_709_120)
    public let roles: Set<ServerRole> = [.primary]
    public var defaultStatementTimeout: Duration? { .seconds(30) }

    /// One relation's numbers as read from the catalogs.
    public struct Relation: Sendable {
        public var kind: String
        public var schema: String
        public var name: String
        public var table: String
        public var pages: Double
        public var tuples: Double
        public var fillfactor: Double
        /// Sum of `(1 - null_frac) * avg_width` over columns (table) or key columns (index).
        public var dataWidth: Double
        public var columns: Int
        public var columnsWithStats: Int
        public var hasNulls: Bool

        public init(kind: String, schema: String, name: String, table: String, pages: Double, tuples: Double, fillfactor: Double,
                    dataWidth: Double, columns: Int, columnsWithStats: Int, hasNulls: Bool) {
            self.kind = kind
            self.schema = schema
            self.name = name
            self.table = table
            self.pages = pages
            self.tuples = tuples
            self.fillfactor = fillfactor
            self.dataWidth = dataWidth
            self.columns = columns
            self.columnsWithStats = columnsWithStats
            self.hasNulls = hasNulls
        }

        public var applicable: Bool { tuples >= 0 && columns > 0 && columnsWithStats == columns }
    }

    /// Estimated pages a relation needs: heap tuples have a 23-byte header (plus null bitmap),
    /// index tuples an 8-byte header; both are MAXALIGNed and need a 4-byte line pointer; heap
    /// pages have a 24-byte header, btree pages also 16 bytes of special space and a meta page.
    public static func expectedPages(_ relation: Relation, blockSize: Int) -> Double {
        func align(_ value: Double) -> Double { (value / 8).rounded(.up) * 8 }
        let bitmap = relation.hasNulls ? (Double(relation.columns) / 8).rounded(.up) : 0
        let isIndex = relation.kind == "index"
        let header = isIndex ? 8 + bitmap : 23 + bitmap
        let tuple = align(align(header) + relation.dataWidth) + 4
        let usable = (Double(blockSize) - 24 - (isIndex ? 16 : 0)) * relation.fillfactor / 100
        let perPage = max(1, (usable / tuple).rounded(.down))
        return (max(0, relation.tuples) / perPage).rounded(.up) + (isIndex ? 1 : 0)
    }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let blockSize = context.server.blockSize
        let minSize = context.settings.number(.healthBloatMinSize) ?? 0
        let minPercent = context.settings.number(.healthBloatMinPercent) ?? 0
        // relpages is an int4: a min_size beyond every possible relation (1e19, 1e50) means "none", not a trap or 22003.
        let minPages = Int(min((minSize / Double(blockSize)).rounded(.up), Double(Int32.max)))
        let rows = try context.rows("""
            WITH rels AS (
              SELECT c.oid, c.relname, n.nspname, c.relpages, c.reltuples, c.relkind, c.reloptions, c.oid AS table_oid
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm') AND c.relpages >= \(minPages)
                AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_toast%'
            ), idx AS (
              SELECT ic.oid, ic.relname, n.nspname, ic.relpages, ic.reltuples, ic.reloptions, i.indrelid AS table_oid, i.indkey
              FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
              JOIN pg_namespace n ON n.oid = ic.relnamespace
              WHERE ic.relpages >= \(minPages) AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_toast%'
            )
            SELECT 'table' AS kind, r.nspname AS schema, r.relname AS name, r.relname AS tbl, r.relpages::float8 AS pages,
                   r.reltuples::float8 AS tuples,
                   coalesce((SELECT substring(o FROM 'fillfactor=(\\d+)')::int FROM unnest(r.reloptions) o WHERE o LIKE 'fillfactor=%'), 100) AS fillfactor,
                   coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float8 AS data_width,
                   count(a.attnum) AS cols, count(s.attname) AS stat_cols, coalesce(bool_or(s.null_frac > 0), false) AS has_nulls
            FROM rels r
            JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_stats s ON s.schemaname = r.nspname AND s.tablename = r.relname AND s.attname = a.attname AND NOT s.inherited
            GROUP BY r.nspname, r.relname, r.relpages, r.reltuples, r.reloptions
            UNION ALL
            SELECT 'index', x.nspname, x.relname, t.relname, x.relpages::float8, x.reltuples::float8,
                   coalesce((SELECT substring(o FROM 'fillfactor=(\\d+)')::int FROM unnest(x.reloptions) o WHERE o LIKE 'fillfactor=%'), 90),
                   coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float8,
                   count(*), count(s.attname), coalesce(bool_or(s.null_frac > 0), false)
            FROM idx x
            JOIN pg_class t ON t.oid = x.table_oid
            JOIN pg_namespace tn ON tn.oid = t.relnamespace
            CROSS JOIN LATERAL unnest(x.indkey) AS k(attnum)
            LEFT JOIN pg_attribute a ON a.attrelid = x.table_oid AND a.attnum = k.attnum AND k.attnum > 0
            LEFT JOIN pg_stats s ON s.schemaname = tn.nspname AND s.tablename = t.relname AND s.attname = a.attname AND NOT s.inherited
            GROUP BY x.nspname, x.relname, t.relname, x.relpages, x.reltuples, x.reloptions
            """)
        var estimates: [(relation: Relation, waste: Double, percent: Double, method: String)] = []
        var notApplicable: [Relation] = []
        for row in rows {
            let relation = Relation(
                kind: row["kind"] ?? "table", schema: row["schema"] ?? "", name: row["name"] ?? "", table: row["tbl"] ?? "",
                pages: try row.decode("pages"), tuples: try row.decode("tuples"), fillfactor: try row.decode("fillfactor"),
                dataWidth: try row.decode("data_width"), columns: try row.decode("cols"), columnsWithStats: try row.decode("stat_cols"),
                hasNulls: try row.decode("has_nulls"))
            let bytes = relation.pages * Double(blockSize)
            if relation.applicable {
                let expected = Self.expectedPages(relation, blockSize: blockSize)
                let waste = max(0, relation.pages - expected) * Double(blockSize)
                estimates.append((relation, waste, bytes > 0 ? waste / bytes * 100 : 0, "statistics"))
            } else if relation.kind == "table", let schema = context.server.pgstattupleSchema {
                let approx = try context.row("""
                    SELECT (approx_free_space + dead_tuple_len)::float8 AS waste
                    FROM \(identifier: schema).pgstattuple_approx(\(relation.schema + "." + relation.name)::regclass)
                    """, "pgstattuple_approx")
                let waste: Double = try approx.decode("waste")
                estimates.append((relation, waste, bytes > 0 ? waste / bytes * 100 : 0, "pgstattuple_approx"))
            } else {
                notApplicable.append(relation)
            }
        }
        let counted = estimates.filter { $0.percent >= minPercent }.sorted { $0.waste > $1.waste }
        var details: [Detail] = counted.prefix(5).map { estimate in
            Detail([
                ("kind", .string(estimate.relation.kind)), ("schema", .string(estimate.relation.schema)),
                ("name", .string(estimate.relation.name)), ("table", .string(estimate.relation.table)),
                ("size_bytes", .number(estimate.relation.pages * Double(blockSize))), ("wasted_bytes", .number(estimate.waste.rounded())),
                ("wasted_percent", .number((estimate.percent * 10).rounded() / 10)), ("method", .string(estimate.method)),
            ])
        }
        for relation in notApplicable.prefix(5) {
            details.append(Detail([
                ("kind", .string(relation.kind)), ("schema", .string(relation.schema)), ("name", .string(relation.name)),
                ("size_bytes", .number(relation.pages * Double(blockSize))),
                ("estimate", .string(relation.tuples < 0 ? "not applicable: never analyzed" : "not applicable: no statistics visible to \(context.server.user)")),
            ]))
        }
        let floor = HealthFormat.bytes(minSize)
        let naText = notApplicable.isEmpty ? "" : "; \(notApplicable.count) relation\(notApplicable.count == 1 ? "" : "s") not estimated (no statistics visible)"
        let naHint = "Statistics-based estimates need statistics this role can read: ANALYZE the tables and GRANT SELECT on them "
            + "(or pg_read_all_data) to \(context.server.user), or CREATE EXTENSION pgstattuple to use pgstattuple_approx()."
        guard let worst = counted.first else {
            if !notApplicable.isEmpty && estimates.isEmpty {
                return .unknown(
                    "cannot estimate bloat for \(notApplicable.count) relation\(notApplicable.count == 1 ? "" : "s") over \(floor): no statistics visible",
                    hint: naHint, details: details)
            }
            return ProbeOutcome(
                status: .ok, value: 0,
                message: "\(estimates.count) relation\(estimates.count == 1 ? "" : "s") over \(floor) examined, none with \(HealthFormat.percent(minPercent)) or more estimated waste\(naText)",
                hint: notApplicable.isEmpty ? nil : naHint, details: details)
        }
        let status = context.thresholds.status(for: worst.waste)
        let message = "\(worst.relation.kind) \(worst.relation.schema).\(worst.relation.name) wastes an estimated \(HealthFormat.bytes(worst.waste)) "
            + "(\(HealthFormat.percent((worst.percent * 10).rounded() / 10)) of \(HealthFormat.bytes(worst.relation.pages * Double(blockSize)))); "
            + "\(counted.count) relation\(counted.count == 1 ? "" : "s") over \(HealthFormat.percent(minPercent))\(naText)"
        let hint: String? = status == .ok ? (notApplicable.isEmpty ? nil : naHint)
            : "Reclaim the space without long locks: pg_repack, or REINDEX INDEX CONCURRENTLY for indexes; VACUUM FULL takes an ACCESS EXCLUSIVE lock. "
                + "Then check why autovacuum falls behind (see the vacuum and long_transactions checks)."
        let metrics = counted.prefix(5).map {
            HealthMetric("bloat_wasted_bytes", help: "Estimated wasted bytes of the most bloated relations.",
                         labels: ["relation": "\($0.relation.schema).\($0.relation.name)", "kind": $0.relation.kind], value: $0.waste.rounded())
        }
        return ProbeOutcome(status: status, value: worst.waste.rounded(), message: message, hint: hint, details: details, metrics: Array(metrics))
    }
}
