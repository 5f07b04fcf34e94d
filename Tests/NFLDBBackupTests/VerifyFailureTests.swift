import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// Each test breaks one thing and expects `verify` to fail with a message naming the cause,
/// and to leave no scratch directory or server behind.
@Suite("backup verify: PITR and failure injection", .serialized)
struct VerifyFailureTests {
    /// Writes and archives two WAL segments after the backup.
    func archiveTwoSegments(_ f: BackupFixture) throws {
        for i in 0..<2 {
            try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 4, \(i) FROM generate_series(1, 100)")
            try f.pgbackrest.runChecked("check", ["--archive-timeout=20"])
        }
    }

    /// Removes from the repo the first archived segment after the latest backup's stop segment and
    /// before the newest one, so the archive has a hole in the WAL that recovery to now needs.
    func removeFirstSegmentAfterBackup(_ f: BackupFixture) throws {
        let info = try f.pgbackrest.info()
        let stop = try #require(info[0].backup.last?.archive?.stop)
        let max = try #require(info[0].archiveMax)
        let archiveRoot = "\(f.repoPath)/archive/nfldb/\(info[0].archive[0].id)/\(stop.prefix(16))"
        let after = try FileManager.default.contentsOfDirectory(atPath: archiveRoot).filter { name in
            let seg = String(name.prefix(24))
            return seg.count == 24 && name.dropFirst(24).hasPrefix("-") && seg > stop && seg < max
        }.sorted()
        let victim = try #require(after.first, "no segment between \(stop) and \(max)")
        try FileManager.default.removeItem(atPath: "\(archiveRoot)/\(victim)")
    }

    /// A stanza with one full backup (its label passed on) and the first WAL segment archived after
    /// it removed: a gap no backup taken so far can be recovered past.
    func withGapAfterFullBackup(_ body: (BackupFixture, String) throws -> Void) throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let old = try f.backup("full").label
        try archiveTwoSegments(f)
        try removeFirstSegmentAfterBackup(f)
        try body(f, old)
    }

    func failed(_ receipt: VerificationReceipt, _ name: String) -> VerificationCheck? {
        receipt.checks.first { $0.name == name && !$0.passed }
    }

    @Test("PITR to a time between two canaries: the first is present, the second is not")
    func pitrBetweenCanaries() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        try f.sql("INSERT INTO nfldb.backup_canaries(token, note) VALUES ('canary-a', 'before target')")
        let db = try f.connect()
        let target = try db.query("SELECT clock_timestamp()::text").scalar(String.self)
        db.close()
        Thread.sleep(forTimeInterval: 1.1)
        try f.sql("INSERT INTO nfldb.backup_canaries(token, note) VALUES ('canary-b', 'after target')")
        let receipt = try f.verify(targetTime: target)
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.checks.contains { $0.name == "pitr-canary" && $0.passed })
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a corrupted repo file the latest backup depends on")
    func corruptedRepoFile() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let full = try f.backup("full")
        try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 3, 3 FROM generate_series(1, 100)")
        let diff = try f.backup("diff")
        let db = try f.connect()
        let oid = try db.query("SELECT oid::text FROM pg_database WHERE datname = 'nfl'").scalar(String.self)
        db.close()
        let fullDir = "\(f.repoPath)/backup/nfldb/\(full.label)/pg_data/base/\(oid)"
        let diffDir = "\(f.repoPath)/backup/nfldb/\(diff.label)/pg_data/base/\(oid)"
        let fm = FileManager.default
        let inDiff = Set((try? fm.contentsOfDirectory(atPath: diffDir)) ?? [])
        let victim = try fm.contentsOfDirectory(atPath: fullDir).filter { !inDiff.contains($0) }
            .max { (try? fm.attributesOfItem(atPath: "\(fullDir)/\($0)")[.size] as? Int ?? 0) ?? 0 < (try? fm.attributesOfItem(atPath: "\(fullDir)/\($1)")[.size] as? Int ?? 0) ?? 0 }
        let path = "\(fullDir)/\(try #require(victim))"
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: size / 2)
        handle.write(Data("CORRUPTCORRUPT".utf8))
        try handle.close()

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let verify = try #require(failed(receipt, "pgbackrest-verify"), "\(receipt.renderText())")
        #expect(verify.evidence.contains("invalid"))
        // The damaged file is named, so the on-call DBA knows what to look at.
        let named = "invalid checksum \(full.label)/pg_data/base/\(oid)/\(try #require(victim))"
        #expect(verify.evidence.contains("damaged files: \(named)"), "\(verify.evidence)")
        #expect(failed(receipt, "restore") != nil, "\(receipt.renderText())")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a WAL segment missing inside the backup's start..stop range")
    func walMissingInsideBackup() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let info = try f.pgbackrest.info()
        let start = try #require(info[0].backup.last?.archive?.start)
        let archiveDir = "\(f.repoPath)/archive/nfldb/\(info[0].archive[0].id)/\(start.prefix(16))"
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: archiveDir).first { $0.hasPrefix(start + "-") })
        try FileManager.default.removeItem(atPath: "\(archiveDir)/\(segment)")

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let gap = try #require(failed(receipt, "wal-continuity"), "\(receipt.renderText())")
        #expect(gap.evidence.contains("WAL gap"))
        #expect(failed(receipt, "start") != nil || failed(receipt, "promoted") != nil, "\(receipt.renderText())")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a WAL segment missing after the backup: the failure names the backups that cannot be recovered past the gap; a new full backup alone does not clear it; the printed expire does")
    func walMissingAfterBackup() throws {
        try withGapAfterFullBackup { f, old in
            let receipt = try f.verify()
            #expect(!receipt.passed)
            let gap = try #require(failed(receipt, "wal-continuity"), "\(receipt.renderText())")
            #expect(gap.evidence.contains("WAL gap"))
            #expect(gap.evidence.contains("backup(s) \(old) start before") && gap.evidence.contains("no backup starts after the gap: take a new full backup"),
                    "\(gap.evidence)")
            #expect(f.scratchLeftovers().isEmpty)

            // The new full backup restores, but the old one still cannot reach the present: still failed, now saying which can.
            let new = try f.backup("full").label
            let again = try f.verify(full: true)
            let stillGap = try #require(failed(again, "wal-continuity"), "\(again.renderText())")
            #expect(again.checks.filter { !$0.passed }.map(\.name) == ["wal-continuity"], "only the gap fails: \(again.renderText())")
            let command = "pgbackrest --config=\(f.configPath) --stanza=nfldb expire --set=\(old)"
            #expect(stillGap.evidence.contains("(\(new) can)") && stillGap.evidence.contains("`\(command)`"), "\(stillGap.evidence)")
            // Run what it printed (as the repository's OS user), then verify again: passed.
            _ = try f.pgbackrest.runChecked("expire", ["--set=\(old)"])
            let cleared = try f.verify(full: true)
            #expect(cleared.passed, "\(cleared.renderText())")
        }
    }

    @Test("a WAL gap under a full backup whose incremental (after the gap) is the latest: no expire that pgBackRest refuses is printed; after a new full backup the printed expire clears it")
    func walGapUnderTheLatestChain() throws {
        try withGapAfterFullBackup { f, old in
            let incr = try f.backup("incr").label
            #expect(incr.hasPrefix(old + "_"), "\(incr) depends on \(old)")

            let receipt = try f.verify(full: true)
            let gap = try #require(failed(receipt, "wal-continuity"), "\(receipt.renderText())")
            #expect(gap.evidence.contains("backup(s) \(old) start before") && gap.evidence.contains("(\(incr) can)"), "\(gap.evidence)")
            #expect(!gap.evidence.contains("expire --set"), "pgBackRest refuses that expire while \(incr) is the latest: \(gap.evidence)")
            #expect(gap.evidence.contains("\(old) cannot be expired yet") && gap.evidence.contains("Take a new full backup first"), "\(gap.evidence)")
            // The refusal the hint avoids is real.
            let refused = try f.pgbackrest.run("expire", ["--set=\(old)"])
            #expect(!refused.succeeded, "pgBackRest expired the latest backup's chain")

            // As the hint says: a new full backup, then the printed expire (which names the incremental it takes along).
            let new = try f.backup("full").label
            let again = try f.verify(full: true)
            let stillGap = try #require(failed(again, "wal-continuity"), "\(again.renderText())")
            let command = "pgbackrest --config=\(f.configPath) --stanza=nfldb expire --set=\(old)"
            #expect(stillGap.evidence.contains("`\(command)` (also expires \(incr), which depends on it)"), "\(stillGap.evidence)")
            #expect(stillGap.evidence.contains(new), "\(stillGap.evidence)")
            _ = try f.pgbackrest.runChecked("expire", ["--set=\(old)"])
            let cleared = try f.verify(full: true)
            #expect(cleared.passed, "\(cleared.renderText())")
        }
    }

    @Test("a WAL segment lost after a passing verify, with the full repo verify not due: the archive listing finds the gap")
    func walMissingAfterPassingVerify() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        try archiveTwoSegments(f)
        let first = try f.verify()
        #expect(first.passed, "\(first.renderText())")
        #expect(first.repoVerify?.ran == true)
        try removeFirstSegmentAfterBackup(f)

        let receipt = try f.verify()
        #expect(!receipt.passed)
        #expect(receipt.repoVerify?.ran == false, "\(receipt.renderText())")
        let gap = try #require(failed(receipt, "wal-continuity"), "\(receipt.renderText())")
        #expect(gap.evidence.contains("WAL gap") && gap.evidence.contains("archive listing"))
        // A failed run that skipped the full repo verify makes the next run do it.
        let next = try f.verify()
        #expect(next.repoVerify?.ran == true, "\(next.renderText())")
        #expect(failed(next, "wal-continuity") != nil)
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a page with a bad checksum on the primary when the backup is taken (a free-space-map page pg_amcheck never reads)")
    func badPageChecksumAtBackup() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        try f.sql("VACUUM nfl.plays")
        try f.sql("CHECKPOINT")
        let db = try f.connect()
        let file = try db.query("SELECT pg_relation_filepath('nfl.plays')").scalar(String.self)
        db.close()
        let fsm = "\(f.cluster.dataDirectory)/\(file)_fsm"
        let handle = try #require(FileHandle(forUpdatingAtPath: fsm), "no \(fsm)")
        try handle.seek(toOffset: 4000)  // inside page 0, past its header: the LSN stays valid
        handle.write(Data("CORRUPTCORRUPT".utf8))
        try handle.close()
        _ = try f.backup("full")

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let pages = try #require(failed(receipt, "page-checksums"), "\(receipt.renderText())")
        #expect(pages.evidence.contains("\(file)_fsm"), "\(pages.evidence)")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("the scratch port is already in use")
    func portInUse() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let port = try LocalCluster.freePort()
        let squatter = try PortListener(port: port)
        defer { squatter.close() }

        let receipt = try f.verify(port: port)
        #expect(!receipt.passed)
        let start = try #require(failed(receipt, "start"), "\(receipt.renderText())")
        #expect(start.evidence.contains("127.0.0.1:\(port)"))
        #expect(start.evidence.contains("Address already in use"))
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a wrong stanza name")
    func wrongStanza() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let wrong = PgBackRest(configPath: f.configPath, stanza: "nflbd", osUser: f.pgbackrest.osUser)
        let receipt = try f.verify(pg: wrong)
        #expect(!receipt.passed)
        let check = try #require(failed(receipt, "repo-info"), "\(receipt.renderText())")
        #expect(check.evidence.contains("nflbd"))
        #expect(check.evidence.contains("missing stanza path"))
    }

    @Test("rows changed between the manifest and the backup: counts differ, naming the table")
    func countsDiffer() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        try f.backupAfterManifestThen("DELETE FROM nfl.plays WHERE id <= 10")

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let counts = try #require(failed(receipt, "row-counts"), "\(receipt.renderText())")
        #expect(counts.evidence.contains("nfl.plays expected 5000 got 4990"))
        #expect(!counts.evidence.contains("nfl.games"))
        #expect(receipt.checks.contains { $0.name == "canary" && $0.passed })
    }

    @Test("the archive holds a timeline above the primary's (a restored copy archived into the stanza)")
    func timelineGuard() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let info = try f.pgbackrest.info()
        let max = try #require(info[0].archiveMax)
        let archiveID = info[0].archive[0].id
        let sourceDir = "\(f.repoPath)/archive/nfldb/\(archiveID)/\(max.prefix(16))"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: sourceDir).first { $0.hasPrefix(max + "-") })
        let foreign = "00000002" + name.dropFirst(8)
        let foreignDir = "\(f.repoPath)/archive/nfldb/\(archiveID)/00000002\(max.dropFirst(8).prefix(8))"
        try FileManager.default.createDirectory(atPath: foreignDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(sourceDir)/\(name)", toPath: "\(foreignDir)/\(foreign)")

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let guardCheck = try #require(failed(receipt, "archive-timeline"), "\(receipt.renderText())")
        #expect(guardCheck.evidence.contains("timeline 2"))
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a real restored copy, promoted to timeline 2, archived into the stanza: the timeline guard names it")
    func timelineGuardRealCopy() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let fm = FileManager.default
        let copy = LocalCluster(root: (f.root as NSString).appendingPathComponent("leaky-copy"), port: try LocalCluster.freePort(),
                                binaries: f.binaries, osUser: f.pgbackrest.osUser)
        defer {
            try? copy.stop(mode: "immediate", logger: f.logger)
            try? fm.removeItem(atPath: copy.root)
        }
        try fm.createDirectory(atPath: copy.socketDirectory, withIntermediateDirectories: true)
        try copy.giveToOSUser(copy.root)
        try copy.giveToOSUser(copy.socketDirectory)

        // A restore without --archive-mode=off: the copy keeps archive_mode=on. With the fixture's
        // archive_command as restored, archive-push refuses ([032] working directory is not
        // pg1-path), so the copy gets the same command with pg1-path pointing at itself, as a
        // verify host whose own config names its scratch dir would: same config, repo and stanza.
        try f.pgbackrest.runChecked("restore", [
            "--pg1-path=\(copy.dataDirectory)", "--type=immediate", "--target-action=promote", "--job-retry=0", "--log-level-console=warn",
        ], timeout: .seconds(300))
        let conf = (copy.dataDirectory as NSString).appendingPathComponent("postgresql.auto.conf")
        let handle = try #require(FileHandle(forWritingAtPath: conf))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("""

            port = \(copy.port)
            unix_socket_directories = '\(copy.socketDirectory)'
            \(Self.copyArchiveCommand(f, copy))
            """.utf8))
        try handle.close()
        try copy.start(logger: f.logger)

        let dsn = "host=\(copy.socketDirectory) port=\(copy.port) user=postgres dbname=nfl connect_timeout=5"
        var promoted: PostgresConnection?
        var state = "not reachable"
        poll(timeout: .seconds(90), interval: .milliseconds(200)) {
            guard let conn = try? PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: f.logger) else { return false }
            if let recovering = try? conn.query("SELECT pg_is_in_recovery()").scalar(Bool.self), !recovering,
               let wal = try? conn.query("SELECT pg_walfile_name(pg_current_wal_lsn())").scalar(String.self) {
                if wal.hasPrefix("00000002") { promoted = conn; return true }
                state = "promoted but writing \(wal)"
            } else {
                state = "still in recovery"
            }
            conn.close()
            return false
        }
        let conn = try #require(promoted, "the copy was not promoted to timeline 2 within 90 s (\(state))")
        defer { conn.close() }
        try conn.execute("INSERT INTO nfl.games VALUES (100000, 2099)")
        let segment = try conn.query("SELECT pg_walfile_name(pg_current_wal_lsn())").scalar(String.self)
        _ = try conn.query("SELECT pg_switch_wal()::text").scalar(String.self)
        var archiver = ""
        let archived = try poll(timeout: .seconds(60), interval: .milliseconds(200)) {
            let row = try #require(try conn.query("""
                SELECT coalesce(last_archived_wal, '') AS last, failed_count::text AS failed, coalesce(last_failed_wal, '') AS failed_wal
                FROM pg_stat_archiver
                """).rows.first)
            archiver = "last archived \(row["last"] ?? ""), failed \(row["failed"] ?? "") (\(row["failed_wal"] ?? ""))"
            return (row["last"] ?? "") >= segment
        }
        try #require(archived, "the copy did not archive \(segment) within 60 s: \(archiver); server log: \(Self.tail(copy.logFile))")
        conn.close()
        try copy.stop(mode: "fast", logger: f.logger)
        let max = try #require(try f.pgbackrest.info().first?.archiveMax)
        #expect(WALName.timeline(max) == 2, "the stanza's archive max \(max) is the copy's timeline")

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let guardCheck = try #require(failed(receipt, "archive-timeline"), "\(receipt.renderText())")
        #expect(guardCheck.evidence == "archive max \(max) is on timeline 2; the primary is on timeline 1"
            + " — another cluster (a restored copy?) archived into this stanza", "\(guardCheck.evidence)")
        #expect(f.scratchLeftovers().isEmpty)
        #expect(BackupFixture.processes(mentioning: f.root + "/scratch-").isEmpty)
    }

    /// The fixture's archive_command with `--pg1-path=<copy>` (a command-line option beats the config file).
    static func copyArchiveCommand(_ f: BackupFixture, _ copy: LocalCluster) -> String {
        let command = f.renderer.archiveCommand.replacingOccurrences(of: " archive-push ", with: " --pg1-path=\(copy.dataDirectory) archive-push ")
        return "archive_command = '\(command)'"
    }

    static func tail(_ path: String, _ n: Int = 5) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").suffix(n).joined(separator: " | ")
    }

    @Test("a scratch path the cluster's OS user cannot reach", .enabled(if: ProcessRunner.isRoot, "needs root to make a path postgres cannot enter"))
    func unwritableScratch() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let locked = (f.root as NSString).appendingPathComponent("locked")
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let scratch = (locked as NSString).appendingPathComponent("scratch")
        let receipt = try f.verify(scratch: scratch)
        #expect(!receipt.passed)
        let restore = try #require(failed(receipt, "restore"), "\(receipt.renderText())")
        #expect(restore.evidence.contains("pgbackrest restore failed"))
        #expect(restore.evidence.contains(scratch))
        #expect(restore.evidence.contains("that user cannot reach") && restore.evidence.contains("backup.scratch_dir the OS user can enter"),
                "a hint for the [13] Permission denied: \(restore.evidence)")
        #expect(!FileManager.default.fileExists(atPath: scratch), "scratch removed after the failure")
    }
}
