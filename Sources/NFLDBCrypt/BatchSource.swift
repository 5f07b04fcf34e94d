import Foundation
import Logging
import NFLDBCore
import NFLDBFernet
import NFLDBPostgres
import Synchronization

/// Where the rotator's batches come from.
protocol BatchSource {
    func next() throws -> ColumnRotator.Batch?
    func stop()
}

/// Reads and re-encrypts on the writer's own connection, one batch at a time.
final class InlineSource: BatchSource {
    let reader: ColumnRotator.BatchReader
    let connection: PostgresConnection
    var last: [String]?
    var done = false

    init(reader: ColumnRotator.BatchReader, connection: PostgresConnection) {
        self.reader = reader
        self.connection = connection
    }

    func next() throws -> ColumnRotator.Batch? {
        guard !done, let batch = try reader.next(after: last, on: connection) else {
            done = true
            return nil
        }
        last = batch.lastKey
        return batch
    }

    func stop() {}
}

/// Reads, re-encrypts, verifies and builds each batch's UPDATE on a second connection in a
/// background thread, at most two batches ahead, so that all the client's work overlaps the server's
/// UPDATE of the previous batch (the writer only sends). The reader holds no
/// lock and no transaction; the writer's conditional UPDATE still protects concurrent changes.
final class PipelinedSource: BatchSource, Sendable {
    private let queue = Mutex<[Result<ColumnRotator.Batch?, any Error>]>([])
    private let available = DispatchSemaphore(value: 0)
    /// Free read-ahead slots (two). Created at 0 and signalled twice in `init`: libdispatch traps
    /// (SIGILL in `_dispatch_semaphore_dispose`) when a semaphore is freed below its initial value,
    /// which is what a writer that fails mid-run leaves (the reader holds slots it never gives back).
    private let space = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(target: ColumnRotator.Target, options: RotationOptions, ring: KeyRing, connectionOptions: ConnectionOptions, logger: Logger) throws {
        space.signal()
        space.signal()
        let thread = Thread { [self] in
            defer { finished.signal() }
            do {
                let connection = try PostgresConnection.connect(connectionOptions, logger: logger)
                defer { connection.close() }
                try connection.execute("SELECT set_config('lock_timeout', \(ColumnRotator.milliseconds(options.lockTimeout)), false)")
                let reader = ColumnRotator.BatchReader(target: target, options: options, multi: try ring.multiFernet(), logger: logger)
                var last: [String]?
                while true {
                    space.wait()
                    if stopped.load(ordering: .acquiring) { return }
                    let batch = try reader.next(after: last, on: connection)
                    push(.success(batch))
                    guard let batch, batch.rowCount == options.batchSize else { return }
                    last = batch.lastKey
                }
            } catch {
                push(.failure(error))
            }
        }
        thread.name = "nfldb-crypt-reader"
        thread.start()
    }

    private func push(_ item: Result<ColumnRotator.Batch?, any Error>) {
        queue.withLock { $0.append(item) }
        available.signal()
    }

    func next() throws -> ColumnRotator.Batch? {
        available.wait()
        let item = queue.withLock { $0.removeFirst() }
        space.signal()
        return try item.get()
    }

    /// Tells the reader to stop and waits for it (its connection closed).
    func stop() {
        stopped.store(true, ordering: .releasing)
        space.signal()
        finished.wait()
    }
}
