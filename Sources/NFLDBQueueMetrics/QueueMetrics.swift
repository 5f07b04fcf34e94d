import Foundation
import Logging
import Metrics
import NFLDBCore
import NFLDBQueue
import Prometheus
import Synchronization

/// The worker's metrics, recorded through swift-metrics into a swift-prometheus registry of its own
/// (no global `MetricsSystem.bootstrap`, so several workers in one process keep separate counts).
///
/// Worker series (this process): `nfldb_worker_in_flight`, `nfldb_worker_tasks_total{type,outcome}` (outcomes settled in Redis),
/// `nfldb_worker_task_retries_total{type,queue}`, `nfldb_worker_tasks_dead_lettered_total{type,queue}`
/// and the histogram `nfldb_worker_task_duration_seconds{type,outcome}`.
/// Queue series (all workers, read from Redis at scrape time): `nfldb_queue_depth{queue,state}`
/// (state ready|delayed), `nfldb_queue_in_flight{queue}`, `nfldb_queue_dead_letters{queue}`,
/// `nfldb_queue_expired_leases{queue}`, `nfldb_queue_oldest_ready_age_seconds{queue}`, and
/// `nfldb_queue_redis_up` (0 when the last scrape could not read Redis).
public final class QueueMetrics: WorkerMetricsRecorder, Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let inFlight = Atomic<Int>(0)
    private let starts = Mutex<[String: ContinuousClock.Instant]>([:])
    private let inFlightGauge: Metrics.Gauge
    private let redisUp: Metrics.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Task durations from 1 ms (no-ops) to 10 min (ETL loads, vacuums).
        factory.durationHistogramBuckets["nfldb_worker_task_duration_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(600),
        ]
        self.factory = factory
        inFlightGauge = Metrics.Gauge(label: "nfldb_worker_in_flight", dimensions: [], factory: factory)
        inFlightGauge.record(0)
        redisUp = Metrics.Gauge(label: "nfldb_queue_redis_up", dimensions: [], factory: factory)
    }

    public func taskStarted(_ task: ClaimedTask) {
        starts.withLock { $0[task.id] = .now }
        inFlightGauge.record(inFlight.add(1, ordering: .relaxed).newValue)
    }

    /// Counts the outcome; the duration (handler start to settled outcome, so the durable result and
    /// the ack are included) is observed for tasks this worker started.
    public func taskSettled(_ task: ClaimedTask, outcome: TaskOutcome) {
        let labels = [("type", task.type), ("outcome", outcome.rawValue)]
        Counter(label: "nfldb_worker_tasks_total", dimensions: labels, factory: factory).increment()
        if let started = starts.withLock({ $0.removeValue(forKey: task.id) }) {
            inFlightGauge.record(inFlight.subtract(1, ordering: .relaxed).newValue)
            let duration = ContinuousClock.now - started
            Metrics.Timer(label: "nfldb_worker_task_duration_seconds", dimensions: labels, factory: factory)
                .recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        }
        switch outcome {
        case .retried:
            Counter(label: "nfldb_worker_task_retries_total", dimensions: [("type", task.type), ("queue", task.queue)], factory: factory).increment()
        case .dead:
            Counter(label: "nfldb_worker_tasks_dead_lettered_total", dimensions: [("type", task.type), ("queue", task.queue)], factory: factory)
                .increment()
        default:
            break
        }
    }

    /// Sets the queue gauges from `queue stats` (nil: Redis could not be read; `nfldb_queue_redis_up` 0).
    public func update(_ stats: [QueueStats]?) {
        guard let stats else {
            redisUp.record(0)
            return
        }
        redisUp.record(1)
        for queue in stats {
            let q = ("queue", queue.queue)
            Metrics.Gauge(label: "nfldb_queue_depth", dimensions: [q, ("state", "ready")], factory: factory).record(queue.ready)
            Metrics.Gauge(label: "nfldb_queue_depth", dimensions: [q, ("state", "delayed")], factory: factory).record(queue.delayed)
            Metrics.Gauge(label: "nfldb_queue_in_flight", dimensions: [q], factory: factory).record(queue.inFlight)
            Metrics.Gauge(label: "nfldb_queue_dead_letters", dimensions: [q], factory: factory).record(queue.dead)
            Metrics.Gauge(label: "nfldb_queue_expired_leases", dimensions: [q], factory: factory).record(queue.expiredLeases)
            Metrics.Gauge(label: "nfldb_queue_oldest_ready_age_seconds", dimensions: [q], factory: factory).record(queue.oldestReadyAgeSeconds ?? 0)
        }
    }

    /// Reads `queue stats` from Redis (a short-lived connection, at most `timeout` to find the master) and updates the gauges.
    public func refresh(_ config: QueueConfig, timeout: Duration = .seconds(2), logger: Logger) {
        var config = config
        config.failoverTimeout = timeout
        do {
            let queue = try TaskQueue.connect(config, clientName: "nfldb-metrics", logger: logger)
            defer { queue.close() }
            update(try queue.stats())
        } catch {
            logger.warning("metrics: cannot read queue stats from Redis: \(SecretRedactor.shared.redact(String(describing: error)))")
            update(nil)
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func render() -> String {
        registry.emitToString()
    }
}
