#!/bin/sh
# curl_parallel.sh - curl command-line peer for the crawl benchmark.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
#
#   curl_parallel.sh [--concurrency N] URLFILE
#
# Fetches every URL of URLFILE (one per line; blank lines and lines starting
# with '#' are skipped) with a single `curl --parallel --parallel-max N -s`
# run (default N = 32), bodies to /dev/null.  The URLs are passed through a
# generated curl config file (-K) with one `url = ...` / `output = /dev/null`
# pair per URL.  Redirects are not followed, nothing is parsed: this is the
# cost of the transfers alone, with curl's connection reuse (keep-alive).
#
# The curl run is timed with `date +%s.%N` (config generation is not timed).
# Prints exactly one JSON line on stdout:
#   {"case": "crawl_curl", "unit": "pages/s", "value": ..., "pages": N,
#    "seconds": S, "errors": E, "concurrency": C}
# "errors" counts transfers that got no HTTP response or a status >= 400.
# Diagnostics go to stderr.  Exit status: 0, 1 when curl failed to run at
# all, 2 on a usage error.
set -eu

usage() {
    echo "usage: curl_parallel.sh [--concurrency N] URLFILE" >&2
    exit 2
}

conc=32
while [ $# -gt 0 ]; do
    case "$1" in
        --concurrency)
            [ $# -ge 2 ] || usage
            conc=$2
            shift 2
            ;;
        --concurrency=*)
            conc=${1#--concurrency=}
            shift
            ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
urlfile=$1
[ -r "$urlfile" ] || { echo "curl_parallel.sh: cannot read $urlfile" >&2; exit 2; }
case "$conc" in
    ''|*[!0-9]*|0) echo "curl_parallel.sh: bad --concurrency: $conc" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/curl_parallel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# One url/output pair per URL; backslashes and double quotes escaped for
# curl's config syntax.
awk '
    /^[ \t]*$/ || /^[ \t]*#/ { next }
    {
        gsub(/^[ \t]+|[ \t\r]+$/, "")
        gsub(/\\/, "\\\\"); gsub(/"/, "\\\"")
        printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0
        n++
    }
    END { if (n == 0) exit 1 }
' "$urlfile" > "$tmp/curl.conf" || { echo "curl_parallel.sh: no URLs in $urlfile" >&2; exit 2; }
pages=$(grep -c '^url = ' "$tmp/curl.conf")

t0=$(date +%s.%N)
rc=0
curl --parallel --parallel-max "$conc" -s --no-progress-meter -K "$tmp/curl.conf" \
     -w '%{http_code}\n' > "$tmp/codes" || rc=$?
t1=$(date +%s.%N)

# curl exits non-zero when any transfer failed; that is counted, not fatal,
# unless nothing was transferred at all.
if [ ! -s "$tmp/codes" ]; then
    echo "curl_parallel.sh: curl failed (exit $rc)" >&2
    exit 1
fi
[ "$rc" -eq 0 ] || echo "curl_parallel.sh: curl exit status $rc" >&2

awk -v t0="$t0" -v t1="$t1" -v pages="$pages" -v conc="$conc" '
    { n++; if ($1 + 0 < 100 || $1 + 0 >= 400) err++ }
    END {
        secs = t1 - t0
        err += pages - n
        printf "{\"case\": \"crawl_curl\", \"unit\": \"pages/s\", \"value\": %.1f, \"pages\": %d, \"seconds\": %.6f, \"errors\": %d, \"concurrency\": %d}\n", \
            (secs > 0 ? pages / secs : 0), pages, secs, err + 0, conc
    }
' "$tmp/codes"
