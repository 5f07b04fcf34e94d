import Foundation
import Logging
import NFLDBCore
import Synchronization

/// A destination with its secret resolved (webhook URL or PagerDuty routing key).
public struct ResolvedDestination: Sendable {
    public var name: String
    public var kind: AlertDestination.Kind
    /// Slack/webhook: the URL; PagerDuty: the routing key. Registered with ``SecretRedactor``.
    public var secret: String
    /// PagerDuty endpoint (default the public Events API v2).
    public var endpoint: String?

    public init(name: String, kind: AlertDestination.Kind, secret: String, endpoint: String? = nil) {
        self.name = name
        self.kind = kind
        self.secret = secret
        self.endpoint = endpoint
        SecretRedactor.shared.register(secret)
        if kind != .pagerduty { Self.registerURLParts(secret) }
    }

    /// A webhook URL's secret is usually its path or query (`/hooks/T0K3N`, `?key=…`), and a receiver
    /// may echo either alone in an error body: the path, the query, the path with the query, each
    /// query value and each path segment that looks like a token (8 characters or more, with a digit
    /// or mixed case) are registered too. Short or plain segments (`hooks`, `services`) are not: masking
    /// them would mangle every message.
    static func registerURLParts(_ url: String) {
        guard let components = URLComponents(string: url) else { return }
        let redactor = SecretRedactor.shared
        let path = components.percentEncodedPath
        let query = components.percentEncodedQuery
        if path.count > 1 { redactor.register(path); redactor.register(components.path) }
        // Basic-auth credentials in the URL: a receiver may echo `user:password` (or its base64) back.
        if let password = components.password, !password.isEmpty {
            let user = components.user ?? ""
            redactor.register(components.percentEncodedPassword)
            redactor.register(password)
            redactor.register(user + ":" + password)
            redactor.register(Data((user + ":" + password).utf8).base64EncodedString())
        }
        if let query {
            redactor.register(query)
            redactor.register("?" + query)
            redactor.register(path + "?" + query)
            for item in components.percentEncodedQueryItems ?? [] {
                redactor.register(item.value)
                redactor.register(item.value?.removingPercentEncoding)
            }
        }
        for segment in components.path.split(separator: "/") where segment.count >= 8 {
            let hasDigit = segment.contains(where: \.isNumber)
            let mixedCase = segment.contains(where: \.isUppercase) && segment.contains(where: \.isLowercase)
            if hasDigit || mixedCase { redactor.register(String(segment)) }
        }
    }

    public static let pagerDutyEndpoint = "https://events.pagerduty.com/v2/enqueue"

    /// Resolves a configured destination's secret from its environment variable or file.
    public static func resolve(_ destination: AlertDestination, environment: [String: String]) throws -> ResolvedDestination {
        ResolvedDestination(
            name: destination.name, kind: destination.kind, secret: try destination.resolveSecret(environment: environment),
            endpoint: destination.endpoint)
    }
}

/// The outcome of one delivery, for the run's output and the state file.
public struct DeliveryReport: Sendable, Hashable {
    public var notification: AlertNotification
    public var kind: AlertDestination.Kind
    public var attempts: Int
    /// nil on success; otherwise why it failed (never containing the secret).
    public var error: String?

    public init(notification: AlertNotification, kind: AlertDestination.Kind, attempts: Int, error: String?) {
        self.notification = notification
        self.kind = kind
        self.attempts = attempts
        self.error = error
    }

    public var succeeded: Bool { error == nil }

    /// `trigger replication → pagerduty "oncall": delivered` / `… failed after 3 attempts: HTTP 500`.
    public var line: String {
        let n = notification
        let outcome = error.map { "FAILED after \(attempts) attempt\(attempts == 1 ? "" : "s"): \($0)" } ?? "delivered"
        return SecretRedactor.shared.redact("\(n.action.rawValue) \(n.input.check) on \(n.input.target) (\(n.reason.rawValue)) → \(kind.rawValue) '\(n.destination)': \(outcome)")
    }
}

/// Sends notifications with retries and exponential back-off. Never throws: a destination that
/// cannot be reached is reported (and retried on the next run), it does not stop the run.
///
/// A batch is delivered concurrently (every notification on its own thread, at most
/// ``maxConcurrent`` at once) and the whole batch takes at most ``timeout``: attempts and back-off
/// waits are cut at that deadline, and a notification still unanswered then is reported as failed
/// (so it is retried on the next run). Unreachable or hanging destinations therefore cost one
/// timeout per run, not one per notification and attempt.
public struct AlertDispatcher: Sendable {
    public var destinations: [ResolvedDestination]
    public var transport: any AlertTransport
    /// Attempts per notification (at least 1).
    public var attempts: Int
    /// Wait before the second attempt; doubles each time.
    public var backoff: TimeInterval
    /// Bound on one HTTP attempt and on a whole ``deliver(_:)-swift.method`` batch (seconds).
    public var timeout: TimeInterval
    /// Notifications sent at the same time.
    public var maxConcurrent: Int
    public var logger: Logger

    public init(destinations: [ResolvedDestination], transport: any AlertTransport = CurlAlertTransport(), attempts: Int = 3,
                backoff: TimeInterval = 1, timeout: TimeInterval = 10, maxConcurrent: Int = 16, logger: Logger) {
        self.destinations = destinations
        self.transport = transport
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self.maxConcurrent = max(1, maxConcurrent)
        self.logger = logger
    }

    /// Delivers every notification concurrently and returns one report per notification, in the
    /// same order, within ``timeout`` (plus a few milliseconds) however many destinations hang.
    public func deliver(_ notifications: [AlertNotification]) -> [DeliveryReport] {
        guard !notifications.isEmpty else { return [] }
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let batch = DeliveryBatch(count: notifications.count)
        let slots = DispatchSemaphore(value: maxConcurrent)
        for (index, notification) in notifications.enumerated() {
            batch.group.enter()
            Thread.detachNewThread { [self] in
                slots.wait()
                defer {
                    slots.signal()
                    batch.group.leave()
                }
                let report = deliver(notification, deadline: deadline) { attempt in batch.started(index, attempt: attempt) }
                batch.finish(index, report)
            }
        }
        let remaining = max(0, (deadline - ContinuousClock.now).inSeconds)
        _ = batch.group.wait(timeout: .now() + remaining + 0.05)
        let finished = batch.reports()
        return notifications.indices.map { index in
            if let report = finished.reports[index] { return report }
            let notification = notifications[index]
            let kind = destinations.first { $0.name == notification.destination }?.kind ?? .webhook
            let attempts = finished.attempts[index]
            logger.info("alert delivery cut at the alert timeout", metadata: [
                "alert.destination": .string(notification.destination), "alert.check": .string(notification.input.check),
            ])
            return DeliveryReport(
                notification: notification, kind: kind, attempts: attempts,
                error: "no answer within the alert timeout (\(Self.seconds(timeout)))")
        }
    }

    /// Delivers one notification (retrying), within ``timeout``.
    public func deliver(_ notification: AlertNotification) -> DeliveryReport {
        deliver(notification, deadline: ContinuousClock.now + .milliseconds(Int(timeout * 1000))) { _ in }
    }

    func deliver(_ notification: AlertNotification, deadline: ContinuousClock.Instant, onAttempt: (Int) -> Void) -> DeliveryReport {
        guard let destination = destinations.first(where: { $0.name == notification.destination }) else {
            return DeliveryReport(notification: notification, kind: .webhook, attempts: 0, error: "destination is not configured")
        }
        let url: URL
        let body: Data
        do {
            (url, body) = try request(for: notification, to: destination)
        } catch {
            return DeliveryReport(notification: notification, kind: destination.kind, attempts: 0,
                                  error: SecretRedactor.shared.redact(String(describing: error)))
        }
        var lastError = "not attempted"
        var delay = backoff
        var made = 0
        for attempt in 1...attempts {
            let remaining = (deadline - ContinuousClock.now).inSeconds
            if remaining <= 0.01 {
                lastError += " (gave up at the alert timeout, \(Self.seconds(timeout)))"
                break
            }
            made = attempt
            onAttempt(attempt)
            do {
                let reply = try transport.post(url: url, body: body, timeout: min(timeout, remaining))
                if (200..<300).contains(reply.status) {
                    logger.info("alert delivered", metadata: [
                        "alert.destination": .string(destination.name), "alert.check": .string(notification.input.check),
                        "alert.action": .string(notification.action.rawValue), "alert.attempt": .stringConvertible(attempt),
                    ])
                    return DeliveryReport(notification: notification, kind: destination.kind, attempts: attempt, error: nil)
                }
                let excerpt = Self.bodyExcerpt(reply.body)
                lastError = "HTTP \(reply.status)\(excerpt.isEmpty ? "" : ": \(excerpt)")"
                // 4xx other than 408/429 means the request itself is wrong: retrying cannot help.
                if (400..<500).contains(reply.status) && reply.status != 408 && reply.status != 429 {
                    return DeliveryReport(notification: notification, kind: destination.kind, attempts: attempt,
                                          error: SecretRedactor.shared.redact(lastError))
                }
            } catch {
                lastError = String(describing: error)
            }
            logger.info("alert delivery failed", metadata: [
                "alert.destination": .string(destination.name), "alert.attempt": .stringConvertible(attempt),
                "error": .string(SecretRedactor.shared.redact(lastError)),
            ])
            if attempt < attempts {
                if (deadline - ContinuousClock.now).inSeconds <= delay {
                    lastError += " (no time left for attempt \(attempt + 1) within the alert timeout, \(Self.seconds(timeout)))"
                    break
                }
                Thread.sleep(forTimeInterval: delay)
                delay *= 2
            }
        }
        return DeliveryReport(notification: notification, kind: destination.kind, attempts: made, error: SecretRedactor.shared.redact(lastError))
    }

    /// The start of a failed reply's body for the error: scrubbed *before* it is cut (so a secret is
    /// never cut into a maskless prefix), on one line, at most ``bodyExcerptLength`` characters.
    static func bodyExcerpt(_ body: String) -> String {
        let oneLine = SecretRedactor.shared.redact(body).split(whereSeparator: { $0.isNewline || $0 == "\t" })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
        return oneLine.count > bodyExcerptLength ? String(oneLine.prefix(bodyExcerptLength)) + "…" : oneLine
    }

    static let bodyExcerptLength = 120

    static func seconds(_ value: TimeInterval) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    func request(for notification: AlertNotification, to destination: ResolvedDestination) throws -> (URL, Data) {
        switch destination.kind {
        case .slack:
            return (try Self.url(destination.secret, destination), try AlertPayloads.encode(AlertPayloads.slack(notification)))
        case .webhook:
            return (try Self.url(destination.secret, destination), try AlertPayloads.encode(AlertPayloads.webhook(notification)))
        case .pagerduty:
            let endpoint = destination.endpoint ?? ResolvedDestination.pagerDutyEndpoint
            return (try Self.url(endpoint, destination),
                    try AlertPayloads.encode(AlertPayloads.pagerDuty(notification, routingKey: destination.secret)))
        }
    }

    static func url(_ text: String, _ destination: ResolvedDestination) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http", url.host != nil else {
            throw TransportError("destination '\(destination.name)' has no valid http(s) URL")
        }
        return url
    }
}

/// Collects a concurrent batch's reports; workers may outlive ``AlertDispatcher/deliver(_:)-swift.method``
/// (a hung POST), so the results live in this shared box, not on the caller's stack.
final class DeliveryBatch: Sendable {
    let group = DispatchGroup()
    private let state: Mutex<(reports: [DeliveryReport?], attempts: [Int])>

    init(count: Int) {
        state = Mutex((Array(repeating: nil, count: count), Array(repeating: 0, count: count)))
    }

    func started(_ index: Int, attempt: Int) { state.withLock { $0.attempts[index] = attempt } }
    func finish(_ index: Int, _ report: DeliveryReport) { state.withLock { $0.reports[index] = report } }
    func reports() -> (reports: [DeliveryReport?], attempts: [Int]) { state.withLock { $0 } }
}
