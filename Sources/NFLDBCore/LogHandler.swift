import Foundation
import Logging
import Synchronization

/// The log line format chosen by `--log-format`.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-27T05:30:00.123Z info  nfldb.migrate: applied 0001_games duration_ms=12 correlation_id=…`
    case text
    /// One JSON object a line: `ts`, `level`, `logger`, `message`, then every metadata key.
    case json
}

/// Where log lines go. Standard error by default; tests pass a collecting sink.
public struct LogSink: Sendable {
    public let write: @Sendable (String) -> Void

    public init(write: @escaping @Sendable (String) -> Void) { self.write = write }

    public static let standardError = LogSink { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// nfldb's swift-log handler: human text or JSON lines, secrets always scrubbed.
///
/// Only the `nfldb` executable bootstraps it (once); libraries take a `Logger` parameter.
public struct NFLDBLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level
    public let label: String
    public let format: LogFormat
    public let sink: LogSink

    public init(label: String, format: LogFormat, level: Logger.Level, sink: LogSink = .standardError, metadata: Logger.Metadata = [:]) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.sink = sink
        self.metadata = metadata
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = .string(String(describing: error)) }
        for (key, value) in merged {
            if case .string(let text) = value, text.utf8.count > Self.valueLimit { merged[key] = .string(Self.capped(text)) }
        }
        let line = Self.render(
            format: format, timestamp: Date(), level: event.level, label: label, message: Self.capped(event.message.description), metadata: merged)
        sink.write(SecretRedactor.shared.redact(line))
    }

    /// The longest message or metadata string written whole, in characters. A longer one (an
    /// upstream's 20 MB error body, a huge statement) is cut, with the number of bytes left out.
    public static let valueLimit = 32 * 1024

    /// `text` cut to ``valueLimit`` characters; secrets are masked before the cut, so a cut never
    /// leaves half a secret that the line's own redaction would no longer recognise. Only the part
    /// that can reach the kept text is scanned (the limit plus the longest secret, at least 4 Ki
    /// characters more): scanning all of a 20 MB non-ASCII value once per registered secret took
    /// minutes.
    public static func capped(_ text: String) -> String {
        guard text.utf8.count > valueLimit else { return text }
        let scanned = text.prefix(valueLimit + max(4096, SecretRedactor.shared.longestSecret))
        let redacted = SecretRedactor.shared.redact(String(scanned))
        let kept = redacted.prefix(valueLimit)
        guard kept.endIndex < redacted.endIndex || scanned.endIndex < text.endIndex else { return redacted }
        return String(kept) + "… [\(text.utf8.count) bytes in all; the rest not logged]"
    }

    /// Renders one log line; exposed for tests.
    public static func render(
        format: LogFormat, timestamp: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        let ts = timestampFormatter.withLock { $0.string(from: timestamp) }
        switch format {
        case .text:
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\(textValue($0.value))" }
            let levelText = level.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
            return ([ts, levelText, "\(label):", message] + pairs).joined(separator: " ")
        case .json:
            var object: [String: Any] = ["ts": ts, "level": level.rawValue, "logger": label, "message": message]
            for (key, value) in metadata where object[key] == nil { object[key] = jsonValue(value) }
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
                  let text = String(data: data, encoding: .utf8)
            else { return #"{"level":"error","message":"unencodable log line"}"# }
            return text
        }
    }

    private static let timestampFormatter: Mutex<ISO8601DateFormatter> = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return Mutex(formatter)
    }()

    private static func textValue(_ value: Logger.Metadata.Value) -> String {
        let text = value.description
        return text.contains(" ") || text.isEmpty ? "\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"" : text
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text):
            // A string stays a string (a digits-only correlation id must not turn into a number);
            // numbers are logged as .stringConvertible.
            return text
        case .stringConvertible(let convertible):
            if let number = convertible as? Int { return number }
            if let number = convertible as? Int64 { return number }
            if let number = convertible as? Double { return number }
            if let flag = convertible as? Bool { return flag }
            return convertible.description
        case .array(let values): return values.map(jsonValue)
        case .dictionary(let dict): return dict.mapValues(jsonValue)
        }
    }
}

/// The correlation id that ties every log line of one nfldb run together.
public enum CorrelationID {
    /// `NFLDB_CORRELATION_ID` when set (so a cron wrapper can pass its own), else a new random id.
    public static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let given = environment["NFLDB_CORRELATION_ID"], !given.isEmpty { return given }
        return UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16).description
    }
}
