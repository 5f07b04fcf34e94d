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

    @Test func strayQuotesAreRowErrors() throws {
        let records = try parse("a,b\n1,ab\"c\n\"x\"y,2\n")
        #expect(records[1].error?.contains("double quote inside the unquoted field 2") == true)
        #expect(records[2].error?.contains("text after the closing quote of field 1") == true)
        #expect(records[2].fields == ["xy", "2"])
    }
}
