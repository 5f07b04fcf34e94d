import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// The verify steps' edges: an early failure stops the background `pgbackrest verify` at once, and
/// the copy is reached through a quoted conninfo.
@Suite("backup verify: early failures stop the repo verify; hostile database names", .serialized)
struct VerifyStepsTests {
    /// A pgbackrest whose `verify` never ends (a shell loop) and whose other commands are the real ones.
    static func slowVerifyWrapper(in root: String) throws -> String {
        let path = (root as NSString).appendingPathComponent("pgbackrest-slow-verify")
        let real = try ProcessRunner.resolveExecutable("pgbackrest")
        try """
            #!/bin/sh
            for last in "$@"; do :; done
            if [ "$last" = verify ]; then while :; do sleep 0.2; done; fi
            exec \(real) "$@"

            """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        chmod(root, 0o755)
        return path
    }

    @Test("a scratch failure before the restore stops the running pgbackrest verify at once (no hour-long wait), and no verify process is left")
    func earlyFailureStopsRepoVerify() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let wrapper = try Self.slowVerifyWrapper(in: f.root)
        var pg = f.pgbackrest
        pg.executable = wrapper
        // A file where the scratch dir's parent should be (an existing --scratch is now a usage error, refused before anything runs).
        let blocker = (f.root as NSString).appendingPathComponent("not-a-dir")
        try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
        let scratch = (blocker as NSString).appendingPathComponent("scratch")
        let start = ContinuousClock.now
        let receipt = try f.verify(pg: pg, scratch: scratch)
        let elapsed = ContinuousClock.now - start
        #expect(!receipt.passed)
        #expect(receipt.failedChecks.map(\.name) == ["scratch"], "\(receipt.renderText())")
        #expect(elapsed < .seconds(20), "verify waited \(elapsed) for the background pgbackrest verify")
        #expect(receipt.notes.contains { $0.contains("pgbackrest verify was stopped") }, "\(receipt.notes)")
        #expect(BackupFixture.processes(mentioning: wrapper).isEmpty, "\(BackupFixture.processes(mentioning: wrapper))")
        #expect(FileManager.default.contents(atPath: blocker) == Data("x".utf8), "a file verify did not create is left alone")
    }

    @Test("a failure after the restore gives the repo verify only its grace, then stops it")
    func lateFailureBoundedByGrace() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let wrapper = try Self.slowVerifyWrapper(in: f.root)
        var pg = f.pgbackrest
        pg.executable = wrapper
        // The port is taken: the restore runs, the start fails.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        let port = try LocalCluster.freePort()
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(listener, 1) == 0)
        let start = ContinuousClock.now
        let receipt = try f.verify(port: port, pg: pg)
        let elapsed = ContinuousClock.now - start
        #expect(receipt.failedChecks.first?.name == "start", "\(receipt.renderText())")
        #expect(elapsed < .seconds(45), "verify took \(elapsed); the grace is 15 s")
        #expect(receipt.notes.contains { $0.contains("pgbackrest verify was stopped") })
        #expect(BackupFixture.processes(mentioning: wrapper).isEmpty)
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("the background pgbackrest verify runs at nice 19 and the restore at our own priority (issue 11 item 7); verify still passes")
    func repoVerifyYieldsToRestore() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        // A pgbackrest that logs each command with the niceness it was started with, then is the real one.
        let real = try ProcessRunner.resolveExecutable("pgbackrest")
        let wrapper = (f.root as NSString).appendingPathComponent("pgbackrest-nice-log")
        let log = (f.root as NSString).appendingPathComponent("nice.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        chmod(log, 0o666)
        try """
            #!/bin/sh
            for last in "$@"; do :; done
            echo "$last $(nice)" >> \(log)
            exec \(real) "$@"

            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        chmod(f.root, 0o755)
        var pg = f.pgbackrest
        pg.executable = wrapper
        let receipt = try f.verify(pg: pg)
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.checks.contains { $0.name == "pgbackrest-verify" && $0.passed })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #expect(lines.contains("verify 19"), "\(lines)")
        #expect(lines.contains("restore \(own)"), "\(lines)")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("the parallel teardown removes the whole scratch tree and never follows a symlink out of it")
    func parallelRemovalStaysInside() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-rmtree-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = (base as NSString).appendingPathComponent("scratch")
        let outside = (base as NSString).appendingPathComponent("outside")
        let fm = FileManager.default
        try fm.createDirectory(atPath: (root as NSString).appendingPathComponent("data/base/1"), withIntermediateDirectories: true)
        try fm.createDirectory(atPath: (root as NSString).appendingPathComponent("tblspc/PG_15/16384"), withIntermediateDirectories: true)
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        for i in 0..<40 {
            try Data(repeating: UInt8(i), count: 8192 * (i + 1)).write(to: URL(fileURLWithPath: (root as NSString).appendingPathComponent("data/base/1/\(16000 + i)")))
        }
        try Data("t".utf8).write(to: URL(fileURLWithPath: (root as NSString).appendingPathComponent("tblspc/PG_15/16384/17000")))
        let sentinel = (outside as NSString).appendingPathComponent("precious")
        try Data("keep".utf8).write(to: URL(fileURLWithPath: sentinel))
        try fm.createDirectory(atPath: (root as NSString).appendingPathComponent("data/pg_tblspc"), withIntermediateDirectories: true)
        // A tablespace-style link inside the tree, and links to a directory and a file outside it.
        try fm.createSymbolicLink(atPath: (root as NSString).appendingPathComponent("data/pg_tblspc/16390"), withDestinationPath: (root as NSString).appendingPathComponent("tblspc"))
        try fm.createSymbolicLink(atPath: (root as NSString).appendingPathComponent("data/pg_tblspc/16391"), withDestinationPath: outside)
        try fm.createSymbolicLink(atPath: (root as NSString).appendingPathComponent("data/linked-file"), withDestinationPath: sentinel)
        ActiveScratch.removeTree(root)
        #expect(!fm.fileExists(atPath: root), "the scratch tree is gone")
        #expect((try? String(contentsOfFile: sentinel, encoding: .utf8)) == "keep", "a file behind a symlink is untouched")
        #expect(try fm.contentsOfDirectory(atPath: outside) == ["precious"])
    }

    @Test("a database named with a space and quotes: verify reaches the copy through a quoted conninfo and passes")
    func hostileDatabaseName() throws {
        let name = "my db's \"x\""
        let f = try BackupFixture(database: name)
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.renderText())")
        #expect(receipt.checks.contains { $0.name == "row-counts" && $0.passed })
        #expect(f.scratchLeftovers().isEmpty)
    }
}

@Suite("ProcessRunner children: default signal dispositions and an empty mask")
struct ChildSignalTests {
    /// A hex signal set from /proc/self/status (`SigIgn:`, `SigBlk:`).
    static func mask(_ status: String, _ field: String) -> UInt64? {
        status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
            .flatMap { UInt64($0.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces), radix: 16) }
    }

    @Test("a child of a process that ignores SIGTERM/SIGINT/SIGHUP (verify, while it tears down) does not inherit that")
    func childrenResetSignals() throws {
        let previous = [SIGTERM, SIGINT, SIGHUP].map { ($0, signal($0, SIG_IGN)) }
        defer { for (sig, handler) in previous { signal(sig, handler) } }
        let result = try ProcessRunner().run("/bin/cat", ["/proc/self/status"], timeout: .seconds(10))
        let ignored = try #require(Self.mask(result.standardOutput, "SigIgn"), "\(result.standardOutput)")
        let blocked = try #require(Self.mask(result.standardOutput, "SigBlk"))
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            #expect(ignored & (UInt64(1) << UInt64(sig - 1)) == 0, "signal \(sig) is ignored in the child (SigIgn \(String(ignored, radix: 16)))")
        }
        #expect(blocked == 0, "the child's signal mask is not empty (SigBlk \(String(blocked, radix: 16)))")
        // And this process did ignore them while the child started (the test is not vacuous).
        let own = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let ownIgnored = try #require(Self.mask(own, "SigIgn"))
        #expect(ownIgnored & (UInt64(1) << UInt64(SIGTERM - 1)) != 0)
    }
}
