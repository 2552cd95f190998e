#!/usr/bin/env bash
# man/check-pages.sh - the reference manual covers the API, and only the API.
#
# Fails when
#   * a function the built libcfutures exports (nm -D --defined-only), a
#     function a public header declares (CF_EXTERN), or a public type or enum
#     (typedef, enum cf_*) is named in no page's NAME line;
#   * a page's NAME line names a cf_ identifier that is neither;
#   * a page's file name, title line and first NAME entry disagree, or a
#     section-3 page lacks one of the sections every reference page has;
#   * a page refers to **name**(N) that no page or link page provides, or to
#     an examples/*.c program that does not exist;
#   * a code block in a page's EXAMPLE section (every block of a section-3
#     page, the ```c blocks of the others) is not an excerpt of a program in
#     examples/: the last non-blank line above it must name examples/NAME.c,
#     and the block's lines must occur consecutively and verbatim in that
#     file, so that what the pages show is code make check builds and runs;
#     a section-3 page's EXAMPLE section has at least one such block;
#   * a man/*.md source is missing from CF_MAN_SOURCES in man/local.am (so it
#     would be neither installed nor distributed).
#
# Run by `make check` (CF_SRCDIR, CF_BUILDDIR and CF_MAN_SOURCES come from
# the test environment) or by hand: man/check-pages.sh [SRCDIR [BUILDDIR]].
set -euo pipefail
src=${CF_SRCDIR:-${1:-$(cd "$(dirname "$0")/.." && pwd)}}
build=${CF_BUILDDIR:-${2:-$src}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
bad() {
    echo "check-pages: $*" >&2
    fail=1
}

cd "$src"
shopt -s nullglob
pages=(man/*.md)
[ ${#pages[@]} -gt 0 ] || { bad "no pages in $src/man"; exit 1; }

# ---- what must be documented
headers=(include/cfutures.h include/cfutures/*.h)
grep -h 'CF_EXTERN' "${headers[@]}" | grep -o '\bcf_[a-z0-9_]*(' | tr -d '(' | sort -u >"$work/header-funcs"
{
    sed -n 's/^typedef .*\b\(cf_[a-z0-9_]*\);.*/\1/p' "${headers[@]}"
    sed -n 's/^} *\(cf_[a-z0-9_]*\);.*/\1/p' "${headers[@]}"
    sed -n 's/^typedef [^(]*(\*\(cf_[a-z0-9_]*\)).*/\1/p' "${headers[@]}"
    sed -n 's/^enum \(cf_[a-z0-9_]*\) *{.*/\1/p' "${headers[@]}"
} | sort -u >"$work/types"
sos=("$build"/lib/.libs/libcfutures.so.*)
if [ ${#sos[@]} -gt 0 ]; then
    so=${sos[0]}
    nm -D --defined-only "$so" | awk '$2 == "T" && $3 ~ /^cf_/ {print $3}' | sort -u >"$work/lib-funcs"
    nlib=$(wc -l <"$work/lib-funcs")
else
    : >"$work/lib-funcs"
    nlib="no shared library built:"
fi
sort -u "$work/header-funcs" "$work/lib-funcs" >"$work/funcs"
sort -u "$work/funcs" "$work/types" >"$work/api"

# ---- what the pages document
man/names.sh "${pages[@]}" >"$work/names" || exit 1
awk '{print $3}' "$work/names" | sort -u >"$work/named"

while read -r name; do
    bad "$name is named in no page's NAME line (add it to a page in man/, see CONTRIBUTING.md)"
done < <(comm -23 "$work/api" "$work/named")
while read -r page sec name; do
    case $name in
    cf_* | CF_*)
        grep -qx "$name" "$work/api" || bad "man/$page.$sec.md names $name, which is not a public function or type"
        ;;
    esac
done <"$work/names"

# ---- each page's shape
for md in "${pages[@]}"; do
    base=$(basename "$md" .md)
    page=${base%.*} sec=${base##*.}
    upper=$(printf '%s' "$page" | tr '[:lower:]' '[:upper:]')
    head -n1 "$md" | grep -q "^% ${upper}(${sec}) cfutures | cfutures manual\$" ||
        bad "$md: first line must be '% ${upper}(${sec}) cfutures | cfutures manual'"
    first=$(awk -v p="$page" '$1 == p {print $3; exit}' "$work/names")
    [ "$first" = "$page" ] || bad "$md: the NAME line must start with $page"
    if [ "$sec" = 3 ]; then
        for s in NAME SYNOPSIS DESCRIPTION 'RETURN VALUE' ERRORS THREADS EXAMPLE 'SEE ALSO'; do
            grep -qx "# $s" "$md" || bad "$md: no '# $s' section"
        done
    fi
done

# ---- references between pages
awk '{print $3 "(" $2 ")"}' "$work/names" | sort -u >"$work/provided"
for md in "${pages[@]}"; do
    { grep -o '\*\*[a-z][a-z0-9_]*\*\*([1-8])' "$md" || true; } | sed 's/\*//g' | sort -u | while read -r ref; do
        case $ref in
        cf_* | cfutures* | cfcrawl* | cfserve* | cfseeds* | cfworker*)
            grep -qxF "$ref" "$work/provided" || echo "$md: refers to $ref, which no page provides"
            ;;
        esac
    done
done >"$work/dangling"
[ -s "$work/dangling" ] && { cat "$work/dangling" >&2; fail=1; }

# ---- example programs the pages point at exist
for md in "${pages[@]}"; do
    { grep -o 'examples/[a-z0-9_]*\.c' "$md" || true; } | sort -u | while read -r ex; do
        [ -f "$ex" ] || echo "$md: refers to $ex, which does not exist"
    done
done >"$work/noexample"
[ -s "$work/noexample" ] && { cat "$work/noexample" >&2; fail=1; }

# ---- EXAMPLE sections are excerpts of the example programs
cat >"$work/excerpt.awk" <<'AWK'
function fail(msg) { print page ": " msg; bad = 1 }
function check(   ex, path, nf, line, i, k, best) {
    if (!match(named, /examples\/[a-z0-9_]+\.c/)) {
        fail("line " start ": the code block does not follow a line naming examples/NAME.c")
        return
    }
    ex = substr(named, RSTART, RLENGTH)
    path = src "/" ex
    nf = 0
    while ((getline line <path) > 0)
        file[++nf] = line
    close(path)
    if (nf == 0) {
        fail("line " start ": " ex " does not exist or is empty")
        return
    }
    best = 0 # the longest run of the block's first lines found in the file
    for (i = 1; i <= nf && best < n; i++) {
        for (k = 0; k < n && i + k <= nf && file[i + k] == block[k + 1]; k++)
            ;
        if (k > best)
            best = k
    }
    if (best < n)
        fail("line " (start + best + 1) ": not in " ex " (after " best " matching lines): " block[best + 1])
    blocks++
}
BEGIN { sec3 = page ~ /\.3\.md$/ }
/^# / { inex = ($0 == "# EXAMPLE"); last = ""; next }
!inex { next }
incode && /^```/ { incode = 0; if (checked) check(); next }
incode { block[++n] = $0; next }
/^```/ { incode = 1; n = 0; start = NR; checked = sec3 || $0 ~ /^```c *$/; named = last; next }
NF { last = $0 }
END {
    if (sec3 && blocks == 0 && !bad)
        fail("the EXAMPLE section has no code block taken from examples/")
    exit bad
}
AWK
for md in "${pages[@]}"; do
    awk -v page="$md" -v src=. -f "$work/excerpt.awk" "$md" || true
done >"$work/excerpts"
[ -s "$work/excerpts" ] && { cat "$work/excerpts" >&2; fail=1; }

# ---- every source is listed for install and dist
if [ -n "${CF_MAN_SOURCES:-}" ]; then
    for md in "${pages[@]}"; do
        [[ " $CF_MAN_SOURCES " == *" $md "* ]] || bad "$md is not listed in CF_MAN_SOURCES (man/local.am)"
    done
    for md in $CF_MAN_SOURCES; do
        [ -f "$md" ] || bad "man/local.am lists $md, which does not exist"
    done
fi

echo "check-pages: ${#pages[@]} pages name $(wc -l <"$work/named") identifiers;" \
    "$(cat "${pages[@]}" | grep -c '^From \*examples/') excerpts of examples/ in EXAMPLE sections;" \
    "API: $(wc -l <"$work/header-funcs") functions in the headers, $nlib exported by the library," \
    "$(wc -l <"$work/types") types"
exit $fail
