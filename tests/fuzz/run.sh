#!/usr/bin/env bash
# run.sh BUILD_DIR - build the frame-decoder fuzzer with clang's libFuzzer and
# run it for a bounded time (FUZZ_SECONDS, default 30).  BUILD_DIR is a
# configured build directory (for config.h).  Without clang: skipped.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-30}
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cc" ]; then
    echo "clang not found: fuzzing skipped"
    exit 0
fi
out="$build/fuzz"
mkdir -p "$out/corpus"
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE \
    -I"$top/include" -I"$top/lib" -I"$build" \
    "$top/tests/fuzz/fuzz_frame.c" "$top/lib/frame.c" "$top/lib/future.c" "$top/lib/loop.c" \
    "$top/lib/error.c" "$top/lib/task.c" "$top/lib/slab.c" -lev -lm -pthread -o "$out/fuzz_frame"
# Seed: a valid RESULT frame carrying an error message.
printf '\x01\xf5\xcf\x03\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x22\x00\x00\x00\x00\x00\x00\x00ok\x00\xf1\xf0\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00' \
    >"$out/corpus/seed-result"
"$out/fuzz_frame" -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=1 "$out/corpus" 2>"$out/fuzz.log" || {
    tail -n 40 "$out/fuzz.log"
    echo "fuzz_frame: a crash was found (see $out)"
    exit 1
}
grep -E 'stat::number_of_executed_units|Done' "$out/fuzz.log" | tail -n 2
echo "fuzz_frame: ${seconds}s, no crash"

# cfserve's request handling (demos/serve/http.c): FUZZ_SERVE_SECONDS, default 30.
serve_seconds=${FUZZ_SERVE_SECONDS:-30}
if [ -f /usr/include/http_parser.h ]; then
    mkdir -p "$out/serve-corpus"
    "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$top/demos/serve" \
        "$top/tests/fuzz/fuzz_serve.c" "$top/demos/serve/http.c" "$top/demos/common/util.c" -lhttp_parser \
        -o "$out/fuzz_serve"
    printf '\x05GET /md5?path=a%%20b&n=3 HTTP/1.1\r\nHost: x\r\nRange: bytes=1-5\r\nIf-Range: "2a-c-1"\r\nIf-None-Match: W/"a", "b"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nUser-Agent: "u"\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' \
        >"$out/serve-corpus/seed-pipeline"
    "$out/fuzz_serve" -max_total_time="$serve_seconds" -rss_limit_mb=1024 -print_final_stats=1 \
        "$out/serve-corpus" 2>"$out/fuzz_serve.log" || {
        tail -n 40 "$out/fuzz_serve.log"
        echo "fuzz_serve: a crash was found (see $out)"
        exit 1
    }
    grep -E 'stat::number_of_executed_units|Done' "$out/fuzz_serve.log" | tail -n 2
    echo "fuzz_serve: ${serve_seconds}s, no crash"
else
    echo "http_parser.h not found: cfserve fuzzing skipped"
fi
