import Foundation
import Logging
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

/// One test's world: a fresh database on the shared throwaway cluster and a fresh migrations
/// directory, both removed afterwards.
struct Fixture {
    let db: TestDatabase
    let dir: String

    var dsn: String { db.dsn }

    // MARK: Files

    /// Writes `name` (e.g. `0001_teams.up.sql`) into the migrations directory.
    func write(_ name: String, _ sql: String) throws {
        try sql.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    /// Writes `NNNN_name.up.sql` and `NNNN_name.down.sql`.
    func pair(_ version: Int, _ name: String, up: String, down: String) throws {
        try write(Self.fileName(version, name, "up"), up)
        try write(Self.fileName(version, name, "down"), down)
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: path(name))
    }

    func read(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    static func fileName(_ version: Int, _ name: String, _ kind: String) -> String {
        String(format: "%04d", version) + "_\(name).\(kind).sql"
    }

    func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    // MARK: CLI

    /// `nfldb <args…> --dsn <db> --dir <dir>` with a clean environment plus `env`.
    @discardableResult
    func cli(_ arguments: [String], env: [String: String] = [:], timeout: Duration = .seconds(60)) throws -> CLIResult {
        CLIResult(try CLIRunner.run(arguments + ["--dsn", dsn, "--dir", dir], environment: env, timeout: timeout))
    }

    /// `nfldb migrate <args…> --dsn … --dir …`.
    @discardableResult
    func migrate(_ arguments: String..., env: [String: String] = [:]) throws -> CLIResult {
        try cli(["migrate"] + arguments, env: env)
    }

    /// The argv (after the binary) for a `migrate` command run by a child process we manage ourselves.
    func migrateArguments(_ arguments: [String]) -> [String] {
        ["migrate"] + arguments + ["--dsn", dsn, "--dir", dir]
    }

    // MARK: Database

    func connect() throws -> PostgresConnection { try db.connect() }

    /// Runs `body` with a connection that is closed afterwards.
    func sql<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try connect()
        defer { connection.close() }
        return try body(connection)
    }

    func execute(_ text: String) throws {
        try sql { _ = try $0.runScript(unsafeSQL: text) }
    }

    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) throws -> T {
        try sql { try $0.query(query).scalar(type) }
    }

    func tableExists(_ name: String) throws -> Bool {
        try scalar("SELECT to_regclass(\(name)) IS NOT NULL", as: Bool.self)
    }

    func columnExists(_ table: String, _ column: String) throws -> Bool {
        try scalar(
            "SELECT count(*) > 0 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = \(table) AND column_name = \(column)",
            as: Bool.self)
    }

    func ledgerExists() throws -> Bool { try tableExists("nfldb.schema_migrations") }

    /// Versions in the ledger, ascending (empty when the ledger does not exist).
    func ledgerVersions() throws -> [Int64] {
        guard try ledgerExists() else { return [] }
        return try sql { try $0.query("SELECT version FROM nfldb.schema_migrations ORDER BY version").rows.map { try $0.decode("version") } }
    }

    func ledgerRow(_ version: Int64) throws -> PostgresRow? {
        guard try ledgerExists() else { return nil }
        return try sql { try $0.query("SELECT * FROM nfldb.schema_migrations WHERE version = \(version)").rows.first }
    }

    /// `(version, event)` pairs of nfldb.migration_events in insertion order.
    func events() throws -> [(version: Int64?, event: String, detail: String?)] {
        guard try tableExists("nfldb.migration_events") else { return [] }
        return try sql {
            try $0.query("SELECT version, event, detail::text AS detail FROM nfldb.migration_events ORDER BY id").rows.map {
                (try $0.decode("version", as: Int64?.self), try $0.decode("event", as: String.self), try $0.decode("detail", as: String?.self))
            }
        }
    }

    /// Advisory locks held by sessions connected to this test's database.
    func advisoryLocks() throws -> Int {
        try scalar("""
            SELECT count(*)::int FROM pg_locks
            WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, as: Int.self)
    }

    /// Other backends on this database whose current query contains `fragment`.
    func backends(running fragment: String) throws -> [Int] {
        try sql {
            try $0.query("""
                SELECT pid FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%' || \(fragment) || '%'
                """).rows.map { try $0.decode("pid", as: Int.self) }
        }
    }

    /// Loads the directory's migrations with the library (for in-process runs).
    func load() throws -> [Migration] { try MigrationDirectory(path: dir).load() }

    func migrator(_ connection: PostgresConnection, settings: MigratorSettings = MigratorSettings(),
                  progress: @escaping (MigrationProgress) -> Void = { _ in }) throws -> Migrator {
        Migrator(
            connection: connection, migrations: try load(), settings: settings,
            context: MigrationContext(nfldbVersion: "test", correlationID: "test"), logger: TestCluster.logger, progress: progress)
    }
}

/// A finished CLI run with both streams.
struct CLIResult: CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String

    init(_ result: ProcessResult) {
        status = result.status
        stdout = result.standardOutput
        stderr = result.standardError
    }

    var output: String { stdout + "\n" + stderr }
    var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

    /// stdout parsed as JSON.
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8))
    }
}

/// Creates a database and a migrations directory for one test and removes both afterwards.
func withFixture<T>(_ prefix: String = "mig", _ body: (Fixture) throws -> T) throws -> T {
    try TestCluster.withDatabase(prefix: prefix) { db in
        let dir = try CLIRunner.temporaryDirectory("nfldb-migtest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body(Fixture(db: db, dir: dir))
    }
}

extension ChildProcess {
    /// Waits for exit (SIGKILL after `timeout`), returns the status and output, and removes the files.
    func result(timeout: Duration = .seconds(60)) -> CLIResult {
        let status = wait(timeout: timeout) ?? kill9()
        defer { removeOutput() }
        return CLIResult(status: status, stdout: standardOutput, stderr: standardError)
    }
}

extension CLIResult {
    init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// `sha256sum` of a file, computed outside nfldb.
func sha256sum(_ path: String) throws -> String {
    let result = try ProcessRunner().run("sha256sum", [path], timeout: .seconds(10))
    return String(result.standardOutput.prefix { $0 != " " })
}

/// The repository root (for the platform schema in ./migrations).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url = url.deletingLastPathComponent() }
    return url.path
}()
