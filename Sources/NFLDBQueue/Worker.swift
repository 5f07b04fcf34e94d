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
    let isCancelledCheck: () -> Bool
    let openDatabase: () throws -> PostgresConnection

    init(task: ClaimedTask, logger: Logger, isCancelled: @escaping () -> Bool, database: @escaping () throws -> PostgresConnection) {
        self.task = task
        self.logger = logger
        self.isCancelledCheck = isCancelled
        self.openDatabase = database
    }

    /// True once a heartbeat learned the task was cancelled (long handlers should check it and stop).
    public var isCancelled: Bool { isCancelledCheck() }
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
            guard let ms = payload["ms"] as? Int, ms >= 0 else { throw TaskFailure("sleep needs {\"ms\": N} with N ≥ 0", permanent: true) }
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
}

/// A worker process's engine: `concurrency` threads, each with its own Redis connection, claim from
/// `queues`, run handlers, store results durably (batched) and only then acknowledge in Redis. One
/// more thread heartbeats every in-flight task every lease/3.
public final class Worker: Sendable {
    private struct Shared {
        var stopping = false
        var inFlight: [String: ClaimedTask] = [:]
        var cancelled: Set<String> = []
        var summary = WorkerSummary()
        var finishedThreads = 0
        var errors: [String] = []
    }

    public let config: QueueConfig
    public let options: WorkerOptions
    private let database: ConnectionOptions
    private let handlers: [String: TaskHandler]
    private let logger: Logger
    private let shared = Mutex(Shared())

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
    }

    public var isStopping: Bool { shared.withLock { $0.stopping } }

    /// SIGTERM and SIGINT call ``stop()``. Returns the sources (keep them alive while running).
    public func installSignalHandlers() -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { signo in
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
        let store = ResultStore(options: database, batchSize: config.batchSize, batchWait: config.batchWait, logger: logger)
        defer { store.stop() }
        logger.info("worker started", metadata: ["worker": .string(options.name), "queues": .string(options.queues.joined(separator: ",")),
                                                 "concurrency": .stringConvertible(options.concurrency)])
        for index in 0..<options.concurrency {
            let thread = Thread { [self] in
                self.threadLoop(index: index, store: store)
                self.shared.withLock { $0.finishedThreads += 1 }
            }
            thread.name = "nfldb-worker-\(index)"
            thread.start()
        }
        let heartbeat = Thread { [self] in self.heartbeatLoop() }
        heartbeat.start()

        // Wait for the threads; after a stop, at most the grace period.
        var stopSeen: ContinuousClock.Instant?
        while shared.withLock({ $0.finishedThreads }) < options.concurrency {
            Thread.sleep(forTimeInterval: 0.02)
            if stopSeen == nil && isStopping { stopSeen = .now }
            if let seen = stopSeen, ContinuousClock.now - seen > config.grace { break }
        }
        stop()
        let left = shared.withLock { s in Array(s.inFlight.values) }
        for task in left {
            let outcome = (try? control.release(task)) ?? .lost
            logger.warning("released unfinished task after the grace period", metadata: [
                "correlation_id": .string(task.correlationID.isEmpty ? task.id : task.correlationID), "task_id": .string(task.id),
                "outcome": .string(outcome.rawValue)])
            shared.withLock { $0.summary.released += 1 }
        }
        control.connection.close()
        let (summary, errors) = shared.withLock { ($0.summary, $0.errors) }
        if !errors.isEmpty && summary.succeeded == 0 && summary.dead == 0 && summary.retried == 0 {
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

    private func threadLoop(index: Int, store: ResultStore) {
        var queue: TaskQueue?
        var database: PostgresConnection?
        defer {
            queue?.connection.close()
            database?.close()
        }
        var failures = 0
        while !isStopping {
            do {
                if queue == nil || !(queue!.connection.isAlive) {
                    queue = try TaskQueue.connect(config, clientName: "nfldb-worker", logger: logger)
                }
                guard let task = try queue!.claim(queues: options.queues, worker: "\(options.name)/\(index)") else {
                    if try options.burst && queue!.pendingCount(queues: options.queues) == 0 && shared.withLock({ $0.inFlight.isEmpty }) {
                        stop()
                        return
                    }
                    Thread.sleep(forTimeInterval: Double(options.idlePoll.milliseconds) / 1000)
                    continue
                }
                failures = 0
                shared.withLock { $0.inFlight[task.id] = task }
                defer { shared.withLock { _ = $0.inFlight.removeValue(forKey: task.id); _ = $0.cancelled.remove(task.id) } }
                try process(task, queue: queue!, store: store, database: &database)
            } catch {
                failures += 1
                let text = String(describing: error)
                shared.withLock { $0.errors.append(text) }
                logger.error("worker thread \(index): \(text)")
                queue?.connection.close()
                queue = nil
                // Back off while Redis or PostgreSQL is away (restart, failover), then reconnect.
                Thread.sleep(forTimeInterval: min(2.0, 0.05 * Double(1 << min(failures, 6))))
            }
        }
    }

    private func process(_ task: ClaimedTask, queue: TaskQueue, store: ResultStore, database: inout PostgresConnection?) throws {
        let log = taskLogger(task)
        let started = ContinuousClock.now
        var db = database
        defer { database = db }
        let context = TaskContext(
            task: task, logger: log, isCancelled: { [self] in shared.withLock { $0.cancelled.contains(task.id) } },
            database: { [self] in
                if let open = db, open.isAlive { return open }
                db = try PostgresConnection.connect(self.database, logger: self.logger)
                return db!
            })
        let outcome: String
        if task.schemaVersion != taskSchemaVersion {
            outcome = try record(queue.fail(task, error: "payload schema version \(task.schemaVersion) is not supported (this worker reads \(taskSchemaVersion))", permanent: true), task)
        } else if let handler = handlers[task.type] {
            do {
                let result = try handler(context)
                if context.isCancelled {
                    outcome = "cancelled"
                    shared.withLock { $0.summary.cancelled += 1 }
                } else {
                    let inserted = try store.store(TaskResultRecord(task: task, worker: options.name, result: result))
                    let ack = try queue.complete(task)
                    shared.withLock { s in
                        switch ack {
                        case .ok: s.summary.succeeded += 1; if !inserted { s.summary.duplicates += 1 }
                        case .cancelled: s.summary.cancelled += 1
                        default: s.summary.lost += 1
                        }
                    }
                    outcome = inserted ? (ack == .ok ? "succeeded" : "stored, ack \(ack.rawValue)") : "duplicate (result already stored), ack \(ack.rawValue)"
                }
            } catch let failure as TaskFailure {
                outcome = try record(queue.fail(task, error: failure.message, permanent: failure.permanent), task)
            } catch let error as QueueError {
                // The result could not be stored: retry later (never ack without the durable row).
                outcome = try record(queue.fail(task, error: error.diagnostic.summary), task)
            } catch let error as RedisError {
                throw error
            } catch {
                outcome = try record(queue.fail(task, error: String(describing: error)), task)
            }
        } else {
            let known = handlers.keys.sorted().joined(separator: ", ")
            outcome = try record(queue.fail(task, error: "unknown task type \"\(task.type)\": no handler in this worker (known: \(known))", permanent: true), task)
        }
        log.info("task \(outcome)", metadata: ["duration_ms": .stringConvertible((ContinuousClock.now - started).milliseconds)])
    }

    private func record(_ outcome: FenceOutcome, _ task: ClaimedTask) -> String {
        shared.withLock { s in
            switch outcome {
            case .retry: s.summary.retried += 1
            case .dead: s.summary.dead += 1
            case .cancelled: s.summary.cancelled += 1
            case .lost: s.summary.lost += 1
            case .ok: break
            }
        }
        return outcome == .retry ? "failed, will retry" : outcome == .dead ? "failed, dead-lettered" : outcome.rawValue
    }

    private func heartbeatLoop() {
        var queue: TaskQueue?
        let interval = Double(config.lease.milliseconds) / 3000
        while shared.withLock({ $0.finishedThreads }) < options.concurrency {
            Thread.sleep(forTimeInterval: min(interval, 0.2))
            let due = shared.withLock { Array($0.inFlight.values) }
            guard !due.isEmpty else { continue }
            do {
                if queue == nil || !(queue!.connection.isAlive) { queue = try TaskQueue.connect(config, clientName: "nfldb-heartbeat", logger: logger) }
                for task in due {
                    let outcome = try queue!.heartbeat(task)
                    if outcome == .cancelled || outcome == .lost {
                        shared.withLock { _ = $0.cancelled.insert(task.id) }
                        taskLogger(task).notice("heartbeat: task \(outcome == .cancelled ? "was cancelled" : "lease lost"); the handler is told to stop")
                    }
                }
            } catch {
                logger.warning("heartbeat failed: \(error)")
                queue?.connection.close()
                queue = nil
            }
        }
        queue?.connection.close()
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
