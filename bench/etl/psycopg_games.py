"""Peer: psycopg 3 executemany upsert of the games CSV into nfl.games (5 000-row batches, one commit each,
ON CONFLICT … DO UPDATE … WHERE IS DISTINCT FROM). Parsing happens before timing."""
import csv, sys, time
import psycopg
dsn, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    r = csv.reader(f); header = next(r)
    rows = [tuple(None if v == "" else v for v in row) for row in r]
cols = ", ".join(header)
ph = ", ".join(["%s"] * len(header))
rest = [c for c in header if c != "game_id"]
sql = (f"INSERT INTO nfl.games AS t ({cols}) VALUES ({ph}) ON CONFLICT (game_id) DO UPDATE SET "
       + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
       + f" WHERE ({', '.join('t.' + c for c in rest)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in rest)})")
with psycopg.connect(dsn) as conn:
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        for i in range(0, len(rows), 5000):
            cur.executemany(sql, rows[i:i + 5000]); conn.commit()
    print(f"psycopg executemany upsert: {time.perf_counter() - t0:.2f}s for {len(rows)} rows")
