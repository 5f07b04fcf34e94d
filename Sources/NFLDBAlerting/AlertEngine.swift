import Foundation

/// Whether a notification opens/repeats a problem or closes it.
public enum NotificationAction: String, Sendable, Hashable, Codable {
    case trigger
    case resolve
}

/// Why a trigger is sent.
public enum NotificationReason: String, Sendable, Hashable, Codable {
    /// The problem was just confirmed.
    case new
    /// The level changed while the problem was open (WARNING ↔ CRITICAL).
    case changed
    /// Still failing after ``AlertPolicy/repeatInterval``.
    case repeated = "repeat"
    /// A delivery for this problem failed earlier and is retried.
    case retry
    case resolved
}

/// One message to one destination.
public struct AlertNotification: Sendable, Hashable {
    public var destination: String
    public var action: NotificationAction
    public var reason: NotificationReason
    public var input: AlertInput
    /// The problem level for triggers; for resolves, the level that was open.
    public var level: AlertLevel
    public var firstSeen: Date
    public var at: Date

    public init(destination: String, action: NotificationAction, reason: NotificationReason, input: AlertInput, level: AlertLevel,
                firstSeen: Date, at: Date) {
        self.destination = destination
        self.action = action
        self.reason = reason
        self.input = input
        self.level = level
        self.firstSeen = firstSeen
        self.at = at
    }
}

/// The rules that keep alerts few and trustworthy.
public struct AlertPolicy: Sendable, Hashable {
    /// Consecutive WARNING/CRITICAL runs before a problem alerts (flap damping), per check.
    public var consecutive: Int
    public var consecutiveByCheck: [String: Int]
    /// Re-notify an unchanged, still-open problem after this long.
    public var repeatInterval: TimeInterval

    public init(consecutive: Int = 2, consecutiveByCheck: [String: Int] = [:], repeatInterval: TimeInterval = 4 * 3600) {
        self.consecutive = consecutive
        self.consecutiveByCheck = consecutiveByCheck
        self.repeatInterval = repeatInterval
    }

    public func consecutive(for check: String) -> Int { max(1, consecutiveByCheck[check] ?? consecutive) }
}

/// Decides, from this run's results and the saved state, what to send to whom.
///
/// * A check alerts once it has been WARNING/CRITICAL for ``AlertPolicy/consecutive(for:)`` runs
///   in a row, so a flapping check (bad, good, bad, good) never pages.
/// * While open, nothing more is sent unless the level changes or ``AlertPolicy/repeatInterval``
///   passes.
/// * On return to OK, every destination that was told about the problem gets one resolve.
/// * UNKNOWN changes nothing: a probe that could not run neither opens nor resolves a problem, so
///   when the database is down only `connections` alerts.
/// * State per destination: a failed delivery is retried on the next run, a successful one is not
///   repeated.
public struct AlertEngine: Sendable {
    public var policy: AlertPolicy
    public var destinations: [String]

    public init(policy: AlertPolicy, destinations: [String]) {
        self.policy = policy
        self.destinations = destinations
    }

    /// Updates `state` with this run's inputs and returns the notifications to send.
    public func evaluate(_ inputs: [AlertInput], state: inout AlertState, now: Date) -> [AlertNotification] {
        var notifications: [AlertNotification] = []
        for input in inputs {
            var entry = state.checks[input.key] ?? CheckAlertState(level: .ok, lastRun: now)
            entry.lastRun = now
            let problemSince = entry.firstSeen
            switch input.level {
            case .unknown:
                entry.level = .unknown
                entry.lastMessage = input.message
                state.checks[input.key] = entry
                continue
            case .ok:
                entry.failures = 0
                entry.firstSeen = nil
                entry.firing = false
                entry.firingLevel = nil
            case .warning, .critical:
                if entry.failures == 0 { entry.firstSeen = now }
                entry.failures += 1
                if entry.failures >= policy.consecutive(for: input.check) {
                    entry.firing = true
                    entry.firingLevel = input.level
                }
            }
            entry.level = input.level
            entry.lastMessage = input.message
            entry.lastValue = input.value
            for destination in destinations {
                let last = entry.delivered[destination]
                if entry.firing, let level = entry.firingLevel {
                    var reason: NotificationReason?
                    if last == nil || last?.action == .resolve {
                        reason = entry.deliveryErrors[destination] == nil ? .new : .retry
                    } else if last?.level != level {
                        reason = .changed
                    } else if let last, now.timeIntervalSince(last.at) >= policy.repeatInterval {
                        reason = .repeated
                    }
                    if let reason {
                        notifications.append(AlertNotification(
                            destination: destination, action: .trigger, reason: reason, input: input, level: level,
                            firstSeen: entry.firstSeen ?? now, at: now))
                    }
                } else if input.level == .ok, let last, last.action == .trigger {
                    notifications.append(AlertNotification(
                        destination: destination, action: .resolve, reason: .resolved, input: input, level: last.level,
                        firstSeen: problemSince ?? last.at, at: now))
                }
            }
            state.checks[input.key] = entry
        }
        return notifications
    }

    /// Records the outcome of a delivery in the state.
    public static func record(_ notification: AlertNotification, error: String?, in state: inout AlertState) {
        guard var entry = state.checks[notification.input.key] else { return }
        if let error {
            entry.deliveryErrors[notification.destination] = error
        } else {
            entry.deliveryErrors[notification.destination] = nil
            entry.delivered[notification.destination] = DeliveredNotice(action: notification.action, level: notification.level, at: notification.at)
        }
        state.checks[notification.input.key] = entry
    }
}
