import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// SIGTERM to a running `nfldb backup verify` (the built binary): the restored copy is stopped,
/// the scratch dir removed, and the process exits 128+15.
@Suite("backup verify: SIGTERM tears the copy down")
struct VerifySignalTests {
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

    @Test("SIGTERM once the restored copy runs: exit 143, scratch dir gone, no process left on it")
    func sigtermTearsDown() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("scratch-sigterm-\(UUID().uuidString.prefix(6))")
        let copy = LocalCluster(root: scratch, port: 0, binaries: f.binaries, osUser: f.pgbackrest.osUser)
        let pidFile = (copy.dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("PG") && !$0.key.hasPrefix("NFLDB_") && $0.key != "DATABASE_URL"
        }
        environment["NFLDB_BACKUP_CONFIG"] = f.configPath
        environment["NFLDB_BACKUP_STANZA"] = f.pgbackrest.stanza
        // nfldb's own temp files (each child's captured output) go here, so the test can see leftovers.
        let tmp = (f.root as NSString).appendingPathComponent("tmp")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        environment["TMPDIR"] = tmp
        let child = try ChildProcess.spawn(
            CLIRunner.binary, ["backup", "verify", "--dsn", f.dsn, "--scratch", scratch], environment: environment, workingDirectory: f.root)
        defer {
            // Whatever failed above: no nfldb, server or scratch dir outlives the test.
            child.kill9()
            child.removeOutput()
            if copy.isRunning { try? copy.stop(mode: "immediate", logger: f.logger) }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        func log() -> String { child.outputTail(40) }

        // The copy's postmaster has written its pid file: restore done, server starting or up.
        let started = poll(timeout: .seconds(180)) { copy.postmasterPID != nil || !child.isRunning }
        if let exitedEarly = child.exitStatus { Issue.record("verify exited (\(exitedEarly)) before the copy started: \(log())"); return }
        let postmaster = try #require(started ? copy.postmasterPID : nil, "no pid in \(pidFile) within 180 s: \(log())")
        #expect(Self.isAlive(postmaster), "the copy's postmaster \(postmaster) should be running when SIGTERM is sent")

        child.send(SIGTERM)
        let status = child.wait(timeout: .seconds(60))
        try #require(status != nil, "nfldb still running 60 s after SIGTERM: \(log())")
        #expect(status == 143, "exit status after SIGTERM: \(log())")
        #expect(poll(timeout: .seconds(5)) { !FileManager.default.fileExists(atPath: scratch) }, "scratch dir \(scratch) still there: \(log())")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? ["unreadable"]).isEmpty,
                "nfldb left temp files in TMPDIR: \((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [])")
        #expect(poll(timeout: .seconds(5)) { BackupFixture.processes(mentioning: scratch).isEmpty },
                "processes still on the scratch dir: \(BackupFixture.processes(mentioning: scratch))")
        // Backends rename themselves ("postgres: checkpointer"), so also look for the postmaster's children.
        #expect(!Self.isAlive(postmaster), "the copy's postmaster \(postmaster) is still alive")
        #expect(Self.children(of: postmaster).isEmpty, "children of the copy's postmaster left: \(Self.children(of: postmaster))")
        #expect(f.scratchLeftovers().isEmpty)
    }
}
