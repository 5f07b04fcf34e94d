import Foundation
import Logging
import NFLDBCore
import NFLDBPgBackRest

/// The pgBackRest stanza a sandbox archives into: a config and a repo under the cluster root,
/// rendered by the same ``ConfigRenderer`` as `nfldb backup config` and created with the same
/// typed ``PgBackRest`` runner as `nfldb backup init`.
struct PgBackRestSetup: Sendable {
    let cluster: LocalCluster
    let stanza: String

    var renderer: ConfigRenderer {
        let base = (cluster.root as NSString).appendingPathComponent("pgbackrest")
        return ConfigRenderer(
            stanza: stanza, configPath: "\(base)/pgbackrest.conf", repoPath: "\(base)/repo", pgPath: cluster.dataDirectory,
            pgPort: cluster.port, pgSocket: cluster.socketDirectory, pgUser: cluster.superuser)
    }

    var configPath: String { renderer.configPath }

    /// `pgbackrest --config=… --stanza=… archive-push %p`.
    var archiveCommand: String { renderer.archiveCommand }

    /// Writes the config, and creates the stanza when pgbackrest is installed.
    /// - Returns: the config path.
    /// - Throws: ``PgBackRestError`` (pgBackRest's code, message and hint) when `stanza-create` fails.
    func configure(logger: Logger) throws -> String {
        try renderer.install(osUser: cluster.osUser)
        guard (try? ProcessRunner.resolveExecutable("pgbackrest")) != nil else {
            logger.info("pgbackrest is not installed; the sandbox's archive_command will fail until it is")
            return configPath
        }
        try PgBackRest(configPath: configPath, stanza: stanza, osUser: cluster.osUser)
            .runChecked("stanza-create", ["--log-level-console=warn"], timeout: .seconds(120), logger: logger)
        return configPath
    }
}
