import Foundation
import Logging
import NFLDBETL
import NFLDBPostgres
import Synchronization

/// SIGTERM, SIGHUP or SIGINT during `etl load`: what the handler needs (the load's backend pid and
/// run id, as they become known) for ``LoadInterruption`` in NFLDBETL, which ends the load and
/// records the run failed; one line on stderr says which, and the process exits 128+signal.
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

    /// Ends the load (``LoadInterruption/stop(signal:backend:runID:options:logger:)``) and says what happened.
    func stop(_ signal: String) -> String {
        let (backend, runID) = state.withLock { ($0.backend, $0.runID) }
        return LoadInterruption.stop(signal: signal, backend: backend, runID: runID, options: options, logger: logger)
    }
}
