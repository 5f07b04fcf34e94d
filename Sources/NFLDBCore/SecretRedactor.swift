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

    /// The length in characters of the longest registered secret.
    public var longestSecret: Int { secrets.withLock { $0.map(\.count).max() ?? 0 } }

    public init() {}

    /// Registers a secret. Very short strings are ignored: scrubbing "a" would mangle every message.
    /// Besides the text itself, its URL-encoded forms and its JSON-escaped forms are masked, so a
    /// secret with `"` or `\` is masked whole inside `--format json` output and JSON log lines.
    public func register(_ secret: String?) {
        guard let secret, secret.count >= 3 else { return }
        var variants: Set<String> = [secret]
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) {
            variants.insert(encoded)
        }
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
            variants.insert(encoded)
        }
        for variant in variants {
            variants.insert(Self.jsonEscaped(variant, slashes: false))
            variants.insert(Self.jsonEscaped(variant, slashes: true))
        }
        secrets.withLock { known in
            let new = variants.subtracting(known)
            guard !new.isEmpty else { return }
            known = (known + new).sorted { $0.count > $1.count }
        }
    }

    /// `text` as it appears inside a JSON string (`"` → `\"`, `\` → `\\`, controls as `\n`/`\u00XX`).
    static func jsonEscaped(_ text: String, slashes: Bool) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "/" where slashes: result += "\\/"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Registers the password of a DSN (URL or conninfo), where a DSN is resolved: the value as
    /// libpq reads it and the exact text that spells it in the DSN.
    ///
    /// For a URL, every reading of the user-info is registered: up to the first `@` (libpq's) and
    /// up to each later `@` (what the user meant when the password holds an un-encoded `@`, `:` or
    /// `/`), raw and percent-decoded. For conninfo, `password=` values follow libpq's rules: a quoted
    /// value ends at the closing unescaped `'`, an unquoted one at whitespace, `\` escapes a character.
    public func registerPassword(inDSN dsn: String) {
        for candidate in Self.passwordCandidates(inDSN: dsn) {
            register(candidate)
            register(candidate.removingPercentEncoding)
        }
    }

    /// The password spellings in `dsn` (see ``registerPassword(inDSN:)``).
    static func passwordCandidates(inDSN dsn: String) -> [String] {
        var found: [String] = []
        if let userinfo = DSNText.urlUserinfoStart(dsn) {
            let rest = dsn[userinfo...]
            if let colon = rest.firstIndex(of: ":"), rest[..<colon].firstIndex(of: "@") == nil {
                var index = rest.index(after: colon)
                while let at = rest[index...].firstIndex(of: "@") {
                    found.append(String(rest[rest.index(after: colon)..<at]))
                    index = rest.index(after: at)
                }
            }
            // A password in the query string: ?password=…&…
            if let query = dsn.firstIndex(of: "?") {
                // libpq percent-decodes query keys too: ?pass%77ord=… is the password.
                for pair in dsn[dsn.index(after: query)...].split(separator: "&") {
                    guard let equals = pair.firstIndex(of: "=") else { continue }
                    let key = String(pair[..<equals])
                    if (key.removingPercentEncoding ?? key).lowercased() == "password" {
                        found.append(String(pair[pair.index(after: equals)...]))
                    }
                }
            }
        } else {
            for pair in DSNText.conninfoPairs(dsn) where pair.key.lowercased() == "password" {
                found.append(pair.value)
                found.append(String(pair.source))
            }
        }
        return found
    }

    /// Returns `text` with every registered secret, and any password inside a URL or a
    /// `password=` conninfo pair, replaced by ``mask``. Registered secrets go first: they are
    /// masked whole, whatever they contain, before the patterns look at what is left.
    public func redact(_ text: String) -> String {
        var result = text
        let known = secrets.withLock { $0 }
        for secret in known where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: Self.mask)
        }
        return Self.redactPatterns(result)
    }

    /// A DSN (URL or conninfo) with its password masked, for `config show`, logs and errors: its own
    /// password spellings (``registerPassword(inDSN:)``), then the shared registered secrets and patterns.
    public static func redactDSN(_ dsn: String) -> String {
        let own = SecretRedactor()
        own.registerPassword(inDSN: dsn)
        return shared.redact(own.redact(dsn))
    }

    /// Pattern-based scrubbing that needs no registration:
    /// - `scheme://user:PASSWORD@host`: everything from the first `:` of the user-info to the *last*
    ///   `@` of the URL, so a password with an un-encoded `@`, `:` or `/` is masked whole;
    /// - `password=VALUE` / `password='VALUE'` in conninfo strings (libpq's rules: an unquoted value
    ///   ends at whitespace, `\` escapes), and `?password=VALUE&` / `&password=VALUE` in URL queries.
    ///
    /// The patterns read JSON-escaped text too: an escape pair (`\"`, `\\`) is never split, and a `"`
    /// that ends a JSON string (followed by `,` `:` `}` `]`, whitespace or the end) ends a match, so a
    /// JSON log line or `--format json` output stays valid JSON after scrubbing.
    public static func redactPatterns(_ text: String) -> String {
        var result = text
        if result.contains("://") {
            result = Patterns.urlPassword.replace(in: result, template: "$1\(mask)$3")
        }
        if result.range(of: "password", options: .caseInsensitive) != nil || result.contains("%") {
            result = Patterns.queryPassword.replace(in: result, template: "$1\(mask)")
        }
        if result.range(of: "password", options: .caseInsensitive) != nil {
            result = Patterns.conninfoPassword.replace(in: result, template: "$1\(mask)")
        }
        return result
    }

    /// The expressions, compiled once. `NSRegularExpression` is immutable and documented as
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
        /// A `"` that cannot end a JSON string: inside JSON every other `"` is escaped.
        static let innerQuote = #""(?![\s,:}\]]|$)"#
        static let urlPassword = Pattern(#"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s"\\]*:)((?:\\.|[^\s"\\]|"# + innerQuote + #")*)(@)"#)
        /// The key as libpq reads it after percent-decoding (`?pass%77ord=` is `password=`).
        static let queryPassword = Pattern(
            #"(?i)([?&](?:p|%70|%50)(?:a|%61|%41)(?:s|%73|%53)(?:s|%73|%53)(?:w|%77|%57)(?:o|%6f|%4f)(?:r|%72|%52)(?:d|%64|%44)=)((?:\\.|[^&#\s"\\]|"# + innerQuote + #")*)"#)
        /// libpq's `isspace`: ASCII whitespace only.
        static let space = #"[\t\n\u000B\f\r ]"#
        static let conninfoPassword = Pattern(
            #"(?i)((?<![?&\w])password"# + space + #"*="# + space + #"*)('(?:\\\\'|\\.|[^'\\"]|"# + innerQuote + #")*'|(?:\\.|[^\t\n\u000B\f\r "\\]|"#
                + innerQuote + #")+)"#)
    }
}

/// Reading DSN text the way libpq does, without libpq (Core does not link it).
enum DSNText {
    /// Where the user-info of a `postgresql://` / `postgres://` URL starts; nil for conninfo.
    static func urlUserinfoStart(_ dsn: String) -> String.Index? {
        for scheme in ["postgresql://", "postgres://"] {
            if let range = dsn.range(of: scheme, options: [.anchored, .caseInsensitive]) { return range.upperBound }
        }
        return nil
    }

    /// The `keyword=value` pairs of a conninfo string as libpq's `conninfo_parse` reads them: the value
    /// (unescaped) and its source text (between the quotes when quoted). Stops at the first thing
    /// libpq would reject.
    static func conninfoPairs(_ text: String) -> [(key: String, value: String, source: Substring)] {
        var pairs: [(key: String, value: String, source: Substring)] = []
        var index = text.startIndex
        func isSpace(_ character: Character) -> Bool { " \t\n\r\u{0B}\u{0C}".contains(character) }
        func skipSpace() { while index < text.endIndex, isSpace(text[index]) { index = text.index(after: index) } }
        while true {
            skipSpace()
            guard index < text.endIndex else { break }
            let keyStart = index
            while index < text.endIndex, text[index] != "=", !isSpace(text[index]) { index = text.index(after: index) }
            let key = String(text[keyStart..<index])
            skipSpace()
            guard index < text.endIndex, text[index] == "=" else { break }
            index = text.index(after: index)
            skipSpace()
            var value = ""
            let quoted = index < text.endIndex && text[index] == "'"
            if quoted { index = text.index(after: index) }
            let sourceStart = index
            var sourceEnd = index
            while index < text.endIndex {
                let character = text[index]
                if quoted && character == "'" {
                    sourceEnd = index
                    index = text.index(after: index)
                    break
                }
                if !quoted && isSpace(character) { break }
                if character == "\\" {
                    index = text.index(after: index)
                    if index < text.endIndex {
                        value.append(text[index])
                        index = text.index(after: index)
                    }
                } else {
                    value.append(character)
                    index = text.index(after: index)
                }
                sourceEnd = index
            }
            pairs.append((key, value, text[sourceStart..<sourceEnd]))
        }
        return pairs
    }
}
