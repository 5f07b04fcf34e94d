import Foundation
import NFLDBCore
import Yams

/// Reads a roles spec from a YAML file or a directory of `*.yaml`/`*.yml` files, validating every
/// key, privilege and role reference, and reporting each problem with its file and line.
public struct RoleSpecParser {
    /// Warnings that do not stop the spec from being used (e.g. settings on a NOLOGIN role).
    public private(set) var warnings: [SpecIssue] = []
    private var issues: [SpecIssue] = []

    public init() {}

    /// Loads `path` (a file, or a directory whose YAML files are read in name order).
    ///
    /// - Throws: ``RoleSpecError`` listing every problem (exit status 2).
    public static func load(path: String) throws -> (spec: RoleSpec, warnings: [SpecIssue]) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RoleSpecError([SpecIssue("roles spec \(path) does not exist (set roles.spec or pass --spec)", at: nil)])
        }
        var files: [(String, String)] = []
        let paths: [String]
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            paths = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                .map { (path as NSString).appendingPathComponent($0) }
            if paths.isEmpty {
                throw RoleSpecError([SpecIssue("no *.yaml files in \(path)", at: nil)])
            }
        } else {
            paths = [path]
        }
        for file in paths {
            do {
                files.append((file, try String(contentsOfFile: file, encoding: .utf8)))
            } catch {
                throw RoleSpecError([SpecIssue("cannot read \(file): \(error.localizedDescription)", at: nil)])
            }
        }
        var parser = RoleSpecParser()
        let spec = try parser.parse(files: files)
        return (spec, parser.warnings)
    }

    /// Parses YAML texts (file name, contents) into one spec.
    public mutating func parse(files: [(name: String, text: String)]) throws -> RoleSpec {
        var documents = SpecDocuments()
        for (name, text) in files {
            let root: Node?
            do {
                root = try Yams.compose(yaml: text)
            } catch let error as YamlError {
                issues.append(SpecIssue("invalid YAML: \(Self.describe(error))", at: Self.location(of: error, file: name)))
                continue
            } catch {
                issues.append(SpecIssue("invalid YAML: \(error)", at: SourceLocation(file: name, line: 1)))
                continue
            }
            guard let root else { continue }
            readDocument(root, file: name, into: &documents)
        }
        let spec = resolve(documents, files: files.map(\.name))
        if !issues.isEmpty { throw RoleSpecError(issues) }
        return spec
    }

    // MARK: - Reading YAML

    /// Everything read from the files, before profiles and references are resolved.
    struct SpecDocuments {
        var roles: [(RoleDefinition, inline: PrivilegeSet)] = []
        var profiles: [String: (PrivilegeSet, SourceLocation)] = [:]
        var schemas: [ManagedSchema] = []
        var publicPolicy = PublicPolicy()
        var unmanaged: [(String, SourceLocation)] = []
    }

    private mutating func readDocument(_ root: Node, file: String, into documents: inout SpecDocuments) {
        guard let mapping = mapping(root, file: file, what: "the top level of a roles spec") else { return }
        for (key, value) in mapping {
            let name = key.string ?? ""
            let at = location(key, file)
            switch name {
            case "version":
                if value.string != "1" { issues.append(SpecIssue("unsupported spec version \(value.string ?? "?"); this nfldb reads version 1", at: at)) }
            case "schemas":
                guard let schemas = self.mapping(value, file: file, what: "schemas") else { continue }
                for (schemaKey, body) in schemas {
                    let schemaName = schemaKey.string ?? ""
                    var schema = ManagedSchema(name: schemaName, owner: nil, location: location(schemaKey, file))
                    if documents.schemas.contains(where: { $0.name == schemaName }) {
                        issues.append(SpecIssue("schema \(schemaName) is declared twice", at: schema.location))
                    }
                    if case .scalar = body, (body.string ?? "").isEmpty {
                        documents.schemas.append(schema)
                        continue
                    }
                    guard let fields = self.mapping(body, file: file, what: "schema \(schemaName)") else { continue }
                    for (fieldKey, fieldValue) in fields {
                        switch fieldKey.string ?? "" {
                        case "owner": schema.owner = scalar(fieldValue, file: file, what: "owner")
                        default: unknownKey(fieldKey, file: file, in: "schema \(schemaName)", allowed: ["owner"])
                        }
                    }
                    documents.schemas.append(schema)
                }
            case "public":
                documents.publicPolicy = readPublic(value, file: file, at: at)
            case "unmanaged_roles":
                for item in sequence(value, file: file, what: "unmanaged_roles") {
                    if let role = scalar(item, file: file, what: "role name") { documents.unmanaged.append((role, location(item, file))) }
                }
            case "profiles":
                guard let profiles = self.mapping(value, file: file, what: "profiles") else { continue }
                for (profileKey, body) in profiles {
                    let profileName = profileKey.string ?? ""
                    let at = location(profileKey, file)
                    if let existing = documents.profiles[profileName] {
                        issues.append(SpecIssue("profile \(profileName) is already defined at \(existing.1)", at: at))
                    }
                    documents.profiles[profileName] = (readPrivileges(body, file: file, owner: "profile \(profileName)"), at)
                }
            case "roles":
                guard let roles = self.mapping(value, file: file, what: "roles") else { continue }
                for (roleKey, body) in roles {
                    let roleName = roleKey.string ?? ""
                    let at = location(roleKey, file)
                    if let existing = documents.roles.first(where: { $0.0.name == roleName }) {
                        issues.append(SpecIssue("role \(roleName) is already defined at \(existing.0.location)", at: at))
                        continue
                    }
                    documents.roles.append(readRole(roleName, body, file: file, at: at))
                }
            default:
                unknownKey(key, file: file, in: "the spec", allowed: ["version", "schemas", "public", "unmanaged_roles", "profiles", "roles"])
            }
        }
    }

    private mutating func readPublic(_ node: Node, file: String, at: SourceLocation) -> PublicPolicy {
        var policy = PublicPolicy()
        policy.location = at
        guard let fields = mapping(node, file: file, what: "public") else { return policy }
        for (key, value) in fields {
            switch key.string ?? "" {
            case "database":
                policy.database = privileges(value, kind: .database, file: file, what: "public.database")
            case "schema_public":
                policy.schemaPublic = privileges(value, kind: .schema, file: file, what: "public.schema_public")
            case "function_execute":
                policy.functionExecute = boolean(value, file: file, what: "public.function_execute")
            default:
                unknownKey(key, file: file, in: "public", allowed: ["database", "schema_public", "function_execute"])
            }
        }
        return policy
    }

    private static let roleKeys = [
        "login", "createrole", "createdb", "inherit", "connection_limit", "valid_until", "comment", "password_env", "password_file", "password_ref",
        "member_of", "settings", "profiles", "grants",
    ]

    private mutating func readRole(_ name: String, _ node: Node, file: String, at: SourceLocation) -> (RoleDefinition, inline: PrivilegeSet) {
        var role = RoleDefinition(name: name, location: at)
        var inline = PrivilegeSet()
        checkRoleName(name, at: at)
        if case .scalar = node, (node.string ?? "").isEmpty { return (role, inline) }
        guard let fields = mapping(node, file: file, what: "role \(name)") else { return (role, inline) }
        for (key, value) in fields {
            let keyAt = location(key, file)
            switch key.string ?? "" {
            case "login": role.login = boolean(value, file: file, what: "login") ?? false
            case "createrole":
                role.createRole = boolean(value, file: file, what: "createrole") ?? false
                if role.createRole {
                    warnings.append(SpecIssue(
                        "createrole on \(name): before PostgreSQL 16 it lets \(name) grant itself any non-superuser role (pg_execute_server_program, pg_read_all_data, the audit owner); prefer applying role changes with this spec as a superuser",
                        at: keyAt))
                }
            case "createdb": role.createDatabase = boolean(value, file: file, what: "createdb") ?? false
            case "inherit": role.inherit = boolean(value, file: file, what: "inherit") ?? true
            case "connection_limit":
                if let text = scalar(value, file: file, what: "connection_limit") {
                    if let limit = Int(text), limit >= -1 { role.connectionLimit = limit } else {
                        issues.append(SpecIssue("connection_limit must be an integer ≥ -1 (-1 = no limit), not \(text)", at: location(value, file)))
                    }
                }
            case "valid_until": role.validUntil = scalar(value, file: file, what: "valid_until")
            case "comment": role.comment = scalar(value, file: file, what: "comment")
            case "password_env", "password_file", "password_ref":
                guard let text = scalar(value, file: file, what: key.string ?? ""), !text.isEmpty else { continue }
                if role.password != nil {
                    issues.append(SpecIssue("give one of password_ref, password_env or password_file, not several", at: keyAt))
                }
                if key.string == "password_ref" {
                    do {
                        _ = try SecretReference.parse(text, what: "password_ref")
                    } catch let error as ConfigurationError {
                        issues.append(SpecIssue(error.diagnostic.summary + (error.diagnostic.hint.map { " (\($0))" } ?? ""), at: location(value, file)))
                    } catch {}
                    role.password = .reference(text)
                } else {
                    role.password = key.string == "password_env" ? .environment(text) : .file(text)
                }
            case "member_of":
                for item in sequence(value, file: file, what: "member_of") {
                    if let group = scalar(item, file: file, what: "role name") { role.memberOf.append((group, location(item, file))) }
                }
            case "settings":
                guard let settings = mapping(value, file: file, what: "settings") else { continue }
                var previous: (name: String, value: Node)?
                for (settingKey, settingValue) in settings {
                    let settingName = (settingKey.string ?? "").lowercased()
                    // `{ search_path: public, nfl }`: in a flow mapping the comma ends the setting, and
                    // `nfl` becomes a setting of its own with no value.
                    if case .scalar(let scalar) = settingValue, scalar.style == .plain, ["", "~", "null"].contains(scalar.string) {
                        var message = "setting \"\(settingKey.string ?? "")\" has no value"
                        if let previous, Self.listSettings.contains(previous.name), let first = previous.value.scalar?.string {
                            message += "; in { … } a comma separates settings, so this was meant as part of \(previous.name): "
                                + "use a YAML list: [\(first), \(settingKey.string ?? "")]"
                        }
                        issues.append(SpecIssue(message, at: location(settingKey, file)))
                        previous = nil
                        continue
                    }
                    role.settings += readSetting(settingKey, settingValue, file: file)
                    previous = (settingName, settingValue)
                }
            case "profiles":
                for item in sequence(value, file: file, what: "profiles") {
                    if let profile = scalar(item, file: file, what: "profile name") { role.profiles.append((profile, location(item, file))) }
                }
            case "grants":
                inline = readPrivileges(value, file: file, owner: "role \(name)")
            case "superuser", "replication", "bypassrls":
                issues.append(SpecIssue(
                    "\(key.string ?? "") is not supported: nfldb keeps every managed role NOSUPERUSER NOREPLICATION NOBYPASSRLS",
                    at: keyAt))
            case "password":
                issues.append(SpecIssue(
                    "a password never goes in the spec; name its source with password_env: VAR or password_file: PATH", at: keyAt))
            default:
                unknownKey(key, file: file, in: "role \(name)", allowed: Self.roleKeys)
            }
        }
        if role.password != nil && !role.login {
            issues.append(SpecIssue("role \(name) has a password source but is not login: true", at: at))
        }
        if !role.login, !role.settings.isEmpty {
            let names = role.settings.map(\.name).joined(separator: ", ")
            warnings.append(SpecIssue(
                "settings (\(names)) on NOLOGIN role \(name) are not inherited by its members: put them on the login roles",
                at: role.settings.first?.location ?? at))
        }
        return (role, inline)
    }

    private mutating func readSetting(_ key: Node, _ value: Node, file: String) -> [RoleSetting] {
        let name = (key.string ?? "").lowercased()
        let at = location(key, file)
        guard name.range(of: #"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$"#, options: .regularExpression) != nil else {
            issues.append(SpecIssue("\"\(key.string ?? "")\" is not a setting name", at: at))
            return []
        }
        if ["session_authorization", "is_superuser"].contains(name) {
            issues.append(SpecIssue("\(name) cannot be set per role", at: at))
            return []
        }
        switch value {
        case .sequence(let items):
            var values: [String] = []
            for item in items {
                if let text = scalar(item, file: file, what: "a value of \(name)") { values.append(text) }
            }
            return [RoleSetting(name: name, value: .list(values), location: at)]
        default:
            guard let text = scalar(value, file: file, what: "the value of \(name)") else { return [] }
            if Self.listSettings.contains(name) && !text.isEmpty {
                // PostgreSQL keeps a quoted value of these as one element: `search_path = 'public, nfl'` is
                // one schema named "public, nfl". A YAML scalar cannot say which was meant.
                if text.contains(",") {
                    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    issues.append(SpecIssue(
                        "\(name) is a list setting, and \"\(text)\" is one scalar: PostgreSQL would store it as one element named \"\(text)\"; "
                            + "use a YAML list: [\(items.joined(separator: ", "))]", at: location(value, file)))
                    return []
                }
                return [RoleSetting(name: name, value: .list([text]), location: at)]
            }
            return [RoleSetting(name: name, value: .scalar(text), location: at)]
        }
    }

    /// Settings PostgreSQL reads as a list and stores element by element, each quoted like an
    /// identifier (`GUC_LIST_QUOTE`; the list pg_dump keeps in `variable_is_guc_list_quote`). A scalar
    /// is one element; a list is written as `'a', 'b'`.
    static let listSettings: Set<String> = [
        "search_path", "temp_tablespaces", "local_preload_libraries", "session_preload_libraries", "shared_preload_libraries",
        "unix_socket_directories",
    ]

    private static let privilegeKeys = ["database", "schemas", "tables", "sequences", "functions", "default_privileges"]

    private mutating func readPrivileges(_ node: Node, file: String, owner: String) -> PrivilegeSet {
        var set = PrivilegeSet()
        guard let fields = mapping(node, file: file, what: "the privileges of \(owner)") else { return set }
        for (key, value) in fields {
            let at = location(key, file)
            switch key.string ?? "" {
            case "database":
                set.database = ObjectKind.database.ordered(privileges(value, kind: .database, file: file, what: "database") ?? [])
                set.databaseLocation = at
            case "schemas":
                guard let schemas = mapping(value, file: file, what: "schemas") else { continue }
                for (schemaKey, list) in schemas {
                    let schema = schemaKey.string ?? ""
                    checkName(schema, what: "schema", at: location(schemaKey, file))
                    let names = privileges(list, kind: .schema, file: file, what: "schema \(schema)") ?? []
                    set.schemas.append(ObjectGrant(kind: .schema, schema: schema, name: nil, privileges: names, location: location(schemaKey, file)))
                }
            case "tables", "sequences", "functions":
                let kind: ObjectKind = key.string == "tables" ? .table : key.string == "sequences" ? .sequence : .function
                guard let objects = mapping(value, file: file, what: key.string ?? "") else { continue }
                for (patternKey, list) in objects {
                    let pattern = patternKey.string ?? ""
                    let patternAt = location(patternKey, file)
                    let parts = pattern.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                        issues.append(SpecIssue("\"\(pattern)\" is not schema.name or schema.* (\(kind.rawValue)s are always schema-qualified)", at: patternAt))
                        continue
                    }
                    checkName(parts[0], what: "schema", at: patternAt)
                    let names = privileges(list, kind: kind, file: file, what: pattern) ?? []
                    set.objects.append(ObjectGrant(kind: kind, schema: parts[0], name: parts[1] == "*" ? nil : parts[1], privileges: names, location: patternAt))
                }
            case "default_privileges":
                for item in sequence(value, file: file, what: "default_privileges") {
                    set.defaultPrivileges += readDefaultPrivileges(item, file: file)
                }
            default:
                unknownKey(key, file: file, in: "the privileges of \(owner)", allowed: Self.privilegeKeys)
            }
        }
        return set
    }

    /// `{for: nfl_owner, schema: nfl, tables: [SELECT], functions: [EXECUTE]}`; `for` defaults to
    /// the schema's declared owner (resolved later).
    private mutating func readDefaultPrivileges(_ node: Node, file: String) -> [DefaultPrivilegeGrant] {
        guard let fields = mapping(node, file: file, what: "a default_privileges entry") else { return [] }
        let at = location(node, file)
        var owner = ""
        var schema: String?
        var grants: [(ObjectKind, [String])] = []
        for (key, value) in fields {
            switch key.string ?? "" {
            case "for": owner = scalar(value, file: file, what: "for") ?? ""
            case "schema": schema = scalar(value, file: file, what: "schema")
            case "tables": grants.append((.table, privileges(value, kind: .table, file: file, what: "tables") ?? []))
            case "sequences": grants.append((.sequence, privileges(value, kind: .sequence, file: file, what: "sequences") ?? []))
            case "functions": grants.append((.function, privileges(value, kind: .function, file: file, what: "functions") ?? []))
            default: unknownKey(key, file: file, in: "default_privileges", allowed: ["for", "schema", "tables", "sequences", "functions"])
            }
        }
        if grants.isEmpty {
            issues.append(SpecIssue("a default_privileges entry needs tables:, sequences: or functions:", at: at))
        }
        return grants.map { DefaultPrivilegeGrant(owner: owner, schema: schema, kind: $0.0, privileges: $0.1, location: at) }
    }

    // MARK: - Resolving profiles and references

    private mutating func resolve(_ documents: SpecDocuments, files: [String]) -> RoleSpec {
        let unmanaged = documents.unmanaged.map(\.0)
        var roles: [RoleDefinition] = []
        let managed = Set(documents.roles.map(\.0.name))
        for (unmanagedName, at) in documents.unmanaged where managed.contains(unmanagedName) {
            issues.append(SpecIssue("\(unmanagedName) is listed in unmanaged_roles but also defined under roles", at: at))
        }
        let known = managed.union(unmanaged)
        func checkReference(_ name: String, at: SourceLocation, what: String) {
            guard !known.contains(name) else { return }
            issues.append(SpecIssue(
                "\(what) \(name) is not managed by this spec: define it under roles, or list it in unmanaged_roles if it exists outside nfldb",
                at: at))
        }
        for schema in documents.schemas {
            if let owner = schema.owner { checkReference(owner, at: schema.location, what: "schema owner") }
        }
        for (definition, inline) in documents.roles {
            var role = definition
            var merged = PrivilegeSet()
            for (profile, at) in role.profiles {
                guard let body = documents.profiles[profile] else {
                    issues.append(SpecIssue("unknown profile \(profile) (defined: \(documents.profiles.keys.sorted().joined(separator: ", ")))", at: at))
                    continue
                }
                merged.merge(body.0)
            }
            merged.merge(inline)
            merged.defaultPrivileges = merged.defaultPrivileges.map { grant in
                var grant = grant
                if grant.owner.isEmpty {
                    if let schema = grant.schema, let owner = documents.schemas.first(where: { $0.name == schema })?.owner {
                        grant.owner = owner
                    } else {
                        issues.append(SpecIssue(
                            "default privileges need the role that creates the objects: add for: <owner>, or declare an owner for schema \(grant.schema ?? "(global)") under schemas:",
                            at: grant.location))
                    }
                }
                return grant
            }
            role.privileges = merged
            for (group, at) in role.memberOf {
                if group == role.name { issues.append(SpecIssue("role \(role.name) cannot be a member of itself", at: at)) }
                checkReference(group, at: at, what: "member_of role")
            }
            for grant in merged.defaultPrivileges where !grant.owner.isEmpty {
                checkReference(grant.owner, at: grant.location, what: "default privileges owner (for:)")
            }
            if case .scalar(let target)? = role.settings.first(where: { $0.name == "role" })?.value {
                checkReference(target, at: role.settings.first { $0.name == "role" }?.location ?? role.location, what: "setting role")
            }
            roles.append(role)
        }
        detectCycles(roles)
        return RoleSpec(
            files: files, roles: roles, schemas: documents.schemas, publicPolicy: documents.publicPolicy, unmanagedRoles: unmanaged)
    }

    /// Reports each membership cycle once, at the `member_of` entry that closes it.
    private mutating func detectCycles(_ roles: [RoleDefinition]) {
        let byName = Dictionary(roles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        var reported = Set<Set<String>>()
        func visit(_ name: String) {
            state[name] = 1
            path.append(name)
            for (group, at) in byName[name]?.memberOf ?? [] where byName[group] != nil && group != name {
                if state[group] == 1 {
                    let start = path.firstIndex(of: group) ?? 0
                    let cycle = Array(path[start...]) + [group]
                    if reported.insert(Set(cycle)).inserted {
                        issues.append(SpecIssue("membership cycle: \(cycle.joined(separator: " → member of → "))", at: at))
                    }
                } else if state[group] == nil {
                    visit(group)
                }
            }
            path.removeLast()
            state[name] = 2
        }
        for role in roles where state[role.name] == nil { visit(role.name) }
    }

    // MARK: - Node helpers

    private func location(_ node: Node, _ file: String) -> SourceLocation {
        SourceLocation(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
    }

    private mutating func mapping(_ node: Node, file: String, what: String) -> Node.Mapping? {
        if case .mapping(let mapping) = node { return mapping }
        issues.append(SpecIssue("\(what) must be a mapping (key: value lines)", at: location(node, file)))
        return nil
    }

    private mutating func sequence(_ node: Node, file: String, what: String) -> [Node] {
        switch node {
        case .sequence(let items): return Array(items)
        case .scalar(let scalar) where scalar.string.isEmpty && scalar.style == .plain: return []
        default:
            issues.append(SpecIssue("\(what) must be a list ([a, b] or - lines)", at: location(node, file)))
            return []
        }
    }

    private mutating func scalar(_ node: Node, file: String, what: String) -> String? {
        if case .scalar(let scalar) = node { return scalar.string }
        issues.append(SpecIssue("\(what) must be a single value", at: location(node, file)))
        return nil
    }

    private mutating func boolean(_ node: Node, file: String, what: String) -> Bool? {
        guard let text = scalar(node, file: file, what: what) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            issues.append(SpecIssue("\(what) must be true or false, not \(text)", at: location(node, file)))
            return nil
        }
    }

    private mutating func privileges(_ node: Node, kind: ObjectKind, file: String, what: String) -> [String]? {
        var result: [String] = []
        let items: [Node]
        if case .scalar(let scalar) = node, !scalar.string.isEmpty {
            items = [node]  // `database: CONNECT` is accepted as a one-item list
        } else {
            items = sequence(node, file: file, what: what)
        }
        for item in items {
            guard let name = scalar(item, file: file, what: "a privilege") else { continue }
            guard let expanded = kind.normalize(name) else {
                issues.append(SpecIssue(
                    "unknown privilege \(name) for \(kind.rawValue)s in \(what) (allowed: \(kind.privileges.joined(separator: ", ")), ALL)",
                    at: location(item, file)))
                continue
            }
            result += expanded
        }
        return kind.ordered(result)
    }

    private mutating func unknownKey(_ key: Node, file: String, in context: String, allowed: [String]) {
        let name = key.string ?? "?"
        var message = "unknown key \"\(name)\" in \(context)"
        if let suggestion = allowed.min(by: { editDistance($0, name) < editDistance($1, name) }), editDistance(suggestion, name) <= 2 {
            message += " (did you mean \(suggestion)?)"
        } else {
            message += " (allowed: \(allowed.joined(separator: ", ")))"
        }
        issues.append(SpecIssue(message, at: location(key, file)))
    }

    private mutating func checkRoleName(_ name: String, at: SourceLocation) {
        let lower = name.lowercased()
        if name.isEmpty || name.utf8.count > 63 {
            issues.append(SpecIssue("role name \"\(name)\" must be 1 to 63 bytes long", at: at))
        } else if name.unicodeScalars.contains(where: { $0.value == 0 }) {
            issues.append(SpecIssue("role name \"\(name.replacingOccurrences(of: "\0", with: "\\0"))\" contains a NUL byte, which PostgreSQL names cannot hold", at: at))
        } else if lower.hasPrefix("pg_") {
            issues.append(SpecIssue("role names starting with pg_ are reserved by PostgreSQL", at: at))
        } else if ["public", "none", "current_user", "session_user", "current_role"].contains(lower) {
            issues.append(SpecIssue("\(name) is a reserved role name", at: at))
        }
    }

    private mutating func checkName(_ name: String, what: String, at: SourceLocation) {
        if name.isEmpty || name.utf8.count > 63 || name.contains(".") {
            issues.append(SpecIssue("\"\(name)\" is not a valid \(what) name", at: at))
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
            .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicate key\(duplicates.count == 1 ? "" : "s") \(duplicates.joined(separator: ", ")) in one mapping"
        default:
            return String(describing: error).split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }

    private static func location(of error: YamlError, file: String) -> SourceLocation {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return SourceLocation(file: file, line: mark.line, column: mark.column)
        case .duplicatedKeysInMapping(_, let context):
            return SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
        default:
            return SourceLocation(file: file, line: 1)
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
