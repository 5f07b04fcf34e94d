import Foundation

extension PostgresConnection {
    /// Other sessions holding locks on user relations: pid, user, application, state, age, relations, query.
    public func describeLockHolders() throws -> String? {
        let rows = try query("""
            SELECT l.pid, coalesce(a.usename::text, '') AS usr, coalesce(a.application_name, '') AS app, coalesce(a.state, '') AS state,
                   coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0) AS age_s, left(coalesce(a.query, ''), 160) AS query,
                   string_agg(DISTINCT format('%I.%I %s', n.nspname, c.relname, l.mode), ', ') AS relations
            FROM pg_locks l
            JOIN pg_stat_activity a ON a.pid = l.pid
            JOIN pg_class c ON c.oid = l.relation
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY age_s DESC LIMIT 3
            """).rows
        guard !rows.isEmpty else { return nil }
        return try rows.map { row in
            "pid \(try row.decode("pid", as: Int.self)) (\(row["usr"] ?? "")/\(row["app"] ?? ""), \(row["state"] ?? ""), transaction open \(row["age_s"] ?? "?")s) holds \(row["relations"] ?? ""): \(row["query"] ?? "")"
        }.joined(separator: " | ")
    }
}
