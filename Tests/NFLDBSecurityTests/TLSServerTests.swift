import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// Verified TLS against a real PostgreSQL 15 with a throwaway CA (``TLSTestServer``: hostssl only).
/// Serialized: some tests switch the server's certificate.
@Suite("Verified TLS against a real server", .serialized)
struct TLSServerTests {
    func connect(_ dsn: String) throws -> PostgresConnection {
        try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
    }

    func connectionError(_ dsn: String) throws -> PostgresError {
        try #require(throws: PostgresError.self) { try connect(dsn) }
    }

    @Test("verify-full with the right CA and host=localhost succeeds; the session says TLS, protocol, cipher, verified")
    func verifyFull() throws {
        let server = try TLSTestServer.shared()
        try server.use(.good)
        let connection = try connect(server.dsn(sslmode: "verify-full"))
        defer { connection.close() }
        let tls = connection.tlsSession
        #expect(tls.inUse)
        #expect(tls.verified)
        #expect(tls.sslMode == "verify-full")
        #expect(tls.protocolVersion?.hasPrefix("TLSv1.") == true)
        #expect(!(tls.cipher ?? "").isEmpty)
        #expect(tls.peerSubject?.contains("CN=localhost") == true)
        let days = try #require(tls.peerNotAfter).timeIntervalSinceNow / 86_400
        #expect(days > 363 && days < 366)
        // The server agrees: this backend is on TLS.
        let ssl: Bool = try connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").singleRow().decode("ssl")
        #expect(ssl)
        // IP SAN: host=127.0.0.1 verifies too.
        let byIP = try connect(server.dsn(sslmode: "verify-full", host: "127.0.0.1", hostaddr: nil))
        #expect(byIP.tlsSession.verified)
        byIP.close()
        // require: encrypted but not verified.
        let unverified = try connect(server.dsn(sslmode: "require"))
        #expect(unverified.tlsSession.inUse)
        #expect(!unverified.tlsSession.verified)
        unverified.close()
    }

    @Test("a wrong CA fails as 'unknown CA' naming sslrootcert; a missing root file too")
    func wrongCA() throws {
        let server = try TLSTestServer.shared()
        try server.use(.good)
        let error = try connectionError(server.dsn(sslmode: "verify-full", rootCert: server.wrongCAFile))
        #expect(error.message.contains("TLS: unknown CA"), "\(error.message)")
        #expect(error.message.contains(server.wrongCAFile))
        #expect(error.hint?.contains("sslrootcert") == true)
        #expect(!error.message.contains(server.password))
        let missing = try connectionError(server.dsn(sslmode: "verify-full", rootCert: server.root + "/no-such-ca.crt"))
        #expect(missing.message.contains("TLS: unknown CA"), "\(missing.message)")
        #expect(missing.message.contains("does not exist"))
        #expect(missing.hint?.contains("sslrootcert") == true)
    }

    @Test("a certificate for another host name fails as 'host name mismatch' naming host/hostaddr")
    func wrongHost() throws {
        let server = try TLSTestServer.shared()
        try server.use(.otherHost)
        defer { try? server.use(.good) }
        let error = try connectionError(server.dsn(sslmode: "verify-full"))
        #expect(error.message.contains("TLS: host name mismatch"), "\(error.message)")
        #expect(error.hint?.contains("host=") == true)
        #expect(error.hint?.contains("hostaddr") == true)
        // Connecting by the certificate's name (hostaddr keeps it on loopback) works: the CA is right.
        let byName = try connect(server.dsn(sslmode: "verify-full", host: "db.other.example"))
        #expect(byName.tlsSession.verified)
        byName.close()
    }

    @Test("an expired certificate fails as 'expired certificate' with the renewal fix, not as unknown CA")
    func expired() throws {
        let server = try TLSTestServer.shared()
        try server.use(.expired)
        defer { try? server.use(.good) }
        let error = try connectionError(server.dsn(sslmode: "verify-full"))
        #expect(error.message.contains("TLS: expired certificate"), "\(error.message)")
        #expect(!error.message.contains("unknown CA"))
        #expect(error.hint?.contains("Renew the server certificate") == true)
        #expect(error.hint?.contains("pg_reload_conf") == true)
    }

    @Test("plaintext (sslmode=disable) is rejected by hostnossl … reject with the 'server requires TLS' message")
    func plaintextRejected() throws {
        let server = try TLSTestServer.shared()
        let error = try connectionError(server.dsn(sslmode: "disable"))
        #expect(error.message.contains("TLS: server requires TLS"), "\(error.message)")
        #expect(error.hint?.contains("sslmode=verify-full") == true)
    }

    @Test("a server without TLS (ssl=off) fails sslmode=require as 'server without TLS' with ssl=on as the fix")
    func serverWithoutTLS() throws {
        let cluster = try TestCluster.shared()
        let dsn = "host=127.0.0.1 port=\(cluster.port) user=\(cluster.superuser) dbname=postgres sslmode=require password=\(cluster.password ?? "")"
        let error = try connectionError(dsn)
        #expect(error.message.contains("TLS: server without TLS"), "\(error.message)")
        #expect(error.hint?.contains("ssl = on") == true)
    }

    @Test("tls_certificate: 365 days OK, 5 days CRITICAL, expired CRITICAL; not on TLS says why")
    func certificateProbe() throws {
        let server = try TLSTestServer.shared()
        func run(_ dsn: String) throws -> CheckResult {
            let report = HealthRunner(settings: HealthSettings(), probes: [TLSCertificateProbe()], logger: TestCluster.logger)
                .run([HealthTarget(options: ConnectionOptions(dsn: dsn))])
            return try #require(report.targets.first?.checks.first { $0.name == "tls_certificate" })
        }
        try server.use(.good)
        let good = try run(server.dsn(sslmode: "verify-full"))
        #expect(good.status == .ok)
        #expect((good.value ?? 0) >= 363)
        try server.use(.expiresSoon)
        defer { try? server.use(.good) }
        let soon = try run(server.dsn(sslmode: "verify-full"))
        #expect(soon.status == .critical, "\(soon.message)")
        #expect(soon.value == 4 || soon.value == 5)
        #expect(soon.message.contains("expires in"))
        #expect(soon.hint?.contains("Renew") == true)
        // A 20-day warning window makes the same certificate a WARNING only when critical is lower.
        let warnReport = HealthRunner(
            settings: HealthSettings(values: ["tls_certificate.warning": "30", "tls_certificate.critical": "2"]),
            probes: [TLSCertificateProbe()], logger: TestCluster.logger).run([HealthTarget(options: ConnectionOptions(dsn: server.dsn(sslmode: "verify-full")))])
        #expect(warnReport.targets.first?.checks.first?.status == .warning)
        // Expired: readable with sslmode=require and no root file (with one, libpq's require acts as verify-ca).
        try server.use(.expired)
        let expired = try run(server.dsn(sslmode: "require", rootCert: server.root + "/no-root.crt"))
        #expect(expired.status == .critical)
        #expect((expired.value ?? 0) < -1000)
        #expect(expired.message.contains("expired on 2020-02-01"))
        // Without TLS (the plain test cluster): OK with the reason, no value.
        let cluster = try TestCluster.shared()
        let plain = try run(cluster.dsn(database: "postgres"))
        #expect(plain.status == .ok)
        #expect(plain.value == nil)
        #expect(plain.message.contains("does not use TLS"))
    }

    @Test("tls_connections: plaintext TCP clients count once loopback is not excluded; TLS clients never")
    func connectionsProbe() throws {
        // The plain test cluster accepts TCP without TLS; hold one such session open.
        let cluster = try TestCluster.shared()
        let plain = try connect(cluster.dsn(database: "postgres") + " application_name=plaintext_client")
        defer { plain.close() }
        func run(_ values: [String: String]) throws -> CheckResult {
            let report = HealthRunner(settings: HealthSettings(values: values), probes: [TLSConnectionsProbe()], logger: TestCluster.logger)
                .run([HealthTarget(options: ConnectionOptions(dsn: cluster.dsn(database: "postgres")))])
            return try #require(report.targets.first?.checks.first)
        }
        let byDefault = try run([:])
        #expect(byDefault.status == .ok, "loopback clients are local by default: \(byDefault.message)")
        let counted = try run(["tls_connections.local_networks": "10.255.255.0/24"])
        #expect(counted.status == .warning)
        #expect((counted.value ?? 0) >= 2, "the plaintext client and the probe's own session")
        #expect(counted.details.contains { $0.description.contains("plaintext_client") })
        #expect(counted.hint?.contains("hostnossl") == true)
        // On the TLS server every TCP client is on TLS.
        let server = try TLSTestServer.shared()
        try server.use(.good)
        let report = HealthRunner(
            settings: HealthSettings(values: ["tls_connections.local_networks": "10.255.255.0/24"]), probes: [TLSConnectionsProbe()],
            logger: TestCluster.logger).run([HealthTarget(options: ConnectionOptions(dsn: server.dsn(sslmode: "verify-full")))])
        #expect(report.targets.first?.checks.first?.status == .ok)
        #expect(report.targets.first?.checks.first?.value == 0)
    }

    @Test("nfldb ping prints protocol, cipher and 'peer verified' (text and JSON)")
    func ping() throws {
        let server = try TLSTestServer.shared()
        try server.use(.good)
        let text = try CLIRunner.run(["ping", "--count", "1", "--dsn", server.dsn(sslmode: "verify-full")])
        #expect(text.status == 0, "\(text.standardError)")
        #expect(text.standardOutput.contains("tls: TLSv1."))
        #expect(text.standardOutput.contains("peer verified (sslmode=verify-full)"))
        #expect(!text.standardOutput.contains(server.password))
        let json = try CLIRunner.run(["ping", "--count", "1", "--format", "json", "--dsn", server.dsn(sslmode: "require")])
        #expect(json.status == 0, "\(json.standardError)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        let tls = try #require(object["tls"] as? [String: Any])
        #expect(tls["in_use"] as? Bool == true)
        #expect(tls["verified"] as? Bool == false)
        #expect((tls["cipher"] as? String)?.isEmpty == false)
        let plain = try CLIRunner.run(["ping", "--count", "1", "--dsn", try TestCluster.shared().dsn(database: "postgres") + " sslmode=disable"])
        #expect(plain.standardOutput.contains("tls: not in use"))
    }
}
