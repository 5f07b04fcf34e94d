import Foundation
import NFLDBCore
import NFLDBPgBackRest
import NFLDBSandbox
import NFLDBTestSupport
import Testing

@Suite("The sandbox's pgBackRest stanza comes from the one renderer and runner")
struct SandboxPgBackRestTests {
    @Test("sandbox up writes ConfigRenderer's rendering (0640, the OS user's), archive_command matches it, and the stanza exists")
    func sandboxUsesRenderer() throws {
        let state = "/tmp/nfldb-sbx-\(getpid())-\(UUID().uuidString.prefix(6).lowercased())"
        let osUser: String? = ProcessRunner.isRoot ? "postgres" : nil
        let sandbox = Sandbox(stateDirectory: state, osUser: osUser)
        defer {
            try? sandbox.down(logger: TestCluster.logger)
            try? FileManager.default.removeItem(atPath: state)
        }
        let up = try sandbox.up(logger: TestCluster.logger)
        let config = try #require(up.pgbackrestConfig)
        let base = (up.clusterRoot as NSString).appendingPathComponent("pgbackrest")
        #expect(config == "\(base)/pgbackrest.conf")
        let expected = ConfigRenderer(
            stanza: up.stanza, configPath: config, repoPath: "\(base)/repo", pgPath: (up.clusterRoot as NSString).appendingPathComponent("data"),
            pgPort: up.port, pgSocket: (up.clusterRoot as NSString).appendingPathComponent("run"), pgUser: up.superuser)
        let written = try String(contentsOfFile: config, encoding: .utf8)
        #expect(written == expected.render(), "the sandbox must render through ConfigRenderer")
        let attributes = try FileManager.default.attributesOfItem(atPath: config)
        #expect((attributes[.posixPermissions] as? Int) == 0o640)
        if let osUser { #expect((attributes[.ownerAccountName] as? String) == osUser) }
        let pg = PgBackRest(configPath: config, stanza: up.stanza, osUser: osUser)
        let stanzas = try pg.info(allowNoBackups: true)
        #expect(stanzas.map(\.name) == [up.stanza])
        #expect(stanzas.first?.status.code == 2, "a new stanza has status 2 (no valid backups)")
        // Where a backup is required, the refusal says how to get one (not only where to read the same status again).
        let empty = #expect(throws: BackupError.self) { try StanzaInfo.requireOK(stanzas, configPath: config) }
        #expect(empty?.diagnostic.hint?.contains("`nfldb backup run --type full`") == true, "\(String(describing: empty))")
        try pg.runChecked("check", ["--archive-timeout=30"], timeout: .seconds(90))
    }
}
