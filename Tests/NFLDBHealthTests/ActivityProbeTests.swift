import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

@Suite("Activity probes against a real server")
struct ActivityProbeTests {
    @Test("an idle-in-transaction session over the threshold makes connections WARNING with its pid, user, app and age")
    func idleInTransaction() throws {
        try TestCluster.withDatabase(prefix: "h_idle") { db in
            let holder = try PostgresConnection.connect(ConnectionOptions(dsn: db.dsn, applicationName: "idle-holder"), logger: TestCluster.logger)
            defer { holder.close() }
            try holder.runScript(unsafeSQL: "BEGIN; SELECT txid_current();")
            Thread.sleep(forTimeInterval: 1.2)
            let result = try runCheck("connections", dsn: db.dsn, [
                "connections.idle_in_transaction_warning": "1s", "connections.idle_in_transaction_critical": "1h",
            ])
            #expect(result.status == .warning)
            #expect(result.detailValues("pid").contains(String(holder.backendPID)))
            let mine = try #require(result.details.first { $0["pid"]?.description == String(holder.backendPID) })
            #expect(mine["application"] == .string("idle-holder"))
            #expect(mine["user"] == .string(db.cluster.superuser))
            if case .double(let idle)? = mine["idle_seconds"] { #expect(idle >= 1) } else { Issue.record("no idle_seconds") }
            #expect(result.message.contains("idle in transaction"))
            #expect(result.hint?.contains("pg_terminate_backend") == true)

            let critical = try runCheck("connections", dsn: db.dsn, [
                "connections.idle_in_transaction_warning": "100ms", "connections.idle_in_transaction_critical": "1s",
            ])
            #expect(critical.status == .critical)
            try holder.execute("ROLLBACK")
        }
    }

    @Test("connections counts client backends against max_connections minus the reserved slots")
    func connectionPercent() throws {
        try TestCluster.withDatabase(prefix: "h_conn") { db in
            let result = try runCheck("connections", dsn: db.dsn, ["connections.warning": "0"])
            let admin = try db.connect()
            defer { admin.close() }
            let row = try admin.query("""
                SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int AS usable
                """).singleRow()
            let usable: Int = try row.decode("usable")
            #expect(result.message.contains("of \(usable) usable connections"))
            #expect(result.status == .warning, "warning threshold 0 is always reached")
            #expect((result.value ?? -1) > 0)
        }
    }

    @Test("an open transaction is reported by long_transactions with its pid")
    func longTransaction() throws {
        try TestCluster.withDatabase(prefix: "h_ltx") { db in
            let holder = try PostgresConnection.connect(ConnectionOptions(dsn: db.dsn, applicationName: "long-tx"), logger: TestCluster.logger)
            defer { holder.close() }
            try holder.runScript(unsafeSQL: "BEGIN; SELECT 1;")
            Thread.sleep(forTimeInterval: 1.1)
            let result = try runCheck("long_transactions", dsn: db.dsn, ["long_transactions.warning": "1", "long_transactions.critical": "3600"])
            #expect(result.status != .ok)
            #expect(result.detailValues("pid").contains(String(holder.backendPID)))
            #expect((result.value ?? 0) >= 1)
            try holder.execute("ROLLBACK")
        }
    }

    @Test("a long statement is a long query; the probe's own session is not")
    func longQuery() throws {
        try TestCluster.withDatabase(prefix: "h_lq") { db in
            let sleeper = BackgroundSession(dsn: db.dsn, sql: "SELECT pg_sleep(20)", applicationName: "sleeper")
            let admin = try db.connect()
            defer { admin.close() }
            var pid = 0
            #expect(try eventually {
                pid = try admin.query("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = 'sleeper' AND state = 'active'").scalar(Int.self)
                return pid != 0
            })
            Thread.sleep(forTimeInterval: 1.0)
            let result = try runCheck("long_queries", dsn: db.dsn, ["long_queries.warning": "0.5", "long_queries.critical": "3600"])
            #expect(result.status != .ok)
            #expect(result.detailValues("pid").contains(String(pid)))
            #expect(result.detailValues("query").contains { $0.contains("pg_sleep") })
            #expect(result.hint?.contains("pg_cancel_backend") == true)
            try admin.query("SELECT pg_cancel_backend(\(pid))")
            #expect(sleeper.wait())
        }
    }

    @Test("a blocked session shows the blocking pid, its state and its query")
    func blockingLock() throws {
        try TestCluster.withDatabase(prefix: "h_lock") { db in
            let holder = try PostgresConnection.connect(ConnectionOptions(dsn: db.dsn, applicationName: "lock-holder"), logger: TestCluster.logger)
            defer { holder.close() }
            try holder.execute("CREATE TABLE locked_games(id int)")
            try holder.runScript(unsafeSQL: "BEGIN; LOCK TABLE locked_games IN ACCESS EXCLUSIVE MODE;")
            let waiter = BackgroundSession(dsn: db.dsn, sql: "SELECT count(*) FROM locked_games", applicationName: "lock-waiter")
            let admin = try db.connect()
            defer { admin.close() }
            #expect(try eventually {
                try admin.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lock-waiter' AND wait_event_type = 'Lock'").scalar(Int.self) == 1
            })
            Thread.sleep(forTimeInterval: 0.3)
            let result = try runCheck("blocking_locks", dsn: db.dsn, ["blocking_locks.warning": "0.2", "blocking_locks.critical": "3600"])
            #expect(result.status == .warning)
            let mine = try #require(result.details.first { $0["blocking_pid"]?.description == String(holder.backendPID) })
            #expect(mine["blocking_state"] == .string("idle in transaction"))
            #expect(mine["blocking_query"]?.description.contains("LOCK TABLE locked_games") == true)
            #expect(mine["blocked_query"]?.description.contains("count(*) FROM locked_games") == true)
            #expect(mine["blocking_application"] == .string("lock-holder"))
            #expect(result.hint?.contains("pg_terminate_backend") == true)

            // While the ACCESS EXCLUSIVE lock is held, no probe blocks behind it: the whole suite
            // finishes well inside the statement timeout and nothing times out on a lock.
            let start = ContinuousClock.now
            let all = runChecks(ProbeRegistry.names, dsn: db.dsn, ["bloat.min_size": "0", "vacuum.min_rows": "0"], lockTimeout: .milliseconds(500))
            #expect(ContinuousClock.now - start < .seconds(5))
            for check in all.checks {
                #expect(!check.message.contains("lock_timeout") && !check.message.contains("timed out"), "\(check.name): \(check.message)")
            }
            try holder.execute("ROLLBACK")
            #expect(waiter.wait())
        }
    }

    @Test("a probe that waits for a lock or runs too long is UNKNOWN with the reason; the others still run")
    func timeouts() throws {
        struct LockingProbe: Probe {
            let name = "needs_lock"
            let summary = "test probe reading a locked table"
            let unit = HealthUnit.count
            let defaultThresholds = Thresholds(warning: nil, critical: nil)
            func run(_ context: ProbeContext) throws -> ProbeOutcome {
                _ = try context.rows("SELECT count(*) FROM public.locked_table")
                return ProbeOutcome(status: .ok, message: "read")
            }
        }
        struct SleepingProbe: Probe {
            let name = "sleeps"
            let summary = "test probe that sleeps"
            let unit = HealthUnit.count
            let defaultThresholds = Thresholds(warning: nil, critical: nil)
            func run(_ context: ProbeContext) throws -> ProbeOutcome {
                _ = try context.rows("SELECT pg_sleep(5)")
                return ProbeOutcome(status: .ok, message: "slept")
            }
        }
        try TestCluster.withDatabase(prefix: "h_tmo") { db in
            let holder = try db.connect()
            defer { holder.close() }
            try holder.execute("CREATE TABLE locked_table(id int)")
            try holder.runScript(unsafeSQL: "BEGIN; LOCK TABLE locked_table IN ACCESS EXCLUSIVE MODE;")
            let report = runChecks(
                ["connections"], dsn: db.dsn, ["sleeps.statement_timeout": "300ms"], lockTimeout: .milliseconds(200),
                extra: [LockingProbe(), SleepingProbe()])
            let locked = try #require(report.check("needs_lock"))
            #expect(locked.status == .unknown)
            #expect(locked.message.contains("lock_timeout"))
            let slept = try #require(report.check("sleeps"))
            #expect(slept.status == .unknown)
            #expect(slept.message.contains("timed out after 300ms"))
            #expect(report.check("connections")?.status != .unknown)
            try holder.execute("ROLLBACK")
        }
    }

    @Test("a database that is down is CRITICAL for connections, the other checks UNKNOWN, exit 2")
    func databaseDown() throws {
        let port = try LocalCluster.freePort()
        let report = runChecks(ProbeRegistry.names, dsn: "host=127.0.0.1 port=\(port) user=nobody dbname=nfl connect_timeout=2")
        let connections = try #require(report.check("connections"))
        #expect(connections.status == .critical)
        #expect(connections.message.contains("cannot connect"))
        #expect(connections.message.contains("\(port)"))
        #expect(report.checks.filter { $0.name != "connections" }.allSatisfy { $0.status == .unknown })
        #expect(report.status == .critical)
        #expect(report.status.exitCode == 2)
        #expect(report.targets.first?.name == "127.0.0.1:\(port)/nfl")
    }
}
