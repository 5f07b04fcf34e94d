import ArgumentParser
import Foundation
import Logging
import NFLDBAlerting
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBQueue
import NFLDBSecurity

/// `nfldb health`: every probe over one connection per target, in one of four output formats,
/// optionally alerting Slack/PagerDuty/webhooks with state kept between cron runs.
struct HealthCommand: GlobalOptionsCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check the database (and its standby) and optionally alert: connections, locks, replication, archiving, bloat, wraparound…",
        discussion: """
            Every check runs over one connection per target under statement_timeout and lock_timeout; a check that cannot run \
            (permission, missing extension, timeout) is UNKNOWN with the reason. `nfldb health --list` shows the checks, units \
            and default thresholds; set them with health.checks.<name>.warning|critical|enabled in nfldb.yaml.

            Exit status (every format, monitoring-plugin convention): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN — the worst check \
            decides, with CRITICAL > UNKNOWN > WARNING > OK. A database that cannot be reached is CRITICAL. Configuration \
            errors exit 3 (UNKNOWN); unknown flags exit 2 like every nfldb command.

            --alert sends to the destinations under `alerts:` in nfldb.yaml (Slack webhook, PagerDuty Events v2, generic \
            webhook) when a check has been WARNING/CRITICAL for health.alert.consecutive runs (default 2), re-notifies after \
            health.alert.repeat_interval (4h) and resolves on return to OK. State lives in health.state_file \
            (default .nfldb/health-state.json; use an absolute path in cron). Delivery failures are reported on stderr and \
            retried next run; they never change the exit status.
            """)

    @OptionGroup var global: GlobalOptions

    @ParentCommand var root: NFLDB

    @Option(name: .customLong("check"), help: ArgumentHelp("Run only this check (repeatable).", valueName: "name"))
    var checks: [String] = []

    @Option(help: ArgumentHelp("Output format: text, json, nagios or prometheus.", valueName: "format"))
    var format: String = "text"

    @Option(name: .customLong("prometheus-file"), help: ArgumentHelp(
        "Also write Prometheus metrics to this file atomically (temp + rename), e.g. for node_exporter's textfile collector.", valueName: "path"))
    var prometheusFile: String?

    @Option(name: .customLong("standby-dsn"), help: ArgumentHelp("Also check this standby (and compare replication from both sides).", valueName: "dsn"))
    var standbyDSN: String?

    @Flag(help: "Send alerts to the destinations configured under `alerts:`.")
    var alert = false

    @Option(name: .customLong("state-file"), help: ArgumentHelp("Alert state file (default health.state_file).", valueName: "path"))
    var stateFile: String?

    @Flag(help: "List the checks with their units and thresholds, and exit.")
    var list = false

    enum Format: String, CaseIterable { case text, json, nagios, prometheus }

    static let commandPath = "health"

    /// Nagios reads 2 as CRITICAL: a configuration problem (or any failure that is not the
    /// health result itself) is UNKNOWN (3) for this command.
    func mapError(_ error: any Error) -> any Error {
        if error is ExitStatus { return error }
        let diagnostic = (error as? any NFLDBError)?.diagnostic ?? Diagnostic(String(describing: error))
        return OperatorError(diagnostic, exitStatus: HealthStatus.unknown.exitStatus)
    }

    func run(_ context: CommandContext) throws {
        guard let format = Format(rawValue: format) else {
            throw OperatorError("unknown --format '\(self.format)'", hint: "Use one of: \(Format.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        var settings = try HealthSettings(configuration: context.configuration)
        let allProbes = ProbeRegistry.all + (try SecurityCommand.probes(context)) + [QueueHealthProbe(configuration: context.configuration)]
        try settings.validate(probes: allProbes)
        if list {
            context.output(Self.listing(settings, probes: allProbes))
            return
        }
        var probes = allProbes
        if !checks.isEmpty {
            let unknown = checks.filter { name in !allProbes.contains { $0.name == name } }
            guard unknown.isEmpty else {
                throw OperatorError("unknown check \(unknown.joined(separator: ", "))", hint: "Known checks: \(allProbes.map(\.name).joined(separator: ", ")).")
            }
            probes = probes.filter { checks.contains($0.name) }
            // A check named with --check runs even when it is off by default (the security_* posture checks).
            for probe in probes where !probe.enabledByDefault && settings.values["\(probe.name).enabled"] == nil {
                settings.values["\(probe.name).enabled"] = "true"
            }
        }
        var targets = [HealthTarget(options: try context.connectionOptions(), name: settings.targetName)]
        if let standbyDSN {
            try ConnectionOptions.validate(standbyDSN)
            SecretRedactor.shared.registerPassword(inDSN: standbyDSN)
            var options = try context.connectionOptions()
            // The configured password is a fallback: a password inside the standby DSN wins.
            let ownPassword = standbyDSN.range(of: "password", options: .caseInsensitive) != nil
                || URLComponents(string: standbyDSN)?.password != nil
            let requireTLS = options.requireTLS
            options = ConnectionOptions(dsn: standbyDSN, password: ownPassword ? nil : options.password, connectTimeout: options.connectTimeout)
            options.requireTLS = requireTLS
            targets.append(HealthTarget(options: options, expectedRole: .standby))
        }
        let runner = HealthRunner(settings: settings, probes: probes, logger: context.logger)
        let report = runner.run(targets)

        var deliveries: [DeliveryReport] = []
        if alert {
            deliveries = sendAlerts(report, settings: settings, alerting: try AlertConfig(configuration: context.configuration), context: context)
        }
        if let prometheusFile {
            do {
                try HealthReport.writeAtomically(report.renderPrometheus(), to: prometheusFile)
            } catch {
                FileHandle.standardError.write(Data("warning: cannot write --prometheus-file \(prometheusFile): \(error.localizedDescription)\n".utf8))
            }
        }
        switch format {
        case .text:
            var text = report.renderText()
            if !deliveries.isEmpty { text += "\n" + deliveries.map { "alert: \($0.line)" }.joined(separator: "\n") }
            context.output(SecretRedactor.shared.redact(text))
        case .json:
            let alerts = alert ? deliveries.map(Self.json) : nil
            context.output(SecretRedactor.shared.redact(try HealthJSON(report: report, alerts: alerts).encoded()))
        case .nagios:
            context.output(SecretRedactor.shared.redact(report.renderNagios()))
        case .prometheus:
            print(SecretRedactor.shared.redact(report.renderPrometheus()), terminator: "")
        }
        context.logger.info("health run finished", metadata: [
            "health.status": .string(report.status.description), "duration_ms": .stringConvertible((report.durationMilliseconds * 10).rounded() / 10),
        ])
        if report.status != .ok { throw report.status.exitStatus }
    }

    /// The only glue between health and alerting: the report's checks as alert inputs and the
    /// per-check `consecutive` overrides. Never throws: alerting problems are reported on stderr
    /// and must not change the exit status.
    func sendAlerts(_ report: HealthReport, settings: HealthSettings, alerting: AlertConfig, context: CommandContext) -> [DeliveryReport] {
        var byCheck: [String: Int] = [:]
        for probe in ProbeRegistry.all {
            if let value = settings.settings(for: probe).integer(.healthConsecutive) { byCheck[probe.name] = value }
        }
        let inputs = report.checks.filter { !$0.skipped }.map { check in
            AlertInput(target: check.target, check: check.name, level: Self.level(check.status), message: check.message, hint: check.hint,
                       value: check.value == nil ? nil : check.formattedValue)
        }
        let result = AlertRun.run(
            inputs: inputs, consecutiveByCheck: byCheck, config: alerting, stateFile: stateFile,
            environment: context.configuration.environment, logger: context.logger, observedAt: report.startedAt)
        for warning in result.warnings {
            FileHandle.standardError.write(Data("warning: \(SecretRedactor.shared.redact(warning))\n".utf8))
        }
        return result.deliveries
    }

    static func level(_ status: HealthStatus) -> AlertLevel {
        switch status {
        case .ok: return .ok
        case .warning: return .warning
        case .critical: return .critical
        case .unknown: return .unknown
        }
    }

    static func json(_ delivery: DeliveryReport) -> [String: String] {
        var object = [
            "action": delivery.notification.action.rawValue, "reason": delivery.notification.reason.rawValue,
            "check": delivery.notification.input.check, "target": delivery.notification.input.target,
            "destination": delivery.notification.destination, "kind": delivery.kind.rawValue,
            "attempts": String(delivery.attempts), "delivered": delivery.succeeded ? "true" : "false",
        ]
        if let error = delivery.error { object["error"] = error }
        return object
    }

    static func listing(_ settings: HealthSettings, probes: [any Probe]) -> String {
        let rows = probes.map { probe -> [String] in
            let check = settings.settings(for: probe)
            let direction = check.thresholds.direction == .lowerIsWorse ? " (lower is worse)" : ""
            return [
                probe.name, check.enabled ? "yes" : "no", probe.unit.rawValue + direction,
                check.thresholds.warning.map(HealthFormat.plain) ?? "-", check.thresholds.critical.map(HealthFormat.plain) ?? "-",
                probe.roles.map(\.rawValue).sorted().joined(separator: "+"), probe.summary,
            ]
        }
        return TextTable.render(header: ["CHECK", "ENABLED", "UNIT", "WARNING", "CRITICAL", "RUNS ON", "WHAT"], rows: rows)
    }
}
