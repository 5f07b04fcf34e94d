import Foundation
import NFLDBCore

/// Copies an earlier verify left behind when it was killed without a chance to tear down (SIGKILL,
/// the OOM killer, a power cut in the middle): a running postmaster on 127.0.0.1 and a scratch
/// directory. Every run looks for them first and stops (and, for a fresh copy, removes) them.
///
/// Only what nfldb made is touched: a directory carrying verify's marker, owned by this user or the
/// cluster's OS user with mode 0700, whose owning run is gone (its pid no longer runs with the same
/// start time). A server is stopped only when `postmaster.pid` names a live `postgres` process
/// working on that very data directory.
enum ScratchLeftovers {
    /// The run that owns a fresh scratch directory: pid and kernel start time (so a reused pid is not
    /// mistaken for the owner).
    struct Owner: Codable, Equatable {
        var pid: Int32
        var startTime: UInt64?

        static var current: Owner { Owner(pid: getpid(), startTime: ScratchLeftovers.startTime(of: getpid())) }

        /// Whether that process still runs (same pid, same start time).
        var isAlive: Bool {
            guard kill(pid, 0) == 0 || errno == EPERM else { return false }
            guard let startTime else { return true }
            return ScratchLeftovers.startTime(of: pid) == startTime
        }
    }

    /// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// The pid of a live `postgres` working on `dataDirectory` (its `postmaster.pid`, checked
    /// against /proc: the process is named postgres and its cwd or command line is that directory).
    static func runningServer(dataDirectory: String) -> pid_t? {
        // A copy's data directory is a real directory. Planted as a symlink to another cluster's
        // data directory (the scratch parent may be world-writable /var/tmp), it would make a root
        // run stop that server: never followed.
        var info = stat()
        guard lstat(dataDirectory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
        let pidFile = (dataDirectory as NSString).appendingPathComponent("postmaster.pid")
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = pid_t(first), pid > 0,
              kill(pid, 0) == 0 || errno == EPERM else { return nil }
        let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard comm == "postgres", processUID(pid) == info.st_uid else { return nil }
        let real = (dataDirectory as NSString).resolvingSymlinksInPath
        if let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), cwd == real || cwd == dataDirectory {
            return pid
        }
        let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map {
            String(decoding: $0.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        } ?? ""
        return cmdline.contains(" \(dataDirectory)") || cmdline.contains(" \(real)") ? pid : nil
    }

    /// The real uid of a process (`Uid:` in /proc/PID/status).
    static func processUID(_ pid: pid_t) -> uid_t? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
    }

    /// Immediate shutdown (SIGQUIT to the postmaster, SIGKILL after 10 s). Returns whether it is gone.
    @discardableResult
    static func stopServer(_ pid: pid_t) -> Bool {
        kill(pid, SIGQUIT)
        let deadline = ContinuousClock.now + .seconds(10)
        while kill(pid, 0) == 0, startTime(of: pid) != nil, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if kill(pid, 0) == 0, startTime(of: pid) != nil {
            kill(pid, SIGKILL)
            Thread.sleep(forTimeInterval: 0.2)
        }
        return kill(pid, 0) != 0 || startTime(of: pid) == nil
    }

    /// Processes still writing into `scratch` (a `pgbackrest restore --pg1-path=<scratch>/data` whose
    /// parent was killed): their pids, from /proc/*/cmdline.
    static func processes(using scratch: String) -> [pid_t] {
        let needle = "--pg1-path=" + (scratch as NSString).appendingPathComponent("data")
        // Only processes of the directory's owner (the cluster's OS user) or of this user.
        var info = stat()
        let owners: Set<uid_t> = lstat(scratch, &info) == 0 ? [info.st_uid, geteuid()] : [geteuid()]
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init).filter { pid in
            guard pid != getpid(), processUID(pid).map(owners.contains) == true,
                  let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(needle)
        }
    }

    /// The directory's verify marker when the directory is nfldb's (real directory, owned by this
    /// user or `osUser`, mode 0700, marker a regular file of this user, root or `osUser`); nil
    /// otherwise. Root and the cluster's OS user both run verify (by hand and from the cron file),
    /// so each must clean up after the other's killed runs: a copy of production data left running
    /// because the next run was another user's stayed up for good.
    static func marker(of directory: String, osUser: String?) -> ReusableScratch.Marker? {
        var owners: Set<uid_t> = [geteuid()]
        if let osUser, let account = getpwnam(osUser) { owners.insert(account.pointee.pw_uid) }
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, owners.contains(info.st_uid), info.st_mode & 0o077 == 0 else {
            return nil
        }
        let path = ReusableScratch.markerPath(directory)
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, owners.contains(info.st_uid) || info.st_uid == 0,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(ReusableScratch.Marker.self, from: data)
    }

    /// Stops and removes every fresh copy an earlier, no longer running verify left at `scratch` or
    /// beside it (`nfldb-verify-*` in the same parent). A kept copy (``ReusableScratch``) there or at
    /// the stanza's default place that no run has locked gets a server a killed run left on it
    /// stopped, and stays for the next `--reuse-scratch` run (one in progress holds its lock and is
    /// left alone). Returns one line per copy handled, for the output and receipt.
    static func cleanLeftovers(scratch: String, stanza: String, osUser: String?) -> [String] {
        let parent = (scratch as NSString).deletingLastPathComponent
        let siblings = ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [])
            .filter { $0.hasPrefix("nfldb-verify-") }.map { (parent as NSString).appendingPathComponent($0) }
        var notes: [String] = []
        for directory in Set([scratch, ReusableScratch.defaultDirectory(stanza: stanza)] + siblings).sorted() {
            guard let marker = marker(of: directory, osUser: osUser) else { continue }
            if marker.kept != false {
                // Only when something runs on it: then its lock tells a live run's copy (held) from a
                // killed run's (free; taken only while stopping, so a --reuse-scratch run starting
                // meanwhile is refused only when there was a leftover to stop).
                let data = (directory as NSString).appendingPathComponent("data")
                guard runningServer(dataDirectory: data) != nil || !processes(using: directory).isEmpty,
                      FileManager.default.fileExists(atPath: directory + ".lock"),
                      case .success(let fd) = ReusableScratch.lock(directory) else { continue }
                defer { close(fd) }
                if let note = stopKeptServer(scratch: directory, reusing: false) { notes.append(note) }
                continue
            }
            guard let owner = marker.owner, !owner.isAlive else { continue }
            var what: [String] = []
            // The server first: its restore_command (`pgbackrest … --pg1-path=<data> archive-get`)
            // matches below, and once that is stopped the server may shut itself down.
            let server = runningServer(dataDirectory: (directory as NSString).appendingPathComponent("data"))
            for pid in processes(using: directory) {
                kill(pid, SIGTERM)
                what.append("stopped pgbackrest (pid \(pid))")
            }
            if let server {
                what.append(stopServer(server) ? "stopped its server (pid \(server))" : "could NOT stop its server (pid \(server))")
            }
            var removed = false
            for _ in 0..<10 {
                try? FileManager.default.removeItem(atPath: directory)
                removed = !FileManager.default.fileExists(atPath: directory)
                if removed { break }
                Thread.sleep(forTimeInterval: 0.2)
            }
            what.append(removed ? "removed the directory" : "could NOT remove the directory")
            notes.append("leftover of an earlier verify (pid \(owner.pid), no longer running) at \(directory): " + what.joined(separator: ", "))
        }
        return notes
    }

    /// A kept copy (locked by this run): stops a server an earlier, killed run left running on it,
    /// so the `--delta` restore can reuse the directory. Returns the note, or nil when none ran.
    static func stopKeptServer(scratch: String, reusing: Bool = true) -> String? {
        var what: [String] = []
        let server = runningServer(dataDirectory: (scratch as NSString).appendingPathComponent("data"))  // first: see cleanFresh
        for pid in processes(using: scratch) {
            kill(pid, SIGTERM)
            what.append("stopped pgbackrest (pid \(pid))")
        }
        if let server {
            what.append(stopServer(server) ? "stopped its server (pid \(server))" : "could NOT stop its server (pid \(server))")
        }
        guard !what.isEmpty else { return nil }
        return "leftover of an earlier verify on the kept copy \(scratch): " + what.joined(separator: ", ")
            + (reusing ? "; reusing the directory" : "; the directory stays for the next --reuse-scratch run")
    }
}
