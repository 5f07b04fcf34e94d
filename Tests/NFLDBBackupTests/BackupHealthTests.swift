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
    func backupsCheck(_ f: BackupFixture, stanza: String) throws -> CheckResult {
        let report = HealthRunner(settings: HealthSettings(values: ["backups.stanza": stanza]), probes: [BackupsProbe()], logger: f.logger)
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
        #expect(try backupsCheck(f, stanza: "nfldb").status == .ok)

        // A second stanza name in the same database: its verifies fail (it has no backups in the repo).
        var other = f.pgbackrest
        other.stanza = "nflbd"
        for _ in 0..<2 { #expect(try !f.verify(pg: other).passed) }
        let wrong = try backupsCheck(f, stanza: "nflbd")
        #expect(wrong.status == .critical, "\(wrong.message)")
        let ours = try backupsCheck(f, stanza: "nfldb")
        #expect(ours.status == .ok, "the other stanza's failures must not count for nfldb: \(ours.message)")

        // Two failed nightly verifies of our stanza (the scratch dir is in the way): CRITICAL, naming the check,
        // even though a successful verification is seconds old.
        let blocker = (f.root as NSString).appendingPathComponent("scratch-blocked")
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: true)
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
