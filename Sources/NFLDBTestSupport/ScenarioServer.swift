import Foundation

/// The scripted local HTTP server (Fixtures/http_scenario_server.py) on 127.0.0.1.
public final class ScenarioServer {
    let process = Process()
    public let port: Int
    let logPath: String
    let dir: String

    public init(responses: [[String: Any]], etag: String? = nil) throws {
        dir = try CLIRunner.temporaryDirectory("nfldb-etl-http")
        logPath = dir + "/requests.log"
        var scenario: [String: Any] = ["responses": responses]
        if let etag { scenario["etag"] = etag }
        let scenarioPath = dir + "/scenario.json"
        try JSONSerialization.data(withJSONObject: scenario).write(to: URL(fileURLWithPath: scenarioPath))
        // Sources/NFLDBTestSupport/ → the package root → the ETL tests' fixture.
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/NFLDBETLTests/Fixtures/http_scenario_server.py").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, scenarioPath, logPath]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    public var url: String { "http://127.0.0.1:\(port)/games.csv" }

    /// The request targets (path and query) in the order they came.
    public var paths: [String] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["path"] as? String ?? "" }
    }

    /// Logged requests: (time, headers).
    public var requests: [(time: Double, headers: [String: String])] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:] }.map { entry in
            let headers = (entry["headers"] as? [String: String] ?? [:]).map { ($0.key.lowercased(), $0.value) }
            return (entry["t"] as? Double ?? 0, Dictionary(headers, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// Logged request bodies (POST/PUT), with their method, in order.
    public var bodies: [(method: String, body: String)] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            .compactMap { entry in (entry["method"] as? String).map { ($0, entry["body"] as? String ?? "") } }
    }

    /// Endless bodies the client closed: when, and how many bytes had been sent by then.
    public var closedEndlessBodies: [(time: Double, sent: Int)] {
        let text = (try? String(contentsOfFile: logPath + ".closed", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:] }
            .map { ($0["t"] as? Double ?? 0, $0["sent"] as? Int ?? 0) }
    }

    deinit {
        // SIGKILL: the test runner's ignored SIGTERM is inherited by the child.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
