import ArgumentParser
import Foundation
import Logging
import NFLDBAlerting
import NFLDBAudit
import NFLDBBackup
import NFLDBCore
import NFLDBHealth
import NFLDBMigrations
import NFLDBPostgres
import NFLDBQueue
import NFLDBRoles
import NFLDBSecurity

/// `nfldb security check`: the posture check (CIS-style), as health checks over one connection.
struct SecurityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "security",
        abstract: "Security posture of the server and of the files nfldb uses.",
        subcommands: [Check.self])

    /// The posture checks, configured with the files this configuration points at: password_file,
    /// PGPASSFILE or ~/.pgpass, the DSN's sslkey, backup.config (when it holds a secret option), the
    /// roles spec's password_file entries, the alerts' url_file/routing_key_file, and the file:
    /// targets of password_ref, redis.password, alert *_ref and roles' password_ref as secret files; nfldb.yaml,
    /// migrations.dir and roles.spec as places where no credential belongs.
    /// The path of a `file:` secret reference; nil for other schemes or a malformed reference.
    static func fileTarget(_ text: String) -> String? {
        guard let reference = try? SecretReference.parse(text, what: "secret reference"), reference.scheme == "file" else { return nil }
        return reference.identifier
    }

    static func probes(_ context: CommandContext) throws -> [any Probe] {
        let configuration = context.configuration
        var secretFiles: [SecretFile] = []
        if let path = configuration.string(.passwordFile) { secretFiles.append(SecretFile(setting: "password_file", path: path)) }
        let environment = configuration.environment
        if let path = environment["PGPASSFILE"] {
            secretFiles.append(SecretFile(setting: "PGPASSFILE", path: path))
        } else if let home = environment["HOME"] {
            secretFiles.append(SecretFile(setting: "~/.pgpass", path: home + "/.pgpass"))
        }
        if let dsn = configuration.string(.dsn), let key = try? ConnectionOptions(dsn: dsn).dsnParameter("sslkey") {
            secretFiles.append(SecretFile(setting: "sslkey", path: key))
        }
        if let path = configuration.string(.backupConfig) { secretFiles.append(SecretFile(setting: "backup.config", path: path, secretMarkers: SecretFile.pgBackRestSecrets)) }
        // Role passwords read from files by `roles apply` (password_file in the roles spec).
        let specPath = RolesConfig(configuration: configuration).specPath
        if let (spec, _) = try? RoleSpecParser.load(path: specPath) {
            for role in spec.roles {
                if case .file(let path)? = role.password {
                    secretFiles.append(SecretFile(setting: "password_file of role \(role.name) (roles.spec)", path: path))
                }
            }
        }
        // Role passwords by reference (password_ref: file:PATH in the roles spec).
        if let (spec, _) = try? RoleSpecParser.load(path: specPath) {
            for role in spec.roles {
                if case .reference(let text)? = role.password, let path = fileTarget(text) {
                    secretFiles.append(SecretFile(setting: "password_ref of role \(role.name) (roles.spec)", path: path))
                }
            }
        }
        // The file: targets of *_ref settings, and the alerts' *_file secrets.
        for (key, setting) in [(ConfigKey.passwordRef, "password_ref"), (.redisPassword, "redis.password"), (.redisSentinelPassword, "redis.sentinel_password")] {
            if let text = configuration.string(key), let path = fileTarget(text) { secretFiles.append(SecretFile(setting: setting, path: path)) }
        }
        for alert in (try? AlertDestination.all(in: configuration)) ?? [] {
            let field = alert.kind == .pagerduty ? "routing_key" : "url"
            if let path = alert.secretFile { secretFiles.append(SecretFile(setting: "\(field)_file of alert \(alert.name)", path: path)) }
            if let text = alert.secretRef, let path = fileTarget(text) {
                secretFiles.append(SecretFile(setting: "\(field)_ref of alert \(alert.name)", path: path))
            }
        }
        var scan: [String] = []
        if let file = configuration.file { scan.append(file) }
        scan.append(configuration.defaulted(.migrationsDir))
        scan.append(specPath)
        // Audit's row-mode capture functions are SECURITY DEFINER without SET search_path (a GUC save and
        // restore per row); every name in them is schema-qualified and `audit status` compares each body with
        // the one it generates, so the definer check does not count them.
        let generated = QualifiedDefiners(schema: AuditInstaller.schema, namePattern: AuditInstaller.qualifiedCapturePattern, checkedBy: "nfldb audit status")
        return SecurityChecks.all(
            config: try SecurityConfig(configuration: configuration), secretFiles: secretFiles, scanPaths: scan, qualifiedDefiners: [generated])
    }
}

extension SecurityCommand {
    struct Check: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check superusers, password storage, pg_hba, TLS, schema and function privileges, RLS bypass, secret files and hard-coded credentials.",
            discussion: """
                Each finding says what is wrong, why it matters and the fix. Run it as a superuser for full coverage \
                (pg_authid and pg_hba_file_rules are superuser-only; without them those checks are UNKNOWN with the reason). \
                Per-database checks (schemas, functions) look at the connected database. The same checks are available in \
                `nfldb health` as security_* (off by default: enable with health.checks.<name>.enabled or --check). \
                The bootstrap superuser (OID 10) is accepted; list others in security.allowed_superusers.

                Exit status as `nfldb health`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for configuration errors).
                """)

        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB

        @Option(help: ArgumentHelp("Output format: text, json, nagios or prometheus.", valueName: "format"))
        var format: String = "text"

        @Option(name: .customLong("check"), help: ArgumentHelp("Run only this check (repeatable).", valueName: "name"))
        var checks: [String] = []

        static let commandPath = "security check"

        func mapError(_ error: any Error) -> any Error {
            if error is ExitStatus { return error }
            let diagnostic = (error as? any NFLDBError)?.diagnostic ?? Diagnostic(String(describing: error))
            return OperatorError(diagnostic, exitStatus: HealthStatus.unknown.exitStatus)
        }

        func run(_ context: CommandContext) throws {
            guard let format = HealthCommand.Format(rawValue: format) else {
                throw OperatorError("unknown --format '\(self.format)'", hint: "Use one of: \(HealthCommand.Format.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            var probes = try SecurityCommand.probes(context)
            if !checks.isEmpty {
                let unknown = checks.filter { name in !probes.contains { $0.name == name } }
                guard unknown.isEmpty else {
                    throw OperatorError("unknown check \(unknown.joined(separator: ", "))", hint: "Known checks: \(probes.map(\.name).joined(separator: ", ")).")
                }
                probes = probes.filter { checks.contains($0.name) }
            }
            var settings = try HealthSettings(configuration: context.configuration)
            for probe in probes where settings.values["\(probe.name).enabled"] == nil { settings.values["\(probe.name).enabled"] = "true" }
            // A refused secret (a password_ref file with group access, …) is itself a finding of
            // security_secret_files; say so and check with what libpq finds on its own (DSN, .pgpass).
            var options: ConnectionOptions
            do {
                options = try context.connectionOptions()
            } catch let error as ConfigurationError {
                context.logger.warning("database password not used: \(error.diagnostic.summary); connecting with what libpq finds itself")
                options = ConnectionOptions(dsn: context.configuration.string(.dsn), password: nil,
                                            connectTimeout: try context.configuration.duration(.connectTimeout))
                options.requireTLS = try SecurityConfig(configuration: context.configuration).requireTLS
            }
            options.applicationName = "nfldb-security"
            let report = HealthRunner(settings: settings, probes: probes, logger: context.logger)
                .run([HealthTarget(options: options, name: settings.targetName)])
            switch format {
            case .text: context.output(SecretRedactor.shared.redact(Self.renderText(report)))
            case .json: context.output(SecretRedactor.shared.redact(try HealthJSON(report: report).encoded()))
            case .nagios: context.output(SecretRedactor.shared.redact(report.renderNagios()))
            case .prometheus: print(SecretRedactor.shared.redact(report.renderPrometheus()), terminator: "")
            }
            finished(context, "security check finished")
            if report.status != .ok { throw report.status.exitStatus }
        }

        /// One line per check, then each finding with what, why and fix.
        static func renderText(_ report: HealthReport) -> String {
            var lines: [String] = []
            for target in report.targets {
                lines.append("security posture of \(target.name): \(target.checks.map(\.status).reduce(HealthStatus.ok) { $0.worse($1) })")
                for check in target.checks {
                    lines.append("\(check.status.description.padding(toLength: 8, withPad: " ", startingAt: 0)) \(check.name): \(check.message)")
                    for detail in check.details {
                        guard let what = detail["what"] else { continue }
                        lines.append("    - [\(detail["severity"]?.description ?? "")] \(what)")
                        if let why = detail["why"] { lines.append("      why: \(why)") }
                        if let fix = detail["fix"] { lines.append("      fix: \(fix)") }
                    }
                    if check.status == .unknown, let hint = check.hint { lines.append("    hint: \(hint)") }
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}
