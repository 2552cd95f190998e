#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""crawl_test.py - cfcrawl against a real nginx serving a generated site.

Run by `make check` (CF_BUILDDIR and CF_SRCDIR set by the Makefile), or by hand:
    CF_BUILDDIR=build/plain tests/demos/crawl_test.py

The site (tools/gensite.py, 300 pages) has cycles, 404 links, a redirect, non-HTML
files, fragments, a <base href>, and links to other hosts and ports.  The expected
results are computed here from the generator's manifest, independently of cfcrawl:
a breadth-first walk where a link costs one level and a redirect none.  Non-HTML
files are results (status and type), 404s are errors; the site has no robots.txt
(a 404: nothing disallowed).  Servers that refuse, never answer or do not resolve
end in per-URL errors and exit status 3 (every start URL failed), with robots.txt
first and with --ignore-robots.  The hostile cases are in crawl_hostile_test.py.
Exit status: 0 pass, 1 fail, 77 skip (no nginx).
"""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

SRCDIR = os.environ.get("CF_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILDDIR = os.environ.get("CF_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tools"))
import webfixture  # noqa: E402
from checks import check, summary  # noqa: E402

CFCRAWL = os.path.join(BUILDDIR, "demos", "cfcrawl")
PAGES = 300


def crawl(args, timeout=120):
    r = subprocess.run([CFCRAWL, "--json"] + args, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    rows = [l for l in lines if "summary" not in l]
    summary = [l["summary"] for l in lines if "summary" in l]
    return r, rows, summary[0] if summary else None


def expected(manifest, max_depth):
    """{path: (depth, status, title or None, error kind or None)} for a crawl from '/'."""
    pages, redirects = manifest["pages"], manifest["redirects"]
    missing, files = set(manifest["missing"]), set(manifest["files"])
    depth = {"/": 0}
    level = ["/"]
    d = 0
    while level:
        nxt = []
        i = 0
        while i < len(level):  # a redirect target joins the level being walked
            path = level[i]
            i += 1
            outs = []
            if path in redirects:
                outs = [(redirects[path], d)]
            elif path in pages:
                outs = [(t, d + 1) for t in pages[path]["links"]]
            for t, td in outs:
                if t in depth or (max_depth >= 0 and td > max_depth):
                    continue
                depth[t] = td
                (level if td == d else nxt).append(t)
        level = nxt
        d += 1
    out = {}
    for path, dp in depth.items():
        if path in redirects:
            out[path] = (dp, 301, None, None)
        elif path in missing:
            out[path] = (dp, 404, None, "HTTP 404")
        elif path in files:
            out[path] = (dp, 200, None, None)
        else:
            out[path] = (dp, 200, pages[path]["title"], None)
    return out


def compare(rows, exp, base, name):
    got = {}
    dup = []
    for r in rows:
        path = r["url"][len(base):] if r["url"].startswith(base) else r["url"]
        if path in got:
            dup.append(path)
        got[path] = r
    check(not dup, name + ": each URL fetched once", str(dup[:5]))
    check(set(got) == set(exp), name + ": exact set of URLs (%d)" % len(exp),
          "missing %s extra %s" % (sorted(set(exp) - set(got))[:5], sorted(set(got) - set(exp))[:5]))
    bad = []
    for path, (dp, status, title, err) in exp.items():
        r = got.get(path)
        if r is None:
            continue
        ok = r["depth"] == dp and r["status"] == status and r["title"] == title
        ok = ok and ((err is None and r["error"] is None) or (err is not None and r["error"] and err in r["error"]))
        ok = ok and isinstance(r["bytes"], int) and r["bytes"] > 0 and r["ms"] >= 0
        ctype = {".bin": "application/octet-stream", ".txt": "text/plain"}.get(path[-4:], "text/html")
        ok = ok and r["content_type"] == ctype
        if not ok:
            bad.append((path, r, (dp, status, title, err)))
    check(not bad, name + ": depth, status, title and error of every URL", str(bad[:3]))


def silent_server():
    """A listener that accepts and never answers; returns (port, accepted-event, closer)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    accepted = threading.Event()
    conns = []

    def run():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            conns.append(c)
            accepted.set()

    threading.Thread(target=run, daemon=True).start()

    def close():
        ls.close()
        for c in conns:
            c.close()

    return ls.getsockname()[1], accepted, close


class LevelSite(http.server.BaseHTTPRequestHandler):
    """/ links to /a and /b; /b to /c; /a and /c both to /x.  /a (depth 1) is slow: it answers once /x is
    requested or after HOLD_S, whichever comes first.  /x is first linked at depth 2 (from /a), so a crawler that
    followed /c's links (depth 2, so /x at depth 3) before /a is done would fetch /x early and report it too deep;
    a correct one fetches /c while /a is pending and /x only after /a (the timeout is the normal path)."""
    protocol_version = "HTTP/1.1"
    LINKS = {"/": ["/a", "/b"], "/a": ["/x"], "/b": ["/c"], "/c": ["/x"], "/x": []}
    HOLD_S = 1.0
    x_requested = None  # threading.Event, set per server
    events = None  # list of (event, path)

    def do_GET(self):
        path = self.path
        links = self.LINKS.get(path)
        if links is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.events.append(("request", path))
        if path == "/x":
            self.x_requested.set()
        if path == "/a":
            self.x_requested.wait(self.HOLD_S)
        body = ("<html><title>%s</title>%s</html>" % (
            path, "".join('<a href="%s">l</a>' % l for l in links))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.events.append(("answered", path))

    def log_message(self, *args):
        pass


def level_overlap():
    """Crawl LevelSite: --depth stays exact while the next depth's transfers start before this depth ends."""
    handler = type("Handler", (LevelSite,), {"x_requested": threading.Event(), "events": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        r, rows, summ = crawl(["--depth", "-1", "--concurrency", "4", base + "/"], timeout=60)
        depth = {x["url"][len(base):]: x["depth"] for x in rows}
        check(r.returncode == 0 and depth == {"/": 0, "/a": 1, "/b": 1, "/c": 2, "/x": 2},
              "next depth started early: every URL still at its smallest depth", str(depth) + r.stderr[-300:])
        ev = handler.events
        check(("request", "/c") in ev and ("answered", "/a") in ev
              and ev.index(("request", "/c")) < ev.index(("answered", "/a")),
              "a page of the next depth is fetched while one of this depth is still in flight", str(ev))
    finally:
        srv.shutdown()
        srv.server_close()


def main():
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        print("skip: nginx not installed")
        return 77
    if not os.path.exists(CFCRAWL):
        print("skip: %s not built" % CFCRAWL)
        return 77
    tmp = tempfile.mkdtemp(prefix="cf-crawl-")
    try:
        os.chmod(tmp, 0o755)
        site = os.path.join(tmp, "site")
        manifest_path = os.path.join(tmp, "manifest.json")
        subprocess.run([sys.executable, os.path.join(SRCDIR, "tools", "gensite.py"), site,
                        "--pages", str(PAGES), "--manifest", manifest_path], check=True)
        with open(manifest_path) as f:
            manifest = json.load(f)

        with webfixture.Nginx(site) as ng:
            base = ng.url("")

            # The whole site, at two concurrencies: the same exact result.
            full = expected(manifest, -1)
            for conc in ("16", "1"):
                r, rows, summ = crawl(["--depth", "-1", "--max-pages", "100000", "--concurrency", conc, ng.url("/")])
                name = "full crawl, concurrency %s" % conc
                check(r.returncode == 0, name + ": exit 0", r.stderr[-500:])
                compare(rows, full, base, name)
                nerr = sum(1 for e in full.values() if e[3])
                check(summ is not None and summ["pages"] == len(full) and summ["errors"] == nerr
                      and summ["redirects"] == 1 and summ["non_html"] == 2 and summ["links_dropped"] == 0 and summ["bytes"] == sum(x["bytes"] for x in rows)
                      and summ["interrupted"] is False,
                      name + ": summary", str(summ))
                check(summ is not None and 0 <= summ["loop_cpu_seconds"] <= summ["cpu_seconds"] + 0.01,
                      name + ": CPU seconds of the crawl and of its loop thread", str(summ))
            check(not any("other.invalid" in x["url"] or ":1/" in x["url"] for x in rows),
                  "other hosts and ports are not followed")
            check(not any("#" in x["url"] for x in rows), "fragments are dropped")

            # --depth holds exactly.
            for d in (0, 1, 3):
                r, rows, summ = crawl(["--depth", str(d), "--concurrency", "8", ng.url("/")])
                compare(rows, expected(manifest, d), base, "--depth %d" % d)
                check(all(x["depth"] <= d for x in rows), "--depth %d: no row deeper" % d)

            # --max-pages: exactly that many, taken level by level.
            r, rows, summ = crawl(["--depth", "-1", "--max-pages", "50", "--concurrency", "8", ng.url("/")])
            check(r.returncode == 0 and len(rows) == 50 and summ["pages"] == 50, "--max-pages 50: 50 URLs",
                  "%d rows" % len(rows))
            depths = full
            paths = [x["url"][len(base):] for x in rows]
            deepest = max(depths[p][0] for p in paths)
            shallower = {p for p, e in depths.items() if e[0] < deepest}
            check(shallower <= set(paths) and all(p in depths for p in paths),
                  "--max-pages 50: every shallower URL fetched first")
            check(summ["links_dropped"] > 0 and summ["not_fetched"] == 0,
                  "--max-pages 50: the frontier holds no more than can be fetched, the rest counted as dropped",
                  str(summ))

            # Two start URLs on the same site: each URL still once.
            r, rows, summ = crawl(["--depth", "1", ng.url("/p/10.html"), ng.url("/p/20.html")])
            urls = [x["url"] for x in rows]
            check(len(urls) == len(set(urls)) and ng.url("/p/10.html") in urls and ng.url("/p/20.html") in urls,
                  "two start URLs")

            # Text output: one line per URL plus the summary.
            r = subprocess.run([CFCRAWL, "--depth", "1", ng.url("/p/5.html")], capture_output=True, text=True,
                               timeout=60)
            lines = r.stdout.strip().splitlines()
            check(r.returncode == 0 and "[application/octet-stream]" in r.stdout and "Page 5 & friends <#5>" in r.stdout
                  and "pages/s" in lines[-1], "text output", r.stdout[-400:])

        # Per-URL failures never stop the crawl; when every start URL failed, the exit status says so.
        # With robots.txt (the default) the failure shows on robots.txt, and the page is not fetched.
        port, accepted, close = silent_server()
        closed = webfixture.free_port()
        try:
            for robots in (True, False):
                name = "failures (robots.txt %s)" % ("first" if robots else "ignored")
                r, rows, summ = crawl(["--timeout", "1", "http://127.0.0.1:%d/" % closed,
                                       "http://127.0.0.1:%d/slow" % port, "http://nonexistent.invalid/"]
                                      + ([] if robots else ["--ignore-robots"]), timeout=60)
                by = {x["url"]: x for x in rows}
                refused = by.get("http://127.0.0.1:%d/" % closed)
                slow = by.get("http://127.0.0.1:%d/slow" % port)
                dns = by.get("http://nonexistent.invalid/")
                check(r.returncode == 3 and len(rows) == 3 and summ["errors"] == 3,
                      name + ": reported, crawl ends, exit 3", r.stdout + r.stderr)
                check(refused and refused["status"] == 0 and "connect" in (refused["error"] or "").lower(),
                      name + ": connection refused", str(refused))
                check(slow and slow["status"] == 0 and "timeout" in (slow["error"] or "").lower(),
                      name + ": timeout", str(slow))
                check(dns and dns["status"] == 0 and dns["error"], name + ": DNS failure", str(dns))
                check(all(("robots.txt" in x["error"]) == robots for x in rows), name + ": says where it failed")
        finally:
            close()

        # SIGINT stops a crawl that is waiting on the network and still prints the summary.
        port, accepted, close = silent_server()
        try:
            p = subprocess.Popen([CFCRAWL, "--json", "--timeout", "60", "http://127.0.0.1:%d/" % port],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            check(accepted.wait(30), "interrupt: transfer started")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
            summ = [json.loads(l)["summary"] for l in out.splitlines() if '"summary"' in l]
            check(p.returncode == 130 and summ and summ[0]["interrupted"] is True and summ[0]["pages"] == 0,
                  "interrupt: exit 130 with the summary", "rc=%s out=%r err=%r" % (p.returncode, out, err[-300:]))
        finally:
            close()

        level_overlap()

        # Proxies come from the environment, as in curl: the request goes to http_proxy.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        got = []

        def proxy():
            try:
                c, _ = ls.accept()
                data = b""
                while b"\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                got.append(data.split(b"\r\n")[0])
                c.close()
            except OSError:
                pass

        t = threading.Thread(target=proxy, daemon=True)
        t.start()
        env = dict(os.environ, http_proxy="http://127.0.0.1:%d" % ls.getsockname()[1])
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
        r = subprocess.run([CFCRAWL, "--json", "--ignore-robots", "--timeout", "5", "http://proxied.invalid/p"],
                           capture_output=True, text=True, timeout=60, env=env)
        t.join(30)
        ls.close()
        check(got == [b"GET http://proxied.invalid/p HTTP/1.1"], "http_proxy from the environment is used",
              "%r rc=%d %s" % (got, r.returncode, r.stderr[-300:]))

        # Usage errors.
        for args in (["--depth"], ["--concurrency", "0"], ["--bogus", "http://x/"], ["ftp://x/"], []):
            r = subprocess.run([CFCRAWL] + args, capture_output=True, text=True, timeout=30)
            check(r.returncode == 2 and r.stderr, "usage error: %s" % " ".join(args) or "no URL")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return summary()


if __name__ == "__main__":
    sys.exit(main())
