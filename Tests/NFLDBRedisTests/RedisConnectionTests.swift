import Foundation
import NFLDBCore
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

@Suite("RedisConnection against a real redis-server")
struct RedisConnectionTests {
    @Test("every RESP2 reply type round-trips: status, error, integer, bulk, nil, array (nested)")
    func replyTypes() throws {
        try RedisTestServer.with { server in
            let redis = try server.connect()
            #expect(try redis.command("SET", "k", "v") == .status("OK"))
            #expect(try redis.command("GET", "k") == .bulk(Array("v".utf8)))
            #expect(try redis.command("GET", "k").string == "v")
            #expect(try redis.command("GET", "missing") == .null)
            #expect(try redis.command("INCRBY", "n", 41) == .integer(41))
            #expect(try redis.command("INCR", "n").decodeInteger(for: "INCR") == 42)
            #expect(try redis.command("GET", "n").int == 42, "a bulk decimal decodes as an integer")
            #expect(try redis.command("RPUSH", "l", "a", "b", "") == .integer(3))
            #expect(try redis.command("LRANGE", "l", 0, -1) == .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8)), .bulk([])]))
            #expect(try redis.command("LRANGE", "nothing", 0, -1) == .array([]))

            let error = #expect(throws: RedisError.self) { try redis.command("INCR", "k") }
            #expect(error?.kind == .server)
            #expect(error?.code == "ERR")
            #expect(error?.command == "INCR")
            #expect(error?.description.contains("not an integer") == true)
            #expect(error?.description.contains("127.0.0.1:\(server.port)") == true)
            let wrongType = #expect(throws: RedisError.self) { try redis.command("LPUSH", "k", "x") }
            #expect(wrongType?.code == "WRONGTYPE")
            #expect(wrongType?.diagnostic.hint?.contains("another data type") == true)
            #expect(redis.isAlive, "an error reply leaves the connection usable")

            let nested = try redis.command("EVAL", "return {1, 'two', {3, redis.status_reply('FINE')}, false, redis.error_reply('INNER oops')}", 0)
            #expect(nested == .array([
                .integer(1), .bulk(Array("two".utf8)), .array([.integer(3), .status("FINE")]), .null, .error("INNER oops"),
            ]))
            #expect(nested.elements?.last?.errorCode == "INNER")
            #expect(try redis.command("EVAL", "return false", 0).decodeString(for: "EVAL") == nil)
            let shape = #expect(throws: RedisError.self) { try redis.command("GET", "l").decodeInteger(for: "GET") }
            #expect(shape?.kind == .server, "GET of a list is WRONGTYPE")
            let decode = #expect(throws: RedisError.self) { try redis.command("LRANGE", "l", 0, 0).decodeInteger(for: "LRANGE") }
            #expect(decode?.kind == .unexpectedReply)
            #expect(decode?.description.contains("LRANGE returned array") == true)
        }
    }

    @Test("arguments are binary-safe: NUL bytes, CRLF and protocol text are stored verbatim, nothing is injected")
    func binarySafeArguments() throws {
        try RedisTestServer.with { server in
            let redis = try server.connect()
            let key = RedisArgument([0x6b, 0x00, 0x0d, 0x0a, 0x6b])
            let allBytes = RedisArgument((0...255).map { UInt8($0) } + (0...255).map { UInt8($0) })
            #expect(try redis.command("SET", key, allBytes) == .status("OK"))
            #expect(try redis.command("GET", key) == .bulk(allBytes.bytes))
            #expect(try redis.command("STRLEN", key) == .integer(512))
            // A value that would be a second command if it were spliced into inline command text.
            let injection = "x\r\nSET injected 1\r\n*3\r\n$3\r\nSET\r\n$8\r\ninjected\r\n$1\r\n1\r\n"
            #expect(try redis.command("SET", "plain", RedisArgument(injection)) == .status("OK"))
            #expect(try redis.command("GET", "plain").string == injection)
            #expect(try redis.command("EXISTS", "injected") == .integer(0))
            #expect(try redis.command("SET", "", "") == .status("OK"), "an empty key and value are valid arguments")
            #expect(try redis.command("GET", "") == .bulk([]))
            #expect(try redis.command("DBSIZE") == .integer(3))
            let big = RedisArgument([UInt8](repeating: 0, count: 3_000_000))
            #expect(try redis.command("SET", "big", big) == .status("OK"))
            #expect(try redis.command("GET", "big").bytes?.count == 3_000_000)
        }
    }

    @Test("pipelining: N commands appended, N replies read in order; an error reply stays in its slot")
    func pipelining() throws {
        try RedisTestServer.with { server in
            let redis = try server.connect()
            let commands: [[RedisArgument]] = (1...2000).map { _ in ["INCR", "counter"] }
            let replies = try redis.pipeline(commands)
            #expect(replies == (1...2000).map { .integer(Int64($0)) })

            let mixed = try redis.pipeline([["SET", "s", "text"], ["INCR", "s"], ["GET", "s"], ["GET", "absent"]])
            #expect(mixed.count == 4)
            #expect(mixed[0] == .status("OK"))
            #expect(mixed[1].errorCode == "ERR")
            #expect(mixed[2] == .bulk(Array("text".utf8)))
            #expect(mixed[3] == .null)
            #expect(try redis.pipeline([]).isEmpty)
            #expect(try redis.command("GET", "counter").int == 2000, "the connection is in sync after the pipelines")
        }
    }

    @Test("EVALSHA falls back to SCRIPT LOAD on NOSCRIPT, also in a batch; the local SHA-1 matches the server's")
    func evalshaFallback() throws {
        try RedisTestServer.with { server in
            let redis = try server.connect()
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try redis.command("SCRIPT", "LOAD", RedisArgument(script.source)).string == script.sha1)
            #expect(try redis.command("SCRIPT", "FLUSH") == .status("OK"))
            let raw = #expect(throws: RedisError.self) { try redis.command(script.evalSHACommand(keys: ["x"], arguments: [1])) }
            #expect(raw?.code == "NOSCRIPT")

            #expect(try redis.evaluate(script, keys: ["x"], arguments: [5]) == .integer(5))
            #expect(try redis.command("SCRIPT", "EXISTS", RedisArgument(script.sha1)) == .array([.integer(1)]))
            #expect(try redis.evaluate(script, keys: ["x"], arguments: [5]) == .integer(10))
            _ = try redis.command("SCRIPT", "FLUSH")
            #expect(try redis.evaluate(script, keys: ["x"], arguments: [1]) == .integer(11), "reloaded after a flush")

            _ = try redis.command("SCRIPT", "FLUSH")
            let other = RedisScript("return ARGV[1] .. ':' .. redis.call('GET', KEYS[1])")
            let batch = try redis.evaluate(batch: [
                (script, ["x"], [1]), (other, ["x"], ["value"]), (script, ["x"], [1]),
            ])
            #expect(batch == [.integer(12), .bulk(Array("value:13".utf8)), .integer(13)] || batch == [.integer(12), .bulk(Array("value:12".utf8)), .integer(13)])
            #expect(try redis.command("GET", "x").int == 13, "each call ran exactly once")

            let failing = RedisScript("return redis.error_reply('FENCED current=2')")
            let fenced = #expect(throws: RedisError.self) { try redis.evaluate(failing) }
            #expect(fenced?.code == "FENCED")
            #expect(fenced?.kind == .server)
            let broken = #expect(throws: RedisError.self) { try redis.evaluate(RedisScript("return (")) }
            #expect(broken?.description.contains("refused to load a Lua script") == true)
        }
    }

    @Test("AUTH: the right password works (TCP, Unix socket, URL); a wrong or missing one is refused without showing it")
    func authentication() throws {
        let password = "s3cret-\(UUID().uuidString.prefix(8))"
        try RedisTestServer.with(password: password) { server in
            let redis = try server.connect()
            try redis.ping()
            let viaSocket = try server.connect(socket: true)
            #expect(try viaSocket.command("CLIENT", "GETNAME").string == "nfldb-test")
            let url = "redis://:\(password)@127.0.0.1:\(server.port)/3"
            let fromURL = try RedisEndpoint(url: url)
            let selected = try RedisConnection.connect(fromURL, logger: RedisTestServer.logger)
            #expect(try selected.command("CLIENT", "INFO").string?.contains("db=3") == true)
            #expect(!fromURL.redactedURL.contains(password))
            #expect(!SecretRedactor.shared.redact("connecting to \(url)").contains(password))

            var wrong = server.endpoint
            wrong.password = "not-the-\(password)"
            let refused = #expect(throws: RedisError.self) { try RedisConnection.connect(wrong, logger: RedisTestServer.logger) }
            #expect(refused?.kind == .authentication)
            #expect(refused?.description.contains("refused the password") == true)
            #expect(refused?.description.contains("127.0.0.1:\(server.port)") == true)
            #expect(refused?.description.contains(password) == false)
            #expect(refused.map { String(reflecting: $0) }?.contains(password) == false)

            var none = server.endpoint
            none.password = nil
            let missing = #expect(throws: RedisError.self) { try RedisConnection.connect(none, logger: RedisTestServer.logger) }
            #expect(missing?.kind == .authentication)
            #expect(missing?.description.contains("requires a password") == true)
            #expect(missing?.diagnostic.hint?.contains("redis.password") == true)
            #expect(missing?.diagnostic.hint?.contains("PASSWORD@") == false, "the hint must not suggest a password in redis.url")

            let badDB = try RedisEndpoint(url: "redis://:\(password)@127.0.0.1:\(server.port)/99")
            let noDB = #expect(throws: RedisError.self) { try RedisConnection.connect(badDB, logger: RedisTestServer.logger) }
            #expect(noDB?.description.contains("has no database 99") == true)
            #expect(noDB?.description.contains(password) == false)
        }
    }

    @Test("connection refused names host:port and what to check")
    func connectionRefused() throws {
        let server = try RedisTestServer.start()
        let port = server.port
        server.stop()
        let error = #expect(throws: RedisError.self) {
            try RedisConnection.connect(RedisEndpoint(host: "127.0.0.1", port: port, password: "pw-never-shown"), logger: RedisTestServer.logger)
        }
        #expect(error?.kind == .connection)
        #expect(error?.description.contains("could not connect to Redis at 127.0.0.1:\(port): Connection refused") == true)
        #expect(error?.diagnostic.hint?.contains("redis-server is running and listening on 127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("pw-never-shown") == false)
        let socket = #expect(throws: RedisError.self) {
            try RedisConnection.connect(RedisEndpoint(socketPath: "/nonexistent/redis.sock"), logger: RedisTestServer.logger)
        }
        #expect(socket?.description.contains("unix:/nonexistent/redis.sock") == true)
    }

    @Test("the server killed mid-connection gives an error, not a crash (also for a large pipelined write); the connection stays failed")
    func serverKilled() throws {
        let server = try RedisTestServer.start()
        defer { server.stop() }
        let redis = try server.connect()
        let other = try server.connect()
        try redis.ping()
        server.kill()
        let lost = #expect(throws: RedisError.self) { try redis.command("GET", "k") }
        #expect(lost?.kind == .connectionLost)
        #expect(lost?.description.contains("127.0.0.1:\(server.port)") == true)
        #expect(!redis.isAlive)
        let again = #expect(throws: RedisError.self) { try redis.ping() }
        #expect(again?.description.contains("unusable after an earlier failure") == true)
        // 8 MB to a closed socket: without SIGPIPE ignored, the write would kill the test process.
        let payload = RedisArgument([UInt8](repeating: 0x61, count: 8_000_000))
        #expect(throws: RedisError.self) { try other.pipeline([["SET", "a", payload], ["SET", "b", payload]]) }
        #expect(!other.isAlive)
    }

    @Test("a command that gets no reply within the command timeout fails with .timeout")
    func commandTimeout() throws {
        try RedisTestServer.with { server in
            let admin = try server.connect()
            let redis = try server.connect(commandTimeout: .milliseconds(300))
            try admin.command("CLIENT", "PAUSE", 1500, "ALL").decodeStatus(for: "CLIENT PAUSE")
            let start = ContinuousClock.now
            let error = #expect(throws: RedisError.self) { try redis.command("GET", "k") }
            #expect(error?.kind == .timeout)
            #expect(error?.description.contains("within the command timeout") == true)
            #expect(ContinuousClock.now - start < .seconds(2))
            try admin.command("CLIENT", "UNPAUSE").decodeStatus(for: "CLIENT UNPAUSE")
            #expect(throws: RedisError.self) { try redis.ping() }
        }
    }

    @Test("the test server fails loudly with the log tail when redis-server cannot start")
    func serverStartFailure() throws {
        let error = #expect(throws: RedisTestServerError.self) { try RedisTestServer.start(settings: ["no-such-directive yes"], timeout: .seconds(5)) }
        #expect(error?.description.contains("did not answer PING") == true)
        #expect(error?.logTail.contains("no-such-directive") == true, "got: \(error?.logTail ?? "")")
    }

    @Test("restart() reloads the AOF: a write acknowledged with appendfsync always survives SIGKILL and restart")
    func restartKeepsAOF() throws {
        try RedisTestServer.with(settings: ["appendonly yes", "appendfsync always"]) { server in
            let before = server.process.pid
            let redis = try server.connect()
            #expect(try redis.command("SET", "durable", "yes") == .status("OK"))
            try server.restart(kill: true)
            #expect(server.process.pid != before)
            #expect(throws: RedisError.self) { try redis.ping() }
            let again = try server.connect()
            #expect(try again.command("GET", "durable").string == "yes")
        }
    }

    @Test("stop() ends the server and removes its directory")
    func serverStop() throws {
        let server = try RedisTestServer.start()
        let pid = server.process.pid
        #expect(FileManager.default.fileExists(atPath: server.directory))
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: server.directory))
        #expect(kill(pid, 0) != 0, "redis-server pid \(pid) still exists")
    }
}

@Suite("RedisEndpoint URLs")
struct RedisEndpointTests {
    @Test("redis:// and unix:// URLs parse host, port, database, user and password")
    func parsing() throws {
        let plain = try RedisEndpoint(url: "redis://127.0.0.1:6380/2")
        #expect(plain.address == .tcp(host: "127.0.0.1", port: 6380))
        #expect(plain.database == 2)
        #expect(plain.password == nil)
        #expect(plain.description == "127.0.0.1:6380 db=2")
        #expect(try RedisEndpoint(url: "redis://db.example").address == .tcp(host: "db.example", port: 6379))
        let auth = try RedisEndpoint(url: "redis://worker:p%40ss%2Fword@10.0.0.5:7000/0")
        #expect(auth.username == "worker")
        #expect(auth.password == "p@ss/word")
        #expect(auth.redactedURL == "redis://worker:\(SecretRedactor.mask)@10.0.0.5:7000/0")
        #expect(!auth.description.contains("p@ss"))
        let passwordOnly = try RedisEndpoint(url: "redis://:hunter22@h:1")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "hunter22")
        let socket = try RedisEndpoint(url: "unix:///run/redis/redis.sock?db=4")
        #expect(socket.address == .unix(path: "/run/redis/redis.sock"))
        #expect(socket.database == 4)
    }

    @Test("malformed URLs are usage errors that do not show the password")
    func invalid() {
        for url in [
            "redis://:pw-secret-1@h:99999/0", "redis://:pw-secret-1@h/notanumber", "rediss://:pw-secret-1@h", "http://:pw-secret-1@h", "redis://",
            "redis://:pw-secret-1@x@h:99999/0", "redis://u:pw-secret-1/@h/notanumber",
            // Typos that do not parse at all: never echoed.
            "redis:/:pw-secret-1@127.0.0.1:6379/0", "redis//:pw-secret-1@127.0.0.1", "redis://user:pw-secret-1", "pw-secret-1",
        ] {
            let error = #expect(throws: RedisError.self) { try RedisEndpoint(url: url) }
            #expect(error?.kind == .invalidEndpoint, "\(url)")
            #expect(error?.exitStatus == .usage)
            #expect(error?.description.contains("pw-secret-1") == false, "\(url): \(error?.description ?? "")")
            #expect(error?.diagnostic.hint?.contains("redis://") == true)
            let shown = error?.description ?? ""
            #expect(shown.contains("\(SecretRedactor.mask)@") || shown.contains("(not shown: it may hold a password)") || !url.contains("@"), "\(shown)")
        }
        #expect(RedisEndpoint.redact("redis://worker:p@ss/w0rd@h:1/0") == "redis://worker:\(SecretRedactor.mask)@h:1/0")
        #expect(RedisEndpoint.redact("redis://h:1/0") == "redis://h:1/0")
    }
}
