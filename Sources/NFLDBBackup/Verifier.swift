import Foundation
import Logging
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import Synchronization

/// Options for one `nfldb backup verify` run.
public struct VerifyOptions: Sendable {
    public var set: String?
    /// A timestamptz literal; with it, a point-in-time restore (`--type=time`).
    public var targetTime: String?
    /// Where to restore; default `/var/tmp/nfldb-verify-<random>`. Created and removed by verify.
    public var scratchDirectory: String?
    /// The copy's port; default a free 127.0.0.1 port.
    public var port: Int?
    public var binaries: PostgresBinaries
    public var receiptPath: String?
    /// How long to wait for the copy to promote.
    public var promoteTimeout: Duration = .seconds(180)
    /// Keep the scratch dir (copy stopped) and restore into it with `--delta` next time. Only a
    /// directory this mode created (it holds ``ReusableScratch/markerName``) is ever reused.
    public var reuseScratch = false
    /// Parallel connections for `pg_amcheck --jobs` (default: the number of CPUs, at most 8).
    public var amcheckJobs = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
    /// Skip the free-space pre-flight on the scratch filesystem (``ScratchSpace``). For tests that
    /// need the restore itself to hit ENOSPC, and for filesystems whose free space `statvfs`
    /// misreports (some network and FUSE filesystems).
    public var skipSpaceCheck: Bool = false
    /// After a run that failed at or after the restore, how long to wait for the background
    /// `pgbackrest verify` (its verdict explains a repo-caused failure) before stopping it.
    public var repoVerifyGrace: Duration = .seconds(15)
    /// How page checksums are proven (`backup.verify.page_checksums`, see ``PageChecksumMode``).
    public var pageChecksums: PageChecksumMode = .backup
    /// Run the full `pgbackrest verify` when the last one that passed for this stanza finished
    /// longer ago than this (`backup.verify.repo_verify_interval`); `.zero`: every run.
    public var repoVerifyInterval: Duration = VerifyOptions.defaultRepoVerifyInterval
    public static let defaultRepoVerifyInterval: Duration = .seconds(7 * 86_400)
    /// `--full`: this run does every check whatever the settings say (`pgbackrest verify` and a
    /// `pg_checksums` pass).
    public var full = false
    /// With `--reuse-scratch`: a relation group `pg_amcheck` found clean is skipped while its
    /// files, catalog rows and visibility provably did not change (``AmcheckMemo``), for at most
    /// this long after that check (`backup.verify.amcheck_recheck_interval`); `.zero`: never skip.
    public var amcheckRecheckInterval: Duration = VerifyOptions.defaultAmcheckRecheckInterval
    public static let defaultAmcheckRecheckInterval: Duration = .seconds(7 * 86_400)

    public init(binaries: PostgresBinaries, set: String? = nil, targetTime: String? = nil, scratchDirectory: String? = nil,
                port: Int? = nil, receiptPath: String? = nil) {
        self.binaries = binaries
        self.set = set
        self.targetTime = targetTime
        self.scratchDirectory = scratchDirectory
        self.port = port
        self.receiptPath = receiptPath
    }
}

/// How `backup verify` proves that every page's checksum is right (`backup.verify.page_checksums`).
public enum PageChecksumMode: String, Sendable, Codable {
    /// pgBackRest checked every page when it took the backup (`checksum-page`, read from the
    /// backup's manifest), the restore matched every file's SHA-1 to that manifest, and every page
    /// written or read after the restore (WAL replay, pg_amcheck, the counts) had its checksum
    /// checked by the server (`pg_stat_database.checksum_failures` = 0). No extra pass over the files.
    case backup
    /// Also stop the copy cleanly and read every page of every fork with `pg_checksums --check`.
    case pgChecksums = "pg_checksums"
}

/// The restored copies verify runs own (keyed by scratch dir); torn down on every exit path,
/// including SIGTERM.
public enum ActiveScratch {
    static let current = Mutex<[String: LocalCluster]>([:])
    /// Roots whose directory is kept (``VerifyOptions/reuseScratch``): the copy is stopped, the files stay.
    static let kept = Mutex<Set<String>>([])
    /// Held for the whole teardown, so a normal exit waits for a signal handler's teardown.
    static let teardownLock = Mutex<Bool>(false)

    /// Registers a copy for teardown; `keep` first, so a signal in between never removes a kept copy.
    static func register(_ cluster: LocalCluster, keep: Bool = false) {
        if keep { kept.withLock { _ = $0.insert(cluster.root) } }
        current.withLock { $0[cluster.root] = cluster }
    }

    /// From now on teardown stops the copy at `root` but keeps its files.
    static func keep(_ root: String) { kept.withLock { _ = $0.insert(root) } }

    /// Stops one copy (immediate) and removes its scratch dir; safe to call twice.
    public static func tearDown(_ root: String) {
        teardownLock.withLock { _ in
            guard let cluster = current.withLock({ $0.removeValue(forKey: root) }) else { return }
            remove(cluster)
        }
    }

    /// Signal path: stop every running child (a restore must not keep writing into a scratch dir
    /// being removed), then every copy.
    static func tearDownAllLocked() {
        ProcessRunner.stopActiveChildren(within: .seconds(10))
        let all = current.withLock { value -> [LocalCluster] in
            let copies = Array(value.values)
            value = [:]
            return copies
        }
        all.forEach(remove)
    }

    static func remove(_ cluster: LocalCluster) {
        var logger = Logger(label: "nfldb.backup.teardown")
        logger.logLevel = .critical
        if kept.withLock({ $0.remove(cluster.root) != nil }) {
            // Reused scratch: stop the copy, keep the files for the next `--delta` restore.
            for _ in 0..<10 where cluster.isRunning {
                stopImmediate(cluster, logger: logger)
                if cluster.isRunning { Thread.sleep(forTimeInterval: 0.3) }
            }
            return
        }
        // pgBackRest's own worker processes (`restore:local`) are not our children: a SIGTERM to the
        // restore does not always reach them, and one still writing makes the removal fail.
        for pid in ScratchLeftovers.processes(using: cluster.root) { kill(pid, SIGKILL) }
        // A server that was just starting may write postmaster.pid late: retry stop + remove.
        for _ in 0..<10 {
            if cluster.isRunning { stopImmediate(cluster, logger: logger) }
            removeTree(cluster.root)
            if !FileManager.default.fileExists(atPath: cluster.root) { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
    }

    /// An immediate shutdown (SIGQUIT to the postmaster, what `pg_ctl stop -m immediate` sends)
    /// polled every 10 ms until `postmaster.pid` is gone or the process is; `pg_ctl stop -w` polls
    /// every 100 ms. Falls back to `pg_ctl` when the signal cannot be sent or the server is not
    /// down within 10 s.
    static func stopImmediate(_ cluster: LocalCluster, logger: Logger) {
        if let pid = LocalCluster.runningPostmaster(dataDirectory: cluster.dataDirectory),
           signalAndWait(cluster, pid: pid, signal: SIGQUIT, within: .seconds(10)) { return }
        try? cluster.stop(mode: "immediate", logger: logger)
    }

    /// Sends `signal` to the copy's postmaster `pid` and polls every 10 ms (`pg_ctl stop -w` polls
    /// every 100 ms) until its `postmaster.pid` names another process or is gone, or the process
    /// is; false when the signal could not be sent or the server is still up after `within`.
    static func signalAndWait(_ cluster: LocalCluster, pid: pid_t, signal: Int32, within: Duration) -> Bool {
        guard kill(pid, signal) == 0 else { return false }
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            if LocalCluster.postmasterPID(dataDirectory: cluster.dataDirectory) != pid || (kill(pid, 0) != 0 && errno == ESRCH) { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    /// Removes a scratch directory: first its regular files, unlinked by `removalThreads` threads
    /// at once, then the rest (directories, symlinks) with `removeItem`. Unlinking the restored
    /// files one by one (`rm -rf`, `removeItem`) waits on the filesystem for each file in turn;
    /// under IO load from other processes that took 2.8–5.4 s for the 302 MB bench copy, in
    /// parallel 0.5–1.0 s. Symlinks are never followed (the walk is physical and only regular
    /// files are unlinked), so nothing outside the directory is touched.
    public static func removeTree(_ root: String) {
        // lstat walk: only real directories are entered, only regular files collected.
        var files: [String] = []
        var pending = [root]
        while let directory = pending.popLast() {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                let path = (directory as NSString).appendingPathComponent(name)
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                // The verify marker goes last (with the directory): if the removal fails half-way,
                // the next run still recognises what is left as a verify copy and removes it.
                case S_IFREG where name != ReusableScratch.markerName: files.append(path)
                default: break
                }
            }
        }
        if files.count > 1 {
            let files = files
            let workers = min(removalThreads, files.count)
            let done = DispatchSemaphore(value: 0)
            for worker in 0..<workers {
                Thread {
                    for index in stride(from: worker, to: files.count, by: workers) { unlink(files[index]) }
                    done.signal()
                }.start()
            }
            for _ in 0..<workers { done.wait() }
        }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: root)) ?? [] where name != ReusableScratch.markerName {
            try? fm.removeItem(atPath: (root as NSString).appendingPathComponent(name))
        }
        // Only an otherwise empty directory loses its marker.
        guard ((try? fm.contentsOfDirectory(atPath: root)) ?? []).allSatisfy({ $0 == ReusableScratch.markerName }) else { return }
        try? fm.removeItem(atPath: root)
    }
    static let removalThreads = 8

    /// The `--receipt` file of the running verify and its stanza: an interrupted run replaces the
    /// previous receipt there, so a cut-off night never leaves the last PASS standing.
    static let receiptFile = Mutex<(path: String, stanza: String)?>(nil)

    /// A signal arrived (the handler owns the exit from now on), and whether the run had already
    /// begun storing its result. A run checks in before it stores anything: after a signal it must
    /// not record the failure the signal itself caused (a child killed by the teardown).
    static let outcome = Mutex<(interrupted: Bool, recording: Bool)>((false, false))

    /// Called by the run before it writes its receipt and row; false after a signal (the caller
    /// must then wait for the handler to end the process).
    public static func beginRecording() -> Bool {
        outcome.withLock { state in
            if state.interrupted { return false }
            state.recording = true
            return true
        }
    }

    /// On SIGTERM/SIGINT/SIGHUP (an ssh session that drops): tear the copy down, say so in one line
    /// on stderr, mark the `--receipt` file interrupted, then exit 128+signal.
    public static func installSignalHandlers() {
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let alreadyRecording = outcome.withLock { state -> Bool in
                    state.interrupted = true
                    return state.recording
                }
                teardownLock.withLock { _ in
                    let roots = current.withLock { Array($0.keys) }.sorted()
                    let keptRoots = kept.withLock { $0 }
                    tearDownAllLocked()
                    ProcessRunner.removeTemporaryFiles()
                    var what = roots.map { keptRoots.contains($0) ? "the kept copy \($0) was stopped (its files stay for --reuse-scratch)" : "the copy \($0) was stopped and removed" }
                    if what.isEmpty { what = ["no copy was running"] }
                    var line = "nfldb: backup verify interrupted by \(name): \(what.joined(separator: "; "))"
                        + (alreadyRecording ? "; the run had finished and was storing its result" : "; nothing was recorded")
                    if !alreadyRecording, let (path, stanza) = receiptFile.withLock({ $0 }) {
                        var receipt = VerificationReceipt(stanza: stanza, targetTime: nil, startedAt: Date())
                        receipt.status = "interrupted"
                        receipt.finishedAt = Date()
                        receipt.checks = [VerificationCheck("interrupted", false, "interrupted by \(name) before the verification finished")]
                        try? receipt.encoded().write(toFile: path, atomically: true, encoding: .utf8)
                        line += "; \(path) now says interrupted"
                    }
                    FileHandle.standardError.write(Data((line + "; run it again\n").utf8))
                    exit(128 + sig)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
    /// Kept alive for the process lifetime; only touched from the main thread at startup.
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}

/// `nfldb backup verify`: pre-flight on the repo, restore into scratch, start, promote, prove the
/// data against the manifest recorded on the primary, tear down, and store a receipt.
public struct Verifier {
    public let pgbackrest: PgBackRest
    /// The primary: source of the manifest and canary, and where the receipt is stored. Never modified otherwise.
    public let primary: PostgresConnection
    public let options: VerifyOptions
    public let logger: Logger

    public init(pgbackrest: PgBackRest, primary: PostgresConnection, options: VerifyOptions, logger: Logger) {
        self.pgbackrest = pgbackrest
        self.primary = primary
        self.options = options
        self.logger = logger
    }

    final class Recorder {
        var receipt: VerificationReceipt
        /// The `flock` on a reused scratch dir, held until teardown is done.
        var lockDescriptor: Int32?
        /// When the restore began (recovery time runs from here to promoted).
        var restoreStartedAt: ContinuousClock.Instant?
        /// `pg_ctl start -w`, still finishing while the checks run (see ``startAndPromote(_:_:)``).
        var startJob: BackgroundJob<Void>?
        /// Waits for a pending `pg_ctl start` and records its time as the `start` step.
        func joinStart() {
            guard let job = startJob else { return }
            startJob = nil
            let (_, seconds) = job.wait()
            receipt.steps["start"] = (seconds * 1000).rounded() / 1000
        }
        init(_ receipt: VerificationReceipt) { self.receipt = receipt }
        /// Adds CPU seconds to ``VerificationReceipt/cpu`` under `name`.
        func cpu(_ name: String, _ seconds: Double) {
            var all = receipt.cpu ?? [:]
            all[name] = ((all[name] ?? 0) + seconds * 1000).rounded() / 1000
            receipt.cpu = all
        }
        func check(_ name: String, _ passed: Bool, _ evidence: String) {
            receipt.checks.append(VerificationCheck(name, passed, evidence))
        }
        func timed<T>(_ step: String, _ body: () throws -> T) rethrows -> T {
            let start = ContinuousClock.now
            defer {
                let e = ContinuousClock.now - start
                receipt.steps[step] = (e.inSeconds * 1000).rounded() / 1000
            }
            return try body()
        }
    }

    /// Runs the verification; never throws for a failed check (see the receipt), only for a
    /// primary that cannot record it.
    public func run() throws -> VerificationReceipt {
        // Retention may not expire what this run restores: `backup run` expires only while no verify
        // holds the guard (taken before --set is checked against the repo, held to the end).
        let expireGuard = ExpireGuard(pgbackrest: pgbackrest, connection: primary, logger: logger)
        let (guarded, orphanNote) = expireGuard.take(waitingTo: "restoring")
        defer { if guarded { expireGuard.release() } }
        // Operator mistakes are usage errors (exit 2), found before anything runs or is recorded:
        // they say nothing about the backup, so they must not turn health CRITICAL.
        try validate()
        if let path = options.receiptPath { ActiveScratch.receiptFile.withLock { $0 = (path, pgbackrest.stanza) } }
        // Another --reuse-scratch run on the same kept copy is an overlapping job, not a problem of
        // the backup: refused here (exit 2, nothing recorded) instead of a failed verification.
        let earlyLock = try lockReusedScratch()
        // The receipt, the manifest and the PITR fence all live in the catalog: make sure it exists
        // (and has the columns this version reads) once, up front.
        let began = ContinuousClock.now
        let recorder = Recorder(VerificationReceipt(stanza: pgbackrest.stanza, targetTime: options.targetTime, startedAt: Date()))
        recorder.lockDescriptor = earlyLock
        if let orphanNote { recorder.receipt.notes.append(orphanNote) }
        if !guarded {
            recorder.receipt.notes.append("the expire guard could not be taken (a backup run's retention expire held it past \(Int(ExpireGuard.wait.inSeconds)) s, or the primary refused): a retention expire during this run could remove the backup it restores")
        }
        try recorder.timed("catalog") { try BackupCatalog.install(primary) }
        do {
            try verify(recorder)
        } catch {
            let message = (error as? any NFLDBError)?.diagnostic.oneLine ?? String(describing: error)
            recorder.check("aborted", false, message)
        }
        recorder.joinStart()
        if let scratch = recorder.receipt.scratchDirectory { recorder.timed("teardown") { ActiveScratch.tearDown(scratch) } }
        if let fd = recorder.lockDescriptor { close(fd) }
        recorder.receipt.finishedAt = Date()
        recorder.receipt.steps["total"] = ((ContinuousClock.now - began).inSeconds * 1000).rounded() / 1000
        recorder.cpu("nfldb", ProcessRunner.ownCPUSeconds())
        recorder.receipt.status = recorder.receipt.passed ? "ok" : "failed"
        let receipt = recorder.receipt
        // After a signal the handler ends the process: a check failed by its teardown (a child it
        // killed) must not be stored as a failed verification.
        while !ActiveScratch.beginRecording() { Thread.sleep(forTimeInterval: 1) }
        if let path = options.receiptPath {
            try? receipt.encoded().write(toFile: path, atomically: true, encoding: .utf8)
        }
        try record(receipt)
        return receipt
    }

    /// The request itself: an absolute scratch path that does not exist yet (unless reused) and lies
    /// outside the primary's data directory and tablespaces (and every running cluster's); a port in
    /// 1…65535; a pgBackRest config file that exists; a `--set` the stanza holds; a `--target-time`
    /// pgBackRest can parse, after the first backup finished.
    /// - Throws: ``BackupError`` with exit status usage; nothing has been run or recorded.
    public func validate() throws {
        func usage(_ summary: String, _ hint: String) -> BackupError { BackupError(summary, hint: hint, exitStatus: .usage) }
        var info = stat()
        if stat(pgbackrest.configPath, &info) != 0 && errno == ENOENT {
            throw usage("the pgBackRest config file \(pgbackrest.configPath) does not exist",
                        "Set backup.config (NFLDB_BACKUP_CONFIG) to the file `nfldb backup config --write` wrote, or write it there "
                            + "(for the sandbox: eval \"$(nfldb sandbox env)\").")
        }
        if let port = options.port, !(1...65535).contains(port) {
            throw usage("--port \(port) is not a TCP port (1-65535)", "Pass a free port, or leave --port out to pick a free one.")
        }
        if let scratch = options.scratchDirectory {
            guard scratch.hasPrefix("/") else {
                throw usage("the scratch directory \(scratch) (--scratch or backup.scratch_dir) is a relative path",
                            "Give an absolute path (e.g. /var/tmp/nfldb-verify-manual).")
            }
            if !options.reuseScratch && lstat(scratch, &info) == 0 {
                let what = (info.st_mode & S_IFMT) == S_IFLNK && stat(scratch, &info) != 0 ? "is a dangling symlink" : "already exists"
                throw usage("scratch directory \(scratch) \(what); verify only restores into a directory it creates",
                            "Remove it, choose a --scratch that does not exist, or pass --reuse-scratch for a directory an earlier "
                                + "--reuse-scratch run made.")
            }
            try Self.checkScratchChars(scratch)
            try LiveClusterPaths.scan(extra: primaryPaths()).refuse(
                scratch, as: "--scratch", containing: false,
                hint: "Choose a scratch directory outside the primary's data directory and tablespaces (a backup would copy or refuse it), "
                    + "e.g. under /var/tmp or backup.scratch_dir.")
        }
        if let targetTime = options.targetTime { try Restorer.validateTargetTime(targetTime) }
        guard options.set != nil || options.targetTime != nil,
              let stanza = (try? pgbackrest.info(logger: logger))?.first(where: { $0.name == pgbackrest.stanza }) else { return }
        if let set = options.set, stanza.backup(label: set) == nil {
            throw BackupError("no backup labelled \(set) in stanza \(pgbackrest.stanza)",
                              detail: "backups: " + (stanza.backup.isEmpty ? "none" : stanza.backup.map(\.label).joined(separator: ", ")),
                              hint: "Pick a label from `nfldb backup info`, or leave --set out to verify the latest.", exitStatus: .usage)
        }
        if let targetTime = options.targetTime, options.set == nil, let first = stanza.backup.first {
            let epoch: Double
            do {
                epoch = try primary.query("SELECT extract(epoch FROM \(targetTime)::timestamptz)::float8").scalar(Double.self)
            } catch {
                throw usage("--target-time '\(targetTime)' is not a time the primary can read: "
                            + ((error as? any NFLDBError)?.diagnostic.summary ?? "\(error)"),
                            "Give it as YYYY-MM-DD HH:MM:SS with an optional fraction and zone, e.g. '2026-12-05 13:00:00+00'.")
            }
            // A time still to come can never be reached: recovery would end at the archive's end and fail the
            // verification (recorded, health CRITICAL) for an operator's typo.
            let now = Date().timeIntervalSince1970
            if epoch > now {
                let shown = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: now))
                throw usage("--target-time \(targetTime) is in the future (now is \(shown)): recovery can never reach it",
                            "Give a past time (between the first backup and now), or verify without --target-time to recover to the end of the archive.")
            }
            if epoch < Double(first.timestamp.stop) {
                let oldest = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(first.timestamp.stop)))
                throw usage("--target-time \(targetTime) is before the first backup of stanza \(pgbackrest.stanza) finished (\(oldest)): "
                            + "nothing can be recovered to that time",
                            "Choose a time after \(oldest) (`nfldb backup info` lists the backups), or verify without --target-time.")
            }
        }
    }

    /// With `--reuse-scratch`: the kept copy's lock, taken before anything runs or is recorded. A
    /// symlink in its place and a lock held by another run are usage errors. nil without reuse, or
    /// when the parent directory does not exist yet (``prepareScratch(_:_:)`` creates it and locks).
    func lockReusedScratch() throws -> Int32? {
        guard options.reuseScratch else { return nil }
        let scratch = options.scratchDirectory ?? ReusableScratch.defaultDirectory(stanza: pgbackrest.stanza)
        var info = stat()
        if lstat(scratch, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            throw BackupError("scratch directory \(scratch) is a symlink; verify restores only into a directory it made",
                              hint: "Remove the symlink, or give --scratch the real directory.", exitStatus: .usage)
        }
        guard FileManager.default.fileExists(atPath: (scratch as NSString).deletingLastPathComponent) else { return nil }
        switch ReusableScratch.lock(scratch) {
        case .failure(let refusal): throw BackupError(refusal.description, exitStatus: .usage)
        case .success(let fd): return fd
        }
    }

    /// Characters a scratch path cannot hold: pgBackRest writes it unescaped into the copy's
    /// `restore_command` (`--pg1-path=…` inside a quoted postgresql.auto.conf value: a single quote
    /// ends the value, the copy does not start), and it goes into `unix_socket_directories`, a
    /// comma-separated list. Quotes in nfldb's own settings are escaped too (``configQuote(_:)``).
    static func checkScratchChars(_ scratch: String, role: String = "--scratch") throws {
        guard let bad = scratch.first(where: { "',\\\n\r\0".contains($0) }) else { return }
        let name = switch bad {
        case "'": "a single quote (pgBackRest writes the path unescaped into restore_command in postgresql.auto.conf)"
        case ",": "a comma (unix_socket_directories is a comma-separated list)"
        case "\\": "a backslash (an escape character in postgresql.conf values)"
        default: "a control character"
        }
        throw BackupError("\(role) \(scratch) contains \(name)",
                          hint: "Choose a path without quotes, commas, backslashes or control characters.", exitStatus: .usage)
    }

    /// The primary's data directory and tablespace locations, as it reports them (none when this
    /// role may not read them).
    func primaryPaths() -> [LiveClusterPaths.Entry] {
        var entries: [LiveClusterPaths.Entry] = []
        if let data = try? primary.query("SELECT current_setting('data_directory')::text").scalar(String.self) {
            entries.append(.init(path: data, what: "the primary's data directory"))
        }
        let rows = (try? primary.query("""
            SELECT spcname::text AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE pg_tablespace_location(oid) <> ''
            """).rows) ?? []
        for row in rows {
            if let location = row["location"] { entries.append(.init(path: location, what: "the primary's tablespace \(row["name"] ?? "?")")) }
        }
        return entries
    }

    func record(_ receipt: VerificationReceipt) throws {
        let failed = receipt.failedChecks.map(\.name)
        try primary.execute("""
            INSERT INTO nfldb.backup_verifications(started_at, finished_at, status, stanza, label, target_time, recovery_seconds, failed_checks, receipt)
            VALUES (\(receipt.startedAt), \(receipt.finishedAt ?? Date()), \(receipt.status), \(receipt.stanza), \(receipt.label),
                    \(receipt.targetTime)::timestamptz, \(receipt.recoverySeconds), \(failed), \(receipt.encoded(pretty: false))::jsonb)
            """)
    }

    /// What pre-flight chose: the stanza, the backup to restore, the PITR target and the manifest.
    struct Plan {
        let stanza: StanzaInfo
        let backup: StanzaInfo.Backup
        let targetEpoch: Double?
        let manifest: Manifest?
        /// `wal_segment_size` of the primary, for WAL continuity from a repo listing.
        var segmentSize: Int64 = 16 * 1024 * 1024
    }

    /// The restored copy: where it lives, how to reach it, and whether the restore is `--delta`.
    struct Scratch {
        let copy: LocalCluster
        let delta: Bool
        let superuser: String
        let database: String
        var directory: String { copy.root }
        var port: Int { copy.port }
    }

    /// The README's steps, in order: pre-flight, restore into scratch, start and promote, prove the
    /// data, stop and checksum. A step that fails records its check and ends the run; teardown and
    /// the receipt are ``run()``'s. `pgbackrest verify` reads the whole repo alongside the restore.
    func verify(_ r: Recorder) throws {
        // `pgbackrest version` (a process start) runs beside pre-flight.
        let versions = BackgroundJob { [executable = pgbackrest.executable] in
            (try? ProcessRunner().run(executable, ["version"], timeout: .seconds(30)))?.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer {
            if case .success(let version) = versions.wait().0 { r.receipt.pgbackrestVersion = version }
            r.receipt.postgresVersion = primary.serverVersion
        }
        guard let plan = try preflight(r) else { return }
        // The full `pgbackrest verify` when due (backup.verify.repo_verify_interval), else a listing
        // of the archive for WAL continuity; both beside the restore.
        let repoVerify = try r.timed("repo-verify-due") { try repoVerifyDue(r) } ? RepoVerify(pgbackrest: pgbackrest, logger: logger) : nil
        let listing = repoVerify == nil ? BackgroundJob { [pgbackrest, logger] in
            try pgbackrest.run("repo-ls", ["--recurse", "--output=json", "--log-level-console=warn"],
                               timeout: .seconds(600), logger: logger, positional: ["archive/\(pgbackrest.stanza)"])
        } : nil
        // backup.verify.page_checksums = backup: the backup's manifest says whether pgBackRest
        // checked every page when it copied it.
        let pageMode = options.full ? PageChecksumMode.pgChecksums : options.pageChecksums
        let memoWanted = options.reuseScratch && !options.full && options.targetTime == nil && options.amcheckRecheckInterval > .zero
        let backupManifest = pageMode == .backup || memoWanted ? BackgroundJob { [pgbackrest, logger, label = plan.backup.label] in
            try pgbackrest.run("repo-get", ["--log-level-console=warn"],
                               timeout: .seconds(600), logger: logger, positional: ["backup/\(pgbackrest.stanza)/\(label)/backup.manifest"])
        } : nil
        var reachedRestore = false
        var completed = false
        // A run that ended early stops the repo verify: at once before the restore (its result
        // cannot explain a scratch problem), after a short grace once the restore ran (it explains a
        // restore or start failure caused by the repo). A completed run waits for its verdict.
        defer {
            if let repoVerify {
                let grace: Duration? = completed ? nil : (reachedRestore ? options.repoVerifyGrace : .zero)
                recordRepoChecks(repoVerify.finish(grace: grace), stanza: plan.stanza, r)
                // The same rule as repoVerifyDue's and health's "last passed": verify and continuity both passed.
                let passed = { (name: String) in r.receipt.checks.contains { $0.name == name && $0.passed } }
                if passed("pgbackrest-verify") && passed("wal-continuity") {
                    r.receipt.repoVerify?.lastPassedAt = Date()
                }
            } else if let listing {
                recordListedWAL(listing.wait(), plan: plan, r)
            }
            _ = backupManifest?.wait()
        }
        guard let scratch = try r.timed("scratch-prepare", { try prepareScratch(plan, r) }) else { return }
        reachedRestore = true
        guard try restore(plan, into: scratch, r), configureCopy(scratch, r) else { return }
        // What replay touches (pg_waldump of the backup's WAL), beside the start: which relations
        // pg_amcheck may skip (AmcheckMemo).
        let replay = memoWanted ? backupManifest.map { manifestJob in
            BackgroundJob { [pgbackrest, waldump = options.binaries.path("pg_waldump"), segmentSize = plan.segmentSize, directory = scratch.directory] in
                Self.scanReplay(manifestJob.wait().0, pgbackrest: pgbackrest, waldump: waldump, segmentSize: segmentSize, scratch: directory)
            }
        } : nil
        let restoreStart = r.restoreStartedAt ?? ContinuousClock.now
        guard let conn = try startAndPromote(scratch, r) else { return }
        r.receipt.recoverySeconds = ((ContinuousClock.now - restoreStart).inSeconds * 100).rounded() / 100
        let pageEvidence = try proveData(conn, plan, scratch, pageMode: pageMode, replay: replay, r)
        if let pageEvidence, let backupManifest {
            if let fallback = recordBackupPageChecks(backupManifest.wait().0, pageEvidence, plan: plan, r) {
                r.receipt.notes.append(fallback)
                try stopAndChecksum(scratch, r)
            } else if let server = Self.serverCPUSeconds(scratch.copy) {
                // No clean stop needed: teardown stops the copy (immediate) and removes or keeps it.
                r.cpu("server", server)
            }
        } else {
            try stopAndChecksum(scratch, r)
        }
        r.timed("server-log") { scanLog(scratch.copy, r) }
        completed = true
    }

    /// 1. Pre-flight: the repo's info, the backup to restore, the timeline guard, the current WAL
    /// archived (PITR), and the manifest. nil when the run cannot go on.
    func preflight(_ r: Recorder) throws -> Plan? {
        // Before `info`: a segment archived in between then only raises the repo's max.
        let archiver = try primary.query("""
            SELECT last_archived_wal, (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size
            FROM pg_stat_archiver
            """).rows.first
        let stanzas: [StanzaInfo]
        do {
            stanzas = try r.timed("info") { try pgbackrest.info(logger: logger) }
        } catch {
            r.check("repo-info", false, (error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)")
            return nil
        }
        guard let stanza = stanzas.first(where: { $0.name == pgbackrest.stanza }) ?? stanzas.first, !stanza.backup.isEmpty else {
            r.check("repo-info", false, "stanza \(pgbackrest.stanza) has no backups")
            return nil
        }
        r.check("repo-info", true, "stanza \(stanza.name) status \(stanza.status.code) (\(stanza.status.message)), \(stanza.backup.count) backup(s)")
        checkArchiveTail(stanza, primaryLast: archiver?["last_archived_wal"], segmentSize: archiver.flatMap { try? $0.decode("segment_size", as: Int64.self) }, r)
        let targetEpoch = try options.targetTime.map {
            try primary.query("SELECT extract(epoch FROM \($0)::timestamptz)::float8").scalar(Double.self)
        }
        guard let backup = selectBackup(stanza, targetEpoch: targetEpoch, r) else { return nil }
        try checkArchiveTimeline(stanza, r)
        if options.targetTime != nil { try archiveCurrentWAL(r) }
        let loaded = try r.timed("manifest") { try loadManifest(label: backup.label) }
        if let loaded {
            r.check("manifest", true, "manifest \(loaded.manifest.token) of \(loaded.manifest.counts.count) table(s) from \(loaded.source)")
        }
        var plan = Plan(stanza: stanza, backup: backup, targetEpoch: targetEpoch, manifest: loaded?.manifest)
        if let size = archiver.flatMap({ try? $0.decode("segment_size", as: Int64.self) }), size > 0 { plan.segmentSize = size }
        return plan
    }

    /// `--set`, else the newest backup that finished before the target time, else the newest.
    func selectBackup(_ stanza: StanzaInfo, targetEpoch: Double?, _ r: Recorder) -> StanzaInfo.Backup? {
        let chosen: StanzaInfo.Backup?
        if let set = options.set {
            chosen = stanza.backup(label: set)
        } else if let targetEpoch {
            chosen = stanza.backup.last { Double($0.timestamp.stop) <= targetEpoch }
        } else {
            chosen = stanza.backup.last
        }
        guard let backup = chosen else {
            r.check("backup-selected", false, options.set.map { "no backup labelled \($0) in stanza \(stanza.name)" }
                ?? "no backup finished before the target time \(options.targetTime ?? "")")
            return nil
        }
        r.receipt.label = backup.label
        r.receipt.backupType = backup.type
        if let first = stanza.backup.first, let max = stanza.archiveMax {
            let formatter = ISO8601DateFormatter()
            r.receipt.pitrWindow = ["from": formatter.string(from: Date(timeIntervalSince1970: TimeInterval(first.timestamp.stop))), "archiveMax": max]
        }
        return backup
    }

    /// `archive-tail`: the repo must hold what the primary says it archived
    /// (`pg_stat_archiver.last_archived_wal`); segments missing at the end of the archive leave no
    /// gap between ranges, only a lower maximum, and break recovery to now.
    func checkArchiveTail(_ stanza: StanzaInfo, primaryLast: String?, segmentSize: Int64?, _ r: Recorder) {
        guard let primaryLast, WALName.segment(primaryLast) != nil else {
            r.check("archive-tail", true, "not checked: the primary reports no archived segment since its statistics reset ("
                    + (primaryLast ?? "none") + ")")
            return
        }
        let repoMax = stanza.archiveMax
        if let missing = WALName.missingTail(repoMax: repoMax, primaryLast: primaryLast, segmentSize: segmentSize ?? 16 * 1024 * 1024) {
            r.check("archive-tail", false, "the repo's newest WAL segment is \(repoMax ?? "none"), but the primary archived up to \(primaryLast) "
                    + "(pg_stat_archiver.last_archived_wal): missing from the repo: \(missing); point-in-time recovery past \(repoMax ?? "the backup") "
                    + "is broken — find out what removed them, and take a new backup")
        } else {
            r.check("archive-tail", true, "repo's newest segment \(repoMax ?? "none") reaches the primary's last archived \(primaryLast)")
        }
    }

    /// A copy that archived into the stanza leaves a timeline above the primary's.
    func checkArchiveTimeline(_ stanza: StanzaInfo, _ r: Recorder) throws {
        let primaryTimeline = try primary.query("SELECT timeline_id::bigint FROM pg_control_checkpoint()").scalar(Int64.self)
        guard let max = stanza.archiveMax, let archiveTimeline = WALName.timeline(max) else { return }
        r.check("archive-timeline", Int64(archiveTimeline) <= primaryTimeline,
                "archive max \(max) is on timeline \(archiveTimeline); the primary is on timeline \(primaryTimeline)"
                + (Int64(archiveTimeline) > primaryTimeline ? " — another cluster (a restored copy?) archived into this stanza" : ""))
    }

    /// A point-in-time target needs a commit after it and the WAL up to it in the archive: a fence
    /// canary (nfldb schema only), then `check` switches WAL and waits until it is archived.
    func archiveCurrentWAL(_ r: Recorder) throws {
        try primary.execute("""
            INSERT INTO nfldb.backup_canaries(token, note)
            VALUES (\("fence-\(UUID().uuidString.prefix(8).lowercased())"), 'backup verify --target-time fence')
            """)
        let archived = try r.timed("archive-current-wal") {
            try pgbackrest.run("check", ["--log-level-console=warn"], timeout: .seconds(180), logger: logger)
        }
        r.check("archive-current-wal", archived.succeeded, archived.succeeded
            ? "current WAL switched and archived (pgbackrest check)"
            : "could not archive the current WAL: " + pgbackrest.error(for: archived).diagnostic.oneLine)
    }

    /// 2a. The scratch directory: created by this run (or, with reuse, the kept copy, locked),
    /// owned by the cluster's OS user, mode 0700, with room for the restore. nil when refused.
    func prepareScratch(_ plan: Plan, _ r: Recorder) throws -> Scratch? {
        let scratch = options.scratchDirectory ?? (options.reuseScratch
            ? ReusableScratch.defaultDirectory(stanza: pgbackrest.stanza)
            : "/var/tmp/nfldb-verify-\(UUID().uuidString.prefix(8).lowercased())")
        let port = try options.port ?? LocalCluster.freePort()
        let superuser = try primary.query("SELECT current_user::text").scalar(String.self)
        let database = try primary.query("SELECT current_database()::text").scalar(String.self)
        let copy = LocalCluster(root: scratch, port: port, binaries: options.binaries, osUser: pgbackrest.osUser, superuser: superuser)
        r.receipt.scratchDirectory = scratch
        r.receipt.scratchPort = port
        let fm = FileManager.default
        let parent = (scratch as NSString).deletingLastPathComponent
        if !fm.fileExists(atPath: parent) {
            do {
                try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                r.check("scratch", false, "cannot create \(parent), the parent of the scratch directory: \(error.localizedDescription); "
                        + "create it, or point backup.scratch_dir (or --scratch) at a directory this user can write")
                return nil
            }
        }
        for note in ScratchLeftovers.cleanLeftovers(scratch: scratch, stanza: pgbackrest.stanza, osUser: pgbackrest.osUser) {
            logger.warning("\(note)")
            r.receipt.notes.append(note)
        }
        if options.reuseScratch {
            if r.lockDescriptor == nil {
                switch ReusableScratch.lock(scratch) {
                case .failure(let refusal):
                    r.check("scratch", false, refusal.description)
                    return nil
                case .success(let fd):
                    r.lockDescriptor = fd
                }
            }
            // Locked: a server still running on the kept copy was left by a killed run.
            if ScratchLeftovers.marker(of: scratch, osUser: pgbackrest.osUser)?.kept != false,
               let note = ScratchLeftovers.stopKeptServer(scratch: scratch) {
                logger.warning("\(note)")
                r.receipt.notes.append(note)
            }
        }
        guard let (created, delta) = createOrReuse(copy, systemID: plan.stanza.db.last?.systemID, r) else { return nil }
        do {
            try fm.createDirectory(atPath: copy.socketDirectory, withIntermediateDirectories: true)
            try copy.giveToOSUser(scratch)
            try copy.giveToOSUser(copy.socketDirectory)
            guard chmod(scratch, 0o700) == 0 else {
                throw BackupError("chmod 0700 failed: \(String(cString: strerror(errno)))")
            }
            if created {
                // Fresh copies carry the marker too (with this run as owner): a later run removes
                // the directory if this one is killed before its teardown.
                try ReusableScratch.mark(scratch, stanza: pgbackrest.stanza, systemID: plan.stanza.db.last?.systemID, kept: options.reuseScratch)
                if options.reuseScratch { ActiveScratch.keep(scratch) }
            }
        } catch {
            let reason = (error as? any NFLDBError)?.diagnostic.oneLine ?? error.localizedDescription
            r.check("scratch", false, "cannot prepare scratch directory \(scratch): \(reason)"
                    + (created ? " (the new directory is removed)" : ""))
            return nil
        }
        // A reused dir still holds the last run's server log.
        try? fm.removeItem(atPath: copy.logFile)
        let result = Scratch(copy: copy, delta: delta, superuser: superuser, database: database)
        return checkSpace(plan, result, r) ? result : nil
    }

    /// mkdir(2) fails if the directory exists, so two runs never share a fresh scratch dir; an
    /// existing one is only reused with `--reuse-scratch` when ``ReusableScratch/check`` accepts it.
    /// - Returns: (created, delta), or nil when refused.
    func createOrReuse(_ copy: LocalCluster, systemID: UInt64?, _ r: Recorder) -> (Bool, Bool)? {
        let scratch = copy.root
        if mkdir(scratch, 0o700) == 0 {
            ActiveScratch.register(copy)  // removed on every path until it is marked as kept
            return (true, false)
        }
        let error = errno
        guard error == EEXIST else {
            r.check("scratch", false, "cannot create scratch directory \(scratch): \(String(cString: strerror(error))); "
                    + "point backup.scratch_dir (or --scratch) at a directory this user can write")
            return nil
        }
        guard options.reuseScratch else {
            r.check("scratch", false, "scratch directory \(scratch) already exists; verify only restores into a directory it creates "
                    + "(remove it, choose another --scratch, or pass --reuse-scratch for a directory an earlier --reuse-scratch run made)")
            return nil
        }
        switch ReusableScratch.check(scratch, stanza: pgbackrest.stanza, systemID: systemID, osUser: pgbackrest.osUser, notes: { note in
            logger.warning("\(note)")
            r.receipt.notes.append(note)
        }) {
        case .failure(let refusal):
            r.check("scratch", false, refusal.description)
            return nil
        case .success(let reusable):
            ActiveScratch.register(copy, keep: true)
            return (false, reusable)
        }
    }

    /// `scratch-space`: room for the restored files plus the margin ``ScratchSpace/needed(restoredSize:)``
    /// documents; a `--delta` restore overwrites the kept copy in place, so its files count as room.
    func checkSpace(_ plan: Plan, _ scratch: Scratch, _ r: Recorder) -> Bool {
        let size = plan.backup.info?.size
        guard !options.skipSpaceCheck else {
            r.check("scratch-space", true, "not checked (--skip-space-check); free in \(scratch.directory): "
                    + (ScratchSpace.available(scratch.directory).map(ScratchSpace.human) ?? "unknown"))
            return true
        }
        let kept = scratch.delta ? ScratchSpace.allocatedBytes(under: scratch.copy.dataDirectory) : 0
        let needed = max(0, ScratchSpace.needed(restoredSize: size) - kept)
        if let problem = ScratchSpace.check(scratch.directory, needs: needed) {
            r.check("scratch-space", false, problem)
            return false
        }
        r.check("scratch-space", true, ScratchSpace.summary(scratch.directory, needs: needed, restoredSize: size, held: kept))
        return true
    }

    /// 2b. `pgbackrest restore` into the scratch dir, every tablespace mapped under it too:
    /// restored to its original path it would land beside (or, with --delta, over) the primary's own.
    func restore(_ plan: Plan, into scratch: Scratch, _ r: Recorder) throws -> Bool {
        var restoreOptions = ["--pg1-path=\(scratch.copy.dataDirectory)", "--set=\(plan.backup.label)", "--target-action=promote",
                              "--archive-mode=off", "--job-retry=0", "--log-level-console=warn",
                              "--tablespace-map-all=\((scratch.directory as NSString).appendingPathComponent("tblspc"))"]
        if let target = options.targetTime {
            restoreOptions += ["--type=time", "--target=\(target)"]
        } else {
            restoreOptions += ["--type=immediate"]
        }
        if scratch.delta { restoreOptions.append("--delta") }
        r.restoreStartedAt = ContinuousClock.now
        let restored = try r.timed("restore") { try pgbackrest.run("restore", restoreOptions, logger: logger) }
        r.cpu("restore", restored.process.cpuSeconds)
        guard restored.succeeded else {
            var evidence = pgbackrest.error(for: restored).diagnostic.oneLine
            // The set itself gone from the repo: expired while this run restored it, or dropped
            // because its files vanished; pgBackRest reports either as missing files.
            if let causes = Restorer.vanishedSet(plan.backup.label, pgbackrest: pgbackrest, logger: logger, during: "this run") {
                evidence = causes + "; check the pgBackRest log for that line, then run verify again (pgBackRest said: \(evidence))"
            }
            r.check("restore", false, evidence)
            return false
        }
        r.check("restore", true, "restored \(plan.backup.label) into \(scratch.copy.dataDirectory)"
                + (scratch.delta ? " (--delta: files already matching the backup's checksums were kept)" : ""))
        return true
    }

    /// The copy's own port, socket and log settings, no archiving, and no durability work.
    func configureCopy(_ scratch: Scratch, _ r: Recorder) -> Bool {
        let settings = """

            # --- nfldb backup verify: scratch copy ---
            port = \(scratch.port)
            listen_addresses = '127.0.0.1'
            unix_socket_directories = \(Self.configQuote(scratch.copy.socketDirectory))
            archive_mode = off
            archive_command = ''
            log_min_messages = warning
            # The copy is thrown away after the checks: no durability work, no background vacuum.
            # (Without full_page_writes a hint bit set by pg_amcheck logs a small record, not an 8 kB image.)
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            autovacuum = off

            """
        let autoConf = (scratch.copy.dataDirectory as NSString).appendingPathComponent("postgresql.auto.conf")
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: autoConf))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(settings.utf8))
            try handle.close()
            return true
        } catch {
            r.check("start", false, "cannot write \(autoConf): \(error.localizedDescription)")
            return false
        }
    }

    /// A postgresql.conf string literal: single quotes doubled, backslashes doubled (the parser
    /// reads `\\` as an escape inside quotes). A scratch path with a comma is refused earlier
    /// (``checkScratchChars(_:)``): the setting is a list.
    static func configQuote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// 3. Start the copy and wait until it is out of recovery; nil (and the log scanned) when not.
    /// `pg_ctl start -w` polls the server every 100 ms; it runs in the background while promotion is
    /// polled here every 50 ms, and is joined (its time is the `start` step) before the stop. A start
    /// that fails is still the `start` check, before any `promoted` check.
    func startAndPromote(_ scratch: Scratch, _ r: Recorder) throws -> PostgresConnection? {
        let began = ContinuousClock.now
        let startJob = BackgroundJob { [copy = scratch.copy, logger] in try copy.start(logger: logger) }
        r.startJob = startJob
        do {
            let conn = try waitPromoted(Self.copyConnection(scratch), copy: scratch.copy, startJob: startJob)
            r.receipt.steps["start-promote"] = ((ContinuousClock.now - began).inSeconds * 1000).rounded() / 1000
            r.check("promoted", true, "copy out of recovery on 127.0.0.1:\(scratch.port)")
            return conn
        } catch let failure as StartFailure {
            r.joinStart()
            let summary = (failure.error as? any NFLDBError)?.diagnostic.oneLine ?? "\(failure.error)"
            r.check("start", false, "restored copy did not start on 127.0.0.1:\(scratch.port): " + summary)
            scanLog(scratch.copy, r)
            return nil
        } catch {
            r.joinStart()
            r.check("promoted", false, (error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)")
            scanLog(scratch.copy, r)
            return nil
        }
    }

    /// `pg_ctl start` failed while ``waitPromoted(_:copy:startJob:)`` polled.
    struct StartFailure: Error {
        let error: any Error
    }

    /// How verify reaches its copy: its socket dir, port, the primary's user and database, each
    /// quoted by ``ConnectionOptions/conninfo(_:)`` (a database named `my "db"` or `it's` stays one value).
    static func copyConnection(_ scratch: Scratch) -> ConnectionOptions {
        ConnectionOptions(dsn: ConnectionOptions.conninfo([
            ("host", scratch.copy.socketDirectory), ("port", String(scratch.port)), ("user", scratch.superuser), ("dbname", scratch.database),
            ("options", writableOptions),
        ]), connectTimeout: .seconds(5))
    }

    /// Server options for every session on the copy (a scratch): a database or role set to
    /// `default_transaction_read_only = on` on the primary must not make the checks fail.
    static let writableOptions = "-c default_transaction_read_only=off"


    /// 4. Prove the data: `pg_amcheck` (its own connections, `--jobs`) runs while the canary, count,
    /// checksum and schema-version checks use `conn`.
    /// - Returns: with `pageMode` `.backup`, what the copy says about page checksums after every read.
    func proveData(_ conn: PostgresConnection, _ plan: Plan, _ scratch: Scratch, pageMode: PageChecksumMode,
                   replay: BackgroundJob<Result<ReplayInputs, MemoOff>>? = nil, _ r: Recorder) throws -> PageEvidence? {
        defer { conn.close() }
        let jobs = max(1, options.amcheckJobs)
        let memo = replay.map { job in r.timed("amcheck-memo") { planSkips(conn, job.wait().0, plan: plan, scratch: scratch, r) } }
        let amcheckArguments = ["-h", scratch.copy.socketDirectory, "-p", String(scratch.port), "-U", scratch.superuser, "--all",
                                "--install-missing", "--heapallindexed", "--jobs=\(jobs)"]
            + (memo?.skipped ?? []).flatMap { $0.exclusionPatterns(database: scratch.database) }
        let amcheckCancel = ProcessCancellation()
        // The copy is a scratch: a database with default_transaction_read_only = on must not fail
        // pg_amcheck's CREATE EXTENSION (--install-missing).
        var environment = ProcessInfo.processInfo.environment
        environment["PGOPTIONS"] = ((environment["PGOPTIONS"].map { $0 + " " }) ?? "") + Self.writableOptions
        let amcheckJob = BackgroundJob { [osUser = pgbackrest.osUser, path = options.binaries.path("pg_amcheck"), environment] in
            try ProcessRunner(runAsUser: osUser).run(path, amcheckArguments, environment: environment, timeout: .seconds(3600), cancellation: amcheckCancel)
        }
        var openXIDs: [UInt64]?
        do {
            try r.timed("data-checks") { try dataChecks(conn, manifest: plan.manifest, targetEpoch: plan.targetEpoch, r) }
            if let memo { openXIDs = r.timed("open-xids") { Self.openXIDs(conn, memo) } }
        } catch {
            amcheckCancel.cancel()
            _ = amcheckJob.wait()
            throw error
        }
        let (amcheckOutcome, amcheckSeconds) = amcheckJob.wait()
        r.receipt.steps["pg_amcheck"] = (amcheckSeconds * 1000).rounded() / 1000
        let amcheck = try amcheckOutcome.get()
        r.cpu("pg_amcheck", amcheck.cpuSeconds)
        let amcheckClean = amcheck.succeeded && amcheck.standardOutput.isEmpty
        var amcheckEvidence = "pg_amcheck exit \(amcheck.status): \((amcheck.standardOutput + amcheck.standardError).split(separator: "\n").prefix(5).joined(separator: " | "))"
        if !amcheckClean, (amcheck.standardOutput + amcheck.standardError).contains("read-only transaction") {
            // pg_amcheck does not say which database refused: name the ones set read-only.
            let readOnly = (try? conn.query("""
                SELECT string_agg(DISTINCT d.datname::text, ', ') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                WHERE EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c ILIKE 'default_transaction_read_only=%' AND c NOT ILIKE '%=off' AND c NOT ILIKE '%=false')
                """).scalar(String?.self)) ?? nil
            amcheckEvidence += "; databases with default_transaction_read_only set: \(readOnly ?? "none found")"
        }
        var skipNote = ""
        if let memo {
            skipNote = recordMemo(memo, clean: amcheckClean, openXIDs: openXIDs, scratch: scratch, r)
        }
        r.check("pg_amcheck", amcheckClean, amcheckClean ? "pg_amcheck --all --heapallindexed --jobs=\(jobs) clean\(skipNote)" : amcheckEvidence)
        guard pageMode == .backup else { return nil }
        // After pg_amcheck and the counts: every page they (and WAL replay) read from disk had its
        // checksum verified by the server; a mismatch is counted here even where the reader went on.
        let row = try conn.query("""
            SELECT current_setting('data_checksums') = 'on' AS enabled, coalesce(sum(checksum_failures), 0)::bigint AS failures
            FROM pg_stat_database
            """).rows.first
        return PageEvidence(dataChecksums: try row?.decode("enabled", as: Bool.self) ?? false,
                            checksumFailures: try row?.decode("failures", as: Int64.self) ?? 0)
    }

    /// The copy's view of page checksums once the checks have read it (``PageChecksumMode/backup``).
    struct PageEvidence {
        let dataChecksums: Bool
        let checksumFailures: Int64
    }

    /// `page-checksums` (``PageChecksumMode/backup``): pgBackRest checked every page of every
    /// relation file when it copied it (`option-checksum-page=true` in the backup's manifest; a
    /// diff/incr manifest carries the flags of the files it references), no file of the backup
    /// has `"checksum-page":false` (pages that failed then), and the server found no bad checksum
    /// while replay and the checks read the copy.
    /// - Returns: nil when the check was recorded; otherwise why `pg_checksums` must run instead.
    func recordBackupPageChecks(_ fetched: Result<PgBackRestResult, any Error>, _ evidence: PageEvidence, plan: Plan, _ r: Recorder) -> String? {
        let manifest: String
        switch fetched {
        case .success(let result) where result.succeeded && !result.process.standardOutput.isEmpty:
            manifest = result.process.standardOutput
        case .success(let result):
            return "page checksums: could not read the backup's manifest (pgbackrest repo-get exit \(result.process.status): "
                + "\(result.process.stderrTail(1))); ran pg_checksums on the stopped copy instead"
        case .failure(let error):
            return "page checksums: could not read the backup's manifest (\((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)")); "
                + "ran pg_checksums on the stopped copy instead"
        }
        let lines = manifest.split(separator: "\n")
        guard lines.contains(where: { $0.trimmingCharacters(in: .whitespaces) == "option-checksum-page=true" }) else {
            return "page checksums: backup \(plan.backup.label) was taken without pgBackRest's page check (option-checksum-page is not true "
                + "in its manifest); ran pg_checksums on the stopped copy instead"
        }
        guard evidence.dataChecksums else {
            return "page checksums: data_checksums is off in the copy; ran pg_checksums on the stopped copy (it reports the same)"
        }
        r.receipt.pageChecksums = PageChecksumMode.backup.rawValue
        let pageErrors = lines.filter { $0.contains("\"checksum-page\":false") }
            .map { line in String(line.prefix { $0 != "=" }) }
        let checked = lines.filter { $0.contains("\"checksum-page\":true") }.count
        if !pageErrors.isEmpty {
            r.check("page-checksums", false, "pgBackRest found pages with a bad checksum in \(pageErrors.count) file(s) when it took backup "
                    + "\(plan.backup.label) (or a backup it references): \(pageErrors.prefix(3).joined(separator: ", "))"
                    + "; the primary has corrupt pages — run pg_checksums/pg_amcheck there")
        } else if evidence.checksumFailures > 0 {
            r.check("page-checksums", false, "the copy's server counted \(evidence.checksumFailures) page checksum failure(s) "
                    + "(pg_stat_database.checksum_failures) while replay and the checks read it; see the copy's server log")
        } else {
            r.check("page-checksums", true, "pgBackRest checked the pages of all \(checked) relation files when it copied them "
                    + "(0 with errors), the restore matched every file's SHA-1, and the server found no bad checksum in any page "
                    + "replay and the checks read (checksum_failures 0); no pg_checksums pass (backup.verify.page_checksums: backup)")
        }
        return nil
    }

    /// 5. A clean stop, then `pg_checksums --check` on the stopped copy.
    func stopAndChecksum(_ scratch: Scratch, _ r: Recorder) throws {
        r.joinStart()
        if let server = Self.serverCPUSeconds(scratch.copy) { r.cpu("server", server) }
        try r.timed("stop") { try stopClean(scratch.copy) }
        let checksums = try r.timed("pg_checksums") {
            try ProcessRunner(runAsUser: pgbackrest.osUser).run(options.binaries.path("pg_checksums"), ["--check", "-D", scratch.copy.dataDirectory], timeout: .seconds(3600))
        }
        r.cpu("pg_checksums", checksums.cpuSeconds)
        r.receipt.pageChecksums = PageChecksumMode.pgChecksums.rawValue
        let bad = checksums.standardOutput.split(separator: "\n").first { $0.contains("Bad checksums") }.map { $0.trimmingCharacters(in: .whitespaces) }
        r.check("pg_checksums", checksums.succeeded, checksums.succeeded ? (bad ?? "checksums ok") : "pg_checksums exit \(checksums.status): \(bad ?? checksums.stderrTail(3))")
    }

    /// The copy's postmaster CPU seconds plus its exited children's (startup/recovery process,
    /// backends, pg_amcheck's connections), from `/proc/<pid>/stat` (utime, stime, cutime, cstime).
    static func serverCPUSeconds(_ copy: LocalCluster) -> Double? {
        guard let pid = LocalCluster.runningPostmaster(dataDirectory: copy.dataDirectory),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3; utime..cstime are fields 14–17.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 14 else { return nil }
        let ticks = fields[11...14].compactMap { Double($0) }.reduce(0, +)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// A fast shutdown (SIGINT to the postmaster: a shutdown checkpoint, so pg_control reads "shut
    /// down" as `pg_checksums` requires) and a 10 ms poll until `postmaster.pid` is gone — the same
    /// end `pg_ctl stop -m fast -w` waits for, which it polls every 100 ms. Falls back to `pg_ctl`
    /// when the signal cannot be sent or the server is not down within 60 s.
    func stopClean(_ copy: LocalCluster) throws {
        guard let pid = LocalCluster.runningPostmaster(dataDirectory: copy.dataDirectory) else { return }
        if ActiveScratch.signalAndWait(copy, pid: pid, signal: SIGINT, within: .seconds(60)) { return }
        try copy.stop(mode: "fast", logger: logger)
    }

    /// The canary/manifest written before this backup: from `nfldb.backup_runs` on the primary (the
    /// catalog exists: ``run()`` installs it), else
    /// from the copy `backup run` left beside a posix repo (the primary may have lost it).
    func loadManifest(label: String) throws -> (manifest: Manifest, source: String)? {
        let rows = try primary.query("""
            SELECT m.token, m.taken_at, m.schema_version, m.counts::text AS counts, m.checksums::text AS checksums, m.writes::text AS writes
            FROM nfldb.backup_runs r JOIN nfldb.backup_manifests m ON m.token = r.token
            WHERE r.label = \(label) AND r.status = 'ok' ORDER BY r.id DESC LIMIT 1
            """).rows
        if let row = rows.first {
            let counts = try JSONDecoder().decode([String: Int64].self, from: Data((row["counts"] ?? "{}").utf8))
            let checksums = try row["checksums"].map { try JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
            let writes = try row["writes"].map { try JSONDecoder().decode([String: WriteCounts?].self, from: Data($0.utf8)) }
            return (Manifest(token: try row.decode("token"), takenAt: try row.decode("taken_at"), schemaVersion: try row.decode("schema_version"),
                             counts: counts, checksums: checksums, writes: writes), "nfldb.backup_manifests on the primary")
        }
        guard let path = pgbackrest.manifestFilePath(label: label), let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return (try decoder.decode(Manifest.self, from: data), path)
        } catch {
            throw BackupError("the manifest copy \(path) is not readable JSON: \(error)", hint: "Take a new backup with `nfldb backup run`.")
        }
    }

    /// Polls (every 10 ms) until the copy accepts a connection and is out of recovery. While `startJob`
    /// (`pg_ctl start -w`) runs, a missing postmaster means "not started yet"; its failure is a
    /// ``StartFailure``.
    func waitPromoted(_ connection: ConnectionOptions, copy: LocalCluster, startJob: BackgroundJob<Void>? = nil) throws -> PostgresConnection {
        let deadline = ContinuousClock.now + options.promoteTimeout
        var last = "not reachable yet"
        while ContinuousClock.now < deadline {
            let starting: Bool
            switch startJob?.finished {
            case .some(.failure(let error)): throw StartFailure(error: error)
            case .some(.success): starting = false
            case .none: starting = startJob != nil
            }
            guard starting || copy.isRunning else {
                throw BackupError("the restored copy stopped before it was promoted", detail: copy.logTail(6))
            }
            do {
                let conn = try PostgresConnection.connect(connection, logger: logger)
                if let recovering = try? conn.query("SELECT pg_is_in_recovery()").scalar(Bool.self) {
                    if !recovering { return conn }
                    last = "still in recovery"
                }
                conn.close()
            } catch let error as PostgresError where error.message.contains("database \"") && error.message.contains("\" does not exist") {
                // The copy answers but has no such database: waiting cannot help (it was created after
                // the backup, or the DSN names another one).
                let name = error.message.range(of: #"database "[^"]*" does not exist"#, options: .regularExpression).map { String(error.message[$0]) }
                    ?? "the database does not exist"
                throw BackupError(
                    "the restored copy answers, but \(name) there: the backup was taken before it existed, or the DSN names a database the backup does not hold",
                    hint: "Take a new backup (`nfldb backup run`) and verify again, or point --dsn at a database the backup has.")
            } catch {
                last = "not reachable yet"
            }
            // 10 ms: promotion is on the critical path; a refused connection attempt costs ~1 ms.
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw BackupError("the restored copy was not promoted within \(options.promoteTimeout) (\(last))", detail: copy.logTail(6))
    }

    func dataChecks(_ conn: PostgresConnection, manifest: Manifest?, targetEpoch: Double?, _ r: Recorder) throws {
        guard let manifest else {
            let label = r.receipt.label ?? "?"
            r.check("manifest", false, "no manifest for backup \(label) in nfldb.backup_manifests on the primary"
                    + (pgbackrest.manifestFilePath(label: label).map { " or at \($0)" } ?? "")
                    + " (was it taken with `nfldb backup run`?); the canary, row counts and schema version cannot be checked")
            return
        }
        let hasCanaries = try conn.query("SELECT to_regclass('nfldb.backup_canaries') IS NOT NULL").scalar(Bool.self)
        let present = hasCanaries ? try conn.query("SELECT count(*) FROM nfldb.backup_canaries WHERE token = \(manifest.token)").scalar(Int.self) : 0
        r.check("canary", present == 1, present == 1 ? "canary \(manifest.token) present" : "canary \(manifest.token) written before the backup is missing in the copy")
        if let targetEpoch {
            let newest = hasCanaries ? try conn.query("SELECT extract(epoch FROM max(created_at))::float8 FROM nfldb.backup_canaries").scalar(Double?.self) : nil
            let ok = (newest ?? 0) <= targetEpoch + 0.000_5
            // The newest canary the primary wrote at or before the target must be in the copy:
            // a WAL gap lets recovery promote early, before the target.
            let expected = try primary.query("""
                SELECT token FROM nfldb.backup_canaries WHERE extract(epoch FROM created_at) <= \(targetEpoch)
                ORDER BY created_at DESC LIMIT 1
                """).rows.first?["token"]
            var reached = true
            if let expected, hasCanaries {
                reached = try conn.query("SELECT count(*) FROM nfldb.backup_canaries WHERE token = \(expected)").scalar(Int.self) == 1
            }
            r.check("pitr-canary", ok && reached,
                    "newest canary in the copy at epoch \(newest.map { String(format: "%.3f", $0) } ?? "none"), target \(String(format: "%.3f", targetEpoch))"
                    + (reached ? "; last canary before the target (\(expected ?? "none")) present" : "; last canary before the target \(expected ?? "") is MISSING (recovery stopped early: WAL gap?)"))
            r.check("row-counts", true, "skipped for a point-in-time restore (the copy replays past the manifest)")
        } else {
            let names = manifest.counts.keys.sorted()
            var actual: [String: Int64] = [:]
            var sums: [String: String] = [:]
            let expectedSums = manifest.checksums ?? [:]
            var unlogged: [String: Bool] = [:]
            try conn.withTransaction(isolation: .repeatableRead, readOnly: true) {
                actual = try ManagedTables.count(ManagedTables.existing(names, conn), conn)
                sums = try ManagedTables(schemas: [], reference: expectedSums.keys.sorted()).checksums(conn)
                unlogged = try Self.unloggedTables(Array(Set(names).union(expectedSums.keys)), conn)
            }
            // A restore brings UNLOGGED tables back empty (their data is never in WAL or the backup):
            // a plain unlogged table is expected empty; a partitioned table with an unlogged partition is not compared.
            let emptyByDesign = Set(unlogged.filter { !$0.value }.keys)
            let notCompared = Set(unlogged.filter { $0.value }.keys)
            if !unlogged.isEmpty {
                r.receipt.notes.append("unlogged tables restore empty (PostgreSQL resets them; their rows are never in the backup): "
                    + (emptyByDesign.isEmpty ? "" : "expected empty: \(emptyByDesign.sorted().joined(separator: ", "))")
                    + (notCompared.isEmpty ? "" : (emptyByDesign.isEmpty ? "" : "; ")
                        + "not compared (partitioned, with unlogged partitions): \(notCompared.sorted().joined(separator: ", "))"))
            }
            // Exact where nothing was written during the backup; otherwise exactly the range the
            // writes allow (manifest count minus deletes … plus inserts).
            let differing = names.filter { name in
                guard let count = actual[name] else { return true }
                if notCompared.contains(name) { return false }
                if emptyByDesign.contains(name) { return count != 0 }
                guard let range = manifest.allowedRange(name) else { return false }
                return !range.contains(count)
            }
            let written = names.filter { manifest.allowedRange($0).map { $0.lowerBound != $0.upperBound } ?? true }
            func describe(_ name: String) -> String {
                if emptyByDesign.contains(name) {
                    return "\(name) (unlogged: expected empty after a restore, manifest \(manifest.counts[name] ?? 0)) got \(actual[name].map(String.init) ?? "missing table")"
                }
                let expected = manifest.counts[name] ?? 0
                let got = actual[name].map(String.init) ?? "missing table"
                guard let range = manifest.allowedRange(name) else { return "\(name) got \(got) (write counters were reset during the backup: no bound)" }
                guard range.lowerBound != range.upperBound, let w = manifest.writes?[name] ?? nil else { return "\(name) expected \(expected) got \(got)" }
                return "\(name) expected \(range.lowerBound)–\(range.upperBound) (manifest \(expected); \(w.inserted) inserted, \(w.deleted) deleted during the backup) got \(got)"
            }
            let unloggedNote = unlogged.isEmpty ? "" : "; unlogged (restored empty by design): "
                + unlogged.keys.sorted().map { notCompared.contains($0) ? "\($0) not compared" : "\($0) expected 0 (manifest \(manifest.counts[$0] ?? 0))" }
                    .joined(separator: ", ")
            r.check("row-counts", differing.isEmpty, (differing.isEmpty
                ? "\(names.count) table(s) match the manifest \(manifest.token)"
                    + (written.isEmpty ? " exactly" : " (\(names.count - written.count) exactly; written during the backup, within the allowed range: "
                        + written.map(describe).joined(separator: ", ") + ")")
                : "row counts differ from the manifest in \(differing.count) table(s): " + differing.map(describe).joined(separator: ", ")) + unloggedNote)
            if !expectedSums.isEmpty {
                // An unlogged reference table restores empty: its checksum is not compared.
                let compared = expectedSums.keys.sorted().filter { unlogged[$0] == nil }
                let skipped = expectedSums.keys.sorted().filter { unlogged[$0] != nil }
                let wrong = compared.filter { sums[$0] != expectedSums[$0] }
                let skippedNote = skipped.isEmpty ? "" : "; not compared (unlogged, restored empty): \(skipped.joined(separator: ", "))"
                r.check("reference-checksums", wrong.isEmpty, (wrong.isEmpty
                    ? "content of \(compared.isEmpty ? "no table" : compared.joined(separator: ", ")) matches the manifest"
                    : "content differs from the manifest in \(wrong.map { "\($0) (expected \(expectedSums[$0] ?? "?"), got \(sums[$0] ?? "missing table"))" }.joined(separator: ", "))") + skippedNote)
            }
        }
        let version = try ManagedTables.schemaVersion(conn)
        r.check("schema-version", version == manifest.schemaVersion,
                "copy schema version \(version.map(String.init) ?? "none"), ledger at backup time \(manifest.schemaVersion.map(String.init) ?? "none")")
    }

    /// Which of `names` are UNLOGGED in the copy (`relpersistence = 'u'`): false for a plain
    /// unlogged table, true for a partitioned table with an unlogged leaf partition.
    static func unloggedTables(_ names: [String], _ conn: PostgresConnection) throws -> [String: Bool] {
        var out: [String: Bool] = [:]
        for name in try ManagedTables.existing(names, conn) {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            let regclass = PostgresIdentifier.quote(parts[0]) + "." + PostgresIdentifier.quote(parts[1])
            let row = try conn.query("""
                SELECT c.relkind::text AS kind, c.relpersistence = 'u' AS unlogged,
                       EXISTS (SELECT 1 FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                               WHERE t.isleaf AND l.relpersistence = 'u') AS unlogged_leaf
                FROM pg_class c WHERE c.oid = to_regclass(\(regclass))
                """).rows.first
            guard let row else { continue }
            if row["kind"] == "p" {
                if try row.decode("unlogged_leaf", as: Bool.self) { out[name] = true }
            } else if try row.decode("unlogged", as: Bool.self) {
                out[name] = false
            }
        }
        return out
    }

    /// The `pgbackrest-verify` and `wal-continuity` checks from the verify output. A verify stopped
    /// because the run had already failed adds no check (it proved nothing either way); the step
    /// times say it was stopped.
    func recordRepoChecks(_ outcome: RepoVerify.Outcome, stanza: StanzaInfo, _ r: Recorder) {
        r.receipt.steps["pgbackrest-verify"] = (outcome.seconds * 1000).rounded() / 1000
        let verifyResult: PgBackRestResult
        switch outcome.result {
        case .success(let result):
            verifyResult = result
            r.cpu("pgbackrest-verify", result.process.cpuSeconds)
        case .failure where outcome.stopped:
            r.receipt.notes.append(String(format: "pgbackrest verify was stopped after %.1f s, unfinished: this verify had already failed", outcome.seconds))
            return
        case .failure(let error):
            r.check("pgbackrest-verify", false, "could not run pgbackrest verify: " + ((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)"))
            return
        }
        // Its exit code means nothing on 2.45 (#2502): parse the text.
        let parsed = VerifyOutput.parse(verifyResult.process.standardOutput + "\n" + verifyResult.process.standardError)
        let invalid = parsed.notValid.map { "\($0.key): \($0.value)" }.sorted()
        var evidence = "status \(parsed.status ?? "?"), exit \(verifyResult.process.status)"
        if !invalid.isEmpty { evidence += "; backups not valid: \(invalid.joined(separator: ", "))" }
        if !parsed.inProgress.isEmpty {
            evidence += "; still being taken, not judged: \(parsed.inProgress.joined(separator: ", "))"
            r.receipt.notes.append("pgbackrest verify found backup(s) still being taken (\(parsed.inProgress.joined(separator: ", "))); they were not judged and do not fail this run")
        }
        // 2.45 silently leaves out a backup that backup.info lists but whose directory is gone:
        // every listed backup must have a verdict (once verify printed its stanza result).
        let unverified = parsed.status == nil ? [] : stanza.backup.map(\.label).filter { parsed.backups[$0] == nil }
        if !unverified.isEmpty {
            evidence += "; backups listed in backup.info but absent from pgbackrest verify's result (directory gone?): "
                + unverified.joined(separator: ", ")
        }
        if !parsed.damagedFiles.isEmpty {
            evidence += "; damaged files: " + parsed.damagedFiles.prefix(5).joined(separator: ", ")
                + (parsed.damagedFiles.count > 5 ? " and \(parsed.damagedFiles.count - 5) more (the pgBackRest log lists them all)" : "")
        }
        if !parsed.problems.isEmpty { evidence += "; " + parsed.problems.prefix(3).joined(separator: " | ") }
        r.check("pgbackrest-verify", parsed.ok && unverified.isEmpty, evidence)

        checkContinuity(parsed, stanza: stanza, source: "pgbackrest verify", r)
    }

    /// WAL continuity: one unbroken range from the oldest backup's start WAL to the archive max.
    func checkContinuity(_ parsed: VerifyOutput, stanza: StanzaInfo, source: String, _ r: Recorder) {
        let archiveID = stanza.archive.last?.id
        if let oldestStart = stanza.backup.first?.archive?.start, let archiveMax = stanza.archiveMax {
            // The archive must also reach the newest backup's stop segment (a missing last segment
            // lowers the archive max instead of leaving a visible gap).
            let max = Swift.max(archiveMax, stanza.backup.last?.archive?.stop ?? archiveMax)
            let ok = parsed.continuous(archiveID: archiveID, from: oldestStart, through: max)
            let ranges = parsed.walRanges.map { "\($0.start)-\($0.stop)" }.joined(separator: ", ")
            r.check("wal-continuity", ok, ok
                ? "WAL continuous from \(oldestStart) to \(max)"
                : "WAL gap between the oldest backup's start \(oldestStart) and the archive max \(max): archived ranges \(ranges.isEmpty ? "none" : ranges) (from the \(source))"
                    + (ok ? "" : continuityAdvice(parsed, stanza: stanza, archiveID: archiveID, through: max)))
        } else {
            r.check("wal-continuity", false, "info reports no archive range for stanza \(stanza.name)")
        }
    }

    /// What a WAL gap means for each backup and what clears the failure: backups that start before
    /// the last gap cannot be recovered past it (a newer full backup does not change that); the
    /// check passes again once they are expired, by retention or by hand (`expire --set` of a full
    /// backup expires its differential and incremental backups too).
    func continuityAdvice(_ parsed: VerifyOutput, stanza: StanzaInfo, archiveID: String?, through max: String) -> String {
        guard let resume = parsed.walRanges.filter({ (archiveID == nil || $0.archiveID == archiveID) && $0.start <= max && max <= $0.stop })
            .map(\.start).min() else {
            return " — the archive does not reach \(max): find out what removed those segments, and take a new full backup (`nfldb backup run --type full`)"
        }
        let affected = stanza.backup.filter { ($0.archive?.start ?? "") < resume }.map(\.label)
        let fine = stanza.backup.filter { ($0.archive?.start ?? "") >= resume }.map(\.label)
        let fulls = affected.filter { !$0.contains("_") }
        var advice = " — backup(s) \(affected.joined(separator: ", ")) start before \(resume), after the gap, so they cannot be recovered past it"
        if fine.isEmpty {
            advice += "; no backup starts after the gap: take a new full backup (`nfldb backup run --type full`), then expire the older ones"
        } else {
            advice += " (\(fine.joined(separator: ", ")) can)"
        }
        // `expire --set` of a full backup also expires the diff/incr backups that depend on it
        // (labels `<full>_…`), and pgBackRest refuses to expire the latest backup: a full whose chain
        // holds the latest one cannot be expired until a newer full backup exists.
        let latest = stanza.backup.last?.label
        let chains = fulls.map { full in (full, stanza.backup.map(\.label).filter { $0.hasPrefix(full + "_") }) }
        let holdsLatest = { (chain: (String, [String])) in chain.0 == latest || chain.1.contains { $0 == latest } }
        let blocked = chains.filter(holdsLatest)
        let expirable = chains.filter { !holdsLatest($0) }
        advice += ". This check passes again once they expire by retention"
        if !expirable.isEmpty {
            advice += ", or now: "
                + expirable.map { full, dependants in
                    "`pgbackrest --config=\(ShellWord.quote(pgbackrest.configPath)) --stanza=\(ShellWord.quote(pgbackrest.stanza)) expire --set=\(full)`"
                        + (dependants.isEmpty ? "" : " (also expires \(dependants.joined(separator: ", ")), which depend\(dependants.count == 1 ? "s" : "") on it)")
                }.joined(separator: "; ")
                + (ProcessRunner.isRoot ? " (as the OS user that owns the repository)" : "")
                + ", then verify again"
        }
        if !blocked.isEmpty {
            advice += "; \(blocked.map(\.0).joined(separator: ", ")) cannot be expired yet: \(blocked.count == 1 ? "its" : "their") chain holds the latest backup "
                + "\(latest ?? ""), which pgBackRest does not expire. Take a new full backup first (`nfldb backup run --type full`); "
                + "the next verify then prints the expire to run"
        }
        return advice
    }

    /// Whether this run runs the full `pgbackrest verify`: with `--full`, with an interval of 0,
    /// after a failed verification that did not run it (its verdict may explain the failure), and
    /// when the newest receipt of this stanza in which it ran (any receipt written before the
    /// interval existed counts as one) failed `pgbackrest-verify` or `wal-continuity`, or finished
    /// at least `repoVerifyInterval` ago. Records the decision in the receipt.
    func repoVerifyDue(_ r: Recorder) throws -> Bool {
        let interval = options.repoVerifyInterval.inSeconds
        func decide(_ ran: Bool, _ reason: String, _ lastPassedAt: Date?) -> Bool {
            r.receipt.repoVerify = RepoVerification(ran: ran, reason: reason, lastPassedAt: lastPassedAt, intervalSeconds: interval)
            return ran
        }
        if options.full { return decide(true, "--full", nil) }
        if interval <= 0 { return decide(true, "every run (backup.verify.repo_verify_interval 0)", nil) }
        let row = try primary.query("""
            SELECT finished_at, extract(epoch FROM now() - finished_at)::float8 AS age_s,
                   NOT (coalesce(failed_checks, '{}') && ARRAY['pgbackrest-verify', 'wal-continuity']::text[]) AS passed,
                   (SELECT max(finished_at) FROM nfldb.backup_verifications p
                     WHERE p.stanza = \(pgbackrest.stanza) AND coalesce(p.receipt->'repoVerify'->>'ran', 'true') = 'true'
                       AND p.receipt->'checks' @> '[{"name": "pgbackrest-verify", "passed": true}]'
                       AND NOT (coalesce(p.failed_checks, '{}') && ARRAY['wal-continuity']::text[])) AS last_passed
            FROM nfldb.backup_verifications
            WHERE stanza = \(pgbackrest.stanza) AND coalesce(receipt->'repoVerify'->>'ran', 'true') = 'true'
              AND receipt->'checks' @> '[{"name": "pgbackrest-verify"}]'
            ORDER BY finished_at DESC, id DESC LIMIT 1
            """).rows.first
        let human = DurationFormat.human
        let newest = try primary.query("""
            SELECT status,
                   -- A receipt without the decision (a verify that failed before it, at repo-info or the stanza) ran it
                   -- only if it has the check (receipts written before the interval existed).
                   coalesce(receipt->'repoVerify'->>'ran',
                            CASE WHEN receipt->'checks' @> '[{"name": "pgbackrest-verify"}]' THEN 'true' ELSE 'false' END) = 'true' AS ran
            FROM nfldb.backup_verifications WHERE stanza = \(pgbackrest.stanza) ORDER BY finished_at DESC, id DESC LIMIT 1
            """).rows.first
        if let newest, newest["status"] != "ok", try !newest.decode("ran", as: Bool.self) {
            return decide(true, "the last verification failed and did not run the full repository verification",
                          try row?.decode("last_passed", as: Date?.self))
        }
        guard let row else { return decide(true, "no earlier full repository verification of stanza \(pgbackrest.stanza) recorded", nil) }
        let lastPassed: Date? = try row.decode("last_passed", as: Date?.self)
        guard try row.decode("passed", as: Bool.self) else {
            return decide(true, "the last full repository verification failed", lastPassed)
        }
        let age = try row.decode("age_s", as: Double.self)
        if age >= interval {
            return decide(true, "the last full repository verification is \(human(age)) old (interval \(human(interval)))", lastPassed)
        }
        return decide(false, "the last full repository verification passed \(human(age)) ago (interval \(human(interval)))", lastPassed)
    }

    /// Without the full `pgbackrest verify`: `pgbackrest-verify` says why it did not run (and what
    /// still read the repo this time), and `wal-continuity` comes from a listing of the archive
    /// (`repo-ls`: every segment's presence, not its content).
    func recordListedWAL(_ listed: (Result<PgBackRestResult, any Error>, Double), plan: Plan, _ r: Recorder) {
        r.receipt.steps["repo-ls"] = (listed.1 * 1000).rounded() / 1000
        let decision = r.receipt.repoVerify
        let restoreRead = r.receipt.checks.first { $0.name == "restore" }.map { check in
            !check.passed ? "" : (check.evidence.contains("--delta")
                ? "; this run's --delta restore checked the kept files against the manifest's SHA-1 but read only the changed ones from the repo"
                : "; this run's restore read and checksummed every file of \(plan.backup.label) from the repo")
        } ?? ""
        r.check("pgbackrest-verify", true, "not run this time: \(decision?.reason ?? "not due")"
                + (decision?.lastPassedAt.map { "; last passed at \(ISO8601DateFormatter().string(from: $0))" } ?? "")
                + restoreRead + "; `nfldb backup verify --full` runs it now")
        let result: PgBackRestResult
        switch listed.0 {
        case .success(let value) where value.succeeded: result = value
        case .success(let value):
            r.check("wal-continuity", false, "could not list the archive: " + pgbackrest.error(for: value).diagnostic.oneLine)
            return
        case .failure(let error):
            r.check("wal-continuity", false, "could not list the archive: " + ((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)"))
            return
        }
        let names = ((try? JSONSerialization.jsonObject(with: Data(result.process.standardOutput.utf8))) as? [String: Any] ?? [:]).keys
        let ranges = ArchiveListing.ranges(names, segmentSize: plan.segmentSize)
        let parsed = VerifyOutput(status: nil, backups: [:], walRanges: ranges, problems: [])
        checkContinuity(parsed, stanza: plan.stanza, source: "archive listing", r)
    }

    /// FATAL/PANIC lines in the copy's server log, ignoring connection attempts during startup.
    func scanLog(_ copy: LocalCluster, _ r: Recorder) {
        let text = (try? String(contentsOfFile: copy.logFile, encoding: .utf8)) ?? ""
        let benign = ["the database system is starting up", "the database system is not yet accepting connections",
                      "the database system is shutting down", "terminating connection due to administrator command"]
        let bad = text.split(separator: "\n").filter { line in
            (line.contains("FATAL:") || line.contains("PANIC:")) && !benign.contains { line.contains($0) }
        }
        r.check("server-log", bad.isEmpty, bad.isEmpty ? "no FATAL/PANIC in the copy's log" : bad.prefix(3).joined(separator: " | "))
    }
}

/// `pgbackrest verify --output=text --verbose --log-level-console=detail` (it reads and checksums
/// every repo file) running in the background, stoppable.
final class RepoVerify: Sendable {
    struct Outcome {
        let result: Result<PgBackRestResult, any Error>
        let seconds: Double
        /// Stopped by ``finish(grace:)`` before it ended on its own.
        let stopped: Bool
    }
    let cancellation = ProcessCancellation()
    let job: BackgroundJob<PgBackRestResult>
    /// `nice -n 19`: the restore beside it is the critical path. A restore leaves part of the CPUs
    /// idle (it waits for its writes and fsyncs); at full priority verify took its share of the
    /// CPUs instead and made the restore ~0.5 s slower than a bare one (issue 11 item 7). It still
    /// checks every repo file; it only yields the CPU while the restore wants it.
    static let niceness: Int32 = 19

    init(pgbackrest: PgBackRest, logger: Logger) {
        job = BackgroundJob { [cancellation] in
            try pgbackrest.run("verify", ["--output=text", "--verbose", "--log-level-console=detail"], timeout: .seconds(3600),
                               logger: logger, cancellation: cancellation, niceness: RepoVerify.niceness)
        }
    }

    /// Waits for the verdict; with a `grace`, at most that long, then stops the process (SIGTERM,
    /// SIGKILL 5 s later) and waits for it to exit.
    func finish(grace: Duration?) -> Outcome {
        if let grace, !job.wait(timeout: grace) {
            cancellation.cancel()
            let (result, seconds) = job.wait()
            return Outcome(result: result, seconds: seconds, stopped: true)
        }
        let (result, seconds) = job.wait()
        return Outcome(result: result, seconds: seconds, stopped: false)
    }
}

/// Runs one blocking job on a global queue; ``wait()`` returns its result and duration.
final class BackgroundJob<T: Sendable>: @unchecked Sendable {
    // `outcome` is written once by the job before `group.leave()` and read only after `group.wait()`.
    private var outcome: (Result<T, any Error>, Double)?
    private let group = DispatchGroup()

    init(_ body: @escaping @Sendable () throws -> T) {
        group.enter()
        DispatchQueue.global().async {
            let start = ContinuousClock.now
            let result = Result { try body() }
            let e = ContinuousClock.now - start
            self.outcome = (result, e.inSeconds)
            self.group.leave()
        }
    }

    /// The result if the job has finished, else nil (does not wait).
    var finished: Result<T, any Error>? {
        group.wait(timeout: .now()) == .success ? outcome?.0 : nil
    }

    /// Whether the job finished within `timeout`.
    func wait(timeout: Duration) -> Bool {
        group.wait(timeout: .now() + .milliseconds(Int(timeout.inSeconds * 1000))) == .success
    }

    func wait() -> (Result<T, any Error>, Double) {
        group.wait()
        return outcome ?? (.failure(BackupError("background job produced no result")), 0)
    }
}

/// WAL ranges from a `pgbackrest repo-ls --recurse --output=json archive/<stanza>` listing.
public enum ArchiveListing {
    /// Continuous ranges of segment files (`<archiveId>/<dir>/<24 hex>-<sha1>[.ext]`) per archive
    /// id, as `pgbackrest verify` reports them; `.history`, `.backup` and `.partial` files are not segments.
    public static func ranges<S: Sequence>(_ paths: S, segmentSize: Int64) -> [VerifyOutput.WALRange] where S.Element == String {
        var byArchive: [String: [String]] = [:]
        for path in paths {
            let parts = path.split(separator: "/")
            guard parts.count == 3, let name = parts.last else { continue }
            let head = name.prefix(24)
            guard head.count == 24, head.allSatisfy(\.isHexDigit), name.dropFirst(24).first == "-" else { continue }
            byArchive[String(parts[0]), default: []].append(String(head).uppercased())
        }
        var ranges: [VerifyOutput.WALRange] = []
        for (archiveID, names) in byArchive.sorted(by: { $0.key < $1.key }) {
            var current: VerifyOutput.WALRange?
            for name in Set(names).sorted() {
                if var range = current, WALName.next(range.stop, segmentSize: segmentSize) == name {
                    range.stop = name
                    current = range
                } else {
                    if let current { ranges.append(current) }
                    current = VerifyOutput.WALRange(archiveID: archiveID, start: name, stop: name)
                }
            }
            if let current { ranges.append(current) }
        }
        return ranges
    }
}
