import Foundation
import Synchronization

/// What a finished child process did. A non-zero status is a normal result, not a thrown error.
public struct ProcessResult: Sendable {
    public let command: [String]
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
    public let duration: Duration
    /// User + system CPU seconds of the child and every descendant it waited for (`wait4`'s
    /// rusage: a `runuser`/`nice` wrapper's program, pgBackRest's worker processes). A daemon the
    /// child left running (`pg_ctl start`'s postmaster) is not included.
    public var cpuSeconds: Double = 0

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

/// Lets another thread stop a running ``ProcessRunner/run(_:_:environment:workingDirectory:timeout:cancellation:)``
/// early: the child gets SIGTERM, then SIGKILL 5 s later (as on a timeout), and `run` throws.
public final class ProcessCancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)
    public init() {}
    public func cancel() { cancelled.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

/// Runs external programs (`initdb`, `pg_ctl`, `pgbackrest`, `pg_dump`) with bounded waiting.
///
/// When nfldb runs as root and ``runAsUser`` is set, the command is wrapped in
/// `runuser -u USER --`, because PostgreSQL's tools refuse to run as root.
public struct ProcessRunner: Sendable {
    /// OS user to run as when the current user is root (`postgres.os_user`, default `postgres`).
    public var runAsUser: String?
    /// CPU priority for the child (`nice -n`, 1–19 = lower priority), for background work that
    /// should only use the CPU time the critical path leaves idle. nil: the caller's priority.
    public var niceness: Int32?

    public init(runAsUser: String? = nil, niceness: Int32? = nil) {
        self.runAsUser = runAsUser
        self.niceness = niceness
    }

    public static var isRoot: Bool { geteuid() == 0 }

    /// Children currently being waited for, so a signal handler can stop them (e.g. a restore
    /// interrupted by SIGTERM must not keep writing into a scratch dir that is being removed).
    public static let activeChildren = Mutex<Set<pid_t>>([])
    /// Set by a signal handler before it stops ``activeChildren``: a `run` whose child ends then
    /// waits for the handler's `exit` instead of returning.
    public static let stopping = Mutex(false)
    /// Temp directories holding running children's output; removed by ``removeTemporaryFiles()`` on
    /// a signal path that exits without unwinding (`exit` skips the `defer` that normally removes them).
    static let activeScratch = Mutex<Set<String>>([])

    /// Once per process: removes output directories (`nfldb-proc-<pid>-…`) of this user whose nfldb
    /// process is gone — a SIGKILLed run cannot remove its own.
    static let sweepOnce: Void = sweepStaleTemporaryFiles()

    public static func sweepStaleTemporaryFiles(in directory: String = FileManager.default.temporaryDirectory.path) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("nfldb-proc-") {
            guard let pid = Int32(name.dropFirst("nfldb-proc-".count).prefix { $0.isNumber }), pid > 0, pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid() else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Signal path: SIGTERM to every running child, then waits up to `within` for them to end.
    /// With `park`, first sets ``stopping``, so the `run` waiting for a child parks instead of
    /// returning its death to a caller that would report it as its own failure. Returns whether a
    /// child was running.
    @discardableResult
    public static func stopActiveChildren(within: Duration, park: Bool = false) -> Bool {
        if park { stopping.withLock { $0 = true } }
        let children = activeChildren.withLock { $0 }
        // Their own children too (pgBackRest's `restore:local` processes): a child that dies on
        // SIGTERM leaves them to notice on their own, seconds later, still writing where it wrote.
        // Looked up again while the children run: one may start a worker after the first look.
        var family = Set(children.flatMap { descendants(of: $0) })
        for pid in children { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + within
        while !activeChildren.withLock({ $0.isDisjoint(with: children) }) && ContinuousClock.now < deadline {
            family.formUnion(children.flatMap { descendants(of: $0) })
            Thread.sleep(forTimeInterval: 0.02)
        }
        // A child still running at the deadline (a niced `pgbackrest verify` on a busy machine
        // may not get to its SIGTERM in time) is killed with its family, not left behind.
        for pid in children where isRunning(pid) {
            family.formUnion(descendants(of: pid))
            kill(pid, SIGKILL)
        }
        endLeftovers(Array(family), until: deadline)
        return !children.isEmpty
    }

    /// Processes below `root`, from /proc (Linux): children first, then theirs.
    public static func descendants(of root: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let parent = parentAndState(of: pid)?.parent else { continue }
            children[parent, default: []].append(pid)
        }
        var found: [pid_t] = []
        var queue = [root]
        while !queue.isEmpty {
            let next = children[queue.removeFirst()] ?? []
            found += next
            queue += next
        }
        return found
    }

    /// Whether `pid` still runs (a zombie waiting to be reaped does not).
    public static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM, let state = parentAndState(of: pid)?.state else { return false }
        return state != "Z" && state != "X"
    }

    /// `/proc/PID/stat`: the fields after the command name (which may hold spaces and parentheses).
    static func parentAndState(of pid: pid_t) -> (parent: pid_t, state: Character)? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        return (parent, state)
    }

    /// SIGTERM to those of `pids` still running, then waits until they are gone (SIGKILL at
    /// `deadline`, and then up to 2 s more until the kernel has ended them: a process that is
    /// killed but not yet gone would outlive the caller that returns).
    static func endLeftovers(_ pids: [pid_t], until deadline: ContinuousClock.Instant) {
        var left = pids.filter(isRunning)
        for pid in left { kill(pid, SIGTERM) }
        var killed: ContinuousClock.Instant?
        while !left.isEmpty {
            let now = ContinuousClock.now
            if let killed {
                if now >= killed + .seconds(2) { return }
            } else if now >= deadline {
                for pid in left { kill(pid, SIGKILL) }
                killed = now
            }
            Thread.sleep(forTimeInterval: 0.02)
            left = left.filter(isRunning)
        }
    }

    /// Removes every running child's output directory (call right before `exit` in a signal handler).
    public static func removeTemporaryFiles() {
        for path in activeScratch.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The argv actually executed, after the optional `runuser` wrapping.
    public func commandLine(_ executable: String, _ arguments: [String]) -> [String] {
        var argv = [executable] + arguments
        if Self.isRoot, let user = runAsUser, user != "root" {
            argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv
        }
        if let niceness, let nice = try? Self.resolveExecutable("nice") {
            argv = [nice, "-n", String(niceness)] + argv
        }
        return argv
    }

    /// Runs a program to completion.
    ///
    /// - Parameters:
    ///   - executable: absolute path, or a name looked up on `PATH`.
    ///   - timeout: after it, the child gets SIGTERM, then SIGKILL 5 s later, and this throws.
    ///   - cancellation: stops the child the same way when cancelled from another thread.
    /// - Returns: the status and output; a non-zero status is returned, not thrown.
    /// - Throws: ``ProcessError`` when the program cannot be started, times out or is cancelled.
    public func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        workingDirectory: String? = nil, timeout: Duration = .seconds(600), cancellation: ProcessCancellation? = nil
    ) throws -> ProcessResult {
        let resolved = try Self.resolveExecutable(executable)
        var argv = commandLine(resolved, arguments)
        if let workingDirectory {
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", workingDirectory] + argv
        }
        _ = Self.sweepOnce
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-proc-\(getpid())-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        Self.activeScratch.withLock { _ = $0.insert(scratch.path) }
        defer {
            try? FileManager.default.removeItem(at: scratch)
            Self.activeScratch.withLock { _ = $0.remove(scratch.path) }
        }
        let outPath = scratch.appendingPathComponent("out").path
        let errPath = scratch.appendingPathComponent("err").path

        // posix_spawn rather than Foundation.Process: `pg_ctl start` leaves a daemon behind, and
        // Foundation's Process waits until every inherited descriptor closes, i.e. forever.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        Self.resetSignals(&attributes)

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let start = ContinuousClock.now
        let spawnStatus = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard spawnStatus == 0 else {
            throw ProcessError(diagnostic: Diagnostic(
                "could not start \(argv.joined(separator: " ")): \(String(cString: strerror(spawnStatus)))",
                hint: "Check that the program is installed (ci/setup installs everything nfldb needs)."))
        }
        Self.activeChildren.withLock { _ = $0.insert(pid) }
        defer {
            Self.activeChildren.withLock { _ = $0.remove(pid) }
            // A signal handler that stopped this child owns the ending (it records the outcome and
            // exits): the caller must not go on to report the child's death as its own failure.
            while Self.stopping.withLock({ $0 }) { Thread.sleep(forTimeInterval: 1) }
        }
        let deadline = start + timeout
        var waitStatus: Int32 = 0
        var usage = rusage()
        var pollInterval = 0.001
        while true {
            let r = wait4(pid, &waitStatus, WNOHANG, &usage)
            if r == pid { break }
            if r < 0 && errno != EINTR {
                // Without a wait status the outcome is unknown: never report it as exit 0.
                throw ProcessError(diagnostic: Diagnostic(
                    "lost track of \(URL(fileURLWithPath: resolved).lastPathComponent) (pid \(pid)): waitpid failed: \(String(cString: strerror(errno)))",
                    detail: argv.joined(separator: " ")))
            }
            let cancelled = cancellation?.isCancelled == true
            if cancelled || ContinuousClock.now >= deadline {
                // Its workers are looked up again while it dies, as in ``stopActiveChildren(within:park:)``.
                var family = Set(Self.descendants(of: pid))
                kill(pid, SIGTERM)
                let graceEnd = ContinuousClock.now + .seconds(5)
                while waitpid(pid, &waitStatus, WNOHANG) == 0 {
                    family.formUnion(Self.descendants(of: pid))
                    if ContinuousClock.now >= graceEnd { kill(pid, SIGKILL); _ = waitpid(pid, &waitStatus, 0); break }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                Self.endLeftovers(Array(family), until: max(graceEnd, ContinuousClock.now + .seconds(1)))
                let name = URL(fileURLWithPath: resolved).lastPathComponent
                throw ProcessError(diagnostic: Diagnostic(
                    cancelled ? "\(name) was cancelled and stopped" : "\(name) did not finish within \(timeout) and was stopped",
                    detail: argv.joined(separator: " ")))
            }
            Thread.sleep(forTimeInterval: pollInterval)
            // At most 10 ms between polls: the wait for a short child (pg_checksums, a restore) is
            // on verify's critical path, and 100 wakeups a second cost nothing measurable.
            pollInterval = min(pollInterval * 2, 0.01)
        }
        let status: Int32
        if waitStatus & 0x7f == 0 {
            status = (waitStatus >> 8) & 0xff
        } else {
            status = 128 + (waitStatus & 0x7f)
        }
        // Lossy: one invalid byte (pgBackRest prints a wrongly decrypted file's garbage) must not
        // turn the whole output into "".
        let out = FileManager.default.contents(atPath: outPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let err = FileManager.default.contents(atPath: errPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return ProcessResult(
            command: argv, status: status, standardOutput: out, standardError: err,
            duration: ContinuousClock.now - start, cpuSeconds: Self.seconds(usage.ru_utime) + Self.seconds(usage.ru_stime))
    }

    static func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }

    /// User + system CPU seconds this process has used so far (all its threads).
    public static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Makes a child start with every signal at its default action and an empty signal mask.
    /// posix_spawn keeps ignored dispositions across exec, so a child of a process that ignores
    /// SIGTERM/SIGINT/SIGHUP (verify does, while it tears down) could not be stopped by SIGTERM; and
    /// the child would inherit the calling thread's mask (Dispatch worker threads block nearly every
    /// signal, which made SIGTERM on timeout a no-op).
    public static func resetSignals(_ attributes: inout posix_spawnattr_t) {
        var defaultSignals = sigset_t()
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
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
