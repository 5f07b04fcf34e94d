import Foundation

/// What `pgbackrest verify --output=text --verbose --log-level-console=detail` printed (2.45 has
/// no JSON output and exits 0 even on `status: error`, so the text is the result).
public struct VerifyOutput: Sendable, Equatable {
    public struct WALRange: Sendable, Equatable {
        public var archiveID: String
        public var start: String
        public var stop: String
    }
    /// The stanza-level `status:` (ok / error), if printed.
    public var status: String?
    /// Per-backup statuses (`valid`, `invalid`, `manifest missing`, `in-progress`) by label.
    public var backups: [String: String]
    /// Continuous WAL ranges (detail-level log lines).
    public var walRanges: [WALRange]
    /// Lines mentioning errors (checksum mismatch, missing file, invalid).
    public var problems: [String]

    public init(status: String?, backups: [String: String], walRanges: [WALRange], problems: [String]) {
        self.status = status
        self.backups = backups
        self.walRanges = walRanges
        self.problems = problems
    }

    /// A backup being taken right now (`in-progress`) is not judged: a `backup run` that overlaps
    /// the nightly verify is not a damaged repository.
    public var ok: Bool {
        status?.lowercased() != "error" && problems.isEmpty && notValid.isEmpty
    }

    /// Backups judged anything but valid (label → status), leaving out those still being taken.
    public var notValid: [String: String] { backups.filter { $0.value != "valid" && $0.value != "in-progress" } }

    /// Labels of backups that were still being taken.
    public var inProgress: [String] { backups.filter { $0.value == "in-progress" }.map(\.key).sorted() }

    public static func parse(_ text: String) -> VerifyOutput {
        var output = VerifyOutput(status: nil, backups: [:], walRanges: [], problems: [])
        var currentBackup: String?
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if let r = line.range(of: "archiveId: "), line.contains("wal start: ") {
                let rest = line[r.upperBound...]
                let parts = rest.components(separatedBy: ", ")
                var id = "", start = "", stop = ""
                for (i, part) in parts.enumerated() {
                    if i == 0 { id = part.trimmingCharacters(in: .whitespaces) }
                    if part.hasPrefix("wal start: ") { start = String(part.dropFirst("wal start: ".count)).trimmingCharacters(in: .whitespaces) }
                    if part.hasPrefix("wal stop: ") { stop = String(part.dropFirst("wal stop: ".count)).trimmingCharacters(in: .whitespaces) }
                }
                output.walRanges.append(WALRange(archiveID: id, start: start, stop: stop))
                continue
            }
            if line.hasPrefix("backup: ") || (line.contains(" backup: ") && line.contains("status:")),
               let marker = line.range(of: "backup: ") {
                let body = line[marker.upperBound...]
                let label = body.split(separator: ",").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
                currentBackup = label
                if let s = body.range(of: "status: ") {
                    let value = body[s.upperBound...].split(separator: ",", maxSplits: 1).first.map(String.init) ?? ""
                    output.backups[label] = value.trimmingCharacters(in: .whitespaces)
                }
                continue
            }
            if line.hasPrefix("status: ") {
                let value = String(line.dropFirst("status: ".count))
                if let currentBackup, output.backups[currentBackup] == nil {
                    output.backups[currentBackup] = value
                } else {
                    output.status = value
                }
                continue
            }
            let lower = line.lowercased()
            if line.contains("ERROR:") || (line.contains("WARN:") && (lower.contains("invalid") || lower.contains("missing") || lower.contains("checksum"))) {
                output.problems.append(line)
            }
        }
        return output
    }

    /// Whether one continuous range of the given archive id covers `from` through `through`
    /// (string comparison: 24-digit hex names are fixed width).
    public func continuous(archiveID: String?, from: String, through: String) -> Bool {
        walRanges.contains { range in
            (archiveID == nil || range.archiveID == archiveID) && range.start <= from && through <= range.stop
        }
    }
}
