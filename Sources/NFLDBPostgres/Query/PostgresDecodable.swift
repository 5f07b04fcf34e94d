import Foundation

/// Why a text value could not be decoded (wrapped into a ``PostgresError`` naming the column).
public struct PostgresDecodingProblem: Error, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// A Swift type that can be built from a column's text-format value.
public protocol PostgresDecodable: Sendable {
    init(postgresText text: String, typeOID: UInt32) throws
    /// The value SQL NULL decodes to; nil means NULL is an error for this type.
    static var postgresNull: Self? { get }
}

extension PostgresDecodable {
    public static var postgresNull: Self? { nil }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        self = .some(try Wrapped(postgresText: text, typeOID: typeOID))
    }

    public static var postgresNull: Wrapped?? { .some(nil) }
}

extension String: PostgresDecodable {
    /// Any column decodes as its text representation (json/jsonb arrive as raw JSON text).
    public init(postgresText text: String, typeOID: UInt32) throws { self = text }
}

extension Bool: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw PostgresDecodingProblem("'\(text)' is not a boolean")
        }
    }
}

extension Int: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int(text) else { throw PostgresDecodingProblem("'\(text)' is not an integer") }
        self = value
    }
}

extension Int64: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int64(text) else { throw PostgresDecodingProblem("'\(text)' is not a bigint") }
        self = value
    }
}

extension Int32: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int32(text) else { throw PostgresDecodingProblem("'\(text)' does not fit in Int32") }
        self = value
    }
}

extension UInt64: PostgresDecodable {
    /// For values such as pgBackRest's `system-id` or LSN arithmetic that exceed `Int64`.
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = UInt64(text) else { throw PostgresDecodingProblem("'\(text)' is not an unsigned 64-bit integer") }
        self = value
    }
}

extension Double: PostgresDecodable {
    /// Decodes float4/float8/numeric/integers, including `NaN` and `±Infinity`.
    public init(postgresText text: String, typeOID: UInt32) throws {
        switch text {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(text) else { throw PostgresDecodingProblem("'\(text)' is not a number") }
            self = value
        }
    }
}

extension Decimal: PostgresDecodable {
    /// Exact decoding of `numeric`.
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw PostgresDecodingProblem("'\(text)' is not a decimal number")
        }
        self = value
    }
}

extension UUID: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = UUID(uuidString: text) else { throw PostgresDecodingProblem("'\(text)' is not a UUID") }
        self = value
    }
}

extension Date: PostgresDecodable {
    /// Decodes `timestamptz` (any offset), `timestamp` (taken as UTC) and `date` (midnight UTC).
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let date = PostgresTimestamp.parse(text) else {
            throw PostgresDecodingProblem("'\(text)' is not an ISO timestamp (is DateStyle ISO?)")
        }
        self = date
    }
}

/// A calendar date as PostgreSQL's `date` type holds it, without a time zone.
public struct PostgresDate: Sendable, Hashable, Comparable, CustomStringConvertible, PostgresDecodable, PostgresEncodable {
    public let year: Int
    public let month: Int
    public let day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    public init(postgresText text: String, typeOID: UInt32) throws {
        let parts = text.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2].prefix(2)) else {
            throw PostgresDecodingProblem("'\(text)' is not a YYYY-MM-DD date")
        }
        self.init(year: y, month: m, day: d)
    }

    public var description: String {
        String(format: "%04d-%02d-%02d", year, month, day)
    }

    public var postgresText: String? { description }

    public static func < (lhs: PostgresDate, rhs: PostgresDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }
}

/// A json/jsonb value kept as its raw text; decode it with `JSONDecoder` where needed.
public struct PostgresJSON: Sendable, Hashable, PostgresDecodable, PostgresEncodable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public init(postgresText text: String, typeOID: UInt32) throws { self.rawValue = text }

    public var postgresText: String? { rawValue }
    public var description: String { rawValue }

    /// Decodes the JSON text into a `Decodable` type.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(rawValue.utf8))
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    /// Decodes a one-dimensional array literal (`{a,"b c",NULL}`).
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let items = PostgresArrayParser.parse(text) else {
            throw PostgresDecodingProblem("'\(text)' is not a one-dimensional array literal")
        }
        self = try items.map { item in
            guard let item else {
                if let null = Element.postgresNull { return null }
                throw PostgresDecodingProblem("array contains NULL; decode as [\(Element.self)?]")
            }
            return try Element(postgresText: item, typeOID: 0)
        }
    }
}

enum PostgresArrayParser {
    static func parse(_ text: String) -> [String?]? {
        var chars = Substring(text)
        if chars.first == "[", let eq = chars.firstIndex(of: "=") { chars = chars[chars.index(after: eq)...] }
        guard chars.first == "{", chars.last == "}" else { return nil }
        chars = chars.dropFirst().dropLast()
        if chars.isEmpty { return [] }
        var items: [String?] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var iterator = chars.makeIterator()
        while let ch = iterator.next() {
            if quoted {
                if ch == "\\" { if let next = iterator.next() { current.append(next) } }
                else if ch == "\"" { quoted = false }
                else { current.append(ch) }
            } else if ch == "\"" {
                quoted = true
                wasQuoted = true
            } else if ch == "," {
                items.append(!wasQuoted && current == "NULL" ? nil : current)
                current = ""
                wasQuoted = false
            } else if ch == "{" {
                return nil
            } else {
                current.append(ch)
            }
        }
        items.append(!wasQuoted && current == "NULL" ? nil : current)
        return items
    }
}

/// Text formats of `timestamptz` under `DateStyle = ISO`.
public enum PostgresTimestamp {
    /// Parses `2024-09-05 20:20:00.123456+00`, `…+05:30`, `…-03:30:15`, `2024-09-05T20:20:00Z`,
    /// a `timestamp` without offset (UTC) or a bare date (midnight UTC).
    public static func parse(_ text: String) -> Date? {
        let utf8 = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= utf8.count else { return nil }
            var value = 0
            for i in from..<(from + count) {
                let c = utf8[i]
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            return value
        }
        guard utf8.count >= 10, let year = number(0, 4), utf8[4] == 45, let month = number(5, 2), utf8[7] == 45,
              let day = number(8, 2)
        else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0
        var i = 10
        if i < utf8.count, utf8[i] == 32 || utf8[i] == 84 {
            guard let h = number(i + 1, 2), utf8.count > i + 3, utf8[i + 3] == 58, let m = number(i + 4, 2),
                  utf8.count > i + 6, utf8[i + 6] == 58, let s = number(i + 7, 2)
            else { return nil }
            hour = h; minute = m; second = s
            i += 9
            if i < utf8.count, utf8[i] == 46 {
                var j = i + 1
                var digits = ""
                while j < utf8.count, utf8[j] >= 48, utf8[j] <= 57 { digits.append(Character(UnicodeScalar(utf8[j]))); j += 1 }
                fraction = Double("0." + digits) ?? 0
                i = j
            }
            if i < utf8.count {
                if utf8[i] == 90 { i += 1 }
                else if utf8[i] == 43 || utf8[i] == 45 {
                    let sign = utf8[i] == 45 ? -1 : 1
                    guard let oh = number(i + 1, 2) else { return nil }
                    var om = 0, os = 0
                    var k = i + 3
                    if k < utf8.count, utf8[k] == 58, let value = number(k + 1, 2) { om = value; k += 3 }
                    if k < utf8.count, utf8[k] == 58, let value = number(k + 1, 2) { os = value; k += 3 }
                    offsetSeconds = sign * (oh * 3600 + om * 60 + os)
                    i = k
                }
            }
        }
        if i < utf8.count, text.hasSuffix(" BC") { return nil }
        guard i == utf8.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Double(days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds) + fraction
        return Date(timeIntervalSince1970: seconds)
    }

    /// `2024-09-05 20:20:00.123456+00:00`.
    public static func format(_ date: Date) -> String {
        let total = date.timeIntervalSince1970
        var seconds = Int(total.rounded(.down))
        var micros = Int(((total - Double(seconds)) * 1_000_000).rounded())
        if micros == 1_000_000 { seconds += 1; micros = 0 }
        let days = Int((Double(seconds) / 86400).rounded(.down))
        let secondOfDay = seconds - days * 86400
        let (y, m, d) = civilFromDays(days)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00:00", y, m, d, secondOfDay / 3600, (secondOfDay / 60) % 60, secondOfDay % 60, micros)
    }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d)
    }
}
