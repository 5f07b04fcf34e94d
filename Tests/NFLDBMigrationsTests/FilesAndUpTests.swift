import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("migration files, up and create")
struct FilesAndUpTests {
    @Test("one load error lists every bad file (duplicate version, missing down, bad name, unknown directive); CLI exits 2")
    func invalidDirectoryListsEveryProblem() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(1, "players", up: "CREATE TABLE players (id int);", down: "DROP TABLE players;")
            try fx.write("0002_games.up.sql", "CREATE TABLE games (id int);")
            try fx.write("1-bad.up.sql", "SELECT 1;")
            try fx.pair(3, "weather", up: "-- weather table\n-- nfldb:foo\nCREATE TABLE weather (id int);", down: "DROP TABLE weather;")
            try fx.pair(4, "fine", up: "CREATE TABLE fine (id int);", down: "DROP TABLE fine;")

            let error = #expect(throws: MigrationError.self) { try fx.load() }
            let message = try #require(error).description
            #expect(message.contains("4 problems"), "\(message)")
            #expect(message.contains("version 1 is used by several files"), "\(message)")
            #expect(message.contains("0001_teams.up.sql") && message.contains("0001_players.up.sql"), "\(message)")
            #expect(message.contains("0002_games.up.sql: missing its down half 0002_games.down.sql"), "\(message)")
            #expect(message.contains("1-bad.up.sql: name does not match"), "\(message)")
            #expect(message.contains("0003_weather.up.sql:2: unknown directive nfldb:foo"), "\(message)")
            #expect(!message.contains("0004_fine"), "\(message)")
            #expect(try #require(error).exitStatus == .usage)

            let up = try fx.migrate("up")
            #expect(up.status == 2, "\(up)")
            for fragment in ["version 1 is used by several files", "0002_games.up.sql: missing its down half", "1-bad.up.sql", "unknown directive nfldb:foo"] {
                #expect(up.stderr.contains(fragment), "missing \(fragment) in \(up)")
            }
            // Nothing ran, not even the ledger.
            #expect(try !fx.ledgerExists())
            #expect(try !fx.tableExists("fine"))

            let missing = CLIResult(try CLIRunner.run(["migrate", "up", "--dsn", fx.dsn, "--dir", fx.dir + "/nope"]))
            #expect(missing.status == 2, "\(missing)")
            #expect(missing.stderr.contains("does not exist"), "\(missing)")
        }
    }

    @Test("header directives reach the server: lock-timeout and statement-timeout per migration, defaults and --lock-timeout otherwise; malformed ones are errors")
    func directives() throws {
        try withFixture { fx in
            func capture(_ table: String) -> String { "CREATE TABLE \(table) AS SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st;" }
            try fx.pair(1, "with_directives", up: "-- settings from the header\n-- nfldb:lock-timeout 7s\n-- nfldb:statement-timeout 10min\n" + capture("seen1"),
                        down: "DROP TABLE seen1;")
            try fx.pair(2, "defaults", up: capture("seen2"), down: "DROP TABLE seen2;")
            let up = try fx.migrate("up", "--to", "2")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.scalar("SELECT lt || ' ' || st FROM seen1", as: String.self) == "7s 10min")
            #expect(try fx.scalar("SELECT lt || ' ' || st FROM seen2", as: String.self) == "5s 0")
            try fx.pair(3, "flag", up: capture("seen3"), down: "DROP TABLE seen3;")
            #expect(try fx.migrate("up", "--lock-timeout", "2s").status == 0)
            #expect(try fx.scalar("SELECT lt FROM seen3", as: String.self) == "2s")

            // statement-timeout stops a slow migration (and it rolls back).
            try fx.pair(4, "slow", up: "-- nfldb:statement-timeout 100ms\nCREATE TABLE slow_tbl (id int);\nSELECT pg_sleep(5);\n", down: "DROP TABLE slow_tbl;")
            let start = ContinuousClock.now
            let slow = try fx.migrate("up")
            #expect(slow.status == 1, "\(slow)")
            #expect(slow.stderr.contains("57014"), "\(slow)")
            #expect(ContinuousClock.now - start < .seconds(4))
            #expect(try !fx.tableExists("slow_tbl"))

            try fx.write("0004_slow.up.sql", "-- nfldb:lock-timeout soon\nSELECT 1;\n")
            let bad = try fx.migrate("up")
            #expect(bad.status == 2, "\(bad)")
            #expect(bad.stderr.contains("0004_slow.up.sql:1: nfldb:lock-timeout needs a duration"), "\(bad)")
            // After the first statement, `-- nfldb:` lines are ordinary comments.
            try fx.write("0004_slow.up.sql", "SELECT 1;\n-- nfldb:whatever\n")
            #expect(try fx.migrate("up").status == 0)
        }
    }

    @Test("up applies in order and records the full history row and an apply event; --to, --dry-run, repeat up is a no-op")
    func upRecordsHistory() throws {
        try withFixture { fx in
            try fx.pair(1, "create_teams", up: "CREATE TABLE teams (id int PRIMARY KEY, name text);\n", down: "DROP TABLE teams;\n")
            try fx.pair(2, "create_games", up: "CREATE TABLE games (id int PRIMARY KEY, home int REFERENCES teams (id));\n", down: "DROP TABLE games;\n")
            try fx.pair(3, "games_home_idx", up: "CREATE INDEX games_home_idx ON games (home);\nINSERT INTO teams VALUES (1, 'KC');\n",
                        down: "DELETE FROM teams WHERE id = 1;\nDROP INDEX games_home_idx;\n")

            // --dry-run prints the SQL with its transaction boundaries and changes nothing.
            let dry = try fx.migrate("up", "--dry-run")
            #expect(dry.status == 0, "\(dry)")
            #expect(dry.stdout.contains("BEGIN;"), "\(dry)")
            #expect(dry.stdout.contains("COMMIT;"), "\(dry)")
            #expect(dry.stdout.contains("CREATE TABLE teams (id int PRIMARY KEY, name text);"), "\(dry)")
            #expect(dry.stdout.contains("CREATE INDEX games_home_idx ON games (home);"), "\(dry)")
            let order = ["0001_create_teams.up.sql", "0002_create_games.up.sql", "0003_games_home_idx.up.sql"].map { dry.stdout.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "\(dry)")
            #expect(try !fx.ledgerExists())
            #expect(try !fx.tableExists("teams"))

            // --to 2
            let partial = try fx.migrate("up", "--to", "2")
            #expect(partial.status == 0, "\(partial)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.tableExists("games"))
            #expect(try !fx.tableExists("games_home_idx"))

            let rest = try fx.migrate("up")
            #expect(rest.status == 0, "\(rest)")
            #expect(rest.stdout.contains("database at version 3"), "\(rest)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
            #expect(try fx.tableExists("games_home_idx"))

            let version = try CLIRunner.run(["--version"]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            let rows = try fx.sql { try $0.query("SELECT * FROM nfldb.schema_migrations ORDER BY version").rows }
            #expect(rows.count == 3)
            for (row, name) in zip(rows, ["create_teams", "create_games", "games_home_idx"]) {
                let v: Int64 = try row.decode("version")
                let file = Fixture.fileName(Int(v), name, "up")
                #expect(try row.decode("name", as: String.self) == name)
                #expect(try row.decode("state", as: String.self) == "applied")
                #expect(try row.decode("kind", as: String.self) == "migration")
                #expect(try row.decode("transactional", as: Bool.self))
                #expect(try row.decode("up_checksum", as: String.self) == "sha256:v1:" + sha256sum(fx.path(file)))
                #expect(try row.decode("down_sql", as: String?.self) == fx.read(Fixture.fileName(Int(v), name, "down")))
                #expect(try row.decode("down_checksum", as: String?.self)?.hasPrefix("sha256:v1:") == true)
                #expect(try row.decode("up_sql", as: String?.self) == fx.read(file))
                #expect(try row.decode("applied_by", as: String.self) == fx.db.cluster.superuser)
                #expect(try row.decode("client_host", as: String?.self) == ProcessInfo.processInfo.hostName)
                #expect(try (row.decode("duration_ms", as: Int64?.self) ?? -1) >= 0)
                #expect(try row.decode("nfldb_version", as: String?.self) == version)
                #expect(try row.decode("statements_total", as: Int?.self) == (v == 3 ? 2 : 1))
                #expect(try row.decode("up_path", as: String?.self) == fx.path(file))
            }
            let events = try fx.events()
            #expect(events.map(\.event) == ["apply", "apply", "apply"])
            #expect(events.map(\.version) == [1, 2, 3])
            #expect(events.first?.detail?.contains("sha256:v1:") == true)

            // A second up is a no-op that exits 0.
            let again = try fx.migrate("up")
            #expect(again.status == 0, "\(again)")
            #expect(again.stdout.contains("nothing to"), "\(again)")
            #expect(again.stdout.contains("database at version 3"), "\(again)")
            let json = try fx.migrate("up", "--format", "json")
            #expect(json.status == 0, "\(json)")
            let object = try #require(try json.json() as? [String: Any], "\(json)")
            #expect((object["steps"] as? [Any])?.isEmpty == true, "\(json)")
            #expect(try fx.events().count == 3)
            #expect(try fx.scalar("SELECT count(*)::int FROM teams", as: Int.self) == 1)

            // Dry run with nothing pending says so.
            let dryNothing = try fx.migrate("up", "--dry-run")
            #expect(dryNothing.status == 0 && dryNothing.stdout.contains("nothing to apply"), "\(dryNothing)")
        }
    }

    @Test("migrate create writes the next pair; a bad name exits 2")
    func create() throws {
        try withFixture { fx in
            for (v, name) in [(1, "one"), (2, "two"), (3, "three")] {
                try fx.pair(v, name, up: "SELECT \(v);", down: "SELECT \(v);")
            }
            let created = try fx.migrate("create", "add_thing")
            #expect(created.status == 0, "\(created)")
            #expect(created.stdout.contains("0004_add_thing.up.sql"), "\(created)")
            let files = try fx.files()
            #expect(files.contains("0004_add_thing.up.sql") && files.contains("0004_add_thing.down.sql"), "\(files)")
            // The template is a valid pair: the directory still loads.
            let loaded = try fx.load()
            #expect(loaded.map(\.version) == [1, 2, 3, 4])
            #expect(loaded.last?.directives.transactional == true)

            for bad in ["AddThing", "add-thing", "_x", ""] {
                let result = try fx.migrate("create", bad)
                #expect(result.status == 2, "\(bad): \(result)")
            }
            #expect(try fx.files().count == 8)

            // An empty (or missing) directory starts at 0001.
            let empty = try CLIRunner.temporaryDirectory("nfldb-migtest")
            defer { try? FileManager.default.removeItem(atPath: empty) }
            let first = try MigrationDirectory(path: empty + "/sub").create(name: "init")
            #expect(first.up.hasSuffix("/sub/0001_init.up.sql"))
        }
    }

    @Test("create numbers after the highest existing version even when the directory has problems")
    func createInBrokenDirectory() throws {
        try withFixture { fx in
            try fx.pair(1, "one", up: "SELECT 1;", down: "SELECT 1;")
            try fx.pair(7, "seven", up: "-- nfldb:bogus\nSELECT 7;", down: "SELECT 7;")
            let created = try fx.migrate("create", "next_one")
            #expect(created.status == 0, "\(created)")
            let files = try fx.files()
            #expect(files.contains("0008_next_one.up.sql"), "\(files)")
            #expect(!files.contains("0001_next_one.up.sql"), "\(files)")
        }
    }

    @Test("create after the largest possible version (Int64.max) exits 2 saying no version is left, instead of trapping")
    func createAfterLargestVersion() throws {
        try withFixture { fx in
            try fx.write("9223372036854775807_big.up.sql", "SELECT 1;")
            try fx.write("9223372036854775807_big.down.sql", "SELECT 1;")
            let created = try fx.migrate("create", "next_one")
            #expect(created.status == 2 && created.stderr.contains("no version is left after 9223372036854775807"), "\(created)")
        }
    }

    @Test("a broken symlink, a directory, a FIFO or bad UTF-8 named like a migration: each named for what it is (UTF-8 with file:line), exit 2, no hang")
    func unreadableFilesAreNamed() throws {
        try withFixture { fx in
            try fx.pair(1, "ok", up: "SELECT 1;", down: "SELECT 1;")
            try fx.write("0002_bytes.down.sql", "SELECT 1;")
            var bytes = Array("SELECT 1;\nSELECT 'caf".utf8)
            bytes += [0xE9, 0x27, 0x3B, 0x0A]  // Latin-1 é
            try Data(bytes).write(to: URL(fileURLWithPath: fx.path("0002_bytes.up.sql")))
            try FileManager.default.createSymbolicLink(atPath: fx.path("0003_dangling.up.sql"), withDestinationPath: fx.dir + "/gone.sql")
            try fx.write("0003_dangling.down.sql", "SELECT 1;")
            try FileManager.default.createDirectory(atPath: fx.path("0004_dir.up.sql"), withIntermediateDirectories: false)
            try fx.write("0004_dir.down.sql", "SELECT 1;")
            #expect(mkfifo(fx.path("0005_fifo.up.sql"), 0o600) == 0)
            try fx.write("0005_fifo.down.sql", "SELECT 1;")
            let status = try fx.migrate("status")
            #expect(status.status == 2, "\(status)")
            #expect(status.stderr.contains("0002_bytes.up.sql:2: not valid UTF-8 (byte 0xE9 at column 12)"), "\(status)")
            #expect(status.stderr.contains("0003_dangling.up.sql: a symbolic link to \(fx.dir)/gone.sql, which does not exist"), "\(status)")
            #expect(status.stderr.contains("0004_dir.up.sql: a directory named like a migration file"), "\(status)")
            #expect(status.stderr.contains("0005_fifo.up.sql: not a regular file"), "\(status)")
        }
    }

    @Test("a migration that is a symbolic link out of the directory is refused (exit 2, nothing applied); one to a file inside it runs")
    func symlinksStayInside() throws {
        try withFixture { fx in
            let outside = try CLIRunner.temporaryDirectory("nfldb-migrations-outside")
            defer { try? FileManager.default.removeItem(atPath: outside) }
            try "CREATE TABLE t1 (id int);".write(toFile: outside + "/evil.sql", atomically: true, encoding: .utf8)
            try fx.pair(1, "ok", up: "CREATE TABLE t0 (id int);", down: "DROP TABLE t0;")
            // Inside: a shared file under the directory (not named like a migration) is fine.
            try fx.write("shared_up.sql.inc", "CREATE TABLE t2 (id int);")
            try FileManager.default.createSymbolicLink(atPath: fx.path("0002_inside.up.sql"), withDestinationPath: "shared_up.sql.inc")
            try fx.write("0002_inside.down.sql", "DROP TABLE t2;")
            try FileManager.default.createSymbolicLink(atPath: fx.path("0003_outside.up.sql"), withDestinationPath: outside + "/evil.sql")
            try fx.write("0003_outside.down.sql", "DROP TABLE t1;")
            let up = try fx.migrate("up")
            #expect(up.status == 2, "\(up)")
            let realOutside = URL(fileURLWithPath: outside).resolvingSymlinksInPath().path
            #expect(up.stderr.contains("0003_outside.up.sql: a symbolic link to \(realOutside)/evil.sql, outside the migrations directory"), "\(up)")
            #expect(!up.stderr.contains("0002_inside"), "\(up)")
            #expect(try fx.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('t0', 't1', 't2')", as: Int.self) == 0, "nothing applied")
            // The link replaced by the file itself: everything runs.
            try FileManager.default.removeItem(atPath: fx.path("0003_outside.up.sql"))
            try fx.write("0003_outside.up.sql", "CREATE TABLE t1 (id int);")
            let again = try fx.migrate("up")
            #expect(again.status == 0, "\(again)")
            #expect(try fx.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('t0', 't1', 't2')", as: Int.self) == 3)
        }
    }
}
