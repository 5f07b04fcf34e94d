import Foundation
import Logging
import NFLDBCore

/// What one alerting run did: the delivery outcomes (in notification order) and the problems to
/// show the operator (state file unreadable/unwritable, no destinations, failed deliveries).
public struct AlertRunResult: Sendable {
    public var deliveries: [DeliveryReport]
    /// Plain sentences, without a "warning:" prefix and not yet redacted.
    public var warnings: [String]

    public init(deliveries: [DeliveryReport] = [], warnings: [String] = []) {
        self.deliveries = deliveries
        self.warnings = warnings
    }
}

/// One `--alert` run: load the state, resolve the destinations' secrets, evaluate the policy,
/// dispatch, record the outcomes and save the state.
public enum AlertRun {
    /// Never throws: alerting problems come back as ``AlertRunResult/warnings`` and must not change
    /// the caller's exit status. A destination whose secret cannot be resolved gets a failed
    /// delivery (attempts 0) and is retried on the next run like any other failure.
    /// - Parameters:
    ///   - inputs: the current results, one per target and check (skipped checks left out).
    ///   - consecutiveByCheck: per-check overrides of ``AlertConfig/consecutive``.
    ///   - stateFile: the state file to use instead of ``AlertConfig/stateFile``.
    public static func run(
        inputs: [AlertInput], consecutiveByCheck: [String: Int], config: AlertConfig, stateFile: String?,
        environment: [String: String], logger: Logger, transport: any AlertTransport = CurlAlertTransport(), now: Date = Date(),
        observedAt: Date? = nil
    ) -> AlertRunResult {
        var result = AlertRunResult()
        let store = AlertStateStore(path: stateFile ?? config.stateFile)
        // Two runs at once (a cron run slowed by a hanging database, and the next one) would each
        // load the same state and page twice, and the last save would lose the other's record. A
        // file lock (not an advisory lock: alerting must work while the database is down) makes them
        // take turns; a run that cannot get it in time leaves alerting to the next run.
        let lockPath = store.path + ".lock"
        // The state file's directory may not exist yet (the default `.nfldb/`, a first run): create it
        // now, as the save would, so the first runs are locked too.
        let directory = (store.path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        var lock: Int32 = -1
        switch FileLock.acquire(lockPath, waitingUpTo: config.timeout + .seconds(5)) {
        case .success(let fd):
            lock = fd
        case .failure(.held(_, let holder)):
            result.warnings.append(
                "another `nfldb health --alert` run (pid \(holder)) is still alerting from \(store.path) (lock \(lockPath)); "
                    + "this run's results were not alerted on, the next run's will be")
            return result
        case .failure(let failure):
            // Alert anyway (a page matters more than a duplicate); the save below reports the path too.
            result.warnings.append("\(failure); alerting without the lock, so an overlapping run could page twice. "
                                   + "Set health.state_file to a path in a directory this user can write")
        }
        defer { if lock >= 0 { close(lock) } }
        var (state, problem) = store.load()
        if let problem { result.warnings.append(problem) }
        // A run that observed before the last recorded judgement of a check (it waited for the lock, or
        // a check's lock_timeout, while a later run finished) must not re-open or resolve it.
        var inputs = inputs
        if let observedAt {
            let stale = inputs.filter { (state.checks[$0.key]?.lastRun).map { $0 > observedAt } ?? false }
            if !stale.isEmpty {
                inputs.removeAll { input in stale.contains { $0.key == input.key } }
                result.warnings.append("\(stale.count) check\(stale.count == 1 ? "" : "s") (\(stale.map(\.check).joined(separator: ", "))) were judged by a newer run "
                                       + "while this one waited; its older results for them were not alerted on")
            }
        }
        if config.destinations.isEmpty {
            result.warnings.append("--alert given but no destinations are configured under `alerts:` in nfldb.yaml; the state is still kept")
        }
        var resolved: [ResolvedDestination] = []
        var unresolved: [String: String] = [:]
        for destination in config.destinations {
            do {
                resolved.append(try ResolvedDestination.resolve(destination, environment: environment))
            } catch {
                unresolved[destination.name] = (error as? any NFLDBError)?.diagnostic.oneLine ?? String(describing: error)
            }
        }
        let policy = AlertPolicy(
            consecutive: config.consecutive, consecutiveByCheck: consecutiveByCheck, repeatInterval: config.repeatInterval.inSeconds)
        let engine = AlertEngine(policy: policy, destinations: config.destinations.map(\.name))
        let notifications = engine.evaluate(inputs, state: &state, now: now)
        let dispatcher = AlertDispatcher(
            destinations: resolved, transport: transport, attempts: config.retries, backoff: config.retryBackoff.inSeconds,
            timeout: config.timeout.inSeconds, logger: logger)
        // All destinations at once, the whole batch bounded by health.alert.timeout.
        var delivered = dispatcher.deliver(notifications.filter { unresolved[$0.destination] == nil }).makeIterator()
        for notification in notifications {
            let kind = config.destinations.first { $0.name == notification.destination }?.kind ?? .webhook
            guard let delivery = unresolved[notification.destination].map({
                DeliveryReport(notification: notification, kind: kind, attempts: 0, error: "secret not available: \($0)")
            }) ?? delivered.next() else { continue }
            AlertEngine.record(notification, error: delivery.error, in: &state)
            if !delivery.succeeded { result.warnings.append("alert delivery failed: \(delivery.line)") }
            result.deliveries.append(delivery)
        }
        do {
            try store.save(state)
        } catch {
            // Say what it costs: without the record, the next run pages again and nothing resolves.
            result.warnings.append(((error as? any NFLDBError)?.diagnostic.oneLine ?? error.localizedDescription)
                + " — until it can be written, every --alert run pages again for what is still bad and no resolve is sent")
        }
        return result
    }
}
