/*
 * cfutures/process_pool.h - executor that runs tasks in worker processes.
 *
 * Workers are forked from a small single-threaded fork server that the pool
 * starts when it is created, so a replacement worker is never forked from a
 * process that already runs threads.  Create pools early, before the
 * application starts threads of its own: the fork server itself is a fork of
 * the caller, and only what the calling thread had is in it.  (With glibc,
 * malloc and stdio are safe in it even when other threads existed; locks that
 * other threads of yours held at that moment stay locked in the workers.)
 *
 * Tasks name a function (a pointer: valid in the workers because every worker
 * is a fork of the same program) and carry a byte payload; results come back
 * as the task's value: an i64, an f64 or bytes (cf_task_set_bytes()).  A
 * pointer value with a destructor cannot cross processes and fails the task
 * with CF_ENOTSUP.
 *
 * Faults.  A worker that dies (signal, exit, OOM kill, killed from outside)
 * fails only the task it was running - with CF_EWORKER and an error naming
 * the worker, its pid and the signal or exit status - and is replaced; tasks
 * sent to it but not yet started are queued again.  A per-task timeout
 * starts when a worker takes the task; on expiry the worker (by pid, in case
 * the task left its process group) and its process group get SIGTERM, then
 * SIGKILL after a grace period, the future fails with CF_ETIMEDOUT and the
 * worker is replaced (a worker whose task returned just before the timeout
 * was decided is kept).  Cancelling a running task stops its worker the same
 * way; a worker is only ever stopped while it runs the task concerned.  A worker that ends in any way before it is ready (its initializer
 * failed, crashed or exited) counts as an initializer failure:
 * max_init_failures of them in a row break the pool (CF_EBROKEN, naming the
 * last).  A worker that cannot be started for want of resources
 * (descriptors, memory, processes) is retried with backoff, and is no
 * initializer failure; while no worker can start, queued tasks fail after a
 * few attempts with that error (the pool stays usable).  A fork server that
 * dies (killed from outside, OOM killer) is replaced with its workers: the
 * tasks its workers ran fail with CF_EWORKER, the others run; it breaks the
 * pool only after dying 3 times in a row with no worker getting ready.  A
 * replacement fork server is forked from the process as it is then (see
 * above about threads).  When the application dies, the fork server kills
 * its workers and everything their tasks left behind, even in another
 * process group or session (it is a child subreaper).  CF_CRASH_BREAK gives
 * Python's behaviour: the first crash breaks the whole pool.
 *
 * Descriptors.  Workers do not inherit the caller's descriptors: the fork
 * server closes everything but stdin, stdout and stderr when it starts, and
 * a worker has only those and its channel to the pool.  A task that needs a
 * file or socket opens it itself.
 *
 * Threads: loop thread only; the pool runs no threads.  Works on any loop
 * (it does not use ev_child).  The fork server dies with the thread that
 * created the pool (PR_SET_PDEATHSIG follows the creating thread): create it
 * on a thread that outlives it, such as the loop thread.
 *
 * Pipelining: to hide the round trip, tasks are sent ahead to a worker while
 * it runs one - up to `pipeline` of them, and only about 2 ms of work by the
 * task time the pool measures (a moving average), so a stream of tiny tasks
 * flows without a round trip per task while long tasks are not queued behind
 * each other.  A task sent ahead still waits behind the one running: a short
 * task arriving among long ones can wait for a long one.  pipeline = 1 never
 * sends ahead.  Cancelling a task sent ahead that its worker has not started
 * returns 0, and the task never runs (the worker skips it and goes on); if
 * the worker has just started it, cancel returns CF_EBUSY and stops the
 * worker as for any running task.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_PROCESS_POOL_H
#define CFUTURES_PROCESS_POOL_H

#include <sys/types.h>

#include "common.h"
#include "executor.h"
#include "future.h"
#include "loop.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_process_pool cf_process_pool_t;

typedef enum cf_crash_policy {
    CF_CRASH_REPLACE = 0, /* fail the task the worker held, replace the worker (default) */
    CF_CRASH_BREAK = 1    /* the first crash breaks the pool: every pending task fails */
} cf_crash_policy;

typedef struct cf_process_pool_opts {
    int max_workers;                /* default cf_cpu_count(); < 1 is CF_EINVAL */
    cf_worker_init_fn initializer;  /* runs in each worker process after it starts (executor.h); a
                                       failure restarts the worker, see max_init_failures */
    cf_worker_fini_fn finalizer;    /* runs in the worker before it exits normally */
    void *init_data;                /* as seen in the worker (a copy made by fork) */
    unsigned max_tasks_per_child;   /* replace a worker after this many tasks; 0 = never */
    size_t max_memory;              /* address-space limit per worker in bytes (RLIMIT_AS); 0 = none */
    double task_timeout;            /* default per-task timeout in seconds; <= 0 = none (default -1) */
    double kill_grace;              /* seconds between SIGTERM and SIGKILL; default 1.0 */
    unsigned pipeline;              /* tasks in flight per worker at most, default 255, the most (fewer
                                       while the measured task time is long, see above); the ones beyond the
                                       first wait behind the running task; 1 never sends ahead */
    cf_crash_policy on_crash;       /* default CF_CRASH_REPLACE */
    unsigned max_init_failures;     /* initializer failures in a row that break the pool; default 3 */
    unsigned max_delivery_deaths;   /* a task whose delivery this many workers in turn did not survive
                                       (they died after it was sent, before they took it: e.g. its
                                       argument is more than max_memory allows) fails with
                                       CF_EWORKER; 1 .. 255, default 3 */
} cf_process_pool_opts;

/* Fill `o` with the defaults. Any thread. */
CF_EXTERN void cf_process_pool_opts_init(cf_process_pool_opts *o);

/*
 * Create a pool on `loop`: start the fork server and the workers.
 * Returns 0, CF_EINVAL, CF_ENOMEM or a negated errno (socketpair, fork).
 * Loop thread.
 */
CF_EXTERN int cf_process_pool_new(cf_loop_t *loop, const cf_process_pool_opts *opts, cf_process_pool_t **out);

/*
 * Queue fn(task, payload) with a copy of `len` bytes as the payload (the task
 * reads it with cf_task_arg()).  `timeout` seconds bound the task once a
 * worker takes it: < 0 uses the pool's task_timeout, 0 means no timeout for
 * this task (whatever the pool's default), > 0 is the bound.  Returns 0,
 * CF_EINVAL, CF_E2BIG (an argument over the channel's frame limit of 16 GiB;
 * cf_last_error() gives the sizes), CF_ESHUTDOWN, CF_EBROKEN or CF_ENOMEM.
 * Loop thread.
 */
CF_EXTERN int cf_process_pool_submit(cf_process_pool_t *pool, cf_task_fn fn, const void *data, size_t len,
                                     double timeout, cf_future_t **out);

/* The pool's executor interface (byte submissions; opaque pointers are CF_ENOTSUP). */
CF_EXTERN cf_executor_t *cf_process_pool_executor(cf_process_pool_t *pool);

/*
 * Stop accepting tasks.  Flags (executor.h): CF_SHUTDOWN_CANCEL cancels
 * queued tasks and tasks sent ahead to a worker that has not started them;
 * CF_SHUTDOWN_KILL also kills running ones; CF_SHUTDOWN_WAIT runs the loop
 * until every task is done and the workers have exited (CF_EDEADLK inside a
 * loop callback).  Every future completes exactly once whichever path is
 * taken.  Returns 0, CF_EINVAL or CF_EDEADLK.  Loop thread.
 *
 * Bounds.  CF_SHUTDOWN_WAIT alone waits as long as the running tasks take
 * (they may have no timeout).  To bound it: give tasks timeouts, or call
 * shutdown(0), wait for the futures with a deadline (cf_future_wait(f, s),
 * combinators.h), then shutdown(CF_SHUTDOWN_KILL | CF_SHUTDOWN_WAIT), which
 * returns within about kill_grace: SIGTERM, then SIGKILL, to every worker.
 * cf_process_pool_free() kills in the same way and does not wait for tasks.
 */
CF_EXTERN int cf_process_pool_shutdown(cf_process_pool_t *pool, int flags);

/*
 * Shut down with CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL, stop the workers and
 * the fork server, reap them, close every descriptor, and free the pool.
 * Futures already handed out stay valid and complete exactly once.
 * Loop thread.
 */
CF_EXTERN void cf_process_pool_free(cf_process_pool_t *pool);

/* Pool counters (as for the thread pool). Returns 0 or CF_EINVAL. */
CF_EXTERN int cf_process_pool_stats(cf_process_pool_t *pool, cf_pool_stats *out);

typedef struct cf_worker_info {
    pid_t pid;          /* current process, 0 while (re)starting */
    uint64_t tasks_done; /* tasks this worker slot completed, across restarts */
    uint64_t restarts;   /* times this slot's process was replaced */
    uint64_t start_failures; /* times a process for this slot could not be started for want of
                                resources (descriptors, memory, processes): retried with backoff */
} cf_worker_info;

/* Per-worker figures for worker `index` (0 .. max_workers-1). Returns 0 or CF_EINVAL. */
CF_EXTERN int cf_process_pool_worker_info(cf_process_pool_t *pool, int index, cf_worker_info *out);

/* Pid of the pool's fork server (for diagnostics). */
CF_EXTERN pid_t cf_process_pool_server_pid(const cf_process_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_PROCESS_POOL_H */
