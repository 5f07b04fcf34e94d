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
    /// Repository files a verify process found bad, as `<reason> <backup label or archive id>/<path>`
    /// (its `P01 INFO: invalid checksum '20261207-013109F/pg_data/base/16384/2838.gz'` lines), so the
    /// evidence names what is damaged and not only which backups are.
    public var damagedFiles: [String] = []

    public init(status: String?, backups: [String: String], walRanges: [WALRange], problems: [String], damagedFiles: [String] = []) {
        self.status = status
        self.backups = backups
        self.walRanges = walRanges
        self.problems = problems
        self.damagedFiles = damagedFiles
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

    /// `… P01   INFO: invalid checksum '<label>/<path>'` (also `missing`, `invalid size`, …) →
    /// `invalid checksum <label>/<path>`; nil for any other line.
    static func damagedFile(_ line: String) -> String? {
        guard let info = line.range(of: " INFO: "), line.hasSuffix("'") else { return nil }
        let message = line[info.upperBound...]
        guard let open = message.firstIndex(of: "'"), open < message.index(before: message.endIndex) else { return nil }
        let reason = message[..<open].trimmingCharacters(in: .whitespaces)
        let lower = reason.lowercased()
        guard !reason.isEmpty, lower.contains("invalid") || lower.contains("missing") else { return nil }
        let path = message[message.index(after: open)..<message.index(before: message.endIndex)]
        return "\(reason) \(path)"
    }

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
            if let file = damagedFile(line) {
                output.damagedFiles.append(file)
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
