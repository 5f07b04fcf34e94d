import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

@Suite("nfldb sandbox end to end")
struct SandboxCLITests {
    /// Parses `export KEY='value'` / `export KEY=value` lines, as `eval` would.
    static func parseExports(_ text: String) throws -> [String: String] {
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") {
            #expect(line.hasPrefix("export "), "\(line)")
            let assignment = line.dropFirst("export ".count)
            let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
            let key = try #require(parts.first)
            var value = parts.count > 1 ? parts[1] : ""
            if value.hasPrefix("'"), value.hasSuffix("'"), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            env[key] = value
        }
        return env
    }

    /// Process ids whose command line mentions `text` (a cluster's data directory).
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ").contains(text)
        }
    }

    @Test("down refuses a directory with files a sandbox did not make, and up refuses to create one over them or under a path with a quote; nothing is removed or changed")
    func refusesForeignDirectories() throws {
        try withScratchDirectory("nfldb-sandbox-foreign") { dir in
            try "precious\n".write(toFile: dir + "/a.txt", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            let down = try nfldb("sandbox", "down", "--dir", dir)
            #expect(down.status == 2 && down.standardError.contains("holds files a sandbox did not create (a.txt, sub); nothing was removed"), "\(down.allOutput)")
            let up = try nfldb("sandbox", "up", "--dir", dir)
            #expect(up.status == 2 && up.standardError.contains("is not empty and holds no sandbox (a.txt, sub); nothing was changed"), "\(up.allOutput)")
            #expect(try String(contentsOfFile: dir + "/a.txt", encoding: .utf8) == "precious\n")
            #expect(FileManager.default.fileExists(atPath: dir + "/sub"))
            let quoted = try nfldb("sandbox", "up", "--dir", dir + "/q'x")
            #expect(quoted.status == 2 && quoted.standardError.contains("contains a single quote"), "\(quoted.allOutput)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/q'x"))
            // A directory with only what a killed `up` leaves is cleaned by down.
            try FileManager.default.createDirectory(atPath: dir + "/killed/cluster/data", withIntermediateDirectories: true)
            try "x".write(toFile: dir + "/killed/.initdb-pw", atomically: true, encoding: .utf8)
            let cleaned = try nfldb("sandbox", "down", "--dir", dir + "/killed")
            #expect(cleaned.status == 0, "\(cleaned.allOutput)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/killed"))
        }
    }

    @Test("its port taken while it was stopped: up moves the sandbox to a free port, and pgbackrest.conf follows (backup init and a backup pass)")
    func portMove() throws {
        try withScratchDirectory("nfldb-sandbox-port") { dir in
            let state = (dir as NSString).appendingPathComponent("state")
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }
            let up = try nfldb("sandbox", "up", "--dir", state)
            #expect(up.status == 0, "\(up.standardError)")
            let info = try #require(try jsonObject(nfldb("sandbox", "status", "--dir", state, "--format", "json").standardOutput)["state"] as? [String: Any])
            let port = try #require(info["port"] as? Int), root = try #require(info["cluster_root"] as? String)
            try LocalCluster(root: root, port: port, binaries: PostgresBinaries.locate(configured: nil), osUser: ProcessRunner.isRoot ? "postgres" : nil)
                .stop(mode: "fast", logger: TestCluster.logger)
            // Someone else takes the port meanwhile.
            let squatter = try PortListener(port: port)
            defer { squatter.close() }
            let moved = try nfldb("sandbox", "up", "--dir", state)
            #expect(moved.status == 0, "\(moved.standardError)")
            let env = try Self.parseExports(try nfldb("sandbox", "env", "--dir", state).standardOutput)
            #expect(env["PGPORT"] != String(port))
            let initialized = try nfldb("backup", "init", env: env)
            #expect(initialized.status == 0, "pgbackrest.conf must name the new port: \(initialized.allOutput)")
            let backup = try nfldb("backup", "run", "--type", "full", env: env)
            #expect(backup.status == 0, "\(backup.allOutput)")
        }
    }

    /// A sandbox under a scratch directory with the platform migrations applied: `body` gets its state
    /// directory and `sandbox env`'s exports; the sandbox is taken down afterwards.
    static func withMigratedSandbox(_ prefix: String, _ body: (_ state: String, _ env: [String: String]) throws -> Void) throws {
        try withScratchDirectory(prefix) { dir in
            let state = (dir as NSString).appendingPathComponent("state")
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }
            try #require(try nfldb("sandbox", "up", "--dir", state).status == 0)
            let env = try parseExports(try nfldb("sandbox", "env", "--dir", state).standardOutput)
            try #require(try nfldb("migrate", "up", "-q", "--dir", SharedSlice.repository + "/migrations", env: env).status == 0)
            try body(state, env)
        }
    }

    @Test("the server stops while health waits on it: that check is CRITICAL (the database went away), exit 2, so --alert pages; not UNKNOWN")
    func serverLostMidHealthRunIsCritical() throws {
        try Self.withMigratedSandbox("nfldb-sandbox-lost") { state, env in
            let info = try #require(try jsonObject(nfldb("sandbox", "status", "--dir", state, "--format", "json").standardOutput)["state"] as? [String: Any])
            let port = try #require(info["port"] as? Int), root = try #require(info["cluster_root"] as? String)
            // A session holds nfl.etl_runs, so the etl_freshness check waits on its lock.
            var options = env
            options["NFLDB_HEALTH_LOCK_TIMEOUT"] = "60s"
            options["NFLDB_HEALTH_STATEMENT_TIMEOUT"] = "60s"
            let admin = try PostgresConnection.connect(ConnectionOptions(dsn: "host=127.0.0.1 port=\(port) dbname=nfl user=postgres", password: try passwordOf(state)),
                                                      logger: TestCluster.logger)
            defer { admin.close() }
            try admin.execute("BEGIN")
            try admin.execute("LOCK TABLE nfl.etl_runs IN ACCESS EXCLUSIVE MODE")
            let health = try CLIRunner.spawn(["health", "--check", "connections", "--check", "etl_freshness", "--format", "json"], environment: options)
            defer { health.kill9(); health.removeOutput() }
            #expect(try poll(timeout: .seconds(30)) {
                try admin.query("SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'nfl.etl_runs'::regclass").scalar(Bool.self)
            }, "health never waited on the lock: \(health.outputTail())")
            try LocalCluster(root: root, port: port, binaries: PostgresBinaries.locate(configured: nil), osUser: ProcessRunner.isRoot ? "postgres" : nil)
                .stop(mode: "immediate", logger: TestCluster.logger)
            let status = health.wait(timeout: .seconds(60))
            #expect(status == 2, "\(String(describing: status)): \(health.outputTail())")
            let report = try jsonObject(health.standardOutput)
            let checks = report["checks"] as? [[String: Any]] ?? []
            let etl = checks.first { $0["name"] as? String == "etl_freshness" }
            #expect(etl?["status"] as? String == "CRITICAL", "\(health.standardOutput)")
            #expect((etl?["message"] as? String)?.contains("the database went away during the check") == true, "\(health.standardOutput)")
        }
    }

    /// The sandbox's superuser password (its pgpass file's last field).
    func passwordOf(_ state: String) throws -> String {
        let line = try String(contentsOfFile: (state as NSString).appendingPathComponent("pgpass"), encoding: .utf8).split(separator: "\n").first ?? ""
        return String(line.split(separator: ":").last ?? "")
    }

    @Test("up, status, env, ping with the printed env, down; status then fails and nothing is left")
    func lifecycle() throws {
        try withScratchDirectory("nfldb-sandbox") { dir in
            let state = (dir as NSString).appendingPathComponent("state")
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }

            let up = try nfldb("sandbox", "up", "--dir", state)
            #expect(up.status == 0, "\(up.standardError)")
            #expect(up.standardOutput.contains("sandbox running: postgresql://postgres@127.0.0.1:"))
            // The printed hint works as printed: it carries --dir.
            let hint = try #require(up.stdoutLines.first { $0.hasPrefix("use it with: eval ") }, "\(up.standardOutput)")
            #expect(hint.contains("nfldb sandbox env --dir \(state)"), "\(hint)")

            let pgpass = (state as NSString).appendingPathComponent("pgpass")
            let pgpassLine = try String(contentsOfFile: pgpass, encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
            let password = try #require(pgpassLine.split(separator: ":").last.map(String.init))
            #expect(password.count >= 16)
            let attributes = try FileManager.default.attributesOfItem(atPath: pgpass)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            #expect(!up.allOutput.contains(password))

            let again = try nfldb("sandbox", "up", "--dir", state)
            #expect(again.status == 0, "up is idempotent: \(again.standardError)")

            let status = try nfldb("sandbox", "status", "--dir", state)
            #expect(status.status == 0, "\(status.standardError)")
            #expect(status.standardOutput.hasPrefix("running: postgresql://postgres@127.0.0.1:"))

            let statusJSON = try nfldb("sandbox", "status", "--dir", state, "--format", "json")
            #expect(statusJSON.status == 0)
            let report = try jsonObject(statusJSON.standardOutput)
            #expect(report["running"] as? Bool == true)
            let stateInfo = try #require(report["state"] as? [String: Any])
            let clusterRoot = try #require(stateInfo["cluster_root"] as? String)
            #expect(!statusJSON.allOutput.contains(password))

            let envResult = try nfldb("sandbox", "env", "--dir", state)
            #expect(envResult.status == 0, "\(envResult.standardError)")
            #expect(!envResult.allOutput.contains(password), "the password stays in PGPASSFILE")
            let exported = try Self.parseExports(envResult.standardOutput)
            #expect(exported["PGHOST"] == "127.0.0.1")
            #expect(exported["PGDATABASE"] == "nfl")
            #expect(exported["PGPASSFILE"] == pgpass)
            #expect(exported["NFLDB_DSN"]?.hasPrefix("postgresql://postgres@127.0.0.1:") == true)

            let ping = try nfldb("ping", "--format", "json", "--count", "1", env: exported)
            #expect(ping.status == 0, "\(ping.standardError)")
            let pingReport = try jsonObject(ping.standardOutput)
            #expect(pingReport["database"] as? String == "nfl")
            #expect(try #require(pingReport["server_version_number"] as? Int) >= 150000)

            // With only the PG* lines (no NFLDB_DSN), libpq finds the same server and the pgpass file.
            var libpqOnly = exported
            libpqOnly["NFLDB_DSN"] = nil
            let libpqPing = try nfldb("ping", "--count", "1", env: libpqOnly)
            #expect(libpqPing.status == 0, "\(libpqPing.standardError)")

            let down = try nfldb("sandbox", "down", "--dir", state)
            #expect(down.status == 0, "\(down.standardError)")
            let after = try nfldb("sandbox", "status", "--dir", state)
            #expect(after.status == 1)
            #expect(after.standardError.contains("no sandbox in \(state)"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "nothing left under the temp dir")
            #expect(!FileManager.default.fileExists(atPath: clusterRoot))
            #expect(Self.processes(mentioning: clusterRoot).isEmpty, "no postgres left running for the sandbox")

            let pingAfter = try nfldb("ping", "--count", "1", env: exported)
            #expect(pingAfter.status == 1)
        }
    }

    @Test("status and env without a sandbox exit 1 with a hint; down without one succeeds")
    func noSandbox() throws {
        try withScratchDirectory("nfldb-sandbox") { dir in
            let state = (dir as NSString).appendingPathComponent("none")
            let status = try nfldb("sandbox", "status", "--dir", state)
            #expect(status.status == 1)
            #expect(status.standardError.contains("no sandbox in \(state)"))
            #expect(status.standardError.contains("HINT: Run `nfldb sandbox up`."))
            let env = try nfldb("sandbox", "env", "--dir", state)
            #expect(env.status == 1)
            #expect(env.standardOutput.isEmpty)
            let down = try nfldb("sandbox", "down", "--dir", state)
            #expect(down.status == 0, "\(down.standardError)")
            #expect(!FileManager.default.fileExists(atPath: state))
        }
    }
}
