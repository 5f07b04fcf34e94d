"""The peers' no-op tasks for bench/queue (RQ imports bench_tasks.noop; Celery runs bench_tasks.cnoop)."""
import os
from celery import Celery


def noop():
    return None


app = Celery("bench_tasks", broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="cnoop")
def cnoop():
    return None
