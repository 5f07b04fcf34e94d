import Foundation
import Logging
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBPostgres
import NFLDBRoles

/// `nfldb roles rotate ROLE --secret aws-sm:ID`: Secrets Manager's four-step rotation for a
/// PostgreSQL login role.
///
/// 1. createSecret: a new random password stored as `AWSPENDING` (skipped when a pending version exists).
/// 2. setSecret: the role's SCRAM verifier, computed here, set with `ALTER ROLE` (skipped when the
///    pending password already logs in); statement logging is off for that statement.
/// 3. testSecret: a real login as the role with the pending password.
/// 4. finishSecret: `AWSCURRENT` moves to the pending version (Secrets Manager puts `AWSPREVIOUS` on
///    the old one), then `AWSPENDING` is removed.
///
/// Each step reads the state first, so a run interrupted between any two steps is completed by the
/// next run. The whole run holds an advisory lock per role, so two runs (cron) never interleave.
public enum RoleRotation {
    public enum Step: String, Sendable, CaseIterable { case createSecret, setSecret, testSecret, finishSecret }

    public struct Result: Sendable {
        /// What each step did (`created AWSPENDING version …`, `skipped: …`).
        public var steps: [(step: Step, outcome: String)] = []
        public var pendingVersion: String = ""
    }

    public static func lockKey(_ role: String) -> AdvisoryLockKey { AdvisoryLockKey("nfldb.roles.rotate.\(role)") }

    /// - Parameters:
    ///   - admin: a connection allowed to ALTER ROLE `role` (superuser or CREATEROLE).
    ///   - login: connection options for logging in as `role` (the password is filled in here).
    ///   - stopAfter: stop after this step (tests simulate an interruption with it).
    public static func rotate(
        role: String, secret: SecretReference, client: SecretsManagerClient, admin: PostgresConnection, login: ConnectionOptions,
        lockWait: Duration = .seconds(30), stopAfter: Step? = nil, logger: Logger
    ) throws -> Result {
        guard secret.scheme == "aws-sm" else {
            throw OperatorError("roles rotate needs an aws-sm: secret reference, not \(secret.scheme):", hint: "Pass --secret aws-sm:SECRET_ID[#json_key].", exitStatus: .usage)
        }
        let id = secret.identifier
        return try admin.withAdvisoryLock(lockKey(role), wait: lockWait, waitSetting: "--lock-wait") {
            var result = Result()
            let versions = try client.describeSecret(id)
            let current = versions.first { $0.value.contains("AWSCURRENT") }?.key
            var pending = versions.first { $0.value.contains("AWSPENDING") && !$0.value.contains("AWSCURRENT") }?.key

            // 1. createSecret
            if let pending {
                result.steps.append((.createSecret, "skipped: AWSPENDING version \(pending) exists (resuming)"))
            } else {
                let base = current == nil ? nil : try client.getSecretValue(id, stage: "AWSCURRENT").string
                let password = generatePassword()
                SecretRedactor.shared.register(password)
                let value = try compose(password: password, into: base, key: secret.jsonKey, id: id)
                pending = try client.putSecretValue(id, secretString: value, clientRequestToken: UUID().uuidString.lowercased(), stages: ["AWSPENDING"])
                result.steps.append((.createSecret, "created AWSPENDING version \(pending!)"))
            }
            let pendingVersion = pending!
            result.pendingVersion = pendingVersion
            logger.info("rotate createSecret done", metadata: ["role": .string(role), "version": .string(pendingVersion)])
            if stopAfter == .createSecret { return result }

            let pendingValue = try client.getSecretValue(id, versionID: pendingVersion).string
            let password = try extract(pendingValue, key: secret.jsonKey, id: id)

            // 2. setSecret
            if canLogIn(login, role: role, password: password) {
                result.steps.append((.setSecret, "skipped: the pending password already logs in"))
            } else {
                try setPassword(admin, role: role, password: password)
                result.steps.append((.setSecret, "set the SCRAM-SHA-256 verifier of \(role)"))
            }
            if stopAfter == .setSecret { return result }

            // 3. testSecret
            do {
                var options = login
                options.password = password
                let connection = try PostgresConnection.connect(options, logger: logger)
                defer { connection.close() }
                let user = try connection.query("SELECT current_user::text").scalar(String.self)
                guard user == role else { throw OperatorError("logged in as \(user), not \(role)") }
            } catch {
                throw OperatorError(
                    "testSecret: logging in as \(role) with the AWSPENDING password failed: \(error)",
                    hint: "AWSPENDING (\(pendingVersion)) is left in place and AWSCURRENT is unchanged; check pg_hba.conf for \(role), then run roles rotate again.")
            }
            result.steps.append((.testSecret, "logged in as \(role) with the pending password"))
            if stopAfter == .testSecret { return result }

            // 4. finishSecret
            if current != pendingVersion {
                try client.updateSecretVersionStage(id, stage: "AWSCURRENT", moveTo: pendingVersion, removeFrom: current)
            }
            try client.updateSecretVersionStage(id, stage: "AWSPENDING", moveTo: nil, removeFrom: pendingVersion)
            SecretResolver.shared.forget()
            result.steps.append((.finishSecret, "AWSCURRENT → \(pendingVersion)" + (current.map { ", AWSPREVIOUS → \($0)" } ?? "")))
            return result
        }
    }

    /// 32 random bytes as URL-safe base64 (43 characters, ~256 bits), from the system CSPRNG.
    static func generatePassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The new secret string: the password itself, or the current JSON object with `key` replaced.
    static func compose(password: String, into base: String?, key: String?, id: String) throws -> String {
        guard let key else { return password }
        var object: [String: Any] = [:]
        if let base {
            guard let parsed = (try? JSONSerialization.jsonObject(with: Data(base.utf8))) as? [String: Any] else {
                throw OperatorError("secret \(id) is not a JSON object, so #\(key) cannot be rotated", hint: "Drop #\(key) from --secret, or store a JSON object.")
            }
            object = parsed
        }
        object[key] = password
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    static func extract(_ value: String, key: String?, id: String) throws -> String {
        guard let key else { return value }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(value.utf8))) as? [String: Any], let text = object[key] as? String else {
            throw OperatorError("the AWSPENDING version of \(id) has no string field '\(key)'", hint: "Fix or remove that version, then run roles rotate again.")
        }
        return text
    }

    static func canLogIn(_ login: ConnectionOptions, role: String, password: String) -> Bool {
        var options = login
        options.password = password
        guard let connection = try? PostgresConnection.connect(options, logger: Logger(label: "nfldb.rotate.probe")) else { return false }
        connection.close()
        return true
    }

    /// `ALTER ROLE … PASSWORD '<SCRAM verifier>'` in a transaction; as a superuser, statement logging is
    /// switched off for it (a verifier, never the clear text, is sent either way).
    static func setPassword(_ admin: PostgresConnection, role: String, password: String) throws {
        let verifier = ScramVerifier(password: password).description
        try admin.withTransaction {
            try admin.execute("SET LOCAL lock_timeout = '10s'")
            let superuser = try admin.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar(Bool.self)
            if superuser {
                try admin.execute("SET LOCAL log_statement = 'none'")
                try admin.execute("SET LOCAL log_min_duration_statement = -1")
            }
            // The verifier is base64 plus `$` and `:` only; the role name is quoted.
            precondition(!verifier.contains("'"))
            try admin.runScript(unsafeSQL: "ALTER ROLE \(PostgresIdentifier.quote(role)) PASSWORD '\(verifier)'")
        }
    }
}

extension RoleRotation {
    /// The admin connection's options with the user switched to `role` and no password (filled in
    /// per attempt): `user=` appended to a conninfo string (a later keyword wins), or the URL's user replaced.
    public static func loginOptions(from admin: ConnectionOptions, role: String) -> ConnectionOptions {
        var options = admin
        options.password = nil
        let dsn = admin.dsn ?? ""
        if var url = URLComponents(string: dsn), url.scheme != nil {
            url.user = role
            url.password = nil
            options.dsn = url.string
        } else {
            let quoted = role.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            options.dsn = (dsn.isEmpty ? "" : dsn + " ") + "user='\(quoted)'"
        }
        return options
    }
}
