/*
 * cfutures/remote.h - an executor whose workers are other programs, on other
 * machines, reached through a Redis broker; and the worker side.
 *
 * Built, and this header installed, only when hiredis was found at
 * configure time (libcfutures then links hiredis; see README "Scale out").
 *
 * Tasks travel by name: register every function you submit (registry.h) in
 * the client and in the workers' task library.  cf_executor_submit_bytes(),
 * cf_map_*(), the combinators and the script layer (cf_submit_i64_i64(),
 * cf_map_i64_f64() ...) work on the remote executor unchanged; a submit of an
 * unregistered function fails at once with CF_EINVAL and a cf_last_error()
 * naming the problem.  Opaque pointer arguments are CF_ENOTSUP (as for the
 * process pool); values come back as i64, f64 or bytes.
 *
 * Broker.  Tasks are entries of a Redis stream (the queue) read by a consumer
 * group of workers; each client reads its results from a stream of its own.
 * Delivery is at least once: a task whose worker vanished is claimed by
 * another worker and runs again, so tasks must be idempotent; each future
 * completes exactly once (duplicates are dropped by task id).  See
 * docs/DESIGN.md, "Remote executor", for the keys and the protocol.
 *
 * Threads: loop thread only.  The client runs no thread: its two Redis
 * connections are watched by libev on the application's loop.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_REMOTE_H
#define CFUTURES_REMOTE_H

#include "common.h"
#include "executor.h"
#include "future.h"
#include "loop.h"
#include "registry.h"
#include "thread_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_remote_pool cf_remote_pool_t;

typedef struct cf_remote_opts {
    const char *url;          /* redis://[user:password@]host[:port][/db]; default redis://127.0.0.1:6379 */
    const char *queue;        /* stream the workers read; default "cfutures" */
    unsigned max_inflight;    /* tasks on the broker at once; more wait locally; default 1024 */
    double task_timeout;      /* seconds a worker lets a task run (< 0: none, the default) */
    unsigned max_deliveries;  /* deliveries of a task (its worker died) before it fails; default 3 */
    double broker_timeout;    /* seconds without the broker before outstanding tasks fail with
                                 -ENOTCONN; default 30 */
    size_t max_payload;       /* largest task payload in bytes (beyond: CF_E2BIG at submit);
                                 default 64 MiB, at most 512 MiB */
    int workers;              /* what cf_executor_workers() reports (for chunk sizes); default 8 */
    double claim_idle;        /* seconds a delivered task may go without a heartbeat from its worker
                                 before another worker claims it (it runs again: at least once);
                                 sent with every task; 0 (the default): each worker's own
                                 claim_idle.  Workers heartbeat every third of it. */
} cf_remote_opts;

/* Fill `o` with the defaults.  Any thread. */
CF_EXTERN void cf_remote_opts_init(cf_remote_opts *o);

/*
 * Create a client on `loop` and start connecting (returns before the
 * connection is up: tasks submitted meanwhile wait locally).  Returns 0,
 * CF_EINVAL (a bad option or URL; cf_last_error() says which) or CF_ENOMEM.
 * Loop thread.
 */
CF_EXTERN int cf_remote_pool_new(cf_loop_t *loop, const cf_remote_opts *opts, cf_remote_pool_t **out);

/* The executor view, valid as long as the pool. */
CF_EXTERN cf_executor_t *cf_remote_pool_executor(cf_remote_pool_t *pool);

/*
 * Stop accepting tasks.  CF_SHUTDOWN_CANCEL cancels the tasks not yet taken
 * by a worker and asks the workers to stop running ones; CF_SHUTDOWN_WAIT
 * runs the loop until every task is done (CF_EDEADLK inside a loop
 * callback).  Returns 0, CF_EINVAL or CF_EDEADLK.  Loop thread.
 */
CF_EXTERN int cf_remote_pool_shutdown(cf_remote_pool_t *pool, int flags);

/*
 * Cancel what is outstanding (futures complete CANCELLED), delete the
 * client's keys on the broker (its result stream; a short synchronous
 * connection), close the connections and free the pool.  NULL is a no-op.
 * Loop thread.
 */
CF_EXTERN void cf_remote_pool_free(cf_remote_pool_t *pool);

/* Counters: queued = waiting locally, running = on the broker.  Returns 0 or CF_EINVAL. */
CF_EXTERN int cf_remote_pool_stats(cf_remote_pool_t *pool, cf_pool_stats *out);

/* 1 while both connections to the broker are up, else 0. */
CF_EXTERN int cf_remote_pool_connected(const cf_remote_pool_t *pool);

/* While not connected: why ("connecting", a connection error, or the
 * broker's refusal: a wrong password, a database it does not have, a
 * queue key that is not a stream); NULL while connected.  Valid until the
 * next loop iteration.  Loop thread. */
CF_EXTERN const char *cf_remote_pool_broker_error(const cf_remote_pool_t *pool);

/* ------------------------------------------------------------------ worker */

typedef struct cf_remote_worker cf_remote_worker_t;

typedef struct cf_remote_worker_opts {
    const char *url;        /* as for the client */
    const char *queue;      /* as for the client */
    const char *name;       /* consumer name; default "<host>:<pid>" */
    const char *tasks_id;   /* identity of the task code (cfworker: the library's path and hash),
                               reported with every failure; default "" */
    int procs;              /* worker processes; default cf_cpu_count() */
    double task_timeout;    /* cap on every task, seconds (< 0: none, the default) */
    double claim_idle;      /* seconds after which a task whose worker stopped heartbeating is
                               claimed by another worker, for tasks whose client set none
                               (cf_remote_opts.claim_idle); default 30 (heartbeats every third) */
    int prefetch;           /* tasks held per process: the ones beyond the first wait in this
                               worker, hiding the broker's round trip; default 4; 1 = none.
                               While tasks take 2 ms or more, 2 at most (one waiting behind
                               the running one), so a map's last chunks are not held here
                               while another worker is idle */
    double broker_timeout;  /* a drain with results it cannot post (the broker is away) waits this
                               many seconds for the broker, then gives up: done, those tasks left
                               pending on the broker for another worker to run again
                               (cf_remote_worker_unposted()); default 30; < 0: wait for ever */
} cf_remote_worker_opts;

/* Fill `o` with the defaults.  Any thread. */
CF_EXTERN void cf_remote_worker_opts_init(cf_remote_worker_opts *o);

/*
 * Create a worker on `loop`: a process pool of `procs` processes (forked
 * now: register the tasks, e.g. dlopen() the task library, before), and the
 * connections to the broker; tasks are taken while the loop runs.  Returns 0,
 * CF_EINVAL, CF_ENOMEM or the process pool's error.  Loop thread.
 */
CF_EXTERN int cf_remote_worker_new(cf_loop_t *loop, const cf_remote_worker_opts *opts, cf_remote_worker_t **out);

/* Take no new task; finish the running ones, post their results, then be done.  Loop thread. */
CF_EXTERN void cf_remote_worker_drain(cf_remote_worker_t *w);

/* 1 once a drain finished (nothing running, nothing left to post), else 0.
 * A drain that gave up on an absent broker (opts.broker_timeout) is done
 * too, with cf_remote_worker_unposted() > 0. */
CF_EXTERN int cf_remote_worker_done(const cf_remote_worker_t *w);

/* While not connected to the broker: why, as cf_remote_pool_broker_error()
 * (the worker retries with backoff meanwhile); NULL while connected. */
CF_EXTERN const char *cf_remote_worker_broker_error(const cf_remote_worker_t *w);

/* Results this worker could not post: nonzero only after a drain gave up on the broker. */
CF_EXTERN size_t cf_remote_worker_unposted(const cf_remote_worker_t *w);

/* Counters: tasks run to the end (any outcome) and tasks running now. */
CF_EXTERN int cf_remote_worker_stats(const cf_remote_worker_t *w, uint64_t *tasks_done, int *running);

/* Stop at once (running tasks are killed; the broker re-delivers them), free. NULL is a no-op. */
CF_EXTERN void cf_remote_worker_free(cf_remote_worker_t *w);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_REMOTE_H */
