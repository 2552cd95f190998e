#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""serve_test.py - cfserve checked with curl (and raw sockets where curl cannot go).

Run by `make check` (CF_BUILDDIR set by the Makefile), or by hand:
    CF_BUILDDIR=build/plain tests/demos/serve_test.py

Every endpoint with exact bodies, bad parameters, traversal attempts, static
files, HEAD, 405, oversized headers and bodies, malformed requests, pipelining,
keep-alive, the loop staying responsive while slow requests run, the idle
timeout, the connection limit, a clean exit 0 on SIGTERM with a request in
flight that still gets its answer; then what users expect of a static server:
ETag / If-None-Match and Last-Modified / If-Modified-Since (304), single
ranges (206, 416, If-Range), a directory without its slash (301), media types
from /etc/mime.types, streamed large files, --bind, --version, --help.
(serve_curl_test.sh checks the same endpoints with curl and bash alone;
serve_attack_test.py plays the hostile clients.)  No sleeps as synchronisation: every wait is
on an event (a line printed, a socket readable) with a bound.
Exit status: 0 pass, 1 fail, 77 skip (no curl).
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get("CF_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILDDIR = os.environ.get("CF_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tools"))
from checks import check, summary  # noqa: E402
CFSERVE = os.path.join(BUILDDIR, "demos", "cfserve")


class Server:
    def __init__(self, root, *args):
        self.p = subprocess.Popen([CFSERVE, "--port", "0", "--root", root, "--threads", "2", "--procs", "2"]
                                  + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()  # printed once it listens; EOF if it died
        m = re.search(r"127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise RuntimeError("cfserve did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        return self.p.returncode, err


def curl(url, *args, timeout=60):
    """(status, body) of one request with curl."""
    r = subprocess.run(["curl", "-s", "--max-time", str(timeout), "-w", "\n%{http_code}"] + list(args) + [url],
                       capture_output=True, timeout=timeout + 10)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body.decode("utf-8", "replace")


def raw(port, data, timeout=30, until_close=True, expect=None):
    """Send bytes on one connection; read until the server closes (or `expect` responses arrived)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while True:
            if expect is not None and got.count(b"HTTP/1.1 ") >= expect and complete(got, expect):
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return got.decode("utf-8", "replace")


def read_to_close(s):
    """Everything the server sends on `s` until it closes; closes `s`."""
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    return got.decode("utf-8", "replace")


def complete(text, n):
    """True if `text` holds n whole responses (Content-Length framed)."""
    pos = 0
    for _ in range(n):
        h = text.find(b"\r\n\r\n", pos)
        if h < 0:
            return False
        m = re.search(rb"Content-Length: (\d+)", text[pos:h])
        end = h + 4 + (int(m.group(1)) if m else 0)
        if len(text) < end:
            return False
        pos = end
    return True


def responses(text):
    """[(status, body)] of a stream of Content-Length framed responses."""
    out = []
    while text:
        h = text.find("\r\n\r\n")
        if h < 0:
            break
        m = re.match(r"HTTP/1\.1 (\d{3})", text)
        n = re.search(r"Content-Length: (\d+)", text[:h])
        end = h + 4 + (int(n.group(1)) if n else 0)
        out.append((int(m.group(1)) if m else 0, text[h + 4:end]))
        text = text[end:]
    return out


def statuses(text):
    return [int(x) for x in re.findall(r"HTTP/1\.1 (\d{3})", text)]


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def main():
    if not shutil.which("curl"):
        print("skip: curl not installed")
        return 77
    if not os.path.exists(CFSERVE):
        print("skip: %s not built" % CFSERVE)
        return 77
    tmp = tempfile.mkdtemp(prefix="cf-serve-")
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "sub", "deeper"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<h1>home</h1>\n")
        with open(os.path.join(root, "sub", "index.html"), "w") as f:
            f.write("<h1>sub</h1>\n")
        with open(os.path.join(root, "notes.txt"), "w") as f:
            f.write("plain notes\n")
        blob = os.urandom(300000)
        with open(os.path.join(root, "sub", "deeper", "blob.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(tmp, "secret.txt"), "w") as f:
            f.write("outside the root\n")
        os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(root, "escape.txt"))
        os.symlink(os.path.join(root, "notes.txt"), os.path.join(root, "inside-link.txt"))

        srv = Server(root, "--idle-timeout", "1")
        b = srv.base
        try:
            # Endpoints, exact bodies.
            check(curl(b + "/health") == (200, "ok\n"), "/health")
            for n in (0, 1, 2, 10, 50, 92):
                check(curl(b + "/fib?n=%d" % n) == (200, "%d\n" % fib(n)), "/fib?n=%d" % n)
            for q in ("n=-1", "n=93", "n=abc", "n=", "", "n=1e3", "n=5x"):
                check(curl(b + "/fib?" + q)[0] == 400, "/fib?%s is 400" % q)
            want = hashlib.md5(blob).hexdigest() + "\n"
            check(curl(b + "/md5?path=sub/deeper/blob.bin") == (200, want), "/md5 of a file")
            check(curl(b + "/md5?path=sub%2Fdeeper%2Fblob.bin") == (200, want), "/md5 with an encoded path")
            check(curl(b + "/md5?path=inside-link.txt") == (200, hashlib.md5(b"plain notes\n").hexdigest() + "\n"),
                  "/md5 through a symlink inside the root")
            check(curl(b + "/md5?path=missing.txt")[0] == 404, "/md5 of a missing file is 404")
            check(curl(b + "/md5")[0] == 400, "/md5 without a path is 400")
            check(curl(b + "/md5?path=sub")[0] == 400, "/md5 of a directory is 400")
            for p in ("/etc/passwd", "../secret.txt", "sub/../../secret.txt", "..%2Fsecret.txt", "escape.txt",
                      "sub/..", ".."):
                check(curl(b + "/md5?path=" + p)[0] == 403, "/md5?path=%s is 403" % p)
            check(curl(b + "/sleep?ms=50") == (200, "slept 50 ms\n"), "/sleep")
            for q in ("ms=-1", "ms=10001", "ms=x", ""):
                check(curl(b + "/sleep?" + q)[0] == 400, "/sleep?%s is 400" % q)

            # Static files.
            check(curl(b + "/") == (200, "<h1>home</h1>\n"), "/ serves index.html")
            check(curl(b + "/sub/") == (200, "<h1>sub</h1>\n"), "a directory serves its index.html")
            check(curl(b + "/notes.txt") == (200, "plain notes\n"), "a static file")
            r = subprocess.run(["curl", "-s", b + "/sub/deeper/blob.bin"], capture_output=True, timeout=60)
            check(r.stdout == blob, "a 300 kB binary file, byte for byte")
            check(curl(b + "/nothing.html")[0] == 404, "a missing file is 404")
            for p in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/escape.txt"):
                st = curl(b + p, "--path-as-is")[0]
                check(st == 403, "traversal %s is 403" % p, "got %d" % st)
            r = subprocess.run(["curl", "-sI", b + "/notes.txt"], capture_output=True, text=True, timeout=60)
            check(r.stdout.startswith("HTTP/1.1 200") and "Content-Length: 12" in r.stdout
                  and "Content-Type: text/plain" in r.stdout, "HEAD", r.stdout)
            check(curl(b + "/notes.txt", "-X", "POST", "-d", "x=1")[0] == 405, "POST is 405")

            # /stats is JSON with both pools.
            code, body = curl(b + "/stats")
            st = json.loads(body) if code == 200 else {}
            check(code == 200 and st["process_pool"]["completed"] >= 6 and st["thread_pool"]["completed"] + st["server"]["files_on_loop"] >= 5
                  and st["process_pool"]["workers"] == 2 and st["server"]["requests_served"] > 10, "/stats", body)

            # Keep-alive: two requests, one connection.
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
                                b + "/health", b + "/fib?n=20"], capture_output=True, text=True, timeout=60)
            check(r.stdout.split() == ["1", "0"], "keep-alive reuses the connection", r.stdout)

            # Pipelining: a slow request first; answers come back in request order.
            text = raw(srv.port, b"GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /fib?n=30 HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            check(responses(text) == [(200, "slept 300 ms\n"), (200, "ok\n"), (200, "832040\n"),
                                      (200, "plain notes\n")],
                  "pipelined requests answered in order", repr(text[:400]))

            # HTTP/1.0 closes unless asked to keep alive.
            text = raw(srv.port, b"GET /health HTTP/1.0\r\n\r\n")
            check(statuses(text) == [200] and "Connection: close" in text, "HTTP/1.0 closes")

            # Limits and malformed input.
            big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
            check(statuses(raw(srv.port, big)) == [431], "oversized headers are 431")
            many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(200)) + b"\r\n"
            check(statuses(raw(srv.port, many)) == [431], "too many headers are 431")
            body = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
            check(statuses(raw(srv.port, body)) == [413], "an oversized body is 413")
            check(statuses(raw(srv.port, b"GARBAGE\r\n\r\n")) == [400], "a malformed request is 400")
            check(statuses(raw(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")) == [400],
                  "a bad Content-Length is 400")
            text = raw(srv.port, b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                 b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            check(statuses(text) == [200, 200] and text.endswith("ok\n"), "a small body is read and skipped")

            # The loop never blocks: /health answers while both workers compute fib(44) (seconds of
            # naive recursion) and a timer future is pending.
            slow = [subprocess.Popen(["curl", "-s", "--max-time", "120", b + u], stdout=subprocess.PIPE)
                    for u in ("/fib?n=44", "/fib?n=44", "/sleep?ms=2000")]
            deadline = time.monotonic() + 30
            busy = 0
            while time.monotonic() < deadline and busy < 2:  # until both workers run a fib
                code, body = curl(b + "/stats")
                busy = json.loads(body)["process_pool"]["running"] if code == 200 else 0
            answers = [curl(b + "/health", timeout=10) for _ in range(20)]
            check(answers == [(200, "ok\n")] * 20 and busy == 2 and slow[0].poll() is None,
                  "/health answers while the process pool is busy", "busy %d" % busy)
            out = slow[2].communicate(timeout=60)[0]
            check(out == b"slept 2000 ms\n", "a timer future completes meanwhile", repr(out))
            for p in slow[:2]:  # no need to wait for fib(45): the server drops the answers
                p.kill()
                p.wait()

            # Idle timeout: a silent client, and one trickling a request, are closed.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            t0 = time.monotonic()
            data = s.recv(100)
            check(data == b"" and time.monotonic() - t0 < 20, "a silent client is closed")
            s.close()
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            s.sendall(b"GET /health HTTP/1.1\r\n")
            check(statuses(read_to_close(s)) == [408], "a client that stops mid-request gets 408")
        finally:
            rc, err = srv.stop()
        check(rc == 0, "exit 0 on SIGTERM", err[-300:])

        # Connection limit.
        srv = Server(root, "--max-conns", "2")
        try:
            a = socket.create_connection(("127.0.0.1", srv.port))
            b2 = socket.create_connection(("127.0.0.1", srv.port))
            a.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            b2.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            first = a.recv(4096) + b2.recv(4096)  # both accepted and answered: two slots in use
            text = raw(srv.port, b"")  # the third client is told at once, before it sends anything
            check(statuses(first.decode()) == [200, 200] and statuses(text) == [503],
                  "connections over --max-conns get 503", text[:200])
            a.close()
            b2.close()
        finally:
            rc, err = srv.stop()
        check(rc == 0, "exit 0 after the limit test")

        # SIGTERM with a request in flight: it is answered in full, then exit 0.
        srv = Server(root)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        s.sendall(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the request has reached the server
            code, body = curl(srv.base + "/stats")
            if code == 200 and json.loads(body)["server"]["requests_in_flight"] >= 1:
                break
        srv.p.send_signal(signal.SIGTERM)
        text = read_to_close(s)
        rc, err = srv.stop(sig=None)  # the one SIGTERM above is all it gets
        check(statuses(text) == [200] and text.endswith("slept 1500 ms\n") and "Connection: close" in text,
              "the request in flight is answered after SIGTERM", repr(text))
        check(rc == 0, "exit 0 after draining", err[-300:])

        # What users expect of a static server.
        srv = Server(root)
        b = srv.base
        try:
            def head_of(path, *hdrs):
                r = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null"] + [a for h in hdrs for a in ("-H", h)]
                                   + [b + path], capture_output=True, text=True, timeout=60)
                lines = r.stdout.replace("\r", "").split("\n")
                hd = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
                return int(lines[0].split()[1]) if lines[0] else 0, hd
            code, h = head_of("/notes.txt")
            etag, lastmod = h.get("etag", ""), h.get("last-modified", "")
            check(code == 200 and re.match(r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$', etag) and lastmod.endswith(" GMT")
                  and h.get("accept-ranges") == "bytes", "ETag, Last-Modified and Accept-Ranges", repr(h))
            check(head_of("/notes.txt", "If-None-Match: " + etag)[0] == 304, "If-None-Match with the ETag: 304")
            check(head_of("/notes.txt", 'If-None-Match: "other", W/' + etag)[0] == 304, "a weak ETag in a list: 304")
            check(head_of("/notes.txt", 'If-None-Match: "other"')[0] == 200, "another ETag: 200")
            check(head_of("/notes.txt", "If-Modified-Since: " + lastmod)[0] == 304, "If-Modified-Since now: 304")
            check(head_of("/notes.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT")[0] == 200,
                  "If-Modified-Since long ago: 200")
            text = raw(srv.port, ("GET /notes.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n"
                                  "GET /notes.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % etag).encode())
            check(statuses(text) == [304, 200] and text.endswith("plain notes\n") and "Content-Length: 0" not in text,
                  "a 304 has no body and the next response follows it", repr(text[:300]))
            code, body = curl(b + "/sub/deeper/blob.bin", "-r", "1000-1999")
            r = subprocess.run(["curl", "-s", "-r", "1000-1999", "-D", "-", b + "/sub/deeper/blob.bin"],
                               capture_output=True, timeout=60)
            hdr, _, data = r.stdout.partition(b"\r\n\r\n")
            check(hdr.startswith(b"HTTP/1.1 206") and data == blob[1000:2000]
                  and b"Content-Range: bytes 1000-1999/300000" in hdr, "Range: 206 with the bytes asked for")
            r = subprocess.run(["curl", "-s", "-r", "-100", b + "/sub/deeper/blob.bin"], capture_output=True, timeout=60)
            check(r.stdout == blob[-100:], "a suffix range: the last 100 bytes")
            r = subprocess.run(["curl", "-s", "-r", "299990-", b + "/sub/deeper/blob.bin"], capture_output=True,
                               timeout=60)
            check(r.stdout == blob[299990:], "an open range: to the end")
            code, h = head_of("/notes.txt", "Range: bytes=100-200")
            check(code == 416 and h.get("content-range") == "bytes */12", "a range past the end: 416", repr(h))
            check(head_of("/notes.txt", "Range: bytes=0-1,4-5")[0] == 200, "several ranges: the whole file (200)")
            check(head_of("/notes.txt", "Range: bytes=0-1", 'If-Range: "stale"')[0] == 200,
                  "If-Range with another ETag: the whole file")
            check(head_of("/notes.txt", "Range: bytes=0-1", "If-Range: " + etag)[0] == 206,
                  "If-Range with the ETag: 206")
            code, h = head_of("/sub")
            check(code == 301 and h.get("location") == "/sub/", "a directory without its slash: 301 to /sub/")
            for name, want in (("x.svg", "image/svg+xml"), ("x.mjs", "text/javascript"), ("x.webp", "image/webp"),
                               ("x.PDF", "application/pdf"), ("x.unknownext", "application/octet-stream")):
                with open(os.path.join(root, name), "w") as f:
                    f.write("x")
                got = head_of("/" + name)[1].get("content-type")
                check(got == want, "media type of %s from /etc/mime.types" % name, repr(got))
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                b + "/sub/deeper/blob.bin"], capture_output=True, text=True, timeout=60)
            check(r.stdout == "200 300000", "a file over the small-file size is streamed whole", r.stdout)

            # Two ways to a file: on the loop when the kernel's caches hold it, else on a pool thread.
            def opens():
                st = json.loads(curl(b + "/stats")[1])
                return st["thread_pool"]["completed"], st["server"]["files_on_loop"]
            data = os.urandom(6000)
            with open(os.path.join(root, "cold.bin"), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with open(os.path.join(root, "cold.bin"), "rb") as f:
                try:
                    os.preadv(f.fileno(), [bytearray(1)], 0, os.RWF_NOWAIT)
                    nowait = True
                except BlockingIOError:
                    nowait = True
                except OSError:  # EOPNOTSUPP (tmpfs): every file goes to the pool
                    nowait = False
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages leave the page cache
            # Nor on a file system the server does not call local (NFS, FUSE, ...).
            nowait = nowait and json.loads(curl(b + "/stats")[1])["server"]["loop_files"]
            before = opens()
            r = subprocess.run(["curl", "-s", b + "/cold.bin"], capture_output=True, timeout=60)
            after = opens()
            check(r.stdout == data and after == (before[0] + 1, before[1]),
                  "a file not in the page cache is read on a pool thread", "%r -> %r" % (before, after))
            r = subprocess.run(["curl", "-s", b + "/cold.bin"], capture_output=True, timeout=60)
            again = opens()
            want = (after[0], after[1] + 1) if nowait else (after[0] + 1, after[1])
            check(r.stdout == data and again == want, "then from the page cache on the loop (%s)" % (
                "RWF_NOWAIT" if nowait else "not on this file system: the pool again"), "%r -> %r" % (after, again))
        finally:
            rc, err = srv.stop()
        check(rc == 0, "exit 0 after the static checks", err[-300:])

        # --bind, --version, --help, --mime-types.
        r = subprocess.run([CFSERVE, "--version"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and re.match(r"cfserve \S+ \(cfutures \d+\.\d+\.\d+\)", r.stdout), "--version",
              r.stdout)
        r = subprocess.run([CFSERVE, "--help"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and all(o in r.stdout for o in ("--bind", "--access-log", "--min-rate", "--md5-max")),
              "--help lists the options")
        p = subprocess.Popen([CFSERVE, "--bind", "::1", "--port", "0", "--root", root, "--threads", "1", "--procs", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        m = re.search(r"http://\[::1\]:(\d+)/", line)
        if m:
            code, body = curl("http://[::1]:%s/notes.txt" % m.group(1))
            check(code == 200 and body == "plain notes\n", "--bind ::1 serves over IPv6")
        else:
            check("Cannot assign" in p.stderr.read() if p.poll() is not None else False,
                  "--bind ::1 (no IPv6 here: a clear error)", line)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
        # A SIGTERM that comes while cfserve starts (here: pending before it
        # runs, held by the mask it is started with) stops it the graceful
        # way once its loop runs, not by the signal's default action.
        p = subprocess.Popen([CFSERVE, "--port", "0", "--root", root, "--threads", "1", "--procs", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}))
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += " (still running after 60 s)"
        check(p.returncode == 0 and "SIGTERM: stopped after 0 responses" in err,
              "SIGTERM during start-up: a graceful stop, exit 0", "rc %s: %s" % (p.returncode, err[-300:]))
        r = subprocess.run([CFSERVE, "--bind", "not-an-address"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "--bind not-an-address" in r.stderr, "--bind with a bad address: a clear error",
              r.stderr)
        srv = Server(root, "--mime-types", os.path.join(tmp, "none.types"))
        try:
            r = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", srv.base + "/notes.txt"],
                               capture_output=True, text=True, timeout=60)
            check("Content-Type: application/octet-stream" in r.stdout, "without a types file: octet-stream")
        finally:
            rc, err = srv.stop()
        check(rc == 0 and "none.types" in err, "a missing --mime-types file is reported", err[-300:])

        # Usage errors.
        for args in (["--port", "x"], ["--root", os.path.join(tmp, "nope")], ["--bogus"], ["--threads", "0"],
                     ["--md5-max", "12Q"], ["--min-rate", "-1"], ["--request-timeout", "0"],
                     ["--access-log", os.path.join(tmp, "nodir", "log")]):
            r = subprocess.run([CFSERVE] + args, capture_output=True, text=True, timeout=30)
            check(r.returncode == 2 and r.stderr, "usage error: %s" % " ".join(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return summary()


if __name__ == "__main__":
    sys.exit(main())
