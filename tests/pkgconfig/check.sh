#!/usr/bin/env bash
# check.sh DESTDIR - build tests/pkgconfig/outside.c against the cfutures
# installed with `make install DESTDIR=DESTDIR`, using only pkg-config, run it,
# and check that the shared library exports nothing but the public cf_ API.
set -euo pipefail
dest=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
pc=$(find "$dest" -name cfutures.pc | head -n1)
[ -n "$pc" ] || { echo "check.sh: no cfutures.pc under $dest" >&2; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_SYSROOT_DIR="$dest"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "pkg-config --cflags --libs cfutures: $(pkg-config --cflags --libs cfutures)"
cc -std=c11 -Wall -Wextra -Werror -o "$out/outside" "$here/outside.c" \
    $(pkg-config --cflags cfutures) $(pkg-config --libs cfutures) -pthread
"$out/outside"

so=$(ls "$libdir"/libcfutures.so.* | head -n1)
bad=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | grep -v '^cf_' || true)
if [ -n "$bad" ]; then
    echo "libcfutures exports symbols outside the cf_ API:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "exports: $(nm -D --defined-only "$so" | grep -c ' T cf_') cf_ functions, nothing else"
