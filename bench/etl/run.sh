#!/bin/bash
# ETL benchmark: N synthetic games rows (default 1,000,000, generated from the real slice's rows) —
# nfldb validate, nfldb load into an empty nfl.games, the no-op re-load (WAL measured), against the
# floor (psql \copy into the same empty table, no validation; and the same plus the weather and odds
# rows nfldb also writes) and peers (pandas + pandera lazy validation; psycopg executemany upsert).
# One run each; ratios are within this run. Prints the load average before each step.
# usage: bench/etl/run.sh [N]
# needs: swift build -c release --product nfldb; pip install pandas pandera psycopg[binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
BIN=${NFLDB_BIN:-$PWD/.build/release/nfldb}
SLICE=${NFLDB_ETL_SLICE:-$PWD/../shared/data/nflverse_games_2023_2025.csv}
[ -f "$SLICE" ] || SLICE=/work/shared/data/nflverse_games_2023_2025.csv
CSV=${ETL_BENCH_CSV:-/tmp/etl-bench-games-$N.csv}
W=$(mktemp -d /tmp/etl-bench-XXXXXX)
trap '"$BIN" sandbox down --dir "$W/sandbox" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
[ -s "$CSV" ] || python3 bench/etl/gen_games.py "$SLICE" "$CSV" "$N"
"$BIN" sandbox up --dir "$W/sandbox" >/dev/null
eval "$("$BIN" sandbox env --dir "$W/sandbox")"
unset NFLDB_DSN
psql -X -q -d postgres -c "CREATE DATABASE bench"
export PGDATABASE=bench PGOPTIONS="-c client_min_messages=warning"
"$BIN" migrate up --dsn "dbname=bench" -q >/dev/null
PSQL="psql -X -q -v ON_ERROR_STOP=1 -d bench"
lsn() { $PSQL -Atc "select pg_current_wal_lsn()"; }
walmb() { $PSQL -Atc "select round(pg_wal_lsn_diff('$2','$1')/1048576.0,2)"; }
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }
prep() { $PSQL -c "VACUUM (ANALYZE)" -c "CHECKPOINT"; }
empty() { $PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games, nfl.teams, nfl.stadiums CASCADE"; }
declare -A T WAL LOAD LSN0 LSN1 SCPU CCPU
r() { echo "scale=2; $1 / $2" | bc; }
# Server CPU of a step: the postmaster's cutime+cstime (CPU of its exited children: the step's
# backend, and any autovacuum worker that ended meanwhile), read after the backend has exited.
PM=$(head -1 "$($PSQL -Atc "show data_directory")/postmaster.pid")
HZ=$(getconf CLK_TCK)
srvticks() { awk '{print $16 + $17}' "/proc/$PM/stat"; }
timed() { # key, command… (stdout to $W/key.out)
  local key=$1; shift; prep; LOAD[$key]=$(load); local a=$(lsn) c0=$(srvticks) t0=$(now)
  local times0=($(cat /proc/$$/stat | cut -d' ' -f16,17))
  "$@" > "$W/$key.out"; local t1=$(now) b=$(lsn)
  local times1=($(cat /proc/$$/stat | cut -d' ' -f16,17))
  sleep 0.3; local c1=$(srvticks)
  T[$key]=$(echo "$t1 - $t0" | bc); WAL[$key]=$(walmb $a $b); LSN0[$key]=$a; LSN1[$key]=$b
  SCPU[$key]=$(echo "scale=2; ($c1 - $c0) / $HZ" | bc); CCPU[$key]=$(echo "scale=2; (${times1[0]} + ${times1[1]} - ${times0[0]} - ${times0[1]}) / $HZ" | bc)
  printf "%-28s %8.2f s  WAL %9s MB  server cpu %7s s  client cpu %7s s  load %s\n" "$key" "${T[$key]}" "${WAL[$key]}" "${SCPU[$key]}" "${CCPU[$key]}" "${LOAD[$key]}" >&2
}
echo "rows: $N  csv: $(du -h "$CSV" | cut -f1)  cores: $(nproc)  loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nfldb: $BIN  $(psql --version)"

# Warm-up, untimed: in a fresh cluster the first step that writes ~1 GB of WAL also creates the WAL
# segment files (zero-filled); later steps reuse recycled ones. Without it the first timed step
# (the first load) paid for that and the floors, timed later, did not.
if [ "${SKIP_WARMUP:-0}" != 1 ]; then
  "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --max-invalid-ratio 0 -q > /dev/null
  empty; $PSQL -c "CHECKPOINT"
fi
LOAD[validate]=$(load); t0=$(now); "$BIN" etl validate games --source "$CSV" --format json > "$W/validate.json" || true; t1=$(now)
T[validate]=$(echo "$t1 - $t0" | bc)
# The peers need Python packages; a machine without them skips that peer (and says so).
HAVE_PANDERA=0; python3 -c "import pandas, pandera" 2>/dev/null && HAVE_PANDERA=1
HAVE_PSYCOPG=0; python3 -c "import psycopg" 2>/dev/null && HAVE_PSYCOPG=1
if [ $HAVE_PANDERA = 1 ]; then
  LOAD[pandera]=$(load); python3 bench/etl/pandera_games.py "$CSV" 2>/dev/null > "$W/pandera.out"
  read -r _ _ PREAD _ PVAL _ PTOT _ PROWS _ PFAIL < "$W/pandera.out"
  T[pandera]=$PTOT
else
  echo "pandera peer skipped: pip install pandas pandera" >&2
fi
timed load_empty "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --max-invalid-ratio 0 --format json
timed load_noop "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --format json
# Where the no-op re-load's WAL went (the LSN difference is cluster-wide: autovacuum counts too).
$PSQL -c "CREATE EXTENSION IF NOT EXISTS pg_walinspect"
NOOP_WAL=$($PSQL -Atc "SELECT string_agg(format('%s %s kB', coalesce(rel, w.rm), kb), ', ' ORDER BY kb DESC) FROM (
  SELECT c.relname AS rel, min(r.resource_manager) AS rm, round(sum(r.record_length + r.fpi_length) / 1024.0) AS kb
  FROM pg_get_wal_records_info('${LSN0[load_noop]}', '${LSN1[load_noop]}') r
  LEFT JOIN pg_class c ON c.relfilenode = substring(r.block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid
  GROUP BY c.relname, CASE WHEN c.relname IS NULL THEN r.resource_manager END ORDER BY 3 DESC LIMIT 6) w(rel, rm, kb)")
ROWS_AFTER=$($PSQL -Atc "select (select count(*) from nfl.games) || ' games, ' || (select count(*) from nfl.weather) || ' weather, ' || (select count(*) from nfl.odds_history) || ' odds'")
cp "$W/load_empty.out" "$W/keep_empty.json"; cp "$W/load_noop.out" "$W/keep_noop.json"
# The same first load with the weather/odds foreign keys checked per row (etl.suspend_foreign_keys
# off), for the lever's own ratio within this run.
if [ "${SKIP_PER_ROW:-0}" != 1 ]; then
  empty
  NFLDB_ETL_SUSPEND_FOREIGN_KEYS=false timed load_perrow "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --max-invalid-ratio 0 --format json
fi
# The floor: psql \copy of the same file into the same (emptied) table; teams and stadiums present.
$PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games CASCADE"
timed floor_copy $PSQL -c "\\copy nfl.games FROM '$CSV' (FORMAT csv, HEADER, FORCE_NULL (surface))"
# The same floor with the technique the first load uses (pg_restore's: data first, then the keys):
# nfl.games' foreign keys dropped before the COPY and added back (validated) after it, in one
# transaction. Printed so that no one mistakes beating the plain floor for beating the limit.
$PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games CASCADE"
GAMES_FKS=$($PSQL -Atc "SELECT string_agg(format('ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)), ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'nfl.games'::regclass AND contype = 'f'")
GAMES_FK_DROP=$($PSQL -Atc "SELECT string_agg(format('DROP CONSTRAINT %I', conname), ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'nfl.games'::regclass AND contype = 'f'")
timed floor_keys_after $PSQL -c "BEGIN" -c "ALTER TABLE nfl.games $GAMES_FK_DROP" \
  -c "\\copy nfl.games FROM '$CSV' (FORMAT csv, HEADER, FORCE_NULL (surface))" -c "ALTER TABLE nfl.games $GAMES_FKS" -c "COMMIT"
# The floor for everything nfldb writes: the same, plus weather and odds from it (no validation).
$PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games CASCADE"
timed floor_all $PSQL -c "BEGIN" -c "\\copy nfl.games FROM '$CSV' (FORMAT csv, HEADER, FORCE_NULL (surface))" \
  -c "INSERT INTO nfl.weather (game_id, source, temp_f, wind_mph) SELECT game_id, 'nflverse', temp, wind FROM nfl.games WHERE temp IS NOT NULL OR wind IS NOT NULL" \
  -c "INSERT INTO nfl.odds_history (game_id, source, observed_at, spread_line, total_line, away_moneyline, home_moneyline, away_spread_odds, home_spread_odds, under_odds, over_odds) SELECT game_id, 'nflverse', now(), spread_line, total_line, away_moneyline, home_moneyline, away_spread_odds, home_spread_odds, under_odds, over_odds FROM nfl.games WHERE num_nonnulls(spread_line, total_line, away_moneyline, home_moneyline) > 0" \
  -c "COMMIT"
if [ "${SKIP_PSYCOPG:-0}" != 1 ] && [ $HAVE_PSYCOPG = 1 ]; then
  empty
  timed psycopg python3 bench/etl/psycopg_games.py "dbname=bench" "$CSV"
fi

# PAIRS=N: N more (first load, floor) pairs back to back, each ratio printed, then the median of
# all pairs (the first pair is the steps above): the floor alone varies by ±15 % between runs here.
PAIR_RATIOS="$(r ${T[load_empty]} ${T[floor_copy]})"
for k in $(seq 1 "${PAIRS:-0}"); do
  empty
  timed "load_empty_$k" "$BIN" etl load games --source "$CSV" --dsn "dbname=bench" --max-invalid-ratio 0 --format json
  $PSQL -c "TRUNCATE nfl.weather, nfl.odds_history, nfl.games CASCADE"
  timed "floor_copy_$k" $PSQL -c "\\copy nfl.games FROM '$CSV' (FORMAT csv, HEADER, FORCE_NULL (surface))"
  PAIR_RATIOS="$PAIR_RATIOS $(r ${T[load_empty_$k]} ${T[floor_copy_$k]})"
done
# Last (it empties teams and stadiums, which the floors need): the same first load from HTTP (a 127.0.0.1 python http.server; HTTP is not re-readable, so it
# stages). A load still running after HTTP_LIMIT seconds is stopped, after printing what it and
# the server were doing (the one bench HTTP load that ever hung, before the libcurl source, left no trace).
if [ "${SKIP_HTTP:-0}" != 1 ]; then
  empty
  mkdir -p "$W/http" && ln -s "$CSV" "$W/http/games.csv"
  HPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$W/http" "$HPORT" > "$W/httpd.log" 2>&1 &
  HTTPD=$!
  for _ in $(seq 50); do curl -s -o /dev/null -r 0-0 "http://127.0.0.1:$HPORT/games.csv" && break; sleep 0.1; done
  http_load() {
    NFLDB_ETL_HTTP_DEADLINE=30min "$BIN" etl load games --source "http://127.0.0.1:$HPORT/games.csv" --dsn "dbname=bench" --max-invalid-ratio 0 --format json &
    local pid=$! waited=0
    while kill -0 $pid 2>/dev/null && [ $waited -lt "${HTTP_LIMIT:-900}" ]; do sleep 1; waited=$((waited + 1)); done
    if kill -0 $pid 2>/dev/null; then
      echo "HTTP load still running after ${waited}s: pg_stat_activity, then the nfldb threads" >&2
      psql -X -d bench -c "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS xact, left(query, 80) AS query FROM pg_stat_activity WHERE datname = 'bench'" >&2
      command -v gdb >/dev/null && gdb -p $pid -batch -nx -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^Thread|^#' | head -80 >&2
      kill $pid; wait $pid || true
      return 0
    fi
    wait $pid || true
  }
  timed load_http http_load
  kill $HTTPD 2>/dev/null || true
fi

j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
echo
echo "nfldb load (empty):  $(j "$W/keep_empty.json" "d['load_method'], d.get('foreign_key_checks'), d['inserted'], d['rejected'], d['tables']['nfl.weather']['inserted'], d['tables']['nfl.odds_history']['inserted']")"
echo "  phases ms: $(j "$W/keep_empty.json" "{k: round(v) for k, v in d['phase_ms'].items()}")"
[ -s "$W/load_http.out" ] && echo "nfldb load (HTTP):   $(j "$W/load_http.out" "d['status'], d['load_method'], d.get('foreign_key_checks'), d['inserted'], d['rejected'], d.get('error')")"
echo "nfldb load (no-op):  $(j "$W/keep_noop.json" "d['load_method'], d['inserted'], d['updated'], d['unchanged']")"
echo "  phases ms: $(j "$W/keep_noop.json" "{k: round(v) for k, v in d['phase_ms'].items()}")"
echo "  WAL of the no-op by relation (top 6): $NOOP_WAL"
echo "after the nfldb loads: $ROWS_AFTER;  validate: $(j "$W/validate.json" "d['rows_read'], 'rows', d['rejected'], 'invalid'")"
[ -n "${T[pandera]:-}" ] && echo "pandera: read_csv ${PREAD}s + validate ${PVAL}s, $PFAIL failure cases"
echo
printf "| %-52s | %9s | %9s | %9s | %9s | %6s |\n" "step ($N rows)" "time s" "WAL MB" "server cpu s" "client cpu s" "load"
printf "|%s|%s|%s|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..54})" "----------:" "----------:" "----------:" "----------:" "-------:"
row() { printf "| %-52s | %9.2f | %9s | %9s | %9s | %6s |\n" "$1" "$2" "$3" "${SCPU[$4]:--}" "${CCPU[$4]:--}" "${LOAD[$4]}"; }
row "nfldb etl validate (read + parse + contract)" "${T[validate]}" "-" validate
[ -n "${T[pandera]:-}" ] && row "pandas read_csv + pandera lazy validate (same checks)" "${T[pandera]}" "-" pandera
row "nfldb etl load, empty target (validated)" "${T[load_empty]}" "${WAL[load_empty]}" load_empty
[ -n "${T[load_http]:-}" ] && row "nfldb etl load, empty target, from HTTP (staged)" "${T[load_http]}" "${WAL[load_http]}" load_http
[ -n "${T[load_perrow]:-}" ] && row "nfldb etl load, empty target, per-row FK checks" "${T[load_perrow]}" "${WAL[load_perrow]}" load_perrow
row "nfldb etl load, no-op re-load" "${T[load_noop]}" "${WAL[load_noop]}" load_noop
row "floor: psql \\copy nfl.games (no checks)" "${T[floor_copy]}" "${WAL[floor_copy]}" floor_copy
row "floor, keys after: \\copy games, its FKs added after" "${T[floor_keys_after]}" "${WAL[floor_keys_after]}" floor_keys_after
row "floor+: \\copy games + INSERT weather, odds" "${T[floor_all]}" "${WAL[floor_all]}" floor_all
[ -n "${T[psycopg]:-}" ] && row "peer: psycopg executemany upsert (empty)" "${T[psycopg]}" "${WAL[psycopg]}" psycopg
echo
echo "server cpu ratios: load/floor_copy $(r ${SCPU[load_empty]} ${SCPU[floor_copy]}); load/floor+ $(r ${SCPU[load_empty]} ${SCPU[floor_all]})"
echo "ratios: load/floor_copy $(r ${T[load_empty]} ${T[floor_copy]}) (goal <= 1.3); load/floor+ $(r ${T[load_empty]} ${T[floor_all]});" \
     "no-op/load $(r ${T[load_noop]} ${T[load_empty]}) (goal < 1, WAL <= 1 MB)"
echo "against the floor with the same technique: load/floor_keys_after $(r ${T[load_empty]} ${T[floor_keys_after]}); server cpu $(r ${SCPU[load_empty]} ${SCPU[floor_keys_after]})"
[ -n "${T[load_perrow]:-}" ] && echo "per-row FK checks: load_perrow/floor_copy $(r ${T[load_perrow]} ${T[floor_copy]}); load/load_perrow $(r ${T[load_empty]} ${T[load_perrow]}); server cpu load/load_perrow $(r ${SCPU[load_empty]} ${SCPU[load_perrow]})"
[ -n "${T[pandera]:-}" ] && echo "validate/pandera $(r ${T[validate]} ${T[pandera]}) (goal <= 1)"
[ -n "${T[psycopg]:-}" ] && echo "psycopg/load $(r ${T[psycopg]} ${T[load_empty]})"
[ "${PAIRS:-0}" != 0 ] && echo "load/floor_copy per pair: $PAIR_RATIOS; median $(echo $PAIR_RATIOS | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}')"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
