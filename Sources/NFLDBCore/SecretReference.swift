import Foundation
import Synchronization

/// Where a secret lives: `env:NAME`, `file:PATH`, or a provider scheme such as
/// `aws-sm:SECRET_ID[#json_key][@VERSION_STAGE]`.
///
/// Core parses every reference the same way and resolves `env:` and `file:` itself; any other scheme
/// is resolved by a ``SecretProvider`` the executable registers with ``SecretResolver`` (so Core
/// knows nothing about AWS). For provider schemes the text after the scheme is
/// `ID[#json_key][@stage]`: `#key` picks one field of a JSON secret (resolved here, for every
/// provider), `@stage` a version stage (passed to the provider).
public struct SecretReference: Sendable, Hashable, CustomStringConvertible {
    /// `env`, `file`, or a provider scheme (`aws-sm`).
    public let scheme: String
    /// The variable name, the path, or the provider's secret id.
    public let identifier: String
    /// A field of a JSON object secret (`#password`).
    public let jsonKey: String?
    /// A provider's version stage (`@AWSPREVIOUS`).
    public let versionStage: String?

    public init(scheme: String, identifier: String, jsonKey: String? = nil, versionStage: String? = nil) {
        self.scheme = scheme
        self.identifier = identifier
        self.jsonKey = jsonKey
        self.versionStage = versionStage
    }

    public static let builtInSchemes = ["env", "file"]

    /// The reference as written (never a secret itself, so safe to print).
    public var description: String {
        var text = "\(scheme):\(identifier)"
        if let jsonKey { text += "#\(jsonKey)" }
        if let versionStage { text += "@\(versionStage)" }
        return text
    }

    /// The same reference at another version stage (rotation reads `@AWSPENDING`).
    public func atStage(_ stage: String?) -> SecretReference {
        SecretReference(scheme: scheme, identifier: identifier, jsonKey: jsonKey, versionStage: stage)
    }

    /// Parses `text`; `schemes` are the schemes that can be resolved in this run (the built-in ones
    /// plus the registered providers'). Errors name `source` (`nfldb.yaml:12`, `env NFLDB_PASSWORD_REF`).
    public static func parse(_ text: String, source: ConfigSource? = nil, what: String = "secret reference",
                             schemes: [String] = SecretResolver.shared.schemes) throws -> SecretReference {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let example = "Write env:NAME, file:/path/to/secret or aws-sm:SECRET_ID[#json_key][@VERSION_STAGE]."
        guard let colon = trimmed.firstIndex(of: ":") else {
            // Not echoed: text without a scheme is most likely the secret itself, written inline.
            throw ConfigurationError("\(what) is not a secret reference (no scheme; the value is not shown in case it is the secret itself)",
                                     source: source, hint: "Never write the secret itself here. \(example)")
        }
        let scheme = String(trimmed[..<colon]).lowercased()
        var rest = String(trimmed[trimmed.index(after: colon)...])
        guard schemes.contains(scheme) else {
            throw ConfigurationError(
                "\(what): unknown secret scheme (the text before the first ':' is not shown in case the value is the secret itself)", source: source,
                hint: "Known schemes: \(schemes.sorted().joined(separator: ", ")). \(example)")
        }
        guard !rest.isEmpty else {
            throw ConfigurationError("\(what) '\(trimmed)' names no \(scheme == "env" ? "variable" : scheme == "file" ? "path" : "secret")", source: source, hint: example)
        }
        if builtInSchemes.contains(scheme) {
            if scheme == "env", rest.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) == nil {
                // Not echoed: a secret pasted after `env:` is the likely cause.
                throw ConfigurationError("\(what): the text after env: (\(rest.utf8.count) characters, not shown in case it is the secret itself) is not an environment variable name",
                                         source: source, hint: "Use letters, digits and _ (env:NFLDB_PASSWORD).")
            }
            return SecretReference(scheme: scheme, identifier: rest)
        }
        var stage: String?
        if let at = rest.lastIndex(of: "@") {
            let candidate = String(rest[rest.index(after: at)...])
            if !candidate.contains("/"), !candidate.contains("#") {
                guard !candidate.isEmpty else {
                    throw ConfigurationError("\(what) '\(trimmed)': empty version stage after @", source: source, hint: "Name a stage (@AWSCURRENT, @AWSPREVIOUS) or drop the @.")
                }
                stage = candidate
                rest = String(rest[..<at])
            }
        }
        var jsonKey: String?
        if let hash = rest.firstIndex(of: "#") {
            let key = String(rest[rest.index(after: hash)...])
            guard !key.isEmpty else {
                throw ConfigurationError("\(what) '\(trimmed)': empty JSON key after #", source: source, hint: "Name a field of the JSON secret (#password) or drop the #.")
            }
            jsonKey = key
            rest = String(rest[..<hash])
        }
        guard !rest.isEmpty else {
            throw ConfigurationError("\(what) '\(trimmed)' names no secret", source: source, hint: example)
        }
        return SecretReference(scheme: scheme, identifier: rest, jsonKey: jsonKey, versionStage: stage)
    }
}

/// Resolves a provider scheme (`aws-sm`). Registered by the executable with ``SecretResolver/register(_:)``.
public protocol SecretProvider: Sendable {
    var scheme: String { get }
    /// The secret's whole value (the JSON text for a JSON secret; ``SecretResolver`` picks `#key`).
    /// Errors name the reference and never contain the value.
    func fetch(_ reference: SecretReference, environment: [String: String]) throws -> String
}

/// The one place secrets are resolved: once per run, cached in memory, every value registered with
/// ``SecretRedactor`` before it is returned.
public final class SecretResolver: Sendable {
    public static let shared = SecretResolver()

    private let providers = Mutex<[String: any SecretProvider]>([:])
    private let cache = Mutex<[SecretReference: String]>([:])

    public init() {}

    public func register(_ provider: any SecretProvider) {
        providers.withLock { $0[provider.scheme] = provider }
    }

    /// The schemes this run can resolve.
    public var schemes: [String] {
        SecretReference.builtInSchemes + providers.withLock { Array($0.keys) }
    }

    /// Forgets cached values (tests, and rotation after it changed a secret).
    public func forget(_ reference: SecretReference? = nil) {
        cache.withLock { cached in
            if let reference { cached[reference] = nil } else { cached.removeAll() }
        }
    }

    /// Parses and resolves `text` (see ``SecretReference/parse(_:source:what:schemes:)``).
    public func resolve(_ text: String, source: ConfigSource? = nil, what: String = "secret reference",
                        environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try resolve(try SecretReference.parse(text, source: source, what: what, schemes: schemes), source: source, what: what, environment: environment)
    }

    public func resolve(_ reference: SecretReference, source: ConfigSource? = nil, what: String = "secret reference",
                        environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let cached = cache.withLock({ $0[reference] }) { return cached }
        let located = source.map { "\($0): " } ?? ""
        let raw: String
        switch reference.scheme {
        case "env":
            guard let value = environment[reference.identifier], !value.isEmpty else {
                throw ConfigurationError(
                    "\(what) \(reference): environment variable \(reference.identifier) is not set", source: source,
                    hint: "Export \(reference.identifier) for the user running nfldb, or point the reference elsewhere.")
            }
            raw = value
        case "file":
            raw = try Self.readProtectedFile(reference.identifier, what: "\(what) \(reference)", source: source)
        default:
            guard let provider = providers.withLock({ $0[reference.scheme] }) else {
                throw ConfigurationError("\(what): no provider for secret scheme '\(reference.scheme)'", source: source,
                                         hint: "Known schemes: \(schemes.sorted().joined(separator: ", ")).")
            }
            do {
                raw = try provider.fetch(reference, environment: environment)
            } catch let error as any NFLDBError {
                throw OperatorError(Diagnostic("\(located)\(what) \(reference): \(error.diagnostic.summary)", detail: error.diagnostic.detail, hint: error.diagnostic.hint),
                                    exitStatus: error.exitStatus)
            }
        }
        var value = raw
        if let key = reference.jsonKey {
            value = try Self.field(key, of: raw, reference: reference, what: what, source: source)
        }
        guard !value.isEmpty else {
            throw ConfigurationError("\(what) \(reference) resolved to an empty value", source: source, hint: "Store a non-empty secret there.")
        }
        SecretRedactor.shared.register(raw)
        SecretRedactor.shared.register(value)
        // env: is not cached: reading it again is free, and a caller passing another environment
        // (tests, a child's environment) must see that one.
        if reference.scheme != "env" { cache.withLock { $0[reference] = value } }
        return value
    }

    /// One field of a JSON object secret; a string, or a number/bool printed as JSON does.
    static func field(_ key: String, of raw: String, reference: SecretReference, what: String, source: ConfigSource?) throws -> String {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: Any] else {
            throw ConfigurationError("\(what) \(reference): the secret is not a JSON object, so #\(key) cannot be read", source: source,
                                     hint: "Store the secret as a JSON object with a \"\(key)\" field, or drop #\(key).")
        }
        switch object[key] {
        case let text as String: return text
        case let number as NSNumber: return number.stringValue
        case nil:
            throw ConfigurationError("\(what) \(reference): the JSON secret has no field '\(key)'", source: source,
                                     hint: "Fields present: \(object.keys.sorted().joined(separator: ", ")).")
        default:
            throw ConfigurationError("\(what) \(reference): field '\(key)' is not a string or number", source: source)
        }
    }

    /// The first line of a secret file, refused when the group or others may read it (libpq's
    /// `.pgpass` rule) or when it is not a regular file.
    public static func readProtectedFile(_ path: String, what: String, source: ConfigSource?) throws -> String {
        // open + fstat (O_NONBLOCK: a FIFO does not block): the checks are about the file that is read.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            let hint = errno == ENOENT
                ? "Create the file (install -m 0600 /dev/null \(path), then write the secret on its first line) or fix the path."
                : "Make \(path) readable by the user running nfldb (and by nobody else: chmod 0600), or fix the path."
            throw ConfigurationError("\(what): cannot read \(path): \(reason)", source: source, hint: hint)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ConfigurationError("\(what): cannot read \(path): \(String(cString: strerror(errno)))", source: source)
        }
        if let kind = FileKind.nonRegular(info.st_mode) {
            throw ConfigurationError("\(what): \(path) is \(kind), not a regular file", source: source,
                                     hint: "Point the reference at a regular file (mode 0600) whose first line is the secret.")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ConfigurationError(
                "\(what): \(path) has group or world access (mode \(String(info.st_mode & 0o777, radix: 8))); refusing to use it", source: source,
                hint: "Run: chmod 0600 \(path)")
        }
        return try Configuration.readSecretFile(path, what: what, source: source)
    }
}
