import Foundation
import Logging
import NFLDBCore
import NFLDBRedis
import NFLDBTestSupport
import Synchronization

/// A throwaway Sentinel setup for failover tests: one master, one replica and three sentinels
/// (quorum 2), every process on 127.0.0.1 on a free port with its own directory under the temp dir.
///
/// Sentinels use fast timeouts (`down-after-milliseconds` 1000, `failover-timeout` 3000), so a
/// SIGKILLed master is replaced within a few seconds. ``stop()`` stops every process (also the
/// ones a test killed) and removes every directory; ``processIDs`` and ``directories`` let a test
/// assert that nothing is left.
public final class RedisSentinelTestGroup: Sendable {
    public let masterName: String
    public let master: RedisTestServer
    public let replica: RedisTestServer
    public let sentinels: [SentinelProcess]
    public let password: String?

    /// One `redis-server --sentinel`.
    public final class SentinelProcess: Sendable {
        public let port: Int
        public let directory: String
        public let process: ChildProcess
        init(port: Int, directory: String, process: ChildProcess) {
            self.port = port
            self.directory = directory
            self.process = process
        }
        public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port) }
        public var logPath: String { directory + "/sentinel.log" }
        public func logTail(_ count: Int = 10) -> String {
            ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").suffix(count).joined(separator: "\n")
        }
    }

    private init(masterName: String, master: RedisTestServer, replica: RedisTestServer, sentinels: [SentinelProcess], password: String?) {
        self.masterName = masterName
        self.master = master
        self.replica = replica
        self.sentinels = sentinels
        self.password = password
    }

    /// `127.0.0.1:PORT` of each sentinel, as `redis.sentinels` takes them.
    public var sentinelAddresses: [String] { sentinels.map { "127.0.0.1:\($0.port)" } }

    public var sentinelSettings: RedisSentinelSettings {
        RedisSentinelSettings(sentinels: sentinels.map(\.endpoint), masterName: masterName)
    }

    /// Credentials and database of the master (its address is what the sentinels say).
    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: master.port, password: password) }

    /// Every process this group started (redis-server master and replica, the three sentinels).
    public var processIDs: [pid_t] { [master.process.pid, replica.process.pid] + sentinels.map(\.process.pid) }
    public var directories: [String] { [master.directory, replica.directory] + sentinels.map(\.directory) }

    /// Starts master, replica (waits for its link) and sentinels (waits until each knows the replica
    /// and the two other sentinels, so a failover can be authorised).
    public static func start(masterName: String = "nfldbmaster", password: String? = nil, timeout: Duration = .seconds(40)) throws -> RedisSentinelTestGroup {
        var auth: [String] = []
        if let password { auth = ["masterauth \(password)"] }
        let master = try RedisTestServer.start(password: password, settings: auth + ["repl-diskless-sync-delay 0", "repl-diskless-sync no"])
        var started: [SentinelProcess] = []
        var replica: RedisTestServer?
        do {
            replica = try RedisTestServer.start(password: password, settings: auth + [
                "replicaof 127.0.0.1 \(master.port)", "repl-diskless-sync-delay 0", "repl-diskless-sync no", "replica-read-only yes",
            ])
            try waitUntil("the replica 127.0.0.1:\(replica!.port) linked to the master: \(replica!.logTail(5))", timeout: timeout) {
                let connection = try replica!.connect(commandTimeout: .seconds(2))
                defer { connection.close() }
                return (try connection.command("INFO", "replication").string ?? "").contains("master_link_status:up")
            }
            let executable = master.process.command[0]
            for _ in 0..<3 {
                started.append(try startSentinel(executable: executable, masterName: masterName, masterPort: master.port, password: password))
            }
            let group = RedisSentinelTestGroup(masterName: masterName, master: master, replica: replica!, sentinels: started, password: password)
            for sentinel in started {
                try waitUntil("sentinel \(sentinel.port) sees the replica and 2 other sentinels: \(sentinel.logTail(5))", timeout: timeout) {
                    let info = try group.masterInfo(sentinel)
                    return info["num-slaves"] == "1" && info["num-other-sentinels"] == "2" && info["flags"] == "master"
                }
            }
            return group
        } catch {
            for sentinel in started { stopSentinel(sentinel) }
            replica?.stop()
            master.stop()
            throw error
        }
    }

    private static func startSentinel(executable: String, masterName: String, masterPort: Int, password: String?) throws -> SentinelProcess {
        let port = try LoopbackPort.free()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("nfldb-sentinel-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var lines = [
            "bind 127.0.0.1", "port \(port)", "dir \(directory)", "logfile \(directory)/sentinel.log", "daemonize no",
            "sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 2",
            "sentinel down-after-milliseconds \(masterName) 1000",
            "sentinel failover-timeout \(masterName) 3000",
            "sentinel parallel-syncs \(masterName) 1",
        ]
        if let password { lines.append("sentinel auth-pass \(masterName) \(password)") }
        let config = directory + "/sentinel.conf"
        // Sentinel rewrites its config file (the new master after a failover), so it must be writable.
        guard FileManager.default.createFile(atPath: config, contents: Data((lines.joined(separator: "\n") + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600])
        else { throw RedisTestServerError(reason: "cannot write \(config)", logTail: "") }
        let child = try ChildProcess.spawn(executable, [config, "--sentinel"])
        let sentinel = SentinelProcess(port: port, directory: directory, process: child)
        let up = poll(timeout: .seconds(15)) {
            guard child.exitStatus == nil else { return true }
            guard let connection = try? RedisConnection.connect(sentinel.endpoint, commandTimeout: .seconds(2), clientName: nil, logger: RedisTestServer.logger)
            else { return false }
            defer { connection.close() }
            return (try? connection.ping()) != nil
        }
        if !up || child.exitStatus != nil {
            let tail = sentinel.logTail() + "\n" + child.outputTail(5)
            stopSentinel(sentinel)
            throw RedisTestServerError(reason: "redis-server --sentinel on 127.0.0.1:\(port) did not start", logTail: tail)
        }
        return sentinel
    }

    private static func stopSentinel(_ sentinel: SentinelProcess) {
        _ = sentinel.process.stop(grace: .seconds(5))
        sentinel.process.removeOutput()
        try? FileManager.default.removeItem(atPath: sentinel.directory)
    }

    /// `SENTINEL master NAME` of one sentinel, as a dictionary.
    public func masterInfo(_ sentinel: SentinelProcess) throws -> [String: String] {
        let connection = try RedisConnection.connect(sentinel.endpoint, commandTimeout: .seconds(2), clientName: nil, logger: RedisTestServer.logger)
        defer { connection.close() }
        let flat = try connection.command("SENTINEL", "master", RedisArgument(masterName)).decodeArray(for: "SENTINEL master") ?? []
        var info: [String: String] = [:]
        var index = 0
        while index + 1 < flat.count {
            info[flat[index].string ?? ""] = flat[index + 1].string ?? ""
            index += 2
        }
        return info
    }

    /// The master's port according to the first sentinel that answers.
    public func currentMasterPort() throws -> Int {
        var last: (any Error)?
        for sentinel in sentinels {
            do {
                let connection = try RedisConnection.connect(sentinel.endpoint, commandTimeout: .seconds(2), clientName: nil, logger: RedisTestServer.logger)
                defer { connection.close() }
                let pair = try connection.command("SENTINEL", "get-master-addr-by-name", RedisArgument(masterName)).decodeArray(for: "SENTINEL") ?? []
                if pair.count == 2, let port = pair[1].string.flatMap({ Int($0) }) { return port }
            } catch {
                last = error
            }
        }
        throw last ?? RedisTestServerError(reason: "no sentinel knows \(masterName)", logTail: "")
    }

    /// The sentinels' logs (for failure messages).
    public func sentinelLogs(_ count: Int = 8) -> String {
        sentinels.map { "--- sentinel \($0.port) ---\n\($0.logTail(count))" }.joined(separator: "\n")
    }

    /// Stops every process (SIGTERM, then SIGKILL) and removes every directory.
    public func stop() {
        for sentinel in sentinels { Self.stopSentinel(sentinel) }
        replica.stop()
        master.stop()
    }
}
