import Foundation
import NFLDBPostgres

/// The oldest open transaction of a client backend (and prepared transactions), in seconds.
public struct LongTransactionsProbe: Probe {
    public init() {}
    public let name = "long_transactions"
    public let summary = "age of the oldest open transaction of a client session or prepared transaction"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 900, critical: 3600)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let sessions = try context.rows("""
            SELECT pid, usename, datname, application_name, state, backend_xid IS NOT NULL AS has_xid,
                   extract(epoch FROM now() - xact_start)::float8 AS xact_s, left(query, 200) AS query
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
            ORDER BY xact_start
            LIMIT 5
            """)
        let prepared = try context.rows("""
            SELECT gid, owner, database, extract(epoch FROM now() - prepared)::float8 AS age_s
            FROM pg_prepared_xacts ORDER BY prepared LIMIT 5
            """)
        let warning = context.thresholds.warning ?? context.thresholds.critical ?? 0
        var details: [Detail] = []
        var oldest: (age: Double, text: String, pid: String?)?
        for session in sessions {
            let age = try session.decode("xact_s", as: Double?.self) ?? 0
            if oldest.map({ age > $0.age }) ?? true {
                oldest = (age, "pid \(session["pid"] ?? "?") (user \(session["usename"] ?? "?"), application '\(session["application_name"] ?? "")', \(session["state"] ?? "?")) "
                    + "has had a transaction open for \(HealthFormat.duration(age))", session["pid"])
            }
            guard age >= warning else { continue }
            details.append(Detail([
                ("kind", .string("session")), ("pid", .integer(try session.decode("pid", as: Int?.self))),
                ("user", .text(session["usename"])), ("database", .text(session["datname"])),
                ("application", .text(session["application_name"])), ("state", .text(session["state"])),
                ("transaction_seconds", .number(age)), ("has_xid", .bool(try session.decode("has_xid", as: Bool.self))),
                ("query", .text(HealthFormat.clip(session["query"]))),
            ]))
        }
        for transaction in prepared {
            let age = try transaction.decode("age_s", as: Double?.self) ?? 0
            if oldest.map({ age > $0.age }) ?? true {
                oldest = (age, "prepared transaction '\(transaction["gid"] ?? "?")' (owner \(transaction["owner"] ?? "?")) is \(HealthFormat.duration(age)) old", nil)
            }
            guard age >= warning else { continue }
            details.append(Detail([
                ("kind", .string("prepared_transaction")), ("gid", .text(transaction["gid"])), ("owner", .text(transaction["owner"])),
                ("database", .text(transaction["database"])), ("transaction_seconds", .number(age)),
            ]))
        }
        guard let oldest else {
            return ProbeOutcome(status: .ok, value: 0, message: "no open transactions")
        }
        let status = context.thresholds.status(for: oldest.age)
        var hint: String?
        if status != .ok {
            hint = oldest.pid.map {
                "Long transactions hold locks and stop VACUUM from removing dead rows; ask the owner to commit, or end it with SELECT pg_terminate_backend(\($0));"
            } ?? "Commit or roll back the prepared transaction (COMMIT PREPARED / ROLLBACK PREPARED 'gid')."
        }
        return ProbeOutcome(status: status, value: (oldest.age * 10).rounded() / 10, message: oldest.text, hint: hint, details: details)
    }
}

/// The longest-running statement of a client backend. Walsenders, autovacuum and background
/// workers are not client backends and are never counted; running autovacuum workers are listed
/// separately for information.
public struct LongQueriesProbe: Probe {
    public init() {}
    public let name = "long_queries"
    public let summary = "longest running statement of a client session (walsenders and autovacuum excluded)"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 300, critical: 1800)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT pid, backend_type, usename, datname, application_name, wait_event_type, wait_event,
                   extract(epoch FROM now() - coalesce(query_start, xact_start, backend_start))::float8 AS running_s,
                   left(query, 200) AS query
            FROM pg_stat_activity
            WHERE pid <> pg_backend_pid()
              AND ((backend_type = 'client backend' AND state IN ('active', 'fastpath function call'))
                   OR backend_type = 'autovacuum worker')
            ORDER BY coalesce(query_start, xact_start, backend_start)
            LIMIT 20
            """)
        let warning = context.thresholds.warning ?? context.thresholds.critical ?? 0
        var details: [Detail] = []
        var longest: PostgresRow?
        var longestSeconds = 0.0
        for row in rows {
            let seconds = try row.decode("running_s", as: Double?.self) ?? 0
            let isClient = row["backend_type"] == "client backend"
            if isClient, longest == nil {
                longest = row
                longestSeconds = seconds
            }
            guard seconds >= warning || !isClient else { continue }
            details.append(Detail([
                ("kind", .string(isClient ? "query" : "autovacuum (not counted)")),
                ("pid", .integer(try row.decode("pid", as: Int?.self))), ("user", .text(row["usename"])),
                ("database", .text(row["datname"])), ("application", .text(row["application_name"])),
                ("running_seconds", .number(seconds)),
                ("waiting_on", .text(row["wait_event_type"].map { "\($0)/\(row["wait_event"] ?? "")" })),
                ("query", .text(HealthFormat.clip(row["query"]))),
            ]))
        }
        guard let longest else {
            return ProbeOutcome(status: .ok, value: 0, message: "no client statement is running", details: details)
        }
        let status = context.thresholds.status(for: longestSeconds)
        let pid = longest["pid"] ?? "?"
        let message = "longest running statement: pid \(pid) (user \(longest["usename"] ?? "?"), application '\(longest["application_name"] ?? "")') "
            + "for \(HealthFormat.duration(longestSeconds)): \(HealthFormat.clip(longest["query"], 80))"
        let hint = status == .ok ? nil
            : "Check the plan of that statement (EXPLAIN); cancel it with SELECT pg_cancel_backend(\(pid)); and consider a statement_timeout for that role."
        return ProbeOutcome(status: status, value: (longestSeconds * 10).rounded() / 10, message: message, hint: hint, details: details)
    }
}

/// Sessions waiting for a lock, how long, and who blocks them (`pg_blocking_pids`).
public struct BlockingLocksProbe: Probe {
    public init() {}
    public let name = "blocking_locks"
    public let summary = "longest lock wait, with the blocking pid, its state and query"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 30, critical: 300)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        // pg_locks.waitstart exists from PG 14; before that the statement start is the best guess.
        let waitStart = context.server.versionNumber >= 140000
            ? "coalesce((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted), w.query_start)"
            : "w.query_start"
        let rows = try context.rows("""
            SELECT w.pid AS blocked_pid, w.usename AS blocked_user, w.application_name AS blocked_app,
                   extract(epoch FROM now() - \(unsafeRaw: waitStart))::float8 AS wait_s,
                   left(w.query, 200) AS blocked_query,
                   bp.pid AS blocking_pid, b.usename AS blocking_user, b.application_name AS blocking_app,
                   b.state AS blocking_state, extract(epoch FROM now() - b.xact_start)::float8 AS blocking_xact_s,
                   left(b.query, 200) AS blocking_query
            FROM pg_stat_activity w
            CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
            LEFT JOIN pg_stat_activity b ON b.pid = bp.pid
            WHERE w.wait_event_type = 'Lock'
            ORDER BY wait_s DESC
            LIMIT 10
            """)
        guard let worst = rows.first else {
            return ProbeOutcome(status: .ok, value: 0, message: "no session is waiting for a lock")
        }
        var details: [Detail] = []
        for row in rows {
            details.append(Detail([
                ("blocked_pid", .integer(try row.decode("blocked_pid", as: Int?.self))), ("blocked_user", .text(row["blocked_user"])),
                ("blocked_application", .text(row["blocked_app"])),
                ("wait_seconds", .number(try row.decode("wait_s", as: Double?.self))),
                ("blocked_query", .text(HealthFormat.clip(row["blocked_query"]))),
                ("blocking_pid", .integer(try row.decode("blocking_pid", as: Int?.self))),
                ("blocking_user", .text(row["blocking_user"])), ("blocking_application", .text(row["blocking_app"])),
                ("blocking_state", .text(row["blocking_state"] ?? (row["blocking_pid"] == "0" ? "prepared transaction" : nil))),
                ("blocking_transaction_seconds", .number(try row.decode("blocking_xact_s", as: Double?.self))),
                ("blocking_query", .text(HealthFormat.clip(row["blocking_query"]))),
            ]))
        }
        let waited = try worst.decode("wait_s", as: Double?.self) ?? 0
        let blocked = Set(rows.compactMap { $0["blocked_pid"] }).count
        let blocker = worst["blocking_pid"] ?? "?"
        let blockerText = blocker == "0" ? "a prepared transaction"
            : "pid \(blocker) (user \(worst["blocking_user"] ?? "?"), \(worst["blocking_state"] ?? "?"): \(HealthFormat.clip(worst["blocking_query"], 60)))"
        let message = "\(blocked) session\(blocked == 1 ? "" : "s") waiting for a lock; pid \(worst["blocked_pid"] ?? "?") has waited "
            + "\(HealthFormat.duration(waited)) for \(blockerText)"
        let status = context.thresholds.status(for: waited)
        let hint = status == .ok ? nil
            : (blocker == "0" ? "Find the prepared transaction in pg_prepared_xacts and COMMIT PREPARED or ROLLBACK PREPARED it."
                : "Ask the owner of pid \(blocker) to finish, or end it with SELECT pg_terminate_backend(\(blocker)); run DDL with a lock_timeout.")
        return ProbeOutcome(status: status, value: (waited * 10).rounded() / 10, message: message, hint: hint, details: details)
    }
}
