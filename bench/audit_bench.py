#!/usr/bin/env python3
"""Audit-trigger overhead: no trigger, the physical floor, and nfldb's row-level and statement-level triggers.

Workloads on a 9-column table with a bigint primary key (the research note's shape):
  bulk insert  - one INSERT ... SELECT of N rows
  single rows  - N one-row INSERT statements in one PL/pgSQL loop (no client round trips)
  update all   - UPDATE of all N rows, two columns changing (rows loaded without triggers)
Variants:
  none       - no trigger
  floor      - no trigger, and in the same transaction the same N rows written into a plain, unindexed
               table with one INSERT ... SELECT to_jsonb(t) (what any audit design must at least pay)
  row        - nfldb audit install --mode row        (generated per-table function, FOR EACH ROW)
  statement  - nfldb audit install --mode statement  (generated per-table function, transition tables)
  91plus     - 2ndQuadrant audit-trigger "91plus" (hstore, row-level), its published audit.sql, audit.audit_table('t')
  supa_audit - supabase supa_audit 0.3.0 (jsonb, row-level), its published SQL, audit.enable_tracking('bench.t')
The peers' SQL is read from --peers (bench/audit passes $AUDIT_PEERS, default /work/shared/audit-peers; see
the README there for source URLs and licences); they are skipped when it is missing. They are third-party
code and deliberately not part of the repository.
Before every timed statement: drop the audit schema, reload/empty the table, install the variant
with `nfldb audit install` (untimed), CHECKPOINT. Variants are interleaved within each repetition;
medians are reported. Wall time is psql's \\timing (client-observed, trigger work and commit included,
summed over the transaction's statements); CPU is the server backend's user+system time from
/proc/<pid>/stat over the same statements (less sensitive to other load on the machine; needs the
server on this host). Connection: the libpq environment exported by `nfldb sandbox env`.
"""
import argparse, re, statistics, subprocess, sys

p = argparse.ArgumentParser()
p.add_argument("--nfldb", required=True)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--rows", type=int, default=200000)
p.add_argument("--peers", default="")
a = p.parse_args()
N = a.rows
CPU = "\\! cut -d' ' -f14,15 /proc/$NFLDB_BENCH_BACKEND/stat 2>/dev/null || echo '0 0'\n"

def psql(sql, timed=False):
    if timed:
        script = "SELECT pg_backend_pid() AS pid \\gset\n\\setenv NFLDB_BENCH_BACKEND :pid\n" + CPU + "\\timing on\n" + sql + "\n\\timing off\n" + CPU
    else:
        script = sql + "\n"
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=script, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed: {out.stderr}")
    if timed:
        wall = sum(float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out.stdout)) / 1000.0
        ticks = re.findall(r"^(\d+) (\d+)$", out.stdout, re.M)
        cpu = (int(ticks[-1][0]) + int(ticks[-1][1]) - int(ticks[0][0]) - int(ticks[0][1])) / 100.0
        return wall, cpu
    return None

def nfldb(*args):
    out = subprocess.run([a.nfldb, *args, "-q"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"nfldb {' '.join(args)} failed: {out.stderr}")

ROWS = (f"SELECT i, 2000 + i % 25, 1 + i % 18, 'H' || (i % 32), 'A' || (i % 31), i % 50, i % 45, (i % 30) / 2.0, "
        f"timestamptz '2024-09-05' + i * interval '1 minute' FROM generate_series(1, {N}) i")
SETUP = """
DROP SCHEMA IF EXISTS audit CASCADE;
DROP TABLE IF EXISTS bench.t, bench.floor;
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE bench.t (game_id bigint PRIMARY KEY, season int, week int, home text, away text,
                      home_score int, away_score int, spread numeric(5,1), kickoff timestamptz);
CREATE TABLE bench.floor (j jsonb);
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
import os
PEERS = {}
if a.peers and os.path.isfile(os.path.join(a.peers, "91plus-audit.sql")):
    PEERS["91plus"] = open(os.path.join(a.peers, "91plus-audit.sql")).read() + "\nSET search_path = bench, public;\nSELECT audit.audit_table('t');\n"
if a.peers and os.path.isfile(os.path.join(a.peers, "supa_audit--0.3.0.sql")):
    PEERS["supa_audit"] = ('CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n' + open(os.path.join(a.peers, "supa_audit--0.3.0.sql")).read()
                           + "\nSELECT audit.enable_tracking('bench.t');\n")
if not PEERS:
    print(f"peers: none found in {a.peers or '(not given)'}; running nfldb's variants only", file=sys.stderr)
VARIANTS = ["none", "floor", "row", "statement"] + list(PEERS)
def loadavg():
    return open("/proc/loadavg").read().split()[:3]
LOAD = [loadavg()]
FLOOR = "INSERT INTO bench.floor SELECT to_jsonb(t) FROM bench.t AS t;"

results = {(w, v): [] for w in WORKLOADS for v in VARIANTS}
cpu = {(w, v): [] for w in WORKLOADS for v in VARIANTS}
for run in range(a.runs):
    for workload, (prepare, statement) in WORKLOADS.items():
        for variant in VARIANTS:
            psql(SETUP + prepare)
            if variant in ("row", "statement"):
                nfldb("audit", "install", "--table", "bench.t", "--mode", variant)
            elif variant in PEERS:
                psql("SET client_min_messages = warning;\n" + PEERS[variant])
            psql("CHECKPOINT;")
            timed = f"BEGIN;\n{statement}\n{FLOOR}\nCOMMIT;" if variant == "floor" else statement
            seconds, cpu_seconds = psql(timed, timed=True)
            log = {"row": "audit.log", "statement": "audit.log", "91plus": "audit.logged_actions", "supa_audit": "audit.record_version"}.get(variant)
            if log:  # every design must have logged one entry per row
                got = subprocess.run(["psql", "-X", "-qAt", "-c", f"SELECT count(*) FROM {log}"], capture_output=True, text=True).stdout.strip()
                if got != str(N):
                    sys.exit(f"{variant} logged {got} entries for {N} rows in {workload}")
            results[(workload, variant)].append(seconds)
            cpu[(workload, variant)].append(cpu_seconds)
            print(f"run {run + 1}/{a.runs}  {workload:<27} {variant:<10} {seconds:8.2f} s  cpu {cpu_seconds:6.2f} s", file=sys.stderr, flush=True)
    LOAD.append(loadavg())
psql("DROP SCHEMA IF EXISTS audit CASCADE; DROP SCHEMA IF EXISTS bench CASCADE;")
print("\nload average (1/5/15 min) at the start and after each repetition: " + "; ".join("/".join(l) for l in LOAD)
      + f"  ({os.cpu_count()} CPUs)")

def table(title, data):
    print(f"\n{title}\n")
    names = {"row": "nfldb row", "statement": "nfldb statement"}
    print("| workload | none | floor | " + " | ".join(names.get(v, v) for v in VARIANTS[2:]) + " |")
    print("|---" * len(VARIANTS) + "|---|")
    for workload in WORKLOADS:
        base = max(statistics.median(data[(workload, "none")]), 0.01)
        floor = max(statistics.median(data[(workload, "floor")]), 0.01)
        cells = [f"{base:.2f} s (1.0x)", f"{floor:.2f} s ({floor / base:.1f}x)"]
        for variant in VARIANTS[2:]:
            m = statistics.median(data[(workload, variant)])
            cells.append(f"{m:.2f} s ({m / base:.1f}x, {m / floor:.1f}x floor)")
        print(f"| {workload} | " + " | ".join(cells) + " |")

table(f"Audit trigger overhead, {N} rows, median of {a.runs}, wall time (ratio = variant / no trigger, and / floor)", results)
table(f"Same runs, server backend CPU time (user+system)", cpu)
