import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// The default-upgrade rule, decided without connecting (no non-loopback server exists in tests).
@Suite("TLS policy: verify-full by default for non-loopback hosts")
struct TLSPolicyTests {
    let noEnv: [String: String] = [:]

    @Test("a non-loopback host name resolves to verify-full in the computed conninfo")
    func upgrade() throws {
        let options = ConnectionOptions(dsn: "host=db.example.com port=5432 dbname=nfl user=app")
        let plan = try options.tlsPlan(environment: noEnv)
        #expect(plan.upgradesToVerifyFull)
        #expect(plan.effectiveMode == .verifyFull)
        #expect(plan.remoteHosts == ["db.example.com"])
        #expect(plan.warning == nil)
        let conninfo = try options.forSubprocess(environment: noEnv).conninfo
        #expect(conninfo.contains("sslmode='verify-full'"))
        // A URL and PGHOST count the same.
        #expect(try ConnectionOptions(dsn: "postgresql://app@10.1.2.3:5432/nfl").tlsPlan(environment: noEnv).upgradesToVerifyFull)
        #expect(try ConnectionOptions(dsn: nil).tlsPlan(environment: ["PGHOST": "db.internal"]).upgradesToVerifyFull)
    }

    @Test("loopback addresses, localhost and Unix sockets keep libpq's default", arguments: [
        "host=127.0.0.1", "host=127.8.9.10", "host=localhost", "host=::1", "host=/var/run/postgresql", "dbname=nfl", "hostaddr=127.0.0.1 host=db.example.com",
    ])
    func local(dsn: String) throws {
        let plan = try ConnectionOptions(dsn: dsn).tlsPlan(environment: noEnv)
        #expect(!plan.upgradesToVerifyFull, "\(dsn)")
        #expect(plan.effectiveMode == .prefer)
        #expect(!(try ConnectionOptions(dsn: dsn).forSubprocess(environment: noEnv).conninfo.contains("sslmode")))
    }

    @Test("multi-host: every host is judged; one remote host is enough")
    func multiHost() throws {
        let plan = try ConnectionOptions(dsn: "host=127.0.0.1,standby.example.com port=5432,5433 dbname=nfl").tlsPlan(environment: noEnv)
        #expect(plan.upgradesToVerifyFull)
        #expect(plan.remoteHosts == ["standby.example.com"])
        #expect(!(try ConnectionOptions(dsn: "host=127.0.0.1,localhost dbname=nfl").tlsPlan(environment: noEnv).upgradesToVerifyFull))
    }

    @Test("an explicit weaker mode is honoured with a warning naming the risk", arguments: [
        ("require", "impersonate the server"), ("verify-ca", "host name"), ("prefer", "downgrade"), ("allow", "downgrade"), ("disable", "plaintext"),
    ])
    func explicitWeak(mode: String, risk: String) throws {
        let plan = try ConnectionOptions(dsn: "host=db.example.com sslmode=\(mode)").tlsPlan(environment: noEnv)
        #expect(!plan.upgradesToVerifyFull)
        #expect(plan.effectiveMode.rawValue == mode)
        let warning = try #require(plan.warning)
        #expect(warning.contains("sslmode=\(mode)"))
        #expect(warning.contains("db.example.com"))
        #expect(warning.contains(risk))
        #expect(try ConnectionOptions(dsn: "host=db.example.com sslmode=\(mode)").forSubprocess(environment: noEnv).conninfo.contains("sslmode='\(mode)'"))
    }

    @Test("PGSSLMODE is an explicit mode too; verify-full explicit gives no warning")
    func environmentMode() throws {
        let plan = try ConnectionOptions(dsn: "host=db.example.com").tlsPlan(environment: ["PGSSLMODE": "require"])
        #expect(!plan.upgradesToVerifyFull)
        #expect(plan.explicitSource == "PGSSLMODE")
        #expect(plan.warning?.contains("PGSSLMODE") == true)
        #expect(try ConnectionOptions(dsn: "host=db.example.com sslmode=verify-full").tlsPlan(environment: noEnv).warning == nil)
        #expect(throws: PostgresError.self) { try ConnectionOptions(dsn: "host=db.example.com").tlsPlan(environment: ["PGSSLMODE": "bogus"]) }
    }

    @Test("security.require_tls turns the warning into an error, before any connection attempt")
    func requireTLS() throws {
        var options = ConnectionOptions(dsn: "host=db.example.com sslmode=require connect_timeout=1")
        options.requireTLS = true
        let error = try #require(throws: PostgresError.self) { try options.tlsPlan(environment: noEnv) }
        #expect(error.message.contains("security.require_tls"))
        #expect(error.message.contains("impersonate"))
        #expect(error.hint?.contains("verify-full") == true)
        // connect() refuses without resolving or contacting db.example.com.
        let start = ContinuousClock.now
        let connectError = try #require(throws: PostgresError.self) {
            try PostgresConnection.connect(options, logger: TestCluster.logger)
        }
        #expect(connectError.message.contains("security.require_tls"))
        // pg_dump/psql conninfo too.
        #expect(throws: PostgresError.self) { try options.forSubprocess(environment: noEnv) }
        #expect(ContinuousClock.now - start < .seconds(1))
        // Loopback is exempt; verify-full passes.
        var local = ConnectionOptions(dsn: "host=127.0.0.1 sslmode=disable")
        local.requireTLS = true
        #expect(try local.tlsPlan(environment: noEnv).warning == nil)
        var strict = ConnectionOptions(dsn: "host=db.example.com sslmode=verify-full")
        strict.requireTLS = true
        #expect(try strict.tlsPlan(environment: noEnv).effectiveMode == .verifyFull)
    }
}

/// The policy as an operator meets it: `nfldb ping` with an explicit weak mode towards a
/// non-loopback address (10.255.255.1: the warning is computed and the refusal made before any attempt, so
/// nothing is sent beyond 127.0.0.1).
@Suite("TLS policy through the CLI")
struct TLSPolicyCLITests {
    @Test("sslmode=require to a non-loopback host warns naming the risk; security.require_tls refuses it (exit 2, a configuration error, no attempt)")
    func warnAndRefuse() throws {
        let dsn = "host=10.255.255.1 port=5432 dbname=nfl user=app sslmode=require connect_timeout=1"
        // The warning is decided without connecting (tests send nothing beyond 127.0.0.1); connect logs it as a warning.
        let warning = try #require(try ConnectionOptions(dsn: dsn).tlsPlan(environment: [:]).warning)
        #expect(warning.contains("sslmode=require (from dsn) for non-loopback host 10.255.255.1"), "\(warning)")
        #expect(warning.contains("man in the middle"))
        let dir = try CLIRunner.temporaryDirectory("nfldb-require-tls")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "security:\n  require_tls: true\n".write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let refused = try CLIRunner.run(["ping", "--count", "1", "--dsn", dsn], workingDirectory: dir, timeout: .seconds(30))
        #expect(refused.status == 2, "\(refused.standardError)")
        #expect(refused.standardError.contains("refusing to connect: security.require_tls is set"))
        #expect(refused.standardError.contains("verify-full"))
        // The environment form: NFLDB_SECURITY_REQUIRE_TLS, and PGSSLMODE as the explicit mode.
        let viaEnv = try CLIRunner.run(
            ["ping", "--count", "1", "--dsn", "host=10.255.255.1 dbname=nfl connect_timeout=1"],
            environment: ["NFLDB_SECURITY_REQUIRE_TLS": "true", "PGSSLMODE": "prefer"], timeout: .seconds(30))
        #expect(viaEnv.standardError.contains("from PGSSLMODE"), "\(viaEnv.standardError)")
        #expect(viaEnv.standardError.contains("refusing to connect") && viaEnv.status == 2, "\(viaEnv.standardError)")
    }
}
