import Foundation
import NFLDBCore
import NFLDBHealth
import Testing

/// Probe options read their defaults from their ``ConfigKey`` (one place), and configured values win.
@Suite("Health configuration")
struct HealthConfigTests {
    @Test("a probe option without a configured value is its key's default; a configured one wins")
    func optionDefaults() throws {
        let connections = try #require(ProbeRegistry.probe(named: "connections"))
        let defaults = HealthSettings().settings(for: connections)
        #expect(defaults.seconds(.healthIdleWarning) == 300)
        #expect(defaults.seconds(.healthIdleCritical) == 1800)
        #expect(defaults.statementTimeout == .seconds(5), "health.statement_timeout's default")

        let set = HealthSettings(values: ["connections.idle_in_transaction_warning": "90s"]).settings(for: connections)
        #expect(set.seconds(.healthIdleWarning) == 90)

        let replication = try #require(ProbeRegistry.probe(named: "replication"))
        let replicationDefaults = HealthSettings().settings(for: replication)
        #expect(replicationDefaults.integer(.healthReplicationStandbys) == nil, "no default: not checked")
        #expect(replicationDefaults.number(.healthSlotWarning) == 1_073_741_824)
        #expect(HealthSettings().lockTimeout == .seconds(2))
    }

    @Test("every health key with a default parses as its kind")
    func keyDefaultsParse() throws {
        for key in HealthSettings.keys {
            guard let value = key.defaultValue else { continue }
            switch key.kind {
            case .duration: #expect(DurationParser.parse(value) != nil, "\(key.name)")
            case .integer: #expect(Int(value) != nil, "\(key.name)")
            case .number: #expect(Double(value) != nil, "\(key.name)")
            default: break
            }
        }
    }
}
