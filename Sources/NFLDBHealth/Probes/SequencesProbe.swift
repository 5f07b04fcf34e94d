import Foundation
import NFLDBPostgres

/// How close each ascending, non-cycling sequence is to the largest value the narrowest column it
/// feeds can hold (`smallint`/`integer` columns fed by `bigint` sequences are the classic outage), or
/// to the sequence's own maximum when that is smaller or it feeds no integer column. A column is fed
/// when it owns the sequence (serial, `OWNED BY`, identity) or when its DEFAULT calls `nextval` on
/// it (found through `pg_attrdef`/`pg_depend`, so an unowned sequence shared by several tables is
/// judged by its narrowest user). Domains over integer types count as their base type.
///
/// A role without SELECT/USAGE on a sequence cannot read its position; such sequences are counted
/// and reported, and the check is UNKNOWN rather than a silent OK when nothing worse is found.
public struct SequencesProbe: Probe {
    public init() {}
    public let name = "sequences"
    public let summary = "sequences nearest to the maximum of the narrowest column they feed (%)"
    public let unit = HealthUnit.percent
    public let defaultThresholds = Thresholds(warning: 75, critical: 90)
    public let roles: Set<ServerRole> = [.primary]

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            WITH seqs AS (
              SELECT c.oid, n.nspname, c.relname, s.seqmax::numeric AS seqmax,
                     has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable
              FROM pg_sequence s
              JOIN pg_class c ON c.oid = s.seqrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT s.seqcycle AND s.seqincrement > 0 AND NOT pg_is_other_temp_schema(n.oid)
            ),
            fed AS (
              -- the column owning the sequence (serial, OWNED BY, identity) ...
              SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
              FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
              UNION
              -- ... and every column whose DEFAULT calls nextval() on it, owned or not
              SELECT d.refobjid, ad.adrelid, ad.adnum
              FROM pg_depend d
              JOIN pg_attrdef ad ON ad.oid = d.objid
              WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
            ),
            columns AS (
              SELECT f.seq, a.attrelid::regclass::text AS table_name, a.attname, b.base::regtype::text AS column_type,
                     CASE b.base WHEN 'int2'::regtype THEN 32767::numeric WHEN 'int4'::regtype THEN 2147483647::numeric
                                 WHEN 'int8'::regtype THEN 9223372036854775807::numeric END AS column_max
              FROM fed f
              JOIN pg_attribute a ON a.attrelid = f.rel AND a.attnum = f.attnum AND NOT a.attisdropped
              JOIN pg_type t ON t.oid = a.atttypid
              CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS base) b
            ),
            narrowest AS (
              SELECT DISTINCT ON (seq) seq, table_name, attname, column_type, column_max,
                     count(*) OVER (PARTITION BY seq) AS fed_columns
              FROM columns
              WHERE column_max IS NOT NULL
              ORDER BY seq, column_max, table_name, attname
            )
            SELECT s.nspname, s.relname, s.readable, w.column_type, w.table_name AS owner_table, w.attname AS owner_column,
                   coalesce(w.fed_columns, 0)::int AS fed_columns,
                   least(s.seqmax, coalesce(w.column_max, s.seqmax))::float8 AS limit_value,
                   CASE WHEN s.readable THEN pg_sequence_last_value(s.oid) END::float8 AS last_value
            FROM seqs s
            LEFT JOIN narrowest w ON w.seq = s.oid
            """)
        var readable: [(name: String, percent: Double, detail: Detail)] = []
        var unreadable: [String] = []
        for row in rows {
            let name = "\(row["nspname"] ?? "").\(row["relname"] ?? "")"
            guard try row.decode("readable", as: Bool.self) else {
                unreadable.append(name)
                continue
            }
            guard let last = try row.decode("last_value", as: Double?.self) else { continue }
            let limit: Double = try row.decode("limit_value")
            let percent = limit > 0 ? (last / limit * 10000).rounded() / 100 : 0
            readable.append((name, percent, Detail([
                ("sequence", .string(name)), ("last_value", .number(last)), ("limit", .number(limit)), ("percent", .number(percent)),
                ("column", .text(row["owner_table"].map { "\($0).\(row["owner_column"] ?? "")" })), ("column_type", .text(row["column_type"])),
                ("fed_columns", .int(try row.decode("fed_columns", as: Int64.self))),
            ])))
        }
        readable.sort { $0.percent > $1.percent }
        var details = readable.prefix(5).map(\.detail)
        if !unreadable.isEmpty {
            details.append(Detail([
                ("kind", .string("unreadable")), ("count", .int(Int64(unreadable.count))),
                ("examples", .string(unreadable.prefix(5).joined(separator: ", "))),
            ]))
        }
        let unreadableText = unreadable.isEmpty ? "" : "; \(unreadable.count) sequence\(unreadable.count == 1 ? "" : "s") unreadable by \(context.server.user)"
        let grantHint = "GRANT SELECT ON ALL SEQUENCES IN SCHEMA <schema> TO \(context.server.user); (and ALTER DEFAULT PRIVILEGES … GRANT SELECT ON SEQUENCES) "
            + "so the check can read their positions; pg_monitor alone cannot."
        guard let worst = readable.first else {
            if unreadable.isEmpty {
                return ProbeOutcome(status: .ok, value: 0, message: "no ascending, non-cycling sequence in use")
            }
            return .unknown("cannot read the position of \(unreadable.count) sequence\(unreadable.count == 1 ? "" : "s") (no SELECT or USAGE privilege)",
                            hint: grantHint, details: details)
        }
        var status = context.thresholds.status(for: worst.percent)
        let column = worst.detail["column"].flatMap { $0 == .null ? nil : " (feeds \($0), \(worst.detail["column_type"]?.description ?? ""))" } ?? ""
        var message = "\(worst.name) is at \(HealthFormat.percent(worst.percent)) of its limit\(column)\(unreadableText)"
        var hint: String? = status == .ok ? nil
            : "Widen the column before it runs out: ALTER TABLE … ALTER COLUMN … TYPE bigint (rewrites the table; plan it), and ALTER SEQUENCE … AS bigint."
        if status == .ok && !unreadable.isEmpty {
            status = .unknown
            message = "readable sequences are fine (worst \(worst.name) at \(HealthFormat.percent(worst.percent))), but \(unreadable.count) cannot be read"
            hint = grantHint
        }
        return ProbeOutcome(status: status, value: worst.percent, message: message, hint: hint, details: details)
    }
}
