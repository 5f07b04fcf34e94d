import Foundation
import Testing

@testable import NFLDBETL

/// Parses `text` fed in chunks of `chunk` bytes; returns (fields, raw line, line, syntax error) per record.
func parse(_ text: String, chunk: Int = 3) throws -> [(fields: [String], raw: String, line: Int, error: String?)] {
    var parser = CSVParser()
    var out: [(fields: [String], raw: String, line: Int, error: String?)] = []
    let bytes = Array(text.utf8)
    var i = 0
    while i < bytes.count {
        try parser.feed(Array(bytes[i..<min(i + chunk, bytes.count)])) { out.append(($0.fields, $0.rawLine, $0.line, $0.syntaxError)) }
        i += chunk
    }
    try parser.finish { out.append(($0.fields, $0.rawLine, $0.line, $0.syntaxError)) }
    return out
}

@Suite struct CSVParserTests {
    @Test func quotingLineEndsAndBOM() throws {
        for chunk in [1, 2, 3, 7, 1000] {
            let records = try parse("\u{FEFF}a,b,c\r\n\"x, y\",\"he said \"\"hi\"\"\",\r\n\"multi\nline\",2,\"\"\n", chunk: chunk)
            #expect(records.count == 3, "chunk \(chunk)")
            #expect(records[0].fields == ["a", "b", "c"])
            #expect(records[1].fields == ["x, y", "he said \"hi\"", ""])
            #expect(records[1].raw == "\"x, y\",\"he said \"\"hi\"\"\",")
            #expect(records[2].fields == ["multi\nline", "2", ""])
            #expect(records[2].line == 3)
        }
    }

    @Test func noFinalNewlineAndShortInputs() throws {
        #expect(try parse("a,b\n1,2").map(\.fields) == [["a", "b"], ["1", "2"]])
        #expect(try parse("ab").map(\.fields) == [["ab"]])
        #expect(try parse("\u{FEFF}").isEmpty)
        #expect(try parse("").isEmpty)
    }

    @Test func unterminatedQuoteIsAFileError() throws {
        #expect(throws: CSVSyntaxError.self) { try parse("a,b\n1,\"unterminated\n2,3\n") }
    }

    /// The size limits hold whatever the chunking, on the per-byte paths too (`""` pairs in a
    /// quoted field, commas), within one chunk of the limit.
    @Test func sizeLimitsAreCheckedPerChunk() throws {
        func fails(_ text: String, chunk: Int, _ message: String) {
            var parser = CSVParser(maxFieldBytes: 16, maxRecordBytes: 64)
            let bytes = Array(text.utf8)
            var i = 0
            do {
                while i < bytes.count {
                    try parser.feed(Array(bytes[i..<min(i + chunk, bytes.count)])) { _ in }
                    i += chunk
                }
                try parser.finish { _ in }
                Issue.record("no limit hit for \(text.prefix(20))… in chunks of \(chunk)")
            } catch let error as CSVSyntaxError {
                #expect(error.line == 2 && error.message.contains(message), "\(error)")
                #expect(i <= 64 + 2 * chunk + 4, "noticed only after \(i) bytes")
            } catch {
                Issue.record("\(error)")
            }
        }
        for chunk in [1, 5, 32] {
            fails("a,b\n" + String(repeating: "x", count: 200), chunk: chunk, "field 1 of the record starting on this line is longer than 16 bytes")
            fails("a,b\n\"" + String(repeating: "\"\"", count: 100), chunk: chunk, "longer than 16 bytes")
            fails("a,b\n" + String(repeating: "1234567890,", count: 20), chunk: chunk, "the record starting on this line is longer than 64 bytes")
        }
        var parser = CSVParser(maxFieldBytes: 16, maxRecordBytes: 64)
        var rows = 0
        try parser.feed(Array((String(repeating: "0123456789abcdef,", count: 3) + "\n").utf8)) { _ in rows += 1 }
        #expect(rows == 1)  // exactly at the field limit, under the record limit
    }

    @Test func strayQuotesAreRowErrors() throws {
        let records = try parse("a,b\n1,ab\"c\n\"x\"y,2\n")
        #expect(records[1].error?.contains("double quote inside the unquoted field 2") == true)
        #expect(records[2].error?.contains("text after the closing quote of field 1") == true)
        #expect(records[2].fields == ["xy", "2"])
    }
}
