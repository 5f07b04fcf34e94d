import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBRoles

/// Issue 12 item 6: the shipped `nfl_monitor` (roles/platform.yaml) is enough for `nfldb health`.
@Suite("roles: the shipped monitor role runs nfldb health")
struct MonitorHealthTests {
    @Test("nfldb health as the nfl_monitor login (shipped spec, deploy flow): every check has a real answer, and table data stays unreadable")
    func healthAsShippedMonitor() throws {
        try RoleWorld.with { world in
            let admin = try world.admin()
            defer { admin.close() }
            // Once per database, as a superuser (the spec's comment on nfl_monitor says so).
            try admin.runScript(unsafeSQL: "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS pgstattuple;")
            try world.apply()
            try world.migrateAsOwner()
            // The backup capability's records, as `nfldb backup run`/`verify` leave them (they run as a superuser).
            try BackupCatalog.install(admin)
            try admin.runScript(unsafeSQL: """
                INSERT INTO nfldb.backup_runs (started_at, finished_at, status, stanza, backup_type, label)
                    VALUES (now() - interval '61 minutes', now() - interval '1 hour', 'ok', 'nfldb', 'full', '20261204-000000F');
                INSERT INTO nfldb.backup_verifications (started_at, finished_at, status, stanza, label, receipt)
                    VALUES (now() - interval '25 hours', now() - interval '1 day', 'ok', 'nfldb', '20261204-000000F', '{}');
                """)
            // A finished ETL run, as `nfldb etl load games` records it (etl_freshness judges its age).
            try admin.runScript(unsafeSQL: """
                INSERT INTO nfl.etl_runs (source, target_table, started_at, finished_at, status)
                    VALUES ('games.csv', 'nfl.games', now() - interval '2 hours', now() - interval '119 minutes', 'succeeded');
                """)
            // A bloated table of the owner's, above the 1 MB floor configured below.
            let owner = try world.login("nfl_owner")
            try owner.runScript(unsafeSQL: """
                CREATE TABLE nfl.scratch_plays (id bigint, game_id int, description text) WITH (autovacuum_enabled = false);
                INSERT INTO nfl.scratch_plays SELECT g, g % 300, repeat('x', 60) FROM generate_series(1, 120000) g;
                DELETE FROM nfl.scratch_plays WHERE id % 5 <> 0;
                ANALYZE nfl.scratch_plays;
                """)
            owner.close()
            try world.apply()  // grants on what now exists (the documented deploy order)
            _ = try admin.query("SELECT count(*) FROM nfl.games")  // something for pg_stat_statements

            let directory = try CLIRunner.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let config = directory + "/nfldb.yaml"
            try "health:\n  checks:\n    bloat:\n      min_size: 1048576\n".write(toFile: config, atomically: true, encoding: .utf8)
            let monitor = world.name("nfl_monitor")
            let password = world.environment["NFLDB_MONITOR_PASSWORD"] ?? ""
            let dsn = world.db.cluster.dsn(database: world.db.name, user: monitor)
            let result = try CLIRunner.run(
                ["health", "--format", "json", "--config", config, "--dsn", dsn], environment: ["PGPASSWORD": password])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any],
                "\(result.standardOutput)\n\(result.standardError)")
            let checks = try #require(json["checks"] as? [[String: Any]])
            #expect(checks.count >= 14, "every check ran: \(checks.map { $0["name"] ?? "?" })")
            for check in checks {
                let name = check["name"] as? String ?? "?", status = (check["status"] as? String ?? "?").lowercased()
                let message = check["message"] as? String ?? ""
                #expect(status != "unknown", "\(name) is UNKNOWN as \(monitor): \(message) (\(check["hint"] as? String ?? ""))")
                #expect(!message.contains("permission denied"), "\(name): \(message)")
            }
            func check(_ name: String) -> [String: Any]? { checks.first { $0["name"] as? String == name } }
            #expect((check("bloat")?["message"] as? String)?.contains("scratch_plays") == true, "bloat examined the table: \(check("bloat") ?? [:])")
            #expect(check("sequences")?["value"] != nil)
            #expect((check("backups")?["status"] as? String)?.lowercased() == "ok", "\(check("backups") ?? [:])")
            #expect((check("etl_freshness")?["status"] as? String)?.lowercased() == "ok", "\(check("etl_freshness") ?? [:])")

            // Least privilege: the monitor reads positions and statistics, not the data.
            let session = try world.login("nfl_monitor")
            defer { session.close() }
            expectRefused(session, "SELECT * FROM nfl.games")
            expectRefused(session, "SELECT * FROM nfl.scratch_plays")
            expectRefused(session, "SELECT nextval('nfl.etl_runs_id_seq')")
            expectRefused(session, "INSERT INTO nfldb.backup_runs (status) VALUES ('ok')")
            expectRefused(session, "CREATE TABLE public.monitor_scratch (id int)")
            #expect(try session.query("SELECT last_value FROM nfl.etl_runs_id_seq").scalar(Int.self) >= 1)
        }
    }
}
