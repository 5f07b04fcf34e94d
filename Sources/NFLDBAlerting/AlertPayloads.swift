import Foundation

/// The JSON bodies sent to each kind of destination. Pure functions of the notification, so tests
/// can assert them exactly.
public enum AlertPayloads {
    /// ISO 8601 in UTC with seconds (`2026-11-27T05:30:00Z`).
    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// A one-line summary: `CRITICAL replication on db1:5432/nfl: <message>` or `RESOLVED …`.
    public static func summary(_ notification: AlertNotification) -> String {
        let input = notification.input
        switch notification.action {
        case .trigger:
            return clip("\(notification.level.rawValue) \(input.check) on \(input.target): \(input.message)", 1024)
        case .resolve:
            return clip("RESOLVED \(input.check) on \(input.target): back to OK (was \(notification.level.rawValue) since \(timestamp(notification.firstSeen)))", 1024)
        }
    }

    /// Slack incoming webhook: `text` (the notification fallback) plus Block Kit sections.
    public static func slack(_ notification: AlertNotification) -> [String: Any] {
        let input = notification.input
        let escapedMessage = escapeSlack(input.message)
        var lines: [String]
        let text: String
        switch notification.action {
        case .trigger:
            let icon = notification.level == .critical ? ":red_circle:" : ":warning:"
            text = "\(icon) \(summary(notification))"
            lines = ["\(icon) *\(notification.level.rawValue)* `\(input.check)` on `\(escapeSlack(input.target))`", escapedMessage]
            if let hint = input.hint { lines.append("*What to do:* \(escapeSlack(hint))") }
        case .resolve:
            text = ":large_green_circle: \(summary(notification))"
            lines = [":large_green_circle: *RESOLVED* `\(input.check)` on `\(escapeSlack(input.target))`", escapedMessage]
        }
        var context = ["first seen \(timestamp(notification.firstSeen))", "nfldb health"]
        if notification.reason == .repeated { context.insert("still failing", at: 0) }
        if let value = input.value { context.insert("value \(escapeSlack(value))", at: 0) }
        return [
            "text": escapeSlack(text),
            "blocks": [
                ["type": "section", "text": ["type": "mrkdwn", "text": lines.joined(separator: "\n")]],
                ["type": "context", "elements": [["type": "mrkdwn", "text": context.joined(separator: " · ")]]],
            ],
        ]
    }

    /// PagerDuty Events API v2: `trigger` with a payload, or `resolve` with only the dedup key.
    public static func pagerDuty(_ notification: AlertNotification, routingKey: String) -> [String: Any] {
        let input = notification.input
        switch notification.action {
        case .resolve:
            return ["routing_key": routingKey, "event_action": "resolve", "dedup_key": input.dedupKey]
        case .trigger:
            var details: [String: Any] = [
                "check": input.check, "target": input.target, "status": notification.level.rawValue, "message": input.message,
                "first_seen": timestamp(notification.firstSeen),
            ]
            if let hint = input.hint { details["hint"] = hint }
            if let value = input.value { details["value"] = value }
            return [
                "routing_key": routingKey,
                "event_action": "trigger",
                "dedup_key": input.dedupKey,
                "client": "nfldb health",
                "payload": [
                    "summary": summary(notification),
                    "source": input.target,
                    "severity": notification.level == .critical ? "critical" : "warning",
                    "timestamp": timestamp(notification.at),
                    "component": "postgresql",
                    "group": input.target,
                    "class": input.check,
                    "custom_details": details,
                ] as [String: Any],
            ]
        }
    }

    /// A generic webhook: one flat object, `status` firing/resolved (Alertmanager's vocabulary).
    public static func webhook(_ notification: AlertNotification) -> [String: Any] {
        let input = notification.input
        var body: [String: Any] = [
            "version": "1",
            "source": "nfldb",
            "status": notification.action == .trigger ? "firing" : "resolved",
            "reason": notification.reason.rawValue,
            "dedup_key": input.dedupKey,
            "target": input.target,
            "check": input.check,
            "level": notification.action == .trigger ? notification.level.rawValue : "OK",
            "summary": summary(notification),
            "message": input.message,
            "first_seen": timestamp(notification.firstSeen),
            "timestamp": timestamp(notification.at),
        ]
        if let hint = input.hint { body["hint"] = hint }
        if let value = input.value { body["value"] = value }
        return body
    }

    /// Serializes a payload with sorted keys (stable bytes for logs and tests).
    public static func encode(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Slack's mrkdwn needs `&`, `<` and `>` escaped.
    public static func escapeSlack(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    }
}
