import Foundation

/// One parsed CSV record: unescaped field bytes, plus the raw input bytes of the record (for the
/// rejects table). Valid only until the parser produces the next record.
public struct CSVRecord {
    /// Unescaped field contents, concatenated.
    public fileprivate(set) var bytes: [UInt8] = []
    /// End offset of each field in `bytes`.
    public fileprivate(set) var ends: [Int] = []
    /// Whether each field was quoted (`""` is then an empty string, not a missing value).
    public fileprivate(set) var quoted: [Bool] = []
    /// The record as it appeared in the input, without its line terminator.
    public fileprivate(set) var raw: [UInt8] = []
    /// 1-based physical line where the record starts.
    public fileprivate(set) var line = 0
    /// A syntax problem inside the record (a quote in an unquoted field, text after a closing quote).
    public fileprivate(set) var syntaxError: String?

    public var count: Int { ends.count }

    public func range(_ index: Int) -> Range<Int> {
        (index == 0 ? 0 : ends[index - 1])..<ends[index]
    }

    public func isEmpty(_ index: Int) -> Bool { range(index).isEmpty }

    public func string(_ index: Int) -> String {
        let r = range(index)
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[r]), as: UTF8.self) }
    }

    public var fields: [String] { (0..<count).map(string) }

    public var rawLine: String { String(decoding: raw, as: UTF8.self) }

    fileprivate mutating func reset(line: Int) {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        quoted.removeAll(keepingCapacity: true)
        raw.removeAll(keepingCapacity: true)
        syntaxError = nil
        self.line = line
    }
}

/// A file-level CSV problem that makes the rest of the input unreadable.
public struct CSVSyntaxError: Error, Sendable, CustomStringConvertible {
    public let line: Int
    public let message: String
    /// A record or field over the parser's limits: not a CSV of rows, and the same input fails the
    /// same way (unlike a quote left open at the end, which a cut download also causes).
    public var overLimit = false
    /// The 1-based field an over-limit error is about, when it is about one field.
    public var field: Int?
    public var description: String { "line \(line): \(message)" }

    public init(line: Int, message: String, overLimit: Bool = false) {
        self.line = line
        self.message = message
        self.overLimit = overLimit
    }
}

/// A push-style RFC 4180 parser over bytes: feed it chunks as they arrive (from a file or an HTTP
/// body), and it calls back once per complete record. Handles quoted fields with `""` escapes and
/// embedded separators/line breaks, CRLF and LF line ends, and a UTF-8 byte-order mark.
///
/// Hand-written rather than taken from the mirror: yaslab/CSV.swift 2.5.2 streams only from an
/// `InputStream` through a Unicode-scalar iterator and returns `[String]` rows without the raw line;
/// SwiftCSV 0.10.0 loads the whole text into a `String` first (no streaming). The loader needs the
/// raw line of rejected rows, byte-level speed and push-style input from URLSession.
public struct CSVParser {
    private enum State { case fieldStart, unquoted, quoted, quoteInQuoted, afterCR }
    private var state: State = .fieldStart
    private var record = CSVRecord()
    private var line = 1
    private var sawBOMCheck = false
    private var pendingBOM: [UInt8] = []
    private var recordOpen = false
    /// Whether the last byte fed ended a record (the input ended with a line terminator).
    public private(set) var endedWithNewline = true
    public private(set) var recordsParsed = 0
    /// Largest field and record (raw bytes, the header too): past either, the input is refused
    /// (`/dev/zero`, an endless body without a line break, a binary file) instead of buffered
    /// until the process runs out of memory. A games.csv row is about 300 bytes.
    public let maxFieldBytes: Int
    public let maxRecordBytes: Int
    /// Most fields in a record (games.csv has 46; each field costs the parser 9 bytes of index).
    public let maxFields = 10_000
    public static let defaultMaxFieldBytes = 1 << 20
    public static let defaultMaxRecordBytes = 16 << 20

    public init(maxFieldBytes: Int = CSVParser.defaultMaxFieldBytes, maxRecordBytes: Int = CSVParser.defaultMaxRecordBytes) {
        self.maxFieldBytes = maxFieldBytes
        self.maxRecordBytes = maxRecordBytes
    }

    /// Throws when the open record has outgrown the limits. Checked once per fed chunk (nothing on
    /// the per-byte path), so a record may pass a limit by up to one chunk before it is refused.
    @inline(__always)
    private func checkSize() throws {
        if record.raw.count > maxRecordBytes {
            throw CSVSyntaxError(line: record.line, message: "the record starting on this line is longer than \(Self.size(maxRecordBytes)) without ending (\(record.raw.count) bytes read): this is not a CSV file of rows (a binary file, /dev/zero, or an endless stream without line breaks)", overLimit: true)
        }
        if record.ends.count > maxFields {
            throw CSVSyntaxError(line: record.line, message: "the record starting on this line has more than \(maxFields) fields: this is not a games CSV", overLimit: true)
        }
        let fieldStart = record.ends.last ?? 0
        if record.bytes.count - fieldStart > maxFieldBytes {
            var error = CSVSyntaxError(line: record.line, message: "field \(record.ends.count + 1) of the record starting on this line is longer than \(Self.size(maxFieldBytes)) (no games.csv field comes near that; a binary file, /dev/zero or an endless stream without line breaks look like this too)", overLimit: true)
            error.field = record.ends.count + 1
            throw error
        }
    }

    static func size(_ bytes: Int) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }

    /// Feeds a chunk; `emit` receives each completed record.
    public mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, _ emit: (borrowing CSVRecord) throws -> Void) throws {
        var start = 0
        if !sawBOMCheck {
            // Strip a UTF-8 BOM (EF BB BF), possibly split across chunks.
            if pendingBOM.count + chunk.count < 3 {
                pendingBOM.append(contentsOf: chunk)
                return
            }
            let need = 3 - pendingBOM.count
            pendingBOM.append(contentsOf: chunk.prefix(need))
            sawBOMCheck = true
            let held = pendingBOM
            pendingBOM = []
            if held != [0xEF, 0xBB, 0xBF] {
                try held.withUnsafeBufferPointer { try consume($0, from: 0, emit) }
            }
            start = need
        }
        try consume(chunk, from: start, emit)
    }

    public mutating func feed(_ bytes: [UInt8], _ emit: (borrowing CSVRecord) throws -> Void) throws {
        try bytes.withUnsafeBufferPointer { try feed($0, emit) }
    }

    private mutating func consume(_ chunk: UnsafeBufferPointer<UInt8>, from start: Int, _ emit: (borrowing CSVRecord) throws -> Void) throws {
        var i = start
        let n = chunk.count
        while i < n {
            let b = chunk[i]
            if !recordOpen {
                if state == .afterCR {
                    state = .fieldStart
                    if b == 0x0A { i += 1; endedWithNewline = true; continue }
                }
                record.reset(line: line)
                recordOpen = true
            }
            switch state {
            case .fieldStart:
                if b == 0x22 {
                    state = .quoted
                    record.quoted.append(true)
                    record.raw.append(b)
                } else if b == 0x2C {
                    record.quoted.append(false)
                    record.ends.append(record.bytes.count)
                    record.raw.append(b)
                } else if b == 0x0A || b == 0x0D {
                    record.quoted.append(false)
                    record.ends.append(record.bytes.count)
                    try finishRecord(b, emit)
                } else {
                    state = .unquoted
                    record.quoted.append(false)
                    record.bytes.append(b)
                    record.raw.append(b)
                }
            case .unquoted:
                // Fast path: copy a run of ordinary bytes.
                var j = i
                while j < n {
                    let c = chunk[j]
                    if c == 0x2C || c == 0x0A || c == 0x0D || c == 0x22 { break }
                    j += 1
                }
                if j > i {
                    let run = UnsafeBufferPointer(rebasing: chunk[i..<j])
                    record.bytes.append(contentsOf: run)
                    record.raw.append(contentsOf: run)
                    i = j
                    continue
                }
                if b == 0x2C {
                    record.ends.append(record.bytes.count)
                    record.raw.append(b)
                    state = .fieldStart
                } else if b == 0x0A || b == 0x0D {
                    record.ends.append(record.bytes.count)
                    try finishRecord(b, emit)
                } else { // a quote inside an unquoted field
                    if record.syntaxError == nil {
                        record.syntaxError = "a double quote inside the unquoted field \(record.ends.count + 1) (RFC 4180: quote the whole field and double the quote)"
                    }
                    record.bytes.append(b)
                    record.raw.append(b)
                }
            case .quoted:
                var j = i
                while j < n && chunk[j] != 0x22 {
                    if chunk[j] == 0x0A { line += 1 }
                    j += 1
                }
                if j > i {
                    let run = UnsafeBufferPointer(rebasing: chunk[i..<j])
                    record.bytes.append(contentsOf: run)
                    record.raw.append(contentsOf: run)
                    i = j
                    continue
                }
                state = .quoteInQuoted
                record.raw.append(b)
            case .quoteInQuoted:
                if b == 0x22 {
                    record.bytes.append(b)
                    record.raw.append(b)
                    state = .quoted
                } else if b == 0x2C {
                    record.ends.append(record.bytes.count)
                    record.raw.append(b)
                    state = .fieldStart
                } else if b == 0x0A || b == 0x0D {
                    record.ends.append(record.bytes.count)
                    try finishRecord(b, emit)
                } else {
                    if record.syntaxError == nil {
                        record.syntaxError = "text after the closing quote of field \(record.ends.count + 1)"
                    }
                    record.bytes.append(b)
                    record.raw.append(b)
                    state = .unquoted
                }
            case .afterCR:
                break
            }
            i += 1
        }
        endedWithNewline = !recordOpen
        if recordOpen { try checkSize() }
    }

    private mutating func finishRecord(_ terminator: UInt8, _ emit: (borrowing CSVRecord) throws -> Void) throws {
        recordOpen = false
        endedWithNewline = true
        line += 1
        state = terminator == 0x0D ? .afterCR : .fieldStart
        recordsParsed += 1
        try emit(record)
    }

    /// Ends the input. A record without a final line break is still emitted (RFC 4180 allows it);
    /// an unterminated quoted field is a file-level error (the input was cut or its quoting is broken).
    public mutating func finish(_ emit: (borrowing CSVRecord) throws -> Void) throws {
        if !sawBOMCheck && !pendingBOM.isEmpty {
            let held = pendingBOM
            pendingBOM = []
            sawBOMCheck = true
            try held.withUnsafeBufferPointer { try consume($0, from: 0, emit) }
        }
        guard recordOpen else { return }
        switch state {
        case .quoted:
            throw CSVSyntaxError(line: record.line, message: "the input ends inside a quoted field that starts on this line (a truncated file, or an unbalanced double quote)")
        case .unquoted, .quoteInQuoted, .fieldStart:
            record.ends.append(record.bytes.count)
        case .afterCR:
            return
        }
        recordOpen = false
        recordsParsed += 1
        try emit(record)
    }
}
