/*
 * remote_worker.c - a remote worker embedded in a program of one's own.  It
 * takes the seed map's tasks from a Redis queue (as remote_map.c sends them)
 * and runs them in one local worker process while its loop serves whatever
 * else the program does.  Its tasks are linked in: remote_seed.c registers f.
 * SIGTERM drains it: running tasks finish and post their results, nothing
 * new is taken, exit 0.  cfworker(1) is the same call in a program that
 * loads its tasks from a shared object.
 *
 *   remote_worker redis://HOST:PORT
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>
#include <signal.h>
#include <stdio.h>

static cf_remote_worker_t *worker;

static void on_tick(struct ev_loop *ev, ev_timer *t, int revents) /* every 50 ms once draining */
{
    if (cf_remote_worker_done(worker))
        ev_break(ev, EVBREAK_ALL);
}

static void on_sigterm(struct ev_loop *ev, ev_signal *s, int revents)
{
    cf_remote_worker_drain(worker); /* takes no new task; the running ones finish */
    ev_timer_start(ev, s->data);
}

int main(int argc, char **argv)
{
    struct ev_loop *ev = ev_default_loop(0);
    cf_loop_t *loop;
    cf_remote_worker_opts o;
    ev_signal sig;
    ev_timer tick;

    if (argc != 2) {
        fprintf(stderr, "usage: remote_worker redis://HOST:PORT\n");
        return 2;
    }
    cf_remote_worker_opts_init(&o);
    o.url = argv[1];
    o.queue = "seedmap";          /* the stream remote_map.c submits to */
    o.procs = 1;                  /* worker processes, forked here: before any thread */
    o.tasks_id = "remote_worker"; /* how this program's task code is named in messages */
    if (cf_loop_new(ev, &loop) != 0)
        return 1;
    if (cf_remote_worker_new(loop, &o, &worker) != 0) {
        fprintf(stderr, "remote_worker: %s\n", cf_last_error());
        return 1;
    }
    ev_timer_init(&tick, on_tick, 0.05, 0.05);
    ev_signal_init(&sig, on_sigterm, SIGTERM);
    sig.data = &tick;
    ev_signal_start(ev, &sig);
    ev_run(ev, 0); /* takes and runs tasks until drained */
    ev_timer_stop(ev, &tick);
    ev_signal_stop(ev, &sig);
    uint64_t done = 0;
    cf_remote_worker_stats(worker, &done, NULL);
    fprintf(stderr, "remote_worker: drained after %llu tasks\n", (unsigned long long)done);
    cf_remote_worker_free(worker);
    ev_run(ev, EVRUN_NOWAIT); /* what the pool handed back on the way out */
    return cf_loop_close(loop) != 0;
}
