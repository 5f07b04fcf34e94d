import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBTestSupport
import Synchronization
import Testing

/// Rows inserted and deleted in a managed table while `backup run` executes: verify accepts exactly
/// the range those writes allow, and still fails when rows are missing beyond it.
@Suite("backup run with the platform writing: write counters bound the row counts", .serialized)
struct ConcurrentWriteTests {
    /// Inserts 40 and deletes 10 rows of nfl.plays per round on its own connection until stopped.
    final class Writer: Sendable {
        let stop = Atomic<Bool>(false)
        let rounds = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)

        init(dsn: String) {
            Thread.detachNewThread { [self] in
                defer { done.signal() }
                do {
                    let db = try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
                    defer { db.close() }
                    while !stop.load(ordering: .relaxed) {
                        try db.execute("INSERT INTO nfl.plays(game_id, yards) SELECT 9, 9 FROM generate_series(1, 40)")
                        try db.execute("DELETE FROM nfl.plays WHERE id IN (SELECT id FROM nfl.plays WHERE game_id <> 9 ORDER BY id LIMIT 10)")
                        rounds.add(1, ordering: .relaxed)
                        Thread.sleep(forTimeInterval: 0.01)
                    }
                } catch {
                    failure.withLock { $0 = "\(error)" }
                }
            }
        }

        func finish() -> String? {
            stop.store(true, ordering: .relaxed)
            done.wait()
            return failure.withLock { $0 }
        }
    }

    @Test("inserts and deletes during backup run: verify passes within the recorded range; rows missing beyond it fail, naming the range")
    func writesDuringBackup() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let writer = Writer(dsn: f.dsn)
        while writer.rounds.load(ordering: .relaxed) < 3 { Thread.sleep(forTimeInterval: 0.01) }
        let report = try f.backup("diff")
        let writerError = writer.finish()
        #expect(writerError == nil, "\(writerError ?? "")")
        let db = try f.connect()
        defer { db.close() }
        let writesJSON = try db.query("SELECT writes::text FROM nfldb.backup_manifests WHERE token = \(report.token)").scalar(String.self)
        let writes = try JSONDecoder().decode([String: WriteCounts?].self, from: Data(writesJSON.utf8))
        let plays = try #require(writes["nfl.plays"] ?? nil, "\(writesJSON)")
        #expect(plays.inserted > 0 && plays.deleted > 0, "the writer ran during the backup: \(writesJSON)")
        #expect(writes["nfl.games"] == .some(WriteCounts(inserted: 0, deleted: 0)), "an untouched table stays exact: \(writesJSON)")

        let receipt = try f.verify()
        #expect(receipt.passed, "\(receipt.renderText())")
        let counts = try #require(receipt.checks.first { $0.name == "row-counts" })
        #expect(counts.evidence.contains("nfl.plays expected") && counts.evidence.contains("inserted"), "\(counts.evidence)")

        // 50 rows more than the manifest plus every insert can explain: the copy is missing rows.
        let expected = report.counts["nfl.plays"] ?? 0
        try db.execute("""
            UPDATE nfldb.backup_manifests SET counts = jsonb_set(counts, '{nfl.plays}', to_jsonb(\(Int(expected + plays.inserted + 50))::bigint))
            WHERE token = \(report.token)
            """)
        let lost = try f.verify()
        let failed = try #require(lost.checks.first { $0.name == "row-counts" && !$0.passed }, "\(lost.renderText())")
        let low = expected + plays.inserted + 50 - plays.deleted
        #expect(failed.evidence.contains("nfl.plays expected \(low)–\(low + plays.deleted + plays.inserted)"), "\(failed.evidence)")
        #expect(!failed.evidence.contains("nfl.games"), "\(failed.evidence)")
        #expect(f.scratchLeftovers().isEmpty)
    }
}

@Suite("the backup catalog installs once when runs start together")
struct CatalogInstallRaceTests {
    @Test("eight connections install the catalog at once on a fresh database (two first `backup run`s, or a run and a verify): all succeed, no duplicate-key error")
    func concurrentInstall() throws {
        try TestCluster.withDatabase(prefix: "catalog_race") { db in
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                do {
                    let connection = try PostgresConnection.connect(ConnectionOptions(dsn: db.dsn), logger: TestCluster.logger)
                    defer { connection.close() }
                    try BackupCatalog.install(connection)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
            let connection = try db.connect()
            defer { connection.close() }
            #expect(try connection.query("SELECT to_regclass('nfldb.backup_runs') IS NOT NULL AND to_regclass('nfldb.backup_canaries') IS NOT NULL").scalar(Bool.self))
        }
    }
}
