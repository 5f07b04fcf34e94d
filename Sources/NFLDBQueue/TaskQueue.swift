import Foundation
import Logging
import NFLDBCore
import NFLDBRedis

/// The payload envelope version this build writes and understands.
public let taskSchemaVersion = 1

/// A claimed task, as a worker sees it.
public struct ClaimedTask: Sendable, Hashable {
    public var id: String
    public var type: String
    public var queue: String
    public var payload: String
    public var attempt: Int
    public var maxAttempts: Int
    public var token: Int64
    public var enqueuedMs: Int64
    public var correlationID: String
    public var schemaVersion: Int
    public var idempotencyKey: String?
    public var priority: Int
}

/// Outcome of a fenced call (heartbeat, complete, fail, release).
public enum FenceOutcome: String, Sendable, Codable {
    case ok, retry, dead, cancelled, lost
}

/// Per-queue counts for `queue stats` and the health check.
public struct QueueStats: Sendable, Codable, Hashable {
    public var queue: String
    public var ready: Int
    public var delayed: Int
    public var inFlight: Int
    public var expiredLeases: Int
    public var dead: Int
    /// Seconds the oldest ready task has waited; nil when none is ready.
    public var oldestReadyAgeSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case queue, ready, delayed, dead
        case inFlight = "in_flight"
        case expiredLeases = "expired_leases"
        case oldestReadyAgeSeconds = "oldest_ready_age_s"
    }
}

/// What `submit` did: a new task, or the existing one for a known idempotency key.
public struct SubmitResult: Sendable, Codable, Hashable {
    public var id: String
    public var created: Bool
}

/// A failure of the queue itself (bad input, a missing task); Redis failures are ``RedisError``.
public struct QueueError: NFLDBError, Sendable {
    public var diagnostic: Diagnostic
    public var exitStatus: ExitStatus
    /// For a task's failure: retrying cannot help (the worker dead-letters the task at once).
    public var permanent = false
    public init(_ summary: String, hint: String? = nil, exitStatus: ExitStatus = .failure) {
        diagnostic = Diagnostic(summary, hint: hint)
        self.exitStatus = exitStatus
    }
}

/// The queue operations over one Redis connection (not Sendable: one per thread).
public final class TaskQueue {
    /// The current connection; ``submit`` replaces it after a failover (Sentinel).
    public private(set) var connection: RedisConnection
    public let config: QueueConfig
    let logger: Logger
    private var clientName = "nfldb-queue"
    /// When the master's connected replicas were last counted (`ROLE`), for `WAIT`.
    private var replicasCheckedAt: ContinuousClock.Instant?

    public init(connection: RedisConnection, config: QueueConfig, logger: Logger) {
        self.connection = connection
        self.config = config
        self.logger = logger
    }

    /// Opens a connection to the configured Redis (with Sentinel: the current master, rediscovered for
    /// up to `redis.failover_timeout`) and loads the scripts.
    public static func connect(_ config: QueueConfig, clientName: String = "nfldb-queue", logger: Logger) throws -> TaskQueue {
        let connection = try config.locator.connect(clientName: clientName, retryWindow: config.failoverTimeout, logger: logger)
        do {
            try connection.load(QueueScripts.all)
        } catch {
            connection.close()
            throw error
        }
        let queue = TaskQueue(connection: connection, config: config, logger: logger)
        queue.clientName = clientName
        if connection.connectedReplicas != nil { queue.replicasCheckedAt = .now }
        return queue
    }

    /// Whether an error means the master went away or was demoted (reconnect and rediscover).
    static func isFailover(_ error: RedisError) -> Bool {
        error.kind == .connectionLost || error.kind == .timeout || error.kind == .connection || error.code == "READONLY"
            || error.code == "LOADING" || error.code == "MASTERDOWN"
    }

    /// Replaces a failed connection: rediscovers the master within what is left of `deadline`.
    private func reconnect(until deadline: ContinuousClock.Instant) throws {
        connection.close()
        let left = deadline - ContinuousClock.now
        let fresh = try config.locator.connect(clientName: clientName, retryWindow: left > .zero ? left : .zero, logger: logger)
        do {
            try fresh.load(QueueScripts.all)
        } catch {
            fresh.close()
            throw error
        }
        connection = fresh
        replicasCheckedAt = fresh.connectedReplicas != nil ? .now : nil
    }

    /// How many replicas the next enqueue waits for: `redis.wait_replicas` capped at the replicas
    /// the master has connected (counted with `ROLE` at most every 5 s).
    private func replicasToWait(refresh: Bool = false) throws -> Int {
        let wanted = config.effectiveWaitReplicas
        guard wanted > 0 else { return 0 }
        if refresh || connection.connectedReplicas == nil || replicasCheckedAt.map({ ContinuousClock.now - $0 > .seconds(5) }) ?? true {
            connection.connectedReplicas = try connection.role().replicas
            replicasCheckedAt = .now
        }
        let connected = connection.connectedReplicas ?? 0
        if connected < wanted {
            logger.debug("the Redis master has fewer replicas connected than redis.wait_replicas; an enqueue waits for those it has",
                         metadata: ["redis.replicas": .stringConvertible(connected), "redis.wait_replicas": .stringConvertible(wanted)])
        }
        return min(wanted, connected)
    }

    /// Closes the Redis connection.
    public func close() { connection.close() }

    private var prefix: RedisArgument { RedisArgument(config.prefix) }

    /// The longest idempotency key, in UTF-8 bytes.
    public static let maxIdempotencyKeyBytes = 200

    static func containsNUL(_ value: Any) -> Bool {
        switch value {
        case let text as String: return text.unicodeScalars.contains("\u{0}")
        case let object as [String: Any]: return object.contains { containsNUL($0.key) || containsNUL($0.value) }
        case let array as [Any]: return array.contains { containsNUL($0) }
        default: return false
        }
    }

    static func validateName(_ name: String, what: String) throws {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        guard !name.isEmpty, name.count <= 100, name.unicodeScalars.allSatisfy({ allowed.contains($0) }) else {
            throw QueueError("invalid \(what) \"\(name.prefix(100))\": use 1–100 letters, digits, '_', '.', '-'",
                             hint: "Queue names are capabilities such as cpu, gpu_high, gpu_low, io.", exitStatus: .usage)
        }
    }

    /// Enqueues a task. `payload` must be a JSON object (checked here); it is stored with the schema version.
    public func submit(
        type: String, payload: String = "{}", queue: String = "cpu", priority: Int = 0, idempotencyKey: String? = nil,
        maxAttempts: Int? = nil, correlationID: String = "", id: String = UUID().uuidString.lowercased()
    ) throws -> SubmitResult {
        try Self.validateName(type, what: "task type")
        try Self.validateName(queue, what: "queue")
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(payload.utf8))
        } catch {
            // The parser's reason (a number out of range, a lone surrogate, nesting deeper than 512 levels…).
            let reason = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
            throw QueueError("the payload is not valid JSON (\(reason)): \(payload.prefix(80))",
                             hint: "Give --payload '{\"key\": value}' (numbers within ±1.8e308, strings in valid Unicode, at most 512 levels of nesting).",
                             exitStatus: .usage)
        }
        guard object is [String: Any] else {
            throw QueueError("the payload is not a JSON object: \(payload.prefix(80))", hint: "Give --payload '{\"key\": value}'.", exitStatus: .usage)
        }
        // PostgreSQL's jsonb (nfl.task_results.payload) refuses the NUL character (SQLSTATE 22P05).
        if Self.containsNUL(object) {
            throw QueueError("the payload contains a NUL character (\\u0000), which PostgreSQL cannot store",
                             hint: "Remove the \\u0000 from the payload (encode binary data, e.g. as base64).", exitStatus: .usage)
        }
        guard (-1000...1000).contains(priority) else {
            throw QueueError("priority \(priority) is out of range", hint: "Use -1000…1000 (higher runs first).", exitStatus: .usage)
        }
        let attempts = maxAttempts ?? config.maxAttempts
        guard attempts >= 1 else { throw QueueError("--max-attempts must be at least 1", exitStatus: .usage) }
        if let key = idempotencyKey {
            // Bytes, not characters: 'a' and 3,000 combining accents is one character but too large for the index.
            // No control, format (bidi overrides, zero-width) or line/paragraph separator characters: a key
            // is echoed in messages (an ESC, CR or U+202E in it could forge or reorder lines), and two
            // keys that look the same must be the same.
            let invisible: Set<Unicode.GeneralCategory> = [.control, .format, .lineSeparator, .paragraphSeparator]
            if key.unicodeScalars.contains(where: { invisible.contains($0.properties.generalCategory) }) {
                throw QueueError("an idempotency key may not contain control, format or separator characters (this one: \(key.unicodeScalars.map { invisible.contains($0.properties.generalCategory) ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined().prefix(80)))",
                                 hint: "Use a short stable key of printable characters, e.g. a UUID or a hash of the request.", exitStatus: .usage)
            }
            guard !key.isEmpty, key.utf8.count <= Self.maxIdempotencyKeyBytes, !key.utf8.contains(0) else {
                throw QueueError("an idempotency key must be 1–\(Self.maxIdempotencyKeyBytes) bytes of UTF-8 without NUL (this one has \(key.utf8.count) bytes)",
                                 hint: "Use a short stable key, e.g. a UUID or a hash of the request.", exitStatus: .usage)
            }
        }
        // What makes two submits "the same request" for an idempotency key: type, queue and the
        // payload with its keys sorted (a producer that serialises the same object in another order
        // is the same request).
        let fingerprint = idempotencyKey == nil ? "" : Self.requestFingerprint(type: type, queue: queue, payload: object)
        let arguments: [RedisArgument] = [
            prefix, RedisArgument(id), RedisArgument(type), RedisArgument(queue), RedisArgument(priority), RedisArgument(payload),
            RedisArgument(attempts), RedisArgument(idempotencyKey ?? ""), RedisArgument(config.idempotencyTTL.milliseconds),
            RedisArgument(config.aging.milliseconds), RedisArgument(correlationID), RedisArgument(taskSchemaVersion), RedisArgument(fingerprint),
        ]
        // With Sentinel a lost or demoted master is rediscovered and the enqueue sent again with the
        // same id: the script is idempotent on the id, so a first attempt that did run is not doubled.
        let deadline = ContinuousClock.now + config.failoverTimeout
        while true {
            do {
                let result = try enqueue(arguments, id: id)
                if result.conflict, let key = idempotencyKey {
                    throw QueueError(
                        "idempotency key \(key) already names task \(result.id), submitted with a different type, queue or payload; nothing was enqueued",
                        hint: "Use a new key for a different request (keys live for queue.idempotency_ttl, \(DurationFormat.human(config.idempotencyTTL.inSeconds))), "
                            + "or submit exactly the first request again to get task \(result.id) back (`nfldb queue inspect \(result.id)` shows it).",
                        exitStatus: .usage)
                }
                return SubmitResult(id: result.id, created: result.created)
            } catch let error as RedisError where config.sentinel != nil && Self.isFailover(error) && ContinuousClock.now < deadline {
                logger.notice("Redis master lost during an enqueue; rediscovering it and sending the task again", metadata: [
                    "task_id": .string(id), "redis.error": .string(error.message)])
                try reconnect(until: deadline)
            }
        }
    }

    /// One enqueue: the script and, when replicas must confirm it, `WAIT` in the same round trip.
    private func enqueue(_ arguments: [RedisArgument], id: String) throws -> (id: String, created: Bool, conflict: Bool) {
        let replicas = try replicasToWait()
        var commands = [QueueScripts.enqueue.evalSHACommand(arguments: arguments)]
        if replicas > 0 { commands.append(["WAIT", RedisArgument(replicas), RedisArgument(max(1, config.waitTimeout.milliseconds))]) }
        var replies = try connection.pipeline(commands)
        if replies[0].errorCode == "NOSCRIPT" {
            try connection.load([QueueScripts.enqueue])
            replies = try connection.pipeline(commands)
        }
        let reply = try connection.check(replies[0], command: "EVALSHA")
        guard let parts = try reply.decodeArray(for: "EVALSHA enqueue"), parts.count == 2, let got = parts[0].string, let flag = parts[1].int else {
            throw RedisError(kind: .unexpectedReply, message: "the enqueue script returned \(reply)")
        }
        if replicas > 0 {
            let acknowledged = Int(try connection.check(replies[1], command: "WAIT").decodeInteger(for: "WAIT"))
            // Fewer confirmations: perhaps a replica left. Count again; only the replicas still connected must confirm.
            if acknowledged < replicas, acknowledged < (try replicasToWait(refresh: true)) {
                throw QueueError(
                    "task \(got) was enqueued on the Redis master \(connection.target), but only \(acknowledged) of \(replicas) replica(s) confirmed it "
                        + "within \(config.waitTimeout) (redis.wait_timeout): a failover now could lose it",
                    hint: "Check replication (INFO replication on the master: replica lag, link status). Submitting again with the same "
                        + "--idempotency-key returns this task if it survived and enqueues it otherwise.")
            }
        }
        return (got, flag == 1, flag == 2)
    }

    /// SHA-256 of type, queue and the payload serialised with sorted keys.
    static func requestFingerprint(type: String, queue: String, payload: Any) -> String {
        let canonical = (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
        return SHA256Digest.hex(Array(type.utf8) + [0] + Array(queue.utf8) + [0] + Array(canonical))
    }

    /// Enqueues `count` identical tasks (no idempotency key) in pipelines of 1,000 calls; returns their ids.
    /// For drills and benchmarks.
    public func submit(count: Int, type: String, payload: String = "{}", queue: String = "cpu", priority: Int = 0, maxAttempts: Int? = nil,
                       correlationID: String = "") throws -> [String] {
        guard count > 1 else {
            return count == 1 ? [try submit(type: type, payload: payload, queue: queue, priority: priority, maxAttempts: maxAttempts, correlationID: correlationID).id] : []
        }
        // Validates the arguments (and enqueues the first task).
        var ids = [try submit(type: type, payload: payload, queue: queue, priority: priority, maxAttempts: maxAttempts, correlationID: correlationID).id]
        ids.reserveCapacity(count)
        let fixed: [RedisArgument] = [RedisArgument(type), RedisArgument(queue), RedisArgument(priority), RedisArgument(payload),
                                      RedisArgument(maxAttempts ?? config.maxAttempts), "", RedisArgument(config.idempotencyTTL.milliseconds),
                                      RedisArgument(config.aging.milliseconds), RedisArgument(correlationID), RedisArgument(taskSchemaVersion)]
        while ids.count < count {
            let chunk = (0..<min(1000, count - ids.count)).map { _ in UUID().uuidString.lowercased() }
            let replies = try connection.evaluate(batch: chunk.map { id in
                (QueueScripts.enqueue, [], [prefix, RedisArgument(id), fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5], fixed[6], fixed[7], fixed[8], fixed[9]])
            })
            for reply in replies {
                guard let parts = try reply.decodeArray(for: "EVALSHA enqueue"), parts.count == 2, let got = parts[0].string else {
                    throw RedisError(kind: .unexpectedReply, message: "the enqueue script returned \(reply)")
                }
                ids.append(got)
            }
            // One WAIT per pipeline: the batch is acknowledged only when the replicas have it (redis.wait_replicas).
            let replicas = try replicasToWait()
            if replicas > 0 {
                let confirmed = Int(try connection.command("WAIT", RedisArgument(replicas), RedisArgument(max(1, config.waitTimeout.milliseconds)))
                    .decodeInteger(for: "WAIT"))
                if confirmed < replicas, confirmed < (try replicasToWait(refresh: true)) {
                    throw QueueError(
                        "\(ids.count) of \(count) tasks were enqueued on the Redis master \(connection.target), but only \(confirmed) of \(replicas) "
                            + "replica(s) confirmed the last \(chunk.count) within \(config.waitTimeout) (redis.wait_timeout): a failover now could lose them",
                        hint: "Check replication (INFO replication on the master); see nfldb queue stats for what is queued.")
                }
            }
        }
        return ids
    }

    /// Claims the best task of `queues` (reaping expired leases and promoting due retries first); nil when none is ready.
    public func claim(queues: [String], worker: String, lease: Duration? = nil) throws -> ClaimedTask? {
        let reply = try connection.evaluate(
            QueueScripts.claim,
            arguments: [prefix, RedisArgument((lease ?? config.lease).milliseconds), RedisArgument(worker)] + queues.map { RedisArgument($0) })
        guard let f = try reply.decodeArray(for: "EVALSHA claim") else { return nil }
        guard f.count == 12 else { throw RedisError(kind: .unexpectedReply, message: "the claim script returned \(f.count) fields, expected 12") }
        return Self.task(f)
    }

    /// The arguments of one ``QueueScripts/work`` call (acknowledge `acks`, claim up to `claim` of `queues`).
    func workArguments(acks: [ClaimedTask], claim: Int, queues: [String], worker: String, lease: Duration? = nil) -> [RedisArgument] {
        var arguments: [RedisArgument] = [
            prefix, RedisArgument((lease ?? config.lease).milliseconds), RedisArgument(worker), RedisArgument(max(0, min(claim, 1000))),
            RedisArgument(config.completedTTL.milliseconds), RedisArgument(queues.count),
        ]
        arguments.reserveCapacity(arguments.count + queues.count + 2 * acks.count)
        for queue in queues { arguments.append(RedisArgument(queue)) }
        for task in acks {
            arguments.append(RedisArgument(task.id))
            arguments.append(RedisArgument(task.token))
        }
        return arguments
    }

    /// Decodes the reply of ``QueueScripts/work``: one outcome per acknowledged task, then the claimed tasks.
    static func decodeWork(_ reply: RedisReply, acks: Int) throws -> (acks: [FenceOutcome], claimed: [ClaimedTask]) {
        guard let parts = try reply.decodeArray(for: "EVALSHA work"), parts.count == 2, let statuses = parts[0].elements ?? (parts[0].isNull ? [] : nil),
              let flat = parts[1].elements ?? (parts[1].isNull ? [] : nil)
        else { throw RedisError(kind: .unexpectedReply, message: "the work script returned \(reply.kind), expected {acks, claimed}") }
        let outcomes = statuses.map { FenceOutcome(rawValue: $0.string ?? "") ?? .lost }
        guard outcomes.count == acks, flat.count % 12 == 0 else {
            throw RedisError(kind: .unexpectedReply, message: "the work script returned \(outcomes.count) acks for \(acks) and \(flat.count) task fields (not a multiple of 12)")
        }
        var claimed: [ClaimedTask] = []
        claimed.reserveCapacity(flat.count / 12)
        var i = 0
        while i < flat.count {
            claimed.append(Self.task(Array(flat[i..<(i + 12)])))
            i += 12
        }
        return (outcomes, claimed)
    }

    static func task(_ f: [RedisReply]) -> ClaimedTask {
        func s(_ i: Int) -> String { f[i].string ?? "" }
        func n(_ i: Int) -> Int64 { f[i].int ?? 0 }
        let idem = s(10)
        return ClaimedTask(
            id: s(0), type: s(1), queue: s(2), payload: s(3), attempt: Int(n(4)), maxAttempts: Int(n(5)), token: n(6), enqueuedMs: n(7),
            correlationID: s(8), schemaVersion: Int(n(9)), idempotencyKey: idem.isEmpty ? nil : idem, priority: Int(n(11)))
    }

    /// One round trip: acknowledges `acks` (fenced; only after their results are durable) and claims up to
    /// `claim` tasks (at most 1,000) of `queues`, best first.
    public func work(acks: [ClaimedTask], claim: Int, queues: [String], worker: String, lease: Duration? = nil) throws
        -> (acks: [FenceOutcome], claimed: [ClaimedTask])
    {
        let reply = try connection.evaluate(QueueScripts.work, arguments: workArguments(acks: acks, claim: claim, queues: queues, worker: worker, lease: lease))
        return try Self.decodeWork(reply, acks: acks.count)
    }

    /// Extends the leases of `tasks` in one round trip; one outcome per task (`.ok`, `.cancelled`, `.lost`).
    public func heartbeat(many tasks: [ClaimedTask], lease: Duration? = nil) throws -> [FenceOutcome] {
        guard !tasks.isEmpty else { return [] }
        var arguments: [RedisArgument] = [prefix, RedisArgument((lease ?? config.lease).milliseconds)]
        for task in tasks {
            arguments.append(RedisArgument(task.id))
            arguments.append(RedisArgument(task.token))
        }
        let reply = try connection.evaluate(QueueScripts.heartbeatMany, arguments: arguments)
        let statuses = try reply.decodeArray(for: "EVALSHA heartbeat") ?? []
        guard statuses.count == tasks.count else {
            throw RedisError(kind: .unexpectedReply, message: "the heartbeat script returned \(statuses.count) statuses for \(tasks.count) tasks")
        }
        return statuses.map { FenceOutcome(rawValue: $0.string ?? "") ?? .lost }
    }

    private func fenced(_ script: RedisScript, _ task: ClaimedTask, _ extra: [RedisArgument]) throws -> FenceOutcome {
        let reply = try connection.evaluate(script, arguments: [prefix, RedisArgument(task.id), RedisArgument(task.token)] + extra)
        guard let text = reply.string, let outcome = FenceOutcome(rawValue: text) else {
            throw RedisError(kind: .unexpectedReply, message: "a queue script returned \(reply)")
        }
        return outcome
    }

    /// Extends the lease; `.cancelled` when the task was cancelled, `.lost` when the lease already expired.
    public func heartbeat(_ task: ClaimedTask, lease: Duration? = nil) throws -> FenceOutcome {
        try fenced(QueueScripts.heartbeat, task, [RedisArgument((lease ?? config.lease).milliseconds)])
    }

    /// Acknowledges success; `.lost` (nothing changed) when the token is stale or the lease expired.
    public func complete(_ task: ClaimedTask) throws -> FenceOutcome {
        try fenced(QueueScripts.complete, task, [RedisArgument(config.completedTTL.milliseconds)])
    }

    func fencedArguments(_ task: ClaimedTask) -> [RedisArgument] {
        [prefix, RedisArgument(task.id), RedisArgument(task.token)]
    }

    func failArguments(_ task: ClaimedTask, error: String, permanent: Bool) -> [RedisArgument] {
        fencedArguments(task) + [
            RedisArgument(String(error.prefix(2000))), RedisArgument(permanent ? "1" : "0"), RedisArgument(config.backoffBase.milliseconds),
            RedisArgument(config.backoffMax.milliseconds), RedisArgument(Double.random(in: 0...1)),
        ]
    }

    /// Records a failure: `.retry` (through the delayed set, exponential backoff with jitter) or `.dead`.
    public func fail(_ task: ClaimedTask, error: String, permanent: Bool = false) throws -> FenceOutcome {
        try fenced(QueueScripts.fail, task, [
            RedisArgument(String(error.prefix(2000))), RedisArgument(permanent ? "1" : "0"), RedisArgument(config.backoffBase.milliseconds),
            RedisArgument(config.backoffMax.milliseconds), RedisArgument(Double.random(in: 0...1)),
        ])
    }

    /// Gives the task back unfinished (shutdown); the attempt is not counted.
    public func release(_ task: ClaimedTask) throws -> FenceOutcome {
        try fenced(QueueScripts.release, task, [])
    }

    /// Cancels a task; returns the state it had (`ready`, `delayed`, `running`, a terminal state, or `missing`).
    public func cancel(id: String) throws -> String {
        try namingTaskKey(id) {
            try connection.evaluate(QueueScripts.cancel, arguments: [prefix, RedisArgument(id)]).decodeString(for: "EVALSHA cancel") ?? "missing"
        }
    }

    /// A task key that is not a hash (written by something else): the hint names that key and the fix.
    func namingTaskKey<T>(_ id: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as RedisError where error.code == "WRONGTYPE" {
            let key = config.prefix + "task:" + id
            error.hint = "The task key \(key) holds another type than a hash: check it with redis-cli TYPE \(key) and, "
                + "if nothing but nfldb should own it, delete it (redis-cli DEL \(key))."
            throw error
        }
    }

    /// Moves every expired lease back to ready (or to the dead-letter queue when its attempts are used up).
    public func recover() throws -> Int {
        Int(try connection.evaluate(QueueScripts.recover, arguments: [prefix]).decodeInteger(for: "EVALSHA recover"))
    }

    public func stats() throws -> [QueueStats] {
        guard let rows = try connection.evaluate(QueueScripts.stats, arguments: [prefix]).decodeArray(for: "EVALSHA stats") else { return [] }
        return rows.compactMap { row -> QueueStats? in
            guard let f = row.elements, f.count == 8 else { return nil }
            let n = { (i: Int) in Int(f[i].int ?? 0) }
            let oldest = f[6].int ?? -1
            let now = f[7].int ?? 0
            return QueueStats(queue: f[0].string ?? "?", ready: n(1), delayed: n(2), inFlight: n(3), expiredLeases: n(4), dead: n(5),
                              oldestReadyAgeSeconds: oldest < 0 ? nil : Double(now - oldest) / 1000)
        }.sorted { $0.queue < $1.queue }
    }

    /// Every field of a task's hash (history decoded by the caller); nil when unknown or expired.
    public func inspect(id: String) throws -> [String: String]? {
        guard let flat = try namingTaskKey(id, { try connection.command("HGETALL", RedisArgument(config.prefix + "task:" + id)).decodeArray(for: "HGETALL") }),
              !flat.isEmpty else {
            return nil
        }
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < flat.count {
            out[flat[i].string ?? ""] = flat[i + 1].string ?? ""
            i += 2
        }
        return out
    }

    /// Dead tasks of one queue (all of them, oldest first), each as its hash.
    public func deadLetters(queue: String) throws -> [[String: String]] {
        try deadIDs(queue: queue).map { id in try inspect(id: id) ?? ["id": id, "state": "dead", "error": "(task hash missing)"] }
    }

    /// The ids in `dead:<queue>`, oldest first.
    func deadIDs(queue: String) throws -> [String] {
        (try connection.command("LRANGE", RedisArgument(config.prefix + "dead:" + queue), "0", "-1").decodeArray(for: "LRANGE") ?? []).compactMap(\.string)
    }

    public func queues() throws -> [String] {
        (try connection.command("SMEMBERS", RedisArgument(config.prefix + "queues")).decodeArray(for: "SMEMBERS") ?? []).compactMap(\.string).sorted()
    }

    /// Moves a dead task back to ready with a fresh attempt budget.
    public func requeue(id: String) throws -> Bool {
        guard let task = try inspect(id: id), let queue = task["queue"] else { return false }
        let reply = try connection.evaluate(QueueScripts.requeue, arguments: [prefix, RedisArgument(queue), RedisArgument(id)])
        return reply.string == "ok"
    }

    /// Deletes the tasks dead in `queue` (or all queues) when the purge starts; returns how many.
    /// Each batch of 500 ids is one script (``QueueScripts/purge``): a task dead-lettered while the
    /// purge runs stays in the list (before, the list was deleted whole after the tasks were read,
    /// so such a task was dropped from it and its hash left behind, `dead` and invisible; an
    /// attack probe lost 1,192 of 3,000), and a purged task's idempotency key goes with it.
    public func purgeDeadLetters(queue: String?) throws -> Int {
        var removed = 0
        let names = try queue.map { [$0] } ?? queues()
        for q in names {
            let ids = try deadIDs(queue: q)
            var start = 0
            while start < ids.count {
                let batch = ids[start..<min(start + 500, ids.count)]
                let reply = try connection.evaluate(QueueScripts.purge, arguments: [prefix, RedisArgument(q)] + batch.map { RedisArgument($0) })
                removed += Int(try reply.decodeInteger(for: "EVALSHA purge"))
                start += batch.count
            }
        }
        return removed
    }
}
