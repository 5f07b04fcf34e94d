import Foundation
import NFLDBCore

extension HealthReport {
    /// Prometheus text exposition (0.0.4): every metric prefixed `nfldb_`, `# HELP`/`# TYPE` once
    /// per family, label values escaped, a trailing newline. Suitable for node_exporter's textfile
    /// collector (see ``writeAtomically(_:to:)``).
    public func renderPrometheus() -> String {
        var families: [(name: String, help: String, samples: [String])] = []
        func add(_ name: String, _ help: String, _ labels: [String: String], _ value: Double) {
            let full = "nfldb_" + Self.metricName(name)
            let labelText = labels.isEmpty ? "" : "{" + labels.sorted { $0.key < $1.key }.map { "\(Self.metricName($0.key))=\"\(Self.escape($0.value))\"" }.joined(separator: ",") + "}"
            let sample = "\(full)\(labelText) \(Self.number(value))"
            if let index = families.firstIndex(where: { $0.name == full }) {
                families[index].samples.append(sample)
            } else {
                families.append((full, help, [sample]))
            }
        }
        for check in checks {
            let labels = ["check": check.name, "target": check.target, "role": check.role]
            add("health_status", "Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", labels, Double(check.status.rawValue))
            add("health_probe_success", "1 when the check could run (status is not UNKNOWN).", labels, check.status == .unknown ? 0 : 1)
            add("health_probe_duration_seconds", "Time the check took.", labels, check.durationMilliseconds / 1000)
            if let value = check.value, value.isFinite {
                add("health_value", "The check's main value, in the unit label.", labels.merging(["unit": check.unit.rawValue]) { $1 }, value)
            }
            if let warning = check.thresholds.warning {
                add("health_warning_threshold", "The check's warning threshold.", labels.merging(["unit": check.unit.rawValue]) { $1 }, warning)
            }
            if let critical = check.thresholds.critical {
                add("health_critical_threshold", "The check's critical threshold.", labels.merging(["unit": check.unit.rawValue]) { $1 }, critical)
            }
        }
        for check in checks {
            for metric in check.metrics {
                add(metric.name, metric.help, metric.labels.merging(["target": check.target]) { $1 }, metric.value)
            }
        }
        for target in targets {
            add("health_target_up", "1 when nfldb could connect to the target.", ["target": target.name, "role": target.role], target.connected ? 1 : 0)
        }
        add("health_run_status", "Worst status of the run (the exit code).", [:], Double(status.rawValue))
        add("health_run_duration_seconds", "Wall time of the whole run.", [:], durationMilliseconds / 1000)
        add("health_last_run_timestamp_seconds", "Unix time of the run; alert when it stops moving.", [:], startedAt.timeIntervalSince1970.rounded())
        var text = ""
        for family in families {
            text += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) gauge\n"
            text += family.samples.joined(separator: "\n") + "\n"
        }
        return text
    }

    /// Writes `text` to `path` through a temporary file in the same directory and `rename(2)`, so
    /// a collector never reads half a file.
    public static func writeAtomically(_ text: String, to path: String) throws {
        try AtomicFile.write(Data(text.utf8), to: path, permissions: 0o644)
    }

    static func metricName(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return HealthFormat.plain(value)
    }
}
