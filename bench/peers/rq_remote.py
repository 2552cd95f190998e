#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""rq_remote.py - RQ peer of the remote-executor round-trip measurement.

  rq_remote.py worker URL        a worker (run from bench/peers so it imports this module)
  rq_remote.py pingpong URL N    N sequential round trips: us per trip (one JSON line)
"""
import json
import sys
import time

from redis import Redis
from rq import Queue, Worker


def noop():
    return 1


def main():
    mode, url = sys.argv[1], sys.argv[2]
    conn = Redis.from_url(url)
    q = Queue("rqbench", connection=conn)
    if mode == "worker":
        Worker([q], connection=conn).work(logging_level="WARNING")
        return
    n = int(sys.argv[3])
    t0 = time.perf_counter()
    for _ in range(n):
        job = q.enqueue("rq_remote.noop")
        while job.get_status(refresh=True) not in ("finished", "failed"):
            time.sleep(0.0005)
        assert job.result == 1
    dt = time.perf_counter() - t0
    print(json.dumps({"case": "rq_pingpong", "unit": "us", "value": round(dt * 1e6 / n, 2), "n": n,
                      "seconds": round(dt, 4)}))


if __name__ == "__main__":
    main()
