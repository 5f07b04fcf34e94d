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

@Suite("COPY queue")
struct CopyQueueTests {
    static func rows(_ range: Range<Int>) -> [UInt8] {
        Array(range.map { "\($0)\tv\($0)\n" }.joined().utf8)
    }

    @Test("copies run in order in the background; counts come back; the connection is blocking and usable after")
    func inOrder() throws {
        try TestCluster.withDatabase(prefix: "cq_order") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
            try c.execute("CREATE TABLE side (id int REFERENCES t (id))")
            var counts: [String] = []
            try c.withTransaction {
                try c.withCopyQueue { queue in
                    for batch in 0..<4 {
                        let range = batch * 25_000..<(batch + 1) * 25_000
                        try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(range), label: "t batch \(batch + 1)", completion: { counts.append("t\(batch + 1)=\($0)") }))
                        // The side table references rows of the copy just queued: order is kept.
                        try queue.enqueue(QueuedCopy("COPY side FROM STDIN", data: Array("\(range.lowerBound)\n".utf8), label: "side batch \(batch + 1)", completion: { counts.append("s\(batch + 1)=\($0)") }))
                        #expect(queue.pending >= 1)
                        for _ in 0..<100 { try queue.poll() }
                    }
                }
            }
            #expect(counts == ["t1=25000", "s1=1", "t2=25000", "s2=1", "t3=25000", "s3=1", "t4=25000", "s4=1"])
            #expect(c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 100_000)
            #expect(try c.query("SELECT v FROM t WHERE id = 99999").scalar(String.self) == "v99999")
        }
    }

    @Test("an error in batch k names the batch and the input row of the failing line; nothing stays")
    func errorNamesItsRow() throws {
        try TestCluster.withDatabase(prefix: "cq_error") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
            var bad = Self.rows(1000..<2000)
            bad += Array("oops\tbad\n".utf8)  // line 1001 of batch 2
            bad += Self.rows(2000..<2100)
            var finished: [Int] = []
            let error = #expect(throws: PostgresError.self) {
                try c.withTransaction {
                    try c.withCopyQueue { queue in
                        try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(0..<1000), label: "COPY t batch 1", completion: { finished.append($0) }))
                        try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: bad, label: "COPY t batch 2",
                                                     describeLine: { "input row \($0 + 1000)" }, completion: { finished.append($0) }))
                        try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(3000..<3100), label: "COPY t batch 3", completion: { finished.append($0) }))
                    }
                }
            }
            #expect(error?.sqlState == "22P02")
            #expect(error?.location == "COPY t batch 2, input row 2001", "\(String(describing: error))")
            #expect(error?.diagnostic.summary.hasPrefix("COPY t batch 2, input row 2001: ") == true)
            #expect(finished == [1000], "batch 3 is never sent")
            #expect(c.isAlive && c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("a connection lost in the middle of a COPY is a connection error naming the copy")
    func connectionLost() throws {
        try TestCluster.withDatabase(prefix: "cq_lost") { db in
            let c = try db.connect()
            let admin = try db.connect()
            defer { admin.close() }
            try c.execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
            let pid = c.backendPID
            let error = #expect(throws: PostgresError.self) {
                try c.withCopyQueue { queue in
                    try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(0..<200_000), label: "COPY t batch 7"))
                    // Wait until the server is inside the COPY (waiting for or reading data), then kill it.
                    var inCopy = false
                    for _ in 0..<200 where !inCopy {
                        inCopy = try admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(Int(pid)) AND query LIKE 'COPY t%' AND state = 'active'").scalar(Int.self) == 1
                        if !inCopy { try queue.poll(); Thread.sleep(forTimeInterval: 0.01) }
                    }
                    #expect(inCopy)
                    #expect(try admin.query("SELECT pg_terminate_backend(\(Int(pid)))").scalar(Bool.self))
                    try queue.waitUntilDone()
                }
            }
            #expect(error?.kind == .connection, "\(String(describing: error))")
            #expect(error?.location == "COPY t batch 7")
            #expect(!c.isAlive)
            #expect(try admin.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        }
    }

    @Test("a body that throws aborts the COPY still receiving data, drops the rest, and rethrows")
    func bodyThrows() throws {
        try TestCluster.withDatabase(prefix: "cq_abort") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
            var finished: [Int] = []
            #expect(throws: Boom()) {
                try c.withCopyQueue { queue in
                    try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(0..<10), label: "small", completion: { finished.append($0) }))
                    try queue.waitUntilDone()
                    // ~40 MB: more than the socket buffers hold, so it is still being sent when the body fails.
                    try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(10..<3_000_000), label: "big", completion: { finished.append($0) }))
                    try queue.enqueue(QueuedCopy("COPY t FROM STDIN", data: Self.rows(3_000_000..<3_000_010), label: "never", completion: { finished.append($0) }))
                    throw Boom()
                }
            }
            #expect(finished == [10])
            #expect(c.isAlive && c.transactionState == .idle)
            #expect(try c.query("SELECT count(*) FROM t").scalar(Int.self) == 10)
            let refused = #expect(throws: PostgresError.self) {
                try c.withCopyQueue { queue in try queue.enqueue(QueuedCopy("COPY t FROM STDIN WHERE id = \(1)", data: [], label: "binds")) }
            }
            #expect(refused?.kind == .copy)
            #expect(try c.query("SELECT 1").scalar(Int.self) == 1)
        }
    }
}
