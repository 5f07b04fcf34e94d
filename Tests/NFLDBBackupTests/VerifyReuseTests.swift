import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// `--reuse-scratch` (a kept copy restored with `--delta`), reference-table checksums, and the
/// manifest copy beside the repo.
@Suite("backup verify: reused scratch, reference checksums, manifest beside the repo", .serialized)
struct VerifyReuseTests {
    func check(_ receipt: VerificationReceipt, _ name: String) -> VerificationCheck? {
        receipt.checks.first { $0.name == name }
    }

    @Test("--reuse-scratch: the first run keeps a stopped copy, the next restores into it with --delta and sees the new rows")
    func reuseWithDelta() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("kept-copy")

        let first = try f.verify(scratch: scratch, reuse: true)
        #expect(first.passed, "\(first.renderText())")
        #expect(check(first, "restore")?.evidence.contains("--delta") == false)
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: "\(scratch)/\(ReusableScratch.markerName)"))
        #expect(fm.fileExists(atPath: "\(scratch)/data/PG_VERSION"))
        #expect(!fm.fileExists(atPath: "\(scratch)/data/postmaster.pid"), "the kept copy must be stopped")

        try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 3, 3 FROM generate_series(1, 250)")
        let incr = try f.backup("incr")
        #expect(incr.counts["nfl.plays"] == 5250)
        let second = try f.verify(scratch: scratch, reuse: true)
        #expect(second.passed, "\(second.renderText())")
        #expect(second.label == incr.label)
        #expect(check(second, "restore")?.evidence.contains("--delta") == true)
        #expect(check(second, "row-counts")?.passed == true)
        #expect(!fm.fileExists(atPath: "\(scratch)/data/postmaster.pid"))

        // Another run holding the kept copy (its flock on <scratch>.lock): an overlapping job, not a problem of the
        // backup, so refused as a usage error before anything runs or is recorded; the copy untouched.
        let fd = open(scratch + ".lock", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let rowsBefore = try f.connect().query("SELECT count(*)::int FROM nfldb.backup_verifications").scalar(Int.self)
        let busy = #expect(throws: BackupError.self) { try f.verify(scratch: scratch, reuse: true) }
        #expect(busy?.exitStatus == .usage)
        #expect(busy?.diagnostic.summary.contains("another `backup verify --reuse-scratch`") == true && busy?.diagnostic.summary.contains(scratch) == true,
                "\(String(describing: busy))")
        #expect(try f.connect().query("SELECT count(*)::int FROM nfldb.backup_verifications").scalar(Int.self) == rowsBefore, "nothing recorded")
        #expect(fm.fileExists(atPath: "\(scratch)/data/PG_VERSION"), "the other run's copy is left alone")
        // A symlink where the kept copy should be: refused up front too, and no lock file left beside it.
        let link = (f.root as NSString).appendingPathComponent("kept-link")
        try fm.createSymbolicLink(atPath: link, withDestinationPath: scratch)
        let linked = #expect(throws: BackupError.self) { try f.verify(scratch: link, reuse: true) }
        #expect(linked?.exitStatus == .usage && linked?.diagnostic.summary.contains("is a symlink") == true, "\(String(describing: linked))")
        #expect(!fm.fileExists(atPath: link + ".lock"))
    }

    @Test("a tablespace is restored under the scratch dir: the primary's tablespace on this host is never touched (fresh and --delta)")
    func tablespaceStaysInScratch() throws {
        let f = try BackupFixture()
        defer { f.close() }
        let location = (f.root as NSString).appendingPathComponent("primary-ts")
        try FileManager.default.createDirectory(atPath: location, withIntermediateDirectories: true)
        try f.cluster.giveToOSUser(location)
        chmod(location, 0o700)
        try f.sql("CREATE TABLESPACE verify_ts LOCATION '\(location)'")
        try f.sql("CREATE TABLE nfl.kicks (id int PRIMARY KEY, yards int) TABLESPACE verify_ts; INSERT INTO nfl.kicks SELECT g, g % 60 FROM generate_series(1, 500) g")
        try f.initStanza()
        _ = try f.backup("full")
        let tsDirectory = try #require(try FileManager.default.contentsOfDirectory(atPath: location).first { $0.hasPrefix("PG_15") })
        let sentinel = "\(location)/\(tsDirectory)/sentinel-not-in-any-backup"
        try "primary's".write(toFile: sentinel, atomically: true, encoding: .utf8)
        func primaryFiles() -> [String] { (FileManager.default.enumerator(atPath: location)?.allObjects as? [String] ?? []).sorted() }
        let before = primaryFiles()

        let fresh = try f.verify()
        #expect(fresh.passed, "\(fresh.renderText())")
        #expect(fresh.checks.first { $0.name == "row-counts" }?.evidence.contains("match") == true)
        let scratch = (f.root as NSString).appendingPathComponent("kept-ts-copy")
        var receipts: [VerificationReceipt] = []
        for _ in 0..<2 {
            let receipt = try f.verify(scratch: scratch, reuse: true)
            #expect(receipt.passed, "\(receipt.renderText())")
            receipts.append(receipt)
        }
        // pg_amcheck's skipping sees a tablespace's files too (pgBackRest lists them as pg_tblspc/…,
        // not pg_data/…: before, a relation in a tablespace was checked every run).
        #expect(receipts[0].amcheckSkip?.checked.contains("nfl.kicks") == true)
        #expect(receipts[1].amcheckSkip?.checked.contains("nfl.kicks") == false, "\(String(describing: receipts[1].amcheckSkip))")
        #expect(FileManager.default.fileExists(atPath: "\(scratch)/tblspc"), "the copy's tablespace lives under the scratch dir")
        #expect(FileManager.default.fileExists(atPath: sentinel), "--delta must never clean the primary's tablespace")
        #expect(primaryFiles() == before)
        let db = try f.connect()
        defer { db.close() }
        #expect(try db.query("SELECT count(*) FROM nfl.kicks").scalar(Int.self) == 500)
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("--reuse-scratch refuses a directory it did not make and leaves its files alone")
    func refusesUnmarkedDirectory() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("someone-elses")
        try FileManager.default.createDirectory(atPath: "\(scratch)/data", withIntermediateDirectories: true)
        chmod(scratch, 0o700)  // closed to others, so the refusal is about the missing marker
        try "keep me".write(toFile: "\(scratch)/data/precious", atomically: true, encoding: .utf8)

        let receipt = try f.verify(scratch: scratch, reuse: true)
        #expect(!receipt.passed)
        let refusal = try #require(receipt.checks.first { $0.name == "scratch" && !$0.passed }, "\(receipt.renderText())")
        #expect(refusal.evidence.contains(scratch))
        #expect(refusal.evidence.contains(ReusableScratch.markerName))
        #expect(try String(contentsOfFile: "\(scratch)/data/precious", encoding: .utf8) == "keep me")
        #expect(!receipt.checks.contains { $0.name == "restore" })

        // A symlink to a directory is refused whatever it points at.
        let link = (f.root as NSString).appendingPathComponent("via-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: scratch)
        let linked = #expect(throws: BackupError.self) { try f.verify(scratch: link, reuse: true) }
        #expect(linked?.exitStatus == .usage && linked?.diagnostic.summary.contains("is a symlink") == true, "\(String(describing: linked))")
        #expect(!FileManager.default.fileExists(atPath: link + ".lock"), "no lock file left beside the refused symlink")
        // A directory others may write is refused, marker or not.
        let open = (f.root as NSString).appendingPathComponent("open-copy")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        chmod(open, 0o777)
        let loose = try f.verify(scratch: open, reuse: true)
        #expect(loose.checks.contains { $0.name == "scratch" && !$0.passed && $0.evidence.contains("mode 777") }, "\(loose.renderText())")
        #expect(try String(contentsOfFile: "\(scratch)/data/precious", encoding: .utf8) == "keep me")

        // Without --reuse-scratch an existing directory is refused too (a usage error: nothing recorded), and kept.
        let plain = #expect(throws: BackupError.self) { try f.verify(scratch: scratch) }
        #expect(plain?.exitStatus == .usage && plain?.diagnostic.summary.contains("already exists") == true)
        #expect(FileManager.default.fileExists(atPath: "\(scratch)/data/precious"))
    }

    @Test("reference-table checksums: a content change the row counts cannot see is named")
    func referenceChecksums() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let db = try f.connect()
        defer { db.close() }
        let tables = ManagedTables(reference: ["nfl.games", "nfl.no_such_table"])
        let report = try BackupRunner(pgbackrest: f.pgbackrest, connection: db, tables: tables, logger: f.logger).run(type: "full")
        let stored = try db.query("SELECT checksums::text FROM nfldb.backup_manifests WHERE token = \(report.token)").scalar(String.self)
        #expect(stored.contains("nfl.games"))
        #expect(stored.contains("200 rows md5 "))
        #expect(!stored.contains("no_such_table"))
        let good = try f.verify()
        #expect(good.passed, "\(good.renderText())")
        #expect(check(good, "reference-checksums")?.evidence.contains("nfl.games") == true)

        // The manifest is taken, then a row changes (same count), then the backup runs.
        try f.backupAfterManifestThen("UPDATE nfl.games SET season = season + 1 WHERE id = 7", tables: tables)
        let receipt = try f.verify()
        #expect(!receipt.passed)
        #expect(check(receipt, "row-counts")?.passed == true)
        let mismatch = try #require(receipt.checks.first { $0.name == "reference-checksums" && !$0.passed }, "\(receipt.renderText())")
        #expect(mismatch.evidence.contains("nfl.games"))
        #expect(mismatch.evidence.contains("200 rows md5"))
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("the primary lost its manifest rows: verify uses the copy beside the repo")
    func manifestBesideRepo() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let full = try f.backup("full")
        let file = try #require(full.manifestFile)
        try f.sql("DELETE FROM nfldb.backup_runs")
        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(check(receipt, "manifest")?.evidence.contains(file) == true)
        #expect(check(receipt, "row-counts")?.evidence.contains(full.token) == true)

        // Neither in the database nor beside the repo: the manifest check fails and says so.
        try FileManager.default.removeItem(atPath: file)
        let missing = try f.verify()
        #expect(missing.checks.contains { $0.name == "manifest" && !$0.passed && $0.evidence.contains("no manifest") })
        #expect(f.scratchLeftovers().isEmpty)
    }
}
