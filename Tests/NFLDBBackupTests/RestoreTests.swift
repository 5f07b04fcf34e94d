import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// `backup restore --to`: refusals change nothing; a real restore starts and answers queries.
@Suite("backup restore --to: checks before changes, and an end-to-end restore", .serialized)
struct RestoreTests {
    static func ownerAndMode(_ path: String) -> (uid_t, mode_t)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_uid, info.st_mode & 0o7777)
    }

    @Test("refused targets are left exactly as they were (owner, mode, files), with exit status 2")
    func refusalsChangeNothing() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let restorer = Restorer(pgbackrest: f.pgbackrest, logger: f.logger)
        // mkdir d; touch d/x; restore --to d --delta
        let d = (f.root as NSString).appendingPathComponent("not-a-datadir")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        chmod(d, 0o755)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(d)/x"))
        let before = try #require(Self.ownerAndMode(d))
        for delta in [true, false] {
            let error = #expect(throws: BackupError.self) { try restorer.restore(.init(target: d, delta: delta)) }
            #expect(error?.exitStatus == .usage)
            #expect(error?.diagnostic.summary.contains("refusing to restore into \(d)") == true, "\(String(describing: error?.diagnostic))")
            let after = try #require(Self.ownerAndMode(d))
            #expect(after.0 == before.0 && after.1 == before.1, "\(d) went from \(before) to \(after)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: d) == ["x"])
        // Each hint works in the state it was printed: without --delta, a directory that is no earlier
        // restore is not told to pass --delta (which refuses it next).
        let plain = #expect(throws: BackupError.self) { try restorer.restore(.init(target: d, delta: false)) }
        #expect(plain?.diagnostic.hint?.contains("pass --delta") == false, "\(String(describing: plain?.diagnostic))")
        // A directory holding the live cluster's data directory is refused as such (not "not empty,
        // pass --delta", which then refused it for this).
        let parent = (f.cluster.dataDirectory as NSString).deletingLastPathComponent
        for delta in [false, true] {
            let holding = #expect(throws: BackupError.self) { try restorer.restore(.init(target: parent, delta: delta)) }
            #expect(holding?.exitStatus == .usage)
            #expect(holding?.diagnostic.summary.contains("contains \(f.cluster.dataDirectory)") == true, "\(String(describing: holding?.diagnostic))")
            #expect(holding?.diagnostic.hint?.contains("--delta") == false, "\(String(describing: holding?.diagnostic))")
        }
        #expect(f.cluster.isRunning)
        // An unknown --set and a --target-time before the first backup: refused before the directory exists.
        let fresh = (f.root as NSString).appendingPathComponent("never-created")
        let noSet = #expect(throws: BackupError.self) { try restorer.restore(.init(target: fresh, set: "20000101-000000F")) }
        #expect(noSet?.diagnostic.summary.contains("no backup labelled 20000101-000000F") == true)
        let early = #expect(throws: BackupError.self) { try restorer.restore(.init(target: fresh, targetTime: "2001-01-01 00:00:00+00")) }
        #expect(early?.diagnostic.summary.contains("before the first backup") == true, "\(String(describing: early?.diagnostic))")
        #expect(early?.diagnostic.hint?.contains("Choose a time after") == true)
        let future = #expect(throws: BackupError.self) { try restorer.restore(.init(target: fresh, targetTime: "2099-01-01 00:00:00+00")) }
        #expect(future?.exitStatus == .usage && future?.diagnostic.summary.contains("is in the future") == true, "\(String(describing: future?.diagnostic))")
        #expect(!FileManager.default.fileExists(atPath: fresh))
        // A symlink is refused and not followed.
        let link = (f.root as NSString).appendingPathComponent("link-target")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: d)
        #expect(throws: BackupError.self) { try restorer.restore(.init(target: link, delta: true)) }
        #expect(Self.ownerAndMode(d).map { $0.0 == before.0 && $0.1 == before.1 } == true)
    }

    @Test("restore --to a new directory, start the copy on its own port, and query it: the rows written after the backup are there")
    func restoreStartQuery() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        try f.sql("INSERT INTO nfl.plays(game_id, yards) SELECT 7, 7 FROM generate_series(1, 123)")
        try f.pgbackrest.runChecked("check", ["--archive-timeout=30"], timeout: .seconds(90))  // archive the WAL holding them
        let expected = try f.connect().query("SELECT count(*) FROM nfl.plays").scalar(Int.self)

        let target = (f.root as NSString).appendingPathComponent("restored/data")
        let copy = LocalCluster(root: (target as NSString).deletingLastPathComponent, port: try LocalCluster.freePort(), binaries: f.binaries,
                                osUser: f.pgbackrest.osUser)
        defer { if copy.isRunning { try? copy.stop(mode: "immediate", logger: f.logger) } }
        let report = try Restorer(pgbackrest: f.pgbackrest, logger: f.logger).restore(.init(target: target))
        #expect(report.nextStep.contains("pg_ctl -D \(target) start"))
        let attributes = try #require(Self.ownerAndMode(target))
        #expect(attributes.1 == 0o700)
        if let user = f.pgbackrest.osUser { #expect(attributes.0 == getpwnam(user)?.pointee.pw_uid) }
        #expect(copy.dataDirectory == target)
        // As the printed hint says: check port and archive settings before starting.
        try FileManager.default.createDirectory(atPath: copy.socketDirectory, withIntermediateDirectories: true)
        try copy.giveToOSUser(copy.socketDirectory)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(target)/postgresql.auto.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("""

            port = \(copy.port)
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '\(copy.socketDirectory)'
            archive_mode = off

            """.utf8))
        try handle.close()
        try copy.start(logger: f.logger)
        let conn = try PostgresConnection.connect(ConnectionOptions(dsn: ConnectionOptions.conninfo([
            ("host", copy.socketDirectory), ("port", String(copy.port)), ("user", "postgres"), ("dbname", f.database)])), logger: f.logger)
        defer { conn.close() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try conn.query("SELECT pg_is_in_recovery()").scalar(Bool.self), ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try conn.query("SELECT pg_is_in_recovery()").scalar(Bool.self) == false)
        #expect(try conn.query("SELECT count(*) FROM nfl.plays").scalar(Int.self) == expected)
        #expect(try conn.query("SELECT count(*) FROM nfl.plays WHERE game_id = 7 AND yards = 7").scalar(Int.self) >= 123)
    }
}
