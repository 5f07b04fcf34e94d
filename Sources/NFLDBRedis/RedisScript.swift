import CLibCrypto
import Foundation
import Logging

/// A Lua script run with `EVALSHA`, identified by the SHA-1 of its source (computed here, as the
/// server does, so the first call needs no `SCRIPT LOAD` round trip when the server already has it).
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// Lower-case hex SHA-1 of ``source``: the name `EVALSHA` and `SCRIPT LOAD` use.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        let bytes = Array(source.utf8)
        bytes.withUnsafeBufferPointer { buffer in
            _ = SHA1(buffer.baseAddress, buffer.count, &digest)
        }
        self.sha1 = digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The `EVALSHA sha numkeys key… arg…` command, e.g. for a ``RedisConnection/pipeline(_:)``.
    public func evalSHACommand(keys: [RedisArgument] = [], arguments: [RedisArgument] = []) -> [RedisArgument] {
        ["EVALSHA", RedisArgument(sha1), RedisArgument(keys.count)] + keys + arguments
    }
}

extension RedisConnection {
    /// Runs `script` with `EVALSHA`; if the server answers `NOSCRIPT` (restarted, `SCRIPT FLUSH`, a
    /// failover), loads it with `SCRIPT LOAD` and runs it again. `NOSCRIPT` means the script did not
    /// run, so the retry cannot run it twice.
    ///
    /// - Throws: ``RedisError`` for an error reply of the script (`error_reply`, a failed `redis.call`)
    ///   or a lost connection.
    public func evaluate(_ script: RedisScript, keys: [RedisArgument] = [], arguments: [RedisArgument] = []) throws -> RedisReply {
        do {
            return try command(script.evalSHACommand(keys: keys, arguments: arguments))
        } catch let error as RedisError where error.code == "NOSCRIPT" {
            logger.debug("script not cached on the server; loading it", metadata: ["redis.script": .string(script.sha1)])
            try load([script])
            return try command(script.evalSHACommand(keys: keys, arguments: arguments))
        }
    }

    /// Runs a batch of script calls in one pipeline. Calls answered `NOSCRIPT` did not run; their
    /// scripts are loaded and only those calls are sent again (after the others, so a batch of
    /// independent calls is the intended use). Other error replies are returned in place.
    public func evaluate(batch calls: [(script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument])]) throws -> [RedisReply] {
        var replies = try pipeline(calls.map { $0.script.evalSHACommand(keys: $0.keys, arguments: $0.arguments) })
        let missing = replies.indices.filter { replies[$0].errorCode == "NOSCRIPT" }
        guard !missing.isEmpty else { return replies }
        var seen: Set<String> = []
        let scripts = missing.map { calls[$0].script }.filter { seen.insert($0.sha1).inserted }
        try load(scripts)
        let retried = try pipeline(missing.map { calls[$0].script.evalSHACommand(keys: calls[$0].keys, arguments: calls[$0].arguments) })
        for (index, reply) in zip(missing, retried) { replies[index] = reply }
        return replies
    }

    /// Loads scripts with `SCRIPT LOAD` (one pipeline) and checks the server computed the same SHA-1.
    public func load(_ scripts: [RedisScript]) throws {
        let replies = try pipeline(scripts.map { ["SCRIPT", "LOAD", RedisArgument($0.source)] })
        for (script, reply) in zip(scripts, replies) {
            if case .error(let text) = reply {
                var error = RedisError(kind: .server, message: "Redis at \(target) refused to load a Lua script: \(text)")
                error.target = target
                error.command = "SCRIPT LOAD"
                error.code = reply.errorCode
                error.hint = "The script does not compile; fix its source (the error names the line)."
                throw error
            }
            let sha = try reply.decodeString(for: "SCRIPT LOAD")
            guard sha == script.sha1 else {
                var error = RedisError(kind: .unexpectedReply, message: "SCRIPT LOAD returned \(sha ?? "nil"), expected \(script.sha1)")
                error.target = target
                throw error
            }
        }
    }
}
