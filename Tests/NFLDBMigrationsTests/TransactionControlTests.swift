import Foundation
import NFLDBCore
@testable import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// Statements that fight nfldb's own transaction, and files that cannot be split: refused (or
/// flagged) before anything runs, with file:line and the real no-transaction marker.
@Suite("transaction control and unsplittable files")
struct TransactionControlTests {
    @Test("COMMIT in a transactional file: up refuses the directory before anything runs, listing every bad file with file:line and the fix")
    func commitRefusedAtLoad() throws {
        try withFixture { fx in
            try fx.pair(1, "ok", up: "CREATE TABLE ok_tbl (id int);", down: "DROP TABLE ok_tbl;")
            // The probe's file: half of it would commit, then the error claimed nothing changed.
            try fx.pair(2, "commitfail", up: "create table t4(a int);\ncommit;\nselect 1/0;\n", down: "drop table t4;")
            try fx.pair(3, "split", up: "CREATE TABLE s1 (id int);\n-- finish the first half\nCoMmIt WORK;\nCREATE TABLE s2 (id int);", down: "DROP TABLE s2;\nDROP TABLE s1;")
            try fx.pair(4, "savepoints", up: """
                BEGIN;
                CREATE TABLE sp (id int);
                SAVEPOINT a;
                ROLLBACK TO SAVEPOINT a;
                RELEASE a;
                END;
                """, down: "DROP TABLE sp;")
            try fx.pair(5, "twophase", up: "CREATE TABLE tp (id int);\nPREPARE TRANSACTION 'x';\nCOMMIT PREPARED 'x';\nSTART TRANSACTION;\nABORT;\nROLLBACK;",
                        down: "DROP TABLE tp;")
            // A transactional down file is checked too.
            try fx.pair(6, "bad_down", up: "CREATE TABLE bd (id int);", down: "DROP TABLE bd;\nCOMMIT;")

            let up = try fx.migrate("up")
            #expect(up.status == 2, "\(up)")
            #expect(up.stderr.contains("nothing was run"), "\(up)")
            #expect(up.stderr.contains(fx.path("0002_commitfail.up.sql") + ":2: COMMIT in a transactional migration"), "\(up)")
            #expect(up.stderr.contains(fx.path("0003_split.up.sql") + ":3: COMMIT"), "\(up)")
            for (line, name) in [(1, "BEGIN"), (3, "SAVEPOINT"), (4, "ROLLBACK TO"), (5, "RELEASE"), (6, "END")] {
                #expect(up.stderr.contains(fx.path("0004_savepoints.up.sql") + ":\(line): \(name) in"), "\(name)\n\(up)")
            }
            for (line, name) in [(2, "PREPARE TRANSACTION"), (3, "COMMIT PREPARED"), (4, "START TRANSACTION"), (5, "ABORT"), (6, "ROLLBACK")] {
                #expect(up.stderr.contains(fx.path("0005_twophase.up.sql") + ":\(line): \(name) in"), "\(name)\n\(up)")
            }
            #expect(up.stderr.contains(fx.path("0006_bad_down.down.sql") + ":2: COMMIT"), "\(up)")
            #expect(up.stderr.contains("Remove it; or mark the file `-- nfldb:no-transaction`"), "\(up)")
            // Nothing ran: not even 0001, and no ledger.
            #expect(try fx.ledgerVersions() == [])
            for table in ["ok_tbl", "t4", "s1", "sp", "tp", "bd"] { #expect(try !fx.tableExists(table), "\(table)") }
            // status notices too (it loads the same way).
            #expect(try fx.migrate("status", "--exit-code").status == 2)

            // lint reports each as an error finding with file:line and the fix, exit 1.
            let lint = try fx.migrate("lint", "--all")
            #expect(lint.status == 1, "\(lint)")
            #expect(lint.stdout.contains(fx.path("0002_commitfail.up.sql") + ":2: error [transaction-control-in-transaction] COMMIT"), "\(lint)")
            #expect(lint.stdout.contains(fx.path("0006_bad_down.down.sql") + ":2: error [transaction-control-in-transaction]"), "\(lint)")
            #expect(lint.stdout.contains("fix: Remove it; or mark the file `-- nfldb:no-transaction`"), "\(lint)")
            #expect(lint.stdout.contains("13 error(s)"), "\(lint)")
        }
    }

    @Test("COMMIT inside a DO or procedure body, in strings and comments is fine; a no-transaction file may manage its own transactions")
    func commitInBodiesIsFine() throws {
        try withFixture { fx in
            try fx.pair(1, "bodies", up: #"""
                -- commit; in a comment
                /* ROLLBACK; */
                CREATE TABLE log (msg text);
                INSERT INTO log VALUES ('commit;'), ($$ROLLBACK;$$);
                CREATE PROCEDURE p() LANGUAGE plpgsql AS $body$
                BEGIN
                  INSERT INTO log VALUES ('in p');
                  COMMIT;
                END
                $body$;
                DO $$
                BEGIN
                  IF false THEN COMMIT; END IF;
                  INSERT INTO log VALUES ('in do');
                END
                $$;
                CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;
                """#, down: "DROP FUNCTION f();\nDROP PROCEDURE p();\nDROP TABLE log;")
            try fx.pair(2, "own_tx", up: """
                -- nfldb:no-transaction
                BEGIN;
                CREATE TABLE IF NOT EXISTS own (id int);
                COMMIT;
                """, down: "DROP TABLE own;")
            let lint = try fx.migrate("lint", "--all")
            #expect(!lint.stdout.contains("transaction-control"), "\(lint)")
            let up = try fx.migrate("up")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.scalar("SELECT string_agg(msg, ',' ORDER BY msg) FROM log", as: String.self) == "ROLLBACK;,commit;,in do")
            #expect(try fx.tableExists("own"))
        }
    }

    @Test("if a COMMIT got past the load-time check, the run stops right after it and says what was committed")
    func runtimeGuard() throws {
        try withFixture { fx in
            try fx.pair(1, "commitfail", up: "create table t4(a int);\ncommit;\nselect 1/0;\ncreate table t5(a int);\n", down: "drop table t4;")
            let connection = try fx.connect()
            defer { connection.close() }
            var unchecked = MigratorSettings()
            unchecked.checksTransactionControl = false
            let migrator = Migrator(
                connection: connection, migrations: try MigrationDirectory(path: fx.dir).load(checkingTransactionControl: false),
                settings: unchecked, context: MigrationContext(nfldbVersion: "test", correlationID: "test"), logger: TestCluster.logger)
            let error = try #require(throws: MigrationError.self) { try migrator.up() }
            let text = "\(error.diagnostic.summary) \(error.diagnostic.detail ?? "") \(error.diagnostic.hint ?? "")"
            #expect(text.contains(fx.path("0001_commitfail.up.sql") + ":2: 0001_commitfail stopped: this statement ended nfldb's transaction"), "\(text)")
            #expect(text.contains("committed on its own"), "\(text)")
            #expect(!text.contains("unchanged"), "\(text)")
            #expect(try fx.tableExists("t4"), "the statement before the COMMIT was committed, as the message says")
            #expect(try !fx.tableExists("t5"), "nothing after the COMMIT ran")
            #expect(try fx.ledgerVersions() == [])
            #expect(try fx.events().last?.event == "fail")
        }
    }

    @Test("an applied file with a COMMIT (from before the rule; here adopted by baseline) blocks neither up, status, redo nor down of the others; a pending one is still refused before anything runs")
    func appliedFileWithCommitIsNotRefused() throws {
        try withFixture { fx in
            try fx.pair(1, "old", up: "CREATE TABLE old_t (id int);\nCOMMIT;", down: "DROP TABLE old_t;")
            try fx.execute("CREATE TABLE old_t (id int)")
            #expect(try fx.migrate("baseline", "1").status == 0)
            try fx.pair(2, "next", up: "CREATE TABLE next_t (id int);", down: "DROP TABLE next_t;")
            let up = try fx.migrate("up")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.tableExists("next_t"))
            #expect(try fx.migrate("status", "--exit-code").status == 0)
            let redo = try fx.migrate("redo")
            #expect(redo.status == 0, "\(redo)")
            #expect(try fx.ledgerVersions() == [1, 2])

            // A pending file with a COMMIT is refused, with file:line, before the other pending one runs.
            try fx.pair(3, "fine", up: "CREATE TABLE fine_t (id int);", down: "DROP TABLE fine_t;")
            try fx.pair(4, "bad", up: "CREATE TABLE bad_t (id int);\nCOMMIT;", down: "DROP TABLE bad_t;")
            let refused = try fx.migrate("up")
            #expect(refused.status == 2, "\(refused)")
            #expect(refused.stderr.contains(fx.path("0004_bad.up.sql") + ":2: COMMIT in a transactional migration"), "\(refused)")
            #expect(!refused.stderr.contains("0001_old"), "the applied file is not judged: \(refused)")
            #expect(refused.stderr.contains("nothing was run"), "\(refused)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try !fx.tableExists("fine_t") && !fx.tableExists("bad_t"))
            #expect(try fx.migrate("status", "--exit-code").status == 2)
            #expect(try fx.migrate("up", "--dry-run").status == 2)

            // Marked no-transaction (the printed fix), it applies; then down of the others works as usual.
            try fx.pair(4, "bad", up: "-- nfldb:no-transaction\nCREATE TABLE bad_t (id int);\nCOMMIT;", down: "DROP TABLE bad_t;")
            let fixed = try fx.migrate("up")
            #expect(fixed.status == 0, "\(fixed)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4])
            #expect(try fx.migrate("down", "3").status == 0)
            #expect(try fx.ledgerVersions() == [1])
        }
    }

    @Test("a COMMIT stored before the load-time check: down refuses before running anything")
    func storedDownWithCommit() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            #expect(try fx.migrate("up").status == 0)
            // As an older nfldb would have stored it.
            try fx.execute("UPDATE nfldb.schema_migrations SET down_sql = E'DROP TABLE teams;\\nCOMMIT;\\nSELECT 1/0;' WHERE version = 1")
            let down = try fx.migrate("down", "1")
            #expect(down.status == 2, "\(down)")
            #expect(down.stderr.contains(":2: the down SQL of 0001_teams is transactional but controls the transaction itself; nothing was rolled back"), "\(down)")
            #expect(try fx.tableExists("teams"))
            #expect(try fx.ledgerVersions() == [1])
        }
    }

    @Test("such a stored down below newer versions: down N, --dry-run and --single-transaction refuse before the newer ones roll back; the printed steps work in that state")
    func storedDownWithCommitBelowNewer() throws {
        try withFixture { fx in
            for v in 1...3 { try fx.pair(v, "t\(v)", up: "CREATE TABLE t\(v) (id int);", down: "DROP TABLE t\(v);") }
            #expect(try fx.migrate("up").status == 0)
            try fx.execute("UPDATE nfldb.schema_migrations SET down_sql = E'DROP TABLE t1;\\nCOMMIT;' WHERE version = 1")
            for arguments in [["down", "3"], ["down", "--to", "0"], ["down", "3", "--dry-run"], ["down", "3", "--single-transaction"]] {
                let down = try fx.cli(["migrate"] + arguments)
                #expect(down.status == 2, "\(arguments)\n\(down)")
                #expect(down.stderr.contains("the down SQL of 0001_t1 is transactional but controls the transaction itself; nothing was rolled back"), "\(down)")
                #expect(down.stderr.contains("First `nfldb migrate down 2` (the 2 newer versions above it)"), "\(down)")
                #expect(try fx.ledgerVersions() == [1, 2, 3], "\(arguments): nothing may roll back")
                for v in 1...3 { #expect(try fx.tableExists("t\(v)"), "\(arguments) t\(v)") }
            }
            // The hint, in the state it was printed: down 2, undo 0001 by hand, resolve --force.
            #expect(try fx.migrate("down", "2").status == 0)
            try fx.execute("DROP TABLE t1")
            let resolved = try fx.migrate("resolve", "1", "--rolled-back", "--force")
            #expect(resolved.status == 0, "\(resolved)")
            #expect(try fx.ledgerVersions() == [])
        }
    }

    @Test("a stored down SQL with VACUUM below a newer version: down refuses before anything rolls back; the printed fix (marked down file, repair, down again) works")
    func storedDownOutsideTransaction() throws {
        try withFixture { fx in
            for v in 1...4 { try fx.pair(v, "t\(v)", up: "CREATE TABLE t\(v) (id int);", down: "DROP TABLE t\(v);") }
            try fx.pair(3, "t3", up: "CREATE TABLE t3 (id int);", down: "VACUUM t3;\nDROP TABLE t3;")
            #expect(try fx.migrate("up").status == 0)
            let down = try fx.migrate("down", "2")
            #expect(down.status == 2, "\(down)")
            #expect(down.stderr.contains(fx.path("0003_t3.down.sql") + ":1: the down SQL of 0003_t3 runs VACUUM, which cannot run inside a transaction block"), "\(down)")
            #expect(down.stderr.contains("nothing was rolled back") && down.stderr.contains("`nfldb migrate repair 3`"), "\(down)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4], "0004 must not roll back first")
            #expect(try fx.tableExists("t4"))
            // Storing a changed down file that still runs VACUUM in a transaction is refused too.
            try fx.pair(3, "t3", up: "CREATE TABLE t3 (id int);", down: "VACUUM (ANALYZE) t3;\nDROP TABLE t3;")
            let unmarked = try fx.migrate("repair", "3")
            #expect(unmarked.status == 2 && unmarked.stderr.contains("0003_t3.down.sql:1: VACUUM cannot run inside a transaction block"), "\(unmarked)")
            // The printed fix: mark the down file, store it with repair, roll back again.
            try fx.pair(3, "t3", up: "CREATE TABLE t3 (id int);", down: "-- nfldb:no-transaction\nVACUUM t3;\nDROP TABLE t3;")
            let repaired = try fx.migrate("repair", "3")
            #expect(repaired.status == 0 && repaired.stdout.contains("database at version 4"), "\(repaired)")
            let again = try fx.migrate("down", "2")
            #expect(again.status == 0, "\(again)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try !fx.tableExists("t3") && !fx.tableExists("t4"))
        }
    }

    @Test("a no-transaction file with its own BEGIN … COMMIT: a failure inside the block rolls the block back, and the counts, state and hints are true")
    func ownBlockFailure() throws {
        try withFixture { fx in
            try fx.pair(1, "ab", up: "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",
                        down: "-- nfldb:no-transaction\nBEGIN;\nDROP TABLE a;\nDROP TABLE nope;\nCOMMIT;\nDROP TABLE b;")
            #expect(try fx.migrate("up").status == 0)
            // The down fails inside its block: the block is rolled back, nothing of it stays, 0001 is still cleanly applied.
            let down = try fx.migrate("down", "1")
            #expect(down.status == 1, "\(down)")
            #expect(down.stderr.contains("the file's own transaction block from line 2 was rolled back, so nothing of the down SQL stays; 0001_ab is still applied and not dirty"), "\(down)")
            #expect(try fx.tableExists("a") && fx.tableExists("b"))
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 1", as: String.self) == "applied")
            // Its hint, in that state: fix the down SQL (stored with repair) and roll back again.
            try fx.pair(1, "ab", up: "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",
                        down: "-- nfldb:no-transaction\nBEGIN;\nDROP TABLE a;\nCOMMIT;\nDROP TABLE b;")
            #expect(try fx.migrate("repair", "1").status == 0)
            #expect(try fx.migrate("down", "1").status == 0)
            #expect(try fx.ledgerVersions() == [])

            // Up: one statement commits, then the block fails: 1 statement stays, the block does not; the row says so.
            try fx.pair(2, "nt", up: "-- nfldb:no-transaction\nCREATE TABLE nt1 (id int);\nBEGIN;\nSAVEPOINT s;\nCREATE TABLE nt2 (id int);\nSELECT 1/0;\nCOMMIT;",
                        down: "-- nfldb:no-transaction\nDROP TABLE IF EXISTS nt2;\nDROP TABLE nt1;")
            try fx.remove("0001_ab.up.sql"); try fx.remove("0001_ab.down.sql")
            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("The first 1 of 6 statements ran; what they committed stays applied (the file's own transaction block from line 3 was rolled back)"), "\(up)")
            #expect(try fx.tableExists("nt1") && !fx.tableExists("nt2"))
            let row = try fx.scalar("SELECT concat(state, ' ', statements_done, ' ', error IS NOT NULL) FROM nfldb.schema_migrations WHERE version = 2", as: String.self)
            #expect(row == "failed 1 t", "\(row)")
            #expect(try fx.events().last?.event == "fail")

            // A block that never commits: rolled back and recorded, not "applied" inside an open transaction.
            try fx.execute("DROP TABLE nt1")
            #expect(try fx.migrate("resolve", "2", "--rolled-back").status == 0)
            try fx.pair(2, "nt", up: "-- nfldb:no-transaction\nCREATE TABLE nt1 (id int);\nBEGIN;\nCREATE TABLE nt2 (id int);",
                        down: "-- nfldb:no-transaction\nDROP TABLE IF EXISTS nt2;\nDROP TABLE nt1;")
            let open = try fx.migrate("up")
            #expect(open.status == 1, "\(open)")
            #expect(open.stderr.contains(fx.path("0002_nt.up.sql") + ":3: 0002_nt ends inside its own transaction block (BEGIN without COMMIT)"), "\(open)")
            #expect(try fx.tableExists("nt1") && !fx.tableExists("nt2"))
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 2", as: String.self) == "failed")
        }
    }

    @Test("SET standard_conforming_strings = off is refused before anything runs: with it a backslash hides a quote from the splitter, and a COMMIT from the check")
    func standardStringsOff() throws {
        try withFixture { fx in
            try fx.pair(1, "h", up: "SET standard_conforming_strings = off;\nCREATE TABLE half (id int);\nSELECT 'a\\'';\nCOMMIT;\n-- '\nSELECT 1/0;\n",
                        down: "DROP TABLE half;")
            let up = try fx.migrate("up")
            #expect(up.status == 2, "\(up)")
            #expect(up.stderr.contains(fx.path("0001_h.up.sql") + ":1: standard_conforming_strings = off"), "\(up)")
            #expect(try !fx.tableExists("half"), "nothing ran")
            #expect(try fx.ledgerVersions() == [])
            let lint = try fx.migrate("lint", "--all")
            #expect(lint.status == 1 && lint.stdout.contains("[standard-conforming-strings-off]"), "\(lint)")
            for fine in ["SET standard_conforming_strings = on;", "SET LOCAL standard_conforming_strings TO 'on';", "SELECT 'standard_conforming_strings = off';"] {
                #expect(try MigrationStatementRules.standardStringsOffFindings(SQLScript(fine, name: "f.sql")).isEmpty, "\(fine)")
            }
            for bad in ["set session standard_conforming_strings to off;", "SET standard_conforming_strings = 'false';", "SET LOCAL standard_conforming_strings = 0;"] {
                #expect(try !MigrationStatementRules.standardStringsOffFindings(SQLScript(bad, name: "b.sql")).isEmpty, "\(bad)")
            }
        }
    }

    @Test("own blocks: COMMIT AND CHAIN counts what it committed, a file's ROLLBACK is not 'stays applied'; standard_conforming_strings turned off any way stops the run; REINDEX SCHEMA is judged with the plan")
    func ownBlockChainRollbackAndStrings() throws {
        try withFixture { fx in
            try fx.pair(1, "chain", up: "-- nfldb:no-transaction\nBEGIN;\nCREATE TABLE c1 (id int);\nCOMMIT AND CHAIN;\nCREATE TABLE c2 (id int);\nSELECT 1/0;\nCOMMIT;",
                        down: "-- nfldb:no-transaction\nDROP TABLE IF EXISTS c2;\nDROP TABLE c1;")
            let chain = try fx.migrate("up")
            #expect(chain.status == 1, "\(chain)")
            #expect(chain.stderr.contains("The first 3 of 6 statements ran; what they committed stays applied"), "\(chain)")
            #expect(try fx.tableExists("c1") && !fx.tableExists("c2"))
            #expect(try fx.scalar("SELECT concat(state, ' ', statements_done) FROM nfldb.schema_migrations WHERE version = 1", as: String.self) == "failed 3")
            try fx.execute("DROP TABLE c1")
            #expect(try fx.migrate("resolve", "1", "--rolled-back").status == 0)
            try fx.remove("0001_chain.up.sql"); try fx.remove("0001_chain.down.sql")

            try fx.pair(2, "rb", up: "-- nfldb:no-transaction\nBEGIN;\nCREATE TABLE a1 (id int);\nROLLBACK;\nCREATE TABLE b1 (id int);\nSELECT 1/0;",
                        down: "-- nfldb:no-transaction\nDROP TABLE b1;")
            let rolledBack = try fx.migrate("up")
            #expect(rolledBack.status == 1, "\(rolledBack)")
            #expect(!rolledBack.stderr.contains("4 of 5 statements ran and stay applied"), "\(rolledBack)")
            #expect(rolledBack.stderr.contains("The first 4 of 5 statements ran; what they committed stays applied"), "\(rolledBack)")
            #expect(try !fx.tableExists("a1") && fx.tableExists("b1"))
            try fx.execute("DROP TABLE b1")
            #expect(try fx.migrate("resolve", "2", "--rolled-back").status == 0)
            try fx.remove("0002_rb.up.sql"); try fx.remove("0002_rb.down.sql")

            // Quoted, through set_config, or as the database's default: the run stops right after, the hidden statement never runs.
            try fx.pair(3, "s", up: "CREATE TABLE s1 (id int);\nSET \"standard_conforming_strings\" = off;\nSELECT 'a\\', '; COMMIT; CREATE TABLE hidden (id int); SELECT 1 --';\nSELECT 1/0;\n",
                        down: "DROP TABLE s1;")
            let quoted = try fx.migrate("up")
            #expect(quoted.status == 2 && quoted.stderr.contains(fx.path("0003_s.up.sql") + ":2: this statement turned standard_conforming_strings off"), "\(quoted)")
            #expect(try !fx.tableExists("hidden") && !fx.tableExists("s1"), "transactional: rolled back, and the hidden statement never ran")
            try fx.pair(3, "s", up: "CREATE TABLE s1 (id int);\nSELECT set_config('standard_conforming_strings', 'off', false);\nSELECT 'a\\', '; COMMIT; CREATE TABLE hidden (id int); SELECT 1 --';\n",
                        down: "DROP TABLE s1;")
            #expect(try fx.migrate("up").status == 2)
            #expect(try !fx.tableExists("hidden") && !fx.tableExists("s1"))
            let database = try fx.scalar("SELECT current_database()", as: String.self)
            try fx.execute("ALTER DATABASE \(PostgresIdentifier.quote(database)) SET standard_conforming_strings = off")
            defer { try? fx.execute("ALTER DATABASE \(PostgresIdentifier.quote(database)) RESET standard_conforming_strings") }
            try fx.pair(3, "s", up: "CREATE TABLE s1 (id int);\nSELECT 'a\\', '; COMMIT; CREATE TABLE hidden (id int); SELECT 1 --';\n", down: "DROP TABLE s1;")
            let defaulted = try fx.migrate("up")
            #expect(defaulted.status == 0, "nfldb's session sets it on, so the file means what it says: \(defaulted)")
            #expect(try fx.tableExists("s1") && !fx.tableExists("hidden"))
            #expect(try fx.migrate("down", "1").status == 0)

            // REINDEX SCHEMA runs only outside a transaction block: judged before 0005 rolls back.
            try fx.pair(4, "r", up: "CREATE TABLE r4 (id int);", down: "DROP TABLE r4;\nREINDEX SCHEMA public;")
            try fx.pair(5, "t", up: "CREATE TABLE t5 (id int);", down: "DROP TABLE t5;")
            #expect(try fx.migrate("up").status == 0)
            let reindex = try fx.migrate("down", "2")
            #expect(reindex.status == 2 && reindex.stderr.contains("runs REINDEX DATABASE/SYSTEM/SCHEMA"), "\(reindex)")
            #expect(try fx.tableExists("t5"))
        }
    }

    @Test("lint: VACUUM or CONCURRENTLY inside a no-transaction file's own BEGIN … COMMIT is an error; after the COMMIT it is fine")
    func lintInsideOwnBlock() throws {
        try withFixture { fx in
            try fx.pair(1, "blk", up: "-- nfldb:no-transaction\nCREATE TABLE b (id int);\nBEGIN;\nVACUUM b;\nCOMMIT;\nCREATE INDEX CONCURRENTLY b_id ON b (id);\nBEGIN;\nCOMMIT AND CHAIN;\nCREATE INDEX CONCURRENTLY b_id2 ON b (id);\nCOMMIT;\nVACUUM b;",
                        down: "-- nfldb:no-transaction\nDROP TABLE b;")
            // The dry run prints progress writes only outside the block, as the real run makes them.
            let dry = try fx.migrate("up", "--dry-run")
            #expect(dry.stdout.contains("statements_done = 1 ") && !dry.stdout.contains("statements_done = 2 ") && !dry.stdout.contains("statements_done = 3 ")
                    && dry.stdout.contains("statements_done = 4 "), "\(dry)")
            let lint = try fx.migrate("lint", "--all")
            #expect(lint.status == 1, "\(lint)")
            #expect(lint.stdout.contains(fx.path("0001_blk.up.sql") + ":4: error [cannot-run-in-transaction] VACUUM cannot run inside a transaction block, and this statement is inside the file's own BEGIN … COMMIT"), "\(lint)")
            #expect(lint.stdout.contains(fx.path("0001_blk.up.sql") + ":9: error [cannot-run-in-transaction]"), "after COMMIT AND CHAIN the block goes on: \(lint)")
            #expect(!lint.stdout.contains(":6: error") && !lint.stdout.contains(":11: error"), "\(lint)")
        }
    }

    @Test("redo whose re-apply fails: says the rollback committed and the version is now pending (not 'the database is unchanged'); a changed file is warned about")
    func redoReapplyFails() throws {
        try withFixture { fx in
            try fx.pair(1, "a", up: "CREATE TABLE a (id int);", down: "DROP TABLE a;")
            try fx.pair(2, "b", up: "CREATE TABLE b (id int);", down: "DROP TABLE b;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "b", up: "CREATE TABLE b (id int);\nSELECT 1/0;", down: "DROP TABLE b;")
            let redo = try fx.migrate("redo")
            #expect(redo.status == 1, "\(redo)")
            #expect(redo.stderr.contains("0002_b.up.sql changed since 0002_b was applied"), "\(redo)")
            #expect(redo.stderr.contains("redo of 0002_b: the rollback committed, then applying it again failed"), "\(redo)")
            #expect(redo.stderr.contains("0002_b is now pending; the database is at version 1"), "\(redo)")
            #expect(!redo.stderr.contains("the database is unchanged"), "\(redo)")
            #expect(try fx.ledgerVersions() == [1])
            #expect(try !fx.tableExists("b"))
            // The hint, as printed: fix the file, migrate up.
            try fx.pair(2, "b", up: "CREATE TABLE b (id int);", down: "DROP TABLE b;")
            #expect(try fx.migrate("up").status == 0)
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }

    @Test("repair refuses a changed file whose down half controls the transaction, before storing anything; the accepted repair prints the right version")
    func repairRefusesTransactionControl() throws {
        try withFixture { fx in
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "games", up: "CREATE TABLE games (id int);", down: "DROP TABLE games;")
            #expect(try fx.migrate("up").status == 0)
            let storedBefore = try fx.scalar("SELECT down_sql FROM nfldb.schema_migrations WHERE version = 1", as: String.self)
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int); -- edited", down: "DROP TABLE teams;\nCOMMIT;")
            let refused = try fx.migrate("repair")
            #expect(refused.status == 2, "\(refused)")
            #expect(refused.stderr.contains(fx.path("0001_teams.down.sql") + ":2: COMMIT in a transactional migration"), "\(refused)")
            #expect(try fx.scalar("SELECT down_sql FROM nfldb.schema_migrations WHERE version = 1", as: String.self) == storedBefore)
            try fx.pair(1, "teams", up: "CREATE TABLE teams (id int); -- edited", down: "DROP TABLE teams;")
            let repaired = try fx.migrate("repair")
            #expect(repaired.status == 0, "\(repaired)")
            #expect(repaired.stdout.contains("database at version 2"), "\(repaired)")
            #expect(try fx.migrate("down", "2").status == 0)
        }
    }

    @Test("SAVEPOINT in a transactional file: the fix names a DO block or the file's own BEGIN…COMMIT, and that fix applies")
    func savepointFix() throws {
        try withFixture { fx in
            try fx.pair(1, "sp", up: "CREATE TABLE sp (id int);\nSAVEPOINT a;\nINSERT INTO sp VALUES (1);\nRELEASE a;", down: "DROP TABLE sp;")
            let refused = try fx.migrate("up")
            #expect(refused.status == 2, "\(refused)")
            #expect(refused.stderr.contains(":2: SAVEPOINT in a transactional migration"), "\(refused)")
            #expect(refused.stderr.contains("DO block with an EXCEPTION clause"), "\(refused)")
            #expect(refused.stderr.contains("inside its own BEGIN … COMMIT"), "\(refused)")
            #expect(!refused.stderr.contains("Remove it; or mark the file"), "the bare marker fix would fail: \(refused)")
            // Marked alone, the savepoint fails (no transaction block): what the old hint led to.
            try fx.pair(1, "sp", up: "-- nfldb:no-transaction\nCREATE TABLE sp (id int);\nSAVEPOINT a;", down: "DROP TABLE sp;")
            #expect(try fx.migrate("up").status == 1)
            try fx.execute("DROP TABLE IF EXISTS sp")
            #expect(try fx.migrate("resolve", "1", "--rolled-back").status == 0)
            // The printed fix: marked, with its own BEGIN … COMMIT around the savepoint.
            try fx.pair(1, "sp", up: "-- nfldb:no-transaction\nCREATE TABLE sp (id int);\nBEGIN;\nSAVEPOINT a;\nINSERT INTO sp VALUES (1);\nRELEASE a;\nCOMMIT;",
                        down: "DROP TABLE sp;")
            let fixed = try fx.migrate("up")
            #expect(fixed.status == 0, "\(fixed)")
            #expect(try fx.scalar("SELECT count(*)::int FROM sp", as: Int.self) == 1)
        }
    }

    @Test("CREATE SUBSCRIPTION: only a false create_slot/connect in its WITH list counts, quoted or not; words in the connection string do not; ALTER SUBSCRIPTION that refreshes is flagged unless refresh = false")
    func subscriptionOptions() throws {
        func flagged(_ sql: String) throws -> Bool {
            let script = try SQLScript(sql, name: "s.sql")
            return MigrationStatementRules.cannotRunInTransaction(script.statements[0]) != nil
        }
        for fine in [
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = false)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = 'false', slot_name = NONE)",
            "create subscription s connection 'host=x' publication p with (\"create_slot\" = off)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p, q WITH (enabled = false, CONNECT = 'off')",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = 0)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = \"f\")",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = no)",
        ] { #expect(try !flagged(fine), "\(fine)") }
        for slot in [
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x connect_timeout=0 application_name=connect0' PUBLICATION p",
            "CREATE SUBSCRIPTION s CONNECTION 'dbname=''create_slot = false''' PUBLICATION p WITH (enabled = false)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = true, create_slot = on)",
            "CREATE SUBSCRIPTION \"connect = false\" CONNECTION 'host=x' PUBLICATION p",
            // ALTER SUBSCRIPTION that refreshes: PostgreSQL refuses it in a transaction block too.
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION WITH (copy_data = false)",
            "ALTER SUBSCRIPTION s SET PUBLICATION p, q",
            "alter subscription s add publication q with (copy_data = false)",
            "ALTER SUBSCRIPTION s DROP PUBLICATION q WITH (refresh = true)",
            "ALTER SUBSCRIPTION sub1 REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION \"MySub\" REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION sub_2024 SET PUBLICATION p",
            "ALTER SUBSCRIPTION s8 REFRESH PUBLICATION WITH (copy_data=false)",
            "CREATE SUBSCRIPTION s5 CONNECTION $$host=127.0.0.1 password=it's$$ PUBLICATION p",
        ] { #expect(try flagged(slot), "\(slot)") }
        for fine in [
            "CREATE SUBSCRIPTION s5 CONNECTION $$host=127.0.0.1 password=it's$$ PUBLICATION p WITH (connect = false)",
            "CREATE SUBSCRIPTION s6 CONNECTION $c$host=x options='-c a=b'$c$ PUBLICATION p WITH (create_slot = false)",
            "ALTER SUBSCRIPTION sub_2024 SET PUBLICATION p WITH (refresh = false)",
        ] { #expect(try !flagged(fine), "\(fine)") }
        for fine in [
            "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
            "ALTER SUBSCRIPTION s ADD PUBLICATION q WITH (refresh = 'off', copy_data = false)",
            "ALTER SUBSCRIPTION s DISABLE",
            "ALTER SUBSCRIPTION s SET (slot_name = NONE)",
            "ALTER SUBSCRIPTION s OWNER TO nfl_owner",
        ] { #expect(try !flagged(fine), "\(fine)") }
    }
}

@Suite("DROP SUBSCRIPTION in a transactional file")
struct DropSubscriptionTests {
    @Test("a lint warning (up and down files) unless the file first detaches the slot; PostgreSQL refuses the first form (25001) and runs the detached one in a transaction")
    func dropSubscription() throws {
        try withFixture("mig_dropsub") { fx in
            try fx.pair(1, "sub", up: """
                -- nfldb:no-transaction
                CREATE SUBSCRIPTION nfldb_probe_sub CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION p WITH (connect = false);
                """, down: "DROP SUBSCRIPTION nfldb_probe_sub;")
            try fx.pair(2, "detached", up: """
                ALTER SUBSCRIPTION nfldb_probe_sub DISABLE;
                ALTER SUBSCRIPTION Nfldb_Probe_Sub SET (slot_name = NONE);
                DROP SUBSCRIPTION IF EXISTS nfldb_probe_sub;
                """, down: "SELECT 1;")
            // 'NONE' quoted in upper case is a slot named NONE; another subscription is not detached; a detach undone.
            try fx.pair(3, "quoted", up: """
                ALTER SUBSCRIPTION "Odd" SET (slot_name = 'NONE');
                DROP SUBSCRIPTION "Odd";
                ALTER SUBSCRIPTION a SET (slot_name = none);
                DROP SUBSCRIPTION b;
                ALTER SUBSCRIPTION c SET (slot_name = NONE);
                ALTER SUBSCRIPTION c SET (slot_name = 'c_slot');
                DROP SUBSCRIPTION c CASCADE;
                """, down: "SELECT 1;")
            try fx.pair(4, "own", up: "-- nfldb:no-transaction\nDROP SUBSCRIPTION IF EXISTS gone;", down: "SELECT 1;")
            let findings = try fx.load().flatMap { try MigrationLinter.lint($0) }.filter { $0.rule == "drop-subscription-in-transaction" }
            #expect(findings.map { "\(($0.file as NSString).lastPathComponent):\($0.line)" }
                    == ["0001_sub.down.sql:1", "0003_quoted.up.sql:2", "0003_quoted.up.sql:4", "0003_quoted.up.sql:7"], "\(findings)")
            #expect(findings.allSatisfy { $0.severity == .warning && $0.fix.contains("-- nfldb:no-transaction") && $0.fix.contains("SET (slot_name = NONE)") })

            // What the rule stands for, on the real server: with a slot name the drop is refused in a
            // transaction block; detached first, it runs in one (and commits).
            try fx.execute("CREATE SUBSCRIPTION nfldb_probe_sub CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION p WITH (connect = false)")
            try fx.sql { connection in
                try connection.execute("BEGIN")
                do {
                    try connection.execute("DROP SUBSCRIPTION nfldb_probe_sub")
                    Issue.record("DROP SUBSCRIPTION with a slot name ran inside a transaction block")
                } catch let error as PostgresError {
                    #expect(error.sqlState == "25001", "\(error)")
                }
                try connection.execute("ROLLBACK")
                try connection.execute("BEGIN")
                try connection.execute("ALTER SUBSCRIPTION nfldb_probe_sub SET (slot_name = NONE)")
                try connection.execute("DROP SUBSCRIPTION nfldb_probe_sub")
                try connection.execute("COMMIT")
            }
            #expect(try fx.scalar("SELECT count(*)::int FROM pg_subscription WHERE subname = 'nfldb_probe_sub'", as: Int.self) == 0)
        }
    }
}

@Suite("statements that cannot run in a transaction block")
struct OutsideTransactionTests {
    @Test("VACUUM, CREATE DATABASE, ALTER SYSTEM, CLUSTER without a table…: lint errors naming the marker; REFRESH … CONCURRENTLY is not flagged")
    func lintFlagsThem() throws {
        try withFixture { fx in
            try fx.pair(1, "maint", up: """
                CREATE TABLE m (id int);
                VACUUM (ANALYZE) m;
                vacuum;
                CREATE DATABASE other;
                DROP DATABASE IF EXISTS other;
                CREATE TABLESPACE ts LOCATION '/nowhere';
                DROP TABLESPACE ts;
                ALTER SYSTEM SET work_mem = '8MB';
                ALTER DATABASE d SET TABLESPACE ts;
                REINDEX DATABASE d;
                REINDEX (VERBOSE) SYSTEM d;
                CLUSTER;
                DISCARD ALL;
                CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION p;
                """, down: "DROP TABLE m;")
            try fx.pair(2, "fine", up: """
                CREATE TABLE f (id int PRIMARY KEY);
                ANALYZE f;
                CLUSTER f USING f_pkey;
                REINDEX TABLE f;
                ALTER DATABASE d SET work_mem = '8MB';
                CREATE MATERIALIZED VIEW mv AS SELECT id FROM f;
                CREATE UNIQUE INDEX mv_id ON mv (id);
                REFRESH MATERIALIZED VIEW CONCURRENTLY mv;
                CREATE SUBSCRIPTION nosl CONNECTION 'host=x' PUBLICATION p WITH (connect = false);
                CREATE SUBSCRIPTION nosl2 CONNECTION 'host=x' PUBLICATION p WITH (create_slot = false);
                COMMENT ON TABLE f IS 'indexes are built CONCURRENTLY by ops; ALTER TYPE x ADD VALUE by hand';
                CREATE INDEX concurrently_idx ON f (id);
                CREATE FUNCTION fx() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'REINDEX TABLE CONCURRENTLY f'; END $$;
                """, down: "DROP FUNCTION fx();\nDROP MATERIALIZED VIEW mv;\nDROP TABLE f;")
            try fx.pair(3, "own", up: "-- nfldb:no-transaction\nVACUUM;", down: "SELECT 1;")
            let lint = try fx.migrate("lint", "--all")
            #expect(lint.status == 1, "\(lint)")
            for line in 2...14 {
                #expect(lint.stdout.contains(fx.path("0001_maint.up.sql") + ":\(line): error [cannot-run-in-transaction]"), "line \(line)\n\(lint)")
            }
            #expect(lint.stdout.contains("CREATE SUBSCRIPTION (which creates its replication slot) cannot run inside a transaction block"), "\(lint)")
            #expect(lint.stdout.contains("VACUUM cannot run inside a transaction block; this migration is transactional"), "\(lint)")
            #expect(lint.stdout.contains("mark the file `-- nfldb:no-transaction`"), "\(lint)")
            #expect(!lint.stdout.contains("0002_fine.up.sql"), "\(lint)")
            #expect(!lint.stdout.contains("0003_own.up.sql"), "\(lint)")
            #expect(lint.stdout.contains("13 error(s)"), "\(lint)")
        }
    }

    @Test("VACUUM in a transactional file: apply fails at its line, the hint names the marker, nothing is left; marked, it applies")
    func applyHint() throws {
        try withFixture { fx in
            try fx.pair(1, "vac", up: "CREATE TABLE v (id int);\nINSERT INTO v VALUES (1);\n\nVACUUM v;\n", down: "DROP TABLE v;")
            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains(fx.path("0001_vac.up.sql") + ":4"), "\(up)")
            #expect(up.stderr.contains("SQLSTATE 25001"), "\(up)")
            #expect(up.stderr.contains("the database is unchanged"), "\(up)")
            #expect(up.stderr.contains("move it to a migration of its own and mark the file `-- nfldb:no-transaction`"), "\(up)")
            #expect(try !fx.tableExists("v"))
            #expect(try fx.ledgerVersions() == [])

            try fx.pair(1, "vac", up: "CREATE TABLE v (id int);\nINSERT INTO v VALUES (1);\n", down: "DROP TABLE v;")
            try fx.pair(2, "vac_v", up: "-- nfldb:no-transaction\nVACUUM v;\n", down: "SELECT 1;")
            // What lint leaves alone does run in a transaction.
            try fx.pair(3, "in_tx", up: """
                CREATE TABLE f (id int PRIMARY KEY);
                INSERT INTO f VALUES (1);
                ANALYZE f;
                CLUSTER f USING f_pkey;
                REINDEX TABLE f;
                CREATE MATERIALIZED VIEW mv AS SELECT id FROM f;
                CREATE UNIQUE INDEX mv_id ON mv (id);
                REFRESH MATERIALIZED VIEW CONCURRENTLY mv;
                """, down: "DROP MATERIALIZED VIEW mv;\nDROP TABLE f;")
            #expect(try fx.migrate("lint").stdout.contains("0 error(s)"))
            let fixed = try fx.migrate("up")
            #expect(fixed.status == 0, "\(fixed)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
        }
    }
}

@Suite("resolve is for dirty versions")
struct ResolveCleanTests {
    @Test("resolve --rolled-back refuses a clean applied version (middle or newest) with exit 2 and changes nothing; --force only for the newest; the printed version is right")
    func refusesClean() throws {
        try withFixture { fx in
            for v in 1...6 { try fx.pair(v, "t\(v)", up: "CREATE TABLE t\(v) (id int);", down: "DROP TABLE t\(v);") }
            #expect(try fx.migrate("up").status == 0)
            let eventsBefore = try fx.events().count

            let middle = try fx.migrate("resolve", "3", "--rolled-back")
            #expect(middle.status == 2, "\(middle)")
            #expect(middle.stderr.contains("0003_t3 is applied and clean, not dirty (state applied)"), "\(middle)")
            #expect(middle.stderr.contains("resolve only records how a migration that stopped half-way (state failed or running)"), "\(middle)")
            #expect(middle.stderr.contains("nothing changed"), "\(middle)")
            #expect(middle.stderr.contains("`nfldb migrate down`"), "\(middle)")
            let newest = try fx.migrate("resolve", "6", "--rolled-back")
            #expect(newest.status == 2, "\(newest)")
            #expect(newest.stderr.contains("--rolled-back --force"), "\(newest)")
            let forcedMiddle = try fx.migrate("resolve", "3", "--rolled-back", "--force")
            #expect(forcedMiddle.status == 2, "\(forcedMiddle)")
            #expect(forcedMiddle.stderr.contains("0003_t3 is not the newest applied version (6 is)"), "\(forcedMiddle)")
            #expect(forcedMiddle.stderr.contains("`nfldb migrate down --to 3`"), "\(forcedMiddle)")
            #expect(try fx.migrate("resolve", "6", "--applied", "--force").status == 2, "--force goes with --rolled-back only")
            #expect(try fx.migrate("resolve", "9", "--rolled-back").status == 2)
            // Nothing changed: every version still recorded, every table there, no event written.
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4, 5, 6])
            for v in 1...6 { #expect(try fx.tableExists("t\(v)")) }
            #expect(try fx.events().count == eventsBefore)
            let status = try fx.migrate("status", "--exit-code")
            #expect(status.status == 0, "\(status)")
            #expect(status.stdout.contains("current version: 6"), "\(status)")

            // The documented escape: the newest, undone by hand, with --force; the version printed is 5.
            try fx.execute("DROP TABLE t6")
            let forced = try fx.migrate("resolve", "6", "--rolled-back", "--force", "--reason", "down SQL broken; dropped by hand")
            #expect(forced.status == 0, "\(forced)")
            #expect(forced.stdout.contains("database at version 5"), "\(forced)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4, 5])
            #expect(try fx.events().last?.detail?.contains("\"force\": \"true\"") == true)
        }
    }

    @Test("CRLF files (a Windows checkout): directives are read, the marker works, and converting an applied file to CRLF is not drift")
    func crlfDirectives() throws {
        try withFixture { fx in
            try fx.write("0001_l.up.sql", "-- nfldb:lock-timeout 2s\r\nCREATE TABLE l (id int);\r\n")
            try fx.write("0001_l.down.sql", "DROP TABLE l;\r\n")
            try fx.write("0002_idx.up.sql", "-- nfldb:no-transaction\r\nCREATE INDEX CONCURRENTLY l_id ON l (id);\r\n")
            try fx.write("0002_idx.down.sql", "-- nfldb:no-transaction\r\nDROP INDEX CONCURRENTLY l_id;\r\n")
            let up = try fx.migrate("up")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.scalar("SELECT transactional FROM nfldb.schema_migrations WHERE version = 2", as: Bool.self) == false)
            try fx.write("0001_l.up.sql", "-- nfldb:lock-timeout 2s\nCREATE TABLE l (id int);\n")
            #expect(try fx.migrate("status", "--exit-code").status == 0)
            #expect(try fx.migrate("down", "2").status == 0)
            #expect(try fx.ledgerVersions() == [])
        }
    }

    @Test("resolve --rolled-back --force refuses a baseline version (down never goes below the baseline) and changes nothing")
    func forceRefusesBaseline() throws {
        try withFixture { fx in
            for v in 1...2 { try fx.pair(v, "t\(v)", up: "CREATE TABLE t\(v) (id int);", down: "DROP TABLE t\(v);") }
            try fx.execute("CREATE TABLE t1 (id int); CREATE TABLE t2 (id int)")
            #expect(try fx.migrate("baseline", "2").status == 0)
            let forced = try fx.migrate("resolve", "2", "--rolled-back", "--force")
            #expect(forced.status == 2, "\(forced)")
            #expect(forced.stderr.contains("0002_t2 is part of the baseline"), "\(forced)")
            #expect(forced.stderr.contains("`nfldb migrate down --to 2`"), "\(forced)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.migrate("status", "--exit-code").status == 0)
        }
    }

    @Test("resolving a dirty version prints the version the database is at")
    func printsVersion() throws {
        try withFixture { fx in
            try fx.pair(1, "t", up: "CREATE TABLE t (id int);", down: "DROP TABLE t;")
            try fx.pair(2, "idx", up: "-- nfldb:no-transaction\nCREATE INDEX IF NOT EXISTS t_id ON t (id);\nCREATE INDEX IF NOT EXISTS t_x ON t (nope);",
                        down: "-- nfldb:no-transaction\nDROP INDEX IF EXISTS t_id;")
            #expect(try fx.migrate("up").status == 1)
            let applied = try fx.migrate("resolve", "2", "--applied")
            #expect(applied.status == 0, "\(applied)")
            #expect(applied.stdout.contains("resolved: 1 migration; database at version 2"), "\(applied)")
        }
    }
}

@Suite("files that cannot be split")
struct UnsplittableTests {
    @Test("a pending file that cannot be split stops up before the first pending migration runs, so 'nothing was run' is true; status --exit-code exits 2")
    func refusedBeforeAnything() throws {
        try withFixture { fx in
            try fx.pair(1, "first", up: "CREATE TABLE first_tbl (id int);", down: "DROP TABLE first_tbl;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "second", up: "CREATE TABLE second_tbl (id int);", down: "DROP TABLE second_tbl;")
            try fx.pair(3, "bad", up: "CREATE TABLE third_tbl (id int);\n\nselect \"unterminated;\n", down: "DROP TABLE third_tbl;")
            try fx.pair(4, "bad_down", up: "CREATE TABLE fourth_tbl (id int);", down: "DROP TABLE fourth_tbl; $$")
            let up = try fx.migrate("up")
            #expect(up.status == 2, "\(up)")
            #expect(up.stderr.contains(fx.path("0003_bad.up.sql") + ":3: unterminated quoted identifier"), "\(up)")
            #expect(up.stderr.contains(fx.path("0004_bad_down.down.sql") + ":1: unterminated dollar-quoted string"), "\(up)")
            #expect(up.stderr.contains("nothing was run"), "\(up)")
            // True: the earlier pending 0002 did not run either.
            #expect(try fx.ledgerVersions() == [1])
            #expect(try !fx.tableExists("second_tbl"))
            #expect(try !fx.tableExists("third_tbl"))
            let status = try fx.migrate("status", "--exit-code")
            #expect(status.status == 2, "\(status)")
            #expect(status.stderr.contains("0003_bad.up.sql:3"), "\(status)")
            // down runs stored SQL and only warns about the directory.
            let down = try fx.migrate("down", "1")
            #expect(down.status == 0, "\(down)")
            #expect(down.stderr.contains("0003_bad.up.sql:3"), "\(down)")
            #expect(try fx.ledgerVersions() == [])
        }
    }

    @Test("stored down SQL that cannot be split: refused before any version of the plan rolls back, and the error says so")
    func storedDownUnsplittable() throws {
        try withFixture { fx in
            try fx.pair(1, "a", up: "CREATE TABLE a (id int);", down: "DROP TABLE a;")
            try fx.pair(2, "b", up: "CREATE TABLE b (id int);", down: "DROP TABLE b;")
            #expect(try fx.migrate("up").status == 0)
            try fx.execute("UPDATE nfldb.schema_migrations SET down_sql = 'DROP TABLE a; ''oops' WHERE version = 1")
            let down = try fx.migrate("down", "2")
            #expect(down.status == 2, "\(down)")
            #expect(down.stderr.contains("the SQL cannot be split into statements, so none of it was run"), "\(down)")
            #expect(down.stderr.contains("store it with `nfldb migrate repair 1`"), "\(down)")
            #expect(!down.stderr.contains("nothing was run"), "\(down)")
            // Every step of the plan is judged before the first runs: 0002 is not rolled back either.
            #expect(try fx.ledgerVersions() == [1, 2], "\(down)")
            #expect(try fx.tableExists("a"))
            #expect(try fx.tableExists("b"))
            // The hint, in that state: the file is fine, so repair stores it over the broken copy; down works.
            let repaired = try fx.migrate("repair", "1")
            #expect(repaired.status == 0 && repaired.stdout.contains("1 migration"), "\(repaired)")
            #expect(try fx.migrate("down", "2").status == 0)
            #expect(try fx.ledgerVersions() == [])
        }
    }
}

@Suite("interrupted runs and error text")
struct InterruptTests {
    /// `nfldb migrate <arguments>`, sent `signal` once its session sits in `pg_sleep(30)`: its result,
    /// after checking it exited 128+signal.
    func interruptedInSleep(_ fx: Fixture, _ arguments: [String], by signal: Int32,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let child = try CLIRunner.spawn(fx.migrateArguments(arguments))
        defer { child.kill9(); child.removeOutput() }
        try #require(try poll(timeout: .seconds(20)) { try !fx.backends(running: "pg_sleep(30)").isEmpty }, "never reached pg_sleep(30)",
                     sourceLocation: sourceLocation)
        child.send(signal)
        let result = child.result(timeout: .seconds(10))
        #expect(result.status == 128 + signal, "\(result)", sourceLocation: sourceLocation)
        return result
    }
    @Test("the failing statement is printed once, without a doubled semicolon")
    func noDoubledSemicolon() throws {
        try withFixture { fx in
            try fx.pair(1, "div", up: "create table t4(a int);\nselect 1/0;\n", down: "drop table t4;")
            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("statement: select 1/0; the migration was rolled back"), "\(up)")
            #expect(!up.stderr.contains(";;"), "\(up)")
        }
    }

    @Test("SIGTERM during a transactional migration: exit 143 with one line naming it and the state, which is true")
    func sigtermTransactional() throws {
        try withFixture { fx in
            try fx.pair(1, "create_teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "slow_stats", up: "CREATE TABLE stats (id int);\nSELECT pg_sleep(30);\n", down: "DROP TABLE stats;")
            let result = try interruptedInSleep(fx, ["up"], by: SIGTERM)
            #expect(result.stderr.contains("interrupted by SIGTERM during 0002_slow_stats: its transaction is rolled back as the connection closes; nothing applied from it; 1 step(s) finished before it stay done (0001_create_teams)"), "\(result)")
            #expect(try poll(timeout: .seconds(8)) { try fx.advisoryLocks() == 0 && fx.backends(running: "pg_sleep(30)").isEmpty })
            #expect(try fx.ledgerVersions() == [1])
            #expect(try !fx.tableExists("stats"))
        }
    }

    @Test("SIGTERM inside a no-transaction file's own BEGIN … COMMIT (up, then down): the line says that block is rolled back, which is true; the version stays running (dirty)")
    func sigtermInsideOwnBlock() throws {
        try withFixture { fx in
            try fx.pair(1, "blocked", up: """
                -- nfldb:no-transaction
                CREATE TABLE IF NOT EXISTS before_block (id int);
                BEGIN;
                CREATE TABLE in_block (id int);
                SELECT pg_sleep(30);
                COMMIT;
                """, down: "DROP TABLE IF EXISTS in_block;\nDROP TABLE IF EXISTS before_block;")
            let result = try interruptedInSleep(fx, ["up"], by: SIGTERM)
            #expect(result.stderr.contains("interrupted by SIGTERM during 0001_blocked (no-transaction): the statements that finished stay applied (except those of its own transaction block opened at line 3, which is rolled back as the connection closes) and it stays recorded as running (dirty)"), "\(result)")
            #expect(try poll(timeout: .seconds(8)) { try fx.backends(running: "pg_sleep(30)").isEmpty })
            #expect(try fx.tableExists("before_block"))
            #expect(try !fx.tableExists("in_block"))
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 1", as: String.self) == "running")

            // The same in a no-transaction down file; a block that committed before is not mentioned as open.
            try fx.pair(2, "down_blocked", up: "CREATE TABLE d (id int);", down: """
                -- nfldb:no-transaction
                BEGIN;
                CREATE TABLE committed_first (id int);
                COMMIT;
                BEGIN;
                DROP TABLE d;
                SELECT pg_sleep(30);
                COMMIT;
                """)
            #expect(try fx.migrate("resolve", "1", "--applied").status == 0)
            #expect(try fx.migrate("up").status == 0)
            let downResult = try interruptedInSleep(fx, ["down", "1"], by: SIGTERM)
            #expect(downResult.stderr.contains("interrupted by SIGTERM during the rollback of 0002_down_blocked (no-transaction): the down statements that finished stay done (except those of its own transaction block opened at line 5, which is rolled back as the connection closes), and it is still recorded as running (dirty)"), "\(downResult)")
            #expect(try poll(timeout: .seconds(8)) { try fx.backends(running: "pg_sleep(30)").isEmpty })
            #expect(try fx.tableExists("committed_first"))
            #expect(try fx.tableExists("d"), "the open block's DROP TABLE was rolled back")
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 2", as: String.self) == "running")
        }
    }

    @Test("SIGHUP during a no-transaction migration: exit 129, the line says it stays recorded as running, which is true")
    func sighupNoTransaction() throws {
        try withFixture { fx in
            try fx.pair(1, "slow", up: "-- nfldb:no-transaction\nCREATE TABLE IF NOT EXISTS s (id int);\nSELECT pg_sleep(30);\n", down: "DROP TABLE s;")
            let result = try interruptedInSleep(fx, ["up"], by: SIGHUP)
            #expect(result.stderr.contains("interrupted by SIGHUP during 0001_slow (no-transaction): the statements that finished stay applied and it stays recorded as running (dirty)"), "\(result)")
            #expect(try poll(timeout: .seconds(8)) { try fx.backends(running: "pg_sleep(30)").isEmpty })
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 1", as: String.self) == "running")
            #expect(try fx.tableExists("s"))
        }
    }
}
