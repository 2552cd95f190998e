/*
 * remote_map.c - the seed map, scaled out: f over 1..99999 in chunks on
 * worker programs reached through Redis, results in input order.
 *
 *   remote_map worker redis://HOST:6379      (on each worker machine; or cfworker)
 *   remote_map client redis://HOST:6379      (anywhere: submits, prints)
 *
 * The same binary is both: f is registered by name (CF_REGISTER), so the
 * client sends "f" and each worker runs its own f.  A worker stops on SIGTERM
 * after finishing what it runs.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static double f(int64_t x) /* runs in a worker's process */
{
    double r = 0;
    for (int k = 1; k <= 51; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}
CF_REGISTER(f);

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

static int run_worker(cf_loop_t *loop, const char *url)
{
    cf_remote_worker_opts o;
    ev_signal term;
    ev_check check;

    cf_remote_worker_opts_init(&o);
    o.url = url;
    o.queue = "seedmap";
    o.procs = 2;
    if (cf_remote_worker_new(loop, &o, &worker) != 0) {
        fprintf(stderr, "worker: %s\n", cf_last_error());
        return 1;
    }
    ev_signal_init(&term, on_term, SIGTERM);
    ev_signal_start(cf_loop_ev(loop), &term);
    ev_check_init(&check, on_check);
    ev_check_start(cf_loop_ev(loop), &check);
    ev_run(cf_loop_ev(loop), 0);
    ev_signal_stop(cf_loop_ev(loop), &term);
    ev_check_stop(cf_loop_ev(loop), &check);
    cf_remote_worker_free(worker);
    return 0;
}

static int run_client(cf_loop_t *loop, const char *url)
{
    static int64_t xs[99999];
    static double ys[99999];
    cf_remote_pool_t *pool;
    cf_remote_opts o;
    int rc;

    for (int i = 0; i < 99999; i++)
        xs[i] = i + 1;
    cf_remote_opts_init(&o);
    o.url = url;
    o.queue = "seedmap";
    o.workers = 4; /* for the automatic chunk size: 99999 / (4 x 4) */
    if (cf_remote_pool_new(loop, &o, &pool) != 0) {
        fprintf(stderr, "client: %s\n", cf_last_error());
        return 1;
    }
    rc = cf_map_i64_f64(cf_remote_pool_executor(pool), f, xs, 99999, 0, ys);
    if (rc == 0)
        printf("%d results, f(1) = %.3f, f(99999) = %.3f\n", 99999, ys[0], ys[99998]);
    else
        fprintf(stderr, "map failed: %s: %s\n", cf_strerror(rc), cf_last_error());
    cf_remote_pool_free(pool);
    return rc != 0;
}

int main(int argc, char **argv)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    int rc;

    if (argc != 3 || (strcmp(argv[1], "worker") != 0 && strcmp(argv[1], "client") != 0)) {
        fprintf(stderr, "usage: remote_map worker|client redis://HOST:PORT\n");
        return 2;
    }
    cf_loop_new(ev, &loop);
    rc = argv[1][0] == 'w' ? run_worker(loop, argv[2]) : run_client(loop, argv[2]);
    ev_run(ev, EVRUN_NOWAIT);
    cf_loop_close(loop);
    ev_loop_destroy(ev);
    return rc;
}
