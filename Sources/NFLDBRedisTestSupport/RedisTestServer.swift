import Foundation
import Logging
import NFLDBCore
import NFLDBRedis
import NFLDBTestSupport
import Synchronization

/// A throwaway `redis-server` for one test (or suite): 127.0.0.1 on a free port plus a Unix socket,
/// its directory, config and log under a temp dir, no persistence unless asked for.
///
/// ``start(password:settings:)`` waits until the server answers PING and fails loudly, with the tail
/// of the server's log, when it cannot start. ``stop()`` stops it and removes the directory; servers
/// still running at process exit are stopped then too. As with ``TestCluster`` there is no silent
/// skip: a missing `redis-server` is a failure naming `ci/setup`.
public final class RedisTestServer: Sendable {
    public let port: Int
    public let directory: String
    public let password: String?
    private let current: Mutex<ChildProcess>
    /// The running `redis-server` (a new one after ``restart(kill:timeout:)``).
    public var process: ChildProcess { current.withLock { $0 } }
    public var configPath: String { directory + "/redis.conf" }
    public var socketPath: String { directory + "/redis.sock" }
    public var logPath: String { directory + "/redis.log" }

    private init(port: Int, directory: String, password: String?, process: ChildProcess) {
        self.port = port
        self.directory = directory
        self.password = password
        self.current = Mutex(process)
    }

    /// The TCP endpoint, with the password if the server has one.
    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port, password: password) }

    /// The Unix-socket endpoint.
    public var socketEndpoint: RedisEndpoint { RedisEndpoint(socketPath: socketPath, password: password) }

    public static let logger: Logger = {
        var logger = Logger(label: "nfldb.tests.redis") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }()

    /// Starts a server and waits (up to `timeout`) until it answers PING.
    ///
    /// - Parameters:
    ///   - password: sets `requirepass`.
    ///   - settings: extra `redis.conf` lines, e.g. `["appendonly yes", "appendfsync everysec"]`.
    /// - Throws: ``RedisTestServerError`` with the log tail when the server cannot start.
    public static func start(password: String? = nil, settings: [String] = [], timeout: Duration = .seconds(15)) throws -> RedisTestServer {
        let executable: String
        do {
            executable = try ProcessRunner.resolveExecutable("redis-server", extraDirectories: ["/usr/bin", "/usr/local/bin"])
        } catch {
            throw RedisTestServerError(reason: "redis-server is not installed (\(error)); run ci/setup", logTail: "")
        }
        var lastFailure: RedisTestServerError?
        for _ in 0..<3 {
            let port = try LoopbackPort.free()
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("nfldb-redis-\(getpid())-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            // The config is a file (0600), so the password is not on the command line for `ps` to show.
            var lines = [
                "bind 127.0.0.1", "port \(port)", "dir \(directory)", "unixsocket \(directory)/redis.sock", "unixsocketperm 700",
                "logfile \(directory)/redis.log", "daemonize no", "save \"\"", "appendonly no", "protected-mode yes",
            ]
            if let password { lines.append("requirepass \(password)") }
            lines += settings
            let config = directory + "/redis.conf"
            guard FileManager.default.createFile(
                atPath: config, contents: Data((lines.joined(separator: "\n") + "\n").utf8), attributes: [.posixPermissions: 0o600])
            else {
                throw RedisTestServerError(reason: "cannot write \(config)", logTail: "")
            }
            let child = try ChildProcess.spawn(executable, [config])
            let server = RedisTestServer(port: port, directory: directory, password: password, process: child)
            do {
                try server.waitForPing(timeout: timeout)
                register(server)
                return server
            } catch let failure as RedisTestServerError {
                lastFailure = failure
                server.stop()
                // Another process took the port between probing and binding: try a new one.
                guard failure.logTail.contains("Address already in use") else { throw failure }
            }
        }
        throw lastFailure ?? RedisTestServerError(reason: "redis-server did not start", logTail: "")
    }

    /// Starts a server, runs `body`, and stops it afterwards.
    public static func with<T>(password: String? = nil, settings: [String] = [], _ body: (RedisTestServer) throws -> T) throws -> T {
        let server = try start(password: password, settings: settings)
        defer { server.stop() }
        return try body(server)
    }

    /// Opens a connection to this server (TCP unless `socket`).
    public func connect(socket: Bool = false, commandTimeout: Duration? = .seconds(10)) throws -> RedisConnection {
        try RedisConnection.connect(socket ? socketEndpoint : endpoint, commandTimeout: commandTimeout, clientName: "nfldb-test", logger: Self.logger)
    }

    private func waitForPing(timeout: Duration) throws {
        var lastError = "no attempt"
        let up = poll(timeout: timeout, interval: .milliseconds(20)) {
            if let status = process.exitStatus {
                lastError = "redis-server exited with status \(status)"
                return true
            }
            do {
                let connection = try connect(commandTimeout: .seconds(2))
                defer { connection.close() }
                try connection.ping()
                return true
            } catch {
                lastError = String(describing: error)
                return false
            }
        }
        if !up || process.exitStatus != nil {
            throw RedisTestServerError(
                reason: "redis-server on 127.0.0.1:\(port) (dir \(directory)) did not answer PING within \(timeout): \(lastError)",
                logTail: logTail())
        }
    }

    /// The last `count` lines of the server's log, then its stdout/stderr.
    public func logTail(_ count: Int = 15) -> String {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return (log.split(separator: "\n").suffix(count).map(String.init) + [process.outputTail(5)]).filter { !$0.isEmpty }.joined(separator: "\n")
    }

    /// Stops the server (SIGTERM, or SIGKILL when `kill`) and starts it again on the same port,
    /// directory and config, so its AOF/RDB files are reloaded; waits until it answers PING.
    public func restart(kill: Bool = false, timeout: Duration = .seconds(15)) throws {
        let old = process
        if kill { old.kill9() } else { old.stop(grace: .seconds(10)) }
        old.removeOutput()
        let child = try ChildProcess.spawn(old.command[0], [configPath])
        current.withLock { $0 = child }
        try waitForPing(timeout: timeout)
    }

    /// Kills the server with SIGKILL (it leaves the directory; ``stop()`` removes it).
    public func kill() {
        process.kill9()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory.
    public func stop() {
        process.stop(grace: .seconds(5))
        process.removeOutput()
        try? FileManager.default.removeItem(atPath: directory)
        Self.running.withLock { $0.removeAll { $0 === self } }
    }

    static let running = Mutex<[RedisTestServer]>([])
    private static let atExit: Void = {
        atexit {
            for server in RedisTestServer.running.withLock({ $0 }) { server.stop() }
        }
    }()

    private static func register(_ server: RedisTestServer) {
        _ = atExit
        running.withLock { $0.append(server) }
    }
}

/// Why the throwaway redis-server is not available; the test fails with this message.
public struct RedisTestServerError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public let logTail: String
    public var description: String {
        "no redis-server for the test: \(reason)" + (logTail.isEmpty ? "" : "\n--- redis.log (tail) ---\n\(logTail)")
    }
}
