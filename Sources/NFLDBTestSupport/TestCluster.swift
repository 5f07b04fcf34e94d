import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBSandbox
import Synchronization

/// The real PostgreSQL server every integration test talks to: one per test process.
///
/// Resolution order:
/// 1. `NFLDB_TEST_DSN` (a superuser conninfo/URL), e.g. a cluster started by `ci/` or a service container;
/// 2. otherwise a throwaway cluster started here under a temp dir on a free 127.0.0.1 port (as the
///    `postgres` OS user when the tests run as root), stopped and deleted at process exit.
///
/// There is no silent skip: if neither works, every test that asks for a database fails with the reason.
public final class TestCluster: Sendable {
    /// Superuser conninfo (includes the generated password; only tests see it).
    public let adminDSN: String
    public let host: String
    public let port: Int
    public let superuser: String
    public let password: String?
    /// Set when this process started the cluster itself.
    public let local: LocalCluster?
    private let counter = Atomic<Int>(0)
    static let templateName = "nfldb_test_template"

    init(adminDSN: String, host: String, port: Int, superuser: String, password: String?, local: LocalCluster?) {
        self.adminDSN = adminDSN
        self.host = host
        self.port = port
        self.superuser = superuser
        self.password = password
        self.local = local
    }

    private static let resolved: Result<TestCluster, TestClusterError> = {
        do {
            return .success(try start())
        } catch let error as TestClusterError {
            return .failure(error)
        } catch {
            return .failure(TestClusterError(reason: String(describing: error)))
        }
    }()

    /// The shared cluster, or an error explaining why there is none.
    public static func shared() throws -> TestCluster {
        try resolved.get()
    }

    public static let logger: Logger = {
        var logger = Logger(label: "nfldb.tests") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }()

    private static func start() throws -> TestCluster {
        let environment = ProcessInfo.processInfo.environment
        if let dsn = environment["NFLDB_TEST_DSN"], !dsn.isEmpty {
            let connection = try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: logger)
            let row = try connection.query("SELECT inet_server_port() AS port, current_user AS usr, coalesce(host(inet_server_addr()), '127.0.0.1') AS host").singleRow()
            let cluster = TestCluster(
                adminDSN: dsn, host: row["host"] ?? "127.0.0.1", port: try row.decode("port", as: Int?.self) ?? 5432,
                superuser: row["usr"] ?? "postgres", password: nil, local: nil)
            try cluster.prepareTemplate(connection)
            return cluster
        }
        let binaries: PostgresBinaries
        do {
            binaries = try PostgresBinaries.locate(configured: environment["NFLDB_POSTGRES_BIN_DIR"])
        } catch {
            throw TestClusterError(reason: "no NFLDB_TEST_DSN and no PostgreSQL server programs: \(error). Run ci/setup.")
        }
        let root = "/tmp/nfldb-test-\(getpid())-\(Int.random(in: 1000...9999))"
        let osUser = ProcessRunner.isRoot ? (environment["NFLDB_POSTGRES_OS_USER"] ?? "postgres") : nil
        let password = LocalCluster.randomPassword()
        SecretRedactor.shared.register(password)
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try LocalCluster.freePort()
            let cluster = LocalCluster(root: root, port: port, binaries: binaries, osUser: osUser)
            do {
                try? FileManager.default.removeItem(atPath: root)
                try cluster.initialize(password: password, settings: [
                    ("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off"),
                    ("max_connections", "300"), ("shared_preload_libraries", "'pg_stat_statements'"),
                    ("log_min_messages", "warning"),
                ], logger: logger)
                try cluster.start(logger: logger)
                registerCleanup(cluster)
                let pairs = [("host", "127.0.0.1"), ("port", String(port)), ("user", cluster.superuser), ("dbname", "postgres")]
                let dsn = ConnectionOptions.conninfo(pairs)
                let testCluster = TestCluster(adminDSN: ConnectionOptions.conninfo(pairs + [("password", password)]), host: "127.0.0.1", port: port, superuser: cluster.superuser, password: password, local: cluster)
                let connection = try PostgresConnection.connect(ConnectionOptions(dsn: dsn, password: password), logger: logger)
                try testCluster.prepareTemplate(connection)
                return testCluster
            } catch {
                lastError = error
                try? cluster.stop(mode: "immediate", logger: logger)
            }
        }
        throw TestClusterError(reason: "could not start a throwaway PostgreSQL cluster under \(root): \(lastError.map { String(describing: $0) } ?? "unknown")")
    }

    private func prepareTemplate(_ connection: PostgresConnection) throws {
        let exists = try connection.query("SELECT count(*) FROM pg_database WHERE datname = \(Self.templateName)").scalar(Int.self)
        if exists == 0 {
            do {
                try connection.execute("CREATE DATABASE \(identifier: Self.templateName)")
            } catch let error as PostgresError where error.sqlState == SQLState.duplicateDatabase {}
        }
        connection.close()
    }

    /// A conninfo for `database`, as the superuser.
    public func dsn(database: String, user: String? = nil, password: String? = nil) -> String {
        var pairs = [("host", host), ("port", String(port)), ("user", user ?? superuser), ("dbname", database)]
        if let password = password ?? (user == nil ? self.password : nil) { pairs.append(("password", password)) }
        let text = ConnectionOptions.conninfo(pairs)
        if local == nil, user == nil, let url = URLComponents(string: adminDSN), url.scheme != nil {
            var copy = url
            copy.path = "/" + database
            return copy.string ?? adminDSN
        }
        return text
    }

    /// Creates a fresh, uniquely named database from the shared template.
    public func createDatabase(prefix: String = "t") throws -> TestDatabase {
        let n = counter.add(1, ordering: .relaxed).newValue
        let safe = prefix.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" }.prefix(30)
        let name = "\(safe)_\(getpid())_\(n)"
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: adminDSN), logger: Self.logger)
        defer { admin.close() }
        var attempt = 0
        while true {
            do {
                try admin.execute("CREATE DATABASE \(identifier: name) TEMPLATE \(identifier: Self.templateName)")
                break
            } catch let error as PostgresError where error.sqlState == SQLState.objectInUse && attempt < 20 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        return TestDatabase(cluster: self, name: name)
    }

    /// Creates a database, runs `body`, and drops the database (`WITH (FORCE)`) afterwards.
    public static func withDatabase<T>(prefix: String = "t", _ body: (TestDatabase) throws -> T) throws -> T {
        let database = try shared().createDatabase(prefix: prefix)
        defer { database.drop() }
        return try body(database)
    }

    private static func registerCleanup(_ cluster: LocalCluster) {
        cleanupTarget.withLock { $0 = cluster }
        atexit {
            guard let cluster = TestCluster.cleanupTarget.withLock({ $0 }) else { return }
            try? cluster.stop(mode: "immediate", logger: TestCluster.logger)
            try? FileManager.default.removeItem(atPath: cluster.root)
        }
    }

    static let cleanupTarget = Mutex<LocalCluster?>(nil)
}

/// Why no test server is available; every test that needs one fails with this message.
public struct TestClusterError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "no PostgreSQL for integration tests: \(reason)" }
}

/// A database that exists for one test.
public struct TestDatabase: Sendable {
    public let cluster: TestCluster
    public let name: String

    public var dsn: String { cluster.dsn(database: name) }

    public func connect(logger: Logger = TestCluster.logger) throws -> PostgresConnection {
        try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: logger)
    }

    public func drop() {
        guard let admin = try? PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger) else { return }
        _ = try? admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        admin.close()
    }
}
