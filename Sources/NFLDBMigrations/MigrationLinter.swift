import Foundation
import NFLDBPostgres
import Synchronization

/// A finding of `nfldb migrate lint`, with the file line and how to do it safely.
public struct LintFinding: Sendable, Codable, Hashable {
    public enum Severity: String, Sendable, Codable { case warning, error }

    public let rule: String
    public let severity: Severity
    public let file: String
    public let line: Int
    public let message: String
    public let fix: String
}

/// Flags operations that lock or rewrite busy tables, or that cannot work in the file's
/// transaction mode. Context-aware: a table created earlier in the same file is new (and empty), so
/// indexing or constraining it is not flagged.
public enum MigrationLinter {
    public static func lint(_ migration: Migration) throws -> [LintFinding] {
        let script = try migration.upScript()
        var created: Set<String> = []
        var findings: [LintFinding] = []
        let transactional = migration.directives.transactional
        func add(_ rule: String, _ severity: LintFinding.Severity, _ statement: SQLStatement, _ message: String, _ fix: String) {
            findings.append(LintFinding(rule: rule, severity: severity, file: migration.upPath, line: statement.line, message: message, fix: fix))
        }
        findings += MigrationStatementRules.transactionControlFindings(script, transactional: transactional)
        let downScript = try Migration.script(migration.downSQL, path: migration.downPath)
        findings += MigrationStatementRules.transactionControlFindings(
            downScript, transactional: MigrationDirectives.parse(migration.downSQL).0.transactional)
        findings += MigrationStatementRules.standardStringsOffFindings(script) + MigrationStatementRules.standardStringsOffFindings(downScript)
        findings += MigrationStatementRules.dropSubscriptionFindings(script, transactional: transactional)
            + MigrationStatementRules.dropSubscriptionFindings(downScript, transactional: MigrationDirectives.parse(migration.downSQL).0.transactional)
        findings += MigrationStatementRules.insideOwnBlockFindings(script, transactional: transactional)
            + MigrationStatementRules.insideOwnBlockFindings(downScript, transactional: MigrationDirectives.parse(migration.downSQL).0.transactional)
        if script.statements.isEmpty {
            findings.append(LintFinding(
                rule: "empty-migration", severity: .warning, file: migration.upPath, line: 1,
                message: "the migration has no SQL statement; applying it records a version that changed nothing",
                fix: "Write the migration's SQL, or delete the file pair if it is not needed."))
        }
        for statement in script.statements {
            let sql = statement.normalized
            // Names are taken from the text as written (case kept), keywords from `sql` (upper-cased).
            let text = statement.folded
            if let table = match(text, #"^CREATE (?:UNLOGGED |TEMP |TEMPORARY )?TABLE (?:IF NOT EXISTS )?([^\s(]+)"#)
                ?? match(text, #"^CREATE MATERIALIZED VIEW (?:IF NOT EXISTS )?([^\s(]+)"#) {
                created.insert(normalizeName(table))
                continue
            }
            if let table = match(text, #"^CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY)(?:IF NOT EXISTS )?(?:[^\s]+ )?ON (?:ONLY )?([^\s(]+)"#),
               !created.contains(normalizeName(table)) {
                add("create-index-without-concurrently", .warning, statement,
                    "CREATE INDEX on existing table \(table) blocks writes to it for the whole build",
                    "Use CREATE INDEX CONCURRENTLY in a migration of its own marked `-- nfldb:no-transaction`.")
            }
            if transactional, let name = MigrationStatementRules.cannotRunInTransaction(statement) {
                add("cannot-run-in-transaction", .error, statement,
                    "\(name) cannot run inside a transaction block; this migration is transactional",
                    "Move it to a migration of its own and \(MigrationStatementRules.markerFix).")
            }
            // Keywords as tokens: a word inside a string, a dollar-quoted body or a name
            // (`concurrently_idx`, `'built CONCURRENTLY'`) is not the keyword.
            let words = MigrationStatementRules.sqlTokens(text).map { $0.uppercased() }
            // REFRESH MATERIALIZED VIEW CONCURRENTLY is the one CONCURRENTLY form allowed in a transaction.
            if transactional, words.contains("CONCURRENTLY"), ["CREATE", "DROP", "REINDEX", "ALTER"].contains(words.first ?? "") {
                add("concurrently-in-transaction", .error, statement,
                    "CONCURRENTLY cannot run inside a transaction block; this migration is transactional",
                    "Add `-- nfldb:no-transaction` as the first line and keep the file to idempotent statements (IF NOT EXISTS).")
            }
            if transactional, words.starts(with: ["ALTER", "TYPE"]), zip(words, words.dropFirst()).contains(where: { $0 == "ADD" && $1 == "VALUE" }) {
                add("enum-add-value-in-transaction", .warning, statement,
                    "ALTER TYPE … ADD VALUE cannot be used in the same transaction that adds it",
                    "Put it in its own migration marked `-- nfldb:no-transaction`.")
            }
            guard let table = match(text, #"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?([^\s]+)"#) else {
                if let dropped = match(text, #"^DROP TABLE (?:IF EXISTS )?([^\s;,]+)"#), !created.contains(normalizeName(dropped)) {
                    add("drop-table", .warning, statement,
                        "DROP TABLE \(dropped) deletes its data; running code that still reads it will fail",
                        "Stop using the table in the application first, deploy, then drop it in a later migration.")
                }
                continue
            }
            let existing = !created.contains(normalizeName(table))
            // Judge each comma-separated action on its own: `numeric(10,2)` must not end the clause,
            // and one action's DEFAULT or NOT VALID must not excuse another's.
            let actions = alterActions(sql)
            if existing && actions.contains(where: { action in
                action.range(of: #"(?:^|\s)ADD (?!CONSTRAINT |PRIMARY |UNIQUE |CHECK |FOREIGN |EXCLUDE )"#, options: .regularExpression) != nil
                    && action.contains(" NOT NULL") && !action.contains(" DEFAULT") && !action.contains(" GENERATED")
            }) {
                add("add-column-not-null-without-default", .warning, statement,
                    "adding a NOT NULL column without a DEFAULT to existing table \(table) fails if it has rows",
                    "Add the column nullable (or with a constant DEFAULT), backfill in batches, then SET NOT NULL after a CHECK (col IS NOT NULL) NOT VALID + VALIDATE.")
            }
            if sql.range(of: #"ALTER COLUMN [^ ]+ (?:SET DATA )?TYPE "#, options: .regularExpression) != nil && existing {
                add("change-column-type", .warning, statement,
                    "changing a column type on \(table) usually rewrites the table under an ACCESS EXCLUSIVE lock",
                    "Add a new column, backfill it in batches, switch readers, then drop the old column.")
            }
            if existing && sql.contains(" DROP COLUMN ") {
                add("drop-column", .warning, statement,
                    "DROP COLUMN on \(table) breaks any running code that still selects the column",
                    "Stop reading the column in the application first; drop it in a later deploy.")
            }
            if sql.contains(" RENAME ") {
                add("rename", .warning, statement,
                    "renaming on \(table) breaks running code that uses the old name",
                    "Add the new name (column/view) alongside the old one, migrate readers, then remove the old name later.")
            }
            if existing && actions.contains(where: { action in
                action.range(of: #"ADD (?:CONSTRAINT [^ ]+ )?(?:FOREIGN KEY|CHECK)"#, options: .regularExpression) != nil && !action.contains("NOT VALID")
            }) {
                add("add-constraint-without-not-valid", .warning, statement,
                    "adding a CHECK or FOREIGN KEY to existing table \(table) scans it while holding a lock that blocks writes",
                    "Add it with NOT VALID, then run ALTER TABLE … VALIDATE CONSTRAINT in a later migration.")
            }
            if existing && sql.contains("SET NOT NULL") {
                add("set-not-null", .warning, statement,
                    "SET NOT NULL on \(table) scans the whole table under an ACCESS EXCLUSIVE lock",
                    "First add CHECK (col IS NOT NULL) NOT VALID and VALIDATE it; PostgreSQL 12+ then skips the scan.")
            }
        }
        if !transactional && script.statements.count > 1 {
            for statement in script.statements where !statement.normalized.contains("IF NOT EXISTS") && !statement.normalized.contains("IF EXISTS") {
                add("non-transactional-not-idempotent", .warning, statement,
                    "statement in a nfldb:no-transaction migration is not idempotent; after a half-way failure it cannot simply be re-run",
                    "Use IF NOT EXISTS / IF EXISTS, or split the file so each no-transaction migration has one statement.")
            }
        }
        return findings
    }

    /// The actions of an `ALTER TABLE` (normalized text), split at commas outside parentheses and quotes.
    static func alterActions(_ sql: String) -> [String] {
        var actions: [String] = []
        var current = ""
        var depth = 0
        var quote: Character?
        for character in sql {
            if let q = quote {
                if character == q { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "(" {
                depth += 1
            } else if character == ")" {
                depth = max(0, depth - 1)
            } else if character == "," && depth == 0 {
                actions.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        actions.append(current)
        return actions.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " ;")) }
    }

    static func match(_ text: String, _ pattern: String) -> String? {
        guard let regex = compiled(pattern),
              let m = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), m.numberOfRanges > 1,
              let range = Range(m.range(at: 1), in: text)
        else { return nil }
        return String(text[range])
    }

    /// The relation name PostgreSQL would look up: the last dotted part, case-folded unless quoted
    /// (`Games` and `games` are one table, `"Games"` another).
    /// Each pattern compiled once per process: compiling it per statement was most of the time of
    /// linting a large data migration (8 MB, 100,000 INSERTs: 22 s).
    private static let regexes = Mutex<[String: NSRegularExpression]>([:])

    static func compiled(_ pattern: String) -> NSRegularExpression? {
        regexes.withLock { cache in
            if let regex = cache[pattern] { return regex }
            let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
            cache[pattern] = regex
            return regex
        }
    }

    static func normalizeName(_ name: String) -> String {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var characters = Array(name)[...]
        while let c = characters.popFirst() {
            if c == "\"" {
                if quoted, characters.first == "\"" { current.append("\""); characters.removeFirst(); continue }
                quoted.toggle()
                wasQuoted = true
            } else if c == "." && !quoted {
                parts.append(wasQuoted ? current : current.lowercased())
                current = ""
                wasQuoted = false
            } else {
                current.append(c)
            }
        }
        parts.append(wasQuoted ? current : current.lowercased())
        return parts.last ?? ""
    }
}
