#!/usr/bin/env bash
# man/links.sh install|uninstall MANDIR SRCDIR man/PAGE.md... - install (or remove) one
# ".so" link page for every name a page documents besides its own, so that
# `man cf_future_unref` shows cf_future_new(3).  Run by `make install` and
# `make uninstall` (install-data-local, uninstall-local).
set -euo pipefail
action=$1 mandir=$2 srcdir=$3
shift 3
case $mandir in /*) ;; *) mandir=$PWD/$mandir ;; esac
cd "$srcdir"
man/names.sh "$@" | while read -r page sec name; do
    [ "$name" = "$page" ] && continue
    target="$mandir/man$sec/$name.$sec"
    case $action in
    install)
        mkdir -p "$mandir/man$sec"
        printf '.so man%s/%s.%s\n' "$sec" "$page" "$sec" >"$target"
        chmod 644 "$target"
        ;;
    uninstall) rm -f "$target" ;;
    *) echo "links.sh: unknown action $action" >&2; exit 2 ;;
    esac
done
