import CHiredis
import Foundation
import Logging
import NFLDBCore

/// One connection to a Redis server, owning a hiredis `redisContext` (blocking API).
///
/// **How it may be used:** like `PostgresConnection`, a `RedisConnection` is deliberately *not*
/// `Sendable`: hiredis contexts are not thread-safe, so the compiler keeps each connection in the task
/// (or thread) that opened it; concurrent work opens several connections. Every call blocks the
/// calling thread until the server answers or the command timeout passes, so long-running users
/// (workers) should run on their own threads, not on the cooperative pool.
///
/// Arguments are always sent with `redisCommandArgv`/`redisAppendCommandArgv` (length-framed, binary
/// safe); no command text is ever built by formatting values into it.
///
/// After an I/O error, a timeout or a protocol error hiredis cannot use the context again: the
/// connection remembers the failure and every later call throws it (kind `.connectionLost`); open a
/// new connection.
public final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    public let logger: Logger
    /// Host and port (or socket path) and database, never the password.
    public let target: String
    private var closed = false
    /// Set after the first unrecoverable failure; later calls throw it.
    private var failure: RedisError?
    /// Replicas the master had connected when ``RedisLocator`` checked its `ROLE` (nil: not checked).
    public var connectedReplicas: Int?

    private init(context: UnsafeMutablePointer<redisContext>, logger: Logger, target: String) {
        self.context = context
        self.logger = logger
        self.target = target
    }

    deinit {
        if !closed { redisFree(context) }
    }

    /// Opens a connection, logs in and selects the database, in one round trip.
    ///
    /// The corresponding hiredis functions are `redisConnectWithTimeout` and
    /// `redisConnectUnixWithTimeout`; then `AUTH`, `SELECT` and `CLIENT SETNAME` are pipelined.
    ///
    /// - Parameters:
    ///   - connectTimeout: bound on the TCP/Unix connect.
    ///   - commandTimeout: bound on each later send and reply (`redisSetTimeout`); nil waits forever
    ///     (only for blocking commands such as `BLMOVE` with their own timeout).
    ///   - clientName: shown in `CLIENT LIST` (the Redis equivalent of `application_name`).
    /// - Throws: ``RedisError`` of kind `.connection` (naming the target and what to check) or
    ///   `.authentication` (never showing the password).
    public static func connect(
        _ endpoint: RedisEndpoint, connectTimeout: Duration = .seconds(5), commandTimeout: Duration? = .seconds(30),
        clientName: String? = "nfldb", logger: Logger
    ) throws -> RedisConnection {
        _ = ignoreSIGPIPE
        let target = endpoint.description
        let connected: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port):
            connected = redisConnectWithTimeout(host, Int32(clamping: port), timeval(connectTimeout))
        case .unix(let path):
            connected = redisConnectUnixWithTimeout(path, timeval(connectTimeout))
        }
        guard let context = connected else {
            throw RedisError(kind: .connection, message: "could not allocate a hiredis context for \(target) (out of memory)")
        }
        if context.pointee.err != 0 {
            let reason = errorText(context)
            redisFree(context)
            var error = RedisError(kind: .connection, message: "could not connect to Redis at \(target): \(reason)")
            error.target = target
            switch endpoint.address {
            case .tcp:
                error.hint = "Check that redis-server is running and listening on \(target) (its bind and port settings), "
                    + "and that redis.url points there."
            case .unix(let path):
                error.hint = "Check that redis-server is running with unixsocket \(path) and that this user may open it (unixsocketperm)."
            }
            throw error
        }
        let connection = RedisConnection(context: context, logger: logger, target: target)
        try connection.setCommandTimeout(commandTimeout)
        try connection.handshake(endpoint, clientName: clientName)
        logger.debug("connected to Redis", metadata: ["redis.target": .string(target)])
        return connection
    }

    /// AUTH, SELECT and CLIENT SETNAME in one pipeline; the first failure is thrown.
    private func handshake(_ endpoint: RedisEndpoint, clientName: String?) throws {
        var commands: [[RedisArgument]] = []
        if let password = endpoint.password {
            commands.append(["AUTH"] + (endpoint.username.map { [RedisArgument($0)] } ?? []) + [RedisArgument(password)])
        }
        if endpoint.database != 0 { commands.append(["SELECT", RedisArgument(endpoint.database)]) }
        commands.append(clientName.map { ["CLIENT", "SETNAME", RedisArgument($0)] } ?? ["PING"])
        let replies = try pipeline(commands)
        for (command, reply) in zip(commands, replies) {
            guard case .error(let text) = reply else { continue }
            let name = String(decoding: command[0].bytes, as: UTF8.self)
            let code = reply.errorCode ?? "ERR"
            var error: RedisError
            if name == "AUTH" || code == "NOAUTH" || code == "WRONGPASS" {
                let who = endpoint.username.map { "user \($0)" } ?? "the default user"
                let what = name == "AUTH" ? "refused the password for \(who)" : "requires a password"
                error = RedisError(kind: .authentication, message: "Redis at \(target) \(what): \(Self.scrub(text, endpoint.password))")
                error.hint = RedisError.hint(forCode: name == "AUTH" ? "WRONGPASS" : "NOAUTH", target: target)
            } else if name == "SELECT" {
                error = RedisError(kind: .server, message: "Redis at \(target) has no database \(endpoint.database): \(text)")
                error.hint = "Use a database number below the server's `databases` setting (16 by default) in redis.url."
            } else {
                error = RedisError(kind: .server, message: "Redis at \(target): \(name) failed: \(text)")
                error.hint = RedisError.hint(forCode: code, target: target)
            }
            error.target = target
            error.command = name
            error.code = code
            close()
            throw error
        }
    }

    /// Closes the connection now (also done on deinit). The corresponding hiredis function is `redisFree`.
    public func close() {
        guard !closed else { return }
        closed = true
        redisFree(context)
    }

    /// Whether the connection is open and has not failed.
    public var isAlive: Bool { !closed && failure == nil }

    /// Changes the bound on each send and reply; nil waits forever. The hiredis function is `redisSetTimeout`.
    public func setCommandTimeout(_ timeout: Duration?) throws {
        try checkUsable("CLIENT")
        guard redisSetTimeout(context, timeout.map(Self.timeval) ?? Foundation.timeval(tv_sec: 0, tv_usec: 0)) == REDIS_OK else {
            throw fail(command: nil)
        }
    }

    /// Runs one command and returns its reply; an error reply is thrown as ``RedisError`` (kind `.server`,
    /// or `.authentication` for `NOAUTH`/`WRONGPASS`).
    public func command(_ arguments: [RedisArgument]) throws -> RedisReply {
        let name = Self.commandName(arguments)
        try checkUsable(name)
        guard !arguments.isEmpty else {
            throw RedisError(kind: .unexpectedReply, message: "an empty Redis command was not sent")
        }
        let raw = Self.withArgv(arguments) { argc, argv, lengths in redisCommandArgv(context, argc, argv, lengths) }
        guard let raw else { throw fail(command: name) }
        let reply = try take(raw, command: name)
        if case .error(let text) = reply {
            let error = serverError(text, command: name)
            if error.code == "READONLY" { failure = error }
            throw error
        }
        return reply
    }

    /// `command(["SET", key, value])` written as `command("SET", key, value)`.
    public func command(_ name: RedisArgument, _ arguments: RedisArgument...) throws -> RedisReply {
        try command([name] + arguments)
    }

    /// Sends every command, then reads every reply (one round trip for the batch).
    ///
    /// Error replies are returned in place as ``RedisReply/error(_:)`` rather than thrown: the other
    /// commands of the batch did run. A lost connection throws (it is then unusable; which commands
    /// the server executed is unknown).
    public func pipeline(_ commands: [[RedisArgument]]) throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        try checkUsable(Self.commandName(commands[0]))
        for arguments in commands {
            guard !arguments.isEmpty else {
                throw RedisError(kind: .unexpectedReply, message: "an empty Redis command in a pipeline; nothing was sent")
            }
        }
        for arguments in commands {
            let status = Self.withArgv(arguments) { argc, argv, lengths in redisAppendCommandArgv(context, argc, argv, lengths) }
            guard status == REDIS_OK else { throw fail(command: Self.commandName(arguments)) }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for arguments in commands {
            let name = Self.commandName(arguments)
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw fail(command: name) }
            replies.append(try take(raw, command: name))
        }
        // A replica (a master demoted by a failover) answers writes with READONLY: this connection
        // cannot serve the queue any more; the caller reconnects (and rediscovers the master).
        for (index, reply) in replies.enumerated() {
            if case .error(let text) = reply, Self.isReadOnly(text) {
                failure = serverError(text, command: Self.commandName(commands[index]))
                break
            }
        }
        return replies
    }

    /// Returns `reply`, or throws it as ``RedisError`` when it is an error reply (from a ``pipeline(_:)``).
    public func check(_ reply: RedisReply, command: String) throws -> RedisReply {
        if case .error(let text) = reply { throw serverError(text, command: command) }
        return reply
    }

    /// `PING`, expecting `PONG`.
    public func ping() throws {
        try command("PING").decodeStatus("PONG", for: "PING")
    }

    // MARK: - Internals

    private func checkUsable(_ command: String?) throws {
        if let failure { throw failure.lostAgain(command) }
        if closed {
            var error = RedisError(kind: .connectionLost, message: "the connection to Redis at \(target) was closed")
            error.target = target
            error.command = command
            error.hint = "Open a new connection."
            throw error
        }
    }

    /// Converts and frees a top-level reply (only the top level may be freed: it frees its elements).
    private func take(_ raw: UnsafeMutableRawPointer, command: String) throws -> RedisReply {
        defer { freeReplyObject(raw) }
        do {
            return try Self.convert(raw.assumingMemoryBound(to: redisReply.self))
        } catch var error as RedisError {
            error.target = target
            error.command = command
            throw error
        }
    }

    /// Whether an error reply says the server is a read-only replica (also inside a script's error text).
    static func isReadOnly(_ text: String) -> Bool {
        text.hasPrefix("READONLY") || text.contains("-READONLY") || text.contains("read only replica")
    }

    private func serverError(_ text: String, command: String) -> RedisError {
        var code = text.split(separator: " ", maxSplits: 1).first.map(String.init) ?? "ERR"
        if code != "READONLY" && Self.isReadOnly(text) { code = "READONLY" }
        let authentication = code == "NOAUTH" || code == "WRONGPASS"
        var error = RedisError(kind: authentication ? .authentication : .server, message: "Redis \(command) failed at \(target): \(text)")
        error.target = target
        error.command = command
        error.code = code
        error.hint = RedisError.hint(forCode: code, target: target)
        return error
    }

    /// Records the context's error (the context is unusable from now on) and returns it.
    private func fail(command: String?) -> RedisError {
        let reason = Self.errorText(context)
        let code = context.pointee.err
        var error: RedisError
        if code == REDIS_ERR_IO && (reason.contains("temporarily unavailable") || reason.contains("timed out")) {
            error = RedisError(kind: .timeout, message: "no reply from Redis at \(target) within the command timeout")
            error.hint = "The server is overloaded, blocked (a slow script or command) or unreachable; check it with redis-cli -h/-p, "
                + "then retry with a new connection."
        } else if code == REDIS_ERR_EOF || code == REDIS_ERR_IO {
            error = RedisError(kind: .connectionLost, message: "lost the connection to Redis at \(target): \(reason)")
            error.hint = "The server closed the connection (restart, crash, timeout or CLIENT KILL); check that it is up, "
                + "then retry with a new connection. Commands sent just before may or may not have run."
        } else {
            error = RedisError(kind: .protocolViolation, message: "hiredis failed talking to Redis at \(target): \(reason)")
            error.hint = "Open a new connection; if it persists, check that \(target) is a Redis server."
        }
        error.target = target
        error.command = command
        failure = error
        logger.debug("Redis connection failed", metadata: ["redis.target": .string(target), "redis.error": .string(reason)])
        return error
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "unknown error (hiredis code \(context.pointee.err))" : text
    }

    static func convert(_ reply: UnsafeMutablePointer<redisReply>) throws -> RedisReply {
        let value = reply.pointee
        func text() -> [UInt8] {
            guard let str = value.str, value.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: value.len))
        }
        switch value.type {
        case REDIS_REPLY_STATUS: return .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(value.integer))
        case REDIS_REPLY_STRING: return .bulk(text())
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                guard let element = value.element?[index] else { elements.append(.null); continue }
                elements.append(try convert(element))
            }
            return .array(elements)
        default:
            throw RedisError(kind: .protocolViolation, message: "unsupported Redis reply type \(value.type) (hiredis 0.14 speaks RESP2 only)")
        }
    }

    /// Lays the arguments out in one buffer and calls `body` with hiredis's `argc`/`argv`/`argvlen`
    /// (hiredis copies them into its output buffer, so they are freed right after).
    static func withArgv<R>(
        _ arguments: [RedisArgument], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let count = max(arguments.count, 1)
        let total = arguments.reduce(0) { $0 + $1.bytes.count }
        let storage = UnsafeMutablePointer<CChar>.allocate(capacity: total + 1)
        let argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: count)
        let argvlen = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer {
            storage.deallocate()
            argv.deallocate()
            argvlen.deallocate()
        }
        var offset = 0
        for (index, argument) in arguments.enumerated() {
            argument.bytes.withUnsafeBytes { bytes in
                UnsafeMutableRawPointer(storage + offset).copyMemory(from: bytes.baseAddress ?? UnsafeRawPointer(storage), byteCount: bytes.count)
            }
            (argv + index).initialize(to: UnsafePointer(storage + offset))
            (argvlen + index).initialize(to: argument.bytes.count)
            offset += argument.bytes.count
        }
        return body(Int32(arguments.count), argv, argvlen)
    }

    static func commandName(_ arguments: [RedisArgument]) -> String {
        guard let first = arguments.first else { return "(empty)" }
        return String(decoding: first.bytes.prefix(32), as: UTF8.self).uppercased()
    }

    static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        return Foundation.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Removes the password from a message (defence in depth: Redis never echoes it).
    public static func scrubbed(_ text: String, _ password: String?) -> String { scrub(text, password) }

    /// Removes the password from a server message (Redis never echoes it; defence in depth).
    static func scrub(_ text: String, _ password: String?) -> String {
        guard let password, !password.isEmpty else { return text }
        return text.replacingOccurrences(of: password, with: SecretRedactor.mask)
    }

    /// hiredis writes with `write(2)`: to a socket the server has closed, that raises SIGPIPE, which
    /// would kill the process instead of returning EPIPE. Ignored once, process-wide, on first connect
    /// (child processes started by ProcessRunner get the default disposition back).
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()
}

@available(*, unavailable, message: "a RedisConnection must stay in the task that opened it; open another connection instead")
extension RedisConnection: Sendable {}

extension RedisError {
    /// The stored failure, re-thrown for a later call on the same broken connection.
    func lostAgain(_ command: String?) -> RedisError {
        var error = self
        if kind != .connectionLost && kind != .timeout { error.kind = .connectionLost }
        error.message = "the connection to Redis at \(target ?? "?") is unusable after an earlier failure: \(message)"
        error.command = command
        error.hint = "Open a new connection."
        return error
    }
}
