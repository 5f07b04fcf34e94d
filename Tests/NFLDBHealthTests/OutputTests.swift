import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("Output formats and exit codes")
struct OutputTests {
    static func sample() -> HealthReport {
        func check(_ name: String, _ status: HealthStatus, _ value: Double?, _ unit: HealthUnit, _ thresholds: Thresholds, _ message: String) -> CheckResult {
            CheckResult(name: name, target: "db1:5432/nfl", role: "primary", status: status, value: value, unit: unit, thresholds: thresholds,
                        message: message, hint: status == .ok ? nil : "do something", details: [Detail([("pid", .int(42))])],
                        durationMilliseconds: 1.5)
        }
        return HealthReport(targets: [TargetReport(name: "db1:5432/nfl", role: "primary", serverVersion: "15.20", connected: true, durationMilliseconds: 12, checks: [
            check("connections", .ok, 12.5, .percent, Thresholds(warning: 80, critical: 90), "12 of 97 usable"),
            check("replication", .critical, 2_000_000_000, .bytes, Thresholds(warning: 67_108_864, critical: 1_073_741_824), "standby 'a' lags | a lot"),
            check("cache_hit", .warning, 85, .percent, Thresholds(warning: 90, critical: nil, direction: .lowerIsWorse), "lowest 85%"),
            check("backups", .unknown, nil, .seconds, Thresholds(warning: 93600, critical: 172_800), "no records"),
        ])], startedAt: Date(timeIntervalSince1970: 1_800_000_000), durationMilliseconds: 20)
    }

    @Test("the worst status orders CRITICAL > UNKNOWN > WARNING > OK")
    func worstStatus() {
        #expect(HealthStatus.worst([.ok, .warning, .unknown]) == .unknown)
        #expect(HealthStatus.worst([.unknown, .critical, .warning]) == .critical)
        #expect(HealthStatus.worst([.ok, .warning]) == .warning)
        #expect(HealthStatus.worst([]) == .ok)
        #expect(Self.sample().status.exitCode == 2)
        #expect(Thresholds(warning: 90, critical: 80, direction: .lowerIsWorse).status(for: 85) == .warning)
        #expect(Thresholds(warning: 90, critical: 80, direction: .lowerIsWorse).status(for: 79) == .critical)
        #expect(Thresholds(warning: 10, critical: nil).status(for: 1e12) == .warning)
    }

    @Test("nagios: one status line with the problems and perfdata, long output per check")
    func nagios() {
        let lines = Self.sample().renderNagios().split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("NFLDB HEALTH CRITICAL - replication CRITICAL: standby 'a' lags / a lot; backups UNKNOWN: no records; cache_hit WARNING: lowest 85% | "))
        #expect(lines[0].hasSuffix("'connections'=12.5%;80;90;0;100 'replication'=2000000000B;67108864;1073741824;0 'cache_hit'=85%;90:;;0;100"))
        #expect(lines.count == 5)
        #expect(lines[1] == "[OK] connections on db1:5432/nfl: 12 of 97 usable")
    }

    @Test("prometheus: nfldb_ prefix, HELP/TYPE once per family, escaped labels, trailing newline")
    func prometheus() throws {
        let text = Self.sample().renderPrometheus()
        #expect(text.hasSuffix("\n"))
        #expect(text.contains("# HELP nfldb_health_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n# TYPE nfldb_health_status gauge\n"))
        #expect(text.contains("nfldb_health_status{check=\"replication\",role=\"primary\",target=\"db1:5432/nfl\"} 2\n"))
        #expect(text.contains("nfldb_health_value{check=\"connections\",role=\"primary\",target=\"db1:5432/nfl\",unit=\"percent\"} 12.5\n"))
        #expect(text.contains("nfldb_health_probe_success{check=\"backups\",role=\"primary\",target=\"db1:5432/nfl\"} 0\n"))
        #expect(text.contains("nfldb_health_last_run_timestamp_seconds 1800000000\n"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("nfldb_"))
        }
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE") }
        #expect(Set(types).count == types.count)
    }

    @Test("json: one object per check with name, status, value, thresholds, message and details")
    func json() throws {
        let data = Data(try HealthJSON(report: Self.sample()).encoded().utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["status"] as? String == "CRITICAL")
        #expect(object["exit_code"] as? Int == 2)
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.count == 4)
        let replication = try #require(checks.first { $0["name"] as? String == "replication" })
        #expect(replication["status"] as? String == "CRITICAL")
        #expect(replication["value"] as? Double == 2_000_000_000)
        #expect((replication["thresholds"] as? [String: Any])?["critical"] as? Double == 1_073_741_824)
        #expect(replication["message"] as? String == "standby 'a' lags | a lot")
        #expect((replication["details"] as? [[String: Any]])?.first?["pid"] as? Int == 42)
        #expect(checks.first { $0["name"] as? String == "backups" }?["value"] is NSNull)
        let cacheThresholds = checks.first { $0["name"] as? String == "cache_hit" }?["thresholds"] as? [String: Any]
        #expect(cacheThresholds?["critical"] is NSNull)
        #expect(cacheThresholds?["direction"] as? String == "lower_is_worse")
    }

    @Test("the CLI: text by default, --check selects, every format exits with the worst status, --prometheus-file is written atomically")
    func cli() throws {
        try TestCluster.withDatabase(prefix: "h_cli") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE players (id int); INSERT INTO players VALUES (1), (1);")
            _ = try? admin.execute("CREATE UNIQUE INDEX CONCURRENTLY players_id_key ON players (id)")
            let dir = try CLIRunner.temporaryDirectory("nfldb-health")
            defer { try? FileManager.default.removeItem(atPath: dir) }

            let text = try CLIRunner.run(["health", "--dsn", db.dsn, "--check", "connections", "--check", "invalid_indexes"])
            #expect(text.status == 1, "\(text.standardError)")
            #expect(text.standardOutput.contains("CHECK"))
            #expect(text.standardOutput.split(separator: "\n").contains { $0.hasPrefix("invalid_indexes") && $0.contains(" WARNING ") })
            #expect(text.standardOutput.contains("HINT: Rebuild it with REINDEX INDEX CONCURRENTLY"))
            #expect(!text.standardOutput.contains("wraparound"))

            let prom = (dir as NSString).appendingPathComponent("textfile/nfldb.prom")
            for (format, marker) in [("json", "\"exit_code\" : 1"), ("nagios", "NFLDB HEALTH WARNING - invalid_indexes WARNING"), ("prometheus", "# TYPE nfldb_health_status gauge")] {
                let run = try CLIRunner.run(["health", "--dsn", db.dsn, "--check", "invalid_indexes", "--check", "connections",
                                             "--format", format, "--prometheus-file", prom])
                #expect(run.status == 1, "\(format): \(run.standardError)")
                #expect(run.standardOutput.contains(marker), "\(format): \(run.standardOutput)")
            }
            let written = try String(contentsOfFile: prom, encoding: .utf8)
            #expect(written.contains("nfldb_health_status{check=\"invalid_indexes\""))
            #expect(try FileManager.default.contentsOfDirectory(atPath: (prom as NSString).deletingLastPathComponent) == ["nfldb.prom"])

            let ok = try CLIRunner.run(["health", "--dsn", db.dsn, "--check", "connections", "--format", "nagios"])
            #expect(ok.status == 0)
            #expect(ok.standardOutput.hasPrefix("NFLDB HEALTH OK - all 1 checks OK | 'connections'="))

            let bad = try CLIRunner.run(["health", "--dsn", db.dsn, "--check", "nonsense"])
            #expect(bad.status == 3)
            #expect(bad.standardError.contains("unknown check nonsense"))

            let down = try CLIRunner.run(["health", "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=2", "--format", "nagios"])
            #expect(down.status == 2)
            #expect(down.standardOutput.contains("connections CRITICAL: cannot connect"))

            let list = try CLIRunner.run(["health", "--list"])
            #expect(list.status == 0)
            #expect(list.standardOutput.contains("replication"))
            let help = try CLIRunner.run(["health", "--help"])
            #expect(help.standardOutput.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"))
        }
    }
}
