import Foundation
import NFLDBCore
import NFLDBPostgres

/// The state of one version as the database records it.
public struct LedgerRow: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Codable {
        /// Applied completely.
        case applied
        /// A non-transactional migration started and has not finished (or its runner died).
        case running
        /// A non-transactional migration stopped half-way on an error.
        case failed
    }

    public let version: Int64
    public let name: String
    public let state: State
    public let kind: String
    public let transactional: Bool
    public let upChecksum: String
    public let downChecksum: String?
    public let downSQL: String?
    public let statementsTotal: Int?
    public let statementsDone: Int?
    public let failedStatementLine: Int?
    public let error: String?
    public let appliedAt: Date
    public let appliedBy: String
    public let clientHost: String?
    public let durationMilliseconds: Int64?
    public let nfldbVersion: String?
    public let gitCommit: String?
    public let upPath: String?

    public var isBaseline: Bool { kind == "baseline" }
    public var isDirty: Bool { state != .applied }
    public var id: String { Migration.id(version: version, name: name) }
}

/// `nfldb.schema_migrations` (one row per applied version, with the down SQL as applied) and
/// `nfldb.migration_events` (append-only: apply, rollback, fail, baseline, resolve, repair).
public enum MigrationLedger {
    public static let schema = "nfldb"
    /// Every runner of `migrate` on a database takes this session-level advisory lock.
    public static let lockKey = AdvisoryLockKey("nfldb.schema_migrations")

    static let ddl = """
        CREATE SCHEMA IF NOT EXISTS nfldb;
        COMMENT ON SCHEMA nfldb IS 'nfldb bookkeeping: migration history, backup and health records';
        CREATE TABLE IF NOT EXISTS nfldb.schema_migrations (
            version bigint PRIMARY KEY,
            name text NOT NULL,
            state text NOT NULL CHECK (state IN ('applied', 'running', 'failed')),
            kind text NOT NULL DEFAULT 'migration' CHECK (kind IN ('migration', 'baseline')),
            transactional boolean NOT NULL,
            up_checksum text NOT NULL,
            down_checksum text,
            up_sql text,
            down_sql text,
            up_path text,
            statements_total integer,
            statements_done integer,
            failed_statement_line integer,
            error text,
            applied_at timestamptz NOT NULL DEFAULT now(),
            applied_by text NOT NULL DEFAULT session_user,
            client_host text,
            duration_ms bigint,
            nfldb_version text,
            git_commit text
        );
        COMMENT ON TABLE nfldb.schema_migrations IS 'one row per applied (or dirty) migration version; down_sql is the SQL as applied';
        CREATE TABLE IF NOT EXISTS nfldb.migration_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            version bigint,
            name text,
            event text NOT NULL CHECK (event IN ('apply', 'rollback', 'fail', 'baseline', 'resolve-applied', 'resolve-rolled-back', 'repair', 'start')),
            actor text NOT NULL DEFAULT session_user,
            client_host text,
            correlation_id text,
            nfldb_version text,
            detail jsonb
        );
        COMMENT ON TABLE nfldb.migration_events IS 'append-only log of every migration command';
        """

    /// Creates the ledger if it does not exist. Call with the migration lock held.
    static func ensure(_ connection: PostgresConnection) throws {
        let exists = try privileged {
            try connection.query("SELECT to_regclass('nfldb.migration_events') IS NOT NULL AND to_regclass('nfldb.schema_migrations') IS NOT NULL").scalar(Bool.self)
        }
        if !exists {
            try privileged { try connection.withTransaction { try connection.runScript(unsafeSQL: ddl) } }
        }
    }

    /// Whether the ledger exists (read-only commands do not create it).
    static func exists(_ connection: PostgresConnection) throws -> Bool {
        try privileged { try connection.query("SELECT to_regclass('nfldb.schema_migrations') IS NOT NULL").scalar(Bool.self) }
    }

    /// A permission error on the ledger (schema `nfldb`) gets the hint of what to run as.
    static func privileged<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as PostgresError where error.sqlState == SQLState.insufficientPrivilege && error.hint == nil {
            error.hint = "The role nfldb connected as may not use the migration ledger (schema nfldb): run migrate as the role that owns the "
                + "schema and ran earlier migrations (nfl_owner in roles/platform.yaml, e.g. --dsn 'user=nfl_owner …') or as a superuser."
            throw error
        }
    }

    /// The highest applied version (what `status` calls the current version), or nil.
    static func currentVersion(_ connection: PostgresConnection) throws -> Int64? {
        guard try exists(connection) else { return nil }
        return try connection.query("SELECT max(version) FROM nfldb.schema_migrations WHERE state = 'applied'").scalar(Int64?.self)
    }

    static func rows(_ connection: PostgresConnection) throws -> [LedgerRow] {
        guard try exists(connection) else { return [] }
        return try connection.query("""
            SELECT version, name, state, kind, transactional, up_checksum, down_checksum, down_sql, up_path,
                   statements_total, statements_done, failed_statement_line, error, applied_at, applied_by,
                   client_host, duration_ms, nfldb_version, git_commit
            FROM nfldb.schema_migrations ORDER BY version
            """).rows.map { row in
            LedgerRow(
                version: try row.decode("version"), name: try row.decode("name"),
                state: LedgerRow.State(rawValue: try row.decode("state", as: String.self)) ?? .failed,
                kind: try row.decode("kind"), transactional: try row.decode("transactional"),
                upChecksum: try row.decode("up_checksum"), downChecksum: try row.decode("down_checksum"),
                downSQL: try row.decode("down_sql"), statementsTotal: try row.decode("statements_total"),
                statementsDone: try row.decode("statements_done"), failedStatementLine: try row.decode("failed_statement_line"),
                error: try row.decode("error"), appliedAt: try row.decode("applied_at"), appliedBy: try row.decode("applied_by"),
                clientHost: try row.decode("client_host"), durationMilliseconds: try row.decode("duration_ms"),
                nfldbVersion: try row.decode("nfldb_version"), gitCommit: try row.decode("git_commit"), upPath: try row.decode("up_path"))
        }
    }

    /// One row for `nfldb.migration_events`: which migration, and what to keep in `detail` (nil values become JSON null).
    struct Event {
        let version: Int64
        let name: String
        var detail: [String: String?] = [:]
    }

    /// The one way an event is written: `event` for every entry, with who and where from `context`.
    ///
    /// With `after`, the events are written in the same statement as that change to
    /// `nfldb.schema_migrations` (an INSERT, UPDATE or DELETE without RETURNING): only for the
    /// versions it actually touched, so a history change and its event land together or not at all.
    static func eventQuery(_ event: String, _ entries: [Event], context: MigrationContext, after change: PostgresQuery? = nil) -> PostgresQuery {
        let details = entries.map { entry -> String in
            let object = entry.detail.mapValues { $0.map { $0 as Any } ?? NSNull() }
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
        let prefix: PostgresQuery = change.map { "WITH m AS (\(fragment: $0) RETURNING version)\n" } ?? ""
        return """
            \(fragment: prefix)INSERT INTO nfldb.migration_events (version, name, event, client_host, correlation_id, nfldb_version, detail)
            SELECT e.version, e.name, \(event)::text, \(context.clientHost)::text, \(context.correlationID)::text, \(context.nfldbVersion)::text, e.detail
            FROM unnest(\(entries.map(\.version))::bigint[], \(entries.map(\.name))::text[], \(details)::jsonb[])
                 WITH ORDINALITY AS e(version, name, detail, ord)
            \(unsafeRaw: change == nil ? "" : "WHERE e.version IN (SELECT version FROM m)\n")ORDER BY e.ord
            """
    }

    /// ``eventQuery(_:_:context:after:)`` for one migration.
    static func eventQuery(
        _ event: String, version: Int64, name: String, context: MigrationContext, detail: [String: String?] = [:], after change: PostgresQuery? = nil
    ) -> PostgresQuery {
        eventQuery(event, [Event(version: version, name: name, detail: detail)], context: context, after: change)
    }
}

/// Who and where: recorded with every history row and event.
public struct MigrationContext: Sendable {
    public var nfldbVersion: String
    public var correlationID: String?
    public var clientHost: String
    public var gitCommit: String?

    public init(nfldbVersion: String, correlationID: String?, clientHost: String = ProcessInfo.processInfo.hostName, gitCommit: String? = nil) {
        self.nfldbVersion = nfldbVersion
        self.correlationID = correlationID
        self.clientHost = clientHost
        self.gitCommit = gitCommit
    }

    /// The commit of the migrations directory: `GITHUB_SHA`/`CI_COMMIT_SHA` or `git rev-parse HEAD`.
    public static func gitCommit(for directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        for name in ["NFLDB_GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"] {
            if let value = environment[name], !value.isEmpty { return value }
        }
        guard let git = try? ProcessRunner.resolveExecutable("git"),
              let result = try? ProcessRunner().run(git, ["-C", directory, "rev-parse", "HEAD"], timeout: .seconds(5)),
              result.succeeded
        else { return nil }
        let sha = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        return sha.isEmpty ? nil : sha
    }
}
