import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("verify, lint and the platform schema")
struct VerifyLintTests {
    /// Scratch databases `verify` created for this test's database and did not drop.
    func leftoverScratch(_ fx: Fixture) throws -> [String] {
        try fx.sql {
            try $0.query("SELECT datname::text AS d FROM pg_database WHERE starts_with(datname, \(fx.db.name + "_nfldb_verify_"))")
                .rows.map { try $0.decode("d") }
        }
    }

    @Test("verify passes on a correct set and drops its scratch database")
    func verifyPasses() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int PRIMARY KEY, name text);", down: "DROP TABLE teams;")
            try fx.pair(2, "games", up: "CREATE TABLE games (id int PRIMARY KEY, home int REFERENCES teams (id));\nCREATE INDEX games_home_idx ON games (home);",
                        down: "DROP TABLE games;")
            try fx.pair(3, "teams_city", up: "ALTER TABLE teams ADD COLUMN city text;", down: "ALTER TABLE teams DROP COLUMN city;")
            try fx.pair(4, "games_idx", up: "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS games_id_home_idx ON games (id, home);",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS games_id_home_idx;")
            let verify = try fx.migrate("verify")
            #expect(verify.status == 0, "\(verify)")
            #expect(verify.stdout.contains("verify passed: 4 migrations"), "\(verify)")
            #expect(try leftoverScratch(fx) == [])
            // The target database is not touched.
            #expect(try !fx.ledgerExists())
            #expect(try !fx.tableExists("teams"))
        }
    }

    @Test("verify catches a down that leaves an extra table, naming the migration; exit 1")
    func verifyCatchesExtraTable() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "stats", up: "CREATE TABLE stats (id int);\nCREATE TABLE stats_archive (id int);", down: "DROP TABLE stats;")
            try fx.pair(3, "later", up: "CREATE TABLE later (id int);", down: "DROP TABLE later;")
            let verify = try fx.migrate("verify")
            #expect(verify.status == 1, "\(verify)")
            #expect(verify.stdout.contains("FAIL 0002_stats"), "\(verify)")
            #expect(verify.stdout.contains("stats_archive"), "\(verify)")
            #expect(!verify.stdout.contains("FAIL 0001") && !verify.stdout.contains("FAIL 0003"), "\(verify)")
            #expect(verify.stdout.contains("verify FAILED"), "\(verify)")
            #expect(try leftoverScratch(fx) == [])
        }
    }

    @Test("verify catches a down that does not drop a column, naming the migration; JSON report too")
    func verifyCatchesColumn() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "teams_city", up: "ALTER TABLE teams ADD COLUMN city text;", down: "SELECT 1;")
            let verify = try fx.migrate("verify", "--format", "json")
            #expect(verify.status == 1, "\(verify)")
            let report = try #require(try verify.json() as? [String: Any], "\(verify)")
            let problems = try #require(report["problems"] as? [[String: Any]])
            #expect(problems.count == 1)
            #expect(problems.first?["version"] as? Int == 2)
            #expect(problems.first?["name"] as? String == "teams_city")
            #expect((problems.first?["difference"] as? String)?.contains("city") == true, "\(problems)")
            #expect(try leftoverScratch(fx) == [])
        }
    }

    @Test("verify reports a down that fails outright")
    func verifyCatchesFailingDown() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teamz;")
            let verify = try fx.migrate("verify")
            #expect(verify.status == 1, "\(verify)")
            #expect(verify.stdout.contains("FAIL 0001_teams"), "\(verify)")
            #expect(verify.stdout.contains("teamz"), "\(verify)")
            #expect(try leftoverScratch(fx) == [])
        }
    }

    static let riskySQL = """
        -- risky changes to existing tables
        ALTER TABLE players ADD COLUMN age int NOT NULL;
        CREATE INDEX players_team_idx ON players (team_id);
        ALTER TABLE players ALTER COLUMN name TYPE varchar(100);
        ALTER TABLE players DROP COLUMN nickname;
        DROP TABLE old_stats;
        ALTER TABLE players RENAME COLUMN name TO full_name;
        ALTER TABLE players ADD CONSTRAINT players_team_fk FOREIGN KEY (team_id) REFERENCES teams (id);
        -- the safe variants are not flagged
        ALTER TABLE players ADD COLUMN score int NOT NULL DEFAULT 0;
        ALTER TABLE players ADD CONSTRAINT players_team2_fk FOREIGN KEY (team_id) REFERENCES teams (id) NOT VALID;
        CREATE TABLE injuries (id int, player_id int);
        CREATE INDEX injuries_player_idx ON injuries (player_id);
        ALTER TABLE injuries ADD COLUMN note text NOT NULL;
        ALTER TABLE players ADD COLUMN salary numeric(12,2) NOT NULL;
        ALTER TABLE players ADD COLUMN bye smallint DEFAULT 0, ADD rookie boolean NOT NULL;
        ALTER TABLE players ADD CONSTRAINT age_ok CHECK (age > 0) NOT VALID, ADD CONSTRAINT team_fk3 FOREIGN KEY (team_id) REFERENCES teams (id);
        """

    @Test("lint flags each dangerous pattern on its line; --strict turns warnings into exit 1")
    func lint() throws {
        try withFixture { fx in
            try fx.pair(1, "base", up: """
                CREATE TABLE teams (id int PRIMARY KEY);
                CREATE TABLE players (id int PRIMARY KEY, team_id int, name text, nickname text);
                CREATE INDEX players_name_idx ON players (name);
                CREATE TABLE old_stats (id int);
                """, down: "DROP TABLE old_stats;\nDROP TABLE players;\nDROP TABLE teams;")
            try fx.pair(2, "risky", up: Self.riskySQL, down: "SELECT 1;")
            try fx.pair(3, "concurrent", up: "-- forgot nfldb:no-transaction\nCREATE INDEX CONCURRENTLY players_age_idx ON players (age);",
                        down: "DROP INDEX players_age_idx;")

            let migrations = try fx.load()
            let base = try MigrationLinter.lint(migrations[0])
            #expect(base.isEmpty, "a table created in the same file is new: \(base)")
            let risky = try MigrationLinter.lint(migrations[1])
            let found = Set(risky.map { "\($0.line):\($0.rule)" })
            let expected: Set<String> = [
                "2:add-column-not-null-without-default",
                "3:create-index-without-concurrently",
                "4:change-column-type",
                "5:drop-column",
                "6:drop-table",
                "7:rename",
                "8:add-constraint-without-not-valid",
                "15:add-column-not-null-without-default",
                "16:add-column-not-null-without-default",
                "17:add-constraint-without-not-valid",
            ]
            #expect(found == expected, "extra: \(found.subtracting(expected)); missing: \(expected.subtracting(found))")
            #expect(risky.allSatisfy { $0.severity == .warning && $0.file == fx.path("0002_risky.up.sql") && !$0.fix.isEmpty })
            let concurrent = try MigrationLinter.lint(migrations[2])
            #expect(concurrent.map { "\($0.line):\($0.rule):\($0.severity.rawValue)" } == ["2:concurrently-in-transaction:error"], "\(concurrent)")

            // CLI: pending files via the database; an error fails even without --strict.
            let withError = try fx.migrate("lint")
            #expect(withError.status == 1, "\(withError)")
            #expect(withError.stdout.contains("0002_risky.up.sql:2: warning [add-column-not-null-without-default]"), "\(withError)")
            #expect(withError.stdout.contains("0002_risky.up.sql:8: warning [add-constraint-without-not-valid]"), "\(withError)")
            #expect(withError.stdout.contains("0003_concurrent.up.sql:2: error [concurrently-in-transaction]"), "\(withError)")
            #expect(withError.stdout.contains("3 file(s) linted: 1 error(s), 10 warning(s)"), "\(withError)")

            // Marked no-transaction, the concurrent index is fine; warnings alone exit 0 unless --strict.
            try fx.write("0003_concurrent.up.sql", "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS players_age_idx ON players (age);")
            let warnings = try fx.migrate("lint")
            #expect(warnings.status == 0, "\(warnings)")
            #expect(warnings.stdout.contains("0 error(s), 10 warning(s)"), "\(warnings)")
            let strict = try fx.migrate("lint", "--strict")
            #expect(strict.status == 1, "\(strict)")

            // Only pending files are linted: once 0001 and 0002 are applied, 0003 alone is clean.
            try fx.write("0002_risky.up.sql", "ALTER TABLE players ADD COLUMN age int;")
            #expect(try fx.migrate("up", "--to", "2").status == 0)
            let pendingOnly = try fx.migrate("lint", "--strict")
            #expect(pendingOnly.status == 0, "\(pendingOnly)")
            #expect(pendingOnly.stdout.contains("1 file(s) linted: 0 error(s), 0 warning(s)"), "\(pendingOnly)")
            let all = try fx.migrate("lint", "--all", "--format", "json")
            #expect(all.status == 0, "\(all)")
            #expect((try all.json() as? [Any])?.isEmpty == true, "\(all)")
        }
    }

    @Test("the platform schema in ./migrations round-trips (up, down all, up) with an identical schema and passes verify")
    func platformSchema() throws {
        let dir = (repositoryRoot as NSString).appendingPathComponent("migrations")
        let migrations = try MigrationDirectory(path: dir).load()
        try #require(!migrations.isEmpty, "no migrations in \(dir)")
        try TestCluster.withDatabase(prefix: "platform") { db in
            let run = { (args: [String]) throws -> CLIResult in
                CLIResult(try CLIRunner.run(["migrate"] + args + ["--dsn", db.dsn, "--dir", dir], timeout: .seconds(120)))
            }
            let up = try run(["up"])
            try #require(up.status == 0, "\(up)")
            let first = try SchemaDump.dump(ConnectionOptions(dsn: db.dsn))
            #expect(!first.isEmpty)
            let down = try run(["down", String(migrations.count)])
            #expect(down.status == 0, "\(down)")
            let empty = try SchemaDump.dump(ConnectionOptions(dsn: db.dsn))
            let again = try run(["up"])
            #expect(again.status == 0, "\(again)")
            let second = try SchemaDump.dump(ConnectionOptions(dsn: db.dsn))
            #expect(first == second, "schema differs after down+up")
            #expect(empty != first)
            let status = try run(["status", "--exit-code"])
            #expect(status.status == 0, "\(status)")

            let verify = try run(["verify"])
            #expect(verify.status == 0, "\(verify)")
            let lint = try run(["lint", "--all"])
            #expect(lint.status == 0, "\(lint)")
        }
    }
}
