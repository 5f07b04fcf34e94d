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
    /// The lease was lost before the ack (another worker owns the task now).
    case lost
    /// Redis or PostgreSQL failed while the task was being finished; its lease decides what happens next.
    case error

    /// Maps the worker's log wording (`task succeeded`, `task failed, will retry`, …) to an outcome.
    public init(logText text: String) {
        switch text {
        case "succeeded": self = .succeeded
        case "failed, will retry", "retry": self = .retried
        case "failed, dead-lettered", "dead": self = .dead
        case "cancelled": self = .cancelled
        default:
            if text.hasPrefix("duplicate") { self = .duplicate } else if text.contains("lost") { self = .lost } else if text.contains("cancelled") { self = .cancelled } else { self = .error }
        }
    }
}

/// What a worker reports while it runs, for `--metrics-port` (see NFLDBQueueMetrics).
///
/// The worker calls ``taskStarted(_:)`` when it has claimed a task and ``taskFinished(_:outcome:duration:)``
/// exactly once afterwards (also when finishing threw), from its handler threads: implementations
/// must be thread-safe and cheap (no I/O).
public protocol WorkerMetricsRecorder: Sendable {
    func taskStarted(_ task: ClaimedTask)
    func taskFinished(_ task: ClaimedTask, outcome: TaskOutcome, duration: Duration)
}
