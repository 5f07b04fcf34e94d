import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

@Suite("SQLScript splitting")
struct SQLScriptTests {
    @Test("comments are stripped outside quotes, also in CRLF files; whitespace folds to single spaces, ASCII only")
    func stripAndFold() {
        // A CRLF ends a `--` comment (it used to run on to the statement's end over Characters).
        #expect(SQLScript.stripComments("CREATE TABLE t -- note\r\n(id int)") == "CREATE TABLE t \n(id int)")
        #expect(SQLScript.stripComments("SELECT '--x', \"/*y*/\" /* a /* nested */ b */ FROM t") == "SELECT '--x', \"/*y*/\"   FROM t")
        #expect(SQLScript.stripComments("SELECT 'é' -- ü\nFROM t") == "SELECT 'é' \nFROM t")
        #expect(SQLScript.foldWhitespace(" \tCREATE\r\n  TABLE\u{0C}t ( id int )\n") == "CREATE TABLE t ( id int )")
        // A no-break space is part of a word to PostgreSQL, not whitespace.
        #expect(SQLScript.foldWhitespace("DROP\u{00A0}TABLE  t") == "DROP\u{00A0}TABLE t")
        let statement = try? SQLScript("create   table x -- c\r\n  (id int);\r\n", name: "m.sql").statements.first
        #expect(statement?.normalized == "CREATE TABLE X (ID INT);")
    }

    static func split(_ sql: String) throws -> [SQLStatement] {
        try SQLScript(sql, name: "test.sql").statements
    }

    @Test("splits on semicolons and records each statement's first line and index")
    func basics() throws {
        let statements = try Self.split("SELECT 1;\n\n  SELECT\n    2;\nSELECT 3")
        #expect(statements.map(\.text) == ["SELECT 1;", "SELECT\n    2;", "SELECT 3"])
        #expect(statements.map(\.line) == [1, 3, 5])
        #expect(statements.map(\.index) == [0, 1, 2])
        #expect(try Self.split("").isEmpty)
        #expect(try Self.split("  ;;\n-- only a comment\n/* and another */\n").isEmpty)
    }

    @Test("dollar-quoted bodies with and without tags hide semicolons")
    func dollarQuotes() throws {
        let sql = """
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
            BEGIN
              RAISE NOTICE 'a;b';  -- semicolon inside
              RETURN 1;
            END
            $body$;
            SELECT $$;$$, $x$ $$ ; $x$, $1;
            SELECT a$b FROM t;
            """
        let statements = try Self.split(sql)
        #expect(statements.count == 3)
        #expect(statements[0].text.hasSuffix("$body$;"))
        #expect(statements[1].text == "SELECT $$;$$, $x$ $$ ; $x$, $1;")
        #expect(statements[1].line == 7)
        #expect(statements[2].text == "SELECT a$b FROM t;")
    }

    @Test("nested /* */ comments and -- comments hide semicolons")
    func comments() throws {
        let sql = """
            /* outer /* inner; */ still comment; */
            SELECT 1 /* mid; */ + 1; -- trailing; comment
            -- whole line; comment
            SELECT 2;
            """
        let statements = try Self.split(sql)
        #expect(statements.map(\.text) == ["SELECT 1 /* mid; */ + 1;", "SELECT 2;"])
        #expect(statements.map(\.line) == [2, 4])
    }

    @Test("E'' strings honour backslash escapes; standard strings do not")
    func escapeStrings() throws {
        let sql = #"""
            SELECT E'it\'s; fine', e'\\';
            SELECT 'plain''s; ok', 'a\';
            SELECT some'x;y' FROM t;
            SELECT 4;
            """#
        let statements = try Self.split(sql)
        #expect(statements.count == 4)
        #expect(statements[0].text == #"SELECT E'it\'s; fine', e'\\';"#)
        #expect(statements[1].text == #"SELECT 'plain''s; ok', 'a\';"#)
        #expect(statements[2].text == "SELECT some'x;y' FROM t;")
        #expect(statements[3].line == 4)
    }

    @Test("quoted identifiers may contain semicolons and doubled quotes")
    func quotedIdentifiers() throws {
        let statements = try Self.split(#"CREATE TABLE "semi;colon" (id int); SELECT "a""b;" FROM "semi;colon";"#)
        #expect(statements.map(\.text) == [#"CREATE TABLE "semi;colon" (id int);"#, #"SELECT "a""b;" FROM "semi;colon";"#])
    }

    @Test("CREATE FUNCTION … BEGIN ATOMIC … END is one statement, CASE … END inside included")
    func beginAtomic() throws {
        let sql = """
            BEGIN;
            CREATE OR REPLACE FUNCTION add_points(a int, b int) RETURNS int LANGUAGE sql
            BEGIN ATOMIC
              SELECT CASE WHEN a > 0 THEN a + b ELSE b END;
            END;
            CREATE PROCEDURE noop() LANGUAGE sql
            BEGIN ATOMIC
              SELECT 1;
              SELECT 2;
            END;
            SELECT add_points(1, 2);
            COMMIT;
            """
        let statements = try Self.split(sql)
        #expect(statements.count == 5)
        #expect(statements[0].text == "BEGIN;", "a transaction BEGIN is not an atomic body")
        #expect(statements[1].line == 2)
        #expect(statements[1].text.hasSuffix("END;"))
        #expect(statements[1].text.contains("ELSE b END;"))
        #expect(statements[2].line == 6)
        #expect(statements[3].text == "SELECT add_points(1, 2);")
        #expect(statements[4].text == "COMMIT;")
    }

    @Test("a psql meta-command is an error naming its line", arguments: ["\\set x 1", "\\i other.sql", "\\connect nfl"])
    func metaCommand(line: String) throws {
        let error = #expect(throws: SQLScript.ParseError.self) {
            try SQLScript("SELECT 1;\n\(line)\nSELECT 2;", name: "seed.sql")
        }
        #expect(error?.line == 2)
        #expect(error?.name == "seed.sql")
        #expect(error?.description.hasPrefix("seed.sql:2: psql meta-commands") == true)
    }

    @Test("unterminated strings, identifiers, dollar quotes and comments name the line they start on")
    func unterminated() throws {
        let cases: [(String, Int, String)] = [
            ("SELECT 1;\n\nSELECT 'oops;\nSELECT 2;\n", 3, "unterminated quoted string"),
            ("SELECT 1;\nSELECT \"col;\n", 2, "unterminated quoted identifier"),
            ("\n\nDO $fn$ BEGIN NULL; END $fm$;\n", 3, "unterminated dollar-quoted string $fn$"),
            ("SELECT 1;\n/* open /* nested */\nSELECT 2;", 2, "unterminated /* comment"),
            ("SELECT E'trailing \\';\n", 1, "unterminated quoted string"),
        ]
        for (sql, line, message) in cases {
            let error = #expect(throws: SQLScript.ParseError.self, "\(sql)") { try SQLScript(sql, name: "bad.sql") }
            #expect(error?.line == line, "\(sql)")
            #expect(error?.message == message, "\(sql)")
            #expect(error?.description == "bad.sql:\(line): \(message)")
        }
    }

    @Test("line(atPosition:) maps a server error position to a script line; normalized strips comments")
    func positions() throws {
        let statements = try Self.split("SELECT 1;\n\nUPDATE t\n   SET a = 1\n WHERE b = = 2;")
        let update = statements[1]
        #expect(update.line == 3)
        #expect(update.line(atPosition: 1) == 3)
        let position = (update.text as NSString).range(of: "= = 2").location + 3
        #expect(update.line(atPosition: position) == 5)
        let withComments = try Self.split("create /* x */ index\n  concurrently -- why\n  idx on t (a);")[0]
        #expect(withComments.normalized == "CREATE INDEX CONCURRENTLY IDX ON T (A);")
    }
}

@Suite("Running scripts on a real server")
struct ScriptRunTests {
    @Test("a runtime error reports the failing statement's name:line and SQLSTATE; earlier statements ran")
    func runtimeError() throws {
        try TestCluster.withDatabase(prefix: "script_rt") { db in
            let c = try db.connect()
            let script = try SQLScript("""
                -- seed data
                CREATE TABLE t (id int PRIMARY KEY, v int);
                INSERT INTO t VALUES (1, 10);

                INSERT INTO t
                  VALUES (2, 20);
                SELECT id,
                       v / 0
                  FROM t;
                INSERT INTO t VALUES (3, 30);
                """, name: "seeds/0001_seed.sql")
            var done: [Int] = []
            let error = #expect(throws: PostgresError.self) {
                try c.run(script) { done.append($0.index) }
            }
            #expect(error?.sqlState == "22012")
            #expect(error?.message == "division by zero")
            #expect(error?.location == "seeds/0001_seed.sql:7")
            #expect(error?.statement == "SELECT id,\n       v / 0\n  FROM t;")
            let text = try #require(error).description
            #expect(text.hasPrefix("seeds/0001_seed.sql:7: division by zero"))
            #expect(text.contains("SQLSTATE 22012"))
            #expect(done == [0, 1, 2], "progress ran for each statement that succeeded")
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 2, "statements before the failure ran; after it, none")
        }
    }

    @Test("a syntax error in the middle of a multi-line statement points at the exact line")
    func syntaxError() throws {
        try TestCluster.withDatabase(prefix: "script_syntax") { db in
            let c = try db.connect()
            let script = try SQLScript("""
                CREATE TABLE t (id int);
                INSERT INTO t VALUES (1);
                /* a comment
                   spanning lines */
                UPDATE t
                   SET id = 2
                 WHERE id = = 1;
                SELECT 1;
                """, name: "migrations/0002_fix.up.sql")
            let error = #expect(throws: PostgresError.self) { try c.run(script) }
            #expect(error?.sqlState == "42601")
            #expect(error?.location == "migrations/0002_fix.up.sql:7")
            #expect(error?.message.contains("syntax error at or near \"=\"") == true)
            #expect(error?.statement?.hasPrefix("UPDATE t") == true)
        }
    }

    @Test("a whole script with functions, atomic bodies and dollar quotes runs")
    func successfulScript() throws {
        try TestCluster.withDatabase(prefix: "script_ok") { db in
            let c = try db.connect()
            let script = try SQLScript(#"""
                CREATE TABLE "odd;name" (id int, note text);
                CREATE FUNCTION add_points(a int, b int) RETURNS int LANGUAGE sql
                BEGIN ATOMIC
                  SELECT CASE WHEN a > 0 THEN a + b ELSE b END;
                END;
                CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql AS $fn$
                BEGIN
                  RETURN upper(t) || ';';
                END
                $fn$;
                INSERT INTO "odd;name" VALUES (add_points(1, 2), shout(E'it\'s'));
                INSERT INTO "odd;name" VALUES (4, $$dollar; 'quoted'$$); -- trailing
                """#, name: "ok.sql")
            #expect(script.statements.count == 5)
            try c.run(script)
            let rows = try c.query(#"SELECT id, note FROM "odd;name" ORDER BY id"#).rows
            #expect(try rows.map { try $0.decode("id", as: Int.self) } == [3, 4])
            #expect(try rows.map { try $0.decode("note", as: String.self) } == ["IT'S;", "dollar; 'quoted'"])
        }
    }

    @Test("a script runs inside the caller's transaction and rolls back with it")
    func insideTransaction() throws {
        try TestCluster.withDatabase(prefix: "script_tx") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            let script = try SQLScript("INSERT INTO t VALUES (1);\nINSERT INTO t VALUES ('x');", name: "tx.sql")
            #expect(throws: PostgresError.self) {
                try c.withTransaction { try c.run(script) }
            }
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
            #expect(c.transactionState == .idle)
        }
    }
}

@Suite("COPY inside scripts")
struct ScriptCopyTests {
    @Test("COPY … FROM stdin takes the following lines up to \\. as its data; semicolons and backslashes in rows are data")
    func parsesInlineData() throws {
        let script = try SQLScript("""
            CREATE TABLE t (id int, v text);
            COPY public.t (id, v) FROM stdin;
            1\tsemi;colon
            2\t\\N
            \\.
            SELECT 1;
            """, name: "seed.sql")
        #expect(script.statements.count == 3)
        let copy = script.statements[1]
        #expect(copy.isCopyFromStdin)
        #expect(copy.copyData?.text == "1\tsemi;colon\n2\t\\N\n")
        #expect(copy.copyData?.line == 3)
        #expect(copy.copyDataLine(row: 2) == 4)
        #expect(script.statements[2].text == "SELECT 1;")
        #expect(script.statements[2].line == 6)
        #expect(!script.statements[0].isCopyFromStdin)
    }

    @Test("COPY data without its \\. line is a parse error naming the first data line")
    func unterminated() throws {
        let error = #expect(throws: SQLScript.ParseError.self) {
            try SQLScript("SELECT 1;\nCOPY t FROM STDIN;\n1\n2\n", name: "seed.sql")
        }
        #expect(error?.line == 3, "\(String(describing: error))")
        #expect(error?.message.contains("\\.") == true)
    }

    @Test("runs inline COPY data on a server; a bad row reports the file line of that row")
    func runsInlineData() throws {
        try TestCluster.withDatabase(prefix: "script_copy") { db in
            let c = try db.connect()
            try c.run(try SQLScript("""
                CREATE TABLE t (id int, v text);
                COPY t (id, v) FROM stdin;
                1\tsemi;colon
                2\t\\N
                \\.
                INSERT INTO t VALUES (3, 'after');
                """, name: "seed.sql"))
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 3)
            #expect(try c.query("SELECT v FROM t WHERE id = 1").scalar(String.self) == "semi;colon")
            #expect(try c.query("SELECT v FROM t WHERE id = 2").scalar(String?.self) == nil)
            let bad = try SQLScript("""
                COPY t (id, v) FROM stdin;
                4\tok
                five\tbad
                \\.
                """, name: "bad.sql")
            let error = #expect(throws: PostgresError.self) { try c.run(bad) }
            #expect(error?.sqlState == "22P02")
            #expect(error?.location == "bad.sql:3", "\(String(describing: error))")
            #expect(c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 3)
        }
    }

    @Test("COPY … TO STDOUT in a script is drained and discarded: the script goes on and the connection stays usable")
    func copyOutDoesNotHang() throws {
        try TestCluster.withDatabase(prefix: "script_copyout") { db in
            let c = try db.connect()
            let outcome = Mutex<String?>(nil)
            // The connection is used by the thread until `outcome` is set, and only then here.
            nonisolated(unsafe) let shared = c
            // On a thread, so a regression fails the wait below instead of hanging the test run.
            let thread = Thread {
                do {
                    let results = try shared.runScript(unsafeSQL: "CREATE TABLE t AS SELECT g FROM generate_series(1, 500) g; COPY t TO STDOUT; SELECT 42 AS answer;")
                    outcome.withLock { $0 = "ok \(results.last?.rows.first?["answer"] ?? "-")" }
                } catch {
                    outcome.withLock { $0 = "error \(error)" }
                }
            }
            thread.start()
            let finished = poll(timeout: .seconds(20)) { outcome.withLock { $0 } != nil }
            #expect(finished, "runScript with COPY TO STDOUT did not return within 20 s")
            guard finished else { return }
            #expect(outcome.withLock { $0 } == "ok 42")
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 500)
            // Through execute() it is refused, and the connection still works afterwards.
            let refused = #expect(throws: PostgresError.self) { try c.execute("COPY t TO STDOUT") }
            #expect(refused?.kind == .copy)
            #expect(try c.query("SELECT 1").scalar(Int.self) == 1)
        }
    }
}

/// Polls `condition` every 20 ms until it is true or `timeout` passes.
private func poll(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return try condition()
}
