import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@Suite("nfldb basics: version, usage errors, unreachable servers")
struct BasicsCLITests {
    static let unreachable = "postgresql://u:secret@127.0.0.1:1/x"

    @Test("--version prints the version and exits 0")
    func version() throws {
        let result = try nfldb("--version")
        #expect(result.status == 0)
        #expect(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
        #expect(result.standardError.isEmpty)
    }

    @Test("an unknown flag is a usage error: exit 2", arguments: [["--bogus"], ["ping", "--bogus-flag"], ["ping", "--count", "zero"]])
    func unknownFlag(arguments: [String]) throws {
        let result = try CLIRunner.run(arguments)
        #expect(result.status == 2, "\(result.standardError)")
        #expect(result.standardError.hasPrefix("error: "))
        #expect(result.standardOutput.isEmpty)
    }

    @Test("ping --count 0 fails validation with exit 2")
    func validation() throws {
        let result = try nfldb("ping", "--count", "0", "--dsn", "host=127.0.0.1 port=1")
        #expect(result.status == 2)
        #expect(result.standardError.contains("--count must be at least 1"))
    }

    @Test("ping to a closed port exits 1 with one stderr line naming 127.0.0.1:1 and no password, then a HINT line", arguments: [
        ["ping", "--dsn", unreachable],
        ["--dsn", unreachable, "ping"],
    ])
    func unreachableText(arguments: [String]) throws {
        let result = try CLIRunner.run(arguments)
        #expect(result.status == 1)
        #expect(result.standardOutput.isEmpty)
        #expect(result.stderrLines.count == 2 && result.stderrLines.last?.hasPrefix("HINT: ") == true, "\(result.standardError)")
        let line = try #require(result.stderrLines.first)
        #expect(line.hasPrefix("error: could not connect to PostgreSQL at 127.0.0.1:1"))
        #expect(line.contains("Connection refused"))
        #expect(!result.allOutput.contains("secret"))
    }

    @Test("with --log-format json the error is a parseable JSON record naming 127.0.0.1:1 and no password", arguments: [
        ["ping", "--dsn", unreachable, "--log-format", "json"],
        ["--dsn", unreachable, "--log-format", "json", "ping"],
        ["--log-format", "json", "ping", "--dsn", unreachable],
    ])
    func unreachableJSON(arguments: [String]) throws {
        let result = try CLIRunner.run(arguments)
        #expect(result.status == 1)
        #expect(!result.allOutput.contains("secret"))
        let jsonLines = result.stderrLines.filter { $0.hasPrefix("{") }
        let plainLines = result.stderrLines.filter { !$0.hasPrefix("{") }
        let records = try jsonLines.map(jsonObject)
        let errors = records.filter { $0["level"] as? String == "error" }
        #expect(errors.count == 1, "\(result.standardError)")
        let error = try #require(errors.first)
        #expect((error["message"] as? String)?.contains("127.0.0.1:1") == true)
        #expect(error["exit_code"] as? Int == 1)
        #expect(error["command"] as? String == "ping")
        #expect((error["correlation_id"] as? String)?.isEmpty == false)
        // In JSON mode stderr is machine-readable: one JSON object per line, nothing else.
        #expect(plainLines.isEmpty, "\(result.standardError)")
    }

    @Test("a password from PGPASSWORD never appears in the error either")
    func pgpasswordNotEchoed() throws {
        let result = try nfldb(
            "ping", env: ["PGHOST": "127.0.0.1", "PGPORT": "1", "PGUSER": "etl", "PGPASSWORD": "pgpassword-secret-5"])
        #expect(result.status == 1)
        #expect(result.stderrLines.count == 2, "the error, then its hint: \(result.standardError)")
        #expect(result.standardError.contains("127.0.0.1:1"))
        #expect(!result.allOutput.contains("pgpassword-secret-5"))
    }
}

@Suite("nfldb ping against the test cluster")
struct PingCLITests {
    static func expectOK(_ result: ProcessResult, _ access: ClusterAccess, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 0, "\(result.standardError)", sourceLocation: sourceLocation)
        #expect(result.standardOutput.hasPrefix("ok: PostgreSQL 15"), "\(result.standardOutput)", sourceLocation: sourceLocation)
        #expect(result.standardOutput.contains("db=\(access.database)"), sourceLocation: sourceLocation)
        #expect(result.standardOutput.contains("round trip"), sourceLocation: sourceLocation)
        #expect(!result.allOutput.contains(access.password), "the password never appears", sourceLocation: sourceLocation)
    }

    @Test("via NFLDB_DSN")
    func viaNFLDBDSN() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_env") { db in
            let access = try ClusterAccess(db)
            Self.expectOK(try nfldb("ping", "--count", "2", env: ["NFLDB_DSN": access.conninfo]), access)
        }
    }

    @Test("via DATABASE_URL")
    func viaDatabaseURL() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_url") { db in
            let access = try ClusterAccess(db)
            Self.expectOK(try nfldb("ping", "--count", "2", env: ["DATABASE_URL": access.url]), access)
        }
    }

    @Test("via libpq variables only (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD)")
    func viaLibpqEnvironment() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_pg") { db in
            let access = try ClusterAccess(db)
            var env = access.libpqEnvironment
            env["PGPASSWORD"] = access.password
            Self.expectOK(try nfldb("ping", "--count", "1", env: env), access)
        }
    }

    @Test("via a .pgpass file (PGPASSFILE, mode 0600) and no DSN at all")
    func viaPgpass() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_pgpass") { db in
            let access = try ClusterAccess(db)
            try withScratchDirectory { dir in
                let pgpass = (dir as NSString).appendingPathComponent("pgpass")
                let line = "\(access.host):\(access.port):*:\(access.user):\(access.password)\n"
                #expect(FileManager.default.createFile(atPath: pgpass, contents: Data(line.utf8), attributes: [.posixPermissions: 0o600]))
                var env = access.libpqEnvironment
                env["PGPASSFILE"] = pgpass
                Self.expectOK(try nfldb("ping", "--count", "1", env: env), access)

                // libpq ignores a password file that others can read; then the server refuses us.
                chmod(pgpass, 0o644)
                let ignored = try nfldb("ping", "--count", "1", env: env)
                #expect(ignored.status == 1)
                #expect(ignored.standardError.contains("\(access.host):\(access.port)"))
                #expect(!ignored.allOutput.contains(access.password))
            }
        }
    }

    @Test("a wrong password exits 1 without echoing it")
    func wrongPassword() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_badpw") { db in
            let access = try ClusterAccess(db)
            var env = access.libpqEnvironment
            env["PGPASSWORD"] = "wrong-cli-pw-31"
            let result = try nfldb("ping", env: env)
            #expect(result.status == 1)
            #expect(result.standardError.contains("password authentication failed"))
            #expect(result.standardError.contains("HINT: Check the user and its password"), "\(result.standardError)")
            #expect(!result.allOutput.contains("wrong-cli-pw-31"))
            // health (what pages) gives the same hint, not "the database is down".
            let health = try nfldb("health", "--check", "connections", env: env)
            #expect(health.status == 2, "\(health.allOutput)")
            #expect(health.allOutput.contains("Check the user and its password") && !health.allOutput.contains("down or unreachable"), "\(health.allOutput)")
            #expect(!health.allOutput.contains("wrong-cli-pw-31"))
            // An unknown database names the database, not the server.
            env["PGPASSWORD"] = access.password
            env["PGDATABASE"] = "no_such_db_31"
            let unknown = try nfldb("ping", env: env)
            #expect(unknown.status == 1 && unknown.standardError.contains("HINT: Check the database name"), "\(unknown.standardError)")
        }
    }

    @Test("ping --format json reports the server version number and application_name nfldb")
    func jsonOutput() throws {
        try TestCluster.withDatabase(prefix: "cli_ping_json") { db in
            let access = try ClusterAccess(db)
            let result = try nfldb("ping", "--format", "json", "--count", "3", env: ["NFLDB_DSN": access.conninfo])
            #expect(result.status == 0, "\(result.standardError)")
            let report = try jsonObject(result.standardOutput)
            #expect(try #require(report["server_version_number"] as? Int) >= 150000)
            #expect(report["application_name"] as? String == "nfldb")
            #expect(report["database"] as? String == access.database)
            #expect(report["user"] as? String == access.user)
            #expect(report["role"] as? String == "primary")
            #expect(report["samples"] as? Int == 3)
            #expect((report["server_version"] as? String)?.hasPrefix("15") == true)
            #expect(try #require(report["round_trip_milliseconds"] as? Double) >= 0)
            #expect(!result.allOutput.contains(access.password))
        }
    }

    @Test("every JSON log line of a run carries the same correlation_id; NFLDB_CORRELATION_ID is honoured")
    func correlationID() throws {
        try TestCluster.withDatabase(prefix: "cli_corr") { db in
            let access = try ClusterAccess(db)
            for given in [nil, "cron-nightly-0042", "1234567890"] {
                var env = ["NFLDB_DSN": access.conninfo]
                if let given { env["NFLDB_CORRELATION_ID"] = given }
                let result = try nfldb("ping", "--count", "1", "--log-format", "json", "--log-level", "debug", env: env)
                #expect(result.status == 0, "\(result.standardError)")
                let records = try result.stderrLines.map(jsonObject)
                #expect(records.count >= 2, "at least the connect and the finish line: \(result.standardError)")
                let ids = Set(records.map { $0["correlation_id"] as? String ?? "<missing>" })
                #expect(ids.count == 1, "\(ids)")
                if let given { #expect(ids == [given]) } else { #expect(ids.first?.count == 16) }
                #expect(records.allSatisfy { $0["command"] as? String == "ping" })
                let finish = try #require(records.last)
                #expect(finish["message"] as? String == "ping ok")
                #expect(finish["duration_ms"] is Double || finish["duration_ms"] is Int)
                #expect(!result.allOutput.contains(access.password))
            }
        }
    }

    @Test("text logs are quiet by default; at info they carry the correlation id and duration")
    func textLogs() throws {
        try TestCluster.withDatabase(prefix: "cli_textlog") { db in
            let access = try ClusterAccess(db)
            let env = ["NFLDB_DSN": access.conninfo, "NFLDB_CORRELATION_ID": "text-corr-7"]
            let quiet = try nfldb("ping", "--count", "1", env: env)
            #expect(quiet.status == 0)
            #expect(quiet.standardError.isEmpty, "text logs default to warnings: \(quiet.standardError)")

            let result = try nfldb("ping", "--count", "1", "--log-level", "info", env: env)
            #expect(result.status == 0)
            #expect(result.stderrLines.contains { $0.contains("ping ok") && $0.contains("correlation_id=text-corr-7") && $0.contains("duration_ms=") })
        }
    }
}
