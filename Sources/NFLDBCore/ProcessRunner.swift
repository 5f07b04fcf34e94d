import Foundation

/// What a finished child process did. A non-zero status is a normal result, not a thrown error.
public struct ProcessResult: Sendable {
    public let command: [String]
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
    public let duration: Duration

    public var succeeded: Bool { status == 0 }

    /// The last `count` non-empty lines of stderr (where pgBackRest and pg_ctl put `ERROR:`/`HINT:`).
    public func stderrTail(_ count: Int = 8) -> String {
        standardError.split(separator: "\n").suffix(count).joined(separator: "\n")
    }
}

/// The process could not be started at all (missing binary, bad working directory) or timed out.
public struct ProcessError: NFLDBError, Sendable {
    public let diagnostic: Diagnostic
}

/// Runs external programs (`initdb`, `pg_ctl`, `pgbackrest`, `pg_dump`) with bounded waiting.
///
/// When nfldb runs as root and ``runAsUser`` is set, the command is wrapped in
/// `runuser -u USER --`, because PostgreSQL's tools refuse to run as root.
public struct ProcessRunner: Sendable {
    /// OS user to run as when the current user is root (`postgres.os_user`, default `postgres`).
    public var runAsUser: String?

    public init(runAsUser: String? = nil) {
        self.runAsUser = runAsUser
    }

    public static var isRoot: Bool { geteuid() == 0 }

    /// The argv actually executed, after the optional `runuser` wrapping.
    public func commandLine(_ executable: String, _ arguments: [String]) -> [String] {
        if Self.isRoot, let user = runAsUser, user != "root" {
            return ["/usr/sbin/runuser", "-u", user, "--", executable] + arguments
        }
        return [executable] + arguments
    }

    /// Runs a program to completion.
    ///
    /// - Parameters:
    ///   - executable: absolute path, or a name looked up on `PATH`.
    ///   - timeout: after it, the child gets SIGTERM, then SIGKILL 5 s later, and this throws.
    /// - Returns: the status and output; a non-zero status is returned, not thrown.
    /// - Throws: ``ProcessError`` when the program cannot be started or times out.
    public func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        workingDirectory: String? = nil, timeout: Duration = .seconds(600)
    ) throws -> ProcessResult {
        let resolved = try Self.resolveExecutable(executable)
        let argv = commandLine(resolved, arguments)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if let environment { process.environment = environment }
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-proc-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out")
        let errURL = scratch.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice

        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = ContinuousClock.now
        do {
            try process.run()
        } catch {
            throw ProcessError(diagnostic: Diagnostic(
                "could not start \(argv.joined(separator: " ")): \(error.localizedDescription)",
                hint: "Check that the program is installed (ci/setup installs everything nfldb needs)."))
        }
        let seconds = Double(DurationParser.milliseconds(timeout)) / 1000
        if done.wait(timeout: .now() + seconds) == .timedOut {
            process.terminate()
            if done.wait(timeout: .now() + 5) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                _ = done.wait(timeout: .now() + 5)
            }
            throw ProcessError(diagnostic: Diagnostic(
                "\(URL(fileURLWithPath: resolved).lastPathComponent) did not finish within \(timeout) and was stopped",
                detail: argv.joined(separator: " ")))
        }
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return ProcessResult(
            command: argv, status: process.terminationStatus, standardOutput: out, standardError: err,
            duration: ContinuousClock.now - start)
    }

    /// Resolves a program name against `PATH`; absolute paths are checked for existence.
    public static func resolveExecutable(_ name: String, extraDirectories: [String] = []) throws -> String {
        if name.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: name) else {
                throw ProcessError(diagnostic: Diagnostic("\(name) is not an executable file", hint: "Install it, or fix the configured path."))
            }
            return name
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in extraDirectories + path.split(separator: ":").map(String.init) {
            let candidate = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ProcessError(diagnostic: Diagnostic(
            "\(name) was not found on PATH", hint: "Install it (ci/setup installs every package nfldb needs)."))
    }
}
