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

    /// Where a kept copy lives when neither `--scratch` nor `backup.scratch_dir` says: a directory
    /// only root (or nfldb's user) writes, not a world-writable one such as /var/tmp, where another
    /// user could plant a directory or a lock file under the predictable name.
    public static func defaultDirectory(stanza: String) -> String { "/var/lib/nfldb/nfldb-verify-\(stanza)" }

    /// Written into every scratch directory verify creates. `kept` is false for a fresh copy (removed
    /// after the run; `owner` is the run, so a later one can tell a leftover of a killed run from a
    /// copy in use), nil or true for a kept one (the flock on `<scratch>.lock` tells it is in use).
    struct Marker: Codable, Equatable {
        var stanza: String
        var systemID: UInt64?
        var note = "created by `nfldb backup verify --reuse-scratch`; the next run restores into data/ with --delta"
        var kept: Bool?
        var owner: ScratchLeftovers.Owner?
    }

    static func markerPath(_ scratch: String) -> String { (scratch as NSString).appendingPathComponent(markerName) }

    /// Writes the marker (once the directory belongs to verify).
    static func mark(_ scratch: String, stanza: String, systemID: UInt64?, kept: Bool = true) throws {
        var marker = Marker(stanza: stanza, systemID: systemID, kept: kept)
        if !kept {
            marker.note = "created by `nfldb backup verify` (pid \(getpid())) and removed by it; if that run is gone, the next verify removes it"
            marker.owner = .current
        }
        let data = try JSONEncoder().encode(marker)
        try data.write(to: URL(fileURLWithPath: markerPath(scratch)), options: .atomic)
    }

    /// Whether an existing `scratch` may be reused: `.success(true)` when its `data/` holds a previous
    /// copy (restore with `--delta`), `.success(false)` when it is empty, `.failure(message)` otherwise.
    /// The directory must be a real directory (not a symlink) owned by this user or `osUser` and
    /// closed to others (mode 0700); the marker must be a regular file this user wrote; `data` and
    /// `run` must not be symlinks. Anything else may have been planted, and `--delta` rewrites what
    /// it finds.
    static func check(_ scratch: String, stanza: String, systemID: UInt64?, osUser: String? = nil, notes: ((String) -> Void)? = nil) -> Result<Bool, ReuseRefusal> {
        var owners: Set<uid_t> = [geteuid()]
        if let osUser, let account = getpwnam(osUser) { owners.insert(account.pointee.pw_uid) }
        var info = stat()
        guard lstat(scratch, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            return .failure(ReuseRefusal("scratch path \(scratch) is not a directory (a symlink?); refusing to reuse it: remove it or choose another --scratch"))
        }
        guard owners.contains(info.st_uid), info.st_mode & 0o077 == 0 else {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) is owned by uid \(info.st_uid) with mode \(String(info.st_mode & 0o777, radix: 8)); a reused copy "
                + "must belong to this user or the cluster's OS user and be closed to others (0700): remove it or choose another --scratch"))
        }
        let marker = markerPath(scratch)
        guard lstat(marker, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(),
              let data = FileManager.default.contents(atPath: marker),
              let decoded = try? JSONDecoder().decode(Marker.self, from: data) else {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) exists but has no \(markerName) marker of this user, so it was not made by `backup verify --reuse-scratch`; "
                + "refusing to restore over it with --delta (remove it or choose another --scratch)"))
        }
        if decoded.kept == false {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) is a fresh copy of a verify run that is still running (pid \(decoded.owner.map { String($0.pid) } ?? "?")), "
                + "not a kept one; choose another --scratch"))
        }
        if decoded.stanza != stanza || (systemID != nil && decoded.systemID != nil && decoded.systemID != systemID) {
            return .failure(ReuseRefusal(
                "scratch directory \(scratch) holds a copy of stanza \(decoded.stanza) (system id \(decoded.systemID.map(String.init) ?? "?")), "
                + "not of stanza \(stanza) (system id \(systemID.map(String.init) ?? "?")); remove it or choose another --scratch"))
        }
        for name in ["data", "run", "tblspc"] {
            let path = (scratch as NSString).appendingPathComponent(name)
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR || !owners.contains(info.st_uid) {
                return .failure(ReuseRefusal(
                    "\(path) is not a directory of this user or the cluster's OS user (a symlink?); refusing to restore through it: remove \(scratch)"))
            }
        }
        let dataDirectory = (scratch as NSString).appendingPathComponent("data")
        // nfldb's own kept copy (its marker checked above): a postmaster.pid with no postgres working
        // in this directory is stale (a crash or reboot while the copy ran; its pid reused since).
        // Left, it failed every nightly --reuse-scratch run as "a server is running on it".
        let pidFile = (dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        if FileManager.default.fileExists(atPath: pidFile), ScratchLeftovers.runningServer(dataDirectory: dataDirectory) == nil {
            let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init) ?? "?"
            try? FileManager.default.removeItem(atPath: pidFile)
            notes?("removed a stale postmaster.pid (pid \(pid), no postgres working in \(dataDirectory): left by a crash or reboot while "
                   + "the kept copy ran) before restoring into it")
        }
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
        return FileLock.acquire(path).mapError { failure in
            switch failure {
            case .cannotOpen(_, let reason):
                return ReuseRefusal("cannot open the lock file \(path): \(reason) "
                                    + "(a symlink, or a directory this user cannot write); remove it or choose another --scratch")
            case .notOurs(_, let uid):
                return ReuseRefusal("the lock file \(path) is not a regular file of this user (uid \(uid)); remove it or choose another --scratch")
            case .held(_, let holder):
                return ReuseRefusal(
                    "another `backup verify --reuse-scratch` (pid \(holder)) is using \(scratch) (lock \(path)); "
                    + "wait for it to finish, or give this run another --scratch")
            }
        }
    }

    struct ReuseRefusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
