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
/// conditional on the old token (`… AND col IS NOT DISTINCT FROM old`), so a value the application changed meanwhile is
/// never overwritten. A row no key opens is reported by its primary key and left unchanged.
public final class ColumnRotator {
    let connection: PostgresConnection
    let ring: KeyRing
    let logger: Logger

    let readerOptions: ConnectionOptions?

    /// Tests only: called on the writing thread just before a batch's `UPDATE` is sent, with the
    /// batch's number (from 1), e.g. to change rows the reader has already read.
    var beforeWrite: ((Int) throws -> Void)?

    /// - Parameter readerOptions: when given, batches are read and re-encrypted on a second
    ///   connection in a background thread, one batch ahead of the writes on `connection`.
    public init(connection: PostgresConnection, ring: KeyRing, logger: Logger, readerOptions: ConnectionOptions? = nil) {
        self.connection = connection
        self.ring = ring
        self.logger = logger
        self.readerOptions = readerOptions
    }

    struct Target: Sendable {
        let schema: String
        let table: String
        let column: String
        let keys: [KeyColumn]
        let estimatedRows: Int
        /// A bytea column holding the token's ASCII bytes (read with `encode(…, 'escape')`, so a
        /// stray non-UTF-8 value is reported as undecryptable, not a failed batch).
        var isBytea = false

        /// The column as text in the SELECT.
        var readExpression: String {
            isBytea ? "encode(\(PostgresIdentifier.quote(column)), 'escape')" : PostgresIdentifier.quote(column)
        }

        var relation: String { "\(PostgresIdentifier.quote(schema)).\(PostgresIdentifier.quote(table))" }

        func describe(_ key: [String]) -> String {
            zip(keys.map(\.name), key).map { "\($0)=\($1)" }.joined(separator: ", ")
        }
    }

    struct KeyColumn: Sendable {
        let name: String
        let type: String
        /// An integer column: its values (digits and a sign) travel space-separated, like tokens.
        var isInteger: Bool { ["smallint", "integer", "bigint"].contains(type) }
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
        // Batches commit without waiting for their WAL flush (synchronous_commit off, this session
        // only): a crash can lose the last few batches whole, never part of one, and those rows still
        // hold their old tokens, which the old key opens and a re-run rotates. Before the run reports
        // anything, one synchronous commit flushes the WAL up to the last batch (WAL is flushed in
        // order), so a completed run is as durable as a plain UPDATE.
        try connection.execute("SELECT set_config('synchronous_commit', 'off', false)")
        try connection.withAdvisoryLock(lock, wait: options.lockWait, waitSetting: "--lock-wait") {
            do {
                try rotate(target, options: options, report: &report, progress: progress)
            } catch {
                try? Self.flushWAL(connection)  // keep what was written before the failure
                throw error
            }
            try Self.flushWAL(connection)
        }
        report.seconds = (ContinuousClock.now - started).inSeconds
        return report
    }

    /// Commits a transaction with an xid under `synchronous_commit = on`: returns once the WAL up to
    /// it (so every earlier asynchronous batch) is flushed. Then restores synchronous commits.
    static func flushWAL(_ connection: PostgresConnection) throws {
        try connection.withTransaction {
            try connection.execute("SELECT set_config('synchronous_commit', 'on', true)")
            try connection.execute("SELECT pg_current_xact_id()")
        }
        try connection.execute("SELECT set_config('synchronous_commit', 'on', false)")
    }

    static func milliseconds(_ duration: Duration) -> String { "\(Int((duration.inSeconds * 1000).rounded()))ms" }

    // MARK: Catalog

    func resolve(_ options: RotationOptions) throws -> Target {
        let hint = "Give the name as in SQL: schema.table, with double quotes around names that have capitals, spaces or quotes (\"My Schema\".\"Card \"\"Data\"\"\")."
        let relation: PostgresRow?
        do {
            relation = try connection.query("""
                SELECT c.oid::int8 AS oid, n.nspname, c.relname, c.relkind::text AS relkind, greatest(c.reltuples, 0)::int8 AS estimate
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.oid = to_regclass(\(options.table))
                """).rows.first
        } catch let error as PostgresError where error.sqlState == "42602" || error.sqlState == "42601" {
            throw OperatorError("crypt rotate: --table \(options.table) is not a valid table name (\(error.message))", hint: hint, exitStatus: .usage)
        }
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
        let isBytea = column["type"] == "bytea"
        guard column["category"] == "S" || isBytea else {
            throw OperatorError(
                "crypt rotate: \(schema).\(table).\(options.column) is \(column["type"] ?? "?"), not a text type or bytea",
                hint: "Fernet tokens are stored as text (text or varchar) or as their bytes (bytea); convert the column first.", exitStatus: .usage)
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
        let keys = keyRows.map { KeyColumn(name: $0["attname"] ?? "", type: $0["type"] ?? "text") }
        if keys.contains(where: { $0.name == options.column }) {
            throw OperatorError("crypt rotate: \(options.column) is part of the primary key of \(schema).\(table)", hint: "Encrypted values cannot be keys (every encryption differs).", exitStatus: .usage)
        }
        var target = Target(schema: schema, table: table, column: options.column, keys: keys, estimatedRows: Int(try relation.decode("estimate", as: Int64.self)))
        target.isBytea = isBytea
        return target
    }

    // MARK: Batches

    /// One batch read and re-encrypted, with its `UPDATE` built and ready to send.
    struct Batch: Sendable {
        var rowCount = 0
        var nulls = 0
        var alreadyCurrent = 0
        /// Rows the `update` re-encrypts (if each is still the version that was read).
        var changeCount = 0
        var update: PostgresQuery?
        var undecryptable: [UndecryptableRow] = []
        var openedCount: [Int]
        var lastKey: [String] = []
        var readTime: Duration = .zero
        var cryptoTime: Duration = .zero
    }

    /// Reads the batch after `last` (keyset pagination, no transaction: nothing is held between
    /// batches), re-encrypts it in memory and builds its `UPDATE`. Used inline, or on the reader
    /// thread, where all of this overlaps the previous batch's write.
    ///
    /// Not thread-safe (its ``MultiFernet`` and buffers): one per thread.
    final class BatchReader {
        let target: Target
        let options: RotationOptions
        let multi: MultiFernet
        let logger: Logger
        /// Plaintext of the current row, and of its new token decrypted back (verification).
        private var plain: [UInt8] = []
        private var check: [UInt8] = []

        init(target: Target, options: RotationOptions, multi: MultiFernet, logger: Logger) {
            self.target = target
            self.options = options
            self.multi = multi
            self.logger = logger
        }

        func next(after last: [String]?, on connection: PostgresConnection) throws -> Batch? {
            let keyList = target.keys.map { PostgresIdentifier.quote($0.name) }.joined(separator: ", ")
            var select = PostgresQuery(unsafeSQL: "SELECT \(keyList), \(target.readExpression) FROM \(target.relation)")
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
            if rows.isEmpty { return nil }
            let keyCount = target.keys.count
            var batch = Batch(openedCount: Array(repeating: 0, count: multi.fernets.count))
            batch.rowCount = rows.count
            var oldTokens = TokenList(), newTokens = TokenList()
            var keys = Array(repeating: ArrayLiteral(), count: keyCount)
            var integerKeys = Array(repeating: TokenList(), count: keyCount)
            oldTokens.reserve(rows.count * (Fernet.tokenLength(plaintextCount: 32) + 1))
            newTokens.reserve(rows.count * (Fernet.tokenLength(plaintextCount: 32) + 1))
            var firstKey: [String] = [], lastKey: [String] = []
            for row in rows {
                guard var token = row.values[keyCount] else {
                    batch.nulls += 1
                    continue
                }
                let opened = token.withUTF8 { reencrypt(UnsafeRawBufferPointer($0), into: &newTokens) }
                switch opened {
                case .alreadyCurrent:
                    batch.alreadyCurrent += 1
                case .undecryptable(let error):
                    let key = target.describe((0..<keyCount).map { row.values[$0] ?? "" })
                    batch.undecryptable.append(UndecryptableRow(key: key, reason: error.description))
                    logger.warning("row not decryptable with any key; left unchanged", metadata: ["row": .string(key), "reason": .string(error.description)])
                case .verificationFailed:
                    throw OperatorError(
                        "crypt rotate: a new token did not decrypt back to its value (row \(target.describe((0..<keyCount).map { row.values[$0] ?? "" })))",
                        hint: "Nothing was written for this batch; report this as a bug.")
                case .rotated(let keyIndex):
                    batch.openedCount[keyIndex] += 1
                    batch.changeCount += 1
                    let key = (0..<keyCount).map { row.values[$0] ?? "" }
                    for index in 0..<keyCount {
                        if target.keys[index].isInteger { integerKeys[index].append(key[index]) } else { keys[index].append(key[index]) }
                    }
                    oldTokens.append(token)
                    if firstKey.isEmpty { firstKey = key }
                    lastKey = key
                }
            }
            batch.lastKey = (0..<keyCount).map { rows[rows.count - 1].values[$0] ?? "" }
            if batch.changeCount > 0 {
                let keyLists = (0..<keyCount).map { target.keys[$0].isInteger ? integerKeys[$0].finish() : keys[$0].finish() }
                batch.update = makeUpdate(keys: keyLists, oldTokens: oldTokens.finish(), newTokens: newTokens.finish(), low: firstKey, high: lastKey)
            }
            batch.readTime = t1 - t0
            batch.cryptoTime = ContinuousClock.now - t1
            return batch
        }

        enum Outcome {
            case alreadyCurrent
            case rotated(keyIndex: Int)
            case undecryptable(FernetError)
            case verificationFailed
        }

        /// Opens `token` with any key; unless the newest key opened it, encrypts the plaintext under
        /// the newest key with the token's timestamp, straight into `tokens`, and checks that the new
        /// token decrypts with the newest key to the same bytes (else it is taken back out).
        func reencrypt(_ token: UnsafeRawBufferPointer, into tokens: inout TokenList) -> Outcome {
            let limit = Fernet.maxPlaintextLength(tokenLength: token.count)
            if plain.count < limit { plain = [UInt8](repeating: 0, count: limit * 2) }
            let opened: (count: Int, keyIndex: Int, timestamp: Int64)
            do {
                opened = try plain.withUnsafeMutableBytes { buffer in try multi.decryptReportingKey(token, into: buffer) }
            } catch let error as FernetError {
                return .undecryptable(error)
            } catch {
                return .undecryptable(.library("\(error)"))
            }
            if opened.keyIndex == 0 { return .alreadyCurrent }
            let length = Fernet.tokenLength(plaintextCount: opened.count)
            if check.count < length { check = [UInt8](repeating: 0, count: length * 2) }
            let primary = multi.primary
            let written = plain.withUnsafeBytes { all in
                let value = UnsafeRawBufferPointer(rebasing: all[0..<opened.count])
                return check.withUnsafeMutableBytes { check in
                    tokens.appendElement(upTo: length) { out -> Int in
                        guard let count = try? primary.encrypt(value, into: out, now: opened.timestamp), count == length else { return 0 }
                        // Verify before writing: the new token must open with the newest key to the same bytes.
                        guard let back = try? primary.decrypt(UnsafeRawBufferPointer(rebasing: out[0..<count]), into: check), back == value.count,
                            value.isEmpty || memcmp(check.baseAddress!, value.baseAddress!, back) == 0
                        else { return 0 }
                        return count
                    }
                }
            }
            // (A failed verification fails the whole batch: the token left in the list is never sent.)
            if written != length { return .verificationFailed }
            return .rotated(keyIndex: opened.keyIndex)
        }

        /// One statement (its own transaction): `UPDATE … FROM unnest(…)`, each row written only
        /// where its value is still the old token, so a value the application changed meanwhile is
        /// left alone (a re-run picks it up). The batch's key range is an index condition, so the
        /// planner reads the range once (and hashes the batch) instead of looking up every key. The
        /// old token is compared with `IS NOT DISTINCT FROM` (the same as `=` here: it is never NULL),
        /// which is not hashable, so the join hashes only the key and compares the 100-odd-byte
        /// tokens once per matched row instead of hashing both sides' tokens.
        ///
        /// The tokens travel as one space-separated text parameter each, split by `string_to_array`:
        /// a token that a key opened is URL-safe base64, with no space, quote or backslash, and
        /// splitting costs the server a fraction of parsing a `text[]` literal (`array_in`), which was
        /// a third of the statement's CPU time. Integer keys travel the same way (cast to their type
        /// once); other key values can be any text, so they are a `text[]` literal.
        func makeUpdate(keys: [String], oldTokens: String, newTokens: String, low: [String], high: [String]) -> PostgresQuery {
            var names: [String] = []
            var args: PostgresQuery = ""
            for (index, list) in keys.enumerated() {
                names.append("k\(index)")
                let key = target.keys[index]
                args = key.isInteger
                    ? "\(fragment: args)string_to_array(\(list), ' ')::\(unsafeRaw: key.type)[], "
                    : "\(fragment: args)\(list)::text[], "
            }
            names += ["old_token", "new_token"]
            args = "\(fragment: args)string_to_array(\(oldTokens), ' '), string_to_array(\(newTokens), ' ')"
            let matches = target.keys.enumerated().map { index, key in
                "t.\(PostgresIdentifier.quote(key.name)) = v.k\(index)" + (key.isInteger ? "" : "::\(key.type)")
            }.joined(separator: " AND ")
            let tupleList = target.keys.map { "t.\(PostgresIdentifier.quote($0.name))" }.joined(separator: ", ")
            var lowList: PostgresQuery = ""
            var highList: PostgresQuery = ""
            for (index, key) in target.keys.enumerated() {
                let separator = index == 0 ? "" : ", "
                lowList = "\(fragment: lowList)\(unsafeRaw: separator)\(low[index])::\(unsafeRaw: key.type)"
                highList = "\(fragment: highList)\(unsafeRaw: separator)\(high[index])::\(unsafeRaw: key.type)"
            }
            // bytea: the token's bytes; the old value compared exactly (escape format round-trips).
            let newValue = target.isBytea ? "convert_to(v.new_token, 'UTF8')" : "v.new_token"
            let oldValue = target.isBytea ? "decode(v.old_token, 'escape')" : "v.old_token"
            let column = PostgresIdentifier.quote(target.column)
            return """
                UPDATE \(unsafeRaw: target.relation) AS t SET \(unsafeRaw: column) = \(unsafeRaw: newValue)
                FROM unnest(\(fragment: args)) AS v(\(unsafeRaw: names.joined(separator: ", ")))
                WHERE \(unsafeRaw: matches) AND t.\(unsafeRaw: column) IS NOT DISTINCT FROM \(unsafeRaw: oldValue)
                  AND (\(unsafeRaw: tupleList)) >= (\(fragment: lowList)) AND (\(unsafeRaw: tupleList)) <= (\(fragment: highList))
                """
        }
    }

    private func rotate(_ target: Target, options: RotationOptions, report: inout RotationReport, progress: (RotationProgress) -> Void) throws {
        var openedCount = [Int](repeating: 0, count: ring.keys.count)
        defer {
            report.openedBy = zip(ring.references, openedCount).filter { $0.1 > 0 }.map { KeyCount(reference: $0.0.description, rows: $0.1) }
        }
        let source: any BatchSource
        if let readerOptions {
            source = try PipelinedSource(target: target, options: options, ring: ring, connectionOptions: readerOptions, logger: logger)
        } else {
            source = InlineSource(reader: BatchReader(target: target, options: options, multi: try ring.multiFernet(), logger: logger), connection: connection)
        }
        defer { source.stop() }
        var waitStarted = ContinuousClock.now
        while let batch = try source.next() {
            let waited = ContinuousClock.now - waitStarted
            defer { waitStarted = ContinuousClock.now }
            report.batches += 1
            report.scanned += batch.rowCount
            report.nulls += batch.nulls
            report.alreadyCurrent += batch.alreadyCurrent
            report.undecryptableCount += batch.undecryptable.count
            report.undecryptable += batch.undecryptable.prefix(max(0, options.reportLimit - report.undecryptable.count))
            for (index, count) in batch.openedCount.enumerated() { openedCount[index] += count }
            if let update = batch.update {
                try beforeWrite?(report.batches)
                let started = ContinuousClock.now
                let written = try write(update)
                report.rotated += written
                report.changedConcurrently += batch.changeCount - written
                let ms: (Duration) -> Logger.MetadataValue = { .stringConvertible(Int($0.inMilliseconds.rounded())) }
                logger.debug("batch", metadata: [
                    "rows": .stringConvertible(batch.rowCount), "read_ms": ms(batch.readTime), "crypto_ms": ms(batch.cryptoTime), "wait_ms": ms(waited),
                    "write_ms": ms(ContinuousClock.now - started),
                ])
            }
            progress(RotationProgress(scanned: report.scanned, rotated: report.rotated, estimatedRows: target.estimatedRows))
            if batch.rowCount < options.batchSize { break }
        }
    }


    /// Sends a batch's `UPDATE` (autocommit: one statement, one transaction, one round trip; the
    /// session's lock_timeout applies). A lock timeout is retried three times (the batch is small);
    /// then the run stops, resumable.
    private func write(_ update: PostgresQuery) throws -> Int {
        var attempt = 0
        while true {
            do {
                return try connection.execute(update)
            } catch let error as PostgresError where error.sqlState == SQLState.lockNotAvailable && attempt < 3 {
                attempt += 1
                logger.info("batch waited longer than lock_timeout; retrying", metadata: ["attempt": .stringConvertible(attempt)])
                Thread.sleep(forTimeInterval: 0.2 * Double(attempt))
            }
        }
    }

}

/// A PostgreSQL array literal of text elements (`{"a","b\\"c"}`), built over UTF-8 bytes: iterating
/// `Character`s (grapheme clusters) here cost more per batch than the server's UPDATE of it.
struct ArrayLiteral {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]
    private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

    /// Appends one element, double-quoted, with `\\` and `"` escaped.
    mutating func append(_ value: String) {
        openElement()
        for byte in value.utf8 {
            if byte == Self.quote || byte == Self.backslash { bytes.append(Self.backslash) }
            bytes.append(byte)
        }
        bytes.append(Self.quote)
    }

    private mutating func openElement() {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(Self.quote)
    }

    func finish() -> String { String(decoding: bytes + [UInt8(ascii: "}")], as: UTF8.self) }
}

/// Fernet tokens separated by spaces, for `string_to_array(…, ' ')` on the server. Only for values
/// that a key opened (URL-safe base64 and `=`: no space can occur).
struct TokenList {
    private var bytes: [UInt8] = []

    mutating func reserve(_ count: Int) { bytes.reserveCapacity(count) }

    mutating func append(_ token: String) {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
        bytes.append(contentsOf: token.utf8)
    }

    /// Appends one token written by `body` (up to `count` bytes; it returns how many it kept).
    mutating func appendElement(upTo count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        let written = bytes.withUnsafeMutableBytes { body(UnsafeMutableRawBufferPointer(rebasing: $0[start..<start + count])) }
        bytes.removeLast(count - written)
        return written
    }

    func finish() -> String { String(decoding: bytes, as: UTF8.self) }
}
