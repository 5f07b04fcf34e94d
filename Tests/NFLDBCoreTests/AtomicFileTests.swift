import Foundation
import NFLDBCore
import Testing

@Suite("AtomicFile")
struct AtomicFileTests {
    @Test("writes through a temporary file with the final mode; a failed rename throws and leaves no temporary file")
    func writeAndRenameFailure() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-atomic-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/sub/state.json"
        try AtomicFile.write(Data("one".utf8), to: path, permissions: 0o600)
        try AtomicFile.write(Data("two".utf8), to: path, permissions: 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)

        // A non-empty directory in the way: rename(2) fails.
        let blocked = "\(directory)/blocked"
        try FileManager.default.createDirectory(atPath: "\(blocked)/inside", withIntermediateDirectories: true)
        let error = #expect(throws: AtomicFile.RenameError.self) { try AtomicFile.write(Data("x".utf8), to: blocked, permissions: 0o644) }
        #expect(error?.path == blocked)
        #expect(error?.localizedDescription.contains("cannot rename") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["blocked", "sub"])
    }

    @Test("a symlink planted at the temporary name is not followed: its target keeps its content and mode, the write still lands")
    func plantedSymlink() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/state.json"
            let victim = "\(directory)/victim"
            try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
            chmod(victim, 0o644)
            let temporary = AtomicFile.temporaryPath(for: path)
            #expect(temporary == "\(directory)/.state.json.\(getpid()).tmp")
            #expect(symlink(victim, temporary) == 0)

            try AtomicFile.write(Data("new state".utf8), to: path, permissions: 0o600)
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious", "the symlink was followed")
            var info = stat()
            #expect(stat(victim, &info) == 0 && info.st_mode & 0o777 == 0o644, "the victim's mode changed")
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "new state")
            #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o777 == 0o600)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: temporary) == victim, "the planted link is left alone")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == [".state.json.\(getpid()).tmp", "state.json", "victim"])
        }
    }

    @Test("a hard link or dangling symlink planted at the temporary name is not written through either")
    func plantedHardLinkAndDanglingSymlink() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/metrics.prom"
            let victim = "\(directory)/victim"
            try Data("keep".utf8).write(to: URL(fileURLWithPath: victim))
            #expect(link(victim, AtomicFile.temporaryPath(for: path)) == 0)
            try AtomicFile.write(Data("m 1\n".utf8), to: path, permissions: 0o644)
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep")
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "m 1\n")

            let other = "\(directory)/other.json"
            let created = "\(directory)/created-by-attacker"
            #expect(symlink(created, AtomicFile.temporaryPath(for: other)) == 0)
            try AtomicFile.write(Data("{}".utf8), to: other, permissions: 0o600)
            #expect(!FileManager.default.fileExists(atPath: created), "O_CREAT followed a dangling symlink")
            #expect(try String(contentsOfFile: other, encoding: .utf8) == "{}")
        }
    }
}
