#!/usr/bin/env bash
# seeds_test.sh - demos/cfseeds (installed as cfseeds): --version, --help, a
# usage error, and a quick run of every seed program with its results checked
# (cfseeds checks each result against its serial run and exits 1 on any
# difference; the fib and gcd lines are checked here as well).
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -u
BUILDDIR=${CF_BUILDDIR:-.}
SRCDIR=${CF_SRCDIR:-.}
CFSEEDS=$BUILDDIR/demos/cfseeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$CFSEEDS" --version >"$tmp/version" || fail "--version exited $?"
grep -qE '^cfseeds \(cfutures\) [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/version" || fail "--version printed: $(cat "$tmp/version")"
"$CFSEEDS" --help >"$tmp/help" || fail "--help exited $?"
grep -q '^usage: cfseeds' "$tmp/help" || fail "--help printed no usage"
"$CFSEEDS" --no-such-option >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "a bad option did not exit 2"
grep -q "unknown option '--no-such-option'" "$tmp/err" || fail "no message for a bad option"
"$CFSEEDS" --workers 0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--workers 0 did not exit 2"

# The quick run: fib(25..30), 9,999 map items, the md5 walk over lib/.
"$CFSEEDS" --quick --workers 2 --md5-dir "$SRCDIR/lib" >"$tmp/out" 2>"$tmp/err" || {
    cat "$tmp/out" "$tmp/err"
    fail "cfseeds --quick exited with an error"
}
out=$tmp/out
grep -q '^All results correct\.$' "$out" || fail "no 'All results correct.'"
for line in 'fib(25) = 75025' 'fib(30) = 832040' 'fib(33) = 3524578' "raise an exception: Don't do this" \
    'map stopped: item 4: Don'"'"'t do this' 'serial:       [1, 5, 1, 5, 2, 3]' 'every result equals the serial run' \
    'every digest equals the serial run'; do
    grep -qF -- "$line" "$out" || fail "missing line: $line"
done
# Part 1 prints each of fib(25..30) once per pool: twice in all.
for n in 25 26 27 28 29 30; do
    [ "$(grep -c "^fib($n) = " "$out")" -ge 2 ] || fail "fib($n) not printed for both pools"
done
[ "$(grep -c '^thread pool:  \[1, 5, 1, 5, 2, 3\]$' "$out")" -eq 1 ] || fail "gcd on the thread pool"
[ "$(grep -c '^process pool: \[1, 5, 1, 5, 2, 3\]$' "$out")" -eq 1 ] || fail "gcd on the process pool"
echo "PASS: cfseeds --version, --help, usage errors, and a quick run with every result checked"
