#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""rq_remote.py - RQ peer of the remote-executor round-trip measurement.

  rq_remote.py worker URL        a worker (run from bench/peers so it imports this module)
  rq_remote.py pingpong URL N    N sequential round trips
"""
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
    print(f"rq pingpong {n} {dt:.3f} s {n / dt:.0f}/s")


if __name__ == "__main__":
    main()
