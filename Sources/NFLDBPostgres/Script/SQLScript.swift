import Foundation
/// One statement of a SQL script, with where it starts in the file.
public struct SQLStatement: Sendable, Hashable {
    /// The statement text, from its first token through the terminating semicolon (if any).
    public let text: String
    /// 1-based line of the statement's first token in the script.
    public let line: Int
    /// 0-based position in ``SQLScript/statements``.
    public let index: Int
    /// For `COPY … FROM STDIN` followed by inline rows (the form `pg_dump` writes): the rows, up to
    /// but not including the `\.` line, sent as the COPY's data, as psql does.
    public let copyData: CopyData?

    /// Inline COPY rows and the script line of the first one.
    public struct CopyData: Sendable, Hashable {
        public let text: String
        public let line: Int
    }

    public init(text: String, line: Int, index: Int, copyData: CopyData? = nil) {
        self.text = text
        self.line = line
        self.index = index
        self.copyData = copyData
    }

    /// The 1-based script line for a 1-based character `position` inside ``text``
    /// (PostgreSQL's `PG_DIAG_STATEMENT_POSITION`).
    public func line(atPosition position: Int) -> Int {
        line + text.prefix(max(0, position - 1)).filter { $0 == "\n" }.count
    }

    /// The statement without comments and with whitespace folded, upper-cased: for linting and
    /// classification (`CREATE INDEX CONCURRENTLY …`).
    public var normalized: String {
        SQLScript.foldWhitespace(SQLScript.stripComments(text)).uppercased()
    }

    /// The statement without comments and with whitespace folded, case kept: for reading names as written.
    public var folded: String {
        SQLScript.foldWhitespace(SQLScript.stripComments(text))
    }

    /// Whether this is `COPY … FROM STDIN` (data comes from the client).
    public var isCopyFromStdin: Bool {
        let words = normalized.split(separator: " ")
        guard words.first == "COPY" else { return false }
        return zip(words, words.dropFirst()).contains { $0 == "FROM" && ($1 == "STDIN" || $1.hasPrefix("STDIN;")) }
    }

    /// The script line of the COPY data row `row` (1-based, as the server's `COPY t, line N` context counts).
    public func copyDataLine(row: Int) -> Int? {
        copyData.map { $0.line + max(0, row - 1) }
    }
}

/// A script the way psql would split it into statements: semicolons outside quotes, comments,
/// dollar-quoted bodies and `BEGIN ATOMIC … END` bodies end a statement.
///
/// Splitting locally lets nfldb run statements one at a time and report the exact `file:line` of
/// the one that failed, which a single multi-statement `PQexec` cannot tell.
public struct SQLScript: Sendable {
    public let name: String
    public let source: String
    public let statements: [SQLStatement]

    /// A script that cannot be split (an unterminated quote or comment, a psql meta-command).
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let name: String
        public let line: Int
        public let message: String
        public var description: String { "\(name):\(line): \(message)" }
    }

    public init(_ source: String, name: String) throws(ParseError) {
        self.name = name
        self.source = source
        self.statements = try Self.split(source, name: name)
    }

    static func split(_ source: String, name: String) throws(ParseError) -> [SQLStatement] {
        let bytes = Array(source.utf8)
        var statements: [SQLStatement] = []
        var i = 0
        var line = 1
        var start: Int? = nil
        var startLine = 1
        var atomicDepth = 0
        var words: [String] = []

        func isIdentChar(_ b: UInt8) -> Bool {
            (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) || b == 95 || b >= 128 || b == 36
        }
        func isIdentStart(_ b: UInt8) -> Bool {
            (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || b == 95 || b >= 128
        }
        func finish(_ end: Int) {
            guard let s = start else { return }
            let text = String(decoding: bytes[s..<end], as: UTF8.self)
            statements.append(SQLStatement(text: text, line: startLine, index: statements.count))
            start = nil
            atomicDepth = 0
            words.removeAll()
        }
        /// After `COPY … FROM STDIN;`: like psql, the rows start on the next line and end at a line
        /// holding only `\.` (or at the end of the file, which is an error in a migration).
        func takeCopyData() throws(ParseError) {
            guard let last = statements.last, last.isCopyFromStdin else { return }
            while i < bytes.count, bytes[i] != 10 { i += 1 }  // the rest of the statement's line
            guard i < bytes.count else {
                throw ParseError(name: name, line: last.line, message: "COPY … FROM STDIN has no data lines and no terminating \\. line")
            }
            i += 1
            line += 1
            let firstLine = line
            let dataStart = i
            while true {
                guard i < bytes.count else {
                    throw ParseError(name: name, line: firstLine, message: "the COPY data starting here has no terminating line \\. (the statement starts at line \(last.line))")
                }
                var end = i
                while end < bytes.count, bytes[end] != 10 { end += 1 }
                var content = bytes[i..<end]
                if content.last == 13 { content = content.dropLast() }
                if content.elementsEqual([92, 46]) {  // \.
                    let data = String(decoding: bytes[dataStart..<i], as: UTF8.self)
                    statements[statements.count - 1] = SQLStatement(
                        text: last.text, line: last.line, index: last.index, copyData: SQLStatement.CopyData(text: data, line: firstLine))
                    i = end
                    return
                }
                i = end < bytes.count ? end + 1 : end
                if end < bytes.count { line += 1 }
            }
        }
        func begin() {
            if start == nil { start = i; startLine = line }
        }
        func isCreateRoutine() -> Bool {
            let w = words.prefix(4).map { $0.uppercased() }
            guard w.first == "CREATE" else { return false }
            let rest = w.dropFirst().drop { $0 == "OR" || $0 == "REPLACE" }
            return rest.first == "FUNCTION" || rest.first == "PROCEDURE"
        }

        while i < bytes.count {
            let b = bytes[i]
            let next: UInt8? = i + 1 < bytes.count ? bytes[i + 1] : nil
            switch b {
            case 10:
                line += 1
                i += 1
            case 32, 9, 13, 12, 11:
                i += 1
            case 45 where next == 45: // -- comment
                while i < bytes.count, bytes[i] != 10 { i += 1 }
            case 47 where next == 42: // /* comment */ (nests)
                let commentLine = line
                var depth = 0
                repeat {
                    if i + 1 < bytes.count, bytes[i] == 47, bytes[i + 1] == 42 { depth += 1; i += 2; continue }
                    if i + 1 < bytes.count, bytes[i] == 42, bytes[i + 1] == 47 { depth -= 1; i += 2; continue }
                    if bytes[i] == 10 { line += 1 }
                    i += 1
                } while depth > 0 && i < bytes.count
                if depth > 0 { throw ParseError(name: name, line: commentLine, message: "unterminated /* comment") }
            case 39, 34: // 'string' or "identifier"
                begin()
                let quoteLine = line
                let escapes = b == 39 && i > 0 && (bytes[i - 1] == 69 || bytes[i - 1] == 101)
                    && (i < 2 || !isIdentChar(bytes[i - 2]))
                i += 1
                var closed = false
                while i < bytes.count {
                    let c = bytes[i]
                    if c == 10 { line += 1 }
                    if escapes && c == 92 { i += 2; continue }
                    if c == b {
                        if i + 1 < bytes.count, bytes[i + 1] == b { i += 2; continue }
                        i += 1
                        closed = true
                        break
                    }
                    i += 1
                }
                if !closed {
                    throw ParseError(name: name, line: quoteLine, message: b == 39 ? "unterminated quoted string" : "unterminated quoted identifier")
                }
            case 36 where !(i > 0 && isIdentChar(bytes[i - 1])): // $tag$ … $tag$
                var j = i + 1
                if j < bytes.count, isIdentStart(bytes[j]) {
                    while j < bytes.count, isIdentChar(bytes[j]), bytes[j] != 36 { j += 1 }
                }
                guard j < bytes.count, bytes[j] == 36 else {
                    begin()
                    i += 1
                    continue
                }
                begin()
                let tag = Array(bytes[i...j])
                let quoteLine = line
                i = j + 1
                var closed = false
                while i < bytes.count {
                    if bytes[i] == 10 { line += 1 }
                    if bytes[i] == 36, i + tag.count <= bytes.count, Array(bytes[i..<(i + tag.count)]) == tag {
                        i += tag.count
                        closed = true
                        break
                    }
                    i += 1
                }
                if !closed {
                    throw ParseError(name: name, line: quoteLine, message: "unterminated dollar-quoted string \(String(decoding: tag, as: UTF8.self))")
                }
            case 59: // ;
                if atomicDepth > 0 {
                    i += 1
                    continue
                }
                if start != nil {
                    i += 1
                    finish(i)
                    try takeCopyData()
                } else {
                    i += 1
                }
            case 92 where start == nil: // backslash at statement start: psql meta-command
                throw ParseError(name: name, line: line, message: "psql meta-commands (\\…) are not SQL; nfldb runs plain SQL only")
            default:
                begin()
                if isIdentStart(b), !(i > 0 && isIdentChar(bytes[i - 1])) {
                    var j = i
                    while j < bytes.count, isIdentChar(bytes[j]) { j += 1 }
                    let word = String(decoding: bytes[i..<j], as: UTF8.self).uppercased()
                    if words.count < 8 { words.append(word) }
                    if isCreateRoutine() {
                        if word == "BEGIN" && (atomicDepth > 0 || j < bytes.count) {
                            // Only `BEGIN ATOMIC` opens a SQL-standard body.
                            var k = j
                            while k < bytes.count, bytes[k] == 32 || bytes[k] == 9 || bytes[k] == 10 || bytes[k] == 13 { k += 1 }
                            var m = k
                            while m < bytes.count, isIdentChar(bytes[m]) { m += 1 }
                            if String(decoding: bytes[k..<m], as: UTF8.self).uppercased() == "ATOMIC" || atomicDepth > 0 {
                                atomicDepth += 1
                            }
                        } else if word == "CASE" && atomicDepth > 0 {
                            atomicDepth += 1
                        } else if word == "END" && atomicDepth > 0 {
                            atomicDepth -= 1
                        }
                    }
                    i = j
                } else {
                    i += 1
                }
            }
        }
        finish(bytes.count)
        return statements
    }

    /// Removes `--` and `/* */` comments outside quotes (used for classification, not execution).
    /// Runs of SQL whitespace (space, tab, LF, CR, FF, VT: PostgreSQL's scanner's `space`) as one
    /// space, none at either end. Byte by byte: `Character.isWhitespace` (Unicode properties per
    /// character) made this most of the time of linting a large data migration. A non-ASCII space
    /// is not whitespace to PostgreSQL either.
    public static func foldWhitespace(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var pendingSpace = false
        for byte in text.utf8 {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D, 0x0C, 0x0B:
                pendingSpace = !out.isEmpty
            default:
                if pendingSpace {
                    out.append(0x20)
                    pendingSpace = false
                }
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The text without `--` and (nested) `/* */` comments outside quotes; a block comment becomes
    /// one space. Byte by byte: every delimiter is ASCII, and no byte of a multi-byte UTF-8 sequence
    /// is. (Over `Character`s, a CRLF is one character that is not "\n", so a `--` comment in a
    /// CRLF file ran on to the statement's end.)
    public static func stripComments(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        var quote: UInt8 = 0
        while i < bytes.count {
            let c = bytes[i]
            if quote != 0 {
                out.append(c)
                if c == quote { quote = 0 }
                i += 1
                continue
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") { quote = c; out.append(c); i += 1; continue }
            if c == UInt8(ascii: "-"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "-") {
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "*") {
                var depth = 0
                repeat {
                    if i + 1 < bytes.count, bytes[i] == UInt8(ascii: "/"), bytes[i + 1] == UInt8(ascii: "*") { depth += 1; i += 2; continue }
                    if i + 1 < bytes.count, bytes[i] == UInt8(ascii: "*"), bytes[i + 1] == UInt8(ascii: "/") { depth -= 1; i += 2; continue }
                    i += 1
                } while depth > 0 && i < bytes.count
                out.append(UInt8(ascii: " "))
                continue
            }
            out.append(c)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
