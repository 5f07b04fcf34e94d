import Foundation
import NFLDBCore

/// The level of a check as alerting sees it.
public enum AlertLevel: String, Sendable, Hashable, Codable {
    case ok = "OK"
    case warning = "WARNING"
    case critical = "CRITICAL"
    case unknown = "UNKNOWN"

    /// WARNING and CRITICAL are problems; UNKNOWN is "could not tell" and changes nothing.
    public var isProblem: Bool { self == .warning || self == .critical }
}

/// One check's result, as the alert engine needs it (decoupled from the probes).
public struct AlertInput: Sendable, Hashable {
    public var target: String
    public var check: String
    public var level: AlertLevel
    public var message: String
    public var hint: String?
    /// The check's value in its unit, rendered (`87%`, `12 min`).
    public var value: String?

    public init(target: String, check: String, level: AlertLevel, message: String, hint: String? = nil, value: String? = nil) {
        self.target = target
        self.check = check
        self.level = level
        self.message = message
        self.hint = hint
        self.value = value
    }

    /// `target|check`, the state-file key.
    public var key: String { "\(target)|\(check)" }

    /// The PagerDuty `dedup_key` (and generic webhook key): stable per check and target.
    public var dedupKey: String { "nfldb:\(target):\(check)" }
}

/// What was last delivered to one destination for one check.
public struct DeliveredNotice: Sendable, Hashable, Codable {
    public var action: NotificationAction
    public var level: AlertLevel
    public var at: Date

    public init(action: NotificationAction, level: AlertLevel, at: Date) {
        self.action = action
        self.level = level
        self.at = at
    }
}

/// Memory of one check between cron runs.
public struct CheckAlertState: Sendable, Hashable, Codable {
    public var level: AlertLevel
    /// Consecutive runs at WARNING/CRITICAL (reset by OK; UNKNOWN leaves it alone).
    public var failures: Int
    /// When the current problem streak started.
    public var firstSeen: Date?
    /// True once the problem was confirmed (``AlertPolicy/consecutive`` failures) until it recovers.
    public var firing: Bool
    public var firingLevel: AlertLevel?
    public var lastMessage: String
    public var lastValue: String?
    public var lastRun: Date
    /// Per destination name: what it was last told.
    public var delivered: [String: DeliveredNotice]
    /// Per destination name: the last delivery error (cleared on success).
    public var deliveryErrors: [String: String]

    public init(level: AlertLevel, failures: Int = 0, firstSeen: Date? = nil, firing: Bool = false, firingLevel: AlertLevel? = nil,
                lastMessage: String = "", lastValue: String? = nil, lastRun: Date, delivered: [String: DeliveredNotice] = [:],
                deliveryErrors: [String: String] = [:]) {
        self.level = level
        self.failures = failures
        self.firstSeen = firstSeen
        self.firing = firing
        self.firingLevel = firingLevel
        self.lastMessage = lastMessage
        self.lastValue = lastValue
        self.lastRun = lastRun
        self.delivered = delivered
        self.deliveryErrors = deliveryErrors
    }

    enum CodingKeys: String, CodingKey {
        case level, failures, firing, delivered
        case firstSeen = "first_seen"
        case firingLevel = "firing_level"
        case lastMessage = "last_message"
        case lastValue = "last_value"
        case lastRun = "last_run"
        case deliveryErrors = "delivery_errors"
    }
}

/// The state file: a small JSON document next to the cron job.
///
/// A file (not a table) on purpose: the run that most needs to alert is the one where the
/// database is down, and then a table cannot be read or written.
public struct AlertState: Sendable, Hashable, Codable {
    public static let currentVersion = 1
    public var version: Int
    public var checks: [String: CheckAlertState]

    public init(version: Int = AlertState.currentVersion, checks: [String: CheckAlertState] = [:]) {
        self.version = version
        self.checks = checks
    }
}

/// Loads and saves ``AlertState`` atomically (temporary file + rename, mode 0600).
public struct AlertStateStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The saved state; a missing file is an empty state. A corrupt file is reported in `problem`
    /// and replaced by an empty state, so one bad write never stops alerting for good.
    public func load() -> (state: AlertState, problem: String?) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return (AlertState(), nil) }
        if isDirectory.boolValue {
            return (AlertState(), "alert state file \(path) is a directory; set health.state_file (or --state-file) to a file path in a directory the cron user can write")
        }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let state = try decoder.decode(AlertState.self, from: data)
            return (state, nil)
        } catch {
            return (AlertState(), "alert state file \(path) is unreadable (\(error.localizedDescription)); starting with an empty state")
        }
    }

    public func save(_ state: AlertState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(state)
        do {
            try AtomicFile.write(data, to: path, permissions: 0o600)
        } catch let error as AtomicFile.RenameError {
            throw OperatorError("cannot write the alert state file \(path): \(error.reason)")
        } catch {
            throw OperatorError(
                "cannot write the alert state file \(path): \(error.localizedDescription)",
                hint: "Set health.state_file to a writable path (absolute in cron).")
        }
    }
}
