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

    public init(contract: DataContract, sourceName: String, rejectLimit: Int = 1_000_000) {
        self.contract = contract
        self.validator = RowValidator(contract: contract, source: sourceName)
        self.rejectLimit = rejectLimit
    }

    /// Runs the whole input through; `sink` receives each valid row's COPY line (with `\n`).
    public func run(_ source: any ByteSource, appendRowNumber: Bool = false, sink: ([UInt8]) throws -> Void) throws {
        try withoutActuallyEscaping(sink) { sink in try runEscaping(source, appendRowNumber: appendRowNumber, sink: sink) }
    }

    private func runEscaping(_ source: any ByteSource, appendRowNumber: Bool, sink: @escaping ([UInt8]) throws -> Void) throws {
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
            var row: Row?
            switch validator.validate(record, rowNumber: dataRow, copyLine: &line, row: &row) {
            case .valid:
                if appendRowNumber {
                    line.append(0x09)
                    line.append(contentsOf: String(dataRow).utf8)
                    line.append(0x09)
                    line.append(contentsOf: String(record.line).utf8)
                }
                line.append(0x0A)
                try sink(line)
            case .rejected(let key, let failures):
                if rejects.count < rejectLimit {
                    rejects.append(RejectedRow(row: dataRow, line: record.line, key: key, failures: failures, raw: record.rawLine))
                } else {
                    rejectsDropped += 1
                }
            }
            if dataRow % 10_000 == 0 { progress?(dataRow) }
        }
        _ = expected
        while let chunk = try source.read() {
            bytesRead += chunk.count
            hash.update(chunk)
            try chunk.withUnsafeBytes { raw in
                try parser.feed(raw.bindMemory(to: UInt8.self), emit)
            }
        }
        let endedWithNewline = parser.endedWithNewline
        do {
            try parser.finish(emit)
        } catch let error as CSVSyntaxError {
            throw ETLInputError(source: sourceName, "line \(error.line): \(error.message)",
                                hint: "Nothing was loaded. Fetch the file again (a cut download ends inside a row), or fix the quoting at that line.")
        }
        if !headerDone {
            throw ETLInputError(source: sourceName, "the input is empty (no header line)", hint: "Check the source; nothing was loaded.")
        }
        if !endedWithNewline && lastRecordShort {
            throw ETLInputError(
                source: sourceName,
                "the input ends in the middle of a row at line \(lastRecordLine) (no final line break and fewer fields than the header): the file looks truncated",
                hint: "Nothing was loaded. Fetch the file again and re-run; a complete nflverse file ends with a line break.")
        }
        checksum = hash.finish()
        progress?(dataRow)
    }

    /// Adds rejects for the first occurrences of keys that were duplicated later (their rows were
    /// staged before the duplicate was seen); `raw` is rebuilt from the staged values.
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
