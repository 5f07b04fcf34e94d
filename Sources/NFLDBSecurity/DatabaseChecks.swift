import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres

/// Posture checks answered from the server's catalogs (the connected database for per-database
/// objects: schemas and functions). Every check is read-only and returns findings with what, why
/// and fix; a catalog nfldb's role may not read is UNKNOWN with the grant that fixes it.
protocol SecurityProbe: Probe {}

extension SecurityProbe {
    public var unit: HealthUnit { .count }
    /// Status comes from each finding's severity, not from thresholds.
    public var defaultThresholds: Thresholds { Thresholds(warning: nil, critical: nil) }
    /// Posture is a property of the primary's catalogs; standbys mirror them.
    public var roles: Set<ServerRole> { [.primary] }
    /// `nfldb health` runs them only with `health.checks.<name>.enabled: true` or `--check`;
    /// `nfldb security check` runs them all.
    public var enabledByDefault: Bool { false }
}

func isSuperuser(_ context: ProbeContext) -> Bool { context.server.isSuperuser }

/// Login superusers other than the bootstrap superuser (OID 10, the role initdb created) and
/// `security.allowed_superusers`.
public struct SuperuserLoginsCheck: SecurityProbe {
    public let name = "security_superusers"
    public let summary = "login superusers besides the bootstrap superuser and security.allowed_superusers"
    public var allowed: [String]
    public init(allowed: [String] = []) { self.allowed = allowed }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT rolname FROM pg_catalog.pg_roles
            WHERE rolsuper AND rolcanlogin AND oid <> 10 AND NOT (rolname = ANY (\(textArray(allowed))::text[]))
            ORDER BY rolname
            """)
        let findings = rows.map { row -> Finding in
            let role = row["rolname"] ?? "?"
            return Finding(
                .warning, what: "login role \(role) is a superuser",
                why: "a superuser bypasses every privilege, RLS policy and audit trigger and can run programs as the server's OS user (COPY … PROGRAM); a leaked password is a full compromise",
                fix: "ALTER ROLE \(quoteIdentifier(role)) NOSUPERUSER; and grant only what the job needs (roles spec), or list it in security.allowed_superusers if it must stay",
                fields: ["role": role])
        }
        // A login role that is a member of a superuser role becomes one with SET ROLE.
        let members = try context.rows("""
            SELECT m.rolname AS member, s.rolname AS superuser FROM pg_catalog.pg_roles m
            JOIN pg_catalog.pg_roles s ON s.rolsuper AND s.oid <> m.oid
            WHERE m.rolcanlogin AND NOT m.rolsuper AND m.oid <> 10 AND pg_catalog.pg_has_role(m.oid, s.oid, 'MEMBER')
              AND NOT (m.rolname = ANY (\(textArray(allowed))::text[]))
            ORDER BY 1, 2
            """)
        let viaMembership = members.map { row -> Finding in
            let member = row["member"] ?? "?", superuser = row["superuser"] ?? "?"
            return Finding(
                .warning, what: "login role \(member) can SET ROLE to the superuser \(superuser)",
                why: "membership in a superuser role is superuser power one statement away: everything a login superuser can do, it can",
                fix: "REVOKE \(quoteIdentifier(superuser)) FROM \(quoteIdentifier(member)); (through whichever role grants it), or list \(member) in security.allowed_superusers if it must stay",
                fields: ["role": member])
        }
        return .findings(findings + viaMembership, clean: "no login superuser besides the bootstrap superuser, and no login role that can SET ROLE to one")
    }
}

/// Roles whose stored password is an MD5 hash or cleartext (`pg_authid`, superuser only).
public struct PasswordHashesCheck: SecurityProbe {
    public let name = "security_password_hashes"
    public let summary = "roles whose password is stored as MD5 or cleartext instead of SCRAM-SHA-256 (pg_authid)"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        guard isSuperuser(context) else {
            return .unknown(
                "\(context.server.user) cannot read pg_authid, where password hashes are stored",
                hint: "Run `nfldb security check` as a superuser (e.g. over the local socket) to check password storage.")
        }
        let rows = try context.rows("""
            SELECT rolname, CASE WHEN rolpassword LIKE 'md5%' AND length(rolpassword) = 35 THEN 'md5' ELSE 'cleartext' END AS kind
            FROM pg_catalog.pg_authid
            WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'
            ORDER BY rolname
            """)
        let findings = rows.map { row -> Finding in
            let role = row["rolname"] ?? "?"
            let md5 = row["kind"] == "md5"
            return Finding(
                md5 ? .warning : .critical, what: "role \(role) has \(md5 ? "an MD5" : "a cleartext") password",
                why: md5
                    ? "an MD5 hash is enough to log in (pass-the-hash) and is cheap to brute-force; md5 authentication is deprecated"
                    : "the password is stored readable by anyone who can read pg_authid or a base backup",
                fix: "SET password_encryption = 'scram-sha-256' and set the password again (nfldb roles apply, or \\password \(role) in psql)",
                fields: ["role": role, "storage": row["kind"] ?? ""])
        }
        return .findings(findings, clean: "every stored password is a SCRAM-SHA-256 verifier")
    }
}

/// `password_encryption` other than scram-sha-256.
public struct PasswordEncryptionCheck: SecurityProbe {
    public let name = "security_password_encryption"
    public let summary = "password_encryption is scram-sha-256"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let value: String = try context.row("SELECT current_setting('password_encryption') AS v", "password_encryption").decode("v")
        guard value != "scram-sha-256" else {
            return ProbeOutcome(status: .ok, value: 0, message: "password_encryption = scram-sha-256")
        }
        return .findings([Finding(
            .warning, what: "password_encryption = \(value)",
            why: "new passwords are stored as \(value) hashes, which are replayable (pass-the-hash) and cheap to brute-force",
            fix: "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; SELECT pg_reload_conf(); then reset existing passwords",
            fields: ["setting": value])], clean: "")
    }
}

/// `trust`, `password` and `md5` lines for TCP connections in `pg_hba_file_rules` (and lines the
/// server could not parse).
public struct HBACheck: SecurityProbe {
    public let name = "security_hba"
    public let summary = "pg_hba.conf lines for TCP with trust, ident, a cleartext password (password, pam, ldap, radius, bsd) or md5 (pg_hba_file_rules)"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let readable: Bool = try context.row(
            "SELECT has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT') AS ok", "pg_hba_file_rules privilege").decode("ok")
        guard readable else {
            return .unknown(
                "\(context.server.user) cannot read pg_hba_file_rules",
                hint: "Run as a superuser, or GRANT SELECT ON pg_catalog.pg_hba_file_rules TO \(context.server.user); (and EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules()).")
        }
        let rows = try context.rows("""
            SELECT line_number, type, array_to_string(database, ',') AS db, array_to_string(user_name, ',') AS usr,
                   coalesce(address, '') AS address, coalesce(netmask, '') AS netmask, coalesce(auth_method, '') AS method,
                   error, current_setting('hba_file') AS file
            FROM pg_catalog.pg_hba_file_rules
            WHERE error IS NOT NULL OR (type <> 'local' AND auth_method IN ('trust', 'password', 'md5', 'ident', 'pam', 'ldap', 'radius', 'bsd'))
            ORDER BY line_number
            """)
        let findings = rows.map { row -> Finding in
            let line = "\(row["file"] ?? "pg_hba.conf"):\(row["line_number"] ?? "?")"
            let fields = [
                "line": line, "type": row["type"] ?? "", "database": row["db"] ?? "", "user": row["usr"] ?? "",
                "address": [row["address"] ?? "", row["netmask"] ?? ""].filter { !$0.isEmpty }.joined(separator: "/"), "method": row["method"] ?? "",
            ]
            if let error = row["error"] {
                return Finding(
                    .warning, what: "\(line) cannot be parsed: \(error)", why: "the server keeps its old rules until the file parses; what you read is not what runs",
                    fix: "Fix the line, check SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL, then SELECT pg_reload_conf()", fields: fields)
            }
            let method = row["method"] ?? ""
            let who = "\(row["type"] ?? "host") \(fields["database"] ?? "") \(fields["user"] ?? "") \(fields["address"] ?? "")"
            switch method {
            case "trust":
                return Finding(
                    .critical, what: "\(line): `\(who)` uses trust",
                    why: "anyone who can reach the port from that address logs in as any listed role without a password",
                    fix: "Change the method to scram-sha-256 (hostssl), then SELECT pg_reload_conf()", fields: fields)
            case "ident":
                return Finding(
                    .critical, what: "\(line): `\(who)` uses ident over TCP",
                    why: "the server asks an identd on the client's host who the user is, and believes the answer: whoever controls that host picks the role",
                    fix: "Change the method to scram-sha-256 (hostssl), or use cert authentication, then SELECT pg_reload_conf()", fields: fields)
            case "pam", "ldap", "radius", "bsd":
                // These take the password itself from the client (LDAP search+bind or simple bind, PAM, RADIUS, BSD Auth).
                let tls = row["type"] == "hostssl"
                return Finding(
                    tls ? .warning : .critical, what: "\(line): `\(who)` uses \(method) (the password is sent to the server as typed)",
                    why: "the client sends the password in cleartext\(tls ? " inside TLS, and the server (and the \(method) backend) sees it" : ", readable on the network")",
                    fix: tls ? "Keep it on hostssl only, or move to scram-sha-256 / cert" : "Make the line hostssl (and for ldap, ldaptls=1 or ldaps), or move to scram-sha-256, then SELECT pg_reload_conf()",
                    fields: fields)
            case "password":
                return Finding(
                    row["type"] == "hostssl" ? .warning : .critical, what: "\(line): `\(who)` uses password (cleartext)",
                    why: "the password is sent in cleartext\(row["type"] == "hostssl" ? " inside TLS, and the server sees it" : ", readable on the network")",
                    fix: "Change the method to scram-sha-256 (hostssl), then SELECT pg_reload_conf()", fields: fields)
            default:
                return Finding(
                    .warning, what: "\(line): `\(who)` uses md5",
                    why: "md5 authentication accepts MD5-hashed passwords, which are replayable and cheap to brute-force",
                    fix: "Set every password as SCRAM (password_encryption = scram-sha-256), change the method to scram-sha-256, SELECT pg_reload_conf()",
                    fields: fields)
            }
        }
        return .findings(findings, clean: "no TCP line with trust, ident, a cleartext password method or md5; every line parses")
    }
}

/// `ssl = off`.
public struct SSLSettingCheck: SecurityProbe {
    public let name = "security_ssl"
    public let summary = "the server offers TLS (ssl = on)"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let row = try context.row("""
            SELECT current_setting('ssl') AS ssl, current_setting('listen_addresses') AS listen
            """, "ssl")
        guard row["ssl"] == "off" else {
            return ProbeOutcome(status: .ok, value: 0, message: "ssl = on")
        }
        return .findings([Finding(
            .warning, what: "ssl = off (listen_addresses = '\(row["listen"] ?? "")')",
            why: "TCP clients can only connect in plaintext: password exchanges and rows are readable on the network, and clients cannot verify the server",
            fix: "Install a certificate: ssl = on, ssl_cert_file and ssl_key_file (key mode 0600) in postgresql.conf, SELECT pg_reload_conf(); then hostssl lines in pg_hba.conf",
            fields: ["ssl": "off"])], clean: "")
    }
}

/// Schemas of the connected database where PUBLIC may CREATE (PostgreSQL < 15 granted it on `public`).
public struct PublicCreateCheck: SecurityProbe {
    public let name = "security_public_create"
    public let summary = "schemas (connected database) where PUBLIC has CREATE"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT n.nspname FROM pg_catalog.pg_namespace n
            CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
            WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'
            ORDER BY 1
            """)
        let findings = rows.map { row -> Finding in
            let schema = row["nspname"] ?? "?"
            return Finding(
                .warning, what: "PUBLIC may CREATE in schema \(schema) of database \(context.server.database)",
                why: "any role can create functions or tables there that shadow names others resolve through search_path (CVE-2018-1058 style), running code as the victim",
                fix: "REVOKE CREATE ON SCHEMA \(quoteIdentifier(schema)) FROM PUBLIC; and grant CREATE only to the owning/migration role",
                fields: ["schema": schema, "database": context.server.database])
        }
        return .findings(findings, clean: "PUBLIC has CREATE on no schema of \(context.server.database)")
    }
}

/// SECURITY DEFINER functions that another nfldb capability generates with every name schema-qualified
/// (functions, operators, types, relations) and checks body for body, so they need no fixed search_path:
/// functions in `schema` whose name matches `namePattern` (a PostgreSQL regular expression) and that the
/// schema's owner owns. The executable registers them (this module names no other capability); e.g.
/// audit's row-mode capture functions, which `nfldb audit status` regenerates and compares.
public struct QualifiedDefiners: Sendable, Equatable {
    public let schema: String
    public let namePattern: String
    public let checkedBy: String
    public init(schema: String, namePattern: String, checkedBy: String) {
        self.schema = schema
        self.namePattern = namePattern
        self.checkedBy = checkedBy
    }
}

/// SECURITY DEFINER functions without `SET search_path` (connected database, extensions and registered
/// `QualifiedDefiners` excluded).
public struct SecurityDefinerCheck: SecurityProbe {
    public let name = "security_definer_search_path"
    public let summary = "SECURITY DEFINER functions without a fixed search_path (connected database)"
    public let qualified: [QualifiedDefiners]
    public init(qualified: [QualifiedDefiners] = []) { self.qualified = qualified }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT p.oid::regprocedure::text AS fn, pg_catalog.pg_get_userbyid(p.proowner) AS owner
            FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE p.prosecdef
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search\\_path=%')
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
              AND NOT (p.proowner = n.nspowner AND EXISTS (
                    SELECT 1 FROM unnest(\(qualified.map(\.schema))::text[], \(qualified.map(\.namePattern))::text[]) AS q(schema, pattern)
                     WHERE n.nspname = q.schema AND p.proname ~ q.pattern))
            ORDER BY 1
            """)
        let findings = rows.map { row -> Finding in
            let function = row["fn"] ?? "?"
            return Finding(
                .warning, what: "SECURITY DEFINER function \(function) (owner \(row["owner"] ?? "?")) has no fixed search_path",
                why: "it runs with its owner's rights but resolves names through the caller's search_path: a caller who can create objects in any schema on that path hijacks it",
                fix: "ALTER FUNCTION \(function) SET search_path = pg_catalog, pg_temp; and schema-qualify the names it uses",
                fields: ["function": function, "owner": row["owner"] ?? ""])
        }
        let skipped = qualified.map { "\($0.schema).\($0.namePattern) (checked by \($0.checkedBy))" }
        return .findings(findings, clean: "every SECURITY DEFINER function sets its search_path"
            + (skipped.isEmpty ? "" : "; generated with qualified names, not counted: \(skipped.joined(separator: ", "))"))
    }
}

/// Non-superuser roles with BYPASSRLS (superusers bypass RLS anyway; the superuser check covers them).
public struct BypassRLSCheck: SecurityProbe {
    public let name = "security_bypassrls"
    public let summary = "roles (not superusers) that bypass row-level security"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolbypassrls AND NOT rolsuper ORDER BY 1")
        let findings = rows.map { row -> Finding in
            let role = row["rolname"] ?? "?"
            return Finding(
                .warning, what: "role \(role)\(row["rolcanlogin"] == "t" ? " (login)" : "") has BYPASSRLS",
                why: "it, and every role that can SET ROLE to it, reads and writes past every row-level security policy",
                fix: "ALTER ROLE \(quoteIdentifier(role)) NOBYPASSRLS; use a policy for what it legitimately needs (backup tools: pg_dump --enable-row-security)",
                fields: ["role": role])
        }
        return .findings(findings, clean: "no non-superuser role bypasses row-level security")
    }
}

/// Login roles without a connection limit or an expiry. The roles spec has `connection_limit` and
/// `valid_until` per role but no rule that requires them (drift from the spec is `nfldb roles
/// check`'s job), so this check only informs: it is OK with the list as details.
public struct LoginLimitsCheck: SecurityProbe {
    public let name = "security_login_limits"
    public let summary = "login roles without connection limit / valid until (informational: the roles spec requires neither)"
    public init() {}

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let rows = try context.rows("""
            SELECT rolname, rolconnlimit = -1 AS unlimited, rolvaliduntil IS NULL AS no_expiry
            FROM pg_catalog.pg_roles WHERE rolcanlogin AND oid <> 10 AND (rolconnlimit = -1 OR rolvaliduntil IS NULL) ORDER BY 1
            """)
        let details = rows.map { row in
            Detail([
                ("severity", .string("INFO")), ("role", .text(row["rolname"])),
                ("connection_limit", .string(row["unlimited"] == "t" ? "none" : "set")), ("valid_until", .string(row["no_expiry"] == "t" ? "none" : "set")),
            ])
        }
        return ProbeOutcome(
            status: .ok, value: Double(rows.count),
            message: rows.isEmpty
                ? "every login role has a connection limit and an expiry"
                : "info: \(rows.count) login role\(rows.count == 1 ? "" : "s") without connection limit or valid until (not required by the roles spec)",
            hint: rows.isEmpty ? nil
                : "Set connection_limit/valid_until for service roles in the roles spec (nfldb roles apply) so one runaway client cannot take every slot.",
            details: details)
    }
}

func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// A text[] literal for a bound parameter (`{"a","b"}`), each element quoted and escaped.
func textArray(_ values: [String]) -> String {
    "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
}
