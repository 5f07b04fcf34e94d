import Foundation
import NFLDBCore
import NFLDBRedis

extension ConfigKey {
    public static let redisURL = ConfigKey(
        "redis.url", .string, default: "redis://127.0.0.1:6379/0",
        help: "Redis for the task queue: redis://[user@]host[:port][/db] or unix:///path?db=N (put no password here; use redis.password)")
    public static let redisPassword = ConfigKey(
        "redis.password", .string, help: "secret reference for the Redis password: env:NAME, file:PATH (0600) or aws-sm:SECRET_ID[#json_key][@VERSION_STAGE]; never the value")
    public static let queuePrefix = ConfigKey("queue.prefix", .string, default: "nfldb:q:", help: "prefix of every queue key in Redis")
    public static let queueLease = ConfigKey("queue.lease", .duration, default: "30s", help: "lease of a claimed task; heartbeats extend it")
    public static let queueAging = ConfigKey(
        "queue.aging_interval", .duration, default: "10s",
        help: "waiting this long is worth one priority step (implicit aging: bounds the wait of low priorities)")
    public static let queueMaxAttempts = ConfigKey("queue.max_attempts", .integer, default: "5", help: "default attempts before the dead-letter queue")
    public static let queueBackoffBase = ConfigKey("queue.backoff_base", .duration, default: "1s", help: "first retry delay (doubles per attempt, with jitter)")
    public static let queueBackoffMax = ConfigKey("queue.backoff_max", .duration, default: "5m", help: "largest retry delay")
    public static let queueIdempotencyTTL = ConfigKey("queue.idempotency_ttl", .duration, default: "24h", help: "how long an idempotency key maps to its task")
    public static let queueCompletedTTL = ConfigKey("queue.completed_ttl", .duration, default: "1h", help: "how long a finished task stays inspectable in Redis (history lives in nfl.task_results)")
    public static let queueBatchSize = ConfigKey("queue.result_batch_size", .integer, default: "256", help: "durable results committed per transaction, at most")
    public static let queueBatchWait = ConfigKey("queue.result_batch_wait", .duration, default: "5ms", help: "how long a result waits for others to share its commit")
    public static let redisSentinels = ConfigKey(
        "redis.sentinels", .stringList,
        help: "Redis Sentinel addresses (host:port, list); with redis.master_name the master is discovered through them and redis.url's host is not used")
    public static let redisMasterName = ConfigKey("redis.master_name", .string, help: "the master's name in the sentinels (`sentinel monitor NAME …`)")
    public static let redisSentinelPassword = ConfigKey(
        "redis.sentinel_password", .string, help: "secret reference for the sentinels' own password (env:NAME, file:PATH (0600), aws-sm:…), if they require one; never the value")
    public static let redisFailoverTimeout = ConfigKey(
        "redis.failover_timeout", .duration, default: "30s",
        help: "with Sentinel: how long a connection attempt keeps rediscovering the master (backoff with jitter) before it fails")
    public static let redisWaitReplicas = ConfigKey(
        "redis.wait_replicas", .integer,
        help: "an enqueue is acknowledged only after this many replicas have it (WAIT), capped at the replicas the master has connected; default 1 with Sentinel, else 0")
    public static let redisWaitTimeout = ConfigKey(
        "redis.wait_timeout", .duration, default: "1s", help: "how long an enqueue waits for redis.wait_replicas before it fails")
    public static let queueGrace = ConfigKey("queue.shutdown_grace", .duration, default: "30s", help: "on SIGTERM/SIGINT, how long in-flight tasks may finish before they are released")
}

/// The `redis:` and `queue:` sections of `nfldb.yaml`.
public struct QueueConfig: Sendable {
    public static let keys: [ConfigKey] = [
        .redisURL, .redisPassword, .queuePrefix, .queueLease, .queueAging, .queueMaxAttempts, .queueBackoffBase, .queueBackoffMax,
        .queueIdempotencyTTL, .queueCompletedTTL, .queueBatchSize, .queueBatchWait, .queueGrace,
        .redisSentinels, .redisMasterName, .redisSentinelPassword, .redisFailoverTimeout, .redisWaitReplicas, .redisWaitTimeout,
    ]

    public var endpoint: RedisEndpoint
    public var prefix: String
    public var lease: Duration
    public var aging: Duration
    public var maxAttempts: Int
    public var backoffBase: Duration
    public var backoffMax: Duration
    public var idempotencyTTL: Duration
    public var completedTTL: Duration
    public var batchSize: Int
    public var batchWait: Duration
    public var grace: Duration
    /// With Sentinel: the group to ask for the master (``endpoint`` then supplies credentials and database only).
    public var sentinel: RedisSentinelSettings?
    /// How long a (re)connection keeps rediscovering the master with Sentinel.
    public var failoverTimeout: Duration = .seconds(30)
    /// Replicas that must confirm an enqueue (WAIT) before it is acknowledged; nil: 1 with Sentinel, else 0.
    public var waitReplicas: Int?
    public var waitTimeout: Duration = .seconds(1)

    /// `redis.url` for display: a password in it (refused anyway) masked.
    public static func redact(url: String) -> String { RedisEndpoint.redact(url) }

    /// Where the master is: ``endpoint``, or what the sentinels say.
    public var locator: RedisLocator { RedisLocator(endpoint: endpoint, sentinel: sentinel) }

    /// The effective number of replicas an enqueue waits for.
    public var effectiveWaitReplicas: Int { waitReplicas ?? (sentinel == nil ? 0 : 1) }

    /// Defaults for tests and embedding: the given endpoint, every other setting at its default.
    public init(endpoint: RedisEndpoint) {
        self.endpoint = endpoint
        prefix = ConfigKey.queuePrefix.defaultValue!
        lease = ConfigKey.queueLease.defaultDuration!
        aging = ConfigKey.queueAging.defaultDuration!
        maxAttempts = 5
        backoffBase = ConfigKey.queueBackoffBase.defaultDuration!
        backoffMax = ConfigKey.queueBackoffMax.defaultDuration!
        idempotencyTTL = ConfigKey.queueIdempotencyTTL.defaultDuration!
        completedTTL = ConfigKey.queueCompletedTTL.defaultDuration!
        batchSize = 256
        batchWait = ConfigKey.queueBatchWait.defaultDuration!
        grace = ConfigKey.queueGrace.defaultDuration!
    }

    /// - Parameter resolveSecrets: false only checks that `redis.password` is a well-formed secret
    ///   reference (start-up validation of every command), without reading or fetching it.
    public init(configuration: Configuration, resolveSecrets: Bool = true) throws {
        let url = configuration.defaulted(.redisURL)
        var endpoint: RedisEndpoint
        do {
            endpoint = try RedisEndpoint(url: url)
        } catch let error as RedisError {
            throw ConfigurationError(error.message, source: configuration.entry(.redisURL)?.source, hint: error.hint)
        }
        // The same rule as for the DSN: no literal password in a setting (it would sit in nfldb.yaml, the
        // environment of every process, `config show`…). The value is never echoed.
        // `?password=…` (redis-py and others read it) is a literal password too, even though hiredis would ignore it.
        let queryPassword = URLComponents(string: url)?.queryItems?.first { $0.name.lowercased() == "password" }?.value
        if let password = endpoint.password ?? queryPassword {
            SecretRedactor.shared.register(password)
            throw ConfigurationError(
                "redis.url contains a password (\(endpoint.redactedURL)): a literal password is refused",
                source: configuration.entry(.redisURL)?.source,
                hint: "Remove it from redis.url (redis://[USER@]HOST[:PORT][/DB]) and give it by reference in redis.password "
                    + "(NFLDB_REDIS_PASSWORD): env:NAME, file:PATH (mode 0600) or aws-sm:SECRET_ID[#json_key].")
        }
        if let text = configuration.string(.redisPassword) {
            // The same secret references as everywhere else (env:, file: with the 0600 rule, aws-sm:…),
            // resolved once per run by NFLDBCore's SecretResolver, which registers the value with the redactor.
            let source = configuration.entry(.redisPassword)?.source
            let reference = try SecretReference.parse(text, source: source, what: "redis.password")
            if resolveSecrets {
                endpoint.password = try SecretResolver.shared.resolve(reference, source: source, what: "redis.password", environment: configuration.environment)
            }
        }
        self.init(endpoint: endpoint)
        prefix = configuration.defaulted(.queuePrefix)
        func duration(_ key: ConfigKey) throws -> Duration { try configuration.duration(key) ?? key.defaultDuration! }
        lease = try duration(.queueLease)
        aging = try duration(.queueAging)
        maxAttempts = try configuration.integer(.queueMaxAttempts, atLeast: 1) ?? 5
        backoffBase = try duration(.queueBackoffBase)
        backoffMax = try duration(.queueBackoffMax)
        idempotencyTTL = try duration(.queueIdempotencyTTL)
        completedTTL = try duration(.queueCompletedTTL)
        batchSize = try configuration.integer(.queueBatchSize, atLeast: 1) ?? 256
        batchWait = try duration(.queueBatchWait)
        grace = try duration(.queueGrace)
        failoverTimeout = try duration(.redisFailoverTimeout)
        waitTimeout = try duration(.redisWaitTimeout)
        waitReplicas = try configuration.integer(.redisWaitReplicas, atLeast: 0)
        let sentinels = configuration.list(.redisSentinels)
        let masterName = configuration.string(.redisMasterName)
        if !sentinels.isEmpty || masterName != nil {
            guard let masterName, !sentinels.isEmpty else {
                let missing = sentinels.isEmpty ? ConfigKey.redisSentinels : ConfigKey.redisMasterName
                let given = sentinels.isEmpty ? ConfigKey.redisMasterName : ConfigKey.redisSentinels
                throw ConfigurationError("\(given.name) is set but \(missing.name) is not: Sentinel needs both",
                                         source: configuration.entry(given)?.source,
                                         hint: "Set redis.sentinels (host:port list) and redis.master_name together, or neither to use redis.url.")
            }
            var password: String?
            if let text = configuration.string(.redisSentinelPassword) {
                let source = configuration.entry(.redisSentinelPassword)?.source
                let reference = try SecretReference.parse(text, source: source, what: "redis.sentinel_password")
                if resolveSecrets {
                    password = try SecretResolver.shared.resolve(
                        reference, source: source, what: "redis.sentinel_password", environment: configuration.environment)
                }
            }
            do {
                sentinel = try RedisSentinelSettings(addresses: sentinels, masterName: masterName, password: password)
            } catch let error as RedisError {
                throw ConfigurationError(error.message, source: configuration.entry(.redisSentinels)?.source, hint: error.hint)
            }
        }
        guard maxAttempts >= 1 else { throw ConfigurationError("queue.max_attempts must be at least 1", source: configuration.entry(.queueMaxAttempts)?.source) }
        guard lease >= .milliseconds(100) else { throw ConfigurationError("queue.lease must be at least 100ms", source: configuration.entry(.queueLease)?.source) }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down), for Redis arguments.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
