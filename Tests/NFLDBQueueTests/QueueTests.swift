import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBQueue
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

/// A redis-server and a database with nfl.task_results (migration 0008 applied as written).
struct QueueWorld {
    let redis: RedisTestServer
    let database: TestDatabase
    var config: QueueConfig
    let logger = RedisTestServer.logger

    static func with(redisSettings: [String] = [], _ body: (inout QueueWorld) throws -> Void) throws {
        let redis = try RedisTestServer.start(settings: redisSettings)
        defer { redis.stop() }
        try TestCluster.withDatabase(prefix: "queue") { database in
            let connection = try database.connect()
            defer { connection.close() }
            let migrations = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("migrations/0008_create_task_results.up.sql").path
            _ = try connection.runScript(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS nfl")
            _ = try connection.runScript(unsafeSQL: try String(contentsOfFile: migrations, encoding: .utf8))
            var config = QueueConfig(endpoint: redis.endpoint)
            config.backoffBase = .milliseconds(10)
            config.backoffMax = .milliseconds(50)
            var world = QueueWorld(redis: redis, database: database, config: config)
            try body(&world)
        }
    }

    func queue() throws -> TaskQueue { try TaskQueue.connect(config, logger: logger) }
    var databaseOptions: ConnectionOptions { ConnectionOptions(dsn: database.dsn) }

    func resultCount() throws -> Int {
        let connection = try database.connect()
        defer { connection.close() }
        return try connection.query("SELECT count(*) AS n FROM nfl.task_results WHERE status = 'succeeded'").rows[0].decode("n")
    }

    func history(_ q: TaskQueue, _ id: String) throws -> [[String: Any]] {
        let text = try q.inspect(id: id)?["history"] ?? "[]"
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]) ?? []
    }
}

@Suite("task queue against redis-server and PostgreSQL", .serialized)
struct QueueTests {
    @Test("enqueue, claim, durable result, complete; the row is in nfl.task_results and the task leaves in-flight")
    func lifecycle() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let submitted = try q.submit(type: "noop", payload: #"{"x": 1}"#, queue: "cpu", correlationID: "cid-1")
            #expect(submitted.created)
            let task = try #require(try q.claim(queues: ["cpu"], worker: "w1"))
            #expect(task.id == submitted.id && task.attempt == 1 && task.correlationID == "cid-1" && task.token > 0)
            #expect(try q.claim(queues: ["cpu"], worker: "w2") == nil, "a claimed task must not be claimed twice")
            let store = ResultStore(options: world.databaseOptions, batchSize: 8, batchWait: .milliseconds(2), logger: world.logger)
            defer { store.stop() }
            #expect(try store.store(TaskResultRecord(task: task, worker: "w1", result: #"{"ok": true}"#)))
            #expect(try q.complete(task) == .ok)
            #expect(try q.inspect(id: task.id)?["state"] == "succeeded")
            #expect(try world.resultCount() == 1)
            // Storing the same task again (a re-delivery) writes nothing.
            #expect(try store.store(TaskResultRecord(task: task, worker: "w1", result: "{}")) == false)
            let stats = try #require(try q.stats().first)
            #expect(stats.ready == 0 && stats.inFlight == 0 && stats.dead == 0)
        }
    }

    @Test("fencing: a worker whose lease expired can neither heartbeat nor complete; the next claimant can")
    func fencing() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            _ = try q.submit(type: "noop", queue: "cpu")
            let stale = try #require(try q.claim(queues: ["cpu"], worker: "slow", lease: .milliseconds(100)))
            Thread.sleep(forTimeInterval: 0.25)
            #expect(try q.complete(stale) == .lost, "lease expired but not yet reaped: complete must be refused")
            let fresh = try #require(try q.claim(queues: ["cpu"], worker: "fast"), "claim must reap the expired lease")
            #expect(fresh.id == stale.id && fresh.token > stale.token && fresh.attempt == 2)
            #expect(try q.heartbeat(stale) == .lost)
            #expect(try q.complete(stale) == .lost)
            #expect(try q.complete(fresh) == .ok)
            let history = try world.history(q, fresh.id)
            #expect(history.map { $0["outcome"] as? String } == ["lease expired", "succeeded"], "\(history)")
        }
    }

    @Test("an idempotency key within its TTL returns the existing id and enqueues nothing")
    func idempotency() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let first = try q.submit(type: "noop", queue: "io", idempotencyKey: "load-2024-w1")
            let second = try q.submit(type: "noop", queue: "io", idempotencyKey: "load-2024-w1")
            #expect(first.created && !second.created && first.id == second.id)
            #expect(try q.stats().first { $0.queue == "io" }?.ready == 1)
            let other = try q.submit(type: "noop", queue: "io", idempotencyKey: "load-2024-w2")
            #expect(other.created && other.id != first.id)
            // The same key for a different request is refused (before, it silently returned the first
            // task, so the second request was lost); the same object with its keys in another order is the same request.
            let keyed = try q.submit(type: "etl.load", payload: #"{"season": 2024, "week": 1}"#, queue: "io", idempotencyKey: "load-2024-w3")
            let reordered = try q.submit(type: "etl.load", payload: #"{"week":1,"season":2024}"#, queue: "io", idempotencyKey: "load-2024-w3")
            #expect(reordered.id == keyed.id && !reordered.created)
            for (type, payload, queue) in [("etl.load", #"{"season": 2024, "week": 2}"#, "io"), ("noop", #"{"season": 2024, "week": 1}"#, "io"),
                                           ("etl.load", #"{"season": 2024, "week": 1}"#, "cpu")] {
                let refused = #expect(throws: QueueError.self) {
                    try q.submit(type: type, payload: payload, queue: queue, idempotencyKey: "load-2024-w3")
                }
                #expect(refused?.exitStatus == .usage)
                #expect(refused?.diagnostic.summary.contains("idempotency key load-2024-w3 already names task \(keyed.id), submitted with a different type, queue or payload") == true,
                        "\(String(describing: refused))")
            }
            #expect(try q.stats().first { $0.queue == "io" }?.ready == 3, "nothing enqueued by the refused submits")
            #expect(try q.stats().first { $0.queue == "cpu" }?.ready ?? 0 == 0)
            // Once the task's hash has left Redis (completed past queue.completed_ttl, or removed), the
            // key still remembers its request (an attack probe: the check faded with the hash).
            _ = try q.connection.command("DEL", RedisArgument(world.config.prefix + "task:" + keyed.id))
            let afterHashGone = #expect(throws: QueueError.self) {
                try q.submit(type: "etl.load", payload: #"{"season": 2024, "week": 9}"#, queue: "io", idempotencyKey: "load-2024-w3")
            }
            #expect(afterHashGone?.diagnostic.summary.contains("already names task \(keyed.id)") == true, "\(String(describing: afterHashGone))")
            #expect(afterHashGone?.diagnostic.hint?.contains("queue.idempotency_ttl, 24.0 h") == true, "\(String(describing: afterHashGone?.diagnostic.hint))")
            #expect(try q.submit(type: "etl.load", payload: #"{"week":1,"season":2024}"#, queue: "io", idempotencyKey: "load-2024-w3").id == keyed.id)
            // A key with control characters is refused without echoing them (they could forge lines on a terminal).
            let forged = #expect(throws: QueueError.self) {
                try q.submit(type: "noop", queue: "io", idempotencyKey: "evil\u{1B}[2K\rHINT: run rm -rf /")
            }
            #expect(forged?.exitStatus == .usage && forged?.diagnostic.summary.contains("control, format or separator characters") == true, "\(String(describing: forged))")
            for look in ["order-1\u{200B}", "a\u{202E}b", "a\u{2028}note: fine"] {
                #expect(throws: QueueError.self, "\(look.unicodeScalars.map { String($0.value, radix: 16) })") {
                    try q.submit(type: "noop", queue: "io", idempotencyKey: look)
                }
            }
            #expect(forged?.diagnostic.summary.contains("\u{1B}") == false && forged?.diagnostic.summary.contains("\r") == false)
        }
    }

    @Test("dlq purge: tasks dead-lettered while it runs stay listed (no dead task left outside the list, as an attack probe found), and a purged task's idempotency key goes with it, so the same key enqueues again")
    func purgeKeepsLateDeadTasksAndFreesKeys() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let keyed = try q.submit(type: "fail", queue: "cpu", idempotencyKey: "K2", maxAttempts: 1)
            let early = try q.submit(count: 1500, type: "fail", queue: "cpu", maxAttempts: 1) + [keyed.id]
            while let task = try q.claim(queues: ["cpu"], worker: "w") { _ = try q.fail(task, error: "x", permanent: true) }
            let repeated = try q.submit(type: "fail", queue: "cpu", idempotencyKey: "K2", maxAttempts: 1)
            #expect(repeated.id == keyed.id && !repeated.created)
            let late = try q.submit(count: 300, type: "fail", queue: "cpu", maxAttempts: 1)
            // Another connection dead-letters the late tasks while the purge runs.
            nonisolated(unsafe) let killer = try world.queue()  // used only by the thread below
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var killed = 0
            Thread.detachNewThread {
                while let task = try? killer.claim(queues: ["cpu"], worker: "k") {
                    if (try? killer.fail(task, error: "late", permanent: true)) == .dead { killed += 1 }
                }
                done.signal()
            }
            let removed = try q.purgeDeadLetters(queue: "cpu")
            #expect(done.wait(timeout: .now() + 60) == .success)
            #expect(killed == 300)
            for id in early { #expect(try q.inspect(id: id) == nil, "\(id) purged") }
            let listed = Set(try q.deadLetters(queue: "cpu").compactMap { $0["id"] })
            var lateDead = 0
            for id in late {
                if let task = try q.inspect(id: id) {
                    #expect(task["state"] == "dead" && listed.contains(id), "a late dead task is still listed: \(task)")
                    lateDead += 1
                }
            }
            #expect(removed == early.count + (late.count - lateDead), "removed \(removed), late still listed \(lateDead)")
            #expect(listed.count == lateDead)
            // The purged keyed task's key is free again.
            let again = try q.submit(type: "fail", queue: "cpu", idempotencyKey: "K2", maxAttempts: 1)
            #expect(again.created && again.id != keyed.id, "\(again)")
        }
    }

    @Test("a poison task retries with backoff through the delayed set, then is dead-lettered after max_attempts with its history")
    func poison() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let id = try q.submit(type: "fail", queue: "cpu", maxAttempts: 3).id
            var outcomes: [FenceOutcome] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while outcomes.last != .dead && ContinuousClock.now < deadline {
                if let task = try q.claim(queues: ["cpu"], worker: "w") {
                    outcomes.append(try q.fail(task, error: "boom \(task.attempt)"))
                    if outcomes.last == .retry { #expect(try q.stats()[0].delayed == 1, "a retry waits in the delayed set") }
                } else { Thread.sleep(forTimeInterval: 0.01) }
            }
            #expect(outcomes == [.retry, .retry, .dead])
            let dead = try q.deadLetters(queue: "cpu")
            #expect(dead.count == 1 && dead[0]["id"] == id && dead[0]["error"] == "boom 3")
            let history = try world.history(q, id)
            #expect(history.compactMap { $0["error"] as? String } == ["boom 1", "boom 2", "boom 3"])
            #expect(try q.claim(queues: ["cpu"], worker: "w") == nil)
            // Requeue gives it a fresh budget; the dead list shrinks by exactly that task.
            #expect(try q.requeue(id: id))
            #expect(try q.deadLetters(queue: "cpu").isEmpty)
            #expect(try q.claim(queues: ["cpu"], worker: "w")?.attempt == 1)
        }
    }

    @Test("a task whose lease expires on every attempt is dead-lettered by the reaper, not retried forever")
    func leaseExpiryPoison() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let id = try q.submit(type: "noop", queue: "cpu", maxAttempts: 2).id
            _ = try #require(try q.claim(queues: ["cpu"], worker: "a", lease: .milliseconds(50)))
            Thread.sleep(forTimeInterval: 0.1)
            _ = try #require(try q.claim(queues: ["cpu"], worker: "b", lease: .milliseconds(50)))
            Thread.sleep(forTimeInterval: 0.1)
            #expect(try q.recover() == 1)
            let dead = try q.deadLetters(queue: "cpu")
            #expect(dead.first?["id"] == id)
            #expect(dead.first?["error"]?.contains("lease expired on all 2 attempts") == true)
        }
    }

    @Test("aging: a low-priority task is claimed within (Δpriority × aging) while high-priority tasks keep arriving")
    func agingBound() throws {
        try QueueWorld.with { world in
            world.config.aging = .milliseconds(20)
            let q = try world.queue()
            let low = try q.submit(type: "noop", queue: "cpu", priority: 0).id
            let started = ContinuousClock.now
            var claimedLowAfter: Duration?
            var highClaimed = 0
            while ContinuousClock.now - started < .seconds(5) {
                // Two new high-priority tasks arrive for every claim: strict priority would starve `low` forever.
                _ = try q.submit(type: "noop", queue: "cpu", priority: 10)
                _ = try q.submit(type: "noop", queue: "cpu", priority: 10)
                let task = try #require(try q.claim(queues: ["cpu"], worker: "w"))
                _ = try q.complete(task)
                if task.id == low { claimedLowAfter = ContinuousClock.now - started; break }
                highClaimed += 1
                Thread.sleep(forTimeInterval: 0.002)
            }
            let waited = try #require(claimedLowAfter, "the low-priority task starved")
            // Bound: 10 steps × 20 ms = 200 ms, plus the claims of tasks already ahead; allow scheduling slack.
            #expect(waited < .milliseconds(600), "waited \(waited)")
            #expect(highClaimed > 0, "high-priority tasks must go first at the start")
        }
    }

    @Test("routing: a worker claims only from its queues; across queues the effective priority decides")
    func routing() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let gpu = try q.submit(type: "noop", queue: "gpu_high").id
            let cpuLow = try q.submit(type: "noop", queue: "cpu", priority: 0).id
            let cpuHigh = try q.submit(type: "noop", queue: "cpu", priority: 5).id
            #expect(try q.claim(queues: ["io"], worker: "w") == nil)
            #expect(try q.claim(queues: ["cpu", "io"], worker: "w")?.id == cpuHigh)
            #expect(try q.claim(queues: ["cpu", "io"], worker: "w")?.id == cpuLow)
            #expect(try q.claim(queues: ["cpu"], worker: "w") == nil)
            #expect(try q.claim(queues: ["gpu_high"], worker: "g")?.id == gpu)
            #expect(throws: QueueError.self) { try q.submit(type: "noop", queue: "bad queue name") }
            #expect(throws: QueueError.self) { try q.submit(type: "noop", payload: "[1,2]") }
        }
    }

    @Test("cancel: a pending task is never claimed; a running one learns it at its next heartbeat and cannot complete")
    func cancel() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let pending = try q.submit(type: "noop", queue: "cpu").id
            #expect(try q.cancel(id: pending) == "ready")
            #expect(try q.claim(queues: ["cpu"], worker: "w") == nil)
            #expect(try q.inspect(id: pending)?["state"] == "cancelled")
            _ = try q.submit(type: "noop", queue: "cpu")
            let running = try #require(try q.claim(queues: ["cpu"], worker: "w"))
            #expect(try q.heartbeat(running) == .ok)
            #expect(try q.cancel(id: running.id) == "running")
            #expect(try q.heartbeat(running) == .cancelled)
            #expect(try q.complete(running) == .cancelled)
            #expect(try q.cancel(id: "no-such-task") == "missing")
            #expect(try q.stats()[0].inFlight == 0)
        }
    }

    @Test("work: claims up to N best-first across queues with one token and lease each; acks are fenced, idempotent, and refuse cancelled tasks")
    func workClaimsManyAndAcknowledges() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let low = try q.submit(count: 3, type: "noop", queue: "cpu", priority: 0)
            let high = try q.submit(type: "noop", queue: "io", priority: 5).id
            // Best first across both queues, at most 2.
            let first = try q.work(acks: [], claim: 2, queues: ["cpu", "io"], worker: "w")
            #expect(first.acks.isEmpty && first.claimed.count == 2)
            #expect(first.claimed[0].id == high && low.contains(first.claimed[1].id), "\(first.claimed.map(\.id))")
            let cancelled = first.claimed[1].id
            #expect(Set(first.claimed.map(\.token)).count == 2 && first.claimed.allSatisfy { $0.attempt == 1 })
            #expect(try q.stats().first { $0.queue == "cpu" }?.inFlight == 1)
            // Cancel one claimed task; ack both and claim the rest in the same call.
            #expect(try q.cancel(id: cancelled) == "running")
            let second = try q.work(acks: first.claimed, claim: 10, queues: ["cpu", "io"], worker: "w")
            #expect(second.acks == [.ok, .cancelled])
            #expect(Set(second.claimed.map(\.id)) == Set(low).subtracting([cancelled]))
            #expect(try q.inspect(id: high)?["state"] == "succeeded")
            // A repeated ack (the reply was lost) answers ok again; a stale token is refused.
            var stale = second.claimed[0]
            stale.token -= 1000
            let third = try q.work(acks: [first.claimed[0], stale], claim: 0, queues: ["cpu"], worker: "w")
            #expect(third.acks == [.ok, .lost] && third.claimed.isEmpty)
            // Nothing left to claim; an expired lease is reaped by the next work call and claimed again with a new token.
            #expect(try q.work(acks: [], claim: 5, queues: ["cpu", "io"], worker: "w").claimed.isEmpty)
            _ = try q.submit(type: "noop", queue: "gpu_low")
            let leased = try q.work(acks: [], claim: 1, queues: ["gpu_low"], worker: "slow", lease: .milliseconds(50)).claimed
            Thread.sleep(forTimeInterval: 0.1)
            let again = try q.work(acks: leased, claim: 1, queues: ["gpu_low"], worker: "fast")
            #expect(again.acks == [.lost], "an ack after the lease expired must change nothing")
            #expect(again.claimed.first?.id == leased.first?.id && again.claimed.first?.attempt == 2 && (again.claimed.first?.token ?? 0) > (leased.first?.token ?? 0))
            let done = try q.work(acks: again.claimed + second.claimed, claim: 0, queues: ["gpu_low"], worker: "fast")
            #expect(done.acks == [.ok, .ok, .ok])
            #expect(try q.stats().allSatisfy { $0.inFlight == 0 && $0.ready == 0 })
        }
    }

    @Test("worker --burst: 4 threads drain 400 tasks; unknown type dead-lettered at once; exactly one result row per succeeded task")
    func workerBurst() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            for i in 0..<400 { _ = try q.submit(type: i % 2 == 0 ? "noop" : "sleep", payload: i % 2 == 0 ? "{}" : #"{"ms": 1}"#, queue: "cpu") }
            let unknown = try q.submit(type: "no.such.type", queue: "cpu", maxAttempts: 5).id
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 4, burst: true),
                                database: world.databaseOptions, logger: world.logger)
            let summary = try worker.run()
            #expect(summary.succeeded == 400 && summary.dead == 1 && summary.retried == 0, "\(summary)")
            #expect(try world.resultCount() == 400)
            let dead = try q.deadLetters(queue: "cpu")
            #expect(dead.count == 1 && dead[0]["id"] == unknown && dead[0]["attempts"] == "1")
            #expect(dead[0]["error"]?.contains("unknown task type \"no.such.type\"") == true)
            let stats = try q.stats()[0]
            #expect(stats.ready == 0 && stats.inFlight == 0 && stats.delayed == 0)
        }
    }
}

/// Fixes found by the probe against real redis-server and PostgreSQL (December 2026).
@Suite("queue probe fixes", .serialized)
struct QueueProbeFixTests {
    @Test("a lost lease cancels only that attempt: the same worker's new claim of the task runs and succeeds (was cancelled/dead-lettered)")
    func lostLeaseCancelsOnlyThatAttempt() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let id = try q.submit(type: "relapse", queue: "cpu", maxAttempts: 2).id
            let config = world.config
            let logger = world.logger
            let handler: TaskHandler = { context in
                let task = context.task
                let key = RedisArgument(config.prefix + "task:" + task.id)
                if task.attempt == 1 {
                    let redis = try TaskQueue.connect(config, logger: logger)
                    defer { redis.close() }
                    // The lease is lost (as after a Redis stall): heartbeats of this attempt now answer 'lost'.
                    _ = try redis.connection.command("HSET", key, "lease_until", "0")
                    let deadline = ContinuousClock.now + .seconds(15)
                    while !context.isCancelled && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
                    guard context.isCancelled else { throw TaskFailure("attempt 1 never learned its lease was lost") }
                    // Only now may the task be reaped and claimed again (by this worker's idle thread).
                    _ = try redis.connection.command("ZADD", RedisArgument(config.prefix + "inflight:cpu"), "0", RedisArgument(task.id))
                    while ContinuousClock.now < deadline, try redis.connection.command("HGET", key, "attempts").string != "2" {
                        Thread.sleep(forTimeInterval: 0.02)
                    }
                    // Stay in flight while attempt 2 runs: the old attempt's 'lost' must not reach it.
                    Thread.sleep(forTimeInterval: 0.8)
                    throw TaskFailure("attempt 1 stopped after its lease was lost")
                }
                let end = ContinuousClock.now + .milliseconds(1200)
                while ContinuousClock.now < end {
                    if context.isCancelled { throw TaskFailure("attempt \(task.attempt) was told it was cancelled", permanent: true) }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                return #"{"attempt": \#(task.attempt)}"#
            }
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 2, burst: true),
                                database: world.databaseOptions, handlers: ["relapse": handler], logger: world.logger)
            let summary = try worker.run()
            let task = try #require(try q.inspect(id: id))
            #expect(task["state"] == "succeeded" && task["attempts"] == "2", "\(task)")
            #expect(summary.succeeded == 1 && summary.dead == 0, "\(summary)")
            #expect(try q.deadLetters(queue: "cpu").isEmpty)
            let connection = try world.database.connect()
            defer { connection.close() }
            let rows = try connection.query("SELECT attempts, status FROM nfl.task_results WHERE task_id = \(id)").rows
            #expect(rows.count == 1 && rows.first?["status"] == "succeeded" && rows.first?["attempts"] == "2")
        }
    }

    @Test("a result row PostgreSQL rejects fails only its task (dead-lettered at once with the message); the rest of the batch succeeds")
    func rejectedRowDoesNotFailTheBatch() throws {
        try QueueWorld.with { world in
            world.config.batchSize = 100
            world.config.batchWait = .milliseconds(300)
            let q = try world.queue()
            var good: [String] = []
            for _ in 0..<4 { good.append(try q.submit(type: "noop", queue: "cpu").id) }
            // Written past the submit checks (as by an older nfldb): a NUL in the payload, a key too large for the btree index.
            let nul = try q.submit(type: "noop", queue: "cpu").id
            _ = try q.connection.command("HSET", RedisArgument(world.config.prefix + "task:" + nul), "payload", #"{"a": "\u0000"}"#)
            let huge = try q.submit(type: "noop", queue: "cpu").id
            // 'a' and 3,000 combining accents (one character, 6,001 bytes), varied so that PostgreSQL cannot compress it.
            var seed: UInt32 = 12345
            let key = "a" + String(String.UnicodeScalarView((0..<3000).map { _ in
                seed = seed &* 1_103_515_245 &+ 12345
                return Unicode.Scalar(0x300 + (seed >> 16) % 0x70)!
            }))
            _ = try q.connection.command("HSET", RedisArgument(world.config.prefix + "task:" + huge), "idem", RedisArgument(key))
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 6, burst: true),
                                database: world.databaseOptions, logger: world.logger)
            let summary = try worker.run()
            #expect(summary.succeeded == 4 && summary.dead == 2 && summary.retried == 0, "\(summary)")
            #expect(try world.resultCount() == 4)
            for id in good { #expect(try q.inspect(id: id)?["state"] == "succeeded") }
            let dead = Dictionary(uniqueKeysWithValues: try q.deadLetters(queue: "cpu").map { ($0["id"] ?? "", $0) })
            #expect(dead.count == 2)
            #expect(dead[nul]?["attempts"] == "1" && dead[nul]?["error"]?.contains("SQLSTATE 22P05") == true, "\(dead[nul] ?? [:])")
            #expect(dead[huge]?["attempts"] == "1" && dead[huge]?["error"]?.contains("SQLSTATE 54000") == true, "\(dead[huge] ?? [:])")
        }
    }

    @Test("two tasks of one batch with the same idempotency key (unique violation 23505): both stored, the second key as NULL; none dead")
    func duplicateKeyInOneBatchIsNotDeadLettered() throws {
        try QueueWorld.with { world in
            world.config.batchSize = 100
            world.config.batchWait = .milliseconds(300)
            let q = try world.queue()
            let first = try q.submit(type: "noop", queue: "cpu", idempotencyKey: "same-key").id
            let second = try q.submit(type: "noop", queue: "cpu").id
            _ = try q.connection.command("HSET", RedisArgument(world.config.prefix + "task:" + second), "idem", "same-key")
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 2, burst: true),
                                database: world.databaseOptions, logger: world.logger)
            let summary = try worker.run()
            #expect(summary.succeeded == 2 && summary.dead == 0, "\(summary)")
            let connection = try world.database.connect()
            defer { connection.close() }
            let keys = try connection.query("SELECT task_id, idempotency_key FROM nfl.task_results ORDER BY idempotency_key NULLS LAST").rows
            #expect(keys.count == 2 && keys[0]["idempotency_key"] == "same-key" && keys[1]["idempotency_key"] == nil, "\(keys)")
            #expect(Set(keys.compactMap { $0["task_id"] }) == [first, second])
        }
    }

    @Test("a corrupt history field ('not json') is replaced, never an error: lease-expiry recovery, fail and ack all settle the task fully")
    func corruptHistoryIsReplaced() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            func corrupt(_ id: String) throws {
                _ = try q.connection.command("HSET", RedisArgument(world.config.prefix + "task:" + id), "history", "not json")
            }
            func history(_ id: String) throws -> [[String: Any]] {
                let text = try #require(try q.inspect(id: id)?["history"])
                return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "history not a JSON array: \(text)")
            }
            // Lease expiry (reaper): was a script error after the ZREM, leaving the task running in no set.
            let expiring = try q.submit(type: "noop", queue: "cpu").id
            _ = try #require(try q.claim(queues: ["cpu"], worker: "w1", lease: .milliseconds(100)))
            try corrupt(expiring)
            Thread.sleep(forTimeInterval: 0.2)
            #expect(try q.recover() == 1)
            #expect(try q.inspect(id: expiring)?["state"] == "ready")
            #expect(try q.stats().first?.ready == 1 && q.stats().first?.inFlight == 0)
            var entries = try history(expiring)
            #expect(entries.count == 2 && entries[0]["outcome"] as? String == "history reset" && entries[0]["was"] as? String == "not json"
                && entries[1]["outcome"] as? String == "lease expired", "\(entries)")
            // Fail (permanent) → dead-lettered with a valid history.
            let task = try #require(try q.claim(queues: ["cpu"], worker: "w1"))
            try corrupt(task.id)
            #expect(try q.fail(task, error: "boom", permanent: true) == .dead)
            #expect(try q.deadLetters(queue: "cpu").map { $0["id"] } == [task.id])
            entries = try history(task.id)
            #expect(entries.last?["outcome"] as? String == "failed" && entries.first?["outcome"] as? String == "history reset", "\(entries)")
            // Ack through the worker's work script.
            let acked = try q.submit(type: "noop", queue: "cpu").id
            let claimed = try q.work(acks: [], claim: 1, queues: ["cpu"], worker: "w1").claimed
            try #require(claimed.count == 1 && claimed[0].id == acked)
            try corrupt(acked)
            #expect(try q.work(acks: claimed, claim: 0, queues: ["cpu"], worker: "w1").acks == [.ok])
            entries = try history(acked)
            #expect(entries.count == 2 && entries[1]["outcome"] as? String == "succeeded", "\(entries)")
            #expect(try q.inspect(id: acked)?["state"] == "succeeded" && q.stats().first?.inFlight == 0)
        }
    }

    @Test("a queue key of the wrong type: submit fails whole naming the key (no orphan task hash); the worker fails with the key instead of looping")
    func wrongTypeQueueKey() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let cpu = try q.submit(type: "noop", queue: "cpu").id
            let badKey = world.config.prefix + "ready:io"
            _ = try q.connection.command("SET", RedisArgument(badKey), "garbage")
            let error = try #require(throws: RedisError.self) { try q.submit(type: "noop", queue: "io", idempotencyKey: "k-io") }
            #expect(error.message.contains(badKey) && error.message.contains("redis-cli TYPE \(badKey)") && error.message.contains("holds a string"),
                    "\(error.message)")
            let taskKeys = try q.connection.command("KEYS", RedisArgument(world.config.prefix + "task:*")).elements ?? []
            #expect(taskKeys.count == 1, "only the cpu task's hash: \(taskKeys)")
            #expect(try q.connection.command("EXISTS", RedisArgument(world.config.prefix + "idem:k-io")).int == 0)
            // The worker: fails (exit 1 in the CLI) naming the key, within seconds, instead of retrying forever.
            let started = ContinuousClock.now
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu", "io"], concurrency: 1, burst: true),
                                database: world.databaseOptions, logger: world.logger)
            let failure = try #require(throws: QueueError.self) { try worker.run() }
            #expect(failure.exitStatus == .failure && failure.diagnostic.summary.contains(badKey), "\(failure.diagnostic.summary)")
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(try q.inspect(id: cpu)?["state"] == "ready", "the cpu task is left ready, not lost")
            // Without the bad queue the worker serves cpu.
            let cpuOnly = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 1, burst: true),
                                 database: world.databaseOptions, logger: world.logger)
            #expect(try cpuOnly.run().succeeded == 1)
            // stats (and the health check built on it) over a known queue whose key was overwritten: the key and the fix, not a bare WRONGTYPE.
            _ = try q.connection.command("SADD", RedisArgument(world.config.prefix + "queues"), "io")
            let stats = try #require(throws: RedisError.self) { try q.stats() }
            #expect(stats.message.contains(badKey) && stats.message.contains("redis-cli DEL \(badKey)"), "\(stats.message)")
        }
    }

    @Test("a queue key of the wrong type: recover, dlq requeue, cancel, fail and heartbeat change nothing and name the key; once it is deleted, every task runs")
    func wrongTypeKeyStrandsNothing() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let badKey = world.config.prefix + "ready:io"
            // An expired lease, a dead task, a ready task and a running one, all in queue io.
            let dead = try q.submit(type: "noop", queue: "io", maxAttempts: 1).id
            let deadClaim = try #require(try q.claim(queues: ["io"], worker: "w"))
            #expect(deadClaim.id == dead)
            #expect(try q.fail(deadClaim, error: "boom", permanent: true) == .dead)
            let ready = try q.submit(type: "noop", queue: "io").id
            let running = try #require(try q.claim(queues: ["io"], worker: "w"))
            #expect(running.id == ready)
            let expired = try q.submit(type: "noop", queue: "io").id
            #expect(try q.claim(queues: ["io"], worker: "gone", lease: .milliseconds(50))?.id == expired)
            let waiting = try q.submit(type: "noop", queue: "io").id
            Thread.sleep(forTimeInterval: 0.2)
            func snapshot() throws -> [String] {
                try [expired, dead, ready, waiting].map { try q.inspect(id: $0)?["state"] ?? "missing" }
            }
            let before = try snapshot()
            #expect(before == ["running", "dead", "running", "ready"], "\(before)")
            // Another program overwrites the ready set (a string now; the old members are gone with it).
            _ = try q.connection.command("DEL", RedisArgument(badKey))
            _ = try q.connection.command("SET", RedisArgument(badKey), "garbage")
            func expectNamed(_ what: String, _ body: () throws -> Void) {
                do {
                    try body()
                    Issue.record("\(what) succeeded over a wrong-typed \(badKey)")
                } catch let error as RedisError {
                    #expect(error.message.contains(badKey) && error.message.contains("redis-cli DEL \(badKey)"), "\(what): \(error.message)")
                } catch { Issue.record("\(what): \(error)") }
            }
            expectNamed("recover") { _ = try q.recover() }
            expectNamed("dlq requeue") { _ = try q.requeue(id: dead) }
            expectNamed("cancel") { _ = try q.cancel(id: waiting) }
            expectNamed("fail") { _ = try q.fail(running, error: "x") }
            expectNamed("heartbeat") { _ = try q.heartbeat(running) }
            #expect(try snapshot() == before, "nothing changed")
            #expect(try q.deadLetters(queue: "io").map { $0["id"] } == [dead], "the dead task is still in the DLQ")
            // The printed fix, then the normal tools: every task is reachable again.
            _ = try q.connection.command("DEL", RedisArgument(badKey))
            #expect(try q.recover() == 1, "the expired lease is reaped once the key is fixed")
            #expect(try q.requeue(id: dead))
            #expect(try q.fail(running, error: "retry me") == .retry)
            let inSets = try [expired, dead].map { id in
                try ["ready:io", "delayed:io", "inflight:io"].contains { try q.connection.command("ZSCORE", RedisArgument(world.config.prefix + $0), RedisArgument(id)).string != nil }
            }
            #expect(inSets == [true, true], "requeued tasks are in a set a worker reads")
            // A task key of the wrong type: inspect and cancel name that key in the hint.
            let taskKey = world.config.prefix + "task:odd"
            _ = try q.connection.command("SET", RedisArgument(taskKey), "garbage")
            for (what, call) in [("inspect", { _ = try q.inspect(id: "odd") }), ("cancel", { _ = try q.cancel(id: "odd") })] as [(String, () throws -> Void)] {
                let error = try #require(throws: RedisError.self, "\(what)") { try call() }
                #expect(error.hint?.contains("redis-cli DEL \(taskKey)") == true, "\(what): \(String(describing: error.hint))")
            }
        }
    }

    @Test("submit refuses a \\u0000 in the payload and an idempotency key over 200 UTF-8 bytes (usage errors)")
    func submitRefusesWhatPostgresCannotStore() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            for payload in [#"{"a": "\u0000"}"#, #"{"\u0000": 1}"#, #"{"a": [{"b": "x\u0000"}]}"#] {
                let error = try #require(throws: QueueError.self) { try q.submit(type: "noop", payload: payload) }
                #expect(error.exitStatus == .usage && error.diagnostic.summary.contains("NUL"), "\(error.diagnostic.summary)")
            }
            let accents = "a" + String(repeating: "\u{301}", count: 3000)
            #expect(accents.count == 1)
            let error = try #require(throws: QueueError.self) { try q.submit(type: "noop", idempotencyKey: accents) }
            #expect(error.exitStatus == .usage && error.diagnostic.summary.contains("6001 bytes"), "\(error.diagnostic.summary)")
            #expect(try q.submit(type: "noop", idempotencyKey: String(repeating: "é", count: 100)).created)
            #expect(throws: QueueError.self) { try q.submit(type: "noop", idempotencyKey: String(repeating: "é", count: 101)) }
            #expect(try q.stats().first?.ready == 1)
            // Valid-looking objects the parser refuses: the parser's reason, not "not a JSON object".
            let deep = "{\"a\":" + String(repeating: "[", count: 513) + String(repeating: "]", count: 513) + "}"
            for (payload, reason) in [(#"{"a":1e400}"#, "1e400 is not representable"), (#"{"a":"\ud800"}"#, "surrogate"), (deep, "Too many nested")] {
                let error = try #require(throws: QueueError.self) { try q.submit(type: "noop", payload: payload) }
                #expect(error.exitStatus == .usage && error.diagnostic.summary.contains("not valid JSON") && error.diagnostic.summary.contains(reason),
                        "\(error.diagnostic.summary)")
            }
            let array = try #require(throws: QueueError.self) { try q.submit(type: "noop", payload: "[1]") }
            #expect(array.diagnostic.summary.contains("not a JSON object"), "\(array.diagnostic.summary)")
        }
    }

    @Test("sleep takes a whole number of milliseconds up to a day: 1.5 and 1e18 are dead at once with the reason, 30 runs")
    func sleepPayloadBounds() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let fraction = try q.submit(type: "sleep", payload: #"{"ms": 1.5}"#).id
            let forever = try q.submit(type: "sleep", payload: #"{"ms": 1e18}"#).id
            let fine = try q.submit(type: "sleep", payload: #"{"ms": 30}"#).id
            let worker = Worker(config: world.config, options: WorkerOptions(queues: ["cpu"], concurrency: 1, burst: true),
                                database: world.databaseOptions, logger: world.logger)
            let summary = try worker.run()
            #expect(summary.succeeded == 1)
            for id in [fraction, forever] {
                let task = try #require(try q.inspect(id: id))
                #expect(task["state"] == "dead" && task["error"]?.contains("whole number of milliseconds from 0 to 86400000") == true, "\(task)")
            }
            #expect(try q.inspect(id: fine)?["state"] == "succeeded")
        }
    }
}

@Suite("worker profile")
struct WorkerProfileTests {
    @Test("gpu queues need a GPU; others are served by any profile")
    func routingByProfile() throws {
        let cpuOnly = WorkerProfile(cores: 2, memoryBytes: 1 << 30, gpus: 0)
        #expect(cpuOnly.defaultQueues == ["cpu", "io"])
        #expect(throws: QueueError.self) { try cpuOnly.check(["cpu", "gpu_high"]) }
        #expect(try cpuOnly.check(["cpu", "io"]) == ["cpu", "io"])
        let gpu = WorkerProfile(cores: 8, memoryBytes: 1 << 34, gpus: 2)
        #expect(try gpu.check(["gpu_high", "gpu_low"]) == ["gpu_high", "gpu_low"])
        #expect(gpu.defaultQueues.contains("gpu_high"))
        #expect(WorkerProfile.detect().cores >= 1)
    }
}

/// Worker processes (the built `nfldb worker`), signalled and killed like in production.
@Suite("worker processes", .serialized)
struct WorkerProcessTests {
    func environment(_ world: QueueWorld, _ extra: [String: String] = [:]) -> [String: String] {
        ["NFLDB_REDIS_URL": "redis://127.0.0.1:\(world.redis.port)/0", "NFLDB_DSN": world.database.dsn, "NFLDB_LOG_LEVEL": "warning"]
            .merging(extra) { _, new in new }
    }

    @Test("SIGTERM drains: claiming stops, in-flight tasks finish within the grace period, results stored, exit 0")
    func sigtermDrains() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            for _ in 0..<3 { _ = try q.submit(type: "sleep", payload: #"{"ms": 1500}"#, queue: "cpu") }
            for _ in 0..<3 { _ = try q.submit(type: "noop", queue: "cpu", priority: -10) }
            let worker = try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "3", "--format", "json"],
                                             environment: environment(world, ["NFLDB_QUEUE_SHUTDOWN_GRACE": "20s"]))
            defer { worker.removeOutput() }
            try waitUntil("the three sleep tasks running: \(worker.outputTail())", timeout: .seconds(30)) { try q.stats().first?.inFlight == 3 }
            let status = worker.stop(grace: .seconds(25))
            #expect(status == 0, "\(worker.outputTail())")
            let stats = try #require(try q.stats().first)
            #expect(stats.inFlight == 0, "nothing may be left in flight")
            #expect(stats.ready == 3, "the low-priority tasks were not claimed after SIGTERM: \(stats)")
            #expect(try world.resultCount() == 3)
            #expect(worker.standardOutput.contains("\"succeeded\" : 3"), "\(worker.outputTail())")
        }
    }

    @Test("SIGHUP drains like SIGTERM (was: killed at once, exit 129): the running task finishes, its result is stored, exit 0 with the summary")
    func sighupDrains() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let id = try q.submit(type: "sleep", payload: #"{"ms": 1500}"#, queue: "cpu").id
            let later = try q.submit(type: "noop", queue: "cpu", priority: -10).id
            let worker = try CLIRunner.spawn(["worker", "--queues", "cpu", "--format", "json"],
                                             environment: environment(world, ["NFLDB_QUEUE_SHUTDOWN_GRACE": "20s"]))
            defer { worker.removeOutput() }
            try waitUntil("the sleep task running: \(worker.outputTail())", timeout: .seconds(30)) { try q.stats().first?.inFlight == 1 }
            worker.send(SIGHUP)
            let status = worker.wait(timeout: .seconds(25)) ?? worker.kill9()
            #expect(status == 0, "\(worker.outputTail())")
            #expect(try q.inspect(id: id)?["state"] == "succeeded")
            #expect(try q.inspect(id: later)?["state"] == "ready", "nothing is claimed after SIGHUP")
            #expect(try world.resultCount() == 1)
            #expect(worker.standardOutput.contains("\"succeeded\" : 1"), "\(worker.outputTail())")
        }
    }

    @Test("after the grace period an unfinished task is released back to ready (attempt not counted)")
    func graceReleases() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let id = try q.submit(type: "sleep", payload: #"{"ms": 20000}"#, queue: "cpu").id
            let worker = try CLIRunner.spawn(["worker", "--queues", "cpu"], environment: environment(world, ["NFLDB_QUEUE_SHUTDOWN_GRACE": "300ms"]))
            defer { worker.removeOutput() }
            try waitUntil("the sleep task running: \(worker.outputTail())", timeout: .seconds(30)) { try q.stats().first?.inFlight == 1 }
            #expect(worker.stop(grace: .seconds(10)) == 0, "\(worker.outputTail())")
            let task = try #require(try q.inspect(id: id))
            #expect(task["state"] == "ready" && task["attempts"] == "0", "\(task)")
        }
    }

    @Test("1,000 tasks through 3 worker processes, one SIGKILLed mid-run and restarted: every task completes, exactly 1,000 result rows")
    func killedWorker() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let total = 1000
            for i in 0..<total { _ = try q.submit(type: i % 4 == 0 ? "sleep" : "noop", payload: i % 4 == 0 ? #"{"ms": 3}"#: "{}", queue: "cpu") }
            let env = environment(world, ["NFLDB_QUEUE_LEASE": "2s"])
            var workers = try (0..<3).map { _ in try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], environment: env) }
            defer { workers.forEach { $0.kill9(); $0.removeOutput() } }
            try waitUntil("150 results stored: \(workers[0].outputTail())", timeout: .seconds(60)) { try world.resultCount() >= 150 }
            workers[0].kill9()
            let doneBeforeKill = try world.resultCount()
            workers[0] = try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], environment: env)
            try waitUntil("all \(total) results stored: \(workers[1].outputTail())", timeout: .seconds(180)) { try world.resultCount() >= total }
            // On a loaded machine the restarted worker may still be starting: stop it only once it handles SIGTERM.
            let restarted = workers[0]
            try waitUntil("the restarted worker handles SIGTERM", timeout: .seconds(60)) { restarted.handles(SIGTERM) }
            // Tasks the killed worker had stored but not acknowledged come back when their lease (2 s) expires; the
            // re-delivery finds the row and only acknowledges.
            try waitUntil("every lease settled: \((try? q.stats()) ?? [])", timeout: .seconds(60)) {
                let s = try q.stats()[0]
                return s.inFlight == 0 && s.ready == 0 && s.delayed == 0
            }
            var duplicates = 0
            for worker in workers {
                #expect(worker.stop(grace: .seconds(30)) == 0, "\(worker.outputTail())")
                let summary = try JSONDecoder().decode(WorkerSummary.self, from: Data(worker.standardOutput.utf8))
                duplicates += summary.duplicates
            }
            #expect(try world.resultCount() == total)
            let connection = try world.database.connect()
            defer { connection.close() }
            let rows: Int = try connection.query("SELECT count(*) AS n FROM nfl.task_results").rows[0].decode("n")
            let redelivered: Int = try connection.query("SELECT count(*) AS n FROM nfl.task_results WHERE attempts > 1").rows[0].decode("n")
            #expect(rows == total)
            let stats = try #require(try q.stats().first)
            #expect(stats.ready == 0 && stats.inFlight == 0 && stats.dead == 0 && stats.delayed == 0, "\(stats)")
            print("killedWorker: \(doneBeforeKill) stored before the SIGKILL; \(redelivered) of \(total) tasks claimed more than once before their result was stored (attempts > 1); \(duplicates) re-deliveries found the result already stored and only acknowledged")
        }
    }

    /// How many of `ids` were claimed more than once (the task hash's attempt count, kept for queue.completed_ttl).
    func claimedMoreThanOnce(_ world: QueueWorld, _ ids: [String]) throws -> Int {
        let connection = try world.redis.connect()
        defer { connection.close() }
        var count = 0
        var start = 0
        while start < ids.count {
            let chunk = ids[start..<min(ids.count, start + 1000)]
            let replies = try connection.pipeline(chunk.map { ["HGET", RedisArgument(world.config.prefix + "task:" + $0), "attempts"] })
            count += replies.filter { ($0.int ?? 0) > 1 }.count
            start += chunk.count
        }
        return count
    }

    @Test("acceptance: 10,000 tasks through 4 worker processes, two SIGKILLed at random moments and restarted: every task completes, exactly 10,000 rows")
    func tenThousandFourWorkersTwoKilled() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            let total = 10_000
            // Mostly no-ops, every 10th sleeps 2 ms, so the kills land while tasks run, wait for their commit or their ack.
            var ids = try q.submit(count: total - total / 10, type: "noop", queue: "cpu")
            ids += try q.submit(count: total / 10, type: "sleep", payload: #"{"ms": 2}"#, queue: "cpu")
            #expect(ids.count == total && Set(ids).count == total)
            let env = environment(world, ["NFLDB_QUEUE_LEASE": "2s"])
            func spawn() throws -> ChildProcess {
                try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], environment: env)
            }
            var workers = try (0..<4).map { _ in try spawn() }
            var killed: [ChildProcess] = []
            defer { (workers + killed).forEach { $0.kill9(); $0.removeOutput() } }
            // Two kills at random moments: after a random share of the results is stored.
            let first = Int.random(in: 1_000...4_000)
            let second = Int.random(in: 4_500...8_000)
            var kills: [String] = []
            for (index, threshold) in [(Int.random(in: 0...1), first), (Int.random(in: 2...3), second)] {
                try waitUntil("\(threshold) results stored: \(workers[index].outputTail())", timeout: .seconds(60)) { try world.resultCount() >= threshold }
                // A random extra delay (0–30 ms) so the kill does not always follow a commit.
                Thread.sleep(forTimeInterval: Double.random(in: 0...0.03))
                workers[index].kill9()
                kills.append("worker \(index) at \(try world.resultCount()) rows")
                killed.append(workers[index])
                workers[index] = try spawn()
            }
            try waitUntil("all \(total) results stored: \((try? world.resultCount()) ?? -1)", timeout: .seconds(60)) { try world.resultCount() >= total }
            try waitUntil("every lease settled: \((try? q.stats()) ?? [])", timeout: .seconds(30)) {
                let s = try q.stats()[0]
                return s.inFlight == 0 && s.ready == 0 && s.delayed == 0
            }
            var duplicates = 0
            var succeeded = 0
            for worker in workers {
                #expect(worker.stop(grace: .seconds(30)) == 0, "\(worker.outputTail())")
                let summary = try JSONDecoder().decode(WorkerSummary.self, from: Data(worker.standardOutput.utf8))
                duplicates += summary.duplicates
                succeeded += summary.succeeded
            }
            let connection = try world.database.connect()
            defer { connection.close() }
            let rows: Int = try connection.query("SELECT count(*) AS n FROM nfl.task_results").rows[0].decode("n")
            let distinct: Int = try connection.query("SELECT count(DISTINCT task_id) AS n FROM nfl.task_results WHERE status = 'succeeded'").rows[0].decode("n")
            #expect(rows == total && distinct == total)
            let stats = try #require(try q.stats().first)
            #expect(stats.ready == 0 && stats.inFlight == 0 && stats.dead == 0 && stats.delayed == 0, "\(stats)")
            // Every task's hash says succeeded (acknowledged after its row committed).
            let redis = try world.redis.connect()
            defer { redis.close() }
            let states = try redis.pipeline(ids.map { ["HGET", RedisArgument(world.config.prefix + "task:" + $0), "state"] })
            #expect(states.filter { $0.string == "succeeded" }.count == total)
            let redelivered = try claimedMoreThanOnce(world, ids)
            #expect(redelivered > 0, "a SIGKILLed worker held claimed tasks; they must have been delivered again")
            print("tenThousandFourWorkersTwoKilled: killed \(kills.joined(separator: ", ")); \(redelivered) of \(total) tasks were delivered more than once "
                + "(claimed again after the killed worker's lease expired); \(duplicates) re-deliveries found their result row already committed and were only "
                + "acknowledged; \(rows) rows in nfl.task_results")
        }
    }

    @Test("AOF everysec: enqueues acknowledged in the last second before a Redis SIGKILL survive the restart and all run once")
    func acknowledgedEnqueueSurvivesRedisCrash() throws {
        try QueueWorld.with(redisSettings: ["appendonly yes", "appendfsync everysec"]) { world in
            let env = environment(world, ["NFLDB_QUEUE_LEASE": "2s"])
            let workers = try (0..<2).map { _ in try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], environment: env) }
            defer { workers.forEach { $0.kill9(); $0.removeOutput() } }
            // A producer submits one task at a time and records each id once Redis acknowledged it.
            var acknowledged: [String] = []
            var q = try world.queue()
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .milliseconds(1500) {
                acknowledged.append(try q.submit(type: "noop", queue: "cpu").id)
            }
            // The kill comes right after the last acknowledgement: well inside the everysec fsync window.
            let lastBeforeKill = acknowledged.count
            let lastSecond = acknowledged.suffix(max(1, lastBeforeKill / 2)).count
            try world.redis.restart(kill: true)
            q = try world.queue()
            let redis = try world.redis.connect()
            defer { redis.close() }
            let states = try redis.pipeline(acknowledged.map { ["HGET", RedisArgument(world.config.prefix + "task:" + $0), "state"] })
            let missing = zip(acknowledged, states).filter { $0.1.isNull }.map(\.0)
            #expect(missing.isEmpty, "\(missing.count) acknowledged enqueues lost by a process crash (the last: \(missing.suffix(3)))")
            try waitUntil("every acknowledged task stored: \((try? world.resultCount()) ?? -1) of \(acknowledged.count)", timeout: .seconds(45)) {
                try world.resultCount() >= acknowledged.count
            }
            try waitUntil("every lease settled", timeout: .seconds(30)) {
                let s = try q.stats()[0]
                return s.inFlight == 0 && s.ready == 0 && s.delayed == 0
            }
            for worker in workers { #expect(worker.stop(grace: .seconds(30)) == 0, "\(worker.outputTail())") }
            let connection = try world.database.connect()
            defer { connection.close() }
            #expect(try connection.query("SELECT count(*) AS n FROM nfl.task_results").rows[0].decode("n") == acknowledged.count)
            print("acknowledgedEnqueueSurvivesRedisCrash: \(acknowledged.count) enqueues acknowledged, \(lastSecond) of them in the last ~0.75 s before SIGKILL; "
                + "\(missing.count) lost; \(acknowledged.count) result rows")
        }
    }

    @Test("Redis SIGKILLed and restarted from its AOF (everysec) mid-run: workers reconnect, every task completes, exactly N rows")
    func redisRestart() throws {
        try QueueWorld.with(redisSettings: ["appendonly yes", "appendfsync everysec"]) { world in
            var q = try world.queue()
            let total = 600
            // Every task sleeps 5 ms, so the drain takes ~1 s and the kill lands mid-run (the pipelined worker drains no-ops in a blink).
            _ = try q.submit(count: total, type: "sleep", payload: #"{"ms": 5}"#, queue: "cpu")
            // Let everysec fsync the enqueues: the test is about acknowledged work, not the last second of submits.
            Thread.sleep(forTimeInterval: 1.5)
            let env = environment(world, ["NFLDB_QUEUE_LEASE": "2s"])
            let workers = try (0..<2).map { _ in try CLIRunner.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], environment: env) }
            defer { workers.forEach { $0.kill9(); $0.removeOutput() } }
            try waitUntil("100 results stored: \(workers[0].outputTail())", timeout: .seconds(60)) { try world.resultCount() >= 100 }
            try world.redis.restart(kill: true)
            let storedAtKill = try world.resultCount()
            q = try world.queue()
            try waitUntil("all \(total) results stored: \(workers[1].outputTail())", timeout: .seconds(180)) { try world.resultCount() >= total }
            try waitUntil("every lease settled", timeout: .seconds(60)) {
                let s = try q.stats()[0]
                return s.inFlight == 0 && s.ready == 0 && s.delayed == 0
            }
            var duplicates = 0
            for worker in workers {
                #expect(worker.stop(grace: .seconds(30)) == 0, "\(worker.outputTail())")
                duplicates += try JSONDecoder().decode(WorkerSummary.self, from: Data(worker.standardOutput.utf8)).duplicates
            }
            let connection = try world.database.connect()
            defer { connection.close() }
            #expect(try connection.query("SELECT count(*) AS n FROM nfl.task_results").rows[0].decode("n") == total)
            #expect(try q.stats()[0].dead == 0)
            print("redisRestart: \(storedAtKill) stored when Redis was killed; \(duplicates) re-deliveries found their result already stored")
        }
    }
}
