import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import Synchronization

/// A succeeded task's durable record, as written to `nfl.task_results`.
public struct TaskResultRecord: Sendable {
    public var task: ClaimedTask
    public var worker: String
    public var result: String
    public init(task: ClaimedTask, worker: String, result: String) {
        self.task = task
        self.worker = worker
        self.result = result
    }
}

/// Writes succeeded results to `nfl.task_results` in batches on its own thread and PostgreSQL
/// connection: a result waits up to `queue.result_batch_wait` for others (at most
/// `queue.result_batch_size`) to share one statement and one commit; results that arrive while a
/// batch is being written form the next batch (group commit), so the writer never holds up the
/// threads that queue results.
///
/// ``submit(_:then:)`` queues a record and calls back after its batch committed (or failed), on the
/// writer thread; the worker acknowledges the task in Redis only then. ``store(_:)`` is the blocking form.
///
/// The insert is `ON CONFLICT (task_id) DO UPDATE … WHERE status <> 'succeeded' AND the new fencing
/// token is larger`: a re-delivered task writes nothing and is reported as not inserted (a duplicate
/// delivery).
public final class ResultStore: Sendable {
    /// What happened to one record: `inserted` false means a succeeded row already existed.
    public typealias Completion = @Sendable (_ inserted: Bool, _ error: QueueError?) -> Void

    private struct Item {
        var record: TaskResultRecord
        var completion: Completion
    }

    private struct State {
        var pending: [Item] = []
        var stopped = false
        var finished = false
    }

    private let monitor = Monitor(State())
    private let options: ConnectionOptions
    private let batchSize: Int
    private let batchWait: Duration
    private let logger: Logger
    private let afterBatch: (@Sendable (_ committed: Bool) -> Void)?

    /// - Parameter afterBatch: called on the writer thread after the completions of each batch.
    public init(options: ConnectionOptions, batchSize: Int, batchWait: Duration, logger: Logger,
                afterBatch: (@Sendable (_ committed: Bool) -> Void)? = nil) {
        self.options = options
        self.batchSize = max(1, batchSize)
        self.batchWait = batchWait
        self.logger = logger
        self.afterBatch = afterBatch
        let thread = Thread { [self] in self.loop() }
        thread.name = "nfldb-results"
        thread.start()
    }

    /// Stops the writer thread after the pending records are written.
    public func stop() {
        monitor.withLock { $0.stopped = true }
        monitor.broadcast()
    }

    /// Stops the writer and waits (up to `timeout`) until the pending records are written.
    public func stopAndWait(timeout: Duration) -> Bool {
        stop()
        let deadline = ContinuousClock.now + timeout
        return monitor.wait(until: deadline) { $0.finished }
    }

    /// Records waiting for their batch (not yet written).
    public var pendingCount: Int { monitor.withLock { $0.pending.count } }

    /// Queues the record; `completion` runs on the writer thread after its batch committed or failed.
    /// After ``stop()`` the completion is called at once with an error.
    public func submit(_ record: TaskResultRecord, then completion: @escaping Completion) {
        let (accepted, count) = monitor.withLock { s -> (Bool, Int) in
            guard !s.stopped else { return (false, 0) }
            s.pending.append(Item(record: record, completion: completion))
            return (true, s.pending.count)
        }
        guard accepted else {
            completion(false, QueueError("the result writer stopped before task \(record.task.id) was stored; the task was not acknowledged"))
            return
        }
        // The writer waits for a first record, or for a full batch.
        if count == 1 || count >= batchSize { monitor.broadcast() }
    }

    /// Queues the record, waits for its batch to commit. Returns true when the row was written,
    /// false when a succeeded row for the task already existed (a duplicate delivery).
    /// - Throws: ``QueueError`` naming the PostgreSQL failure; the caller must not ack the task.
    public func store(_ record: TaskResultRecord) throws -> Bool {
        let done = Monitor<(Bool, QueueError?)?>(nil)
        submit(record) { inserted, error in
            done.withLock { $0 = (inserted, error) }
            done.broadcast()
        }
        _ = done.wait(until: .now + .seconds(3600)) { $0 != nil }
        let answer: (Bool, QueueError?) = done.withLock { $0 } ?? (false, QueueError("the result writer did not answer within an hour"))
        let (inserted, error) = answer
        if let error { throw error }
        return inserted
    }

    private func loop() {
        var connection: PostgresConnection?
        while true {
            // Wait for a first record, then (up to batchWait) for a full batch.
            _ = monitor.wait(until: .now + .seconds(3600)) { !$0.pending.isEmpty || $0.stopped }
            let first = ContinuousClock.now
            _ = monitor.wait(until: first + batchWait) { $0.pending.count >= batchSize || $0.stopped }
            let batch = monitor.withLock { s -> [Item]? in
                if s.pending.isEmpty {
                    if s.stopped { s.finished = true; return nil }
                    return []
                }
                let n = min(batchSize, s.pending.count)
                let batch = Array(s.pending.prefix(n))
                s.pending.removeFirst(n)
                return batch
            }
            guard let batch else {
                monitor.broadcast()
                connection?.close()
                return
            }
            if batch.isEmpty { continue }

            var inserted: Set<String> = []
            var failure: QueueError?
            var rowFailures: [Int: QueueError] = [:]
            do {
                if connection == nil || !(connection!.isAlive) {
                    connection?.close()
                    connection = try PostgresConnection.connect(options, logger: logger)
                }
                inserted = try write(batch.map(\.record), connection!)
            } catch let error as PostgresError where batch.count > 1 && Self.isDataError(error) && connection?.isAlive == true {
                // One row PostgreSQL rejects (a \u0000 in a payload, a key too large for its index…) must not fail
                // the others: write them one by one; only the rejected rows fail, permanently.
                logger.warning("a batch of \(batch.count) task results was rejected (SQLSTATE \(error.sqlState ?? "?")); writing them one by one",
                               metadata: ["error": .string(error.message)])
                for (index, item) in batch.enumerated() {
                    do {
                        inserted.formUnion(try write([item.record], connection!))
                    } catch let error as PostgresError where Self.isDataError(error) && connection?.isAlive == true {
                        rowFailures[index] = Self.rejected(item.record, error)
                    } catch {
                        failure = Self.transient(error)
                        break
                    }
                }
                if failure != nil {
                    connection?.close()
                    connection = nil
                }
            } catch let error as PostgresError where Self.isDataError(error) && connection?.isAlive == true {
                rowFailures[0] = Self.rejected(batch[0].record, error)
            } catch {
                failure = Self.transient(error)
                connection?.close()
                connection = nil
            }
            if let failure { logger.error("storing \(batch.count) task results failed", metadata: ["error": .string(failure.diagnostic.summary)]) }
            for (index, item) in batch.enumerated() {
                if let rejected = rowFailures[index] {
                    logger.error("task result rejected by PostgreSQL; the task is dead-lettered", metadata: [
                        "task_id": .string(item.record.task.id), "error": .string(rejected.diagnostic.summary)])
                    item.completion(false, rejected)
                } else {
                    item.completion(failure == nil && inserted.contains(item.record.task.id), failure)
                }
            }
            afterBatch?(failure == nil && rowFailures.count < batch.count)
        }
    }

    /// Errors about the data of a row (SQLSTATE classes 22 data exception, 23 integrity constraint, 54 program
    /// limit exceeded such as an index row too large): writing it again cannot succeed.
    static func isDataError(_ error: PostgresError) -> Bool {
        guard let state = error.sqlState, state.count == 5 else { return false }
        return ["22", "23", "54"].contains(String(state.prefix(2)))
    }

    private static func rejected(_ record: TaskResultRecord, _ error: PostgresError) -> QueueError {
        // A unique violation is a race (another worker committed the same idempotency key a moment ago):
        // written again, the key is stored as NULL. Retried, not dead-lettered.
        if error.sqlState == "23505" { return transient(error) }
        var failure = QueueError(
            "PostgreSQL rejected the result row of task \(record.task.id) (SQLSTATE \(error.sqlState ?? "?")): \(error.message)",
            hint: "The task's payload, result or idempotency key cannot be stored; fix the producer and submit it again.")
        failure.permanent = true
        return failure
    }

    private static func transient(_ error: any Error) -> QueueError {
        QueueError("could not store the result in nfl.task_results: \(error)",
                   hint: "Check the database (nfldb ping) and that migration 0008 is applied; the task was not acknowledged and will be retried.")
    }

    /// One statement (one commit) for the whole batch; returns the task ids written.
    func write(_ records: [TaskResultRecord], _ connection: PostgresConnection) throws -> Set<String> {
        // The same task twice in one batch (a re-delivery racing its first run): keep the newest token.
        var newest: [String: Int] = [:]
        for (index, record) in records.enumerated() where newest[record.task.id].map({ records[$0].task.token < record.task.token }) ?? true {
            newest[record.task.id] = index
        }
        // The rows as one JSON array, built directly: payload and result are embedded as JSON when they
        // parse as JSON (the payload always should), otherwise as JSON strings.
        var json = "["
        json.reserveCapacity(records.count * 256)
        var firstRow = true
        for (index, r) in records.enumerated() where newest[r.task.id] == index {
            if !firstRow { json += "," }
            firstRow = false
            json += "{\"task_id\":"
            JSONText.appendString(r.task.id, to: &json)
            json += ",\"idempotency_key\":"
            if let key = r.task.idempotencyKey { JSONText.appendString(key, to: &json) } else { json += "null" }
            json += ",\"queue\":"
            JSONText.appendString(r.task.queue, to: &json)
            json += ",\"task_type\":"
            JSONText.appendString(r.task.type, to: &json)
            json += ",\"attempts\":\(r.task.attempt),\"fencing_token\":\(r.task.token),\"enqueued_ms\":\(r.task.enqueuedMs),\"worker\":"
            JSONText.appendString(r.worker, to: &json)
            json += ",\"payload\":"
            json += JSONText.isJSONObject(r.task.payload) ? r.task.payload : "{}"
            json += ",\"result\":"
            if JSONText.isJSON(r.result) { json += r.result } else { JSONText.appendString(r.result, to: &json) }
            json += "}"
        }
        json += "]"
        let result = try connection.query("""
            INSERT INTO nfl.task_results AS t
                (task_id, idempotency_key, queue, task_type, status, attempts, fencing_token, worker, payload, result, enqueued_at, finished_at)
            SELECT r.task_id,
                   CASE WHEN EXISTS (SELECT 1 FROM nfl.task_results o WHERE o.idempotency_key = r.idempotency_key AND o.task_id <> r.task_id)
                        THEN NULL ELSE r.idempotency_key END,
                   r.queue, r.task_type, 'succeeded', r.attempts, r.fencing_token, r.worker, r.payload, r.result,
                   to_timestamp(r.enqueued_ms / 1000.0), clock_timestamp()
            FROM jsonb_to_recordset(\(json)::jsonb) AS r(task_id text, idempotency_key text, queue text, task_type text, attempts integer,
                 fencing_token bigint, worker text, payload jsonb, result jsonb, enqueued_ms bigint)
            ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                fencing_token = EXCLUDED.fencing_token, worker = EXCLUDED.worker, result = EXCLUDED.result,
                error = NULL, finished_at = EXCLUDED.finished_at
            WHERE t.status <> 'succeeded' AND EXCLUDED.fencing_token > t.fencing_token
            RETURNING task_id
            """)
        return Set(result.rows.compactMap { $0["task_id"] })
    }
}

/// Small JSON helpers for building the result rows without a parse/serialize round trip.
enum JSONText {
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        var plain = true
        for unit in text.utf8 where unit < 0x20 || unit == 0x22 || unit == 0x5C { plain = false; break }
        if plain {
            out += text
        } else {
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
                }
            }
        }
        out += "\""
    }

    /// True when `text` parses as JSON (any value). "{}" and "[]" are answered without parsing.
    static func isJSON(_ text: String) -> Bool {
        if text == "{}" || text == "[]" { return true }
        if text.utf8.contains(0) { return false }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
    }

    static func isJSONObject(_ text: String) -> Bool {
        if text == "{}" { return true }
        if text.utf8.contains(0) { return false }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any]
    }
}

/// A value guarded by a condition variable: ``withLock(_:)`` changes it, ``wait(until:_:)`` sleeps
/// until a predicate over it holds (woken by ``broadcast()``).
final class Monitor<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body(&value)
    }

    func broadcast() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `predicate` holds or `deadline` passes; returns whether it holds.
    @discardableResult
    func wait(until deadline: ContinuousClock.Instant, _ predicate: (inout Value) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !predicate(&value) {
            let left = deadline - .now
            if left <= .zero { return false }
            let seconds = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
            _ = condition.wait(until: Date().addingTimeInterval(min(seconds, 3600)))
        }
        return true
    }
}
