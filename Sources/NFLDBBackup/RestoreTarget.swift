import Foundation
import NFLDBCore
import NFLDBPgBackRest
import NFLDBSandbox

/// Safety checks for a restore target directory.
public enum RestoreTarget {
    /// Refuses a running cluster's data dir, and a non-empty dir unless `delta`.
    public static func check(_ path: String, delta: Bool) throws {
        let fm = FileManager.default
        if let pid = LocalCluster.runningPostmaster(dataDirectory: path) {
            // The pid is alive, but is it a postgres working in this directory? A postmaster.pid left
            // by a crash or reboot names a pid that now belongs to anything (init, the primary):
            // "stop that cluster" would point at the wrong process (an attack probe).
            guard ScratchLeftovers.runningServer(dataDirectory: path) != nil else {
                throw BackupError(
                    "refusing to restore into \(path): it holds a postmaster.pid naming pid \(pid), which is not a PostgreSQL server on this directory "
                        + "(a stale file left by a crash or reboot)",
                    hint: "Check that no server runs on \(path), then remove \(path)/postmaster.pid and run again.", exitStatus: .usage)
            }
            throw BackupError(
                "refusing to restore into \(path): a PostgreSQL server (pid \(pid)) is running on it",
                hint: "Restore into another directory, or stop that cluster first if you really mean to replace it.", exitStatus: .usage)
        }
        let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
        if !entries.isEmpty && !delta {
            // --delta only takes an earlier restore's data directory: suggesting it for any other
            // directory leads to the next refusal.
            let restoredBefore = entries.contains("PG_VERSION") || entries.contains("backup.manifest")
            throw BackupError(
                "refusing to restore into \(path): the directory is not empty (\(entries.count) entries)",
                hint: restoredBefore ? "Choose an empty directory, or pass --delta to let pgBackRest reuse the files that already match."
                    : "Choose an empty directory (this one holds no PG_VERSION or backup.manifest, so it is no earlier restore that --delta could reuse).",
                exitStatus: .usage)
        }
    }
}
