import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

@Suite struct FreshnessProbeTests {
    func check(_ world: ETLWorld, as role: String? = nil, _ overrides: [String: String] = [:]) throws -> CheckResult {
        let dsn = role.map { world.db.cluster.dsn(database: world.db.name, user: world.prefix + $0, password: world.environment[TestRoles.passwordVariable($0)]) } ?? world.db.dsn
        let settings = HealthSettings(statementTimeout: .seconds(10), lockTimeout: .seconds(2), values: overrides)
        let report = HealthRunner(settings: settings, probes: [ETLFreshnessProbe()], logger: TestCluster.logger)
            .run([HealthTarget(options: ConnectionOptions(dsn: dsn))])
        return try #require(report.check("etl_freshness"))
    }

    /// No run: UNKNOWN; a fresh load: OK as nfl_monitor; an old one: CRITICAL; a later failure is reported.
    @Test func ageOfTheLastSuccessfulRun() throws {
        try ETLWorld.with { world in
            #expect(try check(world).status == .unknown)
            try world.load(Slice.text)
            let fresh = try check(world, as: "nfl_monitor")
            #expect(fresh.status == .ok, "\(fresh.message) \(fresh.hint ?? "")")
            #expect(fresh.message.contains("nfl.games: last success"))
            let admin = try world.db.connect()
            defer { admin.close() }
            try admin.execute("UPDATE nfl.etl_runs SET started_at = started_at - interval '3 days', finished_at = finished_at - interval '3 days'")
            try admin.execute("""
                INSERT INTO nfl.etl_runs (source, target_table, status, finished_at, error) VALUES ('x.csv', 'nfl.games', 'failed', now(), 'boom')
                """)
            let stale = try check(world, as: "nfl_monitor")
            #expect(stale.status == .critical && stale.message.contains("1 failed since"), "\(stale.message)")
            #expect(try check(world, ["etl_freshness.critical": "400000"]).status == .warning)
        }
    }
}
