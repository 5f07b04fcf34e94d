import Foundation
import NFLDBCore

/// Options that change what a plan contains.
public struct RolePlanOptions: Sendable {
    /// Also revoke privileges, memberships and settings of managed roles that the spec does not list.
    public var revokeUnmanaged = false
    /// Fail when a login role's password source is unset, instead of warning.
    public var requirePasswords = false
    /// Set passwords even when the current one cannot be compared (runner is not a superuser).
    public var resetUncomparablePasswords = false
    /// Where `password_env` variables are read.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Warnings from parsing the spec, carried into the plan.
    public var specWarnings: [SpecIssue] = []

    public init() {}
}

/// A login role's password source is unset and `--require-passwords` was given.
public struct MissingPasswordError: NFLDBError, Sendable {
    public let roles: [(role: String, source: String)]

    public var diagnostic: Diagnostic {
        Diagnostic(
            "password source unset for \(roles.map { "\($0.role) (\($0.source))" }.joined(separator: ", "))",
            hint: "Set the environment variable or create the file, or drop --require-passwords to leave these passwords as they are.")
    }
}

/// A privilege on one object.
struct GrantKey: Hashable {
    let object: ObjectRef
    let grantee: Grantee
    let privilege: String
}

/// An object privileges are granted on, with how to name it in SQL.
struct ObjectRef: Hashable {
    let kind: ObjectKind
    /// `DATABASE`, `SCHEMA`, `TABLE`, `SEQUENCE`, `FUNCTION` or `PROCEDURE`.
    let keyword: String
    let sql: String
    let display: String
    let owner: String
    /// The schema the object is (or, for a schema, that it is); nil for the database.
    let schema: String?
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE owner [IN SCHEMA schema] … ON <kind> … grantee`.
struct DefaultKey: Hashable {
    let owner: String
    let schema: String?
    let kind: ObjectKind
    let grantee: Grantee
    let privilege: String
}

/// Computes the SQL that turns the database described by a ``CatalogSnapshot`` into the one
/// described by a ``RoleSpec``. Pure: no database access.
public struct RolePlanner {
    let spec: RoleSpec
    let snapshot: CatalogSnapshot
    let options: RolePlanOptions

    public init(spec: RoleSpec, snapshot: CatalogSnapshot, options: RolePlanOptions) {
        self.spec = spec
        self.snapshot = snapshot
        self.options = options
    }

    private var blocks: [String: [PlannedStatement]] = [:]
    private var warnings: [String] = []
    private var unmanaged: [String] = []
    private var missing: [String] = []
    private var ownership: [String] = []
    private var missingPasswords: [(role: String, source: String)] = []

    /// - Throws: ``MissingPasswordError`` when `requirePasswords` is set and a source is unset;
    ///   ``OperatorError`` when a password file cannot be read.
    public mutating func plan(target: String, serverVersion: String) throws -> RolePlan {
        warnings = options.specWarnings.map(\.description)
        try refuseLockingOut()
        let managed = spec.managedRoleNames
        for name in spec.unmanagedRoles where !snapshot.existingRoles.contains(name) {
            warnings.append("unmanaged role \(name) does not exist; statements that reference it will fail")
        }
        for role in spec.roles {
            planRole(role)
            try planPassword(role)
        }
        planForeignMemberships()
        planPrivileges(managed: managed)
        checkOwnership()
        checkConnectPaths()
        if !missingPasswords.isEmpty, options.requirePasswords {
            throw MissingPasswordError(roles: missingPasswords)
        }
        let order = roleOrder()
        var statements: [PlannedStatement] = []
        // Roles outside the spec (drift on their memberships) come after the managed ones.
        let outside = blocks.keys.filter { !order.contains($0) && $0 != "PUBLIC" }.sorted()
        for name in order + outside + ["PUBLIC"] {
            let block = blocks[name] ?? []
            // Within a block: changes first, then drift.
            statements += block.filter { !$0.isDrift } + block.filter(\.isDrift)
        }
        if order.isEmpty == false, hasCreateCycle(order) {
            let creates = statements.filter { $0.kind == .createRole }
            statements = creates + statements.filter { $0.kind != .createRole }
        }
        // A plan read by a non-superuser is still right, but apply would run it as that role: grants on
        // objects other roles own, and memberships it holds no ADMIN OPTION on, fail with 42501.
        if !snapshot.isSuperuser, !statements.isEmpty {
            warnings.append(
                "\(snapshot.currentUser) is not a superuser: `roles apply` as this role fails with SQLSTATE 42501 (and changes nothing) at the first "
                    + "grant on an object another role owns; apply as a superuser (e.g. --dsn 'user=postgres …')")
        }
        return RolePlan(
            database: snapshot.database, target: target, serverVersion: serverVersion, runner: snapshot.currentUser,
            specFiles: spec.files, statements: statements, warnings: warnings, unmanaged: unmanaged.sorted(), missingObjects: missing,
            ownership: ownership)
    }

    /// A spec entry for the bootstrap superuser or for the role nfldb runs as may not change its
    /// SUPERUSER or LOGIN attribute: managed roles are always NOSUPERUSER, so `roles: {postgres: …}`
    /// would leave the cluster without a superuser, and a runner could lock itself out.
    ///
    /// - Throws: ``RoleSpecError`` (exit status 2) naming each entry's file and line.
    private func refuseLockingOut() throws {
        var issues: [SpecIssue] = []
        for role in spec.roles {
            var what: [String] = []
            if role.name == snapshot.bootstrapSuperuser { what.append("the bootstrap superuser") }
            if role.name == snapshot.sessionUser || role.name == snapshot.currentUser { what.append("the role nfldb is connected as") }
            guard !what.isEmpty, let state = snapshot.roles[role.name] else { continue }
            var changes: [String] = []
            if state.superuser { changes.append("remove SUPERUSER (managed roles are always NOSUPERUSER)") }
            if state.login != role.login { changes.append(role.login ? "add LOGIN" : "remove LOGIN") }
            // The runner manages roles through CREATEROLE (unless superuser): removing it from itself
            // would make this apply the last one that works.
            if (role.name == snapshot.sessionUser || role.name == snapshot.currentUser) && state.createRole && !role.createRole {
                changes.append("remove CREATEROLE (which nfldb needs to manage roles)")
            }
            guard !changes.isEmpty else { continue }
            issues.append(SpecIssue(
                "role \(role.name) is \(what.joined(separator: " and ")): this entry would \(changes.joined(separator: " and ")); "
                    + "remove the entry (nfldb does not manage the roles it runs as), or run nfldb as another role",
                at: role.location))
        }
        if !issues.isEmpty { throw RoleSpecError(issues) }
    }

    private mutating func add(_ statement: PlannedStatement) {
        blocks[statement.role, default: []].append(statement)
    }

    // MARK: - Roles, memberships, settings

    private mutating func planRole(_ role: RoleDefinition) {
        let name = quoteIdentifier(role.name)
        let desiredValidUntil = role.validUntil.flatMap { snapshot.validUntilEpochs[$0] }
        guard let state = snapshot.roles[role.name] else {
            var attributes = [
                role.login ? "LOGIN" : "NOLOGIN", "NOSUPERUSER", role.createDatabase ? "CREATEDB" : "NOCREATEDB",
                role.createRole ? "CREATEROLE" : "NOCREATEROLE", role.inherit ? "INHERIT" : "NOINHERIT", "NOREPLICATION", "NOBYPASSRLS",
                "CONNECTION LIMIT \(role.connectionLimit)",
            ]
            if let validUntil = role.validUntil { attributes.append("VALID UNTIL \(quoteLiteral(validUntil))") }
            add(PlannedStatement(role: role.name, kind: .createRole, sql: "CREATE ROLE \(name) WITH \(attributes.joined(separator: " "));"))
            if let comment = role.comment {
                add(PlannedStatement(role: role.name, kind: .comment, sql: "COMMENT ON ROLE \(name) IS \(quoteLiteral(comment));"))
            }
            planMemberships(role, existing: false)
            planSettings(role, state: nil)
            return
        }
        var changes: [String] = []
        if state.login != role.login { changes.append(role.login ? "LOGIN" : "NOLOGIN") }
        if state.superuser { changes.append("NOSUPERUSER") }
        if state.createDatabase != role.createDatabase { changes.append(role.createDatabase ? "CREATEDB" : "NOCREATEDB") }
        if state.createRole != role.createRole { changes.append(role.createRole ? "CREATEROLE" : "NOCREATEROLE") }
        if state.inherit != role.inherit { changes.append(role.inherit ? "INHERIT" : "NOINHERIT") }
        if state.replication { changes.append("NOREPLICATION") }
        if state.bypassRLS { changes.append("NOBYPASSRLS") }
        if state.connectionLimit != role.connectionLimit { changes.append("CONNECTION LIMIT \(role.connectionLimit)") }
        let actualExpiry = state.validUntilEpoch.flatMap { $0.isInfinite ? nil : $0 }
        let wantedExpiry = desiredValidUntil.flatMap { $0.isInfinite ? nil : $0 }
        if actualExpiry != wantedExpiry {
            changes.append("VALID UNTIL \(quoteLiteral(role.validUntil ?? "infinity"))")
        }
        if !changes.isEmpty {
            add(PlannedStatement(role: role.name, kind: .alterRole, sql: "ALTER ROLE \(name) WITH \(changes.joined(separator: " "));"))
        }
        if let comment = role.comment, state.comment != comment {
            add(PlannedStatement(role: role.name, kind: .comment, sql: "COMMENT ON ROLE \(name) IS \(quoteLiteral(comment));"))
        }
        planMemberships(role, existing: true)
        planSettings(role, state: state)
    }

    private mutating func planMemberships(_ role: RoleDefinition, existing: Bool) {
        let actual = snapshot.memberships.filter { $0.member == role.name }
        let actualGroups = Set(actual.map(\.group))
        let wanted = role.memberOf.map(\.name)
        for group in wanted where !actualGroups.contains(group) {
            add(PlannedStatement(role: role.name, kind: .membership, sql: "GRANT \(quoteIdentifier(group)) TO \(quoteIdentifier(role.name));"))
        }
        for membership in actual.sorted(by: { $0.group < $1.group }) {
            let group = membership.group
            if !wanted.contains(group) {
                add(PlannedStatement(
                    role: role.name, kind: .membership, sql: "REVOKE \(quoteIdentifier(group)) FROM \(quoteIdentifier(role.name));",
                    reason: "membership not in the spec" + (privilegedGroupReason(membership).map { "; \($0)" } ?? ""), isDrift: true,
                    runs: options.revokeUnmanaged))
            } else if membership.adminOption {
                // The spec has no ADMIN OPTION: with it, the member can grant the group to anyone, itself included.
                add(PlannedStatement(
                    role: role.name, kind: .membership,
                    sql: "REVOKE ADMIN OPTION FOR \(quoteIdentifier(group)) FROM \(quoteIdentifier(role.name));",
                    reason: "ADMIN OPTION not in the spec: lets \(role.name) grant \(group) to any role", isDrift: true,
                    runs: options.revokeUnmanaged))
            }
        }
    }

    /// Roles whose membership gives power that the spec must state explicitly: reading or writing
    /// every table, the server's files or programs, the audit log's owner, or a superuser (SET ROLE).
    static let privilegedPredefinedRoles: [String: String] = [
        "pg_execute_server_program": "runs programs on the server as the OS user (COPY … TO PROGRAM)",
        "pg_read_server_files": "reads any file the server can read (COPY … FROM, pg_read_file)",
        "pg_write_server_files": "writes any file the server can write (COPY … TO)",
        "pg_read_all_data": "reads every table, view and sequence",
        "pg_write_all_data": "writes every table, view and sequence",
    ]

    /// Why membership in the group of `membership` is dangerous; nil for an ordinary group.
    private func privilegedGroupReason(_ membership: MembershipState) -> String? {
        if let reason = Self.privilegedPredefinedRoles[membership.group] { return "\(membership.group) \(reason)" }
        if membership.groupIsSuperuser { return "\(membership.group) is a superuser: a member can SET ROLE to it" }
        let auditOwners = [snapshot.auditSchemaOwner, spec.owner(ofSchema: "audit")].compactMap { $0 }
        if auditOwners.contains(membership.group) {
            return "\(membership.group) owns the audit log: a member can disable its guards and rewrite or drop it"
        }
        return nil
    }

    /// Memberships of roles outside the spec. A role the spec does not manage that is a member of a
    /// managed role (a backdoor login, or a group a login hides behind) is drift, and so is any such
    /// role in a privileged group (``privilegedGroupReason(_:)``). Superusers are skipped: membership
    /// gives them nothing. With a role prefix (a second copy of the spec on one cluster), roles in
    /// privileged groups are examined only when their names carry the prefix or a managed role is a
    /// member of them; the rest of the cluster belongs to the other copy's check.
    private mutating func planForeignMemberships() {
        let managed = spec.managedRoleNames
        let groupsOfManaged = groupsReached(from: managed)
        for membership in snapshot.memberships where !managed.contains(membership.member) && !membership.memberIsSuperuser {
            let reason: String
            if managed.contains(membership.group) {
                let logins = loginsReaching(membership.member, canLogin: membership.memberCanLogin)
                let through = logins == [membership.member] ? "" : logins.isEmpty ? " (no login reaches it yet)" : "; logins through it: \(logins.joined(separator: ", "))"
                reason = "\(membership.member) is not in the spec but is a member of managed role \(membership.group)\(membership.memberCanLogin ? " and can log in" : "")\(through)"
            } else if let privileged = privilegedGroupReason(membership),
                spec.rolePrefix.isEmpty || membership.member.hasPrefix(spec.rolePrefix) || groupsOfManaged.contains(membership.member)
            {
                reason = "\(membership.member) is not in the spec; \(privileged)"
            } else {
                continue
            }
            add(PlannedStatement(
                role: membership.member, kind: .membership,
                sql: "REVOKE \(quoteIdentifier(membership.group)) FROM \(quoteIdentifier(membership.member));", reason: reason,
                isDrift: true, runs: options.revokeUnmanaged))
        }
    }

    /// Every role that one of `roles` is a member of, directly or through other roles.
    private func groupsReached(from roles: Set<String>) -> Set<String> {
        var reached = Set<String>()
        var queue = Array(roles)
        while let next = queue.popLast() {
            for membership in snapshot.memberships where membership.member == next && reached.insert(membership.group).inserted {
                queue.append(membership.group)
            }
        }
        return reached
    }

    /// `role` (when it can log in) and every login role that is a member of it, directly or through other roles.
    private func loginsReaching(_ role: String, canLogin: Bool) -> [String] {
        var seen: Set<String> = [role]
        var queue = [role]
        var logins = canLogin ? [role] : []
        while let next = queue.popLast() {
            for membership in snapshot.memberships where membership.group == next && seen.insert(membership.member).inserted {
                queue.append(membership.member)
                if membership.memberCanLogin { logins.append(membership.member) }
            }
        }
        return logins.sorted()
    }

    /// The text PostgreSQL stores in `rolconfig` for a setting (lists are stored quoted with `quote_ident`).
    private func storedValue(_ value: RoleSetting.Value) -> String {
        switch value {
        case .scalar(let text): text
        case .list(let items): items.map { snapshot.quotedListElements[$0] ?? $0 }.joined(separator: ", ")
        }
    }

    private mutating func planSettings(_ role: RoleDefinition, state: RoleState?) {
        let name = quoteIdentifier(role.name)
        let actual = state?.settings ?? [:]
        for setting in role.settings {
            let wanted = storedValue(setting.value)
            guard actual[setting.name] != wanted else { continue }
            let valueSQL: String
            switch setting.value {
            case .scalar(let text): valueSQL = quoteLiteral(text)
            case .list(let items): valueSQL = items.isEmpty ? "''" : items.map(quoteLiteral).joined(separator: ", ")
            }
            add(PlannedStatement(
                role: role.name, kind: .setting, sql: "ALTER ROLE \(name) SET \(setting.name) = \(valueSQL);",
                reason: actual[setting.name].map { "currently \($0)" }))
        }
        let wantedNames = Set(role.settings.map(\.name))
        for key in actual.keys.sorted() where !wantedNames.contains(key) {
            add(PlannedStatement(
                role: role.name, kind: .setting, sql: "ALTER ROLE \(name) RESET \(key);", reason: "setting not in the spec",
                isDrift: true, runs: options.revokeUnmanaged))
        }
        for key in (state?.databaseSettings ?? [:]).keys.sorted() {
            add(PlannedStatement(
                role: role.name, kind: .setting,
                sql: "ALTER ROLE \(name) IN DATABASE \(quoteIdentifier(snapshot.database)) RESET \(key);",
                reason: "per-database setting not in the spec", isDrift: true, runs: options.revokeUnmanaged))
        }
    }

    private mutating func planPassword(_ role: RoleDefinition) throws {
        guard let source = role.password else { return }
        let exists = snapshot.roles[role.name] != nil
        guard let password = try source.resolve(environment: options.environment) else {
            missingPasswords.append((role.name, source.description))
            warnings.append(exists
                ? "password source \(source) of role \(role.name) is unset: its password is left as it is"
                : "password source \(source) of role \(role.name) is unset: the role is created without a password and cannot log in until it is set")
            return
        }
        var reason: String?
        if !exists {
            reason = "new role"
        } else {
            switch snapshot.roles[role.name]?.password ?? .none {
            case .none: reason = "no password yet"
            case .other(let kind): reason = "stored as \(kind); re-set as SCRAM-SHA-256"
            case .scram(let verifier):
                if !verifier.matches(password: password) { reason = "password changed" }
            case .unreadable:
                if options.resetUncomparablePasswords {
                    reason = "set unconditionally (--reset-passwords): pg_authid is not readable by \(snapshot.currentUser)"
                } else {
                    warnings.append(
                        "cannot compare the password of \(role.name): \(snapshot.currentUser) cannot read pg_authid; run as a superuser or pass --reset-passwords to set it anyway")
                }
            }
        }
        guard let reason else { return }
        let verifier = ScramVerifier(password: password)
        add(PlannedStatement(
            role: role.name, kind: .password,
            sql: "ALTER ROLE \(quoteIdentifier(role.name)) PASSWORD '<SCRAM-SHA-256 verifier of \(source)>';",
            executableSQL: "ALTER ROLE \(quoteIdentifier(role.name)) PASSWORD \(quoteLiteral(verifier.description));",
            reason: reason))
    }

    // MARK: - Privileges

    /// Privileges, as the README describes them: index the objects that exist; collect what the spec
    /// grants (each role's profiles and grants, and what PUBLIC keeps), noting objects that do not
    /// exist; collect what the catalog holds, limited to what the spec manages; classify the
    /// difference into grants, revokes the spec asks for, drift and grants of unmanaged roles; render
    /// SQL grouped per grantee.
    private mutating func planPrivileges(managed: Set<String>) {
        let objects = ObjectIndex(snapshot)
        let desired = desiredPrivileges(objects)
        let actual = actualPrivileges(objects)
        let changes = classify(desired: desired, actual: actual, objects: objects, managed: managed)
        renderChanges(changes)
    }

    /// The objects privileges can be granted on, as ``ObjectRef``s.
    private struct ObjectIndex {
        let database: ObjectRef
        let schemas: [String: ObjectRef]

        init(_ snapshot: CatalogSnapshot) {
            database = ObjectRef(
                kind: .database, keyword: "DATABASE", sql: quoteIdentifier(snapshot.database), display: "database \(snapshot.database)",
                owner: snapshot.databaseOwner, schema: nil)
            var schemas: [String: ObjectRef] = [:]
            for (name, state) in snapshot.schemas {
                schemas[name] = ObjectRef(kind: .schema, keyword: "SCHEMA", sql: quoteIdentifier(name), display: "schema \(name)", owner: state.owner, schema: name)
            }
            self.schemas = schemas
        }

        /// PUBLIC's privileges on schema `public` are managed (as written, or only CREATE revoked) when it exists.
        var publicSchemaManagedForPublic: Bool { schemas["public"] != nil }

        func relation(_ relation: RelationState) -> ObjectRef {
            ObjectRef(
                kind: relation.kind, keyword: relation.kind == .sequence ? "SEQUENCE" : "TABLE", sql: relation.sql,
                display: "\(relation.kind.rawValue) \(relation.qualifiedName)", owner: relation.owner, schema: relation.schema)
        }

        func function(_ function: FunctionState) -> ObjectRef {
            ObjectRef(
                kind: .function, keyword: function.isProcedure ? "PROCEDURE" : "FUNCTION", sql: function.signature,
                display: "function \(function.signature)", owner: function.owner, schema: function.schema)
        }
    }

    /// Privileges on objects and default privileges, desired or actual.
    private struct PrivilegeState {
        var grants = Set<GrantKey>()
        var defaults = Set<DefaultKey>()
    }

    /// What the spec grants on objects that exist. Objects and schemas that do not exist (yet) are
    /// listed in `missing`, each missing schema once with the roles whose grants it holds back.
    private mutating func desiredPrivileges(_ objects: ObjectIndex) -> PrivilegeState {
        var desired = PrivilegeState()
        var missingObjects: [String] = []
        func noteMissing(_ text: String) {
            if !missingObjects.contains(text) { missingObjects.append(text) }
        }
        var missingSchemas: [(name: String, roles: [String], first: SourceLocation)] = []
        func noteMissingSchema(_ schema: String, role: String, at location: SourceLocation) {
            if let index = missingSchemas.firstIndex(where: { $0.name == schema }) {
                if !missingSchemas[index].roles.contains(role) { missingSchemas[index].roles.append(role) }
            } else {
                missingSchemas.append((schema, [role], location))
            }
        }
        for role in spec.roles {
            let grantee = Grantee.role(role.name)
            let set = role.privileges
            for privilege in set.database {
                desired.grants.insert(GrantKey(object: objects.database, grantee: grantee, privilege: privilege))
            }
            for grant in set.schemas {
                guard let ref = objects.schemas[grant.schema] else {
                    noteMissingSchema(grant.schema, role: role.name, at: grant.location)
                    continue
                }
                grant.privileges.forEach { desired.grants.insert(GrantKey(object: ref, grantee: grantee, privilege: $0)) }
            }
            for grant in set.objects {
                guard snapshot.schemas[grant.schema] != nil else {
                    noteMissingSchema(grant.schema, role: role.name, at: grant.location)
                    continue
                }
                let refs = matchingObjects(grant, objects)
                if refs.isEmpty, grant.name != nil {
                    if let wrongKind = snapshot.relations.first(where: { $0.schema == grant.schema && $0.name == grant.name }) {
                        noteMissing("\(grant.pattern) is a \(wrongKind.kind.rawValue), not a \(grant.kind.rawValue) (at \(grant.location))")
                    } else {
                        noteMissing("\(grant.kind.rawValue) \(grant.pattern) (granted to \(role.name) at \(grant.location))")
                    }
                }
                for ref in refs {
                    grant.privileges.forEach { desired.grants.insert(GrantKey(object: ref, grantee: grantee, privilege: $0)) }
                }
            }
            for grant in set.defaultPrivileges where grant.owner != role.name {
                if let schema = grant.schema, snapshot.schemas[schema] == nil {
                    noteMissingSchema(schema, role: role.name, at: grant.location)
                    continue
                }
                grant.privileges.forEach {
                    desired.defaults.insert(DefaultKey(owner: grant.owner, schema: grant.schema, kind: grant.kind, grantee: grantee, privilege: $0))
                }
            }
        }
        let policy = spec.publicPolicy
        if let privileges = policy.database {
            privileges.forEach { desired.grants.insert(GrantKey(object: objects.database, grantee: .publicRole, privilege: $0)) }
        }
        if let privileges = policy.schemaPublic, let ref = objects.schemas["public"] {
            privileges.forEach { desired.grants.insert(GrantKey(object: ref, grantee: .publicRole, privilege: $0)) }
        }
        missing += missingSchemas.map {
            "schema \($0.name) does not exist: grants to \($0.roles.joined(separator: ", ")) in it are skipped (first named at \($0.first))"
        } + missingObjects
        return desired
    }

    /// The existing objects a grant's pattern (`nfl.games`, `nfl.*`) names.
    private func matchingObjects(_ grant: ObjectGrant, _ objects: ObjectIndex) -> [ObjectRef] {
        switch grant.kind {
        case .table, .sequence:
            snapshot.relations.filter { $0.schema == grant.schema && $0.kind == grant.kind && (grant.name == nil || $0.name == grant.name) }
                .map(objects.relation)
        case .function:
            snapshot.functions.filter { $0.schema == grant.schema && (grant.name == nil || $0.name == grant.name) }.map(objects.function)
        case .database, .schema:
            []
        }
    }

    /// Owners whose global function default is managed for PUBLIC: schema owners and every role
    /// default privileges are declared for.
    private var functionDefaultOwners: Set<String> {
        var owners = Set(spec.schemas.compactMap(\.owner))
        spec.roles.forEach { $0.privileges.defaultPrivileges.forEach { owners.insert($0.owner) } }
        return owners
    }

    /// What the catalog holds, limited to what the spec manages: the database, managed schemas (and
    /// PUBLIC's privileges on schema public), their relations and functions, and default ACLs in
    /// managed schemas or global ones of the owners above. Owners' own privileges are left out.
    private func actualPrivileges(_ objects: ObjectIndex) -> PrivilegeState {
        var actual = PrivilegeState()
        let managedSchemas = spec.managedSchemaNames
        func collect(_ ref: ObjectRef, _ acl: [ACLEntry]) {
            for entry in acl where entry.grantee != .role(ref.owner) {
                actual.grants.insert(GrantKey(object: ref, grantee: entry.grantee, privilege: entry.privilege))
            }
        }
        collect(objects.database, snapshot.databaseACL)
        for (name, state) in snapshot.schemas {
            guard let ref = objects.schemas[name] else { continue }
            if managedSchemas.contains(name) {
                collect(ref, state.acl)
            } else if name == "public" && objects.publicSchemaManagedForPublic {
                collect(ref, state.acl.filter { $0.grantee == .publicRole })
            }
        }
        for relation in snapshot.relations { collect(objects.relation(relation), relation.acl) }
        for function in snapshot.functions { collect(objects.function(function), function.acl) }

        let typeKinds: [String: ObjectKind] = ["r": .table, "S": .sequence, "f": .function]
        let functionOwners = functionDefaultOwners
        var globalFunctionRows = Set<String>()
        for row in snapshot.defaultACLs {
            if row.schema == nil && row.objectType == "f" { globalFunctionRows.insert(row.owner) }
            guard let kind = typeKinds[row.objectType] else { continue }
            let inScope = row.schema.map(managedSchemas.contains) ?? functionOwners.contains(row.owner)
            guard inScope else { continue }
            for entry in row.entries where entry.grantee != .role(row.owner) {
                actual.defaults.insert(DefaultKey(owner: row.owner, schema: row.schema, kind: kind, grantee: entry.grantee, privilege: entry.privilege))
            }
        }
        for owner in functionOwners where !globalFunctionRows.contains(owner) {
            // No global row: PostgreSQL's built-in default lets PUBLIC execute new functions.
            actual.defaults.insert(DefaultKey(owner: owner, schema: nil, kind: .function, grantee: .publicRole, privilege: "EXECUTE"))
        }
        return actual
    }

    /// The difference between desired and actual privileges.
    private struct PrivilegeChanges {
        var grants: [GrantKey] = []
        /// `drift` = not in the spec (runs only with --revoke-unmanaged); otherwise the spec's PUBLIC policy asks for it.
        var revokes: [(key: GrantKey, drift: Bool)] = []
        var defaultGrants: [DefaultKey] = []
        var defaultRevokes: [(key: DefaultKey, drift: Bool)] = []
    }

    /// Missing grants are granted (owners hold every privilege implicitly). Extra privileges of
    /// managed roles are drift; of unmanaged roles, reported only; of PUBLIC, revoked as the
    /// `public:` policy says, or drift on objects of managed schemas.
    private mutating func classify(desired: PrivilegeState, actual: PrivilegeState, objects: ObjectIndex, managed: Set<String>) -> PrivilegeChanges {
        var changes = PrivilegeChanges()
        let policy = spec.publicPolicy
        let managedSchemas = spec.managedSchemaNames
        for key in desired.grants where !actual.grants.contains(key) && key.grantee != .role(key.object.owner) {
            changes.grants.append(key)
        }
        for key in actual.grants where !desired.grants.contains(key) {
            switch key.grantee {
            case .role(let name) where managed.contains(name):
                changes.revokes.append((key, true))
            case .role(let name):
                unmanaged.append("\(name) (not managed) has \(key.privilege) on \(key.object.display)")
            case .publicRole:
                switch key.object.kind {
                case .database:
                    if policy.database != nil { changes.revokes.append((key, false)) }
                case .schema:
                    if key.object.schema == "public" && objects.publicSchemaManagedForPublic {
                        if policy.schemaPublic != nil || key.privilege == "CREATE" { changes.revokes.append((key, false)) }
                    } else if managedSchemas.contains(key.object.schema ?? "") {
                        changes.revokes.append((key, true))
                    }
                case .function:
                    if policy.functionExecute == false { changes.revokes.append((key, false)) }
                case .table, .sequence:
                    changes.revokes.append((key, true))
                }
            }
        }
        for key in desired.defaults where !actual.defaults.contains(key) { changes.defaultGrants.append(key) }
        for key in actual.defaults where !desired.defaults.contains(key) {
            switch key.grantee {
            case .role(let name) where managed.contains(name):
                changes.defaultRevokes.append((key, true))
            case .role(let name):
                unmanaged.append("\(name) (not managed) gets \(key.privilege) on new \(key.kind.rawValue)s of \(key.owner)\(key.schema.map { " in schema \($0)" } ?? "")")
            case .publicRole:
                if key.schema == nil && key.kind == .function && key.privilege == "EXECUTE" {
                    if policy.functionExecute == false { changes.defaultRevokes.append((key, false)) }
                } else {
                    changes.defaultRevokes.append((key, true))
                }
            }
        }
        return changes
    }

    /// SQL grouped per grantee: grants, then revokes (the spec's first, drift after).
    private mutating func renderChanges(_ changes: PrivilegeChanges) {
        for (grantee, keys) in Dictionary(grouping: changes.grants, by: \.grantee) {
            render(keys, verb: "GRANT", grantee: grantee, drift: false)
        }
        for (grantee, items) in Dictionary(grouping: changes.revokes, by: { $0.key.grantee }) {
            render(items.filter { !$0.drift }.map(\.key), verb: "REVOKE", grantee: grantee, drift: false)
            render(items.filter(\.drift).map(\.key), verb: "REVOKE", grantee: grantee, drift: true)
        }
        for (grantee, keys) in Dictionary(grouping: changes.defaultGrants, by: \.grantee) {
            renderDefaults(keys, verb: "GRANT", grantee: grantee, drift: false)
        }
        for (grantee, items) in Dictionary(grouping: changes.defaultRevokes, by: { $0.key.grantee }) {
            renderDefaults(items.filter { !$0.drift }.map(\.key), verb: "REVOKE", grantee: grantee, drift: false)
            renderDefaults(items.filter(\.drift).map(\.key), verb: "REVOKE", grantee: grantee, drift: true)
        }
    }

    private static let kindOrder: [String] = ["DATABASE", "SCHEMA", "TABLE", "SEQUENCE", "FUNCTION", "PROCEDURE"]

    /// One statement per (object type, privilege set): `GRANT SELECT, INSERT ON TABLE a, b TO r;`.
    private mutating func render(_ keys: [GrantKey], verb: String, grantee: Grantee, drift: Bool) {
        guard !keys.isEmpty else { return }
        var perObject: [ObjectRef: Set<String>] = [:]
        for key in keys { perObject[key.object, default: []].insert(key.privilege) }
        var groups: [String: (keyword: String, privileges: [String], objects: [ObjectRef])] = [:]
        for (object, privileges) in perObject {
            let ordered = object.kind.ordered(privileges)
            let id = object.keyword + "|" + ordered.joined(separator: ",")
            groups[id, default: (object.keyword, ordered, [])].objects.append(object)
        }
        let sortedGroups = groups.values.sorted {
            let a = Self.kindOrder.firstIndex(of: $0.keyword) ?? 99, b = Self.kindOrder.firstIndex(of: $1.keyword) ?? 99
            return a != b ? a < b : $0.privileges.joined(separator: ",") < $1.privileges.joined(separator: ",")
        }
        let block = grantee.roleName ?? "PUBLIC"
        for group in sortedGroups {
            let objects = group.objects.map(\.sql).sorted().joined(separator: ", ")
            let direction = verb == "GRANT" ? "TO" : "FROM"
            let sql = "\(verb) \(group.privileges.joined(separator: ", ")) ON \(group.keyword) \(objects) \(direction) \(grantee.sql);"
            add(PlannedStatement(
                role: block, kind: verb == "GRANT" ? .grant : .revoke, sql: sql,
                reason: drift ? "not in the spec" : (grantee == .publicRole && verb == "REVOKE" ? "public: in the spec" : nil),
                isDrift: drift, runs: !drift || options.revokeUnmanaged))
        }
    }

    private mutating func renderDefaults(_ keys: [DefaultKey], verb: String, grantee: Grantee, drift: Bool) {
        guard !keys.isEmpty else { return }
        struct Group: Hashable { let owner: String; let schema: String?; let kind: ObjectKind }
        var groups: [Group: Set<String>] = [:]
        for key in keys { groups[Group(owner: key.owner, schema: key.schema, kind: key.kind), default: []].insert(key.privilege) }
        let block = grantee.roleName ?? "PUBLIC"
        for (group, privileges) in groups.sorted(by: { ($0.key.owner, $0.key.schema ?? "", $0.key.kind.rawValue) < ($1.key.owner, $1.key.schema ?? "", $1.key.kind.rawValue) }) {
            var sql = "ALTER DEFAULT PRIVILEGES FOR ROLE \(quoteIdentifier(group.owner))"
            if let schema = group.schema { sql += " IN SCHEMA \(quoteIdentifier(schema))" }
            let direction = verb == "GRANT" ? "TO" : "FROM"
            sql += " \(verb) \(group.kind.ordered(privileges).joined(separator: ", ")) ON \(group.kind.defaultPrivilegesNoun) \(direction) \(grantee.sql);"
            var reason: String? = drift ? "not in the spec" : nil
            if !drift && grantee == .publicRole && group.schema == nil && group.kind == .function {
                reason = "public.function_execute: false (global: a per-schema default cannot remove PUBLIC's EXECUTE)"
            }
            add(PlannedStatement(
                role: block, kind: .defaultPrivileges, sql: sql, reason: reason, isDrift: drift, runs: !drift || options.revokeUnmanaged))
        }
    }

    // MARK: - Checks

    /// Objects in a schema with a declared owner must be owned by that owner, or default
    /// privileges (declared FOR the owner) never reach them.
    private mutating func checkOwnership() {
        for schema in spec.schemas {
            guard let owner = schema.owner, let state = snapshot.schemas[schema.name] else { continue }
            if state.owner != owner {
                ownership.append(
                    "schema \(schema.name) is owned by \(state.owner), not \(owner); fix: ALTER SCHEMA \(quoteIdentifier(schema.name)) OWNER TO \(quoteIdentifier(owner));")
            }
            for relation in snapshot.relations where relation.schema == schema.name && relation.kind == .table && relation.owner != owner {
                let keyword = ["v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"][relation.relkind] ?? "TABLE"
                ownership.append(
                    "\(relation.qualifiedName) is owned by \(relation.owner), not \(owner): default privileges do not apply to it (create objects as \(owner), e.g. SET ROLE \(owner)); fix: ALTER \(keyword) \(relation.sql) OWNER TO \(quoteIdentifier(owner));")
            }
            for function in snapshot.functions where function.schema == schema.name && function.owner != owner {
                ownership.append(
                    "\(function.signature) is owned by \(function.owner), not \(owner); fix: ALTER \(function.isProcedure ? "PROCEDURE" : "FUNCTION") \(function.signature) OWNER TO \(quoteIdentifier(owner));")
            }
        }
        for role in spec.roles where role.createRole && snapshot.serverVersionNumber < 160000 {
            warnings.append(
                "role \(role.name) has CREATEROLE: before PostgreSQL 16 that lets it grant itself any non-superuser role, including pg_execute_server_program; treat its members as near-superusers")
        }
    }

    /// Warns about login roles that will not be able to connect once PUBLIC loses CONNECT.
    private mutating func checkConnectPaths() {
        guard let publicDatabase = spec.publicPolicy.database, !publicDatabase.contains("CONNECT") else { return }
        let byName = Dictionary(spec.roles.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func canConnect(_ name: String, _ seen: inout Set<String>) -> Bool {
            guard seen.insert(name).inserted, let role = byName[name] else { return false }
            if role.privileges.database.contains("CONNECT") { return true }
            return role.memberOf.contains { group in byName[group.name]?.inherit != nil && canConnect(group.name, &seen) }
        }
        for role in spec.roles where role.login {
            var seen = Set<String>()
            if !canConnect(role.name, &seen) {
                warnings.append("login role \(role.name) has no CONNECT on database \(snapshot.database) (directly or through its groups) and PUBLIC loses it: it will not be able to log in")
            }
        }
    }

    // MARK: - Ordering

    /// Roles in an order where every group, default-privilege owner and `role` setting target
    /// comes before the roles that need it (spec order otherwise).
    private func roleOrder() -> [String] {
        let names = spec.roles.map(\.name)
        let managed = Set(names)
        var dependencies: [String: Set<String>] = [:]
        for role in spec.roles {
            var deps = Set(role.memberOf.map(\.name))
            role.privileges.defaultPrivileges.forEach { deps.insert($0.owner) }
            if case .scalar(let target)? = role.settings.first(where: { $0.name == "role" })?.value { deps.insert(target) }
            deps.remove(role.name)
            dependencies[role.name] = deps.intersection(managed)
        }
        var ordered: [String] = []
        var placed = Set<String>()
        while ordered.count < names.count {
            guard let next = names.first(where: { !placed.contains($0) && (dependencies[$0] ?? []).isSubset(of: placed) }) else {
                ordered += names.filter { !placed.contains($0) }
                break
            }
            ordered.append(next)
            placed.insert(next)
        }
        return ordered
    }

    private func hasCreateCycle(_ order: [String]) -> Bool {
        var placed = Set<String>()
        for name in order {
            let role = spec.role(name)
            var deps = Set(role?.memberOf.map(\.name) ?? [])
            role?.privileges.defaultPrivileges.forEach { deps.insert($0.owner) }
            deps.remove(name)
            if !deps.intersection(spec.managedRoleNames).isSubset(of: placed) { return true }
            placed.insert(name)
        }
        return false
    }
}
