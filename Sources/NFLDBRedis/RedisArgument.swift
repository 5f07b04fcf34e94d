import Foundation

/// One argument of a Redis command, as raw bytes (binary-safe: NUL bytes and CRLF are fine).
///
/// Commands are always sent with `redisCommandArgv`/`redisAppendCommandArgv`, which frame every
/// argument with its length; an argument is never spliced into command text. This is the Redis
/// equivalent of bound parameters.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByStringInterpolation
{
    public let bytes: [UInt8]

    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ data: Data) { bytes = Array(data) }
    public init(_ value: some BinaryInteger) { bytes = Array(String(value).utf8) }
    /// A float in the shortest form Redis parses back to the same value (`ZADD`, `INCRBYFLOAT`).
    public init(_ value: Double) { bytes = Array("\(value)".utf8) }

    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
    public init(stringInterpolation: DefaultStringInterpolation) { self.init(String(stringInterpolation: stringInterpolation)) }
}
