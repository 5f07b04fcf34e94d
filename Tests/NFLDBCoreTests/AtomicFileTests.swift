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
}
