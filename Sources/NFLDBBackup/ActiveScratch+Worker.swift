import Foundation
import Synchronization

extension ActiveScratch {
    /// Stops every running child (a restore in progress) and tears down every verify copy this
    /// process started — for a long-lived process (the queue worker) whose own SIGTERM handling
    /// ends a verification it had to abandon, instead of ``installSignalHandlers()`` exiting at once.
    public static func tearDownAll() {
        teardownLock.withLock { _ in tearDownAllLocked() }
    }
}
