/* demos/common/util.c - see util.h. */
/* Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *demo_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
        exit(1);
    }
    return p;
}

char *demo_xstrndup(const char *s, size_t n)
{
    char *d = demo_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int demo_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *demo_url_decode(const char *s, size_t len, int plus)
{
    char *out = demo_xmalloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (len - i < 3 || demo_hexval(s[i + 1]) < 0 || demo_hexval(s[i + 2]) < 0) {
                free(out);
                return NULL;
            }
            ch = demo_hexval(s[i + 1]) * 16 + demo_hexval(s[i + 2]);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (ch == 0) {
            free(out);
            return NULL;
        }
        *o++ = (char)ch;
    }
    *o = '\0';
    return out;
}

int demo_query_get(const char *q, size_t len, const char *key, char **out)
{
    size_t klen = strlen(key), i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end - i >= klen && memcmp(q + i, key, klen) == 0 && (end - i == klen || q[i + klen] == '=')) {
            size_t v = end - i == klen ? end : i + klen + 1;
            *out = demo_url_decode(q + v, end - v, 1);
            return *out ? 1 : -1;
        }
        i = end + 1;
    }
    return 0;
}

int demo_parse_uint(const char *s, long long lo, long long hi, long long *out)
{
    long long v = 0;
    if (!*s || strlen(s) > 18)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int demo_parse_seconds(const char *s, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > max)
        return -1;
    *out = v;
    return 0;
}

int demo_parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char digits[24];
    size_t n = strlen(s);
    unsigned shift = 0;
    long long v;

    if (n == 0 || n >= sizeof(digits))
        return -1;
    memcpy(digits, s, n + 1);
    switch (digits[n - 1]) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift)
        digits[n - 1] = '\0';
    if (demo_parse_uint(digits, 0, (long long)1 << 40, &v) != 0)
        return -1;
    uint64_t bytes = (uint64_t)v << shift;
    if (bytes < lo || bytes > hi)
        return -1;
    *out = bytes;
    return 0;
}

const char *demo_opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

void demo_hold_signals(void)
{
    sigset_t set;

    stop_signals(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

void demo_release_signals(void)
{
    sigset_t set;

    stop_signals(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}
