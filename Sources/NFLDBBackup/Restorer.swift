import Foundation
import Logging
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox

/// `nfldb backup restore --to DIR`: a real recovery into a directory. Every check runs before
/// anything is changed; the directory is created (or taken over) only once they all pass, and a
/// failed chown/chmod is an error, not ignored.
public struct Restorer {
    public let pgbackrest: PgBackRest
    public let logger: Logger
    /// The primary, when reachable: the restore holds the expire guard (``ExpireGuard``) on it, so a
    /// `backup run`'s retention cannot remove the set while it is restored. nil during a recovery
    /// with the primary down (a `backup run` cannot run then either); the report says so.
    public let primary: PostgresConnection?
    /// Why there is no `primary` (the connection error), for the note.
    public let primaryUnavailable: String?

    public init(pgbackrest: PgBackRest, logger: Logger, primary: PostgresConnection? = nil, primaryUnavailable: String? = nil) {
        self.pgbackrest = pgbackrest
        self.logger = logger
        self.primary = primary
        self.primaryUnavailable = primaryUnavailable
    }

    public struct Request: Sendable {
        public var target: String
        public var set: String?
        public var targetTime: String?
        public var delta = false
        /// Where every tablespace of the backup is restored (`--tablespace-map-all`): one directory
        /// per tablespace name in it. Default ``defaultTablespaceDirectory(for:)``, beside the target
        /// (pgBackRest refuses [070] a tablespace inside the data directory): restored to their original
        /// paths they would land on (with --delta: overwrite) the tablespaces of the cluster the backup
        /// was taken from.
        public var tablespaceDirectory: String
        public init(target: String, set: String? = nil, targetTime: String? = nil, delta: Bool = false, tablespaceDirectory: String? = nil) {
            self.target = Self.absolute(target)
            self.set = set
            self.targetTime = targetTime
            self.delta = delta
            self.tablespaceDirectory = tablespaceDirectory.map(Self.absolute) ?? Self.defaultTablespaceDirectory(for: self.target)
        }

        /// `path` made absolute (against the working directory) with `.` and `..` folded, without
        /// following symbolic links. pgBackRest needs an absolute pg1-path (a relative one was changed,
        /// then refused by pgBackRest, and one that did not exist yet made the parent search below spin
        /// forever on ""), and `standardizingPath` resolves links, so a link given as --to was followed
        /// instead of refused (attack probes).
        public static func absolute(_ path: String) -> String {
            let expanded = (path as NSString).expandingTildeInPath
            let rooted = expanded.hasPrefix("/") ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
            var parts: [Substring] = []
            for part in rooted.split(separator: "/", omittingEmptySubsequences: true) {
                switch part {
                case ".": continue
                case "..": if !parts.isEmpty { parts.removeLast() }
                default: parts.append(part)
                }
            }
            return "/" + parts.joined(separator: "/")
        }

        /// `<target>_tablespaces`, beside the target.
        public static func defaultTablespaceDirectory(for target: String) -> String {
            target + "_tablespaces"
        }
    }

    public struct Report: Sendable {
        public let target: String
        public let backup: String?
        /// `pg_tblspc/<oid>` → where that tablespace was restored (under the request's tablespace directory).
        public var tablespaces: [(oid: String, path: String)] = []
        /// About the expire guard (not taken, waited for an expire).
        public var notes: [String] = []
        /// What was restored where, printed by the command.
        public var lines: [String] {
            notes.map { "note: \($0)" } + tablespaces.map { "tablespace \($0.oid) restored into \($0.path) (not its original path: the primary's tablespace is untouched)" }
                + [nextStep]
        }
        /// What to do next, printed by the command.
        public var nextStep: String {
            "restored into \(target); start it with: pg_ctl -D \(target) start (check port and archive settings in postgresql.auto.conf first)"
        }
    }

    /// Checks, then creates/claims the directory, then runs `pgbackrest restore`.
    /// - Throws: ``BackupError`` (exit 2) for a refused target or request; ``PgBackRestError`` when pgBackRest fails.
    @discardableResult
    public func restore(_ request: Request) throws -> Report {
        var notes: [String] = []
        if let primary, let other = otherCluster(primary) {
            // A guard on another server protects nothing (an attack probe's restore took it on a second
            // sandbox while the stanza's own backup run expired the set).
            notes.append("the expire guard was not taken: the primary this restore connected to \(other); "
                         + "point the DSN at the stanza's primary, or do not run backups until this restore is done")
        } else if let primary {
            let expireGuard = ExpireGuard(pgbackrest: pgbackrest, connection: primary, logger: logger)
            let (taken, note) = expireGuard.take(waitingTo: "restoring")
            if let note { notes.append(note) }
            if taken {
                defer { expireGuard.release() }
                let lost = "the expire guard was lost while this restore ran (its session on the primary ended: idle_session_timeout, a restart, "
                    + "a dropped link?), so a backup run's retention expire could have removed files of the set meanwhile"
                do {
                    var report = try performRestore(request, notes: notes)
                    if !expireGuard.held() { report.notes.append(lost + "; pgBackRest checked every file it restored, and the restore succeeded") }
                    return report
                } catch let error as any NFLDBError where !expireGuard.held() && error.exitStatus != .usage {
                    throw BackupError(error.diagnostic.summary, detail: [error.diagnostic.detail, lost].compactMap { $0 }.joined(separator: "; "),
                                      hint: error.diagnostic.hint, exitStatus: error.exitStatus)
                }
            }
            notes.append("the expire guard could not be taken (a backup run's retention expire held it past \(Int(ExpireGuard.wait.inSeconds)) s, "
                         + "or the primary refused): a retention expire during this restore could remove the backup it restores")
        } else {
            notes.append("no connection to the primary\(primaryUnavailable.map { " (\($0))" } ?? ""): the expire guard was not taken; "
                         + "a backup run, which needs the primary, cannot expire this backup while the primary is down, but if the primary is "
                         + "up (a wrong DSN or password here), do not run backups until this restore is done")
        }
        return try performRestore(request, notes: notes)
    }

    /// How the connected server differs from the stanza's cluster (system identifier), or nil when
    /// it is the same or either cannot be read (`pg_control_system()` may be refused to this role).
    func otherCluster(_ primary: PostgresConnection) -> String? {
        guard let connected = try? primary.query("SELECT system_identifier::text FROM pg_control_system()").scalar(String.self),
              let stanza = try? pgbackrest.info(allowNoBackups: true, logger: logger).first(where: { $0.name == pgbackrest.stanza }),
              let expected = stanza.db.last?.systemID, connected != String(expected) else { return nil }
        return "is another cluster (system identifier \(connected)) than stanza \(pgbackrest.stanza)'s (\(expected))"
    }

    /// After a failed restore of `label` (verify's or `backup restore`'s): when the set is no longer
    /// in backup.info, both ways that happens, as one sentence; nil while it is listed (or `info`
    /// fails). Not called benign: pgBackRest also drops a set whose files vanished ("missing
    /// manifest removed from backup.info", on the next backup or expire), and that is damage.
    static func vanishedSet(_ label: String, pgbackrest: PgBackRest, logger: Logger, during run: String) -> String? {
        guard let stanza = try? pgbackrest.info(allowNoBackups: true, logger: logger).first(where: { $0.name == pgbackrest.stanza }),
              stanza.backup(label: label) == nil else { return nil }
        return "the backup \(label) is no longer listed in the repo: either it was expired while \(run) restored it "
            + "(an expire outside nfldb's guard: by hand, by another scheduler or from another host), or pgBackRest removed it "
            + "from backup.info because its files vanished from the repo (its log then says 'missing manifest removed from backup.info'), "
            + "which is repo damage"
    }

    func performRestore(_ request: Request, notes: [String]) throws -> Report {
        try checkTargetTime(request)
        let backup = try checkRepo(request)
        try checkTarget(request)
        let createdTarget = !FileManager.default.fileExists(atPath: request.target)
        try prepareDirectory(request.target)
        let createdTablespaceDirectory = !FileManager.default.fileExists(atPath: request.tablespaceDirectory)
        try prepareDirectory(request.tablespaceDirectory)
        var succeeded = false
        defer {
            // A failed restore leaves nothing this run created (a directory that existed stays, with
            // whatever pgBackRest wrote); no tablespace in the backup: no empty directory either.
            if createdTarget && !succeeded { ActiveScratch.removeTree(request.target) }
            if createdTablespaceDirectory,
               !succeeded || (try? FileManager.default.contentsOfDirectory(atPath: request.tablespaceDirectory))?.isEmpty == true {
                ActiveScratch.removeTree(request.tablespaceDirectory)
            }
        }
        var options = ["--pg1-path=\(request.target)", "--log-level-console=warn", "--tablespace-map-all=\(request.tablespaceDirectory)"]
        if request.delta { options.append("--delta") }
        if let set = request.set { options.append("--set=\(set)") }
        if let targetTime = request.targetTime { options += ["--type=time", "--target=\(targetTime)", "--target-action=promote"] }
        do {
            try pgbackrest.runChecked("restore", options, logger: logger)
        } catch let error as PgBackRestError {
            // The set gone from backup.info: expired while it was restored (outside the guard), or
            // dropped by pgBackRest because its files vanished (damage). Both named, as verify does.
            if let label = request.set ?? backup, let causes = Self.vanishedSet(label, pgbackrest: pgbackrest, logger: logger, during: "this restore") {
                throw BackupError(causes, detail: "pgBackRest said: \(error.diagnostic.oneLine)",
                                  hint: "Check the pgBackRest log for that line; restore another backup (`nfldb backup info` lists them) into an empty directory.")
            }
            throw error
        }
        succeeded = true
        var report = Report(target: request.target, backup: request.set ?? backup)
        report.notes = notes
        let links = (request.target as NSString).appendingPathComponent("pg_tblspc")
        for oid in ((try? FileManager.default.contentsOfDirectory(atPath: links)) ?? []).sorted() {
            if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: (links as NSString).appendingPathComponent(oid)) {
                report.tablespaces.append((oid, path))
            }
        }
        return report
    }

    /// The stanza is usable and holds the backup asked for: `--set` exists; with `--target-time`,
    /// some backup finished before it (else recovery to that time is impossible).
    /// - Returns: the label pgBackRest will use, when known.
    func checkRepo(_ request: Request) throws -> String? {
        let stanza = try pgbackrest.info(logger: logger).first { $0.name == pgbackrest.stanza }
        guard let stanza, let newest = stanza.backup.last else {
            throw BackupError("stanza \(pgbackrest.stanza) has no backup to restore", hint: "Take one with `nfldb backup run --type full`.")
        }
        if let set = request.set {
            guard stanza.backup(label: set) != nil else {
                throw BackupError("no backup labelled \(set) in stanza \(pgbackrest.stanza)",
                                  detail: "backups: " + stanza.backup.map(\.label).joined(separator: ", "),
                                  hint: "Pick a label from `nfldb backup info`.", exitStatus: .usage)
            }
            return set
        }
        guard let targetTime = request.targetTime else { return newest.label }
        guard let epoch = Self.epoch(targetTime) else { return nil }  // pgBackRest judges forms we do not parse
        if epoch > Date().timeIntervalSince1970 {
            throw BackupError(
                "--target-time \(targetTime) is in the future: recovery can never reach it",
                hint: "Give a past time (`nfldb backup info` lists the backups and the archive's range), or restore without --target-time.", exitStatus: .usage)
        }
        guard let first = stanza.backup.first, epoch >= Double(first.timestamp.stop) else {
            let oldest = stanza.backup.first.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval($0.timestamp.stop))) } ?? "?"
            throw BackupError(
                "--target-time \(targetTime) is before the first backup of stanza \(pgbackrest.stanza) finished (\(oldest)): nothing can be recovered to that time",
                hint: "Choose a time after \(oldest) (`nfldb backup info` lists the backups), or restore without --target-time.", exitStatus: .usage)
        }
        return stanza.backup.last { Double($0.timestamp.stop) <= epoch }?.label
    }

    /// `--target-time` in the form pgBackRest 2.45 parses (`YYYY-MM-DD HH:MM:SS[.fff][+/-TZ[:MM]]`),
    /// checked before anything is created: pgBackRest only warns about another form and restores the
    /// latest backup, and PostgreSQL then fails (or recovers to somewhere else) after the directory exists.
    func checkTargetTime(_ request: Request) throws {
        if let time = request.targetTime { try Self.validateTargetTime(time) }
    }

    /// Throws a usage error unless `text` is `YYYY-MM-DD HH:MM:SS[.fff][+/-TZ[:MM]]` with a real date (pgBackRest 2.45 picks the backup set only for this form; for another it warns and takes the latest, which may end after the target).
    public static func validateTargetTime(_ text: String) throws {
        let pattern = #"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([+-][0-9]{2}(:?[0-9]{2})?)?$"#
        let ok = text.range(of: pattern, options: .regularExpression) != nil && {
            let parts = text.prefix(19).split(whereSeparator: { "- :".contains($0) }).compactMap { Int($0) }
            guard parts.count == 6 else { return false }
            var components = DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4], second: parts[5])
            components.calendar = Calendar(identifier: .gregorian)
            components.timeZone = TimeZone(identifier: "UTC")
            return (1...12).contains(parts[1]) && parts[3] < 24 && parts[4] < 60 && parts[5] < 60 && components.isValidDate
        }()
        guard ok else {
            throw BackupError("--target-time '\(text)' is not a time pgBackRest can recover to",
                              hint: "Give it as YYYY-MM-DD HH:MM:SS with an optional fraction and zone, e.g. '2026-12-05 13:00:00+00' "
                                  + "(without a zone, the server's TimeZone applies).", exitStatus: .usage)
        }
    }

    /// `YYYY-MM-DD HH:MM:SS[.fff][+TZ]` as seconds since the epoch; nil for other forms.
    static func epoch(_ text: String) -> Double? {
        var normalized = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ", with: "T")
        if let plus = normalized.lastIndex(where: { $0 == "+" || $0 == "-" }), plus > normalized.index(normalized.startIndex, offsetBy: 10) {
            let zone = normalized[normalized.index(after: plus)...]
            if zone.count == 2 { normalized += ":00" }
        } else if !normalized.hasSuffix("Z") {
            return nil  // no zone: the server's TimeZone decides; leave it to pgBackRest
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: normalized) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: normalized)?.timeIntervalSince1970
    }

    /// Everything about the directory that would make the restore fail or harm something, checked
    /// while nothing is changed yet.
    func checkTarget(_ request: Request) throws {
        let path = request.target
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw BackupError("refusing to restore into \(path): it is not a directory" + ((info.st_mode & S_IFMT) == S_IFLNK ? " (a symlink)" : ""),
                                  hint: "Give --to a real directory (or a path that does not exist yet).", exitStatus: .usage)
            }
        }
        // pgBackRest writes the path unescaped into restore_command in postgresql.auto.conf.
        try Verifier.checkScratchChars(path, role: "--to")
        try Verifier.checkScratchChars(request.tablespaceDirectory, role: "--tablespace-dir")
        // A live cluster first: a directory holding one is also "not empty", and that refusal's
        // hint (--delta) would only lead to this one.
        let live = LiveClusterPaths.scan()
        try live.refuse(path, as: "--to", hint: "Restore into a directory outside every running cluster's data directory and tablespaces.")
        try live.refuse(request.tablespaceDirectory, as: "the tablespace directory",
                        hint: "Pass --tablespace-dir with a directory outside every running cluster's data directory and tablespaces "
                            + "(default: \(Request.defaultTablespaceDirectory(for: path))).")
        // Not inside the repository: the next `backup run`'s expire (or a stanza delete) would remove
        // a restored cluster kept in a backup set's directory (an attack probe restored into one).
        if let repo = pgbackrest.posixRepoPath(),
           LiveClusterPaths.overlap(LiveClusterPaths.resolve(Request.absolute(repo)), LiveClusterPaths.resolve(path)) {
            throw BackupError("refusing to restore into \(path): it is inside (or holds) the pgBackRest repository \(repo)",
                              hint: "pgBackRest removes what it finds there (expire, stanza-delete): restore outside repo1-path.", exitStatus: .usage)
        }
        try RestoreTarget.check(path, delta: request.delta)
        let tablespaceDirectory = request.tablespaceDirectory
        if LiveClusterPaths.overlap(LiveClusterPaths.resolve(tablespaceDirectory), LiveClusterPaths.resolve(path)) {
            throw BackupError("refusing --tablespace-dir \(tablespaceDirectory): it overlaps the target data directory \(path), "
                              + "and pgBackRest refuses a tablespace inside the data directory [070]",
                              hint: "Choose a directory beside --to (default \(Request.defaultTablespaceDirectory(for: path))).", exitStatus: .usage)
        }
        let tablespaceEntries = (try? FileManager.default.contentsOfDirectory(atPath: tablespaceDirectory)) ?? []
        if !tablespaceEntries.isEmpty && !request.delta {
            throw BackupError("refusing to restore the tablespaces into \(tablespaceDirectory): the directory is not empty (\(tablespaceEntries.count) entries)",
                              hint: "Choose an empty --tablespace-dir, or pass --delta to reuse an earlier restore's tablespaces.", exitStatus: .usage)
        }
        if !LocalCluster.isReachable(tablespaceDirectory, byUser: pgbackrest.osUser) {
            throw BackupError("\(tablespaceDirectory) (--tablespace-dir) cannot be reached by the OS user \(pgbackrest.osUser ?? "?")",
                              hint: "Choose a directory that user can enter.", exitStatus: .usage)
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if request.delta && !entries.isEmpty && !entries.contains("PG_VERSION") && !entries.contains("backup.manifest") {
            throw BackupError(
                "refusing to restore into \(path) with --delta: it is not empty and holds no PG_VERSION or backup.manifest, so it is not a "
                    + "PostgreSQL data directory (pgBackRest would refuse it too)",
                hint: "Choose an empty directory, or the data directory of an earlier restore.", exitStatus: .usage)
        }
        var existing = path
        while !FileManager.default.fileExists(atPath: existing) && existing != "/" && !existing.isEmpty { existing = (existing as NSString).deletingLastPathComponent }
        if existing != path && !FileManager.default.isWritableFile(atPath: existing) {
            throw BackupError("cannot create \(path): \(existing) is not writable by this user", hint: "Create the directory first, or choose another path.",
                              exitStatus: .usage)
        }
        if !LocalCluster.isReachable(path, byUser: pgbackrest.osUser) {
            throw BackupError(
                "\(path) cannot be reached by the OS user \(pgbackrest.osUser ?? "?") that runs pgBackRest and PostgreSQL (a parent directory is not searchable)",
                hint: "Restore under a directory that user can enter (e.g. /var/lib/postgresql), or open the parent's permissions.", exitStatus: .usage)
        }
    }

    /// Creates the directory if needed, gives it to the OS user (when root) and sets mode 0700.
    func prepareDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw BackupError("cannot create \(path): \(error.localizedDescription)", hint: "Check the permissions of its parent directory.")
        }
        try LocalCluster.give(path, to: pgbackrest.osUser)
        guard chmod(path, 0o700) == 0 else {
            throw BackupError("cannot chmod 0700 \(path): \(String(cString: strerror(errno)))",
                              hint: "PostgreSQL refuses a data directory open to others; fix its ownership and mode, then run again.")
        }
    }
}
