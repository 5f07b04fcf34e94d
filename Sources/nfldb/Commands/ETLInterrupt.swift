import Foundation
import Logging
import NFLDBPostgres
import Synchronization

/// SIGTERM, SIGHUP or SIGINT during `etl load`: the load's transaction is ended and the run is
/// recorded as failed with the signal, instead of staying `running` until a later load calls it
/// abandoned. From the handler, on a second connection with the same credentials: the load's
/// backend is terminated (a role may end its own sessions), which rolls its transaction back, then
/// the run row — committed before the data transaction began — is marked failed, unless the load
/// committed first. One line on stderr says which; the process exits 128+signal.
final class ETLInterrupt: Sendable {
    struct State {
        var backend: Int32?
        var runID: Int64?
    }

    let state = Mutex(State())
    let options: ConnectionOptions
    let logger: Logger

    init(options: ConnectionOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Installs the handlers for the rest of the process; `backend` is the load connection's server pid.
    func install(backend: Int32) {
        state.withLock { $0.backend = backend }
        SignalExit.install { [self] in stop($0) }
    }

    func recorded(_ runID: Int64) {
        state.withLock { $0.runID = runID }
    }

    /// Records the run as failed, ends the load's session (rolling its transaction back), and says
    /// what happened. The run is marked first: should the load commit in between, its own update of
    /// the run row (inside its transaction) overwrites the mark with `succeeded`, which is then true.
    func stop(_ signal: String) -> String {
        let (backend, runID) = state.withLock { ($0.backend, $0.runID) }
        guard let backend else { return "interrupted by \(signal) before the load connected; nothing changed" }
        let error = "interrupted by \(signal): the load's transaction was rolled back; nothing was changed"
        do {
            let connection = try PostgresConnection.connect(options, logger: logger)
            defer { connection.close() }
            try connection.execute("SET lock_timeout = '2s'")
            try connection.execute("SET statement_timeout = '10s'")
            func mark(_ runID: Int64) throws {
                try connection.execute("""
                    UPDATE nfl.etl_runs SET status = 'failed', finished_at = greatest(clock_timestamp(), started_at), error = \(error)
                    WHERE id = \(runID) AND status = 'running'
                    """)
            }
            // The row is locked only while the load completes it (just before its commit): mark after the session ends then.
            var marked = false
            if let runID {
                do { try mark(runID); marked = true } catch let error as PostgresError where error.sqlState == SQLState.lockNotAvailable {}
            }
            _ = try connection.query("SELECT pg_terminate_backend(\(Int(backend)))")
            for _ in 0..<100 {
                let alive = try connection.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(Int(backend))").scalar(Int.self)
                if alive == 0 { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            guard let runID else {
                return "interrupted by \(signal) before the run was recorded: the load's session was ended, nothing changed"
            }
            if !marked { try mark(runID) }
            let status = try connection.query("SELECT status FROM nfl.etl_runs WHERE id = \(runID)").rows.first?["status"] ?? "unknown"
            if status != "failed" {
                return "interrupted by \(signal) after run \(runID) had ended (\(status)); see `nfldb etl report \(runID)`"
            }
            return "\(error); run \(runID) is recorded as failed (`nfldb etl report \(runID)`). Run the load again."
        } catch {
            return "interrupted by \(signal): the load's connection closes as nfldb exits, which rolls its transaction back (nothing changed); "
                + "run \(runID.map(String.init) ?? "?") could not be marked failed (\(error)): the next load records it as abandoned"
        }
    }
}
