#!/usr/bin/env python3
"""Times `up N` and `down N` for nfldb, yoyo-migrations, alembic and two psql floors; prints a table.

Every timed run starts from a freshly created database (down runs: with all N applied, untimed), and
is checked afterwards (N or 0 bench tables). Connection: libpq environment (PGHOST, PGPORT, PGUSER,
PGPASSFILE) exported by `nfldb sandbox env`.
"""
import argparse, os, statistics, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--nfldb", required=True)
p.add_argument("--work", required=True)
p.add_argument("--runs", type=int, default=5)
p.add_argument("--count", type=int, default=200)
p.add_argument("--venv", required=True)
a = p.parse_args()
N, W = a.count, a.work
host, port, user = os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGUSER"]
url = lambda db, driver="postgresql": f"{driver}://{user}@{host}:{port}/{db}"
bin_ = lambda name: os.path.join(a.venv, "bin", name)

def up(i):
    return (f"CREATE TABLE bench_t{i:04d} (id bigserial PRIMARY KEY, name text NOT NULL, "
            f"created_at timestamptz NOT NULL DEFAULT now());\n"
            f"CREATE INDEX bench_t{i:04d}_name_idx ON bench_t{i:04d} (name);\n")
def down(i):
    return f"DROP TABLE bench_t{i:04d};\n"
def w(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

for i in range(1, N + 1):
    w(f"{W}/nfldb/{i:04d}_bench_{i:04d}.up.sql", up(i))
    w(f"{W}/nfldb/{i:04d}_bench_{i:04d}.down.sql", down(i))
    w(f"{W}/yoyo/{i:04d}.bench.sql", up(i))
    w(f"{W}/yoyo/{i:04d}.bench.rollback.sql", down(i))
    prev = f"'r{i-1:04d}'" if i > 1 else "None"
    w(f"{W}/alembic/versions/r{i:04d}_bench.py",
      f'revision = "r{i:04d}"\ndown_revision = {prev}\nbranch_labels = None\ndepends_on = None\n'
      f'from alembic import op\n'
      f'def upgrade():\n    op.execute("""{up(i)}""")\n'
      f'def downgrade():\n    op.execute("""{down(i)}""")\n')
w(f"{W}/alembic/env.py", """
from alembic import context
from sqlalchemy import create_engine
engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
""")
w(f"{W}/alembic/script.py.mako", "")
# Floor 1 (the issue's): psql -1 -f of the concatenated files, no bookkeeping at all.
w(f"{W}/psql1/up.sql", "\\set ON_ERROR_STOP 1\n" + "".join(up(i) for i in range(1, N + 1)))
w(f"{W}/psql1/down.sql", "\\set ON_ERROR_STOP 1\n" + "".join(down(i) for i in range(N, 0, -1)))
# Floor 2 (per-migration transactions + a tracking insert, as the research notes measured).
ups = ["\\set ON_ERROR_STOP 1", "CREATE TABLE IF NOT EXISTS floor_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"]
downs = ["\\set ON_ERROR_STOP 1"]
for i in range(1, N + 1):
    ups.append("BEGIN;\n" + up(i) + f"INSERT INTO floor_migrations(version) VALUES ({i});\nCOMMIT;")
for i in range(N, 0, -1):
    downs.append("BEGIN;\n" + down(i) + f"DELETE FROM floor_migrations WHERE version = {i};\nCOMMIT;")
w(f"{W}/psqltx/up.sql", "\n".join(ups) + "\n")
w(f"{W}/psqltx/down.sql", "\n".join(downs) + "\n")

def alembic_ini(db):
    path = f"{W}/alembic-{db}.ini"
    w(path, f"[alembic]\nscript_location = {W}/alembic\nsqlalchemy.url = {url(db, 'postgresql+psycopg')}\n")
    return path

def cmd(tool, direction, db):
    nf = [a.nfldb, "migrate", "--dsn", url(db), "--dir", f"{W}/nfldb", "-q"]
    return {
        ("nfldb", "up"): [a.nfldb, "migrate", "up", "--dsn", url(db), "--dir", f"{W}/nfldb", "-q"],
        ("nfldb", "down"): [a.nfldb, "migrate", "down", str(N), "--dsn", url(db), "--dir", f"{W}/nfldb", "-q"],
        ("nfldb-1tx", "up"): [a.nfldb, "migrate", "up", "--single-transaction", "--dsn", url(db), "--dir", f"{W}/nfldb", "-q"],
        ("nfldb-1tx", "down"): [a.nfldb, "migrate", "down", str(N), "--single-transaction", "--dsn", url(db), "--dir", f"{W}/nfldb", "-q"],
        ("psql -1 floor", "up"): ["psql", "-X", "-q", "-1", "-d", db, "-f", f"{W}/psql1/up.sql"],
        ("psql -1 floor", "down"): ["psql", "-X", "-q", "-1", "-d", db, "-f", f"{W}/psql1/down.sql"],
        ("psql tx+ledger floor", "up"): ["psql", "-X", "-q", "-d", db, "-f", f"{W}/psqltx/up.sql"],
        ("psql tx+ledger floor", "down"): ["psql", "-X", "-q", "-d", db, "-f", f"{W}/psqltx/down.sql"],
        ("yoyo", "up"): [bin_("yoyo"), "apply", "--batch", "--no-config-file", "-d", url(db, "postgresql+psycopg"), f"{W}/yoyo"],
        ("yoyo", "down"): [bin_("yoyo"), "rollback", "--batch", "--all", "--no-config-file", "-d", url(db, "postgresql+psycopg"), f"{W}/yoyo"],
        ("alembic", "up"): [bin_("alembic"), "-c", alembic_ini(db), "upgrade", "head"],
        ("alembic", "down"): [bin_("alembic"), "-c", alembic_ini(db), "downgrade", "base"],
    }[(tool, direction)]

def psql(db, sql):
    return subprocess.run(["psql", "-X", "-qtA", "-d", db, "-c", sql], check=True, capture_output=True, text=True).stdout.strip()

def reset(db):
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', "-c", f'CREATE DATABASE "{db}"'],
                   check=True, capture_output=True)

def run(tool, direction, db):
    r = subprocess.run(cmd(tool, direction, db), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{tool} {direction} failed ({r.returncode}): {r.stderr[-2000:]}")

def count(db):
    return int(psql(db, "select count(*) from pg_tables where tablename like 'bench_t%'"))

tools = ["psql -1 floor", "psql tx+ledger floor", "nfldb", "nfldb-1tx", "alembic", "yoyo"]
# Round-robin over the tools in every run, and a CHECKPOINT before each timed step, so no tool is
# favoured by running first (before WAL and checkpoint pressure build up) or last.
results = {(t, d): [] for t in tools for d in ("up", "down")}
dbname = lambda tool: "b_" + "".join(c for c in tool if c.isalnum())
for _ in range(a.runs):
    for direction in ("up", "down"):
        for tool in tools:
            db = dbname(tool)
            reset(db)
            if direction == "down":
                run(tool, "up", db)
            psql("postgres", "CHECKPOINT")
            start = time.perf_counter()
            run(tool, direction, db)
            results[(tool, direction)].append(time.perf_counter() - start)
            expected = N if direction == "up" else 0
            if count(db) != expected:
                sys.exit(f"{tool} {direction}: {count(db)} bench tables, expected {expected}")
for tool in tools:
    psql("postgres", f'DROP DATABASE IF EXISTS "{dbname(tool)}" WITH (FORCE)')

floor = {d: statistics.median(results[("psql -1 floor", d)]) for d in ("up", "down")}
print(f"\n{N} migrations (CREATE TABLE + CREATE INDEX each; down = DROP TABLE), {a.runs} runs each, one cluster, medians")
print("| tool | up: median s (min–max) | down: median s (min–max) | × psql -1 floor (up / down) | per migration ms (up / down) |")
print("|---|---|---|---|---|")
for tool in tools:
    cells = [tool]
    ratios, per = [], []
    for d in ("up", "down"):
        ts = results[(tool, d)]
        m = statistics.median(ts)
        cells.append(f"{m:.3f} ({min(ts):.3f}–{max(ts):.3f})")
        ratios.append(f"{m / floor[d]:.2f}")
        per.append(f"{m * 1000 / N:.2f}")
    cells += [" / ".join(ratios), " / ".join(per)]
    print("| " + " | ".join(cells) + " |")
print("\nnfldb runs with per-migration transactions, the advisory lock, checksums, stored down SQL and the event log;")
print("nfldb-1tx is `migrate up --single-transaction` / `migrate down N --single-transaction` (all or nothing).")
