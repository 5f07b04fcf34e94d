import Foundation

/// SQL text plus bound parameter values. Interpolated values become `$1`, `$2`… parameters, never
/// text: `"SELECT * FROM games WHERE season = \(season)"` sends `season` separately.
///
/// Identifiers go through `\(identifier: name)` (always quoted); another query goes in whole through
/// `\(fragment: query)` (its parameters renumbered); raw SQL must be spelled `\(unsafeRaw: text)` or
/// ``init(unsafeSQL:binds:)`` so it stands out in review.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var sql: String
    /// Text-format parameter values; nil is SQL NULL.
    public private(set) var binds: [String?]
    /// Where in `sql` (UTF-8 offsets) each `$n` this type wrote stands, so that embedding the query
    /// in another renumbers exactly those and never a `$1` inside a literal or a function body.
    /// Empty for ``init(unsafeSQL:binds:)``, whose placeholders were written by hand.
    private var placeholders: [Placeholder]

    struct Placeholder: Sendable, Hashable {
        /// UTF-8 offset of the `$`.
        var offset: Int
        /// UTF-8 length of `$n`.
        var length: Int
    }

    public init(unsafeSQL sql: String, binds: [String?] = []) {
        self.sql = sql
        self.binds = binds
        self.placeholders = []
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
        self.placeholders = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
        self.placeholders = stringInterpolation.placeholders
    }

    /// The SQL text only; bound values are never printed.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [String?] = []
        var placeholders: [Placeholder] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            appendBind(value.postgresText)
        }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T?) {
            appendBind(value?.postgresText)
        }

        mutating func appendBind(_ text: String?) {
            binds.append(text)
            let placeholder = "$\(binds.count)"
            placeholders.append(Placeholder(offset: sql.utf8.count, length: placeholder.utf8.count))
            sql += placeholder
        }

        /// Appends an always-quoted identifier (`"games"`, `"Odd""Name"`).
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresIdentifier.quote(identifier)
        }

        /// Appends a schema-qualified, quoted name.
        public mutating func appendInterpolation(qualified schema: String, _ name: String) {
            sql += PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(name)
        }

        /// Appends another query: its text, with its parameters renumbered after the ones already
        /// here, and its bound values. Only the placeholders the fragment's own interpolation wrote
        /// are renumbered, so `$1` inside a string literal or a `$$` body is left alone.
        ///
        /// A fragment built with ``PostgresQuery/init(unsafeSQL:binds:)`` and binds can only come first
        /// (before any bound value), because its hand-written placeholders cannot be found reliably.
        public mutating func appendInterpolation(fragment: PostgresQuery) {
            let shift = binds.count
            precondition(
                shift == 0 || fragment.binds.isEmpty || fragment.placeholders.count == fragment.binds.count,
                "cannot renumber the hand-written placeholders of an unsafeSQL query; interpolate its values instead")
            let base = sql.utf8.count
            if shift == 0 || fragment.placeholders.isEmpty {
                sql += fragment.sql
                placeholders += fragment.placeholders.map { Placeholder(offset: base + $0.offset, length: $0.length) }
                binds += fragment.binds
                return
            }
            let bytes = Array(fragment.sql.utf8)
            var cursor = 0
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + fragment.placeholders.count * 2)
            for (index, placeholder) in fragment.placeholders.enumerated() {
                out += bytes[cursor..<placeholder.offset]
                let renumbered = Array("$\(shift + index + 1)".utf8)
                placeholders.append(Placeholder(offset: base + out.count, length: renumbered.count))
                out += renumbered
                cursor = placeholder.offset + placeholder.length
            }
            out += bytes[cursor...]
            sql += String(decoding: out, as: UTF8.self)
            binds += fragment.binds
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
