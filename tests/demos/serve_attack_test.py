#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""serve_attack_test.py - cfserve against hostile clients on 127.0.0.1.

Run by `make check` (CF_BUILDDIR set by the Makefile), or by hand:
    CF_BUILDDIR=build/plain tests/demos/serve_attack_test.py

Each attack checks bounds and recovery, not only that the server survives:

  pipeline   5 connections pipeline 32 GETs of a 16 MiB file and read nothing:
             RSS growth stays under 32 MiB; then one reads its 512 MiB intact
  slowbody   --max-conns clients trickle a declared 1 MB body: each gets 408,
             their slots free up, and a normal client is served
  slowread   a client that reads a 16 MiB answer slower than --min-rate is
             cut off; others are served
  fdflood    under `ulimit -n 64`, 150 clients at once: answers are 200 or 503,
             /health answers throughout, then everything recovers
  md5        a file over --md5-max is refused at once; a hash whose client
             leaves is cancelled; static files are served while hashes run
  paths      request targets of 1 to 8 KB: 414, never 500
  pool       a killed worker: its request fails, /health recovers; a killed
             fork server is replaced: /health recovers, static files still work
  sighup     SIGHUP reopens the access log; a request in flight is answered
  halfclose  a client that shuts down its sending side gets every answer

Peak RSS (VmHWM) and descriptor counts are printed as "# ..." lines.  Waits
are bounded polls on observable events (counters in /stats, a socket
closing), never sleeps used as synchronisation; the only pauses are the
attack's own pacing.  Exit status: 0 pass, 1 fail, 77 skip.
"""
import json
import os
import re
import resource
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
MiB = 1 << 20


class Server:
    def __init__(self, root, *args, ulimit=None):
        cmd = [CFSERVE, "--port", "0", "--root", root, "--threads", "2", "--procs", "2", "--hash-threads", "1"]
        cmd += list(args)
        if ulimit:
            cmd = ["bash", "-c", 'ulimit -n %d && exec "$@"' % ulimit, "cfserve"] + cmd
        # SIGHUP as a terminal would deliver it (a test runner may have it ignored): fatal unless handled.
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        line = self.p.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise RuntimeError("cfserve did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))
        self.pid = self.server_pid()

    def server_pid(self):
        """The cfserve process (under libtool's wrapper and bash, the exec'd program keeps the pid)."""
        return self.p.pid

    def stop(self, timeout=60):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            _, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return self.p.returncode, err

    def status(self, key):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))


def request(port, path, timeout=30, method="GET", headers=""):
    """(status, headers, body) of one request on a fresh connection, or (0, '', error)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" % (method, path, headers)).encode())
        data = read_all(s)
    except OSError as e:
        return 0, "", str(e)
    return parse_one(data)


def read_all(s):
    got = b""
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    return got


def parse_one(data):
    text = data.decode("latin-1")
    while text.startswith("HTTP/1.1 1"):  # interim responses
        text = text[text.find("\r\n\r\n") + 4:]
    m = re.match(r"HTTP/1\.1 (\d{3})", text)
    h = text.find("\r\n\r\n")
    return (int(m.group(1)) if m else 0), text[:h], text[h + 4:]


def finals(text):
    """Statuses of the final responses in a stream (1xx skipped)."""
    return [int(x) for x in re.findall(r"HTTP/1\.1 (\d{3})", text) if not x.startswith("1")]


def stats(port):
    st, _, body = request(port, "/stats")
    return json.loads(body) if st == 200 else None


def wait_for(cond, seconds):
    """Poll cond() until true or the bound passes; the value of the last call."""
    deadline = time.monotonic() + seconds
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def file_opens(st):
    """Static files opened so far: on pool threads, or on the loop when the kernel's caches had them."""
    st = st or {}
    return st.get("thread_pool", {}).get("completed", 0) + st.get("server", {}).get("files_on_loop", 0)


def attack_pipeline(root):
    srv = Server(root)
    try:
        base_rss = srv.status("VmRSS")
        req = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 32
        conns = []
        for _ in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: the window follows
            s.settimeout(120)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(req)
            conns.append(s)
        # Every connection parses up to its bound of open files: 4 each (CFS_MAX_FILES).
        got = wait_for(lambda: file_opens(stats(srv.port)) >= 20, 60)
        st = stats(srv.port)
        grow = srv.status("VmRSS") - base_rss
        print("# pipeline: RSS %.1f -> %.1f MiB (peak %.1f MiB), %d descriptors, %d file opens done" % (
            base_rss / MiB, srv.status("VmRSS") / MiB, srv.status("VmHWM") / MiB, srv.fds(),
            file_opens(st)))
        # (A socket buffer larger than a file would let a few more through: allow that much.)
        check(got and file_opens(st) <= 5 * 6,
              "pipeline: parsing stops at the per-connection bound (%d file opens)" % file_opens(st))
        check(grow <= 32 * MiB, "pipeline: RSS growth %.1f MiB <= 32 MiB" % (grow / MiB))
        check(request(srv.port, "/health")[0] == 200, "pipeline: /health answers meanwhile")
        # One reader takes all of its 32 answers, byte for byte in length.
        s = conns[0]
        s.shutdown(socket.SHUT_WR)
        total = 0
        heads = 0
        buf = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if heads < 32:
                buf = (buf + chunk)[-200:]
                heads += chunk.count(b"HTTP/1.1 200 OK")
        size = os.path.getsize(os.path.join(root, "big.bin"))
        check(total >= 32 * size and total < 32 * (size + 1024),
              "pipeline: the reader gets 32 whole files (%d bytes)" % total)
        for c in conns:
            c.close()
        check(srv.status("VmHWM") - base_rss <= 48 * MiB, "pipeline: peak RSS growth %.1f MiB stays bounded" % (
            (srv.status("VmHWM") - base_rss) / MiB))
    finally:
        rc, err = srv.stop()
    check(rc == 0, "pipeline: exit 0", err[-300:])


def attack_slowbody(root):
    srv = Server(root, "--max-conns", "4", "--idle-timeout", "2", "--min-rate", "200", "--request-timeout", "20")
    stop = threading.Event()
    results = [None] * 4

    def trickle(i, s):
        s.settimeout(0.3)
        got = b""
        while not stop.is_set():
            try:
                s.send(b"x")  # one byte every 0.3 s: faster than the idle timeout, slower than --min-rate
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                continue
            except OSError:
                break
        results[i] = got.decode("latin-1")
        s.close()

    try:
        socks = []
        for i in range(4):  # every slot taken, one after the other
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            s.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            socks.append(s)
        threads = [threading.Thread(target=trickle, args=(i, s)) for i, s in enumerate(socks)]
        for t in threads:
            t.start()
        first = request(srv.port, "/health")[0]
        print("# slowbody: a fifth client while 4 trickle: %d" % first)
        check(first == 503, "slowbody: the slots are full at first (%d)" % first)
        served = wait_for(lambda: request(srv.port, "/a.txt")[0] == 200, 60)
        for t in threads:
            t.join(60)
        stop.set()
        check(served, "slowbody: a normal client is served once the tricklers time out")
        check(all(r is not None and finals(r) == [408] for r in results),
              "slowbody: every trickler got 408 and was closed", repr([r[:60] if r else r for r in results]))
        st = stats(srv.port)
        check(st and st["server"]["timeouts"] >= 4, "slowbody: four timeouts counted")
    finally:
        stop.set()
        rc, err = srv.stop()
    check(rc == 0, "slowbody: exit 0", err[-300:])


def attack_slowread(root):
    srv = Server(root, "--idle-timeout", "8", "--min-rate", "4000000")
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(60)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            try:
                chunk = s.recv(16384)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
            time.sleep(0.05)  # the attack: about 300 KB/s, under --min-rate
        s.close()
        st = stats(srv.port)
        print("# slowread: closed after %d of %d bytes" % (got, os.path.getsize(os.path.join(root, "big.bin"))))
        check(got < os.path.getsize(os.path.join(root, "big.bin")) and st["server"]["timeouts"] >= 1,
              "slowread: a reader under --min-rate is cut off (%d bytes)" % got)
        check(request(srv.port, "/a.txt")[0] == 200, "slowread: others are served")
    finally:
        rc, err = srv.stop()
    check(rc == 0, "slowread: exit 0", err[-300:])


def attack_fdflood(root):
    srv = Server(root, "--threads", "1", "--procs", "1", ulimit=64)
    try:
        st = stats(srv.port)
        maxc = st["server"]["max_conns"]
        base_fds = srv.fds()
        print("# fdflood: ulimit -n 64: --max-conns defaults to %d; %d descriptors open" % (maxc, base_fds))
        check(0 < maxc < 64, "fdflood: --max-conns derived from the descriptor limit (%d)" % maxc)
        held = []
        for _ in range(150):
            try:
                held.append(socket.create_connection(("127.0.0.1", srv.port), timeout=30))
            except OSError:
                break
        codes = {}
        peak = srv.fds()
        h = request(srv.port, "/health", timeout=20)[0]
        check(h == 503, "fdflood: /health answers 503 while every slot is held (got %d)" % h)
        for s in held:
            try:
                s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
        for s in held:
            try:
                s.settimeout(30)
                c = finals(read_all(s).decode("latin-1"))
                c = c[0] if c else 0
            except OSError:
                c = 0
            codes[c] = codes.get(c, 0) + 1
        peak = max(peak, srv.fds())
        print("# fdflood: 150 clients: %s; peak %d descriptors" % (codes, peak))
        check(set(codes) <= {200, 503} and codes.get(503, 0) > 0 and codes.get(200, 0) > 0,
              "fdflood: every client gets 200 or 503", repr(codes))
        check(peak <= 64, "fdflood: descriptors stay within the limit (%d)" % peak)
        ok = wait_for(lambda: request(srv.port, "/health")[0] == 200 and request(srv.port, "/a.txt")[0] == 200, 30)
        check(ok, "fdflood: recovery: /health and static files 200 again")
        check(wait_for(lambda: srv.fds() <= base_fds + 2, 30), "fdflood: descriptors back to %d (%d)" % (
            base_fds, srv.fds()))
        # Exhaustion the budget did not foresee: the limit lowered under the running server.
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (srv.fds() + 2, 64))
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(20)]
        for s in held:
            try:
                s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
        codes = {}
        for s in held:
            c = finals(read_all(s).decode("latin-1"))
            codes[c[0] if c else 0] = codes.get(c[0] if c else 0, 0) + 1
        st = stats(srv.port) or {"server": {}}
        print("# fdflood: limit lowered to %d under the server: %s, accept EMFILE %s times" % (
            base_fds + 2, codes, st["server"].get("accept_emfile")))
        check(set(codes) <= {200, 503} and codes.get(503, 0) > 0 and st["server"].get("accept_emfile", 0) > 0,
              "fdflood: EMFILE is answered 503 (the reserve descriptor), nothing hangs", repr(codes))
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (64, 64))
        ok = wait_for(lambda: request(srv.port, "/health")[0] == 200 and request(srv.port, "/a.txt")[0] == 200, 30)
        check(ok, "fdflood: recovery once descriptors are back")
    finally:
        rc, err = srv.stop()
    check(rc == 0, "fdflood: exit 0", err[-300:])
    check(err.count("accept:") <= 30, "fdflood: accept errors are not logged in a loop (%d lines)" % err.count("accept:"))


def attack_md5(root, tmp):
    srv = Server(root, "--md5-max", "8G", "--threads", "1")
    try:
        # Over the cap: refused before any reading.
        code, _, body = request(srv.port, "/md5?path=huge.bin")
        check(code == 403 and "too large" in body, "md5: a file over --md5-max is refused", "%d %s" % (code, body))
        # A hash whose client leaves is cancelled.
        before = stats(srv.port)["hash_pool"]["completed"]
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /md5?path=sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        running = wait_for(lambda: (stats(srv.port) or {}).get("hash_pool", {}).get("running", 0) == 1, 30)
        check(running, "md5: the hash of 4 GiB runs")
        # Static files do not wait behind it.
        code = request(srv.port, "/a.txt")[0]
        st = stats(srv.port)
        check(code == 200 and st["hash_pool"]["running"] == 1, "md5: a static file is served while a hash runs")
        s.close()
        done = wait_for(lambda: (stats(srv.port) or {}).get("hash_pool", {}).get("cancelled", 0) == 1, 30)
        st = stats(srv.port)
        check(done and st["hash_pool"]["running"] == 0 and st["hash_pool"]["completed"] == before,
              "md5: the hash stops when its client leaves", json.dumps(st.get("hash_pool")))
    finally:
        rc, err = srv.stop()
    check(rc == 0, "md5: exit 0", err[-300:])


def attack_paths(root):
    srv = Server(root)
    try:
        for kb in (1, 2, 3, 4, 6, 8):
            n = kb * 1024
            code = request(srv.port, "/" + "a" * n)[0]
            check(code == 414, "paths: a %d KB path component is 414 (got %d)" % (kb, code))
            parts = "/".join(["b" * 200] * (n // 201))
            code = request(srv.port, "/" + parts)[0]
            check(code in (404, 414), "paths: a %d KB path of 200-byte components is 404 or 414 (got %d)" % (kb, code))
        code = request(srv.port, "/md5?path=" + "c" * 3000)[0]
        check(code == 414, "paths: /md5 of a 3 KB name is 414 (got %d)" % code)
        check(request(srv.port, "/health")[0] == 200, "paths: still healthy")
    finally:
        rc, err = srv.stop()
    check(rc == 0, "paths: exit 0", err[-300:])


def attack_pool(root):
    srv = Server(root)
    try:
        st = stats(srv.port)
        pp = st["process_pool"]
        check(len(pp["worker_pids"]) == 2 and all(pp["worker_pids"]) and pp["fork_server_pid"] > 0,
              "pool: /stats names the fork server and the workers", json.dumps(pp))
        # A worker killed while it runs a request.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        s.sendall(b"GET /fib?n=45 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_for(lambda: (stats(srv.port) or {})["process_pool"]["running"] >= 1, 30)
        for pid in pp["worker_pids"]:
            os.kill(pid, signal.SIGKILL)
        code, _, body = parse_one(read_all(s))
        check(code in (500, 503) and "pid" in body, "pool: the request of a killed worker fails and says so",
              "%d %s" % (code, body[:200]))
        ok = wait_for(lambda: request(srv.port, "/health")[0] == 200, 30)
        check(ok, "pool: /health recovers once the workers are replaced")
        code, _, body = request(srv.port, "/fib?n=20")
        check(code == 200 and body == "6765\n", "pool: fib works again")
        # The fork server killed: the pool starts a new one with new workers; nothing hangs.
        os.kill(pp["fork_server_pid"], signal.SIGKILL)
        ok = wait_for(lambda: (stats(srv.port) or {})["process_pool"]["fork_server_pid"] not in
                      (0, pp["fork_server_pid"]) and request(srv.port, "/health")[0] == 200, 30)
        check(ok, "pool: a new fork server replaces the killed one; /health recovers")
        code, _, body = request(srv.port, "/fib?n=20", timeout=30)
        check(code == 200 and body == "6765\n", "pool: fib works after the fork server was replaced (got %d)" % code)
        check(request(srv.port, "/a.txt")[0] == 200, "pool: static files are still served")
    finally:
        rc, err = srv.stop()
    check(rc == 0, "pool: exit 0", err[-300:])


def attack_sighup(root, tmp):
    log = os.path.join(tmp, "access.log")
    srv = Server(root, "--access-log", log)
    try:
        check(request(srv.port, "/a.txt", headers="User-Agent: first \"quoted\"\r\nReferer: http://r/\r\n")[0] == 200,
              "sighup: a request before")
        os.rename(log, log + ".1")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        s.sendall(b"GET /sleep?ms=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_for(lambda: (stats(srv.port) or {})["server"]["requests_in_flight"] >= 1, 30)
        srv.p.send_signal(signal.SIGHUP)
        code, _, body = parse_one(read_all(s))
        check(code == 200 and body == "slept 500 ms\n", "sighup: the request in flight is answered")
        wait_for(lambda: os.path.exists(log), 30)
        check(request(srv.port, "/health")[0] == 200, "sighup: the server goes on")
        old = open(log + ".1").read()
        new = open(log).read() if os.path.exists(log) else ""
        check(re.match(r'127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /a\.txt HTTP/1\.1" 200 6 '
                       r'"http://r/" "first \\x22quoted\\x22"\n', old) is not None,
              "sighup: combined format, quotes escaped", repr(old[:300]))
        check("/sleep?ms=500" in new and "/health" in new and "/a.txt" not in new,
              "sighup: later lines go to the reopened file", repr(new[:300]))
    finally:
        rc, err = srv.stop()
    check(rc == 0 and srv.p.returncode == 0, "sighup: SIGHUP does not stop the server; exit 0", err[-300:])


def attack_halfclose(root):
    srv = Server(root)
    try:
        for version in ("1.1", "1.0"):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            keep = "Connection: keep-alive\r\n" if version == "1.0" else ""
            reqs = "".join("GET %s HTTP/%s\r\nHost: x\r\n%s\r\n" % (p, version, keep)
                           for p in ("/md5?path=a.txt", "/fib?n=27", "/a.txt", "/sleep?ms=200"))
            s.sendall(reqs.encode())
            s.shutdown(socket.SHUT_WR)
            text = read_all(s).decode("latin-1")
            check(finals(text) == [200, 200, 200, 200] and "196418\n" in text and "hello\n" in text,
                  "halfclose: HTTP/%s answers after the client shut down its side" % version, repr(text[-300:]))
    finally:
        rc, err = srv.stop()
    check(rc == 0, "halfclose: exit 0", err[-300:])


def main():
    if not os.path.exists(CFSERVE):
        print("skip: %s not built" % CFSERVE)
        return 77
    tmp = tempfile.mkdtemp(prefix="cf-serve-attack-")
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        with open(os.path.join(root, "a.txt"), "w") as f:
            f.write("hello\n")
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(os.urandom(16 * MiB))
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.truncate(9 << 30)  # sparse: over the 8 GiB cap used below
        with open(os.path.join(root, "sparse.bin"), "wb") as f:
            f.truncate(4 << 30)  # sparse: seconds of hashing
        only = sys.argv[1:]
        for name, fn, args in (("pipeline", attack_pipeline, (root,)), ("slowbody", attack_slowbody, (root,)),
                               ("slowread", attack_slowread, (root,)), ("fdflood", attack_fdflood, (root,)), ("md5", attack_md5, (root, tmp)),
                               ("paths", attack_paths, (root,)), ("pool", attack_pool, (root,)),
                               ("sighup", attack_sighup, (root, tmp)), ("halfclose", attack_halfclose, (root,))):
            if only and name not in only:
                continue
            print("# %s" % name)
            sys.stdout.flush()
            try:
                fn(*args)
            except Exception as e:  # a broken attack is a failure, not a crash of the driver
                check(False, "%s: ran to the end" % name, repr(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
