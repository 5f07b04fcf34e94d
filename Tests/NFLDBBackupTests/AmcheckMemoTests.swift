import Foundation
@testable import NFLDBBackup
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// `--reuse-scratch`: pg_amcheck skips relation groups unchanged since a clean check, and only
/// those (docs/backups.md "Speed work" (d)).
@Suite("backup verify: pg_amcheck skips only what provably did not change", .serialized)
struct AmcheckMemoTests {
    func amcheck(_ receipt: VerificationReceipt) -> VerificationCheck? { receipt.checks.first { $0.name == "pg_amcheck" } }

    @Test("same backup → all skipped but an expression index and a user-type index; a changed table → only it checked; a transaction open at the check that commits later → nothing skipped; a tampered memo and an expired check are rechecked; --full skips nothing")
    func skipsOnlyUnchanged() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.sql("CREATE TABLE nfl.notes (id int PRIMARY KEY, body text); INSERT INTO nfl.notes SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 300) g;"
                  + "CREATE TABLE nfl.tagged (id int PRIMARY KEY, tag text); CREATE INDEX ON nfl.tagged (lower(tag)); INSERT INTO nfl.tagged SELECT g, 'T' || g FROM generate_series(1, 100) g;"
                  + "CREATE TYPE nfl.mood AS ENUM ('low', 'high'); CREATE TABLE nfl.moods (id int PRIMARY KEY, m nfl.mood); CREATE INDEX ON nfl.moods (m);"
                  + "INSERT INTO nfl.moods SELECT g, (ARRAY['low', 'high']::nfl.mood[])[1 + g % 2] FROM generate_series(1, 100) g")
        try f.initStanza()
        let fullBackup = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("kept")
        let memoPath = AmcheckMemo.path(scratch)

        let first = try f.verify(scratch: scratch, reuse: true)
        #expect(first.passed, "\(first.renderText())")
        let firstSkip = try #require(first.amcheckSkip)
        #expect(firstSkip.skipped == 0 && firstSkip.groups > 0 && firstSkip.recorded == firstSkip.groups, "\(firstSkip)")
        #expect(firstSkip.reason?.contains("no earlier clean check") == true)
        var info = stat()
        #expect(lstat(memoPath, &info) == 0 && info.st_uid == geteuid() && info.st_mode & 0o777 == 0o600)

        // The same backup again: every group of the database is unchanged and skipped, except the
        // table with an expression index (a function redefined since could change its entries) and
        // the one with an index on a user-defined type (it sorts by functions or catalog rows the
        // index does not show: an attack probe redefined the comparison behind a range type's range_ops).
        let second = try f.verify(scratch: scratch, reuse: true)
        #expect(second.passed, "\(second.renderText())")
        let all = try #require(second.amcheckSkip)
        #expect(all.skipped == all.groups - 2 && all.checked == ["nfl.tagged", "nfl.moods"], "\(all)")
        #expect(amcheck(second)?.evidence.contains("\(all.groups - 2) of \(all.groups) relation group(s) of database nfl skipped") == true,
                "\(amcheck(second)?.evidence ?? "")")

        // One row of nfl.games changes: nfl.games is checked again, nfl.plays and nfl.notes are not.
        try f.sql("UPDATE nfl.games SET season = season WHERE id = 7")
        _ = try f.backup("incr")
        let third = try f.verify(scratch: scratch, reuse: true)
        #expect(third.passed, "\(third.renderText())")
        let changed = try #require(third.amcheckSkip)
        #expect(changed.checked.contains("nfl.games"), "\(changed)")
        #expect(!changed.checked.contains("nfl.plays") && !changed.checked.contains("nfl.notes"), "\(changed)")
        #expect(changed.skipped > 0 && changed.skipped < changed.groups)

        // A transaction open across the backup: recorded as open at the check; once it commits,
        // tuples in files that did not change become visible, so nothing is skipped.
        let holder = try f.connect()
        defer { holder.close() }
        try holder.execute("BEGIN")
        try holder.execute("INSERT INTO nfl.notes VALUES (100000, 'open across the backup')")
        let openXID = try holder.query("SELECT txid_current()::text").scalar(String.self)
        _ = try f.backup("incr")
        let fourth = try f.verify(scratch: scratch, reuse: true)
        #expect(fourth.passed, "\(fourth.renderText())")
        let memo = try #require(try? AmcheckMemo.load(scratch).get())
        #expect(memo.openXIDs?.contains(UInt64(openXID) ?? 0) == true, "\(String(describing: memo.openXIDs)) lacks \(openXID)")
        try holder.execute("COMMIT")
        _ = try f.backup("incr")
        let fifth = try f.verify(scratch: scratch, reuse: true)
        #expect(fifth.passed, "\(fifth.renderText())")
        let reopened = try #require(fifth.amcheckSkip)
        #expect(reopened.skipped == 0, "\(reopened)")
        #expect(reopened.reason?.contains("transaction \(openXID), open when the recorded check ran, has committed since") == true, "\(reopened)")

        // An older backup than the recorded check's (--set): transactions committed since may be open
        // in it, so nothing is skipped (an attack probe hid a missing TOAST chunk this way).
        let older = try f.verify(set: fullBackup.label, scratch: scratch, reuse: true)
        #expect(older.passed)
        #expect(older.amcheckSkip?.skipped == 0 && older.amcheckSkip?.reason?.contains("is older than the one the recorded check verified") == true,
                "\(String(describing: older.amcheckSkip))")
        _ = try f.backup("incr")
        _ = try f.verify(scratch: scratch, reuse: true)
        // A prepared transaction survives into the copy and holds back its removal horizon (what
        // pg_amcheck checks in unchanged files changes): nothing skipped, nothing recorded.
        let preparer = try f.connect()
        defer { preparer.close() }
        try preparer.execute("BEGIN")
        try preparer.execute("INSERT INTO nfl.notes VALUES (200000, 'prepared')")
        try preparer.execute("PREPARE TRANSACTION 'nfldb-memo-test'")
        _ = try f.backup("incr")
        let prepared = try f.verify(scratch: scratch, reuse: true)
        try preparer.execute("COMMIT PREPARED 'nfldb-memo-test'")
        #expect(prepared.passed, "\(prepared.renderText())")
        #expect(prepared.amcheckSkip?.skipped == 0 && prepared.amcheckSkip?.recorded == 0
                && prepared.amcheckSkip?.reason?.contains("prepared transaction") == true, "\(String(describing: prepared.amcheckSkip))")
        _ = try f.backup("incr")  // without the prepared transaction

        // A memo others can write is not trusted: ignored (said in a note), every group checked, rewritten 0600.
        #expect(chmod(memoPath, 0o666) == 0)
        let sixth = try f.verify(scratch: scratch, reuse: true)
        #expect(sixth.passed)
        #expect(sixth.amcheckSkip?.skipped == 0)
        #expect(sixth.notes.contains { $0.contains("amcheck memo") && $0.contains("ignored") }, "\(sixth.notes)")
        #expect(lstat(memoPath, &info) == 0 && info.st_mode & 0o777 == 0o600)

        // A clean check older than the recheck interval is redone.
        Thread.sleep(forTimeInterval: 1.2)
        let seventh = try f.verify(scratch: scratch, reuse: true, amcheckRecheck: .seconds(1))
        #expect(seventh.passed)
        #expect(seventh.amcheckSkip?.skipped == 0 && seventh.amcheckSkip?.reason?.contains("older than backup.verify.amcheck_recheck_interval") == true,
                "\(String(describing: seventh.amcheckSkip))")

        // --full checks everything and does not consult the memo.
        let full = try f.verify(scratch: scratch, reuse: true, full: true)
        #expect(full.passed)
        #expect(full.amcheckSkip == nil)
        #expect(amcheck(full)?.evidence.contains("skipped") == false)
    }

    @Test("pg_waldump lines: block references and dropped files are touched, the backup-start checkpoint gives the oldest running xid, unmappable records turn skipping off")
    func replayScan() {
        let dump = """
            rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/05000060, prev 0/05000028, desc: CHECKPOINT_ONLINE redo 0/5000028; tli 1; prev tli 1; fpw true; xid 0:740; oid 24576; multi 1; offset 0; oldest xid 716 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 0/0; oldest running xid 738; online
            rmgr: Heap        len (rec/tot):     54/    54, tx:        738, lsn: 0/050000D8, prev 0/05000060, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/16384/16390 blk 0
            rmgr: Transaction len (rec/tot):     66/    66, tx:        739, lsn: 0/05000110, prev 0/050000D8, desc: COMMIT 2026-12-07 15:00:00.000000 UTC; rels: base/16384/16400; dropped stats: 2/16384/16400
            rmgr: Storage     len (rec/tot):     42/    42, tx:          0, lsn: 0/05000150, prev 0/05000110, desc: TRUNCATE base/16384/16410 to 0 blocks flags 7
            rmgr: XLOG        len (rec/tot):     34/    34, tx:          0, lsn: 0/05000180, prev 0/05000150, desc: BACKUP_END 0/5000028
            """
        let scan = ReplayScan(waldump: dump, lsnStart: "0/5000028")
        #expect(scan.oldestRunningXID == 738)
        #expect(scan.sawBackupEnd)
        #expect(scan.disabled == nil)
        #expect(scan.touched == ["1663/16384/16390", "1663/16384/16400", "1663/16384/16410"])
        let other = ReplayScan(waldump: dump + "\nrmgr: Database    len (rec/tot):     42/    42, tx:        740, lsn: 0/05000200, prev 0/05000180, desc: CREATE copy dir 1663/1 to 1663/16500",
                               lsnStart: "0/5000028")
        #expect(other.disabled?.contains("Database") == true)
        // A checkpoint whose redo is not the backup start does not give the xid.
        #expect(ReplayScan(waldump: dump, lsnStart: "0/6000028").oldestRunningXID == nil)
        #expect(ReplayScan.key(forPath: "pg_tblspc/16400/PG_15_202209061/16384/16390") == "16400/16384/16390")
        #expect(ReplayScan.key(forPath: "global/1262") == "1664/0/1262")
        #expect(Verifier.endLSN(after: "000000010000000A000000FF", segmentSize: 16 * 1024 * 1024) == "B/0")
    }

    @Test("manifest files are grouped per relation (forks and segments), and exclusion patterns quote every part")
    func manifestAndPatterns() {
        let manifest = """
            [backup]
            backup-archive-start="000000010000000000000005"
            backup-lsn-start="0/5000028"
            [target:file]
            pg_data/base/5/16390={"checksum":"aa","size":8192,"timestamp":1}
            pg_data/base/5/16390.1={"checksum":"bb","size":8192,"timestamp":1}
            pg_data/base/5/16390_fsm={"checksum":"cc","size":24576,"timestamp":1}
            pg_data/base/5/16391={"size":0,"timestamp":1}
            pg_data/base/5/PG_VERSION={"checksum":"dd","size":3,"timestamp":1}
            pg_data/global/pg_control={"checksum":"ee","size":8192,"timestamp":1}
            pg_tblspc/16400/PG_15_202209061/5/16500={"checksum":"ff","size":8192,"timestamp":1}
            pg_tblspc/16400/PG_15_202209061/5/16500_vm={"checksum":"fe","size":8192,"timestamp":1}
            """
        let files = ManifestFiles(manifest)
        #expect(files.lsnStart == "0/5000028" && files.archiveStart == "000000010000000000000005")
        #expect(files.relationFiles["base/5/16390"]?.count == 3)
        #expect(files.relationFiles["base/5/16391"] == ["pg_data/base/5/16391 - 0"])
        #expect(files.relationFiles["pg_tblspc/16400/PG_15_202209061/5/16500"]?.count == 2, "a tablespace's files are listed as pg_tblspc/…")
        #expect(files.relationFiles.count == 3)
        #expect(Verifier.lsn("16/B374D848") == 0x16_B374_D848 && Verifier.lsn("0/5000028")! < Verifier.lsn("1/0")! && Verifier.lsn("x") == nil)
        // A directory where the memo goes is named as such (it cannot be rewritten).
        let directory = "/tmp/nfldb-memo-dir-\(getpid())"
        try? FileManager.default.createDirectory(atPath: AmcheckMemo.path(directory), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if case .failure(let off) = AmcheckMemo.load(directory) {
            #expect(off.reason.contains("is a directory") && off.reason.contains("remove it"), "\(off.reason)")
        } else {
            Issue.record("a directory was taken for a memo")
        }
        let member = RelationGroup.Member(oid: 16390, kind: "r", schema: "we\"ird", name: "a.b*", path: "base/5/16390", catalog: "x")
        let group = RelationGroup(root: member, members: [member])
        #expect(group.exclusionPatterns(database: "nfl") == [#"--exclude-relation="nfl"."we""ird"."a.b*""#])
        let fingerprint = group.fingerprint(files, context: "c")
        #expect(fingerprint != nil && fingerprint != group.fingerprint(files, context: "d"))
        var changed = files
        changed.relationFiles["base/5/16390"]?[0] = "pg_data/base/5/16390 ab 8192"
        #expect(group.fingerprint(changed, context: "c") != fingerprint)
        // A member whose files are not in the manifest cannot be fingerprinted (never skipped).
        let missing = RelationGroup.Member(oid: 16392, kind: "i", schema: "s", name: "i", path: "base/5/16392", catalog: "x")
        #expect(RelationGroup(root: member, members: [member, missing]).fingerprint(files, context: "c") == nil)
    }
}
