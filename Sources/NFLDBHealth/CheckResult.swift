import Foundation

/// One value inside a check's details: a string, number, flag or null.
public enum DetailValue: Sendable, Hashable, Encodable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value.isFinite ? value : 0)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    public var description: String {
        switch self {
        case .string(let value): return value
        case .int(let value): return String(value)
        case .double(let value): return HealthFormat.plain(value)
        case .bool(let value): return value ? "yes" : "no"
        case .null: return "-"
        }
    }
}

/// One object in a check's details (a session, a table, a standby), with fields in a stable order.
public struct Detail: Sendable, Hashable, Encodable, CustomStringConvertible {
    public var fields: [(key: String, value: DetailValue)]

    public init(_ fields: [(String, DetailValue)]) {
        self.fields = fields.map { (key: $0.0, value: $0.1) }
    }

    public subscript(_ key: String) -> DetailValue? {
        fields.first { $0.key == key }?.value
    }

    public mutating func set(_ key: String, _ value: DetailValue) {
        if let index = fields.firstIndex(where: { $0.key == key }) {
            fields[index].value = value
        } else {
            fields.append((key: key, value: value))
        }
    }

    public static func == (lhs: Detail, rhs: Detail) -> Bool {
        lhs.fields.map(\.key) == rhs.fields.map(\.key) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        for field in fields {
            hasher.combine(field.key)
            hasher.combine(field.value)
        }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for field in fields { try container.encode(field.value, forKey: Key(stringValue: field.key)) }
    }

    /// `key=value key=value` for text and Nagios long output.
    public var description: String {
        fields.filter { $0.value != .null }.map { field in
            let text = field.value.description
            return text.contains(" ") ? "\(field.key)=\"\(text)\"" : "\(field.key)=\(text)"
        }.joined(separator: " ")
    }
}

extension DetailValue {
    public static func text(_ value: String?) -> DetailValue { value.map { .string($0) } ?? .null }
    public static func integer(_ value: (some BinaryInteger)?) -> DetailValue { value.map { .int(Int64($0)) } ?? .null }
    public static func number(_ value: Double?) -> DetailValue {
        guard let value else { return .null }
        return .double((value * 1000).rounded() / 1000)
    }
}

/// An extra Prometheus sample a probe exposes (`nfldb_<name>{labels} value`).
public struct HealthMetric: Sendable, Hashable {
    public var name: String
    public var help: String
    public var labels: [String: String]
    public var value: Double

    public init(_ name: String, help: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.help = help
        self.labels = labels
        self.value = value
    }
}

/// What a probe found: the status and the facts behind it.
public struct ProbeOutcome: Sendable {
    public var status: HealthStatus
    /// The check's main number, in the probe's unit (nil when there is none, e.g. no standby).
    public var value: Double?
    /// One line saying what was found, naming the object (`pid 123 idle in transaction for 12 min`).
    public var message: String
    /// What to do about it, as a full sentence.
    public var hint: String?
    public var details: [Detail]
    public var metrics: [HealthMetric]

    public init(
        status: HealthStatus, value: Double? = nil, message: String, hint: String? = nil, details: [Detail] = [],
        metrics: [HealthMetric] = []
    ) {
        self.status = status
        self.value = value
        self.message = message
        self.hint = hint
        self.details = details
        self.metrics = metrics
    }

    /// A check that could not run (permission, missing extension, timeout): never OK, never a crash.
    public static func unknown(_ message: String, hint: String? = nil, details: [Detail] = []) -> ProbeOutcome {
        ProbeOutcome(status: .unknown, message: message, hint: hint, details: details)
    }
}

/// The result of one check on one target, as every output format renders it.
public struct CheckResult: Sendable, Encodable {
    public var name: String
    /// The target's name (`127.0.0.1:5432/nfl`), also used in alert dedup keys.
    public var target: String
    /// `primary`, `standby` or `unreachable`.
    public var role: String
    public var status: HealthStatus
    public var value: Double?
    public var unit: HealthUnit
    public var thresholds: Thresholds
    public var message: String
    public var hint: String?
    public var details: [Detail]
    public var durationMilliseconds: Double
    /// False when the check was not applicable on this server (e.g. vacuum on a standby).
    public var skipped: Bool
    public var metrics: [HealthMetric]

    public init(
        name: String, target: String, role: String, status: HealthStatus, value: Double?, unit: HealthUnit,
        thresholds: Thresholds, message: String, hint: String?, details: [Detail], durationMilliseconds: Double,
        skipped: Bool = false, metrics: [HealthMetric] = []
    ) {
        self.name = name
        self.target = target
        self.role = role
        self.status = status
        self.value = value
        self.unit = unit
        self.thresholds = thresholds
        self.message = message
        self.hint = hint
        self.details = details
        self.durationMilliseconds = durationMilliseconds
        self.skipped = skipped
        self.metrics = metrics
    }

    enum CodingKeys: String, CodingKey {
        case name, target, role, status, value, unit, thresholds, message, hint, details, skipped
        case durationMilliseconds = "duration_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(target, forKey: .target)
        try container.encode(role, forKey: .role)
        try container.encode(status, forKey: .status)
        if let value, value.isFinite { try container.encode(value, forKey: .value) } else { try container.encodeNil(forKey: .value) }
        try container.encode(unit, forKey: .unit)
        try container.encode(thresholds, forKey: .thresholds)
        try container.encode(message, forKey: .message)
        try container.encode(hint, forKey: .hint)
        try container.encode(details, forKey: .details)
        try container.encode(skipped, forKey: .skipped)
        try container.encode((durationMilliseconds * 100).rounded() / 100, forKey: .durationMilliseconds)
    }

    /// The value rendered in the check's unit, or `-`.
    public var formattedValue: String { value.map(unit.format) ?? "-" }
}
