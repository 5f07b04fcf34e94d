import Foundation
import Synchronization

/// Scrubs known secrets (passwords, tokens, secret URLs) from any text before it is shown.
///
/// Every place nfldb learns a secret registers it here; the log handlers and the error printer pass
/// all text through ``redact(_:)``. This is defence in depth on top of never formatting secrets in
/// the first place: a libpq message or a server error that echoes a DSN still cannot leak it.
public final class SecretRedactor: Sendable {
    /// The replacement text for a secret.
    public static let mask = "********"

    public static let shared = SecretRedactor()

    private let secrets = Mutex<Set<String>>([])

    public init() {}

    /// Registers a secret. Very short strings are ignored: scrubbing "a" would mangle every message.
    public func register(_ secret: String?) {
        guard let secret, secret.count >= 3 else { return }
        var variants: Set<String> = [secret]
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) {
            variants.insert(encoded)
        }
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
            variants.insert(encoded)
        }
        secrets.withLock { $0.formUnion(variants) }
    }

    /// Returns `text` with every registered secret, and any password inside a URL or a
    /// `password=` conninfo pair, replaced by ``mask``.
    public func redact(_ text: String) -> String {
        var result = Self.redactPatterns(text)
        let known = secrets.withLock { $0 }.sorted { $0.count > $1.count }
        for secret in known where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: Self.mask)
        }
        return result
    }

    /// Pattern-based scrubbing that needs no registration: `scheme://user:PASSWORD@host` and
    /// `password=VALUE` / `password='VALUE'` in conninfo strings. A `"` ends the match, so a JSON
    /// log line or `--format json` output stays valid JSON after scrubbing.
    public static func redactPatterns(_ text: String) -> String {
        var result = text
        if result.contains("://") {
            result = replace(in: result, pattern: #"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s"]*:)([^@\s/"]*)(@)"#, template: "$1\(mask)$3")
        }
        if result.range(of: "password", options: .caseInsensitive) != nil {
            result = replace(in: result, pattern: #"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&"]+)"#, template: "$1\(mask)")
        }
        return result
    }

    private static func replace(in text: String, pattern: String, template: String) -> String {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return text }
        let range = NSRange(text.startIndex..., in: text)
        return regex.stringByReplacingMatches(in: text, range: range, withTemplate: template)
    }
}
