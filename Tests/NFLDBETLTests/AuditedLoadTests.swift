import Foundation
import NFLDBAudit
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

/// Issue 13 acceptance: on an audited `nfl.games`, a load writes one audit row per row it really
/// changes and none for unchanged rows — in both audit modes (row triggers, statement triggers
/// with transition tables).
@Suite(.serialized) struct AuditedLoadTests {
    @Test(arguments: [AuditMode.row, AuditMode.statement])
    func changingOneScoreUpdatesOneRowAndWritesOneAuditRow(mode: AuditMode) throws {
        try ETLWorld.with { world in
            let admin = try world.db.connect()
            defer { admin.close() }
            let installed = try AuditInstaller(connection: admin, owner: world.prefix + "nfl_audit_owner", logger: TestCluster.logger)
                .install(tables: ["nfl.games"], mode: mode)
            #expect(installed.map(\.table) == ["nfl.games"] && installed.first?.mode == mode)
            func auditRows(_ operation: String) throws -> Int {
                try world.scalar("SELECT count(*) FROM audit.log WHERE table_schema = 'nfl' AND table_name = 'games' AND operation = \(operation)", as: Int.self)
            }

            // First load into the empty, audited table: one INSERT audit row per game.
            let first = try world.load(Slice.text)
            #expect(first.inserted == 842)
            #expect(try auditRows("INSERT") == 842)
            #expect(try auditRows("UPDATE") == 0)

            // A no-op re-load: no row version, no audit row.
            let before = try world.rowVersions()
            let noop = try world.load(Slice.text)
            #expect(noop.inserted == 0 && noop.updated == 0 && noop.unchanged == 842)
            #expect(try world.rowVersions() == before)
            #expect(try auditRows("INSERT") == 842)
            #expect(try auditRows("UPDATE") == 0)

            // One score changes (home_score 20 → 24, so result and total follow).
            let changed = Slice.text.replacingOccurrences(
                of: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,20,Home,-1,41,",
                with: "2023_01_DET_KC,2023,REG,1,2023-09-07,Thursday,20:20,DET,21,KC,24,Home,3,45,")
            #expect(changed != Slice.text)
            let third = try world.load(changed)
            #expect(third.inserted == 0 && third.updated == 1 && third.unchanged == 841)
            let after = try world.rowVersions()
            // Exactly one games row updated (n_tup_upd + 1), no insert or delete; other tables untouched.
            #expect(after["games"]![0] == before["games"]![0])
            #expect(after["games"]![1] == before["games"]![1] + 1, "\(before) → \(after)")
            #expect(after["games"]![3] == before["games"]![3])
            for table in ["teams", "stadiums", "weather", "odds_history"] {
                #expect(after[table] == before[table], "\(table): \(before[table] ?? []) → \(after[table] ?? [])")
            }
            // Exactly one audit row for it, naming the changed columns with their new values.
            #expect(try auditRows("UPDATE") == 1)
            #expect(try auditRows("INSERT") == 842)
            let audit = try admin.query("""
                SELECT row_key->>'game_id' AS game_id, changed::text AS changed, correlation_id,
                       (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(changed) AS k) AS columns
                FROM audit.log WHERE table_name = 'games' AND operation = 'UPDATE'
                """).rows
            #expect(audit.count == 1)
            #expect(audit.first?["game_id"] == "2023_01_DET_KC")
            #expect(audit.first?["columns"] == "home_score,result,total", "\(audit.first?["changed"] ?? "nil")")
            #expect(audit.first?["changed"] == #"{"total": 45, "result": 3, "home_score": 24}"#)
            #expect(audit.first?["correlation_id"] == "test-corr")

            // Loading the same changed file again: nothing more is written or audited.
            let again = try world.load(changed)
            #expect(again.updated == 0 && again.unchanged == 842)
            #expect(try auditRows("UPDATE") == 1)
        }
    }
}
