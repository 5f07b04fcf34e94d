import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("drift, order, down, baseline, redo, history")
struct HistoryTests {
    @Test("drift: an edited applied file stops up; status shows DRIFT (exit 4); repair accepts it with an event")
    func drift() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);\n", down: "DROP TABLE teams;\n")
            try fx.pair(2, "games", up: "CREATE TABLE games (id int);\n", down: "DROP TABLE games;\n")
            #expect(try fx.migrate("up").status == 0)
            let oldChecksum = try fx.scalar("SELECT up_checksum FROM nfldb.schema_migrations WHERE version = 1", as: String.self)

            try fx.write("0001_teams.up.sql", "CREATE TABLE teams (id int);\n-- edited after apply\n")
            try fx.pair(3, "weather", up: "CREATE TABLE weather (id int);\n", down: "DROP TABLE weather;\n")
            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains(fx.path("0001_teams.up.sql")), "\(up)")
            #expect(up.stderr.contains("migrate repair"), "\(up)")
            #expect(try !fx.tableExists("weather"))

            let status = try fx.migrate("status")
            #expect(status.stdout.contains("DRIFT"), "\(status)")
            #expect(status.stdout.contains("drift: 1"), "\(status)")
            #expect(try fx.migrate("status", "--exit-code").status == 4)

            let repair = try fx.migrate("repair")
            #expect(repair.status == 0, "\(repair)")
            let newChecksum = try fx.scalar("SELECT up_checksum FROM nfldb.schema_migrations WHERE version = 1", as: String.self)
            #expect(newChecksum == "sha256:v1:" + (try sha256sum(fx.path("0001_teams.up.sql"))))
            #expect(newChecksum != oldChecksum)
            let event = try #require(try fx.events().last)
            #expect(event.event == "repair" && event.version == 1)
            #expect(event.detail?.contains(oldChecksum) == true && event.detail?.contains(newChecksum) == true, "\(event)")

            #expect(try fx.migrate("status", "--exit-code").status == 3)
            let after = try fx.migrate("up")
            #expect(after.status == 0, "\(after)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
            #expect(try fx.migrate("status", "--exit-code").status == 0)
        }
    }

    @Test("out of order: a new older version is refused unless --allow-out-of-order; status --exit-code 3 while pending")
    func outOfOrder() throws {
        try withFixture { fx in
            try fx.pair(1, "one", up: "CREATE TABLE one_tbl (id int);", down: "DROP TABLE one_tbl;")
            try fx.pair(3, "three", up: "CREATE TABLE three_tbl (id int);", down: "DROP TABLE three_tbl;")
            #expect(try fx.migrate("up").status == 0)
            #expect(try fx.migrate("status", "--exit-code").status == 0)

            try fx.pair(2, "two", up: "CREATE TABLE two_tbl (id int);", down: "DROP TABLE two_tbl;")
            #expect(try fx.migrate("status", "--exit-code").status == 3)
            let status = try fx.migrate("status")
            #expect(status.stdout.contains("out of order"), "\(status)")
            #expect(status.stdout.contains("pending: 1"), "\(status)")

            let refused = try fx.migrate("up")
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderr.contains("0002_two"), "\(refused)")
            #expect(refused.stderr.contains("--allow-out-of-order"), "\(refused)")
            #expect(try !fx.tableExists("two_tbl"))

            let allowed = try fx.migrate("up", "--allow-out-of-order")
            #expect(allowed.status == 0, "\(allowed)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
            #expect(try fx.tableExists("two_tbl"))
            #expect(try fx.migrate("status", "--exit-code").status == 0)
        }
    }

    @Test("down runs the stored down SQL after the down file was edited, and after the files were deleted")
    func downUsesStoredSQL() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "games", up: "CREATE TABLE games (id int);", down: "DROP TABLE games;")
            #expect(try fx.migrate("up").status == 0)

            // Edited to something else entirely: if the file ran, a marker table would appear and games would stay.
            try fx.write("0002_games.down.sql", "CREATE TABLE down_file_ran (id int);")
            let status = try fx.migrate("status")
            #expect(status.stdout.contains("down file changed"), "\(status)")
            let dry = try fx.migrate("down", "1", "--dry-run")
            #expect(dry.status == 0 && dry.stdout.contains("DROP TABLE games;") && !dry.stdout.contains("down_file_ran"), "\(dry)")
            let down = try fx.migrate("down", "1")
            #expect(down.status == 0, "\(down)")
            #expect(down.stderr.contains("warning:"), "\(down)")
            #expect(down.stderr.contains("0002_games.down.sql changed since 0002_games was applied"), "\(down)")
            #expect(down.stderr.contains("- DROP TABLE games;") && down.stderr.contains("+ CREATE TABLE down_file_ran"), "\(down)")
            #expect(try !fx.tableExists("games"))
            #expect(try !fx.tableExists("down_file_ran"))
            #expect(try fx.ledgerVersions() == [1])
            let rollback = try #require(try fx.events().last)
            #expect(rollback.event == "rollback" && rollback.version == 2)

            // Files deleted entirely: the stored SQL still rolls back.
            for file in try fx.files() { try fx.remove(file) }
            let gone = try fx.migrate("down", "1")
            #expect(gone.status == 0, "\(gone)")
            #expect(gone.stderr.contains("no longer in the migrations directory"), "\(gone)")
            #expect(try !fx.tableExists("teams"))
            #expect(try fx.ledgerVersions() == [])
        }
    }

    @Test("down refuses N > applied and a missing count (exit 2); down --to V rolls back everything above V")
    func downCounts() throws {
        try withFixture { fx in
            for v in 1...3 { try fx.pair(v, "t\(v)", up: "CREATE TABLE t\(v) (id int);", down: "DROP TABLE t\(v);") }
            #expect(try fx.migrate("up").status == 0)

            let tooMany = try fx.migrate("down", "4")
            #expect(tooMany.status == 2, "\(tooMany)")
            #expect(tooMany.stderr.contains("only 3 are applied"), "\(tooMany)")
            #expect(try fx.migrate("down").status == 2)
            #expect(try fx.migrate("down", "0").status == 2)
            #expect(try fx.migrate("down", "1", "--to", "1").status == 2)
            #expect(try fx.ledgerVersions() == [1, 2, 3])

            let to = try fx.migrate("down", "--to", "1")
            #expect(to.status == 0, "\(to)")
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.tableExists("t1") && !fx.tableExists("t2") && !fx.tableExists("t3"))
            #expect(try fx.events().suffix(2).map(\.version) == [3, 2])

            let nothing = try fx.migrate("down", "--to", "1")
            #expect(nothing.status == 0 && nothing.stdout.contains("nothing to"), "\(nothing)")
        }
    }

    @Test("baseline marks versions applied without running them; up continues above it; down cannot go below it")
    func baseline() throws {
        try withFixture { fx in
            for v in 1...5 { try fx.pair(v, "b\(v)", up: "CREATE TABLE b\(v) (id int);", down: "DROP TABLE b\(v);") }
            let baseline = try fx.migrate("baseline", "2")
            #expect(baseline.status == 0, "\(baseline)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.scalar("SELECT string_agg(kind, ',' ORDER BY version) FROM nfldb.schema_migrations", as: String.self) == "baseline,baseline")
            #expect(try !fx.tableExists("b1") && !fx.tableExists("b2"))
            #expect(try fx.events().map(\.event) == ["baseline", "baseline"])
            #expect(try fx.migrate("status").stdout.contains("baseline"))

            let up = try fx.migrate("up")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4, 5])
            #expect(try fx.tableExists("b3") && fx.tableExists("b5"))
            #expect(try !fx.tableExists("b1") && !fx.tableExists("b2"))
            #expect(try fx.migrate("baseline", "4").status == 2)

            let below = try fx.migrate("down", "5")
            #expect(below.status == 2, "\(below)")
            #expect(below.stderr.contains("baseline"), "\(below)")
            let belowTo = try fx.migrate("down", "--to", "1")
            #expect(belowTo.status == 2, "\(belowTo)")
            #expect(belowTo.stderr.contains("baseline"), "\(belowTo)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4, 5])

            #expect(try fx.migrate("down", "3").status == 0)
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try !fx.tableExists("b3") && !fx.tableExists("b4") && !fx.tableExists("b5"))
            #expect(try fx.migrate("down", "1").status == 2)
        }
    }

    @Test("redo rolls back and re-applies the newest; history is newest first; status --format json has entries")
    func redoHistoryJSON() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "games", up: "CREATE TABLE games (id int);", down: "DROP TABLE games;")
            #expect(try fx.migrate("up").status == 0)
            try fx.execute("INSERT INTO games VALUES (1); INSERT INTO teams VALUES (1)")

            // The edited down file is not what runs (the stored down SQL is), and redo says so.
            try fx.write("0002_games.down.sql", "DELETE FROM teams;")
            let redo = try fx.migrate("redo")
            #expect(redo.status == 0, "\(redo)")
            #expect(redo.stderr.contains("warning: ") && redo.stderr.contains("0002_games.down.sql changed"), "\(redo)")
            #expect(redo.stdout.contains("redone: 2"), "\(redo)")
            #expect(try fx.scalar("SELECT count(*)::int FROM games", as: Int.self) == 0)
            #expect(try fx.scalar("SELECT count(*)::int FROM teams", as: Int.self) == 1)
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.events().map(\.event) == ["apply", "apply", "rollback", "apply"])

            let history = try fx.migrate("history", "--format", "json")
            #expect(history.status == 0, "\(history)")
            let events = try #require(try history.json() as? [[String: Any]], "\(history)")
            #expect(events.count == 4)
            let ids = events.compactMap { ($0["id"] as? NSNumber)?.int64Value }
            #expect(ids.count == 4 && ids == ids.sorted(by: >), "\(ids)")
            #expect(events.map { $0["event"] as? String } == ["apply", "rollback", "apply", "apply"])
            #expect(events.first?["version"] as? Int == 2)
            #expect(events.first?["actor"] as? String == fx.db.cluster.superuser)

            let text = try fx.migrate("history", "--limit", "2")
            let lines = text.stdout.split(separator: "\n").dropFirst()
            #expect(lines.count == 2, "\(text)")
            #expect(lines.first?.contains("apply") == true && lines.last?.contains("rollback") == true, "\(text)")

            let status = try fx.migrate("status", "--format", "json")
            #expect(status.status == 0, "\(status)")
            let object = try #require(try status.json() as? [String: Any], "\(status)")
            let entries = try #require(object["entries"] as? [[String: Any]])
            #expect(entries.map { $0["version"] as? Int } == [1, 2])
            #expect(entries.map { $0["state"] as? String } == ["applied", "applied"])
            #expect(entries.allSatisfy { $0["drift"] as? Bool == false })
            #expect(object["current_version"] as? Int == 2)
        }
    }
}
