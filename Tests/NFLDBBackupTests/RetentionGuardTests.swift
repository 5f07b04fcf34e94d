import Foundation
@testable import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Synchronization
import Testing

/// A verify (or restore) run on another thread (the fixture is used only from there until ``wait()``).
final class Background<Value: Sendable>: @unchecked Sendable {
    private let outcome = Mutex<(result: Value?, error: String?)?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping () throws -> Value) {
        nonisolated(unsafe) let body = body
        Thread.detachNewThread { [self] in
            do {
                let result = try body()
                outcome.withLock { $0 = (result, nil) }
            } catch {
                outcome.withLock { $0 = (nil, "\(error)") }
            }
            done.signal()
        }
    }

    var finished: Bool { outcome.withLock { $0 != nil } }

    /// The result, or nil (with the error recorded as an issue) when the body threw or hung.
    /// May be called again (a test's cleanup waits too, so the fixture outlives the thread).
    func wait(seconds: Double = 180) -> Value? {
        guard done.wait(timeout: .now() + seconds) == .success else {
            Issue.record("the background run did not finish within \(seconds) s")
            return nil
        }
        done.signal()
        let result = outcome.withLock { $0 }
        if let error = result?.error { Issue.record("the background run threw: \(error)") }
        return result?.result
    }
}

typealias BackgroundVerify = Background<VerificationReceipt>

/// Retention never expires the backup a running verify restores (the on-call probe of 2026-12-06:
/// a `backup run` whose pgBackRest expired the set a concurrent `verify --set` was restoring made
/// that verify fail). `backup run` runs pgBackRest's backup with `--no-expire-auto` and expires
/// only under the expire guard, which every verify holds shared for its whole run.
@Suite(.serialized) struct RetentionGuardTests {
    /// A real verify of the oldest set is held inside its restore (a pgBackRest wrapper waits for a
    /// file before `restore`) while a full backup runs with `repo1-retention-full=1`: the backup
    /// defers its retention and says why, the verify passes, and the next backup run expires both
    /// older sets.
    @Test func aBackupRunDefersRetentionWhileAVerifyRestores() throws {
        let f = try BackupFixture(retentionFull: 1)
        defer { f.close() }
        try f.initStanza()
        let first = try f.backup("full")
        #expect(first.retention == "applied" && first.retentionDetail == "nothing expired", "\(first)")

        let hold = try f.heldRestore()

        let verify = BackgroundVerify { try f.verify(set: first.label, pg: hold.pgbackrest) }
        defer {
            // Before the fixture goes (its defer runs after this one): the thread must be done with it.
            hold.release()
            _ = verify.wait()
        }
        #expect(hold.reached(), "the verify reached its restore")
        // The verify holds the guard shared, as the pg_locks view shows.
        let admin = try f.connect()
        defer { admin.close() }
        let key = PgBackRest.expireGuardLock(stanza: f.pgbackrest.stanza)
        #expect(try admin.query("""
            SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'
              AND classid = ((\(key.value)::bigint >> 32) & 4294967295)::oid AND objid = (\(key.value)::bigint & 4294967295)::oid
            """).scalar(Int.self) == 1)

        let second = try f.backup("full")
        #expect(second.retention == "deferred", "\(second)")
        #expect(second.retentionDetail?.contains("a backup verify or restore of stanza \(f.pgbackrest.stanza) is restoring from the repo") == true, "\(second)")
        #expect(try f.pgbackrest.info().first?.backup.map(\.label) == [first.label, second.label], "nothing expired while the verify restores")

        hold.release()
        let verified = try #require(verify.wait())
        #expect(verified.passed, "\(verified.checks.filter { !$0.passed })")
        #expect(verified.label == first.label)
        #expect(!verified.notes.contains { $0.contains("expire guard") }, "\(verified.notes)")

        // No verify now: the next run applies the retention (one full backup kept).
        let third = try f.backup("full")
        #expect(third.retention == "applied" && third.retentionDetail == "expired \(first.label), \(second.label)", "\(third)")
        #expect(try f.pgbackrest.info().first?.backup.map(\.label) == [third.label])
    }

    /// `backup restore` holds the guard too (before, only verify did: a backup run's retention could
    /// remove the set a real recovery was restoring). Without the primary it restores and says the
    /// guard was not taken.
    /// The restore's connection may be to another database of the cluster than the backup run's
    /// (advisory locks are per database: an attack probe's restore through a DSN naming `postgres`
    /// was not seen by a run on `nfl`, which expired the set).
    @Test(arguments: ["nfl", "postgres"]) func aBackupRunDefersRetentionWhileARestoreRuns(database: String) throws {
        let f = try BackupFixture(retentionFull: 1)
        defer { f.close() }
        try f.initStanza()
        let first = try f.backup("full")
        let hold = try f.heldRestore()
        let target = f.root + "/recovered"
        let primary = try PostgresConnection.connect(ConnectionOptions(dsn: ConnectionOptions.conninfo([
            ("host", f.cluster.socketDirectory), ("port", String(f.cluster.port)), ("user", "postgres"), ("dbname", database)])), logger: f.logger)
        let restorer = Restorer(pgbackrest: hold.pgbackrest, logger: f.logger, primary: primary)
        let restore = Background { try restorer.restore(Restorer.Request(target: target, set: first.label)) }
        defer {
            hold.release()
            _ = restore.wait()
            primary.close()
        }
        #expect(hold.reached(), "the restore reached pgBackRest")
        let second = try f.backup("full")
        #expect(second.retention == "deferred", "\(second)")
        #expect(second.retentionDetail?.contains("a backup verify or restore of stanza \(f.pgbackrest.stanza) is restoring from the repo") == true, "\(second)")
        #expect(second.retentionDetail?.contains("if that session is not an nfldb backup verify or restore, end it (SELECT pg_terminate_backend(<pid>))") == true,
                "any session can hold the key: the message says how to end one that is not nfldb's: \(second)")
        #expect(try f.pgbackrest.info().first?.backup.map(\.label) == [first.label, second.label], "nothing expired while the restore runs")
        hold.release()
        let report = try #require(restore.wait(), "the restore finished")
        #expect(report.notes.isEmpty, "\(report.notes)")
        #expect(FileManager.default.fileExists(atPath: target + "/PG_VERSION"))

        // No primary: restored all the same, with a note that the guard was not taken and why.
        let unguarded = try Restorer(pgbackrest: f.pgbackrest, logger: f.logger, primaryUnavailable: "password authentication failed for user \"x\"")
            .restore(Restorer.Request(target: f.root + "/recovered-2", set: second.label))
        #expect(unguarded.notes.contains { $0.contains("no connection to the primary (password authentication failed for user \"x\"): the expire guard was not taken") },
                "\(unguarded.notes)")
        #expect(unguarded.lines.first?.hasPrefix("note: ") == true)

        // Nothing holds the guard now: the next backup run applies the retention.
        let third = try f.backup("full")
        #expect(third.retention == "applied", "\(third)")
    }

    /// The restore's session on the primary ends while pgBackRest restores (idle_session_timeout, a
    /// restart, a dropped link; here pg_terminate_backend): the guard is gone, and the restore says so
    /// (an attack probe: it went unnoticed).
    @Test func aRestoreSaysWhenItsGuardWasLost() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let first = try f.backup("full")
        let hold = try f.heldRestore()
        let primary = try f.connect()
        defer { primary.close() }
        let pid = primary.backendPID
        let restorer = Restorer(pgbackrest: hold.pgbackrest, logger: f.logger, primary: primary)
        let target = f.root + "/recovered"
        let restore = Background { try restorer.restore(Restorer.Request(target: target, set: first.label)) }
        defer {
            hold.release()
            _ = restore.wait()
        }
        #expect(hold.reached())
        let admin = try f.connect()
        defer { admin.close() }
        #expect(try admin.query("SELECT pg_terminate_backend(\(Int(pid)))").scalar(Bool.self))
        hold.release()
        let report = try #require(restore.wait(), "the restore finished")
        #expect(report.notes.contains { $0.contains("the expire guard was lost while this restore ran") }, "\(report.notes)")
    }

    /// A DSN pointing at another cluster than the stanza's: a guard there protects nothing (an
    /// attack probe's restore took it on a second sandbox while the stanza's own backup run expired
    /// the set), so none is taken and the restore says why.
    @Test func aRestoreThroughAnotherClusterSaysItIsUnguarded() throws {
        let f = try BackupFixture()
        defer { f.close() }
        let other = try BackupFixture(stanza: "other")
        defer { other.close() }
        try f.initStanza()
        let first = try f.backup("full")
        let wrongPrimary = try other.connect()
        defer { wrongPrimary.close() }
        let report = try Restorer(pgbackrest: f.pgbackrest, logger: f.logger, primary: wrongPrimary)
            .restore(Restorer.Request(target: f.root + "/recovered", set: first.label))
        #expect(report.notes.contains { $0.contains("the expire guard was not taken: the primary this restore connected to is another cluster (system identifier") },
                "\(report.notes)")
        let key = PgBackRest.expireGuardLock(stanza: f.pgbackrest.stanza)
        #expect(try wrongPrimary.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objid = (\(key.value)::bigint & 4294967295)::oid").scalar(Int.self) == 0)
    }

    /// A `backup restore` killed (kill -9, the OOM killer) loses its guard with its session while
    /// its pgBackRest restore goes on (an attack probe: the next backup run expired the set under
    /// it). A backup run defers its retention while a pgbackrest restore of its stanza runs on this
    /// host (here a stand-in named pgbackrest), and applies it once it is gone.
    @Test func aBackupRunDefersRetentionWhileAnOrphanedRestoreRuns() throws {
        let f = try BackupFixture(retentionFull: 1)
        defer { f.close() }
        try f.initStanza()
        let first = try f.backup("full")
        let orphan = Process()
        orphan.executableURL = URL(fileURLWithPath: "/bin/bash")
        // It ends when a file appears (SIGTERM may be ignored in this test process, and so in the
        // stand-in: a shell cannot trap a signal ignored at its start).
        let stop = f.root + "/orphan-restore-stop"
        orphan.arguments = ["-c", "exec -a pgbackrest /bin/bash -c \"$0\" --config=\(f.configPath) --stanza=\(f.pgbackrest.stanza) restore",
                            "n=0; while [ ! -e \(ShellWord.quote(stop)) ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done"]
        try orphan.run()
        defer { FileManager.default.createFile(atPath: stop, contents: nil); orphan.waitUntilExit() }
        #expect(poll(timeout: .seconds(5)) {
            !ExpireGuard.running("restore", stanza: f.pgbackrest.stanza, configPath: f.configPath, osUser: f.pgbackrest.osUser).isEmpty
        }, "the stand-in is seen as a running restore")
        let second = try f.backup("full")
        #expect(second.retention == "deferred" && second.retentionDetail?.contains("a pgbackrest restore of stanza \(f.pgbackrest.stanza) (pid \(orphan.processIdentifier))") == true,
                "\(second)")
        #expect(try f.pgbackrest.info().first?.backup.map(\.label) == [first.label, second.label])
        FileManager.default.createFile(atPath: stop, contents: nil)
        orphan.waitUntilExit()
        let third = try f.backup("full")
        #expect(third.retention == "applied", "\(third)")
    }

    /// A `backup run` killed (kill -9) during its expire releases the guard with its session while
    /// the orphaned `pgbackrest … expire` goes on deleting (found by an attack probe: the verify
    /// that started then restored a set being deleted and failed). A verify waits for such a
    /// process of its stanza (here a stand-in named pgbackrest that runs 4 s) and says so.
    @Test func aVerifyWaitsForAnOrphanedExpire() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let orphan = Process()
        orphan.executableURL = URL(fileURLWithPath: "/bin/bash")
        orphan.arguments = ["-c", "exec -a pgbackrest /bin/bash -c 'sleep 4; true' --config=\(f.configPath) --stanza=\(f.pgbackrest.stanza) expire"]
        let began = Date()
        try orphan.run()
        defer { if orphan.isRunning { orphan.terminate() }; orphan.waitUntilExit() }
        #expect(poll(timeout: .seconds(5)) {
            !ExpireGuard.running("expire", stanza: f.pgbackrest.stanza, configPath: f.configPath, osUser: f.pgbackrest.osUser).isEmpty
        }, "the stand-in is seen as a running expire")
        #expect(ExpireGuard.running("expire", stanza: "other", configPath: f.configPath, osUser: f.pgbackrest.osUser).isEmpty, "another stanza's is not")
        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.failedChecks)")
        #expect(receipt.startedAt.timeIntervalSince(began) >= 3.5, "the verify began \(receipt.startedAt.timeIntervalSince(began)) s after the expire started")
        #expect(receipt.notes.contains { $0.contains("for a pgBackRest expire of stanza \(f.pgbackrest.stanza)") && $0.contains("to finish before restoring") },
                "\(receipt.notes)")
    }

    /// An expire outside the guard (here `pgbackrest expire --set` by hand) while a verify restores
    /// that set: the verify fails its restore (the set is gone), and says the set was expired
    /// meanwhile instead of leaving pgBackRest's missing-file error to read as repo damage.
    /// A signal during a run's retention (the backup already finished and recorded `ok`) must not
    /// turn that good backup into a failed run (health would page for it); a run still `running` is
    /// marked failed as before.
    @Test func aSignalDuringRetentionLeavesTheGoodBackupRecordedOK() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let done = try f.backup("full")
        let db = try f.connect()
        defer { db.close() }
        let runID = try db.query("SELECT id FROM nfldb.backup_runs WHERE label = \(done.label)").scalar(Int64.self)
        let target = ConnectionOptions(dsn: f.dsn)
        let kept = try BackupRunner.recordInterrupted(runID: runID, signal: "SIGTERM", target: target, logger: f.logger)
        #expect(kept == done.label)
        #expect(try db.query("SELECT status || ' ' || coalesce(error, '-') FROM nfldb.backup_runs WHERE id = \(runID)").scalar(String.self) == "ok -")

        _ = try db.execute("UPDATE nfldb.backup_runs SET status = 'running', label = NULL WHERE id = \(runID)")
        #expect(try BackupRunner.recordInterrupted(runID: runID, signal: "SIGHUP", target: target, logger: f.logger) == nil)
        #expect(try db.query("SELECT status || ' ' || error FROM nfldb.backup_runs WHERE id = \(runID)").scalar(String.self) == "failed interrupted by SIGHUP")
    }

    /// Expired by hand, or its files lost from the repo (pgBackRest's next expire then drops it from
    /// backup.info: "missing manifest removed"): the evidence names both causes and never calls the
    /// second benign.
    @Test(arguments: ["expired", "files-lost"])
    func aSetGoneDuringItsRestoreIsNamedWithBothCauses(how: String) throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let first = try f.backup("full")
        _ = try f.backup("full")
        let hold = try f.heldRestore()
        let verify = BackgroundVerify { try f.verify(set: first.label, pg: hold.pgbackrest) }
        defer {
            hold.release()
            _ = verify.wait()
        }
        #expect(hold.reached(), "the verify reached its restore")
        if how == "expired" {
            try f.pgbackrest.runChecked("expire", ["--set=\(first.label)"])
        } else {
            let setDirectory = f.repoPath + "/backup/\(f.pgbackrest.stanza)/\(first.label)"
            #expect(FileManager.default.fileExists(atPath: setDirectory + "/backup.manifest"), "\(setDirectory)")
            try FileManager.default.removeItem(atPath: setDirectory)
            try f.pgbackrest.runChecked("expire", [])  // reloads backup.info: the set without a manifest is dropped
        }
        #expect(try f.pgbackrest.info(allowNoBackups: true).first?.backup(label: first.label) == nil, "\(how): the set left backup.info")
        hold.release()
        let verified = try #require(verify.wait())
        #expect(!verified.passed)
        let restore = try #require(verified.checks.first { $0.name == "restore" })
        #expect(!restore.passed)
        #expect(restore.evidence.contains("the backup \(first.label) is no longer listed in the repo: either it was expired while this run restored it"), "\(restore.evidence)")
        #expect(restore.evidence.contains("which is repo damage"), "\(restore.evidence)")
        #expect(!restore.evidence.contains("not damage"), "\(restore.evidence)")
    }

    /// A backup run that holds the guard (its expire running) makes a verify wait for it instead of
    /// restoring under an expire.
    @Test func aVerifyWaitsForARunningExpire() throws {
        let f = try BackupFixture(retentionFull: 1)
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let holder = try f.connect()
        defer { holder.close() }
        let key = PgBackRest.expireGuardLock(stanza: f.pgbackrest.stanza)
        #expect(try holder.tryAdvisoryLock(key))
        let verify = BackgroundVerify { try f.verify() }
        defer { _ = try? holder.advisoryUnlock(key); _ = verify.wait() }
        // Still waiting after 2 s, before any scratch copy exists.
        Thread.sleep(forTimeInterval: 2)
        #expect(!verify.finished)
        #expect(f.scratchLeftovers().isEmpty, "the verify waits before it prepares a scratch copy")
        let unlockedAt = Date()
        #expect(try holder.advisoryUnlock(key))
        let verified = try #require(verify.wait())
        #expect(verified.passed, "\(verified.failedChecks)")
        // Its receipt starts once the guard is taken: after the unlock, not before.
        #expect(verified.startedAt >= unlockedAt, "started \(verified.startedAt), unlocked \(unlockedAt)")
        #expect(!verified.notes.contains { $0.contains("expire guard") }, "\(verified.notes)")
    }
}
