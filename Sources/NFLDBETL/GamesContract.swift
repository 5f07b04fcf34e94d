import Foundation

/// The data contract of `nfl.games`, read as a spec: one line per column of nflverse's
/// `games.csv` (in the table's column order), then the checks across columns. It mirrors the
/// table's constraints (migrations 0002 and 0009) so a valid row never fails in the database, and
/// it is wide enough for every season nflverse publishes (1999 onward):
///
/// - `gametime` is nullable: the 1999–2000s seasons have no kickoff times (migration 0009).
/// - Teams are checked by format, not against today's 32 clubs: older seasons use STL, SD, OAK,
///   and a future relocation must not reject real rows. New abbreviations are reported (info)
///   and upserted into `nfl.teams`.
/// - Moneylines, spread/total odds, roof, surface, temp, wind, pff, ftn, gsis, nfl_detail_id,
///   QBs and referee may be empty (older seasons, unplayed games, domes).
/// - Temperature and wind arrive in °F and mph; the ranges are stated in °C and km/h and the
///   conversion is explicit. The seed report's draft range −20..40 °C was too narrow: the slice
///   itself reaches −4 °F = −20.0 °C (2023 WC MIA at KC) and colder playoff games exist since 1999
///   (−6 °F ≈ −21 °C at Minnesota in January 2016), so the contract uses −35..50 °C. The wind
///   draft 0..100 km/h holds: the slice's maximum is 44 mph ≈ 70.8 km/h.
/// - A game without scores whose date has passed is a *warning*, not a reject: nflverse snapshots
///   lag and postponed games exist; rejecting would drop real schedule rows.
public enum GamesContract {
    static let f2c: @Sendable (Double) -> Double = { ($0 - 32) * 5 / 9 }
    static let mph2kmh: @Sendable (Double) -> Double = { $0 * 1.609344 }

    static let americanOdds = ValueCheck("american_odds(abs >= 100)") { value in
        guard let v = value.int else { return true }
        return abs(v) >= 100
    }
    static let halfPoints = ValueCheck("half_points") { value in
        guard let v = value.number else { return true }
        return (v * 2).rounded() == v * 2
    }
    static let positive = ValueCheck.inRange(1, 2_147_483_647)

    public static let contract = DataContract(target: "nfl.games", columns: columns, rowChecks: rowChecks)

    /// Contract positions of the columns the row checks read, resolved once by name (a row check
    /// runs per row; hashing a column name per access was a measurable share of validation).
    enum Column {
        static func at(_ name: String) -> Int { columns.firstIndex { $0.name == name }! }
        static let gameID = at("game_id"), season = at("season"), gameType = at("game_type"), week = at("week")
        static let gameday = at("gameday"), weekday = at("weekday"), awayTeam = at("away_team"), homeTeam = at("home_team")
        static let awayScore = at("away_score"), homeScore = at("home_score"), result = at("result"), total = at("total")
        static let overtime = at("overtime"), awayMoneyline = at("away_moneyline"), homeMoneyline = at("home_moneyline")
        static let awaySpreadOdds = at("away_spread_odds"), homeSpreadOdds = at("home_spread_odds")
        static let underOdds = at("under_odds"), overOdds = at("over_odds")
        static let stadiumID = at("stadium_id"), stadium = at("stadium"), temp = at("temp"), wind = at("wind")
        static let spreadLine = at("spread_line"), totalLine = at("total_line")
        static let awayQBID = at("away_qb_id"), homeQBID = at("home_qb_id"), awayQBName = at("away_qb_name"), homeQBName = at("home_qb_name")
    }

    static let columns: [ColumnSpec] = [
            ColumnSpec("game_id", .text, nullable: false, unique: true, checks: [.matches("^[0-9]{4}_[0-9]{2}_[A-Z]{2,3}_[A-Z]{2,3}$")]),
            ColumnSpec("season", .smallint, nullable: false, checks: [.inRange(1999, 2100)]),
            ColumnSpec("game_type", .text, nullable: false, checks: [.isIn(["REG", "WC", "DIV", "CON", "SB"])]),
            ColumnSpec("week", .smallint, nullable: false, checks: [.inRange(1, 22)]),
            ColumnSpec("gameday", .date, nullable: false),
            ColumnSpec("weekday", .text, nullable: false, checks: [.isIn(["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"])]),
            ColumnSpec("gametime", .time),
            ColumnSpec("away_team", .text, nullable: false, checks: [.matches("^[A-Z]{2,3}$")]),
            ColumnSpec("away_score", .smallint, checks: [.inRange(0, 200)]),
            ColumnSpec("home_team", .text, nullable: false, checks: [.matches("^[A-Z]{2,3}$")]),
            ColumnSpec("home_score", .smallint, checks: [.inRange(0, 200)]),
            ColumnSpec("location", .text, nullable: false, checks: [.isIn(["Home", "Neutral"])]),
            ColumnSpec("result", .smallint),
            ColumnSpec("total", .smallint),
            ColumnSpec("overtime", .boolean01),
            ColumnSpec("old_game_id", .text, nullable: false, checks: [.matches("^[0-9]{10}$")]),
            ColumnSpec("gsis", .integer, checks: [positive]),
            ColumnSpec("nfl_detail_id", .text),
            ColumnSpec("pfr", .text, nullable: false, checks: [.matches("^[0-9]{9}[a-z]{3}$")]),
            ColumnSpec("pff", .integer, checks: [positive]),
            ColumnSpec("espn", .integer, checks: [positive]),
            ColumnSpec("ftn", .integer, checks: [positive]),
            ColumnSpec("away_rest", .smallint, nullable: false, checks: [.inRange(0, 365)]),
            ColumnSpec("home_rest", .smallint, nullable: false, checks: [.inRange(0, 365)]),
            ColumnSpec("away_moneyline", .integer, checks: [americanOdds]),
            ColumnSpec("home_moneyline", .integer, checks: [americanOdds]),
            ColumnSpec("spread_line", .numeric(4, 1), checks: [halfPoints]),
            ColumnSpec("away_spread_odds", .integer, checks: [americanOdds]),
            ColumnSpec("home_spread_odds", .integer, checks: [americanOdds]),
            ColumnSpec("total_line", .numeric(4, 1), checks: [.inRange(0.5, 999), halfPoints]),
            ColumnSpec("under_odds", .integer, checks: [americanOdds]),
            ColumnSpec("over_odds", .integer, checks: [americanOdds]),
            ColumnSpec("div_game", .boolean01, nullable: false),
            ColumnSpec("roof", .text, checks: [.isIn(["outdoors", "dome", "closed", "open"])]),
            ColumnSpec("surface", .text, checks: [.matches("^[a-z_]+$")]),
            ColumnSpec("temp", .smallint, checks: [.inRange(-35, 50, unit: "°C", from: "°F", convert: f2c)]),
            ColumnSpec("wind", .smallint, checks: [.inRange(0, 100, unit: "km/h", from: "mph", convert: mph2kmh)]),
            ColumnSpec("away_qb_id", .text, checks: [.matches("^00-[0-9]{7}$")]),
            ColumnSpec("home_qb_id", .text, checks: [.matches("^00-[0-9]{7}$")]),
            ColumnSpec("away_qb_name", .text),
            ColumnSpec("home_qb_name", .text),
            ColumnSpec("away_coach", .text, nullable: false),
            ColumnSpec("home_coach", .text, nullable: false),
            ColumnSpec("referee", .text),
            ColumnSpec("stadium_id", .text, nullable: false, checks: [.matches("^[A-Z]{3}[0-9]{2}$")]),
            ColumnSpec("stadium", .text, nullable: false),
        ]

    typealias C = Column
    static let rowChecks: [RowCheck] = [
            RowCheck("game_id_matches_season_week_teams", columns: ["game_id", "season", "week", "away_team", "home_team"]) { row in
                guard let id = row[C.gameID].text, let season = row[C.season].int, let week = row[C.week].int,
                      let away = row[C.awayTeam].text, let home = row[C.homeTeam].text else { return true }
                return gameIDMatches(id, season: season, week: week, away: away, home: home)
            },
            RowCheck("teams_differ", columns: ["away_team", "home_team"]) { row in
                row[C.awayTeam] != row[C.homeTeam]
            },
            RowCheck("week_matches_game_type", columns: ["game_type", "week"]) { row in
                guard let type = row[C.gameType].text, let week = row[C.week].int else { return true }
                return type == "REG" ? (1...18).contains(week) : (18...22).contains(week)
            },
            RowCheck("gameday_in_season(Aug 1 .. Mar 1)", columns: ["gameday", "season"]) { row in
                guard case .date(let y, let m, _) = row[C.gameday], let season = row[C.season].int else { return true }
                return (y == season && m >= 8) || (y == season + 1 && m < 3)
            },
            RowCheck("weekday_matches_gameday", columns: ["weekday", "gameday"]) { row in
                guard case .date(let y, let m, let d) = row[C.gameday], let weekday = row[C.weekday].text else { return true }
                return weekday == weekdayName(year: y, month: m, day: d)
            },
            RowCheck("outcome_all_or_none(away_score, home_score, result, total, overtime)",
                     columns: ["away_score", "home_score", "result", "total", "overtime"]) { row in
                var nulls = 0
                for c in [C.awayScore, C.homeScore, C.result, C.total, C.overtime] where row[c].isNull { nulls += 1 }
                return nulls == 0 || nulls == 5
            },
            RowCheck("result = home_score - away_score", columns: ["result", "home_score", "away_score"]) { row in
                guard let r = row[C.result].int, let h = row[C.homeScore].int, let a = row[C.awayScore].int else { return true }
                return r == h - a
            },
            RowCheck("total = home_score + away_score", columns: ["total", "home_score", "away_score"]) { row in
                guard let t = row[C.total].int, let h = row[C.homeScore].int, let a = row[C.awayScore].int else { return true }
                return t == h + a
            },
            RowCheck("moneylines_paired", columns: ["away_moneyline", "home_moneyline"]) { $0[C.awayMoneyline].isNull == $0[C.homeMoneyline].isNull },
            RowCheck("spread_odds_paired", columns: ["away_spread_odds", "home_spread_odds"]) { $0[C.awaySpreadOdds].isNull == $0[C.homeSpreadOdds].isNull },
            RowCheck("total_odds_paired", columns: ["under_odds", "over_odds"]) { $0[C.underOdds].isNull == $0[C.overOdds].isNull },
            RowCheck("away_qb_id_and_name_paired", columns: ["away_qb_id", "away_qb_name"]) { $0[C.awayQBID].isNull == $0[C.awayQBName].isNull },
            RowCheck("home_qb_id_and_name_paired", columns: ["home_qb_id", "home_qb_name"]) { $0[C.homeQBID].isNull == $0[C.homeQBName].isNull },
        ]

    /// `id == "\(season)_\(week, 2 digits)_\(away)_\(home)"` without building the string.
    static func gameIDMatches(_ id: String, season: Int, week: Int, away: String, home: String) -> Bool {
        guard (0...9999).contains(season), (0...99).contains(week) else { return false }
        var id = id, away = away, home = home
        return id.withUTF8 { b in
            away.withUTF8 { a in
                home.withUTF8 { h in
                    guard b.count == 9 + a.count + h.count,
                          b[0] == UInt8(48 + season / 1000), b[1] == UInt8(48 + season / 100 % 10),
                          b[2] == UInt8(48 + season / 10 % 10), b[3] == UInt8(48 + season % 10), b[4] == 0x5F,
                          b[5] == UInt8(48 + week / 10), b[6] == UInt8(48 + week % 10), b[7] == 0x5F,
                          b[8 + a.count] == 0x5F else { return false }
                    for k in 0..<a.count where b[8 + k] != a[k] { return false }
                    for k in 0..<h.count where b[9 + a.count + k] != h[k] { return false }
                    return true
                }
            }
        }
    }

    /// The row check that needs "today": a game without scores should be in the future. A warning
    /// (reported, not rejected): see the type's documentation.
    public static func unplayedInFuture(today: (year: Int, month: Int, day: Int)) -> RowCheck {
        RowCheck("no_scores_implies_future_game(gameday >= \(String(format: "%04d-%02d-%02d", today.year, today.month, today.day)))",
                 columns: ["away_score", "home_score", "gameday"], severity: .warning) { row in
            guard row[C.awayScore].isNull && row[C.homeScore].isNull, case .date(let y, let m, let d) = row[C.gameday] else { return true }
            return (y, m, d) >= today
        }
    }

    /// The contract with the date-dependent check for a run on `now`.
    public static func contract(now: Date = Date()) -> DataContract {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let p = calendar.dateComponents([.year, .month, .day], from: now)
        let today = (p.year ?? 1970, p.month ?? 1, p.day ?? 1)
        return DataContract(target: contract.target, columns: contract.columns, rowChecks: contract.rowChecks + [unplayedInFuture(today: today)])
    }

    /// Day of the week of a proleptic Gregorian date (Sakamoto's method).
    static func weekdayName(year: Int, month: Int, day: Int) -> String {
        let y = month < 3 ? year - 1 : year
        let w = (y + y / 4 - y / 100 + y / 400 + sakamoto[month - 1] + day) % 7
        return weekdays[w]
    }
    private static let sakamoto = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4]
    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
}
