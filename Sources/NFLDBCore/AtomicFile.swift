import Foundation

/// Writes a file through a temporary file in the same directory and `rename(2)`, so a reader (a
/// Prometheus collector, the next cron run) never sees half a file, and a crash never leaves a
/// truncated one.
///
/// The temporary file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: a symlink or file planted at
/// its name (the first name tried is predictable) is never followed or reused; another name is
/// tried instead. The data is `fsync`ed before the rename and the directory after it.
public enum AtomicFile {
    /// `rename(2)` of the finished temporary file failed (the temporary file is removed).
    public struct RenameError: Error, LocalizedError {
        public let temporary: String
        public let path: String
        public let reason: String
        public var errorDescription: String? { "cannot rename \(temporary) to \(path): \(reason)" }
    }

    /// The first temporary name tried for `path`: `.<name>.<pid>.tmp` in the same directory.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
    }

    /// Creates the directory if needed, writes `data` to a new temporary file with `permissions`,
    /// `fsync`s it, renames it over `path` and `fsync`s the directory.
    public static func write(_ data: Data, to path: String, permissions: Int) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (fd, temporary) = try createTemporary(for: url, permissions: permissions)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            _ = fchmod(fd, mode_t(permissions))  // the umask may have narrowed it
            try handle.write(contentsOf: data)
            guard fsync(fd) == 0 else { throw failure("cannot fsync \(temporary)") }
            try handle.close()
        } catch {
            try? handle.close()
            unlink(temporary)
            throw error
        }
        guard rename(temporary, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw RenameError(temporary: temporary, path: path, reason: reason)
        }
        try syncDirectory(directory.path)
    }

    /// Opens a fresh temporary file: the predictable name first, then random ones. `O_EXCL` refuses
    /// anything already there (a planted symlink, a hard link to another file, a stale temporary);
    /// `O_NOFOLLOW` also refuses a symlink. Existing entries are left alone.
    static func createTemporary(for url: URL, permissions: Int) throws -> (Int32, String) {
        let directory = url.deletingLastPathComponent()
        var candidate = temporaryPath(for: url.path)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<8 {
            let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(permissions))
            if fd >= 0 { return (fd, candidate) }
            guard errno == EEXIST || errno == ELOOP else { throw failure("cannot create \(candidate)") }
            let suffix = String(generator.next(), radix: 36)
            candidate = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(suffix).tmp").path
        }
        throw CocoaError(.fileWriteUnknown, userInfo: [
            NSLocalizedDescriptionKey: "cannot create a temporary file next to \(url.path): every name tried already exists",
        ])
    }

    /// `fsync` of the directory, so the rename itself survives a crash. File systems that cannot
    /// sync a directory (EINVAL) are accepted.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open directory \(path) to fsync it") }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL { throw failure("cannot fsync directory \(path)") }
    }

    private static func failure(_ what: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(errno)))"])
    }
}
