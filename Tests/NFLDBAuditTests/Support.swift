import Foundation
import Logging
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBRoles
import NFLDBTestSupport
import Testing

@testable import NFLDBAudit

/// A fresh database with the platform schema and the shipped roles (prefixed per test, since roles
/// are cluster-wide); only roles with the test's prefix are dropped afterwards.
struct AuditWorld {
    let db: TestDatabase
    let prefix: String
    let environment: [String: String]
    let spec: RoleSpec

    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// - Parameter roles: apply the shipped roles spec and run migrations as its owner (the deploy
    ///   flow); otherwise migrations run as the superuser and no roles exist.
    static func with(roles: Bool = true, _ body: (AuditWorld) throws -> Void) throws {
        let prefix = "a" + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(5)) + "\(Int.random(in: 10...99))_"
        defer { dropRoles(prefix: prefix) }
        try TestCluster.withDatabase(prefix: "audit") { db in
            let (spec, _) = try RoleSpecParser.load(path: repository + "/roles")
            var environment: [String: String] = [:]
            for name in ["NFLDB_OWNER_PASSWORD", "NFLDB_ANALYST_PASSWORD", "NFLDB_LOADER_PASSWORD", "NFLDB_DBA_PASSWORD", "NFLDB_MONITOR_PASSWORD"] {
                environment[name] = "pw-\(UUID().uuidString.prefix(13))"
            }
            let world = AuditWorld(db: db, prefix: prefix, environment: environment, spec: spec.withRolePrefix(prefix))
            if roles {
                try world.applyRoles()
                try world.migrate(as: world.login("nfl_owner"))
                try world.applyRoles()
            } else {
                try world.migrate(as: world.admin())
            }
            try body(world)
        }
    }

    var owner: String { prefix + "nfl_audit_owner" }
    func name(_ role: String) -> String { prefix + role }

    func admin() throws -> PostgresConnection { try db.connect() }

    func installer(_ connection: PostgresConnection) -> AuditInstaller {
        AuditInstaller(connection: connection, owner: owner, logger: TestCluster.logger)
    }

    /// Runs `body` with a superuser installer.
    func withInstaller<T>(_ body: (AuditInstaller, PostgresConnection) throws -> T) throws -> T {
        let connection = try admin()
        defer { connection.close() }
        return try body(installer(connection), connection)
    }

    func rolePlanOptions() -> RolePlanOptions {
        var options = RolePlanOptions()
        options.environment = environment
        return options
    }

    @discardableResult
    func applyRoles() throws -> RoleApplyResult {
        let connection = try admin()
        defer { connection.close() }
        return try RoleManager.apply(connection, spec: spec, options: rolePlanOptions(), logger: TestCluster.logger)
    }

    func planRoles() throws -> RolePlan {
        let connection = try admin()
        defer { connection.close() }
        return try RoleManager.plan(connection, spec: spec, options: rolePlanOptions(), logger: TestCluster.logger)
    }

    /// Connects over TCP (SCRAM) as a login role of the shipped spec.
    func login(_ role: String, application: String = "nfldb-test") throws -> PostgresConnection {
        let variable = "NFLDB_\(role.replacingOccurrences(of: "nfl_", with: "").uppercased())_PASSWORD"
        return try PostgresConnection.connect(
            ConnectionOptions(
                dsn: db.cluster.dsn(database: db.name, user: name(role), password: environment[variable] ?? ""), applicationName: application),
            logger: TestCluster.logger)
    }

    func migrate(as connection: PostgresConnection) throws {
        defer { connection.close() }
        let migrations = try MigrationDirectory(path: Self.repository + "/migrations").load()
        _ = try Migrator(
            connection: connection, migrations: migrations, settings: MigratorSettings(),
            context: MigrationContext(nfldbVersion: "test", correlationID: nil), logger: TestCluster.logger
        ).up()
    }

    func seed(_ connection: PostgresConnection) throws {
        try connection.simpleQuery("""
            INSERT INTO nfl.teams (team_abbr, team_name) VALUES ('KC', 'Chiefs'), ('BAL', 'Ravens'), ('DET', 'Lions');
            INSERT INTO nfl.stadiums (stadium_id, name) VALUES ('KAN00', 'GEHA Field at Arrowhead Stadium');
            """)
    }

    static func gameInsert(_ id: String) -> String {
        let parts = id.split(separator: "_")
        return """
            INSERT INTO nfl.games (game_id, season, game_type, week, gameday, weekday, gametime, away_team, home_team, location,
                old_game_id, pfr, away_rest, home_rest, div_game, away_coach, home_coach, stadium_id, stadium)
            VALUES ('\(id)', \(parts[0]), 'REG', \(Int(parts[1]) ?? 1), '2024-09-05', 'Thursday', '20:20', '\(parts[2])', '\(parts[3])', 'Home',
                '2024090500', '202409050kan', 7, 7, false, 'John Harbaugh', 'Andy Reid', 'KAN00', 'GEHA Field')
            """
    }

    /// Log entries of one table, oldest first, as dictionaries of column → text.
    func entries(_ connection: PostgresConnection, table: String) throws -> [[String: String]] {
        try connection.query("""
            SELECT operation, row_key::text AS row_key, old_row::text AS old_row, new_row::text AS new_row, changed::text AS changed,
                   session_user_name, current_user_name, application_name, host(client_addr) AS client_addr, correlation_id, txid::text AS txid
            FROM audit.log WHERE table_name = \(table) ORDER BY id
            """).rows.map { row in
            var values: [String: String] = [:]
            for (index, column) in row.columns.enumerated() { values[column.name] = row.values[index] }
            return values
        }
    }

    static func dropRoles(prefix: String) {
        guard let cluster = try? TestCluster.shared(),
            let admin = try? PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger)
        else { return }
        defer { admin.close() }
        let names = (try? admin.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, \(prefix)) ORDER BY rolname DESC").rows
            .compactMap { $0["rolname"] }) ?? []
        for name in names { _ = try? admin.simpleQuery("DROP ROLE IF EXISTS \(PostgresIdentifier.quote(name))") }
    }
}

/// Parses a JSON object text.
func json(_ text: String?) -> [String: Any] {
    guard let text, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
    return object
}

/// Expects `sql` to fail with `state` (default 42501, insufficient privilege).
func expectRefused(
    _ connection: PostgresConnection, _ sql: String, state: String = SQLState.insufficientPrivilege,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    do {
        try connection.simpleQuery(sql)
        Issue.record("expected SQLSTATE \(state), but it succeeded: \(sql)", sourceLocation: sourceLocation)
    } catch let error as PostgresError {
        #expect(error.sqlState == state, "\(sql): \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
