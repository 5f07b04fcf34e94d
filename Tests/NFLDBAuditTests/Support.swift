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

    /// - Parameter roles: apply the shipped roles spec and run migrations as its owner (the deploy
    ///   flow); otherwise migrations run as the superuser and no roles exist.
    static func with(roles: Bool = true, _ body: (AuditWorld) throws -> Void) throws {
        let prefix = TestRoles.uniquePrefix("a")
        defer { TestRoles.drop(prefix: prefix) }
        try TestCluster.withDatabase(prefix: "audit") { db in
            let (spec, _) = try RoleSpecParser.load(path: TestPaths.repository + "/roles")
            let environment = TestRoles.randomPasswords()
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
        try TestRoles.login(db, user: name(role), password: environment[TestRoles.passwordVariable(role)] ?? "", application: application)
    }

    /// A new login role (named `name(role)`, a random password) that may create objects in schema
    /// nfl, and a session of it: a non-superuser that owns the tables it creates.
    func creatingLogin(_ role: String, admin: PostgresConnection) throws -> (name: String, connection: PostgresConnection) {
        let user = name(role), password = "pw-\(UUID().uuidString)"
        let quoted = PostgresIdentifier.quote(user)
        try admin.runScript(unsafeSQL: """
            CREATE ROLE \(quoted) LOGIN PASSWORD \(PostgresIdentifier.literal(password));
            GRANT CREATE, USAGE ON SCHEMA nfl TO \(quoted);
            """)
        let connection = try PostgresConnection.connect(
            ConnectionOptions(dsn: db.cluster.dsn(database: db.name, user: user, password: password)), logger: TestCluster.logger)
        return (user, connection)
    }

    func migrate(as connection: PostgresConnection) throws {
        defer { connection.close() }
        let migrations = try MigrationDirectory(path: TestPaths.repository + "/migrations").load()
        _ = try Migrator(
            connection: connection, migrations: migrations, settings: MigratorSettings(),
            context: MigrationContext(nfldbVersion: "test", correlationID: nil), logger: TestCluster.logger
        ).up()
    }

    func seed(_ connection: PostgresConnection) throws {
        try connection.runScript(unsafeSQL: PlatformRows.referenceData)
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

}

/// Parses a JSON object text.
func json(_ text: String?) -> [String: Any] {
    guard let text, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
    return object
}

