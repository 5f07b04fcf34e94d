import Foundation
import NFLDBCore
import NFLDBHealth

/// A file holding a secret that nfldb was pointed at (`password_file`, `.pgpass`, `sslkey`, the
/// pgBackRest config with its cipher pass and S3 keys).
public struct SecretFile: Sendable, Hashable {
    /// The setting that names it (`password_file`, `PGPASSFILE`, …).
    public var setting: String
    public var path: String
    /// For files that hold secrets only sometimes (`pgbackrest.conf`): the file counts only when a
    /// line contains one of these (case-insensitive); empty means always.
    public var secretMarkers: [String]
    public init(setting: String, path: String, secretMarkers: [String] = []) {
        self.setting = setting
        self.path = path
        self.secretMarkers = secretMarkers
    }

    /// pgBackRest options that hold secrets.
    public static let pgBackRestSecrets = ["cipher-pass", "s3-key", "key-secret", "s3-token", "gcs-key", "azure-key", "-password"]

    /// Whether the file holds a secret (always, without markers; unreadable files count).
    var holdsSecret: Bool {
        guard !secretMarkers.isEmpty else { return true }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return true }
        let lowered = text.lowercased()
        return secretMarkers.contains { lowered.contains($0) }
    }
}

/// Secret files readable by group or others (libpq ignores such a `.pgpass` for the same reason).
public struct SecretFilesCheck: SecurityProbe {
    public let name = "security_secret_files"
    public let summary = "secret files nfldb was pointed at that are group- or world-readable"
    public var files: [SecretFile]
    public init(files: [SecretFile]) { self.files = files }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        var findings: [Finding] = []
        for file in files {
            var info = stat()
            guard stat(file.path, &info) == 0 else { continue }
            let mode = info.st_mode & 0o777
            let octal = String(mode, radix: 8)
            guard mode & 0o077 != 0, file.holdsSecret else { continue }
            let world = mode & 0o007 != 0
            findings.append(Finding(
                world ? .critical : .warning,
                what: "\(file.setting) \(file.path) is \(world ? "world" : "group")-readable (mode \(octal))",
                why: world ? "every local user (and every process running as one) can read the secret in it"
                    : "every member of the file's group can read the secret in it",
                fix: "chmod 600 \(file.path) (owned by the user nfldb runs as)",
                fields: ["file": file.path, "setting": file.setting, "mode": octal]))
        }
        return .findings(findings, clean: files.isEmpty ? "no secret file configured" : "\(files.count) secret file\(files.count == 1 ? "" : "s") readable by the owner only")
    }
}

/// Credentials written into files that are usually committed: `nfldb.yaml`, `migrations/`, `roles/`.
/// Looks for `PASSWORD '…'` in SQL, URLs with `user:password@`, and YAML secret keys with a literal
/// value (a reference — `env:`, `file:`, `aws-sm:`, `${…}` — is fine). The secret is never printed.
public struct HardcodedCredentialsCheck: SecurityProbe {
    public let name = "security_hardcoded_credentials"
    public let summary = "hard-coded credentials in nfldb.yaml, migrations/ and roles/ (PASSWORD '…', user:password@ URLs)"
    /// Files or directories to scan (directories recursively: *.sql, *.yaml, *.yml, *.conf).
    public var paths: [String]
    public init(paths: [String]) { self.paths = paths }

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        .findings(Self.scan(paths), clean: "no hard-coded credential in \(paths.joined(separator: ", "))")
    }

    static let sqlPassword = try! NSRegularExpression(pattern: #"\bPASSWORD\s+(E?'(?:[^']|'')*')"#, options: [.caseInsensitive])
    /// In a .sql file the statement may span lines (pg_dump puts PASSWORD on its own line) and the
    /// literal may be dollar-quoted: matched over the whole text.
    static let sqlPasswordMultiline = try! NSRegularExpression(
        pattern: #"\bPASSWORD\s+(E?'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z_0-9]*|)\$.*?\$\2\$)"#, options: [.caseInsensitive, .dotMatchesLineSeparators])
    /// `password=…` in a libpq conninfo string (dblink_connect, CREATE SUBSCRIPTION … CONNECTION, a dsn).
    static let conninfoPassword = try! NSRegularExpression(pattern: #"\bpassword\s*=\s*([^\s'"]+)"#, options: [.caseInsensitive])
    static let urlPassword = try! NSRegularExpression(pattern: #"\b[a-z][a-z0-9+.-]*://[^\s/:@'"]+:([^\s@'"/]+)@"#, options: [.caseInsensitive])
    /// Passwords inside connection strings: the pattern (group 1 is the secret), then the finding's
    /// what, why, fix and kind.
    static let embeddedPasswords: [(NSRegularExpression, what: String, why: String, fix: String, kind: String)] = [
        (conninfoPassword, "a connection string with password=",
         "the password is in the file, and connection strings end up in logs, catalogs (pg_subscription, dblink calls) and error messages",
         "Drop password= from the string and let libpq find the password (a .pgpass file, PGPASSFILE, or a secret reference); rotate the exposed password",
         "conninfo_password"),
        (urlPassword, "a URL with user:password@",
         "the password is in the file, and URLs end up in logs, process lists and error messages",
         "Drop the password from the URL and use password_file/password_env (or a secret reference); rotate the exposed password",
         "url_password"),
    ]
    /// A secret key with a value, in block (`password: x`) or flow (`{ routing_key: x }`) style.
    static let yamlSecret = try! NSRegularExpression(
        pattern: #"(?:^|[\s{,-])(password|passwd|secret|token|api_key|cipher_pass|routing_key|secret_access_key|webhook_url)\s*:\s*("[^"]*"|'[^']*'|[^,}\s#][^,}#]*)"#,
        options: [.caseInsensitive])

    public static func scan(_ paths: [String]) -> [Finding] {
        var findings: [Finding] = []
        for file in files(in: paths) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let isSQL = file.hasSuffix(".sql")
            // SQL: PASSWORD literals over the whole text (multi-line statements, dollar quotes), each
            // reported at the line its literal starts on.
            var sqlPasswordLines: [Int: String] = [:]
            if isSQL {
                let whole = NSRange(text.startIndex..., in: text)
                for match in sqlPasswordMultiline.matches(in: text, range: whole) {
                    guard let literal = Range(match.range(at: 1), in: text) else { continue }
                    let line = text[..<literal.lowerBound].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
                    sqlPasswordLines[line] = String(text[literal])
                }
            }
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = String(line)
                let range = NSRange(line.startIndex..., in: line)
                let location = "\(file):\(index + 1)"
                let sqlLiteral: String? = isSQL ? sqlPasswordLines[index + 1]
                    : sqlPassword.firstMatch(in: line, range: range).flatMap { Range($0.range(at: 1), in: line) }.map { String(line[$0]) }
                if let value = sqlLiteral {
                    let verifier = value.contains("SCRAM-SHA-256$")
                    findings.append(Finding(
                        verifier ? .warning : .critical,
                        what: "\(location): PASSWORD \(verifier ? "'SCRAM-SHA-256$…' (a verifier)" : "'…' (a literal password)")",
                        why: verifier ? "a committed SCRAM verifier allows an offline guessing attack on the password"
                            : "the password is in version control, in every clone and backup of the repository, and in the server log if log_statement is on",
                        fix: "Remove it from the file; let nfldb roles apply set passwords from a secret reference (env:/file:) instead, and rotate the exposed password",
                        fields: ["file": file, "line": String(index + 1), "kind": "sql_password"]))
                }
                for rule in Self.embeddedPasswords {
                    guard let match = rule.0.firstMatch(in: line, range: range), let secret = Range(match.range(at: 1), in: line),
                          !isReference(String(line[secret])) else { continue }
                    findings.append(Finding(
                        .critical, what: "\(location): \(rule.what)", why: rule.why, fix: rule.fix,
                        fields: ["file": file, "line": String(index + 1), "kind": rule.kind]))
                }
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                for match in isSQL || trimmed.hasPrefix("#") ? [] : yamlSecret.matches(in: line, range: range) {
                    guard let key = Range(match.range(at: 1), in: line), let value = Range(match.range(at: 2), in: line) else { continue }
                    let literal = String(line[value]).trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                    if !literal.isEmpty, !isReference(literal), literal != "null", literal != "~", !literal.hasPrefix("{"), !literal.hasPrefix("[") {
                        findings.append(Finding(
                            .critical, what: "\(location): \(line[key]) has a literal value",
                            why: "a secret written into a committed configuration file is readable by everyone with the repository",
                            fix: "Replace it by a reference (\(line[key])_env: NAME / \(line[key])_file: PATH, or env:/file: where the key takes a reference) and rotate the secret",
                            fields: ["file": file, "line": String(index + 1), "kind": "yaml_secret"]))
                    }
                }
            }
        }
        return findings
    }

    /// `env:NAME`, `file:PATH`, `aws-sm:ID`, `${VAR}`, `$VAR`: a pointer to a secret, not the secret.
    static func isReference(_ value: String) -> Bool {
        ["env:", "file:", "aws-sm:", "${", "$", "%("].contains { value.hasPrefix($0) }
    }

    static func files(in paths: [String]) -> [String] {
        let fm = FileManager.default
        var result: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            guard isDirectory.boolValue else {
                result.append(path)
                continue
            }
            let entries = (fm.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []).sorted()
            for entry in entries where [".sql", ".yaml", ".yml", ".conf"].contains(where: entry.hasSuffix) {
                result.append((path as NSString).appendingPathComponent(entry))
            }
        }
        return result
    }
}

/// The posture checks, in output order, configured with what nfldb was pointed at.
public enum SecurityChecks {
    public static func all(
        config: SecurityConfig = SecurityConfig(), secretFiles: [SecretFile] = [], scanPaths: [String] = [], qualifiedDefiners: [QualifiedDefiners] = []
    ) -> [any Probe] {
        [
            SuperuserLoginsCheck(allowed: config.allowedSuperusers), PasswordHashesCheck(), PasswordEncryptionCheck(), HBACheck(),
            SSLSettingCheck(), PublicCreateCheck(), SecurityDefinerCheck(qualified: qualifiedDefiners), BypassRLSCheck(), LoginLimitsCheck(),
            SecretFilesCheck(files: secretFiles), HardcodedCredentialsCheck(paths: scanPaths),
        ]
    }

    public static var names: [String] { all().map(\.name) }
}
