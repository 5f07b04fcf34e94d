import Foundation

/// SQL text plus bound parameter values. Interpolated values become `$1`, `$2`… parameters, never
/// text: `"SELECT * FROM games WHERE season = \(season)"` sends `season` separately.
///
/// Identifiers go through `\(identifier: name)` (always quoted); raw SQL must be spelled
/// `\(unsafeRaw: text)` or ``init(unsafeSQL:binds:)`` so it stands out in review.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public var sql: String
    /// Text-format parameter values; nil is SQL NULL.
    public var binds: [String?]

    public init(unsafeSQL sql: String, binds: [String?] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    /// The SQL text only; bound values are never printed.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [String?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresText)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T?) {
            binds.append(value?.postgresText)
            sql += "$\(binds.count)"
        }

        /// Appends an always-quoted identifier (`"games"`, `"Odd""Name"`).
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresIdentifier.quote(identifier)
        }

        /// Appends a schema-qualified, quoted name.
        public mutating func appendInterpolation(qualified schema: String, _ name: String) {
            sql += PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(name)
        }

        /// Appends SQL text verbatim. Only for text nfldb generated itself.
        public mutating func appendInterpolation(unsafeRaw text: String) { sql += text }
    }
}

/// Quoting for identifiers (what `quote_ident`/`format('%I')` do, but always quoting).
public enum PostgresIdentifier {
    /// Wraps in double quotes and doubles embedded quotes: `a"b` → `"a""b"`.
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Quotes a literal for contexts where parameters are impossible (DDL such as `ALTER ROLE … SET`).
    /// Doubles single quotes and uses the `E''` form when backslashes are present.
    public static func literal(_ value: String) -> String {
        let doubled = value.replacingOccurrences(of: "'", with: "''")
        if value.contains("\\") {
            return "E'" + doubled.replacingOccurrences(of: "\\", with: "\\\\") + "'"
        }
        return "'" + doubled + "'"
    }
}

/// A value that can be sent as a text-format parameter.
public protocol PostgresEncodable: Sendable {
    var postgresText: String? { get }
}

extension String: PostgresEncodable { public var postgresText: String? { self } }
extension Substring: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int16: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int32: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int64: PostgresEncodable { public var postgresText: String? { String(self) } }
extension UInt32: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Bool: PostgresEncodable { public var postgresText: String? { self ? "t" : "f" } }
extension Double: PostgresEncodable {
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return String(self)
    }
}
extension Decimal: PostgresEncodable { public var postgresText: String? { description } }
extension UUID: PostgresEncodable { public var postgresText: String? { uuidString.lowercased() } }
extension Date: PostgresEncodable {
    /// ISO 8601 with microseconds and an explicit UTC offset, which `timestamptz` accepts.
    public var postgresText: String? { PostgresTimestamp.format(self) }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// A PostgreSQL array literal: `{"a","b",NULL}`.
    public var postgresText: String? {
        let items = map { element -> String in
            guard let text = element.postgresText else { return "NULL" }
            return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{" + items.joined(separator: ",") + "}"
    }
}
