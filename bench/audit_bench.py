#!/usr/bin/env python3
"""Audit-trigger overhead: no trigger vs nfldb's row-level and statement-level triggers.

Workloads on a 9-column table with a bigint primary key (the research note's shape):
  bulk insert  - one INSERT ... SELECT of N rows
  single rows  - N one-row INSERT statements in one PL/pgSQL loop (no client round trips)
  update all   - UPDATE of all N rows, two columns changing (rows loaded without triggers)
Before every timed statement: drop the audit schema, reload/empty the table, install the variant
with `nfldb audit install` (untimed), CHECKPOINT. Variants are interleaved within each repetition;
medians are reported. Timing is psql's \\timing (client-observed, trigger work included).
Connection: the libpq environment exported by `nfldb sandbox env`.
"""
import argparse, re, statistics, subprocess, sys

p = argparse.ArgumentParser()
p.add_argument("--nfldb", required=True)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--rows", type=int, default=200000)
a = p.parse_args()
N = a.rows

def psql(sql, timed=False):
    script = ("\\timing on\n" if timed else "") + sql + "\n"
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=script, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed: {out.stderr}")
    if timed:
        times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out.stdout)]
        return times[-1] / 1000.0
    return None

def nfldb(*args):
    out = subprocess.run([a.nfldb, *args, "-q"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"nfldb {' '.join(args)} failed: {out.stderr}")

ROWS = (f"SELECT i, 2000 + i % 25, 1 + i % 18, 'H' || (i % 32), 'A' || (i % 31), i % 50, i % 45, (i % 30) / 2.0, "
        f"timestamptz '2024-09-05' + i * interval '1 minute' FROM generate_series(1, {N}) i")
SETUP = """
DROP SCHEMA IF EXISTS audit CASCADE;
DROP TABLE IF EXISTS bench.t;
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE bench.t (game_id bigint PRIMARY KEY, season int, week int, home text, away text,
                      home_score int, away_score int, spread numeric(5,1), kickoff timestamptz);
"""
WORKLOADS = {
    "bulk insert (1 statement)": ("", f"INSERT INTO bench.t {ROWS};"),
    "single-row inserts": ("", f"""DO $$ BEGIN FOR i IN 1..{N} LOOP
        INSERT INTO bench.t VALUES (i, 2000 + i % 25, 1 + i % 18, 'H' || (i % 32), 'A' || (i % 31), i % 50, i % 45,
                                   (i % 30) / 2.0, timestamptz '2024-09-05' + i * interval '1 minute');
        END LOOP; END $$;"""),
    "update all rows": (f"INSERT INTO bench.t {ROWS}; VACUUM ANALYZE bench.t;",
                        "UPDATE bench.t SET home_score = home_score + 1, spread = spread + 0.5;"),
}
VARIANTS = ["none", "row", "statement"]

results = {(w, v): [] for w in WORKLOADS for v in VARIANTS}
for run in range(a.runs):
    for workload, (prepare, statement) in WORKLOADS.items():
        for variant in VARIANTS:
            psql(SETUP + prepare)
            if variant != "none":
                nfldb("audit", "install", "--table", "bench.t", "--mode", variant)
            psql("CHECKPOINT;")
            seconds = psql(statement, timed=True)
            results[(workload, variant)].append(seconds)
            print(f"run {run + 1}/{a.runs}  {workload:<27} {variant:<9} {seconds:8.2f} s", file=sys.stderr, flush=True)
psql("DROP SCHEMA IF EXISTS audit CASCADE; DROP SCHEMA IF EXISTS bench CASCADE;")

print(f"\nAudit trigger overhead, {N} rows, median of {a.runs} (ratio = variant / no trigger)\n")
print(f"| workload | no trigger | row-level | statement-level |")
print(f"|---|---|---|---|")
for workload in WORKLOADS:
    base = statistics.median(results[(workload, "none")])
    cells = [f"{base:.2f} s (1.0x)"]
    for variant in ["row", "statement"]:
        m = statistics.median(results[(workload, variant)])
        cells.append(f"{m:.2f} s ({m / base:.1f}x)")
    print(f"| {workload} | " + " | ".join(cells) + " |")
