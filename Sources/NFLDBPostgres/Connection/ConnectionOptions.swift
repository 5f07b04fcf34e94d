import CLibPQ
import Foundation
import NFLDBCore

/// How to reach a server. Everything not given here comes from libpq's own conventions:
/// `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSERVICE`, `PGSSLMODE`, `~/.pgpass`,
/// `pg_service.conf`, multi-host lists with `target_session_attrs` — exactly as psql reads them.
public struct ConnectionOptions: Sendable {
    /// A conninfo string (`host=… dbname=…`) or a `postgresql://` URL; nil lets libpq use its
    /// environment and defaults.
    public var dsn: String?
    /// A password from `password_file`/`password_env`; nil leaves it to libpq (PGPASSWORD, .pgpass).
    public var password: String?
    /// libpq's `connect_timeout`; ignored when `PGCONNECT_TIMEOUT` or the DSN sets one.
    public var connectTimeout: Duration?
    /// Sent as `fallback_application_name`, so a DSN or `PGAPPNAME` can still override it.
    public var applicationName: String
    /// `security.require_tls`: refuse an explicit sslmode weaker than verify-full towards a
    /// non-loopback host instead of warning (see ``tlsPlan(environment:)``).
    public var requireTLS = false

    public init(dsn: String? = nil, password: String? = nil, connectTimeout: Duration? = .seconds(10), applicationName: String = "nfldb") {
        self.dsn = dsn
        self.password = password
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
    }

    /// The keyword/value pairs handed to `PQconnectdbParams`, in override order.
    func keywordValues(environment: [String: String] = ProcessInfo.processInfo.environment, tls: TLSPlan? = nil) -> [(String, String)] {
        var pairs: [(String, String)] = []
        // Before dbname: the expanded DSN overrides earlier keywords (the plan only upgrades when it sets no sslmode).
        if tls?.upgradesToVerifyFull == true { pairs.append(("sslmode", SSLMode.verifyFull.rawValue)) }
        if let connectTimeout, environment["PGCONNECT_TIMEOUT"] == nil {
            let seconds = max(1, DurationParser.milliseconds(connectTimeout) / 1000)
            pairs.append(("connect_timeout", String(seconds)))
        }
        if let dsn, !dsn.isEmpty { pairs.append(("dbname", dsn)) }
        if let password { pairs.append(("password", password)) }
        pairs.append(("fallback_application_name", applicationName))
        return pairs
    }

    /// The DSN with its password masked, for logs and `config show`.
    public var redactedDSN: String? { dsn.map(ConnectionOptions.redact) }

    /// Masks the password in a conninfo string or URL, whatever characters it holds (see
    /// ``SecretRedactor/redactDSN(_:)``).
    public static func redact(_ dsn: String) -> String {
        SecretRedactor.redactDSN(dsn)
    }

    static let percentEncodeHint = "Percent-encode special characters in a URL's password (@ → %40, : → %3A, / → %2F, ? → %3F, # → %23, \" → %22, space → %20), "
        + "or give the password with password_file/password_env, or as a single-quoted value in a conninfo string."

    /// Where a `postgresql://` URL has an `@` past the user-info libpq reads (which ends at the first
    /// `@` before any `/`): in its host list, port or database (`beforeQuery`) or anywhere (`anywhere`,
    /// the query included, where `?user=me@corp` is legitimate). Either is the sign of a password with
    /// an un-encoded `@`, `:` or `/`, whose tail libpq would read as host, port, database or query.
    static func strayAt(_ dsn: String) -> (beforeQuery: Bool, anywhere: Bool) {
        guard let start = ["postgresql://", "postgres://"].lazy.compactMap({ dsn.range(of: $0, options: .anchored)?.upperBound }).first else {
            return (false, false)
        }
        var rest = dsn[start...]
        if let end = rest.firstIndex(where: { $0 == "@" || $0 == "/" }), rest[end] == "@" { rest = rest[rest.index(after: end)...] }
        let beforeQuery = rest.firstIndex(of: "?").map { rest[..<$0] } ?? rest
        return (beforeQuery.contains("@"), rest.contains("@"))
    }

    /// Checks that libpq can parse `dsn` (URL or conninfo); the error names the problem, not the password.
    public static func validate(_ dsn: String) throws {
        _ = try parse(dsn)
    }

    /// `dsn`'s keyword/value pairs as libpq parses them (`PQconninfoParse`), without the password,
    /// which is returned separately. The error names libpq's reason, never the password.
    static func parse(_ dsn: String) throws -> (pairs: [(String, String)], password: String?) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let options = PQconninfoParse(dsn, &errorMessage)
        defer {
            if let options { PQconninfoFree(options) }
            if let errorMessage { PQfreemem(errorMessage) }
        }
        // libpq's own message quotes the part it could not read, which may be the tail of a password.
        let stray = strayAt(dsn)
        if stray.beforeQuery {
            throw PostgresError(kind: .configuration, message: "invalid connection string \(redact(dsn)): the URL has an '@' after its user:password@ part, "
                + "so libpq would read the rest of the password as host, port or database name")
                .withHint(percentEncodeHint)
        }
        guard let options else {
            var text = errorMessage.map { String(cString: $0) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unparseable"
            if stray.anywhere { text = "libpq cannot parse the URL (its message is not shown: it may quote part of the password)" }
            throw PostgresError(kind: .configuration, message: "invalid connection string \(redact(dsn)): \(text)")
                .withHint("Use key=value pairs (host=… dbname=…) or a postgresql://user@host:port/db URL. " + percentEncodeHint)
        }
        var pairs: [(String, String)] = []
        var password: String?
        var index = 0
        while let keyword = options[index].keyword {
            if let value = options[index].val {
                let key = String(cString: keyword)
                let text = String(cString: value)
                if key == "password" { password = text } else { pairs.append((key, text)) }
            }
            index += 1
        }
        return (pairs, password)
    }
}

extension PostgresError {
    func withHint(_ hint: String) -> PostgresError {
        var copy = self
        copy.hint = hint
        return copy
    }
}

extension ConnectionOptions {
    /// A conninfo string without the password, and an environment carrying the password as
    /// `PGPASSWORD`, for libpq-based programs nfldb starts (`pg_dump`, `psql`). Command lines are
    /// visible to every local user in `ps`; environments are not.
    public func forSubprocess(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (conninfo: String, environment: [String: String]) {
        var env = environment
        var (pairs, dsnPassword) = try parsedDSN()
        if let password = password ?? dsnPassword { env["PGPASSWORD"] = password }
        if env["PGAPPNAME"] == nil && !pairs.contains(where: { $0.0 == "application_name" }) { pairs.append(("application_name", applicationName)) }
        if try tlsPlan(environment: environment).upgradesToVerifyFull { pairs.append(("sslmode", SSLMode.verifyFull.rawValue)) }
        return (Self.conninfo(pairs), env)
    }

    /// The same server and credentials, another database (for scratch databases).
    public func withDatabase(_ database: String) throws -> ConnectionOptions {
        let (pairs, dsnPassword) = try parsedDSN()
        let conninfo = Self.conninfo(pairs.filter { $0.0 != "dbname" } + [("dbname", database)])
        var options = ConnectionOptions(dsn: conninfo, password: password ?? dsnPassword, connectTimeout: connectTimeout, applicationName: applicationName)
        options.requireTLS = requireTLS
        return options
    }

    /// One keyword of the DSN as libpq parses it (`sslkey`, `host`…), never the password.
    public func dsnParameter(_ key: String) throws -> String? {
        try parsedDSN().pairs.last { $0.0 == key }?.1
    }

    /// The DSN's pairs and password (``parse(_:)``); none without a DSN.
    func parsedDSN() throws -> (pairs: [(String, String)], password: String?) {
        guard let dsn, !dsn.isEmpty else { return ([], nil) }
        return try Self.parse(dsn)
    }

    /// `key='value' …`: the one way nfldb writes a conninfo string (for libpq, `pg_dump`, pgBackRest's
    /// `pg1-database`…). Every value goes through ``conninfoQuoted(_:)``, so a database name with a
    /// space, quote or backslash stays one value. Keywords are libpq's own (`host`, `dbname`…).
    public static func conninfo(_ pairs: [(String, String)]) -> String {
        pairs.map { key, value in "\(key)=\(conninfoQuoted(value))" }.joined(separator: " ")
    }

    /// One conninfo value as libpq reads it: in single quotes, with `\` and `'` escaped by a
    /// backslash (`my db's` → `'my db\'s'`).
    public static func conninfoQuoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
