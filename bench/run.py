#!/usr/bin/python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""bench/run.py - cfutures side by side with its peers, in one run on one machine.

Called by bench/run (which installs what is missing and builds first):

    bench/run.py BUILDDIR [--reps N] [--cases k1,k2,...] [--quick]

For every case, the cfutures program and its peer run alternately, --reps times
each (default 5; 3 for the slow ones); medians are compared.  Prints a markdown
table, writes bench/results.json (one object per case: key, unit, cfutures,
peer_name, peer, ratio, target, met, plus the raw runs) and bench/results.md,
and draws bench/results.png with gnuplot.

Rows: LABELS names each case for the chart; FLOORS adds a reference row under a case (a plain-C
program run in the same alternation); EXTRAS shows a second per-run field (CPU time) beside the
figure.  The table gives every figure with its unit as median (min-max) over the runs.  The chart
has one bar per target: ratio / target, turned so that 1.0 = met and higher is better.

The peers are real: libuv's uv_queue_work (bench/peers/uv_queue_work.c), the
system python3's concurrent.futures and multiprocessing (bench/peers/py_pool.py),
a ThreadPoolExecutor + urllib crawler (bench/peers/py_crawl.py) and
curl --parallel (bench/peers/curl_parallel.sh), against nginx on loopback.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tools"))
import webfixture  # noqa: E402
import crawl_cases  # noqa: E402
import remote_cases  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# key: (what, unit, peer name, how the ratio is formed, target, direction)
#   ratio "cf/peer" or "peer/cf" or "cf" (the cfutures figure itself); direction ">=" or "<=" (ratio
#   against target).  A new case: one line here, one line in LABELS, a method of Bench named like the key
#   that returns (cfutures runs, peer runs).  target None: a reference row (no target, no bar).
CASES = {
    "tp_batch": ("1,000,000 no-op tasks submitted at once, all callbacks run", "tasks/s",
                 "libuv uv_queue_work", "cf/peer", 1.25, ">="),
    "tp_pingpong": ("100,000 sequential submit -> callback round trips", "us",
                    "libuv uv_queue_work", "cf/peer", 0.5, "<="),
    "tp_idle_cpu": ("CPU time of an idle 2-worker pool over 2 s after a burst of 10,000 tasks", "ms",
                    None, "cf", 5.0, "<="),
    "pp_unchunked": ("100,000 no-op process-pool tasks, one per message", "us/task",
                     "Python multiprocessing.Pool.map(chunksize=1)", "cf/peer", 0.04, "<="),
    "pp_pingpong": ("10,000 sequential round trips through a process worker", "us",
                    "Python ProcessPoolExecutor.submit().result()", "cf/peer", 0.08, "<="),
    "pp_map_chunked": ("1,000,000 small items over the process pool, auto chunksize", "items/s",
                       "Python multiprocessing.Pool.map (default chunksize)", "cf/peer", 2.5, ">="),
    "scaling": ("seed map (99,999 items, K = 50) on 2 workers, both pools (smaller speed-up)", "x",
                "serial C, same run", "cf", 1.85, ">="),
    "chunk1": ("seed map (99,999 items, K = 50) with chunksize 1 vs auto-chunked, both pools (larger ratio)", "x",
               None, "cf", 2.0, "<="),
    "mem_pending": ("RSS growth per pending future, 1,000,000 futures queued", "bytes",
                    None, "cf", 128, "<="),
    "map_stream": ("10,000,000-item lazy map, peak RSS", "MiB", None, "cf", 64, "<="),
    "crawl": ("cfcrawl --concurrency 32, 2,000-page site on nginx", "pages/s",
              "Python ThreadPoolExecutor + urllib", "cf/peer", 10.0, ">="),
    "serve": ("/health p99 under wrk while 32 connections keep /fib?n=32 busy", "ms",
              None, "cf", 5.0, "<="),
    "serve_static": ("cfserve static files: wrk on a 4 KiB file, 32 keep-alive connections; then RSS growth "
                     "while 5 connections pipeline 32 GETs of a 16 MiB file", "req/s",
                     "nginx, one worker process, same root", "cf/peer", 0.7, ">="),
}
# Short names for the chart and the table's first column.
LABELS = {
    "tp_batch": "thread pool, 1M tasks, vs libuv",
    "tp_pingpong": "thread pool, 100k round trips, vs libuv",
    "tp_idle_cpu": "idle thread pool, CPU in 2 s",
    "pp_unchunked": "process pool, 100k tasks, vs multiprocessing",
    "pp_pingpong": "process pool, 10k round trips, vs Python",
    "pp_map_chunked": "process-pool map, 1M items, vs multiprocessing",
    "scaling": "speed-up on 2 workers, both pools",
    "chunk1": "chunksize 1 vs auto, slow-down",
    "mem_pending": "memory per pending future",
    "map_stream": "lazy map of 10M items, peak RSS",
    "crawl": "cfcrawl vs Python and curl",
    "serve": "cfserve /health p99 under load",
    "serve_static": "cfserve static files vs nginx",
    "crawl_latency": "cfcrawl, 5,000 slow pages, vs ideal",
    "crawl_fanout": "cfcrawl fan-out, peak RSS",
}
# Reference rows run inside a case (same alternation) and shown right after it: the floor, what
# the bare mechanisms cost with no library around them (bench/peers/floor_*.c).
FLOORS = {
    "tp_batch": ("floor_batch", "bare two-lock batch hand-off in C (16 per lock), same 1,000,000 tasks"),
    "tp_pingpong": ("floor_pingpong", "bare condvar + eventfd + epoll round trip in C, 100,000 trips"),
}
# Per-run fields shown beside the figure (name in the program's JSON, label, unit).
EXTRAS = {
    "tp_batch": ("cpu_ns_per_task", "CPU", "ns/task"),
    "tp_pingpong": ("cpu_us_per_trip", "CPU", "us/trip"),
}
SLOW = {"tp_pingpong", "pp_pingpong", "crawl", "serve", "scaling", "chunk1", "tp_idle_cpu", "serve_static"}
CASES.update(crawl_cases.CASES)
SLOW |= set(crawl_cases.CASES)
CASES.update(remote_cases.CASES)
LABELS.update(remote_cases.LABELS)
SLOW |= set(remote_cases.CASES)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run_json(cmd, timeout=600, env=None):
    """Run a program that prints one JSON line; return the parsed object."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr[-800:]))
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("%s printed no JSON: %r" % (" ".join(cmd), r.stdout[-300:]))
    return json.loads(lines[-1])


def med(xs):
    return statistics.median(xs)


class Bench:
    def __init__(self, build, reps, quick):
        self.build = build
        self.reps = reps
        self.quick = quick
        self.cfbench = os.path.join(build, "bench", "cfbench")
        self.uv = os.path.join(build, "bench", "peers", "uv_queue_work")
        self.pypool = os.path.join(HERE, "peers", "py_pool.py")
        self.peers = os.path.join(build, "bench", "peers")
        self.extras, self.floors = {}, {}
        self.tmp = tempfile.mkdtemp(prefix="cf-bench-")
        os.chmod(self.tmp, 0o755)

    def reps_for(self, key):
        return max(1, min(self.reps, 3)) if key in SLOW else self.reps

    def alternate(self, key, cf_cmd, peer_cmd, cf_field="value", peer_field="value", floor_cmd=None):
        """Run cfutures, its peer (and the floor program, if any) in turn; return the value lists.

        The extra field named in EXTRAS (CPU time) is kept in self.extras[key] = (cf runs, peer runs,
        floor runs), the floor's values in self.floors[key]."""
        cf_runs, peer_runs, floor_runs = [], [], []
        extra = EXTRAS.get(key, (None,))[0]
        ex = ([], [], [])
        for i in range(self.reps_for(key)):
            r = run_json(cf_cmd)
            cf_runs.append(r[cf_field])
            if extra:
                ex[0].append(r.get(extra))
            if peer_cmd:
                r = run_json(peer_cmd)
                peer_runs.append(r[peer_field])
                if extra:
                    ex[1].append(r.get(extra))
            if floor_cmd:
                r = run_json(floor_cmd)
                floor_runs.append(r["value"])
                if extra:
                    ex[2].append(r.get(extra))
            log("  %s run %d: cfutures %.6g%s%s" % (key, i + 1, cf_runs[-1],
                                                     ", peer %.6g" % peer_runs[-1] if peer_runs else "",
                                                     ", floor %.6g" % floor_runs[-1] if floor_runs else ""))
        if extra:
            self.extras[key] = ex
        if floor_cmd:
            self.floors[key] = floor_runs
        return cf_runs, peer_runs

    # -- the cases ---------------------------------------------------------
    def n(self, full, quick):
        return str(quick if self.quick else full)

    def tp_batch(self):
        n = self.n(1000000, 200000)
        return self.alternate("tp_batch", [self.cfbench, "--case", "tp_batch", "--n", n],
                              [self.uv, "--case", "tp_batch", "--n", n, "--threads", "2"],
                              floor_cmd=[os.path.join(self.peers, "floor_batch"), "--n", n, "--threads", "2"])

    def tp_pingpong(self):
        n = self.n(100000, 20000)
        return self.alternate("tp_pingpong", [self.cfbench, "--case", "tp_pingpong", "--n", n],
                              [self.uv, "--case", "tp_pingpong", "--n", n, "--threads", "2"],
                              floor_cmd=[os.path.join(self.peers, "floor_pingpong"), "--n", n])

    def tp_idle_cpu(self):
        return self.alternate("tp_idle_cpu", [self.cfbench, "--case", "tp_idle_cpu", "--n", "10000"], None)

    def pp_unchunked(self):
        n = self.n(100000, 20000)
        return self.alternate("pp_unchunked", [self.cfbench, "--case", "pp_unchunked", "--n", n],
                              [PY, self.pypool, "--case", "pp_unchunked", "--n", n])

    def pp_pingpong(self):
        n = self.n(10000, 2000)
        return self.alternate("pp_pingpong", [self.cfbench, "--case", "pp_pingpong", "--n", n],
                              [PY, self.pypool, "--case", "pp_pingpong", "--n", n])

    def pp_map_chunked(self):
        n = self.n(1000000, 200000)
        return self.alternate("pp_map_chunked", [self.cfbench, "--case", "pp_map_chunked", "--n", n],
                              [PY, self.pypool, "--case", "pp_map_chunked", "--n", n])

    def scaling(self):
        return self.alternate("scaling", [self.cfbench, "--case", "scaling"], None)

    def chunk1(self):
        return self.alternate("chunk1", [self.cfbench, "--case", "chunk1"], None)

    def mem_pending(self):
        return self.alternate("mem_pending", [self.cfbench, "--case", "mem_pending", "--n", self.n(1000000, 200000)],
                              None)

    def map_stream(self):
        return self.alternate("map_stream", [self.cfbench, "--case", "map_stream", "--n", self.n(10000000, 2000000)],
                              None)

    def crawl(self):
        site = os.path.join(self.tmp, "site")
        pages = int(self.n(2000, 500))
        subprocess.run([PY, os.path.join(TOP, "tools", "gensite.py"), site, "--pages", str(pages)], check=True)
        cfcrawl = os.path.join(self.build, "demos", "cfcrawl")
        cf_runs, py_runs, curl_runs = [], [], []
        with webfixture.Nginx(site, workers=2) as ng:
            start = ng.url("/")
            urlfile = os.path.join(self.tmp, "urls.txt")
            for i in range(self.reps_for("crawl")):
                r = subprocess.run([cfcrawl, "--json", "--concurrency", "32", "--host-connections", "32",
                                    "--depth", "-1", "--max-pages",
                                    "1000000", start], capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    raise RuntimeError("cfcrawl failed: " + r.stderr[-500:])
                rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
                summ = [x["summary"] for x in rows if "summary" in x][0]
                cf_runs.append(summ["pages_per_second"])
                with open(urlfile, "w") as f:
                    f.write("\n".join(x["url"] for x in rows if "url" in x) + "\n")
                py = run_json([PY, os.path.join(HERE, "peers", "py_crawl.py"), "--concurrency", "32", start])
                py_runs.append(py["value"])
                cu = run_json(["sh", os.path.join(HERE, "peers", "curl_parallel.sh"), "--concurrency", "32", urlfile])
                curl_runs.append(cu["value"])
                log("  crawl run %d: cfutures %.0f pages/s (%d pages), python %.0f (%d), curl %.0f (%d)" % (
                    i + 1, cf_runs[-1], summ["pages"], py_runs[-1], py["pages"], curl_runs[-1], cu["pages"]))
        self.curl_runs = curl_runs
        return cf_runs, py_runs

    crawl_latency = crawl_cases.crawl_latency
    crawl_fanout = crawl_cases.crawl_fanout
    remote_pingpong = remote_cases.remote_pingpong
    remote_batch = remote_cases.remote_batch
    remote_map = remote_cases.remote_map
    remote_map_dask = remote_cases.remote_map_dask

    def serve(self):
        cfserve = os.path.join(self.build, "demos", "cfserve")
        root = os.path.join(self.tmp, "serve-root")
        os.makedirs(root, exist_ok=True)
        secs = "5" if self.quick else "10"
        p99s, details = [], []
        for i in range(self.reps_for("serve")):
            srv = subprocess.Popen([cfserve, "--port", "0", "--root", root, "--threads", "2", "--procs", "2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = srv.stdout.readline()
                m = re.search(r"127\.0\.0\.1:(\d+)", line)
                if not m:
                    raise RuntimeError("cfserve did not start: %r %s" % (line, srv.stderr.read()[-500:]))
                base = "http://127.0.0.1:%s" % m.group(1)
                load = subprocess.Popen(["wrk", "-t1", "-c32", "-d" + str(int(secs) + 2) + "s", "--timeout", "30s",
                                         base + "/fib?n=32"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
                time.sleep(1)  # let the /fib load reach its steady state before measuring
                # The probe is one connection: it measures /health latency under the /fib load
                # rather than adding a load of its own.
                probe = subprocess.run(["wrk", "-t1", "-c1", "-d" + secs + "s", "--latency", "--timeout", "5s",
                                        base + "/health"], capture_output=True, text=True, timeout=120)
                load_out, _ = load.communicate(timeout=120)
            finally:
                srv.send_signal(signal.SIGTERM)
                try:
                    srv.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    srv.kill()
            h = parse_wrk(probe.stdout)
            f = parse_wrk(load_out)
            p99s.append(h["p99_ms"])
            details.append({"health": h, "fib": f, "exit": srv.returncode})
            log("  serve run %d: /health p50 %.3f ms p99 %.3f ms, %d requests, %d non-200; /fib %d requests, "
                "%d non-200; cfserve exit %s" % (i + 1, h["p50_ms"], h["p99_ms"], h["requests"], h["bad"],
                                                 f["requests"], f["bad"], srv.returncode))
        self.serve_details = details
        return p99s, []

    def serve_static(self):
        """wrk req/s on a 4 KiB file, cfserve and nginx alternating; then cfserve's RSS under a pipelined 16 MiB load."""
        cfserve = os.path.join(self.build, "demos", "cfserve")
        root = os.path.join(self.tmp, "static-root")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "4k.bin"), "wb") as f:
            f.write(os.urandom(4096))
        with open(os.path.join(root, "16m.bin"), "wb") as f:
            f.write(os.urandom(16 << 20))
        secs = "3" if self.quick else "8"

        def wrk(url):
            out = subprocess.run(["wrk", "-t1", "-c32", "-d" + secs + "s", "--timeout", "10s", url],
                                 capture_output=True, text=True, timeout=120).stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            w = parse_wrk(out)
            if not m or w["bad"] or w["errors"]:
                raise RuntimeError("wrk on %s: %s" % (url, out[-500:]))
            return float(m.group(1))

        def start_cfserve():
            srv = subprocess.Popen([cfserve, "--port", "0", "--root", root, "--threads", "2", "--procs", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            m = re.search(r"127\.0\.0\.1:(\d+)", srv.stdout.readline())
            if not m:
                raise RuntimeError("cfserve did not start: %s" % srv.stderr.read()[-500:])
            return srv, int(m.group(1))

        def stop(srv):
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.kill()

        def kib(pid, key):
            with open("/proc/%d/status" % pid) as f:
                return int(next(l for l in f if l.startswith(key + ":")).split()[1])

        cf_runs, ng_runs, growth = [], [], []
        for i in range(self.reps_for("serve_static")):
            srv, port = start_cfserve()
            try:
                cf_runs.append(wrk("http://127.0.0.1:%d/4k.bin" % port))
            finally:
                stop(srv)
            with webfixture.Nginx(root, workers=1) as ng:
                ng_runs.append(wrk(ng.url("/4k.bin")))
            # Memory: 5 connections pipeline 32 GETs of 16 MiB and read nothing for a while, then read all.
            srv, port = start_cfserve()
            try:
                base = kib(srv.pid, "VmRSS")
                conns = [socket.create_connection(("127.0.0.1", port), timeout=120) for _ in range(5)]
                for c in conns:
                    c.sendall(b"GET /16m.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 32)
                time.sleep(2)  # the load: clients that do not read
                for c in conns:
                    c.shutdown(socket.SHUT_WR)
                    while c.recv(1 << 20):
                        pass
                    c.close()
                growth.append((kib(srv.pid, "VmHWM") - base) / 1024.0)
            finally:
                stop(srv)
            log("  serve_static run %d: cfserve %.0f req/s, nginx %.0f req/s; pipelined 16 MiB: RSS growth %.1f MiB" % (
                i + 1, cf_runs[-1], ng_runs[-1], growth[-1]))
        self.static_growth = growth
        return cf_runs, ng_runs


def parse_wrk(out):
    def ms(s):
        v, unit = float(s[:-2] if s.endswith(("us", "ms")) else s[:-1]), s[-2:] if s.endswith(("us", "ms")) else s[-1]
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    res = {"requests": 0, "bad": 0, "errors": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["bad"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+(?:us|ms|s))" % pct, out, re.M)
        if m:
            res[key] = ms(m.group(1))
    return res


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            osname = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "?").strip('"')
    except OSError:
        pass
    return "%d CPUs (%s), %.0f GiB, %s, Linux %s" % (os.cpu_count(), cpu, mem, osname, platform.release())


def main():
    ap = argparse.ArgumentParser(description="cfutures benchmarks against their peers")
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run, not the figures)")
    ap.add_argument("--update-readme", action="store_true", help="put the table into README.md (Performance)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of bench/results.json that this run did not measure (each row says when "
                         "it was measured)")
    a = ap.parse_args()
    keys = [k for k in a.cases.split(",") if k]
    for k in keys:
        if k not in CASES:
            ap.error("unknown case %s (known: %s)" % (k, ", ".join(CASES)))

    b = Bench(os.path.abspath(a.build), a.reps, a.quick)
    results = []
    try:
        for key in keys:
            what, unit, peer_name, form, target, direction = CASES[key]
            log("== %s: %s" % (key, what))
            try:
                cf_runs, peer_runs = getattr(b, key)()
            except Exception as e:  # one failed case is reported in its row; the others still run
                log("  %s failed: %s" % (key, e))
                results.append({"key": key, "label": LABELS.get(key, key), "what": what, "unit": unit,
                                "cfutures": None, "peer_name": peer_name, "peer": None, "ratio": None,
                                "ratio_form": form, "target": None if target is None else "%s %g" % (direction, target),
                                "better": "higher" if direction == ">=" else "lower", "met": None if target is None else False,
                                "error": str(e)[-300:], "cfutures_runs": [], "peer_runs": []})
                continue
            cf = med(cf_runs)
            peer = med(peer_runs) if peer_runs else None
            if form == "cf/peer":
                ratio = cf / peer if peer else None
            elif form == "peer/cf":
                ratio = peer / cf if peer else None
            else:
                ratio = cf
            met = None if target is None else (
                ratio is not None and (ratio >= target if direction == ">=" else ratio <= target))
            row = {"key": key, "label": LABELS.get(key, key), "what": what, "unit": unit, "cfutures": cf,
                   "peer_name": peer_name, "peer": peer, "ratio": ratio, "ratio_form": form,
                   "target": None if target is None else "%s %g" % (direction, target),
                   "better": "higher" if direction == ">=" else "lower", "met": met,
                   "cfutures_runs": cf_runs, "peer_runs": peer_runs}
            if key in b.extras:
                name, label, eunit = EXTRAS[key]
                cf_ex, peer_ex, floor_ex = b.extras[key]
                row["extra"] = {"name": name, "label": label, "unit": eunit,
                                "cfutures": med(cf_ex) if cf_ex and None not in cf_ex else None,
                                "peer": med(peer_ex) if peer_ex and None not in peer_ex else None,
                                "floor": med(floor_ex) if floor_ex and None not in floor_ex else None,
                                "cfutures_runs": cf_ex, "peer_runs": peer_ex, "floor_runs": floor_ex}
            if key == "crawl":
                curl = med(b.curl_runs)
                row["peer2_name"] = "curl --parallel --parallel-max 32 (same URL list)"
                row["peer2"] = curl
                row["ratio2"] = cf / curl
                row["target2"] = ">= 1.2"
                row["peer2_runs"] = b.curl_runs
                row["met"] = met and cf / curl >= 1.2
            if key in crawl_cases.CASES:
                crawl_cases.finish(b, row, cf, peer)
            if key in remote_cases.CASES:
                remote_cases.finish(b, row, cf, peer)
            if key == "serve":
                ok = all(d["health"]["bad"] == 0 and d["fib"]["bad"] == 0 and d["health"]["errors"] == 0
                         and d["fib"]["errors"] == 0 and d["health"]["requests"] > 0 and d["fib"]["requests"] > 0
                         and d["exit"] == 0 for d in b.serve_details)
                row["all_200"] = ok
                row["runs"] = b.serve_details
                row["met"] = met and ok
            if key == "serve_static":
                row["rss_growth_mib"] = med(b.static_growth)
                row["rss_growth_runs"] = b.static_growth
                row["met"] = met and row["rss_growth_mib"] <= 32
            results.append(row)
            if key in b.floors:
                fkey, fwhat = FLOORS[key]
                fl = med(b.floors[key])
                results.append({"key": fkey, "label": "floor under " + key, "what": fwhat, "unit": unit,
                                "cfutures": None, "peer_name": "floor (bench/peers/%s.c)" % fkey, "peer": fl,
                                "ratio": cf / fl if fl else None, "ratio_form": "cf/floor", "target": None,
                                "better": row["better"], "met": None, "reference": True,
                                "cfutures_runs": [], "peer_runs": b.floors[key]})
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for r in results:
        r["measured"] = stamp
    if a.merge:
        results = merge_results(results)
    table = render_table(results, stamp, a.reps, a.quick)
    print(table)

    out = {"machine": machine(), "date": stamp, "reps": a.reps, "quick": a.quick, "cases": results}
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(HERE, "results-meta.json"), "w") as f:
        json.dump({k: v for k, v in out.items() if k != "cases"}, f, indent=1)
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(table)
    chart(results, stamp)
    if a.update_readme:
        readme = os.path.join(TOP, "README.md")
        with open(readme) as f:
            text = f.read()
        begin, end = "<!-- bench:begin -->\n", "<!-- bench:end -->"
        i, j = text.find(begin), text.find(end)
        if i >= 0 and j > i:
            with open(readme, "w") as f:
                f.write(text[:i + len(begin)] + table + text[j:])
        else:
            log("README.md has no bench:begin/bench:end markers: not updated")
    return 0


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return "%.3g M" % (v / 1e6)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3g" % v


def spread(runs, unit):
    """'median unit (min-max)' over the runs, units on every figure."""
    if not runs:
        return "-"
    m = med(runs)
    if len(runs) == 1:
        return "%s %s" % (fmt(m), unit)
    return "%s %s (%s–%s)" % (fmt(m), unit, fmt(min(runs)), fmt(max(runs)))


def merge_results(new):
    """The rows of the last results.json, with those of this run (and their floor rows) in their place."""
    try:
        with open(os.path.join(HERE, "results.json")) as f:
            old = json.load(f)
        with open(os.path.join(HERE, "results-meta.json")) as f:
            old_date = json.load(f).get("date")
    except (OSError, ValueError):
        return new
    fresh = {r["key"] for r in new}
    out, placed = [], False
    for r in old:
        r.setdefault("measured", old_date)
        owner = next((k for k, (fk, _) in FLOORS.items() if fk == r["key"]), None)
        if r["key"] in fresh or owner in fresh:
            if not placed:
                out.extend(new)
                placed = True
            continue
        out.append(r)
    if not placed:
        out.extend(new)
    return out


def render_table(results, stamp, reps, quick):
    dates = sorted({r.get("measured") or stamp for r in results})
    if len(dates) > 1:
        base = max(dates, key=lambda d: sum(1 for r in results if (r.get("measured") or stamp) == d))
        when = "%s on %s, except the rows marked with their own date (measured again after a change to the " \
               "code they measure)" % (base, machine())
    else:
        base = dates[0] if dates else stamp
        when = "%s on %s" % (base, machine())
    head = ("Measured %s.  Each figure: median (min–max) over %d runs (3 for the slow cases), "
            "cfutures and its peer alternating; the machine is shared, so wall-clock figures move between "
            "runs (docs/PERFORMANCE.md).%s" % (
                when, reps, " QUICK RUN: reduced inputs, not comparable." if quick else ""))
    lines = [head, "",
             "Targets: each row's ratio (cfutures / peer, or the cfutures figure itself where there is no peer) "
             "must reach its target in the direction shown (>= or <=); \"met\" compares the medians.  Floor rows "
             "are references, not targets: the bare mechanism in C, and how far cfutures is from it.", "",
             "| case | what | cfutures | peer | ratio | target | better is | met |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        unit = r["unit"]
        if r.get("error"):
            err = " ".join(r["error"].replace("|", "/").split())
            lines.append("| %s (`%s`) | %s | error: %s | - | - | %s | %s | %s |" % (
                r["label"] if (r.get("measured") or stamp) == base else "%s, measured %s" % (r["label"], r["measured"]),
                r["key"], r["what"], err, r["target"] or "-", r["better"],
                "-" if r["met"] is None else "**no**"))
            continue
        cf = spread(r["cfutures_runs"], unit)
        peer = "%s: %s" % (r["peer_name"], spread(r["peer_runs"], unit)) if r["peer"] is not None else "-"
        ex = r.get("extra")
        if ex and ex["cfutures"] is not None:
            cf += "; %s %s %s" % (ex["label"], fmt(ex["cfutures"]), ex["unit"])
            if ex["peer"] is not None:
                peer += "; %s %s %s" % (ex["label"], fmt(ex["peer"]), ex["unit"])
        if r.get("reference") and ex is None:
            prev = [x for x in results if x.get("extra") and FLOORS.get(x["key"], ("",))[0] == r["key"]]
            if prev and prev[0]["extra"]["floor"] is not None:
                e = prev[0]["extra"]
                peer += "; %s %s %s" % (e["label"], fmt(e["floor"]), e["unit"])
        if r["ratio"] is None:
            ratio = "-"
        elif r["ratio_form"] == "cf":
            ratio = "%s %s" % (fmt(r["ratio"]), unit)
        elif r["ratio_form"] == "cf/floor":
            ratio = "cfutures / floor: %s×" % fmt(r["ratio"])
        else:
            ratio = "%s×" % fmt(r["ratio"])
        plain = r["target"] is not None and re.fullmatch(r"[<>]= [0-9.e+-]+", r["target"])
        target = "-" if r["target"] is None else (
            "%s %s" % (r["target"], unit) if r["ratio_form"] == "cf" and plain else
            r["target"] + "×" if plain else r["target"])
        if r["key"] == "crawl":
            peer += "; %s: %s" % (r["peer2_name"], spread(r["peer2_runs"], unit))
            ratio += "; vs curl %s×" % fmt(r["ratio2"])
            target += "; vs curl %s×" % r["target2"]
        if r["key"] == "serve":
            ratio += "; all 200: %s" % ("yes" if r["all_200"] else "NO")
        if r["key"] == "serve_static":
            ratio += "; RSS growth %.1f MiB" % r["rss_growth_mib"]
            target += "; RSS growth <= 32 MiB"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        label = r["label"] if (r.get("measured") or stamp) == base else "%s, measured %s" % (r["label"], r["measured"])
        lines.append("| %s (`%s`) | %s | %s | %s | %s | %s | %s | %s |" % (
            label, r["key"], r["what"], cf, peer, ratio, target, r["better"], met))
    return "\n".join(lines) + "\n"


def score(ratio, target):
    """ratio / target, turned so that 1.0 = met exactly and more is better."""
    t = float(target.split()[1])
    return ratio / t if target.startswith(">=") else t / ratio if ratio else float("inf")


def bars(rows):
    """(label, score, met) for each target: one bar per target, so crawl has two."""
    out = []
    for r in rows:
        if r["key"] == "crawl":
            for label, ratio, target in (("cfcrawl vs Python", r["ratio"], r["target"]),
                                         ("cfcrawl vs curl", r["ratio2"], r["target2"])):
                sc = score(ratio, target)
                out.append((label, sc, sc >= 1))
        else:
            out.append((r["label"], score(r["ratio"], r["target"]), bool(r["met"])))
    return out


def chart(results, stamp):
    """One bar per target: ratio / target (1.0 = met), linear axis, value on each bar."""
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no chart")
        return
    rows = [r for r in results if r["target"] is not None and r["ratio"] is not None]
    if not rows:
        return
    data = os.path.join(HERE, "results.dat")
    top = 3.0
    with open(data, "w") as f:
        for i, (label, sc, ok) in enumerate(bars(rows)):
            shown = min(sc, top)
            cut = sc > top  # its value goes inside the bar, upright, so neighbours do not collide
            f.write('%d "%s" %.6g %.6g %s "%s" %s\n' % (i, label.replace('"', "'"), shown if ok else 0,
                                                          0 if ok else shown, "NaN" if cut else "%.6g" % shown,
                                                          ("%.2f" % sc) + (" >" if cut else ""),
                                                          "%.6g" % (top - 0.08) if cut else "NaN"))
    script = """
set terminal pngcairo size 1400,800 font ",11" noenhanced
set output '%s'
set title "cfutures against its targets: each bar is ratio / target (1.0 = target met exactly; higher is better)\\n%s; medians, see README; bars above 3 are cut (value printed, marked >)"
set style data boxes
set style fill solid 0.85 border -1
set boxwidth 0.7
set yrange [0:%g]
set grid ytics
set ytics 0.25
set ylabel "ratio / target (linear)"
set xtics rotate by -35 scale 0
set key top right
set bmargin 15
set rmargin 30
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "#222222" dt 2
plot '%s' using 1:3:xtic(2) lc rgb "#2e8b57" title "met", \\
     '' using 1:4 lc rgb "#d83b3b" title "missed", \\
     '' using 1:5:6 with labels offset 0,0.8 notitle, \\
     '' using 1:7:6 with labels rotate by 90 right tc rgb "white" notitle
""" % (os.path.join(HERE, "results.png"), stamp, top + 0.4, data)
    r = subprocess.run([gp], input=script, text=True, capture_output=True)
    os.unlink(data)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-400:])


if __name__ == "__main__":
    sys.exit(main())
