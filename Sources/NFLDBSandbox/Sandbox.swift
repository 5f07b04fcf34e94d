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

    /// The two places `up` puts the cluster: inside the state directory, or (when the server's OS user
    /// cannot reach it) a fixed name under /var/tmp derived from the state directory.
    var clusterRoots: [String] {
        [(stateDirectory as NSString).appendingPathComponent("cluster"),
         "/var/tmp/nfldb-sandbox-\(String(AdvisoryLockKey(stateDirectory).value.magnitude, radix: 36))"]
    }

    /// What an `up` killed before it saved its state can leave in the state directory.
    static let leftoverNames: Set<String> = ["cluster", "pgpass", ".initdb-pw", "state.json"]

    /// The state directory's entries that a sandbox did not create (a user's files).
    func foreignEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []).filter { !Self.leftoverNames.contains($0) }.sorted()
    }

    /// `'…'` for a POSIX shell, whatever the text holds.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

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
                    // pgbackrest.conf names the port too (pg1-port): rewritten, or backups would look for the old one.
                    if moved.pgbackrestConfig != nil {
                        moved.pgbackrestConfig = try PgBackRestSetup(cluster: movedCluster, stanza: Self.stanza).configure(logger: logger)
                        try saveState(moved)
                    }
                    return moved
                }
            }
            return state
        }
        // pg_ctl starts the server through a shell with the paths in single quotes: a path with a
        // quote, backslash, `$` or backquote would be run as shell code (as the server's OS user).
        if let bad = stateDirectory.first(where: { "'\"\\$`\n".contains($0) }) {
            throw OperatorError(
                "the sandbox directory \(stateDirectory) contains \(["'": "a single quote", "\"": "a double quote", "\\": "a backslash", "$": "a dollar sign", "`": "a backquote"][bad] ?? "a line break"), which the server's start command cannot take safely",
                hint: "Choose a directory whose path has no quotes, backslashes, $, backquotes or line breaks.", exitStatus: .usage)
        }
        // Never over a user's files: a new sandbox goes into a new or empty directory (or over what a
        // killed `up` left, which is removed first).
        let foreign = foreignEntries()
        guard foreign.isEmpty else {
            throw OperatorError(
                "\(stateDirectory) is not empty and holds no sandbox (\(foreign.prefix(5).joined(separator: ", "))\(foreign.count > 5 ? ", …" : "")); nothing was changed",
                hint: "Give --dir a new or empty directory (the default is .nfldb/sandbox).", exitStatus: .usage)
        }
        for leftover in clusterRoots where fm.fileExists(atPath: leftover) {
            logger.warning("removing what an earlier, interrupted `sandbox up` left", metadata: ["path": .string(leftover)])
            try? fm.removeItem(atPath: leftover)
        }
        for name in ["pgpass", ".initdb-pw"] { try? fm.removeItem(atPath: (stateDirectory as NSString).appendingPathComponent(name)) }
        try fm.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let binaries = try PostgresBinaries.locate(configured: configuredBinDirectory)
        let user = ProcessRunner.isRoot ? (osUser ?? "postgres") : nil
        if ProcessRunner.isRoot, let user, getpwnam(user) == nil {
            throw OperatorError(
                "nfldb runs as root, and the OS user '\(user)' that should run PostgreSQL does not exist",
                hint: "Install the postgresql package (it creates 'postgres'), or set postgres.os_user.", exitStatus: .usage)
        }
        var clusterRoot = clusterRoots[0]
        if !LocalCluster.isReachable(clusterRoot, byUser: user) {
            clusterRoot = clusterRoots[1]
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
    /// Only what a sandbox creates is removed: a directory with other files in it is refused.
    public func down(logger: Logger) throws {
        let fm = FileManager.default
        let foreign = foreignEntries()
        guard foreign.isEmpty else {
            throw OperatorError(
                "\(stateDirectory) holds files a sandbox did not create (\(foreign.prefix(5).joined(separator: ", "))\(foreign.count > 5 ? ", …" : "")); nothing was removed",
                hint: "Point --dir at the sandbox's own directory (the one `sandbox up` created).", exitStatus: .usage)
        }
        guard let state = loadState() else {
            // An `up` killed before it saved its state: remove what it can have made, nothing else.
            for root in clusterRoots where fm.fileExists(atPath: root) {
                if fm.fileExists(atPath: (root as NSString).appendingPathComponent("data/postmaster.pid")) {
                    if let binaries = try? PostgresBinaries.locate(configured: configuredBinDirectory) {
                        _ = try? LocalCluster(root: root, port: 0, binaries: binaries, osUser: ProcessRunner.isRoot ? (osUser ?? "postgres") : nil)
                            .stop(mode: "immediate", logger: logger)
                    }
                }
                try? fm.removeItem(atPath: root)
            }
            if fm.fileExists(atPath: stateDirectory) { try fm.removeItem(atPath: stateDirectory) }
            return
        }
        // The cluster root comes from state.json: removed only when it is one `up` would have chosen.
        guard clusterRoots.contains(state.clusterRoot) else {
            throw OperatorError(
                "\(statePath) names the cluster at \(state.clusterRoot), outside this sandbox; nothing was removed",
                hint: "Stop that cluster by hand (pg_ctl stop -D \(state.clusterRoot)/data) if it is yours, then remove \(stateDirectory).", exitStatus: .usage)
        }
        let cluster = cluster(for: state)
        try cluster.stop(mode: "fast", logger: logger)
        try? fm.removeItem(atPath: state.clusterRoot)
        try fm.removeItem(atPath: stateDirectory)
    }

    /// Shell lines for `eval "$(nfldb sandbox env)"`; the password stays in the pgpass file.
    public func environmentLines(_ state: SandboxState) -> [String] {
        var lines = [
            // Every value shell-quoted: `eval "$(nfldb sandbox env)"` must never run a path as code.
            "export NFLDB_DSN=\(Self.shellQuoted(state.dsn))",
            "export PGHOST=127.0.0.1",
            "export PGPORT=\(state.port)",
            "export PGUSER=\(Self.shellQuoted(state.superuser))",
            "export PGDATABASE=\(Self.shellQuoted(state.database))",
            "export PGPASSFILE=\(Self.shellQuoted(state.pgpassFile))",
            "export NFLDB_SANDBOX_DIR=\(Self.shellQuoted(stateDirectory))",
        ]
        if let config = state.pgbackrestConfig {
            lines.append("export NFLDB_BACKUP_CONFIG=\(Self.shellQuoted(config))")
            lines.append("export NFLDB_BACKUP_STANZA=\(Self.shellQuoted(state.stanza))")
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
