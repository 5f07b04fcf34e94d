import Foundation
import NFLDBCore

extension ConfigKey {
    public static let etlGamesSource = ConfigKey(
        "etl.games.source", .string, default: ETLConfig.nflverseGamesURL,
        help: "default --source of `nfldb etl load|validate games` (a path or an http(s) URL)")
    public static let etlMaxInvalidRatio = ConfigKey(
        "etl.max_invalid_ratio", .number, default: "0.01", help: "share of rejected rows above which a reject-rows run fails")
    public static let etlLockWait = ConfigKey("etl.lock_wait", .duration, default: "30s", help: "how long a load waits for another load of the same target")
    public static let etlLockTimeout = ConfigKey("etl.lock_timeout", .duration, default: "10s", help: "lock_timeout of the load's statements")
    public static let etlSuspendForeignKeys = ConfigKey(
        "etl.suspend_foreign_keys", .boolean, default: "true",
        help: "a first load into empty tables checks the foreign keys of games, weather and odds once at the end (migrations 0010/0011; locks those three tables and teams/stadiums for the load)")
    public static let etlHTTPTimeout = ConfigKey("etl.http.timeout", .duration, default: "30s", help: "timeout of one HTTP attempt (connect and idle read)")
    public static let etlHTTPDeadline = ConfigKey("etl.http.deadline", .duration, default: "5min", help: "total time for all HTTP attempts of a run")
    public static let etlHTTPMaxAttempts = ConfigKey("etl.http.max_attempts", .integer, default: "6", help: "HTTP attempts per run before giving up")
    public static let etlHTTPBackoffBase = ConfigKey("etl.http.backoff_base", .duration, default: "500ms", help: "first retry delay (doubled per attempt, full jitter)")
    public static let etlHTTPBackoffCap = ConfigKey("etl.http.backoff_cap", .duration, default: "30s", help: "largest retry delay (Retry-After may ask for more, up to the deadline)")
    public static let etlHTTPRate = ConfigKey("etl.http.rate", .number, default: "1", help: "token-bucket refill in requests per second, shared by all requests of a run")
    public static let etlHTTPBurst = ConfigKey("etl.http.burst", .integer, default: "2", help: "token-bucket size (requests allowed back to back)")
}

/// The `etl:` section of `nfldb.yaml`.
public struct ETLConfig: Sendable {
    public static let nflverseGamesURL = "https://raw.githubusercontent.com/nflverse/nfldata/master/data/games.csv"

    public static let keys: [ConfigKey] = [
        .etlGamesSource, .etlMaxInvalidRatio, .etlLockWait, .etlLockTimeout, .etlSuspendForeignKeys, .etlHTTPTimeout, .etlHTTPDeadline,
        .etlHTTPMaxAttempts, .etlHTTPBackoffBase, .etlHTTPBackoffCap, .etlHTTPRate, .etlHTTPBurst,
        .etlSourceRoots,
    ]

    public var gamesSource: String
    public var maxInvalidRatio: Double
    public var lockWait: Duration
    public var lockTimeout: Duration
    public var suspendForeignKeys: Bool
    public var http: HTTPSettings

    public init(configuration: Configuration) throws {
        gamesSource = configuration.string(.etlGamesSource) ?? Self.nflverseGamesURL
        maxInvalidRatio = configuration.number(ConfigKey.etlMaxInvalidRatio.name) ?? 0.01
        guard maxInvalidRatio >= 0 && maxInvalidRatio <= 1 else {
            throw OperatorError("etl.max_invalid_ratio must be between 0 and 1 (got \(maxInvalidRatio))",
                                hint: "Set a share such as 0.01 (1 %).", exitStatus: .usage)
        }
        lockWait = try configuration.duration(.etlLockWait) ?? .seconds(30)
        lockTimeout = try configuration.duration(.etlLockTimeout, postgresTimeout: true) ?? .seconds(10)
        suspendForeignKeys = try configuration.boolean(.etlSuspendForeignKeys) ?? true
        http = HTTPSettings(
            timeout: try configuration.duration(.etlHTTPTimeout) ?? .seconds(30),
            deadline: try configuration.duration(.etlHTTPDeadline) ?? .seconds(300),
            maxAttempts: try configuration.integer(.etlHTTPMaxAttempts, atLeast: 1) ?? 6,
            backoffBase: try configuration.duration(.etlHTTPBackoffBase) ?? .milliseconds(500),
            backoffCap: try configuration.duration(.etlHTTPBackoffCap) ?? .seconds(30),
            rate: configuration.number(ConfigKey.etlHTTPRate.name) ?? 1,
            burst: try configuration.integer(.etlHTTPBurst, atLeast: 1) ?? 2)
        // Zero would never send a request (rate) or give up before the first one (timeout, deadline).
        for (key, value) in [(ConfigKey.etlHTTPTimeout, http.timeout), (.etlHTTPDeadline, http.deadline)] where value <= .zero {
            throw ConfigurationError("\(key.name): must be longer than 0 (got \(value))", source: configuration.entry(key)?.source,
                                     hint: "Set a duration such as \(key.defaultValue ?? "30s"), or leave it out for the default.")
        }
        guard http.rate > 0, http.rate.isFinite else {
            throw ConfigurationError("etl.http.rate: must be a number of requests per second above 0 (got \(http.rate))",
                                     source: configuration.entry(ConfigKey.etlHTTPRate)?.source, hint: "Set a rate such as 1, or leave it out for the default.")
        }
    }
}

/// Retry, rate-limit and deadline settings of the HTTP source.
public struct HTTPSettings: Sendable {
    public var timeout: Duration
    public var deadline: Duration
    public var maxAttempts: Int
    public var backoffBase: Duration
    public var backoffCap: Duration
    public var rate: Double
    public var burst: Int

    public init(timeout: Duration = .seconds(30), deadline: Duration = .seconds(300), maxAttempts: Int = 6,
                backoffBase: Duration = .milliseconds(500), backoffCap: Duration = .seconds(30), rate: Double = 1, burst: Int = 2) {
        self.timeout = timeout
        self.deadline = deadline
        self.maxAttempts = maxAttempts
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.rate = rate
        self.burst = burst
    }
}
