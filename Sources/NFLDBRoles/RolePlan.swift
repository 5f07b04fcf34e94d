import Foundation

/// One SQL statement of a plan.
public struct PlannedStatement: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable {
        case createRole = "create_role"
        case alterRole = "alter_role"
        case comment
        case membership
        case setting
        case password
        case grant
        case revoke
        case defaultPrivileges = "default_privileges"
    }

    /// The block the statement is shown in: a role name, or `PUBLIC`.
    public let role: String
    public let kind: Kind
    /// The SQL as shown (a password statement shows a placeholder instead of the verifier).
    public let sql: String
    /// Why, when it is not obvious (`drift: not in the spec`, `password changed`…).
    public let reason: String?
    /// A privilege, membership or setting that exists but is not in the spec.
    public let isDrift: Bool
    /// Whether `apply` runs it (drift runs only with `--revoke-unmanaged`).
    public let runs: Bool
    /// The SQL actually sent; differs from `sql` only for passwords. Never encoded or printed.
    let executableSQL: String

    init(role: String, kind: Kind, sql: String, executableSQL: String? = nil, reason: String? = nil, isDrift: Bool = false, runs: Bool = true) {
        self.role = role
        self.kind = kind
        self.sql = sql
        self.executableSQL = executableSQL ?? sql
        self.reason = reason
        self.isDrift = isDrift
        self.runs = runs
    }

    enum CodingKeys: String, CodingKey { case role, kind, sql, reason, isDrift, runs }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        role = try container.decode(String.self, forKey: .role)
        kind = try container.decode(Kind.self, forKey: .kind)
        sql = try container.decode(String.self, forKey: .sql)
        reason = try container.decodeIfPresent(String.self, forKey: .reason)
        isDrift = try container.decode(Bool.self, forKey: .isDrift)
        runs = try container.decode(Bool.self, forKey: .runs)
        executableSQL = sql
    }
}

/// The difference between a spec and a database, as SQL grouped per role.
public struct RolePlan: Sendable, Codable {
    public var database: String
    public var target: String
    public var serverVersion: String
    public var runner: String
    public var specFiles: [String]
    /// In execution order; drift statements are included (with `runs == false` unless `--revoke-unmanaged`).
    public var statements: [PlannedStatement]
    /// Things an operator should know that do not change the database by themselves.
    public var warnings: [String]
    /// Grants of roles the spec does not manage; reported, never revoked. (Their memberships in managed
    /// or privileged roles are drift: see `RolePlanner.planForeignMemberships`.)
    public var unmanaged: [String]
    /// Objects the spec names that do not exist (yet): their grants are skipped.
    public var missingObjects: [String]
    /// Objects in a managed schema owned by someone other than the schema's declared owner:
    /// default privileges do not apply to them.
    public var ownership: [String]

    /// Statements `apply` would run.
    public var pending: [PlannedStatement] { statements.filter(\.runs) }
    public var drift: [PlannedStatement] { statements.filter(\.isDrift) }

    /// Nothing for `apply` to run.
    public var isEmpty: Bool { pending.isEmpty }

    /// The database matches the spec exactly: nothing to run, no drift, nothing missing, owners right.
    /// `check` exits 1 when this is false.
    public var inSync: Bool { statements.isEmpty && missingObjects.isEmpty && ownership.isEmpty }

    /// The plan as SQL with comments: exactly what `apply` runs, in order, inside one transaction.
    public func renderText() -> String {
        var lines: [String] = []
        lines.append("-- nfldb roles plan for \(target) (PostgreSQL \(serverVersion)), running as \(runner)")
        lines.append("-- spec: \(specFiles.joined(separator: ", "))")
        var currentRole: String?
        var driftHeaderShown = false
        for statement in statements {
            if statement.role != currentRole {
                currentRole = statement.role
                driftHeaderShown = false
                lines.append("")
                lines.append(statement.role == "PUBLIC" ? "-- PUBLIC (every role)" : "-- role \(statement.role)")
            }
            if statement.isDrift && !driftHeaderShown {
                driftHeaderShown = true
                lines.append(statement.runs
                    ? "-- drift: not in the spec, revoked because of --revoke-unmanaged"
                    : "-- drift: not in the spec; revoked only with --revoke-unmanaged")
            }
            var line = statement.runs ? statement.sql : "-- " + statement.sql
            // Drift lines say why only when it is more than "not in the spec" (backdoors, privileged groups).
            if let reason = statement.reason, !statement.isDrift || !reason.hasSuffix("not in the spec") { line += "  -- \(reason)" }
            lines.append(line)
        }
        func section(_ title: String, _ items: [String]) {
            guard !items.isEmpty else { return }
            lines.append("")
            lines.append("-- \(title):")
            items.forEach { lines.append("--   \($0)") }
        }
        section("warnings", warnings)
        section("missing objects (their grants are skipped until they exist)", missingObjects)
        section("ownership (default privileges only cover objects created by the declared owner)", ownership)
        section("unmanaged roles (reported, never changed)", unmanaged)
        lines.append("")
        let driftCount = drift.count
        if statements.isEmpty {
            lines.append("-- nothing to do: the database matches the spec\(inSync ? "" : " except for the problems listed above")")
        } else {
            var summary = "-- \(pending.count) statement\(pending.count == 1 ? "" : "s") to run"
            if driftCount > 0 {
                summary += "; \(driftCount) drift item\(driftCount == 1 ? "" : "s")"
                if drift.contains(where: { !$0.runs }) { summary += " (not revoked without --revoke-unmanaged)" }
            }
            lines.append(summary)
        }
        return lines.joined(separator: "\n")
    }
}
