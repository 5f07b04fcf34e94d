import Foundation

/// How a task's run ended, as metrics label it (`outcome` label).
public enum TaskOutcome: String, Sendable, CaseIterable {
    case succeeded
    /// Succeeded, but the durable result already existed (a re-delivery): only acknowledged.
    case duplicate
    /// Failed; will run again after its backoff.
    case retried
    /// Failed for the last time (or permanently): in the dead-letter queue.
    case dead
    case cancelled
    /// The lease was lost before the ack or the failure was recorded (another worker owns the task now).
    case lost

    /// The outcome of a fenced fail/complete call; `inserted` false means the durable row already existed.
    public init(_ fence: FenceOutcome, inserted: Bool = true) {
        switch fence {
        case .ok: self = inserted ? .succeeded : .duplicate
        case .retry: self = .retried
        case .dead: self = .dead
        case .cancelled: self = .cancelled
        case .lost: self = .lost
        }
    }
}

/// What a worker reports while it runs, for `--metrics-port` (see NFLDBQueueMetrics).
///
/// The worker calls ``taskStarted(_:)`` when a handler thread starts a task and
/// ``taskSettled(_:outcome:)`` once Redis has recorded its outcome (after the durable result for a
/// success), from several threads: implementations must be thread-safe and cheap (no I/O).
public protocol WorkerMetricsRecorder: Sendable {
    func taskStarted(_ task: ClaimedTask)
    func taskSettled(_ task: ClaimedTask, outcome: TaskOutcome)
}
