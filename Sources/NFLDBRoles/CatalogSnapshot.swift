import Foundation
import Logging
import NFLDBPostgres

/// One entry of an ACL as `aclexplode` shows it.
public struct ACLEntry: Sendable, Hashable {
    public let grantee: Grantee
    public let privilege: String
    public let grantor: String
}

/// What a role's password looks like in the catalog.
public enum PasswordState: Sendable, Hashable {
    /// `pg_authid` is not readable by the runner (not a superuser): nothing can be compared.
    case unreadable
    case none
    case scram(ScramVerifier)
    /// md5 or clear text (from old clusters); re-set as SCRAM when a source is given.
    case other(String)
}

/// A role as `pg_roles` (and `pg_authid`, `pg_db_role_setting`) describe it.
public struct RoleState: Sendable, Hashable {
    public let name: String
    public let superuser: Bool
    public let inherit: Bool
    public let createRole: Bool
    public let createDatabase: Bool
    public let login: Bool
    public let replication: Bool
    public let bypassRLS: Bool
    public let connectionLimit: Int
    /// `rolvaliduntil` as epoch seconds (nil = no expiry).
    public let validUntilEpoch: Double?
    public let validUntilText: String?
    /// Role-wide settings (`pg_db_role_setting` with `setdatabase = 0`), by name; compared as a set.
    public let settings: [String: String]
    /// Settings for this role in the current database only (`ALTER ROLE … IN DATABASE … SET`).
    public let databaseSettings: [String: String]
    public let comment: String?
    public let password: PasswordState
}

public struct SchemaState: Sendable, Hashable {
    public let name: String
    public let owner: String
    public let acl: [ACLEntry]
}

/// A table-like relation (table, partitioned table, view, materialized view, foreign table) or a sequence.
public struct RelationState: Sendable, Hashable {
    public let schema: String
    public let name: String
    /// `pg_class.relkind`: r, p, v, m, f or S.
    public let relkind: String
    public let owner: String
    public let acl: [ACLEntry]
    public let isPartition: Bool

    public var kind: ObjectKind { relkind == "S" ? .sequence : .table }
    public var qualifiedName: String { "\(schema).\(name)" }
    var sql: String { quoteIdentifier(schema) + "." + quoteIdentifier(name) }
}

public struct FunctionState: Sendable, Hashable {
    public let schema: String
    public let name: String
    /// `"nfl"."fn"(integer, text)`: usable verbatim in GRANT/REVOKE.
    public let signature: String
    public let isProcedure: Bool
    public let owner: String
    public let acl: [ACLEntry]
}

/// One `pg_default_acl` row (exploded).
public struct DefaultACLState: Sendable, Hashable {
    public let owner: String
    /// nil for a global default (`defaclnamespace = 0`).
    public let schema: String?
    /// `r`, `S`, `f`, `T` or `n`.
    public let objectType: String
    public let entries: [ACLEntry]
}

/// One `pg_auth_members` row: `member` is a member of `group`.
public struct MembershipState: Sendable, Hashable {
    public let group: String
    public let member: String
    /// `WITH ADMIN OPTION`: the member may grant `group` to other roles (and to itself).
    public let adminOption: Bool
    public let groupIsSuperuser: Bool
    public let memberIsSuperuser: Bool
    public let memberCanLogin: Bool
}

/// Everything `plan` needs to know about the cluster and the current database, read in one go.
public struct CatalogSnapshot: Sendable {
    public var serverVersionNumber: Int
    public var database: String
    public var databaseOwner: String
    public var databaseACL: [ACLEntry]
    public var currentUser: String
    /// The role nfldb logged in as (differs from `currentUser` after a `role` setting or SET ROLE).
    public var sessionUser: String
    /// The bootstrap superuser (the role with oid 10, `postgres` in most installations).
    public var bootstrapSuperuser: String
    /// The owner of schema `audit` when it exists (the role `nfldb audit install` created).
    public var auditSchemaOwner: String?
    public var isSuperuser: Bool
    public var roles: [String: RoleState]
    /// Every role name among those asked about that exists.
    public var existingRoles: Set<String>
    /// Every membership in the cluster (roles outside the spec included: a member of a managed or a
    /// privileged role is drift even when nobody named it).
    public var memberships: [MembershipState]
    public var schemas: [String: SchemaState]
    public var relations: [RelationState]
    public var functions: [FunctionState]
    public var defaultACLs: [DefaultACLState]
    /// `valid_until` texts of the spec as epoch seconds, evaluated by the server.
    public var validUntilEpochs: [String: Double]
    /// List-setting elements as the server quotes them when storing `ALTER ROLE … SET` (`quote_ident`).
    public var quotedListElements: [String: String]
}

/// Reads a ``CatalogSnapshot`` for a spec.
public enum CatalogInspector {
    /// Reads, in order: who is connected (and whether `pg_authid` is readable), the roles the spec
    /// names (`pg_roles`, `pg_authid`, `pg_db_role_setting`), every membership (`pg_auth_members`),
    /// the ACLs of the database, the managed schemas and their relations and functions (`aclexplode`),
    /// the default ACLs (`pg_default_acl`), then lets the server evaluate the spec's `valid_until`
    /// texts and quote its list settings.
    ///
    /// - Throws: ``PostgresError`` from the catalog queries; ``RoleSpecError`` when a `valid_until`
    ///   value is not a timestamp PostgreSQL accepts.
    public static func snapshot(_ connection: PostgresConnection, spec: RoleSpec, logger: Logger) throws -> CatalogSnapshot {
        let session = try readSession(connection)
        let roles = try readRoles(connection, named: referencedRoleNames(spec), withPasswords: session.canReadPasswords)
        let memberships = try readMemberships(connection)
        let databaseACL = try readDatabaseACL(connection)
        let schemas = try readSchemas(connection, named: spec.managedSchemaNames.contains("public") ? spec.managedSchemaNames : spec.managedSchemaNames + ["public"])
        let relations = try readRelations(connection, inSchemas: spec.managedSchemaNames)
        let functions = try readFunctions(connection, inSchemas: spec.managedSchemaNames)
        let defaultACLs = try readDefaultACLs(connection)
        let validUntilEpochs = try evaluateValidUntil(connection, spec: spec)
        let quotedListElements = try quoteListElements(connection, spec: spec)

        let existing = Set(roles.keys)  // every referenced role that exists was read above
        logger.debug("catalog read", metadata: [
            "db.name": .string(session.database), "roles.existing": .stringConvertible(existing.count),
            "roles.relations": .stringConvertible(relations.count),
        ])
        return CatalogSnapshot(
            serverVersionNumber: connection.serverVersionNumber, database: session.database, databaseOwner: session.databaseOwner,
            databaseACL: databaseACL, currentUser: session.currentUser, sessionUser: session.sessionUser,
            bootstrapSuperuser: session.bootstrapSuperuser, auditSchemaOwner: session.auditSchemaOwner, isSuperuser: session.isSuperuser,
            roles: roles, existingRoles: existing, memberships: memberships, schemas: schemas, relations: relations, functions: functions,
            defaultACLs: defaultACLs, validUntilEpochs: validUntilEpochs, quotedListElements: quotedListElements)
    }

    /// The connection's database and roles.
    private struct Session {
        let database: String
        let databaseOwner: String
        let currentUser: String
        let sessionUser: String
        let bootstrapSuperuser: String
        let auditSchemaOwner: String?
        let isSuperuser: Bool
        let canReadPasswords: Bool
    }

    private static func readSession(_ connection: PostgresConnection) throws -> Session {
        let info = try connection.query("""
            SELECT current_database() AS db, pg_get_userbyid(d.datdba) AS owner, current_user AS usr, session_user AS session_usr,
                   pg_get_userbyid(10) AS bootstrap, r.rolsuper AS super, has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS authid,
                   (SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE n.nspname = 'audit') AS audit_owner
            FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user
            """).singleRow("database info")
        return Session(
            database: info["db"] ?? "", databaseOwner: info["owner"] ?? "", currentUser: info["usr"] ?? "",
            sessionUser: info["session_usr"] ?? "", bootstrapSuperuser: info["bootstrap"] ?? "", auditSchemaOwner: info["audit_owner"],
            isSuperuser: try info.decode("super"), canReadPasswords: try info.decode("authid"))
    }

    /// Managed roles, unmanaged roles and schema owners: the roles whose attributes a plan compares.
    private static func referencedRoleNames(_ spec: RoleSpec) -> [String] {
        var referenced = spec.managedRoleNames.union(spec.unmanagedRoles)
        spec.schemas.compactMap(\.owner).forEach { referenced.insert($0) }
        return Array(referenced).sorted()
    }

    /// Attributes, settings, comment and (when readable) password of each named role that exists.
    private static func readRoles(_ connection: PostgresConnection, named names: [String], withPasswords: Bool) throws -> [String: RoleState] {
        let passwordColumn = withPasswords ? "(SELECT a.rolpassword FROM pg_authid a WHERE a.oid = r.oid)" : "NULL::text"
        let rows = try connection.query(PostgresQuery(unsafeSQL: """
            SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
                   r.rolbypassrls, r.rolconnlimit, extract(epoch FROM r.rolvaliduntil)::float8 AS valid_epoch,
                   r.rolvaliduntil::text AS valid_text,
                   (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0) AS config,
                   (SELECT s.setconfig FROM pg_db_role_setting s, pg_database d
                     WHERE s.setrole = r.oid AND s.setdatabase = d.oid AND d.datname = current_database()) AS dbconfig,
                   shobj_description(r.oid, 'pg_authid') AS comment,
                   \(passwordColumn) AS password
            FROM pg_roles r WHERE r.rolname = ANY($1::text[])
            """, binds: [names.postgresText])).rows
        var roles: [String: RoleState] = [:]
        for row in rows {
            let name = row["rolname"] ?? ""
            let password: PasswordState
            if !withPasswords {
                password = .unreadable
            } else if let text = row["password"] {
                password = ScramVerifier(parsing: text).map(PasswordState.scram) ?? .other(text.hasPrefix("md5") ? "md5" : "clear text")
            } else {
                password = .none
            }
            roles[name] = RoleState(
                name: name, superuser: try row.decode("rolsuper"), inherit: try row.decode("rolinherit"),
                createRole: try row.decode("rolcreaterole"), createDatabase: try row.decode("rolcreatedb"),
                login: try row.decode("rolcanlogin"), replication: try row.decode("rolreplication"),
                bypassRLS: try row.decode("rolbypassrls"), connectionLimit: try row.decode("rolconnlimit"),
                validUntilEpoch: try row.decode("valid_epoch", as: Double?.self), validUntilText: row["valid_text"],
                settings: parseConfig(row["config"]), databaseSettings: parseConfig(row["dbconfig"]), comment: row["comment"],
                password: password)
        }
        return roles
    }

    /// Every membership in the cluster, with what the plan needs to judge it (one row per pair:
    /// PostgreSQL 16 keeps one per grantor).
    private static func readMemberships(_ connection: PostgresConnection) throws -> [MembershipState] {
        try connection.query("""
            SELECT g.rolname AS grp, m.rolname AS member, bool_or(am.admin_option) AS admin_option, g.rolsuper AS grp_super,
                   m.rolsuper AS member_super, m.rolcanlogin AS member_login
            FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
            GROUP BY g.rolname, m.rolname, g.rolsuper, m.rolsuper, m.rolcanlogin
            ORDER BY 1, 2
            """).rows.map { row in
            MembershipState(
                group: row["grp"] ?? "", member: row["member"] ?? "", adminOption: try row.decode("admin_option"),
                groupIsSuperuser: try row.decode("grp_super"), memberIsSuperuser: try row.decode("member_super"),
                memberCanLogin: try row.decode("member_login"))
        }
    }

    private static func readDatabaseACL(_ connection: PostgresConnection) throws -> [ACLEntry] {
        try connection.query("""
            SELECT \(unsafeRaw: granteeSQL("a")) AS grantee, a.privilege_type, pg_get_userbyid(a.grantor) AS grantor
            FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
            WHERE d.datname = current_database()
            """).rows.map(aclEntry)
    }

    private static func readSchemas(_ connection: PostgresConnection, named names: [String]) throws -> [String: SchemaState] {
        let rows = try connection.query("""
            SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner,
                   \(unsafeRaw: granteeSQL("a")) AS grantee, a.privilege_type, pg_get_userbyid(a.grantor) AS grantor
            FROM pg_namespace n LEFT JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a ON true
            WHERE n.nspname = ANY(\(names))
            """).rows
        let schemas = try groupedByObject(rows, key: { $0["nspname"] ?? "" }) { row, acl in
            SchemaState(name: row["nspname"] ?? "", owner: row["owner"] ?? "", acl: acl)
        }
        return Dictionary(schemas.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Tables, partitions, views, materialized views, foreign tables and sequences in the managed
    /// schemas, except those that belong to an extension.
    private static func readRelations(_ connection: PostgresConnection, inSchemas schemas: [String]) throws -> [RelationState] {
        let rows = try connection.query("""
            SELECT n.nspname, c.relname, c.relkind::text AS relkind, pg_get_userbyid(c.relowner) AS owner, c.relispartition,
                   \(unsafeRaw: granteeSQL("a")) AS grantee, a.privilege_type, pg_get_userbyid(a.grantor) AS grantor
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN LATERAL aclexplode(coalesce(c.relacl,
                acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a ON true
            WHERE n.nspname = ANY(\(schemas)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY n.nspname, c.relname
            """).rows
        return try groupedByObject(rows, key: { "\($0["nspname"] ?? "").\($0["relname"] ?? "")" }) { row, acl in
            RelationState(
                schema: row["nspname"] ?? "", name: row["relname"] ?? "", relkind: row["relkind"] ?? "r", owner: row["owner"] ?? "",
                acl: acl, isPartition: try row.decode("relispartition"))
        }
    }

    /// Functions and procedures in the managed schemas, except those that belong to an extension.
    private static func readFunctions(_ connection: PostgresConnection, inSchemas schemas: [String]) throws -> [FunctionState] {
        let rows = try connection.query("""
            SELECT n.nspname, p.proname, p.prokind::text AS prokind, pg_get_userbyid(p.proowner) AS owner,
                   format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS signature,
                   \(unsafeRaw: granteeSQL("a")) AS grantee, a.privilege_type, pg_get_userbyid(a.grantor) AS grantor
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a ON true
            WHERE n.nspname = ANY(\(schemas))
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
            ORDER BY 1, 2, 5
            """).rows
        return try groupedByObject(rows, key: { $0["signature"] ?? "" }) { row, acl in
            FunctionState(
                schema: row["nspname"] ?? "", name: row["proname"] ?? "", signature: row["signature"] ?? "", isProcedure: row["prokind"] == "p",
                owner: row["owner"] ?? "", acl: acl)
        }
    }

    /// Every `pg_default_acl` row, ordered by owner, schema and object type.
    private static func readDefaultACLs(_ connection: PostgresConnection) throws -> [DefaultACLState] {
        let rows = try connection.query("""
            SELECT pg_get_userbyid(d.defaclrole) AS owner, n.nspname, d.defaclobjtype::text AS objtype,
                   \(unsafeRaw: granteeSQL("a")) AS grantee, a.privilege_type, pg_get_userbyid(a.grantor) AS grantor
            FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
            LEFT JOIN LATERAL aclexplode(d.defaclacl) a ON true
            ORDER BY 1, 2, 3
            """).rows
        func key(_ row: PostgresRow) -> String { "\(row["owner"] ?? "")|\(row["nspname"] ?? "")|\(row["objtype"] ?? "")" }
        let defaults = groupedByObject(rows, key: key) { row, acl in
            (key: key(row), state: DefaultACLState(owner: row["owner"] ?? "", schema: row["nspname"], objectType: row["objtype"] ?? "", entries: acl))
        }
        return defaults.sorted { $0.key < $1.key }.map(\.state)
    }

    /// Rows of `<catalog> LEFT JOIN LATERAL aclexplode(…)` (one per ACL entry; one with a NULL
    /// privilege when the ACL is empty), folded into one object per key, in the order of the rows.
    private static func groupedByObject<Object>(
        _ rows: [PostgresRow], key: (PostgresRow) -> String, make: (PostgresRow, [ACLEntry]) throws -> Object
    ) rethrows -> [Object] {
        var order: [String] = []
        var first: [String: PostgresRow] = [:]
        var acls: [String: [ACLEntry]] = [:]
        for row in rows {
            let id = key(row)
            if first[id] == nil {
                order.append(id)
                first[id] = row
                acls[id] = []
            }
            if row["privilege_type"] != nil { acls[id]?.append(aclEntry(row)) }
        }
        return try order.compactMap { id in try first[id].map { try make($0, acls[id] ?? []) } }
    }

    /// The spec's `valid_until` texts as epoch seconds, evaluated by the server (so every format
    /// PostgreSQL accepts works, and a wrong one is reported at its line).
    private static func evaluateValidUntil(_ connection: PostgresConnection, spec: RoleSpec) throws -> [String: Double] {
        var epochs: [String: Double] = [:]
        var issues: [SpecIssue] = []
        for role in spec.roles {
            guard let text = role.validUntil, epochs[text] == nil else { continue }
            do {
                epochs[text] = try connection.query("SELECT extract(epoch FROM \(text)::timestamptz)::float8").scalar(Double.self)
            } catch let error as PostgresError {
                issues.append(SpecIssue("valid_until \"\(text)\" of role \(role.name) is not a timestamp: \(error.message)", at: role.location))
            }
        }
        if !issues.isEmpty { throw RoleSpecError(issues) }
        return epochs
    }

    /// List-setting elements as the server quotes them when storing `ALTER ROLE … SET` (`quote_ident`).
    private static func quoteListElements(_ connection: PostgresConnection, spec: RoleSpec) throws -> [String: String] {
        var elements: Set<String> = []
        for role in spec.roles {
            for setting in role.settings { if case .list(let items) = setting.value { elements.formUnion(items) } }
        }
        guard !elements.isEmpty else { return [:] }
        var quoted: [String: String] = [:]
        for row in try connection.query("SELECT x, quote_ident(x) AS q FROM unnest(\(Array(elements))::text[]) x").rows {
            quoted[row["x"] ?? ""] = row["q"] ?? ""
        }
        return quoted
    }

    private static func granteeSQL(_ alias: String) -> String {
        "CASE WHEN \(alias).grantee = 0 THEN NULL ELSE pg_get_userbyid(\(alias).grantee) END"
    }

    private static func aclEntry(_ row: PostgresRow) -> ACLEntry {
        ACLEntry(grantee: row["grantee"].map(Grantee.role) ?? .publicRole, privilege: row["privilege_type"] ?? "", grantor: row["grantor"] ?? "")
    }

    /// `{statement_timeout=60s,"search_path=\"$user\", public"}` → name → value (order does not matter).
    static func parseConfig(_ text: String?) -> [String: String] {
        guard let text, text.count >= 2 else { return [:] }
        var result: [String: String] = [:]
        for item in parseTextArray(text) {
            guard let equals = item.firstIndex(of: "=") else { continue }
            result[String(item[..<equals]).lowercased()] = String(item[item.index(after: equals)...])
        }
        return result
    }

    /// Parses a PostgreSQL text-array literal (`{a,"b c","d\"e"}`).
    static func parseTextArray(_ text: String) -> [String] {
        var items: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        var quotedItem = false
        for character in text.dropFirst().dropLast() {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" && inQuotes {
                escaped = true
            } else if character == "\"" {
                inQuotes.toggle()
                quotedItem = true
            } else if character == "," && !inQuotes {
                items.append(current)
                current = ""
                quotedItem = false
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty || quotedItem || !items.isEmpty { items.append(current) }
        return items
    }
}
