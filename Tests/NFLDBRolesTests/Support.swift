import Foundation
import Logging
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

@testable import NFLDBRoles

/// One test's world: a fresh database, and roles named with a prefix unique to the test (roles are
/// cluster-wide and tests run in parallel). Only roles with that prefix are dropped afterwards.
struct RoleWorld {
    let db: TestDatabase
    let prefix: String
    /// `password_env` variable → password, for the shipped spec's login roles.
    var environment: [String: String]
    var spec: RoleSpec
    let logger: Logger
    let logs: LogCapture

    static let passwordVariables = [
        "NFLDB_OWNER_PASSWORD", "NFLDB_ANALYST_PASSWORD", "NFLDB_LOADER_PASSWORD", "NFLDB_DBA_PASSWORD", "NFLDB_MONITOR_PASSWORD",
    ]

    /// Runs `body` with the shipped spec (prefixed) and random passwords; cleans up afterwards.
    static func with(_ body: (inout RoleWorld) throws -> Void) throws {
        let prefix = "r" + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(5)) + "\(Int.random(in: 10...99))_"
        defer { dropRoles(prefix: prefix) }
        try TestCluster.withDatabase(prefix: "roles") { db in
            let (spec, _) = try RoleSpecParser.load(path: Paths.repository + "/roles")
            var environment: [String: String] = [:]
            for name in passwordVariables { environment[name] = "pw-\(UUID().uuidString.prefix(13))" }
            let capture = LogCapture()
            var logger = Logger(label: "nfldb.roles.test") { _ in capture }
            logger.logLevel = .trace
            var world = RoleWorld(db: db, prefix: prefix, environment: environment, spec: spec.withRolePrefix(prefix), logger: logger, logs: capture)
            try body(&world)
        }
    }

    /// The prefixed name of a role of the shipped spec (`nfl_etl` → `rabcde12_nfl_etl`).
    func name(_ role: String) -> String { prefix + role }

    func options(revokeUnmanaged: Bool = false, environment: [String: String]? = nil) -> RolePlanOptions {
        var options = RolePlanOptions()
        options.revokeUnmanaged = revokeUnmanaged
        options.environment = environment ?? self.environment
        return options
    }

    /// A superuser connection to the test database.
    func admin() throws -> PostgresConnection { try db.connect(logger: logger) }

    func plan(revokeUnmanaged: Bool = false) throws -> RolePlan {
        let connection = try admin()
        defer { connection.close() }
        return try RoleManager.plan(connection, spec: spec, options: options(revokeUnmanaged: revokeUnmanaged), logger: logger)
    }

    @discardableResult
    func apply(revokeUnmanaged: Bool = false) throws -> RoleApplyResult {
        let connection = try admin()
        defer { connection.close() }
        return try RoleManager.apply(connection, spec: spec, options: options(revokeUnmanaged: revokeUnmanaged), logger: logger)
    }

    /// Connects over TCP with SCRAM as a role of the shipped spec.
    func login(_ role: String, password: String? = nil) throws -> PostgresConnection {
        let variable = "NFLDB_\(role.replacingOccurrences(of: "nfl_", with: "").uppercased())_PASSWORD"
        let secret = password ?? environment[variable] ?? ""
        return try PostgresConnection.connect(
            ConnectionOptions(dsn: db.cluster.dsn(database: db.name, user: name(role), password: secret), applicationName: "nfldb-test"),
            logger: TestCluster.logger)
    }

    /// Applies the platform migrations as the owner login, as `nfldb migrate up` would in a deploy.
    func migrateAsOwner() throws {
        let connection = try login("nfl_owner")
        defer { connection.close() }
        let migrations = try MigrationDirectory(path: Paths.repository + "/migrations").load()
        let migrator = Migrator(
            connection: connection, migrations: migrations, settings: MigratorSettings(),
            context: MigrationContext(nfldbVersion: "test", correlationID: nil), logger: TestCluster.logger)
        _ = try migrator.up()
    }

    /// Reference rows every game needs (teams and a stadium), written as the superuser.
    func seedReferenceData() throws {
        let connection = try admin()
        defer { connection.close() }
        try connection.simpleQuery("""
            INSERT INTO nfl.teams (team_abbr, team_name) VALUES ('KC', 'Chiefs'), ('BAL', 'Ravens'), ('DET', 'Lions');
            INSERT INTO nfl.stadiums (stadium_id, name) VALUES ('KAN00', 'GEHA Field at Arrowhead Stadium');
            """)
    }

    static func gameInsert(_ id: String = "2024_01_BAL_KC") -> String {
        let parts = id.split(separator: "_")
        return """
            INSERT INTO nfl.games (game_id, season, game_type, week, gameday, weekday, gametime, away_team, home_team, location,
                old_game_id, pfr, away_rest, home_rest, div_game, away_coach, home_coach, stadium_id, stadium)
            VALUES ('\(id)', \(parts[0]), 'REG', \(Int(parts[1]) ?? 1), '2024-09-05', 'Thursday', '20:20', '\(parts[2])', '\(parts[3])', 'Home',
                '2024090500', '202409050kan', 7, 7, false, 'John Harbaugh', 'Andy Reid', 'KAN00', 'GEHA Field')
            """
    }

    /// Drops every role whose name starts with `prefix` (only roles this test created).
    static func dropRoles(prefix: String) {
        guard let cluster = try? TestCluster.shared(),
            let admin = try? PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger)
        else { return }
        defer { admin.close() }
        let names = (try? admin.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, \(prefix)) ORDER BY rolname DESC").rows
            .compactMap { $0["rolname"] }) ?? []
        for name in names {
            _ = try? admin.simpleQuery("DROP ROLE IF EXISTS \(PostgresIdentifier.quote(name))")
        }
    }
}

/// Expects `sql` to be refused with SQLSTATE 42501 (insufficient privilege) or another given state.
func expectDenied(_ connection: PostgresConnection, _ sql: String, state: String = SQLState.insufficientPrivilege, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    do {
        try connection.simpleQuery(sql)
        Issue.record("expected \(state) but it succeeded: \(sql)", sourceLocation: sourceLocation)
    } catch let error as PostgresError {
        #expect(error.sqlState == state, "\(sql): \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// Records every log line (message and metadata) so a test can check nothing secret was logged.
final class LogCapture: LogHandler, @unchecked Sendable {
    // Invariant: `lines` is only touched under its Mutex; the other stored properties are the
    // handler's per-logger configuration, which swift-log copies by value.
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = "\(event.level) \(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })"
        lines.withLock { $0.append(text) }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}
