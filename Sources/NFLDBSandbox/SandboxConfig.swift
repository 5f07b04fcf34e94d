import Foundation
import NFLDBCore

extension ConfigKey {
    public static let postgresBinDir = ConfigKey("postgres.bin_dir", .path, help: "directory with initdb/pg_ctl (default: PATH, then /usr/lib/postgresql/<newest>/bin)")
    public static let postgresOSUser = ConfigKey(
        "postgres.os_user", .string, default: "postgres",
        help: "OS user that runs initdb/pg_ctl/pgbackrest when nfldb runs as root")
    public static let sandboxDir = ConfigKey("sandbox.dir", .path, default: ".nfldb/sandbox", help: "state directory of `nfldb sandbox`")
}

/// The `postgres:` and `sandbox:` sections of `nfldb.yaml`: where the server programs are, which
/// OS user runs them, and the sandbox's state directory.
public struct SandboxConfig: Sendable {
    public static let keys: [ConfigKey] = [.postgresBinDir, .postgresOSUser, .sandboxDir]

    public var binDirectory: String?
    /// `postgres.os_user` (default `postgres`).
    public var osUser: String
    public var stateDirectory: String

    public init(configuration: Configuration) {
        binDirectory = configuration.string(.postgresBinDir)
        osUser = configuration.defaulted(.postgresOSUser)
        stateDirectory = configuration.defaulted(.sandboxDir)
    }

    /// The user server programs run as: `osUser` when nfldb runs as root, else nil (the caller).
    public var runAsUser: String? { ProcessRunner.isRoot ? osUser : nil }
}
