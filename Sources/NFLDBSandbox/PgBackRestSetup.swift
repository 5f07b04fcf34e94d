import Foundation
import Logging
import NFLDBCore

/// The pgBackRest stanza a sandbox archives into: a config and a repo under the cluster root.
///
/// This is the minimal wiring that makes `archive_mode=on` useful from the first minute; the
/// backup capability (`nfldb backup …`) builds on the same config file.
struct PgBackRestSetup: Sendable {
    let stateDirectory: String
    let cluster: LocalCluster
    let stanza: String

    var configPath: String { (cluster.root as NSString).appendingPathComponent("pgbackrest/pgbackrest.conf") }
    var repoPath: String { (cluster.root as NSString).appendingPathComponent("pgbackrest/repo") }

    /// `pgbackrest --config=… --stanza=… archive-push %p`; `--config` is on the command line so the
    /// server (running as its OS user) finds it.
    var archiveCommand: String {
        "pgbackrest --config=\(configPath) --stanza=\(stanza) archive-push %p"
    }

    var configText: String {
        let base = (cluster.root as NSString).appendingPathComponent("pgbackrest")
        return """
            [global]
            repo1-path=\(repoPath)
            repo1-retention-full=2
            start-fast=y
            compress-type=lz4
            log-level-console=warn
            log-level-file=info
            log-path=\(base)/log
            lock-path=\(base)/lock
            spool-path=\(base)/spool

            [\(stanza)]
            pg1-path=\(cluster.dataDirectory)
            pg1-port=\(cluster.port)
            pg1-socket-path=\(cluster.socketDirectory)
            pg1-user=\(cluster.superuser)

            """
    }

    /// Writes the config, and creates the stanza when pgbackrest is installed.
    /// - Returns: the config path, or nil when pgbackrest is not installed.
    func configure(logger: Logger) throws -> String? {
        let fm = FileManager.default
        let base = (cluster.root as NSString).appendingPathComponent("pgbackrest")
        for dir in [base, repoPath, "\(base)/log", "\(base)/lock", "\(base)/spool"] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try cluster.giveToOSUser(dir)
        }
        try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
        try cluster.giveToOSUser(configPath)
        guard let binary = try? ProcessRunner.resolveExecutable("pgbackrest") else {
            logger.info("pgbackrest is not installed; the sandbox's archive_command will fail until it is")
            return configPath
        }
        let result = try ProcessRunner(runAsUser: cluster.osUser).run(
            binary, ["--config=\(configPath)", "--stanza=\(stanza)", "stanza-create"], timeout: .seconds(120))
        if !result.succeeded {
            throw OperatorError(
                "pgbackrest stanza-create failed for the sandbox (exit \(result.status))", detail: result.stderrTail(),
                hint: "Read \(base)/log; `nfldb sandbox down` removes the sandbox so `up` can start over.")
        }
        return configPath
    }
}
