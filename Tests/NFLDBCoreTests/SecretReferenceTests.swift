import Foundation
import NFLDBCore
import Synchronization
import Testing

/// A provider for the mechanism tests: counts its calls, returns a fixed JSON secret.
private final class CountingProvider: SecretProvider {
    let scheme = "test-sm"
    let calls = Mutex(0)
    let value: String
    init(value: String) { self.value = value }
    func fetch(_ reference: SecretReference, environment: [String: String]) throws -> String {
        calls.withLock { $0 += 1 }
        if reference.identifier == "missing" { throw OperatorError("secret \(reference.identifier) not found", hint: "Create it.") }
        return value
    }
}

@Suite("SecretReference and SecretResolver", .serialized)
struct SecretReferenceTests {
    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "nfldb-secretref-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func parsesEveryForm() throws {
        let schemes = ["env", "file", "aws-sm"]
        #expect(try SecretReference.parse("env:PGPW", schemes: schemes) == SecretReference(scheme: "env", identifier: "PGPW"))
        #expect(try SecretReference.parse("file:/etc/x#y@z", schemes: schemes) == SecretReference(scheme: "file", identifier: "/etc/x#y@z"))
        #expect(try SecretReference.parse("aws-sm:nfldb/prod/db", schemes: schemes) == SecretReference(scheme: "aws-sm", identifier: "nfldb/prod/db"))
        #expect(try SecretReference.parse("aws-sm:nfldb/prod/db#password@AWSPREVIOUS", schemes: schemes)
            == SecretReference(scheme: "aws-sm", identifier: "nfldb/prod/db", jsonKey: "password", versionStage: "AWSPREVIOUS"))
        #expect(try SecretReference.parse("aws-sm:arn:aws:secretsmanager:us-east-1:1:secret:db-AbC@AWSPENDING", schemes: schemes)
            == SecretReference(scheme: "aws-sm", identifier: "arn:aws:secretsmanager:us-east-1:1:secret:db-AbC", versionStage: "AWSPENDING"))
        #expect(try SecretReference.parse("aws-sm:db#pw", schemes: schemes).description == "aws-sm:db#pw")
    }

    @Test(arguments: ["nocolon", "vault:x", "env:", "env:BAD-NAME", "aws-sm:#k", "aws-sm:id#", "aws-sm:id@"])
    func refusesMalformed(_ text: String) {
        #expect(throws: ConfigurationError.self) { try SecretReference.parse(text, schemes: ["env", "file", "aws-sm"]) }
    }

    @Test func malformedPasswordRefNamesFileAndLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "dsn: host=x\npassword_ref: vault:secret/db\n".write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let configuration = try ConfigurationLoader(keys: ConfigKey.global, environment: [:], workingDirectory: dir).load()
        do {
            _ = try configuration.passwordReference()
            Issue.record("expected an error")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("nfldb.yaml:2"))
            #expect(error.description.contains("unknown secret scheme"))
            #expect(error.description.contains("HINT:"))
        }
    }

    @Test func envReferenceResolvesRegistersAndReadsNFLDBPasswordRef() throws {
        let secret = "env-secret-\(UUID().uuidString)"
        let configuration = try ConfigurationLoader(
            keys: ConfigKey.global, environment: ["NFLDB_PASSWORD_REF": "env:MY_DB_PW", "MY_DB_PW": secret], workingDirectory: "/").load()
        #expect(try configuration.password() == secret)
        #expect(SecretRedactor.shared.redact("oops \(secret)") == "oops \(SecretRedactor.mask)")
        let missing = try ConfigurationLoader(keys: ConfigKey.global, environment: ["NFLDB_PASSWORD_REF": "env:NOPE_\(UUID().uuidString.prefix(4))"], workingDirectory: "/").load()
        #expect(throws: ConfigurationError.self) { try missing.password() }
    }

    @Test func fileReferenceRefusesGroupOrWorldReadable() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/pw"
        let secret = "file-secret-\(UUID().uuidString)"
        try "\(secret)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let resolver = SecretResolver()
        do {
            _ = try resolver.resolve("file:\(path)", environment: [:])
            Issue.record("a 0644 secret file was accepted")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("group or world access (mode 644)"))
            #expect(error.description.contains("HINT: Run: chmod 0600 \(path)"))
            #expect(!error.description.contains(secret))
        }
        chmod(path, 0o640)
        #expect(throws: ConfigurationError.self) { try resolver.resolve("file:\(path)", environment: [:]) }
        // Run the printed hint in the state it was printed.
        chmod(path, 0o600)
        #expect(try resolver.resolve("file:\(path)", environment: [:]) == secret)
        #expect(throws: ConfigurationError.self) { try resolver.resolve("file:\(dir)/absent", environment: [:]) }
    }

    @Test func providerIsCalledOnceAndJSONKeysArePicked() throws {
        let resolver = SecretResolver()
        let secret = "pw-\(UUID().uuidString)"
        let provider = CountingProvider(value: #"{"username":"app","password":"\#(secret)","port":5432}"#)
        resolver.register(provider)
        #expect(resolver.schemes.contains("test-sm"))
        #expect(try resolver.resolve("test-sm:db#password", environment: [:]) == secret)
        #expect(try resolver.resolve("test-sm:db#password", environment: [:]) == secret)
        #expect(try resolver.resolve("test-sm:db#port", environment: [:]) == "5432")
        #expect(provider.calls.withLock { $0 } == 2, "cached per reference: two distinct references, two fetches")
        #expect(SecretRedactor.shared.redact(secret) == SecretRedactor.mask)
        do {
            _ = try resolver.resolve("test-sm:db#nokey", environment: [:])
            Issue.record("expected an error")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("no field 'nokey'"))
            #expect(error.description.contains("password, port, username"))
            #expect(!error.description.contains(secret))
        }
        do {
            _ = try resolver.resolve("test-sm:missing", source: .file(path: "nfldb.yaml", line: 7), environment: [:])
            Issue.record("expected an error")
        } catch let error as any NFLDBError {
            #expect(error.description.contains("nfldb.yaml:7: secret reference test-sm:missing: secret missing not found"), "\(error.description)")
        }
    }
}
