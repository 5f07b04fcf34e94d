import Foundation
import Logging
import NFLDBCore

/// A Redis Sentinel group that watches one master: the sentinels' addresses and the master's name.
public struct RedisSentinelSettings: Sendable, Hashable {
    /// Sentinel addresses (TCP); their `password` is the sentinels' own `requirepass`, if any.
    public var sentinels: [RedisEndpoint]
    /// The name the sentinels monitor the master under (`sentinel monitor NAME …`).
    public var masterName: String

    public init(sentinels: [RedisEndpoint], masterName: String) {
        self.sentinels = sentinels
        self.masterName = masterName
    }

    /// Parses `host:port` entries (`[v6]:port`; the port defaults to 26379).
    /// - Throws: ``RedisError`` of kind `.invalidEndpoint` naming the bad entry.
    public init(addresses: [String], masterName: String, password: String? = nil) throws {
        guard !addresses.isEmpty else {
            var error = RedisError(kind: .invalidEndpoint, message: "redis.sentinels is empty")
            error.hint = "List the sentinels as host:port (e.g. [127.0.0.1:26379, 127.0.0.1:26380, 127.0.0.1:26381])."
            throw error
        }
        guard !masterName.isEmpty else {
            var error = RedisError(kind: .invalidEndpoint, message: "redis.master_name is empty")
            error.hint = "Give the name the sentinels monitor (the NAME in `sentinel monitor NAME host port quorum`)."
            throw error
        }
        sentinels = try addresses.map { text in
            let (host, port) = try RedisEndpoint.hostAndPort(text, defaultPort: 26379, what: "redis.sentinels entry")
            return RedisEndpoint(host: host, port: port, password: password)
        }
        self.masterName = masterName
    }
}

/// Where the Redis master is: one fixed endpoint (`redis.url`), or whatever a Sentinel group says
/// is the master now (`redis.sentinels` + `redis.master_name`).
///
/// ``connect(clientName:commandTimeout:retryWindow:logger:)`` is the one way the queue opens a
/// connection. With Sentinel it asks the sentinels for the master's address
/// (`SENTINEL get-master-addr-by-name`), connects with ``endpoint``'s credentials and database, and
/// checks with `ROLE` that the server really is a master (a sentinel may still name a demoted one
/// for a moment after a failover). Until that succeeds it retries with exponential backoff and
/// jitter, for at most `retryWindow` (a failover takes down-after-milliseconds plus the election).
public struct RedisLocator: Sendable, CustomStringConvertible {
    /// Credentials and database of the master; also its address when ``sentinel`` is nil.
    public var endpoint: RedisEndpoint
    public var sentinel: RedisSentinelSettings?

    public init(endpoint: RedisEndpoint, sentinel: RedisSentinelSettings? = nil) {
        self.endpoint = endpoint
        self.sentinel = sentinel
    }

    /// `127.0.0.1:6379`, or `sentinel master NAME via 127.0.0.1:26379,…`; never a password.
    public var description: String {
        guard let sentinel else { return endpoint.description }
        return "master \(sentinel.masterName) via sentinels \(sentinel.sentinels.map(\.description).joined(separator: ","))"
    }

    /// Opens a connection to the current master.
    ///
    /// - Parameters:
    ///   - retryWindow: with Sentinel, how long to keep rediscovering while no master answers
    ///     (connection refused, a sentinel naming a replica or a dead master); nil or zero tries once.
    ///     A fixed endpoint is always tried once.
    /// - Throws: ``RedisError``: authentication failures at once; otherwise the last failure, saying
    ///   how many attempts were made over how long.
    public func connect(
        clientName: String? = "nfldb", connectTimeout: Duration = .seconds(5), commandTimeout: Duration? = .seconds(30),
        retryWindow: Duration? = nil, logger: Logger
    ) throws -> RedisConnection {
        guard let sentinel else {
            return try RedisConnection.connect(endpoint, connectTimeout: connectTimeout, commandTimeout: commandTimeout, clientName: clientName, logger: logger)
        }
        let started = ContinuousClock.now
        let deadline = started + (retryWindow ?? .zero)
        var attempt = 0
        while true {
            attempt += 1
            do {
                let master = try discoverMaster(sentinel, logger: logger)
                let connection = try RedisConnection.connect(
                    master, connectTimeout: connectTimeout, commandTimeout: commandTimeout, clientName: clientName, logger: logger)
                do {
                    let role = try connection.role()
                    guard role.name == "master" else {
                        connection.close()
                        var error = RedisError(kind: .connection, message: "Sentinel named \(master.description) as master \(sentinel.masterName), but it answers ROLE with \(role.name)")
                        error.target = master.description
                        error.code = "NOTMASTER"
                        error.hint = "A failover is probably in progress; it is retried until redis.failover_timeout. If it persists, check `SENTINEL masters` on the sentinels."
                        throw error
                    }
                    connection.connectedReplicas = role.replicas
                } catch {
                    connection.close()
                    throw error
                }
                if attempt > 1 {
                    logger.notice("connected to the Redis master after rediscovery", metadata: [
                        "redis.target": .string(master.description), "redis.master_name": .string(sentinel.masterName),
                        "attempts": .stringConvertible(attempt)])
                }
                return connection
            } catch let error as RedisError {
                let retryable = error.kind == .connection || error.kind == .connectionLost || error.kind == .timeout
                    || error.code == "READONLY" || error.code == "LOADING" || error.code == "MASTERDOWN"
                let left = deadline - ContinuousClock.now
                let backoff = min(Self.backoff(attempt: attempt), left)
                guard retryable, left > .zero else {
                    guard attempt > 1 else { throw error }
                    var final = error
                    let waited = ContinuousClock.now - started
                    final.message += " (gave up after \(attempt) attempts over \(Self.seconds(waited)))"
                    final.hint = (final.hint.map { $0 + " " } ?? "")
                        + "No master of \(sentinel.masterName) answered within redis.failover_timeout; check the sentinels (`redis-cli -p PORT SENTINEL get-master-addr-by-name \(sentinel.masterName)`)."
                    throw final
                }
                logger.debug("Redis master not reachable yet; retrying", metadata: [
                    "redis.error": .string(error.message), "attempt": .stringConvertible(attempt)])
                Thread.sleep(forTimeInterval: Double(backoff.components.attoseconds) / 1e18 + Double(backoff.components.seconds))
            }
        }
    }

    /// Asks each sentinel in turn for the master's address; the first answer wins.
    /// - Throws: ``RedisError`` (kind `.connection`) listing what each sentinel said.
    public func discoverMaster(_ sentinel: RedisSentinelSettings, logger: Logger) throws -> RedisEndpoint {
        var failures: [String] = []
        for address in sentinel.sentinels {
            do {
                let connection = try RedisConnection.connect(
                    address, connectTimeout: .seconds(1), commandTimeout: .seconds(2), clientName: nil, logger: logger)
                defer { connection.close() }
                let reply = try connection.command("SENTINEL", "get-master-addr-by-name", RedisArgument(sentinel.masterName))
                guard let pair = try reply.decodeArray(for: "SENTINEL get-master-addr-by-name") else {
                    failures.append("\(address.description): does not monitor a master named \(sentinel.masterName)")
                    continue
                }
                guard pair.count == 2, let host = pair[0].string, let port = pair[1].string.flatMap({ Int($0) }) else {
                    failures.append("\(address.description): unexpected reply \(reply)")
                    continue
                }
                var master = endpoint
                master.address = .tcp(host: host, port: port)
                return master
            } catch let error as RedisError where error.kind == .authentication {
                var error = error
                error.message = "sentinel \(address.description) refused the login: \(error.message)"
                error.hint = "Check redis.sentinel_password against the sentinels' requirepass."
                throw error
            } catch {
                failures.append("\(address.description): \((error as? RedisError)?.message ?? String(describing: error))")
            }
        }
        var error = RedisError(kind: .connection, message: "no sentinel named a master for \(sentinel.masterName): " + failures.joined(separator: "; "))
        error.target = sentinel.sentinels.map(\.description).joined(separator: ",")
        error.hint = "Check that the sentinels in redis.sentinels are running and monitor \(sentinel.masterName) (redis.master_name)."
        throw error
    }

    static func backoff(attempt: Int) -> Duration {
        let base = 50.0 * Double(1 << min(attempt - 1, 5))
        return .milliseconds(Int(min(1000, base) * Double.random(in: 0.75...1.25)))
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1fs", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}

extension RedisEndpoint {
    /// Splits `host:port`, `[v6]:port` or `host` (then `defaultPort`).
    public static func hostAndPort(_ text: String, defaultPort: Int, what: String) throws -> (String, Int) {
        func invalid(_ reason: String) -> RedisError {
            var error = RedisError(kind: .invalidEndpoint, message: "invalid \(what) \"\(text.prefix(100))\": \(reason)")
            error.hint = "Write host:port, e.g. 127.0.0.1:26379 (IPv6 as [::1]:26379)."
            return error
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var host = trimmed
        var portText: Substring?
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { throw invalid("unclosed [") }
            host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            let rest = trimmed[trimmed.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw invalid("expected :port after ]") }
                portText = rest.dropFirst()
            }
        } else if let colon = trimmed.lastIndex(of: ":") {
            host = String(trimmed[..<colon])
            portText = trimmed[trimmed.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains("/"), !host.contains("@") else { throw invalid("no host") }
        var port = defaultPort
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number) else { throw invalid("port \"\(portText)\" is not 1–65535") }
            port = number
        }
        return (host, port)
    }
}

extension RedisConnection {
    /// `ROLE`: `master`, `slave` or `sentinel`, and (for a master) how many replicas are connected.
    public func role() throws -> (name: String, replicas: Int) {
        let reply = try command("ROLE")
        guard let parts = try reply.decodeArray(for: "ROLE"), let name = parts.first?.string else {
            throw RedisError(kind: .unexpectedReply, message: "ROLE returned \(reply)")
        }
        let replicas = name == "master" && parts.count >= 3 ? (parts[2].elements?.count ?? 0) : 0
        return (name, replicas)
    }
}
