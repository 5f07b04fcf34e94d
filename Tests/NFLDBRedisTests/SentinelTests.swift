import Foundation
import NFLDBCore
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

@Suite("Redis Sentinel discovery against real sentinels")
struct SentinelTests {
    @Test("the locator finds the master through the sentinels and checks ROLE; a write on the replica marks its connection failed (READONLY); an unknown master name names every sentinel")
    func discovery() throws {
        let group = try RedisSentinelTestGroup.start(password: "s3cret-sentinel-pw")
        defer { group.stop() }
        let logger = RedisTestServer.logger
        let locator = RedisLocator(endpoint: group.endpoint, sentinel: group.sentinelSettings)
        let connection = try locator.connect(logger: logger)
        defer { connection.close() }
        #expect(connection.target == "127.0.0.1:\(group.master.port)")
        #expect(connection.connectedReplicas == 1)
        #expect(try connection.role().name == "master")
        _ = try connection.command("SET", "k", "v")

        // The replica refuses writes, also from a script: the connection is then unusable, so the caller rediscovers.
        let replica = try group.replica.connect()
        defer { replica.close() }
        #expect(try replica.role().name == "slave")
        let scripted = #expect(throws: RedisError.self) { try replica.command("EVAL", "return redis.call('SET', 'x', '1')", "0") }
        #expect(scripted?.code == "READONLY", "\(String(describing: scripted))")
        #expect(!replica.isAlive, "a READONLY reply must retire the connection")
        let again = #expect(throws: RedisError.self) { try replica.command("GET", "k") }
        #expect(again?.kind == .connectionLost)

        let piped = try group.replica.connect()
        defer { piped.close() }
        let replies = try piped.pipeline([["GET", "k"], ["SET", "y", "1"]])
        #expect(replies[1].errorCode == "READONLY" && !piped.isAlive)

        var unknown = group.sentinelSettings
        unknown.masterName = "nosuchmaster"
        let missing = #expect(throws: RedisError.self) { try RedisLocator(endpoint: group.endpoint, sentinel: unknown).connect(logger: logger) }
        let message = String(describing: missing?.diagnostic.summary ?? "")
        #expect(message.contains("nosuchmaster") && group.sentinels.allSatisfy { message.contains("127.0.0.1:\($0.port)") }, "\(message)")
        #expect(!message.contains("s3cret-sentinel-pw"))

        // Sentinels that are all down: a bounded retry, then an error saying how long it tried.
        let dead = RedisSentinelSettings(sentinels: [RedisEndpoint(host: "127.0.0.1", port: try LoopbackPort.free())], masterName: "m")
        let started = ContinuousClock.now
        let gaveUp = #expect(throws: RedisError.self) {
            try RedisLocator(endpoint: group.endpoint, sentinel: dead).connect(retryWindow: .milliseconds(800), logger: logger)
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(800) && waited < .seconds(5), "retried for the whole window, then gave up: \(waited)")
        #expect(gaveUp?.message.contains("gave up after") == true, "\(String(describing: gaveUp))")
    }

    @Test("sentinel addresses: host:port, [v6]:port, default port 26379; bad entries name the entry")
    func addresses() throws {
        let settings = try RedisSentinelSettings(addresses: ["127.0.0.1:26380", "[::1]:26381", "sentinel-a"], masterName: "m")
        #expect(settings.sentinels.map(\.description) == ["127.0.0.1:26380", "[::1]:26381", "sentinel-a:26379"])
        #expect(throws: RedisError.self) { try RedisSentinelSettings(addresses: ["127.0.0.1:notaport"], masterName: "m") }
        #expect(throws: RedisError.self) { try RedisSentinelSettings(addresses: [], masterName: "m") }
        #expect(throws: RedisError.self) { try RedisSentinelSettings(addresses: ["a:1"], masterName: "") }
    }
}
