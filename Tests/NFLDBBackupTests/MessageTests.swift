import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// Each message points at the real cause, with pgBackRest's own code and words kept.
@Suite("backup messages: missing config, wrong passphrase, unreadable repo", .serialized)
struct MessageTests {
    @Test("a missing pgBackRest config file is a configuration error (exit 2) saying so, with pgBackRest's [055] kept")
    func missingConfig() throws {
        let root = "/tmp/nfldb-msg-\(getpid())-\(UUID().uuidString.prefix(6))"
        let pg = PgBackRest(configPath: "\(root)/pgbackrest.conf", stanza: "nfldb", osUser: ProcessRunner.isRoot ? "postgres" : nil)
        let error = #expect(throws: PgBackRestError.self) { try pg.info() }
        #expect(error?.exitStatus == .usage)
        #expect(error?.code.rawValue == 55)
        let diagnostic = try #require(error?.diagnostic)
        #expect(diagnostic.summary.contains("[055 file-missing]") && diagnostic.summary.contains("unable to open missing file '\(root)/pgbackrest.conf'"),
                "\(diagnostic)")
        #expect(diagnostic.hint?.contains("config file \(root)/pgbackrest.conf does not exist") == true, "\(diagnostic)")
        #expect(diagnostic.hint?.contains("damaged") == false, "not the repository-damaged hint: \(diagnostic)")
    }

    @Test("a wrong cipher passphrase says so (info and verify), keeping pgBackRest's own error")
    func wrongPassphrase() throws {
        let f = try BackupFixture(cipherPass: "right-passphrase")
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        var wrong = f.renderer
        wrong.compressType = "gz"
        wrong.cipherPass = "wrong-passphrase"
        try wrong.install(osUser: f.pgbackrest.osUser)
        let error = #expect(throws: BackupError.self) { try f.pgbackrest.info() }
        let diagnostic = try #require(error?.diagnostic)
        #expect(diagnostic.summary.contains("wrong cipher passphrase"), "\(diagnostic)")
        #expect(diagnostic.summary.contains("Error] unable to load info file"), "pgBackRest's FormatError/CryptoError kept: \(diagnostic)")
        #expect(!diagnostic.summary.contains("\u{FFFD}"), "no undecodable bytes in the message")
        #expect(diagnostic.hint?.contains("repo1-cipher-pass") == true, "\(diagnostic)")
        let receipt = try f.verify()
        let repoInfo = try #require(receipt.checks.first { $0.name == "repo-info" && !$0.passed }, "\(receipt.renderText())")
        #expect(repoInfo.evidence.contains("wrong cipher passphrase"), "\(repoInfo.evidence)")
        #expect(f.scratchLeftovers().isEmpty)
    }

    @Test("an unreadable repo keeps pgBackRest's own [13] Permission denied and says who cannot read it")
    func unreadableRepo() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        try #require(chmod(f.repoPath, 0o000) == 0)
        defer { chmod(f.repoPath, 0o750) }
        let error = #expect(throws: BackupError.self) { try f.pgbackrest.info() }
        let diagnostic = try #require(error?.diagnostic)
        #expect(diagnostic.summary.contains("[13] Permission denied"), "\(diagnostic)")
        #expect(diagnostic.summary.contains("status 99"), "\(diagnostic)")
        #expect(diagnostic.hint?.contains("cannot read the repository") == true, "\(diagnostic)")
    }
}
