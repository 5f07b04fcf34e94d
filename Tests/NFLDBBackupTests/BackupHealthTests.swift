import Foundation
import NFLDBBackup
import NFLDBCore
import NFLDBHealth
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// `health --check backups` against records real verifies wrote: the latest outcome counts, per stanza.
@Suite("health backups: the latest verification counts, per stanza", .serialized)
struct BackupHealthTests {
    func backupsCheck(_ f: BackupFixture, stanza: String, _ extra: [String: String] = [:]) throws -> CheckResult {
        let report = HealthRunner(settings: HealthSettings(values: ["backups.stanza": stanza].merging(extra) { $1 }), probes: [BackupsProbe()], logger: f.logger)
            .run([HealthTarget(options: ConnectionOptions(dsn: f.dsn))])
        return try #require(report.check("backups"))
    }

    @Test("two stanzas; failed verifies are CRITICAL naming the failed check until a later one passes; the other stanza's results do not count")
    func latestVerificationCounts() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        #expect(try f.verify().passed)
        let first = try backupsCheck(f, stanza: "nfldb")
        #expect(first.status == .ok, "\(first.message)")
        // When the full repository verification last passed (it runs every repo_verify_interval).
        #expect(first.message.contains("last full repository verification"), "\(first.message)")
        let stale = try backupsCheck(f, stanza: "nfldb", ["backups.repo_verify_warning": "0s"])
        #expect(stale.status == .warning && stale.hint?.contains("--full") == true, "\(stale.message)")

        // A second stanza name in the same database: its verifies fail (it has no backups in the repo).
        var other = f.pgbackrest
        other.stanza = "nflbd"
        for _ in 0..<2 { #expect(try !f.verify(pg: other).passed) }
        let wrong = try backupsCheck(f, stanza: "nflbd")
        #expect(wrong.status == .critical, "\(wrong.message)")
        let ours = try backupsCheck(f, stanza: "nfldb")
        #expect(ours.status == .ok, "the other stanza's failures must not count for nfldb: \(ours.message)")

        // Two failed nightly verifies of our stanza (a file where the scratch dir's parent should be): CRITICAL,
        // naming the check, even though a successful verification is seconds old.
        let file = (f.root as NSString).appendingPathComponent("not-a-dir")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let blocker = (file as NSString).appendingPathComponent("scratch-blocked")
        for _ in 0..<2 { #expect(try !f.verify(scratch: blocker).passed) }
        let failing = try backupsCheck(f, stanza: "nfldb")
        #expect(failing.status == .critical, "\(failing.message)")
        #expect(failing.message.contains("latest verification") && failing.message.contains("FAILED: failed check(s) scratch"), "\(failing.message)")
        #expect(failing.message.contains("last successful verification"), "\(failing.message)")

        // A later verify passes: OK again.
        #expect(try f.verify().passed)
        let again = try backupsCheck(f, stanza: "nfldb")
        #expect(again.status == .ok, "\(again.message)")
    }
}

@Suite("a missing WAL tail: verify and health archiving compare the repo with pg_stat_archiver", .serialized)
struct WALTailTests {
    @Test("the two newest archived segments removed from the repo: verify fails archive-tail naming the range, health archiving is CRITICAL")
    func missingTail() throws {
        let f = try BackupFixture()
        defer { f.close() }
        try f.initStanza()
        _ = try f.backup("full")
        let db = try f.connect()
        defer { db.close() }
        var switched: [String] = []
        for i in 0..<3 {
            try db.execute("INSERT INTO nfl.plays(game_id, yards) SELECT 1, \(i) FROM generate_series(1, 100)")
            let segment = try db.query("SELECT pg_walfile_name(pg_switch_wal())").scalar(String.self)
            switched.append(segment)
            let deadline = ContinuousClock.now + .seconds(30)
            while try db.query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").scalar(String.self) < segment,
                  ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        let last = try db.query("SELECT last_archived_wal FROM pg_stat_archiver").scalar(String.self)
        #expect(last == switched.last, "archiver at \(last), switched \(switched)")
        let healthy = try archivingCheck(f)
        #expect(healthy.status == .ok, "\(healthy.message)")
        #expect(healthy.message.contains("repo (stanza nfldb) holds up to \(last)"), "\(healthy.message)")

        // Remove the two newest segments from the repo's archive.
        let archive = "\(f.repoPath)/archive/nfldb"
        let files = (FileManager.default.enumerator(atPath: archive)?.allObjects as? [String] ?? [])
            .filter { ($0 as NSString).lastPathComponent.count > 24 && !$0.contains(".backup") && !$0.hasSuffix(".info") && !$0.hasSuffix(".copy") }
            .filter { WALName.segment(($0 as NSString).lastPathComponent) != nil }
            .sorted { ($0 as NSString).lastPathComponent < ($1 as NSString).lastPathComponent }
        let removed = Array(files.suffix(2))
        #expect(removed.map { String(($0 as NSString).lastPathComponent.prefix(24)) } == Array(switched.suffix(2)), "\(removed)")
        for file in removed { try FileManager.default.removeItem(atPath: "\(archive)/\(file)") }
        let expectedRange = "\(switched[1])-\(switched[2])"

        let receipt = try f.verify()
        #expect(!receipt.passed)
        let tail = try #require(receipt.checks.first { $0.name == "archive-tail" && !$0.passed }, "\(receipt.renderText())")
        #expect(tail.evidence.contains("missing from the repo: \(expectedRange)"), "\(tail.evidence)")
        #expect(tail.evidence.contains(switched[0]), "names the repo's newest segment: \(tail.evidence)")

        let broken = try archivingCheck(f)
        #expect(broken.status == .critical, "\(broken.message)")
        #expect(broken.message.contains("missing from the repo: \(expectedRange)"), "\(broken.message)")
        #expect(f.scratchLeftovers().isEmpty)
    }

    func archivingCheck(_ f: BackupFixture) throws -> CheckResult {
        var values = ["archiving.pgbackrest_config": f.configPath, "archiving.stanza": "nfldb"]
        if let user = f.pgbackrest.osUser { values["archiving.os_user"] = user }
        let report = HealthRunner(settings: HealthSettings(values: values), probes: [ArchivingProbe()], logger: f.logger)
            .run([HealthTarget(options: ConnectionOptions(dsn: f.dsn))])
        return try #require(report.check("archiving"))
    }
}
