#!/usr/bin/python3
"""bench/run.py - cfutures side by side with its peers, in one run on one machine.

Called by bench/run (which installs what is missing and builds first):

    bench/run.py BUILDDIR [--reps N] [--cases k1,k2,...] [--quick]

For every case, the cfutures program and its peer run alternately, --reps times
each (default 5; 3 for the slow ones); medians are compared.  Prints a markdown
table, writes bench/results.json (one object per case: key, unit, cfutures,
peer_name, peer, ratio, target, met, plus the raw runs) and bench/results.md,
and draws bench/results.png with gnuplot.

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

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# key: (what, unit, peer name, how the ratio is formed, target, direction)
#   ratio "cf/peer" or "peer/cf"; direction ">=" or "<=" (ratio against target)
CASES = {
    "tp_batch": ("1,000,000 no-op tasks submitted at once, all callbacks run", "tasks/s",
                 "libuv uv_queue_work", "cf/peer", 3.0, ">="),
    "tp_pingpong": ("100,000 sequential submit -> callback round trips", "us",
                    "libuv uv_queue_work", "cf/peer", 0.5, "<="),
    "pp_unchunked": ("100,000 no-op process-pool tasks, one per message", "us/task",
                     "Python multiprocessing.Pool.map(chunksize=1)", "cf/peer", 1 / 20, "<="),
    "pp_pingpong": ("10,000 sequential round trips through a process worker", "us",
                    "Python ProcessPoolExecutor.submit().result()", "cf/peer", 1 / 10, "<="),
    "pp_map_chunked": ("1,000,000 small items over the process pool, auto chunksize", "items/s",
                       "Python multiprocessing.Pool.map (default chunksize)", "cf/peer", 2.0, ">="),
    "scaling": ("seed map (99,999 items, K = 50) on 2 workers, both pools (smaller speed-up)", "x",
                "serial C, same run", "cf", 1.85, ">="),
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
SLOW = {"tp_pingpong", "pp_pingpong", "crawl", "serve", "scaling", "serve_static"}
CASES.update(crawl_cases.CASES)
SLOW |= set(crawl_cases.CASES)


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
        self.tmp = tempfile.mkdtemp(prefix="cf-bench-")
        os.chmod(self.tmp, 0o755)

    def reps_for(self, key):
        return max(1, min(self.reps, 3)) if key in SLOW else self.reps

    def alternate(self, key, cf_cmd, peer_cmd, cf_field="value", peer_field="value"):
        cf_runs, peer_runs = [], []
        for i in range(self.reps_for(key)):
            cf_runs.append(run_json(cf_cmd)[cf_field])
            if peer_cmd:
                peer_runs.append(run_json(peer_cmd)[peer_field])
            log("  %s run %d: cfutures %.6g%s" % (key, i + 1, cf_runs[-1],
                                                   ", peer %.6g" % peer_runs[-1] if peer_runs else ""))
        return cf_runs, peer_runs

    # -- the cases ---------------------------------------------------------
    def n(self, full, quick):
        return str(quick if self.quick else full)

    def tp_batch(self):
        n = self.n(1000000, 200000)
        return self.alternate("tp_batch", [self.cfbench, "--case", "tp_batch", "--n", n],
                              [self.uv, "--case", "tp_batch", "--n", n, "--threads", "2"])

    def tp_pingpong(self):
        n = self.n(100000, 20000)
        return self.alternate("tp_pingpong", [self.cfbench, "--case", "tp_pingpong", "--n", n],
                              [self.uv, "--case", "tp_pingpong", "--n", n, "--threads", "2"])

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
            cf_runs, peer_runs = getattr(b, key)()
            cf = med(cf_runs)
            peer = med(peer_runs) if peer_runs else None
            if form == "cf/peer":
                ratio = cf / peer if peer else None
            else:
                ratio = cf
            met = ratio is not None and (ratio >= target if direction == ">=" else ratio <= target)
            row = {"key": key, "what": what, "unit": unit, "cfutures": cf, "peer_name": peer_name, "peer": peer,
                   "ratio": ratio, "target": "%s %g" % (direction, target), "met": met,
                   "cfutures_runs": cf_runs, "peer_runs": peer_runs}
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
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = "Measured %s on %s; medians of %d runs%s, cfutures and peer alternating.%s" % (
        stamp, machine(), a.reps, " (3 for the slow cases)" if a.reps > 3 else "",
        " QUICK RUN: reduced inputs, not comparable." if a.quick else "")
    lines = [head, "",
             "| key | what | cfutures | peer | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        peer = "%s: %s" % (r["peer_name"], fmt(r["peer"])) if r["peer"] is not None else "-"
        ratio = fmt(r["ratio"]) if r["ratio"] is not None else "-"
        target = r["target"]
        if r["key"] == "crawl":
            peer += "; %s: %s" % (r["peer2_name"], fmt(r["peer2"]))
            ratio += "; %s" % fmt(r["ratio2"])
            target += "; %s" % r["target2"]
        if r["key"] == "serve":
            ratio += "; all 200: %s" % ("yes" if r["all_200"] else "NO")
        if r["key"] == "serve_static":
            ratio += "; RSS growth %.1f MiB" % r["rss_growth_mib"]
            target += "; <= 32 MiB"
        lines.append("| `%s` | %s | %s %s | %s | %s | %s | %s |" % (
            r["key"], r["what"], fmt(r["cfutures"]), r["unit"], peer, ratio, target, "yes" if r["met"] else "**no**"))
    table = "\n".join(lines) + "\n"
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
    return 0


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1e5:
        return "%.3g M" % (v / 1e6) if abs(v) >= 1e6 else "%.0f" % v
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3g" % v


def chart(results, stamp):
    """Bar per case: how far the ratio is from its target (>= 1: target met), log scale."""
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no chart")
        return
    data = os.path.join(HERE, "results.dat")
    with open(data, "w") as f:
        for r in results:
            if r["ratio"] is None:
                continue
            t = float(r["target"].split()[1])
            score = r["ratio"] / t if r["target"].startswith(">=") else t / r["ratio"]
            if r["key"] == "crawl":
                score = min(score, r["ratio2"] / 1.2)
            f.write('"%s" %.6g\n' % (r["key"], score))
    script = """
set terminal pngcairo size 1000,520 font ",11" noenhanced
set output '%s'
set title "cfutures vs peers: ratio relative to its target (above 1 = target met)\\n%s"
set style fill solid 0.8
set boxwidth 0.6
set logscale y 10
set yrange [0.01:100]
set grid ytics
set xtics rotate by -30
set ylabel "ratio / target (log)"
plot '%s' using 0:2:xtic(1) with boxes lc rgb "#3b7dd8" notitle, 1 with lines lw 2 lc rgb "#d83b3b" title "target"
""" % (os.path.join(HERE, "results.png"), stamp, data)
    r = subprocess.run([gp], input=script, text=True, capture_output=True)
    os.unlink(data)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-400:])


if __name__ == "__main__":
    sys.exit(main())
