import Foundation
import NFLDBCore
import NFLDBPostgres

/// Renders `pgbackrest.conf` from ``defaultTemplate`` (or an operator's template) and lists the
/// server settings archiving needs. The one renderer: `nfldb backup config`, the sandbox and the
/// test fixtures all write their config through it.
public struct ConfigRenderer: Sendable, Equatable {
    public var stanza: String
    public var configPath: String
    public var repoPath: String
    public var pgPath: String
    public var pgPort: Int
    public var pgSocket: String
    public var pgUser: String
    public var retentionFull = 2
    public var retentionDiff = 6
    public var compressType = "lz4"
    public var processMax = 2
    /// `aes-256-cbc` with the passphrase (read from env/file by the caller), or nil for none.
    public var cipherPass: String?
    /// An S3 (or S3-compatible) repo instead of a posix path; `repoPath` is then the prefix in the bucket.
    public var s3: S3Repo?

    /// `repo1-type=s3` settings. Without a key pair pgBackRest uses the instance's IAM role (`repo1-s3-key-type=auto`).
    public struct S3Repo: Sendable, Equatable {
        public var bucket: String
        public var endpoint: String
        public var region: String
        /// `host` (virtual-hosted, AWS) or `path` (MinIO and most S3-compatible stores).
        public var uriStyle = "host"
        public var key: String?
        public var keySecret: String?
        public init(bucket: String, endpoint: String, region: String) {
            self.bucket = bucket
            self.endpoint = endpoint
            self.region = region
        }

        var lines: String {
            var out = "repo1-type=s3\nrepo1-s3-bucket=\(bucket)\nrepo1-s3-endpoint=\(endpoint)\nrepo1-s3-region=\(region)\nrepo1-s3-uri-style=\(uriStyle)\n"
            if let key, let keySecret {
                out += "repo1-s3-key=\(key)\nrepo1-s3-key-secret=\(keySecret)\n"
            } else {
                out += "repo1-s3-key-type=auto\n"
            }
            return out
        }
    }

    public init(stanza: String, configPath: String, repoPath: String, pgPath: String, pgPort: Int, pgSocket: String, pgUser: String) {
        self.stanza = stanza
        self.configPath = configPath
        self.repoPath = repoPath
        self.pgPath = pgPath
        self.pgPort = pgPort
        self.pgSocket = pgSocket
        self.pgUser = pgUser
    }

    /// The built-in template, the only copy (`nfldb backup config --template F` renders another one;
    /// `nfldb backup config` without `--write` prints this one rendered).
    public static let defaultTemplate = """
        # pgBackRest configuration rendered by nfldb (`nfldb backup config`, or `nfldb sandbox up`).
        # Every command nfldb runs passes --config=<this file> on the command line, and so must archive_command.
        [global]
        repo1-path={{repo_path}}
        {{repo_s3}}repo1-retention-full={{retention_full}}
        repo1-retention-diff={{retention_diff}}
        {{cipher}}start-fast=y
        archive-check=y
        compress-type={{compress_type}}
        process-max={{process_max}}
        log-level-console=warn
        log-level-file=info
        log-path={{base}}/log
        lock-path={{base}}/lock
        spool-path={{base}}/spool

        [{{stanza}}]
        pg1-path={{pg_path}}
        pg1-port={{pg_port}}
        pg1-socket-path={{pg_socket}}
        pg1-user={{pg_user}}

        """

    /// Directory holding log/lock/spool: beside the config file.
    public var baseDirectory: String { (configPath as NSString).deletingLastPathComponent }

    public func render(template: String = ConfigRenderer.defaultTemplate) -> String {
        let cipher = cipherPass.map { "repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=\($0)\n" } ?? ""
        let values: [String: String] = [
            "repo_path": repoPath, "retention_full": String(retentionFull), "retention_diff": String(retentionDiff),
            "cipher": cipher, "repo_s3": s3?.lines ?? "", "compress_type": compressType, "process_max": String(processMax), "base": baseDirectory,
            "stanza": stanza, "pg_path": pgPath, "pg_port": String(pgPort), "pg_socket": pgSocket, "pg_user": pgUser,
        ]
        var text = template
        for (key, value) in values { text = text.replacingOccurrences(of: "{{\(key)}}", with: value) }
        return text
    }

    /// Settings this renderer would write that `template` has no slot for (an older custom template
    /// without `{{repo_s3}}` would silently render a posix repo instead of S3).
    public func missingSlots(in template: String) -> [String] {
        var missing: [String] = []
        if s3 != nil && !template.contains("{{repo_s3}}") { missing.append("{{repo_s3}} (the S3 repo settings)") }
        if cipherPass != nil && !template.contains("{{cipher}}") { missing.append("{{cipher}} (repo encryption)") }
        return missing
    }

    /// `archive_command` with `--config` on the command line (the server does not see our environment).
    public var archiveCommand: String { "pgbackrest --config=\(configPath) --stanza=\(stanza) archive-push %p" }

    /// Server settings archiving needs, in `postgresql.conf` order.
    public var requiredSettings: [(name: String, value: String)] {
        [("wal_level", "replica"), ("archive_mode", "on"), ("archive_command", archiveCommand)]
    }

    /// Required settings that differ on the live server: (name, live, required).
    public func differences(_ connection: PostgresConnection) throws -> [(name: String, live: String, required: String)] {
        var out: [(String, String, String)] = []
        for (name, value) in requiredSettings {
            let live = try connection.query("SELECT current_setting(\(name))").scalar(String.self)
            let ok = name == "wal_level" ? ["replica", "logical"].contains(live) : (name == "archive_mode" ? ["on", "always"].contains(live) : live == value)
            if !ok { out.append((name, live, value)) }
        }
        return out
    }

    /// Whether the rendering contains a secret (`repo1-cipher-pass`, `repo1-s3-key-secret`).
    public var holdsSecret: Bool { cipherPass != nil || s3?.keySecret != nil }

    /// Writes the rendered config to ``configPath`` (mode 0600 when it holds a secret, else 0640) and
    /// creates the directories it names (log, lock and spool beside it; the repo for a posix repo) that
    /// do not exist yet, owned by `osUser` when nfldb runs as root, so pgBackRest (run as that user) and
    /// the server's `archive_command` can use them. Existing directories keep their owner and mode.
    /// - Throws: ``OperatorError`` naming the path when a directory, the file, or its owner/mode cannot be set.
    public func install(template: String = ConfigRenderer.defaultTemplate, osUser: String?) throws {
        let fm = FileManager.default
        var directories = [baseDirectory, "\(baseDirectory)/log", "\(baseDirectory)/lock", "\(baseDirectory)/spool"]
        if s3 == nil { directories.insert(repoPath, at: 1) }
        for directory in directories where !fm.fileExists(atPath: directory) {
            do {
                try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw OperatorError("cannot create \(directory) for pgBackRest: \(error.localizedDescription)",
                                    hint: "Check the permissions of its parent directory.")
            }
            try Self.give(directory, to: osUser)
        }
        // A file holding a secret (cipher pass, S3 key) is 0600 from its first byte (written to a
        // temporary file with that mode, then renamed); without one, 0640 lets the group read it.
        let mode = holdsSecret ? 0o600 : 0o640
        do {
            try AtomicFile.write(Data(render(template: template).utf8), to: configPath, permissions: mode)
        } catch {
            throw OperatorError("cannot write \(configPath): \(error.localizedDescription)", hint: "Check the permissions of \(baseDirectory).")
        }
        try Self.give(configPath, to: osUser)
    }

    /// Makes `path` owned by `user` (and its group) when nfldb runs as root; nothing otherwise.
    static func give(_ path: String, to user: String?) throws {
        guard ProcessRunner.isRoot, let user else { return }
        guard let account = getpwnam(user) else {
            throw OperatorError("cannot give \(path) to OS user \(user): no such user", hint: "Set postgres.os_user to the user that runs PostgreSQL.",
                                exitStatus: .usage)
        }
        guard chown(path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
            throw OperatorError("cannot give \(path) to OS user \(user): \(String(cString: strerror(errno)))")
        }
    }
}
