import Foundation

/// Pre-flight for `backup verify`: is there room in the scratch directory's filesystem for the
/// restore? A restore that runs out of space fails only after copying for a while, and leaves
/// the operator a pgBackRest write error instead of the cause.
public enum ScratchSpace {
    /// Bytes a restore of a backup whose database is `restoredSize` bytes needs: the size itself,
    /// plus 10 % and 64 MiB for what recovery adds on top of the restored files: WAL fetched from
    /// the archive and replayed (pg_wal), the timeline history and end-of-recovery checkpoint
    /// written at promotion, the server log, and pg_amcheck's extension. With no size in the
    /// backup's info, only the margin.
    public static func needed(restoredSize: Int64?) -> Int64 {
        let size = max(restoredSize ?? 0, 0)
        return size + size / 10 + 64 * 1024 * 1024
    }

    /// Bytes available to an unprivileged user (the cluster's OS user) on the filesystem holding
    /// `path`, or nil when `statvfs` fails.
    public static func available(_ path: String) -> Int64? {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        return Int64(fs.f_bavail) * Int64(fs.f_frsize)
    }

    /// nil when the filesystem holding `directory` has at least `bytesNeeded` free; otherwise what
    /// failed, where, how much is needed, and what to do.
    public static func check(_ directory: String, needs bytesNeeded: Int64) -> String? {
        let advice = "point backup.scratch_dir (or --scratch) at a filesystem with at least \(human(bytesNeeded)) free"
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else {
            return "cannot read the free space of \(directory)'s filesystem (statvfs: \(String(cString: strerror(errno)))); \(advice)"
        }
        let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        guard free < bytesNeeded else { return nil }
        let total = Int64(fs.f_blocks) * Int64(fs.f_frsize)
        return "not enough free space for the restore in \(directory): its filesystem has \(human(free)) free (of \(human(total))), "
            + "the restore needs \(human(bytesNeeded)) (the backup's restored size plus 10 % and 64 MiB for WAL replay and promotion); \(advice)"
    }

    /// Below this many free bytes (or with no free inode) a filesystem counts as full: a write
    /// that came up short leaves less than one write buffer behind.
    public static let fullThreshold: Int64 = 1024 * 1024

    /// "the filesystem holding DIR has N free" when the filesystem holding the file `path` (its
    /// nearest existing parent directory) is full for an unprivileged user; nil when it is not, or
    /// cannot be read.
    public static func fullFilesystem(holding path: String) -> String? {
        var directory = (path as NSString).deletingLastPathComponent
        var fs = statvfs()
        while statvfs(directory, &fs) != 0 {
            guard directory != "/", !directory.isEmpty else { return nil }
            directory = (directory as NSString).deletingLastPathComponent
        }
        let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        let noInodes = fs.f_files > 0 && fs.f_favail == 0
        guard free < fullThreshold || noInodes else { return nil }
        return "the filesystem holding \(directory) has \(human(free)) free" + (noInodes ? " and no free inode" : "")
    }

    /// The passing check's evidence: free space against what the restore needs (`held`: bytes a
    /// kept copy already occupies, which a `--delta` restore overwrites).
    public static func summary(_ directory: String, needs bytesNeeded: Int64, restoredSize: Int64?, held: Int64 = 0) -> String {
        "\(directory): \(available(directory).map(human) ?? "unknown") free, the restore needs \(human(bytesNeeded)) "
            + "(restored size \(restoredSize.map(human) ?? "unknown") plus 10 % and 64 MiB"
            + (held > 0 ? ", less \(human(held)) the kept copy already holds)" : ")")
    }

    /// Disk space allocated to the files under `directory` (what a `--delta` restore can overwrite).
    public static func allocatedBytes(under directory: String) -> Int64 {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return 0 }
        var total: Int64 = 0
        var info = stat()
        while let relative = walker.nextObject() as? String {
            if lstat((directory as NSString).appendingPathComponent(relative), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                total += Int64(info.st_blocks) * 512
            }
        }
        return total
    }

    /// `7.9 MiB`, `1.2 GiB`, `512 B`.
    public static func human(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}
