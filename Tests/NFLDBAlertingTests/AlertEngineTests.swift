import Foundation
import Logging
import NFLDBAlerting
import NFLDBCore
import NFLDBTestSupport
import Testing

/// Drives the engine + dispatcher like consecutive cron runs, five minutes apart, against a local receiver.
struct AlertHarness {
    let receiver: LocalReceiver
    var engine: AlertEngine
    var dispatcher: AlertDispatcher
    var state = AlertState()
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    static let routingKey = "R0UT1NGKEY0000000000000000000042"
    static let slackPath = "/services/T000/B000/SeCrEtToKeN"

    init(receiver: LocalReceiver, policy: AlertPolicy = AlertPolicy(consecutive: 2), attempts: Int = 3) {
        self.receiver = receiver
        let destinations = [
            ResolvedDestination(name: "oncall", kind: .pagerduty, secret: Self.routingKey, endpoint: receiver.url + "/v2/enqueue"),
            ResolvedDestination(name: "dba-channel", kind: .slack, secret: receiver.url + Self.slackPath),
        ]
        engine = AlertEngine(policy: policy, destinations: destinations.map(\.name))
        dispatcher = AlertDispatcher(destinations: destinations, attempts: attempts, backoff: 0.01, timeout: 5, logger: TestCluster.logger)
    }

    /// One cron run with these results; returns the delivery reports.
    @discardableResult
    mutating func run(_ inputs: [AlertInput]) -> [DeliveryReport] {
        let notifications = engine.evaluate(inputs, state: &state, now: now)
        let reports = dispatcher.deliver(notifications)
        for report in reports { AlertEngine.record(report.notification, error: report.error, in: &state) }
        now = now.addingTimeInterval(300)
        return reports
    }

    static func replication(_ level: AlertLevel) -> AlertInput {
        AlertInput(
            target: "db1:5432/nfl", check: "replication", level: level,
            message: level == .ok ? "standby 'replica1' (10.0.0.2) streaming, replay lag 0 B" : "standby 'replica1' (10.0.0.2) streaming, replay lag 2.0 GB",
            hint: level == .ok ? nil : "On the standby, check for paused replay & conflicts.", value: level == .ok ? "0 B" : "2.0 GB")
    }
}

@Suite("Alerting: state between runs, exact Slack and PagerDuty payloads, flapping, dead receivers", .serialized)
struct AlertEngineTests {
    @Test("ten failing runs give one trigger per destination, with the exact PagerDuty and Slack payloads")
    func tenFailuresOneTrigger() throws {
        let receiver = try LocalReceiver(status: 202, body: #"{"status":"success"}"#)
        defer { receiver.stop() }
        var harness = AlertHarness(receiver: receiver)
        for _ in 0..<10 { harness.run([AlertHarness.replication(.critical)]) }
        let requests = receiver.requests
        #expect(requests.count == 2)
        let pagerDuty = try #require(requests.first { $0.path == "/v2/enqueue" })
        #expect(pagerDuty.method == "POST")
        #expect(pagerDuty.headers["content-type"] == "application/json")
        let expectedTrigger: NSDictionary = [
            "routing_key": AlertHarness.routingKey,
            "event_action": "trigger",
            "dedup_key": "nfldb:db1:5432/nfl:replication",
            "client": "nfldb health",
            "payload": [
                "summary": "CRITICAL replication on db1:5432/nfl: standby 'replica1' (10.0.0.2) streaming, replay lag 2.0 GB",
                "source": "db1:5432/nfl",
                "severity": "critical",
                "timestamp": "2027-01-15T08:05:00Z",
                "component": "postgresql",
                "group": "db1:5432/nfl",
                "class": "replication",
                "custom_details": [
                    "check": "replication", "target": "db1:5432/nfl", "status": "CRITICAL",
                    "message": "standby 'replica1' (10.0.0.2) streaming, replay lag 2.0 GB",
                    "first_seen": "2027-01-15T08:00:00Z", "hint": "On the standby, check for paused replay & conflicts.", "value": "2.0 GB",
                ],
            ],
        ]
        #expect(pagerDuty.json == expectedTrigger)

        let slack = try #require(requests.first { $0.path == AlertHarness.slackPath })
        let expectedSlack: NSDictionary = [
            "text": ":red_circle: CRITICAL replication on db1:5432/nfl: standby 'replica1' (10.0.0.2) streaming, replay lag 2.0 GB",
            "blocks": [
                ["type": "section", "text": [
                    "type": "mrkdwn",
                    "text": ":red_circle: *CRITICAL* `replication` on `db1:5432/nfl`\nstandby 'replica1' (10.0.0.2) streaming, replay lag 2.0 GB\n"
                        + "*What to do:* On the standby, check for paused replay &amp; conflicts.",
                ]],
                ["type": "context", "elements": [["type": "mrkdwn", "text": "value 2.0 GB · first seen 2027-01-15T08:00:00Z · nfldb health"]]],
            ],
        ]
        #expect(slack.json == expectedSlack)
    }

    @Test("recovery gives exactly one resolve per destination, with the exact payloads")
    func recoveryOneResolve() throws {
        let receiver = try LocalReceiver(status: 202)
        defer { receiver.stop() }
        var harness = AlertHarness(receiver: receiver)
        for _ in 0..<3 { harness.run([AlertHarness.replication(.warning)]) }
        #expect(receiver.requests.count == 2)
        for _ in 0..<3 { harness.run([AlertHarness.replication(.ok)]) }
        let resolves = Array(receiver.requests.dropFirst(2))
        #expect(resolves.count == 2)
        let pagerDuty = try #require(resolves.first { $0.path == "/v2/enqueue" })
        #expect(pagerDuty.json == [
            "routing_key": AlertHarness.routingKey, "event_action": "resolve", "dedup_key": "nfldb:db1:5432/nfl:replication",
        ] as NSDictionary)
        let slack = try #require(resolves.first { $0.path == AlertHarness.slackPath })
        let summary = "RESOLVED replication on db1:5432/nfl: back to OK (was WARNING since 2027-01-15T08:00:00Z)"
        #expect(slack.json == [
            "text": ":large_green_circle: \(summary)",
            "blocks": [
                ["type": "section", "text": [
                    "type": "mrkdwn",
                    "text": ":large_green_circle: *RESOLVED* `replication` on `db1:5432/nfl`\nstandby 'replica1' (10.0.0.2) streaming, replay lag 0 B",
                ]],
                ["type": "context", "elements": [["type": "mrkdwn", "text": "value 0 B · first seen 2027-01-15T08:00:00Z · nfldb health"]]],
            ],
        ] as NSDictionary)
    }

    @Test("a flapping check (bad, good, bad, good…) never pages; UNKNOWN neither opens nor resolves")
    func flappingDoesNotPage() throws {
        let receiver = try LocalReceiver(status: 202)
        defer { receiver.stop() }
        var harness = AlertHarness(receiver: receiver)
        for run in 0..<12 { harness.run([AlertHarness.replication(run % 2 == 0 ? .critical : .ok)]) }
        #expect(receiver.requests.isEmpty)
        // bad, unknown, bad: UNKNOWN does not break the streak of failures either.
        harness.run([AlertHarness.replication(.critical)])
        harness.run([AlertHarness.replication(.unknown)])
        #expect(receiver.requests.isEmpty)
        harness.run([AlertHarness.replication(.critical)])
        #expect(receiver.requests.count == 2)
        harness.run([AlertHarness.replication(.unknown)])
        #expect(receiver.requests.count == 2, "UNKNOWN does not resolve an open problem")
    }

    @Test("per-check consecutive counts, re-notification after the repeat interval, escalation notifies at once")
    func repeatAndEscalation() throws {
        let receiver = try LocalReceiver(status: 202)
        defer { receiver.stop() }
        var harness = AlertHarness(receiver: receiver, policy: AlertPolicy(consecutive: 3, consecutiveByCheck: ["replication": 1], repeatInterval: 3600))
        harness.run([AlertHarness.replication(.warning)])
        #expect(receiver.requests.count == 2, "consecutive 1 for replication: the first failure pages")
        for _ in 0..<11 { harness.run([AlertHarness.replication(.warning)]) }
        #expect(receiver.requests.count == 2, "55 minutes later: still within the repeat interval")
        harness.run([AlertHarness.replication(.warning)])
        #expect(receiver.requests.count == 4, "after an hour: one reminder per destination")
        harness.run([AlertHarness.replication(.critical)])
        #expect(receiver.requests.count == 6, "WARNING → CRITICAL notifies at once")
        let escalation = receiver.requests.last { $0.path == "/v2/enqueue" }?.json["payload"] as? NSDictionary
        #expect(escalation?["severity"] as? String == "critical")
    }

    @Test("a dead receiver does not crash the run: retried with back-off, reported without secrets, delivered on a later run")
    func deadReceiver() throws {
        let receiver = try LocalReceiver(status: 202)
        var harness = AlertHarness(receiver: receiver)
        receiver.stop()   // the port is now closed: connection refused
        harness.run([AlertHarness.replication(.critical)])
        let reports = harness.run([AlertHarness.replication(.critical)])
        #expect(reports.count == 2)
        for report in reports {
            #expect(!report.succeeded)
            #expect(report.attempts == 3)
            #expect(report.error?.contains("refused") == true || report.error?.contains("connect") == true, "\(report.error ?? "")")
            #expect(!report.line.contains(AlertHarness.routingKey))
            #expect(!report.line.contains("SeCrEtToKeN"))
            #expect(report.line.contains("FAILED after 3 attempts"))
        }
        let entry = try #require(harness.state.checks["db1:5432/nfl|replication"])
        #expect(entry.delivered.isEmpty)
        #expect(entry.deliveryErrors.count == 2)

        // The receiver comes back (a new one; the dispatcher is pointed at it): the next run retries.
        let revived = try LocalReceiver(status: 202)
        defer { revived.stop() }
        let destinations = [
            ResolvedDestination(name: "oncall", kind: .pagerduty, secret: AlertHarness.routingKey, endpoint: revived.url + "/v2/enqueue"),
            ResolvedDestination(name: "dba-channel", kind: .slack, secret: revived.url + AlertHarness.slackPath),
        ]
        harness.dispatcher = AlertDispatcher(destinations: destinations, attempts: 3, backoff: 0.01, timeout: 5, logger: TestCluster.logger)
        let retried = harness.run([AlertHarness.replication(.critical)])
        #expect(retried.allSatisfy { $0.succeeded })
        #expect(retried.allSatisfy { $0.notification.reason == .retry })
        #expect(revived.requests.count == 2)
        harness.run([AlertHarness.replication(.critical)])
        #expect(revived.requests.count == 2, "delivered once, not repeated")
    }

    @Test("HTTP 5xx and 429 are retried with back-off; a 4xx is not")
    func retries() throws {
        let receiver = try LocalReceiver(status: 202)
        defer { receiver.stop() }
        receiver.enqueue(500, "boom")
        receiver.enqueue(429, "slow down")
        var harness = AlertHarness(receiver: receiver, policy: AlertPolicy(consecutive: 1))
        harness.engine = AlertEngine(policy: AlertPolicy(consecutive: 1), destinations: ["oncall"])
        let reports = harness.run([AlertHarness.replication(.critical)])
        #expect(reports.count == 1)
        #expect(reports.first?.succeeded == true)
        #expect(reports.first?.attempts == 3)
        #expect(receiver.requests.count == 3)

        receiver.enqueue(400, "invalid event")
        harness.engine = AlertEngine(policy: AlertPolicy(consecutive: 1), destinations: ["dba-channel"])
        let rejected = harness.run([AlertHarness.replication(.critical)])
        #expect(rejected.first?.attempts == 1)
        #expect(rejected.first?.error == "HTTP 400: invalid event")
    }

    @Test("the state file round-trips atomically; a corrupt file is reported and replaced")
    func stateFile() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-alert-state")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = AlertStateStore(path: dir + "/sub/health-state.json")
        #expect(store.load().state == AlertState())
        var state = AlertState()
        let engine = AlertEngine(policy: AlertPolicy(consecutive: 2), destinations: ["x"])
        _ = engine.evaluate([AlertHarness.replication(.critical)], state: &state, now: Date(timeIntervalSince1970: 1_800_000_000))
        try store.save(state)
        let loaded = store.load()
        #expect(loaded.problem == nil)
        #expect(loaded.state == state)
        #expect(loaded.state.checks["db1:5432/nfl|replication"]?.failures == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/sub") == ["health-state.json"])
        let attributes = try FileManager.default.attributesOfItem(atPath: store.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try "{not json".write(toFile: store.path, atomically: true, encoding: .utf8)
        let corrupt = store.load()
        #expect(corrupt.state == AlertState())
        #expect(corrupt.problem?.contains("unreadable") == true)
    }
}
