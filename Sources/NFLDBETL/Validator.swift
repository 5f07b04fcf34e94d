import Foundation
import NFLDBCore

/// A problem with the input as a whole (not one row): the run stops and nothing is loaded.
public struct ETLInputError: NFLDBError, Sendable {
    public let source: String
    public let summary: String
    public let hint: String
    public let exitStatus: ExitStatus
    /// The same input would fail the same way (a record over the parser's limits): a queued load is
    /// not retried.
    public var permanent = false

    public init(source: String, _ summary: String, hint: String, exitStatus: ExitStatus = .failure, permanent: Bool = false) {
        self.source = source
        self.summary = summary
        self.hint = hint
        self.exitStatus = exitStatus
        self.permanent = permanent
    }

    public var diagnostic: Diagnostic {
        Diagnostic("\(source): \(summary)", hint: hint)
    }
}

/// Per-run data-quality metrics (Soda/GX style): counts, not samples.
public struct QualityMetrics: Sendable, Codable, Equatable {
    public var rowCount = 0
    public var validRows = 0
    public var rejectedRows = 0
    public var warningRows = 0
    public var nullCounts: [String: Int] = [:]
    public var duplicateKeys = 0
    public var duplicateRows = 0
    /// `column|check` (or `|check` for row checks) → failing rows.
    public var violations: [String: Int] = [:]
    public var extraColumns: [String] = []
    public var blankLines = 0
}

/// Lazily validates records against a contract: every failure of every row is collected (row,
/// key, column, check, value), valid rows are handed on as COPY text, invalid rows as rejects.
public struct RowValidator {
    public let contract: DataContract
    public let source: String
    public let today: (year: Int, month: Int, day: Int)
    /// Source column position for each contract column.
    private var sourcePosition: [Int] = []
    private var sourceWidth = 0
    /// The contract's columns as flat arrays, resolved once (the per-row loop reads no ColumnSpec
    /// and hashes no column name).
    private let names: [String]
    private let types: [ColumnType]
    private let nullable: [Bool]
    private let checks: [[ValueCheck]]
    /// Contract column positions each row check reads.
    private let rowCheckColumns: [[Int]]
    /// Null count per contract column (folded into `metrics.nullCounts` on read).
    private var nullCountByColumn: [Int]
    /// Scratch: which contract columns failed their type or nullability in the current row.
    private var columnFailed: [Bool]
    private var counts = QualityMetrics()
    /// Whether the header names exactly the contract's columns (any order, no extra one), so a
    /// valid row's raw CSV line can be sent to `COPY … (FORMAT csv)` as it is.
    public private(set) var headerIsContractPermutation = false
    /// The header's column names in input order (trimmed).
    public private(set) var headerNames: [String] = []

    /// Rows rejected so far (cheaper than ``metrics``, which folds the null counts).
    public var rejectedRows: Int { counts.rejectedRows }

    public var metrics: QualityMetrics {
        var m = counts
        for (c, n) in nullCountByColumn.enumerated() where n > 0 { m.nullCounts[names[c]] = n }
        return m
    }
    public private(set) var failures: [ValidationFailure] = []
    public private(set) var failureCount = 0
    public let failureLimit: Int
    private var seenKeys: [String: Int] = [:]
    /// Keys that occur more than once, with the row of their first occurrence.
    public private(set) var duplicatedKeys: [String: Int] = [:]
    private var headerSeen = false

    public init(contract: DataContract, source: String, failureLimit: Int = 100_000, now: Date = Date()) {
        self.contract = contract
        self.source = source
        self.failureLimit = failureLimit
        names = contract.columns.map(\.name)
        types = contract.columns.map(\.type)
        nullable = contract.columns.map(\.nullable)
        checks = contract.columns.map(\.checks)
        rowCheckColumns = contract.rowChecks.map { check in check.columns.map { contract.column($0)! } }
        nullCountByColumn = [Int](repeating: 0, count: contract.columns.count)
        columnFailed = [Bool](repeating: false, count: contract.columns.count)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: now)
        today = (parts.year ?? 1970, parts.month ?? 1, parts.day ?? 1)
    }

    /// Maps the header by name. A missing contract column is a file-level error; an extra column
    /// is reported and ignored.
    public mutating func header(_ record: borrowing CSVRecord) throws {
        let names = record.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        var position: [String: Int] = [:]
        for (i, name) in names.enumerated() where position[name] == nil { position[name] = i }
        let duplicates = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        if !duplicates.isEmpty {
            throw ETLInputError(source: source, "header names \(duplicates.joined(separator: ", ")) more than once",
                                hint: "Each column must appear once; check that this is nflverse's games.csv.", permanent: true)
        }
        let missing = contract.columns.map(\.name).filter { position[$0] == nil }
        if !missing.isEmpty {
            throw ETLInputError(
                source: source,
                "required column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) missing from the header (line 1 has \(names.count) columns)",
                hint: "The \(contract.target) contract needs all of: \(contract.columns.map(\.name).joined(separator: ",")). Check that the source is the right file; nothing was loaded.",
                permanent: true)
        }
        sourcePosition = contract.columns.map { position[$0.name]! }
        sourceWidth = names.count
        let known = Set(contract.columns.map(\.name))
        counts.extraColumns = names.filter { !known.contains($0) }
        headerNames = names
        headerIsContractPermutation = names.count == contract.columns.count && counts.extraColumns.isEmpty
        headerSeen = true
    }

    public enum Outcome {
        /// Valid: the row in COPY text format (tab-separated, `\N` for NULL, contract column order).
        case valid(key: String?)
        case rejected(key: String?, failures: [ValidationFailure])
    }

    /// How a valid row is handed on.
    public enum CopyEncoding: Sendable {
        /// Not at all (`etl validate`).
        case none
        /// COPY text format in contract column order (tab-separated, `\N` for NULL).
        case text
        /// The row's raw CSV bytes as they came (only when the header is a permutation of the
        /// contract's columns): for `COPY … (FORMAT csv, FORCE_NULL (…))` with the header's column order.
        case rawCSV
    }

    /// Validates one data row (`rowNumber` 1-based). A valid row is appended to `copyLine` in
    /// `encoding`; the caller appends the row number columns if it stages them.
    public mutating func validate(_ record: borrowing CSVRecord, rowNumber: Int, copyLine: inout [UInt8], encoding: CopyEncoding = .text) -> Outcome {
        counts.rowCount += 1
        var rowFailures: [ValidationFailure] = []
        let keyIndex = contract.keyColumn
        var key: String?
        if let keyIndex, sourcePosition[keyIndex] < record.count, !record.isEmpty(sourcePosition[keyIndex]) {
            key = record.string(sourcePosition[keyIndex])
        }
        func fail(_ column: String?, _ check: String, _ value: String?, _ severity: Severity = .error) {
            rowFailures.append(ValidationFailure(row: rowNumber, line: record.line, key: key, column: column, check: check, value: value, severity: severity))
        }
        if let syntax = record.syntaxError {
            fail(nil, "csv_syntax", syntax)
        }
        if record.count != sourceWidth {
            fail(nil, "field_count(\(sourceWidth))", "\(record.count) fields")
            return finish(rowFailures, key: key, rowNumber: rowNumber)
        }
        let width = types.count
        var values = [FieldValue](repeating: .null, count: width)
        var anyColumnFailed = false
        // PostgreSQL refuses a NUL byte or invalid UTF-8 in text (the whole COPY would fail):
        // such a text value is this row's failure. One pass over the row finds none in ASCII rows.
        let mayHaveBadText = Self.hasNULOrNonASCII(record)
        for c in 0..<width {
            let p = sourcePosition[c]
            if mayHaveBadText && types[c] == .text, let problem = Self.textProblem(record, p) {
                fail(names[c], "encoding(UTF-8 without NUL)", "\(problem): \(TextSafety.escaped(record.string(p)))")
                columnFailed[c] = true
                anyColumnFailed = true
                continue
            }
            if record.isEmpty(p) {
                nullCountByColumn[c] += 1
                if !nullable[c] {
                    fail(names[c], "not_nullable", nil)
                    columnFailed[c] = true
                    anyColumnFailed = true
                }
                continue
            }
            guard let value = Self.parse(record, p, types[c]) else {
                fail(names[c], "dtype('\(types[c])')", record.string(p))
                columnFailed[c] = true
                anyColumnFailed = true
                continue
            }
            values[c] = value
            for check in checks[c] where !check.test(value) {
                fail(names[c], check.name, record.string(p), check.severity)
            }
        }
        let typed = Row(contract: contract.contractIndex, values: values)
        for (i, check) in contract.rowChecks.enumerated() {
            // A row check over a column that already failed its type or nullability is skipped,
            // so one bad value is reported once (pandera's behaviour for nulls).
            if anyColumnFailed && rowCheckColumns[i].contains(where: { columnFailed[$0] }) { continue }
            if !check.test(typed) {
                let shown = rowCheckColumns[i].map { "\(names[$0])=\(Self.display(typed[$0]))" }.joined(separator: ", ")
                fail(nil, check.name, shown, check.severity)
            }
        }
        if anyColumnFailed {
            for c in 0..<width { columnFailed[c] = false }
        }
        if let key, let keyIndex, contract.columns[keyIndex].unique {
            if let first = seenKeys[key] {
                if duplicatedKeys[key] == nil {
                    duplicatedKeys[key] = first
                    counts.duplicateKeys += 1
                    counts.duplicateRows += 1
                }
                counts.duplicateRows += 1
                fail(names[keyIndex], "field_uniqueness", "\(key) (first at row \(first))")
            } else {
                seenKeys[key] = rowNumber
            }
        }
        let outcome = finish(rowFailures, key: key, rowNumber: rowNumber)
        if case .valid = outcome {
            switch encoding {
            case .none: break
            case .text: Self.appendCopyText(record, positions: sourcePosition, to: &copyLine)
            case .rawCSV: copyLine.append(contentsOf: record.raw)
            }
        }
        return outcome
    }

    /// The text of contract column `column` in a record (after ``header(_:)``).
    public func string(_ record: borrowing CSVRecord, column: Int) -> String {
        record.string(sourcePosition[column])
    }

    private mutating func finish(_ rowFailures: [ValidationFailure], key: String?, rowNumber: Int) -> Outcome {
        var rejected = false
        var warned = false
        for failure in rowFailures {
            counts.violations["\(failure.column ?? "")|\(failure.check)", default: 0] += 1
            if failure.severity == .error { rejected = true } else { warned = true }
            failureCount += 1
            if failures.count < failureLimit { failures.append(failure) }
        }
        if warned { counts.warningRows += 1 }
        if rejected {
            counts.rejectedRows += 1
            return .rejected(key: key, failures: rowFailures)
        }
        counts.validRows += 1
        return .valid(key: key)
    }

    /// Marks the first occurrences of duplicated keys as rejected too (found only when a later
    /// duplicate arrived): every member of a duplicate group is refused.
    public mutating func rejectFirstOccurrences(_ rows: [(row: Int, line: Int, key: String)]) {
        for entry in rows {
            let failure = ValidationFailure(row: entry.row, line: entry.line, key: entry.key, column: contract.keyColumn.map { contract.columns[$0].name },
                                            check: "field_uniqueness", value: "\(entry.key) (duplicated later in the input)", severity: .error)
            counts.violations["\(failure.column ?? "")|field_uniqueness", default: 0] += 1
            failureCount += 1
            if failures.count < failureLimit { failures.append(failure) }
            counts.rejectedRows += 1
            counts.validRows -= 1
        }
    }

    mutating func countBlankLine() { counts.blankLines += 1 }

    // MARK: parsing

    static func parse(_ record: borrowing CSVRecord, _ index: Int, _ type: ColumnType) -> FieldValue? {
        let r = record.range(index)
        return record.bytes.withUnsafeBufferPointer { all -> FieldValue? in
            let b = UnsafeBufferPointer(rebasing: all[r])
            switch type {
            case .text:
                return .text(String(decoding: b, as: UTF8.self))
            case .smallint:
                guard let v = parseInt(b), v >= -32768, v <= 32767 else { return nil }
                return .int(v)
            case .integer:
                guard let v = parseInt(b), v >= -2_147_483_648, v <= 2_147_483_647 else { return nil }
                return .int(v)
            case .numeric(let precision, let scale):
                guard let v = parseDecimal(b, precision: precision, scale: scale) else { return nil }
                return .number(v)
            case .date:
                // Digits only in each part (no sign: PostgreSQL refuses `2023-+9-10`); year 0 does not exist.
                guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D,
                      let y = parseDigits(UnsafeBufferPointer(rebasing: b[0..<4])),
                      let m = parseDigits(UnsafeBufferPointer(rebasing: b[5..<7])),
                      let d = parseDigits(UnsafeBufferPointer(rebasing: b[8..<10])),
                      y >= 1, m >= 1, m <= 12, d >= 1, d <= daysInMonth(y, m) else { return nil }
                return .date(year: y, month: m, day: d)
            case .time:
                guard b.count == 5 || b.count == 8, b[2] == 0x3A,
                      let h = parseDigits(UnsafeBufferPointer(rebasing: b[0..<2])),
                      let mi = parseDigits(UnsafeBufferPointer(rebasing: b[3..<5])),
                      h >= 0, h <= 23, mi >= 0, mi <= 59 else { return nil }
                if b.count == 8 {
                    guard b[5] == 0x3A, let s = parseDigits(UnsafeBufferPointer(rebasing: b[6..<8])), s >= 0, s <= 59 else { return nil }
                }
                return .time(hour: h, minute: mi)
            case .boolean01:
                guard b.count == 1 else { return nil }
                if b[0] == 0x30 { return .bool(false) }
                if b[0] == 0x31 { return .bool(true) }
                return nil
            }
        }
    }

    static func parseInt(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !b.isEmpty, b.count <= 18 else { return nil }
        var i = 0
        var negative = false
        if b[0] == 0x2D || b[0] == 0x2B { negative = b[0] == 0x2D; i = 1 }
        guard i < b.count else { return nil }
        var v = 0
        while i < b.count {
            let d = Int(b[i]) - 48
            guard d >= 0 && d <= 9 else { return nil }
            v = v * 10 + d
            i += 1
        }
        return negative ? -v : v
    }

    /// Unsigned decimal digits only (date and time parts).
    static func parseDigits(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !b.isEmpty else { return nil }
        var v = 0
        for byte in b {
            let d = Int(byte) - 48
            guard d >= 0 && d <= 9 else { return nil }
            v = v * 10 + d
        }
        return v
    }

    /// Whether the record's field bytes hold a NUL or any byte ≥ 0x80 (then its text fields are
    /// checked one by one).
    static func hasNULOrNonASCII(_ record: borrowing CSVRecord) -> Bool {
        record.bytes.withUnsafeBufferPointer { all in
            for byte in all where byte == 0 || byte >= 0x80 { return true }
            return false
        }
    }

    /// Why field `index` cannot be PostgreSQL text (a NUL byte, invalid UTF-8), or nil.
    static func textProblem(_ record: borrowing CSVRecord, _ index: Int) -> String? {
        let r = record.range(index)
        return record.bytes.withUnsafeBufferPointer { all in
            TextSafety.problem(UnsafeBufferPointer(rebasing: all[r]))
        }
    }

    static func parseDecimal(_ b: UnsafeBufferPointer<UInt8>, precision: Int, scale: Int) -> Double? {
        guard !b.isEmpty else { return nil }
        var i = 0
        var negative = false
        if b[0] == 0x2D || b[0] == 0x2B { negative = b[0] == 0x2D; i = 1 }
        var intDigits = 0, fracDigits = 0, v = 0.0, div = 1.0, seenPoint = false
        while i < b.count {
            let c = b[i]
            if c == 0x2E {
                if seenPoint { return nil }
                seenPoint = true
            } else {
                let d = Int(c) - 48
                guard d >= 0 && d <= 9 else { return nil }
                if seenPoint {
                    fracDigits += 1
                    div *= 10
                    v += Double(d) / div
                } else {
                    intDigits += 1
                    v = v * 10 + Double(d)
                }
            }
            i += 1
        }
        guard intDigits + fracDigits > 0, fracDigits <= scale, intDigits <= precision - scale else { return nil }
        return negative ? -v : v
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func display(_ value: FieldValue) -> String {
        switch value {
        case .null: return "NULL"
        case .int(let v): return String(v)
        case .number(let v): return ValueCheck.format(v)
        case .text(let v): return v
        case .bool(let v): return v ? "1" : "0"
        case .date(let y, let m, let d): return String(format: "%04d-%02d-%02d", y, m, d)
        case .time(let h, let m): return String(format: "%02d:%02d", h, m)
        }
    }

    /// Writes the fields in contract order as one COPY text line (without the newline): empty → `\N`,
    /// backslash, tab, CR and LF escaped. Runs of ordinary bytes are copied at once.
    static func appendCopyText(_ record: borrowing CSVRecord, positions: [Int], to out: inout [UInt8]) {
        record.bytes.withUnsafeBufferPointer { all in
            for (c, p) in positions.enumerated() {
                if c > 0 { out.append(0x09) }
                let r = record.range(p)
                if r.isEmpty { out.append(0x5C); out.append(0x4E); continue }
                var runStart = r.lowerBound
                var i = r.lowerBound
                while i < r.upperBound {
                    let byte = all[i]
                    if byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                        if i > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: all[runStart..<i])) }
                        out.append(0x5C)
                        out.append(byte == 0x5C ? 0x5C : byte == 0x09 ? 0x74 : byte == 0x0A ? 0x6E : 0x72)
                        runStart = i + 1
                    }
                    i += 1
                }
                if r.upperBound > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: all[runStart..<r.upperBound])) }
            }
        }
    }
}

/// What PostgreSQL text cannot hold, and how the ETL stores such input where it must keep it
/// (`nfl.etl_rejects.raw_line`, failure values): a NUL byte becomes the four characters `\x00`,
/// an invalid UTF-8 sequence becomes U+FFFD.
public enum TextSafety {
    /// "a NUL byte at byte N" / "invalid UTF-8 at byte N" (1-based), or nil when the bytes are valid text.
    public static func problem(_ b: UnsafeBufferPointer<UInt8>) -> String? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c == 0 { return "a NUL byte at byte \(i + 1)" }
            if c < 0x80 { i += 1; continue }
            // Well-formed UTF-8 (Unicode table 3-7): no overlong forms, surrogates or > U+10FFFF.
            var length = 0
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return "invalid UTF-8 at byte \(i + 1)"
            }
            guard i + length <= n else { return "invalid UTF-8 at byte \(i + 1)" }
            guard b[i + 1] >= low && b[i + 1] <= high else { return "invalid UTF-8 at byte \(i + 1)" }
            for k in 2..<max(2, length) where b[i + k] < 0x80 || b[i + k] > 0xBF { return "invalid UTF-8 at byte \(i + 1)" }
            i += length
        }
        return nil
    }

    /// The string with each NUL written as `\x00` (a Swift String already holds invalid UTF-8 as U+FFFD).
    public static func escaped(_ text: String) -> String {
        guard text.utf8.contains(0) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if scalar == "\u{0}" { out += "\\x00" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    public static func escaped(_ text: String?) -> String? { text.map(escaped) }
}
