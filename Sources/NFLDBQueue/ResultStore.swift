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
/// `queue.result_batch_size`) to share one commit. ``store(_:)`` returns only after the batch
/// committed, so the caller acknowledges the task in Redis after the row is durable.
///
/// The insert is `ON CONFLICT (task_id) DO UPDATE … WHERE status <> 'succeeded' AND the new fencing
/// token is larger`: a re-delivered task writes nothing; ``store(_:)`` reports that as `false`
/// (a duplicate delivery).
public final class ResultStore: Sendable {
    private struct Pending {
        var record: TaskResultRecord
        var done = false
        var inserted = false
        var error: String?
    }

    private struct State {
        var queue: [Int: Pending] = [:]
        var nextTicket = 0
        var stopped = false
    }

    private let state = Mutex(State())
    private let condition = NSCondition()
    private let options: ConnectionOptions
    private let batchSize: Int
    private let batchWait: Duration
    private let logger: Logger

    public init(options: ConnectionOptions, batchSize: Int, batchWait: Duration, logger: Logger) {
        self.options = options
        self.batchSize = batchSize
        self.batchWait = batchWait
        self.logger = logger
        let thread = Thread { [self] in self.loop() }
        thread.name = "nfldb-results"
        thread.start()
    }

    /// Stops the writer thread after the pending batch.
    public func stop() {
        condition.lock()
        state.withLock { $0.stopped = true }
        condition.broadcast()
        condition.unlock()
    }

    /// Queues the record, waits for its batch to commit. Returns true when the row was written,
    /// false when a succeeded row for the task already existed (a duplicate delivery).
    /// - Throws: ``QueueError`` naming the PostgreSQL failure; the caller must not ack the task.
    public func store(_ record: TaskResultRecord) throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let ticket = state.withLock { s -> Int in
            let t = s.nextTicket
            s.nextTicket += 1
            s.queue[t] = Pending(record: record)
            return t
        }
        condition.broadcast()
        while true {
            if let finished = state.withLock({ s -> Pending? in
                guard let p = s.queue[ticket], p.done else { return nil }
                s.queue[ticket] = nil
                return p
            }) {
                if let error = finished.error {
                    throw QueueError("could not store the result of task \(record.task.id) in nfl.task_results: \(error)",
                                     hint: "Check the database (nfldb ping) and that migration 0008 is applied; the task was not acknowledged and will be retried.")
                }
                return finished.inserted
            }
            if state.withLock({ $0.stopped }) {
                throw QueueError("the result writer stopped before task \(record.task.id) was stored; the task was not acknowledged")
            }
            condition.wait()
        }
    }

    private func loop() {
        var connection: PostgresConnection?
        while true {
            condition.lock()
            while state.withLock({ s in !s.stopped && !s.queue.values.contains { !$0.done } }) { condition.wait() }
            if state.withLock({ s in s.stopped && !s.queue.values.contains { !$0.done } }) {
                condition.unlock()
                connection?.close()
                return
            }
            let first = ContinuousClock.now
            // Let other results join the batch.
            while state.withLock({ s in s.queue.values.filter { !$0.done }.count }) < batchSize && ContinuousClock.now - first < batchWait {
                _ = condition.wait(until: Date().addingTimeInterval(0.001))
            }
            let batch = state.withLock { s in s.queue.filter { !$0.value.done }.sorted { $0.key < $1.key }.prefix(batchSize).map { ($0.key, $0.value.record) } }
            condition.unlock()

            var inserted: Set<String> = []
            var failure: String?
            do {
                if connection == nil || !(connection!.isAlive) {
                    connection?.close()
                    connection = try PostgresConnection.connect(options, logger: logger)
                }
                inserted = try write(batch.map(\.1), connection!)
            } catch {
                failure = String(describing: error)
                connection?.close()
                connection = nil
                logger.error("storing \(batch.count) task results failed", metadata: ["error": .string(failure!)])
            }
            condition.lock()
            state.withLock { s in
                for (ticket, record) in batch {
                    s.queue[ticket]?.done = true
                    s.queue[ticket]?.inserted = inserted.contains(record.task.id)
                    s.queue[ticket]?.error = failure
                }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// One statement (one commit) for the whole batch; returns the task ids written.
    func write(_ records: [TaskResultRecord], _ connection: PostgresConnection) throws -> Set<String> {
        // The same task twice in one batch (a re-delivery racing its first run): keep the newest token.
        var newest: [String: TaskResultRecord] = [:]
        for record in records where (newest[record.task.id]?.task.token ?? -1) < record.task.token { newest[record.task.id] = record }
        let rows: [[String: Any]] = newest.values.map { r in
            var row: [String: Any] = [
                "task_id": r.task.id, "queue": r.task.queue, "task_type": r.task.type, "attempts": r.task.attempt,
                "fencing_token": r.task.token, "worker": r.worker, "enqueued_ms": r.task.enqueuedMs,
                "payload": (try? JSONSerialization.jsonObject(with: Data(r.task.payload.utf8))) ?? [String: Any](),
                "result": (try? JSONSerialization.jsonObject(with: Data(r.result.utf8), options: [.fragmentsAllowed])) ?? r.result,
            ]
            if let key = r.task.idempotencyKey { row["idempotency_key"] = key }
            return row
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: rows), as: UTF8.self)
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
