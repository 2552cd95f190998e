#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""hostile_http.py - an HTTP/1.1 server on loopback that misbehaves on purpose, for crawler tests.

    tools/hostile_http.py [--port 0] [--robots FILE] [--fanout N] [--hold N]
                          [--latency-ms MS] [--pages N] [--log FILE] [--silent]

Prints "port N" on stdout once it listens on 127.0.0.1, then serves until its
standard input closes (so it never outlives the test that started it) or it
gets SIGTERM.  Python standard library only (asyncio): thousands of
connections cost no threads.  Keep-alive is supported; every request is
logged to --log as one JSON line {"t": seconds, "path", "ua", "conn": the
connection's number, "open": connections open at that moment}.

Paths (all HTML unless said otherwise):
  /robots.txt          the --robots file (404 without one)
  /fan/I               a page with --fanout links to fresh pages /fan/I-K
  /site/I              page I of a --pages site: links to 4I+1..4I+4 and I/2
                       (a tree with back links), answered after --latency-ms
  /site/               the site's index: links to every page (also after --latency-ms)
  /hold/                --hold links to /hold/K; no /hold/K is answered until
                       --hold of them are waiting at once (then "held N" is
                       printed on stdout), and they are released by GET /release
  /endless             text/html, chunked, never ends (as fast as it can)
  /drip                Content-Length 1,000,000, one byte every 200 ms
  /bomb                gzip bomb: 64 MiB of zeros, about 64 KiB on the wire
  /redirect/N          302 -> /redirect/N+1, forever
  /utf16               charset=utf-16 in the header, UTF-16LE body without BOM
  /bom16               UTF-16BE with a byte order mark, header says utf-8
  /meta1251            windows-1251 body declared by <meta charset> only
  /escape              terminal escape sequences in Content-Type and <title>,
                       invalid UTF-8 and bidi controls in the title
  /escape-type         a non-HTML type with terminal escape sequences and bytes that are not UTF-8
  /binary              application/octet-stream, 256 KiB
  /traversal           links that try to leave an --output directory
  /private/...         a page (for robots.txt rules)
  /polite              links to /private/a, /private/b, /private/open, /meta1251 and a few small pages
  /                    links to every case above
With --silent, every connection is accepted and never answered.
"""
import argparse
import asyncio
import gzip
import json
import os
import resource
import signal
import sys
import time

CASES = ["/fan/0", "/hold/", "/endless", "/drip", "/bomb", "/redirect/0", "/utf16", "/bom16", "/meta1251",
         "/escape", "/escape-type", "/binary", "/traversal", "/private/a", "/site/0", "/polite"]
ROBOTS_CASES = ["/private/a", "/private/b", "/private/open", "/meta1251", "/utf16", "/binary", "/ok", "/dir",
                "/tmp-escape-1"]


class Server:
    def __init__(self, a):
        self.a = a
        self.robots = open(a.robots, "rb").read() if a.robots else None
        self.log = open(a.log, "a", buffering=1) if a.log else None
        self.conns = 0
        self.open = 0
        self.held = []
        self.release = asyncio.Event()
        self.t0 = time.monotonic()
        self._bomb = None

    def bomb(self):
        if self._bomb is None:
            z = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
            self._bomb = z
        return self._bomb

    async def handle(self, reader, writer):
        self.conns += 1
        self.open += 1
        conn = self.conns
        try:
            if self.a.silent:
                await reader.read()  # until the client gives up
                return
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                path = parts[1]
                headers = {}
                for l in lines[1:]:
                    if ":" in l:
                        k, v = l.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if self.log:
                    self.log.write(json.dumps({"t": time.monotonic() - self.t0, "path": path,
                                               "ua": headers.get("user-agent"), "conn": conn,
                                               "open": self.open}) + "\n")
                keep = await self.respond(path, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.open -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def send(self, writer, status, body=b"", ctype=b"text/html; charset=utf-8", extra=b""):
        if isinstance(body, str):
            body = body.encode("utf-8")
        reason = {200: b"OK", 302: b"Found", 404: b"Not Found"}.get(status, b"X")
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                     % (status, reason, ctype, len(body), extra) + body)
        await writer.drain()
        return True

    async def respond(self, path, w):
        a = self.a
        if path == "/":
            links = "".join('<a href="%s">%s</a>\n' % (c, c) for c in CASES)
            return await self.send(w, 200, "<html><title>hostile</title><body>%s</body></html>" % links)
        if path == "/robots.txt":
            if self.robots is None:
                return await self.send(w, 404, "no robots.txt", b"text/plain")
            return await self.send(w, 200, self.robots, b"text/plain")
        if path.startswith("/fan/"):
            i = path[5:]
            # Fresh links only; ~30 bytes each.
            links = "".join('<a href="/fan/%s-%d">x</a>' % (i, k) for k in range(a.fanout))
            return await self.send(w, 200, "<html><title>fan %s</title><body>%s</body></html>" % (i, links))
        if path == "/site/":
            # The site's index (a site map): every page, one level down.
            if a.latency_ms:
                await asyncio.sleep(a.latency_ms / 1000.0)
            links = "".join('<a href="/site/%d">%d</a>\n' % (k, k) for k in range(a.pages))
            return await self.send(w, 200, "<html><title>index</title><body>%s</body></html>" % links)
        if path.startswith("/site/"):
            try:
                i = int(path[6:])
            except ValueError:
                return await self.send(w, 404, "no")
            if a.latency_ms:
                await asyncio.sleep(a.latency_ms / 1000.0)
            if not 0 <= i < a.pages:
                return await self.send(w, 404, "no such page")
            kids = [k for k in range(4 * i + 1, 4 * i + 5) if k < a.pages] + [i // 2]
            links = "".join('<li><a href="/site/%d">page %d</a></li>' % (k, k) for k in kids)
            return await self.send(w, 200, "<html><head><title>Page %d</title></head><body><ul>%s</ul>"
                                   "<p>%s</p></body></html>" % (i, links, "filler " * 60))
        if path == "/hold/":
            links = "".join('<a href="/hold/%d">h</a>' % k for k in range(a.hold))
            return await self.send(w, 200, "<html><title>hold</title><body>%s</body></html>" % links)
        if path.startswith("/hold/"):
            self.held.append(path)
            if len(self.held) == a.hold:
                print("held %d" % len(self.held), flush=True)
            await self.release.wait()
            return await self.send(w, 200, "<html><title>held</title></html>")
        if path == "/release":
            self.release.set()
            return await self.send(w, 200, "released", b"text/plain")
        if path == "/endless":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"<p>" + b"a" * 65536 + b"</p>"
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            while True:
                w.write(frame)
                await w.drain()
        if path == "/drip":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n<html>")
            while True:
                await w.drain()
                await asyncio.sleep(0.2)
                w.write(b"x")
        if path == "/bomb":
            return await self.send(w, 200, self.bomb(), b"text/html", b"Content-Encoding: gzip\r\n")
        if path.startswith("/redirect/"):
            n = int(path[10:]) if path[10:].isdigit() else 0
            return await self.send(w, 302, "", b"text/html", b"Location: /redirect/%d\r\n" % (n + 1))
        if path == "/utf16":
            body = ('<html><head><title>\u0417\u0430\u0433\u043e\u043b\u043e\u0432\u043e\u043a utf16</title>'
                    '</head><body><a href="/utf16-child">c</a></body></html>').encode("utf-16-le")
            return await self.send(w, 200, body, b"text/html; charset=utf-16")
        if path == "/bom16":
            body = b"\xfe\xff" + ('<html><head><title>BOM \u00e9t\u00e9</title></head>'
                                  '<body><a href="/bom16-child">c</a></body></html>').encode("utf-16-be")
            return await self.send(w, 200, body, b"text/html; charset=utf-8")
        if path == "/meta1251":
            body = ('<html><head><meta charset="windows-1251"><title>\u041f\u0440\u0438\u0432\u0435\u0442 1251'
                    '</title></head><body><a href="/meta1251-child">c</a></body></html>').encode("cp1251")
            return await self.send(w, 200, body, b"text/html")
        if path in ("/utf16-child", "/bom16-child", "/meta1251-child"):
            return await self.send(w, 200, "<html><title>child</title></html>")
        if path == "/escape":
            body = (b"<html><head><title>\x1b]0;owned\x07\x1b[2J\xc2\x9b31m \xe2\x80\xaeevil\xff\xfe end"
                    b"</title></head></html>")
            return await self.send(w, 200, body, b"text/html; charset=utf-8")
        if path == "/escape-type":
            return await self.send(w, 200, b"data", b"application/x-\x1b]0;owned\x07\x1b[31m\x9b2J\xff")
        if path == "/binary":
            return await self.send(w, 200, b"\0\x1b" * (128 << 10), b"application/octet-stream")
        if path == "/traversal":
            links = ["/../../../../tmp-escape-1", "/a/../../../tmp-escape-2", "/%2e%2e/%2e%2e/tmp-escape-3",
                     "/..%2f..%2ftmp-escape-4", "/./././ok", "/dir/", "/dir", "/q?x=/../../../tmp-escape-5",
                     "//double//slash"]
            body = "".join('<a href="%s">t</a>' % l for l in links)
            return await self.send(w, 200, "<html><title>traversal</title><body>%s</body></html>" % body)
        if path == "/polite":
            links = "".join('<a href="%s">p</a>' % l for l in ROBOTS_CASES)
            return await self.send(w, 200, "<html><title>polite</title><body>%s</body></html>" % links)
        if path.startswith("/private/"):
            return await self.send(w, 200, "<html><title>private %s</title></html>" % path[9:])
        # Everything else that the cases link to: a small page.
        if path.startswith(("/tmp-escape", "/ok", "/dir", "/q", "/double", "/%2e", "/..")):
            return await self.send(w, 200, "<html><title>page %s</title></html>" % path.replace("<", ""))
        return await self.send(w, 404, "not found")


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--robots")
    ap.add_argument("--fanout", type=int, default=20000)
    ap.add_argument("--hold", type=int, default=10)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--pages", type=int, default=5000)
    ap.add_argument("--log")
    ap.add_argument("--silent", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = Server(a)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", a.port, backlog=4096, limit=1 << 16)
    print("port %d" % server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    # A client that gives up resets its connections: that is expected here, not worth a traceback.
    loop.set_exception_handler(lambda lp, ctx: None if isinstance(ctx.get("exception"), ConnectionError)
                               else lp.default_exception_handler(ctx))
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    await done.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
