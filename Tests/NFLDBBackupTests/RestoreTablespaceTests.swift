import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// `backup restore --to` on the primary's own host, with a tablespace: the primary's tablespace is
/// never written (every tablespace is mapped under --tablespace-dir), and a target inside a live
/// cluster is refused before anything changes.
@Suite("backup restore with a tablespace: the live primary's tablespace is untouched", .serialized)
struct RestoreTablespaceTests {
    /// Every regular file under `root` → its bytes.
    static func snapshot(_ root: String) -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = (root as NSString).appendingPathComponent(relative)
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            files[relative] = FileManager.default.contents(atPath: path)
        }
        return files
    }

    @Test("restore (fresh and --delta) maps the tablespace under the target; --to or --tablespace-dir on a live tablespace is refused (exit 2)")
    func tablespaceNeverRestoredOverThePrimary() throws {
        let f = try BackupFixture()
        defer { f.close() }
        let tablespace = (f.root as NSString).appendingPathComponent("ts1")
        try FileManager.default.createDirectory(atPath: tablespace, withIntermediateDirectories: true)
        try f.cluster.giveToOSUser(tablespace)
        let admin = try f.connect()
        defer { admin.close() }
        try f.sql("CREATE TABLESPACE ts1 LOCATION '\(tablespace)'")
        try f.sql("""
            CREATE TABLE nfl.in_ts(id int) WITH (autovacuum_enabled = off) TABLESPACE ts1;
            INSERT INTO nfl.in_ts SELECT generate_series(1, 300);
            """)
        try f.initStanza()
        _ = try f.backup("full")
        try f.sql("INSERT INTO nfl.in_ts SELECT generate_series(301, 1300)")
        try f.sql("VACUUM FREEZE nfl.in_ts")
        try admin.execute("CHECKPOINT")
        let before = Self.snapshot(tablespace)
        #expect(!before.isEmpty)

        let restorer = Restorer(pgbackrest: f.pgbackrest, logger: f.logger)
        // 1. A fresh directory: pgBackRest used to refuse with [040] on the primary's tablespace path.
        let fresh = (f.root as NSString).appendingPathComponent("rx1")
        let report = try restorer.restore(.init(target: fresh))
        #expect(report.tablespaces.count == 1)
        let mapped = try #require(report.tablespaces.first?.path)
        #expect(mapped.hasPrefix(fresh + "_tablespaces/"), "\(mapped)")
        #expect(report.lines.contains { $0.contains("tablespace") && $0.contains(mapped) })
        #expect(!Self.snapshot(mapped).isEmpty)

        // 2. --delta into a directory holding only PG_VERSION: used to overwrite the primary's live relation file.
        let deltaTarget = (f.root as NSString).appendingPathComponent("rx2")
        try FileManager.default.createDirectory(atPath: deltaTarget, withIntermediateDirectories: true)
        try Data("15\n".utf8).write(to: URL(fileURLWithPath: "\(deltaTarget)/PG_VERSION"))
        try f.cluster.giveToOSUser(deltaTarget)
        try f.cluster.giveToOSUser("\(deltaTarget)/PG_VERSION")
        let deltaReport = try restorer.restore(.init(target: deltaTarget, delta: true))
        let deltaLink = try #require(deltaReport.tablespaces.first?.path)
        #expect(deltaLink.hasPrefix(deltaTarget + "_tablespaces/"), "\(deltaLink)")

        // 3. Refused before anything changes: a --tablespace-dir that is the live tablespace, and a --to inside it.
        let onLive = #expect(throws: BackupError.self) {
            try restorer.restore(.init(target: (f.root as NSString).appendingPathComponent("rx3"), delta: true, tablespaceDirectory: tablespace))
        }
        #expect(onLive?.exitStatus == .usage)
        #expect(onLive?.diagnostic.summary.contains("tablespace") == true, "\(String(describing: onLive?.diagnostic))")
        #expect(!FileManager.default.fileExists(atPath: (f.root as NSString).appendingPathComponent("rx3")))
        let inside = (tablespace as NSString).appendingPathComponent("restore-here")
        let insideError = #expect(throws: BackupError.self) { try restorer.restore(.init(target: inside)) }
        #expect(insideError?.exitStatus == .usage)
        #expect(insideError?.diagnostic.summary.contains("lies inside \(LiveClusterPaths.resolve(tablespace))") == true,
                "\(String(describing: insideError?.diagnostic))")
        #expect(!FileManager.default.fileExists(atPath: inside))
        #expect(!FileManager.default.fileExists(atPath: inside + "_tablespaces"))
        // The primary's own data directory is refused as a --to too (it is running).
        let onData = #expect(throws: BackupError.self) {
            try restorer.restore(.init(target: (f.cluster.dataDirectory as NSString).appendingPathComponent("sub"), delta: true))
        }
        #expect(onData?.exitStatus == .usage)

        // The primary's tablespace files are byte-for-byte what they were, and the primary still counts 1300 rows.
        let after = Self.snapshot(tablespace)
        #expect(after.keys.sorted() == before.keys.sorted())
        #expect(after == before, "the primary's tablespace files changed: \(after.keys.filter { after[$0] != before[$0] }.sorted())")
        #expect(try admin.query("SELECT count(*) FROM nfl.in_ts").scalar(Int.self) == 1300)
    }

    @Test("a restore that pgBackRest fails leaves no directory behind that it created (was: an empty --to directory)")
    func failedRestoreRemovesWhatItCreated() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        // pgbackrest whose restore writes a file into pg1-path and fails; every other command is the real one.
        let wrapper = (f.root as NSString).appendingPathComponent("pgbackrest-failing-restore")
        let real = try ProcessRunner.resolveExecutable("pgbackrest")
        try """
            #!/bin/sh
            for last in "$@"; do :; done
            if [ "$last" = restore ]; then
              for a in "$@"; do case "$a" in --pg1-path=*) touch "${a#--pg1-path=}/partial";; esac; done
              echo "ERROR: [099]: injected restore failure" >&2; exit 99
            fi
            exec \(real) "$@"

            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        chmod(f.root, 0o755)
        var pg = f.pgbackrest
        pg.executable = wrapper
        let target = (f.root as NSString).appendingPathComponent("never-left")
        let error = #expect(throws: PgBackRestError.self) { try Restorer(pgbackrest: pg, logger: f.logger).restore(.init(target: target)) }
        #expect(error?.diagnostic.summary.contains("injected restore failure") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!FileManager.default.fileExists(atPath: target + "_tablespaces"))
        // A directory that existed before is left (with what pgBackRest wrote), not removed.
        let existing = (f.root as NSString).appendingPathComponent("existed")
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
        _ = #expect(throws: PgBackRestError.self) { try Restorer(pgbackrest: pg, logger: f.logger).restore(.init(target: existing)) }
        #expect(FileManager.default.fileExists(atPath: existing))
    }
}
