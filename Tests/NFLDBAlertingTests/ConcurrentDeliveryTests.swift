import Foundation
import NFLDBAlerting
import NFLDBCore
import NFLDBTestSupport
import Synchronization
import Testing

/// A TCP listener on 127.0.0.1 that never accepts: connections complete in the kernel's backlog and
/// the request is sent, but no answer ever comes (a hung Slack/PagerDuty/webhook endpoint).
final class HangingReceiver: Sendable {
    let port: Int
    private let listener: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(listener) }

    var url: String { "http://127.0.0.1:\(port)" }
}

@Suite("Alerting: concurrent delivery bounded by the alert timeout", .serialized)
struct ConcurrentDeliveryTests {
    static let checks = ["replication", "connections", "wraparound", "archiving"]

    static func notifications(destinations: [String]) -> [AlertNotification] {
        let engine = AlertEngine(policy: AlertPolicy(consecutive: 1), destinations: destinations)
        var state = AlertState()
        let inputs = checks.map {
            AlertInput(target: "db1:5432/nfl", check: $0, level: .critical, message: "\($0) is critical", hint: "look at \($0)", value: "99%")
        }
        return engine.evaluate(inputs, state: &state, now: Date(timeIntervalSince1970: 1_800_000_000))
    }

    @Test("4 alerting checks × 3 hanging or refusing destinations + 1 reachable: one alert timeout in total, and the reachable receiver gets all 4 payloads")
    func hangingDestinations() throws {
        let reachable = try LocalReceiver(status: 202)
        defer { reachable.stop() }
        let hangingA = try HangingReceiver()
        let hangingB = try HangingReceiver()
        let refusing = try LocalReceiver()
        refusing.stop()
        let routingKey = "R0UT1NGKEY0000000000000000000099"
        let destinations = [
            ResolvedDestination(name: "hang-webhook", kind: .webhook, secret: hangingA.url + "/hook/secret-token-a"),
            ResolvedDestination(name: "hang-slack", kind: .slack, secret: hangingB.url + "/services/T0/B0/secret-token-b"),
            ResolvedDestination(name: "refused-pd", kind: .pagerduty, secret: routingKey, endpoint: refusing.url + "/v2/enqueue"),
            ResolvedDestination(name: "ok", kind: .webhook, secret: reachable.url + "/ok"),
        ]
        let notifications = Self.notifications(destinations: destinations.map(\.name))
        #expect(notifications.count == 16)
        let timeout: TimeInterval = 2
        let dispatcher = AlertDispatcher(destinations: destinations, attempts: 3, backoff: 0.3, timeout: timeout, logger: TestCluster.logger)

        let start = ContinuousClock.now
        let reports = dispatcher.deliver(notifications)
        let elapsed = ContinuousClock.now - start

        // Serially this is 8 hung POSTs × 2 s plus 4 × 0.9 s of back-off ≈ 20 s.
        #expect(elapsed < .milliseconds(Int(timeout * 1000) + 700), "delivery took \(elapsed) with a \(timeout) s alert timeout")
        #expect(reports.map(\.notification) == notifications, "one report per notification, in order")

        let delivered = reports.filter { $0.notification.destination == "ok" }
        #expect(delivered.count == 4)
        #expect(delivered.allSatisfy { $0.succeeded && $0.attempts == 1 })
        let payloads = reachable.requests.map(\.json)
        #expect(reachable.requests.count == 4)
        #expect(Set(payloads.compactMap { $0["check"] as? String }) == Set(Self.checks))
        #expect(payloads.allSatisfy { $0["status"] as? String == "firing" && $0["level"] as? String == "CRITICAL" })

        for report in reports where report.notification.destination.hasPrefix("hang-") {
            #expect(!report.succeeded)
            #expect(report.error?.contains("alert timeout") == true || report.error?.contains("timed out") == true, "\(report.line)")
            #expect(!report.line.contains("secret-token"), "\(report.line)")
        }
        for report in reports where report.notification.destination == "refused-pd" {
            #expect(!report.succeeded)
            #expect(report.attempts >= 2, "refused quickly, so retried with back-off: \(report.line)")
            #expect(!report.line.contains(routingKey))
        }
    }

    @Test("the batch bound holds with more hung notifications than concurrent slots")
    func moreThanSlots() throws {
        let hanging = try HangingReceiver()
        let destinations = (0..<5).map { ResolvedDestination(name: "hang-\($0)", kind: .webhook, secret: hanging.url + "/h\($0)") }
        let notifications = Self.notifications(destinations: destinations.map(\.name))
        #expect(notifications.count == 20)
        let dispatcher = AlertDispatcher(
            destinations: destinations, attempts: 2, backoff: 0.1, timeout: 1, maxConcurrent: 4, logger: TestCluster.logger)
        let start = ContinuousClock.now
        let reports = dispatcher.deliver(notifications)
        #expect(ContinuousClock.now - start < .milliseconds(1700))
        #expect(reports.count == 20)
        #expect(reports.allSatisfy { !$0.succeeded && $0.error?.contains("alert timeout") == true }, "\(reports.map(\.line))")
    }

    @Test("a sub-second alert timeout still delivers to a receiver that answers (corelibs URLSession rounds timeouts down to whole seconds)")
    func subSecondTimeout() throws {
        let reachable = try LocalReceiver(status: 202)
        defer { reachable.stop() }
        let destinations = [ResolvedDestination(name: "ok", kind: .webhook, secret: reachable.url + "/ok")]
        // 0.9 s: before the transport enforced the bound itself, libcurl got 0 s and failed at once.
        let dispatcher = AlertDispatcher(destinations: destinations, attempts: 3, backoff: 0.01, timeout: 0.9, logger: TestCluster.logger)
        let reports = dispatcher.deliver(Self.notifications(destinations: ["ok"]))
        #expect(reports.count == 4)
        #expect(reports.allSatisfy { $0.succeeded }, "\(reports.map(\.line))")
        #expect(reachable.requests.count == 4)
    }
}
