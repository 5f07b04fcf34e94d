import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBSandbox
import Synchronization

/// A throwaway PostgreSQL 15 cluster with TLS, its own CA and server certificates made here with
/// openssl, and a `pg_hba.conf` of the caller's choosing (default: `hostssl` only, `hostnossl … reject`).
///
/// Certificates (one shared EC P-256 server key, all but `wrongCA` signed by ``caFile``):
/// - `.good`: SAN `DNS:localhost, IP:127.0.0.1`, valid 365 days;
/// - `.otherHost`: SAN `DNS:db.other.example` only (host name mismatch for localhost);
/// - `.expired`: valid 2020-01-01 … 2020-02-01 (made with `openssl ca -startdate/-enddate`, since
///   OpenSSL 3.0's `x509` has no `-not_after` and `-days` cannot be negative);
/// - `.expiresSoon`: valid 5 days.
/// ``wrongCAFile`` is an unrelated CA. The superuser reaches the server over the Unix socket
/// (``socketDSN``, trust) whatever the certificate, so tests can switch certificates (``use(_:)``).
public final class TLSTestServer: Sendable {
    public enum Certificate: String, Sendable, CaseIterable { case good, otherHost, expired, expiresSoon }

    public let root: String
    public let cluster: LocalCluster
    public let password: String
    public var port: Int { cluster.port }
    public var caFile: String { root + "/pki/ca.crt" }
    public var wrongCAFile: String { root + "/pki/wrong-ca.crt" }
    public func certificateFile(_ certificate: Certificate) -> String { root + "/pki/\(certificate.rawValue).crt" }

    /// The hba used when none is given: TLS only over TCP.
    public static let hostsslOnly = [
        "local all all trust",
        "hostssl all all 127.0.0.1/32 scram-sha-256",
        "hostnossl all all 127.0.0.1/32 reject",
    ]

    init(root: String, cluster: LocalCluster, password: String) {
        self.root = root
        self.cluster = cluster
        self.password = password
    }

    private static let sharedServer: Result<TLSTestServer, TestClusterError> = {
        do {
            let server = try start()
            atexit { TLSTestServer.stopShared() }
            return .success(server)
        } catch {
            return .failure(TestClusterError(reason: "TLS test server: \(error)"))
        }
    }()

    private static func stopShared() {
        if case .success(let server) = sharedServer { server.stop() }
    }

    /// The per-process TLS server (hostssl only); tests that switch its certificate must be serialized.
    public static func shared() throws -> TLSTestServer { try sharedServer.get() }

    /// Starts a new server; the caller stops it (``stop()``).
    public static func start(
        certificate: Certificate = .good, hba: [String] = hostsslOnly, settings: [(String, String)] = [], ssl: Bool = true
    ) throws -> TLSTestServer {
        let environment = ProcessInfo.processInfo.environment
        let binaries = try PostgresBinaries.locate(configured: environment["NFLDB_POSTGRES_BIN_DIR"])
        let root = "/tmp/nfldb-tls-\(getpid())-\(Int.random(in: 10000...99999))"
        let osUser = ProcessRunner.isRoot ? (environment["NFLDB_POSTGRES_OS_USER"] ?? "postgres") : nil
        let password = LocalCluster.randomPassword()
        SecretRedactor.shared.register(password)
        try FileManager.default.createDirectory(atPath: root + "/pki", withIntermediateDirectories: true)
        chmod(root, 0o755)
        try makePKI(root + "/pki")
        var lastError: (any Error)?
        for _ in 0..<3 {
            let cluster = LocalCluster(root: root, port: try LocalCluster.freePort(), binaries: binaries, osUser: osUser)
            let server = TLSTestServer(root: root, cluster: cluster, password: password)
            do {
                try? FileManager.default.removeItem(atPath: cluster.dataDirectory)
                try cluster.initialize(password: password, settings: [
                    ("fsync", "off"), ("synchronous_commit", "off"), ("ssl", ssl ? "on" : "off"), ("log_min_messages", "warning"),
                ] + settings, logger: TestCluster.logger)
                try server.installCertificate(certificate)
                try (hba.joined(separator: "\n") + "\n").write(
                    toFile: cluster.dataDirectory + "/pg_hba.conf", atomically: true, encoding: .utf8)
                try cluster.giveToOSUser(cluster.dataDirectory + "/pg_hba.conf")
                try cluster.start(logger: TestCluster.logger)
                return server
            } catch {
                lastError = error
                try? cluster.stop(mode: "immediate", logger: TestCluster.logger)
            }
        }
        throw TestClusterError(reason: "could not start the TLS test server under \(root): \(lastError.map { String(describing: $0) } ?? "unknown")")
    }

    public func stop() {
        try? cluster.stop(mode: "immediate", logger: TestCluster.logger)
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Superuser over the Unix socket (trust), whatever the TLS state.
    public var socketDSN: String { "host=\(cluster.socketDirectory) port=\(port) user=\(cluster.superuser) dbname=postgres" }

    /// A TCP conninfo: `host` is the name verified against the certificate, `hostaddr` where to connect.
    public func dsn(
        sslmode: String, rootCert: String? = nil, host: String = "localhost", hostaddr: String? = "127.0.0.1",
        user: String? = nil, password: String? = nil, database: String = "postgres"
    ) -> String {
        var text = "host=\(host) port=\(port) dbname=\(database) user=\(user ?? cluster.superuser) sslmode=\(sslmode) connect_timeout=5"
        if let hostaddr { text += " hostaddr=\(hostaddr)" }
        text += " sslrootcert=\(rootCert ?? caFile)"
        text += " password=\(password ?? (user == nil ? self.password : ""))"
        return text
    }

    /// Serves `certificate` from now on: copies it to the data directory and reloads, then waits
    /// until new backends carry the reloaded configuration.
    public func use(_ certificate: Certificate) throws {
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: socketDSN), logger: TestCluster.logger)
        defer { admin.close() }
        let before: String = try admin.query("SELECT clock_timestamp()::text AS t").singleRow().decode("t")
        try installCertificate(certificate)
        try admin.execute("SELECT pg_reload_conf()")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let probe = try PostgresConnection.connect(ConnectionOptions(dsn: socketDSN), logger: TestCluster.logger)
            let reloaded: Bool = try probe.query("SELECT pg_conf_load_time() > \(before)::timestamptz AS r").singleRow().decode("r")
            probe.close()
            if reloaded { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestClusterError(reason: "the TLS test server did not reload its configuration within 10 s")
    }

    func installCertificate(_ certificate: Certificate) throws {
        let fm = FileManager.default
        for (source, target) in [(certificateFile(certificate), "server.crt"), (root + "/pki/server.key", "server.key")] {
            let path = cluster.dataDirectory + "/" + target
            try? fm.removeItem(atPath: path + ".new")
            try fm.copyItem(atPath: source, toPath: path + ".new")
            chmod(path + ".new", 0o600)
            try cluster.giveToOSUser(path + ".new")
            guard rename(path + ".new", path) == 0 else { throw TestClusterError(reason: "cannot install \(path)") }
        }
    }

    /// The CA, the wrong CA, the server key and the four server certificates, with openssl.
    static func makePKI(_ dir: String) throws {
        func openssl(_ arguments: [String]) throws {
            let result = try ProcessRunner().run("openssl", arguments, workingDirectory: dir, timeout: .seconds(60))
            guard result.succeeded else {
                throw TestClusterError(reason: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.stderrTail())")
            }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for (name, cn) in [("ca", "nfldb test CA"), ("wrong-ca", "unrelated test CA")] {
            try openssl(["req", "-x509"] + ec + [
                "-keyout", "\(name).key", "-out", "\(name).crt", "-days", "400", "-subj", "/CN=\(cn)",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        }
        try openssl(["req", "-new"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try openssl(["req", "-new", "-key", "server.key", "-out", "other.csr", "-subj", "/CN=db.other.example"])
        let localExt = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        let otherExt = "subjectAltName=DNS:db.other.example\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        try localExt.write(toFile: dir + "/local.ext", atomically: true, encoding: .utf8)
        try otherExt.write(toFile: dir + "/other.ext", atomically: true, encoding: .utf8)
        let sign = ["x509", "-req", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"]
        try openssl(sign + ["-in", "server.csr", "-out", "good.crt", "-days", "365", "-extfile", "local.ext"])
        try openssl(sign + ["-in", "other.csr", "-out", "otherHost.crt", "-days", "365", "-extfile", "other.ext"])
        try openssl(sign + ["-in", "server.csr", "-out", "expiresSoon.crt", "-days", "5", "-extfile", "local.ext"])
        // Expired: `openssl ca` takes explicit dates.
        try FileManager.default.createDirectory(atPath: dir + "/issued", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/index.txt", contents: nil)
        try "1000\n".write(toFile: dir + "/serial", atomically: true, encoding: .utf8)
        try """
            [ ca ]
            default_ca = test_ca
            [ test_ca ]
            database = \(dir)/index.txt
            new_certs_dir = \(dir)/issued
            serial = \(dir)/serial
            default_md = sha256
            policy = any
            unique_subject = no
            [ any ]
            commonName = supplied
            [ server ]
            subjectAltName = DNS:localhost,IP:127.0.0.1
            extendedKeyUsage = serverAuth
            basicConstraints = CA:FALSE

            """.write(toFile: dir + "/ca.cnf", atomically: true, encoding: .utf8)
        try openssl([
            "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-in", "server.csr", "-out", "expired.crt",
            "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-extensions", "server", "-notext",
        ])
        for file in ["ca.crt", "wrong-ca.crt", "good.crt", "otherHost.crt", "expiresSoon.crt", "expired.crt"] { chmod(dir + "/" + file, 0o644) }
    }
}
