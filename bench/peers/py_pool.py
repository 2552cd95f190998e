#!/usr/bin/python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""py_pool.py - Python standard-library process-pool peers for cfutures.

Run with the system interpreter (/usr/bin/python3, 3.11) and the default
start method ('fork' on Linux).  Only the standard library is used.

Cases (--case):
  pp_unchunked    multiprocessing.Pool(W).map(noop, range(N), chunksize=1);
                  the pool is created (and its workers started) before timing,
                  only the map() call is timed.  unit "us": microseconds per
                  task.  Default N = 100000.
  pp_pingpong     concurrent.futures.ProcessPoolExecutor(W): warm up with a
                  few submits, then N times ex.submit(noop, i).result()
                  sequentially.  unit "us": microseconds per round trip.
                  Default N = 10000.
  pp_map_chunked  multiprocessing.Pool(W).map(small, range(N)) with the
                  DEFAULT chunksize, small(x) = x * x + 1.  Pool created
                  before timing.  unit "items/s".  Default N = 1000000.

Usage: py_pool.py --case CASE [--n N] [--workers W]   (W defaults to 2)

Prints exactly one JSON line on stdout; diagnostics go to stderr.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import time


def noop(x):
    return x


def small(x):
    return x * x + 1


DEFAULT_N = {
    "pp_unchunked": 100000,
    "pp_pingpong": 10000,
    "pp_map_chunked": 1000000,
}


def _warm_pool(pool, workers):
    # Make sure every worker process is up and has run a task before timing.
    pool.map(noop, range(workers * 4), chunksize=1)


def case_pp_unchunked(n, workers):
    with multiprocessing.Pool(workers) as pool:
        _warm_pool(pool, workers)
        t0 = time.perf_counter()
        res = pool.map(noop, range(n), chunksize=1)
        secs = time.perf_counter() - t0
    if len(res) != n or res[-1] != n - 1:
        raise RuntimeError("pp_unchunked: wrong result")
    return {"unit": "us", "value": secs * 1e6 / n, "seconds": secs}


def case_pp_pingpong(n, workers):
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        # ProcessPoolExecutor starts its workers lazily; a few warm-up
        # round trips start them all and settle the management thread.
        for f in [ex.submit(noop, i) for i in range(workers * 4)]:
            f.result()
        for i in range(100):
            ex.submit(noop, i).result()
        t0 = time.perf_counter()
        for i in range(n):
            if ex.submit(noop, i).result() != i:
                raise RuntimeError("pp_pingpong: wrong result")
        secs = time.perf_counter() - t0
    return {"unit": "us", "value": secs * 1e6 / n, "seconds": secs}


def case_pp_map_chunked(n, workers):
    with multiprocessing.Pool(workers) as pool:
        _warm_pool(pool, workers)
        t0 = time.perf_counter()
        res = pool.map(small, range(n))
        secs = time.perf_counter() - t0
    if len(res) != n or res[-1] != (n - 1) * (n - 1) + 1:
        raise RuntimeError("pp_map_chunked: wrong result")
    # Pool.map's default chunksize: ceil(n / (4 * workers)).
    chunksize, extra = divmod(n, workers * 4)
    if extra:
        chunksize += 1
    return {"unit": "items/s", "value": n / secs, "seconds": secs,
            "chunksize": chunksize}


CASES = {
    "pp_unchunked": case_pp_unchunked,
    "pp_pingpong": case_pp_pingpong,
    "pp_map_chunked": case_pp_map_chunked,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n = args.n if args.n is not None else DEFAULT_N[args.case]
    if n <= 0 or args.workers <= 0:
        ap.error("--n and --workers must be positive")

    out = {"case": args.case}
    out.update(CASES[args.case](n, args.workers))
    out["n"] = n
    out["workers"] = args.workers
    out["start_method"] = multiprocessing.get_start_method()
    out["python"] = "%d.%d.%d" % sys.version_info[:3]
    # Reorder so the required keys come first.
    line = {k: out[k] for k in ("case", "unit", "value", "n")}
    line.update((k, v) for k, v in out.items() if k not in line)
    sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
