import Foundation
import NFLDBCore
import Testing

@Suite("ShellWord: hints that are copied into a shell")
struct ShellWordTests {
    @Test("plain paths stay as they are; spaces, quotes, $ and non-ASCII are single-quoted; the result reads back as the same word in sh")
    func quoting() throws {
        #expect(ShellWord.quote("/etc/pgbackrest/pgbackrest.conf") == "/etc/pgbackrest/pgbackrest.conf")
        #expect(ShellWord.quote("nfl.games") == "nfl.games")
        #expect(ShellWord.quote("") == "''")
        for text in ["/tmp/my conf/pgbackrest.conf", "it's", "$HOME", "a;b", "Zoë", "x`y`"] {
            let quoted = ShellWord.quote(text)
            #expect(quoted.hasPrefix("'"), "\(text)")
            let echoed = try ProcessRunner().run("/bin/sh", ["-c", "printf '%s' \(quoted)"])
            #expect(echoed.standardOutput == text, "\(text) → \(quoted) → \(echoed.standardOutput)")
        }
    }
}
