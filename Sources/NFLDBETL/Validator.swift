import Foundation
import NFLDBCore

/// A problem with the input as a whole (not one row): the run stops and nothing is loaded.
public struct ETLInputError: NFLDBError, Sendable {
    public let source: String
    public let summary: String
    public let hint: String
    public let exitStatus: ExitStatus

    public init(source: String, _ summary: String, hint: String, exitStatus: ExitStatus = .failure) {
        self.source = source
        self.summary = summary
        self.hint = hint
        self.exitStatus = exitStatus
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
    public private(set) var metrics = QualityMetrics()
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
                                hint: "Each column must appear once; check that this is nflverse's games.csv.")
        }
        let missing = contract.columns.map(\.name).filter { position[$0] == nil }
        if !missing.isEmpty {
            throw ETLInputError(
                source: source,
                "required column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) missing from the header (line 1 has \(names.count) columns)",
                hint: "The \(contract.target) contract needs all of: \(contract.columns.map(\.name).joined(separator: ",")). Check that the source is the right file; nothing was loaded.")
        }
        sourcePosition = contract.columns.map { position[$0.name]! }
        sourceWidth = names.count
        let known = Set(contract.columns.map(\.name))
        metrics.extraColumns = names.filter { !known.contains($0) }
        headerSeen = true
    }

    public enum Outcome {
        /// Valid: the row in COPY text format (tab-separated, `\N` for NULL, contract column order).
        case valid(key: String?)
        case rejected(key: String?, failures: [ValidationFailure])
    }

    /// Validates one data row (`rowNumber` 1-based). Valid rows are appended to `copyLine`
    /// in COPY text format; the caller appends the row number column if it stages one.
    public mutating func validate(_ record: borrowing CSVRecord, rowNumber: Int, copyLine: inout [UInt8], row: inout Row?) -> Outcome {
        metrics.rowCount += 1
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
        var values = [FieldValue](repeating: .null, count: contract.columns.count)
        for (c, spec) in contract.columns.enumerated() {
            let p = sourcePosition[c]
            if record.isEmpty(p) {
                metrics.nullCounts[spec.name, default: 0] += 1
                if !spec.nullable { fail(spec.name, "not_nullable", nil) }
                continue
            }
            guard let value = Self.parse(record, p, spec.type) else {
                fail(spec.name, "dtype('\(spec.type)')", record.string(p))
                continue
            }
            values[c] = value
            for check in spec.checks where !check.test(value) {
                fail(spec.name, check.name, record.string(p), check.severity)
            }
        }
        let typed = Row(contract: contract.contractIndex, values: values)
        for check in contract.rowChecks {
            // A row check over a column that already failed its type or nullability is skipped,
            // so one bad value is reported once (pandera's behaviour for nulls).
            if check.columns.contains(where: { name in rowFailures.contains { $0.column == name && ($0.check == "not_nullable" || $0.check.hasPrefix("dtype")) } }) { continue }
            if !check.test(typed) {
                let shown = check.columns.map { "\($0)=\(Self.display(typed[$0]))" }.joined(separator: ", ")
                fail(nil, check.name, shown, check.severity)
            }
        }
        if let key, let keyIndex, contract.columns[keyIndex].unique {
            if let first = seenKeys[key] {
                if duplicatedKeys[key] == nil {
                    duplicatedKeys[key] = first
                    metrics.duplicateKeys += 1
                    metrics.duplicateRows += 1
                }
                metrics.duplicateRows += 1
                fail(contract.columns[keyIndex].name, "field_uniqueness", "\(key) (first at row \(first))")
            } else {
                seenKeys[key] = rowNumber
            }
        }
        let outcome = finish(rowFailures, key: key, rowNumber: rowNumber)
        if case .valid = outcome {
            Self.appendCopyText(record, positions: sourcePosition, types: contract.columns.map(\.type), to: &copyLine)
            row = typed
        }
        return outcome
    }

    private mutating func finish(_ rowFailures: [ValidationFailure], key: String?, rowNumber: Int) -> Outcome {
        var rejected = false
        var warned = false
        for failure in rowFailures {
            metrics.violations["\(failure.column ?? "")|\(failure.check)", default: 0] += 1
            if failure.severity == .error { rejected = true } else { warned = true }
            failureCount += 1
            if failures.count < failureLimit { failures.append(failure) }
        }
        if warned { metrics.warningRows += 1 }
        if rejected {
            metrics.rejectedRows += 1
            return .rejected(key: key, failures: rowFailures)
        }
        metrics.validRows += 1
        return .valid(key: key)
    }

    /// Marks the first occurrences of duplicated keys as rejected too (found only when a later
    /// duplicate arrived): every member of a duplicate group is refused.
    public mutating func rejectFirstOccurrences(_ rows: [(row: Int, line: Int, key: String)]) {
        for entry in rows {
            let failure = ValidationFailure(row: entry.row, line: entry.line, key: entry.key, column: contract.keyColumn.map { contract.columns[$0].name },
                                            check: "field_uniqueness", value: "\(entry.key) (duplicated later in the input)", severity: .error)
            metrics.violations["\(failure.column ?? "")|field_uniqueness", default: 0] += 1
            failureCount += 1
            if failures.count < failureLimit { failures.append(failure) }
            metrics.rejectedRows += 1
            metrics.validRows -= 1
        }
    }

    mutating func countBlankLine() { metrics.blankLines += 1 }

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
                guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D,
                      let y = parseInt(UnsafeBufferPointer(rebasing: b[0..<4])),
                      let m = parseInt(UnsafeBufferPointer(rebasing: b[5..<7])),
                      let d = parseInt(UnsafeBufferPointer(rebasing: b[8..<10])),
                      m >= 1, m <= 12, d >= 1, d <= daysInMonth(y, m) else { return nil }
                return .date(year: y, month: m, day: d)
            case .time:
                guard b.count == 5 || b.count == 8, b[2] == 0x3A,
                      let h = parseInt(UnsafeBufferPointer(rebasing: b[0..<2])),
                      let mi = parseInt(UnsafeBufferPointer(rebasing: b[3..<5])),
                      h >= 0, h <= 23, mi >= 0, mi <= 59 else { return nil }
                if b.count == 8 {
                    guard b[5] == 0x3A, let s = parseInt(UnsafeBufferPointer(rebasing: b[6..<8])), s >= 0, s <= 59 else { return nil }
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
    /// backslash, tab, CR and LF escaped.
    static func appendCopyText(_ record: borrowing CSVRecord, positions: [Int], types: [ColumnType], to out: inout [UInt8]) {
        record.bytes.withUnsafeBufferPointer { all in
            for (c, p) in positions.enumerated() {
                if c > 0 { out.append(0x09) }
                let r = record.range(p)
                if r.isEmpty { out.append(0x5C); out.append(0x4E); continue }
                for byte in UnsafeBufferPointer(rebasing: all[r]) {
                    switch byte {
                    case 0x5C: out.append(0x5C); out.append(0x5C)
                    case 0x09: out.append(0x5C); out.append(0x74)
                    case 0x0A: out.append(0x5C); out.append(0x6E)
                    case 0x0D: out.append(0x5C); out.append(0x72)
                    default: out.append(byte)
                    }
                }
            }
        }
    }
}
