import Foundation

/// An exclusive `flock` on a lock file, for work two nfldb processes could do at once without a
/// database to hold an advisory lock (a kept verify copy, the alert state file while the database
/// is down). The holder's pid is written into the file so a refusal can name it; the kernel drops
/// the lock when the descriptor is closed or the process dies, so a killed run never leaves it held.
public enum FileLock {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The file cannot be opened or created (`reason` is strerror): a symlink, or a directory
        /// this user cannot write.
        case cannotOpen(path: String, reason: String)
        /// The path is not a regular file owned by this user.
        case notOurs(path: String, uid: UInt32)
        /// Another process holds the lock (its pid as written in the file, or "?").
        case held(path: String, holder: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let reason): return "cannot open the lock file \(path): \(reason)"
            case .notOurs(let path, let uid): return "the lock file \(path) is not a regular file of this user with one link (uid \(uid)); remove it"
            case .held(let path, let holder): return "pid \(holder) holds the lock \(path)"
            }
        }
    }

    /// Takes the lock on `path` (created 0600 if missing, never through a symlink), polling every
    /// 50 ms for up to `wait` while another process holds it. Returns the descriptor to close when
    /// done.
    public static func acquire(_ path: String, waitingUpTo wait: Duration = .zero) -> Result<Int32, Failure> {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return .failure(.cannotOpen(path: path, reason: String(cString: strerror(errno)))) }
        var info = stat()
        // A second hard link would let the pid write land in another file.
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(), info.st_nlink == 1 else {
            close(fd)
            return .failure(.notOurs(path: path, uid: info.st_uid))
        }
        let deadline = ContinuousClock.now + wait
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard ContinuousClock.now < deadline else {
                var buffer = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buffer, buffer.count, 0)
                let holder = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
                close(fd)
                return .failure(.held(path: path, holder: holder.isEmpty ? "?" : holder))
            }
            usleep(50_000)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return .success(fd)
    }
}
