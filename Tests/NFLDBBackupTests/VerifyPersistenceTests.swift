import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox
import NFLDBTestSupport
import Testing

/// False alarms: what a restore legitimately changes must not fail every nightly verify.
@Suite("backup verify: unlogged tables and read-only databases are no false alarm", .serialized)
struct VerifyPersistenceTests {
    @Test("an UNLOGGED table (counted and checksummed) restores empty and a default_transaction_read_only database is checked: verify passes and says why")
    func unloggedAndReadOnly() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.sql("""
            CREATE UNLOGGED TABLE nfl.ucache (id int PRIMARY KEY, v text);
            INSERT INTO nfl.ucache SELECT g, 'v' || g FROM generate_series(1, 500) g;
            """)
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: ConnectionOptions.conninfo([
            ("host", f.cluster.socketDirectory), ("port", String(f.cluster.port)), ("user", "postgres"), ("dbname", "postgres")])), logger: f.logger)
        try admin.execute("CREATE DATABASE rodb")
        try admin.execute("ALTER DATABASE rodb SET default_transaction_read_only = on")
        admin.close()
        try f.initStanza()
        let db = try f.connect()
        _ = try BackupRunner(pgbackrest: f.pgbackrest, connection: db, tables: ManagedTables(reference: ["nfl.ucache"]), logger: f.logger).run(type: "full")
        db.close()

        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.renderText())")
        let counts = try #require(receipt.checks.first { $0.name == "row-counts" })
        #expect(counts.passed)
        #expect(counts.evidence.contains("nfl.ucache expected 0 (manifest 500)"), "\(counts.evidence)")
        let sums = try #require(receipt.checks.first { $0.name == "reference-checksums" })
        #expect(sums.passed)
        #expect(sums.evidence.contains("not compared (unlogged, restored empty): nfl.ucache"), "\(sums.evidence)")
        #expect(receipt.notes.contains { $0.contains("unlogged") && $0.contains("nfl.ucache") }, "\(receipt.notes)")
        let amcheck = try #require(receipt.checks.first { $0.name == "pg_amcheck" })
        #expect(amcheck.passed, "\(amcheck.evidence)")
    }
}

@Suite("backup verify --full: a backup listed in backup.info whose directory is gone", .serialized)
struct VerifyMissingBackupDirTests {
    @Test("pgBackRest 2.45 leaves it out of verify's result silently; verify --full fails naming it")
    func missingBackupDirectory() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        let old = try f.backup("full").label
        _ = try f.backup("full")
        let directory = "\(f.repoPath)/backup/nfldb/\(old)"
        #expect(FileManager.default.fileExists(atPath: directory))
        try FileManager.default.removeItem(atPath: directory)
        #expect(try f.pgbackrest.info().first?.backup.contains { $0.label == old } == true, "backup.info still lists \(old)")
        let receipt = try f.verify(full: true)
        #expect(!receipt.passed)
        let check = try #require(receipt.checks.first { $0.name == "pgbackrest-verify" }, "\(receipt.renderText())")
        #expect(!check.passed)
        #expect(check.evidence.contains("absent from pgbackrest verify's result") && check.evidence.contains(old), "\(check.evidence)")
    }
}
