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
        case ("CREATE", "SUBSCRIPTION") where subscriptionCreatesSlot(statement):
            return "CREATE SUBSCRIPTION (which creates its replication slot)"
        // REFRESH PUBLICATION always; SET/ADD/DROP PUBLICATION unless `refresh = false`. Read from the
        // tokens: the subscription's name may hold digits or be quoted (`sub_2024`, `"MySub"`).
        case ("ALTER", "SUBSCRIPTION"):
            let t = sqlTokens(statement.folded).prefix(5).map { $0.uppercased() }
            guard t.count == 5, t[4] == "PUBLICATION" else { return nil }
            if t[3] == "REFRESH" { return "ALTER SUBSCRIPTION … REFRESH PUBLICATION" }
            guard ["SET", "ADD", "DROP"].contains(t[3]), !(subscriptionOptions(statement.folded)["refresh"].map(isFalseOption) ?? false) else { return nil }
            return "ALTER SUBSCRIPTION … \(t[3]) PUBLICATION (which refreshes the subscription unless WITH (refresh = false))"
        case ("ALTER", "DATABASE") where text.range(of: #"^ALTER DATABASE \S+ SET TABLESPACE "#, options: .regularExpression) != nil:
            return "ALTER DATABASE … SET TABLESPACE"
        case ("REINDEX", _) where text.range(of: #"^REINDEX (\([^)]*\) ?)?(DATABASE|SYSTEM|SCHEMA)\b"#, options: .regularExpression) != nil:
            return "REINDEX DATABASE/SYSTEM/SCHEMA"
        case ("CLUSTER", _) where text.range(of: #"^CLUSTER( VERBOSE)? ?(\([^)]*\))? ?;?$"#, options: .regularExpression) != nil:
            return "CLUSTER without a table"
        default: return nil
        }
    }

    /// What to do about a transaction-control statement. A savepoint only works inside a
    /// transaction block, which a `no-transaction` file does not have: marking the file would only
    /// move the failure, so those point at a block with an EXCEPTION clause or the file's own BEGIN.
    static func fix(for name: String) -> String {
        switch name {
        case "SAVEPOINT", "RELEASE", "ROLLBACK TO":
            return "Remove it: the whole file already runs in one transaction, so it is undone as a unit on any error. To survive an error in one part, use a DO block with an EXCEPTION clause (PL/pgSQL's savepoint). If the file must manage its own transactions, \(markerFix) and put the savepoint inside its own BEGIN … COMMIT (without BEGIN it fails: SAVEPOINT can only be used in transaction blocks)."
        default:
            return "Remove it; or \(markerFix) if the file must manage its own transactions."
        }
    }

    /// Whether `CREATE SUBSCRIPTION` creates a replication slot: unless its `WITH (…)` list sets
    /// `create_slot` or `connect` to a false value. Read from the statement's tokens (quoted
    /// strings and identifiers kept whole), so `'host=x connect_timeout=0'` in the connection
    /// string is not an option and `connect = 'false'` or `"create_slot" = off` are.
    static func subscriptionCreatesSlot(_ statement: SQLStatement) -> Bool {
        let options = subscriptionOptions(statement.folded)
        return !["connect", "create_slot"].contains { key in options[key].map(isFalseOption) ?? false }
    }

    /// The `WITH (name [= value], …)` options of a `CREATE SUBSCRIPTION`, names lower-cased, value
    /// text unquoted (nil: the option is given without a value, which means true).
    static func subscriptionOptions(_ text: String) -> [String: String?] {
        let tokens = sqlTokens(text)
        // The options list is the parenthesis after the last top-level WITH.
        var depth = 0
        var start: Int?
        for (index, token) in tokens.enumerated() {
            if token == "(" { depth += 1 } else if token == ")" { depth -= 1 }
            if depth == 0, token.uppercased() == "WITH", index + 1 < tokens.count, tokens[index + 1] == "(" { start = index + 2 }
        }
        guard let start else { return [:] }
        var options: [String: String?] = [:]
        var item: [String] = []
        depth = 1
        func finish() {
            guard let name = item.first else { return }
            let value = item.count >= 3 && item[1] == "=" ? item[2] : (item.count >= 2 && item[1] != "=" ? item[1] : nil)
            options[unquote(name).lowercased()] = value.map(unquote)
            item = []
        }
        for token in tokens[start...] {
            if token == "(" { depth += 1 } else if token == ")" { depth -= 1; if depth == 0 { break } }
            if depth == 1 && token == "," { finish() } else { item.append(token) }
        }
        finish()
        return options
    }

    /// PostgreSQL's `parse_bool` for false, plus the integer 0 (`defGetBoolean`).
    static func isFalseOption(_ value: String?) -> Bool {
        guard let value = value?.lowercased(), !value.isEmpty else { return false }
        if value.allSatisfy(\.isNumber) { return Int(value) == 0 }
        return "false".hasPrefix(value) || "no".hasPrefix(value) || (value.count >= 2 && "off".hasPrefix(value))
    }

    static func unquote(_ token: String) -> String {
        for quote in ["'", "\""] where token.count >= 2 && token.hasPrefix(quote) && token.hasSuffix(quote) {
            return String(token.dropFirst().dropLast()).replacingOccurrences(of: quote + quote, with: quote)
        }
        if token.count >= 3, token.first == "E" || token.first == "e", token.dropFirst().hasPrefix("'") { return unquote(String(token.dropFirst())) }
        return token
    }

    /// Words, numbers, quoted strings (`'…'`, `E'…'`), quoted identifiers and single punctuation
    /// characters of a comment-free statement.
    static func sqlTokens(_ text: String) -> [String] {
        var tokens: [String] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            // A dollar-quoted string ($$…$$, $tag$…$tag$), unless the `$` continues a word (`x$a$`).
            if c == "$", i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber || chars[i - 1] == "_" || chars[i - 1] == "$") {
                var j = i + 1
                while j < chars.count, chars[j].isLetter || chars[j] == "_" || (j > i + 1 && chars[j].isNumber) { j += 1 }
                if j < chars.count, chars[j] == "$" {
                    let tag = String(chars[i...j])
                    let rest = String(chars[(j + 1)...])
                    let body = rest.range(of: tag).map { rest[..<$0.lowerBound] } ?? rest[...]
                    let consumed = tag.count + body.count + (rest.range(of: tag) == nil ? 0 : tag.count)
                    tokens.append("'" + body.replacingOccurrences(of: "'", with: "''") + "'")
                    i += consumed
                    continue
                }
            }
            if c == "'" || c == "\"" {
                let escapes = c == "'" && (tokens.last == "E" || tokens.last == "e") && i > 0 && (chars[i - 1] == "E" || chars[i - 1] == "e")
                var j = i + 1
                while j < chars.count {
                    if escapes && chars[j] == "\\" { j += 2; continue }
                    if chars[j] == c { if j + 1 < chars.count && chars[j + 1] == c { j += 2; continue }; break }
                    j += 1
                }
                let end = min(j, chars.count - 1)
                var token = String(chars[i...end])
                if escapes { tokens.removeLast(); token = "E" + token }
                tokens.append(token)
                i = end + 1
            } else if c.isLetter || c.isNumber || c == "_" || c == "$" {
                var j = i
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || chars[j] == "$" { j += 1 }
                tokens.append(String(chars[i..<j]))
                i = j
            } else {
                tokens.append(String(c))
                i += 1
            }
        }
        return tokens
    }

    /// Whether PostgreSQL runs `statement` only outside a transaction block: the statements of
    /// ``cannotRunInTransaction(_:)`` and the `CONCURRENTLY` forms other than `REFRESH MATERIALIZED
    /// VIEW CONCURRENTLY`. Returns the statement's name, or nil.
    static func outsideTransactionOnly(_ statement: SQLStatement) -> String? {
        if let name = cannotRunInTransaction(statement) { return name }
        let words = sqlTokens(statement.folded).map { $0.uppercased() }
        if words.contains("CONCURRENTLY"), let first = words.first, ["CREATE", "DROP", "REINDEX", "ALTER"].contains(first) {
            return "\(first) … CONCURRENTLY"
        }
        return nil
    }

    /// A no-transaction file's statements that run only outside a transaction block but sit inside
    /// the file's own `BEGIN … COMMIT`: they fail there (SQLSTATE 25001) just as in a transactional file.
    static func insideOwnBlockFindings(_ script: SQLScript, transactional: Bool) -> [LintFinding] {
        guard !transactional else { return [] }
        var open = false
        var findings: [LintFinding] = []
        for statement in script.statements {
            let control = transactionControl(statement)
            let chained = sqlTokens(statement.folded).filter { $0 != ";" }.suffix(2).map { $0.uppercased() } == ["AND", "CHAIN"]
            switch control {
            case "BEGIN", "START TRANSACTION": open = true
            case "COMMIT", "END", "ROLLBACK", "ABORT": open = chained
            default:
                if open, let name = outsideTransactionOnly(statement) {
                    findings.append(LintFinding(
                        rule: "cannot-run-in-transaction", severity: .error, file: script.name, line: statement.line,
                        message: "\(name) cannot run inside a transaction block, and this statement is inside the file's own BEGIN … COMMIT",
                        fix: "Move it after the block's COMMIT (or before its BEGIN)."))
                }
            }
        }
        return findings
    }

    /// A transactional file's transaction-control statements, as lint findings (errors).
    static func transactionControlFindings(_ script: SQLScript, transactional: Bool) -> [LintFinding] {
        guard transactional else { return [] }
        return script.statements.compactMap { statement in
            guard let name = transactionControl(statement) else { return nil }
            return LintFinding(
                rule: "transaction-control-in-transaction", severity: .error, file: script.name, line: statement.line,
                message: "\(name) in a transactional migration: nfldb runs the file and its history row in one transaction, and \(name) would end or split it (part of the file would commit on its own, and the version would not be recorded as applied)",
                fix: fix(for: name))
        }
    }

    /// `DROP SUBSCRIPTION` in a transactional file. PostgreSQL refuses it inside a transaction block
    /// (25001) when the subscription has a replication slot, since dropping the slot on the publisher
    /// cannot be rolled back. Only the server knows whether it has one, so this is a warning, and none
    /// when the same file first detaches the slot (`ALTER SUBSCRIPTION s SET (slot_name = NONE)`).
    static func dropSubscriptionFindings(_ script: SQLScript, transactional: Bool) -> [LintFinding] {
        guard transactional else { return [] }
        /// An identifier as PostgreSQL folds it: quoted as written, unquoted lower-cased.
        func identifier(_ token: String) -> String { token.hasPrefix("\"") ? unquote(token) : token.lowercased() }
        var detached: Set<String> = []
        var findings: [LintFinding] = []
        for statement in script.statements {
            let tokens = sqlTokens(statement.folded).filter { $0 != ";" }
            let upper = tokens.map { $0.uppercased() }
            if upper.starts(with: ["ALTER", "SUBSCRIPTION"]), tokens.count > 5, upper[3] == "SET", tokens[4] == "(" {
                // SET (name = value, …): slot_name = NONE (the keyword, or the string 'none').
                var index = 5
                while index + 2 < tokens.count, tokens[index] != ")" {
                    if unquote(tokens[index]).lowercased() == "slot_name", tokens[index + 1] == "=" {
                        let value = tokens[index + 2]
                        let none = value.hasPrefix("'") || value.hasPrefix("E'") || value.hasPrefix("e'") ? unquote(value) == "none" : value.lowercased() == "none"
                        if none { detached.insert(identifier(tokens[2])) } else { detached.remove(identifier(tokens[2])) }
                    }
                    index += 1
                }
            }
            guard upper.starts(with: ["DROP", "SUBSCRIPTION"]) else { continue }
            let rest = upper.count > 3 && upper[2] == "IF" && upper[3] == "EXISTS" ? tokens.dropFirst(4) : tokens.dropFirst(2)
            guard let name = rest.first, !detached.contains(identifier(name)) else { continue }
            findings.append(LintFinding(
                rule: "drop-subscription-in-transaction", severity: .warning, file: script.name, line: statement.line,
                message: "DROP SUBSCRIPTION \(name) cannot run inside a transaction block when the subscription has a replication slot (the slot is dropped on the publisher); this migration is transactional",
                fix: "Put it in a migration of its own and \(markerFix); or, if the slot is to stay on the publisher, detach it first in this file: ALTER SUBSCRIPTION \(name) DISABLE; ALTER SUBSCRIPTION \(name) SET (slot_name = NONE)."))
        }
        return findings
    }

    /// `SET [SESSION | LOCAL] standard_conforming_strings = off` (or `TO off`/`false`/`0`): from there
    /// on a backslash escapes a quote inside '…', which the statement splitter (and psql's, with the
    /// setting on) does not follow — a later `'\''` would end the string where PostgreSQL does not,
    /// so a COMMIT could hide inside "one statement". Refused like a transaction-control statement.
    static func standardStringsOffFindings(_ script: SQLScript) -> [LintFinding] {
        script.statements.compactMap { statement in
            var tokens = Array(sqlTokens(statement.folded).map { $0.uppercased() }.prefix(5))
            guard tokens.first == "SET" else { return nil }
            tokens.removeFirst()
            if tokens.first == "SESSION" || tokens.first == "LOCAL" { tokens.removeFirst() }
            guard tokens.count >= 3, tokens[0] == "STANDARD_CONFORMING_STRINGS", tokens[1] == "=" || tokens[1] == "TO",
                  isFalseOption(unquote(tokens[2])) else { return nil }
            return LintFinding(
                rule: "standard-conforming-strings-off", severity: .error, file: script.name, line: statement.line,
                message: "standard_conforming_strings = off makes a backslash escape a quote inside '…'; nfldb splits and checks statements with it on, so what runs could differ from what was checked",
                fix: "Remove the SET and write such strings as E'…' (escape strings), which mean the same with the setting on.")
        }
    }

    /// The problems ``MigrationDirectory`` refuses at load time for one file: it cannot be split, or
    /// it is transactional and controls the transaction itself. `file:line: message; fix`.
    /// `checkingRules` false: only whether it can be split (lint reports the rest as findings, and
    /// applied files are not judged again).
    static func loadProblems(_ sql: String, path: String, transactional: Bool, checkingRules: Bool = true) -> [String] {
        let script: SQLScript
        do {
            script = try SQLScript(sql, name: path)
        } catch {
            return ["\(error.description) (the file cannot be split into statements)"]
        }
        guard checkingRules else { return [] }
        return (transactionControlFindings(script, transactional: transactional) + standardStringsOffFindings(script))
            .map { "\($0.file):\($0.line): \($0.message). Fix: \($0.fix)" }
    }
}
