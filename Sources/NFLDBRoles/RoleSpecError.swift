import Foundation
import NFLDBCore

/// One problem found in a spec, with where it was written.
public struct SpecIssue: Sendable, Hashable, CustomStringConvertible {
    public let location: SourceLocation?
    public let message: String

    public init(_ message: String, at location: SourceLocation?) {
        self.message = message
        self.location = location
    }

    /// `roles/platform.yaml:12:5: unknown key "logn" in role nfl_etl`.
    public var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }
}

/// A spec that cannot be used; lists every problem found, each with file and line.
public struct RoleSpecError: NFLDBError, Sendable {
    public let issues: [SpecIssue]

    public init(_ issues: [SpecIssue]) { self.issues = issues }

    public var diagnostic: Diagnostic {
        let first = issues.first?.description ?? "invalid roles spec"
        let more = issues.dropFirst().map(\.description)
        return Diagnostic(
            issues.count == 1 ? first : "\(issues.count) problems in the roles spec; the first: \(first)",
            detail: more.isEmpty ? nil : more.joined(separator: "\n"),
            hint: "Fix the spec and run `nfldb roles validate`; docs/roles-audit.md lists every key.")
    }

    /// Spec errors are configuration errors (exit status 2).
    public var exitStatus: ExitStatus { .usage }
}
