import Foundation
import NFLDBCore
import NFLDBHealth
import Logging
import NFLDBRedis

extension ConfigKey {
    public static let healthQueueOldestWarning = ConfigKey(
        "health.checks.queue.oldest_ready_warning", .duration, default: "5min", help: "queue: the oldest ready task waiting this long is a WARNING")
    public static let healthQueueOldestCritical = ConfigKey(
        "health.checks.queue.oldest_ready_critical", .duration, default: "30min", help: "queue: the oldest ready task waiting this long is CRITICAL")
    public static let healthQueueExpiredWarning = ConfigKey(
        "health.checks.queue.expired_leases_warning", .integer, default: "1",
        help: "queue: this many expired leases (tasks whose worker died or stalled, not yet reclaimed) is a WARNING")
    public static let healthQueueExpiredCritical = ConfigKey(
        "health.checks.queue.expired_leases_critical", .integer, default: "100", help: "queue: this many expired leases is CRITICAL")
    public static let healthQueueDeadWarning = ConfigKey(
        "health.checks.queue.dead_warning", .integer, default: "1", help: "queue: this many tasks in the dead-letter queues is a WARNING")
    public static let healthQueueDeadCritical = ConfigKey(
        "health.checks.queue.dead_critical", .integer, default: "100", help: "queue: this many tasks in the dead-letter queues is CRITICAL")
}

/// The `queue` health check: the task queue in Redis, judged beside the database checks.
///
/// The value is the number of ready tasks over every queue (thresholds `health.checks.queue.warning|critical`);
/// the oldest ready age, expired leases and dead letters have their own thresholds
/// (`health.checks.queue.oldest_ready_*`, `expired_leases_*`, `dead_*`). Redis unreachable or refusing
/// the password is CRITICAL (the queue cannot work), a bad Redis setting UNKNOWN; messages name the
/// target, never the password.
///
/// It runs by default only where a Redis location is configured (`redis.url`, `NFLDB_REDIS_URL` or
/// `redis.sentinels`); elsewhere with `--check queue` or `health.checks.queue.enabled: true`.
public struct QueueHealthProbe: Probe {
    public static let keys: [ConfigKey] = [
        .healthQueueOldestWarning, .healthQueueOldestCritical, .healthQueueExpiredWarning, .healthQueueExpiredCritical,
        .healthQueueDeadWarning, .healthQueueDeadCritical,
    ]

    public let name = "queue"
    public let summary = "Redis task queue: ready tasks over all queues (value), oldest ready age, expired leases, dead letters"
    public let unit = HealthUnit.count
    public let defaultThresholds = Thresholds(warning: 1_000, critical: 10_000)
    /// Redis is one per deployment: judged once, with the primary.
    public let roles: Set<ServerRole> = [.primary]
    public let enabledByDefault: Bool
    private let config: QueueConfig?
    private let configurationProblem: String?

    public init(config: QueueConfig, enabledByDefault: Bool = true) {
        self.config = config
        self.configurationProblem = nil
        self.enabledByDefault = enabledByDefault
    }

    /// From `nfldb.yaml`/environment; a bad Redis setting becomes an UNKNOWN result instead of failing every check.
    public init(configuration: Configuration) {
        let configured = { (key: ConfigKey) in configuration.entry(key).map { $0.source != .defaultValue } ?? false }
        enabledByDefault = configured(.redisURL) || configured(.redisSentinels)
        do {
            config = try QueueConfig(configuration: configuration)
            configurationProblem = nil
        } catch {
            config = nil
            configurationProblem = SecretRedactor.shared.redact((error as? any NFLDBError)?.diagnostic.summary ?? String(describing: error))
        }
    }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        evaluate(context.settings, logger: context.logger)
    }

    /// Redis is judged the same when PostgreSQL is down.
    public func runWithoutDatabase(_ settings: CheckSettings, logger: Logger) -> ProbeOutcome? {
        evaluate(settings, logger: logger)
    }

    func evaluate(_ settings: CheckSettings, logger: Logger) -> ProbeOutcome {
        guard var config else {
            return .unknown("the Redis settings are invalid: \(configurationProblem ?? "?")", hint: "Fix redis.* in nfldb.yaml (see nfldb config show).")
        }
        // A health check must not wait out a failover: one short discovery.
        config.failoverTimeout = .seconds(2)
        let target = config.locator.description
        let stats: [QueueStats]
        do {
            let connection = try config.locator.connect(
                clientName: "nfldb-health", connectTimeout: .seconds(3), commandTimeout: settings.statementTimeout,
                retryWindow: config.failoverTimeout, logger: logger)
            defer { connection.close() }
            stats = try TaskQueue(connection: connection, config: config, logger: logger).stats()
        } catch {
            let redisError = error as? RedisError
            let text = redisError?.message ?? String(describing: error)
            let message = SecretRedactor.shared.redact(RedisConnection.scrubbed(text, config.endpoint.password))
            let hint = redisError?.hint ?? "Check that redis-server is up (redis-cli -h HOST -p PORT ping) and that redis.url points to it."
            return ProbeOutcome(status: .critical, message: "cannot read the task queue in Redis (\(target)): \(message)", hint: hint)
        }
        let options = settings
        let oldestWarning = options.seconds(.healthQueueOldestWarning)
        let oldestCritical = options.seconds(.healthQueueOldestCritical)
        let count = { (key: ConfigKey) in options.integer(key).map(Double.init) }
        let expiredThresholds = Thresholds(warning: count(.healthQueueExpiredWarning), critical: count(.healthQueueExpiredCritical))
        let deadThresholds = Thresholds(warning: count(.healthQueueDeadWarning), critical: count(.healthQueueDeadCritical))
        let ageThresholds = Thresholds(warning: oldestWarning > 0 ? oldestWarning : nil, critical: oldestCritical > 0 ? oldestCritical : nil)

        let ready = stats.reduce(0) { $0 + $1.ready }
        let expired = stats.reduce(0) { $0 + $1.expiredLeases }
        let dead = stats.reduce(0) { $0 + $1.dead }
        let oldest = stats.compactMap(\.oldestReadyAgeSeconds).max()
        var status = settings.thresholds.status(for: Double(ready))
        var problems: [String] = []
        if status != .ok { problems.append("\(ready) ready tasks") }
        if let oldest, ageThresholds.status(for: oldest) != .ok {
            status = status.worse(ageThresholds.status(for: oldest))
            let queue = stats.first { $0.oldestReadyAgeSeconds == oldest }?.queue ?? "?"
            problems.append("the oldest ready task in \(queue) has waited \(HealthFormat.duration(oldest))")
        }
        if expiredThresholds.status(for: Double(expired)) != .ok {
            status = status.worse(expiredThresholds.status(for: Double(expired)))
            problems.append("\(expired) expired lease\(expired == 1 ? "" : "s") (workers died or stalled)")
        }
        if deadThresholds.status(for: Double(dead)) != .ok {
            status = status.worse(deadThresholds.status(for: Double(dead)))
            problems.append("\(dead) dead-lettered task\(dead == 1 ? "" : "s")")
        }
        let summary = "\(stats.count) queue\(stats.count == 1 ? "" : "s"): \(ready) ready, "
            + "\(stats.reduce(0) { $0 + $1.inFlight }) in flight, \(expired) expired leases, \(dead) dead"
            + (oldest.map { ", oldest ready \(HealthFormat.duration($0))" } ?? "")
        var hints: [String] = []
        if status != .ok {
            if ready > 0 && (settings.thresholds.status(for: Double(ready)) != .ok || (oldest.map { ageThresholds.status(for: $0) != .ok } ?? false)) {
                hints.append("Tasks wait longer than they should: check that workers run for these queues (nfldb queue stats) and add workers or concurrency.")
            }
            if expired > 0 { hints.append("Expired leases go back to ready at the next claim; run `nfldb queue recover` if no worker is running.") }
            if dead > 0 { hints.append("See why with `nfldb queue dlq list`, fix the cause, then `nfldb queue dlq requeue ID`.") }
        }
        let details = stats.map { queue in
            Detail([("queue", .string(queue.queue)), ("ready", .integer(queue.ready)), ("delayed", .integer(queue.delayed)),
                    ("in_flight", .integer(queue.inFlight)), ("expired_leases", .integer(queue.expiredLeases)), ("dead", .integer(queue.dead)),
                    ("oldest_ready_age_s", .number(queue.oldestReadyAgeSeconds))])
        }
        let metrics = stats.flatMap { queue -> [HealthMetric] in
            let labels = ["queue": queue.queue]
            return [
                HealthMetric("nfldb_queue_ready", help: "ready tasks", labels: labels, value: Double(queue.ready)),
                HealthMetric("nfldb_queue_expired_leases", help: "in-flight tasks whose lease expired", labels: labels, value: Double(queue.expiredLeases)),
                HealthMetric("nfldb_queue_dead", help: "tasks in the dead-letter queue", labels: labels, value: Double(queue.dead)),
                HealthMetric("nfldb_queue_oldest_ready_age_seconds", help: "age of the oldest ready task", labels: labels,
                             value: queue.oldestReadyAgeSeconds ?? 0),
            ]
        }
        let message = problems.isEmpty ? summary : problems.joined(separator: "; ") + " (" + summary + ")"
        return ProbeOutcome(status: status, value: Double(ready), message: message, hint: hints.isEmpty ? nil : hints.joined(separator: " "),
                            details: details, metrics: metrics)
    }
}
