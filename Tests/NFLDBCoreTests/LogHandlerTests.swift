import Foundation
import Logging
import NFLDBCore
import Synchronization
import Testing

@Suite("NFLDBLogHandler and CorrelationID")
struct LogHandlerTests {
    static let when = Date(timeIntervalSince1970: 1_790_000_000.25)

    static func parse(_ line: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(line)")
    }

    @Test("JSON lines are valid JSON carrying correlation_id, command and duration_ms")
    func jsonRender() throws {
        let line = NFLDBLogHandler.render(
            format: .json, timestamp: Self.when, level: .info, label: "nfldb.ping", message: "ping \"ok\"\nsecond line",
            metadata: [
                "correlation_id": .string("0123abcd4567ef89"),
                "command": .string("ping"),
                "duration_ms": .stringConvertible(12.5),
                "db.rows": .stringConvertible(3),
                "flags": .array([.string("a"), .string("b")]),
            ])
        #expect(!line.contains("\n"), "one log record is one line")
        let object = try Self.parse(line)
        #expect(object["correlation_id"] as? String == "0123abcd4567ef89")
        #expect(object["command"] as? String == "ping")
        #expect(object["duration_ms"] as? Double == 12.5)
        #expect(object["db.rows"] as? Int == 3)
        #expect(object["flags"] as? [String] == ["a", "b"])
        #expect(object["level"] as? String == "info")
        #expect(object["logger"] as? String == "nfldb.ping")
        #expect(object["message"] as? String == "ping \"ok\"\nsecond line")
        let ts = try #require(object["ts"] as? String)
        #expect(ts.hasPrefix("2026-09-21T"), "ISO 8601 timestamp, got \(ts)")
        #expect(ts.hasSuffix("Z"))
    }

    @Test("a correlation id made only of digits stays a JSON string")
    func numericCorrelationID() throws {
        let line = NFLDBLogHandler.render(
            format: .json, timestamp: Self.when, level: .info, label: "nfldb", message: "m",
            metadata: ["correlation_id": .string("1234567890123456")])
        let object = try Self.parse(line)
        #expect(object["correlation_id"] as? String == "1234567890123456")
    }

    @Test("metadata cannot overwrite the fixed JSON fields")
    func reservedKeys() throws {
        let line = NFLDBLogHandler.render(
            format: .json, timestamp: Self.when, level: .warning, label: "nfldb", message: "real",
            metadata: ["message": .string("fake"), "level": .string("trace")])
        let object = try Self.parse(line)
        #expect(object["message"] as? String == "real")
        #expect(object["level"] as? String == "warning")
    }

    @Test("text lines carry the level, label, message and sorted key=value metadata")
    func textRender() {
        let line = NFLDBLogHandler.render(
            format: .text, timestamp: Self.when, level: .info, label: "nfldb.migrate", message: "applied 0001_games",
            metadata: ["duration_ms": .stringConvertible(12), "correlation_id": .string("abc"), "note": .string("two words")])
        #expect(line.contains(" info    nfldb.migrate: applied 0001_games "))
        #expect(line.hasSuffix("correlation_id=abc duration_ms=12 note=\"two words\""))
    }

    @Test("the handler merges metadata, filters by level, and scrubs secrets before writing")
    func handlerWrites() throws {
        let lines = Mutex<[String]>([])
        let sink = LogSink { line in lines.withLock { $0.append(line) } }
        var logger = Logger(label: "nfldb.test") { label in
            NFLDBLogHandler(
                label: label, format: .json, level: .info, sink: sink,
                metadata: ["correlation_id": .string("corr-1"), "command": .string("ping")])
        }
        logger[metadataKey: "db.name"] = "nfl"
        logger.debug("not shown")
        logger.info("connecting to postgresql://etl:log-secret-77@db/nfl", metadata: ["duration_ms": .stringConvertible(1.5)])
        logger.error("failed", metadata: ["conninfo": .string("host=db password=other-secret-88")])

        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        for line in written {
            #expect(!line.contains("log-secret-77"))
            #expect(!line.contains("other-secret-88"))
            let object = try Self.parse(line)
            #expect(object["correlation_id"] as? String == "corr-1")
            #expect(object["command"] as? String == "ping")
            #expect(object["db.name"] as? String == "nfl")
        }
        let first = try Self.parse(written[0])
        #expect(first["duration_ms"] as? Double == 1.5)
        #expect((first["message"] as? String)?.contains(SecretRedactor.mask) == true)
        #expect(try Self.parse(written[1])["level"] as? String == "error")
    }

    @Test("a 20 MB message or metadata value is cut to 32 Ki characters with the bytes left out; a secret across the cut is masked, not half shown")
    func hugeValuesAreCut() throws {
        let lines = Mutex<[String]>([])
        let sink = LogSink { line in lines.withLock { $0.append(line) } }
        let logger = Logger(label: "nfldb.test") { NFLDBLogHandler(label: $0, format: .json, level: .info, sink: sink) }
        let limit = NFLDBLogHandler.valueLimit
        // The password starts 10 characters before the cut: cut first, its first half would be written.
        let body = String(repeating: "x", count: limit - 10 - "postgresql://u:".count) + "postgresql://u:cut-secret-4242@db/nfl " + String(repeating: "é", count: 20_000_000 / 2)
        logger.error("upstream answered", metadata: ["body": .string(body), "small": .string("kept")])
        logger.error(Logger.Message(stringLiteral: body))
        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        // With many secrets registered (a long-lived process), the cut stays quick.
        for index in 0..<200 { SecretRedactor.shared.register("registered-secret-\(index)-\(UUID().uuidString)") }
        let started = ContinuousClock.now
        _ = NFLDBLogHandler.capped(body)
        #expect(ContinuousClock.now - started < .seconds(10), "\(ContinuousClock.now - started)")
        for line in written {
            #expect(line.utf8.count < 3 * limit, "\(line.utf8.count) bytes")
            #expect(!line.contains("cut-secret") && !line.contains("cut-s"), "part of the password written")
        }
        let first = try Self.parse(written[0])
        let cut = try #require(first["body"] as? String)
        #expect(cut.hasPrefix(String(repeating: "x", count: 100)) && cut.contains(SecretRedactor.mask))
        #expect(cut.hasSuffix(" bytes in all; the rest not logged]"), "\(cut.suffix(60))")
        #expect(first["small"] as? String == "kept")
        #expect((try Self.parse(written[1])["message"] as? String)?.hasSuffix(" bytes in all; the rest not logged]") == true)
        // Under the limit nothing changes.
        #expect(NFLDBLogHandler.capped("short") == "short")
    }

    @Test("NFLDB_CORRELATION_ID is honoured; otherwise a fresh 16-hex-digit id is made")
    func correlationID() {
        #expect(CorrelationID.resolve(environment: ["NFLDB_CORRELATION_ID": "cron-2026-11-27"]) == "cron-2026-11-27")
        let fresh = CorrelationID.resolve(environment: ["NFLDB_CORRELATION_ID": ""])
        #expect(fresh.count == 16)
        #expect(fresh.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(CorrelationID.resolve(environment: [:]) != fresh)
    }
}
