import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

@Suite("pgBackRest backups and verify against a real archiving cluster", .serialized)
struct BackupIntegrationTests {
    @Test("init, full, diff, incr, info, and verify passes on the latest backup")
    func happyPath() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let full = try f.backup("full")
        #expect(full.type == "full")
        #expect(full.label.hasSuffix("F"))
        #expect(full.counts["nfl.plays"] == 5000)
        try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 1, 1 FROM generate_series(1, 700)")
        let diff = try f.backup("diff")
        #expect(diff.label.hasSuffix("D"))
        try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 2, 2 FROM generate_series(1, 300)")
        let incr = try f.backup("incr")
        #expect(incr.label.hasSuffix("I"))
        #expect(incr.counts["nfl.plays"] == 6000)
        let manifestFile = try #require(incr.manifestFile)
        #expect(manifestFile == "\(f.repoPath)/nfldb-manifests/\(incr.label).json")
        #expect(try String(contentsOfFile: manifestFile, encoding: .utf8).contains(incr.token))

        let info = try f.pgbackrest.info()
        #expect(info.count == 1)
        #expect(info[0].backup.map(\.type) == ["full", "diff", "incr"])
        #expect(info[0].db.first?.systemID ?? 0 > UInt64(1) << 53)

        let db = try f.connect()
        let runs = try db.query("SELECT count(*) FROM nfldb.backup_runs WHERE status = 'ok' AND label IS NOT NULL AND size_bytes > 0").scalar(Int.self)
        db.close()
        #expect(runs == 3)

        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.label == incr.label)
        #expect(Set(receipt.checks.map(\.name)).isSuperset(of: ["repo-info", "pgbackrest-verify", "wal-continuity", "archive-timeline", "restore",
                                                           "promoted", "canary", "row-counts", "schema-version", "pg_amcheck", "page-checksums", "server-log"]))
        // The first verification of the stanza runs the full repo verify; page checksums come from
        // the backup's own page check (backup.verify.page_checksums: backup), no pg_checksums pass.
        #expect(receipt.repoVerify?.ran == true, "\(receipt.renderText())")
        #expect(receipt.pageChecksums == "backup")
        #expect(!receipt.checks.contains { $0.name == "pg_checksums" })
        #expect(receipt.recoverySeconds ?? 0 > 0)
        #expect(f.scratchLeftovers().isEmpty)

        // verify of an older set, and the receipt rows the health probe reads
        let older = try f.verify(set: full.label)
        #expect(older.passed, "\(older.renderText())")
        // Within repo_verify_interval of a passing full repo verify: not run again, the archive
        // listed for WAL continuity instead.
        #expect(older.repoVerify?.ran == false, "\(older.renderText())")
        #expect(older.repoVerify?.lastPassedAt != nil)
        #expect(older.checks.contains { $0.name == "pgbackrest-verify" && $0.passed && $0.evidence.contains("not run this time") })
        #expect(older.checks.contains { $0.name == "wal-continuity" && $0.passed })
        let check = try f.connect()
        defer { check.close() }
        #expect(try check.query("SELECT count(*) FROM nfldb.backup_verifications WHERE status = 'ok'").scalar(Int.self) == 2)

        // --full: both again, whatever the settings say.
        let forced = try f.verify(full: true)
        #expect(forced.passed, "\(forced.renderText())")
        #expect(forced.repoVerify?.ran == true)
        #expect(forced.pageChecksums == "pg_checksums")
        #expect(forced.checks.contains { $0.name == "pg_checksums" && $0.passed })
        #expect(f.scratchLeftovers().isEmpty)

        // A verification that failed before deciding (repo-info: an unreadable repo) has no repoVerify in its
        // receipt: it did not run the full repository verification, so the next verify runs it.
        try check.execute("""
            INSERT INTO nfldb.backup_verifications(started_at, finished_at, status, stanza, failed_checks, receipt)
            VALUES (now(), now(), 'failed', \(f.pgbackrest.stanza), ARRAY['repo-info'],
                    '{"checks": [{"name": "repo-info", "passed": false, "evidence": "Permission denied"}]}'::jsonb)
            """)
        let after = try f.verify()
        #expect(after.repoVerify?.ran == true && after.repoVerify?.reason.contains("the last verification failed and did not run") == true,
                "\(after.renderText())")
    }
}
