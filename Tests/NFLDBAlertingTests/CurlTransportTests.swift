import Foundation
import NFLDBAlerting
import NFLDBCore
import NFLDBTestSupport
import Testing

/// The webhook transport against a destination that misbehaves (scripted server on 127.0.0.1):
/// each ends within the alert timeout with a reason that names no URL.
@Suite struct CurlTransportTests {
    /// An endless reply is cut at 1 MiB: the POST fails at once (not after the timeout, and not by
    /// reading gigabytes in the background), and the server sees the connection closed.
    @Test func endlessReplyIsCutOff() throws {
        let server = try ScenarioServer(responses: [["status": 200, "endless": "A"]])
        let started = ContinuousClock.now
        let error = #expect(throws: TransportError.self) {
            try CurlAlertTransport().post(url: URL(string: server.url + "?token=s3cr3t")!, body: Data("{}".utf8), timeout: 20)
        }
        #expect(error?.reason == "the response body is larger than 1024 KiB (not read further)", "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(poll(timeout: .seconds(10)) { !server.closedEndlessBodies.isEmpty })
        #expect(server.bodies.first?.body == "{}")
    }

    /// A destination that accepts the connection and never answers: "timed out" at the timeout.
    @Test func silentDestinationTimesOut() throws {
        let server = try ScenarioServer(responses: [["status": 200, "hang": true]])
        let started = ContinuousClock.now
        let error = #expect(throws: TransportError.self) {
            try CurlAlertTransport().post(url: URL(string: server.url)!, body: Data("{}".utf8), timeout: 0.5)
        }
        #expect(error?.reason == "timed out (no answer within 0.5 s)", "\(String(describing: error))")
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(450) && took < .seconds(2), "\(took)")
    }

    /// Nothing listens: "connection refused", without the URL's path or query.
    @Test func refusedDestination() throws {
        let port = try LoopbackPort.free()
        let error = #expect(throws: TransportError.self) {
            try CurlAlertTransport().post(url: URL(string: "http://127.0.0.1:\(port)/hooks/SECRET?k=SECRET")!, body: Data("{}".utf8), timeout: 5)
        }
        #expect(error?.reason.hasPrefix("connection refused (") == true, "\(String(describing: error))")
        #expect(error?.reason.contains("SECRET") == false)
    }
}
