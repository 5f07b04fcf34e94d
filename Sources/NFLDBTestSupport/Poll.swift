import Foundation

/// Evaluates `condition` every `interval` until it is true or `timeout` passes (it is always
/// evaluated once more at the deadline); returns whether it became true.
///
/// This is how tests wait for another session or process to reach a state (a backend in
/// `pg_stat_activity`, a lock in `pg_locks`, a server answering PING) instead of sleeping.
@discardableResult
public func poll(timeout: Duration, interval: Duration = .milliseconds(20), _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        Thread.sleep(forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
    }
}

/// Like ``poll(timeout:interval:_:)``, but throws ``PollTimeout`` naming what was awaited when the
/// condition does not hold in time. An error thrown by `condition` counts as "not yet" and the
/// last one is reported.
public func waitUntil(
    _ what: @autoclosure () -> String, timeout: Duration, interval: Duration = .milliseconds(20), _ condition: () throws -> Bool
) throws {
    let start = ContinuousClock.now
    var lastError: (any Error)?
    let held = poll(timeout: timeout, interval: interval) {
        do {
            return try condition()
        } catch {
            lastError = error
            return false
        }
    }
    guard !held else { return }
    throw PollTimeout(what: what(), waited: ContinuousClock.now - start, lastError: lastError.map { String(describing: $0) })
}

/// A condition a test waited for did not come true.
public struct PollTimeout: Error, CustomStringConvertible, Sendable {
    public let what: String
    public let waited: Duration
    public let lastError: String?

    public var description: String {
        "timed out after \(waited) waiting until \(what)" + (lastError.map { " (last error: \($0))" } ?? "")
    }
}
