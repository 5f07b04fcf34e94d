import Foundation
import NFLDBCore

extension ConfigKey {
    public static let healthWarning = ConfigKey("health.checks.*.warning", .number, help: "warning threshold of a health check")
    public static let healthCritical = ConfigKey("health.checks.*.critical", .number, help: "critical threshold of a health check")
    public static let healthEnabled = ConfigKey("health.checks.*.enabled", .boolean, help: "whether a health check runs")
    public static let healthConsecutive = ConfigKey(
        "health.checks.*.consecutive", .integer, help: "consecutive WARNING/CRITICAL runs before a check alerts (default health.alert.consecutive)")
    public static let healthCheckStatementTimeout = ConfigKey(
        "health.checks.*.statement_timeout", .duration, help: "statement_timeout for one check's queries (default health.statement_timeout)")
    public static let healthStatementTimeout = ConfigKey("health.statement_timeout", .duration, default: "5s", help: "statement_timeout of every health query")
    public static let healthLockTimeout = ConfigKey("health.lock_timeout", .duration, default: "2s", help: "lock_timeout of every health query")
    public static let healthTargetName = ConfigKey(
        "health.target_name", .string, help: "name of the primary target in alerts and dedup keys (default host:port/dbname)")
    public static let healthIdleWarning = ConfigKey(
        "health.checks.connections.idle_in_transaction_warning", .duration, default: "5min",
        help: "connections: a session idle in transaction this long is a WARNING")
    public static let healthIdleCritical = ConfigKey(
        "health.checks.connections.idle_in_transaction_critical", .duration, default: "30min",
        help: "connections: a session idle in transaction this long is CRITICAL")
    public static let healthBloatMinSize = ConfigKey(
        "health.checks.bloat.min_size", .number, default: "104857600", help: "bloat: relations smaller than this many bytes are skipped")
    public static let healthBloatMinPercent = ConfigKey(
        "health.checks.bloat.min_percent", .number, default: "50", help: "bloat: only relations with at least this % estimated waste count")
    public static let healthVacuumGrace = ConfigKey(
        "health.checks.vacuum.grace", .duration, default: "1h", help: "vacuum: how long a table may stay above its autovacuum trigger")
    public static let healthVacuumMinRows = ConfigKey(
        "health.checks.vacuum.min_rows", .integer, default: "1000", help: "vacuum: ignore tables with fewer dead/modified rows")
    public static let healthReplicationStandbys = ConfigKey(
        "health.checks.replication.expected_standbys", .integer, help: "replication: standbys that must be streaming from the primary")
    public static let healthReplicationDelayWarning = ConfigKey(
        "health.checks.replication.delay_warning", .duration, default: "5min", help: "replication: standby replay delay WARNING")
    public static let healthReplicationDelayCritical = ConfigKey(
        "health.checks.replication.delay_critical", .duration, default: "30min", help: "replication: standby replay delay CRITICAL")
    public static let healthSlotWarning = ConfigKey(
        "health.checks.replication.slot_warning", .number, default: "1073741824", help: "replication: WAL bytes a slot may retain (WARNING)")
    public static let healthSlotCritical = ConfigKey(
        "health.checks.replication.slot_critical", .number, default: "10737418240", help: "replication: WAL bytes a slot may retain (CRITICAL)")
    public static let healthArchiveMaxAge = ConfigKey(
        "health.checks.archiving.max_age", .duration, default: "1h", help: "archiving: WAL waiting while nothing was archived this long is a WARNING")
    public static let healthSlowMinCalls = ConfigKey(
        "health.checks.slow_queries.min_calls", .integer, default: "5", help: "slow_queries: ignore statements called fewer times")
    public static let healthCacheMinBlocks = ConfigKey(
        "health.checks.cache_hit.min_blocks", .integer, default: "10000", help: "cache_hit: ignore databases with fewer block accesses")
    public static let healthVerifyWarning = ConfigKey(
        "health.checks.backups.verify_warning", .duration, default: "8d", help: "backups: last successful verification older than this is a WARNING")
    public static let healthRepoVerifyWarning = ConfigKey(
        "health.checks.backups.repo_verify_warning", .duration, default: "15d",
        help: "backups: last full repository verification (`pgbackrest verify` run by backup verify) older than this is a WARNING")
    public static let healthTLSLocalNetworks = ConfigKey(
        "health.checks.tls_connections.local_networks", .stringList, default: "127.0.0.0/8,::1/128",
        help: "tls_connections: client networks not counted (loopback; Unix-socket clients never count)")
}

/// The effective settings of one check: enabled, thresholds, timeout and probe-specific options.
public struct CheckSettings: Sendable {
    public var name: String
    public var enabled: Bool
    public var thresholds: Thresholds
    public var statementTimeout: Duration
    /// Raw option values by key suffix (`idle_in_transaction_warning` → `5min`).
    public var options: [String: String]

    public init(name: String, enabled: Bool = true, thresholds: Thresholds, statementTimeout: Duration, options: [String: String] = [:]) {
        self.name = name
        self.enabled = enabled
        self.thresholds = thresholds
        self.statementTimeout = statementTimeout
        self.options = options
    }

    /// A probe option's text: the configured value, else the key's default (the one place a
    /// default is written). `key` is one of this check's keys (`health.checks.<name>.<option>`).
    public func value(_ key: ConfigKey) -> String? {
        options[key.leafName] ?? key.defaultValue
    }

    /// A duration option in seconds (0 for a key without a default that is not set).
    public func seconds(_ key: ConfigKey) -> Double {
        value(key).flatMap(DurationParser.parse)?.inSeconds ?? 0
    }

    public func number(_ key: ConfigKey) -> Double? {
        value(key).flatMap(Double.init)
    }

    public func integer(_ key: ConfigKey) -> Int? {
        value(key).flatMap { Int($0) ?? Double($0).map { Int($0) } }
    }
}

/// Settings for a whole run, built from `nfldb.yaml`/environment (``init(configuration:)``) or,
/// in tests, from a dictionary of `check.key` overrides.
public struct HealthSettings: Sendable {
    /// The keys this module reads (the executable adds them to the loader's list).
    public static let keys: [ConfigKey] = [
        .healthWarning, .healthCritical, .healthEnabled, .healthConsecutive, .healthCheckStatementTimeout,
        .healthStatementTimeout, .healthLockTimeout, .healthTargetName,
        .healthIdleWarning, .healthIdleCritical, .healthBloatMinSize, .healthBloatMinPercent, .healthVacuumGrace, .healthVacuumMinRows,
        .healthReplicationStandbys, .healthReplicationDelayWarning, .healthReplicationDelayCritical, .healthSlotWarning,
        .healthSlotCritical, .healthArchiveMaxAge, .healthSlowMinCalls, .healthCacheMinBlocks, .healthVerifyWarning, .healthRepoVerifyWarning, .healthTLSLocalNetworks,
    ]

    public var statementTimeout: Duration
    public var lockTimeout: Duration
    /// Values by dotted path below `health.checks.` (`connections.warning`, `bloat.min_size`).
    public var values: [String: String]

    /// The name of the primary target in alerts and dedup keys (nil: host:port/dbname).
    public var targetName: String?
    /// Where each configured value of ``values`` came from (`file:line`, env, flag), for errors.
    public var sources: [String: ConfigSource] = [:]

    public init(
        statementTimeout: Duration? = nil, lockTimeout: Duration? = nil, values: [String: String] = [:], targetName: String? = nil
    ) {
        self.statementTimeout = statementTimeout ?? ConfigKey.healthStatementTimeout.defaultDuration ?? .zero
        self.lockTimeout = lockTimeout ?? ConfigKey.healthLockTimeout.defaultDuration ?? .zero
        self.values = values
        self.targetName = targetName
    }

    /// Reads `health.*` from the effective configuration (defaults, file, environment).
    public init(configuration: Configuration) throws {
        statementTimeout = try configuration.duration(.healthStatementTimeout, postgresTimeout: true) ?? .zero
        lockTimeout = try configuration.duration(.healthLockTimeout, postgresTimeout: true) ?? .zero
        targetName = configuration.string(.healthTargetName)
        values = [:]
        let prefix = "health.checks."
        for (path, entry) in configuration.entries where path.hasPrefix(prefix) {
            if case .scalar(let text) = entry.value { values[String(path.dropFirst(prefix.count))] = text }
            sources[String(path.dropFirst(prefix.count))] = entry.source
        }
        // The backups check judges the stanza `nfldb backup` works on.
        if case .scalar(let stanza)? = configuration.entries["backup.stanza"]?.value {
            values["backups.stanza"] = stanza
            values["archiving.stanza"] = stanza
        }
        // The archiving check compares the pgBackRest repo's newest segment with pg_stat_archiver.
        if case .scalar(let config)? = configuration.entries["backup.config"]?.value { values["archiving.pgbackrest_config"] = config }
        if ProcessRunner.isRoot {
            let user: String? = if case .scalar(let u)? = configuration.entries["postgres.os_user"]?.value { u } else { nil }
            values["archiving.os_user"] = user ?? "postgres"
        }
    }

    /// The settings of one probe: config values over the probe's defaults.
    public func settings(for probe: any Probe) -> CheckSettings {
        let name = probe.name
        var options: [String: String] = [:]
        for (path, value) in values where path.hasPrefix(name + ".") {
            options[String(path.dropFirst(name.count + 1))] = value
        }
        var thresholds = probe.defaultThresholds
        if let text = options["warning"] { thresholds.warning = Self.threshold(text) }
        if let text = options["critical"] { thresholds.critical = Self.threshold(text) }
        let enabled = options["enabled"].map { ["true", "yes", "on", "1"].contains($0.lowercased()) } ?? probe.enabledByDefault
        let timeout = options["statement_timeout"].flatMap(DurationParser.parse) ?? probe.defaultStatementTimeout ?? statementTimeout
        return CheckSettings(name: name, enabled: enabled, thresholds: thresholds, statementTimeout: timeout, options: options)
    }

    /// A threshold value; `none`/`off`/empty disables that level.
    static func threshold(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if ["", "none", "off", "null", "~"].contains(trimmed) { return nil }
        return ConfigKey.parseNumber(trimmed)
    }

    /// Refuses configured `health.checks.<name>.…` entries for a check that does not exist (naming
    /// the nearest known one), and thresholds in the wrong order: for a check where higher is worse
    /// warning must be ≤ critical, where lower is worse (cache_hit, tls_certificate) ≥ critical.
    /// (The loader already refused thresholds that are not finite numbers ≥ 0.) Errors name `file:line`.
    public func validate(probes: [any Probe]) throws {
        let known = Set(probes.map(\.name))
        for path in sources.keys.sorted() {
            let check = String(path.prefix { $0 != "." })
            guard !known.contains(check) else { continue }
            let nearest = known.min { (Self.editDistance($0, check), $0) < (Self.editDistance($1, check), $1) }
            var hint = "Known checks: \(known.sorted().joined(separator: ", "))."
            if let nearest, Self.editDistance(nearest, check) <= max(2, check.count / 3) { hint = "Did you mean \(nearest)? " + hint }
            throw ConfigurationError("health.checks.\(path): unknown check '\(check)'", source: sources[path], hint: hint)
        }
        for probe in probes {
            let path = "\(probe.name).statement_timeout"
            if let text = values[path], let value = DurationParser.parse(text), let problem = DurationParser.postgresTimeoutProblem(value) {
                throw ConfigurationError("health.checks.\(path): '\(text)' \(problem)", source: sources[path],
                                         hint: "Set it to 24d or less (0 turns the timeout off), or leave it out to use health.statement_timeout.")
            }
        }
        for probe in probes {
            // A count of runs: 0 or a negative number would silently mean 1.
            let path = "\(probe.name).consecutive"
            if let text = values[path], (Int(text.trimmingCharacters(in: .whitespaces)) ?? 0) < 1 {
                throw ConfigurationError(
                    "health.checks.\(path): '\(text)' is not a number of runs of at least 1", source: sources[path],
                    hint: "Set it to 1 (alert on the first bad run) or more, or leave it out to use health.alert.consecutive.")
            }
        }
        for probe in probes {
            let thresholds = settings(for: probe).thresholds
            guard let warning = thresholds.warning, let critical = thresholds.critical else { continue }
            let higherIsWorse = thresholds.direction == .higherIsWorse
            guard higherIsWorse ? warning > critical : warning < critical else { continue }
            let at = sources["\(probe.name).warning"] ?? sources["\(probe.name).critical"]
            throw ConfigurationError(
                "health.checks.\(probe.name): warning \(Self.number(warning)) must be \(higherIsWorse ? "≤" : "≥") critical \(Self.number(critical)) "
                    + "(\(higherIsWorse ? "higher" : "lower") is worse for \(probe.name))",
                source: at, hint: "Swap the two values, or leave one unset to disable that level.")
        }
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
