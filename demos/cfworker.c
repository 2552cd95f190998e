/*
 * cfworker - run cfutures remote tasks: a worker of the remote executor.
 *
 *   cfworker --redis URL --queue NAME --tasks LIB.so [--procs N] [--timeout S]
 *            [--claim-idle S] [--prefetch K] [--broker-timeout S] [--name W]
 *
 * Loads LIB.so (its CF_REGISTER() constructors register the tasks), then
 * takes tasks from the queue and runs them in a local process pool of N
 * processes, holding up to K tasks per process (default 4).  SIGTERM or
 * SIGINT drains: running tasks finish and post their results, no new ones
 * are taken, exit status 0; results that cannot be posted because the broker
 * stays away for --broker-timeout seconds (default 30) are given up: exit
 * status 3, their tasks stay pending on the broker for another worker.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/remote.h>

#include "common/util.h"

#include <dlfcn.h>
#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cf_remote_worker_t *worker;
static ev_timer poll_done, broker_watch;

static void usage(FILE *f)
{
    fprintf(f, "usage: cfworker --redis URL --queue NAME --tasks LIB.so [--procs N] [--timeout S]\n"
               "                [--claim-idle S] [--prefetch K] [--broker-timeout S] [--name W]\n");
    if (f != stdout)
        return;
    fprintf(f, "Runs the cfutures remote tasks of the Redis queue NAME, registered by LIB.so, in N worker\n"
               "processes.  SIGTERM or SIGINT drains: running tasks finish, nothing new is taken.\n"
               "  --redis URL        redis://[user:password@]host:port[/db]\n"
               "  --queue NAME       the queue (stream) to take tasks from\n"
               "  --tasks LIB.so     the task library, loaded before the workers start\n"
               "  --procs N          worker processes (default: one per CPU, at most 1024)\n"
               "  --timeout S        seconds allowed per task (default: none)\n"
               "  --claim-idle S     seconds without a heartbeat before another worker claims a task,\n"
               "                     for tasks whose client set none (default 30)\n"
               "  --prefetch K       tasks held per worker process (default 4, at most 1024)\n"
               "  --broker-timeout S while draining, seconds to wait for an absent broker to post the\n"
               "                     last results (default 30); then their tasks are left pending there\n"
               "  --name W           consumer name (default host:pid)\n"
               "  --version, --help\n"
               "Exit status: 0 drained, 1 setup error, 2 usage error, 3 drained without the broker:\n"
               "some results were not posted (their tasks run again on another worker).\n");
}

/* A numeric option's value, or a usage error naming the option. */
static int bad_value(const char *opt, const char *v)
{
    fprintf(stderr, "cfworker: bad value for --%s: '%s'\n", opt, v);
    usage(stderr);
    return 2;
}

/* FNV-1a of the task library's bytes: the worker's build identity. */
static unsigned long long file_hash(const char *path)
{
    unsigned long long h = 1469598103934665603ull;
    FILE *f = fopen(path, "rb");
    int c;

    if (!f)
        return 0;
    while ((c = getc(f)) != EOF)
        h = (h ^ (unsigned char)c) * 1099511628211ull;
    fclose(f);
    return h;
}

static void on_signal(struct ev_loop *ev, ev_signal *s, int revents)
{
    (void)s;
    (void)revents;
    cf_remote_worker_drain(worker);
    ev_timer_start(ev, &poll_done);
}

static void on_poll(struct ev_loop *ev, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    if (cf_remote_worker_done(worker))
        ev_break(ev, EVBREAK_ALL);
}

/* Once a second: say when the broker cannot be reached or refuses this worker, and when it is back. */
static void on_broker_watch(struct ev_loop *ev, ev_timer *t, int revents)
{
    static char said[256];
    const char *why = cf_remote_worker_broker_error(worker);

    (void)ev;
    (void)t;
    (void)revents;
    if (why && strcmp(why, "connecting") != 0 && strcmp(why, said) != 0) {
        fprintf(stderr, "cfworker: no broker: %s (retrying)\n", why);
        snprintf(said, sizeof(said), "%s", why);
    } else if (!why && said[0]) {
        fprintf(stderr, "cfworker: connected to the broker again\n");
        said[0] = 0;
    }
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'},      {"queue", required_argument, 0, 'q'},
        {"tasks", required_argument, 0, 't'},      {"procs", required_argument, 0, 'p'},
        {"timeout", required_argument, 0, 'T'},    {"claim-idle", required_argument, 0, 'c'},
        {"name", required_argument, 0, 'n'},       {"help", no_argument, 0, 'h'},
        {"prefetch", required_argument, 0, 'P'},   {"version", no_argument, 0, 'V'},
        {"broker-timeout", required_argument, 0, 'B'},
        {0, 0, 0, 0},
    };
    cf_remote_worker_opts o;
    const char *lib = NULL;
    char tasks_id[600];
    struct ev_loop *ev;
    cf_loop_t *loop;
    ev_signal sterm, sint;
    long long num;
    size_t unposted;
    int c, rc;

    cf_remote_worker_opts_init(&o);
    while ((c = getopt_long(argc, argv, "r:q:t:p:T:c:n:P:B:hV", lo, NULL)) != -1) {
        switch (c) {
        case 'r': o.url = optarg; break;
        case 'q': o.queue = optarg; break;
        case 't': lib = optarg; break;
        case 'p':
            if (demo_parse_uint(optarg, 1, 1024, &num) != 0)
                return bad_value("procs", optarg);
            o.procs = (int)num;
            break;
        case 'T':
            if (demo_parse_seconds(optarg, 1e9, &o.task_timeout) != 0)
                return bad_value("timeout", optarg);
            break;
        case 'c':
            if (demo_parse_seconds(optarg, 1e9, &o.claim_idle) != 0)
                return bad_value("claim-idle", optarg);
            break;
        case 'B':
            if (demo_parse_seconds(optarg, 1e9, &o.broker_timeout) != 0)
                return bad_value("broker-timeout", optarg);
            break;
        case 'P':
            if (demo_parse_uint(optarg, 1, 1024, &num) != 0)
                return bad_value("prefetch", optarg);
            o.prefetch = (int)num;
            break;
        case 'n': o.name = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("cfworker (cfutures %s)\n", cf_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!lib || optind != argc) {
        if (!lib)
            fprintf(stderr, "cfworker: --tasks is required\n");
        else
            fprintf(stderr, "cfworker: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* A SIGTERM while the task library loads or the worker starts drains
     * it (nothing taken), as later. */
    demo_hold_signals();
    if (!dlopen(lib, RTLD_NOW | RTLD_GLOBAL)) {
        fprintf(stderr, "cfworker: cannot load the task library: %s\n", dlerror());
        return 1;
    }
    snprintf(tasks_id, sizeof(tasks_id), "%s#%016llx", strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib,
             file_hash(lib));
    o.tasks_id = tasks_id;
    ev = ev_default_loop(0);
    if ((rc = cf_loop_new(ev, &loop)) != 0) {
        fprintf(stderr, "cfworker: %s\n", cf_strerror(rc));
        return 1;
    }
    if ((rc = cf_remote_worker_new(loop, &o, &worker)) != 0) {
        fprintf(stderr, "cfworker: %s: %s\n", cf_strerror(rc), cf_last_error());
        return 1;
    }
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_start(ev, &sterm);
    ev_signal_start(ev, &sint);
    ev_timer_init(&poll_done, on_poll, 0, 0.05);
    ev_timer_init(&broker_watch, on_broker_watch, 1, 1);
    ev_timer_start(ev, &broker_watch);
    fprintf(stderr, "cfworker: %s on %s, tasks %s\n", o.name ? o.name : "worker", o.queue, tasks_id);
    demo_release_signals(); /* one that came meanwhile is handled now */
    ev_run(ev, 0);
    ev_timer_stop(ev, &poll_done);
    ev_timer_stop(ev, &broker_watch);
    ev_signal_stop(ev, &sterm);
    ev_signal_stop(ev, &sint);
    unposted = cf_remote_worker_unposted(worker);
    {
        uint64_t done = 0;
        cf_remote_worker_stats(worker, &done, NULL);
        if (unposted)
            fprintf(stderr,
                    "cfworker: %s drained after %llu tasks without the broker: %zu results not posted "
                    "after %g s; their tasks stay pending there and run again on another worker\n",
                    o.name ? o.name : "worker", (unsigned long long)done, unposted, o.broker_timeout);
        else
            fprintf(stderr, "cfworker: %s drained after %llu tasks\n", o.name ? o.name : "worker",
                    (unsigned long long)done);
    }
    cf_remote_worker_free(worker);
    /* Let the loop settle what the pool handed back, then close it. */
    ev_run(ev, EVRUN_NOWAIT);
    cf_loop_close(loop);
    return unposted ? 3 : 0;
}
