import Foundation
import Logging
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBQueue
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

/// `redis.password` is a secret reference like every other (env:, file: with the 0600 rule, aws-sm:),
/// resolved by NFLDBCore's SecretResolver; checked against a real redis-server with `requirepass`
/// and moto's Secrets Manager, and the password appears in no message or log line.
@Suite("redis.password through the secret resolver (redis-server requirepass, moto)", .serialized)
struct RedisPasswordTests {
    static let logger: Logger = {
        var logger = Logger(label: "nfldb.tests.redis-password") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }()

    static func load(_ environment: [String: String], yaml: String? = nil, in dir: String) throws -> Configuration {
        if let yaml { try yaml.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8) }
        return try ConfigurationLoader(keys: ConfigKey.global + QueueConfig.keys, environment: environment, workingDirectory: dir).load()
    }

    /// Resolves the configuration and PINGs the server with the endpoint it produced.
    static func ping(_ configuration: Configuration) throws {
        let config = try QueueConfig(configuration: configuration)
        let connection = try RedisConnection.connect(config.endpoint, logger: logger)
        defer { connection.close() }
        try connection.ping()
    }

    static func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let dir = try CLIRunner.temporaryDirectory("nfldb-redis-pw")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body(dir)
    }

    @Test func fileReferenceFollowsThe0600RuleAndAuthenticates() throws {
        let password = "redis-file-pw-\(UUID().uuidString.prefix(12))"
        try RedisTestServer.with(password: password) { redis in
            try Self.withDirectory { dir in
                let file = dir + "/redis.pw"
                try "\(password)\n".write(toFile: file, atomically: true, encoding: .utf8)
                chmod(file, 0o644)
                let yaml = "redis:\n  url: redis://127.0.0.1:\(redis.port)/0\n  password: file:\(file)\n"
                let configuration = try Self.load([:], yaml: yaml, in: dir)
                let refused = #expect(throws: ConfigurationError.self) { try Self.ping(configuration) }
                let text = refused?.description ?? ""
                #expect(text.contains("nfldb.yaml:3") && text.contains("redis.password") && text.contains("group or world access"), "\(text)")
                #expect(text.contains("chmod 0600 \(file)"))
                #expect(!text.contains(password))

                chmod(file, 0o600)
                try Self.ping(configuration)
                // Without the reference the server refuses us: the password really came from the file.
                let bare = try Self.load([:], yaml: "redis:\n  url: redis://127.0.0.1:\(redis.port)/0\n", in: dir)
                let noAuth = #expect(throws: RedisError.self) { try Self.ping(bare) }
                #expect(noAuth?.kind == .authentication)
            }
        }
    }

    @Test func envReferenceAndWrongPasswordNeverShowTheValue() throws {
        let password = "redis-env-pw-\(UUID().uuidString.prefix(12))"
        try RedisTestServer.with(password: password) { redis in
            try Self.withDirectory { dir in
                let url = "redis://127.0.0.1:\(redis.port)/0"
                try Self.ping(try Self.load(["NFLDB_REDIS_URL": url, "NFLDB_REDIS_PASSWORD": "env:TEST_REDIS_PW", "TEST_REDIS_PW": password], in: dir))

                let wrong = "wrong-redis-pw-\(UUID().uuidString.prefix(12))"
                let configuration = try Self.load(["NFLDB_REDIS_URL": url, "NFLDB_REDIS_PASSWORD": "env:TEST_REDIS_PW", "TEST_REDIS_PW": wrong], in: dir)
                let error = #expect(throws: RedisError.self) { try Self.ping(configuration) }
                #expect(error?.kind == .authentication)
                let message = error.map { "\($0.diagnostic.summary) \($0.diagnostic.hint ?? "")" } ?? wrong
                #expect(message.contains("127.0.0.1:\(redis.port)") && !message.contains(wrong), "\(message)")
                #expect(SecretRedactor.shared.redact("AUTH \(wrong)") == "AUTH \(SecretRedactor.mask)", "the resolved value is registered with the redactor")

                let unset = try Self.load(["NFLDB_REDIS_URL": url, "NFLDB_REDIS_PASSWORD": "env:NOT_SET_REDIS_PW"], in: dir)
                let missing = #expect(throws: ConfigurationError.self) { try Self.ping(unset) }
                #expect(missing?.description.contains("env NFLDB_REDIS_PASSWORD") == true, "\(missing?.description ?? "")")
                #expect(missing?.description.contains("NOT_SET_REDIS_PW is not set") == true)
            }
        }
    }

    @Test func anInlinePasswordIsRefusedWithoutEchoingIt() throws {
        try Self.withDirectory { dir in
            let inline = "inline-redis-pw-\(UUID().uuidString.prefix(8))"
            let fromFile = #expect(throws: ConfigurationError.self) {
                try Self.load([:], yaml: "redis:\n  url: redis://127.0.0.1:6399/0\n  password: \(inline)\n", in: dir)
            }
            #expect(fromFile?.description.contains("nfldb.yaml:3: 'redis.password' would put a secret in the config file") == true, "\(fromFile?.description ?? "")")
            #expect(fromFile?.description.contains(inline) == false)
            try FileManager.default.removeItem(atPath: dir + "/nfldb.yaml")

            // From the environment the loader cannot tell; decoding refuses it, still without the value.
            for value in [inline, "hunter:\(inline)"] {
                let configuration = try Self.load(["NFLDB_REDIS_PASSWORD": value], in: dir)
                let error = #expect(throws: ConfigurationError.self) { try QueueConfig(configuration: configuration, resolveSecrets: false) }
                let text = error?.description ?? inline
                #expect(text.contains("env NFLDB_REDIS_PASSWORD") && text.contains("redis.password"), "\(text)")
                #expect(!text.contains(inline) && !text.contains("hunter"), "\(text)")
            }
        }
    }

    @Test func awsSecretsManagerReferenceAuthenticatesAndCLINeverPrintsIt() throws {
        let password = "redis-sm-pw-\(UUID().uuidString.prefix(12))"
        let moto = try MotoServer()
        let client = try moto.client()
        let secretID = "nfldb/redis/\(UUID().uuidString.prefix(8))"
        try client.createSecret(secretID, secretString: #"{"username":"default","password":"\#(password)"}"#)
        try RedisTestServer.with(password: password) { redis in
            try Self.withDirectory { dir in
                let url = "redis://127.0.0.1:\(redis.port)/0"
                var environment = moto.environment(extra: ["NFLDB_REDIS_URL": url, "NFLDB_REDIS_PASSWORD": "aws-sm:\(secretID)#password"])
                AWSSecretsProvider.register()
                SecretResolver.shared.forget()
                try Self.ping(try Self.load(environment, in: dir))

                // The executable end to end, at trace level: works, and no output line holds the password.
                environment["NFLDB_LOG_LEVEL"] = "trace"
                let stats = try CLIRunner.run(["queue", "stats"], environment: environment)
                #expect(stats.status == 0, "\(stats.standardOutput)\(stats.standardError)")
                #expect(!(stats.standardOutput + stats.standardError).contains(password))

                // A missing JSON field and an unknown secret: exit 2, the reference named, no value shown.
                environment["NFLDB_REDIS_PASSWORD"] = "aws-sm:\(secretID)#pass"
                let badKey = try CLIRunner.run(["queue", "stats"], environment: environment)
                #expect(badKey.status == 2, "\(badKey.standardOutput)\(badKey.standardError)")
                #expect(badKey.standardError.contains("redis.password aws-sm:\(secretID)#pass"), "\(badKey.standardError)")
                #expect(badKey.standardError.contains("no field 'pass'"))
                #expect(!(badKey.standardOutput + badKey.standardError).contains(password))

                environment["NFLDB_REDIS_PASSWORD"] = "aws-sm:nfldb/redis/missing#password"
                let missing = try CLIRunner.run(["queue", "stats"], environment: environment)
                // The store answered "no such secret": a failure (1), not a usage error; the reference is named.
                #expect(missing.status == 1, "\(missing.standardOutput)\(missing.standardError)")
                #expect(missing.standardError.contains("redis.password aws-sm:nfldb/redis/missing#password"), "\(missing.standardError)")
                #expect(missing.standardError.contains("ResourceNotFoundException"))
            }
        }
    }
}
