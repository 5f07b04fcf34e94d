import Foundation
import NFLDBCore

/// Where a Redis server is and how to log in to it: TCP host and port or a Unix socket, an optional
/// ACL user and password, and the logical database.
///
/// ``description`` is the target an operator sees in messages (`127.0.0.1:6379`, `unix:/run/redis.sock`);
/// it never contains the password, and ``redactedURL`` masks it through ``SecretRedactor``.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public enum Address: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    /// ACL user for `AUTH user password` (Redis 6+); nil means `AUTH password` (the `default` user).
    public var username: String?
    public var password: String?
    /// Logical database (`SELECT n`); 0 is the server's default.
    public var database: Int

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = .tcp(host: host, port: port)
        self.username = username
        self.password = password
        self.database = database
    }

    public init(socketPath: String, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = .unix(path: socketPath)
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to/redis.sock[?db=N]`.
    ///
    /// Percent-encoded user names and passwords are decoded. Nothing is registered with the redactor
    /// here: the password is never formatted into a message in the first place.
    /// - Throws: ``RedisError`` of kind `.invalidEndpoint` (exit status 2) with the URL redacted.
    public init(url: String) throws {
        // A URL that does not even parse (`redis:/:PW@host`, `redis://user:PW`, a password pasted in
        // its place) cannot be redacted reliably: it is not shown at all.
        func invalid(_ reason: String, show: Bool = true) -> RedisError {
            let shown = show ? " \(Self.redact(url))" : " (not shown: it may hold a password)"
            var error = RedisError(kind: .invalidEndpoint, message: "invalid Redis URL\(shown): \(reason)")
            error.hint = "Use redis://HOST[:PORT][/DB] (e.g. redis://127.0.0.1:6379/0) or unix:///path/to/redis.sock?db=0; "
                + "the password goes in redis.password (NFLDB_REDIS_PASSWORD, a reference such as env:NAME), not in the URL."
            return error
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw invalid("not a URL", show: false)
        }
        let username = components.user.flatMap { $0.isEmpty ? nil : $0 }
        let password = components.password
        var database = 0
        switch scheme {
        case "redis":
            guard let host = components.host, !host.isEmpty else { throw invalid("no host", show: false) }
            let port = components.port ?? 6379
            guard (1...65535).contains(port) else { throw invalid("port \(port) is out of range") }
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !path.isEmpty {
                guard let number = Int(path), number >= 0 else { throw invalid("the path must be a database number, not \"\(path)\"") }
                database = number
            }
            self.init(host: host, port: port, username: username, password: password, database: database)
        case "unix":
            let path = components.path
            guard path.hasPrefix("/") else { throw invalid("a Unix socket URL needs an absolute path") }
            if let db = components.queryItems?.first(where: { $0.name == "db" })?.value {
                guard let number = Int(db), number >= 0 else { throw invalid("db must be a database number, not \"\(db)\"") }
                database = number
            }
            self.init(socketPath: path, username: username, password: password, database: database)
        case "rediss":
            throw invalid("TLS (rediss://) is not supported by hiredis 0.14")
        default:
            throw invalid("unknown scheme \(scheme)")
        }
    }

    /// A URL as given, with everything between `user:` and the last `@` masked: a malformed URL may
    /// hold an unencoded `@` or `/` in its password, which the general URL pattern of
    /// ``SecretRedactor`` would cut short.
    public static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", options: .backwards),
              at.lowerBound > scheme.upperBound
        else { return SecretRedactor.shared.redact(url) }
        let userinfo = url[scheme.upperBound..<at.lowerBound]
        guard let colon = userinfo.firstIndex(of: ":") else { return SecretRedactor.shared.redact(url) }
        return SecretRedactor.shared.redact(String(url[..<colon]) + ":" + SecretRedactor.mask + String(url[at.lowerBound...]))
    }

    /// `host:port` or `unix:/path` (plus `db=N` when not 0); never the password.
    public var description: String {
        var text: String
        switch address {
        case .tcp(let host, let port): text = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): text = "unix:\(path)"
        }
        if database != 0 { text += " db=\(database)" }
        return text
    }

    /// The endpoint as a URL with the password masked (for `config show` and logs).
    public var redactedURL: String {
        var auth = ""
        if username != nil || password != nil {
            auth = (username ?? "") + (password == nil ? "" : ":\(SecretRedactor.mask)") + "@"
        }
        switch address {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "redis://\(auth)\(shownHost):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(auth)\(path)?db=\(database)"
        }
    }
}
