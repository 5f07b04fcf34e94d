import Foundation
import Logging
import NFLDBPostgres
import Testing

/// The repository checkout the tests run from (this file is Sources/NFLDBTestSupport/…).
public enum TestPaths {
    public static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
}

/// Roles are cluster-wide and tests run in parallel: each test names its roles with a unique
/// prefix and drops only those afterwards.
public enum TestRoles {
    /// `letter` + 5 random letters + 2 digits + `_`, e.g. `rabcde12_`.
    public static func uniquePrefix(_ letter: String) -> String {
        letter + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(5)) + "\(Int.random(in: 10...99))_"
    }

    /// Drops every role whose name starts with `prefix`.
    public static func drop(prefix: String) {
        guard let cluster = try? TestCluster.shared(),
            let admin = try? PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger)
        else { return }
        defer { admin.close() }
        let names = (try? admin.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, \(prefix)) ORDER BY rolname DESC").rows
            .compactMap { $0["rolname"] }) ?? []
        for name in names { _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: name)") }
    }

    /// The `password_env` variables of the shipped spec's login roles (`roles/platform.yaml`).
    public static let passwordVariables = [
        "NFLDB_OWNER_PASSWORD", "NFLDB_ANALYST_PASSWORD", "NFLDB_LOADER_PASSWORD", "NFLDB_DBA_PASSWORD", "NFLDB_MONITOR_PASSWORD",
    ]

    /// A random password for each of ``passwordVariables``.
    public static func randomPasswords() -> [String: String] {
        Dictionary(uniqueKeysWithValues: passwordVariables.map { ($0, "pw-\(UUID().uuidString.prefix(13))") })
    }

    /// The `password_env` variable of a role of the shipped spec (`nfl_etl` → `NFLDB_ETL_PASSWORD`).
    public static func passwordVariable(_ role: String) -> String {
        "NFLDB_\(role.replacingOccurrences(of: "nfl_", with: "").uppercased())_PASSWORD"
    }

    /// Connects over TCP (SCRAM) to `db` as `user`.
    public static func login(_ db: TestDatabase, user: String, password: String, application: String = "nfldb-test") throws -> PostgresConnection {
        try PostgresConnection.connect(
            ConnectionOptions(dsn: db.cluster.dsn(database: db.name, user: user, password: password), applicationName: application),
            logger: TestCluster.logger)
    }
}

/// Rows of the platform schema (`migrations/`) that tests need.
public enum PlatformRows {
    /// Three teams and a stadium: what every game row references.
    public static let referenceData = """
        INSERT INTO nfl.teams (team_abbr, team_name) VALUES ('KC', 'Chiefs'), ('BAL', 'Ravens'), ('DET', 'Lions');
        INSERT INTO nfl.stadiums (stadium_id, name) VALUES ('KAN00', 'GEHA Field at Arrowhead Stadium');
        """

    /// An INSERT of game `id` (`2024_01_BAL_KC`: season, week, away, home).
    public static func gameInsert(_ id: String = "2024_01_BAL_KC") -> String {
        let parts = id.split(separator: "_")
        return """
            INSERT INTO nfl.games (game_id, season, game_type, week, gameday, weekday, gametime, away_team, home_team, location,
                old_game_id, pfr, away_rest, home_rest, div_game, away_coach, home_coach, stadium_id, stadium)
            VALUES ('\(id)', \(parts[0]), 'REG', \(Int(parts[1]) ?? 1), '2024-09-05', 'Thursday', '20:20', '\(parts[2])', '\(parts[3])', 'Home',
                '2024090500', '202409050kan', 7, 7, false, 'John Harbaugh', 'Andy Reid', 'KAN00', 'GEHA Field')
            """
    }
}

/// Expects `sql` to fail with SQLSTATE `state` (default 42501, insufficient privilege).
public func expectRefused(
    _ connection: PostgresConnection, _ sql: String, state: String = SQLState.insufficientPrivilege,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    do {
        try connection.runScript(unsafeSQL: sql)
        Issue.record("expected SQLSTATE \(state), but it succeeded: \(sql)", sourceLocation: sourceLocation)
    } catch let error as PostgresError {
        #expect(error.sqlState == state, "\(sql): \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
