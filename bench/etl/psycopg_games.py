"""Peer: psycopg 3 executemany upsert of the games CSV into nfl.games (5 000-row batches, one commit
each, ON CONFLICT … DO UPDATE … WHERE IS DISTINCT FROM). No validation; teams and stadiums the
rows reference are inserted first (the foreign keys need them). CSV parsing happens before timing.

usage: psycopg_games.py DSN GAMES.csv
"""
import csv, sys, time
import psycopg
dsn, path = sys.argv[1], sys.argv[2]
with open(path, newline="") as f:
    r = csv.reader(f); header = next(r)
    rows = [tuple(None if v == "" else v for v in row) for row in r]
cols = ", ".join(header)
ph = ", ".join(["%s"] * len(header))
rest = [c for c in header if c != "game_id"]
sql = (f"INSERT INTO nfl.games AS t ({cols}) VALUES ({ph}) ON CONFLICT (game_id) DO UPDATE SET "
       + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
       + f" WHERE ({', '.join('t.' + c for c in rest)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in rest)})")
ia, ih, isd, isn = header.index("away_team"), header.index("home_team"), header.index("stadium_id"), header.index("stadium")
teams = sorted({x[ia] for x in rows} | {x[ih] for x in rows})
stadiums = {x[isd]: x[isn] for x in rows}
with psycopg.connect(dsn) as conn:
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO nfl.teams (team_abbr) VALUES (%s) ON CONFLICT DO NOTHING", [(t,) for t in teams])
        cur.executemany("INSERT INTO nfl.stadiums (stadium_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", list(stadiums.items()))
        conn.commit()
        for i in range(0, len(rows), 5000):
            cur.executemany(sql, rows[i:i + 5000]); conn.commit()
    print(f"psycopg executemany upsert: {time.perf_counter() - t0:.2f}s for {len(rows)} rows")
