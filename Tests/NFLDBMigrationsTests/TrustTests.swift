import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// Issue 12, migrations items 7–12: on a real server, through the CLI where an operator would be.
@Suite("migrations never hang, run pg_dump COPY data, retry no-transaction lock timeouts, print hints that work")
struct TrustTests {
    // MARK: 7. COPY … TO STDOUT

    @Test("a migration with COPY … TO STDOUT finishes (output discarded) and releases the lock; a hang fails the 30 s timeout")
    func copyToStdoutDoesNotHang() throws {
        try withFixture { fx in
            try fx.pair(1, "export", up: """
                CREATE TABLE teams (id int, name text);
                INSERT INTO teams VALUES (1, 'Chiefs'), (2, 'Bills');
                COPY teams TO STDOUT;
                CREATE TABLE after_copy (id int);
                """, down: "DROP TABLE after_copy;\nDROP TABLE teams;")
            try fx.pair(2, "export_no_tx", up: """
                -- nfldb:no-transaction
                COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT WITH (FORMAT csv);
                CREATE TABLE IF NOT EXISTS after_copy_2 (id int);
                """, down: "DROP TABLE IF EXISTS after_copy_2;")
            // ProcessRunner stops the child and throws at the timeout: a hang fails here, it does not hang the suite.
            let up = try fx.cli(["migrate", "up"], timeout: .seconds(30))
            #expect(up.status == 0, "\(up)")
            #expect(!up.stdout.contains("Chiefs"), "COPY output is discarded, not printed: \(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.tableExists("after_copy") && fx.tableExists("after_copy_2"))
            #expect(try fx.advisoryLocks() == 0)
        }
    }

    // MARK: 8. COPY … FROM stdin with inline data

    static let pgDumpSeed = """
        CREATE TABLE public.teams (id integer PRIMARY KEY, name text, note text);

        --
        -- Data for Name: teams; Type: TABLE DATA; Schema: public; Owner: -
        --

        COPY public.teams (id, name, note) FROM stdin;
        1\tChiefs\t\\N
        2\tBills\tsemi;colon and 'quote'
        3\tLions\ttab\\there
        \\.

        CREATE INDEX teams_name_idx ON public.teams (name);
        """

    @Test("COPY … FROM stdin with rows up to \\. (pg_dump's form) runs as psql runs it, in both transaction modes")
    func inlineCopyData() throws {
        try withFixture { fx in
            try fx.pair(1, "seed", up: Self.pgDumpSeed, down: "DROP TABLE public.teams;")
            try fx.pair(2, "seed_more", up: "-- nfldb:no-transaction\nCOPY public.teams (id, name) FROM stdin;\n4\tRams\n\\.\n", down: "DELETE FROM public.teams WHERE id = 4;")
            // The dry run shows the rows with the statement, as a psql script would hold them.
            let dry = try fx.migrate("up", "--dry-run")
            #expect(dry.status == 0 && dry.stdout.contains("COPY public.teams (id, name, note) FROM stdin;\n1\tChiefs\t\\N\n"), "\(dry)")
            #expect(dry.stdout.contains("3\tLions\ttab\\there\n\\.\n"), "\(dry)")
            let up = try fx.cli(["migrate", "up"], timeout: .seconds(30))
            #expect(up.status == 0, "\(up)")
            #expect(try fx.scalar("SELECT count(*) FROM public.teams", as: Int.self) == 4)
            #expect(try fx.scalar("SELECT note FROM public.teams WHERE id = 1", as: String?.self) == nil)
            #expect(try fx.scalar("SELECT note FROM public.teams WHERE id = 2", as: String.self) == "semi;colon and 'quote'")
            #expect(try fx.scalar("SELECT note FROM public.teams WHERE id = 3", as: String.self) == "tab\there")
            #expect(try fx.tableExists("public.teams_name_idx"))
            // The stored up SQL is the file, data included; down and up again work.
            #expect(try fx.migrate("down", "2").status == 0)
            #expect(try fx.migrate("up").status == 0)
            #expect(try fx.scalar("SELECT count(*) FROM public.teams", as: Int.self) == 4)
        }
    }

    @Test("a bad row in inline COPY data names the file:line of that row; the migration is rolled back")
    func inlineCopyBadRow() throws {
        try withFixture { fx in
            try fx.pair(1, "seed", up: """
                CREATE TABLE teams (id integer, name text);
                COPY teams (id, name) FROM stdin;
                1\tChiefs
                2\tBills
                three\tLions
                \\.
                """, down: "DROP TABLE teams;")
            let up = try fx.cli(["migrate", "up"], timeout: .seconds(30))
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains(fx.path("0001_seed.up.sql") + ":5"), "\(up)")
            #expect(up.stderr.contains("22P02"), "\(up)")
            #expect(try !fx.tableExists("teams"))
            #expect(try fx.ledgerVersions() == [])
            // Without its \. line the file is refused before anything runs, naming the first data line.
            try fx.write("0001_seed.up.sql", "CREATE TABLE teams (id integer);\nCOPY teams FROM stdin;\n1\n")
            let unterminated = try fx.migrate("up")
            #expect(unterminated.status != 0, "\(unterminated)")
            #expect(unterminated.stderr.contains("0001_seed.up.sql:3"), "\(unterminated)")
            #expect(try !fx.tableExists("teams"))
        }
    }

    // MARK: 9. no-transaction migrations and lock_timeout

    @Test("no-transaction CREATE INDEX CONCURRENTLY behind an ACCESS EXCLUSIVE lock: retried with backoff, blocker named, not dirty")
    func noTransactionLockTimeout() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "x_idx", up: "-- nfldb:no-transaction\n-- nfldb:lock-timeout 200ms\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x_id_idx ON x (id);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS x_id_idx;")
            let blocker = try fx.connect()
            defer { blocker.close() }
            try blocker.execute("BEGIN")
            try blocker.execute("LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
            let up = try fx.migrate("up", env: ["NFLDB_MIGRATIONS_LOCK_RETRIES": "2", "NFLDB_MIGRATIONS_RETRY_BACKOFF": "100ms"])
            #expect(up.status == 1, "\(up)")
            #expect(up.stdout.contains("retry 1") && up.stdout.contains("retry 2") && !up.stdout.contains("retry 3"), "\(up)")
            #expect(up.stderr.contains("gave up after 2 retries"), "\(up)")
            #expect(up.stderr.contains("pid \(blocker.backendPID)"), "\(up)")
            #expect(up.stderr.contains("55P03"), "\(up)")
            #expect(up.stderr.contains("0002_x_idx.up.sql:3"), "\(up)")
            #expect(up.stderr.contains("not dirty"), "\(up)")
            // Nothing ran and nothing was left: no dirty row, no INVALID index, a fail event.
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.events().last?.event == "fail")
            #expect(try fx.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid", as: Int.self) == 0)
            // The hint's command works once the blocker is gone.
            #expect(up.stderr.contains("nfldb migrate up"), "\(up)")
            try blocker.execute("ROLLBACK")
            let again = try fx.migrate("up")
            #expect(again.status == 0, "\(again)")
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }

    @Test("no-transaction: the blocker commits during the retries and the migration completes")
    func noTransactionLockTimeoutRetrySucceeds() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "x_idx", up: "-- nfldb:no-transaction\n-- nfldb:lock-timeout 200ms\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x_id_idx ON x (id);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS x_id_idx;")
            let blocker = try fx.connect()
            defer { blocker.close() }
            try blocker.execute("BEGIN")
            try blocker.execute("LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
            let child = try CLIRunner.spawn(fx.migrateArguments(["up"]), environment: ["NFLDB_MIGRATIONS_LOCK_RETRIES": "10", "NFLDB_MIGRATIONS_RETRY_BACKOFF": "300ms"])
            defer { child.kill9(); child.removeOutput() }
            // The first attempt waits on the lock, times out (no waiter during the backoff): then let go.
            func waiting() throws -> Bool {
                try fx.scalar("SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'x'::regclass", as: Bool.self)
            }
            #expect(try poll(timeout: .seconds(20)) { try waiting() }, "the runner never waited on the lock")
            #expect(try poll(timeout: .seconds(20)) { try !waiting() }, "the first attempt never timed out")
            try blocker.execute("COMMIT")
            let result = child.result(timeout: .seconds(60))
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("retry 1"), "\(result)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid", as: Int.self) == 0)
        }
    }

    @Test("no-transaction: a failure after a statement ran is still dirty, with a resolve hint that works")
    func noTransactionLaterFailureIsDirty() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            try fx.pair(2, "x_idx", up: "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x_id_idx ON x (id);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x_bad_idx ON x (nope);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS x_id_idx;")
            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(try fx.ledgerRow(2)?.decode("state", as: String.self) == "failed")
            #expect(up.stderr.contains("nfldb migrate resolve 2 --applied"), "\(up)")
            try fx.execute("DROP INDEX x_id_idx")
            let resolve = try fx.migrate("resolve", "2", "--rolled-back")
            #expect(resolve.status == 0, "\(resolve)")
            #expect(try fx.ledgerVersions() == [1])
        }
    }

    // MARK: 10. hints after a failed down

    @Test("a failed transactional down: both commands its hint names work in that state")
    func failedDownHints() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "stats", up: "CREATE TABLE stats (id int);", down: "DROP TABLE stats;\nDROP TABLE no_such_table;")
            #expect(try fx.migrate("up").status == 0)
            let down = try fx.migrate("down", "1")
            #expect(down.status == 1, "\(down)")
            #expect(down.stderr.contains("still applied"), "\(down)")
            #expect(down.stderr.contains("`nfldb migrate down 1`"), "\(down)")
            #expect(down.stderr.contains("`nfldb migrate resolve 2 --rolled-back --force`"), "\(down)")
            #expect(try fx.tableExists("stats"), "the rollback was undone")
            // Hint 1: undo by hand, then resolve --rolled-back --force (the state in which the hint was printed).
            try fx.execute("DROP TABLE stats")
            let resolve = try fx.migrate("resolve", "2", "--rolled-back", "--force", "--reason", "dropped by hand")
            #expect(resolve.status == 0, "\(resolve)")
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.events().last?.event == "resolve-rolled-back")
            // resolve --applied on an applied version still refuses, and says what would work.
            let refused = try fx.migrate("resolve", "1", "--applied")
            #expect(refused.status == 2, "\(refused)")
            #expect(refused.stderr.contains("already recorded as applied"), "\(refused)")

            // Hint 2: fix the cause, then `down 1` again.
            try fx.write(Fixture.fileName(3, "scores", "up"), "CREATE TABLE scores (id int);")
            try fx.write(Fixture.fileName(3, "scores", "down"), "DROP TABLE scores;\nDROP TABLE scores_helper;")
            #expect(try fx.migrate("up").status == 0)
            let failing = try fx.migrate("down", "1")
            #expect(failing.status == 1 && failing.stderr.contains("`nfldb migrate down 1`"), "\(failing)")
            try fx.execute("CREATE TABLE scores_helper (id int)")
            let retried = try fx.migrate("down", "1")
            #expect(retried.status == 0, "\(retried)")
            #expect(try fx.ledgerVersions() == [1, 2], "up re-applied 2 after it was resolved as rolled back; 3 is rolled back")
        }
    }

    @Test("a failed --single-transaction down names `down N` for the ones above the failing one, and it works")
    func failedBatchDownHint() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "broken", up: "CREATE TABLE broken (id int);", down: "DROP TABLE brokenz;")
            try fx.pair(3, "fine", up: "CREATE TABLE fine (id int);", down: "DROP TABLE fine;")
            try fx.pair(4, "fine_too", up: "CREATE TABLE fine_too (id int);", down: "DROP TABLE fine_too;")
            #expect(try fx.migrate("up").status == 0)
            let down = try fx.migrate("down", "3", "--single-transaction")
            #expect(down.status == 1, "\(down)")
            #expect(down.stderr.contains("`nfldb migrate down 2`"), "\(down)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4])
            let hinted = try fx.migrate("down", "2")
            #expect(hinted.status == 0, "\(hinted)")
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }

    @Test("a failed no-transaction down after a statement ran is dirty; its resolve hint works")
    func failedNoTransactionDownHint() throws {
        try withFixture { fx in
            try fx.pair(1, "x", up: "CREATE TABLE x (id int);\nCREATE INDEX x_id_idx ON x (id);", down: "DROP TABLE x;")
            try fx.pair(2, "x_idx", up: "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x_id2_idx ON x (id);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS x_id2_idx;\nDROP INDEX CONCURRENTLY no_such_idx;\n")
            #expect(try fx.migrate("up").status == 0)
            let down = try fx.migrate("down", "1")
            #expect(down.status == 1, "\(down)")
            #expect(down.stderr.contains("`nfldb migrate resolve 2 --rolled-back`"), "\(down)")
            let resolve = try fx.migrate("resolve", "2", "--rolled-back")
            #expect(resolve.status == 0, "\(resolve)")
            #expect(try fx.ledgerVersions() == [1])
        }
    }

    // MARK: 11. down needs only what it uses

    @Test("down with an applied migration's .down.sql missing warns and runs the stored down SQL; up still refuses")
    func downToleratesMissingDownFile() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "stats", up: "CREATE TABLE stats (id int);", down: "DROP TABLE stats;")
            #expect(try fx.migrate("up").status == 0)
            try fx.remove(Fixture.fileName(2, "stats", "down"))
            try fx.write("notes.sql", "-- a stray file with a bad name\n")
            let up = try fx.migrate("up")
            #expect(up.status != 0, "up needs an intact directory: \(up)")
            let down = try fx.migrate("down", "1")
            #expect(down.status == 0, "\(down)")
            #expect(down.stderr.contains("warning:") && down.stderr.contains("missing its down half"), "\(down)")
            #expect(down.stderr.contains("notes.sql"), "\(down)")
            #expect(try !fx.tableExists("stats"))
            #expect(try fx.ledgerVersions() == [1])
            let dry = try fx.migrate("down", "1", "--dry-run")
            #expect(dry.status == 0 && dry.stdout.contains("DROP TABLE teams;"), "\(dry)")
        }
    }

    // MARK: 12. lint false positives, empty files, verify

    @Test("lint: tables and materialized views created in the same file, names as written, empty files")
    func lintFalsePositives() throws {
        try withFixture { fx in
            try fx.pair(1, "new_things", up: """
                CREATE TABLE "BUILD_OUTPUTS" (id int, obsolete text);
                CREATE INDEX build_outputs_id_idx ON "BUILD_OUTPUTS" (id);
                ALTER TABLE "BUILD_OUTPUTS" DROP COLUMN obsolete;
                CREATE MATERIALIZED VIEW team_totals AS SELECT 1 AS id;
                CREATE UNIQUE INDEX team_totals_id_idx ON team_totals (id);
                CREATE INDEX build_outputs_lower_idx ON build_outputs (id);
                """, down: "DROP MATERIALIZED VIEW team_totals;\nDROP TABLE \"BUILD_OUTPUTS\";")
            try fx.pair(2, "empty", up: "-- nothing here yet\n", down: "")
            try fx.pair(3, "drop_obsolete", up: "ALTER TABLE \"BUILD_OUTPUTS\" DROP COLUMN obsolete;", down: "SELECT 1;")
            let migrations = try fx.load()
            let findings = try MigrationLinter.lint(migrations[0])
            // Only the last index is flagged: unquoted build_outputs is another table than "BUILD_OUTPUTS".
            #expect(findings.map { "\($0.line):\($0.rule)" } == ["6:create-index-without-concurrently"], "\(findings)")
            #expect(findings.first?.message.contains("build_outputs") == true && findings.first?.message.contains("BUILD_OUTPUTS") == false, "\(findings)")
            let quoted = try MigrationLinter.lint(migrations[2])
            #expect(quoted.map { "\($0.line):\($0.rule)" } == ["1:drop-column"], "\(quoted)")
            #expect(quoted.first?.message.contains("\"BUILD_OUTPUTS\"") == true, "printed as written: \(quoted)")
            let empty = try MigrationLinter.lint(migrations[1])
            #expect(empty.map { "\($0.line):\($0.rule):\($0.severity.rawValue)" } == ["1:empty-migration:warning"], "\(empty)")
            let cli = try fx.cli(["migrate", "lint", "--all"])
            #expect(cli.stdout.contains("0002_empty.up.sql:1: warning [empty-migration]"), "\(cli)")
        }
    }

    @Test("verify reports every failing migration, and each diff shows both sides")
    func verifyReportsEveryFailure() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int, name text);", down: "DROP TABLE teams;")
            // Down changes a column instead of dropping the added one: both sides differ.
            try fx.pair(2, "teams_city", up: "ALTER TABLE teams ADD COLUMN city text;", down: "ALTER TABLE teams ALTER COLUMN name TYPE varchar(20);")
            try fx.pair(3, "games", up: "CREATE TABLE games (id int);", down: "DROP TABLE games;")
            try fx.pair(4, "stats", up: "CREATE TABLE stats (id int);\nCREATE TABLE stats_archive (id int);", down: "DROP TABLE stats;")
            try fx.pair(5, "broken_down", up: "CREATE TABLE later (id int);", down: "DROP TABLE laterz;")
            let verify = try fx.migrate("verify")
            #expect(verify.status == 1, "\(verify)")
            for id in ["0002_teams_city", "0004_stats", "0005_broken_down"] {
                #expect(verify.stdout.contains("FAIL \(id)"), "\(id): \(verify)")
            }
            #expect(!verify.stdout.contains("FAIL 0001") && !verify.stdout.contains("FAIL 0003"), "\(verify)")
            #expect(verify.stdout.contains("--- schema before 0002_teams_city up") && verify.stdout.contains("+++ schema after its up + down"), "\(verify)")
            #expect(verify.stdout.contains("  - ") && verify.stdout.contains("name text"), "the old side is shown: \(verify)")
            #expect(verify.stdout.contains("  + ") && verify.stdout.contains("character varying(20)"), "the new side is shown: \(verify)")
            #expect(verify.stdout.contains("stats_archive"), "\(verify)")
            #expect(verify.stdout.contains("laterz"), "\(verify)")
        }
    }

    @Test("verify interrupted: SIGTERM/SIGHUP drop its scratch database and say so (exit 128+signal); after kill -9 the next verify drops the leftover and says so")
    func verifyInterruptedLeavesNoScratchDatabase() throws {
        try withFixture { fx in
            try fx.pair(1, "slow", up: "SELECT pg_sleep(2);\nCREATE TABLE slow (id int);", down: "DROP TABLE slow;")
            let pattern = fx.db.name + "_nfldb_verify_%"
            func scratch() throws -> [String] {
                let admin = try fx.connect()
                defer { admin.close() }
                return try admin.query("SELECT datname FROM pg_database WHERE datname LIKE \(pattern) ORDER BY 1").rows.compactMap { $0["datname"] }
            }
            for signo in [SIGTERM, SIGHUP] {
                let child = try CLIRunner.spawn(fx.migrateArguments(["verify"]))
                defer { child.kill9(); child.removeOutput() }
                #expect(try poll(timeout: .seconds(30)) { try !scratch().isEmpty && child.handles(signo) }, "no scratch database appeared: \(child.outputTail())")
                let name = try scratch().first ?? "?"
                child.send(signo)
                let status = child.wait(timeout: .seconds(30))
                #expect(status == 128 + signo, "\(String(describing: status)): \(child.outputTail())")
                #expect(child.standardError.contains("scratch database \(name) dropped; the real database was not touched"), "\(child.outputTail())")
                #expect(!child.standardOutput.contains("FAIL"), "no failure reported for the run the signal ended: \(child.outputTail())")
                #expect(try scratch().isEmpty)
            }
            let killed = try CLIRunner.spawn(fx.migrateArguments(["verify"]))
            defer { killed.removeOutput() }
            #expect(try poll(timeout: .seconds(30)) { try !scratch().isEmpty })
            let left = try scratch()
            killed.kill9()
            #expect(try scratch() == left, "kill -9 leaves it (nothing can run)")
            let next = try fx.migrate("verify")
            #expect(next.status == 0, "\(next)")
            #expect(next.stdout.contains("dropped scratch database \(left.first ?? "?"), left behind by an interrupted migrate verify"), "\(next)")
            #expect(try scratch().isEmpty)
        }
    }

    @Test("verify: an up that fails on the scratch database says so (not 'down does not undo up'), with no hint aimed at the real database")
    func verifyFailedUpIsNamedAsSuch() throws {
        try withFixture { fx in
            try fx.pair(1, "p1", up: "CREATE TABLE p1 (id int);", down: "DROP TABLE p1;")
            try fx.pair(2, "again", up: "CREATE TABLE p1 (id int);", down: "DROP TABLE p1;")
            let verify = try fx.migrate("verify")
            #expect(verify.status == 1, "\(verify)")
            #expect(verify.stdout.contains("FAIL 0002_again: failed on the scratch database:") && verify.stdout.contains("already exists"), "\(verify)")
            #expect(!verify.stdout.contains("FAIL 0002_again: down does not undo up"), "\(verify)")
            #expect(!verify.stdout.contains("migrate down 1") && !verify.stdout.contains("resolve"), "no real-database hints: \(verify)")
            #expect(verify.stdout.contains("run `nfldb migrate verify` again"), "\(verify)")
            #expect(!verify.stdout.contains("changed the schema:\nnot checked"), "\(verify)")
        }
    }
}
