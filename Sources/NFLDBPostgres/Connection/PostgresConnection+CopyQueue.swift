import CLibPQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One `COPY … FROM STDIN` with all of its data, run by a ``CopyQueue``.
public struct QueuedCopy {
    public let query: PostgresQuery
    public let data: [UInt8]
    /// What the COPY is, for errors and logs (`nfl.games batch 3`).
    public let label: String
    /// Describes line n (1-based) of `data` for an error the server reports at that line
    /// (`input row 2017, line 2018`); nil keeps the server's own line number only.
    public let describeLine: ((Int) -> String?)?
    /// Called with the row count (`COPY n`) once the server has finished this COPY.
    public let completion: ((Int) -> Void)?

    public init(_ query: PostgresQuery, data: [UInt8], label: String,
                describeLine: ((Int) -> String?)? = nil, completion: ((Int) -> Void)? = nil) {
        self.query = query
        self.data = data
        self.label = label
        self.describeLine = describeLine
        self.completion = completion
    }
}

/// Runs `COPY … FROM STDIN` statements one after another while the caller keeps working, so the
/// server's COPY overlaps the client's own work (parsing and validating the next batch).
/// Obtained from ``PostgresConnection/withCopyQueue(_:)``.
///
/// The connection is in libpq's nonblocking mode while the queue exists; the queue advances only
/// when the caller calls ``poll()`` (cheap: a send or a receive that does not wait) or
/// ``waitUntilDone()``. Copies run in the order they were enqueued, one at a time (the protocol
/// allows one COPY in progress per connection). The first failure (a server error, or a lost
/// connection) stops the queue: later copies are not sent, and every later call throws that
/// error, naming the copy's label and, where the server named a line, what that line was.
///
/// Nothing else may use the connection while a copy is in progress: call ``waitUntilDone()``
/// before running another statement on it.
public final class CopyQueue {
    private let connection: PostgresConnection
    private var waiting: [QueuedCopy] = []
    private var nextWaiting = 0
    private var current: QueuedCopy?
    private var state = State.idle
    private var sent = 0
    private var endSent = false
    private var rows = 0
    private var serverError: PostgresError?
    private var failure: PostgresError?
    private var aborting = false
    /// libpq still holds bytes the socket did not take (wait for writability too).
    private var outputPending = false
    /// Bytes given to libpq per `PQputCopyData` (one CopyData message): the server parses a
    /// message only once all of it has arrived, so a 16 MiB batch goes out in pieces.
    private let chunk = 256 * 1024

    private enum State { case idle, starting, sending, finishing }

    fileprivate init(connection: PostgresConnection) {
        self.connection = connection
    }

    private var handle: OpaquePointer { connection.handle }

    /// Copies enqueued and not yet finished by the server (the one in progress included).
    public var pending: Int { waiting.count - nextWaiting + (current == nil ? 0 : 1) }

    /// Adds a copy behind the others and starts it when the connection is free.
    ///
    /// - Throws: the queue's first failure, if one happened; a copy with bound values (COPY takes none).
    public func enqueue(_ copy: QueuedCopy) throws {
        if let failure { throw failure }
        try PostgresConnection.refuseBinds(copy.query, dataVia: "the copy's data")
        waiting.append(copy)
        try poll()
    }

    /// Moves the queue forward as far as it can without waiting: sends what the socket takes,
    /// reads what the server has answered, finishes and starts copies.
    ///
    /// - Throws: ``PostgresError`` of the first copy that failed (kind `.connection` when the
    ///   connection was lost), with `location` naming the copy and the failing line.
    public func poll() throws {
        if let failure { throw failure }
        while true {
            switch state {
            case .idle:
                guard nextWaiting < waiting.count else {
                    waiting.removeAll(keepingCapacity: true)
                    nextWaiting = 0
                    return
                }
                let copy = waiting[nextWaiting]
                nextWaiting += 1
                if nextWaiting > 64 { waiting.removeFirst(nextWaiting); nextWaiting = 0 }
                current = copy
                sent = 0
                endSent = false
                rows = 0
                serverError = nil
                guard PQsendQuery(handle, copy.query.sql) == 1 else {
                    return try fail(connection.connectionError(statement: copy.query.sql))
                }
                state = .starting
            case .starting:
                guard try inputReady() else { return }
                let copy = current!
                guard let result = PQgetResult(handle) else {
                    return try fail(PostgresError(kind: .protocolViolation, message: "the server sent no response to the COPY statement")
                        .withStatement(copy.query.sql))
                }
                serverError = connection.copyStartError(result, statement: copy.query.sql)
                PQclear(result)
                state = serverError == nil ? .sending : .finishing
            case .sending:
                let copy = current!
                let flushed = PQflush(handle)
                if flushed < 0 { return try fail(connection.connectionError(statement: copy.query.sql)) }
                if flushed == 1 { return }  // the socket is full: the server is still reading
                if endSent {
                    state = .finishing
                } else if aborting {
                    guard PQputCopyEnd(handle, "aborted by nfldb: the caller stopped before all of this COPY's data was sent") >= 0 else {
                        return try fail(connection.connectionError(statement: copy.query.sql))
                    }
                    endSent = true
                } else if sent < copy.data.count {
                    let end = min(copy.data.count, sent + chunk)
                    let status = copy.data.withUnsafeBufferPointer { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress! + sent, Int32(end - sent)) }
                    }
                    if status < 0 { return try fail(connection.connectionError(statement: copy.query.sql)) }
                    if status == 0 { return }  // libpq could not buffer it now; next poll
                    sent = end
                } else {
                    let status = PQputCopyEnd(handle, nil)
                    if status < 0 { return try fail(connection.connectionError(statement: copy.query.sql)) }
                    if status == 0 { return }
                    endSent = true
                }
            case .finishing:
                guard try inputReady() else { return }
                let copy = current!
                if let result = PQgetResult(handle) {
                    let status = PQresultStatus(result)
                    if status == PGRES_COMMAND_OK {
                        rows = PostgresResult.affectedRows(of: result) ?? 0
                    } else if status == PGRES_COPY_IN {
                        // Only after an abort that raced the server's CopyInResponse.
                        PQputCopyEnd(handle, "aborted by nfldb")
                    } else if serverError == nil {
                        serverError = connection.makeError(result, statement: copy.query.sql)
                    }
                    PQclear(result)
                    continue
                }
                if let serverError { return try fail(serverError) }
                current = nil
                state = .idle
                if !aborting {
                    connection.logger.trace("copy finished", metadata: ["db.copy": .string(copy.label), "db.rows": .stringConvertible(rows)])
                    copy.completion?(rows)
                }
            }
        }
    }

    /// Waits until every enqueued copy has finished on the server.
    ///
    /// - Throws: the first failure, as ``poll()``.
    public func waitUntilDone() throws {
        while true {
            try poll()
            if state == .idle && nextWaiting >= waiting.count { return }
            try waitForSocket(write: state == .sending || outputPending)
        }
    }

    /// After the caller failed: sends no further data (a COPY still receiving data is ended with
    /// an error, so the server discards its rows), drops the copies not started, and waits until
    /// the connection is idle again. The transaction is left failed when a COPY was aborted.
    fileprivate func abandon() {
        aborting = true
        waiting.removeAll()
        nextWaiting = 0
        guard failure == nil else { return }
        while state != .idle && failure == nil && connection.isAlive {
            do {
                try poll()
                if state != .idle { try waitForSocket(write: state == .sending || outputPending) }
            } catch {
                return
            }
        }
    }

    /// Leaves nonblocking mode, after the output buffer is flushed.
    fileprivate func close() {
        while connection.isAlive, PQflush(handle) == 1 {
            try? waitForSocket(write: true)
        }
        PQsetnonblocking(handle, 0)
    }

    /// `PQflush`, then `PQconsumeInput`; true when a whole result can be read without waiting.
    private func inputReady() throws -> Bool {
        let flushed = PQflush(handle)
        if flushed < 0 || PQconsumeInput(handle) == 0 {
            try fail(connection.connectionError(statement: current?.query.sql))
        }
        outputPending = flushed == 1
        return PQisBusy(handle) == 0
    }

    private func waitForSocket(write: Bool) throws {
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN) | (write ? Int16(POLLOUT) : 0), revents: 0)
        guard descriptor.fd >= 0 else { return try fail(connection.connectionError(statement: current?.query.sql)) }
        _ = Glibc.poll(&descriptor, 1, 1000)
    }

    private func fail(_ error: PostgresError) throws {
        if let failure { throw failure }
        var error = error
        if let copy = current {
            var location = copy.label
            if let context = error.context, let line = Self.copyLine(context), let what = copy.describeLine?(line) {
                location += ", \(what)"
            }
            error.location = location
        }
        // Nothing more will be sent; read what the server still says so the connection is idle.
        waiting.removeAll()
        nextWaiting = 0
        if connection.isAlive {
            if state == .sending && !endSent { PQputCopyEnd(handle, "aborted by nfldb after an error") }
            PQsetnonblocking(handle, 0)
            while let result = PQgetResult(handle) {
                if PQresultStatus(result) == PGRES_COPY_IN { PQputCopyEnd(handle, "aborted by nfldb after an error") }
                PQclear(result)
            }
        }
        // A backend that was terminated sends a FATAL error before it closes the connection.
        if error.kind != .connection && (!connection.isAlive || error.severity == "FATAL") {
            error.kind = .connection
            error.message = "lost the connection to \(connection.target): \(error.message)"
        }
        failure = error
        current = nil
        state = .idle
        throw error
    }

    /// The data line a server error names in its context (`COPY games, line 17, column …`).
    static func copyLine(_ context: String) -> Int? {
        guard let copy = context.range(of: "COPY "), let line = context.range(of: ", line ", range: copy.upperBound..<context.endIndex) else { return nil }
        let digits = context[line.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int(digits)
    }
}

extension PostgresConnection {
    /// Runs `body` with a ``CopyQueue`` on this connection: copies enqueued there are sent and
    /// finished in the background while `body` keeps working (libpq nonblocking mode,
    /// `PQsendQuery`/`PQputCopyData`/`PQputCopyEnd`/`PQconsumeInput`).
    ///
    /// When `body` returns, every copy is waited for; the first failure is thrown. When `body`
    /// throws, a COPY still receiving data is aborted (its rows discarded), copies not started
    /// are dropped, and `body`'s error is rethrown. Either way the connection is idle and
    /// blocking again afterwards (inside a failed transaction when a COPY failed or was aborted).
    public func withCopyQueue<T>(_ body: (CopyQueue) throws -> T) throws -> T {
        guard PQsetnonblocking(handle, 1) == 0 else { throw connectionError(statement: nil) }
        let queue = CopyQueue(connection: self)
        defer { queue.close() }
        let value: T
        do {
            value = try body(queue)
        } catch {
            queue.abandon()
            throw error
        }
        try queue.waitUntilDone()
        return value
    }
}
