"""Peer: pandas + pandera lazy validation of the same games CSV (the columns and checks the nfl.games
contract applies per column, plus the result/total row checks), timed after reading."""
import sys, time
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

path = sys.argv[1]
t0 = time.perf_counter()
df = pd.read_csv(path, dtype={"nfl_detail_id": "string", "pff": "Int64", "ftn": "Int64"}, keep_default_na=True)
t1 = time.perf_counter()
odds = [pa.Check(lambda s: s.abs() >= 100, element_wise=False)]
schema = pa.DataFrameSchema({
    "game_id": pa.Column(str, pa.Check.str_matches(r"^[0-9]{4}_[0-9]{2}_[A-Z]{2,3}_[A-Z]{2,3}$"), unique=True),
    "season": pa.Column(int, pa.Check.in_range(1999, 2100)),
    "game_type": pa.Column(str, pa.Check.isin(["REG", "WC", "DIV", "CON", "SB"])),
    "week": pa.Column(int, pa.Check.in_range(1, 22)),
    "gameday": pa.Column(str, pa.Check.str_matches(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")),
    "away_team": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{2,3}$")),
    "home_team": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{2,3}$")),
    "away_score": pa.Column(float, pa.Check.in_range(0, 200), nullable=True),
    "home_score": pa.Column(float, pa.Check.in_range(0, 200), nullable=True),
    "location": pa.Column(str, pa.Check.isin(["Home", "Neutral"])),
    "old_game_id": pa.Column(int),
    "pfr": pa.Column(str, pa.Check.str_matches(r"^[0-9]{9}[a-z]{3}$")),
    "away_moneyline": pa.Column(float, odds, nullable=True),
    "home_moneyline": pa.Column(float, odds, nullable=True),
    "spread_line": pa.Column(float, pa.Check(lambda s: (s * 2).round() == s * 2), nullable=True),
    "total_line": pa.Column(float, pa.Check.gt(0), nullable=True),
    "roof": pa.Column(str, pa.Check.isin(["outdoors", "dome", "closed", "open"]), nullable=True),
    "surface": pa.Column(str, pa.Check.str_matches(r"^[a-z_]+$"), nullable=True),
    "temp": pa.Column(float, pa.Check(lambda s: ((s - 32) * 5 / 9).between(-35, 50)), nullable=True),
    "wind": pa.Column(float, pa.Check(lambda s: (s * 1.609344).between(0, 100)), nullable=True),
    "away_qb_id": pa.Column(str, pa.Check.str_matches(r"^00-[0-9]{7}$"), nullable=True),
    "home_qb_id": pa.Column(str, pa.Check.str_matches(r"^00-[0-9]{7}$"), nullable=True),
    "stadium_id": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}[0-9]{2}$")),
}, checks=[
    pa.Check(lambda d: d.result.isna() | (d.result == d.home_score - d.away_score)),
    pa.Check(lambda d: d.total.isna() | (d.total == d.home_score + d.away_score)),
], strict=False, coerce=False)
try:
    schema.validate(df, lazy=True); failures = 0
except SchemaErrors as e:
    failures = len(e.failure_cases)
t2 = time.perf_counter()
print(f"pandera: read_csv {t1 - t0:.2f}s, validate {t2 - t1:.2f}s, total {t2 - t0:.2f}s, rows {len(df)}, failure cases {failures}")
