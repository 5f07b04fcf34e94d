import Foundation
import NFLDBCore

/// Where a Fernet key comes from: `env:NAME` or `file:PATH`. Keys are never given inline.
///
/// **The place to switch:** ``resolveSecret(_:environment:)`` is the one function that turns a
/// reference into text. When NFLDBCore gains the general secret-reference resolver (issue 15 §1:
/// `env:`/`file:`/`aws-sm:`), replace its body with a call to that resolver; nothing else changes.
public struct KeyReference: Sendable, Hashable, CustomStringConvertible {
    /// `aws-sm` (any provider scheme) is resolved by NFLDBCore's ``SecretResolver``.
    public enum Kind: String, Sendable { case env, file, awsSM = "aws-sm" }
    public let kind: Kind
    public let value: String

    public init(parsing text: String) throws(KeyReferenceError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard let colon = trimmed.firstIndex(of: ":"), let kind = Kind(rawValue: String(trimmed[..<colon])) else {
            throw .unsupported(Self.safeLabel(trimmed))
        }
        let value = String(trimmed[trimmed.index(after: colon)...])
        guard !value.isEmpty else { throw .emptyValue(kind.rawValue) }
        // A key pasted after the scheme (`file:<key>`, `env:<key>`) would be echoed by every later
        // error ("cannot read <key>", "<key> is not set"): refused here without showing it (an
        // attack probe saw `--key-ref file:<key>` print the key).
        if Base64URL.decode(value)?.count == 32 {
            throw .unsupported("a \(kind.rawValue): reference whose value is a Fernet key itself (\(value.utf8.count) characters, not shown)")
        }
        if kind == .env, value.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) == nil {
            throw .unsupported("an env: reference whose value (\(value.utf8.count) characters, not shown: it may be a key) is not an environment variable name")
        }
        self.kind = kind
        self.value = value
    }

    /// Parses `REF[,REF…]`; the first is the newest key (it encrypts), the others only decrypt.
    public static func list(_ text: String) throws(KeyReferenceError) -> [KeyReference] {
        var result: [KeyReference] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            result.append(try KeyReference(parsing: String(part)))
        }
        if result.isEmpty { throw .empty }
        return result
    }

    /// `env:NAME` / `file:PATH`: names where the key lives, never the key.
    public var description: String { "\(kind.rawValue):\(value)" }

    /// What to show for an unparseable reference: it may be a key pasted by mistake, so only its
    /// scheme (text before a colon) and length.
    static func safeLabel(_ text: String) -> String {
        if let colon = text.firstIndex(of: ":"), text[..<colon].allSatisfy({ $0.isLetter || $0 == "-" }), colon != text.startIndex {
            return "a reference with scheme \"\(text[..<colon])\""
        }
        return "a value of \(text.utf8.count) characters without a known scheme"
    }
}

public enum KeyReferenceError: Error, Sendable, Equatable, NFLDBError {
    case empty
    case unsupported(String)
    case envUnset(String)
    case fileUnreadable(path: String, reason: String)
    case fileTooOpen(path: String, mode: String)
    case fileEmpty(String)
    case notRegularFile(path: String, kind: String)
    case emptyValue(String)
    case badKey(reference: String, problem: String)
    /// A provider reference (`aws-sm:`) that ``SecretResolver`` could not resolve: its diagnostic.
    case resolver(Diagnostic)

    public var diagnostic: Diagnostic {
        switch self {
        case .empty:
            Diagnostic("--key-ref is empty", hint: "Give env:NAME or file:PATH, comma-separated, newest key first.")
        case .unsupported(let label):
            Diagnostic(
                "--key-ref: \(label) is not a key reference",
                hint: "Use env:NAME (an environment variable holding the key) or file:PATH (a mode 0600 file); keys are never given inline.")
        case .envUnset(let name):
            Diagnostic("key reference env:\(name): the variable is not set or empty", hint: "Export \(name) with a key from `nfldb crypt keygen`.")
        case .fileUnreadable(let path, let reason):
            Diagnostic("key reference file:\(path): cannot read it (\(reason))", hint: "Fix the path, or its owner/permissions (0600, readable by this user).")
        case .fileTooOpen(let path, let mode):
            Diagnostic(
                "key reference file:\(path) is group- or world-readable (mode \(mode)); refusing to use it",
                hint: "Run `chmod 0600 \(path)` (the rule libpq applies to ~/.pgpass).")
        case .notRegularFile(let path, let kind):
            Diagnostic("key reference file:\(path) is \(kind), not a regular file",
                       hint: "Point it at a regular file (mode 0600) whose first line is a key from `nfldb crypt keygen`.")
        case .emptyValue(let scheme):
            Diagnostic("--key-ref: \(scheme): names no \(scheme == "env" ? "variable" : scheme == "file" ? "file" : "secret")",
                       hint: "Write \(scheme == "env" ? "env:NAME" : scheme == "file" ? "file:PATH" : "\(scheme):SECRET_ID"), e.g. \(scheme == "env" ? "env:NFLDB_FERNET_KEY" : "file:/etc/nfldb/fernet.key").")
        case .fileEmpty(let path):
            Diagnostic("key reference file:\(path) is empty", hint: "Write a key from `nfldb crypt keygen` on its first line.")
        case .badKey(let reference, let problem):
            Diagnostic("key reference \(reference): \(problem)", hint: "Make a key with `nfldb crypt keygen` and store it there.")
        case .resolver(let diagnostic):
            diagnostic
        }
    }

    public var exitStatus: ExitStatus { .usage }
}

extension KeyReference {
    /// Resolves a reference to its secret text. **This is the one place to switch to NFLDBCore's
    /// general secret resolver** when it exists.
    public static func resolveSecret(_ reference: KeyReference, environment: [String: String]) throws(KeyReferenceError) -> String {
        switch reference.kind {
        case .awsSM:
            do {
                return try SecretResolver.shared.resolve(reference.description, what: "key reference", environment: environment)
            } catch let error as any NFLDBError {
                throw .resolver(error.diagnostic)
            } catch {
                throw .resolver(Diagnostic("key reference \(reference): \(error)"))
            }
        case .env:
            guard let value = environment[reference.value]?.trimmingASCIIWhitespace(), !value.isEmpty else {
                throw .envUnset(reference.value)
            }
            return value
        case .file:
            let path = reference.value
            var info = stat()
            guard stat(path, &info) == 0 else { throw .fileUnreadable(path: path, reason: String(cString: strerror(errno))) }
            // The type first: a chmod hint for a directory or /dev/null would be wrong (or harmful).
            if let kind = FileKind.nonRegular(info.st_mode) { throw .notRegularFile(path: path, kind: kind) }
            // libpq's .pgpass rule: no group or world permissions at all.
            if info.st_mode & 0o077 != 0 { throw .fileTooOpen(path: path, mode: String(info.st_mode & 0o777, radix: 8)) }
            guard let data = FileManager.default.contents(atPath: path) else { throw .fileUnreadable(path: path, reason: "read failed") }
            let text = String(decoding: data, as: UTF8.self)
            let first = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map { $0.trimmingASCIIWhitespace() } ?? ""
            guard !first.isEmpty else { throw .fileEmpty(path) }
            return first
        }
    }

    /// Resolves and parses a key, registering it with ``SecretRedactor`` so it can never appear in output.
    public func loadKey(environment: [String: String] = ProcessInfo.processInfo.environment, redactor: SecretRedactor = .shared) throws(KeyReferenceError) -> FernetKey {
        let text = try Self.resolveSecret(self, environment: environment)
        redactor.register(text)
        do {
            let key = try FernetKey(encoded: text)
            redactor.register(key.encoded)
            return key
        } catch {
            throw .badKey(reference: description, problem: error.description)
        }
    }
}

/// The keys of one `--key-ref REF[,REF…]`, newest first, with the reference each came from (for
/// reports: "row 17 opens with file:/etc/nfldb/old.key").
public struct KeyRing: Sendable {
    public let references: [KeyReference]
    public let keys: [FernetKey]

    public init(references: [KeyReference], keys: [FernetKey]) {
        precondition(references.count == keys.count && !keys.isEmpty)
        self.references = references
        self.keys = keys
    }

    /// Parses `REF[,REF…]` and loads every key.
    public static func load(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(KeyReferenceError) -> KeyRing {
        let references = try KeyReference.list(text)
        var keys: [FernetKey] = []
        for reference in references { keys.append(try reference.loadKey(environment: environment)) }
        return KeyRing(references: references, keys: keys)
    }

    public func multiFernet() throws(FernetError) -> MultiFernet { try MultiFernet(keys: keys) }
}
