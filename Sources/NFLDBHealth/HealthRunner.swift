import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// One server to check.
public struct HealthTarget: Sendable {
    public var options: ConnectionOptions
    /// Name in outputs and alert dedup keys; nil derives `host:port/dbname` from the connection.
    public var name: String?
    /// The role the operator expects (`--standby-dsn` says standby); the server's own answer wins.
    public var expectedRole: ServerRole?

    public init(options: ConnectionOptions, name: String? = nil, expectedRole: ServerRole? = nil) {
        self.options = options
        self.name = name
        self.expectedRole = expectedRole
    }
}

/// The checks of one target.
public struct TargetReport: Sendable, Encodable {
    public var name: String
    /// `primary`, `standby` or `unreachable`.
    public var role: String
    public var serverVersion: String?
    public var connected: Bool
    public var durationMilliseconds: Double
    public var checks: [CheckResult]

    public init(name: String, role: String, serverVersion: String?, connected: Bool, durationMilliseconds: Double, checks: [CheckResult]) {
        self.name = name
        self.role = role
        self.serverVersion = serverVersion
        self.connected = connected
        self.durationMilliseconds = durationMilliseconds
        self.checks = checks
    }

    enum CodingKeys: String, CodingKey {
        case name, role, connected
        case serverVersion = "server_version"
        case durationMilliseconds = "duration_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(role, forKey: .role)
        try container.encode(serverVersion, forKey: .serverVersion)
        try container.encode(connected, forKey: .connected)
        try container.encode((durationMilliseconds * 100).rounded() / 100, forKey: .durationMilliseconds)
    }

    public func check(_ name: String) -> CheckResult? { checks.first { $0.name == name } }
}

/// The whole run: every target's checks.
public struct HealthReport: Sendable {
    public var targets: [TargetReport]
    public var startedAt: Date
    public var durationMilliseconds: Double

    public init(targets: [TargetReport], startedAt: Date, durationMilliseconds: Double) {
        self.targets = targets
        self.startedAt = startedAt
        self.durationMilliseconds = durationMilliseconds
    }

    public var checks: [CheckResult] { targets.flatMap(\.checks) }

    /// The worst status over every check of every target: the exit code of the run.
    public var status: HealthStatus { HealthStatus.worst(checks.map(\.status)) }

    public func check(_ name: String, target index: Int = 0) -> CheckResult? {
        targets.indices.contains(index) ? targets[index].check(name) : nil
    }
}

/// Runs the probes: one connection per target, every query bounded by `statement_timeout` and
/// `lock_timeout`, and a failing probe turned into UNKNOWN for that check only.
public struct HealthRunner: Sendable {
    public var settings: HealthSettings
    public var probes: [any Probe]
    public var logger: Logger

    public init(settings: HealthSettings, probes: [any Probe] = ProbeRegistry.all, logger: Logger) {
        self.settings = settings
        self.probes = probes
        self.logger = logger
    }

    /// Runs every enabled probe against each target; a second target is usually the standby.
    ///
    /// Never throws for database problems: an unreachable server is a CRITICAL `connections`
    /// check, and every other check of that target is UNKNOWN ("not run").
    public func run(_ targets: [HealthTarget]) -> HealthReport {
        let started = Date()
        let clock = ContinuousClock.now
        var reports = targets.map(run)
        if reports.count > 1 { ReplicationCrossCheck.apply(&reports) }
        return HealthReport(targets: reports, startedAt: started, durationMilliseconds: Self.milliseconds(since: clock))
    }

    public func run(_ target: HealthTarget) -> TargetReport {
        let start = ContinuousClock.now
        let enabled = probes.filter { settings.settings(for: $0).enabled }
        var options = target.options
        options.applicationName = "nfldb-health"
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection.connect(options, logger: logger)
        } catch {
            let postgresError = error as? PostgresError
            let name = target.name ?? Self.targetName(postgresError?.target) ?? "default"
            return unreachable(name: name, reason: Self.reason(error), hint: (error as? PostgresError)?.hint, probes: enabled, started: start,
                               primary: target.expectedRole != .standby, status: postgresError?.kind == .configuration ? .unknown : .critical)
        }
        defer { connection.close() }
        let name = target.name ?? Self.targetName(connection.target) ?? "default"
        let server: ServerInfo
        do {
            try connection.execute("""
                SELECT set_config('statement_timeout', \(DurationParser.postgresSetting(settings.statementTimeout)), false),
                       set_config('lock_timeout', \(DurationParser.postgresSetting(settings.lockTimeout)), false),
                       set_config('search_path', 'pg_catalog, pg_temp', false),
                       set_config('default_transaction_read_only', 'on', false),
                       set_config('jit', 'off', false)
                """)
            server = try ServerInfo.read(connection)
        } catch {
            return unreachable(name: name, reason: Self.reason(error), hint: (error as? PostgresError)?.hint, probes: enabled, started: start,
                               primary: target.expectedRole != .standby)
        }
        var currentTimeout = settings.statementTimeout
        var results: [CheckResult] = []
        var lost: String?
        for probe in enabled {
            let checkSettings = settings.settings(for: probe)
            let probeStart = ContinuousClock.now
            var outcome: ProbeOutcome
            var skipped = false
            if let lost {
                outcome = .unknown("not run: \(lost)")
            } else if !probe.roles.contains(server.role) {
                skipped = true
                outcome = ProbeOutcome(status: .ok, message: "skipped: runs on the \(probe.roles.map(\.rawValue).sorted().joined(separator: "/")) only")
            } else {
                do {
                    if checkSettings.statementTimeout != currentTimeout {
                        try connection.execute("SELECT set_config('statement_timeout', \(DurationParser.postgresSetting(checkSettings.statementTimeout)), false)")
                        currentTimeout = checkSettings.statementTimeout
                    }
                    let context = ProbeContext(connection: connection, server: server, settings: checkSettings, logger: logger)
                    outcome = try probe.run(context)
                } catch {
                    outcome = Self.outcome(for: error, probe: probe, settings: checkSettings, server: server)
                    if !connection.isAlive {
                        lost = "the connection was lost during the \(probe.name) check"
                        // A server that went away is CRITICAL (and pages), not UNKNOWN: a new connection tells.
                        do {
                            try PostgresConnection.connect(options, logger: logger).close()
                        } catch {
                            outcome = ProbeOutcome(
                                status: .critical, message: "the database went away during the check: \(Self.reason(error))",
                                hint: (error as? PostgresError)?.hint
                                    ?? "Check that PostgreSQL is running and accepts connections (pg_isready), then its log for why it stopped.")
                            lost = "the database went away during the \(probe.name) check"
                        }
                    }
                }
            }
            let elapsed = Self.milliseconds(since: probeStart)
            logger.debug("health check", metadata: [
                "health.check": .string(probe.name), "health.status": .string(outcome.status.description),
                "duration_ms": .stringConvertible(elapsed),
            ])
            results.append(CheckResult(
                name: probe.name, target: name, role: server.role.rawValue, status: outcome.status, value: outcome.value,
                unit: probe.unit, thresholds: checkSettings.thresholds, message: outcome.message, hint: outcome.hint,
                details: outcome.details, durationMilliseconds: elapsed, skipped: skipped, metrics: outcome.metrics))
        }
        return TargetReport(
            name: name, role: server.role.rawValue, serverVersion: server.version, connected: true,
            durationMilliseconds: Self.milliseconds(since: start), checks: results)
    }

    /// The report for a server that could not be reached: `connections` CRITICAL, the rest UNKNOWN.
    /// `status` is UNKNOWN instead of CRITICAL when the DSN itself is wrong (a configuration error, exit 3).
    func unreachable(
        name: String, reason: String, hint: String? = nil, probes: [any Probe], started: ContinuousClock.Instant, primary: Bool = true,
        status: HealthStatus = .critical
    ) -> TargetReport {
        var results: [CheckResult] = []
        let connections = ConnectionsProbe()
        let down = CheckResult(
            name: connections.name, target: name, role: "unreachable", status: status, value: nil, unit: connections.unit,
            thresholds: settings.settings(for: connections).thresholds,
            // libpq's reason picks the hint (a wrong password is not a server that is down).
            message: "cannot connect: \(reason)",
            hint: hint ?? "Check that PostgreSQL is running and accepts connections (pg_isready), and that the DSN, pg_hba.conf and the password are right.",
            details: [], durationMilliseconds: Self.milliseconds(since: started))
        results.append(down)
        for probe in probes where probe.name != connections.name {
            // Checks of other systems (Redis) still run when the database is down.
            let probeStart = ContinuousClock.now
            if primary, let outcome = probe.runWithoutDatabase(settings.settings(for: probe), logger: logger) {
                results.append(CheckResult(
                    name: probe.name, target: name, role: "unreachable", status: outcome.status, value: outcome.value, unit: probe.unit,
                    thresholds: settings.settings(for: probe).thresholds, message: outcome.message, hint: outcome.hint,
                    details: outcome.details, durationMilliseconds: Self.milliseconds(since: probeStart), metrics: outcome.metrics))
                continue
            }
            results.append(CheckResult(
                name: probe.name, target: name, role: "unreachable", status: .unknown, value: nil, unit: probe.unit,
                thresholds: settings.settings(for: probe).thresholds, message: "not run: cannot connect to the database",
                hint: nil, details: [], durationMilliseconds: 0))
        }
        return TargetReport(name: name, role: "unreachable", serverVersion: nil, connected: false,
                            durationMilliseconds: Self.milliseconds(since: started), checks: results)
    }

    /// Turns a probe's error into an UNKNOWN outcome that says why and what to do.
    static func outcome(for error: any Error, probe: any Probe, settings: CheckSettings, server: ServerInfo) -> ProbeOutcome {
        guard let error = error as? PostgresError else {
            return .unknown("could not run: \(SecretRedactor.shared.redact(String(describing: error)))")
        }
        switch error.sqlState {
        case SQLState.queryCanceled:
            return .unknown(
                "timed out after \(DurationParser.postgresSetting(settings.statementTimeout)) (statement_timeout)",
                hint: "The catalog queries of this check are slow or blocked; raise health.checks.\(probe.name).statement_timeout if this server is just big.")
        case SQLState.lockNotAvailable:
            return .unknown(
                "gave up waiting for a lock (lock_timeout): \(error.message)",
                hint: "Another session holds a conflicting lock (often ACCESS EXCLUSIVE from DDL); see the blocking_locks check.")
        case SQLState.insufficientPrivilege:
            return .unknown(
                "permission denied: \(error.message)",
                hint: "Run nfldb health as a role that is a member of pg_monitor: GRANT pg_monitor TO \(server.user);")
        default:
            if error.kind == .connection {
                return .unknown("the connection was lost: \(error.message)")
            }
            let state = error.sqlState.map { " (SQLSTATE \($0))" } ?? ""
            return .unknown("query failed\(state): \(error.message)", hint: error.hint)
        }
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? PostgresError {
            var message = error.message
            for prefix in ["could not connect to PostgreSQL at "] where message.hasPrefix(prefix) {
                message = String(message.dropFirst(prefix.count))
            }
            return SecretRedactor.shared.redact(message)
        }
        return SecretRedactor.shared.redact(String(describing: error))
    }

    /// `127.0.0.1:5432 db=nfl user=x` → `127.0.0.1:5432/nfl`.
    static func targetName(_ described: String?) -> String? {
        guard let described, !described.isEmpty else { return nil }
        let parts = described.split(separator: " ")
        guard let hostPort = parts.first else { return nil }
        let db = parts.first { $0.hasPrefix("db=") }.map { String($0.dropFirst(3)) }
        return db.map { "\(hostPort)/\($0)" } ?? String(hostPort)
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inMilliseconds
    }
}
