import Foundation
@testable import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// SIGTERM to a running `nfldb backup verify` (the built binary): the restored copy is stopped,
/// the scratch dir removed, and the process exits 128+15.
@Suite("backup verify: SIGTERM/SIGHUP tear the copy down; after SIGKILL the next run cleans up")
struct VerifySignalTests {
    /// Running, not a zombie waiting for a reaper (pid 1 in a container may never reap).
    static func isAlive(_ pid: pid_t) -> Bool { ProcessRunner.isRunning(pid) }

    /// Every process below `parent` that still runs (its children and theirs).
    static func children(of parent: pid_t) -> [pid_t] { ProcessRunner.descendants(of: parent).filter(ProcessRunner.isRunning) }

    /// A running `nfldb backup verify` (the built binary) against the fixture, stopped once the
    /// restored copy's postmaster has written its pid.
    struct Run {
        let child: ChildProcess
        let scratch: String
        let copy: LocalCluster
        let postmaster: pid_t
        let tmp: String
        var log: String { child.standardOutput + child.standardError }
    }

    func startVerify(_ f: BackupFixture, scratch: String, extra: [String] = []) throws -> Run {
        let copy = LocalCluster(root: scratch, port: 0, binaries: f.binaries, osUser: f.pgbackrest.osUser)
        let pidFile = (copy.dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        // nfldb's own temp files (each child's captured output) go here, so the test can see leftovers.
        let tmp = (f.root as NSString).appendingPathComponent("tmp-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let child = try CLIRunner.spawn(
            ["backup", "verify", "--dsn", f.dsn, "--scratch", scratch] + extra,
            environment: ["NFLDB_BACKUP_CONFIG": f.configPath, "NFLDB_BACKUP_STANZA": f.pgbackrest.stanza, "TMPDIR": tmp],
            workingDirectory: f.root)
        // The copy's postmaster has written its pid file: restore done, server starting or up.
        var exitedEarly: Int32?
        let started = poll(timeout: .seconds(180), interval: .milliseconds(10)) {
            if copy.postmasterPID != nil { return true }
            exitedEarly = child.exitStatus
            return exitedEarly != nil
        }
        if let exitedEarly {
            defer { child.removeOutput() }
            throw BackupError("verify exited (\(exitedEarly)) before the copy started: \(child.standardOutput + child.standardError)")
        }
        guard started, let postmaster = copy.postmasterPID else {
            child.kill9()
            defer { child.removeOutput() }
            throw BackupError("no pid in \(pidFile) within 180 s: \(child.standardOutput + child.standardError)")
        }
        return Run(child: child, scratch: scratch, copy: copy, postmaster: postmaster, tmp: tmp)
    }

    /// SIGTERM or SIGHUP once the copy runs: exit 128+signal, scratch dir gone, nothing left running.
    func signalTearsDown(_ signal: Int32) throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("scratch-signal-\(UUID().uuidString.prefix(6))")
        // The previous night's receipt said PASS; the interrupted run must not leave that standing.
        let receiptPath = (f.root as NSString).appendingPathComponent("receipt.json")
        try #"{"status": "ok", "stanza": "nfldb"}"#.write(toFile: receiptPath, atomically: true, encoding: .utf8)
        let run = try startVerify(f, scratch: scratch, extra: ["--receipt", receiptPath])
        defer {
            // Whatever failed above: no nfldb, server or scratch dir outlives the test.
            run.child.kill9()
            run.child.removeOutput()
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        #expect(Self.isAlive(run.postmaster), "the copy's postmaster \(run.postmaster) should be running when the signal is sent")

        try #require(run.child.isRunning, "nfldb exited before the signal: \(run.log)")
        run.child.send(signal)
        let status = run.child.wait(timeout: .seconds(60))
        try #require(status != nil, "nfldb still running 60 s after signal \(signal): \(run.log)")
        #expect(status == 128 + signal, "exit status after signal \(signal): \(run.log)")
        let name = signal == SIGTERM ? "SIGTERM" : "SIGHUP"
        #expect(run.child.standardError.contains("nfldb: backup verify interrupted by \(name): the copy \(scratch) was stopped and removed; nothing was recorded"),
                "one line says what happened: \(run.log)")
        let receipt = try String(contentsOfFile: receiptPath, encoding: .utf8)
        #expect(receipt.contains(#""status" : "interrupted""#) && receipt.contains("interrupted by \(name)"), "\(receipt)")
        #expect(poll(timeout: .seconds(5)) { !FileManager.default.fileExists(atPath: scratch) }, "scratch dir \(scratch) still there: \(run.log)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: run.tmp)) ?? ["unreadable"]).isEmpty,
                "nfldb left temp files in TMPDIR: \((try? FileManager.default.contentsOfDirectory(atPath: run.tmp)) ?? [])")
        #expect(poll(timeout: .seconds(5)) { BackupFixture.processes(mentioning: scratch).isEmpty },
                "processes still on the scratch dir: \(BackupFixture.processes(mentioning: scratch))")
        // Backends rename themselves ("postgres: checkpointer"), so also look for the postmaster's children.
        #expect(!Self.isAlive(run.postmaster), "the copy's postmaster \(run.postmaster) is still alive")
        #expect(Self.children(of: run.postmaster).isEmpty, "children of the copy's postmaster left: \(Self.children(of: run.postmaster))")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("a planted leftover whose data is a symlink to a live cluster's data directory: its server is not taken for the copy's, so the cleanup never stops it")
    func plantedDataSymlinkIsNotFollowed() throws {
        let f = try BackupFixture()
        defer { f.close() }
        let live = try #require(ScratchLeftovers.runningServer(dataDirectory: f.cluster.dataDirectory), "the fixture's own server is found by its real path")
        let planted = (f.root as NSString).appendingPathComponent("nfldb-verify-planted")
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(atPath: planted + "/data", withDestinationPath: f.cluster.dataDirectory)
        #expect(ScratchLeftovers.runningServer(dataDirectory: planted + "/data") == nil)
        // The whole cleanup, with a marker that claims a dead owner: the live server keeps running.
        try #"{"stanza":"nfldb","kept":false,"owner":{"pid":999999,"startTime":1}}"#.write(
            toFile: planted + "/" + ReusableScratch.markerName, atomically: true, encoding: .utf8)
        _ = ScratchLeftovers.cleanLeftovers(scratch: planted, stanza: f.pgbackrest.stanza, osUser: f.pgbackrest.osUser)
        #expect(Self.isAlive(live), "the live cluster's postmaster \(live) was stopped through the planted symlink")
        #expect(f.cluster.isRunning)
    }

    @Test("SIGTERM once the restored copy runs: exit 143, scratch dir gone, no process left on it")
    func sigtermTearsDown() throws { try signalTearsDown(SIGTERM) }

    @Test("SIGHUP (an ssh session that drops) is handled like SIGTERM: exit 129, scratch dir gone, no process left")
    func sighupTearsDown() throws { try signalTearsDown(SIGHUP) }

    /// The full repository check runs pgBackRest's `verify:local` workers below `pgbackrest verify`;
    /// stopping only their parent left them running on for seconds after nfldb had exited.
    @Test("SIGTERM while --full's repository check runs: exit 143, and no pgBackRest process of it outlives nfldb")
    func sigtermDuringFullRepoCheck() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("scratch-full-\(UUID().uuidString.prefix(6))")
        let child = try CLIRunner.spawn(
            ["backup", "verify", "--full", "--dsn", f.dsn, "--scratch", scratch],
            environment: ["NFLDB_BACKUP_CONFIG": f.configPath, "NFLDB_BACKUP_STANZA": f.pgbackrest.stanza],
            workingDirectory: f.root)
        defer {
            child.kill9()
            child.removeOutput()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        func repoCheck() -> [String] { BackupFixture.processes(mentioning: f.configPath).filter { $0.contains(" verify") } }
        let seen = poll(timeout: .seconds(120), interval: .milliseconds(2)) { repoCheck().contains { $0.contains("verify:local") } || child.exitStatus != nil }
        try #require(seen && child.isRunning, "no verify:local process seen while nfldb ran: \(child.standardOutput + child.standardError)")
        child.send(SIGTERM)
        let status = child.wait(timeout: .seconds(60))
        #expect(status == 128 + SIGTERM, "\(child.standardOutput + child.standardError)")
        // At once, not after a grace: nfldb waited for them before it exited.
        #expect(repoCheck().isEmpty, "pgBackRest verify processes left: \(repoCheck())")
    }

    @Test("SIGKILL leaves a running copy; the next fresh run stops and removes it, says so, and passes")
    func sigkillThenFreshRunCleansUp() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let killedScratch = (f.root as NSString).appendingPathComponent("nfldb-verify-killed")
        let run = try startVerify(f, scratch: killedScratch)
        defer {
            run.child.removeOutput()
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: killedScratch)
        }
        #expect(run.child.kill9() == 128 + SIGKILL, "\(run.log)")
        // The fault: the copy outlives nfldb.
        #expect(Self.isAlive(run.postmaster), "after SIGKILL the copy's postmaster should still run (that is the leftover)")
        #expect(FileManager.default.fileExists(atPath: killedScratch))

        let next = (f.root as NSString).appendingPathComponent("nfldb-verify-next")
        let receipt = try f.verify(scratch: next)
        #expect(receipt.passed, "\(receipt.renderText())")
        let note = receipt.notes.first { $0.contains(killedScratch) }
        #expect(note?.contains("stopped its server (pid \(run.postmaster))") == true, "\(receipt.notes)")
        #expect(note?.contains("removed the directory") == true, "\(receipt.notes)")
        #expect(receipt.renderText().contains("note: leftover of an earlier verify"), "the text output says so too")
        #expect(!FileManager.default.fileExists(atPath: killedScratch))
        #expect(!FileManager.default.fileExists(atPath: next))
        #expect(poll(timeout: .seconds(5)) { !Self.isAlive(run.postmaster) }, "the leftover postmaster \(run.postmaster) still runs")
        #expect(Self.children(of: run.postmaster).isEmpty)
        #expect(BackupFixture.processes(mentioning: killedScratch).isEmpty, "\(BackupFixture.processes(mentioning: killedScratch))")
    }

    @Test("SIGKILL during a --reuse-scratch run leaves a running kept copy; the next fresh run stops its server, keeps the directory, and passes; a kept copy in use is left alone")
    func sigkillThenFreshRunStopsTheKeptCopy() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let kept = (f.root as NSString).appendingPathComponent("nfldb-verify-kept")
        let run = try startVerify(f, scratch: kept, extra: ["--reuse-scratch"])
        defer {
            run.child.removeOutput()
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: kept)
        }
        #expect(run.child.kill9() == 128 + SIGKILL, "\(run.log)")
        #expect(Self.isAlive(run.postmaster), "after SIGKILL the kept copy's postmaster should still run")

        // While another run holds the kept copy's lock, a fresh run leaves it alone.
        let holder = try #require(try? ReusableScratch.lock(kept).get())
        let meanwhile = try f.verify(scratch: (f.root as NSString).appendingPathComponent("nfldb-verify-fresh1"))
        #expect(meanwhile.passed, "\(meanwhile.renderText())")
        #expect(!meanwhile.notes.contains { $0.contains(kept) }, "\(meanwhile.notes)")
        #expect(Self.isAlive(run.postmaster), "a kept copy in use is not touched")
        close(holder)

        let receipt = try f.verify(scratch: (f.root as NSString).appendingPathComponent("nfldb-verify-fresh2"))
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.notes.contains {
            $0.contains("kept copy \(kept)") && $0.contains("stopped its server (pid \(run.postmaster))") && $0.contains("stays for the next --reuse-scratch run")
        }, "\(receipt.notes)")
        #expect(poll(timeout: .seconds(5)) { !Self.isAlive(run.postmaster) }, "the kept copy's postmaster \(run.postmaster) still runs")
        #expect(FileManager.default.fileExists(atPath: (kept as NSString).appendingPathComponent(ReusableScratch.markerName)), "the kept copy stays")
        #expect(BackupFixture.processes(mentioning: kept).isEmpty, "\(BackupFixture.processes(mentioning: kept))")
        // And the next --reuse-scratch run reuses it (--delta) without finding anything to stop.
        let reused = try f.verify(scratch: kept, reuse: true)
        #expect(reused.passed, "\(reused.renderText())")
        #expect(!reused.notes.contains { $0.contains("leftover") }, "\(reused.notes)")
        #expect(reused.checks.contains { $0.name == "restore" && $0.evidence.contains("--delta") }, "\(reused.renderText())")
    }

    @Test("SIGKILL during a --reuse-scratch run leaves a running kept copy; the next --reuse-scratch run stops it, reuses it and passes")
    func sigkillThenReuseRunCleansUp() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let kept = (f.root as NSString).appendingPathComponent("kept-copy")
        let run = try startVerify(f, scratch: kept, extra: ["--reuse-scratch"])
        defer {
            run.child.removeOutput()
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: kept)
        }
        #expect(run.child.kill9() == 128 + SIGKILL, "\(run.log)")
        #expect(Self.isAlive(run.postmaster), "after SIGKILL the kept copy's postmaster should still run")

        let receipt = try f.verify(scratch: kept, reuse: true)
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.notes.contains { $0.contains("kept copy \(kept)") && $0.contains("stopped its server (pid \(run.postmaster))") },
                "\(receipt.notes)")
        #expect(receipt.checks.contains { $0.name == "restore" && $0.evidence.contains("--delta") }, "\(receipt.renderText())")
        #expect(!Self.isAlive(run.postmaster))
        #expect(FileManager.default.fileExists(atPath: (kept as NSString).appendingPathComponent(ReusableScratch.markerName)), "the kept copy stays")
        #expect(!run.copy.isRunning, "the kept copy is stopped after the run")
        #expect(BackupFixture.processes(mentioning: kept).isEmpty, "\(BackupFixture.processes(mentioning: kept))")
    }
}
