import Foundation
import Logging
import NFLDBCore

/// A PostgreSQL cluster on this machine that nfldb creates, starts and stops itself:
/// the sandbox, the test harness's cluster, and (later) restored copies under test.
///
/// When nfldb runs as root, every server program runs as ``osUser`` through `runuser`, and the
/// directories it needs are owned by that user.
public struct LocalCluster: Sendable {
    /// Directory that holds everything: `data/`, `run/` (socket), `server.log`.
    public let root: String
    public let port: Int
    public let binaries: PostgresBinaries
    public let osUser: String?
    public let superuser: String

    public var dataDirectory: String { (root as NSString).appendingPathComponent("data") }
    public var socketDirectory: String { (root as NSString).appendingPathComponent("run") }
    public var logFile: String { (root as NSString).appendingPathComponent("server.log") }

    public init(root: String, port: Int, binaries: PostgresBinaries, osUser: String?, superuser: String = "postgres") {
        self.root = root
        self.port = port
        self.binaries = binaries
        self.osUser = osUser
        self.superuser = superuser
    }

    var runner: ProcessRunner { ProcessRunner(runAsUser: osUser) }

    /// Runs `initdb` with data checksums, UTF-8, C locale, a superuser with a SCRAM password, trust
    /// on the Unix socket only, and appends `settings` to `postgresql.conf`.
    public func initialize(password: String, settings: [(String, String)], logger: Logger) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        try giveToOSUser(root)
        try giveToOSUser(socketDirectory)
        let pwfile = (root as NSString).appendingPathComponent(".initdb-pw")
        try password.write(toFile: pwfile, atomically: true, encoding: .utf8)
        try giveToOSUser(pwfile)
        chmod(pwfile, 0o600)
        defer { try? fm.removeItem(atPath: pwfile) }
        logger.info("initdb", metadata: ["pg.data": .string(dataDirectory)])
        let result = try runner.run(binaries.path("initdb"), [
            "-D", dataDirectory, "-U", superuser, "--pwfile=\(pwfile)", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--data-checksums", "--no-sync", "--no-instructions",
        ], timeout: .seconds(120))
        guard result.succeeded else {
            throw OperatorError(
                "initdb failed for \(dataDirectory) (exit \(result.status))", detail: result.stderrTail(),
                hint: ProcessRunner.isRoot ? "Check that the OS user \(osUser ?? "postgres") can write \(root)." : nil)
        }
        var conf = "\n# --- added by nfldb ---\n"
        let base: [(String, String)] = [
            ("listen_addresses", "'127.0.0.1'"), ("port", String(port)),
            ("unix_socket_directories", "'\(socketDirectory)'"),
        ]
        for (key, value) in base + settings { conf += "\(key) = \(value)\n" }
        let confPath = (dataDirectory as NSString).appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: confPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(conf.utf8))
        try handle.close()
    }

    /// `pg_ctl start -w`: returns once the server accepts connections.
    /// - Parameter hint: what the caller's user should do when the start fails (the sandbox says how
    ///   to pick a new port); nil adds none.
    public func start(logger: Logger, hint: String? = nil) throws {
        logger.info("starting PostgreSQL", metadata: ["pg.port": .stringConvertible(port)])
        if !FileManager.default.fileExists(atPath: logFile) {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
            try giveToOSUser(logFile)
        }
        let result = try runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "start"], timeout: .seconds(90))
        guard result.succeeded else {
            throw OperatorError(
                "PostgreSQL did not start on 127.0.0.1:\(port) (pg_ctl exit \(result.status))",
                detail: [result.stderrTail(4), logTail(6)].filter { !$0.isEmpty }.joined(separator: "\n"), hint: hint)
        }
    }

    /// `pg_ctl stop`; `fast` rolls back open transactions, `immediate` skips the checkpoint.
    public func stop(mode: String = "fast", logger: Logger) throws {
        guard isRunning else { return }
        logger.info("stopping PostgreSQL", metadata: ["pg.port": .stringConvertible(port)])
        let result = try runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory, "-m", mode, "-w", "-t", "60", "stop"], timeout: .seconds(90))
        guard result.succeeded || !isRunning else {
            throw OperatorError("pg_ctl stop failed for \(dataDirectory) (exit \(result.status))", detail: result.stderrTail())
        }
    }

    /// Whether a postmaster for this data directory is alive (from `postmaster.pid`).
    public var isRunning: Bool { Self.runningPostmaster(dataDirectory: dataDirectory) != nil }

    public var postmasterPID: pid_t? { Self.postmasterPID(dataDirectory: dataDirectory) }

    /// The pid in `<dataDirectory>/postmaster.pid`, alive or not.
    public static func postmasterPID(dataDirectory: String) -> pid_t? {
        let pidFile = (dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = pid_t(first)
        else { return nil }
        return pid
    }

    /// The pid of a live postmaster on `dataDirectory`, or nil.
    public static func runningPostmaster(dataDirectory: String) -> pid_t? {
        guard let pid = postmasterPID(dataDirectory: dataDirectory) else { return nil }
        return kill(pid, 0) == 0 || errno == EPERM ? pid : nil
    }

    /// The last `lines` lines of the server log.
    public func logTail(_ lines: Int) -> String {
        ((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Makes a path owned by ``osUser`` when running as root (the server refuses root-owned data).
    public func giveToOSUser(_ path: String) throws { try Self.give(path, to: osUser) }

    /// Makes a path owned by `user` when running as root; nothing otherwise.
    public static func give(_ path: String, to user: String?) throws {
        guard ProcessRunner.isRoot, let user, let account = getpwnam(user) else { return }
        guard chown(path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
            throw OperatorError("cannot give \(path) to OS user \(user): \(String(cString: strerror(errno)))")
        }
    }

    /// A free TCP port on 127.0.0.1 (bound once with port 0, then released).
    public static func freePort() throws -> Int { try LoopbackPort.free() }

    /// Whether `user` can reach `path` (every ancestor searchable). When nfldb runs as root and the
    /// working directory is private, the cluster is placed elsewhere instead.
    public static func isReachable(_ path: String, byUser user: String?) -> Bool {
        guard ProcessRunner.isRoot, let user, let account = getpwnam(user) else { return true }
        let uid = account.pointee.pw_uid
        let gid = account.pointee.pw_gid
        var current = (path as NSString).standardizingPath
        while current != "/" && !current.isEmpty {
            current = (current as NSString).deletingLastPathComponent
            var info = stat()
            guard stat(current, &info) == 0 else { continue }
            let mode = info.st_mode
            let searchable = (info.st_uid == uid && mode & S_IXUSR != 0) || (info.st_gid == gid && mode & S_IXGRP != 0) || mode & S_IXOTH != 0
            if !searchable { return false }
        }
        return true
    }

    /// A random password of URL-safe characters.
    public static func randomPassword(length: Int = 24) -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}
