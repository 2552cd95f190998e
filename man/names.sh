#!/usr/bin/env bash
# man/names.sh PAGE.md... - print "page section name" for every name in the
# NAME line of each page source (man/NAME.SECTION.md).  The NAME section is
# one line: "name, name, ... - what they do".  Used by man/links.sh and
# man/check-pages.sh.
set -euo pipefail
for md in "$@"; do
    base=$(basename "$md" .md)   # cf_future_new.3
    page=${base%.*}
    sec=${base##*.}
    line=$(awk '/^# NAME/ {f = 1; next} f && NF {print; exit}' "$md")
    if [ -z "$line" ] || [[ "$line" != *" - "* ]]; then
        echo "$md: no NAME line of the form 'name, name - description'" >&2
        exit 1
    fi
    names=${line%% - *}
    for n in ${names//,/ }; do
        n=${n//\\/}             # pandoc escapes: cf\_x
        printf '%s %s %s\n' "$page" "$sec" "$n"
    done
done
