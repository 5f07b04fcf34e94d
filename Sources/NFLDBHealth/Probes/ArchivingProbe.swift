import Foundation
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres

/// WAL archiving: is `archive_command` failing now, how many segments wait (`.ready` files counted
/// with `pg_ls_archive_statusdir()`, which sees the real `archive_status/` directory), and when did
/// archiving last succeed.
///
/// `failed_count` is cumulative since the statistics reset, so it is reported, not alerted on:
/// the check alerts on "the last attempt failed" and on the backlog.
///
/// With a pgBackRest config (`backup.config`, passed in as the option `pgbackrest_config`, and
/// `backup.stanza`), the repo's newest segment (`pgbackrest info`) must reach
/// `last_archived_wal`: segments missing at the end of the archive are CRITICAL, named.
public struct ArchivingProbe: Probe {
    public init() {}
    public let name = "archiving"
    public let summary = "archive_command failing, WAL segments waiting (.ready files), age of the last archived segment"
    public let unit = HealthUnit.count
    public let defaultThresholds = Thresholds(warning: 10, critical: 100)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let row = try context.row("""
            SELECT current_setting('archive_mode') AS archive_mode,
                   archived_count, failed_count, last_archived_wal, last_failed_wal,
                   extract(epoch FROM now() - last_archived_time)::float8 AS since_archived_s,
                   extract(epoch FROM now() - last_failed_time)::float8 AS since_failed_s,
                   (last_failed_time IS NOT NULL
                    AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)) AS failing,
                   (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS ready,
                   (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
                   stats_reset
            FROM pg_stat_archiver
            """, "pg_stat_archiver")
        let mode = row["archive_mode"] ?? "off"
        if mode == "off" {
            return ProbeOutcome(status: .ok, message: "archiving is off (archive_mode = off)")
        }
        if context.server.role == .standby && mode != "always" {
            return ProbeOutcome(status: .ok, message: "standby with archive_mode = \(mode) does not archive (only 'always' does)")
        }
        let ready: Int = try row.decode("ready")
        let failing = try row.decode("failing", as: Bool.self)
        let failedCount: Int = try row.decode("failed_count")
        let archivedCount: Int = try row.decode("archived_count")
        let sinceArchived = try row.decode("since_archived_s", as: Double?.self)
        let sinceFailed = try row.decode("since_failed_s", as: Double?.self)
        let maxAge = context.settings.seconds(.healthArchiveMaxAge)
        var status = context.thresholds.status(for: Double(ready))
        var parts: [String] = []
        var hint: String?
        if failing {
            status = .critical
            let since = sinceArchived.map { "since the last success \(HealthFormat.duration($0)) ago" } ?? "and has never succeeded since the statistics reset"
            parts.append("archive_command is failing \(since): last failure \(HealthFormat.duration(sinceFailed ?? 0)) ago "
                + "on \(row["last_failed_wal"] ?? "?") (\(failedCount) failures in total)")
            hint = "Read the server log for the archive_command error and fix it (destination full or unreachable, credentials); "
                + "WAL piles up in pg_wal until it succeeds, and point-in-time recovery has a gap."
        }
        parts.append("\(ready) WAL segment\(ready == 1 ? "" : "s") waiting (.ready)")
        if let sinceArchived {
            parts.append("last archived \(row["last_archived_wal"] ?? "?") \(HealthFormat.duration(sinceArchived)) ago")
        } else {
            parts.append("nothing archived since the statistics reset")
        }
        if ready > 0 && !failing && (sinceArchived ?? .infinity) > maxAge {
            status = status.worse(.warning)
            parts.append("WAL is waiting but nothing was archived for over \(HealthFormat.duration(maxAge))")
            hint = hint ?? "The archiver is not keeping up or is stuck; check the server log and the archive destination."
        }
        if let config = context.settings.options["pgbackrest_config"], let last = row["last_archived_wal"], WALName.segment(last) != nil {
            // pg_stat_archiver was read first: a segment archived since only raises the repo's max.
            let stanza = context.settings.options["stanza"] ?? "nfldb"
            let pg = PgBackRest(configPath: config, stanza: stanza, osUser: context.settings.options["os_user"])
            do {
                let repoMax = try pg.info(allowNoBackups: true).first { $0.name == stanza }?.archiveMax
                let size = (try? row.decode("segment_size", as: Int64.self)) ?? 16 * 1024 * 1024
                if let missing = WALName.missingTail(repoMax: repoMax, primaryLast: last, segmentSize: size) {
                    status = .critical
                    parts.insert("the pgBackRest repo (stanza \(stanza)) ends at \(repoMax ?? "no segment") but the server archived up to \(last): "
                        + "missing from the repo: \(missing)", at: 0)
                    hint = "Point-in-time recovery past \(repoMax ?? "the last backup") is broken: find out what removed those segments from the repo, "
                        + "then take a new backup (`nfldb backup run --type full`)."
                } else {
                    parts.append("repo (stanza \(stanza)) holds up to \(repoMax ?? "?")")
                }
            } catch {
                status = status.worse(.warning)
                parts.append("cannot read the pgBackRest repo: " + ((error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)"))
                hint = hint ?? "Check backup.config / backup.stanza and that pgbackrest runs here."
            }
        }
        if status != .ok && hint == nil {
            hint = "Archiving lags behind WAL generation: check the archive destination's throughput."
        }
        let details = [Detail([
            ("archive_mode", .string(mode)), ("ready_files", .int(Int64(ready))), ("failing", .bool(failing)),
            ("archived_count", .int(Int64(archivedCount))), ("failed_count", .int(Int64(failedCount))),
            ("last_archived_wal", .text(row["last_archived_wal"])), ("seconds_since_archived", .number(sinceArchived)),
            ("last_failed_wal", .text(row["last_failed_wal"])), ("seconds_since_failed", .number(sinceFailed)),
            ("stats_reset", .text(row["stats_reset"])),
        ])]
        let metrics = [
            HealthMetric("archiver_ready_files", help: "WAL segments waiting to be archived.", value: Double(ready)),
            HealthMetric("archiver_failing", help: "1 when the last archive_command attempt failed.", value: failing ? 1 : 0),
            HealthMetric("archiver_failed_count", help: "archive_command failures since the statistics reset.", value: Double(failedCount)),
        ]
        return ProbeOutcome(status: status, value: Double(ready), message: parts.joined(separator: "; "), hint: hint, details: details, metrics: metrics)
    }
}
