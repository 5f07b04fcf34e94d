import CLibCrypto
import Foundation
import NFLDBCore

/// A row the contract refused, kept for `nfl.etl_rejects`.
public struct RejectedRow: Sendable, Codable, Equatable {
    public var row: Int
    public var line: Int
    public var key: String?
    public var failures: [ValidationFailure]
    public var raw: String
}

/// Streaming SHA-256 of the input (libcrypto).
final class StreamingSHA256 {
    private let context: OpaquePointer?
    init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }
    deinit { EVP_MD_CTX_free(context) }
    func update(_ data: Data) {
        data.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
    }
    func finish() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Reads a source, parses it as CSV, validates every row against a contract, and hands valid
/// rows to a sink as COPY text lines (with the input row number as a last column when asked).
public final class ValidationPipeline {
    public let contract: DataContract
    public var validator: RowValidator
    public private(set) var rejects: [RejectedRow] = []
    public private(set) var bytesRead = 0
    public private(set) var checksum = ""
    public let rejectLimit: Int
    public private(set) var rejectsDropped = 0
    /// Valid typed rows are passed to this hook (metrics, tests); nil to skip.
    public var progress: ((Int) -> Void)?

    /// Contract columns whose text the sink wants for each valid row (in ``tracked``).
    public var trackColumns: [Int] = []
    /// The ``trackColumns`` values of the valid row the sink is receiving.
    public private(set) var tracked: [String] = []
    /// Key, data row and input line of the valid row the sink is receiving.
    public private(set) var current: (key: String?, row: Int, line: Int) = (nil, 0, 0)
    /// Called once per key when a key turns out duplicated (at its second occurrence, which is
    /// rejected; the first occurrence was already handed to the sink).
    public var onDuplicate: ((String) throws -> Void)?
    let sourceName: String
    /// Keep each valid keyed row's input line (the staging path: a key duplicated later rejects its
    /// first occurrence too, whose raw line is stored as it came), up to ``rawLineBudget`` bytes.
    public var keepRawLines = false
    public var rawLineBudget = 64 << 20
    /// The kept lines back to back, and (data row, start offset) of each, in row order: one
    /// append per row, no allocation per row.
    private var rawBuffer: [UInt8] = []
    private var rawStarts: [(row: Int, start: Int)] = []

    /// The input line of data row `row` as it came, if it was kept.
    public func rawLine(row: Int) -> String? {
        var low = 0, high = rawStarts.count
        while low < high {
            let mid = (low + high) / 2
            if rawStarts[mid].row < row { low = mid + 1 } else { high = mid }
        }
        guard low < rawStarts.count, rawStarts[low].row == row else { return nil }
        let end = low + 1 < rawStarts.count ? rawStarts[low + 1].start : rawBuffer.count
        return String(decoding: rawBuffer[rawStarts[low].start..<end], as: UTF8.self)
    }

    public init(contract: DataContract, sourceName: String, rejectLimit: Int = 1_000_000) {
        self.contract = contract
        self.sourceName = sourceName
        self.validator = RowValidator(contract: contract, source: sourceName)
        self.rejectLimit = rejectLimit
    }

    /// Forgets everything read so far (a load that starts the input over).
    public func reset() {
        validator = RowValidator(contract: contract, source: sourceName)
        rejects = []
        bytesRead = 0
        checksum = ""
        rejectsDropped = 0
        rawBuffer = []
        rawStarts = []
        tracked = []
        current = (nil, 0, 0)
    }

    /// Runs the whole input through; `sink` receives each valid row's COPY line (with `\n`) in
    /// `encoding` (`.none`: the sink gets an empty line per valid row). With `.rawCSV` the header
    /// must name exactly the contract's columns (see ``PeekedSource/header``).
    public func run(_ source: any ByteSource, encoding: RowValidator.CopyEncoding = .text, appendRowNumber: Bool = false, sink: ([UInt8]) throws -> Void) throws {
        try withoutActuallyEscaping(sink) { sink in try runEscaping(source, encoding: encoding, appendRowNumber: appendRowNumber, sink: sink) }
    }

    private func runEscaping(_ source: any ByteSource, encoding: RowValidator.CopyEncoding, appendRowNumber: Bool, sink: @escaping ([UInt8]) throws -> Void) throws {
        var parser = CSVParser()
        let hash = StreamingSHA256()
        var dataRow = 0
        var headerDone = false
        var line: [UInt8] = []
        line.reserveCapacity(1024)
        var lastRecordLine = 0
        var lastRecordShort = false
        let expected = contract.columns.count
        var sourceWidth = 0
        let sourceName = source.name
        let emit: (borrowing CSVRecord) throws -> Void = { [self] record in
            lastRecordLine = record.line
            if !headerDone {
                try validator.header(record)
                if encoding == .rawCSV && !validator.headerIsContractPermutation {
                    throw ETLInputError(source: sourceName, "the header changed between the first look and the load",
                                        hint: "Nothing was loaded; run the load again.")
                }
                sourceWidth = record.count
                headerDone = true
                return
            }
            if record.count == 1 && record.isEmpty(0) && !record.quoted[0] {
                validator.countBlankLine()
                return
            }
            lastRecordShort = record.count < sourceWidth
            dataRow += 1
            line.removeAll(keepingCapacity: true)
            let duplicatesBefore = validator.duplicatedKeys.count
            switch validator.validate(record, rowNumber: dataRow, copyLine: &line, encoding: encoding) {
            case .valid(let key):
                if !trackColumns.isEmpty {
                    if tracked.count != trackColumns.count { tracked = [String](repeating: "", count: trackColumns.count) }
                    for (i, c) in trackColumns.enumerated() { tracked[i] = validator.string(record, column: c) }
                }
                current = (key, dataRow, record.line)
                if keepRawLines, key != nil, rawBuffer.count + record.raw.count <= rawLineBudget {
                    rawStarts.append((dataRow, rawBuffer.count))
                    rawBuffer.append(contentsOf: record.raw)
                }
                if appendRowNumber {
                    let separator: UInt8 = encoding == .rawCSV ? 0x2C : 0x09
                    line.append(separator)
                    Self.appendDecimal(dataRow, to: &line)
                    line.append(separator)
                    Self.appendDecimal(record.line, to: &line)
                }
                line.append(0x0A)
                try sink(line)
            case .rejected(let key, let failures):
                if rejects.count < rejectLimit {
                    rejects.append(RejectedRow(row: dataRow, line: record.line, key: key, failures: failures, raw: record.rawLine))
                } else {
                    rejectsDropped += 1
                }
                if validator.duplicatedKeys.count > duplicatesBefore, let key, let onDuplicate { try onDuplicate(key) }
            }
            if dataRow % 10_000 == 0 { progress?(dataRow) }
        }
        _ = expected
        let endedWithNewline: Bool
        do {
            while let chunk = try source.read() {
                bytesRead += chunk.count
                hash.update(chunk)
                try chunk.withUnsafeBytes { raw in
                    try parser.feed(raw.bindMemory(to: UInt8.self), emit)
                }
            }
            endedWithNewline = parser.endedWithNewline
            try parser.finish(emit)
        } catch let error as CSVSyntaxError {
            // Name the column when the header was read: "field 46" means little to whoever opens the file.
            let column = error.field.flatMap { n in headerDone && n <= validator.headerNames.count ? " (column \(validator.headerNames[n - 1]))" : nil } ?? ""
            throw ETLInputError(source: sourceName, "line \(error.line): \(error.message)\(column)",
                                hint: error.overLimit
                                    ? "Nothing was loaded. Check that the source is nflverse's games.csv: this input is not a CSV of rows, and loading it again fails the same way."
                                    : "Nothing was loaded. Fetch the file again (a cut download ends inside a row), or fix the quoting at that line; check that the source is nflverse's games.csv.",
                                permanent: error.overLimit)
        }
        if !headerDone {
            throw ETLInputError(source: sourceName, "the input is empty (no header line)", hint: "Check the source; nothing was loaded.")
        }
        // A last record without its line break is suspect even when its field count is right: a
        // download cut inside the last field, or a file read while a row was being appended, ends
        // that way and would load a shortened value as good data. nflverse's files end with "\n".
        if !endedWithNewline {
            let which = dataRow == 0 || lastRecordLine == 1 ? "the header" : "row \(dataRow)"
            throw ETLInputError(
                source: sourceName,
                "the input ends without a line break after \(which) (line \(lastRecordLine)): it looks truncated\(lastRecordShort ? " (that row also has fewer fields than the header)" : "")",
                hint: "Nothing was loaded. Re-download it, or add the final newline if the file is complete (nflverse's files end with one).")
        }
        checksum = hash.finish()
        progress?(dataRow)
    }

    /// Appends a non-negative integer in decimal ASCII.
    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = max(0, value), n = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - n] = UInt8(48 + v % 10)
                v /= 10
                n += 1
            } while v > 0
            out.append(contentsOf: buffer[(20 - n)...])
        }
    }

    /// Adds rejects for the first occurrences of keys that were duplicated later (their rows were
    /// staged or copied before the duplicate was seen), with their raw input lines.
    public func rejectFirstOccurrences(_ rows: [(row: Int, line: Int, key: String, raw: String)]) {
        validator.rejectFirstOccurrences(rows.map { ($0.row, $0.line, $0.key) })
        let column = contract.keyColumn.map { contract.columns[$0].name }
        for entry in rows {
            let failure = ValidationFailure(row: entry.row, line: entry.line, key: entry.key, column: column, check: "field_uniqueness",
                                            value: "\(entry.key) (duplicated later in the input)", severity: .error)
            rejects.append(RejectedRow(row: entry.row, line: entry.line, key: entry.key, failures: [failure], raw: entry.raw))
        }
        rejects.sort { $0.row < $1.row }
    }

    public var metrics: QualityMetrics { validator.metrics }
    public var failures: [ValidationFailure] { validator.failures }
}

/// A source whose first bytes were read ahead to learn the header (the load picks its `COPY` column
/// list from it); `read()` returns those bytes again, then the rest of the source.
public final class PeekedSource: ByteSource {
    let base: any ByteSource
    private var pending: [Data] = []
    /// The header's field names (trimmed), or nil when the input has no complete first line.
    public private(set) var header: [String]?

    private struct Stop: Error {}

    public init(_ base: any ByteSource) throws {
        self.base = base
        var parser = CSVParser()
        var names: [String]?
        let take: (borrowing CSVRecord) throws -> Void = { record in
            names = record.fields.map { $0.trimmingCharacters(in: .whitespaces) }
            throw Stop()
        }
        reading: while names == nil, let chunk = try base.read() {
            pending.append(chunk)
            do {
                try chunk.withUnsafeBytes { try parser.feed($0.bindMemory(to: UInt8.self), take) }
            } catch is Stop {
                break reading
            } catch {
                break reading  // the load's own parser reports it
            }
        }
        if names == nil { try? parser.finish(take) }
        header = names
    }

    public var name: String { base.name }
    public var validators: HTTPValidators { base.validators }

    public func read() throws -> Data? {
        if !pending.isEmpty { return pending.removeFirst() }
        return try base.read()
    }
}
