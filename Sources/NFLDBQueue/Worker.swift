import Dispatch
import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBRedis
import Synchronization

/// A handler failure. `permanent` sends the task to the dead-letter queue at once (no retry).
public struct TaskFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var permanent: Bool
    public init(_ message: String, permanent: Bool = false) {
        self.message = message
        self.permanent = permanent
    }
    public var description: String { message }
}

/// What a handler gets: the task, a logger carrying its correlation id, a way to learn it was
/// cancelled or that the worker is stopping, and (opened on first use) a PostgreSQL connection of its thread.
public final class TaskContext {
    public let task: ClaimedTask
    public let logger: Logger
    let isCancelledCheck: @Sendable () -> Bool
    let openDatabase: () throws -> PostgresConnection

    init(task: ClaimedTask, logger: Logger, isCancelled: @escaping @Sendable () -> Bool, database: @escaping () throws -> PostgresConnection) {
        self.task = task
        self.logger = logger
        self.isCancelledCheck = isCancelled
        self.openDatabase = database
    }

    /// True once a heartbeat learned the task was cancelled (long handlers should check it and stop).
    public var isCancelled: Bool { isCancelledCheck() }
    /// The same test as a closure another module's long operation can poll (e.g. before it commits).
    public var cancellationCheck: @Sendable () -> Bool { isCancelledCheck }
    public func database() throws -> PostgresConnection { try openDatabase() }

    /// The payload as a JSON object.
    public func payloadObject() throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(task.payload.utf8)) as? [String: Any] else {
            throw TaskFailure("the payload of task \(task.id) is not a JSON object", permanent: true)
        }
        return object
    }
}

/// A task handler: returns the result as JSON text.
public typealias TaskHandler = @Sendable (TaskContext) throws -> String

/// The built-in task types.
public enum BuiltinHandlers {
    public static let all: [String: TaskHandler] = [
        "noop": { _ in "{}" },
        "sleep": { context in
            let payload = try context.payloadObject()
            // A whole number of milliseconds up to a day: 1.5 is not one, and 1e18 would hold a worker thread forever.
            guard let number = payload["ms"] as? NSNumber, let ms = Int(exactly: number.doubleValue), (0...86_400_000).contains(ms) else {
                throw TaskFailure("sleep needs {\"ms\": N} with N a whole number of milliseconds from 0 to 86400000 (one day), got \(payload["ms"].map { "\($0)" } ?? "no ms")",
                                  permanent: true)
            }
            let end = ContinuousClock.now + .milliseconds(ms)
            while ContinuousClock.now < end {
                if context.isCancelled { throw TaskFailure("cancelled while sleeping", permanent: true) }
                Thread.sleep(forTimeInterval: min(0.05, max(0, Double((end - ContinuousClock.now).milliseconds) / 1000)))
            }
            return "{\"slept_ms\": \(ms)}"
        },
        "fail": { context in
            let message = (try? context.payloadObject())?["message"] as? String ?? "the fail task always fails"
            throw TaskFailure(message)
        },
        VacuumAnalyzeHandler.type: VacuumAnalyzeHandler.handle,
    ]
}

/// How a worker runs.
public struct WorkerOptions: Sendable {
    public var queues: [String]
    public var concurrency: Int
    public var burst: Bool
    public var name: String
    /// Sleep between empty claims.
    public var idlePoll: Duration = .milliseconds(50)
    /// Tasks claimed ahead of the idle handler threads. nil (the default) adapts: as many as the
    /// threads finish within ``prefetchWindow`` at the recently measured handler time, at most
    /// ``maxPrefetch``, and none before the first task finished (so slow tasks are not hoarded).
    public var prefetch: Int?
    /// Upper bound of the adaptive prefetch (and of one claim call: at most 1,000).
    public var maxPrefetch = 256
    /// The adaptive prefetch claims what the threads finish within this time.
    public var prefetchWindow: Duration = .milliseconds(50)
    /// Told when each task's handler starts and when its outcome is settled in Redis (`--metrics-port`); nil: no metrics.
    public var metrics: (any WorkerMetricsRecorder)?

    public init(queues: [String], concurrency: Int = 1, burst: Bool = false,
                name: String = "\(ProcessInfo.processInfo.hostName):\(getpid())") {
        self.queues = queues
        self.concurrency = concurrency
        self.burst = burst
        self.name = name
    }
}

/// Counts of what a worker did.
public struct WorkerSummary: Sendable, Codable, Hashable {
    public var succeeded = 0
    /// Succeeded tasks whose durable result already existed (delivered more than once; the effect was not repeated in the table).
    public var duplicates = 0
    public var retried = 0
    public var dead = 0
    public var cancelled = 0
    /// Tasks whose lease was lost before the ack (another worker owns them now).
    public var lost = 0
    public var released = 0
    /// Unfinished tasks the worker could not give back as it stopped (Redis unreachable): they return when their lease expires.
    public var unreleased = 0
    /// Redis round trips of the claim/acknowledge loop (claims, acks, fails and releases; not heartbeats).
    public var redisRoundTrips = 0
    /// Durable result batches committed (one INSERT and one commit each).
    public var resultBatches = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case succeeded, duplicates, retried, dead, cancelled, lost, released, unreleased
        case redisRoundTrips = "redis_round_trips"
        case resultBatches = "result_batches"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func n(_ key: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
        succeeded = try n(.succeeded)
        duplicates = try n(.duplicates)
        retried = try n(.retried)
        dead = try n(.dead)
        cancelled = try n(.cancelled)
        lost = try n(.lost)
        released = try n(.released)
        unreleased = try n(.unreleased)
        redisRoundTrips = try n(.redisRoundTrips)
        resultBatches = try n(.resultBatches)
    }
}

/// A worker process's engine, pipelined so that no thread waits for another stage:
///
/// - one **claim loop** (its own Redis connection) makes one ``QueueScripts/work`` call per round trip:
///   it acknowledges the tasks whose results are durable and claims the next tasks in the same script
///   call (failures and releases ride in the same pipeline);
/// - `concurrency` **handler threads** take claimed tasks from a local buffer and run them;
/// - the **result writer** (``ResultStore``, its own PostgreSQL connection) commits results in
///   multi-row batches; only after the commit are the tasks handed back to the claim loop to acknowledge;
/// - a **heartbeat** thread extends the leases of every claimed task every lease/3 in one call, and of
///   running tasks every 200 ms, so cancellation is learned quickly.
///
/// A crash between the commit and the ack leaves the task in flight until its lease expires; the
/// re-delivery finds the row (the insert writes nothing) and is only acknowledged.
public final class Worker: Sendable {
    private struct Failure {
        var task: ClaimedTask
        var message: String
        var permanent: Bool
    }

    /// One attempt of a task: its id and the fencing token of that claim.
    struct AttemptKey: Hashable {
        var id: String
        var token: Int64
        init(_ task: ClaimedTask) {
            id = task.id
            token = task.token
        }
    }

    private struct Shared {
        var stopping = false
        /// Set when `run` returns: every thread leaves now.
        var exiting = false
        /// Claimed, not started.
        var buffer: [ClaimedTask] = []
        /// Started in a handler thread. (Name kept from the first engine.) Keyed by attempt (id + fencing
        /// token): the same task may be claimed again by this worker after its lease was lost.
        var inFlight: [AttemptKey: ClaimedTask] = [:]
        /// Every claimed task not yet settled in Redis (buffered, running, being written, to acknowledge, to fail).
        var tracked: [AttemptKey: ClaimedTask] = [:]
        /// Durable results, to acknowledge (with whether the row was new).
        var acks: [(task: ClaimedTask, inserted: Bool)] = []
        var failures: [Failure] = []
        /// Results handed to the writer, not yet committed.
        var writing = 0
        /// Attempts a heartbeat found cancelled or lost (only that attempt: a newer claim of the same id is unaffected).
        var cancelled: [AttemptKey: FenceOutcome] = [:]
        var summary = WorkerSummary()
        var finishedThreads = 0
        var claimLoopDone = false
        var errors: [String] = []
        /// A queue key of the wrong type: the worker drains and fails (exit 1) naming it.
        var fatal: String?
        /// Whether the claim loop's last round trip succeeded (after errors: it reconnected).
        var lastRoundTripOK = false
        /// The last 32 handler times (seconds), for the adaptive prefetch (their median: robust to a
        /// thread that was merely preempted).
        var recentHandlerSeconds: [Double] = []
        var recentIndex = 0
    }

    public let config: QueueConfig
    public let options: WorkerOptions
    private let database: ConnectionOptions
    private let handlers: [String: TaskHandler]
    private let logger: Logger
    private let shared = Monitor(Shared())

    public init(config: QueueConfig, options: WorkerOptions, database: ConnectionOptions, handlers: [String: TaskHandler] = BuiltinHandlers.all,
                logger: Logger) {
        self.config = config
        self.options = options
        self.database = database
        self.handlers = handlers
        self.logger = logger
    }

    /// Asks the worker to stop claiming; in-flight tasks finish (or are released after the grace period).
    public func stop() {
        shared.withLock { $0.stopping = true }
        shared.broadcast()
    }

    public var isStopping: Bool { shared.withLock { $0.stopping } }

    /// SIGTERM, SIGINT and SIGHUP (a dropped ssh session, a closed terminal) call ``stop()``: the worker
    /// drains as on SIGTERM instead of dying with tasks in flight. Returns the sources (keep them alive while running).
    public func installSignalHandlers() -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT, SIGHUP].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [self] in
                logger.notice("signal \(signo): stopping; in-flight tasks finish within \(config.grace)")
                stop()
            }
            source.resume()
            return source
        }
    }

    /// Runs until stopped (or, with `burst`, until the queues are empty); returns what was done.
    /// - Throws: ``RedisError`` when Redis cannot be reached at start.
    public func run() throws -> WorkerSummary {
        for queue in options.queues { try TaskQueue.validateName(queue, what: "queue") }
        // Fail fast (and load the scripts) before starting threads.
        let control = try TaskQueue.connect(config, clientName: "nfldb-worker", logger: logger)
        let store = ResultStore(options: database, batchSize: config.batchSize, batchWait: config.batchWait, logger: logger,
                                afterBatch: { [shared] committed in
                                    shared.withLock { $0.summary.resultBatches += committed ? 1 : 0 }
                                    shared.broadcast()
                                })
        logger.info("worker started", metadata: ["worker": .string(options.name), "queues": .string(options.queues.joined(separator: ",")),
                                                 "concurrency": .stringConvertible(options.concurrency)])
        let claimLoop = Thread { [self] in
            self.claimLoop()
            self.shared.withLock { $0.claimLoopDone = true }
            self.shared.broadcast()
        }
        claimLoop.name = "nfldb-claim"
        claimLoop.start()
        for index in 0..<options.concurrency {
            let thread = Thread { [self] in
                self.handlerLoop(index: index, store: store)
                self.shared.withLock { $0.finishedThreads += 1 }
                self.shared.broadcast()
            }
            thread.name = "nfldb-worker-\(index)"
            thread.start()
        }
        let heartbeat = Thread { [self] in self.heartbeatLoop() }
        heartbeat.name = "nfldb-heartbeat"
        heartbeat.start()

        // Wait until stopped and everything claimed is settled; after a stop, at most the grace period.
        var stopSeen: ContinuousClock.Instant?
        while true {
            let (stopping, settled) = shared.withLock { s in (s.stopping, s.tracked.isEmpty && s.finishedThreads == options.concurrency) }
            if stopping {
                if stopSeen == nil { stopSeen = .now }
                if settled { break }
                if ContinuousClock.now - stopSeen! > config.grace { break }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        shared.withLock { $0.exiting = true }
        shared.broadcast()
        // The claim loop finishes its round trip (bounded by the command timeout).
        shared.wait(until: .now + .seconds(35)) { $0.claimLoopDone }
        _ = store.stopAndWait(timeout: .seconds(5))
        let left = shared.withLock { s in Array(s.tracked.values) }
        for task in left {
            let outcome = (try? control.release(task)) ?? .lost
            // Counted only when the release took: a lost fence (the lease moved on, Redis unreachable)
            // leaves the task to lease expiry, which the summary must not call released.
            logger.warning(outcome == .ok ? "released unfinished task after the grace period"
                                          : "could not release an unfinished task after the grace period; it returns when its lease expires", metadata: [
                "correlation_id": .string(task.correlationID.isEmpty ? task.id : task.correlationID), "task_id": .string(task.id),
                "outcome": .string(outcome.rawValue)])
            shared.withLock { if outcome == .ok { $0.summary.released += 1 } else { $0.summary.unreleased += 1 } }
        }
        control.connection.close()
        let (summary, errors, recovered, fatal) = shared.withLock { ($0.summary, $0.errors, $0.lastRoundTripOK, $0.fatal) }
        if let fatal {
            throw QueueError("the worker stopped: \(fatal.replacingOccurrences(of: "WRONGTYPE ", with: ""))",
                             hint: "Another program wrote this key under nfldb's prefix (queue.prefix \(config.prefix)). The worker claims from no queue "
                                + "until it is fixed; start it with --queues without that queue meanwhile. Done so far: \(summary.succeeded) succeeded.")
        }
        // A worker that had errors but reconnected did its job even if another worker got every task.
        if !errors.isEmpty && !recovered && summary.succeeded == 0 && summary.dead == 0 && summary.retried == 0 {
            throw QueueError("the worker could not process tasks: \(errors[0])", hint: "Check Redis (redis.url) and PostgreSQL (nfldb ping).")
        }
        return summary
    }

    private func taskLogger(_ task: ClaimedTask) -> Logger {
        var l = logger
        l[metadataKey: "correlation_id"] = .string(task.correlationID.isEmpty ? task.id : task.correlationID)
        l[metadataKey: "task_id"] = .string(task.id)
        l[metadataKey: "task_type"] = .string(task.type)
        l[metadataKey: "queue"] = .string(task.queue)
        l[metadataKey: "attempt"] = .stringConvertible(task.attempt)
        return l
    }

    // MARK: - Claim loop

    /// How many tasks to claim now: idle threads plus the prefetch, minus what is buffered; none while
    /// too many results wait for their commit or ack (back-pressure from PostgreSQL).
    private func wanted(_ s: Shared) -> Int {
        if s.stopping { return 0 }
        if s.writing + s.acks.count >= max(4 * config.batchSize, 1024) { return 0 }
        let prefetch: Int
        if let fixed = options.prefetch {
            prefetch = fixed
        } else if !s.recentHandlerSeconds.isEmpty {
            let median = s.recentHandlerSeconds.sorted()[s.recentHandlerSeconds.count / 2]
            let window = Double(options.prefetchWindow.milliseconds) / 1000
            prefetch = Int(min(Double(options.maxPrefetch), Double(options.concurrency) * window / max(median, 1e-6)))
        } else {
            prefetch = 0
        }
        return max(0, min(1000, options.concurrency - s.inFlight.count + prefetch - s.buffer.count))
    }

    private func claimLoop() {
        var queue: TaskQueue?
        defer { queue?.connection.close() }
        var failures = 0
        var nextClaim = ContinuousClock.now
        let worker = options.name
        while true {
            // Take what there is to send; wait when there is nothing.
            var acks: [(task: ClaimedTask, inserted: Bool)] = []
            var fails: [Failure] = []
            var releases: [ClaimedTask] = []
            var want = 0
            var exit = false
            let deadline = nextClaim > .now ? nextClaim : ContinuousClock.now + .milliseconds(200)
            shared.wait(until: deadline) { s in
                if s.exiting { exit = true; return true }
                let claimable = ContinuousClock.now >= nextClaim ? wanted(s) : 0
                let releasing = s.stopping && !s.buffer.isEmpty
                guard !s.acks.isEmpty || !s.failures.isEmpty || releasing || claimable > 0 else { return false }
                acks = s.acks
                s.acks = []
                fails = s.failures
                s.failures = []
                if releasing {
                    releases = s.buffer
                    s.buffer = []
                }
                want = claimable
                return true
            }
            if exit { return }
            if acks.isEmpty && fails.isEmpty && releases.isEmpty && want == 0 { continue }
            do {
                if queue == nil || !(queue!.connection.isAlive) {
                    queue = try TaskQueue.connect(config, clientName: "nfldb-worker", logger: logger)
                }
                let q = queue!
                var calls: [(script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument])] = [
                    (QueueScripts.work, [], q.workArguments(acks: acks.map(\.task), claim: want, queues: options.queues, worker: worker))
                ]
                for f in fails { calls.append((QueueScripts.fail, [], q.failArguments(f.task, error: f.message, permanent: f.permanent))) }
                for task in releases { calls.append((QueueScripts.release, [], q.fencedArguments(task))) }
                let replies = try q.connection.evaluate(batch: calls)
                if case .error(let text) = replies[0] {
                    if text.hasPrefix("WRONGTYPE the queue key") {
                        // Not transient: retrying would loop forever. Stop claiming, drain, fail naming the key.
                        logger.error("worker: \(text); stopping")
                        shared.withLock { if $0.fatal == nil { $0.fatal = text } }
                        stop()
                    }
                    throw RedisError(kind: .server, message: "the work script failed: \(text)")
                }
                let (ackOutcomes, claimed) = try TaskQueue.decodeWork(replies[0], acks: acks.count)
                let failOutcomes = replies[1..<(1 + fails.count)].map { FenceOutcome(rawValue: $0.string ?? "") ?? .lost }
                let releaseOutcomes = replies[(1 + fails.count)...].map { FenceOutcome(rawValue: $0.string ?? "") ?? .lost }
                // A script error for one task (counted as lost) is named with the task, never silent.
                for (index, reply) in replies.enumerated().dropFirst() {
                    guard case .error(let text) = reply else { continue }
                    let task = index <= fails.count ? fails[index - 1].task : releases[index - 1 - fails.count]
                    taskLogger(task).error("the \(index <= fails.count ? "fail" : "release") script failed for task \(task.id): \(text)",
                                           metadata: ["hint": "Inspect it: nfldb queue inspect \(task.id); redis-cli HGETALL \(config.prefix)task:\(task.id)"])
                }
                failures = 0
                shared.withLock { s in
                    s.summary.redisRoundTrips += 1
                    s.lastRoundTripOK = true
                    for (ack, outcome) in zip(acks, ackOutcomes) {
                        s.tracked[AttemptKey(ack.task)] = nil
                        switch outcome {
                        case .ok: s.summary.succeeded += 1; if !ack.inserted { s.summary.duplicates += 1 }
                        case .cancelled: s.summary.cancelled += 1
                        default: s.summary.lost += 1
                        }
                    }
                    for (f, outcome) in zip(fails, failOutcomes) {
                        s.tracked[AttemptKey(f.task)] = nil
                        switch outcome {
                        case .retry: s.summary.retried += 1
                        case .dead: s.summary.dead += 1
                        case .cancelled: s.summary.cancelled += 1
                        case .lost: s.summary.lost += 1
                        case .ok: break
                        }
                    }
                    for (task, outcome) in zip(releases, releaseOutcomes) {
                        s.tracked[AttemptKey(task)] = nil
                        if outcome == .ok { s.summary.released += 1 } else { s.summary.lost += 1 }
                    }
                    for task in claimed { s.tracked[AttemptKey(task)] = task }
                    s.buffer.append(contentsOf: claimed)
                }
                shared.broadcast()
                if let metrics = options.metrics {
                    for (ack, outcome) in zip(acks, ackOutcomes) { metrics.taskSettled(ack.task, outcome: TaskOutcome(outcome, inserted: ack.inserted)) }
                    for (f, outcome) in zip(fails, failOutcomes) { metrics.taskSettled(f.task, outcome: TaskOutcome(outcome)) }
                }
                // A dead-lettered task needs a person: logged at warning, so the default text level shows it.
                for (f, outcome) in zip(fails, failOutcomes) where outcome == .dead {
                    taskLogger(f.task).warning("task failed, dead-lettered", metadata: ["error": .string(f.message)])
                }
                if logger.logLevel <= .info {
                    for (f, outcome) in zip(fails, failOutcomes) where outcome != .dead {
                        taskLogger(f.task).info("task \(outcome == .retry ? "failed, will retry" : outcome.rawValue)",
                                                metadata: ["error": .string(f.message)])
                    }
                    for (ack, outcome) in zip(acks, ackOutcomes) {
                        taskLogger(ack.task).info("task \(outcome == .ok ? (ack.inserted ? "succeeded" : "duplicate (result already stored), acknowledged") : "stored, ack \(outcome.rawValue)")")
                    }
                }
                if want > 0 && claimed.isEmpty {
                    nextClaim = .now + options.idlePoll
                    if options.burst && (try? isDrained(q)) == true {
                        stop()
                    }
                } else {
                    nextClaim = .now
                }
            } catch {
                failures += 1
                let text = String(describing: error)
                logger.error("worker claim loop: \(text)")
                // Unknown whether the calls ran: acks and fails are idempotent under their fence, so send
                // them again; releases too. Tasks claimed by a lost call come back when their lease expires.
                shared.withLock { s in
                    s.errors.append(text)
                    s.lastRoundTripOK = false
                    s.acks.insert(contentsOf: acks, at: 0)
                    s.failures.insert(contentsOf: fails, at: 0)
                    if s.stopping {
                        for task in releases { s.tracked[AttemptKey(task)] = nil }
                        s.summary.lost += releases.count
                    } else {
                        s.buffer.insert(contentsOf: releases, at: 0)
                    }
                }
                queue?.connection.close()
                queue = nil
                // Back off while Redis is away (restart, failover), then reconnect.
                let pause = min(2.0, 0.05 * Double(1 << min(failures, 6)))
                nextClaim = .now + .milliseconds(Int64(pause * 1000))
                shared.wait(until: nextClaim) { $0.exiting }
            }
        }
    }

    /// Burst mode: nothing of ours unsettled and nothing ready, delayed or in flight in the queues.
    private func isDrained(_ queue: TaskQueue) throws -> Bool {
        let idle = shared.withLock { s in s.tracked.isEmpty && s.buffer.isEmpty && s.inFlight.isEmpty && s.writing == 0 && s.acks.isEmpty && s.failures.isEmpty }
        guard idle else { return false }
        let pending = try queue.pendingCount(queues: options.queues)
        shared.withLock { $0.summary.redisRoundTrips += 1 }
        return pending == 0
    }

    // MARK: - Handler threads

    private func handlerLoop(index: Int, store: ResultStore) {
        var database: PostgresConnection?
        defer { database?.close() }
        while true {
            var next: ClaimedTask?
            shared.wait(until: .now + .seconds(3600)) { s in
                if s.exiting { return true }
                if !s.buffer.isEmpty {
                    let task = s.buffer.removeFirst()
                    s.inFlight[AttemptKey(task)] = task
                    next = task
                    return true
                }
                return s.stopping
            }
            guard let task = next else { return }
            let started = ContinuousClock.now
            options.metrics?.taskStarted(task)
            process(task, store: store, database: &database)
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let wake = shared.withLock { s -> Bool in
                s.inFlight[AttemptKey(task)] = nil
                s.cancelled[AttemptKey(task)] = nil
                if s.recentHandlerSeconds.count < 32 { s.recentHandlerSeconds.append(seconds) } else { s.recentHandlerSeconds[s.recentIndex] = seconds }
                s.recentIndex = (s.recentIndex + 1) % 32
                // Wake the claim loop when at least half of what it may hold is free (or on a failure or stop).
                let free = wanted(s)
                return s.stopping || !s.failures.isEmpty || (free > 0 && free >= s.buffer.count)
            }
            if wake { shared.broadcast() }
        }
    }

    private func process(_ task: ClaimedTask, store: ResultStore, database: inout PostgresConnection?) {
        var db = database
        defer { database = db }
        func fail(_ message: String, permanent: Bool = false) {
            shared.withLock { $0.failures.append(Failure(task: task, message: message, permanent: permanent)) }
        }
        if task.schemaVersion != taskSchemaVersion {
            fail("payload schema version \(task.schemaVersion) is not supported (this worker reads \(taskSchemaVersion))", permanent: true)
            return
        }
        guard let handler = handlers[task.type] else {
            let known = handlers.keys.sorted().joined(separator: ", ")
            fail("unknown task type \"\(task.type)\": no handler in this worker (known: \(known))", permanent: true)
            return
        }
        let context = TaskContext(
            task: task, logger: taskLogger(task), isCancelled: { [self] in shared.withLock { $0.cancelled[AttemptKey(task)] != nil } },
            database: { [self] in
                if let open = db, open.isAlive { return open }
                db = try PostgresConnection.connect(self.database, logger: self.logger)
                return db!
            })
        do {
            let result = try handler(context)
            if context.isCancelled {
                // Cancelled (or the lease was lost) while running: nothing is stored or acknowledged.
                let lost = shared.withLock { s -> Bool in
                    s.tracked[AttemptKey(task)] = nil
                    let lost = s.cancelled[AttemptKey(task)] == .lost
                    if lost { s.summary.lost += 1 } else { s.summary.cancelled += 1 }
                    return lost
                }
                options.metrics?.taskSettled(task, outcome: lost ? .lost : .cancelled)
                context.logger.info(lost ? "the lease of this attempt was lost while running; result discarded" : "task cancelled while running; result discarded")
                return
            }
            shared.withLock { $0.writing += 1 }
            store.submit(TaskResultRecord(task: task, worker: options.name, result: result)) { [self] inserted, error in
                shared.withLock { s in
                    s.writing -= 1
                    if let error {
                        // The result could not be stored: retry later (never ack without the durable row); a row
                        // PostgreSQL rejects for its data is dead-lettered at once.
                        s.failures.append(Failure(task: task, message: error.diagnostic.summary, permanent: error.permanent))
                    } else {
                        s.acks.append((task, inserted))
                    }
                }
            }
        } catch let failure as TaskFailure {
            fail(failure.message, permanent: failure.permanent)
        } catch {
            fail(String(describing: error))
        }
    }

    // MARK: - Heartbeats

    private func heartbeatLoop() {
        var queue: TaskQueue?
        defer { queue?.connection.close() }
        let fullInterval = Duration.milliseconds(max(50, config.lease.milliseconds / 3))
        var lastFull = ContinuousClock.now
        while true {
            Thread.sleep(forTimeInterval: 0.2)
            if shared.withLock({ $0.exiting }) { return }
            let full = ContinuousClock.now - lastFull >= fullInterval
            let due = shared.withLock { s in full ? Array(s.tracked.values) : Array(s.inFlight.values) }
            if full { lastFull = .now }
            guard !due.isEmpty else { continue }
            do {
                if queue == nil || !(queue!.connection.isAlive) { queue = try TaskQueue.connect(config, clientName: "nfldb-heartbeat", logger: logger) }
                var outcomes: [FenceOutcome] = []
                var start = 0
                while start < due.count {
                    let end = min(due.count, start + 1000)
                    outcomes += try queue!.heartbeat(many: Array(due[start..<end]))
                    start = end
                }
                var notices: [(ClaimedTask, FenceOutcome)] = []
                shared.withLock { s in
                    for (task, outcome) in zip(due, outcomes) where outcome == .cancelled || outcome == .lost {
                        // Only this attempt (id + token): the same task claimed again is another attempt.
                        let key = AttemptKey(task)
                        if s.inFlight[key] != nil {
                            s.cancelled[key] = outcome
                            notices.append((task, outcome))
                        } else if let index = s.buffer.firstIndex(where: { $0.id == task.id && $0.token == task.token }) {
                            // Cancelled (or lost) before it started: drop it.
                            s.buffer.remove(at: index)
                            s.tracked[key] = nil
                            if outcome == .cancelled { s.summary.cancelled += 1 } else { s.summary.lost += 1 }
                        }
                    }
                }
                for (task, outcome) in notices {
                    taskLogger(task).notice("heartbeat: task \(outcome == .cancelled ? "was cancelled" : "lease lost"); the handler is told to stop")
                }
            } catch {
                logger.warning("heartbeat failed: \(error)")
                queue?.connection.close()
                queue = nil
            }
        }
    }
}

extension TaskQueue {
    /// Ready + delayed + in-flight tasks of `queues` (one pipeline).
    public func pendingCount(queues: [String]) throws -> Int {
        var commands: [[RedisArgument]] = []
        for q in queues {
            for kind in ["ready:", "delayed:", "inflight:"] { commands.append(["ZCARD", RedisArgument(config.prefix + kind + q)]) }
        }
        return try connection.pipeline(commands).reduce(0) { $0 + Int($1.int ?? 0) }
    }
}
