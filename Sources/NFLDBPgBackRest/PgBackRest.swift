import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// pgBackRest error codes nfldb branches on (numbers from pgBackRest's `build/error.yaml`).
public struct PgBackRestErrorCode: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public static let archiveTimeout = PgBackRestErrorCode(82)
    public static let fileWrite = PgBackRestErrorCode(64)

    /// A short name for the code, as in `error.yaml`.
    public var name: String {
        switch rawValue {
        case 25: "assert"
        case 26: "checksum"
        case 27: "config"
        case 29: "format"
        case 31: "option-invalid-value"
        case 37: "option-required"
        case 38: "postmaster-running"
        case 40: "path-not-empty"
        case 41: "file-open"
        case 44: "archive-mismatch"
        case 45: "archive-duplicate"
        case 50: "lock-acquire"
        case 55: "file-missing"
        case 56: "db-connect"
        case 57: "db-query"
        case 58: "db-mismatch"
        case 64: "file-write"
        case 73: "path-missing"
        case 75: "stanza-missing"
        case 82: "archive-timeout"
        case 87: "archive-disabled"
        default: "error"
        }
    }

    /// What the operator usually does about it.
    public var hint: String? {
        switch rawValue {
        case 27: "Check pgbackrest.conf (backup.config / NFLDB_BACKUP_CONFIG) and that the database is running and reachable via pg1-socket-path/pg1-port."
        case 37, 75: "The stanza does not exist in this repo or config: check backup.stanza (NFLDB_BACKUP_STANZA), or run `nfldb backup init`."
        case 50: "Another pgBackRest command holds the stanza lock; wait for it to finish and run again."
        case 56: "pgBackRest cannot connect to PostgreSQL: check pg1-socket-path, pg1-port and pg1-user in pgbackrest.conf."
        case 82: "WAL was not archived in time: check archive_command (`nfldb backup config --check`) and the PostgreSQL server log."
        case 40: "The target directory is not empty: pass --delta to reuse it, or choose an empty directory."
        case 26, 55: "The repository is damaged (a file is missing or fails its checksum); take a new full backup."
        default: nil
        }
    }

    public var description: String { String(format: "%03d %@", rawValue, name) }
}

extension PgBackRest {
    /// `repo1-path` of a posix repo from the config file; nil for another repo type or an unreadable file.
    public func posixRepoPath() -> String? {
        guard let config = try? String(contentsOfFile: configPath, encoding: .utf8) else { return nil }
        let lines = config.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if let type = lines.first(where: { $0.hasPrefix("repo1-type=") }), type != "repo1-type=posix" { return nil }
        return lines.first(where: { $0.hasPrefix("repo1-path=") }).map { String($0.dropFirst("repo1-path=".count)) }
    }

    /// Where `backup run` keeps the copy of a backup's manifest beside a posix repo
    /// (`<repo1-path>/nfldb-manifests/<label>.json`), so verify can work when the primary lost it.
    public func manifestFilePath(label: String) -> String? {
        posixRepoPath().map { ($0 as NSString).appendingPathComponent("nfldb-manifests/\(label).json") }
    }
}

/// A failed pgBackRest command: its exit code (pgBackRest's error code) and the end of its stderr.
public struct PgBackRestError: NFLDBError, Sendable {
    public let command: String
    public let code: PgBackRestErrorCode
    public let stanza: String
    /// The last stderr lines (`ERROR: [NNN]: …`, `HINT: …`).
    public let stderrTail: String
    /// Set when the filesystem of the file pgBackRest could not write was found full right after
    /// the failure (see ``PgBackRest/error(for:)``): where, and how much is free.
    public var filesystemFull: String?
    /// The config file named by `--config` does not exist (pgBackRest's 055 names it): a
    /// configuration error, not a damaged repository.
    public var configMissing: String?

    public var exitStatus: ExitStatus { configMissing != nil ? .usage : .failure }

    public init(command: String, code: PgBackRestErrorCode, stanza: String, stderrTail: String, filesystemFull: String? = nil) {
        self.command = command
        self.code = code
        self.stanza = stanza
        self.stderrTail = stderrTail
        self.filesystemFull = filesystemFull
    }

    /// The first `ERROR: [NNN]:` line's message, if any.
    public var errorMessage: String? {
        stderrTail.split(separator: "\n").first { $0.contains("ERROR: [") }.map { line in
            guard let range = line.range(of: "]: ") else { return String(line) }
            return String(line[range.upperBound...])
        }
    }

    /// The file in `unable to write '<path>'` (064 file-write), if that is the error.
    public var unwritablePath: String? {
        guard let message = errorMessage, let start = message.range(of: "unable to write '") else { return nil }
        let rest = message[start.upperBound...]
        return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
    }

    /// The first quoted path of a `[13] Permission denied` error (`unable to open file '<path>' for read`).
    public var deniedPath: String? {
        guard let line = stderrTail.split(separator: "\n").first(where: { $0.contains("[13] Permission denied") }),
              let start = line.firstIndex(of: "'") else { return nil }
        let rest = line[line.index(after: start)...]
        return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
    }

    /// The directory in `unable to restore to path '<path>' because it contains files` (040 path-not-empty).
    public var notEmptyPath: String? {
        guard let message = errorMessage, let start = message.range(of: "restore to path '") else { return nil }
        let rest = message[start.upperBound...]
        return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
    }

    /// Out of space: pgBackRest printed ENOSPC (`[28] No space left on device`), or the filesystem
    /// was found full after a 064: restoring into a full tmpfs, pgBackRest 2.45 printed only
    /// `[064]: … unable to write '<file>'`, without the errno.
    public var noSpaceLeft: Bool { filesystemFull != nil || stderrTail.contains("No space left on device") }

    public var diagnostic: Diagnostic {
        var summary = "pgbackrest \(command) failed for stanza \(stanza) with error [\(code)]"
        if let errorMessage { summary += ": \(errorMessage)" }
        if let filesystemFull, !summary.contains("No space left on device") {
            summary += " (No space left on device: \(filesystemFull))"
        }
        let hint = if let configMissing {
            "The pgBackRest config file \(configMissing) does not exist: set backup.config (NFLDB_BACKUP_CONFIG) to the file "
                + "`nfldb backup config --write` wrote, or write it there (for the sandbox: eval \"$(nfldb sandbox env)\")."
        } else if noSpaceLeft {
            "The filesystem pgBackRest writes to is full: free space there"
                + (command == "restore" ? ", or restore into a larger filesystem (for `nfldb backup verify`, point backup.scratch_dir or --scratch at one)." : ".")
        } else if stderrTail.contains("[13] Permission denied"), let path = deniedPath {
            "pgBackRest runs as the cluster's OS user (postgres.os_user, default postgres when nfldb runs as root), and that user cannot "
                + "reach \(path): give it access to the path and every directory above it (for a config file: root:postgres 0640, as "
                + "`nfldb backup config --write` makes it; for verify's scratch, a backup.scratch_dir the OS user can enter)."
        } else if code.rawValue == 50, stderrTail.contains("Permission denied") {
            // Not another command holding the lock: pgBackRest may not create its lock file at all.
            "pgBackRest cannot create its lock file (permission denied), so no other command is involved: give the cluster's OS user "
                + "(postgres.os_user) write access to pgBackRest's lock-path (default /tmp/pgbackrest), then run again."
        } else if code.rawValue == 37 || code.rawValue == 75, command.hasPrefix("stanza-") {
            // `nfldb backup init` itself failed: running it again cannot be the fix.
            "pgbackrest.conf has no [\(stanza)] section with pg1-path: check backup.stanza (NFLDB_BACKUP_STANZA) against the config's "
                + "[stanza] sections (a typo?), or add the section (`nfldb backup config --write` writes one for the configured stanza)."
        } else if code.rawValue == 40, let path = notEmptyPath {
            "pgBackRest found files in \(path). If that is the restore target, pass --delta to reuse it or choose an empty directory; "
                + "if it is a tablespace directory, it may be a live cluster's tablespace: restore the tablespaces elsewhere "
                + "(pgbackrest --tablespace-map-all; `nfldb backup restore` does this under --tablespace-dir) and never pass --delta for it."
        } else {
            code.hint
        }
        return Diagnostic(summary, detail: stderrTail.isEmpty ? nil : stderrTail, hint: hint)
    }
}

/// The outcome of one pgBackRest run; a non-zero exit is a result, not a thrown error.
public struct PgBackRestResult: Sendable {
    public let command: String
    public let process: ProcessResult
    public var succeeded: Bool { process.succeeded }
    public var code: PgBackRestErrorCode { PgBackRestErrorCode(process.status) }
}

/// Runs pgBackRest as the cluster's OS user, always with `--config=` and `--stanza=` on the command
/// line (an environment-variable config would leak into the generated `restore_command`).
public struct PgBackRest: Sendable {
    public var configPath: String
    public var stanza: String
    public var osUser: String?
    public var executable: String

    public init(configPath: String, stanza: String, osUser: String?, executable: String = "pgbackrest") {
        self.configPath = configPath
        self.stanza = stanza
        self.osUser = osUser
        self.executable = executable
    }

    /// The session advisory lock a running `nfldb backup run` of `stanza` holds from start to end: a
    /// `running` row of `nfldb.backup_runs` whose lock nobody holds belongs to a run that was killed
    /// (`backup run` marks such rows failed; the `backups` health check is CRITICAL for them).
    public static func backupRunLock(stanza: String) -> AdvisoryLockKey { AdvisoryLockKey("nfldb backup run \(stanza)") }

    /// The advisory lock that keeps retention from expiring backups while a verify restores from the
    /// repo: `backup verify` holds it shared for its whole run; `backup run` (which runs pgBackRest's
    /// backup with `--no-expire-auto`) runs `expire` only when it can take it exclusively, and defers
    /// the retention to its next run otherwise. Advisory locks are per database: both must connect to
    /// the same database of the primary (the configured DSN).
    public static func expireGuardLock(stanza: String) -> AdvisoryLockKey { AdvisoryLockKey("nfldb backup expire guard \(stanza)") }

    /// pgBackRest's own argv (before any `runuser` wrapping): config, stanza, options, command, and
    /// the command's own arguments (`repo-ls <path>`, `repo-get <file>`).
    public func arguments(_ command: String, _ options: [String] = [], positional: [String] = []) -> [String] {
        ["--config=\(configPath)", "--stanza=\(stanza)"] + options + [command] + positional
    }

    /// The full argv executed, including `runuser -u USER --` when nfldb runs as root.
    public func commandLine(_ command: String, _ options: [String] = []) -> [String] {
        ProcessRunner(runAsUser: osUser).commandLine(executable, arguments(command, options))
    }

    /// The environment for pgBackRest: ours without any `PGBACKREST_*` variable, so only the
    /// config file named on the command line applies.
    static var environment: [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PGBACKREST_") }
    }

    /// Runs a command; a non-zero exit is returned in the result.
    /// - Throws: ``ProcessError`` only when pgbackrest cannot be started or times out.
    /// - Parameter niceness: lower CPU priority (`nice -n`) for a background command.
    public func run(_ command: String, _ options: [String] = [], timeout: Duration = .seconds(3600), logger: Logger? = nil,
                    cancellation: ProcessCancellation? = nil, niceness: Int32? = nil, positional: [String] = []) throws -> PgBackRestResult {
        logger?.info("pgbackrest", metadata: ["pgbackrest.command": .string(command), "pgbackrest.stanza": .string(stanza)])
        let result = try ProcessRunner(runAsUser: osUser, niceness: niceness).run(
            executable, arguments(command, options, positional: positional), environment: Self.environment, workingDirectory: "/", timeout: timeout,
            cancellation: cancellation)
        return PgBackRestResult(command: command, process: result)
    }

    /// Runs a command and throws ``PgBackRestError`` when it exits non-zero.
    @discardableResult
    public func runChecked(_ command: String, _ options: [String] = [], timeout: Duration = .seconds(3600), logger: Logger? = nil) throws -> PgBackRestResult {
        let result = try run(command, options, timeout: timeout, logger: logger)
        guard result.succeeded else { throw error(for: result) }
        return result
    }

    public func error(for result: PgBackRestResult) -> PgBackRestError {
        let text = result.process.standardError.isEmpty ? result.process.standardOutput : result.process.standardError
        let tail = text.split(separator: "\n").suffix(8).joined(separator: "\n")
        var error = PgBackRestError(command: result.command, code: result.code, stanza: stanza, stderrTail: tail)
        // A 064 without an errno can be a short write on a full filesystem: look while the
        // failed command's files are still there (call this before cleaning up).
        if error.code == .fileWrite, let path = error.unwritablePath {
            error.filesystemFull = ScratchSpace.fullFilesystem(holding: path)
        }
        if error.code.rawValue == 55, error.errorMessage?.contains("'\(configPath)'") == true {
            error.configMissing = configPath
        }
        return error
    }

    /// `info --output=json`, decoded, with every stanza's `status.code` checked.
    /// - Throws: ``PgBackRestError`` on a non-zero exit; ``BackupError`` when a stanza's status is not ok.
    public func info(requireOK: Bool = true, allowNoBackups: Bool = false, logger: Logger? = nil) throws -> [StanzaInfo] {
        let result = try runChecked("info", ["--output=json", "--log-level-console=warn"], timeout: .seconds(120), logger: logger)
        let stanzas = try StanzaInfo.decode(Data(result.process.standardOutput.utf8))
        if requireOK { try StanzaInfo.requireOK(stanzas, configPath: configPath, allowNoBackups: allowNoBackups) }
        return stanzas
    }
}
