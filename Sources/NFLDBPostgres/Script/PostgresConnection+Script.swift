import Foundation
import Logging

extension PostgresConnection {
    /// Runs a script statement by statement, in the caller's transaction if one is open. On failure
    /// the error carries `script:line` of the failing statement (see ``run(_:in:)``) and its text.
    ///
    /// - Parameter progress: called after each statement succeeds, with its index.
    public func run(_ script: SQLScript, progress: (SQLStatement) throws -> Void = { _ in }) throws {
        for statement in script.statements {
            try run(statement, in: script.name)
            try progress(statement)
        }
    }

    /// Runs one statement of a script the way psql would: plain SQL with `PQexec` (a `COPY … TO
    /// STDOUT` has its output drained and discarded), and `COPY … FROM STDIN` with the script's
    /// inline rows as its data. A failure carries `name:line` — the server's error position, or for
    /// bad COPY data the line of the offending row — and the statement text.
    public func run(_ statement: SQLStatement, in name: String) throws {
        do {
            if let data = statement.copyData {
                try copyIn(PostgresQuery(unsafeSQL: statement.text)) { try $0.write(data.text) }
            } else {
                try runScript(unsafeSQL: statement.text)
            }
        } catch var error as PostgresError {
            error.location = "\(name):\(statement.line(of: error))"
            error.statement = statement.text
            throw error
        }
    }
}

extension SQLStatement {
    /// The script line an error of this statement points at: the row of inline COPY data the
    /// server names (`COPY t, line 3, …`), else the error position, else the statement's first line.
    public func line(of error: PostgresError) -> Int {
        if copyData != nil, let context = error.context, let row = Self.copyRow(in: context), let line = copyDataLine(row: row) {
            return line
        }
        return error.position.map { line(atPosition: $0) } ?? line
    }

    /// `N` from the server's COPY context `COPY t, line N[, column c: …]`.
    static func copyRow(in context: String) -> Int? {
        guard let range = context.range(of: ", line ") else { return nil }
        return Int(context[range.upperBound...].prefix { $0.isNumber })
    }
}
