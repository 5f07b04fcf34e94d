import Foundation
import NFLDBCore

extension ConfigKey {
    public static let etlSourceRoots = ConfigKey(
        "etl.source_roots", .stringList,
        help: "directories whose files a queued etl.load task may read (symlinks resolved); http(s) URLs are always allowed; "
            + "unset: the directory of etl.games.source when that is a path, else no local file")
}

/// Which local files a queued `etl.load` may read. Whoever can write to Redis can submit tasks; without
/// this, a payload naming `/etc/shadow` would have the worker read it and copy its lines into
/// `nfl.etl_rejects`, the run's error and the dead-letter queue. An operator at a shell (`nfldb etl
/// load`) reads what they can read already, so the command does not apply it.
public enum ETLSourcePolicy {
    /// The roots from `etl.source_roots`, else the directory of a path-valued `etl.games.source`.
    public static func roots(_ configuration: Configuration, gamesSource: String) -> [String] {
        let configured = configuration.list(.etlSourceRoots).filter { !$0.isEmpty }
        if !configured.isEmpty { return configured }
        return ETLRunner.isURL(gamesSource) ? [] : [(gamesSource as NSString).deletingLastPathComponent]
    }

    /// Throws a usage-class error unless `source` is an http(s) URL or a file under one of `roots`
    /// after both are resolved (`realpath`; `..` and symlinks cannot leave a root).
    public static func check(_ source: String, roots: [String]) throws {
        if ETLRunner.isURL(source) { return }
        let resolved = resolve(source)
        let allowed = roots.compactMap { root -> String? in
            guard !root.isEmpty, let real = realpath(root, nil) else { return nil }
            defer { free(real) }
            return String(cString: real)
        }
        if allowed.contains(where: { resolved == $0 || resolved.hasPrefix($0 == "/" ? "/" : $0 + "/") }) { return }
        throw OperatorError(
            "source \(HTTPSource.redactedText(source)) is outside etl.source_roots (\(roots.isEmpty ? "none set" : roots.joined(separator: ", ")))",
            hint: "Put the file under one of those directories, give an http(s) URL, or add its directory to etl.source_roots "
                + "(NFLDB_ETL_SOURCE_ROOTS) in the worker's configuration.",
            exitStatus: .usage)
    }

    /// `realpath` of the file, or of its directory plus the name when the file does not exist (yet).
    static func resolve(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        guard name != "..", name != ".", let real = realpath(directory.isEmpty ? "." : directory, nil) else { return "/nonexistent/" + path }
        defer { free(real) }
        return (String(cString: real) as NSString).appendingPathComponent(name)
    }
}
