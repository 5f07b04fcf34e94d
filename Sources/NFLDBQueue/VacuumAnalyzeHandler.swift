import Foundation
import NFLDBCore
import NFLDBPostgres

/// `db.vacuum_analyze`: `VACUUM (ANALYZE)` of one table named in the payload.
///
/// Payload: `{"table": "nfl.games"}` (schema-qualified, `public` when unqualified) or
/// `{"schema": "nfl", "table": "games"}` for names that contain a dot. Names are matched exactly as
/// stored in the catalog (no case folding, no SQL quoting in the payload); the statement quotes them.
/// The table is looked up first, with binds, so a missing table, a view or an index, or a table the
/// worker's role may not vacuum (PostgreSQL would only warn and skip it) is a clear permanent failure
/// (dead-lettered at once, never retried). A lock held by another session (`lock_timeout`, 55P03)
/// is retried per the queue's policy.
public enum VacuumAnalyzeHandler {
    public static let type = "db.vacuum_analyze"
    /// How long VACUUM waits for its lock before the attempt fails (and is retried later).
    public static let lockTimeout = "5s"

    public static func handle(_ context: TaskContext) throws -> String {
        let payload = try context.payload(allowing: ["table", "schema"])
        guard let table = payload["table"] as? String, !table.isEmpty else {
            throw TaskFailure("\(type) needs {\"table\": \"schema.name\"} (or {\"schema\": …, \"table\": …}); got \(context.task.payload.prefix(200))",
                              permanent: true)
        }
        let schema: String
        let name: String
        if let given = payload["schema"] {
            guard let text = given as? String, !text.isEmpty else { throw TaskFailure("\(type): \"schema\" must be a non-empty string", permanent: true) }
            (schema, name) = (text, table)
        } else if let dot = table.firstIndex(of: ".") {
            (schema, name) = (String(table[..<dot]), String(table[table.index(after: dot)...]))
        } else {
            (schema, name) = ("public", table)
        }
        guard !schema.isEmpty, !name.isEmpty, name.utf8.count < 64, schema.utf8.count < 64 else {
            throw TaskFailure("\(type): \"\(table.prefix(200))\" is not a valid table name (schema.name, each 1–63 bytes)", permanent: true)
        }
        let shown = PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(name)
        let connection = try context.database()
        let rows = try connection.query("""
            SELECT c.relkind::text AS kind, current_database() AS db, current_user AS runner,
                   (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                   OR pg_has_role(c.relowner, 'MEMBER')
                   OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'MEMBER') AS allowed
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(schema) AND c.relname = \(name)
            """).rows
        guard let row = rows.first else {
            let db = (try? connection.query("SELECT current_database() AS db").rows.first?["db"]) ?? nil
            throw TaskFailure("\(type): no table \(shown) in database \(db ?? "?"); nothing was vacuumed. "
                              + "Give an existing table as {\"table\": \"schema.name\"} (names are exact, case-sensitive), e.g. nfl.games.",
                              permanent: true)
        }
        let kind = row["kind"] ?? "?"
        guard ["r", "p", "m"].contains(kind) else {
            let what = ["v": "a view", "i": "an index", "S": "a sequence", "f": "a foreign table", "c": "a composite type", "I": "a partitioned index", "t": "a TOAST table"][kind] ?? "not a table (relkind \(kind))"
            throw TaskFailure("\(type): \(shown) is \(what); only tables and materialized views can be vacuumed", permanent: true)
        }
        guard row["allowed"] == "t" else {
            throw TaskFailure("\(type): role \(row["runner"] ?? "?") may not vacuum \(shown) (PostgreSQL would skip it with a warning): "
                              + "only its owner, the database owner or a superuser can. Run the worker as the table owner.", permanent: true)
        }
        let started = ContinuousClock.now
        try connection.execute("SELECT set_config('lock_timeout', \(lockTimeout), false)")
        defer { _ = try? connection.execute("RESET lock_timeout") }
        do {
            try connection.execute("VACUUM (ANALYZE) \(qualified: schema, name)")
        } catch let error as PostgresError where error.sqlState == "42P01" {
            throw TaskFailure("\(type): table \(shown) was dropped before VACUUM ran", permanent: true)
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw TaskFailure("\(type): \(shown) is locked by another session (waited lock_timeout \(lockTimeout)); the task will be retried")
        }
        let ms = (ContinuousClock.now - started).milliseconds
        let result: [String: Any] = ["schema": schema, "table": name, "ms": ms]
        return String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self)
    }
}
