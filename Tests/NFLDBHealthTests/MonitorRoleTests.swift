import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("The whole suite as a pg_monitor login role")
struct MonitorRoleTests {
    @Test("every check runs as a non-superuser pg_monitor member: no permission errors, honest UNKNOWNs with the grant to add")
    func wholeSuiteAsPgMonitor() throws {
        try withMonitorRole { user, password in
            try TestCluster.withDatabase(prefix: "h_mon") { db in
                let admin = try db.connect()
                defer { admin.close() }
                try admin.runScript(unsafeSQL: MaintenanceProbeTests.bloatedTable + """
                    CREATE TABLE scores (id serial PRIMARY KEY, points int);
                    INSERT INTO scores (points) SELECT g FROM generate_series(1, 10) g;
                    CREATE EXTENSION pg_stat_statements;
                    """)
                try MaintenanceProbeTests.waitForDeadRows(admin)
                let dsn = db.cluster.dsn(database: db.name, user: user, password: password)
                let overrides = ["bloat.min_size": "1048576", "bloat.warning": "2097152"]
                let report = runChecks(ProbeRegistry.names, dsn: dsn, overrides)
                #expect(report.checks.count == ProbeRegistry.all.count)
                #expect(report.targets.first?.role == "primary")
                for check in report.checks {
                    #expect(!check.message.contains("permission denied"), "\(check.name): \(check.message)")
                    #expect(!check.message.contains("query failed"), "\(check.name): \(check.message)")
                }
                let unknown = Set(report.checks.filter { $0.status == .unknown }.map(\.name))
                #expect(unknown == ["bloat", "sequences", "backups", "etl_freshness"], "\(report.renderText())")
                #expect(report.check("bloat")?.hint?.contains("GRANT SELECT") == true)
                #expect(report.check("vacuum")?.status == .warning)
                #expect(report.check("slow_queries")?.status != .unknown)

                try admin.execute("GRANT SELECT ON plays TO \(identifier: user)")
                try admin.execute("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO \(identifier: user)")
                let granted = runChecks(["bloat", "sequences"], dsn: dsn, overrides)
                #expect(granted.check("bloat")?.status == .warning, "\(granted.renderText())")
                #expect(granted.check("sequences")?.status == .ok)
                try admin.execute("REVOKE ALL ON plays FROM \(identifier: user)")
                try admin.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \(identifier: user)")
            }
        }
    }

    @Test("a login outside pg_monitor is not 'cannot connect' CRITICAL (no false page): connections answers, the checks it may not run are UNKNOWN with the GRANT")
    func loginWithoutPgMonitor() throws {
        try withLoginRole(inPgMonitor: false) { name, password in
            try TestCluster.withDatabase(prefix: "h_nomon") { db in
                let report = runChecks(ProbeRegistry.names, dsn: db.cluster.dsn(database: db.name, user: name, password: password))
                #expect(report.targets.first?.role == "primary", "\(report.renderText())")
                let connections = try #require(report.check("connections"))
                #expect(connections.status != .critical && !connections.message.contains("cannot connect"), "\(report.renderText())")
                #expect(!report.checks.contains { $0.status == .critical }, "nothing pages for a missing grant: \(report.renderText())")
                #expect(report.checks.contains { $0.status == .unknown && ($0.hint ?? "").contains("GRANT pg_monitor TO \(name)") }, "\(report.renderText())")
            }
        }
    }
}
