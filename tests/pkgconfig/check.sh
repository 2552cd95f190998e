#!/usr/bin/env bash
# check.sh DESTDIR - build tests/pkgconfig/outside.c against the cfutures
# installed with `make install DESTDIR=DESTDIR`, as a program outside the
# tree would: once with pkg-config, once with CMake (find_package(cfutures
# CONFIG), target cfutures::cfutures), and, when libcfutures.a was installed
# (--enable-static), statically with both.  Runs each program, checks that
# the shared library exports nothing but the public cf_ API, and that the
# manual pages were installed.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -euo pipefail
dest=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
pc=$(find "$dest" -name cfutures.pc | head -n1)
[ -n "$pc" ] || { echo "check.sh: no cfutures.pc under $dest" >&2; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_SYSROOT_DIR="$dest"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
prefix="$dest$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=prefix cfutures)"
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

# CMake: configure, build and run outside.c with the installed package.
cmake_build() { # NAME CMAKE-ARGS...
    local name=$1
    shift
    cmake -S "$here" -B "$out/$name" -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$out/$name.log" 2>&1 &&
        cmake --build "$out/$name" >>"$out/$name.log" 2>&1 || {
        cat "$out/$name.log" >&2
        echo "check.sh: CMake build ($name) failed" >&2
        exit 1
    }
    grep -- '-- cfutures ' "$out/$name.log"
    "$out/$name/outside"
}
if command -v cmake >/dev/null; then
    cmake_build cmake-shared
    deps=$(ldd "$out/cmake-shared/outside") # whole, not piped into grep -q (SIGPIPE under pipefail)
    [[ "$deps" == *"libcfutures.so.1 => $libdir/"* ]] ||
        { echo "check.sh: the CMake build is not linked with $libdir/libcfutures.so.1" >&2; exit 1; }
    echo "cmake: find_package(cfutures CONFIG) and cfutures::cfutures: ok"
else
    echo "check.sh: cmake not found (apt-get install cmake)" >&2
    exit 1
fi

if [ -f "$libdir/libcfutures.a" ]; then
    # libcfutures.a by name (next to the .so, -lcfutures would pick the .so), then the
    # rest of pkg-config --static --libs: libev, -pthread, -lm.
    cc -std=c11 -Wall -Wextra -Werror -o "$out/outside-static" "$here/outside.c" \
        $(pkg-config --cflags cfutures) "$libdir/libcfutures.a" \
        $(pkg-config --static --libs cfutures | sed -E 's/(^| )-lcfutures( |$)/ /')
    "$out/outside-static"
    cmake_build cmake-static -Dcfutures_USE_STATIC_LIBS=ON
    deps=$(ldd "$out/cmake-static/outside")
    if [[ "$deps" == *libcfutures* ]]; then
        echo "check.sh: the static CMake build needs libcfutures.so" >&2
        exit 1
    fi
    echo "static: libcfutures.a with pkg-config --static and with CMake: ok"
fi

# The manual: the overview, a page per function family, and link pages.
mandir=$(find "$dest" -type d -name man3 -path '*/man/*' | head -n1)
for page in cf_thread_pool_submit cf_future_unref cf_loop_t; do
    [ -f "$mandir/$page.3" ] || { echo "check.sh: $page(3) was not installed" >&2; exit 1; }
done
[ -f "$(dirname "$mandir")/man7/cfutures.7" ] || { echo "check.sh: cfutures(7) was not installed" >&2; exit 1; }
echo "man: $(ls "$mandir" | wc -l) section-3 pages and links installed"
