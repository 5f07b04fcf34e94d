import Foundation

/// Where an effective setting came from, for `nfldb config show` and for error messages.
public enum ConfigSource: Sendable, Hashable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(path: String, line: Int)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let name): return "flag \(name)"
        case .environment(let name): return "env \(name)"
        case .file(let path, let line): return "\(path):\(line)"
        case .defaultValue: return "default"
        }
    }
}

/// A setting's value: a scalar or, for list keys, a list.
public enum ConfigRawValue: Sendable, Hashable, CustomStringConvertible {
    case scalar(String)
    case list([String])

    public var description: String {
        switch self {
        case .scalar(let value): return value
        case .list(let values): return "[" + values.joined(separator: ", ") + "]"
        }
    }
}

public struct ConfigEntry: Sendable, Hashable {
    public let path: String
    public let value: ConfigRawValue
    public let source: ConfigSource
}

/// A configured alert destination. Its secret (webhook URL or routing key) is only ever referenced
/// by environment variable or file, never written inline.
public struct AlertDestination: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable { case slack, pagerduty, webhook }

    public let name: String
    public let kind: Kind
    /// Environment variable holding the URL or routing key.
    public let secretEnv: String?
    /// File holding the URL or routing key.
    public let secretFile: String?
    /// For PagerDuty: the Events API endpoint (only overridden in tests, to a local receiver).
    public let endpoint: String?
    public let source: ConfigSource

    /// Reads the secret from its env variable or file and registers it with the redactor.
    public func resolveSecret(environment: [String: String]) throws -> String {
        if let secretEnv {
            guard let value = environment[secretEnv], !value.isEmpty else {
                throw ConfigurationError(
                    "alert destination \(name): environment variable \(secretEnv) is not set", source: source,
                    hint: "Export \(secretEnv) in the cron environment, or use a *_file reference.")
            }
            SecretRedactor.shared.register(value)
            return value
        }
        if let secretFile {
            let value = try ConfigurationLoader.readSecretFile(secretFile, what: "alert destination \(name)", source: source)
            SecretRedactor.shared.register(value)
            return value
        }
        throw ConfigurationError("alert destination \(name) has no secret reference", source: source)
    }
}

/// The effective configuration: defaults, overlaid by `nfldb.yaml`, by environment, by flags.
public struct Configuration: Sendable {
    public let entries: [String: ConfigEntry]
    public let alerts: [AlertDestination]
    /// The config file that was read, if any.
    public let file: String?
    /// The process environment the configuration was resolved against.
    public let environment: [String: String]

    public init(entries: [String: ConfigEntry], alerts: [AlertDestination], file: String?, environment: [String: String]) {
        self.entries = entries
        self.alerts = alerts
        self.file = file
        self.environment = environment
    }

    public func entry(_ key: ConfigKey) -> ConfigEntry? { entries[key.name] }

    public func string(_ key: ConfigKey) -> String? {
        if case .scalar(let value)? = entries[key.name]?.value { return value }
        return nil
    }

    public func list(_ key: ConfigKey) -> [String] {
        switch entries[key.name]?.value {
        case .list(let values)?: return values
        case .scalar(let value)?: return value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        case nil: return []
        }
    }

    public func duration(_ key: ConfigKey) throws -> Duration? {
        guard let entry = entries[key.name], case .scalar(let text) = entry.value else { return nil }
        guard let value = DurationParser.parse(text) else {
            throw ConfigurationError("\(key.name): '\(text)' is not a duration", source: entry.source, hint: "Use a value such as 500ms, 5s, 10min or 2h.")
        }
        return value
    }

    public func integer(_ key: ConfigKey) throws -> Int? {
        guard let entry = entries[key.name], case .scalar(let text) = entry.value else { return nil }
        guard let value = Int(text) else {
            throw ConfigurationError("\(key.name): '\(text)' is not an integer", source: entry.source)
        }
        return value
    }

    /// A value under a pattern key, e.g. `number("health.checks.connections.warning")`.
    public func number(_ path: String) -> Double? {
        if case .scalar(let value)? = entries[path]?.value { return Double(value) }
        return nil
    }

    /// The database password from `password_file` or `password_env`, if configured.
    /// The value is registered with the redactor before it is returned.
    public func password() throws -> String? {
        if let name = string(.passwordEnv) {
            guard let value = environment[name], !value.isEmpty else {
                throw ConfigurationError(
                    "password_env names \(name), but that environment variable is not set", source: entry(.passwordEnv)?.source,
                    hint: "Export \(name), or remove password_env to let libpq use PGPASSWORD/.pgpass.")
            }
            SecretRedactor.shared.register(value)
            return value
        }
        if let path = string(.passwordFile) {
            let value = try ConfigurationLoader.readSecretFile(path, what: "password_file", source: entry(.passwordFile)?.source)
            SecretRedactor.shared.register(value)
            return value
        }
        return nil
    }
}

/// A configuration problem: bad `nfldb.yaml`, bad env value, missing secret. Exit status 2.
public struct ConfigurationError: NFLDBError, Sendable {
    public let diagnostic: Diagnostic
    public var exitStatus: ExitStatus { .usage }

    public init(_ summary: String, source: ConfigSource? = nil, hint: String? = nil) {
        let located = source.map { "\($0): \(summary)" } ?? summary
        self.diagnostic = Diagnostic(located, hint: hint)
    }
}
