import Foundation
import NFLDBCore

/// Runs the built `nfldb` binary, as an operator would, and captures status and output.
public enum CLIRunner {
    /// `.build/<config>/nfldb`, next to the test bundle.
    public static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["NFLDB_BINARY"] { return explicit }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            let candidate = url.deletingLastPathComponent().appendingPathComponent("nfldb")
            if FileManager.default.isExecutableFile(atPath: candidate.path), !candidate.hasDirectoryPath { return candidate.path }
            url = url.deletingLastPathComponent()
        }
        return ".build/debug/nfldb"
    }

    /// Runs `nfldb args…` with a clean environment (no PG*/NFLDB_* leaking in from the developer's
    /// shell) plus `environment`.
    public static func run(
        _ arguments: [String], environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Duration = .seconds(120)
    ) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") && !$0.key.hasPrefix("NFLDB_") && $0.key != "DATABASE_URL" }
        env.merge(environment) { _, new in new }
        return try ProcessRunner().run(binary, arguments, environment: env, workingDirectory: workingDirectory, timeout: timeout)
    }

    /// A fresh temporary directory (removed by the caller).
    public static func temporaryDirectory(_ prefix: String = "nfldb-cli") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
