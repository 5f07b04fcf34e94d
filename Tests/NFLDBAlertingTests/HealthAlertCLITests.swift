import Foundation
import Synchronization
import NFLDBCore
import NFLDBTestSupport
import Testing

@Suite("nfldb health --alert end to end", .serialized)
struct HealthAlertCLITests {
    /// `nfldb health --check connections --alert` against a real database, with the connections
    /// thresholds chosen to be failing (`warning: 0`) or fine (`warning: 100`).
    func run(_ db: TestDatabase, dir: String, failing: Bool, receiver: String) throws -> ProcessResult {
        let config = """
            health:
              state_file: \(dir)/state.json
              alert:
                consecutive: 2
                retries: 2
                retry_backoff: 10ms
              checks:
                connections:
                  warning: \(failing ? 0 : 100)
                  critical: 100
            alerts:
              - name: oncall
                type: pagerduty
                routing_key_file: \(dir)/routing-key
                endpoint: \(receiver)/v2/enqueue
              - name: dba
                type: slack
                url_env: TEST_SLACK_URL
            """
        try config.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        return try CLIRunner.run(
            ["health", "--dsn", db.dsn, "--check", "connections", "--alert", "--config", dir + "/nfldb.yaml"],
            environment: ["TEST_SLACK_URL": receiver + "/services/T1/B2/sEcReT"])
    }

    @Test("three failing cron runs page once; recovery resolves once; secrets never printed; a dead receiver keeps the exit code")
    func cronRuns() throws {
        try TestCluster.withDatabase(prefix: "h_alert") { db in
            let dir = try CLIRunner.temporaryDirectory("nfldb-health-alert")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "pd-routing-key-1234567890abcdef\n".write(toFile: dir + "/routing-key", atomically: true, encoding: .utf8)
            chmod(dir + "/routing-key", 0o600)
            let receiver = try LocalReceiver(status: 202)
            defer { receiver.stop() }

            for attempt in 1...3 {
                let result = try run(db, dir: dir, failing: true, receiver: receiver.url)
                #expect(result.status == 1, "WARNING exit code, run \(attempt): \(result.standardError)")
                #expect(!result.standardOutput.contains("sEcReT") && !result.standardError.contains("sEcReT"))
                #expect(!result.standardOutput.contains("pd-routing-key") && !result.standardError.contains("pd-routing-key"))
            }
            #expect(receiver.requests.count == 2)
            #expect(receiver.requests.map(\.path).sorted() == ["/services/T1/B2/sEcReT", "/v2/enqueue"])
            let trigger = try #require(receiver.requests.first { $0.path == "/v2/enqueue" }).json
            #expect(trigger["event_action"] as? String == "trigger")
            #expect(trigger["routing_key"] as? String == "pd-routing-key-1234567890abcdef")
            #expect((trigger["dedup_key"] as? String)?.hasSuffix("/\(db.name):connections") == true)

            let ok = try run(db, dir: dir, failing: false, receiver: receiver.url)
            #expect(ok.status == 0)
            #expect(ok.standardOutput.contains("alert: resolve connections"))
            #expect(receiver.requests.count == 4)
            #expect(receiver.requests.last { $0.path == "/v2/enqueue" }?.json["event_action"] as? String == "resolve")
            _ = try run(db, dir: dir, failing: false, receiver: receiver.url)
            #expect(receiver.requests.count == 4, "one resolve, not one per run")

            // The receivers die: the run still reports the check's own status and says what failed.
            receiver.stop()
            for _ in 0..<2 {
                let dead = try run(db, dir: dir, failing: true, receiver: receiver.url)
                #expect(dead.status == 1)
                #expect(!dead.standardError.contains("sEcReT"))
                #expect(!dead.standardError.contains("pd-routing-key"))
                if dead.standardError.contains("alert delivery failed") {
                    #expect(dead.standardError.contains("FAILED after 2 attempts"))
                }
            }
            let state = try String(contentsOfFile: dir + "/state.json", encoding: .utf8)
            #expect(state.contains("delivery_errors"))
            #expect(!state.contains("sEcReT"))
        }
    }

    static func jsonObject(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    @Test("four overlapping --alert runs (cron runs slowed by a slow receiver) page once, not four times; a run that cannot get the state lock says so and keeps its exit status")
    func overlappingRuns() throws {
        try TestCluster.withDatabase(prefix: "h_overlap") { db in
            let dir = try CLIRunner.temporaryDirectory("nfldb-health-overlap")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // Each answer takes 1.5 s: without a lock, every run loads the empty state before the
            // first one saves, and all four page. The state's directory does not exist yet (a first
            // run): it is created before the lock is taken, so the first runs are locked too.
            let receiver = try LocalReceiver(status: 200, delay: .milliseconds(1500))
            defer { receiver.stop() }
            let config = """
                health:
                  state_file: \(dir)/fresh/state.json
                  alert:
                    consecutive: 1
                    retries: 1
                    timeout: 4s
                  checks:
                    connections:
                      warning: 0
                      critical: 100
                alerts:
                  - name: hook
                    type: webhook
                    url_env: TEST_HOOK_URL
                """
            try config.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
            let arguments = ["health", "--dsn", db.dsn, "--check", "connections", "--alert", "--config", dir + "/nfldb.yaml"]
            let environment = ["TEST_HOOK_URL": receiver.url + "/hook"]
            let results = Mutex<[ProcessResult]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                if let result = try? CLIRunner.run(arguments, environment: environment) { results.withLock { $0.append(result) } }
            }
            let all = results.withLock { $0 }
            #expect(all.count == 4)
            #expect(all.allSatisfy { $0.status == 1 }, "each run keeps the check's WARNING: \(all.map(\.standardError))")
            #expect(receiver.requests.count == 1, "one page for one problem, not one per overlapping run: \(receiver.requests.count)")
            let state = try String(contentsOfFile: dir + "/fresh/state.json", encoding: .utf8)
            #expect(state.contains("connections"))
            #expect(all.allSatisfy { !$0.standardError.contains("alerting without the lock") }, "\(all.map(\.standardError))")

            // A run that cannot get the lock in time (held here by a process of ours) does not alert, says why, and keeps its status.
            let holder = try #require(try? FileLock.acquire(dir + "/fresh/state.json.lock").get())
            defer { close(holder) }
            try config.replacingOccurrences(of: "timeout: 4s", with: "timeout: 100ms")
                .replacingOccurrences(of: "warning: 0", with: "warning: 100").write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
            let blocked = try CLIRunner.run(arguments, environment: environment)
            #expect(blocked.status == 0, "\(blocked.standardError)")
            #expect(blocked.standardError.contains("another `nfldb health --alert` run (pid \(getpid())) is still alerting from \(dir)/fresh/state.json"),
                    "\(blocked.standardError)")
            #expect(receiver.requests.count == 1, "no resolve was sent while the lock was held")
        }
    }

    @Test("a webhook URL's path and query never leak through an error body that echoes them (stderr, health --format json, state file)")
    func echoedWebhookPath() throws {
        try TestCluster.withDatabase(prefix: "h_echo") { db in
            let dir = try CLIRunner.temporaryDirectory("nfldb-health-echo")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let receiver = try LocalReceiver(status: 500, body: "no route for {path}\nrequest {path} rejected for {basic} ({authorization})")
            defer { receiver.stop() }
            let config = """
                health:
                  alert:
                    consecutive: 1
                    retries: 1
                    retry_backoff: 10ms
                  checks:
                    connections:
                      warning: 0
                      critical: 100
                alerts:
                  - name: hook
                    type: webhook
                    url_env: TEST_HOOK_URL
                """
            try config.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
            let state = dir + "/alert-state.json"
            // Basic-auth credentials in the URL too: the receiver echoes them, decoded and as sent.
            let hook = receiver.url.replacingOccurrences(of: "http://", with: "http://hookuser:PwSECRETZ99@") + "/hooks/TOKSECRETZ123?key=QSECRETZ&team=dba"
            let basic = Data("hookuser:PwSECRETZ99".utf8).base64EncodedString()
            for format in ["text", "json"] {
                let result = try CLIRunner.run(
                    ["health", "--dsn", db.dsn, "--check", "connections", "--alert", "--config", dir + "/nfldb.yaml", "--state-file", state,
                     "--format", format, "--log-format", format, "--log-level", "trace"],
                    environment: ["TEST_HOOK_URL": hook])
                #expect(result.status == 1, "WARNING: \((result.standardOutput + result.standardError))")
                #expect(!(result.standardOutput + result.standardError).contains("SECRETZ"), "\((result.standardOutput + result.standardError))")
                #expect(!(result.standardOutput + result.standardError).contains(basic), "\((result.standardOutput + result.standardError))")
                #expect((result.standardOutput + result.standardError).contains("HTTP 500"), "the failure is still reported: \((result.standardOutput + result.standardError))")
                if format == "json" {
                    let report = try Self.jsonObject(result.standardOutput)
                    let alerts = try #require(report["alerts"] as? [[String: Any]], "\(report)")
                    let error = try #require(alerts.first?["error"] as? String, "\(alerts)")
                    #expect(error.hasPrefix("HTTP 500: no route for "), "\(error)")
                    #expect(error.contains(SecretRedactor.mask), "\(error)")
                    #expect(!error.contains("\n"))
                    for line in result.standardError.split(separator: "\n") where line.hasPrefix("{") { _ = try Self.jsonObject(String(line)) }
                }
                let saved = try String(contentsOfFile: state, encoding: .utf8)
                #expect(!saved.contains("SECRETZ") && !saved.contains(basic), "\(saved)")
            }
            #expect(receiver.requests.first?.path == "/hooks/TOKSECRETZ123?key=QSECRETZ&team=dba", "the receiver got the real URL")
            #expect(receiver.requests.first?.headers["authorization"] == "Basic " + basic, "and the credentials: \(receiver.requests.first?.headers ?? [:])")
        }
    }
}
