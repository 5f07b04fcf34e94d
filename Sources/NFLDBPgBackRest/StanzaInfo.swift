import Foundation
import NFLDBCore

/// One stanza from `pgbackrest info --output=json` (fields seen in 2.45 and later).
public struct StanzaInfo: Codable, Sendable, Equatable {
    public struct Status: Codable, Sendable, Equatable {
        public var code: Int
        public var message: String
    }
    public struct Database: Codable, Sendable, Equatable {
        public var id: Int
        /// The cluster's system identifier: a 64-bit integer that must not go through a Double.
        public var systemID: UInt64
        public var version: String
        enum CodingKeys: String, CodingKey { case id, systemID = "system-id", version }
    }
    public struct Archive: Codable, Sendable, Equatable {
        public var id: String
        public var min: String?
        public var max: String?
    }
    public struct Backup: Codable, Sendable, Equatable {
        public struct Range: Codable, Sendable, Equatable {
            public var start: String?
            public var stop: String?
        }
        public struct Timestamp: Codable, Sendable, Equatable {
            public var start: Int64
            public var stop: Int64
        }
        public struct Sizes: Codable, Sendable, Equatable {
            public struct Repository: Codable, Sendable, Equatable {
                public var size: Int64?
                public var delta: Int64?
            }
            public var size: Int64?
            public var delta: Int64?
            public var repository: Repository?
        }
        public var label: String
        public var type: String
        public var prior: String?
        public var reference: [String]?
        public var timestamp: Timestamp
        public var archive: Range?
        public var lsn: Range?
        public var info: Sizes?
        public var error: Bool?
    }
    /// One repository's own status: where pgBackRest puts the real error (`[13] Permission denied`,
    /// a backup.info it could not decrypt) when the stanza's status says only "other".
    public struct Repo: Codable, Sendable, Equatable {
        public var key: Int?
        public var cipher: String?
        public var status: Status?
    }
    public var name: String
    public var status: Status
    public var db: [Database]
    public var archive: [Archive]
    public var backup: [Backup]
    public var repo: [Repo]
    public var cipher: String?

    enum CodingKeys: String, CodingKey { case name, status, db, archive, backup, repo, cipher }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        status = try c.decode(Status.self, forKey: .status)
        db = try c.decodeIfPresent([Database].self, forKey: .db) ?? []
        archive = try c.decodeIfPresent([Archive].self, forKey: .archive) ?? []
        backup = try c.decodeIfPresent([Backup].self, forKey: .backup) ?? []
        repo = try c.decodeIfPresent([Repo].self, forKey: .repo) ?? []
        cipher = try c.decodeIfPresent(String.self, forKey: .cipher)
    }

    /// pgBackRest's own words for each repo whose status is not ok (`repo1: [PathOpenError] … [13]
    /// Permission denied`), without lines of undecodable bytes (a wrongly decrypted file's content).
    public var repoProblems: [String] {
        repo.compactMap { repo in
            guard let status = repo.status, status.code != 0 else { return nil }
            let lines = status.message.split(separator: "\n").filter { !$0.contains("\u{FFFD}") }
            return "repo\(repo.key ?? 1): " + lines.joined(separator: " ")
        }
    }

    /// A hint that matches what pgBackRest reported for the repo.
    var repoHint: String? {
        let messages = repo.compactMap(\.status?.message)
        if messages.contains(where: { $0.contains("Permission denied") }) {
            return "pgBackRest (run as postgres.os_user) cannot read the repository: fix the ownership/permissions of repo1-path (pgBackRest's error above names the path)."
        }
        let encrypted = (cipher ?? "none") != "none" || repo.contains { ($0.cipher ?? "none") != "none" }
        if encrypted && messages.contains(where: { $0.contains("FormatError") || $0.contains("unable to load info file") }) {
            return "The repository is encrypted and backup.info/archive.info could not be decrypted: repo1-cipher-pass in the config is probably wrong "
                + "(render it again with the right --cipher-pass-env/--cipher-pass-file)."
        }
        return nil
    }

    /// Decodes the JSON array `info --output=json` prints.
    public static func decode(_ data: Data) throws -> [StanzaInfo] {
        // A wrongly decrypted info file's bytes land in a status message, raw control characters
        // included (invalid in JSON): replace them before decoding.
        let text = String(decoding: data, as: UTF8.self)
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t" ? "\u{FFFD}" : $0 }))
        do {
            return try JSONDecoder().decode([StanzaInfo].self, from: Data(cleaned.utf8))
        } catch {
            let readable = cleaned.replacingOccurrences(of: "\\n", with: "\n").split(separator: "\n")
                .filter { !$0.contains("\u{FFFD}") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }.prefix(4).joined(separator: " ")
            let decryptFailed = cleaned.contains("unable to load info file") && cleaned.contains("aes-256-cbc")
            throw BackupError(
                "cannot decode `pgbackrest info --output=json`"
                    + (decryptFailed ? " — the repository is encrypted and could not be decrypted: wrong cipher passphrase (repo1-cipher-pass)?" : "")
                    + (readable.isEmpty ? ": \(error)" : "; pgBackRest printed: \(readable.prefix(600))"),
                hint: decryptFailed
                    ? "repo1-cipher-pass in the config is probably wrong (render it again with the right --cipher-pass-env/--cipher-pass-file)."
                    : "Check that pgBackRest is 2.45 or later and log-level-console is warn (log lines must not mix into the JSON).")
        }
    }

    /// Throws when any stanza's `status.code` is not 0 (the process itself exits 0 for a missing stanza).
    /// With `allowNoBackups`, status 2 ("no valid backups") is accepted (a new stanza).
    public static func requireOK(_ stanzas: [StanzaInfo], configPath: String, allowNoBackups: Bool = false) throws {
        guard !stanzas.isEmpty else {
            throw BackupError("pgbackrest info returned no stanza", hint: "Check the stanza name and \(configPath).")
        }
        for stanza in stanzas where stanza.status.code != 0 && !(allowNoBackups && stanza.status.code == 2) {
            let problems = stanza.repoProblems
            let encrypted = stanza.repoHint?.contains("encrypted") == true
            throw BackupError(
                "stanza \(stanza.name) is not usable: pgBackRest status \(stanza.status.code) (\(stanza.status.message))"
                    + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; "))
                    + (encrypted ? " — the repository is encrypted: wrong cipher passphrase (repo1-cipher-pass)?" : ""),
                detail: "config \(configPath)",
                hint: stanza.status.code == 1
                    ? "The stanza does not exist in the repo: check backup.stanza (NFLDB_BACKUP_STANZA) or run `nfldb backup init`."
                    : stanza.status.code == 2 && stanza.repoHint == nil
                    ? "The stanza has no backup yet (or none is valid): take one with `nfldb backup run --type full`, then run this again."
                    : stanza.repoHint ?? "Run `pgbackrest --config=\(configPath) --stanza=\(stanza.name) info` for details.")
        }
    }

    /// The newest backup, or the one with `label`.
    public func backup(label: String?) -> Backup? {
        guard let label, label != "latest" else { return backup.last }
        return backup.first { $0.label == label }
    }

    /// Highest archived WAL segment over every archive id (current db first).
    public var archiveMax: String? { archive.compactMap(\.max).max() }
}

/// A backup-capability error that is not a pgBackRest exit code.
public struct BackupError: NFLDBError, Sendable {
    public var diagnostic: Diagnostic
    public var exitStatus: ExitStatus
    public init(_ summary: String, detail: String? = nil, hint: String? = nil, exitStatus: ExitStatus = .failure) {
        diagnostic = Diagnostic(summary, detail: detail, hint: hint)
        self.exitStatus = exitStatus
    }
}

/// WAL segment names: `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline, log, segment).
public enum WALName {
    public static func timeline(_ name: String) -> UInt32? {
        guard name.count >= 8 else { return nil }
        return UInt32(name.prefix(8), radix: 16)
    }

    /// The segment a name from `pg_stat_archiver.last_archived_wal` belongs to: the segment itself,
    /// or the segment of a `.backup`/`.partial` file; nil for a `.history` file or anything else.
    public static func segment(_ name: String) -> String? {
        let head = String(name.prefix(24))
        guard head.count == 24, head.allSatisfy(\.isHexDigit), !name.hasSuffix(".history") else { return nil }
        return head.uppercased()
    }

    /// The segment after `name` (`segmentSize` is the server's `wal_segment_size` in bytes).
    public static func next(_ name: String, segmentSize: Int64) -> String? {
        guard name.count == 24, let log = UInt64(name.dropFirst(8).prefix(8), radix: 16), let seg = UInt64(name.suffix(8), radix: 16),
              segmentSize > 0 else { return nil }
        let perLog = UInt64(0x1_0000_0000) / UInt64(segmentSize)
        let (nextLog, nextSeg) = seg + 1 >= perLog ? (log + 1, UInt64(0)) : (log, seg + 1)
        return String(name.prefix(8)) + String(format: "%08X%08X", nextLog, nextSeg)
    }

    /// The segments the repo lacks at the end of the archive: nil when the repo's newest segment
    /// `repoMax` is at or past the primary's last archived one; else "first-last" (or one name).
    /// Read the primary's value BEFORE `info`, so a segment archived in between is not a false gap.
    public static func missingTail(repoMax: String?, primaryLast: String, segmentSize: Int64) -> String? {
        guard let last = segment(primaryLast) else { return nil }
        if let repoMax, repoMax.uppercased() >= last { return nil }
        let first = repoMax.flatMap { next($0.uppercased(), segmentSize: segmentSize) } ?? last
        return first == last ? last : "\(first)-\(last)"
    }
}
