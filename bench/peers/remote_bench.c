/*
 * remote_bench.c - the cfutures side of the remote-executor measurements
 * (bench/remote_cases.py starts a redis-server and the cfworker processes,
 * which load remote_tasks.so, on queue "bench").
 *
 *   remote_bench pingpong URL N        N sequential round trips (no-op task): us per trip
 *   remote_bench batch URL N           N no-op tasks submitted at once: tasks/s
 *   remote_bench map URL N [CHUNK]     the seed map over 1..N: serial C in this
 *                                      process, then cf_map_i64_f64() on the
 *                                      remote executor: the speed-up
 *
 * Prints one JSON line: case, unit, value and the details.  Every result is
 * checked.  The client connects before the clock starts.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int noop(cf_task_t *t, void *arg);
double seed_f(int64_t x);

static double now_s(void)
{
    return (double)cf_now_ns() / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "remote_bench: %s: %s\n", what, cf_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    cf_remote_pool_t *pool;
    cf_remote_opts o;
    cf_executor_t *ex;
    long n;
    double t0;

    if (argc < 4 || !ev) {
        fprintf(stderr, "usage: remote_bench pingpong|batch|map URL N [CHUNK]\n");
        return 2;
    }
    n = atol(argv[3]);
    if (n < 1 || cf_loop_new(ev, &loop) != 0)
        return 2;
    cf_remote_opts_init(&o);
    o.url = argv[2];
    o.queue = "bench";
    o.max_inflight = 4096;
    if (cf_remote_pool_new(loop, &o, &pool) != 0)
        return fail("cf_remote_pool_new");
    ex = cf_remote_pool_executor(pool);
    for (int i = 0; i < 2000 && !cf_remote_pool_connected(pool); i++) { /* up to 10 s */
        cf_future_t *nap;
        if (cf_sleep(loop, 0.005, &nap) == 0) {
            cf_future_wait(nap, -1);
            cf_future_unref(nap);
        }
    }
    if (!cf_remote_pool_connected(pool))
        return fail("no connection to the broker");

    if (strcmp(argv[1], "pingpong") == 0) {
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            cf_future_t *f;
            int64_t v = 0;
            if (cf_executor_submit_bytes(ex, noop, "", 0, &f) != 0 || cf_future_wait(f, 60) != 0 ||
                cf_future_result_i64(f, &v) != 0 || v != 1)
                return fail("round trip");
            cf_future_unref(f);
        }
        double dt = now_s() - t0;
        printf("{\"case\": \"remote_pingpong\", \"unit\": \"us\", \"value\": %.2f, \"n\": %ld, \"seconds\": %.4f}\n",
               dt * 1e6 / (double)n, n, dt);
    } else if (strcmp(argv[1], "batch") == 0) {
        cf_future_t **fs = malloc((size_t)n * sizeof(*fs));
        if (!fs)
            return 1;
        t0 = now_s();
        for (long i = 0; i < n; i++)
            if (cf_executor_submit_bytes(ex, noop, "", 0, &fs[i]) != 0)
                return fail("submit");
        for (long i = 0; i < n; i++) {
            int64_t v = 0;
            if (cf_future_wait(fs[i], 600) != 0 || cf_future_result_i64(fs[i], &v) != 0 || v != 1)
                return fail("batch result");
            cf_future_unref(fs[i]);
        }
        double dt = now_s() - t0;
        free(fs);
        printf("{\"case\": \"remote_batch\", \"unit\": \"tasks/s\", \"value\": %.0f, \"n\": %ld, \"seconds\": %.4f}\n",
               (double)n / dt, n, dt);
    } else if (strcmp(argv[1], "map") == 0) {
        int64_t *xs = malloc((size_t)n * sizeof(*xs));
        double *want = malloc((size_t)n * sizeof(*want)), *ys = malloc((size_t)n * sizeof(*ys));
        size_t chunk = argc > 4 ? (size_t)atol(argv[4]) : 0;
        double serial, remote;
        if (!xs || !want || !ys)
            return 1;
        for (long i = 0; i < n; i++)
            xs[i] = i + 1;
        t0 = now_s();
        for (long i = 0; i < n; i++)
            want[i] = seed_f(xs[i]);
        serial = now_s() - t0;
        t0 = now_s();
        if (cf_map_i64_f64(ex, seed_f, xs, (size_t)n, chunk, ys) != 0)
            return fail("map");
        remote = now_s() - t0;
        for (long i = 0; i < n; i++)
            if (ys[i] != want[i]) {
                fprintf(stderr, "remote_bench: map result %ld wrong\n", i);
                return 1;
            }
        printf("{\"case\": \"remote_map\", \"unit\": \"x\", \"value\": %.4f, \"n\": %ld, \"serial_s\": %.4f, "
               "\"remote_s\": %.4f, \"chunksize\": %zu}\n",
               serial / remote, n, serial, remote, chunk);
        free(xs);
        free(want);
        free(ys);
    } else {
        fprintf(stderr, "remote_bench: unknown case %s\n", argv[1]);
        return 2;
    }
    cf_remote_pool_free(pool);
    ev_run(ev, EVRUN_NOWAIT);
    cf_loop_close(loop);
    ev_loop_destroy(ev);
    return 0;
}
