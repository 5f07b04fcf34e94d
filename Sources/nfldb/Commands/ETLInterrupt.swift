import Foundation
import Logging
import NFLDBCore
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
    /// With `--format json`: the object printed on stdout when interrupted (a scheduler that parses
    /// stdout gets one object whatever happens), built from the source shown and the line.
    let jsonSource: String?

    init(options: ConnectionOptions, logger: Logger, jsonSource: String? = nil) {
        self.options = options
        self.logger = logger
        self.jsonSource = jsonSource
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
        let line = LoadInterruption.stop(signal: signal, backend: backend, runID: runID, options: options, logger: logger)
        if let jsonSource {
            var result = LoadResult.failedBeforeRun(source: jsonSource, error: SecretRedactor.shared.redact(line))
            result.runID = runID
            if let text = try? JSONOutput.encode(result) {
                FileHandle.standardOutput.write(Data((text + "\n").utf8))
            }
        }
        return line
    }
}
