import Foundation
import Logging
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport

/// A throwaway cluster with archiving into its own pgBackRest stanza, all under one temp dir,
/// run as the `postgres` OS user when the tests run as root. ``close()`` removes everything.
final class BackupFixture {
    let root: String
    let cluster: LocalCluster
    let renderer: ConfigRenderer
    let pgbackrest: PgBackRest
    let binaries: PostgresBinaries
    let logger = TestCluster.logger
    var closed = false

    var configPath: String { renderer.configPath }
    var repoPath: String { renderer.repoPath }
    let database: String
    var dsn: String {
        ConnectionOptions.conninfo([("host", cluster.socketDirectory), ("port", String(cluster.port)), ("user", "postgres"), ("dbname", database)])
    }

    init(stanza: String = "nfldb", database: String = "nfl", cipherPass: String? = nil, retentionFull: Int = 2) throws {
        self.database = database
        root = "/tmp/nfldb-bk-\(getpid())-\(UUID().uuidString.prefix(8).lowercased())"
        binaries = try PostgresBinaries.locate()
        let osUser: String? = ProcessRunner.isRoot ? "postgres" : nil
        cluster = LocalCluster(root: (root as NSString).appendingPathComponent("pg"), port: try LocalCluster.freePort(), binaries: binaries, osUser: osUser)
        let base = (root as NSString).appendingPathComponent("pgbackrest")
        renderer = ConfigRenderer(
            stanza: stanza, configPath: "\(base)/pgbackrest.conf", repoPath: "\(base)/repo", pgPath: cluster.dataDirectory,
            pgPort: cluster.port, pgSocket: cluster.socketDirectory, pgUser: "postgres")
        pgbackrest = PgBackRest(configPath: renderer.configPath, stanza: stanza, osUser: osUser)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try cluster.giveToOSUser(root)
        var conf = renderer
        conf.compressType = "gz"
        conf.cipherPass = cipherPass
        conf.retentionFull = retentionFull
        try conf.install(osUser: osUser)
        do {
            try cluster.initialize(password: LocalCluster.randomPassword(), settings: [
                ("fsync", "off"), ("synchronous_commit", "off"), ("wal_level", "replica"), ("archive_mode", "on"),
                ("archive_command", "'\(renderer.archiveCommand)'"), ("max_wal_senders", "3"), ("log_min_messages", "warning"), ("max_prepared_transactions", "4"),
            ], logger: logger)
            try cluster.start(logger: logger)
            let admin = try PostgresConnection.connect(ConnectionOptions(dsn: "host=\(cluster.socketDirectory) port=\(cluster.port) user=postgres dbname=postgres"), logger: logger)
            try admin.execute("CREATE DATABASE \(identifier: database)")
            admin.close()
            let db = try connect()
            try db.runScript(unsafeSQL: """
                CREATE SCHEMA nfl;
                CREATE TABLE nfl.games (id int PRIMARY KEY, season int NOT NULL);
                CREATE TABLE nfl.plays (id bigserial PRIMARY KEY, game_id int NOT NULL REFERENCES nfl.games(id), yards int);
                CREATE INDEX ON nfl.plays(game_id);
                INSERT INTO nfl.games SELECT g, 2020 + g % 5 FROM generate_series(1, 200) g;
                INSERT INTO nfl.plays(game_id, yards) SELECT 1 + i % 200, i % 30 FROM generate_series(1, 5000) i;
                """)
            db.close()
        } catch {
            close()
            throw error
        }
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: logger)
    }

    func sql(_ text: String) throws {
        let db = try connect()
        defer { db.close() }
        try db.runScript(unsafeSQL: text)
    }

    func initStanza() throws {
        try pgbackrest.runChecked("stanza-create", timeout: .seconds(120))
        try pgbackrest.runChecked("check", ["--archive-timeout=20"], timeout: .seconds(120))
    }

    func backup(_ type: String) throws -> BackupRunReport {
        let db = try connect()
        defer { db.close() }
        return try BackupRunner(pgbackrest: pgbackrest, connection: db, tables: ManagedTables(), logger: logger).run(type: type)
    }

    func verify(set: String? = nil, targetTime: String? = nil, port: Int? = nil, pg: PgBackRest? = nil, scratch: String? = nil,
                skipSpaceCheck: Bool = false, reuse: Bool = false, full: Bool = false, amcheckRecheck: Duration? = nil) throws -> VerificationReceipt {
        let db = try connect()
        defer { db.close() }
        var options = VerifyOptions(binaries: binaries, set: set, targetTime: targetTime, port: port)
        options.skipSpaceCheck = skipSpaceCheck
        options.reuseScratch = reuse
        options.full = full
        if let amcheckRecheck { options.amcheckRecheckInterval = amcheckRecheck }
        options.scratchDirectory = scratch ?? (root as NSString).appendingPathComponent("scratch-\(UUID().uuidString.prefix(6))")
        options.promoteTimeout = .seconds(60)
        return try Verifier(pgbackrest: pg ?? pgbackrest, primary: db, options: options, logger: logger).run()
    }

    /// A pgBackRest whose `restore` waits (at most 120 s) until ``HeldRestore/release()``, so a test
    /// can act while a verify or restore is inside its restore step.
    func heldRestore() throws -> HeldRestore {
        let held = HeldRestore(root: root)
        let wrapper = root + "/pgbackrest-held-restore"
        try """
            #!/bin/sh
            case " $* " in *" restore "*)
              : > \(ShellWord.quote(held.waiting)); n=0
              while [ ! -e \(ShellWord.quote(held.go)) ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done ;;
            esac
            exec pgbackrest "$@"
            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        guard chmod(wrapper, 0o755) == 0 else { throw BackupError("chmod \(wrapper): \(String(cString: strerror(errno)))") }
        held.pgbackrest = PgBackRest(configPath: configPath, stanza: pgbackrest.stanza, osUser: pgbackrest.osUser, executable: wrapper)
        return held
    }

    /// A manifest, then `change` on the primary, then a full pgBackRest backup recorded against that
    /// manifest: the backup no longer matches what the manifest says it holds.
    func backupAfterManifestThen(_ change: String, tables: ManagedTables = ManagedTables()) throws {
        let db = try connect()
        defer { db.close() }
        let manifest = try BackupRunner(pgbackrest: pgbackrest, connection: db, tables: tables, logger: logger).writeManifest(note: "then: \(change)")
        try db.runScript(unsafeSQL: change)
        try pgbackrest.runChecked("backup", ["--type=full"])
        guard let label = try pgbackrest.info().first?.backup.last?.label else { throw BackupError("no backup after pgbackrest backup") }
        try db.execute("""
            INSERT INTO nfldb.backup_runs(started_at, finished_at, status, stanza, backup_type, label, token)
            VALUES (now(), now(), 'ok', 'nfldb', 'full', \(label), \(manifest.token))
            """)
    }

    /// Nothing may be left: scratch dirs of verify are gone, the cluster is stopped.
    func scratchLeftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("scratch-") }
    }

    /// Processes whose command line mentions `path` (from /proc/*/cmdline), as "pid: cmdline".
    static func processes(mentioning path: String) -> [String] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> String? in
            guard let pid = Int32(entry), pid != getpid(),
                  let raw = fm.contents(atPath: "/proc/\(entry)/cmdline"), !raw.isEmpty else { return nil }
            let line = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(path) ? "\(pid): \(line)" : nil
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        try? cluster.stop(mode: "immediate", logger: logger)
        try? FileManager.default.removeItem(atPath: root)
    }

    deinit { close() }
}

/// See ``BackupFixture/heldRestore()``.
final class HeldRestore {
    let waiting: String
    let go: String
    var pgbackrest: PgBackRest!

    init(root: String) {
        waiting = root + "/restore-waiting"
        go = root + "/restore-go"
    }

    /// Whether the restore reached pgBackRest within `timeout`.
    func reached(timeout: Duration = .seconds(60)) -> Bool {
        poll(timeout: timeout) { FileManager.default.fileExists(atPath: waiting) }
    }

    /// Lets the held restore go on (again: a no-op).
    func release() { FileManager.default.createFile(atPath: go, contents: nil) }
}
