#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""gensite.py - generate a static web site for crawling cfcrawl, cfserve and the benchmarks.

    tools/gensite.py DIR [--pages N] [--manifest FILE]

Writes DIR/index.html and DIR/p/0.html .. DIR/p/<N-1>.html: a link graph with
cycles (page i links to i+1, 2i+1, 2i+2 and i//3, modulo N, through absolute,
relative and ../ links), titles with HTML entities, and a few pages carrying
the awkward cases a crawler meets:

  * links to pages that do not exist (404)             - every 10th page
  * the same page with a #fragment                      - every 7th page
  * links to another host and to another port           - every 25th page
  * mailto:, javascript: and empty links                - page 1
  * a link to /old.html, which a server may redirect    - page 3
  * links to non-HTML files (files/data.bin, files/notes.txt) - page 5
  * a <base href> that changes how relative links resolve - page 6

With --manifest, writes a JSON file describing what a correct crawler sees: for
each URL path, its title (entities decoded) and its on-site out-links
(fragment-free, resolved), plus the list of paths that do not exist.  The
redirect of /old.html is the server's business: nginx configs in the tests map
it to /p/2.html.
"""
import argparse
import html
import json
import os


def page_links(i, n):
    """Out-links of page i as (href as written, resolved path or None for off-site/other)."""
    links = []

    def page(j):
        return "/p/%d.html" % (j % n)

    # The graph: forward, two children (a binary tree over the pages), and back up.
    links.append(("%d.html" % ((i + 1) % n), page(i + 1)))             # relative
    links.append(("/p/%d.html" % ((2 * i + 1) % n), page(2 * i + 1)))  # absolute path
    links.append(("../p/%d.html" % ((2 * i + 2) % n), page(2 * i + 2)))  # dot-dot
    links.append(("/p/%d.html" % (i // 3), page(i // 3)))              # back: a cycle
    if i % 10 == 0:
        links.append(("/missing/%d.html" % i, "/missing/%d.html" % i))
    if i % 7 == 0:
        links.append(("/p/%d.html#part-2" % ((i + 3) % n), page(i + 3)))
        links.append(("#top", "/p/%d.html" % i))
    if i % 25 == 0:
        links.append(("http://other.invalid/p/%d.html" % i, None))
        links.append(("http://127.0.0.1:1/p/%d.html" % i, None))
    if i == 1:
        links += [("mailto:someone@example.com", None), ("javascript:void(0)", None), ("", "/p/1.html")]
    if i == 3:
        links.append(("/old.html", "/old.html"))
    if i == 5:
        links += [("/files/data.bin", "/files/data.bin"), ("/files/notes.txt", "/files/notes.txt")]
    return links


def title_of(i):
    return "Page %d & friends <#%d> \u2014 \"cfutures\"" % (i, i)


def write_page(path, i, n):
    links = page_links(i, n)
    base = ""
    if i == 6:
        # Relative links on this page resolve against /p/sub/, so write them to match.
        base = '<base href="/p/sub/">'
        links = [(h if h.startswith(("/", "http", "#", "mailto:", "javascript:")) or not h else "../" + h, t)
                 for h, t in links]
    body = "\n".join('<li><a href="%s">link %d</a></li>' % (html.escape(h, quote=True), k)
                     for k, (h, _) in enumerate(links))
    text = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">%s\n"
            "<title>Page %d &amp; friends &lt;#%d&gt; &mdash; &quot;cfutures&quot;</title></head>\n"
            "<body><h1 id=\"top\">Page %d</h1>\n<ul>\n%s\n</ul>\n<p id=\"part-2\">%s</p></body></html>\n"
            % (base, i, i, i, body, "filler " * 40))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return links


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--manifest")
    a = ap.parse_args()
    n = a.pages
    if n < 10:
        ap.error("--pages must be at least 10")
    os.makedirs(os.path.join(a.dir, "p"), exist_ok=True)
    os.makedirs(os.path.join(a.dir, "files"), exist_ok=True)

    manifest = {"pages": {}, "missing": [], "redirects": {"/old.html": "/p/2.html"}}
    with open(os.path.join(a.dir, "index.html"), "w", encoding="utf-8") as f:
        f.write("<!DOCTYPE html>\n<html><head><title>Generated site</title></head>\n"
                "<body><a href=\"p/0.html\">start</a> <a href=\"/index.html\">home</a></body></html>\n")
    manifest["pages"]["/"] = {"title": "Generated site", "links": ["/p/0.html", "/index.html"]}
    manifest["pages"]["/index.html"] = manifest["pages"]["/"]
    for i in range(n):
        links = write_page(os.path.join(a.dir, "p", "%d.html" % i), i, n)
        out = []
        for _, target in links:
            if target and target not in out:
                out.append(target)
            if target and target.startswith("/missing/"):
                manifest["missing"].append(target)
        manifest["pages"]["/p/%d.html" % i] = {"title": title_of(i), "links": out}
    with open(os.path.join(a.dir, "files", "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 16)
    with open(os.path.join(a.dir, "files", "notes.txt"), "w") as f:
        f.write("plain text, not HTML\n")
    manifest["files"] = ["/files/data.bin", "/files/notes.txt"]
    if a.manifest:
        with open(a.manifest, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
