import Foundation
import Logging

extension PostgresConnection {
    /// Runs a script statement by statement (each with `PQexec`), in the caller's transaction if one
    /// is open. On failure the error carries `script:line` of the failing statement — refined by the
    /// server's error position when it sent one — and the statement text.
    ///
    /// - Parameter progress: called after each statement succeeds, with its index.
    public func run(_ script: SQLScript, progress: (SQLStatement) throws -> Void = { _ in }) throws {
        for statement in script.statements {
            do {
                try runScript(unsafeSQL: statement.text)
            } catch var error as PostgresError {
                let line = error.position.map { statement.line(atPosition: $0) } ?? statement.line
                error.location = "\(script.name):\(line)"
                error.statement = statement.text
                throw error
            }
            try progress(statement)
        }
    }
}
