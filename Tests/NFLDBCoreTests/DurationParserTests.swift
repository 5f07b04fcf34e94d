import Foundation
import NFLDBCore
import Testing

@Suite("DurationParser")
struct DurationParserTests {
    @Test("parses the units nfldb documents", arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("5s", .seconds(5)),
        ("5 s", .seconds(5)),
        ("7", .seconds(7)),
        ("1.5s", .milliseconds(1500)),
        ("0", .zero),
        ("10min", .seconds(600)),
        ("10m", .seconds(600)),
        ("2h", .seconds(7200)),
        ("400d", .seconds(400 * 86400)),
        ("3 Seconds", .seconds(3)),
        (" 1hour ", .seconds(3600)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test("rejects what is not a duration, and what is too long to hold (a trap before: Int64 milliseconds overflowed)", arguments: ["", "   ", "soon", "5x", "-5s", "s", "1.2.3s", "5 parsecs", "ms5", "99999999999999999s", "1e30s", "inf"])
    func rejects(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test("the longest duration is what Int64 milliseconds hold (~285 million years)")
    func longest() {
        #expect(DurationParser.parse("99999999999d") == .seconds(Int64(99_999_999_999) * 86400))
        #expect(DurationParser.parse("9000000000000000s") == .seconds(9_000_000_000_000_000))
        #expect(DurationParser.parse("9000000000000001s") == nil)
    }

    @Test("renders milliseconds and PostgreSQL settings")
    func rendering() {
        #expect(DurationParser.milliseconds(.seconds(5)) == 5000)
        #expect(DurationParser.milliseconds(.milliseconds(1500)) == 1500)
        #expect(DurationParser.milliseconds(.microseconds(2500)) == 2)
        #expect(DurationParser.postgresSetting(.seconds(5)) == "5000ms")
        #expect(DurationParser.postgresSetting(.zero) == "0ms")
        #expect(DurationParser.postgresSetting(DurationParser.parse("2min")!) == "120000ms")
    }
}

@Suite("FileLock")
struct FileLockTests {
    @Test("a lock file with a second hard link is refused (the pid write would land in the other file); a fresh one locks, a second taker is told the holder's pid")
    func hardLinkRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-filelock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "precious\n".write(toFile: dir + "/victim", atomically: true, encoding: .utf8)
        #expect(link(dir + "/victim", dir + "/state.lock") == 0)
        switch FileLock.acquire(dir + "/state.lock") {
        case .failure(.notOurs): break
        case let other: Issue.record("a hard-linked lock file was taken: \(other)")
        }
        #expect(try String(contentsOfFile: dir + "/victim", encoding: .utf8) == "precious\n")
        let fd = try FileLock.acquire(dir + "/fresh.lock").get()
        defer { close(fd) }
        switch FileLock.acquire(dir + "/fresh.lock") {
        case .failure(.held(_, let holder)): #expect(holder == String(getpid()))
        case let other: Issue.record("a held lock was taken again: \(other)")
        }
    }
}
