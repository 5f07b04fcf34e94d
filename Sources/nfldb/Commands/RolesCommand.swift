import ArgumentParser
import Foundation
import Logging
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBPostgres
import NFLDBRoles
import NFLDBSecretRotation

/// `nfldb roles plan | apply | check | validate`: declarative roles and grants from `roles/`.
struct RolesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roles",
        abstract: "Declarative roles, memberships, settings and grants from the roles/ spec.",
        discussion: """
            plan prints the exact SQL (grouped per role) and the drift; apply runs it in one transaction under an advisory lock \
            and proves the next plan is empty; check exits 1 when the database differs from the spec. Passwords come from \
            password_env/password_file and are sent as SCRAM-SHA-256 verifiers. Exit status: 0 ok, 1 failure or differences \
            (check), 2 invalid spec or usage.
            """,
        subcommands: [Plan.self, Apply.self, Check.self, Validate.self, Rotate.self])
}

/// Options shared by the roles subcommands.
struct RolesOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Spec file or directory (default: roles.spec, ./roles).", valueName: "path"))
    var spec: String?

    @Option(
        name: .customLong("role-prefix"),
        help: ArgumentHelp("Prefix every managed role name (to run a copy of the spec next to another on one cluster).", valueName: "prefix"))
    var rolePrefix: String?

    @Flag(name: .customLong("revoke-unmanaged"), help: "Also revoke privileges, memberships and settings of managed roles that the spec does not list.")
    var revokeUnmanaged = false

    @Flag(name: .customLong("require-passwords"), help: "Fail when a login role's password source is unset (default: warn and leave it).")
    var requirePasswords = false

    @Flag(name: .customLong("reset-passwords"), help: "Set passwords even when they cannot be compared (runner cannot read pg_authid).")
    var resetPasswords = false

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func load(_ context: CommandContext) throws -> (RoleSpec, [SpecIssue]) {
        let path = spec ?? RolesConfig(configuration: context.configuration).specPath
        var (loaded, warnings) = try RoleSpecParser.load(path: path)
        if let rolePrefix, !rolePrefix.isEmpty {
            if rolePrefix.lowercased().hasPrefix("pg_") || rolePrefix.unicodeScalars.contains(where: { $0.value == 0 }) {
                throw OperatorError(
                    "--role-prefix \(rolePrefix.replacingOccurrences(of: "\0", with: "\\0")) would make reserved or impossible role names (PostgreSQL reserves names starting with pg_; names cannot hold a NUL byte)",
                    hint: "Use another prefix, e.g. staging_.", exitStatus: .usage)
            }
            loaded = loaded.withRolePrefix(rolePrefix)
            // PostgreSQL would silently cut longer names to 63 bytes (and two could become one).
            if let long = loaded.managedRoleNames.sorted().first(where: { $0.utf8.count > 63 }) {
                throw OperatorError(
                    "--role-prefix makes the role name \(long) \(long.utf8.count) bytes long; PostgreSQL keeps only 63 bytes of a name, so the spec could never match what it creates",
                    hint: "Use a prefix of at most \(63 - (loaded.managedRoleNames.map { $0.utf8.count }.max() ?? 0) + rolePrefix.utf8.count) bytes.", exitStatus: .usage)
            }
        }
        return (loaded, warnings)
    }

    func planOptions(_ warnings: [SpecIssue]) -> RolePlanOptions {
        var options = RolePlanOptions()
        options.revokeUnmanaged = revokeUnmanaged
        options.requirePasswords = requirePasswords
        options.resetUncomparablePasswords = resetPasswords
        options.specWarnings = warnings
        return options
    }

    func print(_ plan: RolePlan, _ context: CommandContext) throws {
        switch format {
        case .text: context.output(plan.renderText())
        case .json: context.output(try JSONOutput.encode(plan))
        }
    }
}

extension RolesCommand {
    struct Plan: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the SQL that would make the database match the spec, grouped per role, plus drift. Changes nothing.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: RolesOptions

        static let commandPath = "roles plan"

        func run(_ context: CommandContext) throws {
            let (spec, warnings) = try options.load(context)
            let connection = try context.connect()
            defer { connection.close() }
            let plan = try RoleManager.plan(connection, spec: spec, options: options.planOptions(warnings), logger: context.logger)
            try options.print(plan, context)
            finished(context, "roles plan")
        }
    }

    struct Rotate: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate a login role's password in AWS Secrets Manager: createSecret (AWSPENDING), setSecret (SCRAM verifier), testSecret (login), finishSecret (AWSCURRENT).",
            discussion: "Resumable: a run interrupted between steps is completed by the next one. Safe from cron: one run per role at a time (advisory lock).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Argument(help: "The login role.") var role: String
        @Option(help: ArgumentHelp("Where the password lives: aws-sm:SECRET_ID[#json_key].", valueName: "ref")) var secret: String
        @Option(name: .customLong("lock-wait"), help: ArgumentHelp("How long to wait for another rotation of this role (default 30s).", valueName: "duration"))
        var lockWait = "30s"

        static let commandPath = "roles rotate"

        func run(_ context: CommandContext) throws {
            guard let wait = DurationParser.parse(lockWait) else { throw ValidationError("--lock-wait '\(lockWait)' is not a duration") }
            let reference = try SecretReference.parse(secret, what: "--secret")
            let client = try SecretsManagerClient(environment: context.configuration.environment)
            let options = try context.connectionOptions()
            let admin = try context.connect()
            defer { admin.close() }
            let result = try RoleRotation.rotate(
                role: role, secret: reference, client: client, admin: admin, login: RoleRotation.loginOptions(from: options, role: role),
                lockWait: wait, logger: context.logger)
            for (step, outcome) in result.steps { context.say("\(step.rawValue): \(outcome)") }
            context.output("rotated \(role): AWSCURRENT is version \(result.pendingVersion)")
            finished(context, "roles rotate")
        }
    }

    struct Apply: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the plan in one transaction under an advisory lock; a server WARNING is an error; then prove the plan is empty.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: RolesOptions
        @Option(name: .customLong("lock-wait"), help: ArgumentHelp("How long to wait for another apply (default 60s).", valueName: "duration"))
        var lockWait = "60s"

        static let commandPath = "roles apply"

        func run(_ context: CommandContext) throws {
            guard let wait = DurationParser.parse(lockWait) else { throw ValidationError("--lock-wait '\(lockWait)' is not a duration") }
            let (spec, warnings) = try options.load(context)
            let connection = try context.connect()
            defer { connection.close() }
            let result = try RoleManager.apply(
                connection, spec: spec, options: options.planOptions(warnings), lockWait: wait, logger: context.logger,
                onWait: { holder in context.say("waiting for another roles apply\(holder.map { " (\($0))" } ?? "")…") })
            switch options.format {
            case .json:
                context.output(try JSONOutput.encode(result))
            case .text:
                let summary = result.executed == 0
                    ? "nothing to apply: the database already matches the spec"
                    : "applied \(result.executed) statement\(result.executed == 1 ? "" : "s") in one transaction; the new plan is empty"
                if context.quiet {
                    context.output(summary)
                } else {
                    context.output(result.plan.renderText())
                    context.output(summary)
                }
                let left = result.after
                if !left.drift.isEmpty || !left.missingObjects.isEmpty || !left.ownership.isEmpty {
                    context.output("still different from the spec: \(left.drift.count) drift, \(left.missingObjects.count) missing, \(left.ownership.count) ownership (see `nfldb roles check`)")
                }
            }
            finished(context, "roles apply")
        }
    }

    struct Check: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Exit 1 when the database differs from the spec (statements to run, drift, missing objects, wrong owners).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: RolesOptions

        static let commandPath = "roles check"

        func run(_ context: CommandContext) throws {
            let (spec, warnings) = try options.load(context)
            let connection = try context.connect()
            defer { connection.close() }
            let plan = try RoleManager.plan(connection, spec: spec, options: options.planOptions(warnings), logger: context.logger)
            if plan.inSync {
                if options.format == .json { try options.print(plan, context) } else { context.say("in sync: database \(plan.database) matches the spec") }
                return
            }
            try options.print(plan, context)
            throw OperatorError(
                "database \(plan.database) differs from the spec: \(plan.pending.count) to run, \(plan.drift.count) drift, \(plan.missingObjects.count) missing, \(plan.ownership.count) ownership")
        }
    }

    struct Validate: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Check the spec without connecting (keys, privileges, references, cycles).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: RolesOptions

        static let commandPath = "roles validate"

        func run(_ context: CommandContext) throws {
            let (spec, warnings) = try options.load(context)
            for warning in warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            context.output("ok: \(spec.roles.count) roles (\(spec.roles.filter(\.login).count) login) in \(spec.files.joined(separator: ", "))")
        }
    }
}
