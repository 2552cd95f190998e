/*
 * remote_map.c - the seed map, scaled out: f over 1..99999 in chunks, run by
 * worker programs on other machines that take the tasks from a Redis broker;
 * the results come back in input order, as from a local pool.
 *
 *   cfworker --redis URL --queue seedmap --tasks remote_seed.so   (each worker)
 *   remote_map URL                                                 (anywhere)
 *
 * Tasks travel by name.  f is defined in remote_seed.c, which is linked into
 * this program and built as the workers' task library: CF_REGISTER(f) there
 * registers it as "f" in both, so this program sends "f" and each worker runs
 * its own f.  remote_check.sh runs it all against a redis-server of its own.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>
#include <stdio.h>

double f(int64_t x); /* remote_seed.c: the seed's f(x), the sum of x^(1/k^1.5) for k = 1..51 */

int main(int argc, char **argv)
{
    static int64_t xs[99999];
    static double ys[99999];
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    cf_remote_pool_t *pool;
    cf_remote_opts o;

    if (argc != 2) {
        fprintf(stderr, "usage: remote_map redis://HOST:PORT\n");
        return 2;
    }
    if (!ev || cf_loop_new(ev, &loop) != 0)
        return 1;
    for (int i = 0; i < 99999; i++)
        xs[i] = i + 1;
    cf_remote_opts_init(&o);
    o.url = argv[1];
    o.queue = "seedmap"; /* the stream the workers read */
    o.workers = 4;       /* for the automatic chunk size: 99999 / (4 x 4) */
    int rc = cf_remote_pool_new(loop, &o, &pool);
    if (rc != 0) {
        fprintf(stderr, "remote_map: %s\n", cf_last_error());
        return 1;
    }
    /* Blocks, running the loop, until every chunk came back (or one failed). */
    rc = cf_map_i64_f64(cf_remote_pool_executor(pool), f, xs, 99999, 0, ys);
    if (rc == 0)
        printf("%d results, f(1) = %.3f, f(99999) = %.3f\n", 99999, ys[0], ys[99998]);
    else
        fprintf(stderr, "map failed: %s: %s\n", cf_strerror(rc), cf_last_error());
    cf_remote_pool_free(pool);
    if (cf_loop_close(loop) != 0)
        return 1;
    ev_loop_destroy(ev);
    return rc != 0;
}
