#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""celery_remote.py - Celery peer of the remote-executor measurements
(bench/peers/remote_bench.c): the same no-op task through a Redis broker and
result backend.

  celery_remote.py worker URL PROCS      a worker (prefork pool), until SIGTERM
  celery_remote.py pingpong URL N        N sequential round trips: us per trip
  celery_remote.py batch URL N           N tasks submitted at once, then all results: tasks/s
(one JSON line).
"""
import json
import sys
import time

from celery import Celery

url = sys.argv[2]
app = Celery("celery_remote", broker=url, backend=url)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True)


@app.task
def noop():
    return 1


def main():
    mode, n = sys.argv[1], int(sys.argv[3])
    if mode == "worker":
        app.worker_main(["worker", "-P", "prefork", "-c", str(n), "-l", "WARNING", "--without-gossip",
                         "--without-mingle", "--without-heartbeat"])
        return
    t0 = time.perf_counter()
    if mode == "pingpong":
        for _ in range(n):
            assert noop.delay().get(timeout=60) == 1
    elif mode == "batch":
        rs = [noop.delay() for _ in range(n)]
        assert all(r.get(timeout=600) == 1 for r in rs)
    dt = time.perf_counter() - t0
    value = dt * 1e6 / n if mode == "pingpong" else n / dt
    print(json.dumps({"case": "celery_" + mode, "unit": "us" if mode == "pingpong" else "tasks/s",
                      "value": round(value, 2), "n": n, "seconds": round(dt, 4)}))


if __name__ == "__main__":
    main()
