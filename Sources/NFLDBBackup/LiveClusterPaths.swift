import Foundation
import NFLDBCore
import NFLDBPgBackRest

/// The data directories and tablespace directories of the PostgreSQL servers running on this host,
/// so a restore (or verify's scratch copy) never writes into one of them. A postmaster and its
/// children run with the data directory as their working directory (`/proc/<pid>/cwd`); its
/// tablespaces are the `pg_tblspc/<oid>` symlinks there.
public struct LiveClusterPaths: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Resolved path.
        public let path: String
        /// "data directory of the server with pid N" / "tablespace <oid> of …".
        public let what: String
        public init(path: String, what: String) {
            self.path = path
            self.what = what
        }
    }
    public let entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Every running server found in `/proc` (processes named `postgres` or `postmaster` whose
    /// working directory holds `PG_VERSION`), plus `extra` (the primary's own paths as it reports them).
    public static func scan(extra: [Entry] = []) -> LiveClusterPaths {
        var seen = Set<String>()
        var entries: [Entry] = []
        func add(_ path: String, _ what: String) {
            let resolved = resolve(path)
            guard !resolved.isEmpty, seen.insert(resolved).inserted else { return }
            entries.append(Entry(path: resolved, what: what))
        }
        for entry in extra { add(entry.path, entry.what) }
        let fm = FileManager.default
        for pidText in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(pidText) != nil,
                  let comm = try? String(contentsOfFile: "/proc/\(pidText)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
                  comm == "postgres" || comm == "postmaster",
                  let cwd = try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pidText)/cwd"),
                  !seen.contains(resolve(cwd)),
                  fm.fileExists(atPath: (cwd as NSString).appendingPathComponent("PG_VERSION"))
            else { continue }
            add(cwd, "the data directory of the running PostgreSQL server (pid \(pidText))")
            let links = (cwd as NSString).appendingPathComponent("pg_tblspc")
            for oid in (try? fm.contentsOfDirectory(atPath: links)) ?? [] {
                if let target = try? fm.destinationOfSymbolicLink(atPath: (links as NSString).appendingPathComponent(oid)) {
                    add(target, "tablespace \(oid) of the running PostgreSQL server on \(cwd) (pid \(pidText))")
                }
            }
        }
        return LiveClusterPaths(entries: entries)
    }

    /// `path` with symlinks in its existing part resolved (the rest appended), standardized.
    public static func resolve(_ path: String) -> String {
        var existing = (path as NSString).standardizingPath
        var rest: [String] = []
        while !FileManager.default.fileExists(atPath: existing), existing != "/", !existing.isEmpty {
            rest.insert((existing as NSString).lastPathComponent, at: 0)
            existing = (existing as NSString).deletingLastPathComponent
        }
        var resolved = existing
        if let real = realpath(existing, nil) {
            resolved = String(cString: real)
            free(real)
        }
        for part in rest { resolved = (resolved as NSString).appendingPathComponent(part) }
        return resolved
    }

    /// Whether `a` and `b` overlap: equal, or one inside the other.
    static func overlap(_ a: String, _ b: String) -> Bool {
        a == b || a.hasPrefix(b == "/" ? "/" : b + "/") || b.hasPrefix(a == "/" ? "/" : a + "/")
    }

    /// The first live path `path` overlaps (is, lies inside, or — with `containing` — contains), if any.
    public func conflict(_ path: String, containing: Bool = true) -> Entry? {
        let resolved = Self.resolve(path)
        return entries.first { containing ? Self.overlap(resolved, $0.path) : (resolved == $0.path || resolved.hasPrefix($0.path + "/")) }
    }

    /// Throws a usage error when `path` (what it is for: "--to", "--scratch", …) overlaps a live
    /// data directory or tablespace. `containing: false` accepts a path that merely contains one
    /// (verify's kept copy, left running by a killed run, lies inside its own scratch dir and is
    /// stopped by the next run).
    public func refuse(_ path: String, as role: String, containing: Bool = true, hint: String) throws {
        guard let hit = conflict(path, containing: containing) else { return }
        let resolved = Self.resolve(path)
        let relation = resolved == hit.path ? "is" : (resolved.hasPrefix(hit.path + "/") ? "lies inside" : "contains")
        throw BackupError("refusing \(role) \(path): it \(relation) \(hit.path), \(hit.what); writing there would damage a live cluster"
                          + (resolved != path ? " (\(path) resolves to \(resolved))" : ""),
                          hint: hint, exitStatus: .usage)
    }
}
