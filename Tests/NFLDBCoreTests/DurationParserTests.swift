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

    @Test("rejects what is not a duration, and what is too long to hold (a trap before: Int64 milliseconds overflowed)", arguments: ["", "   ", "soon", "5x", "-5s", "s", "1.2.3s", "5 parsecs", "ms5", "99999999999999999s", "99999999d", "36501d"])
    func rejects(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test("100 years is the longest duration a setting may give")
    func longest() {
        #expect(DurationParser.parse("36500d") == .seconds(36500 * 86400))
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
