import Foundation
import Logging
import NFLDBAlerting
import NFLDBCore
import NFLDBHealth
import Testing

/// `alerts:` and `health.alert.*`: declared and decoded by NFLDBAlerting on top of Core's loader.
@Suite("Alert configuration")
struct AlertConfigTests {
    static let keys = ConfigKey.global + HealthSettings.keys + AlertConfig.keys

    /// Loads `dir/nfldb.yaml` with the alerting keys and decodes the alerting section.
    @discardableResult
    static func load(environment: [String: String], in dir: String) throws -> Configuration {
        let configuration = try ConfigurationLoader(keys: keys, environment: environment, workingDirectory: dir).load()
        _ = try AlertConfig(configuration: configuration)
        return configuration
    }

    static func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-alert-config-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    @discardableResult
    static func writeFile(_ text: String, named name: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("an inline alert url is rejected, url_env and url_file are accepted", arguments: [
        "alerts:\n  - type: slack\n    url: https://hooks.slack.com/services/T0/B0/inline-secret\n",
        "alerts:\n  - {type: slack, url: \"https://hooks.slack.com/services/T0/B0/inline-secret\"}\n",
    ])
    func inlineAlertURL(yaml: String) throws {
        try Self.withTemporaryDirectory { dir in
            let path = try Self.writeFile(yaml, named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try AlertConfigTests.load(environment: [:], in: dir)
            }
            let text = try #require(error).description
            #expect(text.contains("\(path):"))
            #expect(text.contains("alerts[0].url would put a secret in the config file"))
            #expect(text.contains("url_env"))
            #expect(!text.contains("inline-secret"))
        }
    }

    @Test("alerts take url_ref / routing_key_ref secret references; a bad one names file:line")
    func alertSecretReferences() throws {
        try Self.withTemporaryDirectory { dir in
            let path = try Self.writeFile("""
                alerts:
                  - name: oncall
                    type: slack
                    url_ref: env:SLACK_REF_HOOK
                  - type: pagerduty
                    routing_key_ref: vault:pd
                """, named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) { _ = try AlertDestination.all(in: AlertConfigTests.load(environment: [:], in: dir)) }
            #expect(try #require(error).description.contains("\(path):5"))
            #expect(try #require(error).description.contains("unknown secret scheme"))
            _ = try Self.writeFile("""
                alerts:
                  - name: oncall
                    type: slack
                    url_ref: env:SLACK_REF_HOOK
                """, named: "nfldb.yaml", in: dir)
            let env = ["SLACK_REF_HOOK": "https://hooks.slack.com/services/ref-secret-\(UUID().uuidString)"]
            let slack = try #require(try AlertDestination.all(in: AlertConfigTests.load(environment: env, in: dir)).first)
            #expect(slack.secretRef == "env:SLACK_REF_HOOK")
            #expect(try slack.resolveSecret(environment: env) == env["SLACK_REF_HOOK"])
            #expect(SecretRedactor.shared.redact(env["SLACK_REF_HOOK"]!) == SecretRedactor.mask)
        }
    }

    @Test("alerts referencing env and file secrets load and resolve")
    func alertReferences() throws {
        try Self.withTemporaryDirectory { dir in
            let secretFile = try Self.writeFile("https://hooks.example/file-secret\n", named: "hook", in: dir)
            chmod(secretFile, 0o604)
            let path = try Self.writeFile("""
                alerts:
                  - name: oncall
                    type: slack
                    url_env: SLACK_HOOK
                  - type: pagerduty
                    routing_key_file: \(secretFile)
                """, named: "nfldb.yaml", in: dir)
            let env = ["SLACK_HOOK": "https://hooks.slack.com/services/env-secret"]
            let alerts = try AlertDestination.all(in: AlertConfigTests.load(environment: env, in: dir))
            #expect(alerts.count == 2)
            let slack = try #require(alerts.first)
            #expect(slack.name == "oncall")
            #expect(slack.kind == .slack)
            #expect(slack.secretEnv == "SLACK_HOOK")
            #expect(slack.source == .file(path: path, line: 2))
            #expect(try slack.resolveSecret(environment: env) == "https://hooks.slack.com/services/env-secret")
            #expect(throws: ConfigurationError.self) { try slack.resolveSecret(environment: [:]) }

            let pager = alerts[1]
            #expect(pager.kind == .pagerduty)
            #expect(pager.name == "pagerduty-1")
            // routing_key_file (the older *_file spelling) follows the file: rule: world-readable is refused.
            let refused = #expect(throws: ConfigurationError.self) { try pager.resolveSecret(environment: [:]) }
            #expect(refused?.description.contains("group or world access") == true)
            #expect(refused?.description.contains("chmod 0600 \(secretFile)") == true)
            #expect(refused?.description.contains("file-secret") == false)
            chmod(secretFile, 0o600)
            #expect(try pager.resolveSecret(environment: [:]) == "https://hooks.example/file-secret")
        }
    }

    @Test("an alert needs exactly one secret reference and a known type")
    func alertShape() throws {
        try Self.withTemporaryDirectory { dir in
            try Self.writeFile("alerts:\n  - type: slack\n", named: "nfldb.yaml", in: dir)
            let none = #expect(throws: ConfigurationError.self) {
                try AlertConfigTests.load(environment: [:], in: dir)
            }
            #expect(none?.description.contains("needs exactly one of url_ref/url_env/url_file") == true)

            try Self.writeFile("alerts:\n  - type: carrier-pigeon\n    url_env: X\n", named: "nfldb.yaml", in: dir)
            let type = #expect(throws: ConfigurationError.self) {
                try AlertConfigTests.load(environment: [:], in: dir)
            }
            #expect(type?.description.contains("needs type: slack, pagerduty or webhook") == true)
        }
    }

    @Test("health.alert.* decode with their defaults, and a set value wins")
    func alertSettings() throws {
        try Self.withTemporaryDirectory { dir in
            let defaults = try AlertConfig(configuration: Self.load(environment: [:], in: dir))
            #expect(defaults.stateFile == ".nfldb/health-state.json")
            #expect(defaults.consecutive == 2)
            #expect(defaults.repeatInterval == .seconds(4 * 3600))
            #expect(defaults.retries == 3)
            #expect(defaults.retryBackoff == .seconds(1))
            #expect(defaults.timeout == .seconds(10))
            #expect(defaults.destinations.isEmpty)

            try Self.writeFile("health:\n  state_file: /var/lib/x.json\n  alert:\n    consecutive: 4\n    repeat_interval: 30min\n", named: "nfldb.yaml", in: dir)
            let set = try AlertConfig(configuration: Self.load(environment: ["NFLDB_HEALTH_ALERT_RETRIES": "5"], in: dir))
            #expect(set.stateFile == "/var/lib/x.json")
            #expect(set.consecutive == 4)
            #expect(set.repeatInterval == .seconds(1800))
            #expect(set.retries == 5)
        }
    }
}

extension AlertConfigTests {
    @Test("health.alert.consecutive and retries below 1 are refused with file:line (0 used to act as 1)", arguments: ["consecutive", "retries"])
    func minimumOne(key: String) throws {
        try Self.withTemporaryDirectory { dir in
            let file = try Self.writeFile("health:\n  alert:\n    \(key): 0\n", named: "nfldb.yaml", in: dir)
            #expect {
                try Self.load(environment: [:], in: dir)
            } throws: { error in
                let text = String(describing: error)
                return text.contains("health.alert.\(key): 0 is below its minimum 1") && text.contains("\(file):3")
            }
            try Self.writeFile("health:\n  alert:\n    \(key): 1\n", named: "nfldb.yaml", in: dir)
            let one = try AlertConfig(configuration: Self.load(environment: [:], in: dir))
            #expect((key == "consecutive" ? one.consecutive : one.retries) == 1)
        }
    }
}

extension AlertConfigTests {
    @Test("health.alert.timeout of 0 is refused (it gave up before the first attempt: paging silently off)")
    func zeroTimeout() throws {
        try Self.withTemporaryDirectory { dir in
            let file = try Self.writeFile("health:\n  alert:\n    timeout: 0s\n", named: "nfldb.yaml", in: dir)
            #expect {
                try Self.load(environment: [:], in: dir)
            } throws: { error in
                String(describing: error).contains("\(file):3: health.alert.timeout: must be longer than 0")
            }
        }
    }

    @Test("a run whose results are older than a check's last judgement (it waited while a newer run finished) does not alert on them")
    func staleResultsAreNotAlertedOn() throws {
        try Self.withTemporaryDirectory { dir in
            let stateFile = dir + "/state.json"
            let config = try AlertConfig(configuration: Self.load(environment: [:], in: dir))
            let input = AlertInput(target: "db", check: "connections", level: .warning, message: "95% used", hint: nil, value: nil)
            let newer = Date()
            // The newer run judged the check OK.
            let ok = AlertInput(target: "db", check: "connections", level: .ok, message: "fine", hint: nil, value: nil)
            _ = AlertRun.run(inputs: [ok], consecutiveByCheck: ["connections": 1], config: config, stateFile: stateFile, environment: [:],
                             logger: Logger(label: "test"), now: newer, observedAt: newer)
            // The older run (observed 10 s before) gets the lock only now: its WARNING is not counted.
            let stale = AlertRun.run(inputs: [input], consecutiveByCheck: ["connections": 1], config: config, stateFile: stateFile, environment: [:],
                                     logger: Logger(label: "test"), now: newer.addingTimeInterval(1), observedAt: newer.addingTimeInterval(-10))
            #expect(stale.warnings.contains { $0.contains("1 check (connections) were judged by a newer run") }, "\(stale.warnings)")
            let (state, _) = AlertStateStore(path: stateFile).load()
            #expect(state.checks.values.first?.level == .ok && state.checks.values.first?.failures == 0, "\(state.checks)")
            // A later run's WARNING counts as usual.
            _ = AlertRun.run(inputs: [input], consecutiveByCheck: ["connections": 1], config: config, stateFile: stateFile, environment: [:],
                             logger: Logger(label: "test"), now: newer.addingTimeInterval(2), observedAt: newer.addingTimeInterval(2))
            #expect(AlertStateStore(path: stateFile).load().state.checks.values.first?.failures == 1)
        }
    }

    @Test("a state file that cannot be written: the run still alerts, and its warning says what that costs (pages repeat, nothing resolves)")
    func unwritableStateFileSaysWhatItCosts() throws {
        try Self.withTemporaryDirectory { dir in
            // The state file's directory is a regular file: nothing can be created under it.
            try "not a directory".write(toFile: dir + "/state", atomically: true, encoding: .utf8)
            let stateFile = dir + "/state/alert-state.json"
            let config = try AlertConfig(configuration: Self.load(environment: [:], in: dir))
            let input = AlertInput(target: "db", check: "connections", level: .warning, message: "95% used", hint: nil, value: nil)
            let result = AlertRun.run(inputs: [input], consecutiveByCheck: ["connections": 1], config: config, stateFile: stateFile, environment: [:],
                                      logger: Logger(label: "test"))
            #expect(result.warnings.contains { $0.contains(stateFile) && $0.contains("every --alert run pages again for what is still bad and no resolve is sent") },
                    "\(result.warnings)")
            // A directory given as the state file is named as such (not "unreadable (NSCocoaErrorDomain error 256)").
            defer { unlink(dir + ".lock") }  // the run's flock file, beside the "state file"
            let directory = AlertRun.run(inputs: [input], consecutiveByCheck: ["connections": 1], config: config, stateFile: dir, environment: [:],
                                         logger: Logger(label: "test"))
            #expect(directory.warnings.contains { $0.contains("alert state file \(dir) is a directory") }, "\(directory.warnings)")
        }
    }
}
