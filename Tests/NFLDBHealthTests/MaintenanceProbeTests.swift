import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("Maintenance and capacity probes against a real server")
struct MaintenanceProbeTests {
    /// A table with 80% of its rows deleted, autovacuum off, analyzed: real dead rows and bloat.
    static let bloatedTable = """
        CREATE TABLE plays (id bigint, game_id int, description text) WITH (autovacuum_enabled = false);
        INSERT INTO plays SELECT g, g % 300, repeat('x', 60) FROM generate_series(1, 120000) g;
        CREATE INDEX plays_game_idx ON plays (game_id);
        DELETE FROM plays WHERE id % 5 <> 0;
        ANALYZE plays;
        """

    /// Cumulative statistics reach shared memory when the writing backend goes idle (about a second).
    static func waitForDeadRows(_ connection: PostgresConnection) throws {
        let seen = try eventually {
            try connection.query("SELECT coalesce(sum(n_dead_tup), 0)::int FROM pg_stat_user_tables WHERE relname = 'plays'").scalar(Int.self) > 1000
        }
        #expect(seen, "the dead rows reached pg_stat_user_tables")
    }

    @Test("a table with deleted rows and autovacuum off is bloated (statistics estimate) and overdue for vacuum")
    func bloatAndVacuum() throws {
        try TestCluster.withDatabase(prefix: "h_bloat") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: Self.bloatedTable)
            try Self.waitForDeadRows(admin)
            let bloat = try runCheck("bloat", dsn: db.dsn, ["bloat.min_size": "1048576", "bloat.warning": "2097152", "bloat.critical": "1073741824"])
            #expect(bloat.status == .warning, "\(bloat.message)")
            let worst = try #require(bloat.details.first)
            #expect(worst["name"] == .string("plays"))
            #expect(worst["method"] == .string("statistics"))
            if case .double(let percent)? = worst["wasted_percent"] { #expect(percent > 60 && percent < 90) } else { Issue.record("no percent") }
            #expect(bloat.message.contains("public.plays"))

            // Above the default 100 MB floor nothing is examined: thousands of small tables cost nothing.
            let floor = try runCheck("bloat", dsn: db.dsn)
            #expect(floor.status == .ok)
            #expect(floor.message.contains("0 relations over 100 MB"))
            // A min_size past any relation (relpages is an int4): OK with nothing examined, not a trap or SQLSTATE 22003.
            for huge in ["1e19", "1e50"] {
                let beyond = try runCheck("bloat", dsn: db.dsn, ["bloat.min_size": huge])
                #expect(beyond.status == .ok, "\(huge): \(beyond.message)")
            }

            let vacuum = try runCheck("vacuum", dsn: db.dsn)
            #expect(vacuum.status == .warning, "\(vacuum.message)")
            let table = try #require(vacuum.details.first)
            #expect(table["table"] == .string("public.plays"))
            #expect(table["autovacuum_enabled"] == .bool(false))
            #expect(vacuum.message.contains("autovacuum disabled for this table"))

            try admin.execute("VACUUM (ANALYZE) plays")
            #expect(try eventually { try runCheck("vacuum", dsn: db.dsn).status == .ok }, "VACUUM clears the finding")
        }
    }

    @Test("wraparound ignores partitioned tables and views (age 2147483647) and names the oldest real tables")
    func wraparound() throws {
        try TestCluster.withDatabase(prefix: "h_wrap") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE seasons (year int, name text) PARTITION BY RANGE (year);
                CREATE TABLE seasons_2024 PARTITION OF seasons FOR VALUES FROM (2024) TO (2025);
                CREATE VIEW season_names AS SELECT name FROM seasons;
                """)
            let result = try runCheck("wraparound", dsn: db.dsn)
            #expect(result.status == .ok)
            #expect((result.value ?? 100) < 1)
            let names = result.detailValues("name")
            #expect(!names.contains("public.seasons"))
            #expect(!names.contains("public.season_names"))
            #expect(result.detailValues("xid_age").allSatisfy { (Double($0) ?? 0) < 2_000_000_000 })
            #expect(names.contains(db.name), "every database is listed")

            let low = try runCheck("wraparound", dsn: db.dsn, ["wraparound.warning": "0", "wraparound.critical": "100"])
            #expect(low.status == .warning)
            #expect(low.hint?.contains("VACUUM (FREEZE)") == true)
        }
    }

    @Test("sequences are judged against the owning column's type; cycling sequences are not")
    func sequences() throws {
        try TestCluster.withDatabase(prefix: "h_seq") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE tickets (id int NOT NULL, note text);
                CREATE SEQUENCE legacy_id_seq AS bigint OWNED BY tickets.id;
                SELECT setval('legacy_id_seq', 1900000000);
                CREATE TABLE games (id int GENERATED ALWAYS AS IDENTITY, home text);
                CREATE SEQUENCE round_robin AS smallint MAXVALUE 100 CYCLE;
                SELECT setval('round_robin', 99);
                """)
            let result = try runCheck("sequences", dsn: db.dsn)
            #expect(result.status == .warning, "\(result.message)")
            #expect(result.message.contains("public.legacy_id_seq"))
            #expect(result.message.contains("integer"))
            #expect(abs((result.value ?? 0) - 88.48) < 0.01)
            #expect(!result.detailValues("sequence").contains("public.round_robin"))

            try admin.execute("SELECT setval('legacy_id_seq', 2000000000)")
            #expect(try runCheck("sequences", dsn: db.dsn).status == .critical)

            try withMonitorRole { user, password in
                let monitor = db.cluster.dsn(database: db.name, user: user, password: password)
                let unreadable = try runCheck("sequences", dsn: monitor)
                #expect(unreadable.status == .unknown)
                #expect(unreadable.message.contains("cannot read"))
                #expect(unreadable.hint?.contains("GRANT SELECT ON ALL SEQUENCES") == true)
                try admin.execute("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO \(identifier: user)")
                #expect(try runCheck("sequences", dsn: monitor).status == .critical)
                try admin.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \(identifier: user)")
            }
        }
    }

    @Test("an index left invalid by a failed CREATE UNIQUE INDEX CONCURRENTLY is reported")
    func invalidIndex() throws {
        try TestCluster.withDatabase(prefix: "h_inv") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE players (id int); INSERT INTO players VALUES (1), (1);")
            #expect(throws: PostgresError.self) { try admin.execute("CREATE UNIQUE INDEX CONCURRENTLY players_id_key ON players (id)") }
            let result = try runCheck("invalid_indexes", dsn: db.dsn)
            #expect(result.status == .warning)
            #expect(result.value == 1)
            #expect(result.detailValues("index") == ["public.players_id_key"])
            #expect(result.hint?.contains("REINDEX INDEX CONCURRENTLY public.players_id_key") == true)
        }
    }

    @Test("a forced slow query shows up in pg_stat_statements by mean time; a missing extension is UNKNOWN with the fix")
    func slowQueries() throws {
        try TestCluster.withDatabase(prefix: "h_pgss") { db in
            let missing = try runCheck("slow_queries", dsn: db.dsn)
            #expect(missing.status == .unknown)
            #expect(missing.message.contains("not created in database \(db.name)"))
            #expect(missing.hint?.contains("CREATE EXTENSION pg_stat_statements") == true)

            let admin = try db.connect()
            defer { admin.close() }
            try admin.execute("CREATE EXTENSION pg_stat_statements")
            for _ in 0..<2 { try admin.query("SELECT pg_sleep(0.3), 'slow-marker'") }
            let result = try runCheck("slow_queries", dsn: db.dsn, ["slow_queries.min_calls": "2", "slow_queries.warning": "200", "slow_queries.critical": "60000"])
            #expect(result.status == .warning, "\(result.message)")
            #expect(result.message.contains("pg_sleep"))
            #expect((result.value ?? 0) >= 290)
            #expect(result.detailValues("calls").first == "2")
        }
    }

    @Test("cache_hit ignores the shared-catalog row (datid 0) and treats lower as worse")
    func cacheHit() throws {
        try TestCluster.withDatabase(prefix: "h_cache") { db in
            let result = try runCheck("cache_hit", dsn: db.dsn, ["cache_hit.min_blocks": "1"])
            #expect(result.status == .ok)
            #expect(!result.details.isEmpty)
            #expect(result.details.allSatisfy { $0["database"] != nil && $0["database"] != .null && $0["database"] != .string("") })
            #expect(result.thresholds.direction == .lowerIsWorse)
            let strict = try runCheck("cache_hit", dsn: db.dsn, ["cache_hit.min_blocks": "1", "cache_hit.warning": "100.01"])
            #expect(strict.status == .warning)
        }
    }

    @Test("database_size reports the size; backups are UNKNOWN until nfldb.backup_runs exists, then judged by age")
    func sizeAndBackups() throws {
        try TestCluster.withDatabase(prefix: "h_bak") { db in
            let size = try runCheck("database_size", dsn: db.dsn)
            #expect(size.status == .ok)
            #expect((size.value ?? 0) > 1_000_000)
            #expect(try runCheck("database_size", dsn: db.dsn, ["database_size.warning": "1000"]).status == .warning)

            let none = try runCheck("backups", dsn: db.dsn)
            #expect(none.status == .unknown)
            #expect(none.message.contains("nfldb.backup_runs does not exist"))
            #expect(none.hint?.contains("health.checks.backups.enabled: false") == true)

            let admin = try db.connect()
            defer { admin.close() }
            // The columns nfldb's backup catalog has (NFLDBBackup.BackupCatalog) that the check reads.
            try admin.runScript(unsafeSQL: """
                CREATE SCHEMA IF NOT EXISTS nfldb;
                CREATE TABLE nfldb.backup_runs (id serial, finished_at timestamptz, status text, stanza text NOT NULL,
                                                backup_type text, label text, error text);
                INSERT INTO nfldb.backup_runs (finished_at, status, stanza, backup_type) VALUES (now() - interval '30 hours', 'ok', 'nfldb', 'full');
                """)
            let old = try runCheck("backups", dsn: db.dsn)
            #expect(old.status == .warning, "\(old.message)")
            #expect(abs((old.value ?? 0) - 108_000) < 60)
            // A failed latest run is CRITICAL, whatever the age of the last success, naming the error.
            try admin.runScript(unsafeSQL: """
                INSERT INTO nfldb.backup_runs (finished_at, status, stanza, backup_type, error)
                VALUES (now() - interval '1 hour', 'failed', 'nfldb', 'diff', 'pgbackrest backup failed with error [082 archive-timeout]')
                """)
            let failed = try runCheck("backups", dsn: db.dsn)
            #expect(failed.status == .critical, "\(failed.message)")
            #expect(failed.message.contains("latest backup run") && failed.message.contains("[082 archive-timeout]"), "\(failed.message)")
            try admin.runScript(unsafeSQL: """
                INSERT INTO nfldb.backup_runs (finished_at, status, stanza, backup_type) VALUES (now() - interval '2 hours' + interval '90 minutes', 'succeeded', 'nfldb', 'diff');
                CREATE TABLE nfldb.backup_verifications (id serial, finished_at timestamptz, status text, stanza text NOT NULL, label text,
                                                         failed_checks text[] NOT NULL DEFAULT '{}');
                INSERT INTO nfldb.backup_verifications (finished_at, status, stanza, label) VALUES (now() - interval '1 day', 'ok', 'nfldb', 'L1');
                """)
            let fresh = try runCheck("backups", dsn: db.dsn)
            #expect(fresh.status == .ok, "\(fresh.message)")
            #expect(fresh.message.contains("verification"))
            // Another stanza's records do not count for this one.
            let other = try runCheck("backups", dsn: db.dsn, ["backups.stanza": "other"])
            #expect(other.status == .critical && other.message.contains("stanza other: no successful backup"), "\(other.message)")
        }
    }
}
