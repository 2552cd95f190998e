# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""bench/crawl_cases.py - the cfcrawl cases of bench/run.py that need more than nginx.

    crawl_latency  a 5,000-page site (plus its index) behind tools/hostile_http.py, every
                   answer held back 100 ms: cfcrawl --concurrency 256 --threads 2 against the
                   ideal 2,560 pages/s (256 transfers / 0.1 s); the process's thread count is
                   sampled from /proc while it runs.  Reference row: bench/peers/py_crawl.py
                   (ThreadPoolExecutor, 32 threads) on the same site.
    crawl_fanout   pages of 20,000 fresh links each, --max-pages 300: peak RSS of cfcrawl
                   (ru_maxrss from wait4).

Each case function takes the Bench object and returns (cfutures runs, peer runs); finish()
completes the result row (ratio, target, extra figures).
"""
import json
import os
import re
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SERVER = os.path.join(TOP, "tools", "hostile_http.py")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

IDEAL = 256 / 0.1  # pages/s: 256 transfers in flight, 100 ms each

# key: (what, unit, peer name, how the ratio is formed, target, direction), as bench/run.py's CASES
CASES = {
    "crawl_latency": ("cfcrawl --concurrency 256 --threads 2, 5,000 pages answered after 100 ms each",
                      "pages/s", "Python ThreadPoolExecutor + urllib, 32 threads", "cf/ideal", 0.7, ">="),
    "crawl_fanout": ("cfcrawl --max-pages 300, pages of 20,000 fresh links each, peak RSS", "MiB",
                     None, "cf", 64, "<="),
}


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([PY, SERVER] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        m = re.match(r"port (\d+)", self.proc.stdout.readline())
        if not m:
            raise RuntimeError("hostile_http.py did not start")
        self.base = "http://127.0.0.1:%s" % m.group(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_cfcrawl(cmd, timeout=600):
    """Run cfcrawl --json; returns (summary, peak RSS bytes, most threads seen)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    most = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.01):
            try:
                most[0] = max(most[0], len(os.listdir("/proc/%d/task" % p.pid)))
            except OSError:
                return

    t = threading.Thread(target=sample)
    t.start()
    err = []
    te = threading.Thread(target=lambda: err.append(p.stderr.read()))
    te.start()
    out = p.stdout.read()
    te.join()
    _, status, ru = os.wait4(p.pid, 0)
    stop.set()
    t.join()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), rc, err[0][-500:]))
    summ = [json.loads(l)["summary"] for l in out.decode().splitlines() if '"summary"' in l][0]
    return summ, ru.ru_maxrss * 1024, most[0]


def crawl_latency(b):
    cfcrawl = os.path.join(b.build, "demos", "cfcrawl")
    pages = int(b.n(5000, 2000))
    cf_runs, py_runs, threads = [], [], []
    with Server("--pages", str(pages), "--latency-ms", "100") as srv:
        start = srv.base + "/site/"
        for i in range(b.reps_for("crawl_latency")):
            summ, _, nthreads = run_cfcrawl(
                [cfcrawl, "--json", "--concurrency", "256", "--host-connections", "256", "--threads", "2", "--depth", "-1",
                 "--max-pages", str(pages + 1), start])
            if summ["pages"] != pages + 1 or summ["errors"]:
                raise RuntimeError("crawl_latency: %s" % summ)
            cf_runs.append(summ["pages_per_second"])
            threads.append(nthreads)
            py = json.loads(subprocess.run([PY, os.path.join(HERE, "peers", "py_crawl.py"), "--concurrency", "32",
                                            start], capture_output=True, text=True, timeout=600,
                                           check=True).stdout.splitlines()[-1])
            py_runs.append(py["value"])
            print("  crawl_latency run %d: cfutures %.0f pages/s (%d pages, %d threads at most), python %.0f (%d)"
                  % (i + 1, cf_runs[-1], summ["pages"], nthreads, py_runs[-1], py["pages"]), file=sys.stderr,
                  flush=True)
    b.crawl_latency_threads = threads
    return cf_runs, py_runs


def crawl_fanout(b):
    cfcrawl = os.path.join(b.build, "demos", "cfcrawl")
    runs = []
    with Server("--fanout", "20000") as srv:
        for i in range(b.reps_for("crawl_fanout")):
            summ, rss, _ = run_cfcrawl([cfcrawl, "--json", "--max-pages", "300", "--depth", "-1",
                                        srv.base + "/fan/0"])
            if summ["pages"] != 300:
                raise RuntimeError("crawl_fanout: %s" % summ)
            runs.append(rss / 2 ** 20)
            print("  crawl_fanout run %d: peak RSS %.1f MiB (%d pages, %d links dropped, %d past --max-links)"
                  % (i + 1, runs[-1], summ["pages"], summ["links_dropped"], summ["links_capped"]),
                  file=sys.stderr, flush=True)
    return runs, []


def finish(b, row, cf, peer):
    """Complete the row of one of these cases; returns it."""
    if row["key"] == "crawl_latency":
        most = max(b.crawl_latency_threads)
        row["ratio"] = cf / IDEAL
        row["ideal"] = IDEAL
        row["threads_max"] = most
        row["peer_ratio"] = peer / IDEAL if peer else None
        row["met"] = row["ratio"] >= 0.7 and most <= 4
        row["target"] = ">= 0.7 of %d pages/s, <= 4 threads (max seen: %d)" % (IDEAL, most)
    return row
