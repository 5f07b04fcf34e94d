import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// What `nfldb sandbox up` leaves in `<state dir>/state.json`.
public struct SandboxState: Codable, Sendable, Equatable {
    public var port: Int
    public var superuser: String
    public var database: String
    /// Where the cluster lives (the state dir itself, or a directory the OS user can reach).
    public var clusterRoot: String
    public var binDirectory: String
    public var osUser: String?
    public var pgpassFile: String
    public var pgbackrestConfig: String?
    public var stanza: String
    public var createdAt: Date

    /// The DSN without a password (libpq reads it from ``pgpassFile``).
    public var dsn: String { "postgresql://\(superuser)@127.0.0.1:\(port)/\(database)" }
}

/// A throwaway PostgreSQL 15 cluster for demos and local work: `nfldb sandbox up|down|status|env`.
///
/// It listens on a free 127.0.0.1 port, has data checksums and `pg_stat_statements` preloaded,
/// `wal_level=replica` with `archive_mode=on` pointed at a pgBackRest stanza in the state dir,
/// and a superuser whose SCRAM password sits only in the state dir's `pgpass` file.
public struct Sandbox: Sendable {
    public let stateDirectory: String
    public let osUser: String?
    public let configuredBinDirectory: String?
    public static let database = "nfl"
    public static let stanza = "nfldb"

    public init(stateDirectory: String, osUser: String?, binDirectory: String? = nil) {
        self.stateDirectory = (stateDirectory as NSString).standardizingPath.hasPrefix("/")
            ? (stateDirectory as NSString).standardizingPath
            : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(stateDirectory)
        self.osUser = osUser
        self.configuredBinDirectory = binDirectory
    }

    var statePath: String { (stateDirectory as NSString).appendingPathComponent("state.json") }

    public func loadState() -> SandboxState? {
        guard let data = FileManager.default.contents(atPath: statePath) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(SandboxState.self, from: data)
    }

    func saveState(_ state: SandboxState) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: URL(fileURLWithPath: statePath))
    }

    func cluster(for state: SandboxState) -> LocalCluster {
        LocalCluster(
            root: state.clusterRoot, port: state.port, binaries: PostgresBinaries(directory: state.binDirectory),
            osUser: state.osUser, superuser: state.superuser)
    }

    /// Creates (first time) and starts the sandbox; starting a running sandbox changes nothing.
    @discardableResult
    /// What to do when the sandbox's server does not start.
    static func startHint(_ cluster: LocalCluster) -> String {
        "Read \(cluster.logFile); if the port is taken, run `nfldb sandbox down` and `up` again to pick a new one."
    }

    public func up(logger: Logger) throws -> SandboxState {
        let fm = FileManager.default
        if let state = loadState() {
            let cluster = cluster(for: state)
            if !cluster.isRunning {
                do {
                    try cluster.start(logger: logger, hint: Self.startHint(cluster))
                } catch {
                    // The remembered port may have been taken meanwhile: move to a free one.
                    var moved = state
                    moved.port = try LocalCluster.freePort()
                    try rewritePort(cluster: cluster, port: moved.port, pgpass: state.pgpassFile, password: try readPassword(state))
                    try saveState(moved)
                    let movedCluster = self.cluster(for: moved)
                    try movedCluster.start(logger: logger, hint: Self.startHint(movedCluster))
                    return moved
                }
            }
            return state
        }
        try fm.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let binaries = try PostgresBinaries.locate(configured: configuredBinDirectory)
        let user = ProcessRunner.isRoot ? (osUser ?? "postgres") : nil
        if ProcessRunner.isRoot, let user, getpwnam(user) == nil {
            throw OperatorError(
                "nfldb runs as root, and the OS user '\(user)' that should run PostgreSQL does not exist",
                hint: "Install the postgresql package (it creates 'postgres'), or set postgres.os_user.", exitStatus: .usage)
        }
        var clusterRoot = (stateDirectory as NSString).appendingPathComponent("cluster")
        if !LocalCluster.isReachable(clusterRoot, byUser: user) {
            let tag = String(AdvisoryLockKey(stateDirectory).value.magnitude, radix: 36)
            clusterRoot = "/var/tmp/nfldb-sandbox-\(tag)"
            logger.info("state dir is not reachable by the server's OS user; placing the cluster elsewhere", metadata: ["pg.root": .string(clusterRoot)])
        }
        let port = try LocalCluster.freePort()
        let password = LocalCluster.randomPassword()
        SecretRedactor.shared.register(password)
        let cluster = LocalCluster(root: clusterRoot, port: port, binaries: binaries, osUser: user)
        let pgbackrest = PgBackRestSetup(cluster: cluster, stanza: Self.stanza)
        var settings: [(String, String)] = [
            ("shared_preload_libraries", "'pg_stat_statements'"),
            ("pg_stat_statements.track", "all"),
            ("track_io_timing", "on"),
            ("wal_level", "replica"),
            ("max_wal_senders", "10"),
            ("archive_mode", "on"),
            ("archive_timeout", "60"),
            ("log_line_prefix", "'%m [%p] %q%u@%d '"),
            ("password_encryption", "'scram-sha-256'"),
        ]
        settings.append(("archive_command", "'\(pgbackrest.archiveCommand)'"))
        try cluster.initialize(password: password, settings: settings, logger: logger)

        let pgpass = (stateDirectory as NSString).appendingPathComponent("pgpass")
        try writePgpass(pgpass, port: port, password: password, user: cluster.superuser)
        var state = SandboxState(
            port: port, superuser: cluster.superuser, database: Self.database, clusterRoot: clusterRoot,
            binDirectory: binaries.directory, osUser: user, pgpassFile: pgpass, pgbackrestConfig: nil,
            stanza: Self.stanza, createdAt: Date())
        try saveState(state)
        try cluster.start(logger: logger, hint: Self.startHint(cluster))

        let admin = try PostgresConnection.connect(
            ConnectionOptions(dsn: "host=127.0.0.1 port=\(port) user=\(cluster.superuser) dbname=postgres", password: password), logger: logger)
        try admin.execute("CREATE DATABASE \(identifier: Self.database)")
        admin.close()
        let db = try PostgresConnection.connect(
            ConnectionOptions(dsn: "host=127.0.0.1 port=\(port) user=\(cluster.superuser) dbname=\(Self.database)", password: password), logger: logger)
        try db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        db.close()

        state.pgbackrestConfig = try pgbackrest.configure(logger: logger)
        try saveState(state)
        return state
    }

    /// Stops the sandbox and removes everything it created.
    public func down(logger: Logger) throws {
        guard let state = loadState() else {
            if FileManager.default.fileExists(atPath: stateDirectory) {
                try FileManager.default.removeItem(atPath: stateDirectory)
            }
            return
        }
        let cluster = cluster(for: state)
        try cluster.stop(mode: "fast", logger: logger)
        try? FileManager.default.removeItem(atPath: state.clusterRoot)
        try FileManager.default.removeItem(atPath: stateDirectory)
    }

    /// Shell lines for `eval "$(nfldb sandbox env)"`; the password stays in the pgpass file.
    public func environmentLines(_ state: SandboxState) -> [String] {
        var lines = [
            "export NFLDB_DSN='\(state.dsn)'",
            "export PGHOST=127.0.0.1",
            "export PGPORT=\(state.port)",
            "export PGUSER=\(state.superuser)",
            "export PGDATABASE=\(state.database)",
            "export PGPASSFILE='\(state.pgpassFile)'",
            "export NFLDB_SANDBOX_DIR='\(stateDirectory)'",
        ]
        if let config = state.pgbackrestConfig {
            lines.append("export NFLDB_BACKUP_CONFIG='\(config)'")
            lines.append("export NFLDB_BACKUP_STANZA='\(state.stanza)'")
        }
        return lines
    }

    func readPassword(_ state: SandboxState) throws -> String {
        let text = try String(contentsOfFile: state.pgpassFile, encoding: .utf8)
        guard let line = text.split(separator: "\n").first, let password = line.split(separator: ":", maxSplits: 4).last else {
            throw OperatorError("sandbox pgpass file \(state.pgpassFile) is unreadable", hint: "Run `nfldb sandbox down` and `up` again.")
        }
        return String(password)
    }

    func writePgpass(_ path: String, port: Int, password: String, user: String = "postgres") throws {
        let line = "127.0.0.1:\(port):*:\(user):\(password)\nlocalhost:\(port):*:\(user):\(password)\n"
        _ = FileManager.default.createFile(atPath: path, contents: Data(line.utf8), attributes: [.posixPermissions: 0o600])
    }

    func rewritePort(cluster: LocalCluster, port: Int, pgpass: String, password: String) throws {
        let conf = (cluster.dataDirectory as NSString).appendingPathComponent("postgresql.conf")
        try "port = \(port)\n".appendLine(to: conf)
        try writePgpass(pgpass, port: port, password: password, user: cluster.superuser)
    }
}

extension String {
    func appendLine(to path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(utf8))
        try handle.close()
    }
}

extension Sandbox {
    /// Whether the sandbox's postmaster is alive.
    public func isRunning(_ state: SandboxState) -> Bool { cluster(for: state).isRunning }
}
