# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""checks.py - "ok - name" / "not ok - name" lines for the demo tests."""

failures = []


def check(cond, name, detail=""):
    """Print one result line; remember the failures."""
    if cond:
        print("ok - %s" % name)
    else:
        print("not ok - %s %s" % (name, detail))
        failures.append(name)


def summary():
    """Print the count of failures; the exit status for the test (0 or 1)."""
    print("%d failed" % len(failures))
    return 1 if failures else 0
