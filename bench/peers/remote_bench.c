/*
 * remote_bench.c - the cfutures side of the remote-executor measurements.
 *
 *   remote_bench worker URL PROCS          a worker (embedded), until SIGTERM
 *   remote_bench pingpong URL N            N sequential round trips (no-op task)
 *   remote_bench batch URL N               N no-op tasks submitted at once
 *   remote_bench map URL N K CHUNK         seed map (K terms) over 1..N, chunked
 *
 * Prints one line: case, count, seconds, rate.  The workers must be started
 * first, on the same queue ("bench").
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int noop(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_i64(t, 1);
    return 0;
}
CF_REGISTER(noop);

static int terms = 50;

static double seed_f(int64_t x)
{
    double r = 0;
    for (int k = 1; k <= terms; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}
CF_REGISTER(seed_f);

static cf_remote_worker_t *worker;

static void on_term(struct ev_loop *ev, ev_signal *s, int revents)
{
    (void)ev, (void)s, (void)revents;
    cf_remote_worker_drain(worker);
}

static void on_check(struct ev_loop *ev, ev_check *c, int revents)
{
    (void)c, (void)revents;
    if (cf_remote_worker_done(worker))
        ev_break(ev, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    cf_remote_pool_t *pool;
    cf_remote_opts o;
    cf_executor_t *ex;
    long n;
    double t0, dt;

    if (argc < 4) {
        fprintf(stderr, "usage: remote_bench worker|pingpong|batch|map URL N [K CHUNK]\n");
        return 2;
    }
    n = atol(argv[3]);
    if (argc > 4)
        terms = atoi(argv[4]);
    cf_loop_new(ev, &loop);
    if (strcmp(argv[1], "worker") == 0) {
        cf_remote_worker_opts wo;
        ev_signal term;
        ev_check check;
        cf_remote_worker_opts_init(&wo);
        wo.url = argv[2];
        wo.queue = "bench";
        wo.procs = (int)n;
        if (cf_remote_worker_new(loop, &wo, &worker) != 0) {
            fprintf(stderr, "%s\n", cf_last_error());
            return 1;
        }
        ev_signal_init(&term, on_term, SIGTERM);
        ev_signal_start(ev, &term);
        ev_check_init(&check, on_check);
        ev_check_start(ev, &check);
        ev_run(ev, 0);
        ev_signal_stop(ev, &term);
        ev_check_stop(ev, &check);
        cf_remote_worker_free(worker);
        ev_run(ev, EVRUN_NOWAIT);
        cf_loop_close(loop);
        return 0;
    }
    cf_remote_opts_init(&o);
    o.url = argv[2];
    o.queue = "bench";
    o.max_inflight = 4096;
    o.workers = 4;
    if (cf_remote_pool_new(loop, &o, &pool) != 0) {
        fprintf(stderr, "%s\n", cf_last_error());
        return 1;
    }
    ex = cf_remote_pool_executor(pool);
    t0 = (double)cf_now_ns() / 1e9;
    if (strcmp(argv[1], "pingpong") == 0) {
        for (long i = 0; i < n; i++) {
            cf_future_t *f;
            if (cf_executor_submit_bytes(ex, noop, "", 0, &f) != 0 || cf_future_wait(f, 60) != 0 ||
                cf_future_status(f) != 0) {
                fprintf(stderr, "round trip %ld failed\n", i);
                return 1;
            }
            cf_future_unref(f);
        }
    } else if (strcmp(argv[1], "batch") == 0) {
        cf_future_t **fs = malloc((size_t)n * sizeof(*fs));
        for (long i = 0; i < n; i++)
            if (cf_executor_submit_bytes(ex, noop, "", 0, &fs[i]) != 0)
                return 1;
        for (long i = 0; i < n; i++) {
            if (cf_future_wait(fs[i], 600) != 0 || cf_future_status(fs[i]) != 0)
                return 1;
            cf_future_unref(fs[i]);
        }
        free(fs);
    } else if (strcmp(argv[1], "map") == 0) {
        int64_t *xs = malloc((size_t)n * sizeof(*xs));
        double *ys = malloc((size_t)n * sizeof(*ys));
        size_t chunk = argc > 5 ? (size_t)atol(argv[5]) : 0;
        for (long i = 0; i < n; i++)
            xs[i] = i + 1;
        if (cf_map_i64_f64(ex, seed_f, xs, (size_t)n, chunk, ys) != 0) {
            fprintf(stderr, "map failed: %s\n", cf_last_error());
            return 1;
        }
        for (long i = 0; i < n; i += n / 7 + 1)
            if (ys[i] != seed_f(xs[i])) {
                fprintf(stderr, "map result %ld wrong\n", i);
                return 1;
            }
        free(xs);
        free(ys);
    }
    dt = (double)cf_now_ns() / 1e9 - t0;
    printf("%s %ld %.3f s %.0f/s\n", argv[1], n, dt, (double)n / dt);
    cf_remote_pool_free(pool);
    ev_run(ev, EVRUN_NOWAIT);
    cf_loop_close(loop);
    return 0;
}
