import CLibPQ
import Foundation
import Logging
import NFLDBCore

extension PostgresConnection {
    /// Runs one statement with parameters and returns its rows.
    /// The corresponding libpq function is `PQexecParams` (extended protocol: one statement only).
    ///
    /// - Throws: ``PostgresError`` with the server's SQLSTATE, message, detail, hint and position.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresResult {
        let start = ContinuousClock.now
        let cValues = query.binds.map { $0.map { strdup($0) } ?? nil }
        defer { cValues.forEach { free($0) } }
        let result: OpaquePointer? = cValues.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                PQexecParams(handle, query.sql, Int32(query.binds.count), nil, values.baseAddress, nil, nil, 0)
            }
        }
        let outcome = try consume(result, statement: query.sql)
        logger.trace("query", metadata: [
            "db.statement": .string(String(query.sql.prefix(200))),
            "duration_ms": .stringConvertible(Self.milliseconds(since: start)),
        ])
        return outcome
    }

    /// Runs one statement and returns the number of affected rows (0 when the command reports none).
    @discardableResult
    public func execute(_ statement: PostgresQuery) throws -> Int {
        try query(statement).affectedRows ?? 0
    }

    /// Runs raw SQL text that may hold several statements, with the simple query protocol, and
    /// returns one result per statement. The corresponding libpq function is `PQexec` (via `PQsendQuery`).
    ///
    /// Only for text that is SQL by nature: migration files, generated DDL, function bodies. A single
    /// statement built from names or values goes through ``execute(_:)``/``query(_:)`` with
    /// `\(identifier:)` and bound values instead.
    ///
    /// Without an explicit transaction the server runs the whole string as one implicit transaction.
    @discardableResult
    public func runScript(unsafeSQL sql: String) throws -> [PostgresResult] {
        guard PQsendQuery(handle, sql) == 1 else {
            throw connectionError(statement: sql)
        }
        var results: [PostgresResult] = []
        var firstError: PostgresError?
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
                results.append(PostgresResult.copy(from: result))
            case PGRES_COPY_OUT:
                // What psql would print; nobody reads it here. Drained, or libpq hands back a new
                // COPY_OUT result on every PQgetResult and the loop never ends.
                let rows = drainCopyOut()
                logger.info("discarded the output of a COPY … TO STDOUT in a script", metadata: ["rows": .stringConvertible(rows)])
            case PGRES_COPY_IN, PGRES_COPY_BOTH:
                if firstError == nil {
                    firstError = PostgresError(
                        kind: .copy,
                        message: "COPY … FROM STDIN needs its rows right after the statement (ended by a line \\.), as pg_dump writes them; none were given")
                        .withStatement(sql)
                }
                PQputCopyEnd(handle, "no COPY data in the script")
                if PQresultStatus(result) == PGRES_COPY_BOTH { _ = drainCopyOut() }
            default:
                if firstError == nil { firstError = makeError(result, statement: sql) }
            }
        }
        if let firstError { throw firstError }
        return results
    }

    /// Reads and discards the rows of a running `COPY … TO STDOUT` (`PQgetCopyData` until it ends);
    /// returns how many there were.
    func drainCopyOut() -> Int {
        var rows = 0
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle, &buffer, 0)
            if let buffer { PQfreemem(buffer) }
            if length < 0 { return rows }  // -1: done (the final result follows); -2: error (reported by PQgetResult)
            rows += 1
        }
    }

    /// Converts a `PGresult` into rows, or into a ``PostgresError``; always clears it.
    func consume(_ result: OpaquePointer?, statement: String) throws -> PostgresResult {
        guard let result else { throw connectionError(statement: statement) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresResult.copy(from: result)
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            // A COPY through query()/execute(): end it so the connection stays usable, then refuse.
            if PQresultStatus(result) == PGRES_COPY_OUT { _ = drainCopyOut() } else { PQputCopyEnd(handle, "COPY is not run through query()") }
            while let rest = PQgetResult(handle) { PQclear(rest) }
            throw PostgresError(kind: .copy, message: "COPY … STDIN/STDOUT cannot run through query()/execute(); use copyIn(_:_:) or runScript(unsafeSQL:)")
                .withStatement(statement)
        default:
            throw makeError(result, statement: statement)
        }
    }

    func makeError(_ result: OpaquePointer, statement: String?) -> PostgresError {
        let message = resultField(result, "M")
            ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        let sqlState = resultField(result, "C")
        var kind: PostgresError.Kind = .server
        if !isAlive { kind = .connection }
        if sqlState == SQLState.lockNotAvailable { kind = .lockNotAvailable }
        var error = PostgresError(kind: kind, message: message.isEmpty ? "unknown error" : message, sqlState: sqlState)
        error.severity = resultField(result, "V") ?? resultField(result, "S")
        error.detail = resultField(result, "D")
        error.hint = resultField(result, "H")
        error.position = resultField(result, "P").flatMap { Int($0) }
        error.context = resultField(result, "W")
        error.schemaName = resultField(result, "s")
        error.tableName = resultField(result, "t")
        error.columnName = resultField(result, "c")
        error.constraintName = resultField(result, "n")
        error.statement = statement
        error.target = target
        if kind == .connection {
            error.message = "lost the connection to \(target): \(error.message)"
        }
        return error
    }

    func connectionError(statement: String?) -> PostgresError {
        let raw = String(cString: PQerrorMessage(handle)).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        var error = PostgresError(kind: .connection, message: "lost the connection to \(target): \(raw)")
        error.statement = statement
        error.target = target
        return error
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inMilliseconds.rounded()
    }
}
