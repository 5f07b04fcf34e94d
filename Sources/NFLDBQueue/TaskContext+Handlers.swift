import Foundation
import NFLDBCore

// What handlers beyond the queue's own built-ins need from a task, kept out of Worker.swift so the
// worker loop can change without touching the handler interface.

extension TaskContext {
    /// The correlation id given (or created) at `queue submit`; the task id when the task has none.
    /// Handlers pass it on (ETL runs, the `nfldb.correlation_id` setting the audit trigger reads).
    public var correlationID: String { task.correlationID.isEmpty ? task.id : task.correlationID }

    /// The payload object, refusing keys this task type does not know (a typo must not be ignored).
    public func payload(allowing keys: Set<String>) throws -> [String: Any] {
        let object = try payloadObject()
        let unknown = Set(object.keys).subtracting(keys)
        if !unknown.isEmpty {
            throw TaskFailure(
                "\(task.type): unknown payload key\(unknown.count == 1 ? "" : "s") \(unknown.sorted().joined(separator: ", ")) "
                    + "(known: \(keys.sorted().joined(separator: ", ")))", permanent: true)
        }
        return object
    }
}

extension TaskFailure {
    /// A handler's error as a task failure: usage and configuration errors (exit status 2) are
    /// permanent — retrying cannot fix them — everything else is retried per the queue's policy.
    public static func wrapping(_ error: any Error, _ type: String) -> TaskFailure {
        if let failure = error as? TaskFailure { return failure }
        if let known = error as? any NFLDBError {
            return TaskFailure("\(type): \(known.diagnostic.oneLine)", permanent: known.exitStatus == .usage)
        }
        return TaskFailure("\(type): \(error)")
    }
}
