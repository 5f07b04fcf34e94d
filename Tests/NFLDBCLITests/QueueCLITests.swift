import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

/// The shared nflverse slice (as the ETL tests find it): `$NFLDB_ETL_SLICE`, else `<repo>/../shared/data/`,
/// else `/work/shared/data/`.
enum SharedSlice {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let path: String = {
        let beside = URL(fileURLWithPath: repository).appendingPathComponent("../shared/data/nflverse_games_2023_2025.csv").standardizedFileURL.path
        return [ProcessInfo.processInfo.environment["NFLDB_ETL_SLICE"], beside, "/work/shared/data/nflverse_games_2023_2025.csv"]
            .compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0) } ?? beside
    }()
}

/// A redis-server and a migrated database; every command runs the built `nfldb` binary.
struct QueueCLIWorld {
    let redis: RedisTestServer
    let db: TestDatabase
    let dir: String

    static func with(migrate: Bool = true, _ body: (QueueCLIWorld) throws -> Void) throws {
        let redis = try RedisTestServer.start()
        defer { redis.stop() }
        try withScratchDirectory("nfldb-qcli") { dir in
            try TestCluster.withDatabase(prefix: "qcli") { db in
                let world = QueueCLIWorld(redis: redis, db: db, dir: dir)
                if migrate {
                    let up = try world.run("migrate", "up", "-q", "--dir", SharedSlice.repository + "/migrations")
                    try #require(up.status == 0, "\(up.allOutput)")
                }
                try body(world)
            }
        }
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["NFLDB_REDIS_URL": "redis://127.0.0.1:\(redis.port)/0", "NFLDB_DSN": db.dsn, "NFLDB_LOG_LEVEL": "warning",
         "NFLDB_QUEUE_BACKOFF_BASE": "20ms", "NFLDB_QUEUE_BACKOFF_MAX": "100ms",
         "NFLDB_ETL_SOURCE_ROOTS": "\(dir),\((SharedSlice.path as NSString).deletingLastPathComponent)"].merging(extra) { _, new in new }
    }

    @discardableResult
    func run(_ arguments: String..., env: [String: String] = [:]) throws -> ProcessResult {
        try CLIRunner.run(arguments, environment: environment(env), timeout: .seconds(180))
    }

    func spawn(_ arguments: [String], env: [String: String] = [:]) throws -> ChildProcess {
        try CLIRunner.spawn(arguments, environment: environment(env))
    }

    /// `queue submit … --format json`: the task id.
    func submit(_ type: String, _ extra: [String] = [], env: [String: String] = [:]) throws -> String {
        let result = try CLIRunner.run(["queue", "submit", type, "--format", "json"] + extra, environment: environment(env))
        try #require(result.status == 0, "\(result.allOutput)")
        return try #require(try jsonObject(result.standardOutput)["id"] as? String)
    }

    /// `worker --burst --format json`: exit status, summary and the log on stderr.
    func burst(_ extra: [String] = [], env: [String: String] = [:]) throws -> (status: Int32, summary: [String: Any], log: String) {
        let result = try CLIRunner.run(["worker", "--burst", "--queues", "cpu", "--format", "json"] + extra, environment: environment(env),
                                       timeout: .seconds(180))
        let summary = (try? jsonObject(result.standardOutput)) ?? [:]
        return (result.status, summary, result.standardError)
    }

    func inspect(_ id: String) throws -> [String: Any] {
        let result = try run("queue", "inspect", id, "--format", "json")
        try #require(result.status == 0, "\(result.allOutput)")
        return try jsonObject(result.standardOutput)
    }

    func stats() throws -> [String: Any] {
        let result = try run("queue", "stats", "--format", "json")
        try #require(result.status == 0, "\(result.allOutput)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]])
        return rows.first { $0["queue"] as? String == "cpu" } ?? [:]
    }

    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) throws -> T {
        let connection = try db.connect()
        defer { connection.close() }
        return try connection.query(query).scalar(T.self)
    }

    /// Opens `fifo` for writing once a worker has opened it for reading (never blocks forever).
    func fifoWriter(_ fifo: String) throws -> Int32 {
        var fd: Int32 = -1
        try waitUntil("a worker opened \(fifo)", timeout: .seconds(60)) {
            fd = open(fifo, O_WRONLY | O_NONBLOCK)
            return fd >= 0
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Waits until another session of this database runs a COPY inside a transaction (a load under way).
    func waitForCopy(_ admin: PostgresConnection) throws {
        try waitUntil("the load's COPY is under way", timeout: .seconds(30)) {
            try admin.query("""
                SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND xact_start IS NOT NULL AND query ILIKE 'COPY%'
                """).scalar(Bool.self)
        }
    }
}

@Suite("nfldb queue and worker against redis-server and PostgreSQL", .serialized)
struct QueueCLITests {
    @Test("etl.load via queue submit + worker --burst loads the shared slice; the correlation id reaches etl_runs, audit.log and the task's log lines")
    func etlLoadTracesOneID() throws {
        try QueueCLIWorld.with { world in
            let audit = try world.run("audit", "install", "--table", "nfl.games", "--mode", "row")
            try #require(audit.status == 0, "\(audit.allOutput)")
            let payload = #"{"target": "games", "source": "\#(SharedSlice.path)"}"#
            let submitted = try world.run("queue", "submit", "etl.load", "--payload", payload, "--correlation-id", "trace-etl-42", "--format", "json")
            #expect(submitted.status == 0, "\(submitted.allOutput)")
            let json = try jsonObject(submitted.standardOutput)
            let id = try #require(json["id"] as? String)
            #expect(json["correlation_id"] as? String == "trace-etl-42" && json["created"] as? Bool == true)

            let worker = try world.burst(env: ["NFLDB_LOG_LEVEL": "info"])
            #expect(worker.status == 0, "\(worker.log)")
            #expect(worker.summary["succeeded"] as? Int == 1 && worker.summary["dead"] as? Int == 0, "\(worker.summary) \(worker.log)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 842)
            // etl_runs: one succeeded run with the id given at submit.
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE correlation_id = 'trace-etl-42' AND status = 'succeeded' AND rows_inserted = 842",
                                     as: Int.self) == 1)
            // audit.log: every row the load wrote carries it.
            #expect(try world.scalar("SELECT count(*) FROM audit.log WHERE table_name = 'games' AND correlation_id = 'trace-etl-42'", as: Int.self) == 842)
            #expect(try world.scalar("SELECT count(*) FROM audit.log WHERE correlation_id IS DISTINCT FROM 'trace-etl-42'", as: Int.self) == 0)
            // The durable result is the load's JSON, keyed by the task id.
            #expect(try world.scalar("SELECT (result->>'inserted')::int FROM nfl.task_results WHERE task_id = \(id) AND status = 'succeeded'",
                                     as: Int.self) == 842)
            // Every line the worker logged for the task carries the id (the loader's lines too).
            let taskLines = worker.log.split(separator: "\n").filter { $0.contains("task_id=\(id)") || $0.contains("etl load") }
            #expect(taskLines.count >= 2, "\(worker.log)")
            #expect(taskLines.allSatisfy { $0.contains("correlation_id=trace-etl-42") }, "\(taskLines)")
            #expect(worker.log.contains("task succeeded"), "\(worker.log)")

            // One changed score, submitted with another id: exactly one games row changes and one audit row carries that id.
            // (The same edit as the ETL tests: KC scores 24 instead of 20, result and total follow.)
            let original = try String(contentsOfFile: SharedSlice.path, encoding: .utf8)
            let changed = original.replacingOccurrences(
                of: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,20,Home,-1,41,",
                with: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,24,Home,3,45,")
            try #require(changed != original)
            let changedPath = world.dir + "/games-changed.csv"
            try changed.write(toFile: changedPath, atomically: true, encoding: .utf8)
            _ = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(changedPath)"}"#], env: ["NFLDB_CORRELATION_ID": "trace-etl-43"])
            let second = try world.burst()
            #expect(second.status == 0 && second.summary["succeeded"] as? Int == 1, "\(second.summary) \(second.log)")
            #expect(try world.scalar("SELECT rows_updated FROM nfl.etl_runs WHERE correlation_id = 'trace-etl-43'", as: Int.self) == 1)
            #expect(try world.scalar("SELECT count(*) FROM audit.log WHERE correlation_id = 'trace-etl-43' AND operation = 'UPDATE'", as: Int.self) == 1)
            #expect(try world.scalar("SELECT count(*) FROM audit.log WHERE correlation_id = 'trace-etl-43'", as: Int.self) == 1)
        }
    }

    @Test("two etl.load tasks of the same file through a 2-thread worker: serialized by the advisory lock when they overlap; one inserts 842, the other writes nothing")
    func concurrentLoads() throws {
        try QueueCLIWorld.with { world in
            let payload = #"{"target": "games", "source": "\#(SharedSlice.path)"}"#
            _ = try world.submit("etl.load", ["--payload", payload, "--correlation-id", "trace-c-1"])
            _ = try world.submit("etl.load", ["--payload", payload, "--correlation-id", "trace-c-2"])
            let worker = try world.burst(["--concurrency", "2"])
            #expect(worker.status == 0 && worker.summary["succeeded"] as? Int == 2, "\(worker.summary) \(worker.log)")
            let connection = try world.db.connect()
            defer { connection.close() }
            let runs = try connection.query("SELECT rows_inserted, rows_unchanged FROM nfl.etl_runs WHERE status = 'succeeded' ORDER BY id").rows
                .map { [try $0.decode("rows_inserted", as: Int.self), try $0.decode("rows_unchanged", as: Int.self)] }
            #expect(runs == [[842, 0], [0, 842]], "\(runs)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 842)
        }
    }

    @Test("kill -9 of a worker in the middle of an etl.load: tables unchanged, no lock left; the expired lease brings the task back and the next worker loads it once")
    func etlLoadSurvivesKilledWorker() throws {
        try QueueCLIWorld.with { world in
            let bytes = Array(try String(contentsOfFile: SharedSlice.path, encoding: .utf8).utf8)
            let fifo = world.dir + "/games.csv"
            try #require(mkfifo(fifo, 0o600) == 0)
            let id = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(fifo)"}"#, "--correlation-id", "trace-kill-1"])
            // The killed worker's lease is short so its task comes back soon. The second worker's is long: on a loaded
            // CI machine a 2 s lease was lost between heartbeats, the worker claimed the task again (attempt 3) and
            // that attempt blocked opening the FIFO, which nobody would write again.
            let env = ["NFLDB_QUEUE_LEASE": "3s"]
            let first = try world.spawn(["worker", "--queues", "cpu"], env: env)
            defer { first.removeOutput() }
            let half = try world.fifoWriter(fifo)
            _ = bytes.withUnsafeBufferPointer { write(half, $0.baseAddress, $0.count / 2) }
            let admin = try world.db.connect()
            defer { admin.close() }
            try world.waitForCopy(admin)
            _ = first.kill9()
            close(half)
            try waitUntil("the killed worker's sessions are gone", timeout: .seconds(30)) {
                try admin.query("""
                    SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND backend_type = 'client backend'
                    """).scalar(Bool.self)
            }
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 0, "the killed load's transaction rolled back")
            #expect(try world.scalar("SELECT count(*) FROM nfl.teams", as: Int.self) == 0)
            // This database only: the test cluster is shared, and other suites' loads and migrations hold advisory locks in theirs.
            #expect(try world.scalar("""
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, as: Int.self) == 0)
            #expect(try world.stats()["in_flight"] as? Int == 1, "the task waits for its lease to expire")

            let second = try world.spawn(["worker", "--queues", "cpu", "--burst", "--format", "json"], env: ["NFLDB_QUEUE_LEASE": "120s", "NFLDB_LOG_LEVEL": "info"])
            defer { _ = second.kill9(); second.removeOutput() }
            let whole = try world.fifoWriter(fifo)
            _ = bytes.withUnsafeBufferPointer { write(whole, $0.baseAddress, $0.count) }
            close(whole)
            #expect(second.wait(timeout: .seconds(120)) == 0, "\(second.outputTail())")
            #expect(try jsonObject(second.standardOutput)["succeeded"] as? Int == 1, "\(second.outputTail())")
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 842)
            #expect(try world.scalar("SELECT attempts FROM nfl.task_results WHERE task_id = \(id)", as: Int.self) == 2)
            // Both attempts are traced by the same id: the killed one marked abandoned by the next run, the second succeeded.
            #expect(try world.scalar("""
                SELECT string_agg(status || ':' || left(coalesce(error, ''), 9), ',' ORDER BY id) FROM nfl.etl_runs WHERE correlation_id = 'trace-kill-1'
                """, as: String.self) == "failed:abandoned,succeeded:")
        }
    }

    @Test("queue cancel of an etl.load while its COPY runs: the load rolls back before COMMIT (tables unchanged), its run is recorded failed as cancelled, the task ends cancelled")
    func cancelledETLLoadChangesNothing() throws {
        try QueueCLIWorld.with { world in
            let bytes = Array(try String(contentsOfFile: SharedSlice.path, encoding: .utf8).utf8)
            let fifo = world.dir + "/games.csv"
            try #require(mkfifo(fifo, 0o600) == 0)
            let id = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(fifo)"}"#, "--correlation-id", "trace-cancel-1"])
            let worker = try world.spawn(["worker", "--queues", "cpu", "--burst", "--format", "json"], env: ["NFLDB_QUEUE_LEASE": "3s", "NFLDB_LOG_LEVEL": "info"])
            defer { _ = worker.kill9(); worker.removeOutput() }
            let fd = try world.fifoWriter(fifo)
            _ = bytes.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count / 2) }
            let admin = try world.db.connect()
            defer { admin.close() }
            try world.waitForCopy(admin)
            let cancel = try world.run("queue", "cancel", id)
            #expect(cancel.status == 0, "\(cancel.allOutput)")
            // The worker learns of it from its next heartbeat (a third of the 3 s lease); the rest of the file arrives after.
            try waitUntil("the worker saw the cancellation: \(worker.outputTail())", timeout: .seconds(30)) {
                worker.standardError.contains("was cancelled") || worker.standardOutput.contains("was cancelled")
            }
            _ = bytes.withUnsafeBufferPointer { write(fd, $0.baseAddress!.advanced(by: $0.count / 2), $0.count - $0.count / 2) }
            close(fd)
            #expect(worker.wait(timeout: .seconds(120)) == 0, "\(worker.outputTail())")
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 0, "the cancelled load rolled back")
            #expect(try world.scalar("SELECT count(*) FROM nfl.teams", as: Int.self) == 0)
            let run = try world.scalar("SELECT status || ': ' || error FROM nfl.etl_runs WHERE correlation_id = 'trace-cancel-1'", as: String.self)
            #expect(run.hasPrefix("failed: cancelled: its queue task was cancelled while the load ran") && run.contains("rolled back"), "\(run)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.task_results WHERE task_id = \(id)", as: Int.self) == 0, "no result stored")
            let state = try world.inspect(id)
            #expect(state["state"] as? String == "cancelled", "\(state)")
        }
    }

    @Test("failing etl.load payloads end per the retry/DLQ policy with a clear error; backup.verify without backup.config is dead-lettered")
    func etlLoadFailures() throws {
        try QueueCLIWorld.with { world in
            let missing = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(world.dir)/nope.csv"}"#, "--max-attempts", "5"])
            let plays = try world.submit("etl.load", ["--payload", #"{"target": "plays"}"#])
            let typo = try world.submit("etl.load", ["--payload", #"{"target": "games", "sorce": "x.csv"}"#])
            // No target, and a source with credentials: the error names the keys, not the payload.
            let untargeted = try world.submit("etl.load", ["--payload", #"{"source": "https://alice:QPASS1@127.0.0.1:1/g.csv?X-Amz-Signature=QSIG1"}"#])
            // A bad row with on_invalid fail: the run is recorded failed (with the submit's correlation id), nothing loaded, no retry.
            let text = try String(contentsOfFile: SharedSlice.path, encoding: .utf8)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let header = lines[0].split(separator: ",").map(String.init)
            let column = try #require(header.firstIndex(of: "season"))
            var fields = lines[3].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            fields[column] = "not-a-year"
            lines[3] = fields.joined(separator: ",")
            let bad = world.dir + "/bad.csv"
            try lines.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
            let strict = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(bad)", "options": {"on_invalid": "fail"}}"#,
                                                       "--correlation-id", "trace-bad-1"])
            // A transient failure (an HTTP source that refuses connections) is retried, then dead-lettered after max_attempts.
            let closed = try LoopbackPort.free()
            let http = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "http://127.0.0.1:\#(closed)/games.csv"}"#,
                                                     "--max-attempts", "2"])
            // Permanent without retries: a redirect (not followed), and a field over the parser's 1 MiB limit.
            let redirecting = try ScenarioServer(responses: [["status": 302, "headers": ["Location": "http://127.0.0.1:1/elsewhere.csv"]]])
            let redirect = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(redirecting.url)"}"#, "--max-attempts", "3"])
            let endless = world.dir + "/endless.csv"
            try Data(repeating: UInt8(ascii: "x"), count: 2 << 20).write(to: URL(fileURLWithPath: endless))
            let overLimit = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(endless)"}"#, "--max-attempts", "3"])
            // A dry run's redirect (no run is recorded, so the error arrives unwrapped) and a header naming a column twice.
            let dryRedirect = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(redirecting.url)", "options": {"dry_run": true}}"#,
                                                            "--max-attempts", "3"])
            let twice = world.dir + "/twice.csv"
            try "game_id,game_id\n1,2\n".write(toFile: twice, atomically: true, encoding: .utf8)
            let duplicateHeader = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(twice)"}"#, "--max-attempts", "3"])
            let verify = try world.submit("backup.verify", ["--payload", "{}"])
            // Whoever can write to Redis must not make the worker read other files: outside etl.source_roots (also via a
            // symlink or `..` inside a root) is refused before anything is opened.
            let outside = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "/etc/passwd"}"#])
            try FileManager.default.createSymbolicLink(atPath: world.dir + "/link.csv", withDestinationPath: "/etc/passwd")
            let viaLink = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(world.dir)/link.csv"}"#])
            let viaDots = try world.submit("etl.load", ["--payload", #"{"target": "games", "source": "\#(world.dir)/../../etc/passwd"}"#])

            let worker = try world.burst(env: ["NFLDB_ETL_HTTP_MAX_ATTEMPTS": "1", "NFLDB_ETL_HTTP_DEADLINE": "5s"])
            #expect(worker.status == 0, "\(worker.log)")
            #expect(worker.summary["dead"] as? Int == 14 && worker.summary["succeeded"] as? Int == 0 && worker.summary["retried"] as? Int == 1,
                    "\(worker.summary) \(worker.log)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.games", as: Int.self) == 0, "a failed load changes nothing")

            func dead(_ id: String, attempts: String = "1", contains expected: String) throws {
                let task = try world.inspect(id)
                #expect(task["state"] as? String == "dead" && task["attempts"] as? String == attempts, "\(task)")
                #expect((task["error"] as? String)?.contains(expected) == true, "\(task["error"] ?? "no error")")
            }
            try dead(missing, contains: "\(world.dir)/nope.csv: no such file")
            try dead(plays, contains: "etl.load: unknown target \"plays\" (known: games)")
            try dead(typo, contains: "etl.load: unknown payload key sorce")
            try dead(untargeted, contains: "etl.load needs {\"target\": \"games\", \"source\": \"PATH|URL\"}; the payload has only \"source\"")
            let shown = try world.run("queue", "inspect", untargeted, "--format", "json").standardOutput
            #expect(!shown.contains("QSIG1") || shown.components(separatedBy: "QSIG1").count == 2, "the secret is in the payload only, not repeated in error or history: \(shown)")
            #expect(!((try world.inspect(untargeted))["error"] as? String ?? "").contains("QPASS1"))
            try dead(strict, contains: "--on-invalid is fail")
            try dead(http, attempts: "2", contains: "http://127.0.0.1:\(closed)/games.csv")
            try dead(verify, contains: "backup.config is not set")
            try dead(redirect, contains: "the server redirected (HTTP 302)")
            #expect(redirecting.requests.count == 2, "each redirect asked once (the load, the dry run), not again")
            try dead(overLimit, contains: "longer than 1 MiB")
            try dead(dryRedirect, contains: "the server redirected (HTTP 302)")
            try dead(duplicateHeader, contains: "header names game_id more than once")
            #expect(worker.log.contains("task failed, dead-lettered"), "a dead-lettered task is logged at warning: \(worker.log)")
            #expect(((try world.inspect(overLimit))["error"] as? String)?.contains("loading it again fails the same way") == true)
            for id in [outside, viaLink, viaDots] { try dead(id, contains: "is outside etl.source_roots") }
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE error LIKE '%root:%' OR source LIKE '%passwd%'", as: Int.self) == 0,
                    "nothing of the refused files reached the database")
            let history = try #require(try JSONSerialization.jsonObject(with: Data(((try world.inspect(http))["history"] as? String ?? "[]").utf8)) as? [[String: Any]])
            #expect(history.count == 2, "\(history)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE correlation_id = 'trace-bad-1' AND status = 'failed'", as: Int.self) == 1)
            // The run row names the queue task that ran it (nfl.etl_runs.task_id).
            #expect(try world.scalar("SELECT string_agg(task_id, ',') FROM nfl.etl_runs WHERE correlation_id = 'trace-bad-1'", as: String.self) == strict)

            // The dead-letter queue lists them all with their errors; requeue one, purge the rest.
            let list = try world.run("queue", "dlq", "list")
            #expect(list.status == 0 && list.standardOutput.contains(missing) && list.standardOutput.contains("etl.load"), "\(list.allOutput)")
            let listJSON = try #require(try JSONSerialization.jsonObject(with: Data(try world.run("queue", "dlq", "list", "--format", "json").standardOutput.utf8)) as? [[String: Any]])
            #expect(listJSON.count == 14)
        }
    }

    @Test("db.vacuum_analyze: a table (quoted identifier) is vacuumed; unknown tables, views and hostile names are dead-lettered at once")
    func vacuumAnalyze() throws {
        try QueueCLIWorld.with { world in
            let connection = try world.db.connect()
            defer { connection.close() }
            _ = try connection.runScript(unsafeSQL: #"CREATE TABLE nfl."Odd Name.x" (id int); INSERT INTO nfl."Odd Name.x" VALUES (1); CREATE VIEW nfl.games_v AS SELECT 1 AS x"#)
            let games = try world.submit("db.vacuum_analyze", ["--payload", #"{"table": "nfl.games"}"#])
            let odd = try world.submit("db.vacuum_analyze", ["--payload", #"{"schema": "nfl", "table": "Odd Name.x"}"#])
            let unknown = try world.submit("db.vacuum_analyze", ["--payload", #"{"table": "nfl.nope"}"#, "--max-attempts", "5"])
            let view = try world.submit("db.vacuum_analyze", ["--payload", #"{"table": "nfl.games_v"}"#])
            let hostile = try world.submit("db.vacuum_analyze", ["--payload", #"{"table": "nfl.teams; DROP TABLE nfl.teams"}"#])
            let empty = try world.submit("db.vacuum_analyze", ["--payload", "{}"])
            let worker = try world.burst()
            #expect(worker.status == 0, "\(worker.log)")
            #expect(worker.summary["succeeded"] as? Int == 2 && worker.summary["dead"] as? Int == 4 && worker.summary["retried"] as? Int == 0,
                    "\(worker.summary) \(worker.log)")
            #expect(try world.inspect(games)["state"] as? String == "succeeded")
            #expect(try world.scalar("SELECT result->>'table' FROM nfl.task_results WHERE task_id = \(odd)", as: String.self) == "Odd Name.x")
            try waitUntil("pg_stat_user_tables shows the vacuum and analyze of both tables", timeout: .seconds(20)) {
                try world.scalar("""
                    SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'nfl' AND relname IN ('games', 'Odd Name.x')
                      AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL
                    """, as: Int.self) == 2
            }
            let cases: [(String, String)] = [
                (unknown, #"db.vacuum_analyze: no table "nfl"."nope" in database "#),
                (view, #"db.vacuum_analyze: "nfl"."games_v" is a view"#),
                (hostile, #"no table "nfl"."teams; DROP TABLE nfl.teams""#),
                (empty, #"db.vacuum_analyze needs {"table": "schema.name"}"#),
            ]
            for (id, expected) in cases {
                let task = try world.inspect(id)
                #expect(task["state"] as? String == "dead" && task["attempts"] as? String == "1", "\(task)")
                #expect((task["error"] as? String)?.contains(expected) == true, "\(task["error"] ?? "")")
            }
            #expect(try world.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'nfl' AND tablename = 'teams'", as: Int.self) == 1)

            // A worker logged in as a role that does not own the table (a real SCRAM login): PostgreSQL would only warn
            // and skip the table; the handler refuses it clearly instead, and nothing is vacuumed.
            let prefix = TestRoles.uniquePrefix("q")
            defer { TestRoles.drop(prefix: prefix) }
            let role = prefix + "worker"
            let password = "pw-\(UUID().uuidString.prefix(12))"
            try connection.execute("CREATE ROLE \(identifier: role) LOGIN PASSWORD \(unsafeRaw: PostgresIdentifier.literal(password))")
            let before = try world.scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = 'nfl' AND relname = 'teams'", as: Int.self)
            let foreign = try world.submit("db.vacuum_analyze", ["--payload", #"{"table": "nfl.teams"}"#])
            let asOther = try world.burst(env: ["NFLDB_DSN": world.db.cluster.dsn(database: world.db.name, user: role, password: password)])
            #expect(asOther.status == 0 && asOther.summary["dead"] as? Int == 1, "\(asOther.summary) \(asOther.log)")
            let refused = try world.inspect(foreign)
            #expect((refused["error"] as? String)?.contains("db.vacuum_analyze: role \(role) may not vacuum \"nfl\".\"teams\"") == true, "\(refused)")
            #expect(try world.scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = 'nfl' AND relname = 'teams'", as: Int.self) == before)
        }
    }

    @Test("queue submit/stats/inspect/cancel/dlq/recover through the binary, text and JSON; usage errors exit 2; Redis away exits 1 without the password")
    func queueCommands() throws {
        try QueueCLIWorld.with(migrate: true) { world in
            // submit: text prints the id alone; JSON an object with id; an idempotency key returns the same id.
            let text = try world.run("queue", "submit", "noop", "--idempotency-key", "nightly-1")
            #expect(text.status == 0 && text.stdoutLines.count == 1, "\(text.allOutput)")
            let first = text.stdoutLines[0]
            #expect(first.count == 36, "a UUID: \(first)")
            let again = try world.run("queue", "submit", "noop", "--idempotency-key", "nightly-1", "--format", "json", "--correlation-id", "later-id")
            #expect(try jsonObject(again.standardOutput)["id"] as? String == first)
            #expect(try jsonObject(again.standardOutput)["created"] as? Bool == false)
            #expect(try jsonObject(again.standardOutput)["correlation_id"] as? String != "later-id", "the existing task keeps its own id")

            // stats (text and JSON) and inspect.
            let stats = try world.run("queue", "stats")
            #expect(stats.status == 0 && stats.standardOutput.contains("queue") && stats.standardOutput.contains("oldest_ready"), "\(stats.allOutput)")
            #expect(stats.stdoutLines.contains { $0.hasPrefix("cpu") && $0.split(separator: " ").dropFirst().first == "1" }, "\(stats.standardOutput)")
            #expect(try world.stats()["ready"] as? Int == 1)
            let inspect = try world.run("queue", "inspect", first)
            #expect(inspect.status == 0 && inspect.standardOutput.contains("state: ready") && inspect.standardOutput.contains("type: noop"), "\(inspect.standardOutput)")
            let unknown = try world.run("queue", "inspect", "no-such-task")
            #expect(unknown.status == 1 && unknown.standardError.contains("no task no-such-task in Redis"), "\(unknown.allOutput)")

            // cancel: a pending task never runs; cancelling twice says so.
            let cancelled = try world.run("queue", "cancel", first)
            #expect(cancelled.status == 0 && cancelled.standardOutput.contains("cancelled \(first) (was ready)"), "\(cancelled.allOutput)")
            let twice = try world.run("queue", "cancel", first, "--format", "json")
            #expect(try jsonObject(twice.standardOutput)["previous_state"] as? String == "cancelled", "\(twice.allOutput)")

            // dlq: a poison task ends there after max_attempts with its history; requeue, then purge.
            let poison = try world.submit("fail", ["--payload", #"{"message": "poison pill"}"#, "--max-attempts", "3"])
            let burst = try world.burst()
            #expect(burst.status == 0 && burst.summary["dead"] as? Int == 1 && burst.summary["retried"] as? Int == 2, "\(burst.summary) \(burst.log)")
            let dead = try world.run("queue", "dlq", "list")
            #expect(dead.status == 0 && dead.standardOutput.contains(poison) && dead.standardOutput.contains("poison pill"), "\(dead.allOutput)")
            let history = try #require(try JSONSerialization.jsonObject(with: Data(((try world.inspect(poison))["history"] as? String ?? "").utf8)) as? [[String: Any]])
            #expect(history.count == 3, "\(history)")
            let requeue = try world.run("queue", "dlq", "requeue", poison)
            #expect(requeue.status == 0 && requeue.standardOutput.contains("requeued \(poison)"), "\(requeue.allOutput)")
            #expect(try world.stats()["ready"] as? Int == 1 && world.stats()["dead"] as? Int == 0)
            #expect(try world.run("queue", "dlq", "requeue", poison).status == 1, "not dead any more")
            _ = try world.burst()
            let refused = try world.run("queue", "dlq", "purge")
            #expect(refused.status == 2 && refused.standardError.contains("--yes-delete-dead-tasks"), "\(refused.allOutput)")
            let purge = try world.run("queue", "dlq", "purge", "--yes-delete-dead-tasks", "--format", "json")
            #expect(purge.status == 0, "\(purge.allOutput)")
            #expect(try jsonObject(purge.standardOutput)["purged"] as? Int == 1, "\(purge.allOutput)")
            let emptyList = try world.run("queue", "dlq", "list")
            #expect(emptyList.standardOutput.contains("the dead-letter queue is empty"))

            // recover: a worker SIGKILLed mid-task leaves an expired lease; recover moves it back to ready.
            let slow = try world.submit("sleep", ["--payload", #"{"ms": 30000}"#])
            let worker = try world.spawn(["worker", "--queues", "cpu"], env: ["NFLDB_QUEUE_LEASE": "500ms"])
            defer { worker.removeOutput() }
            try waitUntil("the sleep task in flight: \(worker.outputTail())", timeout: .seconds(30)) { try world.stats()["in_flight"] as? Int == 1 }
            _ = worker.kill9()
            try waitUntil("the lease expired", timeout: .seconds(10)) { try world.stats()["expired_leases"] as? Int == 1 }
            let recover = try world.run("queue", "recover")
            #expect(recover.status == 0 && recover.standardOutput.contains("recovered 1 expired lease"), "\(recover.allOutput)")
            let back = try world.inspect(slow)
            #expect(back["state"] as? String == "ready", "\(back)")
            #expect(try world.run("queue", "recover", "--format", "json").standardOutput.contains("\"recovered\" : 0"))
            _ = try world.run("queue", "cancel", slow)

            // worker --burst on empty queues: exit 0, nothing done.
            let idle = try world.burst()
            #expect(idle.status == 0 && idle.summary["succeeded"] as? Int == 0, "\(idle.summary) \(idle.log)")

            // Usage errors exit 2.
            for arguments in [["queue", "submit"], ["queue", "submit", "noop", "--payload", "[1]"], ["queue", "submit", "noop", "--priority", "5000"],
                              ["queue", "submit", "bad type!"], ["queue", "submit", "noop", "--correlation-id", "has space"], ["queue", "frobnicate"],
                              ["worker", "--concurrency", "0"], ["queue", "submit", "noop", "--max-attempts", "0"],
                              ["queue", "submit", "noop", "--payload", #"{"a": "\u0000"}"#],
                              ["queue", "submit", "noop", "--idempotency-key", "a" + String(repeating: "\u{301}", count: 3000)]] {
                let result = try CLIRunner.run(arguments, environment: world.environment())
                #expect(result.status == 2, "\(arguments): \(result.status) \(result.allOutput)")
            }
            // A negative count is read as the option's value and refused as such (before: "Missing value").
            let negative = try CLIRunner.run(["queue", "submit", "noop", "--max-attempts", "-1"], environment: world.environment())
            #expect(negative.status == 2 && negative.standardError.contains("--max-attempts must be at least 1"), "\(negative.allOutput)")

            // Redis unreachable: exit 1, names the address (a password in the URL is refused: see redisURLPasswordRefused).
            let closed = try LoopbackPort.free()
            for arguments in [["queue", "stats"], ["queue", "submit", "noop"], ["worker", "--burst", "--queues", "cpu"]] {
                let away = try CLIRunner.run(arguments, environment: world.environment(["NFLDB_REDIS_URL": "redis://127.0.0.1:\(closed)/0"]))
                #expect(away.status == 1, "\(arguments): \(away.status) \(away.allOutput)")
                #expect(away.standardError.contains("127.0.0.1:\(closed)"), "\(away.allOutput)")
            }
        }
    }

    @Test("a password inside redis.url (nfldb.yaml or NFLDB_REDIS_URL) is refused with exit 2, never echoed; the hint names redis.password")
    func redisURLPasswordRefused() throws {
        try withScratchDirectory("nfldb-qcli-redispw") { dir in
            let file = dir + "/nfldb.yaml"
            try "redis:\n  url: redis://:s3cret-redis-pw@127.0.0.1:6379/0\n".write(toFile: file, atomically: true, encoding: .utf8)
            for arguments in [["config", "show"], ["security", "check"], ["queue", "stats"], ["worker", "--burst", "--queues", "cpu"]] {
                let result = try CLIRunner.run(["--config", file] + arguments, environment: [:])
                // security check exits as `nfldb health` does: 3 UNKNOWN for a configuration error.
                #expect(result.status == (arguments[0] == "security" ? 3 : 2), "\(arguments): \(result.status) \(result.allOutput)")
                #expect(result.standardError.contains("redis.url contains a password") && result.standardError.contains("nfldb.yaml:2"), "\(result.allOutput)")
                #expect(result.standardError.contains("redis.password"), "\(result.allOutput)")
                #expect(!result.allOutput.contains("s3cret-redis-pw"), "\(result.allOutput)")
            }
            for url in ["redis://:s3cret-redis-pw@127.0.0.1:6379/0", "redis://nfldb:s3cret-redis-pw@127.0.0.1:6379/0"] {
                for arguments in [["config", "show"], ["queue", "submit", "noop"]] {
                    let result = try CLIRunner.run(arguments, environment: ["NFLDB_REDIS_URL": url])
                    #expect(result.status == 2, "\(url) \(arguments): \(result.status) \(result.allOutput)")
                    #expect(result.standardError.contains("redis.url contains a password") && result.standardError.contains("NFLDB_REDIS_URL"), "\(result.allOutput)")
                    #expect(!result.allOutput.contains("s3cret-redis-pw"), "\(result.allOutput)")
                }
            }
            // A password in the query string is a literal password too.
            for url in ["redis://127.0.0.1:6379/0?password=s3cret-redis-pw", "unix:///tmp/r.sock?Password=s3cret-redis-pw"] {
                let result = try CLIRunner.run(["queue", "stats"], environment: ["NFLDB_REDIS_URL": url])
                #expect(result.status == 2 && result.standardError.contains("redis.url contains a password"), "\(url): \(result.allOutput)")
                #expect(!result.allOutput.contains("s3cret-redis-pw"), "\(result.allOutput)")
            }
            // URLs that do not parse (a typo in the scheme, no host, a password pasted in place of the URL) are not echoed.
            for url in ["redis:/:s3cret-redis-pw@127.0.0.1:6379/0", "redis//:s3cret-redis-pw@127.0.0.1", "redis://user:s3cret-redis-pw", "s3cret-redis-pw"] {
                let result = try CLIRunner.run(["queue", "stats"], environment: ["NFLDB_REDIS_URL": url])
                #expect(result.status == 2 && result.standardError.contains("invalid Redis URL"), "\(url): \(result.allOutput)")
                #expect(!result.allOutput.contains("s3cret-redis-pw"), "\(url): \(result.allOutput)")
            }
            // An empty --queues (an unset variable) is a usage error, not a worker serving nothing.
            for queues in ["", ",", " , "] {
                let result = try CLIRunner.run(["worker", "--burst", "--queues", queues], environment: ["NFLDB_REDIS_URL": "redis://127.0.0.1:1/0"])
                #expect(result.status == 2 && result.standardError.contains("--queues names no queue"), "'\(queues)': \(result.allOutput)")
            }
            // An empty task id and --count 0 are usage errors naming the argument (before connecting).
            for arguments in [["queue", "inspect", ""], ["queue", "cancel", " "], ["queue", "submit", "noop", "--count", "0"]] {
                let result = try CLIRunner.run(arguments, environment: ["NFLDB_REDIS_URL": "redis://127.0.0.1:1/0"])
                #expect(result.status == 2 && (result.standardError.contains("the task id is empty") || result.standardError.contains("--count must be at least 1")),
                        "\(arguments): \(result.allOutput)")
            }
            // Without a password: accepted, and config show prints the URL.
            let fine = try CLIRunner.run(["config", "show"], environment: ["NFLDB_REDIS_URL": "redis://nfldb@127.0.0.1:6379/0"])
            #expect(fine.status == 0 && fine.standardOutput.contains("redis://nfldb@127.0.0.1:6379/0"), "\(fine.allOutput)")
        }
    }

    @Test("the Redis password nfldb resolved is masked in text output too (queue inspect, dlq list), as in --format json")
    func textOutputMasksResolvedSecrets() throws {
        let password = "S3cretRedisPW-\(UUID().uuidString.prefix(6))"
        let redis = try RedisTestServer.start(password: password)
        defer { redis.stop() }
        let env = ["NFLDB_REDIS_URL": "redis://127.0.0.1:\(redis.port)/0", "NFLDB_REDIS_PASSWORD": "env:QPW", "QPW": password, "NFLDB_LOG_LEVEL": "warning"]
        let submitted = try CLIRunner.run(["queue", "submit", "fail", "--payload", "{\"message\": \"boom \(password)\"}", "--max-attempts", "1"], environment: env)
        try #require(submitted.status == 0, "\(submitted.allOutput)")
        let id = submitted.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        let worker = try CLIRunner.run(["worker", "--burst", "--queues", "cpu"], environment: env, timeout: .seconds(120))
        #expect(worker.status == 0, "\(worker.allOutput)")
        for arguments in [["queue", "inspect", id], ["queue", "dlq", "list"], ["queue", "inspect", id, "--format", "json"]] {
            let result = try CLIRunner.run(arguments, environment: env)
            #expect(result.status == 0 && result.standardOutput.contains("boom ********"), "\(arguments): \(result.allOutput)")
            #expect(!result.allOutput.contains(password), "\(arguments): \(result.allOutput)")
        }
    }

    @Test("backup.verify through the queue: the sandbox's backup is restored and proven; the receipt is the task's durable result")
    func backupVerifyThroughQueue() throws {
        let redis = try RedisTestServer.start()
        defer { redis.stop() }
        try withScratchDirectory("nfldb-qcli-backup") { dir in
            let state = dir + "/state"
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }
            let up = try nfldb("sandbox", "up", "--dir", state)
            try #require(up.status == 0, "\(up.allOutput)")
            var env = try SandboxCLITests.parseExports(try nfldb("sandbox", "env", "--dir", state).standardOutput)
            env["NFLDB_REDIS_URL"] = "redis://127.0.0.1:\(redis.port)/0"
            env["NFLDB_LOG_LEVEL"] = "warning"
            try #require(try nfldb("migrate", "up", "-q", "--dir", SharedSlice.repository + "/migrations", env: env).status == 0)
            try #require(try nfldb("backup", "init", env: env).status == 0)
            let full = try nfldb("backup", "run", "--type", "full", env: env)
            try #require(full.status == 0, "\(full.allOutput)")
            let submitted = try nfldb("queue", "submit", "backup.verify", "--payload", #"{"reuse_scratch": false, "full": true}"#, "--format", "json", env: env)
            let id = try #require(try jsonObject(submitted.standardOutput)["id"] as? String, "\(submitted.allOutput)")
            let worker = try CLIRunner.run(["worker", "--burst", "--queues", "cpu", "--format", "json"], environment: env, timeout: .seconds(600))
            #expect(worker.status == 0, "\(worker.allOutput)")
            #expect(try jsonObject(worker.standardOutput)["succeeded"] as? Int == 1, "\(worker.allOutput)")
            let result = try nfldb("queue", "inspect", id, "--format", "json", env: env)
            #expect(try jsonObject(result.standardOutput)["state"] as? String == "succeeded", "\(result.allOutput)")
            // The receipt is the durable result, and verify recorded it as usual (health's backups check reads it).
            var options = ConnectionOptions(dsn: env["NFLDB_DSN"])
            let passfile = try String(contentsOfFile: try #require(env["PGPASSFILE"]), encoding: .utf8)
            options.password = passfile.split(separator: "\n").first.map { String($0.split(separator: ":").last ?? "") }
            let connection = try PostgresConnection.connect(options, logger: TestCluster.logger)
            defer { connection.close() }
            #expect(try connection.query("SELECT result->>'status' FROM nfl.task_results WHERE task_id = \(id)").scalar(String.self) == "ok")
            // "full": true is `backup verify --full`: the pg_checksums pass and the whole-repo verify.
            #expect(try connection.query("SELECT result->>'pageChecksums' FROM nfl.task_results WHERE task_id = \(id)").scalar(String.self) == "pg_checksums")
            let health = try CLIRunner.run(["health", "--check", "backups"], environment: env)
            #expect(health.status == 0, "\(health.allOutput)")
            let bad = try nfldb("queue", "submit", "backup.verify", "--payload", #"{"set": "19990101-000000F"}"#, "--format", "json", env: env)
            let badID = try #require(try jsonObject(bad.standardOutput)["id"] as? String)
            let second = try CLIRunner.run(["worker", "--burst", "--queues", "cpu", "--format", "json"], environment: env, timeout: .seconds(600))
            #expect(second.status == 0 && (try? jsonObject(second.standardOutput))?["dead"] as? Int == 1, "\(second.allOutput)")
            let dead = try jsonObject(try nfldb("queue", "inspect", badID, "--format", "json", env: env).standardOutput)
            #expect(dead["state"] as? String == "dead" && dead["attempts"] as? String == "1", "\(dead)")
            // An unknown label is an operator mistake that verify refuses before anything is restored or recorded:
            // the dead task carries that refusal, naming the label and the labels that do exist.
            let deadError = dead["error"] as? String ?? ""
            #expect(deadError.contains("backup.verify: no backup labelled 19990101-000000F in stanza nfldb"), "\(deadError)")
            #expect(deadError.contains("nfldb backup info"), "\(deadError)")

            // SIGTERM while a verification's restored copy is running: after the grace period the task is released and
            // the worker stops the copy and removes its scratch directory before it exits 0 — no server is left behind.
            let scratch = dir + "/scratch"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            var drill = env
            drill["NFLDB_BACKUP_SCRATCH_DIR"] = scratch
            drill["NFLDB_QUEUE_SHUTDOWN_GRACE"] = "200ms"
            let slow = try #require(try jsonObject(try nfldb("queue", "submit", "backup.verify", "--format", "json", env: drill).standardOutput)["id"] as? String)
            let drained = try CLIRunner.spawn(["worker", "--queues", "cpu", "--format", "json"], environment: drill)
            defer { drained.removeOutput() }
            func copies() -> [String] {
                ((try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? []).filter { $0.hasPrefix("nfldb-verify-") }
            }
            try waitUntil("the restored copy is running: \(drained.outputTail())", timeout: .seconds(120), interval: .milliseconds(20)) {
                copies().contains { FileManager.default.fileExists(atPath: scratch + "/" + $0 + "/data/postmaster.pid") }
            }
            drained.send(SIGTERM)
            #expect(drained.wait(timeout: .seconds(60)) == 0, "\(drained.outputTail())")
            #expect(try jsonObject(drained.standardOutput)["released"] as? Int == 1, "\(drained.outputTail())")
            #expect(copies().isEmpty, "scratch copies left: \(copies())")
            let survivors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
                guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(scratch)
            }
            #expect(survivors.isEmpty, "processes still running from \(scratch): \(survivors)")
            let released = try jsonObject(try nfldb("queue", "inspect", slow, "--format", "json", env: env).standardOutput)
            #expect(released["state"] as? String == "ready" && released["attempts"] as? String == "0", "\(released)")
        }
    }

    @Test("SIGTERM to a worker: claiming stops, a short task finishes, a long one is released after the grace period; exit 0, no process left")
    func sigtermDrains() throws {
        try QueueCLIWorld.with { world in
            let short = try world.submit("sleep", ["--payload", #"{"ms": 800}"#, "--priority=10"])
            let long = try world.submit("sleep", ["--payload", #"{"ms": 60000}"#, "--priority=10"])
            let waiting = try world.submit("noop", ["--priority=-10"])
            let worker = try world.spawn(["worker", "--queues", "cpu", "--concurrency", "2", "--format", "json"], env: ["NFLDB_QUEUE_SHUTDOWN_GRACE": "3s"])
            defer { worker.removeOutput() }
            try waitUntil("both sleep tasks in flight: \(worker.outputTail())", timeout: .seconds(30)) { try world.stats()["in_flight"] as? Int == 2 }
            worker.send(SIGTERM)
            let status = worker.wait(timeout: .seconds(30))
            #expect(status == 0, "\(worker.outputTail())")
            #expect(kill(worker.pid, 0) == -1, "the worker process is gone")
            let summary = try jsonObject(worker.standardOutput)
            #expect(summary["succeeded"] as? Int == 1 && summary["released"] as? Int == 1, "\(summary)")
            #expect(try world.inspect(short)["state"] as? String == "succeeded")
            let released = try world.inspect(long)
            #expect(released["state"] as? String == "ready" && released["attempts"] as? String == "0", "\(released)")
            #expect(try world.inspect(waiting)["state"] as? String == "ready", "nothing is claimed after SIGTERM")
            let stats = try world.stats()
            #expect(stats["in_flight"] as? Int == 0 && stats["ready"] as? Int == 2, "\(stats)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.task_results WHERE task_id = \(short)", as: Int.self) == 1)
        }
    }

    @Test("SIGTERM to a worker while Redis is down: the task it could not give back is counted as unreleased in its summary, not hidden")
    func sigtermWithRedisDownCountsUnreleased() throws {
        try QueueCLIWorld.with { world in
            _ = try world.submit("sleep", ["--payload", #"{"ms": 60000}"#])
            let worker = try world.spawn(["worker", "--queues", "cpu", "--format", "json"], env: ["NFLDB_QUEUE_SHUTDOWN_GRACE": "1s"])
            defer { worker.kill9(); worker.removeOutput() }
            try waitUntil("the sleep task in flight: \(worker.outputTail())", timeout: .seconds(30)) { try world.stats()["in_flight"] as? Int == 1 }
            world.redis.kill()
            worker.send(SIGTERM)
            let status = worker.wait(timeout: .seconds(90))
            #expect(status == 1, "the worker ends with exit 1 (a task it could not give back): \(String(describing: status)) \(worker.outputTail())")
            let summary = (try? jsonObject(worker.standardOutput)) ?? [:]
            #expect(summary["unreleased"] as? Int == 1 && summary["released"] as? Int == 0, "\(summary) \(worker.outputTail())")
        }
    }
}
