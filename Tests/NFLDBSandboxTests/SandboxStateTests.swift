import Foundation
import NFLDBCore
import NFLDBSandbox
import Testing

@Suite("Sandbox state and env lines (no server started)")
struct SandboxStateTests {
    static let stateJSON = """
        {"port": 54329, "superuser": "postgres", "database": "nfl", "clusterRoot": "/var/tmp/nfldb-sandbox-x",
         "binDirectory": "/usr/lib/postgresql/15/bin", "osUser": "postgres", "pgpassFile": "/srv/state/pgpass",
         "pgbackrestConfig": "/var/tmp/nfldb-sandbox-x/pgbackrest/pgbackrest.conf", "stanza": "nfldb",
         "createdAt": "2026-11-27T05:30:00Z"}
        """

    @Test("env lines export NFLDB_DSN and PG* without a password")
    func environmentLines() throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let state = try decoder.decode(SandboxState.self, from: Data(Self.stateJSON.utf8))
        #expect(state.dsn == "postgresql://postgres@127.0.0.1:54329/nfl")
        let sandbox = Sandbox(stateDirectory: "/srv/state", osUser: "postgres")
        let lines = sandbox.environmentLines(state)
        #expect(lines.contains("export NFLDB_DSN='postgresql://postgres@127.0.0.1:54329/nfl'"))
        #expect(lines.contains("export PGHOST=127.0.0.1"))
        #expect(lines.contains("export PGPORT=54329"))
        #expect(lines.contains("export PGUSER='postgres'"))
        #expect(lines.contains("export PGDATABASE='nfl'"))
        #expect(lines.contains("export PGPASSFILE='/srv/state/pgpass'"))
        #expect(lines.contains("export NFLDB_SANDBOX_DIR='/srv/state'"))
        #expect(lines.contains("export NFLDB_BACKUP_STANZA='nfldb'"))
        #expect(lines.allSatisfy { $0.hasPrefix("export ") && !$0.lowercased().contains("password=") })
    }

    @Test("every exported value is shell-quoted: a directory name with a quote and $(…) is data when the lines are eval'd, never code")
    func hostileDirectoryIsQuoted() throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let state = try decoder.decode(SandboxState.self, from: Data(Self.stateJSON.utf8))
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-pwned-\(UUID().uuidString.prefix(6))").path
        let hostile = "/srv/q'$(touch \(marker))'"
        let lines = Sandbox(stateDirectory: hostile, osUser: nil).environmentLines(state)
        let shell = try ProcessRunner().run("/bin/sh", ["-c", lines.joined(separator: "\n") + "\nprintf %s \"$NFLDB_SANDBOX_DIR\""])
        #expect(shell.status == 0, "\(shell.standardError)")
        #expect(shell.standardOutput == hostile)
        #expect(!FileManager.default.fileExists(atPath: marker), "the directory name ran as code")
    }

    @Test("a relative state directory is made absolute; an empty one has no state")
    func stateDirectory() throws {
        let sandbox = Sandbox(stateDirectory: ".nfldb/sandbox", osUser: nil)
        #expect(sandbox.stateDirectory == FileManager.default.currentDirectoryPath + "/.nfldb/sandbox")
        let empty = Sandbox(stateDirectory: "/nonexistent/nfldb-state-\(UUID().uuidString.prefix(6))", osUser: nil)
        #expect(empty.loadState() == nil)
    }
}
