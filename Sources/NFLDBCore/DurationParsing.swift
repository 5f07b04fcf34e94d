import Foundation
extension Duration {
    /// The duration as fractional seconds.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration as fractional milliseconds (for `duration_ms` fields and latency reports).
    public var inMilliseconds: Double { inSeconds * 1000 }
}

/// Renders a number of seconds for people: "250 ms", "45 s", "12 min", "3.5 h", "7.0 d" (negative
/// values as 0). Health messages and backup verify's repository-verification decision use it.
public enum DurationFormat {
    public static func human(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 1 { return String(format: "%.0f ms", s * 1000) }
        if s < 120 { return String(format: "%.0f s", s) }
        if s < 7200 { return String(format: "%.0f min", s / 60) }
        if s < 172_800 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f d", s / 86400)
    }
}

/// Parses the human durations used in config files, flags and migration directives:
/// `500ms`, `5s`, `10min`, `2h`, `400d`, or a bare number of seconds.
public enum DurationParser {
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !trimmed.isEmpty else { return nil }
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value >= 0 else { return nil }
        let seconds: Double
        switch unit {
        case "ms": seconds = value / 1000
        case "", "s", "sec", "secs", "second", "seconds": seconds = value
        case "m", "min", "mins", "minute", "minutes": seconds = value * 60
        case "h", "hour", "hours": seconds = value * 3600
        case "d", "day", "days": seconds = value * 86400
        default: return nil
        }
        // Int64 milliseconds would overflow (a trap, not an error).
        guard seconds.isFinite, seconds <= Self.longest else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The longest duration that can be held (Int64 milliseconds), in seconds: ~285 million years.
    /// Commands that compare with real ages (`audit prune`) have their own, smaller limits.
    public static let longest: Double = 9.0e15

    /// Milliseconds in a duration, for PostgreSQL settings such as `lock_timeout`.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The largest value PostgreSQL takes for a millisecond setting (`lock_timeout`,
    /// `statement_timeout`): INT_MAX ms, about 24.8 days. A larger one fails at SET with 22023.
    public static let postgresTimeoutLimit: Duration = .milliseconds(2_147_483_647)

    /// Why `duration` cannot be a PostgreSQL timeout (nil when it can), for error messages.
    public static func postgresTimeoutProblem(_ duration: Duration) -> String? {
        duration > postgresTimeoutLimit
            ? "is above PostgreSQL's largest timeout, 2147483647ms (about 24.8 days)" : nil
    }

    /// Renders a duration the way PostgreSQL settings accept it (`5000ms`).
    public static func postgresSetting(_ duration: Duration) -> String {
        "\(milliseconds(duration))ms"
    }
}

