#!/usr/bin/env bash
# headers.sh - every public header compiles on its own (and twice in a
# row), as C11 with warnings as errors, and as C++ when a C++ compiler is there.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -eu
src=${CF_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cc=${CC:-cc}
cxx=$(command -v "${CXX:-c++}" || true)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for h in "$src"/include/cfutures.h "$src"/include/cfutures/*.h; do
    name=${h#"$src"/include/}
    printf '#include <%s>\n#include <%s>\nint cf_header_check(void);\nint cf_header_check(void) { return 0; }\n' \
        "$name" "$name" >"$tmp/t.c"
    if ! $cc -std=c11 -Wall -Wextra -Wpedantic -Wstrict-prototypes -Werror -fsyntax-only -I"$src/include" "$tmp/t.c"; then
        echo "FAIL: $name does not compile on its own (C11)"
        fail=1
    fi
    if [ -n "$cxx" ] && ! $cxx -x c++ -Wall -Wextra -Werror -fsyntax-only -I"$src/include" "$tmp/t.c"; then
        echo "FAIL: $name does not compile on its own (C++)"
        fail=1
    fi
    n=$((n + 1))
done
echo "$n public headers checked"
exit $fail
