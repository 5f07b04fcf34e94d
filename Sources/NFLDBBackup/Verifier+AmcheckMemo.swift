import Foundation
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres

/// Why no relation may be skipped (or recorded as checked) in this run.
struct MemoOff: Error, Sendable {
    let reason: String
}

/// The backup's files and what its WAL replay touches (``Verifier/scanReplay``).
struct ReplayInputs: Sendable {
    let files: ManifestFiles
    let scan: ReplayScan
    let timeline: String
}

/// This run's decision: every relation group of the verified database, those skipped, and what
/// the next run needs to decide again.
struct MemoPlan {
    var inputs: ReplayInputs?
    var context = ""
    var groups: [(group: RelationGroup, fingerprint: String?)] = []
    var skipped: [RelationGroup] = []
    var previous: AmcheckMemo?
    /// The copy's next xid (with epoch) before pg_amcheck ran.
    var nextXID: UInt64?
    /// Why nothing (or less than everything unchanged) was skipped.
    var reason: String?
    /// Prepared transactions in the copy (none: a recorded or skipped verdict needs none).
    var preparedTransactions = 0
}

extension Verifier {
    /// At most this many WAL segments are fetched and scanned (a busy backup window turns the
    /// skipping off for the run rather than dump gigabytes of records).
    static let memoMaxSegments = 8
    /// At most this many xids between the backup's oldest running xid and the copy's next one are
    /// looked up in `pg_xact` (beyond it, nothing is recorded and the next run checks everything).
    static let memoMaxXIDRange: UInt64 = 2_000_000

    /// Fetches the backup's WAL (`archive-get`, start..stop segments) into the scratch directory,
    /// runs `pg_waldump` over it and maps what replay touches (``ReplayScan``).
    static func scanReplay(_ fetched: Result<PgBackRestResult, any Error>, pgbackrest: PgBackRest, waldump: String, segmentSize: Int64,
                           scratch: String) -> Result<ReplayInputs, MemoOff> {
        guard case .success(let result) = fetched, result.succeeded, !result.process.standardOutput.isEmpty else {
            return .failure(MemoOff(reason: "the backup's manifest could not be read"))
        }
        let files = ManifestFiles(result.process.standardOutput)
        guard let lsnStart = files.lsnStart, let first = files.archiveStart?.uppercased(), let last = files.archiveStop?.uppercased() else {
            return .failure(MemoOff(reason: "the backup's manifest names no WAL range"))
        }
        var segments = [first]
        while let current = segments.last, current < last, segments.count <= memoMaxSegments,
              let next = WALName.next(current, segmentSize: segmentSize) {
            segments.append(next)
        }
        guard segments.last == last, segments.count <= memoMaxSegments else {
            return .failure(MemoOff(reason: "the backup's WAL spans more than \(memoMaxSegments) segments (\(first)…\(last))"))
        }
        let directory = (scratch as NSString).appendingPathComponent("wal-scan")
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            if let user = pgbackrest.osUser, let account = getpwnam(user) {
                guard chown(directory, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                    return .failure(MemoOff(reason: "cannot give \(directory) to \(user): \(String(cString: strerror(errno)))"))
                }
            }
            for segment in segments {
                // --no-archive-async: never start pgBackRest's asynchronous prefetch into the spool path of the primary's config.
                let got = try pgbackrest.run("archive-get", ["--log-level-console=warn", "--no-archive-async"], timeout: .seconds(300),
                                             positional: [segment, (directory as NSString).appendingPathComponent(segment)])
                guard got.succeeded else {
                    return .failure(MemoOff(reason: "pgbackrest archive-get \(segment) exit \(got.process.status): \(got.process.stderrTail(1))"))
                }
            }
            let dumped = try ProcessRunner(runAsUser: pgbackrest.osUser).run(
                waldump, ["--path=\(directory)", "--start=\(lsnStart)", "--end=\(endLSN(after: last, segmentSize: segmentSize))"],
                timeout: .seconds(300))
            let scan = ReplayScan(waldump: dumped.standardOutput, lsnStart: lsnStart)
            guard scan.sawBackupEnd else {
                return .failure(MemoOff(reason: "pg_waldump did not reach the backup's end record (exit \(dumped.status): \(dumped.stderrTail(1)))"))
            }
            if let disabled = scan.disabled { return .failure(MemoOff(reason: disabled)) }
            guard scan.oldestRunningXID != nil else {
                return .failure(MemoOff(reason: "pg_waldump showed no backup-start checkpoint at \(lsnStart) (its oldest running xid is needed)"))
            }
            return .success(ReplayInputs(files: files, scan: scan, timeline: String(first.prefix(8))))
        } catch {
            return .failure(MemoOff(reason: (error as? any NFLDBError)?.diagnostic.oneLine ?? "\(error)"))
        }
    }

    /// `16/B374D848` → its 64-bit value.
    static func lsn(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16), low <= 0xFFFF_FFFF else { return nil }
        return high << 32 | low
    }

    /// The LSN where the segment after `segment` starts (`%X/%X`).
    static func endLSN(after segment: String, segmentSize: Int64) -> String {
        guard let log = UInt64(segment.dropFirst(8).prefix(8), radix: 16), let seg = UInt64(segment.suffix(8), radix: 16) else { return "FFFFFFFF/FFFFFFFF" }
        let end = log << 32 + (seg + 1) * UInt64(segmentSize)
        return String(format: "%X/%X", end >> 32, end & 0xFFFF_FFFF)
    }

    /// Decides which relation groups of the verified database `pg_amcheck` may skip
    /// (``AmcheckMemo``), before it starts.
    func planSkips(_ conn: PostgresConnection, _ scanned: Result<Result<ReplayInputs, MemoOff>, any Error>, plan: Plan, scratch: Scratch,
                   _ r: Recorder) -> MemoPlan {
        var result = MemoPlan()
        do {
            let inputs: ReplayInputs
            switch scanned {
            case .success(.success(let got)): inputs = got
            case .success(.failure(let off)): result.reason = off.reason; return result
            case .failure(let error): result.reason = "\(error)"; return result
            }
            // pg_database_collation_actual_version arrives in PostgreSQL 15; before, the C library's
            // version of a libc collation named like the database's.
            let databaseCollationVersion = try conn.query(
                "SELECT to_regprocedure('pg_database_collation_actual_version(oid)') IS NOT NULL").scalar(Bool.self)
                ? "pg_database_collation_actual_version(d.oid)"
                : "(SELECT pg_collation_actual_version(c.oid) FROM pg_collation c WHERE c.collname = d.datcollate AND c.collprovider = 'c' LIMIT 1)"
            let copyContext = try conn.query("""
                SELECT current_setting('server_version_num') || ' collation ' || coalesce(\(unsafeRaw: databaseCollationVersion), '-')
                       || ' ' || d.datcollate || ' ' || d.datctype
                       -- Moves the removal horizon pg_amcheck judges "prunable" deleted tuples by.
                       || ' vacuum_defer_cleanup_age ' || current_setting('vacuum_defer_cleanup_age') AS context,
                       pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid
                FROM pg_database d WHERE d.datname = current_database()
                """).rows.first
            let systemID = plan.stanza.db.last.map { String($0.systemID) } ?? "?"
            result.context = "nfldb amcheck memo \(AmcheckMemo.formatVersion); pg_amcheck --heapallindexed; system \(systemID); timeline "
                + "\(inputs.timeline); pg \(try copyContext?.decode("context", as: String.self) ?? "?")"
            result.nextXID = try copyContext.flatMap { UInt64(try $0.decode("next_xid", as: String.self)) }
            result.preparedTransactions = try conn.query("SELECT count(*)::int FROM pg_prepared_xacts").scalar(Int.self)
            let groups = try Self.relationGroups(conn)
            result.groups = groups.map { ($0, $0.fingerprint(inputs.files, context: result.context)) }
            result.inputs = inputs
            let previous: AmcheckMemo
            switch AmcheckMemo.load(scratch.directory) {
            case .failure(let why):
                r.receipt.notes.append("amcheck memo: \(why.reason)")
                result.reason = why.reason
                return result
            case .success(nil):
                result.reason = "no earlier clean check recorded for this kept copy"
                return result
            case .success(let memo?):
                previous = memo
            }
            result.previous = previous
            guard previous.context == result.context else {
                result.reason = "the server, collation, timeline or cluster differs from the recorded check"
                return result
            }
            // Time must only move forward: in an older backup, transactions that had committed when
            // the recorded check ran may still be open (aborted in the copy), which changes what the
            // checks apply to in byte-identical files (an attack probe: a TOAST chunk missing under a
            // row whose delete had committed then was skipped when --set picked the older backup).
            guard let recordedStop = previous.backupStopLSN.flatMap(Self.lsn), let stop = inputs.files.lsnStop.flatMap(Self.lsn),
                  stop >= recordedStop else {
                result.reason = "this backup (stop LSN \(inputs.files.lsnStop ?? "?")) is older than the one the recorded check verified "
                    + "(\(previous.backupStopLSN ?? "?"))"
                return result
            }
            // A prepared transaction survives into the copy and holds back its removal horizon, so
            // deleted tuples that were prunable at the recorded check are checked (with their TOAST)
            // now (an attack probe). Also when recording: see recordMemo.
            if result.preparedTransactions > 0 {
                result.reason = "the copy holds \(result.preparedTransactions) prepared transaction(s) (pg_prepared_xacts), which change what "
                    + "pg_amcheck checks in unchanged files"
                return result
            }
            guard let open = previous.openXIDs else {
                result.reason = "the recorded check could not list the transactions open at its consistency point"
                return result
            }
            if !open.isEmpty {
                let list = "{" + open.map(String.init).joined(separator: ",") + "}"
                let committed: String?
                do {
                    committed = try conn.query("""
                        SELECT min(x)::text FROM unnest(\(list)::bigint[]) x WHERE pg_xact_status(x::text::xid8) = 'committed'
                        """).scalar(String?.self)
                } catch {
                    result.reason = "the transactions open at the recorded check could not be looked up (\((error as? any NFLDBError)?.diagnostic.summary ?? "\(error)"))"
                    return result
                }
                if let committed {
                    result.reason = "transaction \(committed), open when the recorded check ran, has committed since (tuples in unchanged files changed visibility)"
                    return result
                }
            }
            let now = Date()
            let interval = options.amcheckRecheckInterval.inSeconds
            var stale = 0
            for (group, fingerprint) in result.groups {
                guard let fingerprint, !group.touched(by: inputs.scan), let entry = previous.groups[String(group.root.oid)],
                      entry.fingerprint == fingerprint else { continue }
                guard now.timeIntervalSince(entry.checkedAt) < interval else { stale += 1; continue }
                result.skipped.append(group)
            }
            if stale > 0 { result.reason = "\(stale) unchanged group(s) rechecked: their clean check is older than backup.verify.amcheck_recheck_interval" }
        } catch {
            result.inputs = nil
            result.skipped = []
            result.reason = "the copy's catalog could not be read (\((error as? any NFLDBError)?.diagnostic.summary ?? "\(error)"))"
        }
        return result
    }

    /// Every table, materialized view and sequence of the connected database (oid ≥ 16384,
    /// permanent) with its TOAST table, TOAST index and indexes, as the copy's catalog has them.
    static func relationGroups(_ conn: PostgresConnection) throws -> [RelationGroup] {
        let rows = try conn.query("""
            SELECT c.oid::bigint AS oid, c.relkind::text AS kind, n.nspname::text AS schema, c.relname::text AS name,
                   pg_relation_filepath(c.oid) AS path,
                   CASE c.relkind WHEN 'i' THEN i.indrelid::bigint
                                  WHEN 't' THEN (SELECT o.oid::bigint FROM pg_class o WHERE o.reltoastrelid = c.oid LIMIT 1) END AS parent,
                   md5(concat_ws('|', c.relkind, c.relam, c.relnatts, c.relfilenode, c.reltablespace, c.relfrozenxid, c.relminmxid,
                       c.relpersistence, c.reltoastrelid,
                       -- Whole catalog rows (to_jsonb: the same on PostgreSQL 13 to 15, whose pg_attribute columns differ).
                       (SELECT string_agg((to_jsonb(a) - 'attrelid')::text, ',' ORDER BY a.attnum)
                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0),
                       (SELECT concat_ws(':', to_jsonb(x)::text, pg_get_indexdef(x.indexrelid),
                                         -- The C library or ICU version behind each collation the index sorts by.
                                         (SELECT string_agg(coalesce(pg_collation_actual_version(o), '-'), ',')
                                          FROM unnest(x.indcollation::oid[]) o WHERE o <> 0),
                                         -- What an index's order or entries depend on beyond these rows (a user-defined
                                         -- operator class or collation, an expression or predicate that may call a
                                         -- function redefined since): never the same twice, so always checked.
                                         -- A key column of a user-defined type (a range over a user operator class, an
                                         -- enum, a domain, an array or composite of such) sorts by functions the
                                         -- index rows do not show (an attack probe redefined one behind range_ops).
                                         CASE WHEN x.indexprs IS NOT NULL OR x.indpred IS NOT NULL
                                                   OR EXISTS (SELECT 1 FROM unnest(x.indclass::oid[]) o WHERE o >= 16384)
                                                   OR EXISTS (SELECT 1 FROM unnest(x.indcollation::oid[]) o WHERE o >= 16384)
                                                   OR EXISTS (SELECT 1 FROM pg_attribute ia WHERE ia.attrelid = x.indexrelid AND ia.atttypid >= 16384)
                                              THEN gen_random_uuid()::text END)
                        FROM pg_index x WHERE x.indexrelid = c.oid))) AS catalog
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'm', 'S', 't', 'i') AND c.relpersistence = 'p'
              AND pg_relation_filepath(c.oid) IS NOT NULL
            """).rows
        var members: [Int64: RelationGroup.Member] = [:]
        var parents: [Int64: Int64] = [:]
        for row in rows {
            let oid = try row.decode("oid", as: Int64.self)
            members[oid] = RelationGroup.Member(oid: oid, kind: try row.decode("kind", as: String.self), schema: try row.decode("schema", as: String.self),
                                                name: try row.decode("name", as: String.self), path: try row.decode("path", as: String.self),
                                                catalog: try row.decode("catalog", as: String.self))
            if let parent = try row.decode("parent", as: Int64?.self) { parents[oid] = parent }
        }
        func root(_ oid: Int64) -> Int64? {
            var current = oid
            for _ in 0..<3 {
                guard let member = members[current] else { return nil }
                if ["r", "m", "S"].contains(member.kind) { return current }
                guard let parent = parents[current] else { return nil }
                current = parent
            }
            return nil
        }
        // A member whose chain does not reach a table, matview or sequence is in no group (always checked).
        var grouped: [Int64: [RelationGroup.Member]] = [:]
        for (oid, member) in members {
            if let top = root(oid) { grouped[top, default: []].append(member) }
        }
        return grouped.compactMap { top, list in members[top].map { RelationGroup(root: $0, members: list) } }
            .sorted { $0.root.oid < $1.root.oid }
    }

    /// The xids (with epoch) from the backup's oldest running xid up to the copy's next xid that
    /// are not committed in this copy: open (or aborted) at the consistency point. nil when the
    /// range is unknown or too long.
    static func openXIDs(_ conn: PostgresConnection, _ plan: MemoPlan) -> [UInt64]? {
        guard let inputs = plan.inputs, let oldest = inputs.scan.oldestRunningXID, let next = plan.nextXID else { return nil }
        var low = (next >> 32) << 32 | UInt64(oldest)
        if low > next { guard low >= 1 << 32 else { return nil }; low -= 1 << 32 }
        guard next - low <= memoMaxXIDRange else { return nil }
        guard next > low else { return [] }
        let text = try? conn.query("""
            SELECT coalesce(string_agg(x::text, ',' ORDER BY x), '') FROM generate_series(\(Int64(low)), \(Int64(next)) - 1) x
            WHERE pg_xact_status(x::text::xid8) IS DISTINCT FROM 'committed'
            """).scalar(String.self)
        return text.map { $0.split(separator: ",").compactMap { UInt64($0) } }
    }

    /// Writes the memo for the next run and says in the check's evidence what was skipped.
    func recordMemo(_ plan: MemoPlan, clean: Bool, openXIDs: [UInt64]?, scratch: Scratch, _ r: Recorder) -> String {
        var groups: [String: AmcheckMemo.Entry] = [:]
        let skippedKeys = Set(plan.skipped.map { String($0.root.oid) })
        if clean, let inputs = plan.inputs, plan.preparedTransactions == 0 {
            let now = Date()
            for (group, fingerprint) in plan.groups {
                guard let fingerprint, !group.touched(by: inputs.scan) else { continue }
                let key = String(group.root.oid)
                if skippedKeys.contains(key), let entry = plan.previous?.groups[key] {
                    groups[key] = entry
                } else {
                    groups[key] = AmcheckMemo.Entry(name: group.qualifiedName, fingerprint: fingerprint, checkedAt: now)
                }
            }
        }
        let memo = AmcheckMemo(context: plan.context, backupStopLSN: plan.inputs?.files.lsnStop, openXIDs: plan.inputs == nil ? nil : openXIDs,
                               groups: groups)
        do {
            try memo.save(scratch.directory)
        } catch {
            let reason = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) }
                ?? error.localizedDescription
            r.receipt.notes.append("amcheck memo: could not write \(AmcheckMemo.path(scratch.directory)) (\(reason)); the next run checks every relation")
        }
        let checked = plan.groups.map(\.group).filter { !skippedKeys.contains(String($0.root.oid)) }.map(\.qualifiedName)
        r.receipt.amcheckSkip = AmcheckSkip(groups: plan.groups.count, skipped: plan.skipped.count, recorded: groups.count,
                                            checked: Array(checked.prefix(100)), reason: plan.reason)
        guard !plan.skipped.isEmpty else {
            return "; no relation skipped (\(plan.reason ?? "none unchanged"))"
        }
        return "; \(plan.skipped.count) of \(plan.groups.count) relation group(s) of database \(scratch.database) skipped: "
            + "unchanged since a clean check (same file SHA-1s in the backup's manifest, untouched by WAL replay, same catalog rows, "
            + "no transaction open then has committed since; backup.verify.amcheck_recheck_interval); the catalogs and other databases were checked"
            + (plan.reason.map { "; \($0)" } ?? "")
    }
}
