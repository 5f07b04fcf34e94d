import Foundation
import NFLDBCore

/// A failure talking to Redis: could not connect, authentication refused, an error reply, a lost
/// connection, a timeout, or a reply of an unexpected shape.
///
/// Messages name the target (`127.0.0.1:6379`) and the command *name*, never its arguments (they may
/// hold payloads or secrets) and never the password.
public struct RedisError: NFLDBError, Sendable {
    /// What kind of failure this is; a struct so new kinds can be added without breaking callers.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// Could not open the connection (refused, unreachable, no such socket).
        public static let connection = Kind(name: "connection")
        /// The server refused the password or requires one (`WRONGPASS`, `NOAUTH`).
        public static let authentication = Kind(name: "authentication")
        /// The server answered with an error reply (`ERR`, `WRONGTYPE`, `NOSCRIPT`…).
        public static let server = Kind(name: "server")
        /// The connection broke while sending or waiting for a reply; it cannot be used again.
        public static let connectionLost = Kind(name: "connection lost")
        /// No reply within the command timeout; the connection cannot be used again.
        public static let timeout = Kind(name: "timeout")
        /// hiredis could not parse what the server sent, or ran out of memory.
        public static let protocolViolation = Kind(name: "protocol")
        /// A reply of another type than the caller expected.
        public static let unexpectedReply = Kind(name: "unexpected reply")
        /// A malformed `redis://` URL or endpoint setting (exit status 2).
        public static let invalidEndpoint = Kind(name: "invalid endpoint")
        public var description: String { name }
    }

    public var kind: Kind
    public var message: String
    /// The endpoint (`127.0.0.1:6379`), without the password.
    public var target: String?
    /// The command name (`EVALSHA`), never its arguments.
    public var command: String?
    /// The first word of an error reply (`NOSCRIPT`, `WRONGPASS`), for branching.
    public var code: String?
    public var hint: String?

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var diagnostic: Diagnostic {
        var facts: [String] = []
        if let target, !message.contains(target) { facts.append("Redis at \(target)") }
        if let command { facts.append("command \(command)") }
        return Diagnostic(message, detail: facts.isEmpty ? nil : facts.joined(separator: "; "), hint: hint)
    }

    public var exitStatus: ExitStatus { kind == .invalidEndpoint ? .usage : .failure }

    /// The hint for an error reply, by its code.
    static func hint(forCode code: String, target: String) -> String? {
        switch code {
        case "NOAUTH":
            return "The server at \(target) requires a password: give it by reference in redis.password (env:NAME, file:PATH or aws-sm:SECRET_ID), never in redis.url."
        case "WRONGPASS":
            return "Check the password (the secret redis.password references) and the user in redis.url against the server's requirepass/ACL."
        case "WRONGTYPE":
            return "The key holds another data type than this command works on; check it with redis-cli TYPE KEY and what else writes to it (delete it if nothing should)."
        case "NOSCRIPT":
            return "The server does not have the script (restarted or SCRIPT FLUSH); load it with SCRIPT LOAD and retry."
        case "READONLY":
            return "\(target) is a read-only replica; connect to the master (or let Sentinel find it)."
        case "LOADING":
            return "The server is still loading its dataset from disk; retry in a moment."
        case "OOM":
            return "The server reached maxmemory; free memory or raise maxmemory on \(target)."
        case "BUSY":
            return "A Lua script is running too long on \(target); wait for it, or SCRIPT KILL it."
        default:
            return nil
        }
    }
}
