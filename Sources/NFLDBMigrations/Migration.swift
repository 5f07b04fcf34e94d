import Foundation
import NFLDBCore
import NFLDBPostgres

/// Header directives a migration file may carry in its leading SQL comments.
///
/// ```sql
/// -- nfldb:no-transaction
/// -- nfldb:lock-timeout 5s
/// -- nfldb:statement-timeout 10min
/// ```
public struct MigrationDirectives: Sendable, Hashable, Codable {
    public var transactional = true
    public var lockTimeout: Duration?
    public var statementTimeout: Duration?

    public init(transactional: Bool = true, lockTimeout: Duration? = nil, statementTimeout: Duration? = nil) {
        self.transactional = transactional
        self.lockTimeout = lockTimeout
        self.statementTimeout = statementTimeout
    }

    /// A directive that is unknown or malformed, with its line.
    public struct Problem: Sendable, Hashable {
        public let line: Int
        public let message: String
    }

    /// Parses every `-- nfldb:` comment in the file's leading comment block (before the first statement).
    public static func parse(_ sql: String) -> (MigrationDirectives, [Problem]) {
        var directives = MigrationDirectives()
        var problems: [Problem] = []
        // Swift reads "\r\n" as one Character, so a CRLF file (a Windows checkout) has no "\n" to split
        // at: lines are split on the text with CRLF folded to LF (line numbers stay the same).
        for (index, rawLine) in sql.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard line.hasPrefix("--") else { break }
            let comment = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            guard comment.lowercased().hasPrefix("nfldb:") else { continue }
            let body = comment.dropFirst("nfldb:".count)
            let parts = body.split(separator: " ", omittingEmptySubsequences: true)
            let name = parts.first.map { String($0).lowercased() } ?? ""
            let argument = parts.dropFirst().joined(separator: " ")
            switch name {
            case "no-transaction":
                if !argument.isEmpty { problems.append(Problem(line: index + 1, message: "nfldb:no-transaction takes no argument")) }
                directives.transactional = false
            case "lock-timeout", "statement-timeout":
                guard let duration = DurationParser.parse(argument) else {
                    problems.append(Problem(line: index + 1, message: "nfldb:\(name) needs a duration such as 5s or 10min, got '\(argument)'"))
                    continue
                }
                if let problem = DurationParser.postgresTimeoutProblem(duration) {
                    problems.append(Problem(line: index + 1, message: "nfldb:\(name) '\(argument)' \(problem); give 24d or less"))
                    continue
                }
                if name == "lock-timeout" { directives.lockTimeout = duration } else { directives.statementTimeout = duration }
            default:
                problems.append(Problem(
                    line: index + 1,
                    message: "unknown directive nfldb:\(name) (known: nfldb:no-transaction, nfldb:lock-timeout, nfldb:statement-timeout)"))
            }
        }
        return (directives, problems)
    }
}

/// One version: an up file and a down file.
public struct Migration: Sendable, Hashable {
    public let version: Int64
    public let name: String
    public let upPath: String
    public let downPath: String
    public let upSQL: String
    public let downSQL: String
    public let directives: MigrationDirectives

    /// `0003_weather`.
    public var id: String { Migration.id(version: version, name: name) }

    public static func id(version: Int64, name: String) -> String {
        String(format: "%04lld", version) + "_" + name
    }

    public var upChecksum: String { Checksum.of(upSQL) }
    public var downChecksum: String { Checksum.of(downSQL) }

    public func upScript() throws -> SQLScript { try Migration.script(upSQL, path: upPath) }

    /// `7` of `nfldb.schema_migrations[7].down_sql`.
    static func storedVersion(_ path: String) -> String {
        guard let open = path.firstIndex(of: "["), let close = path.firstIndex(of: "]"), open < close else { return "VERSION" }
        return String(path[path.index(after: open)..<close])
    }

    static func script(_ sql: String, path: String) throws -> SQLScript {
        do {
            return try SQLScript(sql, name: path)
        } catch {
            // Directory files are split when loaded (so `up` refuses before running anything); this
            // is SQL from elsewhere, e.g. down SQL stored by an older nfldb. Earlier steps of the same
            // command may have run, so say only what is true of this one.
            throw MigrationError(
                "\(error.description): the SQL cannot be split into statements, so none of it was run",
                hint: path.hasPrefix("nfldb.schema_migrations[")
                    ? "This is the down SQL stored when version \(Self.storedVersion(path)) was applied: fix its down file and store it with `nfldb migrate repair \(Self.storedVersion(path))`, then roll back again; `nfldb migrate status` shows what is applied now."
                    : "Fix the file; `nfldb migrate status` shows what is applied now.",
                exitStatus: .usage)
        }
    }
}

/// `sha256:v1:<hex>` over the file text with CRLF normalized to LF. The `v1` tag lets a future
/// nfldb change the normalization without turning every stored checksum into a false mismatch.
public enum Checksum {
    public static func of(_ text: String) -> String {
        "sha256:v1:" + SHA256Digest.hex(text.replacingOccurrences(of: "\r\n", with: "\n"))
    }
}
