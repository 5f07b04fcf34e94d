import Foundation
import NFLDBCore
import NFLDBRoles
import Testing

/// A role's `password_file` (the older spelling) follows the `file:` rule: a file the group or others
/// may read is refused, with the chmod to run and without the password.
@Suite("roles spec password_file: the 0600 rule")
struct PasswordFileModeTests {
    @Test func groupOrWorldReadableIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-role-pw-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/app.pw"
        try "role-pw-file-8812\n".write(toFile: path, atomically: true, encoding: .utf8)
        for mode: mode_t in [0o644, 0o640, 0o604] {
            chmod(path, mode)
            let error = #expect(throws: ConfigurationError.self) { try PasswordSource.file(path).resolve(environment: [:]) }
            let text = error?.description ?? ""
            #expect(text.contains("password_file \(path) has group or world access") && text.contains("chmod 0600 \(path)"), "\(text)")
            #expect(!text.contains("role-pw-file-8812"))
        }
        chmod(path, 0o600)
        #expect(try PasswordSource.file(path).resolve(environment: [:]) == "role-pw-file-8812")
        #expect(try PasswordSource.file(dir + "/absent.pw").resolve(environment: [:]) == nil, "a missing file still means: no password")

        // A NUL in the first line (no client could send that password) and non-UTF-8 bytes are refused
        // with what is wrong, not "make the file readable"; the password never appears.
        for (bytes, says) in [(Array("Leak\u{0}Me3\n".utf8), "contains a NUL byte"), ([0xff, 0xfe, 0x41, 0x0a], "is not UTF-8 text")] {
            FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
            chmod(path, 0o600)
            let error = #expect(throws: OperatorError.self) { try PasswordSource.file(path).resolve(environment: [:]) }
            let text = error.map { "\($0.diagnostic.summary) \($0.diagnostic.hint ?? "")" } ?? ""
            #expect(text.contains(says) && !text.contains("readable") && !text.contains("Leak"), "\(text)")
        }
    }
}
