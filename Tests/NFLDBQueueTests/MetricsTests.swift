import Foundation
import NFLDBCore
import NFLDBQueue
import NFLDBQueueMetrics
import NFLDBRedis
import NFLDBRedisTestSupport
import NFLDBTestSupport
import Testing

/// `GET path` over a plain TCP connection to `host:port`; nil when the connection is refused.
func httpGet(host: String = "127.0.0.1", port: Int, path: String = "/metrics") throws -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw OperatorError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port)).bigEndian
    address.sin_addr.s_addr = inet_addr(host)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let head = text.range(of: "\r\n\r\n") else { throw OperatorError("no HTTP header in \(text.prefix(200))") }
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, String(text[head.upperBound...]))
}

/// Prometheus text → value of `name` whose labels include every pair of `labels`.
func metric(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        let series = line[..<space]
        let metricName = series.prefix { $0 != "{" }
        guard metricName == name else { continue }
        var found: [String: String] = [:]
        if let open = series.firstIndex(of: "{") {
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { found[String(kv[0])] = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
        }
        if labels.allSatisfy({ found[$0.key] == $0.value }) { return Double(line[line.index(after: space)...]) }
    }
    return nil
}

@Suite("worker metrics over HTTP (swift-metrics + swift-prometheus)", .serialized)
struct MetricsTests {
    @Test("after a burst run the scrape shows tasks by type and outcome, retries, dead letters, durations, queue depth; 127.0.0.1 only; 404 elsewhere")
    func scrapeAfterRun() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            defer { q.close() }
            for _ in 0..<20 { _ = try q.submit(type: "noop", queue: "cpu") }
            for _ in 0..<2 { _ = try q.submit(type: "fail", queue: "cpu", maxAttempts: 2) }
            _ = try q.submit(type: "sleep", payload: #"{"ms": 30}"#, queue: "cpu")
            let metrics = QueueMetrics()
            let config = world.config
            let logger = world.logger
            let server = try MetricsServer(port: 0, logger: logger) {
                metrics.refresh(config, logger: logger)
                return metrics.render()
            }
            var options = WorkerOptions(queues: ["cpu"], concurrency: 2, burst: true)
            options.metrics = metrics
            let summary = try Worker(config: world.config, options: options, database: world.databaseOptions, logger: logger).run()
            #expect(summary.succeeded == 21 && summary.dead == 2 && summary.retried == 2, "\(summary)")

            let scrape = try #require(try httpGet(port: server.port))
            #expect(scrape.status == 200)
            let text = scrape.body
            #expect(metric(text, "nfldb_worker_tasks_total", ["type": "noop", "outcome": "succeeded"]) == 20, "\(text)")
            #expect(metric(text, "nfldb_worker_tasks_total", ["type": "sleep", "outcome": "succeeded"]) == 1)
            #expect(metric(text, "nfldb_worker_tasks_total", ["type": "fail", "outcome": "retried"]) == 2)
            #expect(metric(text, "nfldb_worker_tasks_total", ["type": "fail", "outcome": "dead"]) == 2)
            #expect(metric(text, "nfldb_worker_task_retries_total", ["type": "fail", "queue": "cpu"]) == 2)
            #expect(metric(text, "nfldb_worker_tasks_dead_lettered_total", ["type": "fail", "queue": "cpu"]) == 2)
            #expect(metric(text, "nfldb_worker_task_duration_seconds_count", ["type": "noop", "outcome": "succeeded"]) == 20)
            // The 30 ms sleep (plus its durable commit and ack) is above the 25 ms bucket and within the 1 s one.
            #expect(metric(text, "nfldb_worker_task_duration_seconds_bucket", ["type": "sleep", "outcome": "succeeded", "le": "0.025"]) == 0)
            #expect(metric(text, "nfldb_worker_task_duration_seconds_bucket", ["type": "sleep", "outcome": "succeeded", "le": "1.0"]) == 1, "\(text)")
            #expect((metric(text, "nfldb_worker_task_duration_seconds_sum", ["type": "sleep", "outcome": "succeeded"]) ?? 0) >= 0.03)
            #expect(metric(text, "nfldb_worker_in_flight") == 0)
            #expect(metric(text, "nfldb_queue_redis_up") == 1)
            #expect(metric(text, "nfldb_queue_dead_letters", ["queue": "cpu"]) == 2)
            #expect(metric(text, "nfldb_queue_depth", ["queue": "cpu", "state": "ready"]) == 0)
            #expect(metric(text, "nfldb_queue_in_flight", ["queue": "cpu"]) == 0)

            // Depth is read at scrape time.
            for _ in 0..<3 { _ = try q.submit(type: "noop", queue: "cpu") }
            let later = try #require(try httpGet(port: server.port)).body
            #expect(metric(later, "nfldb_queue_depth", ["queue": "cpu", "state": "ready"]) == 3, "\(later)")

            #expect(try httpGet(port: server.port, path: "/")?.status == 404)
            #expect(try httpGet(host: "127.0.0.2", port: server.port) == nil, "bound to 127.0.0.1 only")

            // Redis gone: the scrape still answers, with redis_up 0.
            world.redis.kill()
            let down = try #require(try httpGet(port: server.port)).body
            #expect(metric(down, "nfldb_queue_redis_up") == 0)
            server.stop()
            #expect(try httpGet(port: server.port) == nil, "the port is closed after stop()")
        }
    }

    @Test("nfldb worker --metrics-port serves the scrape while it runs (127.0.0.1 only); a taken port fails naming it")
    func workerFlag() throws {
        try QueueWorld.with { world in
            let q = try world.queue()
            defer { q.close() }
            for _ in 0..<5 { _ = try q.submit(type: "noop", queue: "cpu") }
            let port = try LoopbackPort.free()
            let env = ["NFLDB_REDIS_URL": "redis://127.0.0.1:\(world.redis.port)/0", "NFLDB_DSN": world.database.dsn, "NFLDB_LOG_LEVEL": "warning"]
            let worker = try CLIRunner.spawn(["worker", "--queues", "cpu", "--metrics-port", "\(port)"], environment: env)
            defer { worker.kill9(); worker.removeOutput() }
            try waitUntil("5 results stored: \(worker.outputTail())", timeout: .seconds(60)) { try world.resultCount() >= 5 }
            var text = ""
            try waitUntil("the scrape counts 5 no-ops: \(text)", timeout: .seconds(20)) {
                text = try httpGet(port: port)?.body ?? ""
                return metric(text, "nfldb_worker_tasks_total", ["type": "noop", "outcome": "succeeded"]) == 5
            }
            #expect(metric(text, "nfldb_queue_depth", ["queue": "cpu", "state": "ready"]) == 0)
            #expect(try httpGet(host: "127.0.0.2", port: port) == nil, "bound to 127.0.0.1 only")

            let second = try CLIRunner.run(["worker", "--queues", "cpu", "--burst", "--metrics-port", "\(port)"], environment: env)
            #expect(second.status == 1 && second.standardError.contains("127.0.0.1:\(port)"), "\(second.standardError)")
            #expect(worker.stop(grace: .seconds(20)) == 0, "\(worker.outputTail())")
            #expect(try httpGet(port: port) == nil, "the port is closed when the worker exits")
        }
    }
}
