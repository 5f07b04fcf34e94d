import Foundation
import NFLDBBackup
import NFLDBPgBackRest
import Testing

@Suite("pgbackrest.conf rendering for an S3 repo")
struct ConfigRendererTests {
    func renderer() -> ConfigRenderer {
        ConfigRenderer(stanza: "nfldb", configPath: "/etc/nfldb/pgbackrest.conf", repoPath: "/nfl-prod",
                       pgPath: "/var/lib/postgresql/15/main", pgPort: 5432, pgSocket: "/var/run/postgresql", pgUser: "postgres")
    }

    @Test("s3 with a key pair: repo1-type=s3 and every s3 option in [global]; posix renders none of them")
    func s3WithKeys() {
        var r = renderer()
        #expect(!r.render().contains("s3"))
        var s3 = ConfigRenderer.S3Repo(bucket: "nfl-backups", endpoint: "s3.us-east-1.amazonaws.com", region: "us-east-1")
        s3.uriStyle = "path"
        s3.key = "AKIAEXAMPLE"
        s3.keySecret = "very-secret"
        r.s3 = s3
        let text = r.render()
        #expect(!text.contains("{{"))
        #expect(text.contains("""
            repo1-path=/nfl-prod
            repo1-type=s3
            repo1-s3-bucket=nfl-backups
            repo1-s3-endpoint=s3.us-east-1.amazonaws.com
            repo1-s3-region=us-east-1
            repo1-s3-uri-style=path
            repo1-s3-key=AKIAEXAMPLE
            repo1-s3-key-secret=very-secret
            repo1-retention-full=2
            """))
        #expect(!text.contains("key-type=auto"))
        let global = text.components(separatedBy: "[nfldb]")[0]
        #expect(global.contains("repo1-type=s3"))
    }

    @Test("s3 without keys uses the instance role (repo1-s3-key-type=auto); the manifest copy is posix-only")
    func s3InstanceRole() throws {
        var r = renderer()
        r.s3 = ConfigRenderer.S3Repo(bucket: "b", endpoint: "e", region: "r")
        let text = r.render()
        #expect(text.contains("repo1-s3-key-type=auto\n"))
        #expect(!text.contains("repo1-s3-key="))
        let path = "/tmp/nfldb-render-\(getpid()).conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pg = PgBackRest(configPath: path, stanza: "nfldb", osUser: nil)
        #expect(pg.posixRepoPath() == nil)
        #expect(pg.manifestFilePath(label: "x") == nil)
        try renderer().render().write(toFile: path, atomically: true, encoding: .utf8)
        #expect(pg.manifestFilePath(label: "20261127-000000F") == "/nfl-prod/nfldb-manifests/20261127-000000F.json")
    }

    @Test("a custom template without the {{repo_s3}} or {{cipher}} slot is reported, not silently rendered as posix")
    func missingSlots() {
        var r = renderer()
        let old = ConfigRenderer.defaultTemplate.replacingOccurrences(of: "{{repo_s3}}", with: "").replacingOccurrences(of: "{{cipher}}", with: "")
        #expect(r.missingSlots(in: old).isEmpty, "a posix repo without encryption needs neither slot")
        r.s3 = ConfigRenderer.S3Repo(bucket: "b", endpoint: "e", region: "r")
        r.cipherPass = "pass"
        #expect(r.missingSlots(in: old) == ["{{repo_s3}} (the S3 repo settings)", "{{cipher}} (repo encryption)"])
        #expect(r.missingSlots(in: ConfigRenderer.defaultTemplate).isEmpty)
    }
}
