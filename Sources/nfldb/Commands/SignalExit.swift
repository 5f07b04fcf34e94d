import Foundation
import Synchronization

/// SIGTERM, SIGHUP and SIGINT for commands that must say what an interruption left behind
/// (``MigrateInterrupt``, ``ETLInterrupt``): the handler writes `nfldb: <what>` to stderr and exits
/// 128+signal. Dispatch sources, not `signal()` handlers: the description may take locks and talk
/// to the server.
enum SignalExit {
    /// Kept alive for the process lifetime; installed once, from the main thread, before the run.
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
    /// True once a handler runs: the command's own failure that the handler causes (it ends the
    /// command's server session, so the running statement fails with "server closed the
    /// connection") must not be printed, nor exit 1, before the handler's line and 128+signal.
    static let handling = Atomic<Bool>(false)

    /// Called on the error path: while a handler runs, wait for it to exit the process (at most
    /// 60 s, then carry on, so a handler that hangs cannot keep the process alive).
    static func yieldToHandler() {
        guard handling.load(ordering: .sequentiallyConsistent) else { return }
        for _ in 0..<600 { Thread.sleep(forTimeInterval: 0.1) }
    }

    static func install(_ describe: @escaping @Sendable (String) -> String) {
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                handling.store(true, ordering: .sequentiallyConsistent)
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
