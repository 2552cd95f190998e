/*
 * demos/common/util.h - small helpers shared by the demo programs: memory that
 * never fails silently, %-decoding, query strings, and command-line values.
 *
 * Every function is plain C with no state; any thread may call it.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_DEMO_UTIL_H
#define CF_DEMO_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* malloc/strndup that print "<prog>: out of memory" and exit(1) on failure. */
void *demo_xmalloc(size_t n);
char *demo_xstrndup(const char *s, size_t n);

/* Value of one hex digit, or -1. */
int demo_hexval(int ch);

/*
 * Decode %XX escapes (and '+' as a space when `plus`) of s[0..len) into a new
 * string (to free).  Returns NULL for a bad escape or a NUL byte.
 */
char *demo_url_decode(const char *s, size_t len, int plus);

/*
 * The decoded value of `key` in the query string q[0..len): 1 and *out (to
 * free) when present, 0 when absent, -1 when its encoding is bad.  The first
 * occurrence wins.
 */
int demo_query_get(const char *q, size_t len, const char *key, char **out);

/* A decimal integer in [lo, hi], digits only (at most 18): 0, or -1. */
int demo_parse_uint(const char *s, long long lo, long long hi, long long *out);

/* Seconds: a number > 0 and <= max.  0, or -1. */
int demo_parse_seconds(const char *s, double max, double *out);

/*
 * A byte count with an optional K, M or G suffix (powers of 1024), from lo to
 * hi: 0, or -1.
 */
int demo_parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/*
 * The value of option `name` at argv[*i], given as "--name V" (then *i moves
 * past V) or "--name=V"; NULL when argv[*i] is not that option or V is missing.
 */
const char *demo_opt_value(int argc, char **argv, int *i, const char *name);

/*
 * SIGINT, SIGTERM and SIGHUP held back (blocked) from the start of main()
 * until the program's loop watches them: a program calls
 * demo_hold_signals() first thing and demo_release_signals() once its
 * ev_signal watchers are started, so a signal that comes while it starts up
 * is handled as usual (a drain, a graceful stop) instead of killing it.
 * Threads started in between inherit the mask and leave these signals to the
 * main thread.
 */
void demo_hold_signals(void);
void demo_release_signals(void);

#endif
