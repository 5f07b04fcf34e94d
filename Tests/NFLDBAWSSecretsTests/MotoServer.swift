import Foundation
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBTestSupport

/// moto's Secrets Manager emulator (`moto_server`, PyPI `moto[server]`) on a free 127.0.0.1 port,
/// started for the test and stopped by its pid.
final class MotoServer: Sendable {
    let child: ChildProcess
    let port: Int
    /// An empty HOME for nfldb (no ~/.aws of the machine's): a directory of the test's, removed with it.
    /// (`/nonexistent` made root's nfldb create /nonexistent/.cache for URLSession.)
    let home: String
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// - Parameter noAuthCount: `INITIAL_NO_AUTH_ACTION_COUNT` (nil: moto does not verify signatures).
    init(noAuthCount: Int? = nil) throws {
        port = try Self.freePort()
        home = try CLIRunner.temporaryDirectory("nfldb-moto-home")
        var environment = ProcessInfo.processInfo.environment
        if let noAuthCount { environment["INITIAL_NO_AUTH_ACTION_COUNT"] = String(noAuthCount) }
        child = try ChildProcess.spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], environment: environment)
        let port = self.port
        try waitUntil("moto_server answering on 127.0.0.1:\(port)", timeout: .seconds(30), interval: .milliseconds(100)) {
            Self.accepts(port)
        }
    }

    deinit {
        _ = child.stop(grace: .seconds(3))
        child.removeOutput()
        try? FileManager.default.removeItem(atPath: home)
    }

    /// The environment nfldb resolves `aws-sm:` against: fixed test keys, region, endpoint override.
    func environment(secretKey: String = "testing", extra: [String: String] = [:]) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": secretKey, "AWS_REGION": "us-east-1",
         "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint, "HOME": home].merging(extra) { $1 }
    }

    func client(secretKey: String = "testing") throws -> SecretsManagerClient {
        try SecretsManagerClient(environment: environment(secretKey: secretKey), timeout: 10)
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw OperatorError("cannot bind a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
