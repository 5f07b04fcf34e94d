import Foundation

/// A URL as it may be stored, logged and shown: without user info and fragment, and with the
/// values of credential-like parameters replaced by `REDACTED` — in the query (items separated by
/// `&` or `;`) and in path parameters (`/file;sig=…`). A presigned URL carries its signature there
/// (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`, Azure's `sig`, Akamai's `hdnts`…).
///
/// Works on the text, so it also covers what `URLComponents` does not split (`;` separators,
/// malformed escapes). Other parameters stay, so the URL is still recognisable.
public enum URLRedaction {
    public static let placeholder = "REDACTED"

    /// The redacted text (surrounding white space trimmed) and whether anything was taken out: user
    /// info (another user may be shown other content) or a parameter's value. A caller that
    /// keys state by the URL must not use the redacted text as the key when `redacted` is true: two
    /// different URLs may differ only in what was taken out.
    public static func redact(_ url: String) -> (text: String, redacted: Bool) {
        var text = Substring(url.trimmingCharacters(in: .whitespacesAndNewlines))
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }  // never sent to the server
        var query: Substring?
        if let mark = text.firstIndex(of: "?") {
            query = text[text.index(after: mark)...]
            text = text[..<mark]
        }
        var redacted = false
        var head = String(text)
        // scheme:// or scheme:/ (a mistyped URL still must not show its password), then the authority.
        if let colon = head.firstIndex(of: ":"), head[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
           head[head.index(after: colon)...].hasPrefix("/") {
            var authorityStart = head.index(after: colon)
            while authorityStart < head.endIndex, head[authorityStart] == "/" { authorityStart = head.index(after: authorityStart) }
            let authorityEnd = head[authorityStart...].firstIndex(of: "/") ?? head.endIndex
            if let at = head[authorityStart..<authorityEnd].lastIndex(of: "@") {
                head = String(head[..<authorityStart]) + String(head[head.index(after: at)...])
                redacted = true
            }
        } else {
            // Not a URL (`https:u:pw@h/…`, `http//u:pw@h`, `u:pw@h`): a `name:secret@` part is masked anyway.
            let masked = maskUserInfo(head)
            if masked != head { head = masked; redacted = true }
        }
        // Path parameters: /name;key=value;…
        if head.contains(";") {
            let segments = head.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
                guard let semicolon = segment.firstIndex(of: ";") else { return String(segment) }
                let (params, changed) = redactParameters(segment[segment.index(after: semicolon)...], separators: [";"])
                redacted = redacted || changed
                return String(segment[...semicolon]) + params
            }
            head = segments.joined(separator: "/")
        }
        guard let query else { return (head, redacted) }
        let (params, changed) = redactParameters(query, separators: ["&", ";"])
        return (head + "?" + params, redacted || changed)
    }

    /// Every `user:secret@` in `text` (the part after the last `/` or space before an `@`, if it holds
    /// a `:`) with what follows its first `:` masked: `u:pw@h` → `u:********@h`.
    public static func maskUserInfo(_ text: String) -> String {
        var out = ""
        var segment = ""
        for character in text {
            if character == "@", let colon = segment.firstIndex(of: ":") {
                out += String(segment[...colon]) + "********@"
                segment = ""
            } else if character == "/" || character == " " || character == "@" {
                out += segment + String(character)
                segment = ""
            } else {
                segment.append(character)
            }
        }
        return out + segment
    }

    /// `name=value` items separated by `separators` (kept as they were), credential values replaced.
    static func redactParameters(_ text: Substring, separators: Set<Character>) -> (String, Bool) {
        var out = ""
        var item = ""
        var changed = false
        func flush() {
            let name = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if !name.isEmpty, isCredentialParameter(name) {
                out += name + "=" + placeholder
                changed = true
            } else {
                out += item
            }
            item = ""
        }
        for character in text {
            if separators.contains(character) {
                flush()
                out.append(character)
            } else {
                item.append(character)
            }
        }
        flush()
        return (out, changed)
    }

    /// Whether a parameter (name as it appears, percent-encoded or not) holds a credential. Compared
    /// on its letters and digits only, so `api_key`, `api-key`, `Api+Key` and `apiKey` are one name.
    public static func isCredentialParameter(_ encodedName: String) -> Bool {
        let decoded = encodedName.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? encodedName
        let name = String(decoded.lowercased().filter { $0.isLetter || $0.isNumber })
        if exact.contains(name) { return true }
        return fragments.contains { name.contains($0) }
    }

    /// Names that are a credential on their own (`key`: Google's API key; `sig`: Azure SAS; `hdnts`:
    /// Akamai; `verify`: Cloudflare; `code`: an OAuth code).
    static let exact: Set<String> = ["sig", "key", "code", "pwd", "pass", "hdnts", "jwt", "verify", "sid", "otp", "hmac", "hash"]
    /// Parts of names that mark a credential: `X-Amz-Signature`, `access_token`, `tempauth`, `auth_key`…
    static let fragments = [
        "signature", "credential", "token", "secret", "password", "passwd", "passphrase", "apikey", "accesskey", "privatekey",
        "auth", "sessionid", "jwt",
    ]
}
