import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

func jsonObject(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
}

@Suite(.serialized) struct CLITests {
    /// load (JSON), the no-op re-load, runs and report through the binary, as nfl_loader.
    @Test func loadReloadRunsReport() throws {
        try ETLWorld.with { world in
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let env = ["NFLDB_CORRELATION_ID": "cli-corr-1"]
            let first = try CLIRunner.run(["etl", "load", "games", "--source", Slice.path, "--format", "json", "--dsn", world.loaderDSN], environment: env)
            #expect(first.status == 0, "\(first.standardError)")
            let one = jsonObject(first.standardOutput)
            #expect(one["status"] as? String == "succeeded")
            #expect(one["inserted"] as? Int == 842 && one["updated"] as? Int == 0 && one["unchanged"] as? Int == 0 && one["rejected"] as? Int == 0)
            let runID = one["run_id"] as? Int ?? -1
            #expect(try world.scalar("SELECT correlation_id FROM nfl.etl_runs WHERE id = \(runID)", as: String.self) == "cli-corr-1")

            let second = try CLIRunner.run(["etl", "load", "games", "--source", Slice.path, "--format", "json", "--dsn", world.loaderDSN])
            let two = jsonObject(second.standardOutput)
            #expect(second.status == 0 && two["inserted"] as? Int == 0 && two["updated"] as? Int == 0 && two["unchanged"] as? Int == 842)

            let runs = try CLIRunner.run(["etl", "runs", "--dsn", world.loaderDSN])
            #expect(runs.status == 0 && runs.standardOutput.contains("succeeded") && runs.standardOutput.contains(Slice.path))
            let report = try CLIRunner.run(["etl", "report", String(runID), "--dsn", world.loaderDSN])
            #expect(report.status == 0, "\(report.standardError)")
            #expect(report.standardOutput.contains("rows: 842 read, 842 inserted") && report.standardOutput.contains("null_count [temp]"))
            let missing = try CLIRunner.run(["etl", "report", "999999", "--dsn", world.loaderDSN])
            #expect(missing.status == 1 && missing.standardError.contains("no ETL run 999999"))

            // A file with one bad row: validate exits 1 and names the row; load --on-invalid fail exits 1, JSON status failed.
            let bad = dir + "/bad.csv"
            try Slice.replacing(row: 7, column: "home_score", with: "-3").write(toFile: bad, atomically: true, encoding: .utf8)
            let validate = try CLIRunner.run(["etl", "validate", "games", "--source", bad])
            #expect(validate.status == 1 && validate.standardOutput.contains("row 7, line 8"), "\(validate.standardOutput)")
            // The report is the output: no empty `error: ` line after it.
            #expect(!validate.standardError.contains("error:"), "\(validate.standardError)")
            let strict = try CLIRunner.run(["etl", "load", "games", "--source", bad, "--on-invalid", "fail", "--format", "json", "--dsn", world.loaderDSN])
            #expect(strict.status == 1 && jsonObject(strict.standardOutput)["status"] as? String == "failed", "\(strict.standardOutput)")
            #expect(strict.standardError.contains("--on-invalid is fail"))
            let lenient = try CLIRunner.run(["etl", "load", "games", "--source", bad, "--dsn", world.loaderDSN])
            #expect(lenient.status == 0 && lenient.standardOutput.contains("1 rejected"), "\(lenient.standardOutput) \(lenient.standardError)")
            // Usage errors exit 2.
            #expect(try CLIRunner.run(["etl", "load", "plays", "--source", bad]).status == 2)
            #expect(try CLIRunner.run(["etl", "load", "games", "--source", dir + "/nope.csv", "--dsn", world.loaderDSN]).status == 2)
            #expect(try CLIRunner.run(["etl", "load", "games", "--on-invalid", "ignore"]).status == 2)
        }
    }

    /// Hostile file sources through the binary: a file cut inside its last field (`head -c -8`)
    /// and `/dev/zero` (an endless first line: it used to grow until the process aborted with exit
    /// 134, leaving the run `running`) fail with exit 1, a message naming the line, and a failed run.
    @Test func hostileFileSourcesFailWithExitOne() throws {
        try ETLWorld.with { world in
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let cut = dir + "/cut.csv"
            let bytes = try Data(contentsOf: URL(fileURLWithPath: Slice.path))
            try bytes.dropLast(8).write(to: URL(fileURLWithPath: cut))
            let validate = try CLIRunner.run(["etl", "validate", "games", "--source", cut])
            #expect(validate.status == 1 && validate.standardError.contains("ends without a line break after row 842 (line 843)"), "\(validate.standardError)")
            let load = try CLIRunner.run(["etl", "load", "games", "--source", cut, "--dsn", world.loaderDSN])
            #expect(load.status == 1 && load.standardError.contains("it looks truncated"), "\(load.standardError)")
            #expect(try world.counts()["games"] == 0)

            let zero = try CLIRunner.run(["etl", "load", "games", "--source", "/dev/zero", "--dsn", world.loaderDSN])
            #expect(zero.status == 1, "\(zero.status) \(zero.standardError)")
            #expect(zero.standardError.contains("line 1: field 1 of the record starting on this line is longer than 1 MiB"), "\(zero.standardError)")
            let zeroValidate = try CLIRunner.run(["etl", "validate", "games", "--source", "/dev/zero"])
            #expect(zeroValidate.status == 1 && zeroValidate.standardError.contains("longer than 1 MiB"), "\(zeroValidate.standardError)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'", as: Int.self) == 0)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'failed' AND source = '/dev/zero' AND error LIKE '%longer than 1 MiB%'", as: Int.self) == 1)
            // A real header, then a 2 MiB stadium name on line 3: the error names the column, not just "field 46".
            let text = try String(contentsOfFile: Slice.path, encoding: .utf8)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let header = lines[0].split(separator: ",").map(String.init)
            let stadium = try #require(header.firstIndex(of: "stadium"))
            var row = lines[2].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            row[stadium] = String(repeating: "S", count: 2 << 20)
            lines[2] = row.joined(separator: ",")
            let huge = dir + "/huge-field.csv"
            try lines.joined(separator: "\n").write(toFile: huge, atomically: true, encoding: .utf8)
            let hugeValidate = try CLIRunner.run(["etl", "validate", "games", "--source", huge])
            #expect(hugeValidate.status == 1, "\(hugeValidate.standardError)")
            #expect(hugeValidate.standardError.contains("line 3: field \(stadium + 1) of the record starting on this line is longer than 1 MiB")
                    && hugeValidate.standardError.contains("(column stadium)"), "\(hugeValidate.standardError)")
            // Twenty fields of 900 KiB in one record: the 16 MiB record limit; endless commas: the field count limit.
            let wide = dir + "/wide.csv"
            var fields = Data()
            for _ in 0..<20 { fields.append(Data(repeating: 0x41, count: 900 << 10)); fields.append(0x2C) }
            try fields.write(to: URL(fileURLWithPath: wide))
            let wideLoad = try CLIRunner.run(["etl", "load", "games", "--source", wide, "--dsn", world.loaderDSN])
            #expect(wideLoad.status == 1 && wideLoad.standardError.contains("line 1: the record starting on this line is longer than 16 MiB"), "\(wideLoad.standardError)")
            let commas = dir + "/commas.csv"
            try Data(repeating: 0x2C, count: 1 << 20).write(to: URL(fileURLWithPath: commas))
            let commasLoad = try CLIRunner.run(["etl", "validate", "games", "--source", commas])
            #expect(commasLoad.status == 1 && commasLoad.standardError.contains("more than 10000 fields"), "\(commasLoad.standardError)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'", as: Int.self) == 0)
            // A load (not only validate) of an impossible URL is a usage error too, with no run recorded.
            let runsBefore = try world.scalar("SELECT count(*) FROM nfl.etl_runs", as: Int.self)
            let badPort = try CLIRunner.run(["etl", "load", "games", "--source", "http://127.0.0.1:99999/x", "--dsn", world.loaderDSN])
            #expect(badPort.status == 2 && badPort.standardError.contains("outside 1-65535"), "\(badPort.standardError)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs", as: Int.self) == runsBefore)
        }
    }

    /// Usage errors exit 2 at once: `etl runs --limit 0|-1` (0 printed "no ETL runs yet", -1 an SQL
    /// error with exit 1), a directory as --source (said "no such file"), a URL with an impossible
    /// port or no host (was retried 6 times as a connection error).
    /// `--format json` prints one object even when the load fails before its run is recorded (here:
    /// the server refuses the connection); no password in it.
    @Test func jsonOutputWhenTheConnectionFails() throws {
        let result = try CLIRunner.run([
            "etl", "load", "games", "--source", "/nonexistent/games.csv", "--format", "json",
            "--dsn", "host=127.0.0.1 port=1 user=loader password=Sekr1t-json-77 dbname=nfl connect_timeout=3",
        ])
        #expect(result.status != 0)
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
        #expect(object?["status"] as? String == "failed", "\(result.standardOutput)")
        #expect((object?["error"] as? String)?.isEmpty == false, "\(result.standardOutput)")
        #expect(!result.standardOutput.contains("Sekr1t") && !result.standardError.contains("Sekr1t"))
    }

    /// A reader login (nfl_analyst) cannot load: refused before anything runs, naming what it lacks
    /// and pointing at a loader login (before: PostgreSQL's 42501 on an UPDATE of nfl.etl_runs and a
    /// hint to restore nfl_etl's grants, which were intact). Also with --dry-run; nothing changes.
    @Test func aReaderLoginIsToldToUseALoader() throws {
        try ETLWorld.with { world in
            let analyst = world.db.cluster.dsn(database: world.db.name, user: world.prefix + "nfl_analyst",
                                              password: world.environment["NFLDB_ANALYST_PASSWORD"])
            let admin = try world.db.connect()
            defer { admin.close() }
            for extra in [[], ["--dry-run"]] {
                let result = try CLIRunner.run(["etl", "load", "games", "--source", Slice.path, "--dsn", analyst] + extra)
                #expect(result.status == 1, "\(extra): \(result.standardOutput) \(result.standardError)")
                #expect(result.standardError.contains("login \(world.prefix)nfl_analyst may not write what a load writes: it lacks nfl.games (INSERT, UPDATE), nfl.teams (INSERT, UPDATE)"),
                        "\(result.standardError)")
                #expect(result.standardError.contains("Load as a loader login (a member of nfl_etl, such as nfl_loader"), "\(result.standardError)")
                #expect(!result.standardError.contains("42501") && !result.standardError.contains("roles check"), "\(result.standardError)")
            }
            #expect(try admin.query("SELECT (SELECT count(*) FROM nfl.etl_runs) + (SELECT count(*) FROM nfl.games) + (SELECT count(*) FROM nfl.teams)").scalar(Int.self) == 0)
        }
    }

    @Test func usageErrorsExitTwo() throws {
        for limit in ["0", "-1"] {
            let runs = try CLIRunner.run(["etl", "runs", "--limit=\(limit)", "--dsn", "postgresql://127.0.0.1:1/none"])
            #expect(runs.status == 2 && runs.standardError.contains("--limit must be at least 1 (got \(limit))"), "\(runs.status) \(runs.standardError)")
        }
        let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let directory = try CLIRunner.run(["etl", "validate", "games", "--source", dir])
        #expect(directory.status == 2 && directory.standardError.contains("is a directory, not a file"), "\(directory.standardError)")
        for (url, message) in [("http://127.0.0.1:99999/x", "has port 99999, outside 1-65535"), ("http:///x", "has no host"),
                               ("http://user:secret@127.0.0.1:0/x", "has port 0")] {
            let started = ContinuousClock.now
            let result = try CLIRunner.run(["etl", "validate", "games", "--source", url])
            #expect(result.status == 2 && result.standardError.contains(message), "\(url): \(result.status) \(result.standardError)")
            #expect(!result.standardError.contains("secret") && !result.standardError.contains("attempt"), "\(result.standardError)")
            #expect(ContinuousClock.now - started < .seconds(10), "\(url) was retried")
        }
    }

    /// SIGTERM, SIGHUP or SIGINT in the middle of a load: the transaction is rolled back, the run is
    /// recorded as failed with the signal (not left `running` for the next load to call abandoned),
    /// one line says so, the exit is 128+signal, and no session or lock is left.
    @Test(arguments: [SIGTERM, SIGHUP, SIGINT])
    func signalMidRunRecordsTheRunFailed(signo: Int32) throws {
        let name = [SIGTERM: "SIGTERM", SIGHUP: "SIGHUP", SIGINT: "SIGINT"][signo]!
        try ETLWorld.with { world in
            try world.load(Slice.text)
            let baseline = try world.counts()
            let versions = try world.rowVersions()
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let fifo = dir + "/games.csv"
            #expect(mkfifo(fifo, 0o600) == 0)
            // --format json: stdout is one object also when interrupted (before, it was empty).
            let child = try ChildProcess.spawn(CLIRunner.binary, ["etl", "load", "games", "--source", fifo, "--dsn", world.loaderDSN, "--format", "json"])
            defer { child.kill9(); child.removeOutput() }
            let writer = open(fifo, O_WRONLY)
            #expect(writer >= 0)
            defer { close(writer) }
            let bytes = Array(Slice.text.replacingOccurrences(of: ",Home,", with: ",Neutral,").utf8)
            _ = bytes.withUnsafeBufferPointer { write(writer, $0.baseAddress, bytes.count / 2) }
            let admin = try world.db.connect()
            defer { admin.close() }
            var copying = false
            for _ in 0..<200 where !copying {
                copying = try admin.query("""
                    SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader") AND xact_start IS NOT NULL AND query ILIKE 'COPY%'
                    """).scalar(Bool.self)
                if !copying { Thread.sleep(forTimeInterval: 0.05) }
            }
            #expect(copying)
            #expect(child.handles(signo), "the load handles \(name)")
            child.send(signo)
            let status = child.wait(timeout: .seconds(60))
            #expect(status == 128 + signo, "\(String(describing: status)) \(child.standardError)")
            #expect(child.standardError.contains("nfldb: interrupted by \(name): the load's transaction was rolled back; nothing was changed; run "), "\(child.standardError)")
            #expect(child.standardError.contains("is recorded as failed"), "\(child.standardError)")
            let run = try admin.query("SELECT id::text, status, error FROM nfl.etl_runs ORDER BY id DESC LIMIT 1").singleRow()
            #expect(run["status"] == "failed" && run["error"]?.hasPrefix("interrupted by \(name)") == true, "\(run)")
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'").scalar(Int.self) == 0)
            let printed = try JSONSerialization.jsonObject(with: Data(child.standardOutput.utf8)) as? [String: Any]
            #expect(printed?["status"] as? String == "failed" && (printed?["error"] as? String)?.hasPrefix("interrupted by \(name)") == true,
                    "\(child.standardOutput)")
            #expect((printed?["run_id"] as? Int).map(String.init) == run["id"], "\(child.standardOutput)")
            var gone = false
            for _ in 0..<100 where !gone {
                gone = try admin.query("SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader")").scalar(Bool.self)
                if !gone { Thread.sleep(forTimeInterval: 0.1) }
            }
            #expect(gone, "no session of the load is left")
            #expect(try world.counts() == baseline)
            #expect(try world.rowVersions() == versions)
            #expect(try admin.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").scalar(Int.self) == 0)
            // The next load is not held up and finds nothing to call abandoned.
            let next = try world.load(Slice.text)
            #expect(next.status == "succeeded" && next.unchanged == 842)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_runs WHERE error LIKE 'abandoned:%'").scalar(Int.self) == 0)
        }
    }

    /// A signal while the load waits inside a server-side statement (here on a lock another session
    /// holds): the handler ends the load's session, so that statement fails with "server closed the
    /// connection"; that failure must not win the race (an attack probe got exit 1 and a message
    /// that read as a server crash, 4 times of 4): one line, exit 128+signal, the run failed.
    @Test func signalDuringAServerSideWaitExitsAsTheSignal() throws {
        try ETLWorld.with { world in
            try world.load(Slice.text)
            let baseline = try world.counts()
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let file = dir + "/games.csv"
            try Slice.text.replacingOccurrences(of: ",Home,", with: ",Neutral,").write(toFile: file, atomically: true, encoding: .utf8)
            let admin = try world.db.connect()
            defer { admin.close() }
            let holder = try world.db.connect()
            defer { holder.close() }
            // The race is timing-dependent (1 of 2 lost by hand before the fix): three rounds.
            for round in 1...3 {
            try holder.execute("BEGIN")
            try holder.execute("LOCK TABLE nfl.games IN SHARE MODE")
            let child = try ChildProcess.spawn(CLIRunner.binary, ["etl", "load", "games", "--source", file, "--dsn", world.loaderDSN],
                                               environment: ProcessInfo.processInfo.environment.merging(["NFLDB_ETL_LOCK_TIMEOUT": "60s"]) { $1 })
            defer { child.kill9(); child.removeOutput() }
            var waiting = false
            for _ in 0..<400 where !waiting {
                waiting = try admin.query("""
                    SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader") AND wait_event_type = 'Lock'
                    """).scalar(Bool.self)
                if !waiting { Thread.sleep(forTimeInterval: 0.05) }
            }
            try #require(waiting, "the load waits on the lock: \(child.outputTail())")
            #expect(child.handles(SIGTERM))
            child.send(SIGTERM)
            let status = child.wait(timeout: .seconds(60))
            try holder.execute("ROLLBACK")
            #expect(status == 128 + SIGTERM, "\(String(describing: status)) \(child.standardError)")
            #expect(child.standardError.contains("nfldb: interrupted by SIGTERM: the load's transaction was rolled back; nothing was changed; run "), "\(child.standardError)")
            #expect(!child.standardError.contains("error:") && !child.standardError.contains("server closed"), "\(child.standardError)")
            let run = try admin.query("SELECT status, error FROM nfl.etl_runs ORDER BY id DESC LIMIT 1").singleRow()
            #expect(run["status"] == "failed" && run["error"]?.hasPrefix("interrupted by SIGTERM") == true, "\(run)")
            #expect(try world.counts() == baseline, "round \(round)")
            }
        }
    }

    /// kill -9 of the nfldb process in the middle of a load: the tables stay as they were, the
    /// lock and the staging table go with the session, and the next run marks the run abandoned.
    @Test func killNineMidRunLeavesTablesUnchanged() throws {
        try ETLWorld.with { world in
            try world.load(Slice.text)
            let baseline = try world.counts()
            let versions = try world.rowVersions()
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let fifo = dir + "/games.csv"
            #expect(mkfifo(fifo, 0o600) == 0)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLIRunner.binary)
            process.arguments = ["etl", "load", "games", "--source", fifo, "--dsn", world.loaderDSN]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let writer = open(fifo, O_WRONLY)
            #expect(writer >= 0)
            // 822 games move to a neutral site: had the run committed, they would all be updated.
            let changed = Slice.text.replacingOccurrences(of: ",Home,", with: ",Neutral,")
            let bytes = Array(changed.utf8)
            let half = bytes.count / 2
            _ = bytes.withUnsafeBufferPointer { write(writer, $0.baseAddress, half) }
            // Wait until the load's transaction is open (the COPY into staging is under way).
            let admin = try world.db.connect()
            defer { admin.close() }
            var inTransaction = false
            for _ in 0..<100 {
                inTransaction = try admin.query("""
                    SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader") AND xact_start IS NOT NULL
                    AND query ILIKE 'COPY%'
                    """).scalar(Bool.self)
                if inTransaction { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(inTransaction)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            close(writer)
            #expect(process.terminationReason == .uncaughtSignal)
            // The server notices the dead client and rolls back.
            var gone = false
            for _ in 0..<100 {
                gone = try admin.query("SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader")").scalar(Bool.self)
                if gone { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(gone)
            #expect(try world.counts() == baseline)
            #expect(try world.rowVersions() == versions)
            #expect(try admin.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM pg_class WHERE relname = 'etl_stage_games'").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'").scalar(Int.self) == 1)
            // The next run marks the dead one abandoned and loads normally.
            let next = try world.load(Slice.text)
            #expect(next.status == "succeeded" && next.unchanged == 842)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_runs WHERE status = 'failed' AND error LIKE 'abandoned:%'").scalar(Int.self) == 1)
        }
    }
}
