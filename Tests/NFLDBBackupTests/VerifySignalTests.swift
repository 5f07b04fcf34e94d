import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// SIGTERM to a running `nfldb backup verify` (the built binary): the restored copy is stopped,
/// the scratch dir removed, and the process exits 128+15.
@Suite("backup verify: SIGTERM/SIGHUP tear the copy down; after SIGKILL the next run cleans up")
struct VerifySignalTests {
    /// Starts `argv` with stdout/stderr to files, default signal dispositions and an empty signal
    /// mask (a test runs on a worker thread that blocks most signals; the child must not inherit that).
    func spawn(_ argv: [String], environment: [String: String], directory: String, output: String) throws -> pid_t {
        let wrapped = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGHUP)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let env = environment.map { "\($0.key)=\($0.value)" }
        let cArgs = wrapped.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, wrapped[0], &actions, &attributes, cArgs, cEnv)
        try #require(status == 0, "could not start \(argv.joined(separator: " ")): \(String(cString: strerror(status)))")
        return pid
    }

    /// The exit status (128+signal when killed), or nil if `pid` is still running after `timeout`.
    func wait(_ pid: pid_t, timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        repeat {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            if r < 0 && errno != EINTR { return nil }
            if ContinuousClock.now >= deadline { break }
            Thread.sleep(forTimeInterval: 0.02)
        } while true
        return nil
    }

    func poll(_ timeout: Duration, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }

    /// Fields of /proc/PID/stat after the command name: state, ppid, …
    static func stat(_ pid: pid_t) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Running, not a zombie waiting for a reaper (pid 1 in a container may never reap).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let fields = stat(pid), let state = fields.first else { return false }
        return state != "Z" && state != "X"
    }

    static func children(of parent: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init).filter { pid in
            guard let fields = stat(pid), fields.count > 1 else { return false }
            return pid_t(fields[1]) == parent && isAlive(pid)
        }
    }

    /// A running `nfldb backup verify` (the built binary) against the fixture, stopped once the
    /// restored copy's postmaster has written its pid.
    struct Run {
        let pid: pid_t
        let scratch: String
        let copy: LocalCluster
        let postmaster: pid_t
        let output: String
        let tmp: String
        var log: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
    }

    func startVerify(_ f: BackupFixture, scratch: String, extra: [String] = []) throws -> Run {
        let copy = LocalCluster(root: scratch, port: 0, binaries: f.binaries, osUser: f.pgbackrest.osUser)
        let pidFile = (copy.dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        let output = (f.root as NSString).appendingPathComponent("verify-\(UUID().uuidString.prefix(6)).out")
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("PG") && !$0.key.hasPrefix("NFLDB_") && $0.key != "DATABASE_URL"
        }
        environment["NFLDB_BACKUP_CONFIG"] = f.configPath
        environment["NFLDB_BACKUP_STANZA"] = f.pgbackrest.stanza
        // nfldb's own temp files (each child's captured output) go here, so the test can see leftovers.
        let tmp = (f.root as NSString).appendingPathComponent("tmp-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        environment["TMPDIR"] = tmp
        let pid = try spawn([CLIRunner.binary, "backup", "verify", "--dsn", f.dsn, "--scratch", scratch] + extra,
                            environment: environment, directory: f.root, output: output)
        func log() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        // The copy's postmaster has written its pid file: restore done, server starting or up.
        var exitedEarly: Int32?
        let started = poll(.seconds(180)) {
            if copy.postmasterPID != nil { return true }
            exitedEarly = wait(pid, timeout: .zero)
            return exitedEarly != nil
        }
        if let exitedEarly { throw BackupError("verify exited (\(exitedEarly)) before the copy started: \(log())") }
        guard started, let postmaster = copy.postmasterPID else {
            kill(pid, SIGKILL)
            _ = wait(pid, timeout: .seconds(10))
            throw BackupError("no pid in \(pidFile) within 180 s: \(log())")
        }
        return Run(pid: pid, scratch: scratch, copy: copy, postmaster: postmaster, output: output, tmp: tmp)
    }

    /// SIGTERM or SIGHUP once the copy runs: exit 128+signal, scratch dir gone, nothing left running.
    func signalTearsDown(_ signal: Int32) throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("scratch-signal-\(UUID().uuidString.prefix(6))")
        let run = try startVerify(f, scratch: scratch)
        var reaped = false
        defer {
            // Whatever failed above: no nfldb, server or scratch dir outlives the test.
            if !reaped {
                kill(run.pid, SIGKILL)
                _ = wait(run.pid, timeout: .seconds(10))
            }
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        #expect(Self.isAlive(run.postmaster), "the copy's postmaster \(run.postmaster) should be running when the signal is sent")

        #expect(kill(run.pid, signal) == 0)
        let status = wait(run.pid, timeout: .seconds(60))
        reaped = status != nil
        try #require(status != nil, "nfldb still running 60 s after signal \(signal): \(run.log)")
        #expect(status == 128 + signal, "exit status after signal \(signal): \(run.log)")
        #expect(poll(.seconds(5)) { !FileManager.default.fileExists(atPath: scratch) }, "scratch dir \(scratch) still there: \(run.log)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: run.tmp)) ?? ["unreadable"]).isEmpty,
                "nfldb left temp files in TMPDIR: \((try? FileManager.default.contentsOfDirectory(atPath: run.tmp)) ?? [])")
        #expect(poll(.seconds(5)) { BackupFixture.processes(mentioning: scratch).isEmpty },
                "processes still on the scratch dir: \(BackupFixture.processes(mentioning: scratch))")
        // Backends rename themselves ("postgres: checkpointer"), so also look for the postmaster's children.
        #expect(!Self.isAlive(run.postmaster), "the copy's postmaster \(run.postmaster) is still alive")
        #expect(Self.children(of: run.postmaster).isEmpty, "children of the copy's postmaster left: \(Self.children(of: run.postmaster))")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("SIGTERM once the restored copy runs: exit 143, scratch dir gone, no process left on it")
    func sigtermTearsDown() throws { try signalTearsDown(SIGTERM) }

    @Test("SIGHUP (an ssh session that drops) is handled like SIGTERM: exit 129, scratch dir gone, no process left")
    func sighupTearsDown() throws { try signalTearsDown(SIGHUP) }

    @Test("SIGKILL leaves a running copy; the next fresh run stops and removes it, says so, and passes")
    func sigkillThenFreshRunCleansUp() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let killedScratch = (f.root as NSString).appendingPathComponent("nfldb-verify-killed")
        let run = try startVerify(f, scratch: killedScratch)
        defer {
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: killedScratch)
        }
        #expect(kill(run.pid, SIGKILL) == 0)
        #expect(wait(run.pid, timeout: .seconds(20)) == 128 + SIGKILL)
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
        #expect(poll(.seconds(5)) { !Self.isAlive(run.postmaster) }, "the leftover postmaster \(run.postmaster) still runs")
        #expect(Self.children(of: run.postmaster).isEmpty)
        #expect(BackupFixture.processes(mentioning: killedScratch).isEmpty, "\(BackupFixture.processes(mentioning: killedScratch))")
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
            if run.copy.isRunning { try? run.copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: kept)
        }
        #expect(kill(run.pid, SIGKILL) == 0)
        #expect(wait(run.pid, timeout: .seconds(20)) == 128 + SIGKILL)
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
