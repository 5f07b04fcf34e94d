import Foundation
import NFLDBCore
import NFLDBHTTP
import NFLDBTestSupport
import Testing

/// libcurl transfers against the scripted local server (127.0.0.1): backpressure, bodies sent and
/// read whole, and every way a server can fail to end a response — each cut off in time, with the
/// connection closed and the transfer's thread gone.
@Suite struct HTTPClientTests {
    /// A POST body goes out exactly (NULs included, no `Expect: 100-continue` wait), with its
    /// headers; the reply is read whole.
    @Test func postSendsTheBodyAndReadsTheReply() throws {
        let server = try ScenarioServer(responses: [["status": 202, "headers": ["X-Reply": "ok"]]])
        let payload = "{\"text\":\"" + String(repeating: "é", count: 3000) + "\"}\u{0}end"
        let started = ContinuousClock.now
        let exchange = try HTTPClient.send(method: "POST", url: server.url, headers: [("Content-Type", "application/json"), ("X-Test", "1")],
                                           body: Data(payload.utf8), timeout: .seconds(10))
        #expect(ContinuousClock.now - started < .seconds(1), "no 100-continue round trip")
        #expect(exchange.status == 202 && exchange.value("x-reply") == "ok")
        #expect(String(decoding: exchange.body, as: UTF8.self) == "unavailable\n")
        let sent = server.bodies
        #expect(sent.count == 1 && sent.first?.method == "POST")
        #expect(sent.first.map { Data($0.body.unicodeScalars.map { UInt8($0.value) }) } == Data(payload.utf8), "the body arrives byte for byte")
        let headers = server.requests.first?.headers ?? [:]
        #expect(headers["content-type"] == "application/json" && headers["x-test"] == "1" && headers["expect"] == nil, "\(headers)")
        // An empty body is still a POST, with Content-Length 0.
        let empty = try HTTPClient.send(method: "POST", url: server.url, headers: [], body: Data(), timeout: .seconds(10))
        #expect(empty.status == 202)
        #expect(server.bodies.count == 2 && server.bodies.last?.method == "POST" && server.bodies.last?.body == "")
        #expect(server.requests.last?.headers["content-length"] == "0")
    }

    /// A header whose value holds CR/LF would start a second header: it is not sent at all.
    @Test func headersWithLineBreaksAreNotSent() throws {
        let server = try ScenarioServer(responses: [["status": 200]])
        _ = try HTTPClient.send(method: "GET", url: server.url, headers: [("X-Ok", "1"), ("X-Bad", "a\r\nX-Injected: 1")], body: nil, timeout: .seconds(10))
        let headers = server.requests.first?.headers ?? [:]
        #expect(headers["x-ok"] == "1" && headers["x-bad"] == nil && headers["x-injected"] == nil, "\(headers)")
    }

    /// An endless body: cut at the limit at once, and the server sees the connection closed.
    @Test func endlessBodyIsCutAtTheLimit() throws {
        let server = try ScenarioServer(responses: [["status": 200, "endless": "A"]])
        let started = ContinuousClock.now
        #expect {
            _ = try HTTPClient.send(method: "POST", url: server.url, headers: [], body: Data("{}".utf8), timeout: .seconds(30), maxBodyBytes: 1 << 20)
        } throws: { error in
            guard case HTTPClientError.bodyTooLarge(limit: 1 << 20) = error else { return false }
            return true
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(poll(timeout: .seconds(10)) { !server.closedEndlessBodies.isEmpty }, "the connection is closed")
        #expect((server.closedEndlessBodies.first?.sent ?? .max) < 64 << 20)
    }

    /// A server that never answers, and one that stops halfway through the body: both end at the
    /// timeout, and the transfer threads are gone soon after.
    @Test func silentAndStalledServersTimeOut() throws {
        let threadsBefore = Self.httpThreads()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-http-\(UUID().uuidString).txt").path
        try String(repeating: "x", count: 10_000).write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for spec: [String: Any] in [["status": 200, "hang": true], ["status": 200, "file": file, "stall_after": 100]] {
            let server = try ScenarioServer(responses: [spec])
            let started = ContinuousClock.now
            #expect {
                _ = try HTTPClient.send(method: "GET", url: server.url, headers: [], body: nil, timeout: .seconds(1))
            } throws: { error in
                guard case HTTPClientError.timedOut = error else { return false }
                return true
            }
            let took = ContinuousClock.now - started
            #expect(took >= .milliseconds(900) && took < .seconds(3), "\(spec): \(took)")
        }
        #expect(poll(timeout: .seconds(5)) { Self.httpThreads() <= threadsBefore }, "no transfer thread is left")
    }

    /// Nothing listens: a connection error, not a timeout.
    @Test func refusedConnection() throws {
        let port = try LoopbackPort.free()
        #expect {
            _ = try HTTPClient.send(method: "GET", url: "http://127.0.0.1:\(port)/", headers: [], body: nil, timeout: .seconds(5))
        } throws: { error in
            guard case HTTPClientError.couldNotConnect = error else { return false }
            return true
        }
    }

    /// Threads of this process named `nfldb-http` (the transfers').
    static func httpThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { ((try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("nfldb-http") }.count
    }
    /// The parser is slower than the link: the transfer is held back (bounded read-ahead), not
    /// buffered whole; a load that reads everything still gets every row.
    @Test func slowReaderHoldsTheTransferBack() throws {
        let server = try ScenarioServer(responses: [["status": 200, "endless": "A"]])
        let transfer = CurlTransfer(url: server.url, headers: [], connectTimeout: .seconds(5), hardDeadline: .now + .seconds(30))
        defer { transfer.stop() }
        guard case .response(let response) = transfer.waitForResponse(until: .now + .seconds(10)) else {
            Issue.record("no response")
            return
        }
        #expect(response.status == 200 && response.value("content-type") == "text/csv")
        Thread.sleep(forTimeInterval: 1)
        let held = transfer.received
        Thread.sleep(forTimeInterval: 1)
        #expect(held >= CurlTransfer.bufferLimit && held < CurlTransfer.bufferLimit + (1 << 20), "\(held) bytes read ahead")
        #expect(transfer.received == held, "nothing more is taken while nobody reads")
        var read = 0
        while read < 3 * CurlTransfer.bufferLimit, case .data(let data) = transfer.next(until: .now + .seconds(10), idle: .seconds(5)) { read += data.count }
        #expect(read >= 3 * CurlTransfer.bufferLimit, "reading lets the transfer go on")
        transfer.stop()
        #expect(poll(timeout: .seconds(10)) { !server.closedEndlessBodies.isEmpty }, "stop() closes the connection")
    }

}
