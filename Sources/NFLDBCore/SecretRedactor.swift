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

    /// The registered secrets, longest first (so a secret containing another is masked whole);
    /// kept sorted on registration, not on every ``redact(_:)``.
    private let secrets = Mutex<[String]>([])

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
        secrets.withLock { known in
            let new = variants.subtracting(known)
            guard !new.isEmpty else { return }
            known = (known + new).sorted { $0.count > $1.count }
        }
    }

    /// Registers the password part of a DSN (URL or conninfo), where a DSN is resolved.
    public func registerPassword(inDSN dsn: String) {
        if let url = URLComponents(string: dsn), url.scheme != nil, let password = url.password {
            register(password)
            register(url.percentEncodedPassword)
        }
        for pair in dsn.split(separator: " ") where pair.lowercased().hasPrefix("password=") {
            register(pair.dropFirst("password=".count).trimmingCharacters(in: CharacterSet(charactersIn: "'")))
        }
    }

    /// Returns `text` with every registered secret, and any password inside a URL or a
    /// `password=` conninfo pair, replaced by ``mask``.
    public func redact(_ text: String) -> String {
        var result = Self.redactPatterns(text)
        let known = secrets.withLock { $0 }
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
            result = Patterns.urlPassword.replace(in: result, template: "$1\(mask)$3")
        }
        if result.range(of: "password", options: .caseInsensitive) != nil {
            result = Patterns.conninfoPassword.replace(in: result, template: "$1\(mask)")
        }
        return result
    }

    /// The two expressions, compiled once. `NSRegularExpression` is immutable and documented as
    /// safe to use from several threads at once, hence `@unchecked Sendable`.
    private struct Pattern: @unchecked Sendable {
        let regex: NSRegularExpression?

        init(_ pattern: String) { regex = try? NSRegularExpression(pattern: pattern) }

        func replace(in text: String, template: String) -> String {
            guard let regex else { return text }
            return regex.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: template)
        }
    }

    private enum Patterns {
        static let urlPassword = Pattern(#"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s"]*:)([^@\s/"]*)(@)"#)
        static let conninfoPassword = Pattern(#"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&"]+)"#)
    }
}
