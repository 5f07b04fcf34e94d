import Dispatch
import Foundation
import Logging
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// Runs the named checks against `dsn` with `overrides` (`"connections.warning": "1"`).
func runChecks(
    _ names: [String], dsn: String, _ overrides: [String: String] = [:], lockTimeout: Duration = .seconds(2),
    statementTimeout: Duration = .seconds(10), extra: [any Probe] = []
) -> HealthReport {
    let probes = names.compactMap { ProbeRegistry.probe(named: $0) } + extra
    let settings = HealthSettings(statementTimeout: statementTimeout, lockTimeout: lockTimeout, values: overrides)
    return HealthRunner(settings: settings, probes: probes, logger: TestCluster.logger).run([HealthTarget(options: ConnectionOptions(dsn: dsn))])
}

/// Runs one check and returns its result.
func runCheck(_ name: String, dsn: String, _ overrides: [String: String] = [:]) throws -> CheckResult {
    try #require(runChecks([name], dsn: dsn, overrides).check(name))
}

/// A statement running on its own connection in a background thread (blocked, sleeping…).
final class BackgroundSession: @unchecked Sendable {
    // Invariant: `error` is written once by the background thread before `done` is signalled.
    private let done = DispatchSemaphore(value: 0)
    private(set) var error: String?
    let applicationName: String

    init(dsn: String, sql: String, applicationName: String = "nfldb-test-\(UUID().uuidString.prefix(8))") {
        self.applicationName = applicationName
        let options = ConnectionOptions(dsn: dsn, applicationName: applicationName)
        Thread.detachNewThread { [self] in
            do {
                let connection = try PostgresConnection.connect(options, logger: TestCluster.logger)
                defer { connection.close() }
                try connection.runScript(unsafeSQL: sql)
            } catch {
                self.error = String(describing: error)
            }
            done.signal()
        }
    }

    /// Waits for the statement to finish.
    @discardableResult
    func wait(timeout: Double = 30) -> Bool { done.wait(timeout: .now() + timeout) == .success }
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass (the shared ``poll``).
func eventually(timeout: Double = 15, _ condition: () throws -> Bool) rethrows -> Bool {
    try poll(timeout: .milliseconds(Int(timeout * 1000)), interval: .milliseconds(50), condition)
}

/// A LOGIN role that is only a member of pg_monitor (created and dropped around `body`).
func withMonitorRole<T>(_ body: (_ user: String, _ password: String) throws -> T) throws -> T {
    try withLoginRole(inPgMonitor: true, body)
}

/// A login role with a random password on the shared cluster, a member of pg_monitor or of nothing;
/// dropped afterwards.
func withLoginRole<T>(inPgMonitor: Bool, _ body: (_ user: String, _ password: String) throws -> T) throws -> T {
    let cluster = try TestCluster.shared()
    let name = "\(inPgMonitor ? "mon" : "nomon")_\(getpid())_\(UUID().uuidString.prefix(6).lowercased())"
    let password = "pw\(UUID().uuidString.prefix(12))"
    let admin = try PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger)
    defer { admin.close() }
    try admin.execute("CREATE ROLE \(identifier: name) LOGIN PASSWORD \(unsafeRaw: PostgresIdentifier.literal(password))\(unsafeRaw: inPgMonitor ? " IN ROLE pg_monitor" : "")")
    defer { _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: name)") }
    return try body(name, password)
}

extension CheckResult {
    /// Every detail's value for `key`, as text.
    func detailValues(_ key: String) -> [String] {
        details.compactMap { $0[key] }.filter { $0 != .null }.map(\.description)
    }
}
