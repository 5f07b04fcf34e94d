import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// A dedicated primary (archive_command = /bin/false, 20 connections with 3 reserved, no
/// pg_stat_statements preload) and a real streaming standby made with `pg_basebackup -R`, both
/// under /tmp/nfldb-test-*, on free ports, run as the postgres OS user, and always stopped and
/// removed when the test ends.
struct ReplicationPair {
    let primary: LocalCluster
    let standby: LocalCluster
    let binaries: PostgresBinaries
    static let logger = TestCluster.logger

    static func make() throws -> ReplicationPair {
        let binaries = try PostgresBinaries.locate(configured: ProcessInfo.processInfo.environment["NFLDB_POSTGRES_BIN_DIR"])
        let osUser = ProcessRunner.isRoot ? "postgres" : nil
        let base = "/tmp/nfldb-test-\(getpid())-repl-\(Int.random(in: 1000...9999))"
        let primary = LocalCluster(root: base + "/primary", port: try LocalCluster.freePort(), binaries: binaries, osUser: osUser)
        var standbyPort = try LocalCluster.freePort()
        while standbyPort == primary.port { standbyPort = try LocalCluster.freePort() }
        let standby = LocalCluster(root: base + "/standby", port: standbyPort, binaries: binaries, osUser: osUser)
        return ReplicationPair(primary: primary, standby: standby, binaries: binaries)
    }

    var base: String { (primary.root as NSString).deletingLastPathComponent }

    /// Superuser over the Unix socket (trust), no password needed.
    func dsn(_ cluster: LocalCluster, user: String = "postgres", database: String = "postgres") -> String {
        "host=\(cluster.socketDirectory) port=\(cluster.port) user=\(user) dbname=\(database)"
    }

    func connect(_ cluster: LocalCluster) throws -> PostgresConnection {
        try PostgresConnection.connect(ConnectionOptions(dsn: dsn(cluster)), logger: Self.logger)
    }

    func start() throws {
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try primary.giveToOSUser(base)
        try primary.initialize(password: LocalCluster.randomPassword(), settings: [
            ("fsync", "off"), ("wal_level", "replica"), ("max_wal_senders", "5"), ("max_replication_slots", "5"),
            ("archive_mode", "on"), ("archive_command", "'/bin/false'"), ("max_connections", "20"),
            ("superuser_reserved_connections", "3"), ("wal_receiver_status_interval", "1s"), ("log_min_messages", "warning"),
        ], logger: Self.logger)
        try primary.start(logger: Self.logger)
        // The standby: a base backup of the primary with its own slot and standby.signal (-R).
        let fm = FileManager.default
        try fm.createDirectory(atPath: standby.socketDirectory, withIntermediateDirectories: true)
        try standby.giveToOSUser(standby.root)
        try standby.giveToOSUser(standby.socketDirectory)
        let runner = ProcessRunner(runAsUser: standby.osUser)
        let backup = try runner.run(binaries.path("pg_basebackup"), [
            "-h", primary.socketDirectory, "-p", String(primary.port), "-U", "postgres", "-D", standby.dataDirectory,
            "-R", "-X", "stream", "-C", "-S", "standby1", "-c", "fast",
        ], timeout: .seconds(120))
        guard backup.succeeded else { throw OperatorError("pg_basebackup failed", detail: backup.stderrTail()) }
        let conf = (standby.dataDirectory as NSString).appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: conf))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\nport = \(standby.port)\nunix_socket_directories = '\(standby.socketDirectory)'\n".utf8))
        try handle.close()
        try standby.start(logger: Self.logger)
    }

    func stop() {
        try? standby.stop(mode: "immediate", logger: Self.logger)
        try? primary.stop(mode: "immediate", logger: Self.logger)
        try? FileManager.default.removeItem(atPath: base)
    }

    /// `.ready` files really present in the primary's archive_status directory.
    func readyFiles() -> Int {
        let dir = (primary.dataDirectory as NSString).appendingPathComponent("pg_wal/archive_status")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".ready") }.count
    }
}

@Suite("Replication, slots, archiving and reserved connections on a dedicated primary and a real standby")
struct ReplicationClusterTests {
    @Test("primary and streaming standby, seen from both sides: caught up, paused replay, inactive slot, failing archive, receiver down")
    func replicationFromBothSides() throws {
        let pair = try ReplicationPair.make()
        defer { pair.stop() }
        try pair.start()
        let primary = try pair.connect(pair.primary)
        defer { primary.close() }
        try primary.execute("CREATE ROLE monitor LOGIN IN ROLE pg_monitor")
        try primary.execute("CREATE TABLE filler (id int, v text)")
        #expect(try eventually {
            try primary.query("""
                SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn = pg_current_wal_lsn()
                """).scalar(Int.self) == 1
        }, "the standby streams and is caught up")

        // An inactive slot holding WAL; WAL segments that archive_command = /bin/false cannot archive.
        try primary.execute("SELECT pg_create_physical_replication_slot('stale_slot', true)")
        for _ in 0..<3 {
            try primary.runScript(unsafeSQL: "INSERT INTO filler SELECT g, 'x' FROM generate_series(1, 1000) g; SELECT pg_switch_wal();")
        }
        #expect(try eventually { try primary.query("SELECT failed_count FROM pg_stat_archiver").scalar(Int.self) > 0 })
        #expect(try eventually {
            try primary.query("SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()").scalar(Int.self) == 1
        })

        let monitorPrimary = pair.dsn(pair.primary, user: "monitor")
        let monitorStandby = pair.dsn(pair.standby, user: "monitor")
        let settings = HealthSettings(values: ["long_queries.warning": "0", "long_queries.critical": "3600"])
        let runner = HealthRunner(settings: settings, logger: TestCluster.logger)
        func both() -> HealthReport {
            runner.run([HealthTarget(options: ConnectionOptions(dsn: monitorPrimary)),
                        HealthTarget(options: ConnectionOptions(dsn: monitorStandby), expectedRole: .standby)])
        }

        // 1. Idle and caught up.
        var report = both()
        #expect(report.targets.map(\.role) == ["primary", "standby"])
        let primaryReplication = try #require(report.check("replication", target: 0))
        #expect(primaryReplication.status == .warning, "only the inactive slot: \(primaryReplication.message)")
        #expect(primaryReplication.message.contains("slot 'stale_slot' is inactive"))
        #expect(primaryReplication.details.contains { $0["kind"] == .string("standby") && $0["state"] == .string("streaming") && $0["replay_lag_bytes"] == .double(0) })
        #expect(primaryReplication.details.contains { $0["slot_name"] == .string("standby1") && $0["active"] == .bool(true) })
        let standbyReplication = try #require(report.check("replication", target: 1))
        #expect(standbyReplication.status == .ok, "an idle, caught-up standby is not lagging: \(standbyReplication.message)")
        #expect(standbyReplication.value == 0)
        #expect(standbyReplication.message.contains("replay caught up"))
        #expect(standbyReplication.details.contains { $0["kind"] == .string("primary_view") && $0["state"] == .string("streaming") })

        // The walsender is active forever, but it is not a client backend: never a "long query".
        let walsender = try primary.query("SELECT pid FROM pg_stat_replication").scalar(Int.self)
        let longQueries = try #require(report.check("long_queries", target: 0))
        #expect(!longQueries.detailValues("pid").contains(String(walsender)))

        // Archiving fails: CRITICAL, and the .ready count is the real number of files.
        let archiving = try #require(report.check("archiving", target: 0))
        #expect(archiving.status == .critical)
        #expect(archiving.message.contains("archive_command is failing"))
        let ready = pair.readyFiles()
        #expect(ready >= 3)
        #expect(archiving.value == Double(ready) || abs((archiving.value ?? 0) - Double(ready)) <= 1)
        #expect(report.check("archiving", target: 1)?.message.contains("does not archive") == true)

        // pg_stat_statements created without the preload: CREATE EXTENSION succeeds, the check is UNKNOWN with the fix.
        try primary.execute("CREATE EXTENSION pg_stat_statements")
        let pgss = try #require(runChecks(["slow_queries"], dsn: monitorPrimary).check("slow_queries"))
        #expect(pgss.status == .unknown)
        #expect(pgss.message.contains("shared_preload_libraries"))
        #expect(pgss.hint?.contains("restart") == true)

        // Vacuum, bloat, sequences… are primary-only: skipped (OK) on the standby, not errors.
        #expect(report.check("vacuum", target: 1)?.status == .ok)
        #expect(report.targets[1].checks.filter { $0.status == .unknown }.map(\.name).sorted() == ["slow_queries"],
                "only pg_stat_statements (not preloaded on this pair) cannot run on the standby: \(report.renderText())")

        // 2. Replay paused on the standby while the primary writes ~30 MB: real lag, seen from both sides.
        let standbyAdmin = try pair.connect(pair.standby)
        defer { standbyAdmin.close() }
        try standbyAdmin.execute("SELECT pg_wal_replay_pause()")
        try primary.execute("CREATE TABLE lagtest AS SELECT g, repeat('y', 100) AS v FROM generate_series(1, 200000) g")
        #expect(try eventually {
            try standbyAdmin.query("""
                SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > 16000000
                """).scalar(Bool.self)
        })
        let lagSettings = HealthSettings(values: ["replication.warning": "1048576", "replication.critical": "1073741824"])
        report = HealthRunner(settings: lagSettings, probes: [ReplicationProbe()], logger: TestCluster.logger).run([
            HealthTarget(options: ConnectionOptions(dsn: monitorPrimary)), HealthTarget(options: ConnectionOptions(dsn: monitorStandby)),
        ])
        let lagPrimary = try #require(report.check("replication", target: 0))
        #expect(lagPrimary.status == .warning)
        #expect((lagPrimary.value ?? 0) > 16_000_000, "primary sees the replay lag in bytes: \(lagPrimary.message)")
        #expect(lagPrimary.message.contains("replay lag"))
        let lagStandby = try #require(report.check("replication", target: 1))
        #expect(lagStandby.status == .warning)
        #expect((lagStandby.value ?? 0) > 16_000_000, "standby sees received-but-not-replayed bytes: \(lagStandby.message)")
        #expect(lagStandby.message.contains("WAL replay is paused"))
        #expect(lagStandby.message.contains("received but not replayed"))

        // The CLI with --standby-dsn: both targets in one JSON document, exit code = worst status.
        let cli = try CLIRunner.run([
            "health", "--dsn", monitorPrimary, "--standby-dsn", monitorStandby, "--check", "replication", "--format", "json",
        ], environment: ["NFLDB_HEALTH_CHECKS_REPLICATION_SLOT_WARNING": "1"])
        #expect(cli.status == 1, "\(cli.standardError)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cli.standardOutput.utf8)) as? [String: Any])
        let checks = try #require(json["checks"] as? [[String: Any]])
        #expect(checks.map { $0["role"] as? String } == ["primary", "standby"])
        #expect(checks.allSatisfy { $0["status"] as? String == "WARNING" })

        try standbyAdmin.execute("SELECT pg_wal_replay_resume()")
        #expect(try eventually {
            try primary.query("SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()").scalar(Int.self) == 1
        })

        // 3. Reserved slots: 20 max_connections - 3 reserved = 17 usable. 15 superuser sessions
        // plus the monitor make 16 of 17 (94%): CRITICAL, although 16 of 20 would only be 80%.
        var held: [PostgresConnection] = []
        defer { held.forEach { $0.close() } }
        while try primary.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").scalar(Int.self) < 15 {
            held.append(try pair.connect(pair.primary))
        }
        let connections = try #require(runChecks(["connections"], dsn: monitorPrimary).check("connections"))
        #expect(connections.value == 94.1)
        #expect(connections.status == .critical)
        #expect(connections.message.contains("16 of 17 usable"))
        // Two more superuser sessions fill every ordinary slot: the monitor cannot log in, which is CRITICAL, not a crash.
        held.append(try pair.connect(pair.primary))
        held.append(try pair.connect(pair.primary))
        let full = runChecks(ProbeRegistry.names, dsn: monitorPrimary)
        #expect(full.check("connections")?.status == .critical)
        #expect(full.check("connections")?.message.contains("reserved") == true, "\(full.check("connections")?.message ?? "")")
        held.forEach { $0.close() }
        held.removeAll()

        // 4. The primary goes away: the standby's WAL receiver stops. That is CRITICAL, never "0 lag".
        try pair.primary.stop(mode: "fast", logger: ReplicationPair.logger)
        var down: CheckResult?
        #expect(try eventually(timeout: 20) {
            down = try #require(runChecks(["replication"], dsn: monitorStandby).check("replication"))
            return down?.status == .critical
        })
        #expect(down?.message.contains("receives no WAL") == true, "\(down?.message ?? "")")
        #expect(down?.message.contains("not 0") == true)
    }
}
