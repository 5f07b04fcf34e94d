import Foundation
import NFLDBCore

extension ConfigKey {
    public static let securityRequireTLS = ConfigKey(
        "security.require_tls", .boolean, default: "false",
        help: "refuse (instead of warning about) an explicit sslmode weaker than verify-full towards a non-loopback host")
    public static let securitySuperuserAllowed = ConfigKey(
        "security.allowed_superusers", .stringList,
        help: "login superusers the posture check accepts besides the bootstrap superuser (OID 10, made by initdb)")
}

/// The `security:` section of `nfldb.yaml`.
public struct SecurityConfig: Sendable {
    public static let keys: [ConfigKey] = [.securityRequireTLS, .securitySuperuserAllowed]

    public var requireTLS: Bool
    public var allowedSuperusers: [String]

    public init(requireTLS: Bool = false, allowedSuperusers: [String] = []) {
        self.requireTLS = requireTLS
        self.allowedSuperusers = allowedSuperusers
    }

    public init(configuration: Configuration) throws {
        requireTLS = try configuration.boolean(.securityRequireTLS) ?? false
        allowedSuperusers = configuration.list(.securitySuperuserAllowed)
    }
}
