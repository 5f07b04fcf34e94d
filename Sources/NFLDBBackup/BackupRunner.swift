import Foundation
import Logging
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox

/// What `nfldb backup run` did.
public struct BackupRunReport: Codable, Sendable {
    public var stanza: String
    public var type: String
    public var label: String
    public var token: String
    public var durationSeconds: Double
    public var sizeBytes: Int64?
    public var deltaBytes: Int64?
    public var repoSizeBytes: Int64?
    public var repoDeltaBytes: Int64?
    public var counts: [String: Int64]
    public var schemaVersion: Int64?
    /// The manifest copy beside the repo (`<repo1-path>/nfldb-manifests/<label>.json`), when written.
    public var manifestFile: String?
    /// Retention after the backup: `applied` (pgBackRest's `expire` ran), `deferred` (a `backup
    /// verify` of the stanza was restoring from the repo: see ``PgBackRest/expireGuardLock(stanza:)``)
    /// or `failed`; `retentionDetail` says which backups went, who held the guard, or the error.
    public var retention: String?
    public var retentionDetail: String?
}

/// `nfldb backup run`: canary row, row-count manifest in one REPEATABLE READ snapshot, then the
/// pgBackRest backup, recorded in `nfldb.backup_runs`.
public struct BackupRunner {
    public let pgbackrest: PgBackRest
    public let connection: PostgresConnection
    public let tables: ManagedTables
    public let logger: Logger

    public init(pgbackrest: PgBackRest, connection: PostgresConnection, tables: ManagedTables, logger: Logger) {
        self.pgbackrest = pgbackrest
        self.connection = connection
        self.tables = tables
        self.logger = logger
    }

    public static let types = ["full", "diff", "incr"]

    /// Writes the canary and the manifest; returns the manifest.
    public func writeManifest(note: String?) throws -> Manifest {
        try BackupCatalog.install(connection)
        let token = "nfldb-\(Int(Date().timeIntervalSince1970))-\(UUID().uuidString.prefix(8).lowercased())"
        return try connection.withTransaction(isolation: .repeatableRead) {
            let takenAt = try connection.query("""
                INSERT INTO nfldb.backup_canaries(token, note) VALUES (\(token), \(note)) RETURNING created_at
                """).scalar(Date.self)
            let names = try tables.resolve(connection)
            let counts = try ManagedTables.count(names, connection)
            let version = try ManagedTables.schemaVersion(connection)
            let checksums = try tables.checksums(connection)
            let json = String(decoding: try JSONEncoder().encode(counts), as: UTF8.self)
            let checksumJSON = String(decoding: try JSONEncoder().encode(checksums), as: UTF8.self)
            try connection.execute("""
                INSERT INTO nfldb.backup_manifests(token, taken_at, schema_version, counts, checksums)
                VALUES (\(token), \(takenAt), \(version.map { Int($0) }), \(json)::jsonb, \(checksumJSON)::jsonb)
                """)
            return Manifest(token: token, takenAt: takenAt, schemaVersion: version, counts: counts, checksums: checksums)
        }
    }

    /// Runs a backup of `type` (full, diff or incr).
    /// - Parameter onStarted: gets the `nfldb.backup_runs` id once the row exists (for a signal handler).
    /// - Throws: ``PgBackRestError`` when pgBackRest fails (the run is recorded as `failed`).
    public func run(type: String, onStarted: (Int64) -> Void = { _ in }) throws -> BackupRunReport {
        guard Self.types.contains(type) else {
            throw BackupError("unknown backup type '\(type)'", hint: "Use full, diff or incr.", exitStatus: .usage)
        }
        try BackupCatalog.install(connection)
        let stanza = pgbackrest.stanza
        // Held for the whole run (PgBackRest.backupRunLock): with it, a `running` row of this stanza is a killed run's.
        let lock = PgBackRest.backupRunLock(stanza: stanza)
        guard try connection.tryAdvisoryLock(lock) else {
            throw BackupError("another nfldb backup run of stanza \(stanza) is in progress (it holds the run lock)",
                              detail: (try? connection.advisoryLockHolder(lock)).flatMap { $0.map { "held by \($0)" } },
                              hint: "Wait for it to finish (nfldb.backup_runs shows it as running), then run this again.")
        }
        defer { _ = try? connection.advisoryUnlock(lock) }
        // Rows a killed run left `running` (kill -9, an OOM kill, a host that went down): with the lock
        // held, no live run owns them.
        let abandoned = try connection.query("""
            UPDATE nfldb.backup_runs SET status = 'failed', finished_at = clock_timestamp(),
              error = 'abandoned: the nfldb backup run that started it ended without recording an outcome (killed?); a backup pgBackRest finished for it has no manifest'
            WHERE stanza = \(stanza) AND status = 'running' RETURNING id
            """).rows.compactMap { $0["id"] }
        if !abandoned.isEmpty {
            logger.warning("marked backup run(s) \(abandoned.joined(separator: ", ")) failed: started by an nfldb backup run that was killed before it recorded an outcome")
        }
        let before: Set<String>
        let countersBefore: [String: WriteCounts]
        var manifest: Manifest
        do {
            before = Set(try pgbackrest.info(allowNoBackups: true, logger: logger).first?.backup.map(\.label) ?? [])
            // Write counters before the manifest's snapshot and after the backup's end bound what the
            // platform wrote meanwhile; verify accepts exactly that range (see Manifest.allowedRange).
            countersBefore = try WriteCounts.read(try tables.resolve(connection), connection)
            manifest = try writeManifest(note: "before \(type) backup")
        } catch let error as any NFLDBError where error.exitStatus != .usage {
            // A run that fails before pgBackRest starts (an unreadable repo, a stanza typo) is a failed run too:
            // recorded, so the backups health check turns CRITICAL instead of waiting for the age threshold.
            _ = try? connection.execute("""
                INSERT INTO nfldb.backup_runs(started_at, finished_at, status, stanza, backup_type, duration_ms, error)
                VALUES (clock_timestamp(), clock_timestamp(), 'failed', \(stanza), \(type), 0, \(error.diagnostic.oneLine))
                """)
            throw error
        }
        let started = Date()
        let runID = try connection.query("""
            INSERT INTO nfldb.backup_runs(started_at, status, stanza, backup_type, token)
            VALUES (\(started), 'running', \(pgbackrest.stanza), \(type), \(manifest.token)) RETURNING id
            """).scalar(Int64.self)
        onStarted(runID)
        let clock = ContinuousClock.now
        // Retention runs below, only when no verify is restoring from the repo: pgBackRest's own
        // expire after the backup would remove the set a concurrent `verify --set` is restoring.
        let result = try pgbackrest.run("backup", ["--type=\(type)", "--no-expire-auto"], logger: logger)
        let seconds = (ContinuousClock.now - clock).inSeconds
        guard result.succeeded else {
            let error = pgbackrest.error(for: result)
            _ = try? connection.execute("""
                UPDATE nfldb.backup_runs SET status = 'failed', finished_at = clock_timestamp(), duration_ms = \(Int(seconds * 1000)),
                error = \(error.diagnostic.oneLine) WHERE id = \(runID)
                """)
            throw error
        }
        let info = try pgbackrest.info(logger: logger).first
        guard let backup = info?.backup.last(where: { !before.contains($0.label) }) else {
            throw BackupError("pgbackrest backup succeeded but info lists no new backup", hint: "Run `nfldb backup info` and check the repo.")
        }
        try connection.execute("""
            UPDATE nfldb.backup_runs SET status = 'ok', finished_at = clock_timestamp(), label = \(backup.label),
              duration_ms = \(Int(seconds * 1000)), size_bytes = \(backup.info?.size.map { Int($0) }),
              delta_bytes = \(backup.info?.delta.map { Int($0) }), repo_size_bytes = \(backup.info?.repository?.size.map { Int($0) }),
              repo_delta_bytes = \(backup.info?.repository?.delta.map { Int($0) })
            WHERE id = \(runID)
            """)
        manifest.writes = try recordWrites(manifest, since: countersBefore)
        var report = BackupRunReport(
            stanza: pgbackrest.stanza, type: type, label: backup.label, token: manifest.token, durationSeconds: seconds,
            sizeBytes: backup.info?.size, deltaBytes: backup.info?.delta, repoSizeBytes: backup.info?.repository?.size,
            repoDeltaBytes: backup.info?.repository?.delta, counts: manifest.counts, schemaVersion: manifest.schemaVersion)
        do {
            report.manifestFile = try writeManifestFile(manifest, label: backup.label)
        } catch {
            logger.info("manifest copy beside the repo not written", metadata: ["error": .string("\(error)")])
        }
        (report.retention, report.retentionDetail) = applyRetention(before: Set(info?.backup.map(\.label) ?? []))
        return report
    }

    /// Any session may take the guard's advisory key (its name is no secret): while one holds it,
    /// retention waits, so the message says how to end a holder that is not nfldb's.
    static let notOursAdvice = "; if that session is not an nfldb backup verify or restore, end it (SELECT pg_terminate_backend(<pid>)): "
        + "retention waits while any session holds the guard"

    /// pgBackRest's `expire` (the repo's retention settings), under the expire guard taken
    /// exclusively; deferred to the next run while a `backup verify` holds it shared. A failed expire
    /// leaves the backup good: it is reported (warning, `retention: failed`) and retried next run.
    func applyRetention(before: Set<String>) -> (String, String) {
        let guardLock = PgBackRest.expireGuardLock(stanza: pgbackrest.stanza)
        func deferred(_ why: String) -> (String, String) {
            let detail = "not applied: \(why); the next backup run applies it"
            logger.warning("retention deferred", metadata: ["backup.retention": .string(detail)])
            return ("deferred", detail)
        }
        func heldBy(_ holder: String) -> String {
            "a backup verify or restore of stanza \(pgbackrest.stanza) is restoring from the repo (\(holder) holds the expire guard)" + Self.notOursAdvice
        }
        do {
            guard try connection.tryAdvisoryLock(guardLock) else {
                return deferred(heldBy((try? connection.advisoryLockHolder(guardLock)).flatMap { $0 } ?? "another session"))
            }
            defer { _ = try? connection.advisoryUnlock(guardLock) }
            // The guard is per database: a verify or restore connected to another database of the
            // cluster holds it there (see ExpireGuard.take, which looks here the same way).
            if let elsewhere = try ExpireGuard.holders(of: guardLock, mode: "ShareLock", otherDatabasesOf: connection) {
                return deferred(heldBy(elsewhere))
            }
            // A restore whose nfldb was killed (kill -9, the OOM killer) lost its guard with its
            // session while pgBackRest goes on restoring (an attack probe): not while it runs.
            let orphans = ExpireGuard.running("restore", stanza: pgbackrest.stanza, configPath: pgbackrest.configPath, osUser: pgbackrest.osUser)
            if !orphans.isEmpty {
                return deferred("a pgbackrest restore of stanza \(pgbackrest.stanza) (pid \(orphans.map(String.init).joined(separator: ", "))) runs on this "
                                + "host without nfldb's expire guard (left by a killed backup restore or verify?)")
            }
            let result = try pgbackrest.run("expire", [], logger: logger)
            guard result.succeeded else {
                let error = pgbackrest.error(for: result).diagnostic.oneLine
                logger.warning("retention expire failed; the backup itself is good, the next backup run tries again", metadata: ["error": .string(error)])
                return ("failed", error)
            }
            // What went: the labels before minus those after. An `info` that fails here must not read
            // as "every backup expired" (the one just taken included).
            let after: Set<String>
            do {
                after = Set(try pgbackrest.info(allowNoBackups: true, logger: logger).first?.backup.map(\.label) ?? [])
            } catch {
                let message = (error as? any NFLDBError)?.diagnostic.oneLine ?? String(describing: error)
                return ("applied", "pgbackrest expire succeeded; which backups it expired could not be listed (\(message)): see `nfldb backup info`")
            }
            let gone = before.subtracting(after).sorted()
            return ("applied", gone.isEmpty ? "nothing expired" : "expired " + gone.joined(separator: ", "))
        } catch {
            let message = (error as? any NFLDBError)?.diagnostic.oneLine ?? String(describing: error)
            logger.warning("retention expire failed; the backup itself is good, the next backup run tries again", metadata: ["error": .string(message)])
            return ("failed", message)
        }
    }

    /// Rows inserted/deleted per manifest table since `before`, stored with the manifest. Waits a
    /// moment first: backends flush their counters up to about a second after a commit.
    func recordWrites(_ manifest: Manifest, since before: [String: WriteCounts]) throws -> [String: WriteCounts?] {
        Thread.sleep(forTimeInterval: 1.2)
        let after = try WriteCounts.read(manifest.counts.keys.sorted(), connection)
        var writes: [String: WriteCounts?] = [:]
        for (table, end) in after {
            let start = before[table] ?? WriteCounts(inserted: 0, deleted: 0)
            let inserted = end.inserted - start.inserted
            let deleted = end.deleted - start.deleted
            writes[table] = inserted < 0 || deleted < 0 ? .some(nil) : WriteCounts(inserted: inserted, deleted: deleted)
        }
        let json = String(decoding: try JSONEncoder().encode(writes), as: UTF8.self)
        try connection.execute("UPDATE nfldb.backup_manifests SET writes = \(json)::jsonb WHERE token = \(manifest.token)")
        return writes
    }

    /// Records a run as failed from another connection (a signal handler's, while the run's own
    /// connection is busy): `interrupted by SIGTERM`. Only a run still `running`: a signal during
    /// retention (after the backup was recorded `ok`) leaves a good backup recorded as good. Returns
    /// the label of that backup when the run had already finished (nil when it was marked failed).
    @discardableResult
    public static func recordInterrupted(runID: Int64, signal: String, target: ConnectionOptions, logger: Logger) throws -> String? {
        let connection = try PostgresConnection.connect(target, logger: logger)
        defer { connection.close() }
        let marked = try connection.execute("""
            UPDATE nfldb.backup_runs SET status = 'failed', finished_at = clock_timestamp(), error = \("interrupted by \(signal)")
            WHERE id = \(runID) AND status = 'running'
            """)
        guard marked == 0 else { return nil }
        let rows = try connection.query("SELECT coalesce(label, '?') FROM nfldb.backup_runs WHERE id = \(runID) AND status = 'ok'")
        return rows.rows.first?.values.first ?? nil
    }

    /// Writes the manifest beside a posix repo (`<repo1-path>/nfldb-manifests/<label>.json`), so it
    /// survives the loss of the primary. Returns nil when the config names no posix `repo1-path`.
    func writeManifestFile(_ manifest: Manifest, label: String) throws -> String? {
        guard let path = pgbackrest.manifestFilePath(label: label) else { return nil }
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: path))
        try? LocalCluster.give(directory, to: pgbackrest.osUser)
        try? LocalCluster.give(path, to: pgbackrest.osUser)
        return path
    }
}
