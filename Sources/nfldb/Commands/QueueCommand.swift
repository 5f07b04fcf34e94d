import ArgumentParser
import Foundation
import Logging
import NFLDBBackup
import NFLDBCore
import NFLDBPostgres
import NFLDBQueue
import NFLDBQueueMetrics

/// `nfldb queue submit | stats | inspect | recover | cancel | dlq …`: the task queue on Redis.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "The Redis task queue: submit tasks, see depth and dead letters, recover expired leases, cancel.",
        discussion: "Redis from redis.url / NFLDB_REDIS_URL (password by reference in redis.password). Exit status: 0 ok, 1 failure, 2 usage.",
        subcommands: [Submit.self, Stats.self, Inspect.self, Recover.self, Cancel.self, DeadLetters.self])
}

struct QueueOutput: ParsableArguments {
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text
}

extension CommandContext {
    func taskQueue() throws -> TaskQueue {
        try TaskQueue.connect(QueueConfig(configuration: configuration), logger: logger)
    }
}

extension QueueCommand {
    struct Submit: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Enqueue a task; prints its id (the existing id for a known idempotency key).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var output: QueueOutput
        @Argument(help: "Task type: noop, sleep, fail, db.vacuum_analyze, etl.load, backup.verify.") var type: String
        @Option(help: "Payload, a JSON object.") var payload = "{}"
        @Option(help: "Capability queue: cpu, gpu_high, gpu_low, io, …") var queue = "cpu"
        @Option(parsing: .unconditional, help: "Priority, -1000…1000, higher first; waiting ages every task (queue.aging_interval per step).")
        var priority = 0
        @Option(name: .customLong("idempotency-key"), help: "Same key within queue.idempotency_ttl → the same task.") var idempotencyKey: String?
        @Option(name: .customLong("max-attempts"), parsing: .unconditional,
                help: "Attempts before the dead-letter queue (default queue.max_attempts).") var maxAttempts: Int?
        @Option(name: .customLong("correlation-id"), help: "Trace id carried into the worker's logs, nfl.etl_runs and audit.log (default NFLDB_CORRELATION_ID, else a new one).")
        var correlationID: String?
        @Option(help: "Submit this many identical tasks, pipelined (drills, benchmarks; not with --idempotency-key); prints how many.") var count = 1
        static let commandPath = "queue submit"

        /// Swift repairs invalid UTF-8 in arguments with U+FFFD, so two different byte strings would become
        /// the same idempotency key (the same task): refuse them instead.
        static func requireValidUTF8Arguments() throws {
            for index in 1..<Int(CommandLine.argc) {
                guard let raw = CommandLine.unsafeArgv[index] else { continue }
                if String(validatingCString: raw) == nil {
                    throw OperatorError("argument \(index) is not valid UTF-8 (the queue stores text; invalid bytes would be replaced by U+FFFD)",
                                        hint: "Pass the key, payload and ids as UTF-8 text (encode binary data, e.g. as hex or base64).",
                                        exitStatus: .usage)
                }
            }
        }

        func run(_ context: CommandContext) throws {
            try Self.requireValidUTF8Arguments()
            guard count == 1 || (count >= 1 && idempotencyKey == nil) else {
                throw OperatorError("--count must be at least 1 and cannot be combined with --idempotency-key",
                                    hint: "Give --count N with N ≥ 1 (or leave it out for one task).", exitStatus: .usage)
            }
            let correlation = try SubmittedTask.correlation(correlationID, default: context.correlationID)
            let q = try context.taskQueue()
            defer { q.close() }
            if count != 1 {
                let ids = try q.submit(count: count, type: type, payload: payload, queue: queue, priority: priority, maxAttempts: maxAttempts,
                                       correlationID: correlation)
                switch output.format {
                case .json: context.output(try JSONOutput.encode(["submitted": ids.count]))
                case .text: context.output("\(ids.count) tasks submitted")
                }
                return
            }
            let result = try q.submit(type: type, payload: payload, queue: queue, priority: priority, idempotencyKey: idempotencyKey,
                                      maxAttempts: maxAttempts, correlationID: correlation)
            // A known idempotency key: the existing task keeps the correlation id it was submitted with.
            let carried = result.created ? correlation : (try q.inspect(id: result.id)?["cid"]).flatMap { $0.isEmpty ? nil : $0 } ?? result.id
            switch output.format {
            case .json: context.output(try JSONOutput.encode(SubmittedTask(id: result.id, created: result.created, correlationId: carried)))
            case .text:
                context.output(result.id)
                if !result.created { context.say("(idempotency key already used: this is the existing task)") }
            }
        }
    }

    struct Stats: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Per queue: ready, delayed, in flight, expired leases, dead, oldest ready age.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var output: QueueOutput
        static let commandPath = "queue stats"

        func run(_ context: CommandContext) throws {
            let q = try context.taskQueue()
            defer { q.close() }
            let stats = try q.stats()
            switch output.format {
            case .json: context.output(try JSONOutput.encode(stats))
            case .text:
                if stats.isEmpty { context.output("no queues yet"); return }
                context.output(TextTable.render(
                    header: ["queue", "ready", "delayed", "in_flight", "expired", "dead", "oldest_ready"],
                    rows: stats.map { [$0.queue, "\($0.ready)", "\($0.delayed)", "\($0.inFlight)", "\($0.expiredLeases)", "\($0.dead)",
                                       $0.oldestReadyAgeSeconds.map { String(format: "%.1fs", $0) } ?? "-"] }))
            }
        }
    }

    struct Inspect: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Every field of a task, with its attempt history.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var output: QueueOutput
        @Argument(help: "Task id.", transform: QueueCommand.taskID) var id: String
        static let commandPath = "queue inspect"

        func run(_ context: CommandContext) throws {
            let q = try context.taskQueue()
            defer { q.close() }
            guard let task = try q.inspect(id: id) else {
                throw OperatorError("no task \(id) in Redis", hint: "Finished tasks leave Redis after queue.completed_ttl; look in nfl.task_results.")
            }
            switch output.format {
            case .json: context.output(try JSONOutput.encode(task))
            case .text: for key in task.keys.sorted() { context.output("\(key): \(task[key]!)") }
            }
        }
    }

    struct Recover: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Move expired leases back to ready (counting the attempt) or to the dead-letter queue.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var output: QueueOutput
        static let commandPath = "queue recover"

        func run(_ context: CommandContext) throws {
            let q = try context.taskQueue()
            defer { q.close() }
            let moved = try q.recover()
            switch output.format {
            case .json: context.output(try JSONOutput.encode(["recovered": moved]))
            case .text: context.output("recovered \(moved) expired lease\(moved == 1 ? "" : "s")")
            }
        }
    }

    struct Cancel: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a task: a pending one at once, a running one at its next heartbeat.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var output: QueueOutput
        @Argument(help: "Task id.", transform: QueueCommand.taskID) var id: String
        static let commandPath = "queue cancel"

        func run(_ context: CommandContext) throws {
            let q = try context.taskQueue()
            defer { q.close() }
            let was = try q.cancel(id: id)
            if was == "missing" { throw OperatorError("no task \(id) in Redis", hint: "Check the id with nfldb queue inspect.") }
            switch output.format {
            case .json: context.output(try JSONOutput.encode(["id": id, "previous_state": was]))
            case .text:
                switch was {
                case "ready", "delayed": context.output("cancelled \(id) (was \(was))")
                case "running": context.output("cancelled \(id); its worker learns it at the next heartbeat")
                default: context.output("\(id) was already \(was); nothing changed")
                }
            }
        }
    }

    struct DeadLetters: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dlq", abstract: "The dead-letter queue: list, requeue, purge (never trimmed by itself).",
            subcommands: [List.self, Requeue.self, Purge.self])

        struct List: GlobalOptionsCommand {
            static let configuration = CommandConfiguration(abstract: "Dead tasks with their last error and attempts.")
            @OptionGroup var global: GlobalOptions
            @ParentCommand var root: NFLDB
            @OptionGroup var output: QueueOutput
            @Option(help: "Only this queue.") var queue: String?
            static let commandPath = "queue dlq list"

            func run(_ context: CommandContext) throws {
                let q = try context.taskQueue()
                defer { q.close() }
                let names = try queue.map { [$0] } ?? q.queues()
                var dead: [[String: String]] = []
                for name in names { dead += try q.deadLetters(queue: name) }
                switch output.format {
                case .json: context.output(try JSONOutput.encode(dead))
                case .text:
                    if dead.isEmpty { context.output("the dead-letter queue is empty"); return }
                    context.output(TextTable.render(
                        header: ["id", "queue", "type", "attempts", "error"],
                        rows: dead.map { [$0["id"] ?? "", $0["queue"] ?? "", $0["type"] ?? "", $0["attempts"] ?? "", String(($0["error"] ?? "").prefix(80))] }))
                }
            }
        }

        struct Requeue: GlobalOptionsCommand {
            static let configuration = CommandConfiguration(abstract: "Put a dead task back to ready with a fresh attempt budget.")
            @OptionGroup var global: GlobalOptions
            @ParentCommand var root: NFLDB
            @OptionGroup var output: QueueOutput
            @Argument(help: "Task id.", transform: QueueCommand.taskID) var id: String
            static let commandPath = "queue dlq requeue"

            func run(_ context: CommandContext) throws {
                let q = try context.taskQueue()
                defer { q.close() }
                guard try q.requeue(id: id) else {
                    throw OperatorError("task \(id) is not in the dead-letter queue", hint: "List dead tasks with nfldb queue dlq list.")
                }
                switch output.format {
                case .json: context.output(try JSONOutput.encode(["id": id, "state": "ready"]))
                case .text: context.output("requeued \(id)")
                }
            }
        }

        struct Purge: GlobalOptionsCommand {
            static let configuration = CommandConfiguration(abstract: "Delete dead tasks (needs --yes-delete-dead-tasks).")
            @OptionGroup var global: GlobalOptions
            @ParentCommand var root: NFLDB
            @OptionGroup var output: QueueOutput
            @Option(help: "Only this queue.") var queue: String?
            @Flag(name: .customLong("yes-delete-dead-tasks"), help: "Confirm: the dead tasks and their history are deleted from Redis.")
            var confirmed = false
            static let commandPath = "queue dlq purge"

            func validate() throws {
                if !confirmed { throw ValidationError("purge deletes dead tasks for good; add --yes-delete-dead-tasks to confirm (see them first with queue dlq list)") }
            }

            func run(_ context: CommandContext) throws {
                let q = try context.taskQueue()
                defer { q.close() }
                let removed = try q.purgeDeadLetters(queue: queue)
                switch output.format {
                case .json: context.output(try JSONOutput.encode(["purged": removed]))
                case .text: context.output("purged \(removed) dead task\(removed == 1 ? "" : "s")")
                }
            }
        }
    }
}

/// `nfldb worker`: runs tasks from the queues this host can serve.
struct WorkerCommand: GlobalOptionsCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run queued tasks: N threads, durable results in nfl.task_results, graceful stop on SIGTERM/SIGINT/SIGHUP.",
        discussion: "Exit status: 0 stopped (or, with --burst, queues empty), 1 failure, 2 usage.")
    @OptionGroup var global: GlobalOptions
    @ParentCommand var root: NFLDB
    @OptionGroup var output: QueueOutput
    @Option(help: "Queues to serve, comma-separated (default: what the hardware profile can serve).") var queues: String?
    @Option(help: "Concurrent handler threads.") var concurrency = 1
    @Flag(help: "Exit 0 once the queues have nothing ready, delayed or in flight.") var burst = false
    @Option(help: "GPUs this host has (overrides nvidia-smi detection).") var gpus: Int?
    @Option(help: "Tasks claimed ahead of idle threads (default: adaptive, what the threads finish within 50 ms, at most 256).") var prefetch: Int?
    @Option(name: .customLong("metrics-port"), help: "Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (loopback only).")
    var metricsPort: Int?
    static let commandPath = "worker"

    func validate() throws {
        if !(1...256).contains(concurrency) { throw ValidationError("--concurrency must be 1…256") }
        if let prefetch, !(0...1000).contains(prefetch) { throw ValidationError("--prefetch must be 0…1000") }
        if let metricsPort, !(1...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be 1…65535") }
    }

    func run(_ context: CommandContext) throws {
        var profile = WorkerProfile.detect()
        if let gpus { profile.gpus = gpus }
        let names = try queues.map { try profile.check($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) } ?? profile.defaultQueues
        let config = try QueueConfig(configuration: context.configuration)
        var options = WorkerOptions(queues: names, concurrency: concurrency, burst: burst)
        options.prefetch = prefetch
        let metricsServer = try metricsPort.map { port in
            let metrics = QueueMetrics()
            options.metrics = metrics
            let logger = context.logger
            return try MetricsServer(port: port, logger: logger) {
                metrics.refresh(config, logger: logger)
                return metrics.render()
            }
        }
        defer { metricsServer?.stop() }
        let database = try context.connectionOptions()
        let worker = Worker(config: config, options: options, database: database,
                            handlers: WorkerHandlers.all(configuration: context.configuration, database: database), logger: context.logger)
        let signals = worker.installSignalHandlers()
        // A backup.verify still running after the grace period: stop its restore and scratch copy (no leftover server).
        defer { ActiveScratch.tearDownAll() }
        let summary = try worker.run()
        signals.forEach { $0.cancel() }
        switch output.format {
        case .json: context.output(try JSONOutput.encode(summary))
        case .text:
            context.output("worker stopped: \(summary.succeeded) succeeded (\(summary.duplicates) already stored), \(summary.retried) retried, "
                + "\(summary.dead) dead-lettered, \(summary.cancelled) cancelled, \(summary.lost) lease lost, \(summary.released) released"
                    + (summary.unreleased > 0 ? ", \(summary.unreleased) not released (back when the lease expires)" : ""))
        }
        // A task it could not give back (Redis away during the grace period) waits for its lease:
        // cron and systemd must see that as a failure (exit 1), not a clean stop (an attack probe).
        if summary.unreleased > 0 { throw ExitStatus.failure }
        finished(context, "worker")
    }
}

/// `queue submit --format json`: the id, whether it was created, and the correlation id it carries.
struct SubmittedTask: Encodable {
    let id: String
    let created: Bool
    let correlationId: String

    static func correlation(_ given: String?, default fallback: String) throws -> String {
        guard let given else { return fallback }
        guard !given.isEmpty, given.utf8.count <= 200, !given.utf8.contains(0), !given.contains(where: { $0.isNewline || $0.isWhitespace }) else {
            throw OperatorError("--correlation-id must be 1–200 bytes of UTF-8 without spaces", exitStatus: .usage)
        }
        return given
    }
}

extension QueueCommand {
    /// A task id argument: an empty one (`queue inspect "$ID"` with ID unset) is a usage error, not "no task".
    static func taskID(_ text: String) throws -> String {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("the task id is empty: give the id `nfldb queue submit` printed")
        }
        return text
    }
}
