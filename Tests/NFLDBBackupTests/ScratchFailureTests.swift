import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBTestSupport
import Testing

/// The scratch directory on a filesystem too small for the restore: a real 8 MiB tmpfs, while the
/// fixture's cluster restores to about 40 MB.
@Suite("backup verify: scratch filesystem full")
struct ScratchFailureTests {
    static let tmpfsSize = "8m"

    /// Mounts a small tmpfs at `path`. Fails (never skips) when it cannot: CI runs as root.
    func mountTiny(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mount = try ProcessRunner().run("mount", ["-t", "tmpfs", "-o", "size=\(Self.tmpfsSize),mode=0755", "tmpfs", path], timeout: .seconds(30))
        try #require(mount.succeeded, """
            cannot mount a \(Self.tmpfsSize) tmpfs at \(path) (mount exit \(mount.status): \(mount.stderrTail(2))); \
            this test needs root (uid is \(geteuid())) to give verify a real full filesystem — run it as root, as CI does
            """)
    }

    /// Unmounts `path`; falls back to a lazy unmount (and fails the test) so no mount is left behind.
    func unmount(_ path: String) {
        let result = try? ProcessRunner().run("umount", [path], timeout: .seconds(30))
        if result?.succeeded != true {
            Issue.record("umount \(path) failed: \(result?.stderrTail(2) ?? "did not run"); a process still uses it? \(BackupFixture.processes(mentioning: path))")
            _ = try? ProcessRunner().run("umount", ["-l", path], timeout: .seconds(30))
        }
    }

    func isMountPoint(_ path: String) -> Bool {
        ((try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? "").split(separator: "\n")
            .contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
    }

    @Test("scratch on an 8 MiB tmpfs: the pre-flight refuses naming the path; without it the restore fails with ENOSPC")
    func scratchFilesystemFull() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let restoredSize = try #require(try f.pgbackrest.info().first?.backup.last?.info?.size)
        let tiny = (f.root as NSString).appendingPathComponent("tiny")
        try mountTiny(tiny)
        defer { unmount(tiny) }
        #expect(isMountPoint(tiny))
        #expect(restoredSize > 8 << 20, "the backup (\(restoredSize) bytes) must not fit the \(Self.tmpfsSize) tmpfs")

        // 1. pre-flight: statvfs says the tmpfs is too small; nothing is restored.
        let scratch = (tiny as NSString).appendingPathComponent("scratch-preflight")
        let receipt = try f.verify(scratch: scratch)
        #expect(!receipt.passed)
        let space = try #require(receipt.checks.first { $0.name == "scratch-space" && !$0.passed }, "\(receipt.renderText())")
        #expect(space.evidence.contains("not enough free space for the restore in \(scratch)"))
        #expect(space.evidence.contains("MiB free"), "free bytes, human-readable: \(space.evidence)")
        #expect(space.evidence.contains("the restore needs \(ScratchSpace.human(ScratchSpace.needed(restoredSize: restoredSize)))"))
        #expect(space.evidence.contains("point backup.scratch_dir (or --scratch) at a filesystem"))
        #expect(!receipt.checks.contains { $0.name == "restore" }, "the restore must not start: \(receipt.renderText())")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tiny).isEmpty, "scratch removed from the tmpfs")
        #expect(BackupFixture.processes(mentioning: tiny).isEmpty)

        // 2. pre-flight skipped: pgBackRest itself hits ENOSPC and the restore check says so.
        let scratch2 = (tiny as NSString).appendingPathComponent("scratch-enospc")
        let full = try f.verify(scratch: scratch2, skipSpaceCheck: true)
        #expect(!full.passed)
        #expect(full.checks.contains { $0.name == "scratch-space" && $0.evidence.contains("not checked (--skip-space-check)") })
        let restore = try #require(full.checks.first { $0.name == "restore" && !$0.passed }, "\(full.renderText())")
        #expect(restore.evidence.contains("pgbackrest restore failed"))
        #expect(restore.evidence.contains("No space left on device"), "\(restore.evidence)")
        #expect(restore.evidence.contains(scratch2), "names the path written: \(restore.evidence)")
        #expect(restore.evidence.contains("point backup.scratch_dir or --scratch at one"), "hint: \(restore.evidence)")
        #expect(!full.checks.contains { $0.name == "start" }, "nothing started after a failed restore")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tiny).isEmpty, "partial restore removed from the tmpfs")
        #expect(BackupFixture.processes(mentioning: tiny).isEmpty)
        #expect(f.scratchLeftovers().isEmpty)
    }
}
