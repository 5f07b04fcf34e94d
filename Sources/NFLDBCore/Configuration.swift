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

/// A setting's value: a scalar, for list keys a list, for record-list keys a list of mappings.
public enum ConfigRawValue: Sendable, Hashable, CustomStringConvertible {
    case scalar(String)
    case list([String])
    case records([ConfigRecord])

    public var description: String {
        switch self {
        case .scalar(let value): return value
        case .list(let values): return "[" + values.joined(separator: ", ") + "]"
        case .records(let records): return "[\(records.count) entr\(records.count == 1 ? "y" : "ies")]"
        }
    }
}

/// One mapping of a record-list key (``ConfigKey/Kind/records(fields:secretFields:)``): its fields
/// as strings, where it stands in the file, and its position in the list.
public struct ConfigRecord: Sendable, Hashable {
    public let index: Int
    public let fields: [String: String]
    public let source: ConfigSource

    public init(index: Int, fields: [String: String], source: ConfigSource) {
        self.index = index
        self.fields = fields
        self.source = source
    }
}

public struct ConfigEntry: Sendable, Hashable {
    public let path: String
    public let value: ConfigRawValue
    public let source: ConfigSource

    public init(path: String, value: ConfigRawValue, source: ConfigSource) {
        self.path = path
        self.value = value
        self.source = source
    }
}

/// The effective configuration: defaults, overlaid by `nfldb.yaml`, by environment, by flags.
///
/// The typed accessors fall back to the key's own default when no entry exists (a configuration
/// built in a test from a few entries), so a default is written once, in its ``ConfigKey``.
public struct Configuration: Sendable {
    /// Every key this configuration was resolved against (the executable's assembled list).
    public let keys: [ConfigKey]
    public let entries: [String: ConfigEntry]
    /// The config file that was read, if any.
    public let file: String?
    /// The process environment the configuration was resolved against.
    public let environment: [String: String]

    public init(keys: [ConfigKey], entries: [String: ConfigEntry], file: String? = nil, environment: [String: String] = [:]) {
        self.keys = keys
        self.entries = entries
        self.file = file
        self.environment = environment
    }

    public func entry(_ key: ConfigKey) -> ConfigEntry? { entries[key.name] }

    /// The entry's value, else the key's default.
    private func value(_ key: ConfigKey) -> (value: ConfigRawValue, source: ConfigSource)? {
        if let entry = entries[key.name] { return (entry.value, entry.source) }
        return key.defaultValue.map { (.scalar($0), .defaultValue) }
    }

    public func string(_ key: ConfigKey) -> String? {
        if case .scalar(let value)? = value(key)?.value { return value }
        return nil
    }

    /// The value of a key that has a default, so never unset (`""` only for a key declared
    /// without one, which is a programming error the key's tests catch).
    public func defaulted(_ key: ConfigKey) -> String {
        string(key) ?? ""
    }

    public func list(_ key: ConfigKey) -> [String] {
        switch value(key)?.value {
        case .list(let values)?: return values
        case .scalar(let value)?: return value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        case .records?, nil: return []
        }
    }

    /// The mappings of a record-list key, in file order.
    public func records(_ key: ConfigKey) -> [ConfigRecord] {
        if case .records(let records)? = entries[key.name]?.value { return records }
        return []
    }

    /// A duration setting; with `postgresTimeout`, one PostgreSQL would refuse as a timeout
    /// (over INT_MAX ms) is refused here, with its source, before anything connects.
    public func duration(_ key: ConfigKey, postgresTimeout: Bool = false) throws -> Duration? {
        guard let (raw, source) = value(key), case .scalar(let text) = raw else { return nil }
        guard let value = DurationParser.parse(text) else {
            throw ConfigurationError("\(key.name): '\(text)' is not a duration (or is too long to hold)", source: source, hint: "Use a value such as 500ms, 5s, 10min or 2h.")
        }
        if postgresTimeout, let problem = DurationParser.postgresTimeoutProblem(value) {
            throw ConfigurationError("\(key.name): '\(text)' \(problem)", source: source,
                                     hint: "Set it to 24d or less (0 turns the timeout off), or leave it out for the default.")
        }
        return value
    }

    /// An integer setting; with `atLeast`, a smaller value is refused with its source (a negative
    /// count, `0` attempts…) instead of silently meaning something odd.
    public func integer(_ key: ConfigKey, atLeast minimum: Int? = nil) throws -> Int? {
        guard let (raw, source) = value(key), case .scalar(let text) = raw else { return nil }
        guard let value = Int(text) else {
            throw ConfigurationError("\(key.name): '\(text)' is not an integer", source: source,
                                     hint: "Write a whole number\(minimum.map { " of at least \($0)" } ?? ""), or leave it out for the default.")
        }
        if let minimum, value < minimum {
            throw ConfigurationError("\(key.name): \(value) is below its minimum \(minimum)", source: source,
                                     hint: "Set it to \(minimum) or more, or leave it out for the default.")
        }
        return value
    }

    public func boolean(_ key: ConfigKey) throws -> Bool? {
        guard let (raw, source) = value(key), case .scalar(let text) = raw else { return nil }
        guard let value = ConfigKey.parseBoolean(text) else {
            throw ConfigurationError("\(key.name): '\(text)' is not a boolean", source: source)
        }
        return value
    }

    /// A value under a pattern key, e.g. `number("checks.connections.warning")`.
    public func number(_ path: String) -> Double? {
        if case .scalar(let value)? = entries[path]?.value { return Double(value) }
        return nil
    }

    /// The parsed `password_ref`, if set; a malformed one fails with its `file:line` (checked at start-up).
    public func passwordReference() throws -> SecretReference? {
        guard let text = string(.passwordRef) else { return nil }
        return try SecretReference.parse(text, source: entry(.passwordRef)?.source, what: "password_ref")
    }

    /// The database password from `password_ref` (any secret reference), `password_file` or
    /// `password_env`, if configured. The value is registered with the redactor before it is returned.
    public func password() throws -> String? {
        if let reference = try passwordReference() {
            return try SecretResolver.shared.resolve(reference, source: entry(.passwordRef)?.source, what: "password_ref", environment: environment)
        }
        // The older spellings are the same references (env:NAME, file:PATH), so they get the same
        // rules (a file with group or world access is refused), caching and redaction.
        if let name = string(.passwordEnv) {
            return try SecretResolver.shared.resolve(
                SecretReference(scheme: "env", identifier: name), source: entry(.passwordEnv)?.source, what: "password_env", environment: environment)
        }
        if let path = string(.passwordFile) {
            return try SecretResolver.shared.resolve(
                SecretReference(scheme: "file", identifier: path), source: entry(.passwordFile)?.source, what: "password_file", environment: environment)
        }
        return nil
    }
}

extension Configuration {
    /// Reads a secret from the first line of a file (`password_file`, a `*_file` reference).
    /// The caller registers the value with the redactor where it resolves it.
    public static func readSecretFile(_ path: String, what: String, source: ConfigSource?) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("\(what): cannot read \(path)", source: source, hint: "Create the file (mode 0600) or fix the path.")
        }
        // components(separatedBy: .newlines), not split(separator: "\n"): Swift reads "\r\n" as one
        // Character, so a secret file written on Windows would otherwise keep its second line.
        let firstLine = text.components(separatedBy: .newlines).first ?? ""
        let value = firstLine.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else {
            throw ConfigurationError("\(what): \(path) is empty", source: source)
        }
        return value
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
