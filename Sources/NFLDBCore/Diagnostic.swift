import Foundation
/// A user-facing message: what failed, the facts around it, and what to do next.
///
/// Every error nfldb shows an operator renders through this shape, following PostgreSQL's own
/// message style guide (primary, detail, hint) and pgBackRest's `HINT:` lines.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// One factual line naming the object, e.g. `could not connect to 127.0.0.1:1: connection refused`.
    public var summary: String
    /// Optional facts: SQLSTATE, file:line, the statement that failed.
    public var detail: String?
    /// Optional full sentence saying what to do next.
    public var hint: String?

    public init(_ summary: String, detail: String? = nil, hint: String? = nil) {
        self.summary = summary
        self.detail = detail
        self.hint = hint
    }

    /// Summary, then `DETAIL:` and `HINT:` lines, with every registered secret scrubbed.
    public var description: String {
        var lines = [summary]
        if let detail, !detail.isEmpty { lines.append("DETAIL: \(detail)") }
        if let hint, !hint.isEmpty { lines.append("HINT: \(hint)") }
        return SecretRedactor.shared.redact(lines.joined(separator: "\n"))
    }

    /// The whole diagnostic on one line (for logs and `--quiet` output).
    public var oneLine: String {
        description.split(separator: "\n").joined(separator: " | ")
    }
}

/// An error that knows how to present itself to an operator and which exit status it maps to.
public protocol NFLDBError: Error, CustomStringConvertible {
    var diagnostic: Diagnostic { get }
    var exitStatus: ExitStatus { get }
}

extension NFLDBError {
    public var description: String { diagnostic.description }
    public var exitStatus: ExitStatus { .failure }
}

/// A generic operator-facing error for cases that do not need a richer type.
public struct OperatorError: NFLDBError, Sendable {
    public var diagnostic: Diagnostic
    public var exitStatus: ExitStatus

    public init(_ summary: String, detail: String? = nil, hint: String? = nil, exitStatus: ExitStatus = .failure) {
        self.diagnostic = Diagnostic(summary, detail: detail, hint: hint)
        self.exitStatus = exitStatus
    }

    public init(_ diagnostic: Diagnostic, exitStatus: ExitStatus) {
        self.diagnostic = diagnostic
        self.exitStatus = exitStatus
    }
}
