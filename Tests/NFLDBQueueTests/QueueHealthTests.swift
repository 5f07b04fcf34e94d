import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBQueue
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

/// A QueueWorld whose redis-server requires `password` (the world's config has it).
func withPasswordWorld(_ password: String, _ body: (QueueWorld) throws -> Void) throws {
    let redis = try RedisTestServer.start(password: password)
    defer { redis.stop() }
    try TestCluster.withDatabase(prefix: "queuepw") { database in
        try createTaskResults(database)
        try body(QueueWorld(redis: redis, database: database, config: QueueConfig(endpoint: redis.endpoint)))
    }
}

@Suite("queue health check against redis-server", .serialized)
struct QueueHealthTests {
    func check(_ world: QueueWorld, _ values: [String: String] = [:], config: QueueConfig? = nil) throws -> CheckResult {
        let runner = HealthRunner(settings: HealthSettings(values: values), probes: [QueueHealthProbe(config: config ?? world.config)],
                                  logger: world.logger)
        let report = runner.run([HealthTarget(options: world.databaseOptions)])
        return try #require(report.check("queue"))
    }

    @Test("depth, oldest ready age, expired leases and dead letters each reach WARNING/CRITICAL by their thresholds")
    func thresholds() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            defer { q.close() }
            let empty = try check(world)
            #expect(empty.status == .ok && empty.value == 0, "\(empty.message)")

            for _ in 0..<5 { _ = try q.submit(type: "noop", queue: "cpu") }
            let ok = try check(world)
            #expect(ok.status == .ok && ok.value == 5 && ok.message.contains("5 ready"), "\(ok.message)")
            let deep = try check(world, ["queue.warning": "3", "queue.critical": "10"])
            #expect(deep.status == .warning && deep.message.contains("5 ready tasks"), "\(deep.message)")
            #expect(try check(world, ["queue.warning": "3", "queue.critical": "5"]).status == .critical)

            Thread.sleep(forTimeInterval: 0.6)
            let old = try check(world, ["queue.oldest_ready_warning": "500ms"])
            #expect(old.status == .warning && old.message.contains("oldest ready task in cpu has waited"), "\(old.message)")
            #expect(try check(world, ["queue.oldest_ready_warning": "100ms", "queue.oldest_ready_critical": "400ms"]).status == .critical)

            // A worker that died: its lease expires and nobody has reclaimed it yet.
            _ = try #require(try q.claim(queues: ["cpu"], worker: "dead-worker", lease: .milliseconds(100)))
            Thread.sleep(forTimeInterval: 0.25)
            let expired = try check(world)
            #expect(expired.status == .warning && expired.message.contains("1 expired lease"), "\(expired.message)")
            #expect(expired.hint?.contains("nfldb queue recover") == true)
            _ = try q.recover()

            // A permanent failure goes to the dead-letter queue.
            let id = try q.submit(type: "fail", queue: "io", priority: 100).id
            let task = try #require(try q.claim(queues: ["io"], worker: "w"))
            #expect(task.id == id)
            #expect(try q.fail(task, error: "boom", permanent: true) == .dead)
            let dead = try check(world)
            #expect(dead.status == .warning && dead.message.contains("1 dead-lettered task"), "\(dead.message)")
            #expect(dead.hint?.contains("queue dlq list") == true)
            #expect(try check(world, ["queue.dead_critical": "1"]).status == .critical)
            #expect(try check(world, ["queue.dead_warning": "none", "queue.dead_critical": "none"]).status == .ok)
            #expect(dead.details.count == 2, "one detail per queue (cpu, io)")
        }
    }

    @Test("Redis down is CRITICAL naming host:port; a wrong password is CRITICAL without the password; the check never prints it")
    func redisDownAndPassword() throws {
        let password = "q-health-pw-7f3a"
        try withPasswordWorld(password) { world in
            var good = world.config
            good.endpoint.password = password
            #expect(try check(world, config: good).status == .ok)

            var wrong = good
            wrong.endpoint.password = "not-the-password-91c2"
            let refused = try check(world, config: wrong)
            #expect(refused.status == .critical, "\(refused.message)")
            #expect(refused.message.contains("127.0.0.1:\(world.redis.port)"), "\(refused.message)")
            for text in [refused.message, refused.hint ?? ""] {
                #expect(!text.contains(password) && !text.contains("not-the-password-91c2"), "\(text)")
            }

            world.redis.kill()
            let down = try check(world, config: good)
            #expect(down.status == .critical, "\(down.message)")
            #expect(down.message.contains("cannot read the task queue in Redis (127.0.0.1:\(world.redis.port))") && down.message.contains("refused"),
                    "\(down.message)")
            #expect(down.hint?.contains("redis-server") == true, "\(String(describing: down.hint))")
            #expect(!down.message.contains(password))
        }
    }

    @Test("PostgreSQL unreachable: connections is CRITICAL, the queue is still judged from Redis (not 'not run')")
    func databaseDown() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            defer { q.close() }
            _ = try q.submit(type: "noop", queue: "cpu")
            let closed = try LoopbackPort.free()
            let runner = HealthRunner(settings: HealthSettings(values: ["queue.warning": "1"]), probes: [QueueHealthProbe(config: world.config)],
                                      logger: world.logger)
            let report = runner.run([HealthTarget(options: ConnectionOptions(dsn: "host=127.0.0.1 port=\(closed) dbname=nfl user=nfldb connect_timeout=2"))])
            let queue = try #require(report.check("queue"))
            #expect(report.check("connections")?.status == .critical)
            #expect(queue.status == .warning && queue.value == 1 && queue.message.contains("1 ready tasks"), "\(queue.message)")
            // A standby target that is down does not judge the queue (it belongs to the primary).
            let standby = runner.run([HealthTarget(options: ConnectionOptions(dsn: "host=127.0.0.1 port=\(closed) dbname=nfl connect_timeout=2"),
                                                   expectedRole: .standby)])
            #expect(standby.check("queue")?.message.hasPrefix("not run") == true)
        }
    }

    @Test("nfldb health --check queue: exit status by state, JSON and nagios outputs, the password (env: reference) never printed")
    func healthCommand() throws {
        let password = "cli-health-pw-55e1"
        try withPasswordWorld(password) { world in
            let env = ["NFLDB_REDIS_URL": "redis://127.0.0.1:\(world.redis.port)/0", "NFLDB_REDIS_PASSWORD": "env:QREDIS_PW", "QREDIS_PW": password,
                       "NFLDB_DSN": world.database.dsn]
            let ok = try CLIRunner.run(["health", "--check", "queue", "--format", "json"], environment: env)
            #expect(ok.status == 0, "\(ok.standardOutput)\(ok.standardError)")
            #expect(ok.standardOutput.contains("\"queue\""))
            var config = world.config
            config.endpoint.password = password
            let q = try TaskQueue.connect(config, logger: world.logger)
            for _ in 0..<4 { _ = try q.submit(type: "noop", queue: "cpu") }
            q.close()
            let warn = try CLIRunner.run(["health", "--check", "queue", "--format", "nagios"],
                                         environment: env.merging(["NFLDB_HEALTH_CHECKS_QUEUE_OLDEST_READY_WARNING": "1h"]) { $1 })
            #expect(warn.status == 0, "4 ready tasks are below the default thresholds: \(warn.standardOutput)")
            world.redis.kill()
            let down = try CLIRunner.run(["health", "--check", "queue"], environment: env)
            #expect(down.status == 2, "Redis down is CRITICAL: \(down.standardOutput)\(down.standardError)")
            #expect(down.standardOutput.contains("127.0.0.1:\(world.redis.port)"), "\(down.standardOutput)")
            for result in [ok, warn, down] {
                #expect(!(result.standardOutput + result.standardError).contains(password))
            }
            // Without a configured Redis the check is off by default and listed as such.
            let list = try CLIRunner.run(["health", "--list"], environment: ["NFLDB_DSN": world.database.dsn])
            #expect(list.standardOutput.split(separator: "\n").contains { $0.hasPrefix("queue ") && $0.contains(" no ") }, "\(list.standardOutput)")
        }
    }
}
