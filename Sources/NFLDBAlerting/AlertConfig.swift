import Foundation
import NFLDBCore

extension ConfigKey {
    public static let healthStateFile = ConfigKey(
        "health.state_file", .path, default: ".nfldb/health-state.json",
        help: "alert state kept between cron runs (use an absolute path in cron)")
    public static let healthAlertConsecutive = ConfigKey(
        "health.alert.consecutive", .integer, default: "2", help: "consecutive WARNING/CRITICAL runs before a check alerts")
    public static let healthAlertRepeat = ConfigKey(
        "health.alert.repeat_interval", .duration, default: "4h", help: "re-notify an unchanged open problem after this long")
    public static let healthAlertRetries = ConfigKey("health.alert.retries", .integer, default: "3", help: "delivery attempts per alert")
    public static let healthAlertBackoff = ConfigKey("health.alert.retry_backoff", .duration, default: "1s", help: "wait before the first retry (doubles)")
    public static let healthAlertTimeout = ConfigKey("health.alert.timeout", .duration, default: "10s", help: "HTTP timeout per delivery attempt, and the bound on the whole delivery (all destinations in parallel)")
    /// `alerts:` — the destinations, each a mapping; secrets only by reference (`url_env`, `routing_key_file`, …).
    public static let alertDestinations = ConfigKey(
        "alerts", .records(
            fields: ["name", "type", "url_env", "url_file", "routing_key_env", "routing_key_file", "url_ref", "routing_key_ref", "endpoint"],
            secretFields: ["url", "routing_key"]),
        help: "alert destinations for `health --alert` (slack, pagerduty, webhook); secrets by reference only")
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
    /// A secret reference (`url_ref` / `routing_key_ref`: `env:`, `file:`, `aws-sm:…`), resolved by ``SecretResolver``.
    public let secretRef: String?
    /// For PagerDuty: the Events API endpoint (only overridden in tests, to a local receiver).
    public let endpoint: String?
    public let source: ConfigSource

    public init(name: String, kind: Kind, secretEnv: String?, secretFile: String?, secretRef: String? = nil, endpoint: String?, source: ConfigSource) {
        self.secretRef = secretRef
        self.name = name
        self.kind = kind
        self.secretEnv = secretEnv
        self.secretFile = secretFile
        self.endpoint = endpoint
        self.source = source
    }

    /// Decodes one `alerts:` entry; errors name the entry's `file:line`.
    public init(record: ConfigRecord) throws {
        let fields = record.fields
        let index = record.index
        guard let typeName = fields["type"], let kind = Kind(rawValue: typeName) else {
            throw ConfigurationError("alerts[\(index)] needs type: slack, pagerduty or webhook", source: record.source)
        }
        let secretEnv = fields["url_env"] ?? fields["routing_key_env"]
        let secretFile = fields["url_file"] ?? fields["routing_key_file"]
        let secretRef = fields["url_ref"] ?? fields["routing_key_ref"]
        guard [secretEnv, secretFile, secretRef].compactMap({ $0 }).count == 1 else {
            throw ConfigurationError(
                "alerts[\(index)] needs exactly one of url_ref/url_env/url_file (routing_key_ref/routing_key_env/routing_key_file for pagerduty)",
                source: record.source)
        }
        if let secretRef { _ = try SecretReference.parse(secretRef, source: record.source, what: "alerts[\(index)] secret reference") }
        self.init(
            name: fields["name"] ?? "\(typeName)-\(index)", kind: kind, secretEnv: secretEnv, secretFile: secretFile, secretRef: secretRef,
            endpoint: fields["endpoint"], source: record.source)
    }

    /// Every destination under `alerts:`, in file order.
    public static func all(in configuration: Configuration) throws -> [AlertDestination] {
        try configuration.records(.alertDestinations).map(AlertDestination.init(record:))
    }

    /// Reads the secret from its env variable or file and registers it with the redactor.
    public func resolveSecret(environment: [String: String]) throws -> String {
        if let secretRef {
            return try SecretResolver.shared.resolve(secretRef, source: source, what: "alert destination \(name)", environment: environment)
        }
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
            // Same rule as a file: reference: refused when the group or others may read it.
            return try SecretResolver.shared.resolve(
                SecretReference(scheme: "file", identifier: secretFile), source: source, what: "alert destination \(name)", environment: environment)
        }
        throw ConfigurationError("alert destination \(name) has no secret reference", source: source)
    }
}

/// The alerting settings (`health.state_file`, `health.alert.*`, `alerts:`), decoded.
public struct AlertConfig: Sendable {
    public static let keys: [ConfigKey] = [
        .healthStateFile, .healthAlertConsecutive, .healthAlertRepeat, .healthAlertRetries, .healthAlertBackoff, .healthAlertTimeout,
        .alertDestinations,
    ]

    public var stateFile: String
    public var consecutive: Int
    public var repeatInterval: Duration
    public var retries: Int
    public var retryBackoff: Duration
    public var timeout: Duration
    public var destinations: [AlertDestination]

    public init(configuration: Configuration) throws {
        stateFile = configuration.defaulted(.healthStateFile)
        consecutive = try configuration.integer(.healthAlertConsecutive, atLeast: 1) ?? 1
        repeatInterval = try configuration.duration(.healthAlertRepeat) ?? .zero
        retries = try configuration.integer(.healthAlertRetries, atLeast: 1) ?? 1
        retryBackoff = try configuration.duration(.healthAlertBackoff) ?? .zero
        timeout = try configuration.duration(.healthAlertTimeout) ?? .zero
        // 0 would give up before the first attempt: paging silently off.
        if timeout <= .zero, let entry = configuration.entry(.healthAlertTimeout) {
            throw ConfigurationError("health.alert.timeout: must be longer than 0 (got \(entry.value))", source: entry.source,
                                     hint: "Set a duration such as 10s, or leave it out for the default.")
        }
        destinations = try AlertDestination.all(in: configuration)
    }
}
