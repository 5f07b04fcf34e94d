import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

@testable import NFLDBETL

@Suite(.serialized) struct LoadTests {
    /// The shared slice, as nfl_loader: exact counts per table; a second identical load changes
    /// nothing (no new row versions); changing one score updates exactly one row.
    @Test func sliceLoadsIdempotentlyAsNflEtl() throws {
        try ETLWorld.with { world in
            #expect(SliceFacts.rows.count == 842)
            let first = try world.load(Slice.text)
            #expect(first.status == "succeeded")
            #expect(first.inserted == 842 && first.updated == 0 && first.unchanged == 0 && first.rejected == 0)
            #expect(first.tables["nfl.teams"] == TableCounts(inserted: SliceFacts.teams))
            #expect(first.tables["nfl.stadiums"] == TableCounts(inserted: SliceFacts.stadiums))
            #expect(first.tables["nfl.weather"] == TableCounts(inserted: SliceFacts.weather))
            #expect(first.tables["nfl.odds_history"] == TableCounts(inserted: SliceFacts.odds))
            #expect(SliceFacts.teams == 32 && SliceFacts.stadiums == 35 && SliceFacts.weather == 475 && SliceFacts.odds == 794)
            let counts = try world.counts()
            #expect(counts == ["games": 842, "teams": 32, "stadiums": 35, "weather": 475, "odds_history": 794, "etl_rejects": 0])
            // The run row: succeeded, counts, checksum, correlation id.
            let run = try world.scalar("""
                SELECT concat_ws('|', status, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected, correlation_id,
                                 length(input_checksum), target_table) FROM nfl.etl_runs WHERE id = \(first.runID!)
                """, as: String.self)
            #expect(run == "succeeded|842|842|0|0|0|test-corr|64|nfl.games")
            #expect(try world.scalar("SELECT count(*) FROM nfl.data_quality_reports WHERE etl_run_id = \(first.runID!) AND check_name = 'null_count'", as: Int.self) > 0)
            // Spot-check the mapping: units and booleans.
            #expect(try world.scalar("""
                SELECT count(*) FROM nfl.weather w JOIN nfl.games g USING (game_id)
                WHERE w.source = 'nflverse' AND w.temp_f IS NOT DISTINCT FROM g.temp AND w.wind_mph IS NOT DISTINCT FROM g.wind
                """, as: Int.self) == SliceFacts.weather)
            #expect(try world.scalar("SELECT count(*) FROM nfl.games WHERE overtime AND div_game", as: Int.self) > 0)

            let before = try world.rowVersions()
            let second = try world.load(Slice.text)
            #expect(second.inserted == 0 && second.updated == 0 && second.unchanged == 842 && second.rejected == 0)
            #expect(second.tables["nfl.odds_history"]?.inserted == 0)
            #expect(second.tables["nfl.weather"] == TableCounts(unchanged: SliceFacts.weather))
            let after = try world.rowVersions()
            #expect(before == after, "row versions changed on a no-op re-load: \(before) → \(after)")
            #expect(try world.counts() == counts)

            // One score changes: exactly one games row is updated, nothing else.
            let changed = Slice.text.replacingOccurrences(
                of: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,20,Home,-1,41,",
                with: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,24,Home,3,45,")
            #expect(changed != Slice.text)
            let third = try world.load(changed)
            #expect(third.inserted == 0 && third.updated == 1 && third.unchanged == 841)
            #expect(third.tables["nfl.odds_history"]?.inserted == 0 && third.tables["nfl.weather"]?.updated == 0)
            let afterChange = try world.rowVersions()
            #expect(afterChange["games"]![1] == after["games"]![1] + 1, "\(after) → \(afterChange)")
            #expect(afterChange["weather"] == after["weather"] && afterChange["odds_history"] == after["odds_history"])
            #expect(try world.scalar("SELECT home_score FROM nfl.games WHERE game_id = '2023_01_DET_KC'", as: Int.self) == 24)

            // Changed lines add one odds snapshot (a history), never update the old one.
            let moved = Slice.text.replacingOccurrences(of: ",164,-198,4,-110,-110,53,", with: ",170,-205,4.5,-110,-110,53,")
            let fourth = try world.load(moved)
            #expect(fourth.tables["nfl.odds_history"]?.inserted == 1)
            #expect(try world.scalar("SELECT count(*) FROM nfl.odds_history WHERE game_id = '2023_01_DET_KC'", as: Int.self) == 2)
        }
    }

    /// Malformed inputs: each gives a clear error and changes nothing (file-level problems, policy
    /// fail, ratio exceeded) or loads only the valid rows (reject-rows under the ratio).
    /// A session holding a lock on nfl.games past etl.lock_timeout: the load fails (nothing
    /// changed) naming that session and its lock, with a hint (before: only PostgreSQL's
    /// "canceling statement due to lock timeout").
    @Test func aLockTimeoutNamesTheHolder() throws {
        try ETLWorld.with { world in
            try world.load(Slice.text)
            let holder = try world.db.connect()
            defer { holder.close() }
            let pid = try holder.query("SELECT pg_backend_pid()").scalar(Int.self)
            try holder.execute("BEGIN")
            try holder.execute("LOCK TABLE nfl.games IN SHARE MODE")
            var options = ETLWorld.options
            options.lockTimeout = .milliseconds(300)
            let failed = try world.failingLoad(Slice.text.replacingOccurrences(of: ",Home,", with: ",Neutral,"), options: options)
            try holder.execute("ROLLBACK")
            #expect(failed.cause.contains("lock timeout"), "\(failed.cause)")
            // The loader login may not read another user's query (pg_stat_activity shows "<insufficient
            // privilege>"), but it sees the pid, the user, the application and the lock.
            #expect(failed.cause.contains("sessions holding locks: pid \(pid) (postgres/") && failed.cause.contains("holds nfl.games ShareLock"),
                    "\(failed.cause)")
            #expect(failed.hint.contains("etl.lock_timeout") && failed.hint.contains("pg_terminate_backend"), "\(failed.hint)")
            #expect(failed.result.status == "failed")
        }
    }

    @Test func malformedInputs() throws {
        try ETLWorld.with { world in
            try world.load(Slice.text)
            let baseline = try world.counts()
            let versions = try world.rowVersions()

            // Truncated file (cut inside a row).
            let truncated = try world.failingLoad(String(Slice.text.prefix(Slice.text.count / 2)) )
            #expect(truncated.cause.contains("truncated"), "\(truncated.cause)")
            // Unbalanced quote: the quoted field runs to the end of the input.
            let goff = Slice.text.range(of: "Jared Goff")!
            let badQuote = try world.failingLoad(Slice.text.replacingCharacters(in: goff, with: "\"Jared Goff"))
            #expect(badQuote.cause.contains("ends inside a quoted field that starts on this line"), "\(badQuote.cause)")
            #expect(badQuote.cause.contains("line 2:"), "\(badQuote.cause)")
            // Missing column.
            let missing = try world.failingLoad(Slice.text.replacingOccurrences(of: ",referee,", with: ",umpire,"))
            #expect(missing.cause.contains("required column referee missing"), "\(missing.cause)")
            #expect(missing.result.metrics.extraColumns == [])
            // Policy fail: one wrong type loads nothing.
            var strict = ETLWorld.options
            strict.policy = .fail
            let wrongType = Slice.replacing(row: 10, column: "away_score", with: "ten")
            let failed = try world.failingLoad(wrongType, options: strict)
            #expect(failed.result.rejected == 1 && failed.cause.contains("--on-invalid is fail"))
            // Above the ratio: 20 out-of-range rows of 842 (2.4 %) load nothing.
            var many = Slice.lines
            for i in 1...20 { many[i] = many[i].replacingOccurrences(of: ",Home,", with: ",Away,") }
            let ratio = try world.failingLoad(many.joined(separator: "\n"))
            #expect(ratio.result.rejected == 20 && ratio.cause.contains("above --max-invalid-ratio"), "\(ratio.cause)")
            // Failed runs are recorded with their error; their findings and rejects are kept for the report.
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'failed' AND error IS NOT NULL", as: Int.self) == 5)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_rejects WHERE etl_run_id = \(ratio.result.runID!)", as: Int.self) == 20)
            // A failed run whose rejects cannot be stored (INSERT on nfl.etl_rejects revoked, as grant
            // drift leaves it) is still recorded as failed with its cause, not left `running`.
            let admin = try world.db.connect()
            defer { admin.close() }
            try admin.execute("REVOKE INSERT ON nfl.etl_rejects FROM \(identifier: world.prefix + "nfl_etl")")
            let unstored = try world.failingLoad(wrongType, options: strict)
            try admin.execute("GRANT INSERT ON nfl.etl_rejects TO \(identifier: world.prefix + "nfl_etl")")
            let recorded = try admin.query("SELECT status, error FROM nfl.etl_runs WHERE id = \(unstored.result.runID!)").singleRow()
            #expect(recorded["status"] == "failed")
            #expect(recorded["error"]?.contains("--on-invalid is fail") == true, "\(recorded["error"] ?? "nil")")
            #expect(recorded["error"]?.contains("its findings and rejects could not be stored: permission denied for table etl_rejects") == true, "\(recorded["error"] ?? "nil")")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'", as: Int.self) == 0)
            // Nothing changed in the data tables.
            var countsNow = try world.counts()
            countsNow["etl_rejects"] = baseline["etl_rejects"]
            #expect(countsNow == baseline)
            #expect(try world.rowVersions() == versions)

            // reject-rows under the ratio: a wrong type, an out-of-range value and a duplicated
            // game_id are refused (both members of the duplicate), the rest is loaded.
            var mixed = Slice.lines
            mixed[3] = mixed[3].replacingOccurrences(of: "2023,REG,1,", with: "2023,REG,x,")
            mixed[4] = mixed[4].replacingOccurrences(of: ",outdoors,", with: ",indoors,")
            mixed[5] = mixed[5].replacingOccurrences(of: ",Sunday,", with: ",Sun\"day,")
            let duplicate = mixed[8]
            mixed.insert(duplicate.replacingOccurrences(of: ",Home,", with: ",Neutral,"), at: 9)
            let mixedLoad = try world.load(mixed.joined(separator: "\n"))
            #expect(mixedLoad.status == "succeeded")
            #expect(mixedLoad.rowsRead == 843 && mixedLoad.rejected == 5, "\(mixedLoad.failures)")
            #expect(mixedLoad.unchanged == 838 && mixedLoad.inserted == 0 && mixedLoad.updated == 0)
            let rejects = try world.db.connect()
            defer { rejects.close() }
            let rows = try rejects.query("""
                SELECT row_number, row_key, reasons::text AS reasons, raw_line FROM nfl.etl_rejects WHERE etl_run_id = \(mixedLoad.runID!) ORDER BY row_number
                """).rows
            #expect(rows.map { $0["row_number"] } == ["3", "4", "5", "8", "9"])
            #expect(rows[2]["reasons"]?.contains("csv_syntax") == true)
            #expect(rows[0]["reasons"]?.contains("dtype('smallint')") == true)
            #expect(rows[1]["reasons"]?.contains("isin([outdoors, dome, closed, open])") == true)
            #expect(rows[4]["raw_line"] == mixed[9])
            // The first occurrence (staged before its duplicate arrived) keeps its input line too.
            #expect(rows[3]["raw_line"] == mixed[8], "\(rows[3]["raw_line"] ?? "nil")")
            #expect(rows[3]["reasons"]?.contains("field_uniqueness") == true && rows[3]["row_key"] == rows[4]["row_key"])
        }
    }

    /// Into an empty nfl.games the rows are COPYed straight into the table (load_method direct),
    /// still validated and counted, in one transaction: rejects, duplicates (both members), the
    /// policy, and a duplicate whose first occurrence was already copied (the input is read again
    /// through the staging path).
    @Test func directLoadIntoEmptyTarget() throws {
        try ETLWorld.with { world in
            let empty = try world.counts()
            // Policy fail: one wrong type; nothing stays, not even the teams and stadiums the
            // direct path inserts before each COPY batch.
            var strict = ETLWorld.options
            strict.policy = .fail
            let failed = try world.failingLoad(Slice.replacing(row: 10, column: "away_score", with: "ten"), options: strict)
            #expect(failed.result.rejected == 1 && failed.result.loadMethod == "direct")
            var afterFail = try world.counts()
            afterFail["etl_rejects"] = 0
            #expect(afterFail == empty)

            // reject-rows: a wrong type and a duplicated game_id in the same batch.
            var mixed = Slice.lines
            mixed[3] = mixed[3].replacingOccurrences(of: "2023,REG,1,", with: "2023,REG,x,")
            mixed.insert(mixed[8].replacingOccurrences(of: ",Home,", with: ",Neutral,"), at: 9)
            let load = try world.load(mixed.joined(separator: "\n"))
            #expect(load.loadMethod == "direct")
            #expect(load.rowsRead == 843 && load.rejected == 3 && load.inserted == 840 && load.updated == 0, "\(load.failures)")
            #expect(load.tables["nfl.teams"] == TableCounts(inserted: SliceFacts.teams))
            #expect(load.tables["nfl.games"] == TableCounts(inserted: 840))
            let counts = try world.counts()
            #expect(counts["games"] == 840 && counts["teams"] == SliceFacts.teams && counts["stadiums"] == SliceFacts.stadiums)
            let rejects = try world.db.connect()
            defer { rejects.close() }
            let rows = try rejects.query("""
                SELECT row_number, row_key, reasons::text AS reasons, raw_line FROM nfl.etl_rejects WHERE etl_run_id = \(load.runID!) ORDER BY row_number
                """).rows
            #expect(rows.map { $0["row_number"] } == ["3", "8", "9"])
            #expect(rows[1]["raw_line"] == mixed[8] && rows[2]["raw_line"] == mixed[9])
            #expect(rows[1]["reasons"]?.contains("field_uniqueness") == true && rows[1]["row_key"] == rows[2]["row_key"])
            // The stadium names are the newest game's, as the staging path sets them.
            #expect(try world.scalar("""
                SELECT count(*) FROM nfl.stadiums s WHERE s.name IS DISTINCT FROM
                  (SELECT g.stadium FROM nfl.games g WHERE g.stadium_id = s.stadium_id ORDER BY g.gameday DESC, g.game_id DESC LIMIT 1)
                """, as: Int.self) == 0)
            // The same input again: the staging path; nothing changes.
            let again = try world.load(mixed.joined(separator: "\n"))
            #expect(again.loadMethod == "staged" && again.inserted == 0 && again.updated == 0 && again.unchanged == 840)
        }
        try ETLWorld.with { world in
            // A duplicate whose first occurrence went out in an earlier COPY batch: the direct load
            // is rolled back to its savepoint and the input is read again through staging.
            var options = ETLWorld.options
            options.directBatchBytes = 20_000
            var lines = Slice.lines
            lines.insert(lines[8].replacingOccurrences(of: ",Home,", with: ",Neutral,"), at: 700)
            let load = try world.load(lines.joined(separator: "\n"), options: options)
            #expect(load.loadMethod == "staged")
            #expect(load.rowsRead == 843 && load.rejected == 2 && load.inserted == 841, "\(load.failures)")
            #expect(try world.counts()["games"] == 841)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_rejects WHERE etl_run_id = \(load.runID!)", as: Int.self) == 2)
            // The slice with an extra column goes through staging (the row is re-encoded).
            let header = Slice.lines[0]
            var extra = Slice.lines.filter { !$0.isEmpty }.map { $0 + ",x" }
            extra[0] = header + ",extra_column"
            let second = try world.load(extra.joined(separator: "\n") + "\n")
            #expect(second.loadMethod == "staged" && second.inserted == 1 && second.unchanged == 841)
        }
    }

    /// The direct path in many small batches: batch k's COPYs run while batch k+1 is validated
    /// (CopyQueue). Counts, rows and stadium names are those of a one-batch load; a server error in
    /// a later batch names the batch and the input row, and leaves nothing; `--on-invalid fail`
    /// with a bad row in the middle of the stream leaves nothing either.
    @Test func directLoadInPipelinedBatches() throws {
        var small = ETLWorld.options
        small.directBatchBytes = 20_000  // ~70 rows: the slice takes 13 batches
        try ETLWorld.with { world in
            let empty = try world.counts()
            // A bad row in batch 9 with policy fail: earlier batches were already COPYed; all of
            // it, teams and stadiums included, rolls back.
            var strict = small
            strict.policy = .fail
            let failed = try world.failingLoad(Slice.replacing(row: 600, column: "away_score", with: "ten"), options: strict)
            #expect(failed.result.rejected == 1 && failed.result.loadMethod == "direct" && failed.result.rowsRead == 842)
            var afterFail = try world.counts()
            afterFail["etl_rejects"] = 0
            #expect(afterFail == empty)

            // A file cut in the middle of row 700 (batches already COPYed when the parser finds
            // out): a file error, and nothing stays.
            let cut = Slice.lines[0...700].joined(separator: "\n").dropLast(40)
            let truncated = try world.failingLoad(String(cut), options: small)
            #expect(truncated.cause.contains("truncated"), "\(truncated.cause)")
            #expect(truncated.result.loadMethod == "direct")
            var afterCut = try world.counts()
            afterCut["etl_rejects"] = 0
            #expect(afterCut == empty)

            // A constraint the contract does not know (added here) fails on the server in a later
            // batch: the error names the batch and the input row and line; nothing stays.
            let admin = try world.db.connect()
            defer { admin.close() }
            try admin.execute("ALTER TABLE nfl.games ADD CONSTRAINT test_no_week_9 CHECK (week <> 9)")
            let firstWeek9 = Slice.lines.firstIndex { $0.hasPrefix("2023_09_") }!
            let serverFailed = try world.failingLoad(Slice.text, options: small)
            #expect(serverFailed.cause.contains("COPY nfl.games batch "), "\(serverFailed.cause)")
            #expect(serverFailed.cause.contains("input row \(firstWeek9) (line \(firstWeek9 + 1))"), "\(serverFailed.cause)")
            #expect(serverFailed.cause.contains("test_no_week_9"), "\(serverFailed.cause)")
            #expect(!serverFailed.cause.contains("batch 1,"), "week 9 is not in the first batch")
            var afterServer = try world.counts()
            afterServer["etl_rejects"] = 0
            #expect(afterServer == empty)
            try admin.execute("ALTER TABLE nfl.games DROP CONSTRAINT test_no_week_9")

            // A queued load cancelled mid-way (its cancellation check turns true at the 6th look,
            // between COPY batches): everything already COPYed rolls back, and the run says why.
            var cancelled = small
            let looks = Mutex(0)
            cancelled.isCancelled = { looks.withLock { $0 += 1; return $0 > 5 } }
            let stopped = try world.failingLoad(Slice.text, options: cancelled)
            #expect(stopped.result.loadMethod == "direct")
            #expect(stopped.cause.contains("cancelled: its queue task was cancelled while the load ran (seen between COPY batches)"), "\(stopped.cause)")
            var afterCancel = try world.counts()
            afterCancel["etl_rejects"] = 0
            #expect(afterCancel == empty)
            #expect(try world.scalar("SELECT status FROM nfl.etl_runs ORDER BY id DESC LIMIT 1", as: String.self) == "failed")

            // The whole slice in 13 batches, as nfl_loader.
            let load = try world.load(Slice.text, options: small)
            #expect(load.loadMethod == "direct" && load.inserted == 842 && load.rejected == 0)
            #expect(load.tables["nfl.teams"] == TableCounts(inserted: SliceFacts.teams))
            #expect(load.tables["nfl.stadiums"] == TableCounts(inserted: SliceFacts.stadiums))
            #expect(load.tables["nfl.weather"] == TableCounts(inserted: SliceFacts.weather))
            #expect(load.tables["nfl.odds_history"] == TableCounts(inserted: SliceFacts.odds))
            let counts = try world.counts()
            #expect(counts["games"] == 842 && counts["weather"] == SliceFacts.weather && counts["odds_history"] == SliceFacts.odds)
            #expect(try world.scalar("""
                SELECT count(*) FROM nfl.stadiums s WHERE s.name IS DISTINCT FROM
                  (SELECT g.stadium FROM nfl.games g WHERE g.stadium_id = s.stadium_id ORDER BY g.gameday DESC, g.game_id DESC LIMIT 1)
                """, as: Int.self) == 0)
            // The same file again goes through staging and finds nothing to change.
            let again = try world.load(Slice.text, options: small)
            #expect(again.loadMethod == "staged" && again.inserted == 0 && again.updated == 0 && again.unchanged == 842)
        }
    }

    /// A game_id given twice in one batch of a first (direct) load rejects both rows; the teams and
    /// stadiums those rows name must not be inserted or renamed (found by an attack probe: a
    /// duplicated row renamed KAN00 to "Hijacked Stadium Name" and added a stadium no game used).
    @Test func duplicatedRowsAddOrRenameNoStadiumOnTheDirectPath() throws {
        var lines = Slice.lines
        let header = lines[0].split(separator: ",").map(String.init)
        func fields(_ i: Int) -> [String] { lines[i].split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let gi = header.firstIndex(of: "game_id")!, si = header.firstIndex(of: "stadium_id")!
        let sn = header.firstIndex(of: "stadium")!, gd = header.firstIndex(of: "gameday")!
        let plain = (1..<lines.count).filter { !lines[$0].isEmpty && fields($0).count == header.count }
        let kc = try #require(plain.filter { fields($0)[si] == "KAN00" }.max { (fields($0)[gd], fields($0)[gi]) < (fields($1)[gd], fields($1)[gi]) })
        let other = try #require(plain.first { fields($0)[si] != "KAN00" })
        var hijacked = fields(kc)
        hijacked[sn] = "Hijacked Stadium Name"
        var phantom = fields(other)
        phantom[si] = "ZZZ00"
        phantom[sn] = "Phantom Field"
        lines[kc] = hijacked.joined(separator: ",") + "\n" + hijacked.joined(separator: ",")
        lines[other] = phantom.joined(separator: ",") + "\n" + phantom.joined(separator: ",")
        try ETLWorld.with { world in
            let load = try world.load(lines.joined(separator: "\n"))
            #expect(load.loadMethod == "direct" && load.rejected == 4 && load.inserted == 840, "\(load.loadMethod ?? "-") \(load.rejected) \(load.inserted)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.stadiums WHERE stadium_id = 'ZZZ00' OR name IN ('Phantom Field', 'Hijacked Stadium Name')", as: Int.self) == 0)
            // KAN00 carries the name of its newest kept game, as the staging path gives it.
            #expect(try world.scalar("""
                SELECT count(*) FROM nfl.stadiums s WHERE s.name IS DISTINCT FROM
                  (SELECT g.stadium FROM nfl.games g WHERE g.stadium_id = s.stadium_id ORDER BY g.gameday DESC, g.game_id DESC LIMIT 1)
                """, as: Int.self) == 0)
            #expect(try world.scalar("SELECT count(*) FROM nfl.stadiums s WHERE NOT EXISTS (SELECT FROM nfl.games g WHERE g.stadium_id = s.stadium_id)", as: Int.self) == 0,
                    "every stadium inserted is used by a kept game")
        }
    }

    /// A file cut inside its last field (`head -c -8`) has the right number of fields in its last
    /// row; it used to load "Raymond James " as the stadium. Any input without a final line break
    /// now fails the run, on the staged path and on the direct path, and changes nothing.
    @Test func inputWithoutFinalLineBreakFails() throws {
        let text = Slice.text
        #expect(text.hasSuffix("\n"), "nflverse's file ends with a line break")
        let cut = String(text.utf8.dropLast(8))!
        #expect(cut.hasSuffix("Raymond James "))
        let rows = SliceFacts.rows.count
        let message = "the input ends without a line break after row \(rows) (line \(rows + 1)): it looks truncated"
        try ETLWorld.with { world in
            // Direct path (empty nfl.games).
            let direct = try world.failingLoad(cut)
            #expect(direct.cause.contains(message), "\(direct.cause)")
            #expect(direct.result.loadMethod == "direct")
            #expect(try world.counts()["games"] == 0 && world.counts()["stadiums"] == 0)
            #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(direct.result.runID!)", as: String.self) == "failed")
            #expect(try world.scalar("SELECT error FROM nfl.etl_runs WHERE id = \(direct.result.runID!)", as: String.self).contains(message))

            // Staged path (after a good load): nothing changes, the stadium keeps its name.
            try world.load(text)
            let baseline = try world.counts()
            let versions = try world.rowVersions()
            let staged = try world.failingLoad(cut)
            #expect(staged.cause.contains(message), "\(staged.cause)")
            #expect(staged.result.loadMethod == "staged")
            // A complete file whose final newline was stripped fails the same way.
            let noNewline = try world.failingLoad(String(text.dropLast()))
            #expect(noNewline.cause.contains(message), "\(noNewline.cause)")
            // A file read while a row was being appended: the new row lacks its last bytes.
            let lastRow = Slice.lines[rows].replacingOccurrences(of: "2025_", with: "2026_")
            let growing = try world.failingLoad(text + String(lastRow.dropLast(3)))
            #expect(growing.cause.contains("after row \(rows + 1) (line \(rows + 2))"), "\(growing.cause)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.stadiums WHERE name = 'Raymond James '", as: Int.self) == 0)
            #expect(try world.scalar("SELECT count(*) FROM nfl.games WHERE stadium = 'Raymond James '", as: Int.self) == 0)
            var countsNow = try world.counts()
            countsNow["etl_rejects"] = baseline["etl_rejects"]
            #expect(countsNow == baseline)
            #expect(try world.rowVersions() == versions)
            // A quoted field left open at the end of the input still fails.
            let open = try world.failingLoad(text + String(Slice.lines[rows].prefix(20)) + ",\"Raymond")
            #expect(open.cause.contains("ends inside a quoted field"), "\(open.cause)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'failed'", as: Int.self) == 5)
        }
    }

    /// The slice with values PostgreSQL refuses though a lax parse accepted them: row 10 a NUL
    /// byte in referee (only with `nul`), row 11 invalid UTF-8 in stadium (a lone continuation
    /// byte, a cut two-byte sequence), row 12 gametime `+1:30`, rows 13 and 14 gameday
    /// `2023-+9-10` and `0000-09-10`.
    static func refusedValues(nul: Bool) -> Data {
        var text = Slice.text
        let header = Slice.lines[0].split(separator: ",").map(String.init)
        func set(_ row: Int, _ column: String, _ value: String) {
            var all = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var fields = all[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            fields[header.firstIndex(of: column)!] = value
            all[row] = fields.joined(separator: ",")
            text = all.joined(separator: "\n")
        }
        if nul { set(10, "referee", "Bill\u{0}Vinovich") }
        set(11, "stadium", "BADUTF8 Field")
        set(12, "gametime", "+1:30")
        set(13, "gameday", "2023-+9-10")
        set(14, "gameday", "0000-09-10")
        var bytes = Array(text.utf8)
        let marker = Array("BADUTF8".utf8)
        let at = (0...(bytes.count - marker.count)).first { Array(bytes[$0..<($0 + marker.count)]) == marker }!
        bytes.replaceSubrange(at..<(at + marker.count), with: [0x80, 0x41, 0xC3])
        return Data(bytes)
    }

    /// Values that pass a lax parse but that PostgreSQL refuses used to abort the whole load even
    /// under reject-rows (`etl validate` called the file valid): invalid UTF-8 in text, a signed
    /// time or date part, year 0. Each is now its row's failure, on both load paths; the rejects
    /// keep the raw line (invalid UTF-8 as U+FFFD). Validate also reports a NUL byte.
    @Test func valuesPostgresRefusesAreRejectedPerRow() throws {
        let checks: [Int: String] = [10: "referee|encoding(UTF-8 without NUL)", 11: "stadium|encoding(UTF-8 without NUL)",
                                     12: "gametime|dtype('time')", 13: "gameday|dtype('date')", 14: "gameday|dtype('date')"]
        let validation = try GamesValidation.validate(DataSource(Self.refusedValues(nul: true), name: "test.csv"), now: Slice.snapshotDate)
        #expect(validation.status == "invalid" && validation.rejected == 5, "\(validation.failures)")
        for (row, check) in checks {
            #expect(validation.failures.contains { $0.row == row && "\($0.column ?? "")|\($0.check)" == check }, "row \(row): \(validation.failures)")
        }
        #expect(validation.failures.contains { $0.row == 10 && $0.value == "a NUL byte at byte 5: Bill\\x00Vinovich" }, "\(validation.failures)")
        #expect(validation.failures.contains { $0.row == 11 && $0.value?.hasPrefix("invalid UTF-8 at byte 1: \u{FFFD}A\u{FFFD}") == true }, "\(validation.failures)")

        let data = Self.refusedValues(nul: false)
        try ETLWorld.with { world in
            // Direct path (empty table), then the staged path: the same four rows are rejected.
            for method in ["direct", "staged"] {
                let load = try world.load(data: data)
                #expect(load.status == "succeeded" && load.loadMethod == method)
                #expect(load.rejected == 4 && load.rowsRead == 842, "\(load.failures)")
                #expect(method == "direct" ? load.inserted == 838 : load.unchanged == 838)
                let admin = try world.db.connect()
                defer { admin.close() }
                let rows = try admin.query("""
                    SELECT row_number, reasons::text AS reasons, raw_line FROM nfl.etl_rejects WHERE etl_run_id = \(load.runID!) ORDER BY row_number
                    """).rows
                #expect(rows.map { $0["row_number"] } == ["11", "12", "13", "14"])
                if rows.count == 4 {
                    #expect(rows[0]["raw_line"]?.contains("\u{FFFD}A\u{FFFD} Field") == true)
                    #expect(rows[0]["reasons"]?.contains("encoding(UTF-8 without NUL)") == true)
                    #expect(rows[1]["reasons"]?.contains("dtype('time')") == true && rows[2]["reasons"]?.contains("dtype('date')") == true)
                }
            }
            #expect(try world.counts()["games"] == 838)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status <> 'succeeded'", as: Int.self) == 0)
        }
    }

    /// A rejected row holding a NUL byte: storing its raw line in nfl.etl_rejects (and its value
    /// in the reasons' jsonb) used to fail, then recording the failed run failed too and the run
    /// stayed `running`. NUL is stored as the four characters `\x00`.
    @Test func rejectedRowWithNULIsStoredEscaped() throws {
        let data = Self.refusedValues(nul: true)
        let line10 = Slice.lines[10].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        try ETLWorld.with { world in
            for method in ["direct", "staged"] {
                let load = try world.load(data: data)
                #expect(load.status == "succeeded" && load.loadMethod == method && load.rejected == 5, "\(load.failures)")
                #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(load.runID!)", as: String.self) == "succeeded")
                let admin = try world.db.connect()
                defer { admin.close() }
                let row = try admin.query("""
                    SELECT raw_line, reasons->0->>'value' AS value FROM nfl.etl_rejects WHERE etl_run_id = \(load.runID!) AND row_number = 10
                    """).rows.first
                let referee = Slice.lines[0].split(separator: ",").map(String.init).firstIndex(of: "referee")!
                var expected = line10
                expected[referee] = "Bill\\x00Vinovich"
                #expect(row?["raw_line"] == expected.joined(separator: ","), "\(row?["raw_line"] ?? "nil")")
                #expect(row?["value"] == "a NUL byte at byte 5: Bill\\x00Vinovich")
                #expect(try admin.query("""
                    SELECT count(*) FROM nfl.data_quality_reports WHERE etl_run_id = \(load.runID!) AND strpos(failure_value, \("Bill\\x00Vinovich")) > 0
                    """).scalar(Int.self) == 1)
            }
            #expect(try world.counts()["games"] == 837)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status <> 'succeeded'", as: Int.self) == 0)
        }
    }

    @Test func dryRunChangesNothing() throws {
        try ETLWorld.with { world in
            var options = ETLWorld.options
            options.dryRun = true
            let result = try world.load(Slice.text, options: options)
            #expect(result.status == "dry-run" && result.inserted == 842 && result.runID == nil)
            #expect(try world.counts()["games"] == 0)
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs", as: Int.self) == 0)
        }
    }

    /// A second loader waits on the advisory lock instead of interleaving.
    @Test func concurrentLoadsAreSerialized() throws {
        try ETLWorld.with { world in
            let holder = try world.login("nfl_loader")
            defer { holder.close() }
            try holder.advisoryLock(GamesLoader.lockKey, wait: .seconds(1))
            var options = ETLWorld.options
            options.lockWait = .milliseconds(600)
            #expect(throws: AdvisoryLockTimeout.self) { try world.load(Slice.text, options: options) }
            #expect(try world.counts()["games"] == 0)
            _ = try holder.advisoryUnlock(GamesLoader.lockKey)
            #expect(try world.load(Slice.text, options: options).inserted == 842)
        }
    }
}
