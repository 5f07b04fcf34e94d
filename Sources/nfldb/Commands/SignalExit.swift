import Foundation

/// SIGTERM, SIGHUP and SIGINT for commands that must say what an interruption left behind
/// (``MigrateInterrupt``, ``ETLInterrupt``): the handler writes `nfldb: <what>` to stderr and exits
/// 128+signal. Dispatch sources, not `signal()` handlers: the description may take locks and talk
/// to the server.
enum SignalExit {
    /// Kept alive for the process lifetime; installed once, from the main thread, before the run.
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []

    static func install(_ describe: @escaping @Sendable (String) -> String) {
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let line = describe(name)
                fflush(nil)  // what the run printed so far comes before the line, also when both go to one file
                FileHandle.standardError.write(Data("nfldb: \(line)\n".utf8))
                exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
    }
}
