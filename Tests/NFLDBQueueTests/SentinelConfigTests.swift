import Foundation
import NFLDBCore
import NFLDBQueue
import NFLDBRedis
import Testing

@Suite("redis.sentinels / redis.master_name configuration")
struct SentinelConfigTests {
    func load(_ yaml: String?, env: [String: String] = [:]) throws -> QueueConfig {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-qcfg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        if let yaml { try yaml.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8) }
        let configuration = try ConfigurationLoader(keys: ConfigKey.global + QueueConfig.keys, environment: env, workingDirectory: dir).load()
        return try QueueConfig(configuration: configuration)
    }

    @Test("from nfldb.yaml and from the environment; WAIT for one replica by default with Sentinel, none without")
    func parsed() throws {
        let file = try load("""
            redis:
              url: redis://127.0.0.1:6379/2
              sentinels: [127.0.0.1:26379, "127.0.0.1:26380", "[::1]:26381"]
              master_name: nfl
              failover_timeout: 10s
            """)
        let sentinel = try #require(file.sentinel)
        #expect(sentinel.masterName == "nfl" && sentinel.sentinels.map(\.description) == ["127.0.0.1:26379", "127.0.0.1:26380", "[::1]:26381"])
        #expect(file.endpoint.database == 2 && file.failoverTimeout == .seconds(10) && file.effectiveWaitReplicas == 1)
        #expect(file.locator.description.contains("master nfl via sentinels"))

        let env = try load(nil, env: ["NFLDB_REDIS_SENTINELS": "127.0.0.1:1,127.0.0.1:2", "NFLDB_REDIS_MASTER_NAME": "m", "NFLDB_REDIS_WAIT_REPLICAS": "0",
                                      "NFLDB_REDIS_SENTINEL_PASSWORD": "env:SENT_PW", "SENT_PW": "sentinel-secret"])
        #expect(env.sentinel?.sentinels.count == 2 && env.effectiveWaitReplicas == 0)
        #expect(env.sentinel?.sentinels.allSatisfy { $0.password == "sentinel-secret" } == true)
        #expect(try load(nil).sentinel == nil && (try load(nil)).effectiveWaitReplicas == 0)
    }

    @Test("half a Sentinel setting, a bad address, an inline sentinel password or a negative wait are errors naming the key and file line")
    func errors() throws {
        let noName = #expect(throws: ConfigurationError.self) { try load("redis:\n  sentinels: [127.0.0.1:26379]\n") }
        let noNameText = String(describing: noName.map { $0 as any Error } ?? OperatorError(""))
        #expect(noNameText.contains("redis.master_name") && noNameText.contains("nfldb.yaml:2"), "\(noNameText)")
        #expect(throws: ConfigurationError.self) { try load("redis:\n  master_name: m\n") }
        let bad = #expect(throws: ConfigurationError.self) { try load("redis:\n  sentinels: [\"127.0.0.1:99999\"]\n  master_name: m\n") }
        #expect(String(describing: bad.map { $0 as any Error } ?? OperatorError("")).contains("99999"))
        let inline = #expect(throws: ConfigurationError.self) {
            try load("redis:\n  sentinels: [127.0.0.1:26379]\n  master_name: m\n  sentinel_password: hunter2\n")
        }
        #expect(!String(describing: inline.map { $0 as any Error } ?? OperatorError("")).contains("hunter2"))
        #expect(throws: ConfigurationError.self) { try load("redis:\n  wait_replicas: -1\n") }
    }
}
