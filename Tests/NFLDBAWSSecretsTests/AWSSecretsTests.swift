import Foundation
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBFernet
import NFLDBPostgres
import NFLDBRoles
import NFLDBTestSupport
import Testing

@Suite("SigV4 against botocore's signer")
struct SigV4Tests {
    /// botocore's `SigV4Auth` on the same request, at a fixed time.
    static func botocoreAuthorization(url: String, body: String, target: String, token: String?) throws -> String {
        let script = """
            import datetime, sys, botocore.auth, botocore.credentials
            from botocore.awsrequest import AWSRequest
            botocore.auth.get_current_datetime = lambda: datetime.datetime(2026, 12, 4, 16, 30, 5)
            url, body, target, token = sys.argv[1], sys.argv[2], sys.argv[3], (sys.argv[4] or None)
            creds = botocore.credentials.Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', token)
            req = AWSRequest(method='POST', url=url, data=body.encode(), headers={'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': target})
            botocore.auth.SigV4Auth(creds, 'secretsmanager', 'eu-west-1').add_auth(req)
            print(req.headers['Authorization'])
            """
        let result = try ProcessRunner().run("python3", ["-c", script, url, body, target, token ?? ""], timeout: .seconds(60))
        #expect(result.status == 0, "python3/botocore failed: \(result.standardError)")
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(arguments: [nil, "FQoGZXIvYXdzEXAMPLETOKEN/+="] as [String?])
    func authorizationMatchesBotocore(token: String?) throws {
        let url = "http://127.0.0.1:56500/"
        let body = #"{"SecretId":"nfldb\/prod\/db","VersionStage":"AWSCURRENT"}"#
        let target = "secretsmanager.GetSecretValue"
        let signer = SigV4Signer(
            credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: token),
            region: "eu-west-1", service: "secretsmanager")
        let date = Date(timeIntervalSince1970: 1_796_401_805)  // 2026-12-04T16:30:05Z
        let headers = signer.sign(method: "POST", url: URL(string: url)!, headers: [
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target,
        ], body: Array(body.utf8), date: date)
        #expect(headers["X-Amz-Date"] == "20261204T163005Z")
        #expect(headers["Host"] == "127.0.0.1:56500")
        let expected = try Self.botocoreAuthorization(url: url, body: body, target: target, token: token)
        #expect(expected.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/eu-west-1/secretsmanager/aws4_request"))
        #expect(headers["Authorization"] == expected)
        // A different body must change the signature.
        let other = signer.sign(method: "POST", url: URL(string: url)!, headers: ["Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target],
                                body: Array(#"{"SecretId":"x"}"#.utf8), date: date)
        #expect(other["Authorization"] != expected)
    }

    @Test func credentialsChainAndEndpointOverride() throws {
        let dir = NSTemporaryDirectory() + "nfldb-aws-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/.aws", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n[prod]\naws_access_key_id=AKPROD\naws_secret_access_key=sprod\naws_session_token=tok\n"
            .write(toFile: dir + "/.aws/credentials", atomically: true, encoding: .utf8)
        #expect(try AWSEnvironment.credentials(["AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "senv", "HOME": dir]).accessKeyID == "AKENV")
        #expect(try AWSEnvironment.credentials(["HOME": dir]).accessKeyID == "AKDEF")
        let prod = try AWSEnvironment.credentials(["HOME": dir, "AWS_PROFILE": "prod"])
        #expect(prod.accessKeyID == "AKPROD" && prod.sessionToken == "tok")
        #expect(!prod.description.contains("sprod"))
        #expect(throws: OperatorError.self) { try AWSEnvironment.credentials(["HOME": dir, "AWS_PROFILE": "nope"]) }
        let noRegion = #expect(throws: OperatorError.self) { try AWSEnvironment.region([:]) }
        #expect(noRegion?.exitStatus == .usage, "a missing region is a configuration error (exit 2), as in crypt")
        let noCredentials = #expect(throws: OperatorError.self) { try AWSEnvironment.credentials(["HOME": dir, "AWS_PROFILE": "nope"]) }
        #expect(noCredentials?.exitStatus == .usage)
        #expect(try AWSEnvironment.region(["AWS_DEFAULT_REGION": "eu-west-1"]) == "eu-west-1")
        #expect(try AWSEnvironment.region(["AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "eu-west-1"]) == "us-east-2")
        #expect(try AWSEnvironment.secretsManagerEndpoint(["AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://b:2"], region: "x").absoluteString == "http://b:2")
        #expect(try AWSEnvironment.secretsManagerEndpoint(["AWS_ENDPOINT_URL": "http://a:1"], region: "x").absoluteString == "http://a:1")
        #expect(try AWSEnvironment.secretsManagerEndpoint([:], region: "eu-west-1").absoluteString == "https://secretsmanager.eu-west-1.amazonaws.com/")
    }
}

@Suite("aws-sm: against moto's Secrets Manager", .serialized)
struct AWSSecretsMotoTests {
    @Test func plainJSONKeyPreviousStageAndMissing() throws {
        let moto = try MotoServer()
        let client = try moto.client()
        let name = "nfldb/test/\(UUID().uuidString.prefix(8))"
        try client.createSecret(name, secretString: "first-value-\(name)")
        try client.putSecretValue(name, secretString: #"{"username":"app","password":"second-pw-xyz"}"#,
                                  clientRequestToken: UUID().uuidString, stages: ["AWSCURRENT"])
        let resolver = SecretResolver()
        resolver.register(AWSSecretsProvider())
        let env = moto.environment()
        #expect(try resolver.resolve("aws-sm:\(name)", environment: env) == #"{"username":"app","password":"second-pw-xyz"}"#)
        #expect(try resolver.resolve("aws-sm:\(name)#password", environment: env) == "second-pw-xyz")
        #expect(try resolver.resolve("aws-sm:\(name)@AWSPREVIOUS", environment: env) == "first-value-\(name)")
        #expect(SecretRedactor.shared.redact("x second-pw-xyz y") == "x \(SecretRedactor.mask) y")
        let stages = try client.describeSecret(name)
        #expect(stages.values.contains { $0.contains("AWSCURRENT") } && stages.values.contains { $0.contains("AWSPREVIOUS") })
        do {
            _ = try resolver.resolve("aws-sm:nfldb/absent", source: .file(path: "nfldb.yaml", line: 3), what: "password_ref", environment: env)
            Issue.record("a missing secret resolved")
        } catch let error as any NFLDBError {
            #expect(error.description.contains("nfldb.yaml:3: password_ref aws-sm:nfldb/absent: Secrets Manager GetSecretValue for 'nfldb/absent' failed"), "\(error.description)")
            #expect(error.description.contains("ResourceNotFoundException"), "\(error.description)")
            #expect(error.description.contains("HINT: Check the secret id 'nfldb/absent'"))
        }
    }

    /// A Fernet key ring from `--key-ref aws-sm:…,env:…`: the aws-sm key encrypts, both decrypt.
    @Test func fernetKeyFromSecretsManager() throws {
        let moto = try MotoServer()
        let client = try moto.client()
        let newKey = try FernetKey.generate().encoded
        let oldKey = try FernetKey.generate().encoded
        try client.createSecret("nfldb/fernet", secretString: #"{"key":"\#(newKey)"}"#)
        SecretResolver.shared.register(AWSSecretsProvider())
        let env = moto.environment(extra: ["OLD_FERNET_KEY": oldKey])
        let ring = try KeyRing.load("aws-sm:nfldb/fernet#key,env:OLD_FERNET_KEY", environment: env)
        #expect(ring.keys.map(\.encoded) == [newKey, oldKey])
        #expect(SecretRedactor.shared.redact(newKey) == SecretRedactor.mask)
        #expect(throws: KeyReferenceError.self) { try KeyRing.load("aws-sm:nfldb/absent-key", environment: env) }
    }

    @Test func wrongKeyIsRefusedWith403() throws {
        let moto = try MotoServer(noAuthCount: 0)
        let client = try moto.client(secretKey: "wrong-secret-key-123")
        do {
            _ = try client.getSecretValue("nfldb/any")
            Issue.record("moto with INITIAL_NO_AUTH_ACTION_COUNT=0 accepted an unknown key")
        } catch let error as SecretsManagerError {
            #expect(error.status == 403)
            #expect(["InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"].contains(error.code ?? ""), "\(error.description)")
            #expect(error.description.contains("HTTP 403"))
            #expect(error.description.contains("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"))
            #expect(!error.description.contains("wrong-secret-key-123"))
        }
    }

    @Test func unreachableEndpointIsReportedWithinTimeout() throws {
        let port = try MotoServer.freePort()
        let client = try SecretsManagerClient(environment: [
            "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)",
        ], timeout: 3)
        #expect(throws: SecretsManagerError.self) { try client.getSecretValue("x") }
    }

    /// The database password and a role password, both from `aws-sm:` references, used for real logins.
    @Test func databaseAndRolePasswordsFromSecretsManager() throws {
        let moto = try MotoServer()
        let client = try moto.client()
        let role = "sec_\(UUID().uuidString.prefix(8).lowercased())"
        let password = "pw-\(UUID().uuidString)"
        try client.createSecret("nfldb/\(role)", secretString: #"{"password":"\#(password)"}"#)
        try TestCluster.withDatabase(prefix: "secrets") { db in
            let admin = try db.connect()
            defer { admin.close() }
            let verifier = ScramVerifier(password: password).description
            try admin.runScript(unsafeSQL: "CREATE ROLE \(role) LOGIN PASSWORD '\(verifier)'")
            defer { _ = try? admin.runScript(unsafeSQL: "DROP ROLE IF EXISTS \(role)") }

            // The database password: password_ref through NFLDB_PASSWORD_REF.
            SecretResolver.shared.register(AWSSecretsProvider())
            let env = moto.environment(extra: ["NFLDB_PASSWORD_REF": "aws-sm:nfldb/\(role)#password", "NFLDB_DSN": db.cluster.dsn(database: db.name, user: role)])
            let configuration = try ConfigurationLoader(keys: ConfigKey.global, environment: env, workingDirectory: "/").load()
            let resolved = try #require(try configuration.password())
            #expect(resolved == password)
            let connection = try PostgresConnection.connect(ConnectionOptions(dsn: configuration.string(.dsn), password: resolved), logger: TestCluster.logger)
            #expect(try connection.query("SELECT current_user::text").scalar(String.self) == role)
            connection.close()

            // A role password in the roles spec: password_ref parsed and resolved the way roles apply does.
            let specPath = NSTemporaryDirectory() + "nfldb-roles-\(role).yaml"
            try "version: 1\nroles:\n  \(role):\n    login: true\n    password_ref: aws-sm:nfldb/\(role)#password\n"
                .write(toFile: specPath, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: specPath) }
            let parsed = try RoleSpecParser.load(path: specPath).spec
            let source = try #require(parsed.role(role)?.password)
            #expect(source == .reference("aws-sm:nfldb/\(role)#password"))
            #expect(try source.resolve(environment: env) == password)
            #expect(ScramVerifier(parsing: verifier)?.matches(password: try source.resolve(environment: env) ?? "") == true)
        }
    }
}
