import Foundation
import Logging
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBRoles
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

/// A fresh database with the shipped roles (prefixed per test) and the platform schema migrated as
/// nfl_owner, as deployed. Loads run as nfl_loader (a member of nfl_etl) unless a test says otherwise.
struct ETLWorld {
    let db: TestDatabase
    let prefix: String
    let environment: [String: String]
    let spec: RoleSpec

    static func with(_ body: (ETLWorld) throws -> Void) throws {
        let prefix = TestRoles.uniquePrefix("e")
        defer { TestRoles.drop(prefix: prefix) }
        try TestCluster.withDatabase(prefix: "etl") { db in
            let (spec, _) = try RoleSpecParser.load(path: TestPaths.repository + "/roles")
            let world = ETLWorld(db: db, prefix: prefix, environment: TestRoles.randomPasswords(), spec: spec.withRolePrefix(prefix))
            try world.applyRoles()
            let owner = try world.login("nfl_owner")
            defer { owner.close() }
            let migrations = try MigrationDirectory(path: TestPaths.repository + "/migrations").load()
            _ = try Migrator(connection: owner, migrations: migrations, settings: MigratorSettings(),
                             context: MigrationContext(nfldbVersion: "test", correlationID: nil), logger: TestCluster.logger).up()
            try world.applyRoles()
            try body(world)
        }
    }

    func applyRoles() throws {
        let admin = try db.connect()
        defer { admin.close() }
        var options = RolePlanOptions()
        options.environment = environment
        _ = try RoleManager.apply(admin, spec: spec, options: options, logger: TestCluster.logger)
    }

    func login(_ role: String) throws -> PostgresConnection {
        try TestRoles.login(db, user: prefix + role, password: environment[TestRoles.passwordVariable(role)] ?? "")
    }

    /// The DSN nfl_loader uses (for the CLI).
    var loaderDSN: String {
        db.cluster.dsn(database: db.name, user: prefix + "nfl_loader", password: environment["NFLDB_LOADER_PASSWORD"])
    }

    /// One load on a fresh nfl_loader session, closed afterwards (so its statistics are flushed).
    @discardableResult
    func load(_ text: String, name: String = "games.csv", options: LoadOptions = ETLWorld.options) throws -> LoadResult {
        let connection = try login("nfl_loader")
        defer { connection.close() }
        return try GamesLoader(connection: connection, logger: TestCluster.logger).load(DataSource(Data(text.utf8), name: name), options: options)
    }

    /// One load of raw bytes (invalid UTF-8 cannot be a String).
    @discardableResult
    func load(data: Data, options: LoadOptions = ETLWorld.options) throws -> LoadResult {
        let connection = try login("nfl_loader")
        defer { connection.close() }
        return try GamesLoader(connection: connection, logger: TestCluster.logger).load(DataSource(data, name: "games.csv"), options: options)
    }

    /// A load that must fail: the recorded result.
    func failingLoad(_ text: String, options: LoadOptions = ETLWorld.options) throws -> LoadFailed {
        do {
            let result = try load(text, options: options)
            Issue.record("the load succeeded: \(result.status) inserted \(result.inserted) rejected \(result.rejected)")
            throw TestFailure()
        } catch let failure as LoadFailed {
            return failure
        }
    }

    struct TestFailure: Error {}

    static var options: LoadOptions {
        var options = LoadOptions()
        options.now = Slice.snapshotDate
        options.correlationID = "test-corr"
        return options
    }

    /// Row counts of the loaded tables.
    func counts() throws -> [String: Int] {
        let admin = try db.connect()
        defer { admin.close() }
        var out: [String: Int] = [:]
        for table in ["games", "teams", "stadiums", "weather", "odds_history", "etl_rejects"] {
            out[table] = try admin.query("SELECT count(*) FROM \(qualified: "nfl", table)").scalar(Int.self)
        }
        return out
    }

    /// n_tup_ins + n_tup_upd + n_tup_hot_upd + n_tup_del per data table, after forcing the statistics out.
    func rowVersions() throws -> [String: [Int]] {
        let admin = try db.connect()
        defer { admin.close() }
        // The loading sessions have ended (stats flushed at backend exit); wait until the counts settle.
        var last: [String: [Int]] = [:]
        for _ in 0..<20 {
            _ = try admin.query("SELECT pg_stat_clear_snapshot()")
            var now: [String: [Int]] = [:]
            for row in try admin.query("""
                SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables
                WHERE schemaname = 'nfl' AND relname IN ('games', 'teams', 'stadiums', 'weather', 'odds_history')
                """).rows {
                now[row["relname"]!] = try ["n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del"].map { try row.decode($0, as: Int.self) }
            }
            if now == last { return now }
            last = now
            Thread.sleep(forTimeInterval: 0.3)
        }
        return last
    }

    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) throws -> T {
        let admin = try db.connect()
        defer { admin.close() }
        return try admin.query(query).scalar(T.self)
    }
}

/// Facts of the shared slice computed from the file itself (not from the loader).
enum SliceFacts {
    static var rows: [[String: String]] {
        let lines = Slice.lines.filter { !$0.isEmpty }
        let header = lines[0].split(separator: ",").map(String.init)
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0 == "\"\"" ? "" : String($0) }
            return Dictionary(uniqueKeysWithValues: zip(header, fields))
        }
    }
    static var teams: Int { Set(rows.flatMap { [$0["away_team"]!, $0["home_team"]!] }).count }
    static var stadiums: Int { Set(rows.map { $0["stadium_id"]! }).count }
    static var weather: Int { rows.filter { !$0["temp"]!.isEmpty || !$0["wind"]!.isEmpty }.count }
    static var odds: Int { rows.filter { !$0["spread_line"]!.isEmpty || !$0["total_line"]!.isEmpty || !$0["away_moneyline"]!.isEmpty }.count }
}
