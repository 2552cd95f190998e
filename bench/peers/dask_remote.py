#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""dask_remote.py - Dask distributed reference for the remote seed map
(bench/remote_cases.py): the seed map (items 1..N, K = 50) on a LocalCluster
of 2 worker processes (1 thread each), as client.map over 8 chunks.

  dask_remote.py N     prints one JSON line: seconds of the map (the cluster is up before the clock starts)
"""
import json
import sys
import time

from distributed import Client, LocalCluster


def seed_chunk(lo, hi):
    out = []
    for x in range(lo, hi):
        r = 0.0
        for k in range(1, 51):
            r += x ** (1 / k ** 1.5)
        out.append(r)
    return out


def main():
    n = int(sys.argv[1])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(seed_chunk, 1, 2).result()  # the workers are up and have the function
        parts = 8
        step = (n + parts - 1) // parts
        t0 = time.perf_counter()
        futs = client.map(seed_chunk, [1 + i * step for i in range(parts)],
                          [min(n + 1, 1 + (i + 1) * step) for i in range(parts)], pure=False)
        ys = [y for part in client.gather(futs) for y in part]
        dt = time.perf_counter() - t0
    assert len(ys) == n
    print(json.dumps({"case": "dask_map", "unit": "s", "value": round(dt, 4), "n": n}))


if __name__ == "__main__":
    main()
