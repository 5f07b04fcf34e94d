import Foundation
import NFLDBCore

extension ConfigKey {
    public static let auditTables = ConfigKey("audit.tables", .stringList, help: "tables `nfldb audit install --all` audits")
}

/// The `audit:` section of `nfldb.yaml`.
public struct AuditConfig: Sendable {
    public static let keys: [ConfigKey] = [.auditTables]

    /// The tables `audit install --all` audits.
    public var tables: [String]

    public init(configuration: Configuration) {
        tables = configuration.list(.auditTables)
    }
}
