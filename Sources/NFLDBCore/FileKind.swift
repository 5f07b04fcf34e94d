import Foundation

/// The kind of a file that is not a regular one, named for messages (a secret file, a key file, a
/// migration that turns out to be a directory or a FIFO).
public enum FileKind {
    /// `a directory`, `a FIFO` or `a device or socket` for `st_mode`; nil for a regular file.
    public static func nonRegular(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        default: "a device or socket"
        }
    }
}
