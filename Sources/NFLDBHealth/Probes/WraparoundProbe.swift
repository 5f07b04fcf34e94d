import Foundation
import NFLDBPostgres

/// Transaction-ID and multixact age per database and for the oldest tables, as a percentage of
/// the 2^31 wraparound horizon, with the share of `autovacuum_freeze_max_age` reported too.
///
/// Only relkinds with storage are examined (`r`, `m`, and their TOAST tables): partitioned parents,
/// views and foreign tables have `relfrozenxid = 0`, for which `age()` returns 2147483647.
public struct WraparoundProbe: Probe {
    public init() {}
    public let name = "wraparound"
    public let summary = "XID/multixact age per database and oldest tables, % of the 2^31 wraparound limit"
    public let unit = HealthUnit.percent
    public let defaultThresholds = Thresholds(warning: 50, critical: 75)

    static let horizon = 2_147_483_648.0

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let databases = try context.rows("""
            SELECT datname, age(datfrozenxid)::float8 AS xid_age, mxid_age(datminmxid)::float8 AS mxid_age,
                   current_setting('autovacuum_freeze_max_age')::float8 AS freeze_max_age,
                   current_setting('autovacuum_multixact_freeze_max_age')::float8 AS mxid_freeze_max_age
            FROM pg_database
            ORDER BY greatest(age(datfrozenxid), mxid_age(datminmxid)) DESC
            """)
        let tables = try context.rows("""
            SELECT n.nspname, c.relname, c.relkind::text AS relkind,
                   greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0))::float8 AS xid_age,
                   mxid_age(c.relminmxid)::float8 AS mxid_age
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
            WHERE c.relkind IN ('r', 'm')
            ORDER BY 4 DESC
            LIMIT 5
            """)
        var worst = (percent: 0.0, text: "no database")
        var details: [Detail] = []
        for row in databases {
            let xid: Double = try row.decode("xid_age")
            let mxid: Double = try row.decode("mxid_age")
            let freezeMax: Double = try row.decode("freeze_max_age")
            let percent = max(xid, mxid) / Self.horizon * 100
            let name = row["datname"] ?? "?"
            if percent > worst.percent || details.isEmpty {
                worst = (percent, "database \(name): XID age \(Int(xid)), \(HealthFormat.percent((xid / Self.horizon * 1000).rounded() / 10)) of wraparound, "
                    + "\(HealthFormat.percent((xid / freezeMax * 1000).rounded() / 10)) of autovacuum_freeze_max_age")
            }
            details.append(Detail([
                ("kind", .string("database")), ("name", .string(name)), ("xid_age", .number(xid)), ("mxid_age", .number(mxid)),
                ("percent_of_wraparound", .number((percent * 100).rounded() / 100)),
                ("percent_of_freeze_max_age", .number((xid / freezeMax * 1000).rounded() / 10)),
            ]))
        }
        for row in tables {
            let xid: Double = try row.decode("xid_age")
            let mxid: Double = try row.decode("mxid_age")
            details.append(Detail([
                ("kind", .string("table")), ("name", .string("\(row["nspname"] ?? "").\(row["relname"] ?? "")")),
                ("relkind", .text(row["relkind"])), ("xid_age", .number(xid)), ("mxid_age", .number(mxid)),
                ("percent_of_wraparound", .number((max(xid, mxid) / Self.horizon * 10000).rounded() / 100)),
            ]))
        }
        let percent = (worst.percent * 100).rounded() / 100
        let status = context.thresholds.status(for: percent)
        var message = worst.text
        if let oldest = tables.first {
            message += "; oldest table in \(context.server.database): \(oldest["nspname"] ?? "").\(oldest["relname"] ?? "") (XID age \(oldest["xid_age"] ?? "?"))"
        }
        let hint = status == .ok ? nil
            : "Run VACUUM (FREEZE) on the oldest tables listed (or vacuumdb --all --freeze) now; find what blocks freezing: long transactions, "
                + "prepared transactions, stale replication slots (see long_transactions and replication)."
        let metrics = databases.compactMap { row -> HealthMetric? in
            guard let xid = try? row.decode("xid_age", as: Double.self) else { return nil }
            return HealthMetric("wraparound_xid_age", help: "age(datfrozenxid) per database.", labels: ["database": row["datname"] ?? ""], value: xid)
        }
        return ProbeOutcome(status: status, value: percent, message: message, hint: hint, details: details, metrics: metrics)
    }
}
