import Foundation
import NFLDBCore

/// The outcome of one check, in the monitoring-plugin convention (Nagios, Icinga, check_postgres).
///
/// The raw value is the plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. "Worst" is by
/// ``severity``, not by raw value: CRITICAL > UNKNOWN > WARNING > OK, so a run with one CRITICAL
/// check and one check that could not run still exits 2, and a check that could not run is never
/// hidden behind a WARNING.
public enum HealthStatus: Int, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case ok = 0
    case warning = 1
    case critical = 2
    case unknown = 3

    public var description: String {
        switch self {
        case .ok: return "OK"
        case .warning: return "WARNING"
        case .critical: return "CRITICAL"
        case .unknown: return "UNKNOWN"
        }
    }

    /// Ordering used to pick the worst status: OK 0, WARNING 1, UNKNOWN 2, CRITICAL 3.
    public var severity: Int {
        switch self {
        case .ok: return 0
        case .warning: return 1
        case .unknown: return 2
        case .critical: return 3
        }
    }

    /// The process exit code (`0`…`3`).
    public var exitCode: Int32 { Int32(rawValue) }
    /// The monitoring-plugin exit status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    public var exitStatus: ExitStatus { ExitStatus(exitCode) }

    /// The worse of two statuses by ``severity``.
    public func worse(_ other: HealthStatus) -> HealthStatus { other.severity > severity ? other : self }

    /// The worst status of a list (OK for an empty list).
    public static func worst(_ statuses: some Sequence<HealthStatus>) -> HealthStatus {
        statuses.reduce(.ok) { $0.worse($1) }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let status = HealthStatus.allCases.first(where: { $0.description == text.uppercased() }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown status \(text)"))
        }
        self = status
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The unit of a check's value and thresholds; thresholds in `nfldb.yaml` are plain numbers in it.
public enum HealthUnit: String, Sendable, Hashable, Codable {
    case percent
    case seconds
    case milliseconds
    case bytes
    case count
    case days

    /// Unit of measure in Nagios perfdata.
    public var perfdataUOM: String {
        switch self {
        case .percent: return "%"
        case .seconds: return "s"
        case .milliseconds: return "ms"
        case .bytes: return "B"
        case .count: return ""
        case .days: return ""
        }
    }

    /// A human rendering of a value in this unit (`87.5%`, `12 min`, `1.2 GB`).
    public func format(_ value: Double) -> String {
        switch self {
        case .percent: return HealthFormat.percent(value)
        case .seconds: return HealthFormat.duration(value)
        case .milliseconds: return HealthFormat.milliseconds(value)
        case .bytes: return HealthFormat.bytes(value)
        case .count: return HealthFormat.number(value)
        case .days: return HealthFormat.number(value) + (value == 1 ? " day" : " days")
        }
    }
}

/// Whether a larger value is worse (lag, age, size) or a smaller one (cache hit ratio).
public enum ThresholdDirection: String, Sendable, Hashable, Codable {
    case higherIsWorse = "higher_is_worse"
    case lowerIsWorse = "lower_is_worse"
}

/// A check's warning and critical thresholds; either may be absent (never reached).
public struct Thresholds: Sendable, Hashable, Codable {
    public var warning: Double?
    public var critical: Double?
    public var direction: ThresholdDirection

    public init(warning: Double?, critical: Double?, direction: ThresholdDirection = .higherIsWorse) {
        self.warning = warning
        self.critical = critical
        self.direction = direction
    }

    enum CodingKeys: String, CodingKey { case warning, critical, direction }

    /// Always writes `warning` and `critical` (null when a level is not set): a stable JSON schema.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(warning, forKey: .warning)
        try container.encode(critical, forKey: .critical)
        try container.encode(direction, forKey: .direction)
    }

    /// OK, WARNING or CRITICAL for a value; critical is checked first.
    public func status(for value: Double) -> HealthStatus {
        func reached(_ limit: Double?) -> Bool {
            guard let limit else { return false }
            return direction == .higherIsWorse ? value >= limit : value < limit
        }
        if reached(critical) { return .critical }
        if reached(warning) { return .warning }
        return .ok
    }
}

/// Human renderings shared by probes and outputs.
public enum HealthFormat {
    public static func bytes(_ value: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var v = value
        var index = 0
        while abs(v) >= 1024 && index < units.count - 1 {
            v /= 1024
            index += 1
        }
        if index == 0 { return "\(Int(v)) B" }
        return String(format: v >= 100 ? "%.0f %@" : "%.1f %@", v, units[index])
    }

    public static func duration(_ seconds: Double) -> String { DurationFormat.human(seconds) }

    public static func milliseconds(_ ms: Double) -> String {
        ms < 1000 ? String(format: "%.1f ms", ms) : duration(ms / 1000)
    }

    public static func percent(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.0f%%", value) : String(format: "%.1f%%", value)
    }

    public static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.2f", value)
    }

    /// `value` for perfdata/JSON: integers without a fraction, otherwise up to 3 decimals.
    public static func plain(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// A statement clipped to one line of at most `limit` characters.
    public static func clip(_ text: String?, _ limit: Int = 120) -> String {
        guard let text else { return "" }
        let oneLine = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return oneLine.count > limit ? String(oneLine.prefix(limit - 1)) + "…" : oneLine
    }
}
