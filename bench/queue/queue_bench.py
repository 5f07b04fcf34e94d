"""Driver of bench/queue: ours (nfldb worker) vs RQ vs Celery vs the redis-benchmark floor, same redis-server.

Each system: FLUSHALL, enqueue TASKS no-op tasks, then start P worker processes. The drain is timed from the
first task leaving the queue (so process start-up is not counted) until the queue has nothing ready or in flight:
ours until ready + in-flight is 0 (a task leaves in-flight only after its result row committed in PostgreSQL),
RQ until the queue and its started registry are empty, Celery until its list and unacked hash are empty.
Redis commands per task come from INFO commandstats deltas over the drain (the poller's own calls removed).
"""
import argparse, json, os, subprocess, sys, time
import redis

ap = argparse.ArgumentParser()
ap.add_argument("--nfldb", required=True)
ap.add_argument("--redis-port", type=int, required=True)
ap.add_argument("--tasks", type=int, default=10000)
ap.add_argument("--runs", type=int, default=1)
ap.add_argument("--workdir", required=True)
ap.add_argument("--concurrency", type=int, default=1, help="handler threads per nfldb worker process")
args = ap.parse_args()
URL = f"redis://127.0.0.1:{args.redis_port}/0"
r = redis.Redis(port=args.redis_port)
N = args.tasks
HERE = os.path.dirname(os.path.abspath(__file__))


def load():
    return open("/proc/loadavg").read().split()[0]


def commandstats():
    total, evals = 0, 0
    for name, v in r.info("commandstats").items():
        total += v["calls"]
        if name in ("cmdstat_evalsha", "cmdstat_eval"):
            evals += v["calls"]
    return total, evals


def psql(sql):
    return subprocess.run(["psql", "-X", "-qAt", "-d", os.environ["NFLDB_DSN"], "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def drain(name, start_workers, remaining, procs):
    """Start workers, poll until done; return tasks/s, commands/task, evalsha calls/task, load."""
    polls = 0
    t_start = time.perf_counter()
    workers = start_workers()
    try:
        # The clock starts when the first task left the queue.
        while True:
            left = remaining(); polls += 1
            if left < N:
                break
            if time.perf_counter() - t_start > 120:
                raise SystemExit(f"{name}: no task taken within 120 s")
            time.sleep(0.002)
        t0 = time.perf_counter()
        c0, e0 = commandstats()
        poll_calls = 0
        while True:
            left = remaining(); poll_calls += 1
            if left == 0:
                break
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"{name}: not drained within 600 s ({left} left)")
            time.sleep(0.005)
        t1 = time.perf_counter()
        c1, e1 = commandstats()
        la = load()
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill(); w.wait()
    per_poll = remaining.calls_per_poll + 1  # + the INFO
    cmds = (c1 - c0 - poll_calls * remaining.calls_per_poll - 1) / N
    evals = (e1 - e0) / N
    return N / (t1 - t0), cmds, evals, la, workers


# ---- ours -----------------------------------------------------------------------------------------------
def ours(procs):
    r.flushall()
    psql("TRUNCATE nfl.task_results")
    env = dict(os.environ, NFLDB_REDIS_URL=URL, NFLDB_LOG_LEVEL="error")
    t = time.perf_counter()
    subprocess.run([args.nfldb, "queue", "submit", "noop", "--queue", "bench", "--count", str(N)], env=env, check=True, capture_output=True)
    enqueue = N / (time.perf_counter() - t)

    def start():
        return [subprocess.Popen([args.nfldb, "worker", "--queues", "bench", "--concurrency", str(args.concurrency), "--format", "json"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(procs)]

    def remaining():
        p = r.pipeline(transaction=False)
        p.zcard("nfldb:q:ready:bench"); p.zcard("nfldb:q:inflight:bench")
        a, b = p.execute()
        return a + b
    remaining.calls_per_poll = 2
    rate, cmds, evals, la, workers = drain("nfldb", start, remaining, procs)
    rows = int(psql("SELECT count(*) FROM nfl.task_results WHERE status = 'succeeded'"))
    trips = 0
    for w in workers:
        out = w.stdout.read()
        try:
            trips += json.loads(out).get("redis_round_trips", 0)
        except Exception:
            pass
    if rows != N:
        raise SystemExit(f"nfldb: {rows} result rows, expected {N}")
    return dict(rate=rate, cmds=cmds, evals=evals, load=la, enqueue=enqueue, trips=trips / N, rows=rows)


# ---- RQ ---------------------------------------------------------------------------------------------------
def rq_run(procs):
    from rq import Queue
    r.flushall()
    q = Queue("bench", connection=r)
    t = time.perf_counter()
    with r.pipeline() as pipe:
        q.enqueue_many([Queue.prepare_data("bench_tasks.noop") for _ in range(N)], pipeline=pipe)
        pipe.execute()
    enqueue = N / (time.perf_counter() - t)
    env = dict(os.environ, PYTHONPATH=HERE)

    def start():
        return [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "-w", "rq.worker.SimpleWorker", "--url", URL, "bench",
                                  "--logging_level", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for _ in range(procs)]

    def remaining():
        p = r.pipeline(transaction=False)
        p.llen("rq:queue:bench"); p.zcard("rq:wip:bench")
        a, b = p.execute()
        return a + b
    remaining.calls_per_poll = 2
    rate, cmds, evals, la, _ = drain("rq", start, remaining, procs)
    return dict(rate=rate, cmds=cmds, evals=evals, load=la, enqueue=enqueue, trips=None)


# ---- Celery -----------------------------------------------------------------------------------------------
def celery_run(procs):
    r.flushall()
    env = dict(os.environ, PYTHONPATH=HERE, BENCH_BROKER=URL)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import bench_tasks as b\nfor _ in range({N}): b.cnoop.delay()"], env=env, check=True)
    enqueue = N / (time.perf_counter() - t)

    def start():
        return [subprocess.Popen(["celery", "-A", "bench_tasks", "worker", "--pool", "solo", "--concurrency", "1", "-Q", "celery",
                                  "--loglevel", "WARNING", "-n", f"w{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(procs)]

    def remaining():
        p = r.pipeline(transaction=False)
        p.llen("celery"); p.hlen("unacked")
        a, b = p.execute()
        return a + b
    remaining.calls_per_poll = 2
    rate, cmds, evals, la, _ = drain("celery", start, remaining, procs)
    return dict(rate=rate, cmds=cmds, evals=evals, load=la, enqueue=enqueue, trips=None)


# ---- floor ------------------------------------------------------------------------------------------------
FLOOR = open(os.path.join(HERE, "floor.lua")).read()


def floor():
    """redis-benchmark running floor.lua: K = 256 tasks (our largest claim) per call, 2 clients; tasks/s = calls/s x K."""
    r.flushall()
    sha = r.script_load(FLOOR)
    k, calls = 256, max(400, N // 256)
    c0, _ = commandstats()
    out = subprocess.run(["redis-benchmark", "-p", str(args.redis_port), "-c", "2", "-n", str(calls), "-r", "100000000",
                          "--csv", "EVALSHA", sha, "0", "__rand_int__", str(k)], check=True, capture_output=True, text=True).stdout
    c1, _ = commandstats()
    rate = float(out.strip().splitlines()[-1].split(",")[1].strip('"')) * k
    return dict(rate=rate, cmds=(c1 - c0) / (calls * k), evals=1 / k, load=load(), enqueue=None, trips=1 / k)


results = {}
for run in range(args.runs):
    for procs in (1, 2):
        for name, fn in (("nfldb", ours), ("rq", rq_run), ("celery", celery_run)):
            res = fn(procs)
            results.setdefault((name, procs), []).append(res)
            print(f"  run {run + 1} {name} x{procs}: {res['rate']:,.0f} tasks/s, {N / res['rate']:.2f} s (load {res['load']})", flush=True)
    results.setdefault(("floor", 0), []).append(floor())


def med(rs, key):
    v = sorted(x[key] for x in rs if x[key] is not None)
    return v[len(v) // 2] if v else None


fl = med(results[("floor", 0)], "rate")
print()
print(f"bench/queue: {N:,} no-op tasks, {args.runs} run(s), medians; nfldb with durable rows in nfl.task_results, "
      f"{args.concurrency} handler thread(s) per process; load average at the end of each drain")
print(f"{'system':<22}{'tasks/s':>9}{'vs RQ':>8}{'vs Celery':>10}{'vs floor':>9}{'cmds/task':>10}{'EVALSHA/task':>13}{'round trips/task':>17}{'enqueue/s':>10}{'load':>6}")
for procs in (1, 2):
    rq_rate = med(results[("rq", procs)], "rate")
    ce_rate = med(results[("celery", procs)], "rate")
    for name in ("nfldb", "rq", "celery"):
        rs = results[(name, procs)]
        rate = med(rs, "rate")
        trips = med(rs, "trips")
        enq = med(rs, "enqueue")
        print(f"{name + ' x' + str(procs) + ' proc':<22}{rate:>9,.0f}{rate / rq_rate:>8.1f}{rate / ce_rate:>10.1f}{rate / fl:>9.2f}"
              f"{med(rs, 'cmds'):>10.1f}{med(rs, 'evals'):>13.2f}{(f'{trips:.3f}' if trips is not None else '-'):>17}"
              f"{(f'{enq:,.0f}' if enq else '-'):>10}{rs[-1]['load']:>6}")
rs = results[("floor", 0)]
print(f"{'floor (redis-benchmark)':<22}{fl:>9,.0f}{'':>8}{'':>10}{1.0:>9.2f}{med(rs, 'cmds'):>10.1f}{med(rs, 'evals'):>13.3f}{med(rs, 'trips'):>17.3f}{'-':>10}{rs[-1]['load']:>6}")
print("floor: redis-benchmark -c 2 running bench/queue/floor.lua: per call, 256 tasks enqueued, claimed and acknowledged with the "
      "same Redis commands as our scripts (no worker, no handler, no PostgreSQL). cmds/task counts commands run inside scripts; "
      "nfldb and floor exclude the enqueue except the floor (whose enqueue is inside its call).")
