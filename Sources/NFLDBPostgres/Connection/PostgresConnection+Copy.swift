import CLibPQ
import Foundation

/// Streams data into a running `COPY … FROM STDIN`. Obtained from ``PostgresConnection/copyIn(_:_:)``.
public struct CopyWriter: ~Copyable {
    fileprivate let connection: PostgresConnection
    fileprivate var buffer: [UInt8] = []
    fileprivate let flushThreshold = 256 * 1024

    /// Appends raw bytes in the COPY's format (text, csv or binary).
    public mutating func write(_ bytes: some Collection<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= flushThreshold { try flush() }
    }

    /// Appends UTF-8 text.
    public mutating func write(_ text: String) throws {
        try write(text.utf8)
    }

    /// Appends one row in `FORMAT text`, escaping backslash, tab, newline and carriage return;
    /// nil becomes `\N`.
    public mutating func writeTextRow(_ fields: [String?]) throws {
        var line = ""
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append("\t") }
            guard let field else { line.append("\\N"); continue }
            for ch in field {
                switch ch {
                case "\\": line.append("\\\\")
                case "\t": line.append("\\t")
                case "\n": line.append("\\n")
                case "\r": line.append("\\r")
                default: line.append(ch)
                }
            }
        }
        line.append("\n")
        try write(line)
    }

    fileprivate mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        let status = buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(connection.handle, $0.baseAddress, Int32($0.count)) }
        }
        guard status == 1 else {
            throw connection.connectionError(statement: "COPY data")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension PostgresConnection {
    /// Runs a `COPY … FROM STDIN` statement and streams the data `produce` writes.
    /// The corresponding libpq functions are `PQputCopyData` and `PQputCopyEnd`.
    ///
    /// If `produce` throws, the COPY is aborted (`PQputCopyEnd` with an error message, so the
    /// server discards every row) and the error is rethrown.
    ///
    /// The statement takes names through `\(identifier:)`/`\(qualified:_:)`; it cannot take bound
    /// values (COPY has no parameters), so a query with binds is refused before anything is sent.
    ///
    /// - Returns: the number of rows copied (from the `COPY n` command tag).
    @discardableResult
    public func copyIn(_ query: PostgresQuery, _ produce: (inout CopyWriter) throws -> Void) throws -> Int {
        let statement = query.sql
        try Self.refuseBinds(query, dataVia: "the writer")
        guard let start = PQexec(handle, statement) else { throw connectionError(statement: statement) }
        if let error = copyStartError(start, statement: statement) {
            PQclear(start)
            while let rest = PQgetResult(handle) { PQclear(rest) }
            throw error
        }
        PQclear(start)
        var writer = CopyWriter(connection: self)
        var producerError: (any Error)?
        do {
            try produce(&writer)
            try writer.flush()
        } catch {
            producerError = error
        }
        let endStatus: Int32
        if let producerError {
            endStatus = PQputCopyEnd(handle, "aborted by nfldb: \(String(describing: producerError).prefix(200))")
        } else {
            endStatus = PQputCopyEnd(handle, nil)
        }
        guard endStatus == 1 else { throw producerError ?? connectionError(statement: statement) }
        var rows = 0
        var serverError: PostgresError?
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                rows = PostgresResult.affectedRows(of: result) ?? 0
            } else if serverError == nil {
                serverError = makeError(result, statement: statement)
            }
        }
        if let producerError { throw producerError }
        if let serverError { throw serverError }
        return rows
    }
}

extension PostgresConnection {
    /// COPY has no parameters: a query with bound values is refused before anything is sent.
    static func refuseBinds(_ query: PostgresQuery, dataVia: String) throws {
        guard query.binds.isEmpty else {
            throw PostgresError(kind: .copy, message: "COPY cannot take bound values (\(query.binds.count) given); interpolate names with \\(identifier:) and send data through \(dataVia)")
                .withStatement(query.sql)
        }
    }

    /// The first result of a `COPY … FROM STDIN` statement: nil when the server waits for the
    /// data, else the error to report (a COPY TO STDOUT the statement started is drained first).
    func copyStartError(_ result: OpaquePointer, statement: String) -> PostgresError? {
        let status = PQresultStatus(result)
        if status == PGRES_COPY_IN { return nil }
        if status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH { _ = drainCopyOut() }
        if status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR || status == PGRES_BAD_RESPONSE {
            return makeError(result, statement: statement)
        }
        return PostgresError(kind: .copy, message: "statement did not start a COPY FROM STDIN").withStatement(statement)
    }
}

extension PostgresError {
    func withStatement(_ statement: String) -> PostgresError {
        var copy = self
        copy.statement = statement
        return copy
    }
}
