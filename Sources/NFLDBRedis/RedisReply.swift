import Foundation

/// A decoded RESP2 reply (hiredis 0.14): status, error, integer, bulk string, nil or array.
///
/// The value is copied out of hiredis's reply object before that is freed, so it outlives the call.
/// Bulk strings keep their exact bytes (binary-safe); ``string`` decodes them as UTF-8.
public enum RedisReply: Sendable, Hashable, CustomStringConvertible {
    /// `+OK`, `+PONG`, `+QUEUED`.
    case status(String)
    /// `-ERR …`, `-WRONGTYPE …`, `-NOSCRIPT …`. Top-level error replies of ``RedisConnection/command(_:)``
    /// are thrown as ``RedisError``; this case appears in pipelines and nested in arrays (`EXEC`).
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    /// The nil bulk string or nil array (`GET` of a missing key, Lua `false`).
    case null
    case array([RedisReply])

    /// The text of a status or bulk reply (bulk decoded as UTF-8, invalid sequences repaired); nil otherwise.
    public var string: String? {
        switch self {
        case .status(let text): return text
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The bytes of a bulk reply; nil otherwise.
    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    /// The value of an integer reply, or of a bulk reply holding a decimal integer (`HGET` of a counter).
    public var int: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    /// The elements of an array reply; nil otherwise (also for a nil array).
    public var elements: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// The first word of an error reply (`NOSCRIPT`, `WRONGTYPE`, `ERR`); nil for other replies.
    public var errorCode: String? {
        guard case .error(let text) = self else { return nil }
        return text.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    /// The reply's kind, for messages about unexpected replies.
    public var kind: String {
        switch self {
        case .status: return "status"
        case .error: return "error"
        case .integer: return "integer"
        case .bulk: return "bulk string"
        case .null: return "nil"
        case .array: return "array"
        }
    }

    /// As `redis-cli` shows it, with bulk strings clipped to 64 characters.
    public var description: String {
        switch self {
        case .status(let text): return text
        case .error(let text): return "(error) \(text)"
        case .integer(let value): return "(integer) \(value)"
        case .bulk(let bytes):
            let text = String(decoding: bytes.prefix(64), as: UTF8.self)
            return "\"\(text)\(bytes.count > 64 ? "…" : "")\""
        case .null: return "(nil)"
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

// Throwing decoders: the error names the command and what came back instead.
extension RedisReply {
    /// An integer reply (or a bulk decimal), else ``RedisError`` of kind `.unexpectedReply`.
    public func decodeInteger(for command: String) throws -> Int64 {
        guard let value = int else { throw unexpected(command, "an integer") }
        return value
    }

    /// A bulk or status reply as text; nil for a nil reply.
    public func decodeString(for command: String) throws -> String? {
        if isNull { return nil }
        guard let text = string else { throw unexpected(command, "a string") }
        return text
    }

    /// A bulk reply's bytes; nil for a nil reply.
    public func decodeBytes(for command: String) throws -> [UInt8]? {
        if isNull { return nil }
        guard let bytes else { throw unexpected(command, "a bulk string") }
        return bytes
    }

    /// An array reply's elements; nil for a nil array.
    public func decodeArray(for command: String) throws -> [RedisReply]? {
        if isNull { return nil }
        guard let elements else { throw unexpected(command, "an array") }
        return elements
    }

    /// A status reply equal to `expected` (`OK`).
    public func decodeStatus(_ expected: String = "OK", for command: String) throws {
        guard case .status(let text) = self, text == expected else { throw unexpected(command, "status \(expected)") }
    }

    private func unexpected(_ command: String, _ wanted: String) -> RedisError {
        var error = RedisError(kind: .unexpectedReply, message: "\(command) returned \(kind) \(description), expected \(wanted)")
        error.command = command
        return error
    }
}
