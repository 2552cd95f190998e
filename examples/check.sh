#!/usr/bin/env bash
# examples/check.sh - run every example and compare its output with
# examples/expected/NAME.out.  Examples whose lines come in completion order
# are compared sorted.  Run by make check (CF_BUILDDIR, CF_SRCDIR set).
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -u
build=${CF_BUILDDIR:-.}
src=${CF_SRCDIR:-.}
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# NAME [sort] [ARGS...]
run() {
    local name=$1 sorted=$2 out
    shift 2
    if ! out=$("$build/examples/$name" "$@" 2>"$tmp/$name.err"); then
        echo "FAIL: $name exited with an error:"
        cat "$tmp/$name.err"
        failed=$((failed + 1))
        return
    fi
    [ "$sorted" = sort ] && out=$(printf '%s\n' "$out" | LC_ALL=C sort)
    if ! diff -u "$src/examples/expected/$name.out" <(printf '%s\n' "$out"); then
        echo "FAIL: $name: output differs from examples/expected/$name.out"
        failed=$((failed + 1))
        return
    fi
    echo "ok: $name"
}

run submit_callbacks sort
run as_completed sort
run map_chunksize keep 9999
run raise keep
run crash_timeout keep
run combinators keep
run task_group keep
run promise_thread keep
run seed_fib sort
run seed_fib_checked sort
run seed_map keep
run seed_map_checked keep
run thread_pool keep
run map_lazy keep

[ $failed -eq 0 ] || { echo "$failed example(s) failed"; exit 1; }
