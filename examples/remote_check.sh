#!/usr/bin/env bash
# examples/remote_check.sh - run examples/remote_map against a redis-server of
# its own on a free port, with two workers: a cfworker loading remote_seed.so
# and examples/remote_worker (the same task linked in); compare with
# expected/remote_map.out, then drain the workers (SIGTERM).
# Skipped (77) without redis-server.  Run by make check.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -u
build=${CF_BUILDDIR:-.}
src=${CF_SRCDIR:-.}
server=$(command -v redis-server || true)
[ -n "$server" ] || { echo "SKIP: redis-server not found"; exit 77; }
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
rpid=$!
w1= w2=
cleanup() {
    for p in $w1 $w2; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 2000); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
done
url=redis://127.0.0.1:$port
tasks=$build/examples/.libs/remote_seed.so
"$build/demos/cfworker" --redis "$url" --queue seedmap --tasks "$tasks" --procs 1 --name w1 2>"$tmp/w1.err" &
w1=$!
"$build/examples/remote_worker" "$url" 2>"$tmp/w2.err" &
w2=$!
out=$(timeout 120 "$build/examples/remote_map" "$url" 2>"$tmp/client.err") || {
    echo "FAIL: remote_map exited with an error:"; cat "$tmp/client.err" "$tmp"/w?.err; exit 1; }
diff -u "$src/examples/expected/remote_map.out" <(printf '%s\n' "$out") || { echo "FAIL: remote_map output"; exit 1; }
# A drained worker exits with 0.
for p in $w1 $w2; do
    kill -TERM "$p"
    wait "$p" || { echo "FAIL: a cfworker did not drain cleanly:"; cat "$tmp"/w?.err; exit 1; }
done
w1= w2=
echo "ok: remote_map"
