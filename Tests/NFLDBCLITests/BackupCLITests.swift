import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@Suite("nfldb backup against the sandbox, with no extra configuration")
struct BackupCLITests {
    @Test("sandbox env → backup init, run full/diff, info, verify (exit 0); health backups OK; errors exit 1/2")
    func sandboxBackupFlow() throws {
        try withScratchDirectory("nfldb-backup-cli") { dir in
            let state = (dir as NSString).appendingPathComponent("state")
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }
            let up = try nfldb("sandbox", "up", "--dir", state)
            #expect(up.status == 0, "\(up.standardError)")
            let env = try SandboxCLITests.parseExports(try nfldb("sandbox", "env", "--dir", state).standardOutput)
            #expect(env["NFLDB_BACKUP_CONFIG"] != nil)
            #expect(env["NFLDB_BACKUP_STANZA"] == "nfldb")
            let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

            let migrate = try nfldb("migrate", "up", "-q", env: env, in: repoRoot)
            #expect(migrate.status == 0, "\(migrate.standardError)")
            let initResult = try nfldb("backup", "init", env: env)
            #expect(initResult.status == 0, "\(initResult.allOutput)")
            let check = try nfldb("backup", "config", "--check", env: env)
            #expect(check.status == 0, "\(check.allOutput)")
            #expect(check.standardOutput.contains("ok    archive_command = pgbackrest --config="))

            // An S3 repo rendered from flags: the key pair comes from the environment, the secret is redacted.
            var s3env = env
            s3env["NFLDB_TEST_S3_KEY"] = "AKIANFLDBTEST"
            s3env["NFLDB_TEST_S3_SECRET"] = "s3-secret-never-printed"
            let s3 = try nfldb("backup", "config", "--repo-type", "s3", "--s3-bucket", "nfl-backups", "--s3-endpoint", "s3.us-east-1.amazonaws.com",
                               "--s3-region", "us-east-1", "--s3-key-env", "NFLDB_TEST_S3_KEY,NFLDB_TEST_S3_SECRET", env: s3env)
            #expect(s3.status == 0, "\(s3.allOutput)")
            #expect(s3.standardOutput.contains("repo1-type=s3\nrepo1-s3-bucket=nfl-backups\n"))
            #expect(s3.standardOutput.contains("repo1-s3-key=AKIANFLDBTEST"))
            #expect(!s3.allOutput.contains("s3-secret-never-printed"))
            let s3missing = try nfldb("backup", "config", "--repo-type", "s3", "--s3-bucket", "nfl-backups", env: env)
            #expect(s3missing.status == 2)
            #expect(s3missing.standardError.contains("an s3 repo needs s3-endpoint"))

            let full = try nfldb("backup", "run", "--type", "full", "--format", "json", env: env)
            #expect(full.status == 0, "\(full.allOutput)")
            let report = try jsonObject(full.standardOutput)
            #expect((report["label"] as? String)?.hasSuffix("F") == true)
            #expect(report["retention"] as? String == "applied", "\(report)")
            #expect(((report["counts"] as? [String: Any])?.count ?? 0) > 0)
            let diff = try nfldb("backup", "run", "--type", "diff", env: env)
            #expect(diff.status == 0, "\(diff.allOutput)")
            #expect(diff.standardOutput.contains("; retention applied: nothing expired"), "\(diff.allOutput)")

            let info = try nfldb("backup", "info", env: env)
            #expect(info.status == 0, "\(info.allOutput)")
            #expect(info.standardOutput.contains("stanza nfldb: status 0 (ok)"))
            #expect(info.standardOutput.contains(" diff "))

            let verify = try nfldb("backup", "verify", "--receipt", "\(dir)/receipt.json", env: env)
            #expect(verify.status == 0, "\(verify.allOutput)")
            #expect(verify.standardOutput.contains("backup verify PASSED"))
            let receipt = try jsonObject(try String(contentsOfFile: "\(dir)/receipt.json", encoding: .utf8))
            #expect(receipt["status"] as? String == "ok")

            // --reuse-scratch: the first run keeps the stopped copy, the second restores into it with --delta.
            let kept = "\(dir)/kept-copy"
            let reuse1 = try nfldb("backup", "verify", "--reuse-scratch", "--scratch", kept, "--amcheck-jobs", "1", env: env)
            #expect(reuse1.status == 0, "\(reuse1.allOutput)")
            #expect(reuse1.standardOutput.contains("pg_amcheck --all --heapallindexed --jobs=1 clean"))
            // A bad backup.verify.amcheck_jobs (here from the environment) is refused at start-up (exit 2,
            // naming where it came from), but --amcheck-jobs replaces it before it is checked.
            var badJobsEnv = env
            badJobsEnv["NFLDB_BACKUP_VERIFY_AMCHECK_JOBS"] = "0"
            let badSetting = try nfldb("backup", "verify", "--reuse-scratch", "--scratch", kept, env: badJobsEnv)
            #expect(badSetting.status == 2, "\(badSetting.allOutput)")
            #expect(badSetting.standardError.contains("backup.verify.amcheck_jobs: 0 is below its minimum 1"), "\(badSetting.allOutput)")
            let reuse2 = try nfldb("backup", "verify", "--reuse-scratch", "--scratch", kept, "--amcheck-jobs", "2", env: badJobsEnv)
            #expect(reuse2.status == 0, "\(reuse2.allOutput)")
            #expect(reuse2.standardOutput.contains("(--delta:"))
            #expect(reuse2.standardOutput.contains("--jobs=2"), "\(reuse2.standardOutput)")
            #expect(FileManager.default.fileExists(atPath: "\(kept)/data/PG_VERSION"))
            #expect(!FileManager.default.fileExists(atPath: "\(kept)/data/postmaster.pid"))
            // A stale postmaster.pid in the kept copy (a crash or reboot; its pid reused since, here by
            // init) is not "a server running on it": the next --reuse-scratch run passes (an attack probe
            // got a failed verification, and a page, every night).
            try "1\n\(kept)/data\n".write(toFile: "\(kept)/data/postmaster.pid", atomically: true, encoding: .utf8)
            let stale = try nfldb("backup", "verify", "--reuse-scratch", "--scratch", kept, "--amcheck-jobs", "1", env: env)
            #expect(stale.status == 0, "\(stale.allOutput)")
            #expect(!stale.allOutput.contains("(pid 1) is running"), "\(stale.allOutput)")
            #expect(stale.standardOutput.contains("note: removed a stale postmaster.pid (pid 1, no postgres working in \(kept)/data"), "\(stale.allOutput)")
            let badJobs = try nfldb("backup", "verify", "--amcheck-jobs", "0", env: env)
            #expect(badJobs.status == 2)
            #expect(badJobs.standardError.contains("flag --amcheck-jobs: backup.verify.amcheck_jobs: 0 is below its minimum 1"), "\(badJobs.allOutput)")

            let health = try nfldb("health", "--check", "backups", env: env)
            #expect(health.status == 0, "\(health.allOutput)")

            // backup restore --format json: what was restored where, and the next step; a refusal is JSON too.
            let restoredTo = "\(dir)/restored"
            let restored = try nfldb("backup", "restore", "--to", restoredTo, "--format", "json", env: env)
            #expect(restored.status == 0, "\(restored.allOutput)")
            let restoredReport = try jsonObject(restored.standardOutput)
            #expect(restoredReport["status"] as? String == "restored" && restoredReport["target"] as? String == restoredTo, "\(restoredReport)")
            #expect((restoredReport["next_step"] as? String)?.contains("pg_ctl -D \(restoredTo) start") == true, "\(restoredReport)")
            #expect(restoredReport["delta"] as? Bool == false && (restoredReport["tablespaces"] as? [Any])?.isEmpty == true, "\(restoredReport)")
            // The primary was reachable: the restore held the expire guard, so no note.
            #expect((restoredReport["notes"] as? [Any])?.isEmpty == true, "\(restoredReport)")
            #expect(FileManager.default.fileExists(atPath: "\(restoredTo)/PG_VERSION"))
            let again = try nfldb("backup", "restore", "--to", restoredTo, "--format", "json", env: env)
            #expect(again.status == 2, "\(again.allOutput)")
            let refusal = try jsonObject(again.standardOutput)
            #expect(refusal["status"] as? String == "refused" && (refusal["error"] as? String)?.contains(restoredTo) == true, "\(refusal)")
            #expect(refusal["hint"] as? String != nil, "\(refusal)")
            // A failure (exit 1) is one JSON object on stdout too (before, stdout was empty): here a
            // stanza of the same repo that has no backup.
            var noStanza = env
            noStanza["NFLDB_BACKUP_STANZA"] = "nosuch"
            let failedRestore = try nfldb("backup", "restore", "--to", "\(dir)/restored-none", "--format", "json", env: noStanza)
            #expect(failedRestore.status == 1, "\(failedRestore.allOutput)")
            let failedReport = try jsonObject(failedRestore.standardOutput)
            #expect(failedReport["status"] as? String == "failed" && failedReport["error"] as? String != nil, "\(failedReport)")
            // A relative --to (new, or an existing empty directory) is taken from the working
            // directory: before, a new one made the command spin forever, an existing one was
            // chowned and then refused by pgBackRest (exit 1). A symlink is refused, not followed;
            // a path inside the repository is refused (the next expire would delete it).
            for relative in ["relrestore", "rel1"] {
                if relative == "rel1" { try FileManager.default.createDirectory(atPath: "\(dir)/rel1", withIntermediateDirectories: true) }
                let result = try nfldb("backup", "restore", "--to", relative, "--format", "json", env: env, in: dir)
                #expect(result.status == 0, "\(relative): \(result.allOutput)")
                #expect((try? jsonObject(result.standardOutput))?["target"] as? String == "\(dir)/\(relative)", "\(result.standardOutput)")
                #expect(FileManager.default.fileExists(atPath: "\(dir)/\(relative)/PG_VERSION"))
            }
            let emptyDir = "\(dir)/empty-target", link = "\(dir)/link-to-empty"
            try FileManager.default.createDirectory(atPath: emptyDir, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: emptyDir)
            let linked = try nfldb("backup", "restore", "--to", link, env: env)
            #expect(linked.status == 2 && linked.standardError.contains("(a symlink)"), "\(linked.allOutput)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: emptyDir).isEmpty)
            let config = try String(contentsOfFile: try #require(env["NFLDB_BACKUP_CONFIG"]), encoding: .utf8)
            let repo = try #require(config.split(separator: "\n").first { $0.hasPrefix("repo1-path=") }).dropFirst("repo1-path=".count)
            let intoRepo = try nfldb("backup", "restore", "--to", "\(repo)/restored-here", env: env)
            #expect(intoRepo.status == 2 && intoRepo.standardError.contains("is inside (or holds) the pgBackRest repository"), "\(intoRepo.allOutput)")
            #expect(!FileManager.default.fileExists(atPath: "\(repo)/restored-here"))

            var wrong = env
            wrong["NFLDB_BACKUP_STANZA"] = "nflbd"
            let wrongInfo = try nfldb("backup", "info", env: wrong)
            #expect(wrongInfo.status == 1)
            #expect(wrongInfo.standardError.contains("stanza nflbd is not usable: pgBackRest status 1 (missing stanza path)"))
            let wrongVerify = try nfldb("backup", "verify", env: wrong)
            #expect(wrongVerify.status == 1)
            #expect(wrongVerify.standardError.contains("repo-info"))

            var noConfig = env
            noConfig.removeValue(forKey: "NFLDB_BACKUP_CONFIG")
            let missing = try nfldb("backup", "run", env: noConfig)
            #expect(missing.status == 2)
            #expect(missing.standardError.contains("backup.config is not set"))
        }
    }

    /// pgBackRest processes running `backup` against this config (its workers too).
    static func pgbackrestBackups(_ config: String) -> [pid_t] {
        SandboxCLITests.processes(mentioning: config).compactMap { pid_t($0) }.filter { pid in
            let argv = ((FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map { String(decoding: $0, as: UTF8.self) } ?? "")
                .split(separator: "\0").map(String.init)
            return (argv.first ?? "").hasSuffix("pgbackrest") && argv.contains { $0 == "backup" || $0.hasPrefix("backup:") }
        }
    }

    @Test("backup run stopped: SIGTERM stops pgBackRest and records the run failed (exit 143, one line); after kill -9 health names the orphaned row and the next run marks it")
    func interruptedBackupRun() throws {
        try SandboxCLITests.withMigratedSandbox("nfldb-backup-stop") { _, env in
            let config = try #require(env["NFLDB_BACKUP_CONFIG"])
            try #require(try nfldb("backup", "init", env: env).status == 0)
            let first = try nfldb("backup", "run", "--type", "full", env: env)
            try #require(first.status == 0, "\(first.allOutput)")
            func sql(_ text: String) throws -> String {
                let result = try ProcessRunner().run("/usr/bin/psql", ["-X", "-At", "-c", text], environment: ProcessInfo.processInfo.environment.merging(env) { $1 })
                return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            // Archiving broken for a while: pgBackRest then waits (archive-timeout) for the backup's WAL, long enough to stop it.
            _ = try sql("ALTER SYSTEM SET archive_command = 'false pgbackrest'")  // pgBackRest insists on the word
            _ = try sql("SELECT pg_reload_conf()")
            defer {
                for pid in Self.pgbackrestBackups(config) { kill(pid, SIGKILL) }
                _ = try? sql("ALTER SYSTEM RESET archive_command")
                _ = try? sql("SELECT pg_reload_conf()")
            }
            func startRun() throws -> (ChildProcess, String) {
                let child = try CLIRunner.spawn(["backup", "run", "--type", "incr"], environment: env)
                var id = ""
                try waitUntil("a running row and pgBackRest started: \(child.outputTail())", timeout: .seconds(60)) {
                    id = try sql("SELECT id FROM nfldb.backup_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1")
                    return !id.isEmpty && child.handles(SIGTERM) && !Self.pgbackrestBackups(config).isEmpty
                }
                return (child, id)
            }

            let (stopped, stoppedID) = try startRun()
            defer { stopped.removeOutput() }
            stopped.send(SIGTERM)
            let status = stopped.wait(timeout: .seconds(60))
            #expect(status == 128 + SIGTERM, "\(String(describing: status)): \(stopped.outputTail())")
            #expect(stopped.standardError.contains("backup run interrupted by SIGTERM: pgBackRest was stopped") && stopped.standardError.contains("run \(stoppedID) recorded as failed"),
                    "\(stopped.outputTail())")
            #expect(try sql("SELECT status || ' ' || error FROM nfldb.backup_runs WHERE id = \(stoppedID)") == "failed interrupted by SIGTERM")
            #expect(try poll(timeout: .seconds(15)) { Self.pgbackrestBackups(config).isEmpty }, "pgBackRest does not finish as an orphan")

            let (killed, killedID) = try startRun()
            defer { killed.removeOutput() }
            killed.kill9()
            for pid in Self.pgbackrestBackups(config) { kill(pid, SIGKILL) }
            #expect(try sql("SELECT status FROM nfldb.backup_runs WHERE id = \(killedID)") == "running")
            let health = try nfldb("health", "--check", "backups", env: env)
            #expect(health.status == 2, "\(health.allOutput)")
            #expect(health.standardOutput.contains("backup run \(killedID)") && health.standardOutput.contains("no nfldb backup run holds its lock"), "\(health.allOutput)")

            _ = try sql("ALTER SYSTEM RESET archive_command")
            _ = try sql("SELECT pg_reload_conf()")
            let next = try nfldb("backup", "run", "--type", "full", env: env)
            #expect(next.status == 0, "\(next.allOutput)")
            #expect(next.standardError.contains("marked backup run(s) \(killedID) failed"), "\(next.allOutput)")
            #expect(try sql("SELECT status FROM nfldb.backup_runs WHERE id = \(killedID)") == "failed")
            let healthy = try nfldb("health", "--check", "backups", env: env)
            #expect(healthy.status != 2 && !healthy.standardOutput.contains("holds its lock"), "no verification yet is a WARNING, nothing CRITICAL: \(healthy.allOutput)")

            // A run that fails before pgBackRest starts (here a stanza typo) is recorded too: health is CRITICAL at once.
            var typo = env
            typo["NFLDB_BACKUP_STANZA"] = "nfldbx"
            let early = try nfldb("backup", "run", "--type", "full", env: typo)
            #expect(early.status == 1, "\(early.allOutput)")
            #expect(try sql("SELECT status FROM nfldb.backup_runs WHERE stanza = 'nfldbx'") == "failed")
            let typoHealth = try nfldb("health", "--check", "backups", env: typo)
            #expect(typoHealth.status == 2, "\(typoHealth.allOutput)")
        }
    }
}
