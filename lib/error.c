/*
 * error.c - error texts, the per-thread last-error message, version, clock and CPU
 * count.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cf__errinfo {
    int code;
    const char *name;
    const char *text;
};

/* Generated from CF_ERRNO_MAP (common.h), the one list of codes. */
/* clang-format off */
static const struct cf__errinfo cf__errors[] = {
    {0, "CF_OK", "success"},
#define CF__ERRNO_INFO(name, value, text) {CF_##name, "CF_" #name, text},
    CF_ERRNO_MAP(CF__ERRNO_INFO)
#undef CF__ERRNO_INFO
};
/* clang-format on */

static const struct cf__errinfo *cf__errinfo_find(int err)
{
    for (size_t i = 0; i < sizeof(cf__errors) / sizeof(cf__errors[0]); i++)
        if (cf__errors[i].code == err)
            return &cf__errors[i];
    return NULL;
}

const char *cf_strerror(int err)
{
    const struct cf__errinfo *e = cf__errinfo_find(err);
    if (e)
        return e->text;
    if (err < 0 && err > -4000) {
#ifdef HAVE_STRERRORDESC_NP
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
#endif
    }
    return "unknown error";
}

const char *cf_err_name(int err)
{
    const struct cf__errinfo *e = cf__errinfo_find(err);
    if (e)
        return e->name;
    if (err < 0 && err > -4000) {
#ifdef HAVE_STRERRORDESC_NP
        const char *s = strerrorname_np(-err);
        if (s)
            return s;
#endif
    }
    return "CF_EUNKNOWN";
}

/* ------------------------------------------------------------------ last error */

#define CF__ERRMSG_MAX 512

static _Thread_local char cf__errmsg[CF__ERRMSG_MAX];

const char *cf_last_error(void)
{
    return cf__errmsg;
}

int cf__set_error(int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cf__errmsg, sizeof(cf__errmsg), fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(cf__errmsg, sizeof(cf__errmsg), "%s", cf_strerror(code));
    return code;
}

const char *cf_version(void)
{
    return PACKAGE_VERSION;
}

uint64_t cf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cf_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

void cf__panic(const char *func, const char *msg)
{
    fprintf(stderr, "cfutures: %s: %s\n", func, msg);
    abort();
}

int cf__mutex_init(pthread_mutex_t *mu)
{
    pthread_mutexattr_t attr;
    int rc;

    pthread_mutexattr_init(&attr);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    rc = pthread_mutex_init(mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

char *cf__printf_alloc(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

void *cf__memdup(const void *data, size_t len)
{
    void *copy = malloc(len ? len : 1);

    if (copy && len)
        memcpy(copy, data, len);
    return copy;
}

void *cf__calloc_aligned(size_t size)
{
    void *p;

    size = (size + CF__CACHELINE - 1) & ~(size_t)(CF__CACHELINE - 1);
    if (posix_memalign(&p, CF__CACHELINE, size))
        return NULL;
    memset(p, 0, size);
    return p;
}
