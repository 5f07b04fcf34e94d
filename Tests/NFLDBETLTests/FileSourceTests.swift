import Foundation
import NFLDBCore
import Testing
@testable import NFLDBETL

@Suite("a file source read again")
struct FileSourceTests {
    /// The direct path's fallback reads the input again: the same open file from its start, even when
    /// another file was renamed over the path meanwhile (how download jobs publish).
    @Test func replayReadsTheSameFileNotThePathAgain() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-filesource-\(getpid())-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/games.csv"
        let original = Data((0..<50_000).map { "row \($0)\n" }.joined().utf8)
        try original.write(to: URL(fileURLWithPath: path))
        let source = try FileSource(path: path)
        #expect(source.canReplay)
        var first = Data()
        while let chunk = try source.read() { first.append(chunk) }
        #expect(first == original)
        // A new file renamed over the path (the old one stays open).
        try Data("game_id\nother\n".utf8).write(to: URL(fileURLWithPath: dir + "/new.csv"))
        #expect(rename(dir + "/new.csv", path) == 0)
        let again = try source.replay()
        var second = Data()
        while let chunk = try again.read() { second.append(chunk) }
        #expect(second == original, "read \(second.count) bytes, expected \(original.count)")
        #expect(again.name == source.name)
    }
}
