import Foundation
import NFLDBAWSSecrets
import NFLDBCore
import NFLDBPostgres
import NFLDBRoles
import NFLDBSecretRotation
import NFLDBTestSupport
import Testing

@Suite("roles rotate: four-step rotation against moto and PostgreSQL", .serialized)
struct RotationTests {
    struct Fixture {
        let moto: MotoServer
        let client: SecretsManagerClient
        let role: String
        let secretID: String
        let oldPassword: String
    }

    /// A role logging in with `oldPassword`, and a JSON secret holding it as AWSCURRENT.
    static func withFixture(_ body: (Fixture, TestDatabase, PostgresConnection) throws -> Void) throws {
        let moto = try MotoServer()
        let client = try moto.client()
        let role = "rot_\(UUID().uuidString.prefix(8).lowercased())"
        let oldPassword = "old-\(UUID().uuidString)"
        let secretID = "nfldb/rotate/\(role)"
        try client.createSecret(secretID, secretString: #"{"username":"\#(role)","password":"\#(oldPassword)"}"#)
        try TestCluster.withDatabase(prefix: "rotate") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE ROLE \(role) LOGIN PASSWORD '\(ScramVerifier(password: oldPassword).description)'")
            defer { _ = try? admin.runScript(unsafeSQL: "DROP ROLE IF EXISTS \(role)") }
            try body(Fixture(moto: moto, client: client, role: role, secretID: secretID, oldPassword: oldPassword), db, admin)
        }
    }

    static func canLogIn(_ db: TestDatabase, _ role: String, _ password: String) -> Bool {
        guard let c = try? PostgresConnection.connect(ConnectionOptions(dsn: db.cluster.dsn(database: db.name, user: role), password: password), logger: TestCluster.logger)
        else { return false }
        c.close()
        return true
    }

    static func password(_ client: SecretsManagerClient, _ id: String, stage: String) throws -> String {
        let value = try client.getSecretValue(id, stage: stage).string
        return try #require((try JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any])?["password"] as? String)
    }

    static func login(_ db: TestDatabase, _ role: String) -> ConnectionOptions {
        RoleRotation.loginOptions(from: ConnectionOptions(dsn: db.cluster.dsn(database: db.name)), role: role)
    }

    @Test func fullRotationMovesStagesAndChangesThePassword() throws {
        try Self.withFixture { f, db, admin in
            let reference = try SecretReference.parse("aws-sm:\(f.secretID)#password", schemes: ["aws-sm"])
            let result = try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role), logger: TestCluster.logger)
            #expect(result.steps.map(\.step) == RoleRotation.Step.allCases)
            let newPassword = try Self.password(f.client, f.secretID, stage: "AWSCURRENT")
            #expect(newPassword != f.oldPassword && newPassword.count >= 40)
            #expect(try Self.password(f.client, f.secretID, stage: "AWSPREVIOUS") == f.oldPassword)
            #expect(!Self.canLogIn(db, f.role, f.oldPassword), "the old password still logs in")
            #expect(Self.canLogIn(db, f.role, newPassword))
            let stages = try f.client.describeSecret(f.secretID)
            #expect(stages[result.pendingVersion]?.contains("AWSCURRENT") == true)
            #expect(!stages.values.contains { $0.contains("AWSPENDING") }, "AWSPENDING left behind: \(stages)")
            // The other JSON fields are kept.
            let current = try f.client.getSecretValue(f.secretID).string
            #expect(current.contains(#""username":"\#(f.role)""#))
            #expect(SecretRedactor.shared.redact(newPassword) == SecretRedactor.mask)
        }
    }

    @Test func interruptedAfterSetSecretIsCompletedByTheNextRun() throws {
        try Self.withFixture { f, db, admin in
            let reference = try SecretReference.parse("aws-sm:\(f.secretID)#password", schemes: ["aws-sm"])
            let first = try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role),
                                                 stopAfter: .setSecret, logger: TestCluster.logger)
            #expect(first.steps.map(\.step) == [.createSecret, .setSecret])
            // The state an interruption leaves: the role has the pending password, AWSCURRENT still the old one.
            let pending = try Self.password(f.client, f.secretID, stage: "AWSPENDING")
            #expect(try Self.password(f.client, f.secretID, stage: "AWSCURRENT") == f.oldPassword)
            #expect(Self.canLogIn(db, f.role, pending))
            #expect(!Self.canLogIn(db, f.role, f.oldPassword))

            let second = try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role), logger: TestCluster.logger)
            #expect(second.pendingVersion == first.pendingVersion, "the resumed run must reuse the pending version")
            #expect(second.steps[0].outcome.hasPrefix("skipped"))
            #expect(second.steps[1].outcome.hasPrefix("skipped"))
            #expect(try Self.password(f.client, f.secretID, stage: "AWSCURRENT") == pending)
            #expect(try Self.password(f.client, f.secretID, stage: "AWSPREVIOUS") == f.oldPassword)
            #expect(Self.canLogIn(db, f.role, pending))
        }
    }

    @Test func interruptedAfterCreateSecretIsCompletedByTheNextRun() throws {
        try Self.withFixture { f, db, admin in
            let reference = try SecretReference.parse("aws-sm:\(f.secretID)#password", schemes: ["aws-sm"])
            _ = try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role),
                                        stopAfter: .createSecret, logger: TestCluster.logger)
            #expect(Self.canLogIn(db, f.role, f.oldPassword), "createSecret alone must not touch the role")
            let result = try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role), logger: TestCluster.logger)
            #expect(result.steps[0].outcome.hasPrefix("skipped"))
            #expect(Self.canLogIn(db, f.role, try Self.password(f.client, f.secretID, stage: "AWSCURRENT")))
            #expect(!Self.canLogIn(db, f.role, f.oldPassword))
        }
    }

    @Test func aSecondConcurrentRotationIsRefused() throws {
        try Self.withFixture { f, db, admin in
            let holder = try db.connect()
            defer { holder.close() }
            try holder.advisoryLock(RoleRotation.lockKey(f.role), wait: .seconds(5))
            let reference = try SecretReference.parse("aws-sm:\(f.secretID)#password", schemes: ["aws-sm"])
            let error = #expect(throws: AdvisoryLockTimeout.self) {
                try RoleRotation.rotate(role: f.role, secret: reference, client: f.client, admin: admin, login: Self.login(db, f.role),
                                        lockWait: .seconds(1), logger: TestCluster.logger)
            }
            #expect(error?.description.contains("nfldb.roles.rotate.\(f.role)") == true)
            #expect(try f.client.describeSecret(f.secretID).values.allSatisfy { !$0.contains("AWSPENDING") }, "a refused run must change nothing")
            #expect(Self.canLogIn(db, f.role, f.oldPassword))
        }
    }

    /// The executable end to end: `nfldb ping` with NFLDB_PASSWORD_REF=aws-sm:…, then `nfldb roles rotate`,
    /// then ping again with the rotated secret; no password in any output.
    @Test func cliPingWithPasswordRefAndRolesRotate() throws {
        try Self.withFixture { f, db, _ in
            let roleEnv = f.moto.environment(extra: [
                "NFLDB_DSN": db.cluster.dsn(database: db.name, user: f.role), "NFLDB_PASSWORD_REF": "aws-sm:\(f.secretID)#password",
            ])
            let ping = try CLIRunner.run(["ping"], environment: roleEnv)
            #expect(ping.status == 0, "\(ping.standardOutput)\(ping.standardError)")
            #expect(!(ping.standardOutput + ping.standardError).contains(f.oldPassword))

            let adminEnv = f.moto.environment(extra: ["NFLDB_DSN": db.cluster.dsn(database: db.name)])
            let rotate = try CLIRunner.run(["roles", "rotate", f.role, "--secret", "aws-sm:\(f.secretID)#password"], environment: adminEnv)
            #expect(rotate.status == 0, "\(rotate.standardOutput)\(rotate.standardError)")
            #expect(rotate.standardOutput.contains("createSecret: created AWSPENDING version"))
            #expect(rotate.standardOutput.contains("finishSecret: AWSCURRENT"))
            let newPassword = try Self.password(f.client, f.secretID, stage: "AWSCURRENT")
            #expect(!(rotate.standardOutput + rotate.standardError).contains(newPassword))
            #expect(!Self.canLogIn(db, f.role, f.oldPassword))

            let stagesNow = try f.client.describeSecret(f.secretID)
            #expect(Self.canLogIn(db, f.role, newPassword), "new AWSCURRENT password does not log in; rotate said: \(rotate.standardOutput) stages: \(stagesNow)")
            let again = try CLIRunner.run(["ping"], environment: roleEnv)
            #expect(again.status == 0, "ping with the rotated secret: \(again.standardError)")
            let old = try CLIRunner.run(["ping"], environment: roleEnv.merging(["NFLDB_PASSWORD_REF": "aws-sm:\(f.secretID)#password@AWSPREVIOUS"]) { $1 })
            #expect(old.status != 0, "the AWSPREVIOUS password still logs in")
            #expect(!(old.standardOutput + old.standardError).contains(f.oldPassword))

            let bad = try CLIRunner.run(["roles", "rotate", f.role, "--secret", "env:X"], environment: adminEnv)
            #expect(bad.status == 2)
            #expect(bad.standardError.contains("aws-sm"))
        }
    }
}
