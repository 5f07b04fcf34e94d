import Foundation

/// Writes a file through a temporary file in the same directory and `rename(2)`, so a reader (a
/// Prometheus collector, the next cron run) never sees half a file.
public enum AtomicFile {
    /// `rename(2)` of the finished temporary file failed (the temporary file is removed).
    public struct RenameError: Error, LocalizedError {
        public let temporary: String
        public let path: String
        public let reason: String
        public var errorDescription: String? { "cannot rename \(temporary) to \(path): \(reason)" }
    }

    /// Creates the directory if needed, writes `data` to `.<name>.<pid>.tmp` with `permissions`,
    /// then renames it over `path`.
    public static func write(_ data: Data, to path: String, permissions: Int) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        // Created with its final mode (not chmod-ed after writing): a 0600 file is never readable by others.
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(permissions))
        guard fd >= 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot create \(temporary.path): \(String(cString: strerror(errno)))"])
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            _ = fchmod(fd, mode_t(permissions))  // the umask may have narrowed it
            try handle.write(contentsOf: data)
            try handle.close()
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw RenameError(temporary: temporary.path, path: path, reason: reason)
        }
    }
}
