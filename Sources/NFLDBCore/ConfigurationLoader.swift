import Foundation
import Yams

/// Builds the effective ``Configuration``: flag > environment > file > default.
///
/// The file is `--config PATH` when given (it must exist), else `./nfldb.yaml` when present.
/// YAML was chosen over TOML because the role spec (`roles/`) is YAML too, so operators learn one
/// syntax, and Yams reports line numbers for every node, which every config error quotes.
public struct ConfigurationLoader: Sendable {
    public var environment: [String: String]
    /// Flag overrides by key name, with the flag spelling for `config show` (`--dsn`).
    public var flags: [String: (value: String, flag: String)]
    public var explicitPath: String?
    public var workingDirectory: String

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        flags: [String: (value: String, flag: String)] = [:],
        explicitPath: String? = nil,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) {
        self.environment = environment
        self.flags = flags
        self.explicitPath = explicitPath
        self.workingDirectory = workingDirectory
    }

    public static let defaultFileName = "nfldb.yaml"

    public func load() throws -> Configuration {
        var entries: [String: ConfigEntry] = [:]
        for key in ConfigKey.all where !key.isPattern {
            if let value = key.defaultValue {
                entries[key.name] = ConfigEntry(path: key.name, value: .scalar(value), source: .defaultValue)
            }
        }

        var alerts: [AlertDestination] = []
        let path = try resolveFilePath()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError("cannot read config file \(path): \(error.localizedDescription)", hint: "Check the path given to --config.")
            }
            let parsed = try Self.parse(yaml: text, path: path)
            for entry in parsed.entries { entries[entry.path] = entry }
            alerts = parsed.alerts
        }

        for key in ConfigKey.all where !key.isPattern {
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

        try Self.validate(entries)
        if let dsn = entries[ConfigKey.dsn.name], case .scalar(let text) = dsn.value {
            Self.registerPassword(inDSN: text)
        }
        return Configuration(entries: entries, alerts: alerts, file: path, environment: environment)
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

    /// Registers the password part of a DSN (URL or conninfo) with the redactor.
    public static func registerPassword(inDSN dsn: String) {
        if let url = URLComponents(string: dsn), url.scheme != nil, let password = url.password {
            SecretRedactor.shared.register(password)
            SecretRedactor.shared.register(url.percentEncodedPassword)
        }
        for pair in dsn.split(separator: " ") where pair.lowercased().hasPrefix("password=") {
            let value = pair.dropFirst("password=".count).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            SecretRedactor.shared.register(value)
        }
    }

    static func readSecretFile(_ path: String, what: String, source: ConfigSource?) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("\(what): cannot read \(path)", source: source, hint: "Create the file (mode 0600) or fix the path.")
        }
        let firstLine = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let value = firstLine.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else {
            throw ConfigurationError("\(what): \(path) is empty", source: source)
        }
        return value
    }

    // MARK: - Parsing

    struct Parsed {
        var entries: [ConfigEntry] = []
        var alerts: [AlertDestination] = []
    }

    /// Parses `nfldb.yaml` text. Unknown keys, wrong shapes and inline secrets are errors naming
    /// `path:line`.
    public static func parse(yaml: String, path: String) throws -> (entries: [ConfigEntry], alerts: [AlertDestination]) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError("\(path): invalid YAML: \(yamlProblem(error))", hint: "Fix the YAML syntax at that position.")
        }
        var parsed = Parsed()
        guard let root else { return ([], []) }
        guard case .mapping(let mapping) = root else {
            throw ConfigurationError("the top level must be a mapping of settings", source: source(path, root))
        }
        try walk(mapping, prefix: "", path: path, into: &parsed)
        return (parsed.entries, parsed.alerts)
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)"
        default:
            return String(describing: error)
        }
    }

    private static func source(_ path: String, _ node: Node) -> ConfigSource {
        .file(path: path, line: node.mark?.line ?? 0)
    }

    private static func walk(_ mapping: Node.Mapping, prefix: String, path: String, into parsed: inout Parsed) throws {
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else {
                throw ConfigurationError("keys must be strings", source: source(path, keyNode))
            }
            let full = prefix.isEmpty ? key : "\(prefix).\(key)"
            if full == "alerts" {
                parsed.alerts = try parseAlerts(valueNode, path: path)
                continue
            }
            if full == "password" || key.hasSuffix("password") || (full.hasPrefix("alerts") == false && (key == "url" || key == "routing_key")) {
                throw ConfigurationError(
                    "'\(full)' would put a secret in the config file", source: source(path, keyNode),
                    hint: "Use password_file or password_env (or libpq's .pgpass); secrets never live in nfldb.yaml.")
            }
            let keySpec = ConfigKey.all.first { $0.matches(full) }
            switch valueNode {
            case .mapping(let child):
                if keySpec != nil {
                    throw ConfigurationError("'\(full)' expects a value, not a mapping", source: source(path, valueNode))
                }
                guard ConfigKey.all.contains(where: { $0.name.hasPrefix(full + ".") || patternPrefixMatches($0.name, full) }) else {
                    throw unknownKey(full, node: keyNode, path: path)
                }
                try walk(child, prefix: full, path: path, into: &parsed)
            case .sequence(let sequence):
                guard let keySpec else { throw unknownKey(full, node: keyNode, path: path) }
                guard keySpec.kind == .stringList else {
                    throw ConfigurationError("'\(full)' expects a single value, not a list", source: source(path, valueNode))
                }
                let values = try sequence.map { item -> String in
                    guard let text = item.string else {
                        throw ConfigurationError("'\(full)' items must be strings", source: source(path, item))
                    }
                    return text
                }
                parsed.entries.append(ConfigEntry(path: full, value: .list(values), source: source(path, keyNode)))
            case .scalar(let scalar):
                guard keySpec != nil else { throw unknownKey(full, node: keyNode, path: path) }
                if full == ConfigKey.dsn.name, containsPassword(scalar.string) {
                    throw ConfigurationError(
                        "dsn in the config file contains a password", source: source(path, keyNode),
                        hint: "Remove the password from dsn and use password_file, password_env or ~/.pgpass.")
                }
                parsed.entries.append(ConfigEntry(path: full, value: .scalar(scalar.string), source: source(path, keyNode)))
            case .alias:
                throw ConfigurationError("YAML aliases are not supported in nfldb.yaml", source: source(path, valueNode))
            }
        }
    }

    private static func patternPrefixMatches(_ pattern: String, _ prefix: String) -> Bool {
        let parts = prefix.split(separator: ".")
        let patternParts = pattern.split(separator: ".")
        guard patternParts.count > parts.count else { return false }
        return zip(patternParts, parts).allSatisfy { $0 == "*" || $0 == $1 }
    }

    private static func unknownKey(_ key: String, node: Node, path: String) -> ConfigurationError {
        let known = ConfigKey.all.map(\.name)
        let close = known.filter { $0.hasPrefix(key.split(separator: ".").first.map(String.init) ?? key) }
        let hint = close.isEmpty
            ? "Known keys: \(known.joined(separator: ", "))."
            : "Known keys here: \(close.joined(separator: ", "))."
        return ConfigurationError("unknown key '\(key)'", source: source(path, node), hint: hint)
    }

    static func containsPassword(_ dsn: String) -> Bool {
        if let url = URLComponents(string: dsn), url.scheme != nil {
            return url.password != nil
        }
        return dsn.range(of: #"(?i)\bpassword\s*="#, options: .regularExpression) != nil
    }

    private static func parseAlerts(_ node: Node, path: String) throws -> [AlertDestination] {
        guard case .sequence(let sequence) = node else {
            throw ConfigurationError("'alerts' must be a list of destinations", source: source(path, node))
        }
        let allowed: Set<String> = ["name", "type", "url_env", "url_file", "routing_key_env", "routing_key_file", "endpoint"]
        return try sequence.enumerated().map { index, item in
            guard case .mapping(let mapping) = item else {
                throw ConfigurationError("alerts[\(index)] must be a mapping", source: source(path, item))
            }
            var fields: [String: String] = [:]
            for (keyNode, valueNode) in mapping {
                let key = keyNode.string ?? ""
                if key == "url" || key == "routing_key" {
                    throw ConfigurationError(
                        "alerts[\(index)].\(key) would put a secret in the config file", source: source(path, keyNode),
                        hint: "Use \(key)_env (an environment variable name) or \(key)_file instead.")
                }
                guard allowed.contains(key) else {
                    throw ConfigurationError(
                        "unknown key 'alerts[\(index)].\(key)'", source: source(path, keyNode),
                        hint: "Known keys: \(allowed.sorted().joined(separator: ", ")).")
                }
                guard let value = valueNode.string else {
                    throw ConfigurationError("alerts[\(index)].\(key) must be a string", source: source(path, valueNode))
                }
                fields[key] = value
            }
            guard let typeName = fields["type"], let kind = AlertDestination.Kind(rawValue: typeName) else {
                throw ConfigurationError(
                    "alerts[\(index)] needs type: slack, pagerduty or webhook", source: source(path, item))
            }
            let secretEnv = fields["url_env"] ?? fields["routing_key_env"]
            let secretFile = fields["url_file"] ?? fields["routing_key_file"]
            guard (secretEnv == nil) != (secretFile == nil) else {
                throw ConfigurationError(
                    "alerts[\(index)] needs exactly one of url_env/url_file (routing_key_env/routing_key_file for pagerduty)",
                    source: source(path, item))
            }
            return AlertDestination(
                name: fields["name"] ?? "\(typeName)-\(index)", kind: kind, secretEnv: secretEnv, secretFile: secretFile,
                endpoint: fields["endpoint"], source: source(path, item))
        }
    }

    // MARK: - Validation

    static func validate(_ entries: [String: ConfigEntry]) throws {
        for entry in entries.values {
            guard let key = ConfigKey.all.first(where: { $0.matches(entry.path) }), case .scalar(let text) = entry.value else { continue }
            switch key.kind {
            case .duration:
                if DurationParser.parse(text) == nil {
                    throw ConfigurationError("\(entry.path): '\(text)' is not a duration", source: entry.source, hint: "Use a value such as 500ms, 5s, 10min or 2h.")
                }
            case .integer:
                if Int(text) == nil { throw ConfigurationError("\(entry.path): '\(text)' is not an integer", source: entry.source) }
            case .number:
                if Double(text) == nil { throw ConfigurationError("\(entry.path): '\(text)' is not a number", source: entry.source) }
            case .boolean:
                if !["true", "false", "yes", "no", "on", "off"].contains(text.lowercased()) {
                    throw ConfigurationError("\(entry.path): '\(text)' is not a boolean", source: entry.source)
                }
            case .choice(let options):
                if !options.contains(text) {
                    throw ConfigurationError(
                        "\(entry.path): '\(text)' is not one of \(options.joined(separator: ", "))", source: entry.source)
                }
            case .string, .path, .stringList:
                break
            }
        }
    }
}
