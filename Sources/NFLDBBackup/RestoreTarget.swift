import Foundation
import NFLDBCore

/// Safety checks for a restore target directory.
public enum RestoreTarget {
    /// Refuses a running cluster's data dir, and a non-empty dir unless `delta`.
    public static func check(_ path: String, delta: Bool) throws {
        let fm = FileManager.default
        let pidFile = (path as NSString).appendingPathComponent("postmaster.pid")
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
           let first = text.split(separator: "\n").first, let pid = pid_t(first), kill(pid, 0) == 0 || errno == EPERM {
            throw BackupError(
                "refusing to restore into \(path): a PostgreSQL server (pid \(pid)) is running on it",
                hint: "Restore into another directory, or stop that cluster first if you really mean to replace it.", exitStatus: .usage)
        }
        let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
        if !entries.isEmpty && !delta {
            throw BackupError(
                "refusing to restore into \(path): the directory is not empty (\(entries.count) entries)",
                hint: "Choose an empty directory, or pass --delta to let pgBackRest reuse the files that already match.", exitStatus: .usage)
        }
    }
}
