#!/usr/bin/python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""py_crawl.py - a Python web-crawler peer for demos/cfcrawl.

What a Python user would write with the standard library only:
concurrent.futures.ThreadPoolExecutor + urllib.request + html.parser.

  py_crawl.py [--concurrency 32] [--max-pages 100000] [--depth -1]
              [--timeout 10] URL

The main thread owns the crawl: a FIFO frontier (so the crawl is breadth
first), the set of URLs already seen, and the counters.  It keeps up to
--concurrency fetches in flight in a ThreadPoolExecutor with that many
workers, waiting with concurrent.futures.wait(FIRST_COMPLETED) and topping
the pool up as fetches finish.  A fetch task downloads one URL with
urllib.request.urlopen (which follows redirects; a new connection per
request, urllib has no keep-alive), and, when the response is HTML, parses
it with html.parser.HTMLParser, collecting <a href> (and <area href>, and
honouring <base href>) resolved against the final URL, with the fragment
dropped, keeping only http(s) URLs on the start URL's host and port.
Every URL is fetched at most once; --max-pages bounds the number of URLs
fetched, --depth the number of hops from the start URL (-1: no limit).

Per-URL failures (connection errors, HTTP errors, timeouts) count as
errors and never stop the crawl.  "pages" counts every URL fetched,
successful or not (as cfcrawl's summary does).

Prints exactly one JSON line on stdout:
  {"case": "crawl", "unit": "pages/s", "value": pages_per_second,
   "pages": N, "errors": E, "seconds": S, ...}
Diagnostics go to stderr.
"""

import argparse
import collections
import concurrent.futures
import html.parser
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

USER_AGENT = "py_crawl/0.1 (cfutures peer)"
MAX_BODY = 16 << 20


def site_of(url):
    """(scheme-independent) host and port of an http(s) URL, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.hostname.lower(), port)


class LinkParser(html.parser.HTMLParser):
    def __init__(self, base):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "area"):
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value)
        elif tag == "base":
            for name, value in attrs:
                if name == "href" and value:
                    self.base = urllib.parse.urljoin(self.base, value.strip())


def fetch(url, site, timeout):
    """Worker side: fetch one URL and return (error, final_url, links, nbytes)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            final = resp.geturl()
            ctype = resp.headers.get_content_type()
            charset = resp.headers.get_content_charset() or "utf-8"
            body = resp.read(MAX_BODY + 1)
    except urllib.error.HTTPError as e:
        return ("HTTP %d" % e.code, url, (), 0)
    except Exception as e:  # URLError, timeouts, connection resets, ...
        return ("%s: %s" % (type(e).__name__, e), url, (), 0)
    if len(body) > MAX_BODY:
        return ("page larger than %d bytes" % MAX_BODY, final, (), len(body))
    if ctype not in ("text/html", "application/xhtml+xml"):
        return ("not HTML (%s)" % ctype, final, (), len(body))
    if site_of(final) != site:
        return (None, final, (), len(body))  # redirected off-site
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    parser = LinkParser(final)
    try:
        parser.feed(text)
        parser.close()
    except Exception as e:
        return ("HTML parser failed: %s" % e, final, (), len(body))
    links = []
    for href in parser.hrefs:
        try:
            link = urllib.parse.urljoin(parser.base, href.strip())
        except ValueError:
            continue
        link = urllib.parse.urldefrag(link)[0]
        if site_of(link) == site:
            links.append(link)
    return (None, final, links, len(body))


def crawl(start, concurrency, max_pages, max_depth, timeout):
    start = urllib.parse.urldefrag(start)[0]
    site = site_of(start)
    if site is None:
        raise SystemExit("py_crawl: not an http(s) URL: %s" % start)

    frontier = collections.deque([(start, 0)])
    seen = {start}
    inflight = {}
    submitted = pages = errors = nbytes = 0

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as ex:
        while True:
            while frontier and len(inflight) < concurrency and submitted < max_pages:
                url, depth = frontier.popleft()
                inflight[ex.submit(fetch, url, site, timeout)] = depth
                submitted += 1
            if not inflight:
                break
            done, _ = concurrent.futures.wait(
                inflight, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                depth = inflight.pop(fut)
                err, final, links, size = fut.result()
                pages += 1
                nbytes += size
                seen.add(final)  # a redirect target is not fetched again
                if err is not None:
                    errors += 1
                    continue
                if max_depth >= 0 and depth + 1 > max_depth:
                    continue
                for link in links:
                    if link not in seen:
                        seen.add(link)
                        frontier.append((link, depth + 1))
    secs = time.perf_counter() - t0
    return {
        "case": "crawl",
        "unit": "pages/s",
        "value": pages / secs if secs > 0 else 0.0,
        "pages": pages,
        "errors": errors,
        "seconds": secs,
        "bytes": nbytes,
        "not_fetched": len(frontier),
        "concurrency": concurrency,
        "python": "%d.%d.%d" % sys.version_info[:3],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-pages", type=int, default=100000)
    ap.add_argument("--depth", type=int, default=-1,
                    help="hops from the start URL to follow (-1: unlimited)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="per-request timeout in seconds")
    ap.add_argument("url")
    args = ap.parse_args()
    if args.concurrency <= 0 or args.max_pages <= 0:
        ap.error("--concurrency and --max-pages must be positive")
    out = crawl(args.url, args.concurrency, args.max_pages, args.depth, args.timeout)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
