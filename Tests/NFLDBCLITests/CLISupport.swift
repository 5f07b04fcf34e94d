import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

/// Runs the built `nfldb` binary with a clean environment plus `env`.
@discardableResult
func nfldb(_ arguments: String..., env: [String: String] = [:], in directory: String? = nil) throws -> ProcessResult {
    try CLIRunner.run(arguments, environment: env, workingDirectory: directory, timeout: .seconds(120))
}

extension ProcessResult {
    var stdoutLines: [String] { standardOutput.split(separator: "\n").map(String.init) }
    var stderrLines: [String] { standardError.split(separator: "\n").map(String.init) }
    /// Everything the operator sees, for "never contains the password" checks.
    var allOutput: String { standardOutput + standardError }
}

/// Parses one line of JSON into an object.
func jsonObject(_ text: String) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(value as? [String: Any], "not a JSON object: \(text)")
}

/// A scratch directory for one test, removed afterwards.
func withScratchDirectory<T>(_ prefix: String = "nfldb-cli", _ body: (String) throws -> T) throws -> T {
    let path = try CLIRunner.temporaryDirectory(prefix)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The parts of a `TestCluster` a CLI test passes through the environment.
struct ClusterAccess {
    let host: String
    let port: Int
    let user: String
    let password: String
    let database: String
    let conninfo: String

    init(_ db: TestDatabase) throws {
        let cluster = db.cluster
        host = cluster.host
        port = cluster.port
        user = cluster.superuser
        password = try #require(cluster.password, "the CLI tests need the throwaway cluster's password")
        database = db.name
        conninfo = db.dsn
    }

    var url: String { "postgresql://\(user):\(password)@\(host):\(port)/\(database)" }
    var libpqEnvironment: [String: String] {
        ["PGHOST": host, "PGPORT": String(port), "PGUSER": user, "PGDATABASE": database]
    }
}
