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

    /// Runs `body` with the shipped spec (prefixed) and random passwords; cleans up afterwards.
    static func with(_ body: (inout RoleWorld) throws -> Void) throws {
        let prefix = TestRoles.uniquePrefix("r")
        defer { TestRoles.drop(prefix: prefix) }
        try TestCluster.withDatabase(prefix: "roles") { db in
            let (spec, _) = try RoleSpecParser.load(path: TestPaths.repository + "/roles")
            let environment = TestRoles.randomPasswords()
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
        try TestRoles.login(db, user: name(role), password: password ?? environment[TestRoles.passwordVariable(role)] ?? "")
    }

    /// Applies the platform migrations as the owner login, as `nfldb migrate up` would in a deploy.
    func migrateAsOwner() throws {
        let connection = try login("nfl_owner")
        defer { connection.close() }
        let migrations = try MigrationDirectory(path: TestPaths.repository + "/migrations").load()
        let migrator = Migrator(
            connection: connection, migrations: migrations, settings: MigratorSettings(),
            context: MigrationContext(nfldbVersion: "test", correlationID: nil), logger: TestCluster.logger)
        _ = try migrator.up()
    }

    /// Reference rows every game needs (teams and a stadium), written as the superuser.
    func seedReferenceData() throws {
        let connection = try admin()
        defer { connection.close() }
        try connection.runScript(unsafeSQL: PlatformRows.referenceData)
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
