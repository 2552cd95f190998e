/*
 * cfutures/thread_pool.h - executor that runs tasks on a pool of threads.
 *
 * The pool belongs to one cf_loop_t.  cf_thread_pool_submit() queues a task
 * and returns its future; a worker thread runs the task function; the outcome
 * travels back to the loop through the loop's completion queue and ev_async,
 * and the future's done callbacks run on the loop thread.
 *
 * Threads: every cf_thread_pool_* function is called on the loop thread.  The
 * task function, initializer and finalizer run on a worker thread; there they
 * may use only the cf_task_* functions (and cf_loop_call()).  Worker threads
 * are named "<prefix>-<n>" and run with every signal blocked.
 *
 * Child processes started by a task.  On libev's default loop (EV_DEFAULT)
 * libev handles SIGCHLD and reaps every child that exits (waitpid(-1, ...)
 * on the loop thread), whichever thread started it.  A task's own
 * waitpid(pid) can lose that race: it fails with ECHILD and the exit status
 * went to libev (an ev_child watcher for that pid would have received it).
 * Tasks that start children and wait for them belong on a pool whose loop
 * was made with ev_loop_new(), which does not touch SIGCHLD; on the default
 * loop, leave the waiting to an ev_child watcher.
 *
 * Bounding shutdown.  cf_thread_pool_shutdown(CF_SHUTDOWN_WAIT) and
 * cf_thread_pool_free() wait for running tasks to return: a worker thread is
 * never killed.  To bound the wait, make long tasks cancellable: they poll
 * cf_task_cancelled() and return early, and CF_SHUTDOWN_CANCEL (which free
 * uses) sets that flag on every running task.  A task blocked in a system
 * call needs its own way out (a timeout on the call, or a descriptor the
 * application closes).  For a deadline, shut down with CF_SHUTDOWN_CANCEL,
 * then call cf_future_wait() with a timeout on the futures still running, and
 * call cf_thread_pool_free() only once they are done.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_THREAD_POOL_H
#define CFUTURES_THREAD_POOL_H

#include "common.h"
#include "executor.h"
#include "future.h"
#include "loop.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_thread_pool cf_thread_pool_t;

/* What cf_thread_pool_submit() does when max_queued tasks are already queued. */
typedef enum cf_queue_full {
    CF_QUEUE_FULL_FAIL = 0, /* submit returns CF_EAGAIN */
    CF_QUEUE_FULL_WAIT = 1  /* submit returns a PENDING future; the task is queued once room frees up */
} cf_queue_full;

typedef struct cf_thread_pool_opts {
    int max_workers;             /* number of threads; default cf_cpu_count(); < 1 or > 4096 is CF_EINVAL */
    const char *name_prefix;     /* thread name prefix, default "cf-worker" (names are cut to 15 bytes) */
    cf_worker_init_fn initializer; /* optional (see executor.h); a failure breaks the pool, like
                                      Python's BrokenThreadPool: queued tasks fail with CF_EBROKEN
                                      and a message naming the worker, later submits return
                                      CF_EBROKEN */
    cf_worker_fini_fn finalizer;   /* optional, on the worker thread as it exits */
    void *init_data;             /* passed to initializer and finalizer */
    size_t max_queued;           /* bound on queued (not yet running) tasks; 0 = unbounded */
    cf_queue_full on_full;       /* policy when the bound is reached */
    unsigned spin_us;            /* microseconds a worker that just finished polls for the next task
                                    before it sleeps (one worker at a time, so the others leave the
                                    CPUs to the loop); default 50, 0 = never.  An idle pool never
                                    spins: it costs no CPU time */
} cf_thread_pool_opts;

/* Fill `o` with the defaults. Any thread. */
CF_EXTERN void cf_thread_pool_opts_init(cf_thread_pool_opts *o);

/*
 * Create a pool on `loop` and start its workers (opts NULL = defaults).
 * Returns 0, CF_EINVAL (bad option), CF_ENOMEM, or the negated errno of a
 * failed pthread_create() (no thread is left behind).  Loop thread.
 */
CF_EXTERN int cf_thread_pool_new(cf_loop_t *loop, const cf_thread_pool_opts *opts, cf_thread_pool_t **out);

/*
 * Queue fn(task, arg).  On success *out receives a future (one reference, the
 * caller's) that completes on the loop thread; `arg_free`, if given, is called
 * with `arg` on the loop thread once the task is done (or cancelled).
 * Returns 0, CF_EINVAL (NULL pool, fn or out), CF_ESHUTDOWN after shutdown,
 * CF_EBROKEN when an initializer failed, CF_EAGAIN when the queue is full
 * under CF_QUEUE_FULL_FAIL, or CF_ENOMEM.  On error nothing is queued and
 * arg_free is not called.  Loop thread.
 */
CF_EXTERN int cf_thread_pool_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, cf_free_fn arg_free,
                                    cf_future_t **out);

/* The pool's executor interface (for combinators and cf_map()); valid as long as the pool. */
CF_EXTERN cf_executor_t *cf_thread_pool_executor(cf_thread_pool_t *pool);

/*
 * Stop accepting tasks (later submits return CF_ESHUTDOWN).  Flags (executor.h):
 * CF_SHUTDOWN_WAIT and CF_SHUTDOWN_CANCEL; CF_SHUTDOWN_KILL is CF_EINVAL.  With
 * CF_SHUTDOWN_CANCEL, queued tasks complete as CANCELLED and running tasks get
 * their cancellation flag.  With CF_SHUTDOWN_WAIT, run the loop until every
 * task the pool accepted is done and its callbacks ran, then join the workers;
 * inside a loop callback, when there is still something to wait for, this
 * returns CF_EDEADLK (after doing the rest) instead of waiting.
 * Without it, workers exit once the queue is empty.  Calling it again is
 * harmless.  Returns 0, CF_EINVAL or CF_EDEADLK.  Loop thread.
 */
CF_EXTERN int cf_thread_pool_shutdown(cf_thread_pool_t *pool, int flags);

/*
 * Shut down with CF_SHUTDOWN_CANCEL, wait for running tasks to return (the
 * calling thread blocks on the joins), and release the pool.  Futures already
 * handed out stay valid and still complete, exactly once, on the loop.
 * Loop thread.
 */
CF_EXTERN void cf_thread_pool_free(cf_thread_pool_t *pool);

/* Snapshot of the pool's counters. Returns 0 or CF_EINVAL. Loop thread. */
CF_EXTERN int cf_thread_pool_stats(cf_thread_pool_t *pool, cf_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_THREAD_POOL_H */
