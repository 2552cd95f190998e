#!/usr/bin/env bash
# run.sh BUILD_DIR - build the fuzz targets with clang's libFuzzer and run
# each for a bounded time (FUZZ_SECONDS each, default 30):
#   fuzz_frame    the process-pool frame reader, payloads through the outcome decoders
#   fuzz_outcome  the outcome codec: one outcome, and a sequence of records (cf_map results)
# BUILD_DIR is a configured build directory (for config.h).  Without clang: skipped.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
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
lib="$top/lib/outcome.c $top/lib/frame.c $top/lib/future.c $top/lib/loop.c $top/lib/error.c $top/lib/task.c $top/lib/slab.c"

build_target() { # NAME
    mkdir -p "$out/$1.corpus"
    # shellcheck disable=SC2086
    "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE \
        -I"$top/include" -I"$top/lib" -I"$build" \
        "$top/tests/fuzz/$1.c" $lib -lev -lm -pthread -o "$out/$1"
}

run_target() { # NAME
    "$out/$1" -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=1 "$out/$1.corpus" \
        2>"$out/$1.log" || {
        tail -n 40 "$out/$1.log"
        echo "$1: a crash was found (see $out)"
        exit 1
    }
    grep -E 'stat::number_of_executed_units|Done' "$out/$1.log" | tail -n 2
    echo "$1: ${seconds}s, no crash"
}

build_target fuzz_frame
build_target fuzz_outcome
# Seeds.  A RESULT frame carrying an error message:
printf '\x01\xf5\xcf\x03\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x22\x00\x00\x00\x00\x00\x00\x00ok\x00\xf1\xf0\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00' \
    >"$out/fuzz_frame.corpus/seed-result"
# An outcome with 3 bytes ("abc"), and a record sequence: that outcome, then a failure with a message.
printf '\x00abc\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' \
    >"$out/fuzz_outcome.corpus/seed-bytes"
printf '\x01\x23\x00\x00\x00\x00\x00\x00\x00abc\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x23\x00\x00\x00\x00\x00\x00\x00ok\x00\xf1\xf0\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' \
    >"$out/fuzz_outcome.corpus/seed-records"
run_target fuzz_frame
run_target fuzz_outcome

# cfserve's request handling (demos/serve/http.c), when http-parser is installed.
if [ -f /usr/include/http_parser.h ]; then
    mkdir -p "$out/fuzz_serve.corpus"
    "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$top/demos/serve" \
        "$top/tests/fuzz/fuzz_serve.c" "$top/demos/serve/http.c" "$top/demos/common/util.c" -lhttp_parser \
        -o "$out/fuzz_serve"
    # Two pipelined requests with every header the server reads, then a chunked body.
    printf '\x05GET /md5?path=a%%20b&n=3 HTTP/1.1\r\nHost: x\r\nRange: bytes=1-5\r\nIf-Range: "2a-c-1"\r\nIf-None-Match: W/"a", "b"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nUser-Agent: "u"\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' \
        >"$out/fuzz_serve.corpus/seed-pipeline"
    run_target fuzz_serve
else
    echo "http_parser.h not found: fuzz_serve skipped"
fi
