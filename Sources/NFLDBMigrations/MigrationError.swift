import Foundation
import NFLDBCore
import NFLDBPostgres

/// Why a migration command stopped, with what to do next.
public struct MigrationError: NFLDBError, Sendable {
    public let diagnostic: Diagnostic
    public let exitStatus: ExitStatus

    init(_ summary: String, detail: String? = nil, hint: String? = nil, exitStatus: ExitStatus = .failure) {
        self.diagnostic = Diagnostic(summary, detail: detail, hint: hint)
        self.exitStatus = exitStatus
    }

    static func configuration(_ summary: String, hint: String? = nil) -> MigrationError {
        MigrationError(summary, hint: hint, exitStatus: .usage)
    }

    static func sourceInvalid(_ problems: [String]) -> MigrationError {
        MigrationError(
            "the migrations directory has \(problems.count) problem\(problems.count == 1 ? "" : "s")",
            detail: "\n  " + problems.joined(separator: "\n  "),
            hint: "Fix the files listed above; nothing was run.", exitStatus: .usage)
    }

    /// Marks a hint nfldb put on a ``PostgresError`` (the lock advice of the retry loop), so that it
    /// is not shown as "PostgreSQL: …" (a server hint never starts with this private-use character).
    static let ownHintMarker = "\u{E000}"
    static func ownHint(_ text: String) -> String { ownHintMarker + text }

    /// A migration statement failed: file:line, SQLSTATE and the server's message, detail and hint.
    static func statementFailed(_ migration: String, _ error: PostgresError, extra: String? = nil, hint: String? = nil) -> MigrationError {
        let prefix = error.location.map { "\($0): " } ?? ""
        var facts: [String] = []
        if let sqlState = error.sqlState { facts.append("SQLSTATE \(sqlState)") }
        if let detail = error.detail { facts.append("DETAIL: \(detail)") }
        if let table = error.tableName { facts.append("table \(error.schemaName.map { "\($0)." } ?? "")\(table)") }
        if let constraint = error.constraintName { facts.append("constraint \(constraint)") }
        if let statement = error.statement {
            // Without its own trailing `;`: the facts are joined with "; ", which would double it.
            var oneLine = statement.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            while oneLine.hasSuffix(";") || oneLine.hasSuffix(" ") { oneLine.removeLast() }
            facts.append("statement: \(oneLine.count > 240 ? String(oneLine.prefix(240)) + "…" : oneLine)")
        }
        if let extra { facts.append(extra) }
        var hints: [String] = []
        if let serverHint = error.hint {
            // nfldb's own advice put on the error (``MigrationError/ownHint``) is not labelled as the server's.
            hints.append(serverHint.hasPrefix(ownHintMarker) ? String(serverHint.dropFirst(ownHintMarker.count)) : "PostgreSQL: \(serverHint)")
        }
        if let hint { hints.append(hint) }
        return MigrationError(
            "\(prefix)\(migration) failed: \(error.message)", detail: facts.joined(separator: "; "),
            hint: hints.isEmpty ? nil : hints.joined(separator: " "))
    }
}
