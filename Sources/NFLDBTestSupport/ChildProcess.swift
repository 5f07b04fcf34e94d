import Foundation
import NFLDBCore
import Synchronization

/// A program started in the background for a test (a server, a CLI run to be killed mid-way), with
/// stdout and stderr in files, the default signal dispositions and an empty signal mask.
///
/// This is the one way tests start a child they need to signal or watch; runs to completion use
/// ``CLIRunner/run(_:environment:workingDirectory:timeout:)`` or `ProcessRunner`. Its pid is only
/// signalled while it has not been reaped, so a recycled pid is never hit.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let command: [String]
    /// Files holding the child's stdout and stderr (removed by ``removeOutput()`` or when the handle goes).
    public let outputPath: String
    public let errorPath: String
    private let reaped = Mutex<Int32?>(nil)

    private init(pid: pid_t, command: [String], outputPath: String, errorPath: String) {
        self.pid = pid
        self.command = command
        self.outputPath = outputPath
        self.errorPath = errorPath
    }

    /// Starts `executable` (absolute, or looked up on `PATH`) with `arguments`.
    ///
    /// The child does not inherit the test thread's blocked signals (Dispatch worker threads block
    /// nearly all of them, which would make SIGTERM a no-op) and gets every signal back at
    /// their defaults.
    /// - Parameter environment: the whole environment (default: this process's).
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, workingDirectory: String? = nil
    ) throws -> ChildProcess {
        let resolved = try ProcessRunner.resolveExecutable(executable)
        var argv = [resolved] + arguments
        if let workingDirectory { argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", workingDirectory] + argv }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-child-\(UUID().uuidString.prefix(8))").path
        let outputPath = base + ".out"
        let errorPath = base + ".err"

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        ProcessRunner.resetSignals(&attributes)

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard status == 0 else {
            throw OperatorError("could not start \(argv.joined(separator: " ")): \(String(cString: strerror(status)))")
        }
        return ChildProcess(pid: pid, command: argv, outputPath: outputPath, errorPath: errorPath)
    }

    /// The exit status (128+signal when killed by one), once the child has exited.
    public var exitStatus: Int32? { reap(blocking: false) }

    public var isRunning: Bool { exitStatus == nil }

    /// Waits up to `timeout` for the child to exit; returns its status, or nil if it still runs.
    @discardableResult
    public func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = exitStatus { return status }
            if ContinuousClock.now >= deadline { return nil }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Sends `signal` unless the child has already been reaped.
    public func send(_ signal: Int32) {
        reaped.withLock { status in
            if status == nil { _ = kill(pid, signal) }
        }
    }

    /// Whether the child no longer takes `signo`'s default action (`SigIgn` or `SigCgt` in
    /// /proc/PID/status): its handler (SIG_IGN plus a dispatch source, which installs one) is in
    /// place, so a test knows the child is past start-up before it signals it.
    public func handles(_ signo: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        let bit = UInt64(1) << UInt64(signo - 1)
        return ["SigIgn:", "SigCgt:"].contains { field in
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
                  let mask = UInt64(line.dropFirst(field.count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
            return mask & bit != 0
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status (always reaps the child).
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) -> Int32 {
        send(SIGTERM)
        if let status = wait(timeout: grace) { return status }
        send(SIGKILL)
        return reap(blocking: true) ?? 128 + SIGKILL
    }

    /// SIGKILL and reap.
    @discardableResult
    public func kill9() -> Int32 {
        send(SIGKILL)
        return reap(blocking: true) ?? 128 + SIGKILL
    }

    public var standardOutput: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    public var standardError: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// The last `count` lines of stdout then stderr, for failure messages.
    public func outputTail(_ count: Int = 20) -> String {
        (standardOutput + standardError).split(separator: "\n").suffix(count).joined(separator: "\n")
    }

    /// The output files go with the handle: a test that forgets ``removeOutput()`` leaves nothing in TMPDIR.
    deinit { removeOutput() }

    /// Removes the output files.
    public func removeOutput() {
        try? FileManager.default.removeItem(atPath: outputPath)
        try? FileManager.default.removeItem(atPath: errorPath)
    }

    private func reap(blocking: Bool) -> Int32? {
        reaped.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &raw, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
            guard result == pid else { return nil }
            let decoded = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            status = decoded
            return decoded
        }
    }
}

extension CLIRunner {
    /// Starts the built `nfldb` in the background with the same clean environment as ``run(_:environment:workingDirectory:timeout:)``.
    public static func spawn(_ arguments: [String], environment: [String: String] = [:], workingDirectory: String? = nil) throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") && !$0.key.hasPrefix("NFLDB_") && $0.key != "DATABASE_URL" }
        env.merge(environment) { _, new in new }
        return try ChildProcess.spawn(binary, arguments, environment: env, workingDirectory: workingDirectory)
    }
}
