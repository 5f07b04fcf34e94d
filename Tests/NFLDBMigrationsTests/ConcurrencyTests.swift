import Foundation
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

@Suite("runners, locks and timeouts")
struct ConcurrencyTests {
    @Test("8 concurrent `migrate up` processes on an empty database: all exit 0, each migration applied exactly once")
    func concurrentRunners() throws {
        try withFixture { fx in
            try fx.pair(1, "create_plays", up: "CREATE TABLE plays (id int, yards int);", down: "DROP TABLE plays;")
            // Not idempotent: a second run would double the rows.
            try fx.pair(2, "seed_plays", up: "INSERT INTO plays SELECT g, g % 30 FROM generate_series(1, 1000) g;", down: "DELETE FROM plays;")
            try fx.pair(3, "plays_yards_idx", up: "-- nfldb:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS plays_yards_idx ON plays (yards);\n",
                        down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS plays_yards_idx;\n")
            try fx.pair(4, "slow", up: "SELECT pg_sleep(0.3);\nCREATE TABLE drives (id int);", down: "DROP TABLE drives;")
            // Would fail on a second run (column exists).
            try fx.pair(5, "plays_down", up: "ALTER TABLE plays ADD COLUMN down smallint;", down: "ALTER TABLE plays DROP COLUMN down;")
            try fx.pair(6, "create_penalties", up: "CREATE TABLE penalties (id int);", down: "DROP TABLE penalties;")

            let children = try (0..<8).map { _ in try CLIRunner.spawn(fx.migrateArguments(["up", "--format", "json"])) }
            let results = children.map { $0.result(timeout: .seconds(60)) }

            var appliedSteps = 0
            for result in results {
                #expect(result.status == 0, "\(result)")
                if let object = try? result.json() as? [String: Any], let steps = object["steps"] as? [Any] { appliedSteps += steps.count }
            }
            #expect(appliedSteps == 6, "steps reported across runners: \(appliedSteps)")
            #expect(try fx.ledgerVersions() == [1, 2, 3, 4, 5, 6])
            #expect(try fx.scalar("SELECT count(*)::int FROM nfldb.schema_migrations WHERE state = 'applied'", as: Int.self) == 6)
            let applies = try fx.events().filter { $0.event == "apply" }.compactMap(\.version)
            #expect(applies.sorted() == [1, 2, 3, 4, 5, 6], "apply events: \(applies)")
            #expect(try fx.scalar("SELECT count(*)::int FROM plays", as: Int.self) == 1000)
            #expect(try fx.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'plays_yards_idx'::regclass", as: Bool.self))
            #expect(try fx.advisoryLocks() == 0)
        }
    }

    @Test("a runner waits for the migration lock, says so, and gives up after --lock-wait naming the holder")
    func lockWait() throws {
        try withFixture { fx in
            try fx.pair(1, "create_teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            // A runner on another database of the same cluster holds the same key: it must not be named.
            let other = try fx.db.cluster.createDatabase(prefix: "other")
            defer { other.drop() }
            let otherHolder = try other.connect()
            defer { otherHolder.close() }
            #expect(try otherHolder.tryAdvisoryLock(MigrationLedger.lockKey))
            let holder = try fx.connect()
            defer { holder.close() }
            #expect(try holder.tryAdvisoryLock(MigrationLedger.lockKey))

            let start = ContinuousClock.now
            let timedOut = try fx.migrate("up", "--lock-wait", "300ms")
            #expect(timedOut.status == 1, "\(timedOut)")
            #expect(timedOut.stderr.contains("held by pid \(holder.backendPID) "), "\(timedOut)")
            #expect(!timedOut.output.contains("pid \(otherHolder.backendPID) "), "\(timedOut)")
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(try !fx.tableExists("teams"))

            // A waiting runner proceeds once the lock is released.
            let child = try CLIRunner.spawn(fx.migrateArguments(["up"]))
            defer { child.kill9(); child.removeOutput() }
            // The runner has tried the lock and found it taken once its session has run
            // pg_try_advisory_lock (and then the holder lookup) and gone idle: it is in its wait loop.
            try waitUntil("the second runner is polling the migration lock (\(child.outputTail()))", timeout: .seconds(20)) {
                try fx.scalar("""
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE datname = current_database() AND backend_type = 'client backend' AND state = 'idle'
                      AND pid NOT IN (pg_backend_pid(), \(Int(holder.backendPID)))
                      AND (query LIKE 'SELECT pg_try_advisory_lock(%' OR query LIKE '%FROM pg_locks l JOIN pg_stat_activity a%')
                    """, as: Int.self) > 0
            }
            #expect(child.isRunning)
            #expect(try !fx.tableExists("teams"))
            #expect(try holder.advisoryUnlock(MigrationLedger.lockKey))
            let result = child.result(timeout: .seconds(20))
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("waiting for another migration runner (pid \(holder.backendPID)"), "\(result)")
            #expect(try fx.ledgerVersions() == [1])
        }
    }

    @Test("kill -9 of a runner mid-migration: rolled back, no ledger row, no advisory lock; the next up succeeds")
    func killedRunner() throws {
        try withFixture { fx in
            try fx.pair(1, "create_teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "slow_stats", up: "CREATE TABLE stats (id int);\nSELECT pg_sleep(30);\n", down: "DROP TABLE stats;")

            let child = try CLIRunner.spawn(fx.migrateArguments(["up"]))
            defer { child.kill9(); child.removeOutput() }
            let sleeping = try poll(timeout: .seconds(20)) { try !fx.backends(running: "pg_sleep(30)").isEmpty }
            try #require(sleeping, "the runner never reached pg_sleep(30)")
            #expect(try fx.advisoryLocks() == 1)

            child.send(SIGKILL)
            let killed = child.result(timeout: .seconds(5))
            #expect(killed.status == 128 + SIGKILL, "\(killed)")
            let start = ContinuousClock.now
            let released = try poll(timeout: .seconds(8)) {
                try fx.advisoryLocks() == 0 && fx.backends(running: "pg_sleep(30)").isEmpty
            }
            let waited = ContinuousClock.now - start
            #expect(released, "the killed runner's session still holds the lock or is still sleeping")
            #expect(waited < .seconds(5), "server noticed the dead client after \(waited)")
            #expect(try fx.ledgerVersions() == [1])
            #expect(try fx.tableExists("teams"))
            #expect(try !fx.tableExists("stats"))
            #expect(try fx.advisoryLocks() == 0)

            try fx.write("0002_slow_stats.up.sql", "CREATE TABLE stats (id int);\nSELECT pg_sleep(0.01);\n")
            let up = try fx.migrate("up")
            #expect(up.status == 0, "\(up)")
            #expect(try fx.ledgerVersions() == [1, 2])
            #expect(try fx.tableExists("stats"))
        }
    }

    @Test("kill -9 during a no-transaction migration leaves it marked running, which blocks up until resolved")
    func killedNonTransactionalRunner() throws {
        try withFixture { fx in
            try fx.pair(1, "create_teams", up: "CREATE TABLE teams (id int);", down: "DROP TABLE teams;")
            try fx.pair(2, "teams_idx", up: """
                -- nfldb:no-transaction
                CREATE INDEX CONCURRENTLY IF NOT EXISTS teams_id_idx ON teams (id);
                SELECT pg_sleep(30);
                """, down: "-- nfldb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS teams_id_idx;\n")

            let child = try CLIRunner.spawn(fx.migrateArguments(["up"]))
            defer { child.kill9(); child.removeOutput() }
            try #require(try poll(timeout: .seconds(20)) { try !fx.backends(running: "pg_sleep(30)").isEmpty }, "never reached pg_sleep(30)")
            let running = try #require(try fx.ledgerRow(2))
            #expect(try running.decode("state", as: String.self) == "running")
            #expect(try running.decode("statements_done", as: Int?.self) == 1)
            #expect(child.kill9() == 128 + SIGKILL)
            #expect(try poll(timeout: .seconds(8)) { try fx.advisoryLocks() == 0 && fx.backends(running: "pg_sleep(30)").isEmpty })

            let blocked = try fx.migrate("up")
            #expect(blocked.status == 1, "\(blocked)")
            #expect(blocked.stderr.contains("still marked running"), "\(blocked)")
            #expect(blocked.stderr.contains("resolve 2"), "\(blocked)")
            let status = try fx.migrate("status")
            #expect(status.stdout.contains("running") && status.stdout.contains("statements done 1/2"), "\(status)")
            #expect(try fx.migrate("status", "--exit-code").status == 4)

            // The index was built before the kill; the operator accepts that as applied.
            #expect(try fx.tableExists("teams_id_idx"))
            #expect(try fx.migrate("resolve", "2", "--applied", "--reason", "index built; sleep not needed").status == 0)
            #expect(try fx.migrate("status", "--exit-code").status == 0)
        }
    }

    @Test("lock_timeout: retries with backoff, then fails naming the blocking pid")
    func lockTimeoutGivesUp() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "x_add_y", up: "-- nfldb:lock-timeout 200ms\nALTER TABLE x ADD COLUMN y int;\n", down: "ALTER TABLE x DROP COLUMN y;")

            let blocker = try fx.connect()
            defer { blocker.close() }
            try blocker.runScript(unsafeSQL: "BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
            let start = ContinuousClock.now
            let up = try fx.migrate("up", env: ["NFLDB_MIGRATIONS_LOCK_RETRIES": "2", "NFLDB_MIGRATIONS_RETRY_BACKOFF": "100ms"])
            let elapsed = ContinuousClock.now - start
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("pid \(blocker.backendPID)"), "\(up)")
            #expect(up.stderr.contains("LOCK TABLE x IN ACCESS EXCLUSIVE MODE"), "\(up)")
            #expect(up.stderr.contains("55P03"), "\(up)")
            #expect(up.stderr.contains("0002_x_add_y.up.sql:2"), "\(up)")
            #expect(up.stderr.contains("gave up after 2 retries"), "\(up)")
            // The hint blames the lock, not the file, and names where the 200 ms came from (the file's directive).
            #expect(up.stderr.contains("the file itself is not the cause") && up.stderr.contains("pg_terminate_backend(pid)"), "\(up)")
            #expect(up.stderr.contains("The wait is bounded by the file's `-- nfldb:lock-timeout 200ms` directive"), "\(up)")
            #expect(!up.stderr.contains("HINT: Fix "), "\(up)")
            // nfldb's own advice is not labelled as the server's.
            #expect(up.stderr.contains("HINT: Another session held a lock this needs") && !up.stderr.contains("PostgreSQL: Another"), "\(up)")
            #expect(!up.stderr.contains("\u{E000}"), "\(up)")
            #expect(up.stdout.contains("retry 1") && up.stdout.contains("retry 2") && !up.stdout.contains("retry 3"), "\(up)")
            // 3 attempts of 200 ms plus 100 + 200 ms of backoff.
            #expect(elapsed >= .milliseconds(900), "\(elapsed)")
            #expect(try fx.ledgerVersions() == [1])
            try blocker.execute("ROLLBACK")
            #expect(try !fx.columnExists("x", "y"))
        }
    }

    @Test("lock_timeout inside a no-transaction file's own BEGIN … COMMIT: not retried, the blocking pid is named, the block is rolled back and what ran before it stays")
    func lockTimeoutInsideOwnBlock() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "x_block", up: """
                -- nfldb:no-transaction
                -- nfldb:lock-timeout 200ms
                CREATE TABLE IF NOT EXISTS before_block (id int);
                BEGIN;
                CREATE TABLE in_block (id int);
                ALTER TABLE x ADD COLUMN y int;
                COMMIT;
                """, down: "DROP TABLE IF EXISTS in_block;\nDROP TABLE IF EXISTS before_block;")
            let blocker = try fx.connect()
            defer { blocker.close() }
            try blocker.runScript(unsafeSQL: "SET application_name = 'the_blocker'; BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
            let up = try fx.migrate("up", env: ["NFLDB_MIGRATIONS_LOCK_RETRIES": "2", "NFLDB_MIGRATIONS_RETRY_BACKOFF": "100ms"])
            #expect(up.status == 1, "\(up)")
            #expect(up.stderr.contains("sessions holding locks: pid \(blocker.backendPID) ("), "\(up)")
            #expect(up.stderr.contains("the_blocker") && up.stderr.contains("LOCK TABLE x IN ACCESS EXCLUSIVE MODE"), "\(up)")
            #expect(up.stderr.contains("gave up after 0 retries"), "\(up)")
            #expect(up.stderr.contains("the file's own transaction block from line 4 was rolled back"), "\(up)")
            #expect(!up.stdout.contains("retry 1"), "a statement inside the file's own block is not retried alone: \(up)")
            try blocker.execute("ROLLBACK")
            #expect(try fx.tableExists("before_block"))
            #expect(try !fx.tableExists("in_block"))
            #expect(try !fx.columnExists("x", "y"))
        }
    }

    @Test("lock_timeout: succeeds when the blocker commits during the retries")
    func lockTimeoutRetrySucceeds() throws {
        try withFixture { fx in
            try fx.pair(1, "create_x", up: "CREATE TABLE x (id int);", down: "DROP TABLE x;")
            #expect(try fx.migrate("up").status == 0)
            try fx.pair(2, "x_add_y", up: "-- nfldb:lock-timeout 200ms\nALTER TABLE x ADD COLUMN y int;\n", down: "ALTER TABLE x DROP COLUMN y;")

            let locked = DispatchSemaphore(value: 0)
            let finished = DispatchSemaphore(value: 0)
            let dsn = fx.dsn
            let blockerError = Mutex<String?>(nil)
            let retries = Mutex<[Int]>([])
            let thread = Thread {
                defer { finished.signal() }
                do {
                    let blocker = try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
                    defer { blocker.close() }
                    try blocker.runScript(unsafeSQL: "BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
                    locked.signal()
                    // Hold the lock until the migration has hit lock_timeout at least once, then commit.
                    try waitUntil("the migration reports a lock_timeout retry", timeout: .seconds(20)) { !retries.withLock { $0 }.isEmpty }
                    try blocker.execute("COMMIT")
                } catch {
                    blockerError.withLock { $0 = String(describing: error) }
                    locked.signal()
                }
            }
            thread.start()
            locked.wait()

            var settings = MigratorSettings()
            settings.lockRetries = 3
            settings.retryBackoff = .milliseconds(100)
            let connection = try fx.connect()
            defer { connection.close() }
            let migrator = try fx.migrator(connection, settings: settings) { event in
                if case .retrying(_, let attempt, _, _) = event { retries.withLock { $0.append(attempt) } }
            }
            let result = try migrator.up()
            finished.wait()
            #expect(blockerError.withLock { $0 } == nil)
            #expect(result.steps.map(\.version) == [2])
            #expect(!retries.withLock { $0 }.isEmpty, "the migration never hit lock_timeout")
            #expect(try fx.columnExists("x", "y"))
            #expect(try fx.ledgerVersions() == [1, 2])
        }
    }
}
