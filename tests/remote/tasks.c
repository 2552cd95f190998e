/*
 * tasks.c - the task library of the remote executor's tests: built as a
 * module that cfworker loads (--tasks), and linked into tests/test_remote so
 * that the client registers the same names.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/registry.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* i64 payload -> its square. */
static int rt_square(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t x;
    (void)arg;
    const void *p = cf_task_arg(t, &len);
    if (len != sizeof(x))
        return cf_task_fail(t, CF_EINVAL, "rt_square wants 8 bytes, got %zu", len);
    memcpy(&x, p, sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}
CF_REGISTER(rt_square);

/* A map item (i64) -> 3x+1. */
static int rt_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    if (len != sizeof(x))
        return cf_task_fail(t, CF_EINVAL, "rt_item wants 8 bytes");
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, 3 * x + 1);
    return 0;
}
CF_REGISTER(rt_item);

/* Script layer: x -> x * 0.5. */
static double rt_half(int64_t x)
{
    return (double)x * 0.5;
}
CF_REGISTER(rt_half);

/* Sleep `ms` (i64 payload) in small steps, then return ms; bytes "echo" back when ms < 0. */
static int rt_sleep(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t ms;
    (void)arg;
    memcpy(&ms, cf_task_arg(t, &len), sizeof(ms));
    for (int64_t i = 0; i < ms; i += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cf_task_set_i64(t, ms);
    return 0;
}
CF_REGISTER(rt_sleep);

/* Bytes -> the same bytes reversed. */
static int rt_reverse(cf_task_t *t, void *arg)
{
    size_t len;
    const unsigned char *p = cf_task_arg(t, &len);
    unsigned char buf[256];
    (void)arg;
    if (len > sizeof(buf))
        return cf_task_fail(t, CF_EINVAL, "too long");
    for (size_t i = 0; i < len; i++)
        buf[i] = p[len - 1 - i];
    return cf_task_set_bytes(t, buf, len);
}
CF_REGISTER(rt_reverse);

/* Create the file named by the payload (bytes): a trace that the task ran. */
static int rt_mark(cf_task_t *t, void *arg)
{
    size_t len;
    const char *p = cf_task_arg(t, &len);
    char path[256];
    int fd;
    (void)arg;
    if (len == 0 || len >= sizeof(path))
        return cf_task_fail(t, CF_EINVAL, "rt_mark: a path of 1 to 255 bytes");
    memcpy(path, p, len);
    path[len] = 0;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return cf_task_fail(t, CF_EFAIL, "rt_mark: cannot create %s", path);
    close(fd);
    cf_task_set_i64(t, 1);
    return 0;
}
CF_REGISTER(rt_mark);

/* A task that crashes its process (not the worker), after `ms` (i64 payload, or none). */
static int rt_crash(cf_task_t *t, void *arg)
{
    size_t len;
    const void *p = cf_task_arg(t, &len);
    int64_t ms = 0;
    (void)arg;
    if (len == sizeof(ms))
        memcpy(&ms, p, sizeof(ms));
    for (int64_t i = 0; i < ms; i += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    raise(SIGSEGV);
    return 0;
}
CF_REGISTER(rt_crash);

static pid_t ppid_of(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    long pp = 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (fgets(buf, sizeof(buf), f)) {
        char *r = strrchr(buf, ')');
        if (r)
            sscanf(r + 2, "%*c %ld", &pp);
    }
    fclose(f);
    return (pid_t)pp;
}

/* A poison task: kills the cfworker that runs it (worker process -> fork server -> cfworker). */
static int rt_poison(cf_task_t *t, void *arg)
{
    pid_t server = getppid(), worker = ppid_of(server);
    (void)t;
    (void)arg;
    if (worker > 1)
        kill(worker, SIGKILL);
    for (;;)
        pause(); /* dies with the fork server */
    return 0;
}
CF_REGISTER(rt_poison);

/*
 * A slow start, for the test of a signal during a worker's start: with
 * CF_TEST_LOAD_FD set (in cfworker, not in the test program), loading this
 * library writes a byte to that descriptor and then takes half a second.
 */
__attribute__((constructor)) static void rt_slow_load(void)
{
    const char *fd = getenv("CF_TEST_LOAD_FD");
    struct timespec half = {0, 500 * 1000 * 1000};

    if (!fd)
        return;
    if (write(atoi(fd), "L", 1) != 1)
        return;
    close(atoi(fd));
    while (nanosleep(&half, &half) != 0)
        ;
}
