import Foundation
import Yams

/// Builds the effective ``Configuration``: flag > environment > file > default.
///
/// The file is `--config PATH` when given (it must exist), else `./nfldb.yaml` when present.
/// YAML was chosen over TOML because the role spec (`roles/`) is YAML too, so operators learn one
/// syntax, and Yams reports line numbers for every node, which every config error quotes.
public struct ConfigurationLoader: Sendable {
    /// Every key nfldb understands: ``ConfigKey/global`` plus each capability's keys.
    public var keys: [ConfigKey]
    public var environment: [String: String]
    /// Flag overrides by key name, with the flag spelling for `config show` (`--dsn`).
    public var flags: [String: (value: String, flag: String)]
    public var explicitPath: String?
    public var workingDirectory: String

    public init(
        keys: [ConfigKey],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        flags: [String: (value: String, flag: String)] = [:],
        explicitPath: String? = nil,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) {
        self.keys = keys
        self.environment = environment
        self.flags = flags
        self.explicitPath = explicitPath
        self.workingDirectory = workingDirectory
    }

    public static let defaultFileName = "nfldb.yaml"

    public func load() throws -> Configuration {
        var entries: [String: ConfigEntry] = [:]
        for key in keys where !key.isPattern {
            if let value = key.defaultValue {
                entries[key.name] = ConfigEntry(path: key.name, value: .scalar(value), source: .defaultValue)
            }
        }

        let path = try resolveFilePath()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError("cannot read config file \(path): \(error.localizedDescription)", hint: "Check the path given to --config.")
            }
            for entry in try Self.parse(yaml: text, path: path, keys: keys) { entries[entry.path] = entry }
        }

        for key in keys where !key.isPattern {
            for name in [key.environmentVariable].compactMap({ $0 }) + key.extraEnvironment {
                if let value = environment[name], !value.isEmpty {
                    entries[key.name] = ConfigEntry(path: key.name, value: .scalar(value), source: .environment(name))
                    break
                }
            }
        }

        for (name, override) in flags {
            entries[name] = ConfigEntry(path: name, value: .scalar(override.value), source: .flag(override.flag))
        }

        try Self.validate(entries, keys: keys)
        // The secrets resolved here: a password inside the effective DSN, and libpq's PGPASSWORD.
        if let dsn = entries[ConfigKey.dsn.name], case .scalar(let text) = dsn.value {
            SecretRedactor.shared.registerPassword(inDSN: text)
        }
        SecretRedactor.shared.register(environment["PGPASSWORD"])
        return Configuration(keys: keys, entries: entries, file: path, environment: environment)
    }

    func resolveFilePath() throws -> String? {
        if let explicitPath {
            let absolute = absolutePath(explicitPath)
            guard FileManager.default.fileExists(atPath: absolute) else {
                throw ConfigurationError("config file \(explicitPath) does not exist", hint: "Pass an existing file to --config, or omit it to use ./nfldb.yaml.")
            }
            return absolute
        }
        let candidate = absolutePath(Self.defaultFileName)
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }

    private func absolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : (workingDirectory as NSString).appendingPathComponent(path)
    }

    // MARK: - Parsing

    /// Parses `nfldb.yaml` text against `keys`. Unknown keys, wrong shapes and inline secrets are
    /// errors naming `path:line`.
    /// `scheme:rest` with a scheme-like prefix (letters, digits, `-`), as a secret reference has.
    static func looksLikeReference(_ text: String) -> Bool {
        text.range(of: #"^[A-Za-z][A-Za-z0-9-]*:\S"#, options: .regularExpression) != nil
    }

    public static func parse(yaml: String, path: String, keys: [ConfigKey]) throws -> [ConfigEntry] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError("\(path): invalid YAML: \(yamlProblem(error))", hint: "Fix the YAML syntax at that position.")
        }
        guard let root else { return [] }
        guard case .mapping(let mapping) = root else {
            throw ConfigurationError("the top level must be a mapping of settings", source: source(path, root))
        }
        var walker = Walker(keys: keys, path: path)
        try walker.walk(mapping, prefix: "")
        return walker.entries
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)"
        default:
            return String(describing: error)
        }
    }

    fileprivate static func source(_ path: String, _ node: Node) -> ConfigSource {
        .file(path: path, line: node.mark?.line ?? 0)
    }

    /// Walks the YAML tree, matching each path against the declared keys.
    private struct Walker {
        let keys: [ConfigKey]
        let path: String
        var entries: [ConfigEntry] = []
        /// Fields that hold secrets in some record-list key; refused inline anywhere.
        let secretFields: Set<String>

        init(keys: [ConfigKey], path: String) {
            self.keys = keys
            self.path = path
            var secrets: Set<String> = []
            for key in keys { if case .records(_, let fields) = key.kind { secrets.formUnion(fields) } }
            self.secretFields = secrets
        }

        mutating func walk(_ mapping: Node.Mapping, prefix: String) throws {
            for (keyNode, valueNode) in mapping {
                guard let key = keyNode.string else {
                    throw ConfigurationError("keys must be strings", source: ConfigurationLoader.source(path, keyNode))
                }
                let full = prefix.isEmpty ? key : "\(prefix).\(key)"
                let keySpec = keys.first { $0.matches(full) }
                if let keySpec, case .records(let fields, let secrets) = keySpec.kind {
                    let records = try parseRecords(valueNode, name: full, fields: fields, secretFields: secrets)
                    entries.append(ConfigEntry(path: full, value: .records(records), source: ConfigurationLoader.source(path, keyNode)))
                    continue
                }
                // A declared key named *password (`redis.password`) takes a secret reference
                // (`env:…`, `file:…`, `aws-sm:…`); anything else there is an inline secret.
                let isReference = keySpec != nil && (valueNode.string.map(ConfigurationLoader.looksLikeReference) ?? false)
                if (full == "password" || key.hasSuffix("password") || secretFields.contains(key)) && !isReference {
                    throw ConfigurationError(
                        "'\(full)' would put a secret in the config file", source: ConfigurationLoader.source(path, keyNode),
                        hint: "Use password_file or password_env (or libpq's .pgpass); secrets never live in nfldb.yaml.")
                }
                switch valueNode {
                case .mapping(let child):
                    if keySpec != nil {
                        throw ConfigurationError("'\(full)' expects a value, not a mapping", source: ConfigurationLoader.source(path, valueNode))
                    }
                    guard keys.contains(where: { $0.name.hasPrefix(full + ".") || ConfigurationLoader.patternPrefixMatches($0.name, full) }) else {
                        throw unknownKey(full, node: keyNode)
                    }
                    try walk(child, prefix: full)
                case .sequence(let sequence):
                    guard let keySpec else { throw unknownKey(full, node: keyNode) }
                    guard keySpec.kind == .stringList else {
                        throw ConfigurationError("'\(full)' expects a single value, not a list", source: ConfigurationLoader.source(path, valueNode))
                    }
                    let values = try sequence.map { item -> String in
                        guard let text = item.string else {
                            throw ConfigurationError("'\(full)' items must be strings", source: ConfigurationLoader.source(path, item))
                        }
                        return text
                    }
                    entries.append(ConfigEntry(path: full, value: .list(values), source: ConfigurationLoader.source(path, keyNode)))
                case .scalar(let scalar):
                    guard keySpec != nil else { throw unknownKey(full, node: keyNode) }
                    if full == ConfigKey.dsn.name, ConfigurationLoader.containsPassword(scalar.string) {
                        throw ConfigurationError(
                            "dsn in the config file contains a password", source: ConfigurationLoader.source(path, keyNode),
                            hint: "Remove the password from dsn and use password_file, password_env or ~/.pgpass.")
                    }
                    entries.append(ConfigEntry(path: full, value: .scalar(scalar.string), source: ConfigurationLoader.source(path, keyNode)))
                case .alias:
                    throw ConfigurationError("YAML aliases are not supported in nfldb.yaml", source: ConfigurationLoader.source(path, valueNode))
                }
            }
        }

        /// A list of flat mappings of strings; a secret field given inline is refused without
        /// echoing its value. The owning module checks what the fields mean.
        func parseRecords(_ node: Node, name: String, fields: [String], secretFields: [String]) throws -> [ConfigRecord] {
            guard case .sequence(let sequence) = node else {
                throw ConfigurationError("'\(name)' must be a list of mappings", source: ConfigurationLoader.source(path, node))
            }
            let allowed = Set(fields)
            return try sequence.enumerated().map { index, item in
                guard case .mapping(let mapping) = item else {
                    throw ConfigurationError("\(name)[\(index)] must be a mapping", source: ConfigurationLoader.source(path, item))
                }
                var values: [String: String] = [:]
                for (keyNode, valueNode) in mapping {
                    let key = keyNode.string ?? ""
                    if secretFields.contains(key) {
                        throw ConfigurationError(
                            "\(name)[\(index)].\(key) would put a secret in the config file", source: ConfigurationLoader.source(path, keyNode),
                            hint: "Use \(key)_env (an environment variable name) or \(key)_file instead.")
                    }
                    guard allowed.contains(key) else {
                        throw ConfigurationError(
                            "unknown key '\(name)[\(index)].\(key)'", source: ConfigurationLoader.source(path, keyNode),
                            hint: "Known keys: \(allowed.sorted().joined(separator: ", ")).")
                    }
                    guard let value = valueNode.string else {
                        throw ConfigurationError("\(name)[\(index)].\(key) must be a string", source: ConfigurationLoader.source(path, valueNode))
                    }
                    values[key] = value
                }
                return ConfigRecord(index: index, fields: values, source: ConfigurationLoader.source(path, item))
            }
        }

        private func unknownKey(_ key: String, node: Node) -> ConfigurationError {
            let known = keys.map(\.name)
            let close = known.filter { $0.hasPrefix(key.split(separator: ".").first.map(String.init) ?? key) }
            let hint = close.isEmpty
                ? "Known keys: \(known.joined(separator: ", "))."
                : "Known keys here: \(close.joined(separator: ", "))."
            return ConfigurationError("unknown key '\(key)'", source: ConfigurationLoader.source(path, node), hint: hint)
        }
    }

    fileprivate static func patternPrefixMatches(_ pattern: String, _ prefix: String) -> Bool {
        let parts = prefix.split(separator: ".")
        let patternParts = pattern.split(separator: ".")
        guard patternParts.count > parts.count else { return false }
        return zip(patternParts, parts).allSatisfy { $0 == "*" || $0 == $1 }
    }

    static func containsPassword(_ dsn: String) -> Bool {
        if let url = URLComponents(string: dsn), url.scheme != nil {
            return url.password != nil
        }
        return dsn.range(of: #"(?i)\bpassword\s*="#, options: .regularExpression) != nil
    }

    // MARK: - Validation

    static func validate(_ entries: [String: ConfigEntry], keys: [ConfigKey]) throws {
        for entry in entries.values {
            guard let key = keys.first(where: { $0.matches(entry.path) }), case .scalar(let text) = entry.value else { continue }
            switch key.kind {
            case .duration:
                if DurationParser.parse(text) == nil {
                    throw ConfigurationError("\(entry.path): '\(text)' is not a duration", source: entry.source, hint: "Use a value such as 500ms, 5s, 10min or 2h.")
                }
            case .integer:
                guard let value = Int(text) else { throw ConfigurationError("\(entry.path): '\(text)' is not an integer", source: entry.source) }
                // No integer setting has a meaning below 0 (a count, a number of attempts, of standbys…).
                if value < 0 {
                    throw ConfigurationError("\(entry.path): \(value) is negative", source: entry.source,
                                             hint: "Write a whole number ≥ 0, or leave it out for the default.")
                }
            case .number:
                if ConfigKey.parseNumber(text) == nil {
                    throw ConfigurationError(
                        "\(entry.path): '\(text)' must be a finite number ≥ 0", source: entry.source,
                        hint: "Write a plain decimal number such as 5, 0.5 or 1e6 (no NaN, infinity, hex or sign).")
                }
            case .boolean:
                if ConfigKey.parseBoolean(text) == nil {
                    throw ConfigurationError("\(entry.path): '\(text)' is not a boolean", source: entry.source)
                }
            case .choice(let options):
                if !options.contains(text) {
                    throw ConfigurationError(
                        "\(entry.path): '\(text)' is not one of \(options.joined(separator: ", "))", source: entry.source)
                }
            case .string, .path, .stringList, .records:
                break
            }
        }
    }
}
