import Foundation
import NFLDBPostgres

/// How close each ascending, non-cycling sequence is to the largest value its owning column can
/// hold (`smallint`/`integer` columns fed by `bigint` sequences are the classic outage), or to the
/// sequence's own maximum when it is smaller or has no owner. Serial and identity columns both count.
///
/// A role without SELECT/USAGE on a sequence cannot read its position; such sequences are counted
/// and reported, and the check is UNKNOWN rather than a silent OK when nothing worse is found.
public struct SequencesProbe: Probe {
    public init() {}
    public let name = "sequences"
    public let summary = "sequences nearest to the maximum of their owning column's type (%)"
    public let unit = HealthUnit.percent
    public let defaultThresholds = Thresholds(warning: 75, critical: 90)
    public let roles: Set<ServerRole> = [.primary]

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            WITH seqs AS (
              SELECT c.oid, n.nspname, c.relname, s.seqmax::numeric AS seqmax, s.seqstart::numeric AS seqstart,
                     has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
                     a.atttypid::regtype::text AS column_type,
                     CASE a.atttypid WHEN 'int2'::regtype THEN 32767::numeric WHEN 'int4'::regtype THEN 2147483647::numeric
                                     WHEN 'int8'::regtype THEN 9223372036854775807::numeric END AS column_max,
                     d.refobjid::regclass::text AS owner_table, a.attname AS owner_column
              FROM pg_sequence s
              JOIN pg_class c ON c.oid = s.seqrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
              LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE NOT s.seqcycle AND s.seqincrement > 0 AND NOT pg_is_other_temp_schema(n.oid)
            )
            SELECT nspname, relname, readable, column_type, owner_table, owner_column,
                   least(seqmax, coalesce(column_max, seqmax))::float8 AS limit_value,
                   CASE WHEN readable THEN pg_sequence_last_value(oid) END::float8 AS last_value
            FROM seqs
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
