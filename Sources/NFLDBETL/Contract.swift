import Foundation

/// A parsed field value. Empty fields (quoted or not) are `.null`.
public enum FieldValue: Sendable, Equatable {
    case null
    case int(Int)
    case number(Double)
    case text(String)
    case bool(Bool)
    case date(year: Int, month: Int, day: Int)
    case time(hour: Int, minute: Int)

    public var int: Int? { if case .int(let v) = self { return v }; return nil }
    public var number: Double? {
        switch self {
        case .number(let v): return v
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    public var text: String? { if case .text(let v) = self { return v }; return nil }
    public var isNull: Bool { self == .null }
}

/// Column types of the contracts, matching the PostgreSQL column they load into.
public enum ColumnType: Sendable, Equatable, CustomStringConvertible {
    case text
    case smallint
    case integer
    /// numeric(precision, scale)
    case numeric(Int, Int)
    /// `YYYY-MM-DD`
    case date
    /// `HH:MM` or `HH:MM:SS`
    case time
    /// `0`/`1` (nflverse's booleans)
    case boolean01

    public var description: String {
        switch self {
        case .text: return "text"
        case .smallint: return "smallint"
        case .integer: return "integer"
        case .numeric(let p, let s): return "numeric(\(p),\(s))"
        case .date: return "date"
        case .time: return "time"
        case .boolean01: return "boolean (0/1)"
        }
    }
}

/// How bad a failed check is: `error` rejects the row, `warning` is reported only.
public enum Severity: String, Sendable, Codable { case error, warning, info }

/// A check on one non-null value: `in_range(1999, 2100)`, `isin([...])`, `str_matches(...)`, or a
/// named custom predicate.
public struct ValueCheck: Sendable {
    public let name: String
    public let severity: Severity
    public let test: @Sendable (FieldValue) -> Bool

    public init(_ name: String, severity: Severity = .error, _ test: @escaping @Sendable (FieldValue) -> Bool) {
        self.name = name
        self.severity = severity
        self.test = test
    }

    public static func inRange(_ low: Double, _ high: Double, severity: Severity = .error) -> ValueCheck {
        ValueCheck("in_range(\(format(low)), \(format(high)))", severity: severity) { value in
            guard let v = value.number else { return true }
            return v >= low && v <= high
        }
    }

    /// A range on a converted value, e.g. °F → °C; the name shows the unit and the conversion.
    public static func inRange(
        _ low: Double, _ high: Double, unit: String, from sourceUnit: String, severity: Severity = .error,
        convert: @escaping @Sendable (Double) -> Double
    ) -> ValueCheck {
        ValueCheck("in_range(\(format(low)) \(unit), \(format(high)) \(unit)) after \(sourceUnit)→\(unit)", severity: severity) { value in
            guard let v = value.number else { return true }
            let converted = convert(v)
            return converted >= low - 1e-9 && converted <= high + 1e-9
        }
    }

    public static func isIn(_ values: [String], severity: Severity = .error) -> ValueCheck {
        let set = Set(values)
        return ValueCheck("isin([\(values.joined(separator: ", "))])", severity: severity) { value in
            guard let v = value.text else { return true }
            return set.contains(v)
        }
    }

    public static func matches(_ pattern: String, severity: Severity = .error) -> ValueCheck {
        let compiled = Pattern(pattern)
        return ValueCheck("str_matches('\(pattern)')", severity: severity) { value in
            guard let v = value.text else { return true }
            return compiled.matches(v)
        }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// One column of a contract.
public struct ColumnSpec: Sendable {
    public let name: String
    public let type: ColumnType
    public let nullable: Bool
    public let unique: Bool
    public let checks: [ValueCheck]

    public init(_ name: String, _ type: ColumnType, nullable: Bool = true, unique: Bool = false, checks: [ValueCheck] = []) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.unique = unique
        self.checks = checks
    }
}

/// The typed values of one row, by contract column.
public struct Row: Sendable {
    let contract: ContractIndex
    public var values: [FieldValue]

    public subscript(_ name: String) -> FieldValue {
        guard let index = contract.index[name] else { preconditionFailure("contract has no column \(name)") }
        return values[index]
    }

    /// By contract position (row checks resolve their columns once; see `GamesContract.Column`).
    public subscript(_ index: Int) -> FieldValue { values[index] }
}

/// Column name → position, shared by a contract's rows.
final class ContractIndex: Sendable {
    let index: [String: Int]
    init(_ columns: [ColumnSpec]) {
        var map: [String: Int] = [:]
        for (i, column) in columns.enumerated() { map[column.name] = i }
        index = map
    }
}

/// A check across the columns of one row (`result = home_score - away_score`).
public struct RowCheck: Sendable {
    public let name: String
    public let columns: [String]
    public let severity: Severity
    public let test: @Sendable (Row) -> Bool

    public init(_ name: String, columns: [String], severity: Severity = .error, _ test: @escaping @Sendable (Row) -> Bool) {
        self.name = name
        self.columns = columns
        self.severity = severity
        self.test = test
    }
}

/// A data contract for one target table: the columns (in the table's order), their types and
/// checks, and the row checks. The natural key is the first unique column.
public struct DataContract: Sendable {
    public let target: String
    public let columns: [ColumnSpec]
    public let rowChecks: [RowCheck]
    let contractIndex: ContractIndex

    public init(target: String, columns: [ColumnSpec], rowChecks: [RowCheck]) {
        self.target = target
        self.columns = columns
        self.rowChecks = rowChecks
        self.contractIndex = ContractIndex(columns)
    }

    public var keyColumn: Int? { columns.firstIndex { $0.unique } }

    public func column(_ name: String) -> Int? { contractIndex.index[name] }
}

/// One failed check on one row, in pandera's long format.
public struct ValidationFailure: Sendable, Codable, Equatable {
    /// 1-based data row (the header is row 0).
    public var row: Int
    /// Physical input line where the row starts.
    public var line: Int
    public var key: String?
    /// nil for row-level and file-level checks that span columns.
    public var column: String?
    public var check: String
    public var value: String?
    public var severity: Severity
}

/// A minimal anchored pattern matcher for the contracts' ASCII formats: literals, `[...]` classes
/// with ranges, and the quantifiers `{n}`, `{n,m}`, `+`, `*`, `?`. Much faster per value than
/// NSRegularExpression, and the contract keeps the readable regex text.
public struct Pattern: Sendable {
    struct Atom: Sendable {
        var allowed: [Bool]
        var min: Int
        var max: Int
    }
    let atoms: [Atom]
    public let source: String

    public init(_ source: String) {
        self.source = source
        var atoms: [Atom] = []
        let chars = Array(source.utf8)
        var i = 0
        if i < chars.count && chars[i] == UInt8(ascii: "^") { i += 1 }
        while i < chars.count {
            var allowed = [Bool](repeating: false, count: 256)
            let c = chars[i]
            if c == UInt8(ascii: "$") && i == chars.count - 1 { break }
            if c == UInt8(ascii: "[") {
                i += 1
                while i < chars.count && chars[i] != UInt8(ascii: "]") {
                    if i + 2 < chars.count && chars[i + 1] == UInt8(ascii: "-") && chars[i + 2] != UInt8(ascii: "]") {
                        for b in chars[i]...chars[i + 2] { allowed[Int(b)] = true }
                        i += 3
                    } else {
                        allowed[Int(chars[i])] = true
                        i += 1
                    }
                }
                i += 1
            } else {
                if c == UInt8(ascii: "\\") && i + 1 < chars.count { i += 1 }
                allowed[Int(chars[i])] = true
                i += 1
            }
            var low = 1, high = 1
            if i < chars.count {
                switch chars[i] {
                case UInt8(ascii: "+"): low = 1; high = Int.max; i += 1
                case UInt8(ascii: "*"): low = 0; high = Int.max; i += 1
                case UInt8(ascii: "?"): low = 0; high = 1; i += 1
                case UInt8(ascii: "{"):
                    var j = i + 1
                    var text = ""
                    while j < chars.count && chars[j] != UInt8(ascii: "}") { text.append(Character(UnicodeScalar(chars[j]))); j += 1 }
                    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                    low = Int(parts[0]) ?? 1
                    high = parts.count > 1 ? (Int(parts[1]) ?? Int.max) : low
                    i = j + 1
                default: break
                }
            }
            atoms.append(Atom(allowed: allowed, min: low, max: high))
        }
        self.atoms = atoms
    }

    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { match(atomIndex: 0, $0, 0) }
    }

    private func match(atomIndex: Int, _ bytes: UnsafeBufferPointer<UInt8>, _ position: Int) -> Bool {
        if atomIndex == atoms.count { return position == bytes.count }
        let atom = atoms[atomIndex]
        var count = 0
        var p = position
        while count < atom.max && p < bytes.count && atom.allowed[Int(bytes[p])] { count += 1; p += 1 }
        if count < atom.min { return false }
        // Greedy with backtracking.
        while true {
            if match(atomIndex: atomIndex + 1, bytes, position + count) { return true }
            if count == atom.min { return false }
            count -= 1
        }
    }
}
