#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""crawl_hostile_test.py - cfcrawl against servers that misbehave on purpose.

Run by `make check` (CF_BUILDDIR and CF_SRCDIR set by the Makefile), or by hand:
    CF_BUILDDIR=build/plain tests/demos/crawl_hostile_test.py

The server is tools/hostile_http.py (asyncio, loopback).  Every case asserts a
bound or a recovery, not only that cfcrawl survived: peak RSS (getrusage of the
child), descriptors and threads (/proc while transfers are provably in flight),
bytes kept, redirect hops, the exact rows, what the server was asked for
(robots.txt once, nothing disallowed, connections per host), and files written
under --output only.  Sanitizer builds use looser memory bounds (shadow memory)
and smaller crawls.
Exit status: 0 pass, 1 fail, 77 skip.
"""
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request

SRCDIR = os.environ.get("CF_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILDDIR = os.environ.get("CF_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tools"))
from checks import check, summary  # noqa: E402

CFCRAWL = os.path.join(BUILDDIR, "demos", "cfcrawl")
SERVER = os.path.join(SRCDIR, "tools", "hostile_http.py")
MIB = 1 << 20


def sanitizer():
    """'asan', 'tsan' or None, from the build's Makefile."""
    try:
        with open(os.path.join(BUILDDIR, "Makefile")) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^SAN_CFLAGS = (.*)$", text, re.M)
    flags = m.group(1) if m else ""
    return "tsan" if "sanitize=thread" in flags else "asan" if "sanitize=address" in flags else None


SAN = sanitizer()


class Server:
    """tools/hostile_http.py in a child process; stops when its stdin closes."""

    def __init__(self, *args, log=None):
        self.log = log
        cmd = [sys.executable, SERVER] + list(args) + (["--log", log] if log else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise RuntimeError("hostile_http.py did not start: %r" % line)
        self.port = int(m.group(1))

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def requests(self):
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(args, timeout=120):
    """Run cfcrawl --json; returns (exit status, rows, summary, stderr, peak RSS in bytes).

    The child is reaped with wait4() for its own ru_maxrss; a timer kills it after `timeout`
    seconds (then the exit status is None).
    """
    env = dict(os.environ)
    if SAN == "asan":
        # ASan keeps freed memory in a 256 MiB quarantine: shrink it so peak RSS measures cfcrawl.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
    p = subprocess.Popen([CFCRAWL, "--json"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()))
        t.start()
        out = p.stdout.read()
        t.join()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        killed = not timer.is_alive()
        timer.cancel()
    rows, summ = [], None
    for line in out.decode("utf-8").splitlines():
        d = json.loads(line)
        if "summary" in d:
            summ = d["summary"]
        else:
            rows.append(d)
    return (None if killed else p.returncode), rows, summ, err[0].decode(errors="replace"), ru.ru_maxrss * 1024


def by_path(rows, srv):
    return {r["url"][len(srv.url("")):]: r for r in rows}


def test_fanout(tmp):
    """Pages of 20,000 fresh links each: memory flat, frontier bounded, links capped and counted."""
    pages = 300 if SAN is None else 60
    # Under TSan the peak is mostly its own shadow and allocator: 138-158 MiB in 10 runs on 2 CPUs.
    bound = {None: 64, "asan": 128, "tsan": 192}[SAN] * MIB
    with Server("--fanout", "20000") as srv:
        # --timeout 60: on a loaded machine the one-threaded fixture may take seconds to build 16 such pages
        rc, rows, summ, err, rss = run(["--max-pages", str(pages), "--depth", "-1", "--concurrency", "16",
                                        "--timeout", "60", srv.url("/fan/0")], timeout=300)
    check(rc == 0 and len(rows) == pages and summ and summ["pages"] == pages and summ["errors"] == 0,
          "fanout: %d pages fetched, exit 0" % pages, "rc=%s rows=%d %s %s" % (rc, len(rows), summ, err[-300:]))
    check(summ and summ["links_capped"] == pages * 10000,
          "fanout: links past --max-links counted (10,000 of 20,000 per page)", str(summ))
    check(summ and summ["links_dropped"] > 0 and summ["not_fetched"] == 0,
          "fanout: the frontier never holds more than can still be fetched; the rest counted", str(summ))
    check(rss <= bound, "fanout: peak RSS %.1f MiB <= %d MiB" % (rss / MIB, bound // MIB))


def test_hold(tmp):
    """N transfers provably in flight at once (the server answers none until N wait) on 2 parser threads."""
    n = 1000
    with Server("--hold", str(n)) as srv:
        p = subprocess.Popen([CFCRAWL, "--json", "--ignore-robots", "--depth", "1", "--max-pages", str(n + 1),
                              "--concurrency", str(n),
                              "--host-connections", str(n), "--threads", "2", "--timeout", "120",
                              srv.url("/hold/")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # "held N" once N requests wait at the same time (never, if cfcrawl cannot keep N in flight).
        ready, _, _ = select.select([srv.proc.stdout], [], [], 120)
        line = srv.proc.stdout.readline() if ready else "(not held after 120 s)"
        threads = len(os.listdir("/proc/%d/task" % p.pid))
        fds = len(os.listdir("/proc/%d/fd" % p.pid))
        urllib.request.urlopen(srv.url("/release"), timeout=30).read()
        out, err = p.communicate(timeout=300)
    rows = [json.loads(l) for l in out.splitlines() if '"summary"' not in l]
    check(line.strip() == "held %d" % n, "hold: %d transfers in flight at once" % n, line)
    check(threads <= 4, "hold: %d threads in the process (<= 4) with %d transfers in flight" % (threads, n))
    check(n <= fds <= n + 32, "hold: %d descriptors (one socket per transfer, <= %d)" % (fds, n + 32))
    check(p.returncode == 0 and len(rows) == n + 1 and all(r["error"] is None for r in rows),
          "hold: all %d released pages fetched" % n, "rc=%s rows=%d %s" % (p.returncode, len(rows), err[-300:]))


def test_bodies(tmp):
    """Endless, dripping and compressed-bomb bodies, redirect chains, charsets, escapes, non-HTML."""
    limit = 1000000
    starts = ["/endless", "/drip", "/bomb", "/redirect/0", "/binary", "/utf16", "/bom16", "/meta1251", "/escape",
              "/escape-type"]
    bound = {None: 64, "asan": 128, "tsan": 160}[SAN] * MIB
    with Server() as srv:
        # The transfer timeout only has to cut /drip (1,000,000 bytes at 5 bytes/s); it is long
        # enough that a loaded machine does not time out the bodies that are checked otherwise.
        args = ["--ignore-robots", "--timeout", "15", "--max-size", str(limit), "--depth", "1"] + \
               [srv.url(s) for s in starts]
        rc, rows, summ, err, rss = run(args)
        got = by_path(rows, srv)
        text = subprocess.run([CFCRAWL] + args, capture_output=True, timeout=120).stdout
    check(rc == 0, "hostile bodies: crawl ends, exit 0", err[-300:])
    for path in ("/endless", "/bomb"):
        r = got.get(path, {})
        check("larger than %d" % limit in (r.get("error") or "") and r["bytes"] <= limit + 16384,
              "%s: cut at --max-size (%s bytes kept, decoded)" % (path, r.get("bytes")), str(r))
    r = got.get("/drip", {})
    check("timeout" in (r.get("error") or "").lower() and r["bytes"] < 100, "/drip: times out", str(r))
    chain = sorted((p for p in got if p.startswith("/redirect/")), key=lambda p: int(p.split("/")[2]))
    check(chain == ["/redirect/%d" % i for i in range(11)] and "more than 10 redirects" in
          (got["/redirect/10"]["error"] or "") and all(got[p]["error"] is None for p in chain[:-1]),
          "redirect chain: 10 hops followed, the 11th reported", str(chain[-3:]))
    r = got.get("/binary", {})
    check(r.get("error") is None and r.get("content_type") == "application/octet-stream" and r["status"] == 200,
          "non-HTML: a result with status and type, not an error", str(r))
    check(got.get("/utf16", {}).get("title") == "\u0417\u0430\u0433\u043e\u043b\u043e\u0432\u043e\u043a utf16"
          and "/utf16-child" in got, "charset=utf-16 from the header: title and links", str(got.get("/utf16")))
    check(got.get("/bom16", {}).get("title") == "BOM \u00e9t\u00e9" and "/bom16-child" in got,
          "UTF-16BE byte order mark wins over the header", str(got.get("/bom16")))
    check(got.get("/meta1251", {}).get("title") == "\u041f\u0440\u0438\u0432\u0435\u0442 1251"
          and "/meta1251-child" in got, "charset from <meta>", str(got.get("/meta1251")))
    r = got.get("/escape-type", {})
    check((r.get("content_type") or "").startswith("application/x-\x1b]0;owned\x07\x1b[31m"),
          "JSON: the hostile Content-Type kept exactly, as valid JSON", str(r))
    check(summ and summ["errors"] == 4 and summ["non_html"] == 2, "summary: 4 errors, 2 non-HTML", str(summ))
    check(rss <= bound, "hostile bodies: peak RSS %.1f MiB <= %d MiB" % (rss / MIB, bound // MIB))
    try:
        decoded = text.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        decoded, valid = "", False
    bad = [c for c in decoded if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u2066"]
    check(valid and not bad and "\\x1b]0;owned\\x07" in decoded and "\\xff" in decoded,
          "text output: valid UTF-8, control characters escaped", repr(bad[:5]))


def test_silent(tmp):
    """A server that accepts and never answers: robots.txt and the page time out; exit 3."""
    with Server("--silent") as srv:
        for extra in ([], ["--ignore-robots"]):
            rc, rows, summ, err, _ = run(["--timeout", "1"] + extra + [srv.url("/")], timeout=60)
            check(rc == 3 and len(rows) == 1 and "timeout" in (rows[0]["error"] or "").lower(),
                  "silent server%s: timed out, exit 3" % (" (--ignore-robots)" if extra else ""),
                  "rc=%s %s %s" % (rc, rows, err[-200:]))


ROBOTS = """# hostile_http robots.txt
User-agent: *
Disallow: /private/
Allow: /private/open$

User-agent: othercrawler
Disallow: /

User-agent: TestBot
Disallow: /private/
Disallow: /meta1251
Allow: /private/a
Crawl-delay: 0.2
"""


def test_robots(tmp):
    robots = os.path.join(tmp, "robots.txt")
    with open(robots, "w") as f:
        f.write(ROBOTS)

    def crawl(extra, log, max_pages="100"):
        with Server("--robots", robots, log=log) as srv:
            rc, rows, summ, err, _ = run(extra + ["--depth", "2", "--max-pages", max_pages, srv.url("/polite")])
            reqs = srv.requests()
        return rc, by_path(rows, srv), summ, reqs

    # The '*' group for cfcrawl: /private/ closed but /private/open; robots.txt fetched once.
    rc, got, summ, reqs = crawl([], os.path.join(tmp, "r1.log"))
    asked = [r["path"] for r in reqs]
    check(rc == 0 and asked.count("/robots.txt") == 1 and asked[0] == "/robots.txt",
          "robots: robots.txt fetched once, before any page", str(asked[:3]))
    check(not any(p.startswith("/private/") and p != "/private/open" for p in asked) and "/private/open" in got,
          "robots: '*' group obeyed (Disallow, and Allow with $)", str([p for p in asked if "private" in p]))
    check(summ and summ["robots_disallowed"] == 2, "robots: disallowed links counted", str(summ))
    check(all(r["ua"] == reqs[0]["ua"] and r["ua"].startswith("cfcrawl/") for r in reqs), "robots: one user agent")

    # Our own group by product token, longest match wins, and its Crawl-delay spaces the requests.
    rc, got, summ, reqs = crawl(["--user-agent", "TestBot/2.0 (+test)"], os.path.join(tmp, "r2.log"), "6")
    asked = [r["path"] for r in reqs]
    check("/private/a" in asked and not {"/private/b", "/private/open", "/meta1251"} & set(asked)
          and all(r["ua"] == "TestBot/2.0 (+test)" for r in reqs),
          "robots: the group of --user-agent's token, longest match wins", str(asked))
    times = [r["t"] for r in reqs if r["path"] != "/robots.txt"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    check(len(times) == 6 and min(gaps) >= 0.1, "robots: Crawl-delay 0.2 spaces the requests",
          "%d requests, gaps %s" % (len(times), ["%.3f" % g for g in gaps]))

    # --ignore-robots: robots.txt never asked for, /private/b fetched.
    rc, got, summ, reqs = crawl(["--ignore-robots"], os.path.join(tmp, "r3.log"))
    asked = [r["path"] for r in reqs]
    check("/robots.txt" not in asked and "/private/b" in asked, "--ignore-robots", str(asked))

    # --delay alone (no robots.txt) spaces the transfers the same way.
    rc, got, summ, reqs = crawl(["--ignore-robots", "--delay", "0.2"], os.path.join(tmp, "r4.log"), "4")
    times = [r["t"] for r in reqs]
    gaps = [b - a for a, b in zip(times, times[1:])]
    check(rc == 0 and len(times) == 4 and min(gaps) >= 0.1, "--delay 0.2 spaces the requests",
          "%d requests, gaps %s" % (len(times), ["%.3f" % g for g in gaps]))

    # A start URL that robots.txt disallows: its line says so, exit 3.
    with Server("--robots", robots) as srv:
        rc, rows, summ, err, _ = run([srv.url("/private/b")])
    check(rc == 3 and len(rows) == 1 and "disallowed by robots.txt" in rows[0]["error"],
          "robots: disallowed start URL reported, exit 3", "rc=%s %s" % (rc, rows))


def test_host_connections(tmp):
    log = os.path.join(tmp, "conns.log")
    with Server("--pages", "150", "--latency-ms", "20", log=log) as srv:
        rc, rows, summ, err, _ = run(["--ignore-robots", "--depth", "-1", "--concurrency", "32",
                                           "--host-connections", "3", srv.url("/site/0")])
        reqs = srv.requests()
    conns = {r["conn"] for r in reqs}
    check(rc == 0 and len(rows) == 150 and 2 <= len(conns) <= 3 and max(r["open"] for r in reqs) <= 3,
          "--host-connections 3: 150 pages over at most 3 connections (%d used)" % len(conns),
          "rc=%s rows=%d %s" % (rc, len(rows), err[-200:]))


def test_output(tmp):
    out = os.path.join(tmp, "out")
    outside = os.path.join(tmp, "outside")
    os.makedirs(outside)
    with Server() as srv:
        host = "127.0.0.1:%d" % srv.port
        # A symlink planted where a directory will be needed must not be followed.
        os.makedirs(os.path.join(out, host))
        os.symlink(outside, os.path.join(out, host, "dir"))
        rc, rows, summ, err, _ = run(["--ignore-robots", "--depth", "1", "--output", out,
                                          srv.url("/traversal"), srv.url("/binary")])
        page = urllib.request.urlopen(srv.url("/traversal"), timeout=30).read()
    got = by_path(rows, srv)
    check(rc == 0 and len(rows) == 10, "--output: crawl of the traversal links", "rc=%s rows=%d %s" % (
        rc, len(rows), err[-300:]))
    check(sorted(os.listdir(tmp)) == ["out", "outside"] and os.listdir(outside) == [],
          "--output: nothing written outside the directory (nor through a planted symlink)",
          str(os.listdir(tmp)) + str(os.listdir(outside)))
    files = []
    for d, dirs, names in os.walk(out):
        files += [os.path.relpath(os.path.join(d, n), out) for n in names]
    check(all(f.startswith(host + "/") and ".." not in f.split("/") for f in files) and len(files) >= 8,
          "--output: every file under DIR/HOST:PORT/", str(files))
    saved = got.get("/traversal", {}).get("saved")
    ok = False
    if saved:
        with open(os.path.join(out, saved), "rb") as f:
            ok = f.read() == page
    check(ok, "--output: the page saved as served", str(saved))
    check(got.get("/binary", {}).get("saved") and os.path.getsize(os.path.join(out, got["/binary"]["saved"]))
          == 256 << 10, "--output: non-HTML saved whole")
    dirs = [p for p, r in got.items() if p.startswith("/dir")]
    check(dirs and all("cannot save" in (got[p]["error"] or "") for p in dirs),
          "--output: a symlinked directory is refused, reported", str({p: got[p]["error"] for p in dirs}))


def main():
    if not os.path.exists(CFCRAWL):
        print("skip: %s not built" % CFCRAWL)
        return 77
    r = subprocess.run([CFCRAWL, "--version"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and r.stdout.startswith("cfcrawl ") and "libcurl" in r.stdout, "--version", r.stdout)
    r = subprocess.run([CFCRAWL, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "--max-size" in r.stdout and "--ignore-robots" in r.stdout, "--help")
    for t in (test_fanout, test_hold, test_bodies, test_silent, test_robots, test_host_connections, test_output):
        tmp = tempfile.mkdtemp(prefix="cf-hostile-")
        try:
            t(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
