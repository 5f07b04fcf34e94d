import Foundation
import NFLDBCore

/// What `backup verify --reuse-scratch` remembers of the relations `pg_amcheck` found clean, so a
/// later run can skip those whose bytes and meaning cannot have changed (issue 11 item 7, lever (d)
/// in docs/backups.md).
///
/// A relation group (a table, materialized view or sequence with its TOAST table, TOAST index and
/// indexes) is skipped only when all of these hold:
/// 1. every file of every member has the same SHA-1 and size in this backup's manifest as in the
///    run that checked the group clean (the restore enforces those SHA-1s on the copy's files);
/// 2. WAL replay touched none of its files, neither in that run nor in this one (a `pg_waldump`
///    of the backup's start..stop WAL: a block reference, a storage or a commit record naming the
///    file), so the bytes `pg_amcheck` read then are the bytes it would read now;
/// 3. its catalog rows are the same (kind, access method, `relfrozenxid`, `relminmxid`,
///    attributes, index definition), and the server version, the C library and the database
///    collation version are the same;
/// 4. no transaction that was open at that run's consistency point has committed since (those
///    xids are recorded and looked up in this copy's `pg_xact`): a commit would change which tuples
///    in unchanged files are visible, and so what `--heapallindexed` and the TOAST checks apply to;
/// 5. the clean check is younger than `backup.verify.amcheck_recheck_interval` (default 7 d).
/// Catalogs and the other databases are always checked. Anything the scan cannot account for (a
/// database, tablespace or relation-map record, a truncation of `pg_xact`/multixacts, a timeline
/// change, a point-in-time target, an unreadable memo) turns the skipping off for the run.
struct AmcheckMemo: Codable, Equatable {
    static let fileName = ".nfldb-amcheck-clean.json"
    static let formatVersion = 2

    var version = AmcheckMemo.formatVersion
    /// Server version, C library, database collation version, timeline, pg_amcheck options.
    var context: String
    /// The stop LSN of the backup the recording run verified: a backup that stopped earlier is
    /// never checked against this memo (transactions committed then may still be open in it).
    var backupStopLSN: String?
    /// xids (with epoch) that were not committed at the recording run's consistency point, from the
    /// backup's oldest running xid up to the copy's next xid. nil: unknown (nothing may be skipped next time).
    var openXIDs: [UInt64]?
    /// Group key (the root relation's oid in the verified database) → the clean check.
    var groups: [String: Entry]

    struct Entry: Codable, Equatable {
        var name: String
        var fingerprint: String
        var checkedAt: Date
    }

    static func path(_ scratch: String) -> String { (scratch as NSString).appendingPathComponent(fileName) }

    /// The memo of a kept copy, or why it cannot be used (a file this user did not write, or one
    /// others can write, is ignored: it would decide what is not checked).
    static func load(_ scratch: String) -> Result<AmcheckMemo?, MemoOff> {
        let path = path(scratch)
        var info = stat()
        guard lstat(path, &info) == 0 else { return .success(nil) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            return .failure(MemoOff(reason: "\(path) is a directory, not the memo file verify writes; ignored, every relation is checked "
                            + "(remove it so that the memo can be written)"))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(), info.st_mode & 0o022 == 0 else {
            return .failure(MemoOff(reason: "\(path) is not a regular file of this user closed to writes by others (uid \(info.st_uid), mode "
                            + "\(String(info.st_mode & 0o777, radix: 8))); ignored, every relation is checked and the file is rewritten"))
        }
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(MemoOff(reason: "\(path) is not readable; ignored")) }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let memo = try? decoder.decode(AmcheckMemo.self, from: data), memo.version == formatVersion else {
            return .failure(MemoOff(reason: "\(path) is not a memo of this nfldb version; ignored, every relation is checked and the file is rewritten"))
        }
        return .success(memo)
    }

    func save(_ scratch: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let path = Self.path(scratch)
        // .atomic: a temporary file renamed over the old memo (a kill leaves the old one or the new one).
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
        chmod(path, 0o600)
    }
}

/// The files of a backup, from its pgBackRest `backup.manifest` (INI with JSON values).
struct ManifestFiles: Sendable {
    var lsnStart: String?
    var lsnStop: String?
    var archiveStart: String?
    var archiveStop: String?
    /// Relation file base path (as `pg_relation_filepath` gives it: `base/5/16384`,
    /// `pg_tblspc/16400/PG_15_…/5/16384`) → "name checksum size" of each of its files (forks, segments).
    var relationFiles: [String: [String]] = [:]

    init(_ text: String) {
        var section = ""
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { section = line; continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            let value = String(line[line.index(after: eq)...])
            if section == "[backup]" {
                let unquoted = value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                switch key {
                case "backup-lsn-start": lsnStart = unquoted
                case "backup-lsn-stop": lsnStop = unquoted
                case "backup-archive-start": archiveStart = unquoted
                case "backup-archive-stop": archiveStop = unquoted
                default: break
                }
            } else if section == "[target:file]",
                      // Files of the data directory are `pg_data/…`; a tablespace's are `pg_tblspc/<oid>/PG_…/<db>/<relfilenode>`.
                      let base = Self.relationBase(key.hasPrefix("pg_data/") ? String(key.dropFirst(8)) : key) {
                let checksum = Self.jsonString(value, "checksum") ?? "-"
                let size = Self.jsonNumber(value, "size") ?? "?"
                relationFiles[base, default: []].append("\(key) \(checksum) \(size)")
            }
        }
    }

    /// `base/5/16384_fsm.1` → `base/5/16384`, `pg_tblspc/16400/PG_15_…/5/16384.1` → `pg_tblspc/16400/PG_15_…/5/16384`;
    /// nil for a file that is not a relation file.
    static func relationBase(_ path: String) -> String? {
        let parts = path.split(separator: "/")
        guard let last = parts.last, parts.first == "base" || parts.first == "global" || (parts.first == "pg_tblspc" && parts.count == 5) else { return nil }
        var name = Substring(last)
        if let dot = name.lastIndex(of: "."), name[name.index(after: dot)...].allSatisfy(\.isNumber) { name = name[..<dot] }
        for fork in ["_fsm", "_vm", "_init"] where name.hasSuffix(fork) { name = name.dropLast(fork.count) }
        guard !name.isEmpty, name.allSatisfy(\.isNumber) else { return nil }
        return (parts.dropLast().map(String.init) + [String(name)]).joined(separator: "/")
    }

    static func jsonString(_ json: String, _ key: String) -> String? {
        guard let range = json.range(of: "\"\(key)\":\"") else { return nil }
        return String(json[range.upperBound...].prefix { $0 != "\"" })
    }

    static func jsonNumber(_ json: String, _ key: String) -> String? {
        guard let range = json.range(of: "\"\(key)\":") else { return nil }
        let digits = json[range.upperBound...].prefix { $0.isNumber }
        return digits.isEmpty ? nil : String(digits)
    }
}

/// What WAL replay of a backup's start..stop range touches, from `pg_waldump`'s text output.
struct ReplayScan: Equatable, Sendable {
    /// "tablespace/database/relfilenode" of every relation file a record refers to.
    var touched: Set<String> = []
    /// The backup-start checkpoint's "oldest running xid" (32-bit).
    var oldestRunningXID: UInt32?
    /// Whether the BACKUP_END record (the consistency point) was read.
    var sawBackupEnd = false
    /// Why nothing may be skipped or recorded (a record the scan cannot map to relations).
    var disabled: String?

    /// Resource managers whose records change relation files only through block references (or not at all).
    static let blockOnly: Set<String> = ["Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "SPGist", "BRIN", "Sequence", "XLOG",
                                         "Standby", "Generic", "CommitTs", "LogicalMessage", "ReplicationOrigin"]

    init(waldump text: String, lsnStart: String) {
        for line in text.split(separator: "\n") {
            guard let rmgrRange = line.range(of: "rmgr: ") else { continue }
            let rmgr = line[rmgrRange.upperBound...].prefix { !$0.isWhitespace }
            let desc = line.range(of: "desc: ").map { String(line[$0.upperBound...]) } ?? ""
            for triple in Self.matches(Self.blockReference, in: String(line)) { touched.insert(triple.joined(separator: "/")) }
            for path in Self.matches(Self.filePath, in: desc) {
                if let key = Self.key(forPath: path[0]) { touched.insert(key) }
            }
            switch rmgr {
            case "XLOG":
                if desc.hasPrefix("CHECKPOINT_ONLINE") || desc.hasPrefix("CHECKPOINT_SHUTDOWN"),
                   oldestRunningXID == nil, desc.hasPrefix("CHECKPOINT_SHUTDOWN") || desc.contains("redo \(lsnStart);"),
                   let xid = Self.matches(Self.oldestRunningXid, in: desc).first.flatMap({ UInt32($0[0]) }) {
                    oldestRunningXID = xid
                }
                if desc.hasPrefix("BACKUP_END") { sawBackupEnd = true }
            case "Transaction", "Storage":
                // Commit/abort records name the files they drop (" rels: base/5/16390 …"); storage
                // records create or truncate one: those are marked touched above.
                break
            case "MultiXact", "CLOG":
                if desc.hasPrefix("TRUNCATE") { disabled = disabled ?? "replay truncated \(rmgr == "CLOG" ? "pg_xact" : "multixacts") (\(desc.prefix(60)))" }
            default:
                if !Self.blockOnly.contains(String(rmgr)) {
                    disabled = disabled ?? "replay ran a \(rmgr) record (\(desc.prefix(60))) that the scan cannot map to relations"
                }
            }
        }
    }

    /// `base/5/16384` → "1663/5/16384", `global/1262` → "1664/0/1262", `pg_tblspc/S/PG_…/5/16384` → "S/5/16384".
    static func key(forPath path: String) -> String? {
        let parts = path.split(separator: "/").map(String.init)
        switch parts.first {
        case "base" where parts.count >= 3: return "1663/\(parts[1])/\(parts[2].prefix { $0.isNumber })"
        case "global" where parts.count >= 2: return "1664/0/\(parts[1].prefix { $0.isNumber })"
        case "pg_tblspc" where parts.count >= 5: return "\(parts[1])/\(parts[3])/\(parts[4].prefix { $0.isNumber })"
        default: return nil
        }
    }

    // Compiled once, not per line of the dump (NSRegularExpression is immutable and thread-safe).
    static let blockReference = try! NSRegularExpression(pattern: #"rel (\d+)/(\d+)/(\d+)"#)
    static let filePath = try! NSRegularExpression(pattern: #"((?:base|global|pg_tblspc)/[0-9A-Za-z_/.]+)"#)
    static let oldestRunningXid = try! NSRegularExpression(pattern: #"oldest running xid (\d+)"#)

    static func matches(_ regex: NSRegularExpression, in text: String) -> [[String]] {
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (1..<match.numberOfRanges).map { ns.substring(with: match.range(at: $0)) }
        }
    }
}

/// One relation group of the verified database as the copy's catalog describes it.
struct RelationGroup {
    struct Member {
        var oid: Int64
        var kind: String
        var schema: String
        var name: String
        var path: String
        var catalog: String
    }
    var root: Member
    var members: [Member]
    var qualifiedName: String { "\(root.schema).\(root.name)" }

    /// The fingerprint of condition 1 and 3 (nil when a member's files are not in the manifest).
    func fingerprint(_ files: ManifestFiles, context: String) -> String? {
        var lines = [context]
        for member in members.sorted(by: { $0.oid < $1.oid }) {
            guard let entries = files.relationFiles[member.path], !entries.isEmpty else { return nil }
            lines.append("\(member.kind) \(member.oid) \(member.schema).\(member.name) \(member.path) \(member.catalog)")
            lines += entries.sorted()
        }
        return SHA256Digest.hex(lines.joined(separator: "\n"))
    }

    /// Condition 2: whether a replay record names one of the members' files.
    func touched(by scan: ReplayScan) -> Bool {
        members.contains { ReplayScan.key(forPath: $0.path).map(scan.touched.contains) ?? true }
    }

    /// `pg_amcheck --exclude-relation` patterns (database.schema.relation, each part quoted so
    /// that `*`, `?` and `.` are literal) for every member.
    func exclusionPatterns(database: String) -> [String] {
        func quoted(_ part: String) -> String { "\"" + part.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        return members.map { "--exclude-relation=\(quoted(database)).\(quoted($0.schema)).\(quoted($0.name))" }
    }
}
