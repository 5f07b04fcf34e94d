import Foundation
import Logging
import NFLDBPostgres

/// Which side of replication a server is on (`pg_is_in_recovery()`).
public enum ServerRole: String, Sendable, Hashable, Codable {
    case primary
    case standby
}

/// A named health check: one or a few catalog queries on the shared connection, judged against
/// thresholds from `health.checks.<name>.warning|critical`.
///
/// Contract for implementations:
/// * Read only: the session is `default_transaction_read_only`, `search_path = pg_catalog`.
/// * Bounded: every query runs under `statement_timeout` and `lock_timeout`; prefer `relpages` and
///   statistics views over functions that take relation locks (`pg_relation_size`).
/// * Honest: when the probe cannot judge (missing privilege, extension, statistics), return
///   ``ProbeOutcome/unknown(_:hint:details:)`` with the reason and the fix, never OK. A thrown
///   error becomes UNKNOWN too, with the server's message.
/// * Runs as a `pg_monitor` member: no superuser-only function.
///
/// New probes (ETL freshness, queue depth) conform to this protocol and are added to
/// ``ProbeRegistry/all``.
public protocol Probe: Sendable {
    /// The check name used in `--check`, config keys, outputs and alert dedup keys.
    var name: String { get }
    /// One line for `nfldb health --list`.
    var summary: String { get }
    var unit: HealthUnit { get }
    /// Defaults for `health.checks.<name>.warning|critical` (nil: that level is never reached).
    var defaultThresholds: Thresholds { get }
    /// Where the check is meaningful; elsewhere it is reported as skipped (OK).
    var roles: Set<ServerRole> { get }
    /// A longer default `statement_timeout` for expensive probes (nil: `health.statement_timeout`).
    var defaultStatementTimeout: Duration? { get }
    /// Whether the check runs without `health.checks.<name>.enabled: true` (posture checks: no).
    var enabledByDefault: Bool { get }

    func run(_ context: ProbeContext) throws -> ProbeOutcome

    /// For a probe that does not read PostgreSQL (the Redis `queue` check): its outcome without a
    /// database connection, used when the primary target is unreachable. nil (the default): "not run".
    func runWithoutDatabase(_ settings: CheckSettings, logger: Logger) -> ProbeOutcome?
}

extension Probe {
    public func runWithoutDatabase(_ settings: CheckSettings, logger: Logger) -> ProbeOutcome? { nil }
    public var roles: Set<ServerRole> { [.primary, .standby] }
    public var defaultStatementTimeout: Duration? { nil }
    public var enabledByDefault: Bool { true }
}

/// Facts about the server, read once per target before the probes run.
public struct ServerInfo: Sendable {
    public var versionNumber: Int
    public var version: String
    public var role: ServerRole
    public var database: String
    public var user: String
    public var isSuperuser: Bool
    public var blockSize: Int
    public var sharedPreloadLibraries: [String]
    /// False when the role may not read shared_preload_libraries (not in pg_read_all_settings/pg_monitor).
    public var sharedPreloadLibrariesKnown: Bool
    /// Schema of the pg_stat_statements extension in this database, if created.
    public var pgStatStatementsSchema: String?
    /// Schema of the pgstattuple extension in this database, if created.
    public var pgstattupleSchema: String?
    public var backendPID: Int32

    public init(
        versionNumber: Int, version: String, role: ServerRole, database: String, user: String, isSuperuser: Bool,
        blockSize: Int, sharedPreloadLibraries: [String], pgStatStatementsSchema: String?, pgstattupleSchema: String?,
        backendPID: Int32, sharedPreloadLibrariesKnown: Bool = true
    ) {
        self.sharedPreloadLibrariesKnown = sharedPreloadLibrariesKnown
        self.versionNumber = versionNumber
        self.version = version
        self.role = role
        self.database = database
        self.user = user
        self.isSuperuser = isSuperuser
        self.blockSize = blockSize
        self.sharedPreloadLibraries = sharedPreloadLibraries
        self.pgStatStatementsSchema = pgStatStatementsSchema
        self.pgstattupleSchema = pgstattupleSchema
        self.backendPID = backendPID
    }

    static func read(_ connection: PostgresConnection) throws -> ServerInfo {
        let row = try connection.query("""
            SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version,
                   pg_is_in_recovery() AS in_recovery, current_database() AS db, current_user AS usr,
                   coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS superuser,
                   current_setting('block_size')::int AS block_size,
                   -- pg_settings hides this superuser-only setting from roles outside pg_read_all_settings
                   -- (current_setting would fail the whole run for them): NULL then, "not known".
                   (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries') AS preload,
                   (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'pg_stat_statements') AS pgss_schema,
                   (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'pgstattuple') AS pgstattuple_schema,
                   pg_backend_pid() AS pid
            """).singleRow("server information")
        let preloadVisible = row["preload"] != nil
        let preload = (row["preload"] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }.filter { !$0.isEmpty }
        return ServerInfo(
            versionNumber: try row.decode("version_num"), version: row["version"] ?? "",
            role: try row.decode("in_recovery", as: Bool.self) ? .standby : .primary, database: row["db"] ?? "",
            user: row["usr"] ?? "", isSuperuser: try row.decode("superuser"), blockSize: try row.decode("block_size"),
            sharedPreloadLibraries: preload, pgStatStatementsSchema: row["pgss_schema"], pgstattupleSchema: row["pgstattuple_schema"],
            backendPID: try row.decode("pid"), sharedPreloadLibrariesKnown: preloadVisible)
    }
}

/// What a probe runs with: the connection, the server facts and its own settings.
///
/// Not `Sendable`: it holds the target's single ``PostgresConnection``.
public final class ProbeContext {
    public let connection: PostgresConnection
    public let server: ServerInfo
    public let settings: CheckSettings
    public let logger: Logger

    init(connection: PostgresConnection, server: ServerInfo, settings: CheckSettings, logger: Logger) {
        self.connection = connection
        self.server = server
        self.settings = settings
        self.logger = logger
    }

    public var thresholds: Thresholds { settings.thresholds }

    /// Runs one read-only statement and returns its rows.
    public func rows(_ query: PostgresQuery) throws -> [PostgresRow] {
        try connection.query(query).rows
    }

    /// Runs a statement that returns exactly one row.
    public func row(_ query: PostgresQuery, _ what: String) throws -> PostgresRow {
        try connection.query(query).singleRow(what)
    }
}

/// The checks nfldb knows, in output order.
public enum ProbeRegistry {
    public static let all: [any Probe] = [
        ConnectionsProbe(), LongTransactionsProbe(), LongQueriesProbe(), BlockingLocksProbe(), ReplicationProbe(),
        ArchivingProbe(), WraparoundProbe(), VacuumProbe(), BloatProbe(), SequencesProbe(), InvalidIndexesProbe(),
        SlowQueriesProbe(), CacheHitProbe(), DatabaseSizeProbe(), BackupsProbe(), TLSCertificateProbe(), TLSConnectionsProbe(), ETLFreshnessProbe(),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func probe(named name: String) -> (any Probe)? { all.first { $0.name == name } }
}
