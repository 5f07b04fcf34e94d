import Foundation

/// One proof in a verification, with pass/fail and the evidence behind it.
public struct VerificationCheck: Codable, Sendable, Equatable {
    public var name: String
    public var passed: Bool
    public var evidence: String
    public init(_ name: String, _ passed: Bool, _ evidence: String) {
        self.name = name
        self.passed = passed
        self.evidence = evidence
    }
}

/// The repository verification decision of one verify run.
public struct RepoVerification: Codable, Sendable, Equatable {
    /// The full `pgbackrest verify` (every backup file and WAL segment read and checksummed) ran.
    public var ran: Bool
    /// Why it ran or not (due, forced with --full, interval 0, last one failed, …).
    public var reason: String
    /// When the newest full repository verification that passed for this stanza finished
    /// (this run's own when it ran and passed).
    public var lastPassedAt: Date?
    public var intervalSeconds: Double
}

/// What `pg_amcheck` skipped in a `--reuse-scratch` run (relation groups of the verified database
/// unchanged since a clean check, see docs/backups.md "Speed work" (d)).
public struct AmcheckSkip: Codable, Sendable, Equatable {
    /// Relation groups (a table, materialized view or sequence with its TOAST and indexes) in the database.
    public var groups: Int
    public var skipped: Int
    /// Groups recorded as clean for the next run.
    public var recorded: Int
    /// The groups checked (at most 100 names).
    public var checked: [String]
    /// Why nothing, or not everything unchanged, was skipped.
    public var reason: String?
}

/// The JSON receipt of `nfldb backup verify`, stored in `nfldb.backup_verifications.receipt` and a file.
public struct VerificationReceipt: Codable, Sendable {
    public var status: String = "failed"
    public var stanza: String
    public var label: String?
    public var backupType: String?
    public var targetTime: String?
    public var pgbackrestVersion: String?
    public var postgresVersion: String?
    public var startedAt: Date
    public var finishedAt: Date?
    /// Restore start → the copy answers `pg_is_in_recovery() = false`.
    public var recoverySeconds: Double?
    /// Oldest backup stop → newest archived WAL, as pgBackRest reports them.
    public var pitrWindow: [String: String]?
    public var scratchDirectory: String?
    public var scratchPort: Int?
    /// Step name → seconds.
    public var steps: [String: Double] = [:]
    /// CPU seconds (user + system) by who spent them: each child program with its waited-for
    /// descendants (`restore`, `pgbackrest-verify`, `pg_amcheck`, `pg_checksums`, `start`), `server`
    /// (the copy's postmaster and its exited backends, read from `/proc` before the stop) and
    /// `nfldb` (this process: parsing, counts, the receipt). Where the time of `steps` goes.
    public var cpu: [String: Double]? = nil
    /// Whether this run ran the full `pgbackrest verify`, and why (``VerifyOptions/repoVerifyInterval``).
    public var repoVerify: RepoVerification? = nil
    /// How page checksums were proven (`backup` or `pg_checksums`), see ``PageChecksumMode``.
    public var pageChecksums: String? = nil
    /// With `--reuse-scratch`: what `pg_amcheck` skipped and why (nil: every relation was checked).
    public var amcheckSkip: AmcheckSkip? = nil
    public var checks: [VerificationCheck] = []
    /// What verify did besides the checks (a background repo verify stopped early, leftovers of an
    /// earlier run found and removed).
    public var notes: [String] = []

    public var passed: Bool { !checks.isEmpty && checks.allSatisfy(\.passed) }
    public var failedChecks: [VerificationCheck] { checks.filter { !$0.passed } }

    public func encoded(pretty: Bool = true) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Human-readable lines: one per check.
    public func renderText() -> String {
        var lines = ["backup verify \(passed ? "PASSED" : "FAILED"): stanza \(stanza), backup \(label ?? "?") (\(backupType ?? "?"))"
            + (targetTime.map { ", target time \($0)" } ?? "")]
        for check in checks {
            lines.append("  [\(check.passed ? "ok" : "FAIL")] \(check.name): \(check.evidence)")
        }
        for note in notes { lines.append("  note: \(note)") }
        if let recoverySeconds { lines.append(String(format: "  recovery time (restore start → promoted): %.1f s", recoverySeconds)) }
        return lines.joined(separator: "\n")
    }
}
