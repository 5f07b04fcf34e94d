import Foundation
import Logging

extension PostgresConnection {
    /// Transaction isolation levels.
    public enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs `body` inside `BEGIN … COMMIT`; any thrown error rolls back and is rethrown.
    ///
    /// If a statement failed inside `body` and the error was swallowed, the transaction is aborted;
    /// PostgreSQL would answer COMMIT with a silent ROLLBACK, so this throws instead.
    @discardableResult
    public func withTransaction<T>(
        isolation: IsolationLevel? = nil, readOnly: Bool = false, _ body: () throws -> T
    ) throws -> T {
        var begin = "BEGIN"
        if let isolation { begin += " ISOLATION LEVEL \(isolation.rawValue)" }
        if readOnly { begin += " READ ONLY" }
        try execute(PostgresQuery(unsafeSQL: begin))
        let value: T
        do {
            value = try body()
        } catch {
            rollbackQuietly()
            throw error
        }
        if transactionState == .failed {
            rollbackQuietly()
            throw PostgresError(
                kind: .server,
                message: "the transaction was aborted by an earlier error inside it and has been rolled back")
        }
        do {
            try execute("COMMIT")
        } catch {
            rollbackQuietly()
            throw error
        }
        return value
    }

    /// Rolls back if a transaction is open; a dead connection is left as it is (the server rolls back).
    public func rollbackQuietly() {
        guard isAlive, transactionState != .idle else { return }
        do {
            try execute("ROLLBACK")
        } catch {
            logger.debug("rollback failed", metadata: ["error": .string(String(describing: error))])
        }
    }
}
