import Foundation
import Logging
import NFLDBCore
import NFLDBFernet
import NFLDBPostgres

/// What `nfldb crypt rotate` does to one column.
public struct RotationOptions: Sendable {
    /// A table name as PostgreSQL parses it (`games`, `nfl.games`, `"Odd Schema"."My ""T"""`).
    public var table: String
    /// The column's exact name (no quoting needed).
    public var column: String
    public var batchSize = 5000
    public var lockTimeout: Duration = .seconds(5)
    /// How long to wait for another rotate of the same column (0: refuse at once).
    public var lockWait: Duration = .zero
    /// Undecryptable rows listed in the report (all are counted).
    public var reportLimit = 100

    public init(table: String, column: String) {
        self.table = table
        self.column = column
    }
}

/// The outcome. `undecryptable` rows were left as they were.
public struct RotationReport: Codable, Sendable {
    public var table = ""
    public var column = ""
    public var keyColumns: [String] = []
    public var scanned = 0
    public var rotated = 0
    public var alreadyCurrent = 0
    public var nulls = 0
    /// Rows whose value changed between the read and the write (left alone; a re-run picks them up).
    public var changedConcurrently = 0
    public var undecryptableCount = 0
    /// Primary-key values of rows no key opens (up to `reportLimit`), with the reason.
    public var undecryptable: [UndecryptableRow] = []
    /// Rows re-encrypted, by the reference of the key that opened them (in key-list order).
    public var openedBy: [KeyCount] = []
    public var batches = 0
    public var seconds = 0.0

    public var complete: Bool { undecryptableCount == 0 && changedConcurrently == 0 }
}

public struct KeyCount: Codable, Sendable, Equatable {
    public let reference: String
    public var rows: Int
}

public struct UndecryptableRow: Codable, Sendable, Equatable {
    /// The row's primary key, `column=value` pairs in key order.
    public let key: String
    public let reason: String
}

/// Progress after each batch, for a TTY.
public struct RotationProgress: Sendable {
    public let scanned: Int
    public let rotated: Int
    public let estimatedRows: Int
}

/// Re-encrypts a Fernet column under the newest key in primary-key order (keyset pagination), one
/// short transaction per batch, under a session advisory lock per column.
///
/// Resumable: a row that the newest key already opens is skipped, so an interrupted run is simply
/// run again. Every new token is decrypted with the newest key before it is written; the write is
/// conditional on the old token (`… AND col = old`), so a value the application changed meanwhile is
/// never overwritten. A row no key opens is reported by its primary key and left unchanged.
public final class ColumnRotator {
    let connection: PostgresConnection
    let ring: KeyRing
    let logger: Logger

    public init(connection: PostgresConnection, ring: KeyRing, logger: Logger) {
        self.connection = connection
        self.ring = ring
        self.logger = logger
    }

    struct Target {
        let schema: String
        let table: String
        let column: String
        let keys: [(name: String, type: String)]
        let estimatedRows: Int
    }

    public func run(_ options: RotationOptions, progress: (RotationProgress) -> Void = { _ in }) throws -> RotationReport {
        let started = ContinuousClock.now
        let target = try resolve(options)
        let lock = AdvisoryLockKey("nfldb crypt rotate \(target.schema).\(target.table).\(target.column)")
        var report = RotationReport()
        report.table = "\(target.schema).\(target.table)"
        report.column = target.column
        report.keyColumns = target.keys.map(\.name)
        try connection.execute("SELECT set_config('lock_timeout', \(Self.milliseconds(options.lockTimeout)), false)")
        try connection.withAdvisoryLock(lock, wait: options.lockWait) {
            try rotate(target, options: options, report: &report, progress: progress)
        }
        report.seconds = (ContinuousClock.now - started).inSeconds
        return report
    }

    static func milliseconds(_ duration: Duration) -> String { "\(Int((duration.inSeconds * 1000).rounded()))ms" }

    // MARK: Catalog

    func resolve(_ options: RotationOptions) throws -> Target {
        let relation = try connection.query("""
            SELECT c.oid::int8 AS oid, n.nspname, c.relname, c.relkind::text AS relkind, greatest(c.reltuples, 0)::int8 AS estimate
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass(\(options.table))
            """).rows.first
        guard let relation else {
            throw OperatorError(
                "crypt rotate: table \(options.table) not found",
                hint: "Give the name as in SQL: schema.table, with double quotes around names that have capitals, spaces or quotes (\"My Schema\".\"Card \"\"Data\"\"\").",
                exitStatus: .usage)
        }
        let oid = try relation.decode("oid", as: Int64.self)
        let schema = relation["nspname"] ?? "", table = relation["relname"] ?? ""
        guard ["r", "p"].contains(relation["relkind"] ?? "") else {
            throw OperatorError("crypt rotate: \(schema).\(table) is not a table", hint: "Rotate the column of the underlying table.", exitStatus: .usage)
        }
        let column = try connection.query("""
            SELECT format_type(a.atttypid, a.atttypmod) AS type, t.typcategory::text AS category
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = \(oid)::oid AND a.attname = \(options.column) AND a.attnum > 0 AND NOT a.attisdropped
            """).rows.first
        guard let column else {
            throw OperatorError("crypt rotate: column \(options.column) not found in \(schema).\(table)", hint: "Give the column's exact name (case matters, no quotes).", exitStatus: .usage)
        }
        guard column["category"] == "S" else {
            throw OperatorError(
                "crypt rotate: \(schema).\(table).\(options.column) is \(column["type"] ?? "?"), not a text type",
                hint: "Fernet tokens are stored as text (text or varchar); convert the column first.", exitStatus: .usage)
        }
        let keyRows = try connection.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = \(oid)::oid AND i.indisprimary
            ORDER BY k.ord
            """).rows
        guard !keyRows.isEmpty else {
            throw OperatorError(
                "crypt rotate: \(schema).\(table) has no primary key",
                hint: "Rotation walks the table in primary-key order so that it can resume; add a primary key first.", exitStatus: .usage)
        }
        let keys = keyRows.map { (name: $0["attname"] ?? "", type: $0["type"] ?? "text") }
        if keys.contains(where: { $0.name == options.column }) {
            throw OperatorError("crypt rotate: \(options.column) is part of the primary key of \(schema).\(table)", hint: "Encrypted values cannot be keys (every encryption differs).", exitStatus: .usage)
        }
        return Target(schema: schema, table: table, column: options.column, keys: keys, estimatedRows: Int(try relation.decode("estimate", as: Int64.self)))
    }

    // MARK: Batches

    struct Change {
        let key: [String]
        let old: String
        let new: String
    }

    private func rotate(_ target: Target, options: RotationOptions, report: inout RotationReport, progress: (RotationProgress) -> Void) throws {
        let multi = try ring.multiFernet()
        var openedCount = [Int](repeating: 0, count: ring.keys.count)
        defer {
            report.openedBy = zip(ring.references, openedCount).filter { $0.1 > 0 }.map { KeyCount(reference: $0.0.description, rows: $0.1) }
        }
        let primary = multi.primary
        let keyList = target.keys.map { PostgresIdentifier.quote($0.name) }.joined(separator: ", ")
        let relation = "\(PostgresIdentifier.quote(target.schema)).\(PostgresIdentifier.quote(target.table))"
        let column = PostgresIdentifier.quote(target.column)
        var last: [String]?
        while true {
            // Read one batch after the last key seen (no transaction: nothing is held between batches).
            var select = PostgresQuery(unsafeSQL: "SELECT \(keyList), \(column) FROM \(relation)")
            if let last {
                var condition: PostgresQuery = " WHERE (\(unsafeRaw: keyList)) > ("
                for (index, value) in last.enumerated() {
                    condition = "\(fragment: condition)\(unsafeRaw: index == 0 ? "" : ", ")\(value)::\(unsafeRaw: target.keys[index].type)"
                }
                select = "\(fragment: select)\(fragment: condition))"
            }
            select = "\(fragment: select) ORDER BY \(unsafeRaw: keyList) LIMIT \(options.batchSize)"
            let t0 = ContinuousClock.now
            let rows = try connection.query(select).rows
            let t1 = ContinuousClock.now
            if rows.isEmpty { break }
            report.batches += 1
            var changes: [Change] = []
            changes.reserveCapacity(rows.count)
            let keyCount = target.keys.count
            for row in rows {
                report.scanned += 1
                let key = (0..<keyCount).map { row.values[$0] ?? "" }
                guard let token = row.values[keyCount] else {
                    report.nulls += 1
                    continue
                }
                do {
                    let opened = try multi.decryptReportingKey(token)
                    if opened.keyIndex == 0 {
                        report.alreadyCurrent += 1
                        continue
                    }
                    let stamp = try Fernet.unverifiedTimestamp(token)
                    let fresh = try primary.encrypt(opened.plaintext, now: stamp)
                    // Verify before writing: the new token must open with the newest key to the same bytes.
                    guard try primary.decrypt(fresh) == opened.plaintext else {
                        throw OperatorError("crypt rotate: a new token did not decrypt back to its value (row \(describe(key, target)))", hint: "Nothing was written for this batch; report this as a bug.")
                    }
                    openedCount[opened.keyIndex] += 1
                    changes.append(Change(key: key, old: token, new: fresh))
                } catch let error as FernetError {
                    report.undecryptableCount += 1
                    if report.undecryptable.count < options.reportLimit {
                        report.undecryptable.append(UndecryptableRow(key: describe(key, target), reason: error.description))
                    }
                    logger.warning("row not decryptable with any key; left unchanged", metadata: ["row": .string(describe(key, target)), "reason": .string(error.description)])
                }
            }
            let t2 = ContinuousClock.now
            if !changes.isEmpty {
                defer {
                    let ms: (Duration) -> Logger.MetadataValue = { .stringConvertible(Int($0.inMilliseconds.rounded())) }
                    logger.debug("batch", metadata: ["rows": .stringConvertible(rows.count), "read_ms": ms(t1 - t0), "crypto_ms": ms(t2 - t1), "write_ms": ms(ContinuousClock.now - t2)])
                }
                let written = try write(changes, target: target, relation: relation, column: column, lockTimeout: options.lockTimeout)
                report.rotated += written
                report.changedConcurrently += changes.count - written
            }
            last = (0..<keyCount).map { rows[rows.count - 1].values[$0] ?? "" }
            progress(RotationProgress(scanned: report.scanned, rotated: report.rotated, estimatedRows: target.estimatedRows))
            if rows.count < options.batchSize { break }
        }
    }

    func describe(_ key: [String], _ target: Target) -> String {
        zip(target.keys.map(\.name), key).map { "\($0)=\($1)" }.joined(separator: ", ")
    }

    /// One transaction: `UPDATE … FROM unnest(arrays)`, only where the value is still the old token.
    /// A lock timeout is retried three times (the batch is small); then the run stops, resumable.
    private func write(_ changes: [Change], target: Target, relation: String, column: String, lockTimeout: Duration) throws -> Int {
        var vNames: [String] = []
        var arrays: [String] = []
        for index in target.keys.indices {
            vNames.append("k\(index)")
            arrays.append(Self.arrayLiteral(changes.map { $0.key[index] }))
        }
        let oldArray = Self.arrayLiteral(changes.map(\.old))
        let newArray = Self.arrayLiteral(changes.map(\.new))
        var unnestArgs: PostgresQuery = ""
        for array in arrays {
            unnestArgs = "\(fragment: unnestArgs)\(array)::text[], "
        }
        unnestArgs = "\(fragment: unnestArgs)\(oldArray)::text[], \(newArray)::text[]"
        let matches = target.keys.enumerated().map { index, key in
            "t.\(PostgresIdentifier.quote(key.name)) = v.k\(index)::\(key.type)"
        }.joined(separator: " AND ")
        // The batch's key range as an index condition, so the planner can read the range once
        // (merge join) instead of looking up every key.
        let tupleList = target.keys.map { "t.\(PostgresIdentifier.quote($0.name))" }.joined(separator: ", ")
        var low: PostgresQuery = ""
        var high: PostgresQuery = ""
        for (index, key) in target.keys.enumerated() {
            let separator = index == 0 ? "" : ", "
            low = "\(fragment: low)\(unsafeRaw: separator)\(changes[0].key[index])::\(unsafeRaw: key.type)"
            high = "\(fragment: high)\(unsafeRaw: separator)\(changes[changes.count - 1].key[index])::\(unsafeRaw: key.type)"
        }
        let range: PostgresQuery = "(\(unsafeRaw: tupleList)) >= (\(fragment: low)) AND (\(unsafeRaw: tupleList)) <= (\(fragment: high))"
        let update: PostgresQuery = """
            UPDATE \(unsafeRaw: relation) AS t SET \(unsafeRaw: column) = v.new_token
            FROM unnest(\(fragment: unnestArgs)) AS v(\(unsafeRaw: vNames.joined(separator: ", ")), old_token, new_token)
            WHERE \(unsafeRaw: matches) AND t.\(unsafeRaw: column) = v.old_token
              AND \(fragment: range)
            """
        var attempt = 0
        while true {
            do {
                return try connection.withTransaction {
                    try connection.execute("SELECT set_config('lock_timeout', \(Self.milliseconds(lockTimeout)), true)")
                    return try connection.execute(update)
                }
            } catch let error as PostgresError where error.sqlState == SQLState.lockNotAvailable && attempt < 3 {
                attempt += 1
                logger.info("batch waited longer than lock_timeout; retrying", metadata: ["attempt": .stringConvertible(attempt)])
                Thread.sleep(forTimeInterval: 0.2 * Double(attempt))
            }
        }
    }

    /// A PostgreSQL array literal of text elements, each double-quoted with `\` and `"` escaped.
    static func arrayLiteral(_ values: [String]) -> String {
        var out = "{"
        out.reserveCapacity(values.count * 110)
        for (index, value) in values.enumerated() {
            if index > 0 { out += "," }
            out += "\""
            if value.contains(where: { $0 == "\"" || $0 == "\\" }) {
                out += value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            } else {
                out += value
            }
            out += "\""
        }
        return out + "}"
    }
}
