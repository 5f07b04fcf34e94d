import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

/// Migrations 0010/0011: a first load into empty tables drops the foreign keys of nfl.games,
/// nfl.weather and nfl.odds_history (to teams, stadiums and games), loads, and adds them back
/// (validated) before COMMIT. Every way around that is tried: a reader calling the function, a
/// writer without locks or with rows present, a COMMIT without the restore, an orphan row of
/// either kind, a key declared NOT VALID, a reader holding a lock on a loaded or a referenced
/// table, and kill -9 mid-load.
@Suite(.serialized) struct ForeignKeySuspensionTests {
    /// The foreign keys of games, weather and odds_history, as `table name definition validated`.
    static func gameForeignKeys(_ connection: PostgresConnection) throws -> [String] {
        try connection.query("""
            SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated AS k
            FROM pg_constraint WHERE contype = 'f'
              AND conrelid IN ('nfl.games'::regclass, 'nfl.weather'::regclass, 'nfl.odds_history'::regclass)
            ORDER BY 1
            """).rows.map { $0["k"] ?? "" }
    }

    static let expectedKeys = [
        "nfl.games games_away_team_fkey FOREIGN KEY (away_team) REFERENCES nfl.teams(team_abbr) true",
        "nfl.games games_home_team_fkey FOREIGN KEY (home_team) REFERENCES nfl.teams(team_abbr) true",
        "nfl.games games_stadium_id_fkey FOREIGN KEY (stadium_id) REFERENCES nfl.stadiums(stadium_id) true",
        "nfl.odds_history odds_history_game_id_fkey FOREIGN KEY (game_id) REFERENCES nfl.games(game_id) true",
        "nfl.weather weather_game_id_fkey FOREIGN KEY (game_id) REFERENCES nfl.games(game_id) true",
    ]

    /// The first load of the slice as nfl_loader checks the keys at the end; the counts match a
    /// load with per-row checks, the keys come back identical, and the suspension is on record.
    @Test func firstLoadChecksForeignKeysAtTheEnd() throws {
        var perRowCounts: [String: Int] = [:]
        try ETLWorld.with { world in
            var options = ETLWorld.options
            options.suspendForeignKeys = false
            let load = try world.load(Slice.text, options: options)
            #expect(load.loadMethod == "direct" && load.foreignKeyChecks == "per-row")
            perRowCounts = try world.counts()
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_fk_suspensions", as: Int.self) == 0)
        }
        try ETLWorld.with { world in
            let admin = try world.db.connect()
            defer { admin.close() }
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            let load = try world.load(Slice.text)
            #expect(load.status == "succeeded" && load.loadMethod == "direct" && load.foreignKeyChecks == "at-end")
            #expect(load.phaseMS["restore_foreign_keys"] != nil)
            #expect(try world.counts() == perRowCounts)
            #expect(perRowCounts["weather"]! > 0 && perRowCounts["odds_history"]! > 0)
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            let record = try admin.query("""
                SELECT suspended_by, restored_at IS NOT NULL AS restored, jsonb_array_length(constraints) AS n FROM nfl.etl_fk_suspensions
                """).rows
            #expect(record.count == 1)
            #expect(record.first?["suspended_by"] == world.prefix + "nfl_loader" && record.first?["restored"] == "t" && record.first?["n"] == "5")
            // The keys work again: an orphan weather row is refused.
            let orphan = #expect(throws: PostgresError.self) {
                try admin.execute("INSERT INTO nfl.weather (game_id, source, temp_f) VALUES ('2099_01_XXX_YYY', 'test', 50)")
            }
            #expect(orphan?.sqlState == "23503")
            // And nfl.games' own keys: a team that games refer to cannot be deleted.
            let usedTeam = #expect(throws: PostgresError.self) {
                try admin.execute("DELETE FROM nfl.teams WHERE team_abbr = (SELECT away_team FROM nfl.games ORDER BY game_id LIMIT 1)")
            }
            #expect(usedTeam?.sqlState == "23503" && usedTeam?.message.contains("on table \"games\"") == true, "\(String(describing: usedTeam))")
            // A second load is not a first load: per-row checks, nothing changes.
            let again = try world.load(Slice.text)
            #expect(again.loadMethod == "staged" && again.foreignKeyChecks == "per-row" && again.unchanged == 842)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_fk_suspensions").scalar(Int.self) == 1)
        }
    }

    /// Every path around the guard, through real logins: a reader (EXECUTE on nfl.* from its
    /// profile) and a writer without the locks get 42501; a writer with rows present gets 55000; a
    /// COMMIT without the restore fails and leaves the keys; an orphan fails the restore (23503).
    @Test func theFunctionsRefuseEveryOtherPath() throws {
        try ETLWorld.with { world in
            let admin = try world.db.connect()
            defer { admin.close() }
            let reader = try world.login("nfl_analyst")
            defer { reader.close() }
            try reader.execute("BEGIN")
            let readerCall = #expect(throws: PostgresError.self) { try reader.query("SELECT nfl.etl_suspend_game_foreign_keys()") }
            #expect(readerCall?.sqlState == "42501", "\(String(describing: readerCall))")
            #expect(readerCall?.message.contains("does not hold a write lock on nfl.games") == true)
            try reader.execute("ROLLBACK")
            // Nor can a reader take the lock that would let it in.
            try reader.execute("BEGIN")
            let readerLock = #expect(throws: PostgresError.self) { try reader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE") }
            #expect(readerLock?.sqlState == "42501")
            try reader.execute("ROLLBACK")
            // Nor with the locks PREPARE takes: parse analysis opens an INSERT's table with ROW
            // EXCLUSIVE and the privilege is checked only at EXECUTE, so the pg_locks proof alone
            // would let a reader in. The login's INSERT privilege is checked too.
            try reader.execute("BEGIN")
            for (n, table) in ["nfl.games", "nfl.weather", "nfl.odds_history"].enumerated() {
                try reader.execute("PREPARE fake_writer_\(unsafeRaw: String(n)) AS INSERT INTO \(unsafeRaw: table) (game_id) VALUES ('x')")
            }
            #expect(try reader.query("""
                SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'RowExclusiveLock' AND granted
                  AND relation IN ('nfl.games'::regclass, 'nfl.weather'::regclass, 'nfl.odds_history'::regclass)
                """).scalar(Int.self) == 3, "PREPARE gave the reader the writer's locks")
            let prepared = #expect(throws: PostgresError.self) { try reader.query("SELECT nfl.etl_suspend_game_foreign_keys()") }
            #expect(prepared?.sqlState == "42501", "\(String(describing: prepared))")
            #expect(prepared?.message.contains("may not insert into nfl.games") == true, "\(String(describing: prepared))")
            try reader.execute("ROLLBACK")
            try reader.execute("DEALLOCATE ALL")
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            // A reader holding ACCESS SHARE (a plain SELECT) is still refused.
            try reader.execute("BEGIN")
            _ = try reader.query("SELECT count(*) FROM nfl.games, nfl.weather, nfl.odds_history")
            #expect(throws: PostgresError.self) { try reader.query("SELECT nfl.etl_suspend_game_foreign_keys()") }
            try reader.execute("ROLLBACK")

            let loader = try world.login("nfl_loader")
            defer { loader.close() }
            // Without the locks.
            try loader.execute("BEGIN")
            let unlocked = #expect(throws: PostgresError.self) { try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()") }
            #expect(unlocked?.sqlState == "42501")
            try loader.execute("ROLLBACK")
            // Locks held, but COMMIT without the restore: refused, and the keys are still there.
            try loader.execute("BEGIN")
            try loader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            #expect(try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()").scalar(Int.self) == 5)
            #expect(try Self.gameForeignKeys(loader).isEmpty, "dropped inside the transaction")
            let commit = #expect(throws: PostgresError.self) { try loader.execute("COMMIT") }
            #expect(commit?.sqlState == "23000", "\(String(describing: commit))")
            #expect(commit?.message.contains("was not added back") == true)
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_fk_suspensions").scalar(Int.self) == 0)
            // SET CONSTRAINTS ALL IMMEDIATE fires the guard at once instead of skipping it.
            try loader.execute("BEGIN")
            try loader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            _ = try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()")
            let immediate = #expect(throws: PostgresError.self) { try loader.execute("SET CONSTRAINTS ALL IMMEDIATE") }
            #expect(immediate?.sqlState == "23000")
            try loader.execute("ROLLBACK")
            // An orphan row written while the keys are away fails the restore with PostgreSQL's own error.
            try loader.execute("BEGIN")
            try loader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            _ = try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()")
            try loader.execute("INSERT INTO nfl.weather (game_id, source, temp_f) VALUES ('2099_01_XXX_YYY', 'test', 50)")
            let orphan = #expect(throws: PostgresError.self) { try loader.query("SELECT nfl.etl_restore_game_foreign_keys()") }
            #expect(orphan?.sqlState == "23503")
            #expect(orphan?.message.contains("violates foreign key constraint \"weather_game_id_fkey\"") == true)
            try loader.execute("ROLLBACK")
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            #expect(try world.counts()["weather"] == 0)
            // So does a game whose teams and stadium are not in nfl.teams/nfl.stadiums (empty here):
            // the slice's first game, copied in as the load would, fails on nfl.games' own key.
            #expect(try world.counts()["teams"] == 0)
            try loader.execute("BEGIN")
            try loader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            _ = try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()")
            let firstGame = Slice.text.split(separator: "\n", maxSplits: 2).prefix(2).joined(separator: "\n") + "\n"
            try loader.copyIn("COPY nfl.games FROM STDIN (FORMAT csv, HEADER, FORCE_NULL (surface))") { writer in try writer.write(firstGame) }
            let gameOrphan = #expect(throws: PostgresError.self) { try loader.query("SELECT nfl.etl_restore_game_foreign_keys()") }
            #expect(gameOrphan?.sqlState == "23503")
            #expect(gameOrphan?.message.contains("violates foreign key constraint \"games_away_team_fkey\"") == true, "\(String(describing: gameOrphan))")
            try loader.execute("ROLLBACK")
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            #expect(try world.counts()["games"] == 0)
            // The restore with nothing suspended does nothing (and assigns no transaction id).
            #expect(try reader.query("SELECT nfl.etl_restore_game_foreign_keys()").scalar(Int.self) == 0)

            // Rows present: a writer with the locks is refused (only a first load may skip the
            // checks) at once, without queueing ACCESS EXCLUSIVE behind a reader (which would block
            // every later reader of the table until the lock_timeout).
            try world.load(Slice.text)
            try reader.execute("BEGIN")
            _ = try reader.query("SELECT count(*) FROM nfl.games")
            try loader.execute("BEGIN")
            try loader.execute("SET LOCAL lock_timeout = '30s'")
            try loader.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            let asked = ContinuousClock.now
            let notEmpty = #expect(throws: PostgresError.self) { try loader.query("SELECT nfl.etl_suspend_game_foreign_keys()") }
            #expect(notEmpty?.sqlState == "55000")
            #expect(ContinuousClock.now - asked < .seconds(10), "refused without waiting for the reader's lock")
            try loader.execute("ROLLBACK")
            try reader.execute("ROLLBACK")
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
        }
    }

    /// A reader inside a transaction on a loaded table (nfl.weather) or on a table nfl.games refers
    /// to (nfl.teams: dropping a foreign key locks its referenced table too) when the first load
    /// starts: the load does not wait for it past lock_timeout; it goes on with per-row checks and
    /// says so, and every key is as it was.
    @Test(arguments: ["nfl.weather", "nfl.teams"]) func aReaderHoldingALockKeepsPerRowChecks(table: String) throws {
        try ETLWorld.with { world in
            let reader = try world.login("nfl_analyst")
            defer { reader.close() }
            try reader.execute("BEGIN")
            _ = try reader.query("SELECT count(*) FROM \(unsafeRaw: table)")
            var options = ETLWorld.options
            options.lockTimeout = .milliseconds(500)
            let load = try world.load(Slice.text, options: options)
            #expect(load.status == "succeeded" && load.loadMethod == "direct" && load.foreignKeyChecks == "per-row")
            #expect(load.inserted == 842)
            try reader.execute("ROLLBACK")
            let admin = try world.db.connect()
            defer { admin.close() }
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_fk_suspensions").scalar(Int.self) == 0)
        }
    }

    /// kill -9 of `nfldb etl load` while the keys are suspended (the load is held, after the
    /// suspension, on a lock an admin keeps on nfl.odds_history's identity sequence, which its
    /// first odds COPY needs): the server rolls the DROP back with the rest; the keys are there,
    /// the tables empty, no session left, and the next load is again a first load.
    @Test func killNineWhileSuspendedRestoresTheKeys() throws {
        try ETLWorld.with { world in
            let dir = try CLIRunner.temporaryDirectory("nfldb-etl-fk")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let file = dir + "/games.csv"
            try Slice.text.write(toFile: file, atomically: true, encoding: .utf8)
            let admin = try world.db.connect()
            defer { admin.close() }
            let blocker = try world.db.connect()
            defer { blocker.close() }
            let sequence = try admin.query("SELECT pg_get_serial_sequence('nfl.odds_history', 'odds_id') AS s").scalar(String.self)
            try blocker.execute("BEGIN")
            try blocker.execute("ALTER SEQUENCE \(unsafeRaw: sequence) CACHE 1")
            let child = try CLIRunner.spawn(["etl", "load", "games", "--source", file, "--dsn", world.loaderDSN],
                                            environment: ["NFLDB_ETL_LOCK_TIMEOUT": "120s"])
            defer { child.kill9(); child.removeOutput() }
            let suspended = poll(timeout: .seconds(60)) {
                (try? admin.query("""
                    SELECT count(*) = 5 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE a.usename = \(world.prefix + "nfl_loader") AND l.granted AND l.mode = 'AccessExclusiveLock'
                      AND l.relation IN ('nfl.games'::regclass, 'nfl.weather'::regclass, 'nfl.odds_history'::regclass,
                                         'nfl.teams'::regclass, 'nfl.stadiums'::regclass)
                    """).scalar(Bool.self)) == true
            }
            #expect(suspended, "the load holds the suspension's locks: \(child.standardError)")
            // The load then waits for the sequence, with the keys dropped in its open transaction.
            #expect(poll(timeout: .seconds(30)) {
                (try? admin.query("""
                    SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader") AND wait_event_type = 'Lock'
                    """).scalar(Bool.self)) == true
            }, "the load waits on the admin's lock on the sequence")
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_fk_suspensions").scalar(Int.self) == 0, "not committed")
            child.kill9()
            try blocker.execute("ROLLBACK")
            let gone = poll(timeout: .seconds(30)) {
                (try? admin.query("SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = \(world.prefix + "nfl_loader")").scalar(Bool.self)) == true
            }
            #expect(gone, "no session of the killed load is left")
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
            let counts = try world.counts()
            #expect(counts.values.allSatisfy { $0 == 0 }, "\(counts)")
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_fk_suspensions").scalar(Int.self) == 0)
            let next = try world.load(Slice.text)
            #expect(next.status == "succeeded" && next.foreignKeyChecks == "at-end" && next.inserted == 842)
            #expect(try admin.query("SELECT count(*) FROM nfl.etl_runs WHERE status = 'failed' AND error LIKE 'abandoned:%'").scalar(Int.self) == 1)
            #expect(try Self.gameForeignKeys(admin) == Self.expectedKeys)
        }
    }
}
