import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

/// `nfldb backup config --cipher-pass-ref` / `--s3-key-ref` end to end: the rendered pgbackrest.conf
/// gets the resolved value and is 0600, the value is never printed, and a bad reference fails with
/// exit 2 and a message naming it. The older `--cipher-pass-file` follows the same 0600 rule.
@Suite("backup config with secret references")
struct BackupSecretRefCLITests {
    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1
    }

    @Test("--cipher-pass-ref env:/file: renders the passphrase into a 0600 file, prints it nowhere; bad refs exit 2 naming the ref")
    func cipherPassRef() throws {
        try TestCluster.withDatabase(prefix: "cli_backup_ref") { db in
            try withScratchDirectory("nfldb-backup-ref") { dir in
                let conf = "\(dir)/etc/pgbackrest.conf"
                let cipher = "cipher-pass-\(UUID().uuidString.prefix(12))"
                let env = ["NFLDB_DSN": db.dsn, "NFLDB_BACKUP_CONFIG": conf, "NFLDB_BACKUP_STANZA": "refs", "TEST_CIPHER_PASS": cipher]
                let repo = "\(dir)/repo"

                let shown = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-ref", "env:TEST_CIPHER_PASS", env: env)
                #expect(shown.status == 0, "\(shown.allOutput)")
                #expect(shown.standardOutput.contains("repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=\(SecretRedactor.mask)\n"), "\(shown.standardOutput)")
                #expect(!shown.allOutput.contains(cipher))

                let written = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-ref", "env:TEST_CIPHER_PASS", "--write", env: env)
                #expect(written.status == 0, "\(written.allOutput)")
                #expect(written.standardError.contains("wrote \(conf)") || written.standardOutput.contains("wrote \(conf)"), "\(written.allOutput)")
                #expect(!written.allOutput.contains(cipher))
                let text = try String(contentsOfFile: conf, encoding: .utf8)
                #expect(text.contains("repo1-cipher-pass=\(cipher)\n"))
                #expect(Self.mode(conf) == 0o600, "mode \(String(Self.mode(conf), radix: 8))")
                #expect(!FileManager.default.fileExists(atPath: AtomicFile.temporaryPath(for: conf)), "no temporary file left")

                // file: — refused while group/world-readable (with the chmod), accepted at 0600.
                let passFile = "\(dir)/cipher.pass"
                try "\(cipher)-f\n".write(toFile: passFile, atomically: true, encoding: .utf8)
                chmod(passFile, 0o644)
                let open = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-ref", "file:\(passFile)", "--write", env: env)
                #expect(open.status == 2, "\(open.allOutput)")
                #expect(open.standardError.contains("--cipher-pass-ref file:\(passFile)") && open.standardError.contains("group or world access"), "\(open.standardError)")
                #expect(open.standardError.contains("chmod 0600 \(passFile)"))
                #expect(!open.allOutput.contains(cipher))
                #expect(try String(contentsOfFile: conf, encoding: .utf8) == text, "a refused run leaves the file as it was")
                chmod(passFile, 0o600)
                let fromFile = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-ref", "file:\(passFile)", "--write", env: env)
                #expect(fromFile.status == 0, "\(fromFile.allOutput)")
                #expect(try String(contentsOfFile: conf, encoding: .utf8).contains("repo1-cipher-pass=\(cipher)-f\n"))
                #expect(Self.mode(conf) == 0o600)

                // The older --cipher-pass-file spelling: the same rule.
                chmod(passFile, 0o640)
                let oldSpelling = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-file", passFile, env: env)
                #expect(oldSpelling.status == 2, "\(oldSpelling.allOutput)")
                #expect(oldSpelling.standardError.contains("--cipher-pass-file") && oldSpelling.standardError.contains("chmod 0600 \(passFile)"), "\(oldSpelling.standardError)")
                #expect(!oldSpelling.allOutput.contains(cipher))

                // Bad references: exit 2, the reference named, nothing written.
                for (reference, expected) in [
                    ("env:NFLDB_TEST_UNSET_CIPHER", "--cipher-pass-ref env:NFLDB_TEST_UNSET_CIPHER: environment variable NFLDB_TEST_UNSET_CIPHER is not set"),
                    ("file:\(dir)/absent.pass", "--cipher-pass-ref file:\(dir)/absent.pass: cannot read \(dir)/absent.pass"),
                    ("vault:backup/cipher", "--cipher-pass-ref: unknown secret scheme"),
                    (cipher, "--cipher-pass-ref is not a secret reference"),
                ] {
                    let before = try String(contentsOfFile: conf, encoding: .utf8)
                    let bad = try nfldb("backup", "config", "--repo-path", repo, "--cipher-pass-ref", reference, "--write", env: env)
                    #expect(bad.status == 2, "\(reference): \(bad.allOutput)")
                    #expect(bad.standardError.contains(expected), "\(reference): \(bad.standardError)")
                    #expect(!bad.allOutput.contains(cipher), "\(reference): the value or an inline secret was printed")
                    #expect(try String(contentsOfFile: conf, encoding: .utf8) == before)
                }
            }
        }
    }

    @Test("--s3-key-ref renders the key pair into a 0600 file, prints the secret nowhere; a bad pair exits 2 naming the ref")
    func s3KeyRef() throws {
        try TestCluster.withDatabase(prefix: "cli_backup_s3ref") { db in
            try withScratchDirectory("nfldb-backup-s3ref") { dir in
                let conf = "\(dir)/etc/pgbackrest.conf"
                let keyID = "AKIA\(UUID().uuidString.prefix(8).uppercased())"
                let secret = "s3-secret-\(UUID().uuidString.prefix(16))"
                let secretFile = "\(dir)/s3.secret"
                try "\(secret)\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
                chmod(secretFile, 0o600)
                let env = ["NFLDB_DSN": db.dsn, "NFLDB_BACKUP_CONFIG": conf, "NFLDB_BACKUP_STANZA": "refs", "TEST_S3_KEY_ID": keyID]
                let s3: [String] = ["backup", "config", "--repo-type", "s3", "--s3-bucket", "nfl-backups", "--s3-endpoint", "s3.us-east-1.amazonaws.com",
                                    "--s3-region", "us-east-1", "--repo-path", "/nfldb"]

                let shown = try CLIRunner.run(s3 + ["--s3-key-ref", "env:TEST_S3_KEY_ID,file:\(secretFile)"], environment: env)
                #expect(shown.status == 0, "\(shown.allOutput)")
                // Both values came through the resolver, so both are scrubbed from what is shown.
                #expect(shown.standardOutput.contains("repo1-s3-key=\(SecretRedactor.mask)\nrepo1-s3-key-secret=\(SecretRedactor.mask)\n"), "\(shown.standardOutput)")
                #expect(!shown.allOutput.contains(secret))

                let written = try CLIRunner.run(s3 + ["--s3-key-ref", "env:TEST_S3_KEY_ID,file:\(secretFile)", "--write"], environment: env)
                #expect(written.status == 0, "\(written.allOutput)")
                #expect(!written.allOutput.contains(secret))
                let text = try String(contentsOfFile: conf, encoding: .utf8)
                #expect(text.contains("repo1-type=s3\n") && text.contains("repo1-s3-key=\(keyID)\nrepo1-s3-key-secret=\(secret)\n"), "\(text)")
                #expect(Self.mode(conf) == 0o600, "mode \(String(Self.mode(conf), radix: 8))")

                for (refs, expected) in [
                    ("env:TEST_S3_KEY_ID", "--s3-key-ref must be two secret references, KEY_REF,SECRET_REF"),
                    ("env:TEST_S3_KEY_ID,env:NFLDB_TEST_UNSET_S3", "--s3-key-ref (secret key) env:NFLDB_TEST_UNSET_S3: environment variable NFLDB_TEST_UNSET_S3 is not set"),
                    ("env:NFLDB_TEST_UNSET_S3,file:\(secretFile)", "--s3-key-ref (access key) env:NFLDB_TEST_UNSET_S3"),
                ] {
                    let bad = try CLIRunner.run(s3 + ["--s3-key-ref", refs, "--write"], environment: env)
                    #expect(bad.status == 2, "\(refs): \(bad.allOutput)")
                    #expect(bad.standardError.contains(expected), "\(refs): \(bad.standardError)")
                    #expect(!bad.allOutput.contains(secret))
                    #expect(try String(contentsOfFile: conf, encoding: .utf8) == text, "a refused run leaves the file as it was")
                }
                chmod(secretFile, 0o604)
                let open = try CLIRunner.run(s3 + ["--s3-key-ref", "env:TEST_S3_KEY_ID,file:\(secretFile)"], environment: env)
                #expect(open.status == 2, "\(open.allOutput)")
                #expect(open.standardError.contains("--s3-key-ref (secret key) file:\(secretFile)") && open.standardError.contains("chmod 0600"), "\(open.standardError)")
                #expect(!open.allOutput.contains(secret))
            }
        }
    }
}
