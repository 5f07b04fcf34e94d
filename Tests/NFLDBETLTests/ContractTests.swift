import Foundation
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

enum Slice {
    /// The shared slice: `$NFLDB_ETL_SLICE`, else `<repo>/../shared/data/` (where CI puts `shared/`
    /// beside the clone), else `/work/shared/data/`.
    static let path: String = {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let beside = repo.appendingPathComponent("../shared/data/nflverse_games_2023_2025.csv").standardizedFileURL.path
        let candidates = [ProcessInfo.processInfo.environment["NFLDB_ETL_SLICE"], beside, "/work/shared/data/nflverse_games_2023_2025.csv"]
            .compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? beside
    }()
    static var text: String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            Issue.record("cannot read the shared nflverse slice at \(path) (set NFLDB_ETL_SLICE): \(error)")
            return ""
        }
    }
    static var lines: [String] { text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
    /// 2025-09-01: the snapshot's unplayed games are still in the future.
    static let snapshotDate = Date(timeIntervalSince1970: 1_756_684_800)
    static func validate(_ text: String, now: Date = snapshotDate) throws -> LoadResult {
        try GamesValidation.validate(DataSource(Data(text.utf8), name: "test.csv"), now: now)
    }
    /// The slice with one field of one data row replaced.
    static func replacing(row: Int, column: String, with value: String) -> String {
        var lines = self.lines
        let header = lines[0].split(separator: ",").map(String.init)
        var fields = lines[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        fields[header.firstIndex(of: column)!] = value
        lines[row] = fields.joined(separator: ",")
        return lines.joined(separator: "\n")
    }
}

@Suite struct ContractTests {
    @Test func sharedSliceIsValid() throws {
        let result = try Slice.validate(Slice.text)
        #expect(result.rowsRead == 842)
        #expect(result.rejected == 0, "\(result.failures.prefix(5))")
        #expect(result.status == "valid")
        #expect(result.metrics.nullCounts["away_score"] == 65)
        #expect(result.metrics.nullCounts["temp"] == 367)
        #expect(result.metrics.warningRows == 0)
    }

    @Test func unplayedGamesInThePastAreWarningsNotRejects() throws {
        let later = Date(timeIntervalSince1970: 1_800_000_000) // 2027
        let result = try Slice.validate(Slice.text, now: later)
        #expect(result.rejected == 0)
        #expect(result.metrics.warningRows == 65)
    }

    @Test func everyFailureIsCollected() throws {
        var text = Slice.replacing(row: 1, column: "week", with: "x1")           // dtype
        text = text.replacingOccurrences(of: "2023_01_CAR_ATL,2023,REG,1", with: "2023_01_CAR_ATL,2023,REG,25") // range + id mismatch
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var mutated = lines
        mutated[3] = mutated[3].replacingOccurrences(of: ",Home,", with: ",Away,")                          // isin
        mutated[4] = lines[5]                                                                                   // duplicate game_id
        let result = try Slice.validate(mutated.joined(separator: "\n"))
        let checks = Set(result.failures.map { "\($0.column ?? "")|\($0.check)" })
        #expect(checks.contains("week|dtype('smallint')"))
        #expect(checks.contains("week|in_range(1, 22)"))
        #expect(checks.contains("location|isin([Home, Neutral])"))
        #expect(checks.contains("game_id|field_uniqueness"))
        // week 25 parsed, so the row checks still see it: the id no longer matches the week either.
        #expect(result.failures.contains { $0.row == 2 && $0.check == "game_id_matches_season_week_teams" })
        #expect(result.rejected == 5)  // rows 1, 2, 3 and both members of the duplicate
        #expect(result.metrics.duplicateKeys == 1)
    }

    @Test func temperatureAndWindUseExplicitUnits() throws {
        // -4 °F = -20 °C is real (2023 WC MIA at KC); -31 °F = -35 °C still passes; -32 °F does not.
        #expect(try Slice.validate(Slice.replacing(row: 1, column: "temp", with: "-31")).rejected == 0)
        let cold = try Slice.validate(Slice.replacing(row: 1, column: "temp", with: "-32"))
        #expect(cold.failures.first?.check == "in_range(-35 °C, 50 °C) after °F→°C")
        #expect(try Slice.validate(Slice.replacing(row: 1, column: "wind", with: "62")).rejected == 0)   // 99.8 km/h
        #expect(try Slice.validate(Slice.replacing(row: 1, column: "wind", with: "63")).rejected == 1)   // 101.4 km/h
    }

    @Test func olderSeasonsShapeIsAccepted() throws {
        // A verbatim 1999 row of nflverse's games.csv: no kickoff time, no moneylines or odds, STL.
        let header = Slice.lines[0]
        let row = "1999_01_BAL_STL,1999,REG,1,1999-09-12,Sunday,,BAL,10,STL,27,Home,17,37,0,1999091201,589,,199909120ram,,190912014,,7,7,,,0,,,39,,,0,dome,astroturf,,,00-0011434,00-0017200,Scott Mitchell,Kurt Waner,Brian Billick,Dick Vermeil,Tom White,STL00,TWA Dome"
        let result = try Slice.validate(header + "\n" + row + "\n")
        #expect(result.rejected == 0, "\(result.failures)")
    }

    @Test func missingAndExtraColumns() throws {
        let lines = Slice.lines
        let dropped = lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).dropLast().joined(separator: ",") }
        #expect(throws: ETLInputError.self) { try Slice.validate(dropped.prefix(3).joined(separator: "\n")) }
        do {
            _ = try Slice.validate(dropped.prefix(3).joined(separator: "\n"))
        } catch let error as ETLInputError {
            #expect(error.summary.contains("required column stadium missing"))
        }
        let extra = lines.prefix(4).enumerated().map { $0.offset == 0 ? $0.element + ",bonus" : $0.element + ",1" }
        let result = try Slice.validate(extra.joined(separator: "\n") + "\n")
        #expect(result.metrics.extraColumns == ["bonus"])
        #expect(result.rejected == 0)
        // Column order does not matter: header mapping is by name.
        let swapped = lines.prefix(4).map { line -> String in
            var f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            f.swapAt(0, 1)
            return f.joined(separator: ",")
        }
        #expect(try Slice.validate(swapped.joined(separator: "\n") + "\n").rejected == 0)
    }

    @Test func truncatedFileIsAFileError() throws {
        let text = Slice.text
        let cut = String(text.prefix(text.count / 2))
        #expect(throws: ETLInputError.self) { try Slice.validate(cut) }
    }

    /// `etl validate` of a file cut inside its last field: the row count is right, the value is
    /// short; the missing final line break makes it a file error.
    @Test func missingFinalLineBreakIsAFileError() throws {
        let cut = String(Slice.text.utf8.dropLast(8))!
        do {
            let result = try Slice.validate(cut)
            Issue.record("validate accepted a cut file: \(result.status)")
        } catch let error as ETLInputError {
            #expect(error.summary.contains("ends without a line break after row 842 (line 843): it looks truncated"), "\(error.summary)")
            #expect(error.hint.contains("add the final newline"))
        }
        #expect(throws: ETLInputError.self) { try Slice.validate(String(Slice.text.dropLast())) }
        #expect(throws: ETLInputError.self) { try Slice.validate(Slice.lines[0]) }
        #expect(try Slice.validate(Slice.text.replacingOccurrences(of: "\n", with: "\r\n")).rejected == 0)
    }

    @Test func patternMatcher() {
        let p = Pattern("^[0-9]{4}_[0-9]{2}_[A-Z]{2,3}_[A-Z]{2,3}$")
        #expect(p.matches("2023_01_DET_KC"))
        #expect(!p.matches("2023_1_DET_KC"))
        #expect(!p.matches("2023_01_DET_KCX1"))
        #expect(Pattern("^[a-z_]+$").matches("a_turf"))
        #expect(!Pattern("^[a-z_]+$").matches(""))
        #expect(Pattern("^00-[0-9]{7}$").matches("00-0033106"))
    }
}
