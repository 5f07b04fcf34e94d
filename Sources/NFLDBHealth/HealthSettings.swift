import Foundation
import NFLDBCore

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

    /// A duration option in seconds.
    public func seconds(_ key: String, default fallback: Double) -> Double {
        options[key].flatMap(DurationParser.parse)?.inSeconds ?? fallback
    }

    public func number(_ key: String, default fallback: Double?) -> Double? {
        options[key].flatMap(Double.init) ?? fallback
    }

    public func integer(_ key: String, default fallback: Int?) -> Int? {
        options[key].flatMap { Int($0) ?? Double($0).map { Int($0) } } ?? fallback
    }
}

/// Settings for a whole run, built from `nfldb.yaml`/environment (``init(configuration:)``) or,
/// in tests, from a dictionary of `check.key` overrides.
public struct HealthSettings: Sendable {
    public var statementTimeout: Duration
    public var lockTimeout: Duration
    /// Values by dotted path below `health.checks.` (`connections.warning`, `bloat.min_size`).
    public var values: [String: String]

    public init(statementTimeout: Duration = .seconds(5), lockTimeout: Duration = .seconds(2), values: [String: String] = [:]) {
        self.statementTimeout = statementTimeout
        self.lockTimeout = lockTimeout
        self.values = values
    }

    /// Reads `health.*` from the effective configuration (defaults, file, environment).
    public init(configuration: Configuration) throws {
        statementTimeout = try configuration.duration(.healthStatementTimeout) ?? .seconds(5)
        lockTimeout = try configuration.duration(.healthLockTimeout) ?? .seconds(2)
        values = [:]
        let prefix = "health.checks."
        for (path, entry) in configuration.entries where path.hasPrefix(prefix) {
            if case .scalar(let text) = entry.value { values[String(path.dropFirst(prefix.count))] = text }
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
        let enabled = options["enabled"].map { ["true", "yes", "on", "1"].contains($0.lowercased()) } ?? true
        let timeout = options["statement_timeout"].flatMap(DurationParser.parse) ?? probe.defaultStatementTimeout ?? statementTimeout
        return CheckSettings(name: name, enabled: enabled, thresholds: thresholds, statementTimeout: timeout, options: options)
    }

    /// A threshold value; `none`/`off`/empty disables that level.
    static func threshold(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if ["", "none", "off", "null", "~"].contains(trimmed) { return nil }
        return Double(trimmed)
    }
}
