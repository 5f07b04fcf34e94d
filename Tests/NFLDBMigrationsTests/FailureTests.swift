import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("failing migrations")
struct FailureTests {
    @Test("a failing statement in a transactional migration leaves nothing behind and names file:line and SQLSTATE")
    func transactionalFailure() throws {
        try withFixture { fx in
            try fx.pair(1, "ok", up: "CREATE TABLE ok_tbl (id int);", down: "DROP TABLE ok_tbl;")
            try fx.pair(2, "broken", up: """
                -- two tables, then a statement that cannot work
                CREATE TABLE first_tbl (id int);
                CREATE TABLE second_tbl (id int);

                INSERT INTO missing_tbl VALUES (1);
                CREATE TABLE never_tbl (id int);
                """, down: "DROP TABLE second_tbl;\nDROP TABLE first_tbl;")

            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains(fx.path("0002_broken.up.sql") + ":5"), "\(up)")
            #expect(up.stderr.contains("SQLSTATE 42P01"), "\(up)")
            #expect(up.stderr.contains("missing_tbl"), "\(up)")
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.tableExists("ok_tbl"))
            for table in ["first_tbl", "second_tbl", "never_tbl"] { #expect(try !fx.tableExists(table), "\(table)") }
            let events = try fx.events()
            #expect(events.last?.event == "fail" && events.last?.version == 2, "\(events)")
            #expect(try fx.advisoryLocks() == 0)

            // Fixed, it applies.
            try fx.write("0002_broken.up.sql", "CREATE TABLE first_tbl (id int);\nCREATE TABLE second_tbl (id int);\n")
            #expect(try fx.migrate("up").status == 0)
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }

    @Test("a failing no-transaction migration leaves a dirty row; up refuses; status shows it; resolve unblocks")
    func nonTransactionalFailure() throws {
        try withFixture { fx in
            try fx.pair(1, "create_items", up: "CREATE TABLE items (id int, code text);", down: "DROP TABLE items;")
            try fx.pair(2, "items_indexes", up: """
                -- nfldb:no-transaction
                CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);
                CREATE INDEX CONCURRENTLY IF NOT EXISTS items_missing_idx ON items (no_such_column);
                """, down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_id_idx;\n")
            try fx.pair(3, "after", up: "CREATE TABLE after_tbl (id int);", down: "DROP TABLE after_tbl;")

            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("0002_items_indexes.up.sql:3"), "\(up)")
            #expect(up.stderr.contains("resolve 2"), "\(up)")
            let row = try #require(try fx.ledgerRow(2))
            #expect(try row.decode("state", as: String.self) == "failed")
            #expect(try row.decode("statements_done", as: Int?.self) == 1)
            #expect(try row.decode("statements_total", as: Int?.self) == 2)
            #expect(try row.decode("failed_statement_line", as: Int?.self) == 3)
            #expect(try row.decode("error", as: String?.self)?.contains("no_such_column") == true)
            #expect(try fx.tableExists("items_id_idx"))
            #expect(try !fx.tableExists("after_tbl"))

            // Nothing runs while dirty.
            let blocked = try fx.migrate("up")
            #expect(blocked.status == 1, "\(blocked)")
            #expect(blocked.stderr.contains("resolve"), "\(blocked)")
            #expect(blocked.stderr.contains("0002_items_indexes"), "\(blocked)")
            #expect(try !fx.tableExists("after_tbl"))
            #expect(try fx.migrate("down", "1").status == 1)

            let status = try fx.migrate("status")
            #expect(status.status == 0, "\(status)")
            #expect(status.stdout.contains("failed"), "\(status)")
            #expect(status.stdout.contains("statements done 1/2"), "\(status)")
            #expect(status.stdout.contains("0002_items_indexes.up.sql:3"), "\(status)")
            #expect(status.stdout.contains("dirty: 1"), "\(status)")
            #expect(try fx.migrate("status", "--exit-code").status == 4)

            // The operator undoes the partial work and says so.
            #expect(try fx.migrate("resolve", "2").status == 2)
            #expect(try fx.migrate("resolve", "3", "--applied").status == 2)
            try fx.execute("DROP INDEX items_id_idx")
            let rolledBack = try fx.migrate("resolve", "2", "--rolled-back", "--reason", "dropped items_id_idx by hand")
            #expect(rolledBack.status == 0, "\(rolledBack)")
            #expect(try fx.ledgerVersions() == [1])
            var events = try fx.events()
            let resolved = try #require(events.last)
            #expect(resolved.event == "resolve-rolled-back" && resolved.version == 2)
            #expect(resolved.detail?.contains("dropped items_id_idx by hand") == true, "\(resolved)")
            #expect(try fx.migrate("status", "--exit-code").status == 3)

            // It fails the same way again; this time the operator finishes it and marks it applied.
            #expect(try fx.migrate("up").status == 1)
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 2", as: String.self) == "failed")
            let applied = try fx.migrate("resolve", "2", "--applied", "--reason", "second index not needed")
            #expect(applied.status == 0, "\(applied)")
            events = try fx.events()
            #expect(events.last?.event == "resolve-applied", "\(events)")
            #expect(events.last?.detail?.contains("second index not needed") == true)
            #expect(events.filter { $0.event == "fail" }.count == 2)
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 2", as: String.self) == "applied")

            let unblocked = try fx.migrate("up")
            #expect(unblocked.status == 0, "\(unblocked)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
            #expect(try fx.migrate("status", "--exit-code").status == 0)
        }
    }

    @Test("a failing no-transaction down leaves the version dirty, and status names the down file and line")
    func nonTransactionalDownFailure() throws {
        try withFixture { fx in
            try fx.pair(1, "create_items", up: "CREATE TABLE items (id int, code text);", down: "DROP TABLE items;")
            try fx.pair(2, "items_indexes", up: """
                -- nfldb:no-transaction
                CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);
                CREATE INDEX CONCURRENTLY IF NOT EXISTS items_code_idx ON items (code);
                """, down: """
                -- nfldb:no-transaction
                DROP INDEX CONCURRENTLY IF EXISTS items_code_idx;
                DROP INDEX CONCURRENTLY items_idx_typo;
                """)
            #expect(try fx.migrate("up").status == 0)

            let down = try fx.migrate("down", "1")
            #expect(down.status == 1, "\(down)")
            #expect(down.stderr.contains("0002_items_indexes.down.sql:3"), "\(down)")
            #expect(down.stderr.contains("items_idx_typo"), "\(down)")
            #expect(try fx.scalar("SELECT state FROM nfldb.schema_migrations WHERE version = 2", as: String.self) == "failed")
            #expect(try !fx.tableExists("items_code_idx") && fx.tableExists("items_id_idx"))
            let fail = try #require(try fx.events().last)
            #expect(fail.event == "fail" && fail.version == 2, "\(fail)")

            let status = try fx.migrate("status")
            #expect(status.stdout.contains("0002_items_indexes.down.sql:3"), "\(status)")
            #expect(!status.stdout.contains("0002_items_indexes.up.sql:3"), "\(status)")
            #expect(try fx.migrate("status", "--exit-code").status == 4)
            let blocked = try fx.migrate("up")
            #expect(blocked.status == 1 && blocked.stderr.contains("0002_items_indexes.down.sql:3"), "\(blocked)")

            try fx.execute("DROP INDEX items_id_idx")
            #expect(try fx.migrate("resolve", "2", "--rolled-back", "--reason", "finished the down by hand").status == 0)
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.migrate("status", "--exit-code").status == 3)
        }
    }

    @Test("CREATE UNIQUE INDEX CONCURRENTLY on duplicates leaves an INVALID index that the error and status name")
    func invalidIndex() throws {
        try withFixture { fx in
            try fx.pair(1, "create_items", up: "CREATE TABLE items (id int, code text);\nINSERT INTO items VALUES (1, 'a'), (2, 'a');",
                        down: "DROP TABLE items;")
            try fx.pair(2, "items_code_key", up: "-- nfldb:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_code_key;\n")

            let up = try fx.migrate("up")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("23505"), "\(up)")
            #expect(up.stderr.contains("INVALID index(es) left behind: public.items_code_key"), "\(up)")
            #expect(try !fx.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_code_key'::regclass", as: Bool.self))
            let row = try #require(try fx.ledgerRow(2))
            #expect(try row.decode("state", as: String.self) == "failed")
            #expect(try row.decode("statements_done", as: Int?.self) == 0)
            #expect(try row.decode("failed_statement_line", as: Int?.self) == 2)
            #expect(try fx.events().last?.detail?.contains("public.items_code_key") == true)

            let status = try fx.migrate("status")
            #expect(status.stdout.contains("INVALID indexes"), "\(status)")
            #expect(status.stdout.contains("public.items_code_key"), "\(status)")
            let json = try fx.migrate("status", "--format", "json")
            let object = try #require(try json.json() as? [String: Any], "\(json)")
            #expect(object["invalid_indexes"] as? [String] == ["public.items_code_key"], "\(json)")

            // Recorded as rolled back while the INVALID index is still there: resolve warns, with the
            // DROP to run; run as printed, and the next up works.
            try fx.execute("UPDATE items SET code = 'b' WHERE id = 2")
            let resolved = try fx.migrate("resolve", "2", "--rolled-back")
            #expect(resolved.status == 0, "\(resolved)")
            #expect(resolved.stderr.contains("warning: INVALID index left in the database (a failed CREATE INDEX CONCURRENTLY leaves one): public.items_code_key; "
                + "if 0002_items_code_key creates it, its next `nfldb migrate up` fails with 'already exists': drop it first (DROP INDEX CONCURRENTLY public.items_code_key;)"),
                    "\(resolved)")
            try fx.execute("DROP INDEX CONCURRENTLY public.items_code_key;")
            #expect(try fx.migrate("up").status == 0)
            #expect(try fx.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_code_key'::regclass", as: Bool.self))
            #expect(!(try fx.migrate("status").stdout.contains("INVALID")))
        }
    }

    @Test("--single-transaction: a failure in the 3rd of 3 migrations leaves none applied")
    func singleTransaction() throws {
        try withFixture { fx in
            try fx.pair(1, "one", up: "CREATE TABLE one_tbl (id int);", down: "DROP TABLE one_tbl;")
            try fx.pair(2, "two", up: "CREATE TABLE two_tbl (id int);", down: "DROP TABLE two_tbl;")
            try fx.pair(3, "three", up: "CREATE TABLE three_tbl (id int);\nSELECT no_such_column FROM one_tbl;", down: "DROP TABLE three_tbl;")

            let up = try fx.migrate("up", "--single-transaction")
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("0003_three.up.sql:2"), "\(up)")
            #expect(up.stderr.contains("42703"), "\(up)")
            #expect(try fx.ledgerVersions() == [])
            for table in ["one_tbl", "two_tbl", "three_tbl"] { #expect(try !fx.tableExists(table), "\(table)") }
            #expect(try fx.events().filter { $0.event == "apply" }.isEmpty)

            // --single-transaction with a no-transaction migration is a usage error.
            try fx.write("0003_three.up.sql", "CREATE TABLE three_tbl (id int);")
            try fx.pair(4, "four", up: "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS one_idx ON one_tbl (id);",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS one_idx;")
            #expect(try fx.migrate("up", "--single-transaction").status == 2)
            let ok = try fx.migrate("up", "--single-transaction", "--to", "3")
            #expect(ok.status == 0, "\(ok)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
        }
    }

    @Test("--single-transaction: a timeout one migration sets with SET LOCAL does not leak into the next")
    func singleTransactionTimeoutsDoNotLeak() throws {
        try withFixture { fx in
            try fx.pair(1, "loosen", up: "SET LOCAL lock_timeout = '17min';\nCREATE TABLE one_tbl (id int);", down: "DROP TABLE one_tbl;")
            try fx.pair(2, "check", up: """
                DO $$ BEGIN
                  IF current_setting('lock_timeout') = '17min' THEN RAISE EXCEPTION 'lock_timeout leaked from 0001'; END IF;
                END $$;
                CREATE TABLE two_tbl (id int);
                """, down: "DROP TABLE two_tbl;")
            let up = try fx.migrate("up", "--single-transaction")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }

    @Test("down --single-transaction: a failing down in the batch rolls back nothing; a good batch rolls back all")
    func singleTransactionDown() throws {
        try withFixture { fx in
            try fx.pair(1, "one", up: "CREATE TABLE one_tbl (id int);", down: "DROP TABLE one_tbl;")
            try fx.pair(2, "two", up: "CREATE TABLE two_tbl (id int);", down: "DROP TABLE two_tbl;\nDROP TABLE no_such_tbl;")
            try fx.pair(3, "three", up: "CREATE TABLE three_tbl (id int);", down: "DROP TABLE three_tbl;")
            #expect(try fx.migrate("up").status == 0)

            let failed = try fx.migrate("down", "3", "--single-transaction")
            #expect(failed.status == 1, "\(failed)")
            #expect(failed.stderr.contains("0002_two.down.sql:2"), "\(failed)")
            #expect(failed.stderr.contains("nothing was rolled back"), "\(failed)")
            // The step above the failing one ran inside the batch: not "ok" while the batch is undone.
            #expect(failed.stdout.contains("rolling back 0003_three … ran (") && failed.stdout.contains("commits with the batch"), "\(failed)")
            #expect(!failed.stdout.contains("ok ("), "\(failed)")
            #expect(try fx.ledgerVersions() == [1, 2, 3])
            for table in ["one_tbl", "two_tbl", "three_tbl"] { #expect(try fx.tableExists(table), "\(table)") }
            #expect(try fx.events().filter { $0.event == "rollback" }.isEmpty)

            let ok = try fx.migrate("down", "1", "--single-transaction")
            #expect(ok.status == 0, "\(ok)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try !fx.tableExists("three_tbl"))

            // A batch of two: both history rows go, with one rollback event each, newest first.
            // (The stored down SQL of 0002 runs, not the file: give it the table it drops.)
            try fx.sql { try $0.execute("CREATE TABLE no_such_tbl (id int)") }
            let both = try fx.migrate("down", "2", "--single-transaction")
            #expect(both.status == 0, "\(both)")
            #expect(try fx.ledgerVersions().isEmpty)
            let rollbacks = try fx.events().filter { $0.event == "rollback" }
            #expect(rollbacks.map(\.version) == [3, 2, 1])
            #expect(rollbacks.last?.detail?.contains("0001_one.down.sql\"") == true, "\(rollbacks)")
            #expect(rollbacks.allSatisfy { $0.detail?.contains("\"down_checksum\": \"sha256:") == true }, "\(rollbacks)")
        }
    }
}
