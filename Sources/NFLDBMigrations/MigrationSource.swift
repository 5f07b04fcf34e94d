import Foundation
import NFLDBCore

/// Reads `NNNN_snake_name.up.sql` / `.down.sql` pairs from a directory.
///
/// Every problem is collected before failing, so one run lists all offending files: names that do
/// not match, duplicate versions, missing halves, unreadable files, bad directives, SQL that cannot
/// be split into statements, and transactional files that control the transaction themselves
/// (`COMMIT`, `ROLLBACK`, `SAVEPOINT`…) — all before anything runs.
public struct MigrationDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    static let pattern = try! NSRegularExpression(pattern: #"^([0-9]+)_([a-z0-9][a-z0-9_]*)\.(up|down)\.sql$"#)

    /// - Parameter checkingTransactionControl: false for `migrate lint`, which reports those
    ///   statements as findings (with the other rules) instead of refusing the directory, and for the
    ///   commands that know the ledger: the `Migrator` refuses only the files it is about to run.
    public func load(checkingTransactionControl: Bool = true) throws -> [Migration] {
        let (migrations, problems) = try loadCollectingProblems(checkingTransactionControl: checkingTransactionControl)
        if !problems.isEmpty { throw MigrationError.sourceInvalid(problems) }
        return migrations
    }

    /// For `down`, which runs the down SQL stored in the ledger and needs no file: every pair that
    /// loads, and the problems of the rest as warnings (a missing `.down.sql`, a bad name…). Only a
    /// missing directory still fails.
    public func loadForRollback() throws -> (migrations: [Migration], warnings: [String]) {
        let (migrations, problems) = try loadCollectingProblems()
        return (migrations, problems.map { "ignored by down (it uses the down SQL stored when each migration was applied): \($0)" })
    }

    func loadCollectingProblems(checkingTransactionControl: Bool = true) throws -> (migrations: [Migration], problems: [String]) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MigrationError.configuration(
                "migrations directory \(path) does not exist",
                hint: "Create it (`nfldb migrate create NAME` writes the first pair) or set migrations.dir / NFLDB_MIGRATIONS_DIR.")
        }
        let names = try fm.contentsOfDirectory(atPath: path).sorted()
        var problems: [String] = []
        struct Half { var name: String; var file: String }
        var ups: [Int64: [Half]] = [:]
        var downs: [Int64: [Half]] = [:]
        for file in names where file.hasSuffix(".sql") {
            let range = NSRange(file.startIndex..., in: file)
            guard let match = Self.pattern.firstMatch(in: file, range: range),
                  let versionRange = Range(match.range(at: 1), in: file), let nameRange = Range(match.range(at: 2), in: file),
                  let kindRange = Range(match.range(at: 3), in: file), let version = Int64(file[versionRange])
            else {
                problems.append("\(join(file)): name does not match NNNN_snake_name.up.sql / NNNN_snake_name.down.sql")
                continue
            }
            let half = Half(name: String(file[nameRange]), file: file)
            if file[kindRange] == "up" { ups[version, default: []].append(half) } else { downs[version, default: []].append(half) }
        }
        var migrations: [Migration] = []
        for version in Set(ups.keys).union(downs.keys).sorted() {
            let up = ups[version] ?? []
            let down = downs[version] ?? []
            if up.count > 1 || down.count > 1 {
                problems.append("version \(version) is used by several files: \((up + down).map { join($0.file) }.joined(separator: ", "))")
                continue
            }
            guard let u = up.first else {
                problems.append("\(join(down[0].file)): missing its up half \(Migration.id(version: version, name: down[0].name)).up.sql")
                continue
            }
            guard let d = down.first else {
                problems.append("\(join(u.file)): missing its down half \(Migration.id(version: version, name: u.name)).down.sql")
                continue
            }
            if u.name != d.name {
                problems.append("version \(version): up and down names differ (\(u.file) vs \(d.file))")
                continue
            }
            guard let upSQL = read(u.file, &problems), let downSQL = read(d.file, &problems) else { continue }
            let (upDirectives, upProblems) = MigrationDirectives.parse(upSQL)
            let (downDirectives, downProblems) = MigrationDirectives.parse(downSQL)  // a rollback re-reads the directives from the stored SQL
            problems += upProblems.map { "\(join(u.file)):\($0.line): \($0.message)" }
            problems += downProblems.map { "\(join(d.file)):\($0.line): \($0.message)" }
            // Every file is split now, so a file that cannot be split (or a transactional one that
            // would COMMIT half of itself) stops the run before the first pending migration.
            for (file, sql, directives) in [(join(u.file), upSQL, upDirectives), (join(d.file), downSQL, downDirectives)] {
                problems += MigrationStatementRules.loadProblems(
                    sql, path: file, transactional: directives.transactional, checkingRules: checkingTransactionControl)
            }
            migrations.append(Migration(
                version: version, name: u.name, upPath: join(u.file), downPath: join(d.file), upSQL: upSQL, downSQL: downSQL,
                directives: upDirectives))
        }
        return (migrations, problems)
    }

    func join(_ file: String) -> String { (path as NSString).appendingPathComponent(file) }

    private func read(_ file: String, _ problems: inout [String]) -> String? {
        let path = join(file)
        // A symbolic link may point within the directory, not out of it: the SQL that runs must be
        // the SQL that is reviewed with the directory (a link to a file elsewhere shows up in a diff
        // as a path, not as SQL).
        if let outside = Self.linkOutside(path, directory: self.path) {
            problems.append("\(path): a symbolic link to \(outside), outside the migrations directory; copy the file into it (or set migrations.dir to the directory the file is in)")
            return nil
        }
        // The kind of file first (a FIFO must not be opened for reading: it would wait for a writer).
        var info = stat()
        if stat(path, &info) != 0 {
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path)
            problems.append(target.map { "\(path): a symbolic link to \($0), which does not exist" }
                ?? "\(path): cannot be read: \(String(cString: strerror(errno)))")
            return nil
        }
        if let kind = FileKind.nonRegular(info.st_mode) {
            problems.append((info.st_mode & S_IFMT) == S_IFDIR ? "\(path): a directory named like a migration file; rename or remove it"
                                                  : "\(path): not a regular file (\(kind)); migrations are regular files")
            return nil
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            problems.append("\(path): cannot be read (check its permissions)")
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            problems.append(Self.invalidUTF8(data, path: path))
            return nil
        }
        return text
    }

    /// Where `path` leads when it is a symbolic link whose target (all links resolved) is not inside
    /// `directory` (also resolved); nil for a regular entry, a link that stays inside, or a dangling
    /// link (reported by the read itself).
    static func linkOutside(_ path: String, directory: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK,
              let target = realpath(path, nil), let base = realpath(directory, nil) else { return nil }
        defer { free(target); free(base) }
        let resolved = String(cString: target), root = String(cString: base)
        return resolved.hasPrefix(root == "/" ? "/" : root + "/") ? nil : resolved
    }

    /// `path:LINE: not valid UTF-8 (byte 0xE9 at column C)`: where the first invalid sequence starts.
    static func invalidUTF8(_ data: Data, path: String) -> String {
        let bytes = [UInt8](data)
        var index = 0, line = 1, lineStart = 0
        while index < bytes.count {
            let byte = bytes[index]
            let length = byte < 0x80 ? 1 : byte >> 5 == 0b110 ? 2 : byte >> 4 == 0b1110 ? 3 : byte >> 3 == 0b11110 ? 4 : 0
            let end = index + length
            if length == 0 || end > bytes.count || String(bytes: bytes[index..<end], encoding: .utf8) == nil {
                return "\(path):\(line): not valid UTF-8 (byte 0x\(String(format: "%02X", byte)) at column \(index - lineStart + 1)); save the file as UTF-8"
            }
            if byte == 0x0A { line += 1; lineStart = end }
            index = end
        }
        return "\(path): not valid UTF-8; save the file as UTF-8"
    }

    /// Writes the next `NNNN_name.up.sql` / `.down.sql` pair with a short template.
    public func create(name: String) throws -> (up: String, down: String) {
        guard name.range(of: #"^[a-z0-9][a-z0-9_]*$"#, options: .regularExpression) != nil else {
            throw MigrationError.configuration(
                "migration name '\(name)' is not snake_case", hint: "Use lower-case letters, digits and underscores, e.g. add_weather_index.")
        }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Number from the file names themselves: a directory with an unrelated problem (a bad
        // directive, a missing half) must not make `create` start again at 0001.
        let versions = try FileManager.default.contentsOfDirectory(atPath: path).compactMap { file -> Int64? in
            guard let match = Self.pattern.firstMatch(in: file, range: NSRange(file.startIndex..., in: file)),
                  let range = Range(match.range(at: 1), in: file)
            else { return nil }
            return Int64(file[range])
        }
        let newest = versions.max() ?? 0
        guard newest < Int64.max else {
            throw MigrationError.configuration(
                "no version is left after \(newest) (the largest a version can be) in \(path)",
                hint: "Give migrations sequential versions (0001, 0002, …); renumbering an applied one needs `nfldb migrate resolve`.")
        }
        let version = newest + 1
        let id = Migration.id(version: version, name: name)
        let up = join("\(id).up.sql")
        let down = join("\(id).down.sql")
        let upText = """
            -- \(id): describe what this migration does.
            -- Runs in one transaction with its history row (so no BEGIN/COMMIT here). For CREATE INDEX
            -- CONCURRENTLY, VACUUM or ALTER TYPE … ADD VALUE, add a line `-- nfldb:no-transaction` at the top.
            -- Optional: `-- nfldb:lock-timeout 5s`, `-- nfldb:statement-timeout 10min`.


            """
        let downText = """
            -- \(id): undo exactly what \(id).up.sql does, in reverse order.


            """
        guard !FileManager.default.fileExists(atPath: up), !FileManager.default.fileExists(atPath: down) else {
            throw MigrationError.configuration("\(id) already exists")
        }
        try upText.write(toFile: up, atomically: true, encoding: .utf8)
        try downText.write(toFile: down, atomically: true, encoding: .utf8)
        return (up, down)
    }
}
