import Foundation
import NFLDBCore
import Testing

@Suite("ProcessRunner")
struct ProcessRunnerTests {
    @Test("output directories left by an nfldb process that is gone (SIGKILLed) are swept; a live process's, a foreign name and a symlink stay")
    func sweepsStaleOutput() throws {
        try withTemporaryDirectory { dir in
            // A pid that existed and is gone now: the shell that printed it has exited.
            let gone = try #require(Int32(try ProcessRunner().run("/bin/sh", ["-c", "echo $$"]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)))
            let fm = FileManager.default
            for name in ["nfldb-proc-\(gone)-A", "nfldb-proc-\(getpid())-B", "nfldb-proc-1-C", "other-\(gone)"] {
                try fm.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
                try "x".write(toFile: dir + "/" + name + "/out", atomically: true, encoding: .utf8)
            }
            try fm.createSymbolicLink(atPath: dir + "/nfldb-proc-\(gone)-link", withDestinationPath: dir + "/other-\(gone)")
            ProcessRunner.sweepStaleTemporaryFiles(in: dir)
            let left = try fm.contentsOfDirectory(atPath: dir).sorted()
            #expect(left == ["nfldb-proc-1-C", "nfldb-proc-\(getpid())-B", "nfldb-proc-\(gone)-link", "other-\(gone)"].sorted(), "\(left)")
            #expect(fm.fileExists(atPath: dir + "/other-\(gone)/out"), "a symlink is never followed")
        }
    }

    @Test("a non-zero exit is returned as a result, with stdout and stderr captured")
    func nonZeroExit() throws {
        let result = try ProcessRunner().run("/bin/sh", ["-c", "echo out; echo err1 >&2; echo err2 >&2; exit 3"])
        #expect(result.status == 3)
        #expect(!result.succeeded)
        #expect(result.standardOutput == "out\n")
        #expect(result.standardError == "err1\nerr2\n")
        #expect(result.stderrTail(1) == "err2")
        #expect(result.stderrTail() == "err1\nerr2")
        #expect(result.command == ["/bin/sh", "-c", "echo out; echo err1 >&2; echo err2 >&2; exit 3"])
    }

    @Test("success, PATH lookup, environment and working directory")
    func success() throws {
        try withTemporaryDirectory { dir in
            let result = try ProcessRunner().run(
                "sh", ["-c", "printf '%s|%s' \"$NFLDB_PROBE\" \"$(pwd)\""], environment: ["NFLDB_PROBE": "probe value", "PATH": "/usr/bin:/bin"],
                workingDirectory: dir)
            #expect(result.succeeded)
            let resolvedDir = (dir as NSString).resolvingSymlinksInPath
            #expect(result.standardOutput == "probe value|\(resolvedDir)" || result.standardOutput == "probe value|\(dir)")
        }
    }

    @Test("a death by signal is reported as 128 + signal")
    func signalled() throws {
        let result = try ProcessRunner().run("/bin/sh", ["-c", "kill -9 $$"])
        #expect(result.status == 128 + 9)
    }

    @Test("a program that outlives its timeout is stopped (the child is gone afterwards) and the run throws")
    func timeout() throws {
        try withTemporaryDirectory { dir in
            let pidFile = dir + "/pid"
            let start = ContinuousClock.now
            let error = #expect(throws: ProcessError.self) {
                try ProcessRunner().run("/bin/sh", ["-c", "echo $$ > \"$0\"; exec sleep 30", pidFile], timeout: .milliseconds(300))
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .seconds(3), "the child got SIGTERM right after the timeout, not the 5 s SIGKILL grace: \(elapsed)")
            #expect(error?.description.contains("sh did not finish within") == true)
            let pid = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!processExists(pid), "the timed-out child \(pid) still exists")
        }
    }

    @Test("a child that ignores SIGTERM is killed with SIGKILL after the grace period")
    func timeoutEscalates() throws {
        try withTemporaryDirectory { dir in
            let pidFile = dir + "/pid"
            let start = ContinuousClock.now
            #expect(throws: ProcessError.self) {
                try ProcessRunner().run("/bin/sh", ["-c", "trap '' TERM; echo $$ > \"$0\"; exec sleep 30", pidFile], timeout: .milliseconds(200))
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .seconds(5) && elapsed < .seconds(15), "SIGKILL came after the 5 s grace: \(elapsed)")
            let pid = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!processExists(pid), "the child \(pid) survived SIGKILL")
        }
    }

    @Test("a missing program throws instead of returning a status")
    func missingProgram() {
        let onPath = #expect(throws: ProcessError.self) {
            try ProcessRunner().run("nfldb-no-such-program-xyz", [])
        }
        #expect(onPath?.description.contains("nfldb-no-such-program-xyz was not found on PATH") == true)
        let absolute = #expect(throws: ProcessError.self) {
            try ProcessRunner().run("/nonexistent/bin/tool", [])
        }
        #expect(absolute?.description.contains("/nonexistent/bin/tool is not an executable file") == true)
    }

    @Test("runAsUser wraps the command in runuser only when running as root")
    func runAsUserWrapping() throws {
        let wrapped = ProcessRunner(runAsUser: "postgres").commandLine("/usr/bin/id", ["-un"])
        if ProcessRunner.isRoot {
            #expect(wrapped == ["/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/id", "-un"])
        } else {
            #expect(wrapped == ["/usr/bin/id", "-un"])
        }
        #expect(ProcessRunner(runAsUser: nil).commandLine("/usr/bin/id", ["-un"]) == ["/usr/bin/id", "-un"])
        #expect(ProcessRunner(runAsUser: "root").commandLine("/usr/bin/id", ["-un"]) == ["/usr/bin/id", "-un"])
        // Cross-checked by a child process rather than restating isRoot's definition.
        let uid = try ProcessRunner().run("/usr/bin/id", ["-u"]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ProcessRunner.isRoot == (uid == "0"), "id -u says \(uid)")
    }

    @Test("niceness runs the child at a lower CPU priority (also through runuser); without it the child keeps ours")
    func niceness() throws {
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let plain = try ProcessRunner().run("nice", [])
        #expect(plain.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == String(own))
        let niced = try ProcessRunner(niceness: 7).run("nice", [])
        #expect(niced.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == String(min(19, own + 7)), "\(niced)")
        if ProcessRunner.isRoot, getpwnam("postgres") != nil {
            let asUser = try ProcessRunner(runAsUser: "postgres", niceness: 19).run("nice", [])
            #expect(asUser.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "19", "\(asUser)")
            #expect(ProcessRunner(runAsUser: "postgres", niceness: 19).commandLine("/usr/bin/id", []).suffix(5)
                    == ["/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/id"])
        }
    }

    @Test("as root, runAsUser really runs the program as that user", .enabled(if: geteuid() == 0 && getpwnam("postgres") != nil))
    func runAsUserForReal() throws {
        let result = try ProcessRunner(runAsUser: "postgres").run("/usr/bin/id", ["-un"])
        #expect(result.succeeded)
        #expect(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "postgres")
    }
}

@Suite("ProcessRunner signal hygiene")
struct ProcessRunnerSignalTests {
    @Test("children start with no blocked signals even when the spawning thread blocks some")
    func cleanSignalMask() throws {
        // Dispatch worker threads (where async code and tests run) block most signals.
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        sigaddset(&block, SIGINT)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &block, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let result = try ProcessRunner().run("/bin/sh", ["-c", "grep '^SigBlk' /proc/self/status"])
        #expect(result.standardOutput == "SigBlk:\t0000000000000000\n")

        try withTemporaryDirectory { dir in
            let pidFile = dir + "/pid"
            let start = ContinuousClock.now
            #expect(throws: ProcessError.self) {
                try ProcessRunner().run("/bin/sh", ["-c", "echo $$ > \"$0\"; exec sleep 30", pidFile], timeout: .milliseconds(200))
            }
            #expect(ContinuousClock.now - start < .seconds(3), "SIGTERM reached the child")
            let pid = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!processExists(pid), "the child \(pid) still exists")
        }
    }
}

/// Whether `pid` names a process (any state); `kill(pid, 0)` fails with ESRCH once it is gone and reaped.
func processExists(_ pid: pid_t) -> Bool {
    kill(pid, 0) == 0 || errno != ESRCH
}

@Suite("ProcessRunner leaves no grandchildren")
struct ProcessRunnerDescendantTests {
    /// `sh -c 'sleep 300 & …; wait'` dies on SIGTERM and its `sleep` would run on as an orphan (as
    /// pgBackRest's `restore:local` processes did for seconds after a stopped restore, seen by the
    /// queue's backup.verify test as a process left in the scratch directory).
    static let script = #"sleep 300 & echo $! > "$0"; wait"#

    @Test("a timed-out child's own children are stopped too")
    func timeoutStopsGrandchildren() throws {
        try withTemporaryDirectory { dir in
            let pidFile = dir + "/grandchild"
            #expect(throws: ProcessError.self) {
                try ProcessRunner().run("/bin/sh", ["-c", Self.script, pidFile], timeout: .milliseconds(300))
            }
            let grandchild = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!ProcessRunner.isRunning(grandchild), "the grandchild \(grandchild) still runs")
        }
    }

    @Test("a cancelled child's own children are stopped too; descendants(of:) sees them while they run")
    func cancellationStopsGrandchildren() throws {
        try withTemporaryDirectory { dir in
            let pidFile = dir + "/grandchild"
            let cancellation = ProcessCancellation()
            let watcher = Thread {
                let deadline = ContinuousClock.now + .seconds(10)
                while (try? String(contentsOfFile: pidFile, encoding: .utf8))?.hasSuffix("\n") != true && ContinuousClock.now < deadline {
                    Thread.sleep(forTimeInterval: 0.02)
                }
                let seen = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                if let seen, ProcessRunner.descendants(of: getpid()).contains(seen) { try? "seen".write(toFile: dir + "/seen", atomically: true, encoding: .utf8) }
                cancellation.cancel()
            }
            watcher.start()
            #expect(throws: ProcessError.self) {
                try ProcessRunner().run("/bin/sh", ["-c", Self.script, pidFile], timeout: .seconds(60), cancellation: cancellation)
            }
            #expect(FileManager.default.fileExists(atPath: dir + "/seen"), "descendants(of: getpid()) listed the grandchild")
            let grandchild = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(!ProcessRunner.isRunning(grandchild), "the grandchild \(grandchild) still runs")
        }
    }
}
