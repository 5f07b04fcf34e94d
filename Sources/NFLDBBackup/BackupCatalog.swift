import Foundation
import NFLDBCore
import NFLDBPostgres

/// nfldb's backup records in the primary database (schema `nfldb`).
///
/// `backup_runs(finished_at, status)` and `backup_verifications(finished_at, status)` are what
/// `nfldb health`'s `backups` probe reads; `status` is `ok` for success.
public enum BackupCatalog {
    public static let ddl = """
        CREATE SCHEMA IF NOT EXISTS nfldb;
        CREATE TABLE IF NOT EXISTS nfldb.backup_canaries (
            token text PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            note text
        );
        CREATE TABLE IF NOT EXISTS nfldb.backup_manifests (
            token text PRIMARY KEY REFERENCES nfldb.backup_canaries(token),
            taken_at timestamptz NOT NULL,
            schema_version bigint,
            counts jsonb NOT NULL
        );
        CREATE TABLE IF NOT EXISTS nfldb.backup_runs (
            id bigserial PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            status text NOT NULL,
            stanza text NOT NULL,
            backup_type text NOT NULL,
            label text,
            token text,
            duration_ms bigint,
            size_bytes bigint,
            delta_bytes bigint,
            repo_size_bytes bigint,
            repo_delta_bytes bigint,
            error text
        );
        CREATE INDEX IF NOT EXISTS backup_runs_label ON nfldb.backup_runs (label);
        CREATE TABLE IF NOT EXISTS nfldb.backup_verifications (
            id bigserial PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            status text NOT NULL,
            stanza text NOT NULL,
            label text,
            target_time timestamptz,
            recovery_seconds double precision,
            failed_checks text[] NOT NULL DEFAULT '{}',
            receipt jsonb NOT NULL
        );
        """

    public static func install(_ connection: PostgresConnection) throws {
        try connection.simpleQuery(ddl)
    }
}

/// The row counts of the managed tables in one snapshot, plus the schema version.
public struct Manifest: Codable, Sendable, Equatable {
    public var token: String
    public var takenAt: Date
    public var schemaVersion: Int64?
    /// `schema.table` → row count.
    public var counts: [String: Int64]
}

/// Which tables a manifest counts: every table in the given schemas plus explicit `schema.table` names.
public struct ManagedTables: Sendable, Equatable {
    public var schemas: [String]
    public var tables: [String]
    public init(schemas: [String] = ["nfl"], tables: [String] = []) {
        self.schemas = schemas
        self.tables = tables
    }

    /// Resolves to existing ordinary/partitioned tables, sorted.
    public func resolve(_ connection: PostgresConnection) throws -> [String] {
        let rows = try connection.query("""
            SELECT format('%s.%s', n.nspname, c.relname) AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND (n.nspname = ANY(\(schemas)) OR format('%s.%s', n.nspname, c.relname) = ANY(\(tables)))
            ORDER BY 1
            """).rows
        return rows.compactMap { $0["name"] }
    }

    /// Counts every managed table; the caller provides the snapshot (a REPEATABLE READ transaction).
    public static func count(_ names: [String], _ connection: PostgresConnection) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for name in names {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            counts[name] = try connection.query("SELECT count(*) FROM \(qualified: parts[0], parts[1])").scalar(Int64.self)
        }
        return counts
    }

    /// The highest applied migration version, or nil without a ledger.
    public static func schemaVersion(_ connection: PostgresConnection) throws -> Int64? {
        guard try connection.query("SELECT to_regclass('nfldb.schema_migrations') IS NOT NULL").scalar(Bool.self) else { return nil }
        return try connection.query("SELECT max(version) FROM nfldb.schema_migrations WHERE state = 'applied'").scalar(Int64?.self)
    }
}
