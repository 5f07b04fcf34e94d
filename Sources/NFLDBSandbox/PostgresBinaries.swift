import Foundation
import NFLDBCore

/// Where the server-side PostgreSQL programs live (`initdb`, `pg_ctl`, `postgres`, `pg_dump`…).
public struct PostgresBinaries: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func path(_ program: String) -> String { (directory as NSString).appendingPathComponent(program) }

    /// `postgres.bin_dir` when configured; else the directory of `pg_ctl` on PATH; else the newest
    /// `/usr/lib/postgresql/<major>/bin` (Debian's layout, which keeps server programs off PATH).
    public static func locate(configured: String? = nil) throws -> PostgresBinaries {
        let fm = FileManager.default
        if let configured {
            guard fm.isExecutableFile(atPath: (configured as NSString).appendingPathComponent("pg_ctl")) else {
                throw OperatorError(
                    "postgres.bin_dir \(configured) has no pg_ctl", hint: "Point postgres.bin_dir (or NFLDB_POSTGRES_BIN_DIR) at PostgreSQL's bin directory.",
                    exitStatus: .usage)
            }
            return PostgresBinaries(directory: configured)
        }
        if let onPath = try? ProcessRunner.resolveExecutable("pg_ctl") {
            let resolved = (onPath as NSString).resolvingSymlinksInPath
            let directory = (resolved as NSString).deletingLastPathComponent
            if fm.isExecutableFile(atPath: (directory as NSString).appendingPathComponent("initdb")) {
                return PostgresBinaries(directory: directory)
            }
        }
        let root = "/usr/lib/postgresql"
        let majors = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        for major in majors {
            let directory = "\(root)/\(major)/bin"
            if fm.isExecutableFile(atPath: "\(directory)/pg_ctl") { return PostgresBinaries(directory: directory) }
        }
        throw OperatorError(
            "PostgreSQL server programs (initdb, pg_ctl) were not found",
            hint: "Install them with `apt-get install postgresql-15` (ci/setup does this), or set postgres.bin_dir.")
    }
}
