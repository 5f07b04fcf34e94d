import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

struct Boom: Error, Equatable {}

@Suite("Transactions")
struct TransactionTests {
    @Test("withTransaction commits and returns the body's value")
    func commits() throws {
        try TestCluster.withDatabase(prefix: "tx_commit") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            let value = try c.withTransaction {
                #expect(c.transactionState == .inTransaction)
                try c.execute("INSERT INTO t VALUES (1), (2)")
                return "done"
            }
            #expect(value == "done")
            #expect(c.transactionState == .idle)
            let other = try db.connect()
            #expect(try other.query("SELECT count(*) FROM t").scalar(Int.self) == 2, "visible to another session: committed")
        }
    }

    @Test("a thrown Swift error rolls back and is rethrown unchanged")
    func rollsBackOnSwiftError() throws {
        try TestCluster.withDatabase(prefix: "tx_swift") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            #expect(throws: Boom()) {
                try c.withTransaction {
                    try c.execute("INSERT INTO t VALUES (1)")
                    throw Boom()
                }
            }
            #expect(c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("an error swallowed inside the body still fails the transaction, and nothing is persisted")
    func swallowedError() throws {
        try TestCluster.withDatabase(prefix: "tx_swallow") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            let error = #expect(throws: PostgresError.self) {
                try c.withTransaction {
                    try c.execute("INSERT INTO t VALUES (1)")
                    _ = try? c.query("SELECT 1 / 0")
                    #expect(c.transactionState == .failed)
                }
            }
            #expect(error?.message.contains("aborted by an earlier error") == true)
            #expect(c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("a server error thrown from the body rolls back")
    func serverError() throws {
        try TestCluster.withDatabase(prefix: "tx_server") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int PRIMARY KEY)")
            let error = #expect(throws: PostgresError.self) {
                try c.withTransaction {
                    try c.execute("INSERT INTO t VALUES (1)")
                    try c.execute("INSERT INTO t VALUES (1)")
                }
            }
            #expect(error?.sqlState == SQLState.uniqueViolation)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("isolation level and read-only are applied")
    func isolation() throws {
        try TestCluster.withDatabase(prefix: "tx_iso") { db in
            let c = try db.connect()
            let (level, readOnly) = try c.withTransaction(isolation: .serializable, readOnly: true) {
                (try c.query("SELECT current_setting('transaction_isolation')").scalar(String.self),
                 try c.query("SELECT current_setting('transaction_read_only')").scalar(String.self))
            }
            #expect(level == "serializable")
            #expect(readOnly == "on")
            let denied = #expect(throws: PostgresError.self) {
                try c.withTransaction(readOnly: true) { try c.execute("CREATE TABLE nope (id int)") }
            }
            #expect(denied?.sqlState == "25006")
        }
    }
}

@Suite("COPY FROM STDIN")
struct CopyTests {
    @Test("streams 100,000 rows with NULLs and escaped characters")
    func bulk() throws {
        try TestCluster.withDatabase(prefix: "copy_bulk") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE plays (id int PRIMARY KEY, team text NOT NULL, note text)")
            let copied = try c.copyIn("COPY plays (id, team, note) FROM STDIN") { writer in
                for i in 0..<100_000 {
                    try writer.write("\(i)\tteam \(i % 32)\t\(i % 10 == 0 ? "\\N" : "n\(i)")\n")
                }
            }
            #expect(copied == 100_000)
            #expect(try c.query("SELECT count(*) FROM plays").scalar(Int.self) == 100_000)
            #expect(try c.query("SELECT count(*) FROM plays WHERE note IS NULL").scalar(Int.self) == 10_000)
            #expect(try c.query("SELECT count(DISTINCT team) FROM plays").scalar(Int.self) == 32)
            #expect(try c.query("SELECT note FROM plays WHERE id = 99999").scalar(String.self) == "n99999")
        }
    }

    @Test("writeTextRow escapes tabs, newlines, backslashes and writes NULL")
    func textRows() throws {
        try TestCluster.withDatabase(prefix: "copy_rows") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int, a text, b text)")
            let tricky = "tab\there\nnew line\\back\rcr"
            let copied = try c.copyIn("COPY t FROM STDIN") { writer in
                try writer.writeTextRow(["1", tricky, nil])
                try writer.writeTextRow(["2", "\\N", ""])
            }
            #expect(copied == 2)
            let rows = try c.query("SELECT a, b FROM t ORDER BY id").rows
            #expect(try rows[0].decode("a", as: String.self) == tricky)
            #expect(try rows[0].decode("b", as: String?.self) == nil)
            #expect(try rows[1].decode("a", as: String.self) == "\\N", "a literal backslash-N is text, not NULL")
            #expect(try rows[1].decode("b", as: String?.self) == "")
        }
    }

    @Test("a producer that throws aborts the COPY: zero rows, error rethrown, connection usable")
    func producerThrows() throws {
        try TestCluster.withDatabase(prefix: "copy_abort") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            #expect(throws: Boom()) {
                try c.copyIn("COPY t FROM STDIN") { writer in
                    for i in 0..<50_000 { try writer.write("\(i)\n") }
                    throw Boom()
                }
            }
            #expect(c.isAlive)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("bad data is a server error with SQLSTATE; nothing is kept")
    func badData() throws {
        try TestCluster.withDatabase(prefix: "copy_bad") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int)")
            let error = #expect(throws: PostgresError.self) {
                try c.copyIn("COPY t FROM STDIN") { writer in
                    try writer.write("1\n2\nthree\n4\n")
                }
            }
            #expect(error?.sqlState == "22P02")
            #expect(error?.context?.contains("line 3") == true)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
            let notCopy = #expect(throws: PostgresError.self) { try c.copyIn("SELECT 1") { _ in } }
            #expect(notCopy?.kind == .copy)
        }
    }

    @Test("copyIn takes quoted names and refuses bound values before sending anything")
    func copyInQuery() throws {
        try TestCluster.withDatabase(prefix: "copy_query") { db in
            let c = try db.connect()
            let table = "Odd \"Name\""
            try c.execute("CREATE TABLE \(identifier: table) (id int)")
            let copied = try c.copyIn("COPY \(qualified: "public", table) (id) FROM STDIN") { writer in
                try writer.write("1\n2\n")
            }
            #expect(copied == 2)
            let refused = #expect(throws: PostgresError.self) {
                try c.copyIn("COPY \(identifier: table) FROM STDIN WHERE id = \(1)") { writer in try writer.write("3\n") }
            }
            #expect(refused?.kind == .copy)
            #expect(refused?.message.contains("bound values") == true)
            #expect(c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM \(identifier: table)").scalar(Int.self) == 2)
        }
    }
}
