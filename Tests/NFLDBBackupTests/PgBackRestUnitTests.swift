import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import Testing

@Suite("pgBackRest wrapper (no server)")
struct PgBackRestUnitTests {
    @Test("argv: --config and --stanza always on the command line, command last, runuser as root")
    func argv() {
        let pg = PgBackRest(configPath: "/etc/nfldb/pgbackrest.conf", stanza: "nfldb", osUser: "postgres")
        #expect(pg.arguments("backup", ["--type=diff"]) == ["--config=/etc/nfldb/pgbackrest.conf", "--stanza=nfldb", "--type=diff", "backup"])
        let line = pg.commandLine("info", ["--output=json"])
        #expect(line.suffix(4) == ["--config=/etc/nfldb/pgbackrest.conf", "--stanza=nfldb", "--output=json", "info"])
        if ProcessRunner.isRoot {
            #expect(Array(line.prefix(4)) == ["/usr/sbin/runuser", "-u", "postgres", "--"])
        }
    }

    @Test("a non-zero exit maps to a typed error with pgBackRest's code, ERROR line and hint")
    func errorMapping() {
        let error = PgBackRestError(
            command: "check", code: PgBackRestErrorCode(82), stanza: "nfldb",
            stderrTail: """
                ERROR: [082]: WAL segment 000000010000000000000003 was not archived before the 5000ms timeout
                       HINT: check the archive_command to ensure that all options are correct (especially --stanza).
                """)
        #expect(error.code == .archiveTimeout)
        #expect(error.code.name == "archive-timeout")
        #expect(error.errorMessage == "WAL segment 000000010000000000000003 was not archived before the 5000ms timeout")
        let text = error.description
        #expect(text.contains("pgbackrest check failed for stanza nfldb with error [082 archive-timeout]"))
        #expect(text.contains("HINT: check the archive_command"))
        #expect(text.contains("nfldb backup config --check"))
        #expect(PgBackRestErrorCode(27).name == "config")
        #expect(PgBackRestErrorCode(75).hint?.contains("backup.stanza") == true)
        #expect(PgBackRestErrorCode(37).hint?.contains("backup.stanza") == true)
        #expect(PgBackRestErrorCode(50).name == "lock-acquire")
        #expect(PgBackRestErrorCode(56).name == "db-connect")
    }

    @Test("hints that fit: [050] with Permission denied is not 'another command holds the lock'; a failed stanza-create does not say to run backup init")
    func hintsFitTheCause() {
        let denied = PgBackRestError(command: "backup", code: PgBackRestErrorCode(50), stanza: "nfldb",
                                     stderrTail: "ERROR: [050]: unable to acquire lock on file '/tmp/pgbackrest/nfldb-backup.lock': Permission denied")
        #expect(denied.diagnostic.hint?.contains("cannot create its lock file (permission denied)") == true, "\(String(describing: denied.diagnostic.hint))")
        let held = PgBackRestError(command: "backup", code: PgBackRestErrorCode(50), stanza: "nfldb",
                                   stderrTail: "ERROR: [050]: unable to acquire lock on file '/tmp/pgbackrest/nfldb-backup.lock': Resource temporarily unavailable")
        #expect(held.diagnostic.hint?.contains("Another pgBackRest command holds the stanza lock") == true)
        let typo = PgBackRestError(command: "stanza-create", code: PgBackRestErrorCode(37), stanza: "nfdlb",
                                   stderrTail: "ERROR: [037]: stanza-create command requires option: pg1-path")
        let hint = typo.diagnostic.hint ?? ""
        #expect(hint.contains("has no [nfdlb] section") && !hint.contains("run `nfldb backup init`"), "\(hint)")
    }

    @Test("[040] path-not-empty: the hint names the path pgBackRest named, not 'the target directory'")
    func pathNotEmptyHint() {
        let error = PgBackRestError(
            command: "restore", code: PgBackRestErrorCode(40), stanza: "nfldb",
            stderrTail: "ERROR: [040]: unable to restore to path '/tmp/x/ts1/PG_15_202209061' because it contains files\n"
                + "       HINT: try using --delta if this is what you intended.")
        #expect(error.notEmptyPath == "/tmp/x/ts1/PG_15_202209061")
        let hint = error.diagnostic.hint ?? ""
        #expect(hint.contains("pgBackRest found files in /tmp/x/ts1/PG_15_202209061"), "\(hint)")
        #expect(hint.contains("tablespace"))
        #expect(!hint.hasPrefix("The target directory is not empty"))
    }

    @Test("ENOSPC: the errno line or a full filesystem after a 064 gives the larger-filesystem hint")
    func noSpaceMapping() {
        let withErrno = PgBackRestError(
            command: "restore", code: .fileWrite, stanza: "nfldb",
            stderrTail: "ERROR: [064]: raised from local-1 protocol: unable to write '/s/data/base/1/2619': [28] No space left on device")
        #expect(withErrno.code.name == "file-write")
        #expect(withErrno.unwritablePath == "/s/data/base/1/2619")
        #expect(withErrno.noSpaceLeft)
        #expect(withErrno.description.contains("[28] No space left on device"))
        #expect(withErrno.description.contains("HINT: The filesystem pgBackRest writes to is full"))
        #expect(withErrno.description.contains("point backup.scratch_dir or --scratch at one"))

        // 2.45's short write: no errno in the message; the caller found the filesystem full.
        var bare = PgBackRestError(
            command: "restore", code: .fileWrite, stanza: "nfldb",
            stderrTail: "ERROR: [064]: raised from local-1 protocol: unable to write '/s/data/base/1/2619'")
        #expect(!bare.noSpaceLeft)
        #expect(bare.diagnostic.hint == nil)
        bare.filesystemFull = "the filesystem holding /s/data/base/1 has 0 B free"
        #expect(bare.diagnostic.summary.hasSuffix("(No space left on device: the filesystem holding /s/data/base/1 has 0 B free)"))
        #expect(bare.diagnostic.hint?.contains("backup.scratch_dir") == true)
        // Not a restore: no scratch advice.
        let push = PgBackRestError(command: "archive-push", code: .fileWrite, stanza: "nfldb", stderrTail: "ERROR: [064]: unable to write '/r/x': [28] No space left on device")
        #expect(push.diagnostic.hint == "The filesystem pgBackRest writes to is full: free space there.")
        // A filesystem with room is not reported full.
        #expect(ScratchSpace.fullFilesystem(holding: "/tmp/no-such-dir-\(UUID().uuidString)/file") == nil)
        #expect(ScratchSpace.human(8 * 1024 * 1024) == "8.0 MiB")
        #expect(ScratchSpace.human(512) == "512 B")
        #expect(ScratchSpace.needed(restoredSize: 100 * 1024 * 1024) == 110 * 1024 * 1024 + 64 * 1024 * 1024)
        #expect(ScratchSpace.check("/tmp", needs: 1) == nil)
        #expect(ScratchSpace.check("/tmp", needs: Int64.max)?.contains("not enough free space for the restore in /tmp") == true)
    }

    static let infoJSON = """
        [{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000007","min":"000000010000000000000001"}],
          "backup":[{"annotation":null,"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},
            "backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
            "info":{"delta":31685116,"repository":{"delta":6185355,"size":6185355},"size":31685116},
            "label":"20261127-070331F","lsn":{"start":"0/3000028","stop":"0/3000100"},"prior":null,"reference":null,
            "timestamp":{"start":1795763011,"stop":1795763014},"type":"full"}],
          "cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7712696035014103765,"version":"15"}],
          "name":"nfldb","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],
          "status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}},
         {"archive":[],"backup":[],"cipher":"none","db":[],"name":"nflbd","repo":[{"cipher":"none","key":1,"status":{"code":1,"message":"missing stanza path"}}],
          "status":{"code":1,"lock":{"backup":{"held":false}},"message":"missing stanza path"}}]
        """

    @Test("info JSON: system-id above 2^53 decodes exactly; every stanza's status.code is checked")
    func infoDecoding() throws {
        let stanzas = try StanzaInfo.decode(Data(Self.infoJSON.utf8))
        #expect(stanzas.count == 2)
        #expect(stanzas[0].db[0].systemID == 7_712_696_035_014_103_765)
        #expect(stanzas[0].db[0].systemID > UInt64(1) << 53)
        #expect(stanzas[0].backup(label: nil)?.label == "20261127-070331F")
        #expect(stanzas[0].backup[0].info?.repository?.delta == 6_185_355)
        #expect(stanzas[0].archiveMax == "000000010000000000000007")
        #expect(throws: Never.self) { try StanzaInfo.requireOK([stanzas[0]], configPath: "/c") }
        let error = #expect(throws: BackupError.self) { try StanzaInfo.requireOK(stanzas, configPath: "/c") }
        #expect(error?.description.contains("stanza nflbd is not usable: pgBackRest status 1 (missing stanza path)") == true)
        // re-encoding keeps the integer exact (backup info --format json)
        let encoded = String(decoding: try JSONEncoder().encode(stanzas[0]), as: UTF8.self)
        #expect(encoded.contains("7712696035014103765"))
        #expect(WALName.timeline("000000020000000000000005") == 2)
    }

    @Test("archive listing (repo-ls): segments only, ranges across a log boundary, a gap and a new timeline split them")
    func archiveListingRanges() {
        let sha = "-0123456789abcdef0123456789abcdef01234567.lz4"
        let paths = [
            ".", "15-1", "15-1/0000000100000000", "15-1/00000002.history",
            "15-1/0000000100000000/0000000100000000000000FE" + sha,
            "15-1/0000000100000000/0000000100000000000000FF" + sha,
            "15-1/0000000100000000/0000000100000000000000FF.00000028.backup",
            "15-1/0000000100000001/000000010000000100000000" + sha,
            "15-1/0000000100000001/000000010000000100000002" + sha,  // ...01 missing
            "15-1/0000000100000001/000000010000000100000003.partial" + sha,
            "15-1/0000000200000001/000000020000000100000003" + sha,
        ]
        let ranges = ArchiveListing.ranges(paths, segmentSize: 16 * 1024 * 1024).map { "\($0.archiveID):\($0.start)-\($0.stop)" }
        #expect(ranges == [
            "15-1:0000000100000000000000FE-000000010000000100000000",
            "15-1:000000010000000100000002-000000010000000100000002",
            "15-1:000000020000000100000003-000000020000000100000003",
        ])
        let parsed = VerifyOutput(status: nil, backups: [:], walRanges: ArchiveListing.ranges(paths, segmentSize: 16 * 1024 * 1024), problems: [])
        #expect(parsed.continuous(archiveID: "15-1", from: "0000000100000000000000FE", through: "000000010000000100000000"))
        #expect(!parsed.continuous(archiveID: "15-1", from: "0000000100000000000000FE", through: "000000010000000100000002"))
    }

    @Test("verify text: per-backup status, WAL ranges and continuity; exit code is not trusted")
    func verifyParsing() {
        let text = """
            P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000004
            P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000006, wal stop: 000000010000000000000009
            stanza: nfldb
            status: error
              archiveId: 15-1, total WAL checked: 8, total valid WAL: 8
              backup: 20261127-041349F, status: invalid, total files checked: 1288, total valid files: 1287
                checksum invalid: 1
              backup: 20261127-041349F_20261127-041402D, status: valid, total files checked: 1288, total valid files: 1288
            """
        let out = VerifyOutput.parse(text)
        #expect(out.status == "error")
        #expect(out.backups["20261127-041349F"] == "invalid")
        #expect(out.backups["20261127-041349F_20261127-041402D"] == "valid")
        #expect(!out.ok)
        #expect(out.walRanges.count == 2)
        #expect(out.continuous(archiveID: "15-1", from: "000000010000000000000002", through: "000000010000000000000004"))
        #expect(!out.continuous(archiveID: "15-1", from: "000000010000000000000002", through: "000000010000000000000007"))
    }

    @Test("verify text: a backup still being taken (a backup run overlapping the nightly verify) is not judged; others still are")
    func verifyInProgress() {
        let text = """
            stanza: nfldb
            status: ok
              archiveId: 15-1, total WAL checked: 8, total valid WAL: 8
              backup: 20261206-040133F, status: valid, total files checked: 1288, total valid files: 1288
              backup: 20261206-040141F, status: in-progress, total files checked: 0, total valid files: 0
            """
        let out = VerifyOutput.parse(text)
        #expect(out.ok && out.inProgress == ["20261206-040141F"])
        let damaged = VerifyOutput.parse(text.replacingOccurrences(of: "040133F, status: valid", with: "040133F, status: manifest missing"))
        #expect(!damaged.ok && damaged.inProgress == ["20261206-040141F"])
    }

    @Test("the built-in template is the only one (no shipped copy to drift), and rendering fills every placeholder")
    func template() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("pgbackrest/pgbackrest.conf.template").path))
        var renderer = ConfigRenderer(stanza: "nfldb", configPath: "/etc/nfldb/pgbackrest.conf", repoPath: "/var/lib/pgbackrest",
                                      pgPath: "/var/lib/postgresql/15/main", pgPort: 5432, pgSocket: "/var/run/postgresql", pgUser: "postgres")
        renderer.cipherPass = "s3cret"
        let text = renderer.render()
        #expect(!text.contains("{{"))
        #expect(text.contains("repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=s3cret\nstart-fast=y"))
        #expect(text.contains("[nfldb]\npg1-path=/var/lib/postgresql/15/main"))
        #expect(renderer.archiveCommand == "pgbackrest --config=/etc/nfldb/pgbackrest.conf --stanza=nfldb archive-push %p")
        let cron = try String(contentsOf: root.appendingPathComponent("pgbackrest/nfldb.cron"), encoding: .utf8)
        #expect(cron.contains("backup run --type full"))
        #expect(cron.contains("backup run --type diff"))
        #expect(cron.contains("backup verify"))
    }

    @Test("restore target: refuses a non-empty dir without --delta; a postmaster.pid whose live pid is no postgres on it is named stale")
    func restoreTarget() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-rt-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: Never.self) { try RestoreTarget.check(dir, delta: false) }
        try "x".write(toFile: "\(dir)/PG_VERSION", atomically: true, encoding: .utf8)
        let notEmpty = #expect(throws: BackupError.self) { try RestoreTarget.check(dir, delta: false) }
        #expect(notEmpty?.description.contains("not empty") == true)
        #expect(throws: Never.self) { try RestoreTarget.check(dir, delta: true) }
        // This test process's pid: alive, but not a postgres working in dir (a running cluster's data
        // directory is refused as such by RestoreTests and ScratchLeftovers' tests).
        try "\(getpid())\n\(dir)\n".write(toFile: "\(dir)/postmaster.pid", atomically: true, encoding: .utf8)
        let stale = #expect(throws: BackupError.self) { try RestoreTarget.check(dir, delta: true) }
        #expect(stale?.exitStatus == .usage)
        #expect(stale?.diagnostic.summary.contains("naming pid \(getpid()), which is not a PostgreSQL server on this directory") == true, "\(String(describing: stale?.diagnostic))")
        #expect(stale?.diagnostic.hint?.contains("remove \(dir)/postmaster.pid") == true)
    }

    @Test("verify output: a worker's 'invalid checksum' line names the damaged file; begin/end lines and the summary do not")
    func verifyNamesDamagedFiles() {
        let text = """
        2026-12-07 01:31:18.151 P00   INFO: verify command begin 2.45: --config=/tmp/x/pgbackrest.conf --stanza=nfldb
        2026-12-07 01:31:18.364 P01   INFO: invalid checksum '20261207-013109F/pg_data/base/16384/2838.gz'
        2026-12-07 01:31:18.365 P02   INFO: missing file '15-1/0000000100000000/000000010000000000000003-abc.gz'
        2026-12-07 01:31:18.621 P00   INFO: stanza: nfldb
                                            status: error
            backup: 20261207-013109F, status: invalid, total files checked: 1288, total valid files: 1287
              missing: 0, checksum invalid: 1, size invalid: 0, other: 0
        2026-12-07 01:31:18.621 P00   INFO: verify command end: completed successfully (473ms)
        """
        let parsed = VerifyOutput.parse(text)
        #expect(parsed.damagedFiles == ["invalid checksum 20261207-013109F/pg_data/base/16384/2838.gz",
                                        "missing file 15-1/0000000100000000/000000010000000000000003-abc.gz"])
        #expect(parsed.backups["20261207-013109F"] == "invalid" && !parsed.ok)
    }
}
