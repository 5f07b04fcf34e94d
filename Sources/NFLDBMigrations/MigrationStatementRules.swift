import Foundation
import NFLDBPostgres

/// Statement-level rules that depend on whether a file runs in nfldb's transaction, judged on the
/// statements ``SQLScript`` splits out (comments skipped; quoted strings and dollar-quoted bodies
/// stay inside their statement, so a `COMMIT` in a procedure or `DO` body is not a statement here).
enum MigrationStatementRules {
    /// Where the fix for both rules points: the engine's real marker.
    static let markerFix = "mark the file `-- nfldb:no-transaction` (a comment before its first statement; see README, Migrations)"

    /// The leading keywords of a statement (upper-cased, comments removed): `COMMIT`, `PREPARED`…
    static func keywords(_ statement: SQLStatement, limit: Int = 4) -> [String] {
        var words: [String] = []
        var current = ""
        for character in statement.normalized {
            if character.isLetter || character == "_" {
                current.append(character)
            } else {
                if !current.isEmpty { words.append(current); current = "" }
                if words.count >= limit { break }
                // Only a run of keywords counts: stop at the first quote, parenthesis, number, etc.
                if character != " " && character != "(" && character != ")" && character != ";" && character != "," { break }
            }
        }
        if !current.isEmpty && words.count < limit { words.append(current) }
        return words
    }

    /// `COMMIT`, `ROLLBACK TO SAVEPOINT`, `PREPARE TRANSACTION`…: the statement controls the
    /// transaction itself. Inside nfldb's transaction that commits (or undoes) part of the file
    /// outside the all-or-nothing unit, so such a file must be refused before anything runs.
    /// Returns the statement's name for the message, or nil.
    static func transactionControl(_ statement: SQLStatement) -> String? {
        let w = keywords(statement)
        guard let first = w.first else { return nil }
        switch first {
        case "BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE":
            if (first == "COMMIT" || first == "ROLLBACK") && w.count > 1 && (w[1] == "PREPARED" || w[1] == "TO") {
                return "\(first) \(w[1])"
            }
            return first
        case "START" where w.count > 1 && w[1] == "TRANSACTION":
            return "START TRANSACTION"
        case "PREPARE" where w.count > 1 && w[1] == "TRANSACTION":
            return "PREPARE TRANSACTION"
        default:
            return nil
        }
    }

    /// Statements PostgreSQL 15 refuses inside a transaction block (SQLSTATE 25001), other than the
    /// `CONCURRENTLY` forms (their own lint rule). Returns the statement's name, or nil.
    static func cannotRunInTransaction(_ statement: SQLStatement) -> String? {
        let w = keywords(statement, limit: 6)
        guard let first = w.first else { return nil }
        let second = w.count > 1 ? w[1] : ""
        let text = statement.normalized
        switch (first, second) {
        case ("VACUUM", _): return "VACUUM"
        case ("CREATE", "DATABASE"), ("DROP", "DATABASE"), ("CREATE", "TABLESPACE"), ("DROP", "TABLESPACE"), ("ALTER", "SYSTEM"):
            return "\(first) \(second)"
        case ("DISCARD", "ALL"): return "DISCARD ALL"
        // It creates its replication slot on the publisher, which PostgreSQL refuses in a transaction
        // block — unless told not to (`create_slot = false`, or `connect = false`, which implies it).
        case ("CREATE", "SUBSCRIPTION")
            where text.range(of: #"\b(CREATE_SLOT|CONNECT)\s*=?\s*(FALSE|OFF|0)\b"#, options: [.regularExpression, .caseInsensitive]) == nil:
            return "CREATE SUBSCRIPTION (which creates its replication slot)"
        case ("ALTER", "DATABASE") where text.range(of: #"^ALTER DATABASE \S+ SET TABLESPACE "#, options: .regularExpression) != nil:
            return "ALTER DATABASE … SET TABLESPACE"
        case ("REINDEX", _) where text.range(of: #"^REINDEX (\([^)]*\) ?)?(DATABASE|SYSTEM)\b"#, options: .regularExpression) != nil:
            return "REINDEX DATABASE/SYSTEM"
        case ("CLUSTER", _) where text.range(of: #"^CLUSTER( VERBOSE)? ?(\([^)]*\))? ?;?$"#, options: .regularExpression) != nil:
            return "CLUSTER without a table"
        default: return nil
        }
    }

    /// A transactional file's transaction-control statements, as lint findings (errors).
    static func transactionControlFindings(_ script: SQLScript, transactional: Bool) -> [LintFinding] {
        guard transactional else { return [] }
        return script.statements.compactMap { statement in
            guard let name = transactionControl(statement) else { return nil }
            return LintFinding(
                rule: "transaction-control-in-transaction", severity: .error, file: script.name, line: statement.line,
                message: "\(name) in a transactional migration: nfldb runs the file and its history row in one transaction, and \(name) would end or split it (part of the file would commit on its own, and the version would not be recorded as applied)",
                fix: "Remove it; or \(markerFix) if the file must manage its own transactions.")
        }
    }

    /// The problems ``MigrationDirectory`` refuses at load time for one file: it cannot be split, or
    /// it is transactional and controls the transaction itself. `file:line: message; fix`.
    static func loadProblems(_ sql: String, path: String, transactional: Bool) -> [String] {
        let script: SQLScript
        do {
            script = try SQLScript(sql, name: path)
        } catch {
            return ["\(error.description) (the file cannot be split into statements)"]
        }
        return transactionControlFindings(script, transactional: transactional).map { "\($0.file):\($0.line): \($0.message). Fix: \($0.fix)" }
    }
}
