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
        DO $nfldb$ BEGIN  -- ALTER only when needed: it takes an ACCESS EXCLUSIVE lock even with IF NOT EXISTS
          IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'nfldb.backup_manifests'::regclass AND attname = 'checksums' AND NOT attisdropped) THEN
            ALTER TABLE nfldb.backup_manifests ADD COLUMN checksums jsonb;
          END IF;
          IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'nfldb.backup_manifests'::regclass AND attname = 'writes' AND NOT attisdropped) THEN
            ALTER TABLE nfldb.backup_manifests ADD COLUMN writes jsonb;
          END IF;
        END $nfldb$;
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

    /// Serializes concurrent installs: `backup run`, `verify` and `restore` all call ``install(_:)``,
    /// and two first runs at once raced on the catalog (`CREATE … IF NOT EXISTS` is not safe
    /// against a concurrent create: "duplicate key value violates unique constraint
    /// pg_type_typname_nsp_index").
    public static let lockKey = AdvisoryLockKey("nfldb.backup.catalog")

    public static func install(_ connection: PostgresConnection) throws {
        // One simple-query script is one transaction: the transaction-level lock covers the DDL.
        try connection.runScript(unsafeSQL: "SELECT pg_advisory_xact_lock(\(lockKey.value));\n" + ddl)
    }
}

/// The row counts of the managed tables in one snapshot, plus the schema version.
public struct Manifest: Codable, Sendable, Equatable {
    public var token: String
    public var takenAt: Date
    public var schemaVersion: Int64?
    /// `schema.table` → row count.
    public var counts: [String: Int64]
    /// Reference table `schema.table` → content checksum (``ManagedTables/checksum(_:_:_:)``); nil in
    /// manifests written before checksums existed.
    public var checksums: [String: String]?
    /// `schema.table` → rows inserted and deleted while the backup ran (write counters read before
    /// the manifest's snapshot and after the backup's end); nil for a manifest without them, and
    /// for a table whose counters went backwards (statistics reset) — then no bound is known.
    public var writes: [String: WriteCounts?]?

    public init(token: String, takenAt: Date, schemaVersion: Int64?, counts: [String: Int64], checksums: [String: String]? = nil,
                writes: [String: WriteCounts?]? = nil) {
        self.token = token
        self.takenAt = takenAt
        self.schemaVersion = schemaVersion
        self.counts = counts
        self.checksums = checksums
        self.writes = writes
    }

    /// The counts a restore of this backup may hold for `table`: exactly the manifest's when nothing
    /// was written during the backup, else the manifest's minus the deletes to plus the inserts.
    /// nil when the table's counters were reset (no bound).
    public func allowedRange(_ table: String) -> ClosedRange<Int64>? {
        let expected = counts[table] ?? 0
        guard let writes else { return expected...expected }
        guard let entry = writes[table] else { return expected...expected }
        guard let counts = entry else { return nil }
        return max(0, expected - counts.deleted)...(expected + counts.inserted)
    }
}

/// `n_tup_ins`/`n_tup_del` differences over a backup (summed over a partitioned table's partitions).
public struct WriteCounts: Codable, Sendable, Equatable {
    public var inserted: Int64
    public var deleted: Int64
    public init(inserted: Int64, deleted: Int64) {
        self.inserted = inserted
        self.deleted = deleted
    }

    /// Cumulative counters of each table now (partitioned tables: the sum over their leaves).
    /// Statistics are flushed by each backend up to about a second after its commit; reading them
    /// later only widens the range, never narrows it.
    static func read(_ names: [String], _ connection: PostgresConnection) throws -> [String: WriteCounts] {
        var out: [String: WriteCounts] = [:]
        for name in names {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let row = try connection.query("""
                WITH r AS (SELECT format('%I.%I', \(parts[0])::text, \(parts[1])::text)::regclass AS relid)
                SELECT coalesce(sum(s.n_tup_ins), 0)::bigint AS ins, coalesce(sum(s.n_tup_del), 0)::bigint AS del
                FROM pg_stat_all_tables s, r
                WHERE s.relid = r.relid OR s.relid IN (SELECT t.relid FROM pg_partition_tree(r.relid) t WHERE t.isleaf)
                """).rows.first
            out[name] = WriteCounts(inserted: try row?.decode("ins", as: Int64.self) ?? 0, deleted: try row?.decode("del", as: Int64.self) ?? 0)
        }
        return out
    }
}

/// Which tables a manifest counts: every table in the given schemas plus explicit `schema.table` names.
public struct ManagedTables: Sendable, Equatable {
    public var schemas: [String]
    public var tables: [String]
    /// Tables whose whole content is checksummed (small reference data such as `nfl.teams`).
    public var reference: [String]
    public init(schemas: [String] = ["nfl"], tables: [String] = [], reference: [String] = []) {
        self.schemas = schemas
        self.tables = tables
        self.reference = reference
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

    /// Content checksums of the `reference` tables that exist; the caller provides the snapshot.
    public func checksums(_ connection: PostgresConnection) throws -> [String: String] {
        var out: [String: String] = [:]
        for name in try Self.existing(reference, connection) {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            out[name] = try Self.checksum(parts[0], parts[1], connection)
        }
        return out
    }

    /// The `schema.table` names among `names` that exist (a name without a schema never does).
    public static func existing(_ names: [String], _ connection: PostgresConnection) throws -> [String] {
        try names.filter { name in
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return false }
            let regclass = PostgresIdentifier.quote(parts[0]) + "." + PostgresIdentifier.quote(parts[1])
            return try connection.query("SELECT to_regclass(\(regclass)) IS NOT NULL").scalar(Bool.self)
        }
    }

    /// `<rows> rows md5 <hex>`: md5 over the md5s of every row's text form, sorted bytewise. The text
    /// form is pinned (UTC, ISO dates, shortest exact floats, hex bytea, C money, pg_catalog
    /// search_path for reg* columns) so the primary and a restored copy agree.
    /// Runs inside the caller's transaction (SET LOCAL).
    public static func checksum(_ schema: String, _ table: String, _ connection: PostgresConnection) throws -> String {
        try connection.runScript(unsafeSQL: """
            SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres';
            SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C';
            SET LOCAL search_path = pg_catalog
            """)
        // One md5 per row, then one over those, so the aggregate stays 33 bytes a row (string_agg tops out at 1 GB).
        let row = try connection.query("""
            SELECT count(*)::bigint AS n, md5(coalesce(string_agg(md5(r), '' ORDER BY r COLLATE "C"), '')) AS h
            FROM (SELECT t::text AS r FROM \(qualified: schema, table) t) s
            """).rows[0]
        return "\(row["n"] ?? "0") rows md5 \(row["h"] ?? "")"
    }

    /// The highest applied migration version, or nil without a ledger.
    public static func schemaVersion(_ connection: PostgresConnection) throws -> Int64? {
        guard try connection.query("SELECT to_regclass('nfldb.schema_migrations') IS NOT NULL").scalar(Bool.self) else { return nil }
        return try connection.query("SELECT max(version) FROM nfldb.schema_migrations WHERE state = 'applied'").scalar(Int64?.self)
    }
}
