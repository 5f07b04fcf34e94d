import Foundation
import NFLDBCore
import NFLDBPostgres

/// Streaming replication, judged from whichever side this server is on (`pg_is_in_recovery()`).
///
/// **Primary:** each standby in `pg_stat_replication` — state, replay lag in bytes (exact and
/// immediate; the interval columns are NULL when idle and stale while replay is stuck), time since
/// its last reply — the expected number of standbys, and replication slots (inactive, WAL
/// retained, `wal_status`).
///
/// **Standby:** the WAL receiver must be streaming — a receiver that is down is CRITICAL, never
/// "0 lag" — receive-vs-replay backlog in bytes, the replay delay (0 when everything received has
/// been replayed, so an idle, caught-up standby is not "lagging"), and paused replay.
public struct ReplicationProbe: Probe {
    public init() {}
    public let name = "replication"
    public let summary = "standbys' replay lag in bytes, state and replies (primary); WAL receiver, backlog and delay (standby); replication slots"
    public let unit = HealthUnit.bytes
    public let defaultThresholds = Thresholds(warning: 67_108_864, critical: 1_073_741_824)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        var findings: [(HealthStatus, String)] = []
        var details: [Detail] = []
        var metrics: [HealthMetric] = []
        var value: Double?
        var hints: [String] = []
        if context.server.role == .primary {
            value = try primary(context, &findings, &details, &metrics, &hints)
        } else {
            value = try standby(context, &findings, &details, &metrics, &hints)
        }
        try slots(context, &findings, &details, &metrics, &hints)
        let status = HealthStatus.worst(findings.map(\.0))
        let problems = findings.filter { $0.0 != .ok }.sorted { $0.0.severity > $1.0.severity }.map(\.1)
        let message = (problems.isEmpty ? findings.map(\.1) : problems).joined(separator: "; ")
        return ProbeOutcome(
            status: status, value: value, message: message.isEmpty ? "no replication configured" : message,
            hint: hints.isEmpty || status == .ok ? nil : hints.joined(separator: " "), details: details, metrics: metrics)
    }

    func primary(
        _ context: ProbeContext, _ findings: inout [(HealthStatus, String)], _ details: inout [Detail],
        _ metrics: inout [HealthMetric], _ hints: inout [String]
    ) throws -> Double? {
        let rows = try context.rows("""
            SELECT r.pid, r.application_name, host(r.client_addr) AS client, r.state, r.sync_state,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), r.sent_lsn)::float8 AS send_lag_bytes,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn)::float8 AS flush_lag_bytes,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::float8 AS replay_lag_bytes,
                   extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,
                   extract(epoch FROM now() - r.reply_time)::float8 AS since_reply_s,
                   s.slot_name
            FROM pg_stat_replication r
            LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
            ORDER BY r.application_name
            """)
        var worstBytes: Double?
        var streaming = 0
        for row in rows {
            let app = row["application_name"] ?? "?"
            let client = row["client"] ?? "local"
            let label = "standby '\(app)' (\(client))"
            let state = row["state"] ?? "?"
            let replayBytes = try row.decode("replay_lag_bytes", as: Double?.self)
            let sinceReply = try row.decode("since_reply_s", as: Double?.self)
            if state == "streaming" { streaming += 1 }
            details.append(Detail([
                ("kind", .string("standby")), ("pid", .integer(try row.decode("pid", as: Int?.self))),
                ("application_name", .string(app)), ("client", .string(client)), ("state", .string(state)),
                ("sync_state", .text(row["sync_state"])), ("slot_name", .text(row["slot_name"])),
                ("send_lag_bytes", .number(try row.decode("send_lag_bytes", as: Double?.self))),
                ("flush_lag_bytes", .number(try row.decode("flush_lag_bytes", as: Double?.self))),
                ("replay_lag_bytes", .number(replayBytes)), ("replay_lag_seconds", .number(try row.decode("replay_lag_s", as: Double?.self))),
                ("seconds_since_reply", .number(sinceReply)),
            ]))
            if let replayBytes {
                worstBytes = max(worstBytes ?? 0, replayBytes)
                metrics.append(HealthMetric("replication_replay_lag_bytes", help: "Bytes of WAL a standby has not replayed yet (primary view).",
                                            labels: ["standby": app], value: replayBytes))
                let status = context.thresholds.status(for: replayBytes)
                findings.append((status, "\(label) \(state), replay lag \(HealthFormat.bytes(replayBytes))"))
                if status != .ok {
                    hints.append("On the standby, check for paused replay (SELECT pg_get_wal_replay_pause_state()), replay conflicts and I/O; see its own replication check.")
                }
            } else {
                findings.append((state == "streaming" ? .ok : .warning, "\(label) \(state), replay position unknown"))
            }
            if state != "streaming" {
                findings.append((.warning, "\(label) is in state '\(state)', not streaming"))
            }
            if let sinceReply, sinceReply > 60 {
                findings.append((.warning, "\(label) has not replied for \(HealthFormat.duration(sinceReply))"))
                hints.append("A standby that does not reply may be hung or cut off; check its log and network.")
            }
        }
        let expected = context.settings.integer(.healthReplicationStandbys)
        if let expected {
            if streaming < expected {
                findings.append((.critical, "\(streaming) of \(expected) expected standbys streaming"))
                hints.append("A standby is missing: check that it runs and can reach the primary (its log, primary_conninfo, pg_hba.conf).")
            } else {
                findings.append((.ok, "\(streaming) of \(expected) expected standbys streaming"))
            }
        } else if rows.isEmpty {
            findings.append((.ok, "no standby connected (set health.checks.replication.expected_standbys to require some)"))
        }
        return worstBytes ?? (rows.isEmpty ? nil : 0)
    }

    func standby(
        _ context: ProbeContext, _ findings: inout [(HealthStatus, String)], _ details: inout [Detail],
        _ metrics: inout [HealthMetric], _ hints: inout [String]
    ) throws -> Double? {
        let pauseState = context.server.versionNumber >= 140000
            ? "pg_get_wal_replay_pause_state()" : "CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
        let row = try context.row("""
            SELECT pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn,
                   pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS backlog_bytes,
                   pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS caught_up,
                   extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay_s,
                   \(unsafeRaw: pauseState) AS pause_state,
                   (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
                   (SELECT sender_host FROM pg_stat_wal_receiver) AS sender_host,
                   (SELECT sender_port FROM pg_stat_wal_receiver) AS sender_port,
                   (SELECT slot_name FROM pg_stat_wal_receiver) AS slot_name,
                   (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8 FROM pg_stat_wal_receiver) AS since_msg_s
            """, "standby replication state")
        let receiver = row["receiver_status"]
        let backlog = try row.decode("backlog_bytes", as: Double?.self)
        let caughtUp = try row.decode("caught_up", as: Bool?.self) ?? false
        let sinceReplay = try row.decode("since_replay_s", as: Double?.self)
        // Everything received has been replayed: the standby is current, however old the last
        // replayed transaction is (an idle primary writes nothing).
        let delay: Double? = caughtUp ? 0 : sinceReplay
        let paused = row["pause_state"].map { $0 != "not paused" } ?? false
        details.append(Detail([
            ("kind", .string("wal_receiver")), ("status", .text(receiver ?? "not running")),
            ("sender", .text(row["sender_host"].map { "\($0):\(row["sender_port"] ?? "")" })), ("slot_name", .text(row["slot_name"])),
            ("receive_lsn", .text(row["receive_lsn"])), ("replay_lsn", .text(row["replay_lsn"])),
            ("backlog_bytes", .number(backlog)), ("replay_delay_seconds", .number(delay)),
            ("seconds_since_last_replayed_transaction", .number(sinceReplay)), ("pause_state", .text(row["pause_state"])),
            ("seconds_since_last_message", .number(try row.decode("since_msg_s", as: Double?.self))),
        ]))
        if receiver != "streaming" {
            findings.append((.critical, "WAL receiver is \(receiver.map { "in state '\($0)'" } ?? "not running"): this standby receives no WAL, "
                + "so its lag is unknown and growing (not 0)"))
            hints.append("Check the standby's log, primary_conninfo and that the primary is up and reachable; the primary's replication check shows whether it still sees this standby.")
        }
        if let backlog {
            metrics.append(HealthMetric("replication_standby_backlog_bytes", help: "Received but not yet replayed WAL on this standby.", value: backlog))
            let status = context.thresholds.status(for: backlog)
            findings.append((status, "\(HealthFormat.bytes(backlog)) received but not replayed"))
        }
        if let delay {
            metrics.append(HealthMetric("replication_standby_delay_seconds", help: "Replay delay (0 when caught up).", value: delay))
            let delayThresholds = Thresholds(
                warning: context.settings.seconds(.healthReplicationDelayWarning), critical: context.settings.seconds(.healthReplicationDelayCritical))
            findings.append((delayThresholds.status(for: delay), caughtUp ? "replay caught up" : "replay \(HealthFormat.duration(delay)) behind"))
        }
        if paused {
            findings.append((.warning, "WAL replay is paused (\(row["pause_state"] ?? "paused"))"))
            hints.append("Resume it with SELECT pg_wal_replay_resume(); if nobody paused it on purpose.")
        }
        return backlog
    }

    func slots(
        _ context: ProbeContext, _ findings: inout [(HealthStatus, String)], _ details: inout [Detail],
        _ metrics: inout [HealthMetric], _ hints: inout [String]
    ) throws {
        let position = context.server.role == .standby ? "pg_last_wal_replay_lsn()" : "pg_current_wal_lsn()"
        let rows = try context.rows("""
            SELECT slot_name, slot_type, database, active, active_pid, temporary, wal_status,
                   pg_wal_lsn_diff(\(unsafeRaw: position), restart_lsn)::float8 AS retained_bytes,
                   age(xmin)::float8 AS xmin_age, age(catalog_xmin)::float8 AS catalog_xmin_age
            FROM pg_replication_slots
            ORDER BY slot_name
            """)
        let warning = context.settings.number(.healthSlotWarning)
        let critical = context.settings.number(.healthSlotCritical)
        let retention = Thresholds(warning: warning, critical: critical)
        for row in rows {
            let name = row["slot_name"] ?? "?"
            let active = try row.decode("active", as: Bool.self)
            let retained = try row.decode("retained_bytes", as: Double?.self)
            let walStatus = row["wal_status"]
            details.append(Detail([
                ("kind", .string("slot")), ("slot_name", .string(name)), ("slot_type", .text(row["slot_type"])),
                ("database", .text(row["database"])), ("active", .bool(active)),
                ("active_pid", .integer(try row.decode("active_pid", as: Int?.self))),
                ("wal_status", .text(walStatus)), ("retained_bytes", .number(retained)),
                ("xmin_age", .number(try row.decode("xmin_age", as: Double?.self))),
                ("catalog_xmin_age", .number(try row.decode("catalog_xmin_age", as: Double?.self))),
            ]))
            if let retained {
                metrics.append(HealthMetric("replication_slot_retained_bytes", help: "WAL retained by a replication slot.",
                                            labels: ["slot": name], value: retained))
            }
            let retainedText = retained.map { ", retaining \(HealthFormat.bytes($0)) of WAL" } ?? ""
            if walStatus == "lost" || walStatus == "unreserved" {
                findings.append((.critical, "slot '\(name)' wal_status is \(walStatus ?? "")\(retainedText)"))
                hints.append("WAL needed by slot '\(name)' is (about to be) removed; its consumer must be rebuilt; drop the slot with SELECT pg_drop_replication_slot('\(name)') if it is abandoned.")
            }
            if let retained, retention.status(for: retained) != .ok {
                findings.append((retention.status(for: retained), "slot '\(name)'\(retainedText)"))
            }
            let temporary = try row.decode("temporary", as: Bool?.self) ?? false
            if !active && !temporary {
                findings.append((.warning, "slot '\(name)' is inactive\(retainedText)"))
                hints.append("An inactive slot keeps WAL (and possibly the xmin horizon) forever: reconnect its consumer or drop it with SELECT pg_drop_replication_slot('\(name)');")
            }
        }
    }
}

/// Compares the two sides when both a primary and its standby were checked in one run.
enum ReplicationCrossCheck {
    static func apply(_ reports: inout [TargetReport]) {
        guard let primaryIndex = reports.firstIndex(where: { $0.role == ServerRole.primary.rawValue }) else { return }
        let primaryView = reports[primaryIndex].check("replication")?.details.filter { $0["kind"] == .string("standby") } ?? []
        for index in reports.indices where reports[index].role == ServerRole.standby.rawValue {
            guard let checkIndex = reports[index].checks.firstIndex(where: { $0.name == "replication" }) else { continue }
            var check = reports[index].checks[checkIndex]
            guard let receiver = check.details.first(where: { $0["kind"] == .string("wal_receiver") }) else { continue }
            let slot = receiver["slot_name"]
            let match = primaryView.first { slot != nil && slot != .null && $0["slot_name"] == slot } ?? (primaryView.count == 1 ? primaryView.first : nil)
            if let match {
                check.details.append(Detail([
                    ("kind", .string("primary_view")), ("primary", .string(reports[primaryIndex].name)),
                    ("state", match["state"] ?? .null), ("replay_lag_bytes", match["replay_lag_bytes"] ?? .null),
                    ("seconds_since_reply", match["seconds_since_reply"] ?? .null),
                ]))
                check.message += "; primary \(reports[primaryIndex].name) sees it \(match["state"]?.description ?? "?") with replay lag "
                    + "\(match["replay_lag_bytes"].flatMap { if case .double(let v) = $0 { return HealthFormat.bytes(v) } else { return nil } } ?? "unknown")"
            } else {
                check.status = check.status.worse(.critical)
                check.message += "; the primary \(reports[primaryIndex].name) does not list this standby in pg_stat_replication"
                check.hint = check.hint ?? "The standby is not connected to this primary: check primary_conninfo and the standby's log."
            }
            reports[index].checks[checkIndex] = check
        }
    }
}
