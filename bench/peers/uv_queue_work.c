/*
 * uv_queue_work.c - libuv thread-pool peer for cfutures' bench_thread_pool.
 *
 * Measures the per-task overhead of libuv's uv_queue_work() thread pool,
 * the closest libuv analogue of a cf thread pool with a done callback.
 *
 *   --case tp_batch     N no-op requests submitted at once (work_cb does
 *                       nothing, after_work_cb counts).  Timed from before the
 *                       first uv_queue_work() until uv_run() returned, i.e.
 *                       every work_cb and every after_work_cb ran.  The
 *                       uv_work_t structs are preallocated in one array (no
 *                       malloc per task).  Reports tasks/s.
 *   --case tp_pingpong  N sequential round trips: submit one no-op request,
 *                       its after_work_cb submits the next.  Reports mean
 *                       microseconds per round trip.
 *
 * Before timing, one request is run through the pool so that the pool's
 * threads already exist (libuv starts them lazily on the first submit);
 * thread start-up is not timed, as in bench_thread_pool.
 *
 * Usage: uv_queue_work --case tp_batch|tp_pingpong [--n N] [--threads N]
 *   --n N        requests (default 1000000 for tp_batch, 100000 for
 *                tp_pingpong)
 *   --threads N  UV_THREADPOOL_SIZE, set via setenv() before the first uv
 *                call unless already set in the environment (default 2)
 *
 * Prints exactly one JSON line on stdout; diagnostics go to stderr.
 * Exit status 0, 1 on a libuv error, 2 on a usage error.
 *
 * Build: gcc -O2 -o uv_queue_work uv_queue_work.c \
 *            $(pkg-config --cflags --libs libuv) -pthread
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _POSIX_C_SOURCE 200809L

#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "peer_clock.h"

static uv_loop_t loop;
static uv_work_t *reqs;
static long n_req;
static long completed;
static long submitted;

static void die_uv(const char *what, int rc)
{
    fprintf(stderr, "uv_queue_work: %s: %s (%s)\n", what, uv_strerror(rc), uv_err_name(rc));
    exit(1);
}

/* Run the loop until every request completed; seconds since t0.  Exits if some did not. */
static double run_and_check(uv_loop_t *l, double t0, long n)
{
    uv_run(l, UV_RUN_DEFAULT);
    double secs = now_s() - t0;
    if (completed != n) {
        fprintf(stderr, "uv_queue_work: %ld of %ld completed\n", completed, n);
        exit(1);
    }
    return secs;
}

static void usage(void)
{
    fprintf(stderr, "usage: uv_queue_work --case tp_batch|tp_pingpong [--n N] [--threads N]\n");
    exit(2);
}

static void work_noop(uv_work_t *req)
{
    (void)req;
}

static void after_count(uv_work_t *req, int status)
{
    (void)req;
    if (status != 0)
        die_uv("after_work", status);
    completed++;
}

static void after_next(uv_work_t *req, int status)
{
    int rc;

    if (status != 0)
        die_uv("after_work", status);
    completed++;
    if (submitted < n_req) {
        submitted++;
        rc = uv_queue_work(&loop, req, work_noop, after_next);
        if (rc != 0)
            die_uv("uv_queue_work", rc);
    }
}

static void warm_up(void)
{
    uv_work_t w;
    int rc;

    completed = 0;
    rc = uv_queue_work(&loop, &w, work_noop, after_count);
    if (rc != 0)
        die_uv("uv_queue_work", rc);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (completed != 1) {
        fprintf(stderr, "uv_queue_work: warm-up did not complete\n");
        exit(1);
    }
    completed = 0;
}

static long parse_long(const char *s, const char *flag)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "uv_queue_work: bad value for %s: %s\n", flag, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *which = NULL;
    long n = 0, threads = 2;
    double t0, secs, c0;
    int rc, i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
            which = argv[++i];
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = parse_long(argv[++i], "--n");
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = parse_long(argv[++i], "--threads");
        else
            usage();
    }
    if (which == NULL)
        usage();
    if (strcmp(which, "tp_batch") != 0 && strcmp(which, "tp_pingpong") != 0)
        usage();
    if (n == 0)
        n = strcmp(which, "tp_batch") == 0 ? 1000000 : 100000;

    /* Must happen before the first uv call that may start the pool. */
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", threads);
        setenv("UV_THREADPOOL_SIZE", buf, 1);
    } else {
        threads = strtol(getenv("UV_THREADPOOL_SIZE"), NULL, 10);
    }

    rc = uv_loop_init(&loop);
    if (rc != 0)
        die_uv("uv_loop_init", rc);
    warm_up();
    n_req = n;

    if (strcmp(which, "tp_batch") == 0) {
        reqs = calloc((size_t)n, sizeof *reqs);
        if (reqs == NULL) {
            fprintf(stderr, "uv_queue_work: out of memory\n");
            return 1;
        }
        /* Fault the pages in before timing: volatile stores, since malloc +
         * memset(0) may be turned into calloc, which touches nothing. */
        for (size_t off = 0; off < (size_t)n * sizeof *reqs; off += 4096)
            ((volatile char *)reqs)[off] = 0;
        memset(reqs, 0, (size_t)n * sizeof *reqs);

        c0 = cpu_s();
        t0 = now_s();
        for (long k = 0; k < n; k++) {
            rc = uv_queue_work(&loop, &reqs[k], work_noop, after_count);
            if (rc != 0)
                die_uv("uv_queue_work", rc);
        }
        secs = run_and_check(&loop, t0, n);
        printf("{\"case\": \"tp_batch\", \"unit\": \"tasks/s\", \"value\": %.1f, \"n\": %ld, "
               "\"seconds\": %.6f, \"cpu_ns_per_task\": %.1f, \"threads\": %ld, \"libuv\": \"%s\"}\n",
               (double)n / secs, n, secs, (cpu_s() - c0) * 1e9 / (double)n, threads, uv_version_string());
        free(reqs);
    } else {
        uv_work_t req;

        c0 = cpu_s();
        t0 = now_s();
        submitted = 1;
        rc = uv_queue_work(&loop, &req, work_noop, after_next);
        if (rc != 0)
            die_uv("uv_queue_work", rc);
        secs = run_and_check(&loop, t0, n);
        printf("{\"case\": \"tp_pingpong\", \"unit\": \"us\", \"value\": %.3f, \"n\": %ld, "
               "\"seconds\": %.6f, \"cpu_us_per_trip\": %.3f, \"threads\": %ld, \"libuv\": \"%s\"}\n",
               secs * 1e6 / (double)n, n, secs, (cpu_s() - c0) * 1e6 / (double)n, threads, uv_version_string());
    }

    rc = uv_loop_close(&loop);
    if (rc != 0)
        die_uv("uv_loop_close", rc);
    return 0;
}
