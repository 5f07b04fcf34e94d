import Foundation
/// One setting nfldb understands, with its type, default and help.
///
/// Core declares only the global keys (``ConfigKey/global``: connection, password reference, logging);
/// each capability module declares its own keys and decodes its own section, and the executable
/// passes the assembled list to ``ConfigurationLoader``. A key's name is its dotted path in
/// `nfldb.yaml` (`migrations.dir`), its environment variable is derived from it
/// (`NFLDB_MIGRATIONS_DIR`), and a `*` segment matches any name (`checks.*.warning`).
public struct ConfigKey: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case string
        case path
        case duration
        case integer
        case number
        case boolean
        case stringList
        case choice([String])
        /// A list of mappings (`- { type: x, url_env: Y }`) with these allowed fields. A field in
        /// `secretFields` is refused inline anywhere in the file: its value must come by reference
        /// (`<field>_env` or `<field>_file`). Such a key has no environment variable.
        case records(fields: [String], secretFields: [String])
    }

    public let name: String
    public let kind: Kind
    public let defaultValue: String?
    public let help: String
    /// Extra environment variables read after the derived one (`DATABASE_URL` for `dsn`).
    public let extraEnvironment: [String]

    public init(_ name: String, _ kind: Kind, default defaultValue: String? = nil, env extraEnvironment: [String] = [], help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.extraEnvironment = extraEnvironment
    }

    /// `NFLDB_` plus the path upper-cased with `.` as `_`; nil for pattern and record-list keys.
    public var environmentVariable: String? {
        guard !name.contains("*"), !isRecords else { return nil }
        return "NFLDB_" + name.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    public var isPattern: Bool { name.contains("*") }

    public var isRecords: Bool {
        if case .records = kind { return true }
        return false
    }

    /// The last path segment (`idle_in_transaction_warning` for `….connections.idle_in_transaction_warning`).
    public var leafName: String { name.split(separator: ".").last.map(String.init) ?? name }

    /// The default of a duration key, parsed (nil without a default).
    public var defaultDuration: Duration? { defaultValue.flatMap(DurationParser.parse) }

    /// `true`/`false`/`yes`/`no`/`on`/`off` (any case); nil for anything else.
    public static func parseBoolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    /// A `.number` value: a plain decimal (`5`, `0.5`, `.5`, `1e6`, optional leading `+`) that is
    /// finite and ≥ 0; nil for NaN, infinity, an overflow such as `1e400`, hex (`0x10`), a negative
    /// value or anything else. Every `.number` setting (thresholds, sizes, ratios, rates) is a quantity.
    public static func parseNumber(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.range(of: #"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"#, options: .regularExpression) != nil,
              let value = Double(trimmed), value.isFinite, value >= 0
        else { return nil }
        return value
    }

    /// Whether a concrete dotted path matches this key (a `*` segment matches one path segment).
    public func matches(_ path: String) -> Bool {
        let pattern = name.split(separator: ".")
        let parts = path.split(separator: ".")
        guard pattern.count == parts.count else { return false }
        return zip(pattern, parts).allSatisfy { $0 == "*" || $0 == $1 }
    }
}

extension ConfigKey {
    public static let dsn = ConfigKey(
        "dsn", .string, env: ["DATABASE_URL"],
        help: "conninfo string or postgresql:// URL; unset means libpq's PG* variables, .pgpass and pg_service.conf")
    public static let passwordFile = ConfigKey("password_file", .path, help: "file whose first line is the database password")
    public static let passwordEnv = ConfigKey("password_env", .string, help: "name of an environment variable holding the database password")
    public static let passwordRef = ConfigKey(
        "password_ref", .string, help: "secret reference for the database password: env:NAME, file:PATH or aws-sm:SECRET_ID[#json_key][@VERSION_STAGE]")
    public static let connectTimeout = ConfigKey("connect_timeout", .duration, default: "10s", help: "libpq connect_timeout")
    public static let logFormat = ConfigKey("log.format", .choice(["text", "json"]), default: "text", help: "log line format on stderr")
    public static let logLevel = ConfigKey(
        "log.level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
        help: "lowest log level printed (default: info with log.format json, warning with text)")

    /// The keys every command shares: the connection, its password reference, logging. Capability
    /// modules declare the rest; the executable assembles the full list.
    public static let global: [ConfigKey] = [.dsn, .passwordRef, .passwordFile, .passwordEnv, .connectTimeout, .logFormat, .logLevel]
}
