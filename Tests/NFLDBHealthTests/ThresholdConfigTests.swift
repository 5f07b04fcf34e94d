import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBTestSupport
import Testing

/// `health.checks.<check>.warning|critical` in nfldb.yaml: only finite numbers ≥ 0, in the check's
/// order, for checks that exist; anything else is exit 3 naming file:line, before any query.
@Suite("health thresholds and check names in the config")
struct ThresholdConfigTests {
    func run(_ yaml: String, in dir: String, dsn: String) throws -> ProcessResult {
        try yaml.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        return try CLIRunner.run(["health", "--dsn", dsn, "--check", "connections", "--format", "nagios", "--config", dir + "/nfldb.yaml"])
    }

    @Test("NaN, infinity, overflow, negative, hex, % and words are refused with file:line; warning above critical too (below, for lower-is-worse checks); a misspelled check names the nearest one; good values still run")
    func refusedValues() throws {
        try TestCluster.withDatabase(prefix: "h_thr") { db in
            let dir = try CLIRunner.temporaryDirectory("nfldb-health-thresholds")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for value in ["NaN", "nan", "1e400", "inf", "Infinity", "-1", "-0.5", "0x10", ".nan", ".inf", "5%", "many", "1_000"] {
                let result = try run("health:\n  checks:\n    connections:\n      warning: \(value)\n", in: dir, dsn: db.dsn)
                #expect(result.status == 3, "\(value): \(result.standardOutput) \(result.standardError)")
                #expect(result.standardError.contains("nfldb.yaml:4: health.checks.connections.warning: '\(value)' must be a finite number ≥ 0"),
                        "\(value): \(result.standardError)")
                #expect(result.standardOutput.isEmpty, "no check ran: \(result.standardOutput)")
            }

            let order = try run("health:\n  checks:\n    connections:\n      warning: 95\n      critical: 80\n", in: dir, dsn: db.dsn)
            #expect(order.status == 3)
            #expect(order.standardError.contains("nfldb.yaml:4: health.checks.connections: warning 95 must be ≤ critical 80"), "\(order.standardError)")
            // cache_hit is lower-is-worse: its warning is the higher number.
            let inverted = try run("health:\n  checks:\n    cache_hit:\n      warning: 80\n      critical: 95\n", in: dir, dsn: db.dsn)
            #expect(inverted.status == 3)
            #expect(inverted.standardError.contains("nfldb.yaml:4: health.checks.cache_hit: warning 80 must be ≥ critical 95"), "\(inverted.standardError)")

            let misspelled = try run("health: {checks: {conections: {warning: 5}}}\n", in: dir, dsn: db.dsn)
            #expect(misspelled.status == 3)
            #expect(misspelled.standardError.contains("nfldb.yaml:1: health.checks.conections.warning: unknown check 'conections'"), "\(misspelled.standardError)")
            #expect(misspelled.standardError.contains("Did you mean connections?"), "\(misspelled.standardError)")

            // A per-check consecutive is a number of runs: 0 or negative would silently mean 1.
            let zero = try run("health:\n  checks:\n    connections:\n      consecutive: 0\n", in: dir, dsn: db.dsn)
            #expect(zero.status == 3, "\(zero.standardError)")
            #expect(zero.standardError.contains("nfldb.yaml:4: health.checks.connections.consecutive: '0' is not a number of runs of at least 1"),
                    "\(zero.standardError)")
            // No integer setting means anything below 0: refused at its line.
            for (check, key) in [("connections", "consecutive"), ("slow_queries", "min_calls"), ("replication", "expected_standbys"), ("vacuum", "min_rows")] {
                let negative = try run("health:\n  checks:\n    \(check):\n      \(key): -3\n", in: dir, dsn: db.dsn)
                #expect(negative.status == 3, "\(key): \(negative.standardError)")
                #expect(negative.standardError.contains("nfldb.yaml:4: health.checks.\(check).\(key): -3 is negative"), "\(negative.standardError)")
            }

            let good = try run(
                "health:\n  checks:\n    connections:\n      warning: 1.5e1\n      critical: 90\n    cache_hit:\n      warning: 95\n      critical: 80\n",
                in: dir, dsn: db.dsn)
            #expect(good.status == 0, "\(good.standardOutput) \(good.standardError)")
            #expect(good.standardOutput.contains("'connections'="), "\(good.standardOutput)")
            #expect(good.standardOutput.contains(";15;90"), "perfdata carries the thresholds: \(good.standardOutput)")
        }
    }

    @Test("ConfigKey.parseNumber takes plain decimals ≥ 0 only")
    func parseNumber() {
        for text in ["0", "5", "+5", "0.5", ".5", "5.", "1e6", "1E-3", " 7 "] { #expect(ConfigKey.parseNumber(text) != nil, "\(text)") }
        for text in ["", "NaN", "inf", "-inf", "1e400", "-1", "0x10", "1_000", "5%", "1,5", "0b1"] { #expect(ConfigKey.parseNumber(text) == nil, "\(text)") }
    }
}
