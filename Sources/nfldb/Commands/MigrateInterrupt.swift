import Foundation
import NFLDBMigrations
import Synchronization

/// What a changing `migrate` command (up, down, redo) is doing, so that SIGTERM, SIGHUP or SIGINT
/// can say in one line what was interrupted and in what state it leaves the database, before the
/// process exits 128+signal. The state itself is the server's doing: closing the connection rolls
/// back an open transaction, and `client_connection_check_interval` cancels a running statement.
final class MigrateInterrupt: Sendable {
    static let shared = MigrateInterrupt()

    struct State {
        var current: (id: String, direction: String, transactional: Bool)?
        var done: [String] = []
        var singleTransaction = false
        /// The line of the current no-transaction file where its own open BEGIN … COMMIT began.
        var ownBlockLine: Int?
    }

    let state = Mutex(State())

    func record(_ event: MigrationProgress) {
        state.withLock { state in
            switch event {
            case .starting(let id, let direction, let transactional):
                state.current = (id, direction, transactional)
                state.ownBlockLine = nil
            case .ownBlock(let line): state.ownBlockLine = line
            case .finished(let id, _, _):
                state.current = nil
                state.ownBlockLine = nil
                state.done.append(id)
            default: break
            }
        }
    }

    /// Installs the handlers for the rest of the process.
    static func install(singleTransaction: Bool) {
        shared.state.withLock { $0.singleTransaction = singleTransaction }
        SignalExit.install { shared.describe($0) }
    }

    /// `interrupted by SIGTERM during 0004_x: rolled back; nothing applied from it; …`
    func describe(_ signal: String) -> String {
        state.withLock { state in
            let finished = state.done.isEmpty ? "" : "; \(state.done.count) step(s) finished before it stay done (\(state.done.joined(separator: ", ")))"
            guard let current = state.current else {
                return state.done.isEmpty
                    ? "interrupted by \(signal) before any migration ran; nothing changed"
                    : "interrupted by \(signal) between migrations\(finished); `nfldb migrate status` shows the state"
            }
            let up = current.direction == "up"
            if state.singleTransaction {
                return "interrupted by \(signal) during the --single-transaction batch (at \(current.id)): its transaction is rolled back as the connection closes; nothing from the batch is \(up ? "applied" : "rolled back")"
            }
            if current.transactional {
                return "interrupted by \(signal) during \(current.direction == "up" ? "" : "the rollback of ")\(current.id): its transaction is rolled back as the connection closes; \(up ? "nothing applied from it" : "it is still applied")\(finished)"
            }
            // Statements of the file's own open BEGIN … COMMIT are not finished: the server rolls them back.
            let block = state.ownBlockLine.map { " (except those of its own transaction block opened at line \($0), which is rolled back as the connection closes)" } ?? ""
            return up
                ? "interrupted by \(signal) during \(current.id) (no-transaction): the statements that finished stay applied\(block) and it stays recorded as running (dirty)\(finished); see `nfldb migrate status`, then `nfldb migrate resolve`"
                : "interrupted by \(signal) during the rollback of \(current.id) (no-transaction): the down statements that finished stay done\(block), and it is still recorded as running (dirty)\(finished); see `nfldb migrate status`, then check the database by hand"
        }
    }
}
