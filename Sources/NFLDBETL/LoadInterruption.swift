import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import Synchronization

/// A signal during `etl load` (the executable's handler calls this): the load's transaction is ended
/// and the run recorded as failed with the signal, instead of staying `running` until a later load
/// calls it abandoned. On a second connection with the same credentials: the load's backend is
/// terminated (a role may end its own sessions), which rolls its transaction back, then the run row —
/// committed before the data transaction began — is marked failed, unless the load committed first.
public enum LoadInterruption {
    /// Set when ``stop(signal:backend:runID:options:logger:)`` starts: the load's own error (its
    /// session was terminated: "server closed the connection unexpectedly") is then the
    /// interruption's doing, not a server crash, and is not logged as one.
    public static let inProgress = Atomic<Bool>(false)

    /// Records the run as failed, ends the load's session (rolling its transaction back), and says
    /// what happened. The run is marked first: should the load commit in between, its own update of
    /// the run row (inside its transaction) overwrites the mark with `succeeded`, which is then true.
    public static func stop(signal: String, backend: Int32?, runID: Int64?, options: ConnectionOptions, logger: Logger) -> String {
        inProgress.store(true, ordering: .sequentiallyConsistent)
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
