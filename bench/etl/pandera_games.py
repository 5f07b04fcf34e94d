"""Peer: pandas + pandera lazy validation of the same games CSV with the nfl.games contract's checks
(per-column dtype, nullability, uniqueness, ranges, allowed values, patterns, american odds, half
points, °F→°C and mph→km/h ranges; the row checks game_id = season_week_away_home, teams differ,
week vs game_type, gameday in season, weekday matches gameday, outcome all-or-none, result, total,
and the paired columns). Prints read_csv and validate times separately; lazy=True collects every
failure case, as nfldb does.

usage: pandera_games.py GAMES.csv
"""
import sys, time
import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

path = sys.argv[1]
t0 = time.perf_counter()
df = pd.read_csv(path, dtype={"game_id": "string", "game_type": "string", "gameday": "string", "weekday": "string",
                              "gametime": "string", "away_team": "string", "home_team": "string", "location": "string",
                              "old_game_id": "string", "nfl_detail_id": "string", "pfr": "string", "roof": "string",
                              "surface": "string", "away_qb_id": "string", "home_qb_id": "string", "away_qb_name": "string",
                              "home_qb_name": "string", "away_coach": "string", "home_coach": "string", "referee": "string",
                              "stadium_id": "string", "stadium": "string", "season": "Int64", "week": "Int64",
                              "away_score": "Int64", "home_score": "Int64", "result": "Int64", "total": "Int64", "overtime": "Int64",
                              "gsis": "Int64", "pff": "Int64", "espn": "Int64", "ftn": "Int64", "away_rest": "Int64", "home_rest": "Int64",
                              "away_moneyline": "Int64", "home_moneyline": "Int64", "away_spread_odds": "Int64", "home_spread_odds": "Int64",
                              "under_odds": "Int64", "over_odds": "Int64", "div_game": "Int64", "temp": "Int64", "wind": "Int64",
                              "spread_line": "float64", "total_line": "float64"})
t1 = time.perf_counter()

def col(dtype, *checks, nullable=True, unique=False):
    return pa.Column(dtype, list(checks), nullable=nullable, unique=unique)
odds = pa.Check(lambda s: s.abs() >= 100, name="american_odds")
half = pa.Check(lambda s: (s * 2).round() == s * 2, name="half_points")
pos = pa.Check.in_range(1, 2_147_483_647)
team = pa.Check.str_matches(r"^[A-Z]{2,3}$")
qb = pa.Check.str_matches(r"^00-[0-9]{7}$")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

def game_id_matches(d):
    return d.game_id == (d.season.astype("string") + "_" + d.week.astype("string").str.zfill(2) + "_" + d.away_team + "_" + d.home_team)
def gameday_in_season(d):
    g = pd.to_datetime(d.gameday, format="%Y-%m-%d")
    return ((g.dt.year == d.season) & (g.dt.month >= 8)) | ((g.dt.year == d.season + 1) & (g.dt.month < 3))
def weekday_matches(d):
    return pd.to_datetime(d.gameday, format="%Y-%m-%d").dt.day_of_week.map(dict(enumerate(WEEKDAYS))) == d.weekday
def week_matches_type(d):
    reg = d.game_type == "REG"
    return (reg & d.week.between(1, 18)) | (~reg & d.week.between(18, 22))
def all_or_none(d):
    n = d[["away_score", "home_score", "result", "total", "overtime"]].isna().sum(axis=1)
    return (n == 0) | (n == 5)
def paired(a, b):
    return lambda d: d[a].isna() == d[b].isna()

schema = pa.DataFrameSchema({
    "game_id": col("string", pa.Check.str_matches(r"^[0-9]{4}_[0-9]{2}_[A-Z]{2,3}_[A-Z]{2,3}$"), nullable=False, unique=True),
    "season": col("Int64", pa.Check.in_range(1999, 2100), nullable=False),
    "game_type": col("string", pa.Check.isin(["REG", "WC", "DIV", "CON", "SB"]), nullable=False),
    "week": col("Int64", pa.Check.in_range(1, 22), nullable=False),
    "gameday": col("string", pa.Check.str_matches(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), nullable=False),
    "weekday": col("string", pa.Check.isin(WEEKDAYS), nullable=False),
    "gametime": col("string", pa.Check.str_matches(r"^[0-9]{2}:[0-9]{2}$")),
    "away_team": col("string", team, nullable=False),
    "away_score": col("Int64", pa.Check.in_range(0, 200)),
    "home_team": col("string", team, nullable=False),
    "home_score": col("Int64", pa.Check.in_range(0, 200)),
    "location": col("string", pa.Check.isin(["Home", "Neutral"]), nullable=False),
    "result": col("Int64"), "total": col("Int64"),
    "overtime": col("Int64", pa.Check.isin([0, 1])),
    "old_game_id": col("string", pa.Check.str_matches(r"^[0-9]{10}$"), nullable=False),
    "gsis": col("Int64", pos), "nfl_detail_id": col("string"),
    "pfr": col("string", pa.Check.str_matches(r"^[0-9]{9}[a-z]{3}$"), nullable=False),
    "pff": col("Int64", pos), "espn": col("Int64", pos), "ftn": col("Int64", pos),
    "away_rest": col("Int64", pa.Check.in_range(0, 365), nullable=False),
    "home_rest": col("Int64", pa.Check.in_range(0, 365), nullable=False),
    "away_moneyline": col("Int64", odds), "home_moneyline": col("Int64", odds),
    "spread_line": col("float64", half),
    "away_spread_odds": col("Int64", odds), "home_spread_odds": col("Int64", odds),
    "total_line": col("float64", pa.Check.in_range(0.5, 999), half),
    "under_odds": col("Int64", odds), "over_odds": col("Int64", odds),
    "div_game": col("Int64", pa.Check.isin([0, 1]), nullable=False),
    "roof": col("string", pa.Check.isin(["outdoors", "dome", "closed", "open"])),
    "surface": col("string", pa.Check.str_matches(r"^[a-z_]+$")),
    "temp": col("Int64", pa.Check(lambda s: ((s - 32) * 5 / 9).between(-35, 50), name="temp_c")),
    "wind": col("Int64", pa.Check(lambda s: (s * 1.609344).between(0, 100), name="wind_kmh")),
    "away_qb_id": col("string", qb), "home_qb_id": col("string", qb),
    "away_qb_name": col("string"), "home_qb_name": col("string"),
    "away_coach": col("string", nullable=False), "home_coach": col("string", nullable=False),
    "referee": col("string"),
    "stadium_id": col("string", pa.Check.str_matches(r"^[A-Z]{3}[0-9]{2}$"), nullable=False),
    "stadium": col("string", nullable=False),
}, checks=[
    pa.Check(game_id_matches, name="game_id_matches_season_week_teams"),
    pa.Check(lambda d: d.away_team != d.home_team, name="teams_differ"),
    pa.Check(week_matches_type, name="week_matches_game_type"),
    pa.Check(gameday_in_season, name="gameday_in_season"),
    pa.Check(weekday_matches, name="weekday_matches_gameday"),
    pa.Check(all_or_none, name="outcome_all_or_none"),
    pa.Check(lambda d: d.result.isna() | (d.result == d.home_score - d.away_score), name="result"),
    pa.Check(lambda d: d.total.isna() | (d.total == d.home_score + d.away_score), name="total"),
    pa.Check(paired("away_moneyline", "home_moneyline"), name="moneylines_paired"),
    pa.Check(paired("away_spread_odds", "home_spread_odds"), name="spread_odds_paired"),
    pa.Check(paired("under_odds", "over_odds"), name="total_odds_paired"),
    pa.Check(paired("away_qb_id", "away_qb_name"), name="away_qb_paired"),
    pa.Check(paired("home_qb_id", "home_qb_name"), name="home_qb_paired"),
], strict=False, coerce=False)
try:
    schema.validate(df, lazy=True)
    failures = 0
except SchemaErrors as e:
    failures = len(e.failure_cases)
t2 = time.perf_counter()
print(f"pandera read_csv {t1 - t0:.2f} validate {t2 - t1:.2f} total {t2 - t0:.2f} rows {len(df)} failure_cases {failures}")
