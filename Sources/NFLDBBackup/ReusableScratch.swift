import Foundation
import NFLDBCore

/// A scratch directory `backup verify --reuse-scratch` keeps between runs, so the next restore is a
/// `--delta` one (only files whose checksums differ from the backup are rewritten).
///
/// It is reused only if it carries the marker a previous reuse run wrote for the same stanza and
/// cluster (system identifier), and no server runs on it: `--delta` rewrites a directory, so it must
/// never be pointed at anything else (a live data directory, say).
public enum ReusableScratch {
    public static let markerName = ".nfldb-verify-scratch"

    struct Marker: Codable, Equatable {
        var stanza: String
        var systemID: UInt64?
        var note = "created by `nfldb backup verify --reuse-scratch`; the next run restores into data/ with --delta"
    }

    static func markerPath(_ scratch: String) -> String { (scratch as NSString).appendingPathComponent(markerName) }

    /// Writes the marker (once the directory belongs to verify).
    static func mark(_ scratch: String, stanza: String, systemID: UInt64?) throws {
        let data = try JSONEncoder().encode(Marker(stanza: stanza, systemID: systemID))
        try data.write(to: URL(fileURLWithPath: markerPath(scratch)), options: .atomic)
    }

    /// Whether an existing `scratch` may be reused: `.success(true)` when its `data/` holds a previous
    /// copy (restore with `--delta`), `.success(false)` when it is empty, `.failure(message)` otherwise.
    static func check(_ scratch: String, stanza: String, systemID: UInt64?) -> Result<Bool, ReuseRefusal> {
        guard let data = FileManager.default.contents(atPath: markerPath(scratch)),
              let marker = try? JSONDecoder().decode(Marker.self, from: data) else {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) exists but has no \(markerName) marker, so it was not made by `backup verify --reuse-scratch`; "
                + "refusing to restore over it with --delta (remove it or choose another --scratch)"))
        }
        if marker.stanza != stanza || (systemID != nil && marker.systemID != nil && marker.systemID != systemID) {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) holds a copy of stanza \(marker.stanza) (system id \(marker.systemID.map(String.init) ?? "?")), "
                + "not of stanza \(stanza) (system id \(systemID.map(String.init) ?? "?")); remove it or choose another --scratch"))
        }
        let dataDirectory = (scratch as NSString).appendingPathComponent("data")
        do {
            try RestoreTarget.check(dataDirectory, delta: true)
        } catch {
            return .failure(ReuseRefusal((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)"))
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? []
        return .success(!entries.isEmpty)
    }

    /// Takes an exclusive `flock` on `<scratch>.lock` (beside the directory) without waiting, so two
    /// verify runs (an overlapping cron job, an operator by hand) never restore into one kept copy
    /// at once. Returns the descriptor to close when done (the kernel also drops the lock if the
    /// process dies), or the refusal naming the holder's pid.
    static func lock(_ scratch: String) -> Result<Int32, ReuseRefusal> {
        let path = scratch + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            return .failure(ReuseRefusal("cannot open the lock file \(path): \(String(cString: strerror(errno))); check the permissions of \((scratch as NSString).deletingLastPathComponent)"))
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            let holder = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            return .failure(ReuseRefusal(
                "another `backup verify --reuse-scratch` (pid \(holder)) is using \(scratch) (lock \(path)); "
                + "wait for it to finish, or give this run another --scratch"))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return .success(fd)
    }

    struct ReuseRefusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
