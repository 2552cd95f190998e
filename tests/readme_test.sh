#!/bin/bash
# readme_test.sh - the README's "A taste" is examples/submit_callbacks.c, verbatim.
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
set -euo pipefail
src=${CF_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
taste=$(awk '/^## A taste$/ {on = 1; next} on && /^```c$/ {code = 1; next} code && /^```$/ {exit} code {print}' "$src/README.md")
if [ "$taste" != "$(cat "$src/examples/submit_callbacks.c")" ]; then
    echo "not ok - README.md's A taste differs from examples/submit_callbacks.c:"
    diff <(printf '%s\n' "$taste") "$src/examples/submit_callbacks.c" || true
    exit 1
fi
echo "ok - README.md's A taste is examples/submit_callbacks.c"
