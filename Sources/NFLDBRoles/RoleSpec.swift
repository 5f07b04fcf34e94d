import Foundation
import NFLDBPostgres

/// Where something was written in a spec file, for error messages (`roles/platform.yaml:12:5`).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int = 1) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// The kinds of object a privilege can be granted on, with the privileges PostgreSQL 15 knows for each.
public enum ObjectKind: String, Sendable, Hashable, CaseIterable, Codable {
    case database
    case schema
    case table
    case sequence
    case function

    /// Privileges in PostgreSQL's canonical order (the order `GRANT ALL` expands to).
    public var privileges: [String] {
        switch self {
        case .database: ["CREATE", "CONNECT", "TEMPORARY"]
        case .schema: ["USAGE", "CREATE"]
        case .table: ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
        case .sequence: ["USAGE", "SELECT", "UPDATE"]
        case .function: ["EXECUTE"]
        }
    }

    /// The letter `pg_default_acl.defaclobjtype` uses, for kinds that have default privileges.
    var defaultACLType: String? {
        switch self {
        case .table: "r"
        case .sequence: "S"
        case .function: "f"
        default: nil
        }
    }

    /// The plural noun of `ALTER DEFAULT PRIVILEGES … ON TABLES`.
    var defaultPrivilegesNoun: String {
        switch self {
        case .table: "TABLES"
        case .sequence: "SEQUENCES"
        case .function: "FUNCTIONS"
        case .schema: "SCHEMAS"
        case .database: "DATABASES"
        }
    }

    /// Normalizes a privilege name from the spec (`temp` → `TEMPORARY`, `all` → every privilege);
    /// nil when the kind has no such privilege.
    public func normalize(_ name: String) -> [String]? {
        let upper = name.uppercased().trimmingCharacters(in: .whitespaces)
        if upper == "ALL" || upper == "ALL PRIVILEGES" { return privileges }
        let canonical = upper == "TEMP" ? "TEMPORARY" : upper
        return privileges.contains(canonical) ? [canonical] : nil
    }

    /// Sorts privilege names into canonical order.
    func ordered(_ names: some Sequence<String>) -> [String] {
        let set = Set(names)
        return privileges.filter(set.contains) + set.subtracting(privileges).sorted()
    }
}

/// A grantee: a role, or the pseudo-role PUBLIC (every role).
public enum Grantee: Sendable, Hashable, Comparable, CustomStringConvertible {
    case publicRole
    case role(String)

    public var description: String {
        switch self {
        case .publicRole: "PUBLIC"
        case .role(let name): name
        }
    }

    /// The grantee as SQL: `PUBLIC` or a quoted role name.
    var sql: String {
        switch self {
        case .publicRole: "PUBLIC"
        case .role(let name): quoteIdentifier(name)
        }
    }

    public var roleName: String? {
        if case .role(let name) = self { return name }
        return nil
    }
}

/// Privileges on objects matched by one pattern: `nfl.games`, or `nfl.*` (every object of the kind in the schema).
public struct ObjectGrant: Sendable, Hashable {
    public var kind: ObjectKind
    public var schema: String
    /// nil means every object of `kind` in `schema`.
    public var name: String?
    public var privileges: [String]
    public var location: SourceLocation

    public var pattern: String { "\(schema).\(name ?? "*")" }
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE owner [IN SCHEMA schema] GRANT … ON <kind> TO grantee`.
public struct DefaultPrivilegeGrant: Sendable, Hashable {
    public var owner: String
    /// nil for a global default (every schema).
    public var schema: String?
    public var kind: ObjectKind
    public var privileges: [String]
    public var location: SourceLocation
}

/// A set of privileges: the body of a profile, or a role's inline `grants:`.
public struct PrivilegeSet: Sendable, Hashable {
    public var database: [String] = []
    public var databaseLocation: SourceLocation?
    public var schemas: [ObjectGrant] = []
    public var objects: [ObjectGrant] = []
    public var defaultPrivileges: [DefaultPrivilegeGrant] = []

    public init() {}

    mutating func merge(_ other: PrivilegeSet) {
        database = ObjectKind.database.ordered(database + other.database)
        databaseLocation = databaseLocation ?? other.databaseLocation
        schemas += other.schemas
        objects += other.objects
        defaultPrivileges += other.defaultPrivileges
    }

    var isEmpty: Bool { database.isEmpty && schemas.isEmpty && objects.isEmpty && defaultPrivileges.isEmpty }
}

/// A per-role setting applied with `ALTER ROLE … SET`.
public struct RoleSetting: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        /// `statement_timeout: 60s` → `SET statement_timeout = '60s'`.
        case scalar(String)
        /// `search_path: [nfl, public]` → `SET search_path = 'nfl', 'public'`.
        case list([String])
    }

    public var name: String
    public var value: Value
    public var location: SourceLocation
}

/// Where a login role's password comes from. The password itself never appears in a spec.
public enum PasswordSource: Sendable, Hashable, CustomStringConvertible {
    case environment(String)
    case file(String)
    /// `password_ref`: any secret reference (`env:`, `file:`, `aws-sm:…`), resolved by NFLDBCore's ``SecretResolver``.
    case reference(String)

    public var description: String {
        switch self {
        case .environment(let name): "$\(name)"
        case .file(let path): "file \(path)"
        case .reference(let text): text
        }
    }
}

/// One role the spec manages.
public struct RoleDefinition: Sendable, Hashable {
    public var name: String
    public var location: SourceLocation
    public var login = false
    public var createRole = false
    public var createDatabase = false
    public var inherit = true
    public var connectionLimit = -1
    /// Text PostgreSQL accepts for `VALID UNTIL` (`2026-12-31`, `infinity`); nil = no expiry.
    public var validUntil: String?
    public var comment: String?
    public var password: PasswordSource?
    public var memberOf: [(name: String, location: SourceLocation)] = []
    public var settings: [RoleSetting] = []
    public var profiles: [(name: String, location: SourceLocation)] = []
    /// Inline grants plus every profile's, merged by the parser.
    public var privileges = PrivilegeSet()

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }

    public static func == (lhs: RoleDefinition, rhs: RoleDefinition) -> Bool {
        lhs.name == rhs.name && lhs.location == rhs.location && lhs.login == rhs.login && lhs.createRole == rhs.createRole
            && lhs.createDatabase == rhs.createDatabase && lhs.inherit == rhs.inherit && lhs.connectionLimit == rhs.connectionLimit
            && lhs.validUntil == rhs.validUntil && lhs.comment == rhs.comment && lhs.password == rhs.password
            && lhs.memberOf.map(\.name) == rhs.memberOf.map(\.name) && lhs.settings == rhs.settings
            && lhs.profiles.map(\.name) == rhs.profiles.map(\.name) && lhs.privileges == rhs.privileges
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

/// A schema whose objects the spec manages, and the role that owns (creates) them.
public struct ManagedSchema: Sendable, Hashable {
    public var name: String
    /// The role migrations run as; default privileges are declared FOR this role, and `plan`
    /// warns about objects in the schema owned by anyone else.
    public var owner: String?
    public var location: SourceLocation
}

/// What PUBLIC (every role) keeps. Only what is written here is managed for PUBLIC.
public struct PublicPolicy: Sendable, Hashable {
    /// Privileges PUBLIC keeps on the database; nil = leave PUBLIC's database privileges alone.
    public var database: [String]?
    /// Privileges PUBLIC keeps on schema `public`; nil (not in the file) only revokes the CREATE that
    /// PostgreSQL < 15 grants to PUBLIC, and never grants anything.
    public var schemaPublic: [String]?
    /// Whether PUBLIC may execute functions in managed schemas, including future ones (a global
    /// `ALTER DEFAULT PRIVILEGES FOR ROLE <owner> REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`);
    /// nil = leave alone.
    public var functionExecute: Bool?
    public var location: SourceLocation?

    public init() {}
}

/// A parsed, validated roles spec: one file or a directory of YAML files.
public struct RoleSpec: Sendable {
    public var files: [String]
    public var roles: [RoleDefinition]
    public var schemas: [ManagedSchema]
    public var publicPolicy: PublicPolicy
    /// Roles the spec may reference (`member_of: [pg_monitor]`) but never changes.
    public var unmanagedRoles: [String]
    /// Roles whose role name prefix was applied (see ``withRolePrefix(_:)``).
    public var rolePrefix: String = ""

    public var managedRoleNames: Set<String> { Set(roles.map(\.name)) }

    public func role(_ name: String) -> RoleDefinition? { roles.first { $0.name == name } }

    /// Every schema the spec touches: declared ones and those named by privileges.
    public var managedSchemaNames: [String] {
        var names: [String] = schemas.map(\.name)
        func add(_ name: String) { if !names.contains(name) { names.append(name) } }
        for role in roles {
            role.privileges.schemas.forEach { add($0.schema) }
            role.privileges.objects.forEach { add($0.schema) }
            role.privileges.defaultPrivileges.compactMap(\.schema).forEach { add($0) }
        }
        return names
    }

    /// The declared owner of a schema's objects.
    public func owner(ofSchema name: String) -> String? { schemas.first { $0.name == name }?.owner }

    /// A copy in which every managed role name (and every reference to one) starts with `prefix`.
    /// Unmanaged roles keep their names. Used to run the shipped spec side by side with another
    /// copy on one cluster (staging next to CI, or parallel tests).
    public func withRolePrefix(_ prefix: String) -> RoleSpec {
        guard !prefix.isEmpty else { return self }
        let managed = managedRoleNames
        func rename(_ name: String) -> String { managed.contains(name) ? prefix + name : name }
        var copy = self
        copy.rolePrefix = prefix + rolePrefix
        copy.roles = roles.map { role in
            var role = role
            role.name = rename(role.name)
            role.memberOf = role.memberOf.map { (rename($0.name), $0.location) }
            role.privileges.defaultPrivileges = role.privileges.defaultPrivileges.map { grant in
                var grant = grant
                grant.owner = rename(grant.owner)
                return grant
            }
            role.settings = role.settings.map { setting in
                // `role: nfl_owner` (SET ROLE at login) names a role too.
                guard setting.name == "role", case .scalar(let value) = setting.value else { return setting }
                var setting = setting
                setting.value = .scalar(rename(value))
                return setting
            }
            return role
        }
        copy.schemas = schemas.map { schema in
            var schema = schema
            schema.owner = schema.owner.map(rename)
            return schema
        }
        return copy
    }
}

/// Quotes an identifier the way nfldb always does (double quotes, embedded quotes doubled).
func quoteIdentifier(_ name: String) -> String { PostgresIdentifier.quote(name) }

/// Quotes a string literal for DDL that cannot take parameters (`ALTER ROLE … SET`, `COMMENT ON`).
func quoteLiteral(_ value: String) -> String { PostgresIdentifier.literal(value) }
