import Foundation
import NFLDBCore
import NFLDBPostgres

/// Client backends against the slots ordinary roles can use, by state, plus sessions idle in a
/// transaction for too long.
///
/// Only client backends count: walsenders, autovacuum and background workers have their own
/// pools. The usable slots are `max_connections - superuser_reserved_connections -
/// reserved_connections` (PG 16), which is when ordinary logins start failing.
public struct ConnectionsProbe: Probe {
    public init() {}
    public let name = "connections"
    public let summary = "client connections vs usable slots (max_connections minus reserved); sessions idle in transaction"
    public let unit = HealthUnit.percent
    public let defaultThresholds = Thresholds(warning: 80, critical: 90)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let row = try context.row("""
            SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS client_backends,
                   count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'active') AS active,
                   count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'idle') AS idle,
                   count(*) FILTER (WHERE backend_type = 'client backend'
                                    AND state IN ('idle in transaction', 'idle in transaction (aborted)')) AS idle_in_transaction,
                   count(*) FILTER (WHERE backend_type = 'client backend' AND wait_event_type = 'Lock') AS waiting_on_lock,
                   count(*) FILTER (WHERE backend_type = 'walsender') AS walsenders,
                   current_setting('max_connections')::int AS max_connections,
                   current_setting('superuser_reserved_connections')::int AS superuser_reserved,
                   coalesce(current_setting('reserved_connections', true), '0')::int AS reserved
            FROM pg_stat_activity
            """, "connections")
        let clients: Int = try row.decode("client_backends")
        let maxConnections: Int = try row.decode("max_connections")
        let superuserReserved: Int = try row.decode("superuser_reserved")
        let reserved: Int = try row.decode("reserved")
        let usable = max(1, maxConnections - superuserReserved - reserved)
        let percent = (Double(clients) / Double(usable) * 1000).rounded() / 10
        let active: Int = try row.decode("active")
        let idle: Int = try row.decode("idle")
        let idleInTransaction: Int = try row.decode("idle_in_transaction")
        let waiting: Int = try row.decode("waiting_on_lock")
        var status = context.thresholds.status(for: percent)
        var message = "\(clients) of \(usable) usable connections in use (\(HealthFormat.percent(percent))): "
            + "\(active) active, \(idle) idle, \(idleInTransaction) idle in transaction, \(waiting) waiting on a lock"
        if superuserReserved + reserved > 0 {
            message += "; max_connections \(maxConnections) minus \(superuserReserved + reserved) reserved"
        }
        var hint: String?
        if status != .ok {
            hint = "Find who holds the connections (SELECT usename, application_name, state, count(*) FROM pg_stat_activity GROUP BY 1,2,3); "
                + "put a pooler (pgBouncer) in front of the application or raise max_connections (restart)."
        }

        let idleWarning = context.settings.seconds(.healthIdleWarning)
        let idleCritical = context.settings.seconds(.healthIdleCritical)
        let sessions = try context.rows("""
            SELECT pid, usename, datname, application_name, host(client_addr) AS client, state,
                   extract(epoch FROM now() - state_change)::float8 AS idle_s,
                   extract(epoch FROM now() - xact_start)::float8 AS xact_s,
                   left(query, 200) AS query
            FROM pg_stat_activity
            WHERE backend_type = 'client backend'
              AND state IN ('idle in transaction', 'idle in transaction (aborted)')
              AND now() - state_change >= make_interval(secs => \(idleWarning))
            ORDER BY state_change
            LIMIT 10
            """)
        var details: [Detail] = []
        for session in sessions {
            let idleSeconds = try session.decode("idle_s", as: Double?.self) ?? 0
            details.append(Detail([
                ("kind", .string("idle_in_transaction")),
                ("pid", .integer(try session.decode("pid", as: Int?.self))),
                ("user", .text(session["usename"])), ("database", .text(session["datname"])),
                ("application", .text(session["application_name"])), ("client", .text(session["client"])),
                ("state", .text(session["state"])), ("idle_seconds", .number(idleSeconds)),
                ("transaction_seconds", .number(try session.decode("xact_s", as: Double?.self))),
                ("last_query", .text(HealthFormat.clip(session["query"]))),
            ]))
        }
        if let oldest = sessions.first {
            let idleSeconds = try oldest.decode("idle_s", as: Double?.self) ?? 0
            let idleStatus: HealthStatus = idleSeconds >= idleCritical ? .critical : .warning
            status = status.worse(idleStatus)
            let pid = oldest["pid"] ?? "?"
            message += "; \(sessions.count) session\(sessions.count == 1 ? "" : "s") idle in transaction over \(HealthFormat.duration(idleWarning)): "
                + "oldest pid \(pid) (user \(oldest["usename"] ?? "?"), application '\(oldest["application_name"] ?? "")') idle for \(HealthFormat.duration(idleSeconds))"
            let idleHint = "A session idle in transaction holds locks and the xmin horizon; fix the application, or end it with "
                + "SELECT pg_terminate_backend(\(pid)); consider idle_in_transaction_session_timeout."
            hint = hint.map { $0 + " " + idleHint } ?? idleHint
        }
        let metrics = [
            HealthMetric("connections_client_backends", help: "Client backends by state.", labels: ["state": "active"], value: Double(active)),
            HealthMetric("connections_client_backends", help: "Client backends by state.", labels: ["state": "idle"], value: Double(idle)),
            HealthMetric("connections_client_backends", help: "Client backends by state.", labels: ["state": "idle_in_transaction"], value: Double(idleInTransaction)),
            HealthMetric("connections_usable", help: "max_connections minus reserved slots.", value: Double(usable)),
        ]
        return ProbeOutcome(status: status, value: percent, message: message, hint: hint, details: details, metrics: metrics)
    }
}
