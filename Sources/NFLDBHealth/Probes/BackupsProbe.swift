import Foundation
import NFLDBPgBackRest
import NFLDBPostgres

/// The backups of one stanza (`backup.stanza`, passed in as the option `stanza`), from the records
/// `nfldb backup` keeps in this database: `nfldb.backup_runs` and `nfldb.backup_verifications`.
///
/// The LATEST outcome counts: a latest backup run or verification that failed is CRITICAL, naming
/// its error or failed checks, until a later one succeeds; an older success does not hide it.
/// Otherwise the value is the age of the last successful backup (thresholds), and a last
/// successful verification older than `verify_warning` (8 days) is a WARNING. Status values `ok`,
/// `success`, `succeeded` or `completed` count as successful.
public struct BackupsProbe: Probe {
    public init() {}
    public let name = "backups"
    public let summary = "latest backup run and verification of backup.stanza (a failed latest one is CRITICAL); age of the last successful backup, in seconds"
    public let unit = HealthUnit.seconds
    public let defaultThresholds = Thresholds(warning: 93_600, critical: 172_800)
    public let roles: Set<ServerRole> = [.primary]

    static let successful = ["ok", "success", "succeeded", "completed"]

    /// The newest finished record and the age of the newest successful one.
    struct Latest {
        var succeeded: Bool
        var ageSeconds: Double
        var label: String?
        var what: String?
        var lastSuccessAge: Double?
    }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let tables = try context.row("""
            SELECT to_regclass('nfldb.backup_runs') IS NOT NULL AS runs, to_regclass('nfldb.backup_verifications') IS NOT NULL AS verifications
            """, "backup tables")
        guard try tables.decode("runs", as: Bool.self) else {
            return .unknown(
                "no backup records: table nfldb.backup_runs does not exist in \(context.server.database), so the age of the last backup is unknown",
                hint: "`nfldb backup run` records backups in nfldb.backup_runs; until backups are taken with it, disable this check with "
                    + "health.checks.backups.enabled: false and monitor backups where they are taken.")
        }
        let stanza = context.settings.options["stanza"] ?? "nfldb"
        var details: [Detail] = []
        guard let run = try latest(context, table: "backup_runs", stanza: stanza), let lastBackup = run.lastSuccessAge else {
            return ProbeOutcome(status: .critical, message: "stanza \(stanza): no successful backup recorded in nfldb.backup_runs",
                                hint: "Run `nfldb backup run` now and check why none succeeded (the backup job's log); check backup.stanza.")
        }
        var status = context.thresholds.status(for: lastBackup)
        var parts = ["stanza \(stanza): last successful backup finished \(HealthFormat.duration(lastBackup)) ago"]
        var hints: [String] = []
        details.append(Detail([("kind", .string("backup")), ("stanza", .string(stanza)), ("seconds_since_success", .number(lastBackup)),
                               ("latest_succeeded", .bool(run.succeeded)), ("latest_error", .text(run.what))]))
        if !run.succeeded {
            status = .critical
            parts.append("the latest backup run (\(HealthFormat.duration(run.ageSeconds)) ago) FAILED: \(run.what ?? "no error recorded")")
            hints.append("Fix the cause in nfldb.backup_runs.error and run `nfldb backup run` again.")
        }
        // A row still `running` whose run lock (PgBackRest.backupRunLock) nobody holds: its nfldb backup run was
        // killed (kill -9, OOM, reboot). pg_locks is readable by pg_monitor. (A hand-made backup_runs without
        // started_at — an older or foreign table — skips this part.)
        let running = (try? context.rows("""
            SELECT id, extract(epoch FROM now() - started_at)::float8 AS age_s FROM nfldb.backup_runs
            WHERE stanza = \(stanza) AND status = 'running' ORDER BY id
            """)) ?? []
        let orphaned = try running.isEmpty || context.connection.advisoryLockHolder(PgBackRest.backupRunLock(stanza: stanza)) != nil ? [] : running
        if let first = orphaned.first {
            status = .critical
            let age = (try? first.decode("age_s", as: Double.self)) ?? 0
            parts.append("backup run \(first["id"] ?? "?") (started \(HealthFormat.duration(age)) ago) is recorded as running but no nfldb backup run holds "
                + "its lock: it was killed before it recorded an outcome, and a backup pgBackRest finished for it has no manifest")
            hints.append("Run `nfldb backup run` (it marks that row failed and takes a backup with a manifest), then `nfldb backup verify`.")
        }
        if try tables.decode("verifications", as: Bool.self) {
            let verify = try latest(context, table: "backup_verifications", stanza: stanza)
            let limit = context.settings.seconds(.healthVerifyWarning)
            details.append(Detail([("kind", .string("verification")), ("stanza", .string(stanza)),
                                   ("seconds_since_success", .number(verify?.lastSuccessAge)),
                                   ("latest_succeeded", .bool(verify?.succeeded ?? false)), ("latest_failed_checks", .text(verify?.what))]))
            if let verify, !verify.succeeded {
                status = .critical
                parts.append("the latest verification (backup \(verify.label ?? "?"), \(HealthFormat.duration(verify.ageSeconds)) ago) FAILED: "
                    + "failed check(s) \(verify.what ?? "?")"
                    + (verify.lastSuccessAge.map { "; last successful verification \(HealthFormat.duration($0)) ago" } ?? "; no successful verification"))
                hints.append("Read that verification's receipt (nfldb.backup_verifications.receipt), fix the cause, and run `nfldb backup verify` again; "
                    + "this stays CRITICAL until a later verification passes.")
            } else if let verified = verify?.lastSuccessAge {
                parts.append("last successful verification \(HealthFormat.duration(verified)) ago")
                if verified >= limit {
                    status = status.worse(.warning)
                    hints.append("No verification for over \(HealthFormat.duration(limit)): check the nightly `nfldb backup verify` job.")
                }
            } else {
                parts.append("no verification recorded")
                status = status.worse(.warning)
                hints.append("Run `nfldb backup verify` (nightly, see pgbackrest/nfldb.cron).")
            }
            // The full repository verification (`pgbackrest verify` of every repo file) runs only
            // every backup.verify.repo_verify_interval: say when it last passed.
            // Only once verify records that decision (`repoVerify` in its receipt): before, every run verified the repo.
            let recordsDecision = try verify != nil && context.row("""
                SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'nfldb.backup_verifications'::regclass AND attname = 'receipt'
                               AND NOT attisdropped) AS has_receipt
                """, "backup_verifications columns").decode("has_receipt", as: Bool.self)
                && context.row("""
                    SELECT EXISTS (SELECT FROM nfldb.backup_verifications WHERE stanza = \(stanza) AND receipt ? 'repoVerify') AS recorded
                    """, "repository verification records").decode("recorded", as: Bool.self)
            if recordsDecision {
                let repoAge = try context.rows("""
                    SELECT extract(epoch FROM now() - max(finished_at))::float8 AS age_s FROM nfldb.backup_verifications
                    WHERE stanza = \(stanza) AND coalesce(receipt->'repoVerify'->>'ran', 'true') = 'true'
                      AND receipt->'checks' @> '[{"name": "pgbackrest-verify", "passed": true}]'
                      AND NOT (coalesce(failed_checks, '{}') && ARRAY['wal-continuity']::text[])
                    """).first.flatMap { try $0.decode("age_s", as: Double?.self) }
                let repoLimit = context.settings.seconds(.healthRepoVerifyWarning)
                details.append(Detail([("kind", .string("repository_verification")), ("stanza", .string(stanza)),
                                       ("seconds_since_success", .number(repoAge))]))
                if let repoAge {
                    parts.append("last full repository verification \(HealthFormat.duration(repoAge)) ago")
                    if repoAge >= repoLimit {
                        status = status.worse(.warning)
                        hints.append("No full repository verification for over \(HealthFormat.duration(repoLimit)): run `nfldb backup verify --full` "
                            + "and check backup.verify.repo_verify_interval.")
                    }
                } else {
                    parts.append("no full repository verification passed")
                    status = status.worse(.warning)
                    hints.append("Run `nfldb backup verify --full` (it reads and checksums every repo file).")
                }
            }
        } else {
            parts.append("no verification records (nfldb.backup_verifications does not exist)")
        }
        if status != .ok && hints.isEmpty { hints.append("Check the backup job (cron, its log) and run a backup and a restore verification now.") }
        return ProbeOutcome(status: status, value: (lastBackup * 10).rounded() / 10, message: parts.joined(separator: "; "),
                            hint: hints.isEmpty ? nil : hints.joined(separator: " "), details: details)
    }

    /// The newest finished row of `table` (`backup_runs` or `backup_verifications`) for `stanza`:
    /// its outcome, age, label and error (runs) or failed checks (verifications), and the age of the
    /// newest successful row.
    func latest(_ context: ProbeContext, table: String, stanza: String) throws -> Latest? {
        let query: PostgresQuery = table == "backup_runs"
            ? """
                SELECT lower(status) = ANY(\(Self.successful)) AS succeeded, extract(epoch FROM now() - finished_at)::float8 AS age_s,
                       coalesce(label, backup_type) AS label, error AS what,
                       (SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM nfldb.backup_runs
                         WHERE stanza = \(stanza) AND lower(status) = ANY(\(Self.successful))) AS last_success_s
                FROM nfldb.backup_runs WHERE stanza = \(stanza) AND finished_at IS NOT NULL
                ORDER BY finished_at DESC, id DESC LIMIT 1
                """
            : """
                SELECT lower(status) = ANY(\(Self.successful)) AS succeeded, extract(epoch FROM now() - finished_at)::float8 AS age_s,
                       label, array_to_string(failed_checks, ', ') AS what,
                       (SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM nfldb.backup_verifications
                         WHERE stanza = \(stanza) AND lower(status) = ANY(\(Self.successful))) AS last_success_s
                FROM nfldb.backup_verifications WHERE stanza = \(stanza) AND finished_at IS NOT NULL
                ORDER BY finished_at DESC, id DESC LIMIT 1
                """
        guard let row = try context.rows(query).first else { return nil }
        return Latest(succeeded: try row.decode("succeeded", as: Bool.self), ageSeconds: try row.decode("age_s", as: Double.self),
                      label: row["label"], what: row["what"].map { String($0.split(separator: "\n").first ?? "") },
                      lastSuccessAge: try row.decode("last_success_s", as: Double?.self))
    }
}
