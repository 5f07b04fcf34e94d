import Foundation
import NFLDBCore

extension ConfigKey {
    public static let rolesSpec = ConfigKey("roles.spec", .path, default: "roles", help: "declarative role spec file or directory")
}

/// The `roles:` section of `nfldb.yaml`.
public struct RolesConfig: Sendable {
    public static let keys: [ConfigKey] = [.rolesSpec]

    /// The spec file or directory.
    public var specPath: String

    public init(configuration: Configuration) {
        specPath = configuration.defaulted(.rolesSpec)
    }
}
