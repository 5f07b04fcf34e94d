import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// Operator mistakes are usage errors (exit 2) found before anything runs: no restore, no row in
/// nfldb.backup_verifications (health stays OK), valid JSON with --format json.
@Suite("backup verify: operator mistakes are refused before anything runs or is recorded", .serialized)
struct VerifyUsageTests {
    static func verifications(_ f: BackupFixture) throws -> Int {
        let db = try f.connect()
        defer { db.close() }
        return try db.query("SELECT count(*) FROM nfldb.backup_verifications").scalar(Int.self)
    }

    @Test("scratch inside the primary's data dir or tablespace, existing/relative/comma scratch, bad port, unknown --set, bad or early --target-time, missing config: exit 2, nothing recorded")
    func refusedBeforeAnything() throws {
        let f = try BackupFixture()
        defer { f.close() }
        let tablespace = (f.root as NSString).appendingPathComponent("ts-live")
        try FileManager.default.createDirectory(atPath: tablespace, withIntermediateDirectories: true)
        try f.cluster.giveToOSUser(tablespace)
        try f.sql("CREATE TABLESPACE tslive LOCATION '\(tablespace)'")
        try f.initStanza()
        let label = try f.backup("full").label
        let db = try f.connect()
        try BackupCatalog.install(db)
        db.close()
        let before = try Self.verifications(f)
        let existing = (f.root as NSString).appendingPathComponent("exists")
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
        let missingConfig = PgBackRest(configPath: (f.root as NSString).appendingPathComponent("no-such/pgbackrest.conf"), stanza: "nfldb",
                                       osUser: f.pgbackrest.osUser)
        let inData = (f.cluster.dataDirectory as NSString).appendingPathComponent("nfldb-scratch")
        let inTablespace = (tablespace as NSString).appendingPathComponent("scratch")
        let cases: [(String, () throws -> VerificationReceipt, String)] = [
            ("scratch in PGDATA", { try f.verify(scratch: inData) }, "lies inside"),
            ("scratch in a tablespace", { try f.verify(scratch: inTablespace) }, "tablespace"),
            ("existing scratch", { try f.verify(scratch: existing) }, "already exists"),
            ("relative scratch", { try f.verify(scratch: "relative/scratch") }, "relative path"),
            ("comma in scratch", { try f.verify(scratch: (f.root as NSString).appendingPathComponent("a,b")) }, "comma"),
            ("port", { try f.verify(port: 99999) }, "--port 99999"),
            ("unknown set", { try f.verify(set: "20000101-000000F") }, "no backup labelled 20000101-000000F"),
            ("date only", { try f.verify(targetTime: "1999-01-01") }, "not a time pgBackRest can recover to"),
            ("garbage", { try f.verify(targetTime: "yesterday-ish") }, "not a time pgBackRest can recover to"),
            ("before the first backup", { try f.verify(targetTime: "1999-01-01 00:00:00+00") }, "before the first backup"),
            ("in the future", { try f.verify(targetTime: "2099-01-01 00:00:00+00") }, "is in the future"),
            ("missing config", { try f.verify(pg: missingConfig) }, "does not exist"),
        ]
        for (name, run, message) in cases {
            let error = #expect(throws: BackupError.self, "\(name)") { _ = try run() }
            #expect(error?.exitStatus == .usage, "\(name): \(String(describing: error))")
            #expect(error?.diagnostic.summary.contains(message) == true, "\(name): \(String(describing: error?.diagnostic))")
            #expect(error?.diagnostic.hint?.isEmpty == false, "\(name) has a hint")
            if name == "unknown set" { #expect(error?.diagnostic.detail?.contains(label) == true, "lists the labels") }
        }
        #expect(!FileManager.default.fileExists(atPath: inData))
        #expect(!FileManager.default.fileExists(atPath: inTablespace))
        #expect(try Self.verifications(f) == before, "a refused request records no verification")

        // The command: exit 2 and valid JSON with --format json.
        let result = try CLIRunner.run(
            ["backup", "verify", "--dsn", f.dsn, "--scratch", inData, "--format", "json"],
            environment: ["NFLDB_BACKUP_CONFIG": f.configPath, "NFLDB_BACKUP_STANZA": f.pgbackrest.stanza], workingDirectory: f.root)
        #expect(result.status == 2, "\(result.standardOutput) \(result.standardError)")
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: String]
        #expect(object?["status"] == "refused", "\(result.standardOutput)")
        #expect(object?["error"]?.contains("lies inside") == true)
        let relative = try CLIRunner.run(
            ["backup", "verify", "--dsn", f.dsn, "--scratch", "rel", "--target-time", "garbage"],
            environment: ["NFLDB_BACKUP_CONFIG": f.configPath, "NFLDB_BACKUP_STANZA": f.pgbackrest.stanza], workingDirectory: f.root)
        #expect(relative.status == 2, "\(relative.standardOutput) \(relative.standardError)")
        #expect(try Self.verifications(f) == before)
    }

    @Test("a scratch (or restore --to) path with a single quote is refused with exit 2: pgBackRest writes it unescaped into restore_command")
    func quoteInScratch() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let scratch = (f.root as NSString).appendingPathComponent("it's-scratch")
        let error = #expect(throws: BackupError.self) { try f.verify(scratch: scratch) }
        #expect(error?.exitStatus == .usage)
        #expect(error?.diagnostic.summary.contains("single quote") == true, "\(String(describing: error?.diagnostic))")
        #expect(!FileManager.default.fileExists(atPath: scratch))
        let target = (f.root as NSString).appendingPathComponent("it's-restored")
        let refused = #expect(throws: BackupError.self) { try Restorer(pgbackrest: f.pgbackrest, logger: f.logger).restore(.init(target: target)) }
        #expect(refused?.exitStatus == .usage)
        #expect(!FileManager.default.fileExists(atPath: target))
        // restore --target-time in a form pgBackRest would not parse: refused before the directory exists.
        let dated = (f.root as NSString).appendingPathComponent("dated")
        let badTime = #expect(throws: BackupError.self) {
            try Restorer(pgbackrest: f.pgbackrest, logger: f.logger).restore(.init(target: dated, targetTime: "2030-01-01"))
        }
        #expect(badTime?.exitStatus == .usage)
        #expect(!FileManager.default.fileExists(atPath: dated))
    }
}
