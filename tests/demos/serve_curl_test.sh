#!/usr/bin/env bash
# serve_curl_test.sh - demos/cfserve checked with curl and raw requests on bash's /dev/tcp.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
#
# Run by `make check` (CF_BUILDDIR set by the Makefile), or by hand from a build
# directory or with CF_BUILDDIR:
#     CF_BUILDDIR=build/serve tests/demos/serve_curl_test.sh
#
# Starts cfserve on port 0 with a temporary --root (removed on exit, with every
# server this script started) and checks: every endpoint with exact bodies, bad
# parameters, path traversal and symlink escapes, missing files, static files,
# index.html, content types, HEAD, 405, 413, 431, malformed requests,
# pipelining in order behind slow requests, keep-alive, HTTP/1.0, the loop
# answering while slow requests run, a client leaving mid-request, the idle and
# header timeouts, the connection limit, and a clean exit 0 on SIGTERM with a
# request in flight that still gets its whole answer - and, under sanitizers,
# no report from any server.  Waits are bounded polls on events, never sleeps
# used as synchronisation.  Each check prints "ok - name" or "not ok - name".
# Exit status: 0 pass, 1 fail, 77 skip (no curl, or cfserve not built).
set -u

here=$(cd "$(dirname "$0")" && pwd)
SRCDIR=${CF_SRCDIR:-$(cd "$here/../.." && pwd)}
BUILDDIR=${CF_BUILDDIR:-$PWD}
CFSERVE=$BUILDDIR/demos/cfserve

if ! command -v curl >/dev/null 2>&1; then
    echo "# skip: curl is not installed"
    exit 77
fi
if [ ! -x "$CFSERVE" ]; then
    echo "# skip: $CFSERVE is not built"
    exit 77
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$SRCDIR/tests/tsan.supp}

T=$(mktemp -d "${TMPDIR:-/tmp}/serve_test.XXXXXX")
ROOT=$T/root
SERVER_PIDS=()
BG_PIDS=()
npass=0
nfail=0

cleanup() {
    local p
    for p in "${BG_PIDS[@]}" "${SERVER_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() {
    echo "ok - $1"
    npass=$((npass + 1))
}

notok() {
    echo "not ok - $1${2:+ # $2}"
    nfail=$((nfail + 1))
}

check() { # check NAME CONDITION-STATUS [DETAIL]
    if [ "$2" -eq 0 ]; then ok "$1"; else notok "$1" "${3:-}"; fi
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# ------------------------------------------------------------------ servers

# start_server NAME ARGS...: start cfserve, wait (at most 30 s) for its port line.
# Sets PORT, SPID and URL; the server's stdout/stderr go to $T/NAME.out / .err.
start_server() {
    local name=$1
    shift
    "$CFSERVE" --port 0 --root "$ROOT" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    SPID=$!
    SERVER_PIDS+=("$SPID")
    PORT=
    local deadline=$(($(now_ms) + 30000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        PORT=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$T/$name.out")
        [ -n "$PORT" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$PORT" ]; then
        notok "$name: server starts and prints its port" "$(head -c 500 "$T/$name.err")"
        exit 1
    fi
    URL=http://127.0.0.1:$PORT
    ok "$name: server starts and prints its port ($PORT)"
}

# wait_exit PID SECONDS: wait for a process of ours to end; sets EXIT_RC (124 when it did not end).
wait_exit() {
    local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        EXIT_RC=124
        return
    fi
    wait "$pid"
    EXIT_RC=$?
}

# stop_server NAME PID: SIGTERM, exit status 0, the summary line, no sanitizer report.
stop_server() {
    local name=$1 pid=$2
    kill -TERM "$pid"
    wait_exit "$pid" 60
    check "$name: exits 0 on SIGTERM" $((EXIT_RC != 0)) "exit status $EXIT_RC"
    grep -q '^cfserve: SIGTERM: stopped after' "$T/$name.err"
    check "$name: prints a summary on stderr" $?
    if grep -qE 'Sanitizer|runtime error:|LeakSanitizer|ThreadSanitizer' "$T/$name.err"; then
        notok "$name: no sanitizer report" "see below"
        sed 's/^/#   /' "$T/$name.err" | head -60
    else
        ok "$name: no sanitizer report"
    fi
}

# ------------------------------------------------------------------ clients

# fetch PATH [CURL ARGS...]: CODE, body in $T/body, headers in $T/hdrs.
fetch() {
    local path=$1
    shift
    : >"$T/body"
    : >"$T/hdrs"
    CODE=$(curl -sS --max-time 60 -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@" "$URL$path" 2>"$T/curl.err") ||
        CODE="curl failed: $(head -c 200 "$T/curl.err")"
}

# expect_body NAME PATH BODY: 200 and exactly BODY (printf %b escapes).
expect_body() { # expect_body NAME PATH BODY [CURL ARGS...]
    fetch "$2" "${@:4}"
    printf '%b' "$3" >"$T/want"
    check "$1" $(([ "$CODE" = 200 ] && cmp -s "$T/want" "$T/body") && echo 0 || echo 1) \
        "code $CODE, body '$(head -c 200 "$T/body")'"
}

# expect_code NAME CODE PATH [CURL ARGS...]
expect_code() {
    local name=$1 want=$2 path=$3
    shift 3
    fetch "$path" "$@"
    check "$name" $([ "$CODE" = "$want" ] && echo 0 || echo 1) "code $CODE, body '$(head -c 200 "$T/body")'"
}

header() { # header NAME: its value in $T/hdrs (first one, CR stripped)
    tr -d '\r' <"$T/hdrs" | sed -n "s/^$1: //Ip" | head -1
}

# raw REQUEST [SECONDS]: send REQUEST (printf %b escapes) on one connection and read
# until the server closes it, at most SECONDS (default 30).  Reply in $T/raw,
# RAW_RC is timeout's status (124: the server did not close in time).
raw() {
    timeout "${2:-30}" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 99
        printf "%b" "$2" >&3 2>/dev/null
        cat <&3' raw "$PORT" "$1" >"$T/raw" 2>/dev/null
    RAW_RC=$?
}

raw_bodies() { # the body lines of the replies in $T/raw (every body here is text; HEAD replies have none)
    tr -d '\r' <"$T/raw" | awk '/^HTTP\/1\.1 [0-9][0-9][0-9] / { inbody = 0; next }
                                !inbody && $0 == "" { inbody = 1; next }
                                inbody { print }'
}

stat_field() { # stat_field KEY: the first "KEY":N in /stats
    curl -sS --max-time 30 "$URL/stats" 2>/dev/null | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# wait_stat KEY OP N SECONDS: poll /stats until KEY OP N (-ge, -eq...); 0 if it happened.
wait_stat() {
    local deadline=$(($(now_ms) + $4 * 1000)) v
    while [ "$(now_ms)" -lt "$deadline" ]; do
        v=$(stat_field "$1")
        [ -n "$v" ] && [ "$v" "$2" "$3" ] && return 0
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ the root

mkdir -p "$ROOT/sub" "$ROOT/docs" "$ROOT/empty" "$T/outside"
printf 'hello\n' >"$ROOT/a.txt"
printf '<h1>home</h1>\n' >"$ROOT/index.html"
printf '<h1>sub</h1>\n' >"$ROOT/sub/index.html"
printf 'body { color: red }\n' >"$ROOT/style.css"
printf 'console.log(1)\n' >"$ROOT/app.js"
printf '{"a": 1}\n' >"$ROOT/data.json"
printf '<svg/>\n' >"$ROOT/pic.svg"
printf '\x89PNG\r\n' >"$ROOT/pic.png"
printf '\xff\xd8\xff' >"$ROOT/pic.jpg"
printf 'x' >"$ROOT/blob.bin"
printf 'with a space\n' >"$ROOT/sp ace.txt"
printf 'in docs\n' >"$ROOT/docs/readme.txt"
head -c 300000 /dev/urandom >"$ROOT/random.bin"
: >"$ROOT/zero.txt"
printf 'TOPSECRET\n' >"$T/outside/secret.txt"
ln -s "$T/outside/secret.txt" "$ROOT/escape"
ln -s "$T/outside" "$ROOT/escdir"
ln -s /etc/passwd "$ROOT/passwd"
ln -s docs/readme.txt "$ROOT/inside-link"

md5_of() {
    md5sum "$1" | cut -d' ' -f1
}

# ------------------------------------------------------------------ the main server

start_server main --threads 2 --procs 2

echo "# endpoints"
expect_body "health" /health 'ok\n'
grep -qi '^Server: cfserve' "$T/hdrs"
check "Server: cfserve header" $?
check "Content-Length on every response" $([ "$(header Content-Length)" = 3 ] && echo 0 || echo 1)
expect_body "fib n=0" '/fib?n=0' '0\n'
expect_body "fib n=1" '/fib?n=1' '1\n'
expect_body "fib n=10" '/fib?n=10' '55\n'
expect_body "fib n=30 (naive recursion)" '/fib?n=30' '832040\n'
expect_body "fib n=50" '/fib?n=50' '12586269025\n'
expect_body "fib n=92" '/fib?n=92' '7540113804746346429\n'
expect_body "md5 of a text file" '/md5?path=a.txt' "$(md5_of "$ROOT/a.txt")\\n"
expect_body "md5 of 300 KB of random bytes" '/md5?path=random.bin' "$(md5_of "$ROOT/random.bin")\\n"
expect_body "md5 of an empty file" '/md5?path=zero.txt' "$(md5_of "$ROOT/zero.txt")\\n"
expect_body "md5 of a %-encoded name" '/md5?path=sp%20ace.txt' "$(md5_of "$ROOT/sp ace.txt")\\n"
expect_body "md5 in a subdirectory" '/md5?path=docs%2Freadme.txt' "$(md5_of "$ROOT/docs/readme.txt")\\n"
expect_body "md5 through a symlink that stays inside" '/md5?path=inside-link' "$(md5_of "$ROOT/docs/readme.txt")\\n"
expect_body "sleep ms=0" '/sleep?ms=0' 'slept 0 ms\n'
expect_body "sleep ms=120" '/sleep?ms=120' 'slept 120 ms\n'
fetch /stats
check "stats: 200 application/json" $([ "$CODE" = 200 ] && [ "$(header Content-Type)" = application/json ] && echo 0 || echo 1) \
    "code $CODE, type $(header Content-Type)"
missing=
for key in '"server":{' '"thread_pool":{' '"process_pool":{' '"connections_open":' '"requests_served":' \
    '"submitted":' '"queued":' '"running":' '"completed":' '"failed":' '"cancelled":' '"workers":'; do
    grep -qF "$key" "$T/body" || missing="$missing $key"
done
check "stats: JSON with the pools' and the server's counters" $([ -z "$missing" ] && echo 0 || echo 1) "missing$missing"
grep -qE '^\{.*\}$' "$T/body" && [ "$(grep -o '{' "$T/body" | wc -l)" = "$(grep -o '}' "$T/body" | wc -l)" ]
check "stats: one balanced JSON object" $?
grep -qF '"process_pool":{"submitted":6,' "$T/body"
check "stats: the process pool counted the six fib tasks" $? "$(cat "$T/body")"
grep -qF '"workers":2}' "$T/body"
check "stats: --threads/--procs workers" $?

echo "# bad parameters"
for q in 'n=-1' 'n=93' 'n=abc' 'n=' 'n=1.5' 'n=%31%30x' 'm=3' ''; do
    expect_code "fib ?$q is 400" 400 "/fib?$q"
done
expect_code "sleep ?ms=10001 is 400" 400 '/sleep?ms=10001'
expect_code "sleep ?ms=-5 is 400" 400 '/sleep?ms=-5'
expect_code "sleep without ms is 400" 400 '/sleep'
expect_code "md5 without path is 400" 400 '/md5'
expect_code "md5 of a directory is 400" 400 '/md5?path=docs'
expect_code "md5 ?path=%zz is 400" 400 '/md5?path=%zz'
fetch '/fib?n=93'
grep -q 'n must be an integer from 0 to 92' "$T/body"
check "400 carries a message" $?

echo "# confinement"
expect_code "static /../ is 403" 403 '/../etc/passwd' --path-as-is
expect_code "static /sub/../../ is 403" 403 '/sub/../../etc/passwd' --path-as-is
expect_code "static ..%2f is 403" 403 '/..%2f..%2fetc%2fpasswd'
expect_code "static %2e%2e%2f is 403" 403 '/%2e%2e%2f%2e%2e%2fetc/passwd'
expect_code "static symlink to a file outside is 403" 403 /escape
expect_code "static through a symlinked directory outside is 403" 403 /escdir/secret.txt
expect_code "static symlink to /etc/passwd is 403" 403 /passwd
expect_code "md5 of an absolute path is 403" 403 '/md5?path=/etc/passwd'
expect_code "md5 of %2Fetc%2Fpasswd is 403" 403 '/md5?path=%2Fetc%2Fpasswd'
expect_code "md5 of ../ is 403" 403 '/md5?path=../serve_test.sh'
expect_code "md5 of ..%2f..%2f is 403" 403 '/md5?path=..%2F..%2Fetc%2Fpasswd'
expect_code "md5 of sub/../../ is 403" 403 '/md5?path=sub/../../etc/passwd'
expect_code "md5 of a symlink outside is 403" 403 '/md5?path=escape'
expect_code "md5 through a symlinked directory outside is 403" 403 '/md5?path=escdir/secret.txt'
grep -q TOPSECRET "$T/body"
check "no byte of the outside file leaks" $((! $?))
expect_code "static missing file is 404" 404 /nope.txt
expect_code "static missing directory is 404" 404 /nodir/x.txt
expect_code "md5 of a missing file is 404" 404 '/md5?path=nope.txt'
expect_code "directory without index.html is not listed" 403 /empty/

echo "# static files"
expect_body "static file" /a.txt 'hello\n'
expect_body "/ serves index.html" / '<h1>home</h1>\n'
expect_body "/sub/ serves its index.html" /sub/ '<h1>sub</h1>\n'
expect_code "/sub (a directory) is 301" 301 /sub
check "301 has Location: /sub/" $([ "$(header Location)" = /sub/ ] && echo 0 || echo 1) "Location '$(header Location)'"
expect_code "/sub?x=1 keeps its query in the Location" 301 '/sub?x=1'
check "Location: /sub/?x=1" $([ "$(header Location)" = '/sub/?x=1' ] && echo 0 || echo 1) "Location '$(header Location)'"
expect_body "curl -L follows it to index.html" /sub '<h1>sub</h1>\n' -L
expect_body "%-encoded file name" '/sp%20ace.txt' 'with a space\n'
expect_body "symlink that stays inside" /inside-link 'in docs\n'
fetch /random.bin
cmp -s "$T/body" "$ROOT/random.bin"
check "300 KB binary file intact" $? "code $CODE, $(wc -c <"$T/body") bytes"
for pair in a.txt:text/plain index.html:text/html style.css:text/css app.js:javascript data.json:application/json \
    pic.png:image/png pic.jpg:image/jpeg pic.svg:image/svg+xml blob.bin:application/octet-stream; do
    fetch "/${pair%%:*}"
    case "$(header Content-Type)" in
    *"${pair#*:}"*) ok "Content-Type of ${pair%%:*}" ;;
    *) notok "Content-Type of ${pair%%:*}" "got '$(header Content-Type)'" ;;
    esac
done
raw 'HEAD /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
tr -d '\r' <"$T/raw" | grep -qx 'Content-Length: 6' && head -1 "$T/raw" | grep -q '^HTTP/1.1 200' &&
    [ "$(tail -c 4 "$T/raw" | od -An -c | tr -d ' ')" = '\r\n\r\n' ]
check "HEAD: 200, Content-Length of the file, no body" $? "$(head -c 300 "$T/raw")"
raw 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
tr -d '\r' <"$T/raw" | grep -qx "Content-Length: $(wc -c <"$ROOT/index.html")" &&
    [ "$(tail -c 4 "$T/raw" | od -An -c | tr -d ' ')" = '\r\n\r\n' ]
check "HEAD / : the index.html length, no body" $?

echo "# methods and limits"
expect_code "POST is 405" 405 / -d 'x=1'
check "405 has Allow: GET, HEAD" $([ "$(header Allow)" = "GET, HEAD" ] && echo 0 || echo 1) "Allow '$(header Allow)'"
expect_code "PUT is 405" 405 /a.txt -X PUT -d 'x'
expect_code "DELETE is 405" 405 /a.txt -X DELETE
big=$(head -c 10000 /dev/zero | tr '\0' 'a')
raw "GET / HTTP/1.1\\r\\nHost: t\\r\\nX-Big: $big\\r\\n\\r\\n"
head -1 "$T/raw" | grep -q '^HTTP/1.1 431 '
check "10 KB of headers is 431" $? "$(head -c 200 "$T/raw")"
expect_code "10 KB header with curl is 431" 431 /health -H "X-Big: $big"
raw "GET /$(head -c 9000 /dev/zero | tr '\0' 'b') HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n"
head -1 "$T/raw" | grep -q '^HTTP/1.1 414 '
check "a 9 KB request target is 414" $? "$(head -c 200 "$T/raw")"
expect_code "a 7 KB header is fine" 200 /health -H "X-Ok: $(head -c 7000 /dev/zero | tr '\0' 'c')"
raw 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n'
head -1 "$T/raw" | grep -q '^HTTP/1.1 413 '
check "Content-Length over 1 MiB is 413" $? "$(head -c 200 "$T/raw")"
head -c 1100000 /dev/zero >"$T/big.body"
expect_code "a chunked body over 1 MiB is 413" 413 / -H 'Transfer-Encoding: chunked' -H 'Expect:' --data-binary @"$T/big.body"
raw 'POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
[ "$(raw_bodies | tr '\n' '|')" = '405 Method Not Allowed: POST is not supported|ok|' ]
check "a request body is read and discarded, the next request follows" $? "$(raw_bodies | tr '\n' '|')"
raw 'GARBAGE\r\n\r\n'
head -1 "$T/raw" | grep -q '^HTTP/1.1 400 ' && [ "$RAW_RC" = 0 ]
check "malformed request line is 400 and closes" $? "rc $RAW_RC: $(head -c 200 "$T/raw")"
raw 'GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n'
head -1 "$T/raw" | grep -q '^HTTP/1.1 400 ' && [ "$RAW_RC" = 0 ]
check "malformed header is 400 and closes" $? "rc $RAW_RC: $(head -c 200 "$T/raw")"
raw 'GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx'
head -1 "$T/raw" | grep -q '^HTTP/1.1 400 '
check "two Content-Length headers are 400" $? "$(head -c 200 "$T/raw")"
raw 'GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n'
[ "$(head -1 "$T/raw" | tr -d '\r')" = 'HTTP/1.1 200 OK' ] && grep -q '^HTTP/1.1 400 ' "$T/raw" && [ "$RAW_RC" = 0 ]
check "a bad request after a good one: 200, then 400 and close" $? "$(tr -d '\r' <"$T/raw" | grep '^HTTP')"

echo "# pipelining and keep-alive"
raw 'GET /sleep?ms=300 HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /fib?n=25 HTTP/1.1\r\nHost: t\r\n\r\nGET /md5?path=a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
want="slept 300 ms|ok|75025|$(md5_of "$ROOT/a.txt")|hello|404 Not Found: no such file: /nope|"
[ "$(raw_bodies | tr '\n' '|')" = "$want" ] && [ "$RAW_RC" = 0 ]
check "pipelined requests answered in order behind a slow one" $? "rc $RAW_RC, got '$(raw_bodies | tr '\n' '|')'"
[ "$(grep -c '^HTTP/1.1 ' "$T/raw")" = 7 ]
check "seven pipelined responses" $?
raw 'GET /fib?n=32 HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
[ "$(raw_bodies | tr '\n' '|')" = '2178309|ok|' ]
check "a slow /fib ahead of /health on one connection: in order" $? "got '$(raw_bodies | tr '\n' '|')'"
req=
for i in $(seq 1 40); do req="${req}GET /fib?n=$((i % 20)) HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n"; done
raw "${req}GET /health HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n"
want=
for i in $(seq 1 40); do
    n=$((i % 20)) a=0 b=1
    for _ in $(seq 1 $n); do t=$((a + b)) a=$b b=$t; done
    want="$want$a|"
done
[ "$(raw_bodies | tr '\n' '|')" = "${want}ok|" ]
check "41 pipelined requests (past the 32 in flight) in order" $? "got $(raw_bodies | wc -l) bodies"
out=$(curl -sS --max-time 60 -o /dev/null -o /dev/null -w '%{num_connects} ' "$URL/health" "$URL/a.txt")
check "keep-alive: two URLs in one curl share one connection" $([ "$out" = "1 0 " ] && echo 0 || echo 1) "num_connects '$out'"
out=$(curl -sS --max-time 60 -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' "$URL/fib?n=20" "$URL/md5?path=a.txt" "$URL/sleep?ms=10")
check "keep-alive across pool and timer responses" $([ "$out" = "1 0 0 " ] && echo 0 || echo 1) "num_connects '$out'"
raw 'GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
tr -d '\r' <"$T/raw" | grep -qx 'Connection: close' && [ "$RAW_RC" = 0 ]
check "HTTP/1.1 Connection: close is honoured" $? "rc $RAW_RC"
raw 'GET /health HTTP/1.0\r\n\r\n'
tr -d '\r' <"$T/raw" | grep -qx 'Connection: close' && [ "$RAW_RC" = 0 ] && [ "$(raw_bodies)" = ok ]
check "HTTP/1.0 closes by default" $? "rc $RAW_RC"
raw 'GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /a.txt HTTP/1.0\r\n\r\n'
[ "$(raw_bodies | tr '\n' '|')" = 'ok|hello|' ] && tr -d '\r' <"$T/raw" | grep -qx 'Connection: keep-alive' && [ "$RAW_RC" = 0 ]
check "HTTP/1.0 with Connection: keep-alive stays open" $? "rc $RAW_RC: $(raw_bodies | tr '\n' '|')"

echo "# the loop never blocks"
curl -sS --max-time 120 -o "$T/slow.sleep" "$URL/sleep?ms=2000" 2>/dev/null &
BG_PIDS+=($!)
slow1=$!
curl -sS --max-time 120 -o "$T/slow.fib" "$URL/fib?n=40" 2>/dev/null &
BG_PIDS+=($!)
slow2=$!
wait_stat requests_in_flight -ge 2 30
check "/stats answers while /sleep and /fib?n=40 are in flight" $?
expect_body "/health answers while they run" /health 'ok\n'
expect_body "/md5 answers while they run" '/md5?path=a.txt' "$(md5_of "$ROOT/a.txt")\\n"
expect_body "a quick /fib answers while fib(40) runs" '/fib?n=20' '6765\n'
wait_exit "$slow1" 120
[ "$EXIT_RC" = 0 ] && [ "$(cat "$T/slow.sleep")" = 'slept 2000 ms' ]
check "the slow /sleep completes" $? "rc $EXIT_RC: $(cat "$T/slow.sleep")"
wait_exit "$slow2" 120
[ "$EXIT_RC" = 0 ] && [ "$(cat "$T/slow.fib")" = 102334155 ]
check "fib(40) completes" $? "rc $EXIT_RC: $(cat "$T/slow.fib")"

echo "# clients that leave"
# A client that closes while its requests are being worked on: the work is
# cancelled (the timer stopped, the worker process stopped) and nothing breaks.
timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET /sleep?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\nGET /fib?n=45 HTTP/1.1\r\nHost: t\r\n\r\nGET /md5?path=random.bin HTTP/1.1\r\nHost: t\r\n\r\n" >&3
    exec 3>&-' x "$PORT"
wait_stat requests_in_flight -eq 0 8
check "work of a client that left is cancelled" $?
deadline=$(($(now_ms) + 8000))
until curl -sS --max-time 30 "$URL/stats" 2>/dev/null | grep -q '"running":0,.*"running":0,' ||
    [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.05; done
curl -sS --max-time 30 "$URL/stats" 2>/dev/null | grep -q '"running":0,.*"running":0,'
check "no pool task is left running" $?
expect_body "the server still answers" /health 'ok\n'
raw 'GET /sleep?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n' 1
check "a client killed while waiting" $([ "$RAW_RC" = 124 ] && echo 0 || echo 1) "rc $RAW_RC"
wait_stat requests_in_flight -eq 0 8
check "its sleep is cancelled" $?

echo "# SIGTERM with a request in flight"
# An idle keep-alive connection (one request answered, then silence) ...
timeout 60 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET /health HTTP/1.1\r\nHost: t\r\n\r\n" >&3; cat <&3' x "$PORT" >"$T/idle.out" &
idle_client=$!
BG_PIDS+=("$idle_client")
deadline=$(($(now_ms) + 30000))
until grep -q '^ok' "$T/idle.out" || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.05; done
grep -q '^ok' "$T/idle.out"
check "an idle keep-alive connection is open" $?
# ... and a request in flight.
curl -sS --max-time 120 -D "$T/term.hdrs" -o "$T/term.body" "$URL/sleep?ms=1000" 2>"$T/term.err" &
term_curl=$!
BG_PIDS+=("$term_curl")
wait_stat requests_in_flight -ge 1 30
check "the /sleep?ms=1000 is in flight" $?
main_pid=$SPID
kill -TERM "$main_pid"
wait_exit "$idle_client" 30
[ "$EXIT_RC" = 0 ] && [ "$(grep -c '^HTTP/1.1 ' "$T/idle.out")" = 1 ]
check "the idle connection is closed on SIGTERM" $? "rc $EXIT_RC"
curl -sS --max-time 5 -o /dev/null "$URL/health" 2>/dev/null
check "the listener is closed" $((! $?))
wait_exit "$term_curl" 120
[ "$EXIT_RC" = 0 ] && [ "$(cat "$T/term.body")" = 'slept 1000 ms' ] &&
    [ "$(tr -d '\r' <"$T/term.hdrs" | sed -n 's/^Content-Length: //Ip')" = 14 ]
check "the in-flight response arrives complete after SIGTERM" $? "rc $EXIT_RC: '$(cat "$T/term.body")' $(cat "$T/term.err")"
wait_exit "$main_pid" 60
check "main: exits 0 on SIGTERM" $((EXIT_RC != 0)) "exit status $EXIT_RC"
grep -q '^cfserve: SIGTERM: stopped after' "$T/main.err"
check "main: prints a summary on stderr" $? "$(tail -3 "$T/main.err")"
if grep -qE 'Sanitizer|runtime error:' "$T/main.err"; then
    notok "main: no sanitizer report"
    sed 's/^/#   /' "$T/main.err" | head -80
else
    ok "main: no sanitizer report"
fi

# ------------------------------------------------------------------ timeouts

start_server timeouts --idle-timeout 1 --threads 1 --procs 1
t0=$(now_ms)
timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat <&3' x "$PORT" >"$T/silent.out"
rc=$?
elapsed=$(($(now_ms) - t0))
[ "$rc" = 0 ] && [ ! -s "$T/silent.out" ] && [ "$elapsed" -ge 900 ]
check "a silent client is closed after the idle timeout" $? "rc $rc after ${elapsed} ms"
t0=$(now_ms)
timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n" >&3; cat <&3' x "$PORT" >"$T/raw"
rc=$?
elapsed=$(($(now_ms) - t0))
[ "$rc" = 0 ] && [ "$(raw_bodies | tr '\n' '|')" = 'ok|ok|' ] && [ "$elapsed" -ge 900 ]
check "an idle keep-alive connection is closed after the idle timeout" $? "rc $rc after ${elapsed} ms"
timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " >&3; cat <&3' x "$PORT" >"$T/raw"
rc=$?
[ "$rc" = 0 ] && head -1 "$T/raw" | grep -q '^HTTP/1.1 408 '
check "a request head that stalls gets 408 and is closed" $? "rc $rc: $(head -c 200 "$T/raw")"
raw 'GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
[ "$RAW_RC" = 0 ] && [ "$(raw_bodies)" = 'slept 1500 ms' ]
check "work longer than the idle timeout is not cut off" $? "rc $RAW_RC: $(raw_bodies)"
stop_server timeouts "$SPID"

# ------------------------------------------------------------------ the connection limit

start_server limit --max-conns 1 --threads 1 --procs 1
exec {held}<>"/dev/tcp/127.0.0.1/$PORT"
expect_code "past --max-conns: 503" 503 /health
grep -q 'too many connections' "$T/body"
check "503 says why" $?
exec {held}>&-
deadline=$(($(now_ms) + 30000))
CODE=
while [ "$CODE" != 200 ] && [ "$(now_ms)" -lt "$deadline" ]; do
    fetch /health
    [ "$CODE" = 200 ] || sleep 0.05
done
check "once the held connection closes, requests are served again" $([ "$CODE" = 200 ] && echo 0 || echo 1) "code $CODE"
stop_server limit "$SPID"

echo "# $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
