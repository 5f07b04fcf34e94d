import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("sequences: judged against the narrowest column they feed")
struct SequencesProbeTests {
    @Test("an int column defaulting to nextval of an unowned bigint sequence at 2.14e9 is CRITICAL (inserts already fail), not 0 %")
    func unownedSequenceFeedsNarrowerColumn() throws {
        try TestCluster.withDatabase(prefix: "h_seq_fed") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE SEQUENCE shared_ids AS bigint;
                CREATE TABLE events (id int NOT NULL DEFAULT nextval('shared_ids'), note text);
                """)
            try admin.execute("SELECT setval('shared_ids', 2140000000)")
            let result = try runCheck("sequences", dsn: db.dsn)
            #expect(result.status == .critical, "\(result.message)")
            #expect(abs((result.value ?? 0) - 99.65) < 0.01, "\(result.value ?? -1)")
            #expect(result.message.contains("public.shared_ids"))
            #expect(result.message.contains("feeds public.events.id, integer"), "\(result.message)")
            #expect(result.hint?.contains("ALTER COLUMN") == true)

            // The outage the check predicts: the next 7,483,648 inserts work, then every insert fails.
            try admin.execute("SELECT setval('shared_ids', 2147483647)")
            let overflow = #expect(throws: PostgresError.self) { try admin.execute("INSERT INTO events (note) VALUES ('x')") }
            #expect(overflow?.sqlState == "22003", "integer out of range: \(String(describing: overflow))")
        }
    }

    @Test("a sequence owned by a bigint column but also the default of a smallint column in another table is judged by the smallint")
    func narrowestOfSeveral() throws {
        try TestCluster.withDatabase(prefix: "h_seq_many") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE plays (id bigserial PRIMARY KEY);
                CREATE SCHEMA legacy;
                CREATE DOMAIN legacy.small_id AS smallint;
                CREATE TABLE legacy.drives (id legacy.small_id DEFAULT nextval('plays_id_seq'));
                CREATE TABLE wide (id numeric DEFAULT nextval('plays_id_seq'));
                """)
            try admin.execute("SELECT setval('plays_id_seq', 30000)")
            let result = try runCheck("sequences", dsn: db.dsn)
            #expect(result.status == .critical, "\(result.message)")
            #expect(abs((result.value ?? 0) - 91.56) < 0.01, "\(result.value ?? -1)")
            #expect(result.message.contains("feeds legacy.drives.id, smallint"), "\(result.message)")
            let detail = try #require(result.details.first)
            #expect(detail["fed_columns"] == .int(2), "bigint plays.id and the smallint domain column; numeric has no limit")

            try admin.execute("ALTER TABLE legacy.drives ALTER COLUMN id DROP DEFAULT")
            let owned = try runCheck("sequences", dsn: db.dsn)
            #expect(owned.status == .ok, "only the bigint owner is left: \(owned.message)")
            #expect((owned.value ?? 100) < 0.01)
        }
    }

    @Test("a sequence that feeds no column is judged against its own maximum")
    func noColumn() throws {
        try TestCluster.withDatabase(prefix: "h_seq_none") { db in
            let admin = try db.connect()
            defer { admin.close() }
            try admin.execute("CREATE SEQUENCE ticket_numbers AS integer MAXVALUE 1000")
            try admin.execute("SELECT setval('ticket_numbers', 800)")
            let result = try runCheck("sequences", dsn: db.dsn)
            #expect(result.status == .warning, "\(result.message)")
            #expect(result.value == 80)
            #expect(result.details.first?["fed_columns"] == .int(0))
        }
    }
}
