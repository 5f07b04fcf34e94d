#!/bin/bash
# ETL benchmark: N synthetic games rows (default 1,000,000) — nfldb validate + load into an empty
# nfl.games, the no-op re-load, against the floor (psql \copy into the same empty table, no
# validation) and peers (psycopg executemany upsert; pandas + pandera lazy validation). One run each.
# usage: bench/etl/run.sh [N]     (needs: swift build -c release --product nfldb; pip install pandas pandera psycopg[binary])
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
BIN=$PWD/.build/release/nfldb
CSV=${ETL_BENCH_CSV:-/tmp/etl-bench-games-$N.csv}
W=$(mktemp -d /tmp/etl-bench-XXXXXX)
trap '"$BIN" sandbox down --dir "$W/sandbox" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
[ -s "$CSV" ] || python3 bench/etl/gen_games.py "$CSV" "$N"
"$BIN" sandbox up --dir "$W/sandbox" >/dev/null
eval "$("$BIN" sandbox env --dir "$W/sandbox")"
unset NFLDB_DSN
psql -X -q -d postgres -c "CREATE DATABASE bench"
export PGDATABASE=bench
"$BIN" migrate up --dsn "dbname=bench" -q >/dev/null
PSQL="psql -X -q -v ON_ERROR_STOP=1 -d bench"
lsn() { $PSQL -Atc "select pg_current_wal_lsn()"; }
walmb() { $PSQL -Atc "select round(pg_wal_lsn_diff('$2','$1')/1048576.0,1)"; }
now() { date +%s.%N; }
prep() { $PSQL -c "VACUUM (ANALYZE)" -c "CHECKPOINT"; }
timed() { # label, command…
  local label=$1; shift; prep; local a=$(lsn) t0=$(now); "$@" >/dev/null; local t1=$(now) b=$(lsn)
  printf "%-44s %8.2f s  WAL %8s MB\n" "$label" "$(echo "$t1 - $t0" | bc)" "$(walmb $a $b)"
}
echo "rows: $N  csv: $(du -h "$CSV" | cut -f1)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(now); "$BIN" etl validate games --source "$CSV" --format json > "$W/validate.json" || true; t1=$(now)
printf "%-44s %8.2f s  (%s invalid rows)\n" "nfldb etl validate (parse + contract)" "$(echo "$t1 - $t0" | bc)" \
  "$(python3 -c "import json,sys; print(json.load(open('$W/validate.json'))['rejected'])")"
python3 bench/etl/pandera_games.py "$CSV" | sed 's/^/peer /'
timed "nfldb etl load games (empty target)" "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --max-invalid-ratio 0 -q
timed "nfldb etl load games (no-op re-load)" "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" -q
$PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games"
timed "floor: psql \\copy nfl.games (empty, no checks)" $PSQL -c "\\copy nfl.games FROM '$CSV' (FORMAT csv, HEADER)"
$PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games"
timed "peer: psycopg executemany upsert (empty)" python3 bench/etl/psycopg_games.py "dbname=bench" "$CSV"
$PSQL -Atc "select 'games rows at end: ' || count(*) from nfl.games"
