/*
 * cfutures/executor.h - the interface every executor implements.
 *
 * Combinators and cf_map() take a cf_executor_t, so they work with the thread
 * pool and with any later executor (a process pool, a remote backend) without
 * change.  An executor view is borrowed from its pool (cf_thread_pool_executor())
 * and valid as long as the pool is.
 *
 * The types every pool shares - worker initializers, shutdown flags,
 * counters - are declared here too.
 *
 * Threads: loop thread, like the pools themselves.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_EXECUTOR_H
#define CFUTURES_EXECUTOR_H

#include "common.h"
#include "future.h"
#include "loop.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_executor cf_executor_t;

/*
 * Per-worker initializer, run on each worker (thread or process) before it
 * takes tasks.  Return 0 and optionally set *worker_data (handed to tasks
 * through cf_task_worker_data() and to the finalizer), or a negative code;
 * what a failure does is the pool's to say (cf_thread_pool_opts,
 * cf_process_pool_opts).  `pool_data` is the pool's init_data.
 */
typedef int (*cf_worker_init_fn)(void *pool_data, int worker_index, void **worker_data);
/* Per-worker finalizer, run on the worker as it exits normally (only if init succeeded). */
typedef void (*cf_worker_fini_fn)(void *pool_data, int worker_index, void *worker_data);

/* Flags for cf_executor_shutdown() and the pools' shutdown functions. */
enum {
    CF_SHUTDOWN_WAIT = 1 << 0,   /* run the loop until every task of the executor is done */
    CF_SHUTDOWN_CANCEL = 1 << 1, /* cancel queued tasks; request cancellation of running ones */
    CF_SHUTDOWN_KILL = 1 << 2    /* also stop running tasks at once (executors that can: the process
                                    pool kills their workers, the tasks fail CF_ECANCELED); CF_EINVAL
                                    for the others */
};

/* An executor's counters (cf_thread_pool_stats(), cf_process_pool_stats()). */
typedef struct cf_pool_stats {
    uint64_t submitted;      /* tasks accepted */
    uint64_t queued;         /* tasks waiting now (including those waiting for queue room) */
    uint64_t running;        /* tasks running now */
    uint64_t completed;      /* tasks finished with a value */
    uint64_t failed;         /* tasks that failed */
    uint64_t cancelled;      /* tasks cancelled */
    uint64_t queue_ns_total; /* total time tasks spent queued before a worker took them */
    uint64_t queue_ns_max;   /* longest such time */
    int workers;             /* workers alive */
} cf_pool_stats;

/*
 * Submit fn(task, arg) with an opaque pointer argument (shared memory: only
 * executors whose workers share the address space accept it).  `arg_free` is
 * called with `arg` on the loop thread when the task is done.
 * Returns 0, CF_EINVAL, CF_ESHUTDOWN, CF_EBROKEN, CF_EAGAIN, CF_ENOMEM, or
 * CF_ENOTSUP for executors whose workers cannot see the caller's memory.
 */
CF_EXTERN int cf_executor_submit(cf_executor_t *ex, cf_task_fn fn, void *arg, cf_free_fn arg_free,
                                 cf_future_t **out);

/*
 * Submit fn(task, copy) with a copy of `len` bytes as the argument; every
 * executor accepts this form.  In the task, cf_task_arg(task, &len) gives the
 * bytes (8-byte aligned).  Returns as cf_executor_submit(), minus CF_ENOTSUP.
 */
CF_EXTERN int cf_executor_submit_bytes(cf_executor_t *ex, cf_task_fn fn, const void *data, size_t len,
                                       cf_future_t **out);

/* Stop the executor (CF_SHUTDOWN_* flags, as its own shutdown function takes them). */
CF_EXTERN int cf_executor_shutdown(cf_executor_t *ex, int flags);

/* Number of workers (used for automatic chunk sizes and windows). */
CF_EXTERN int cf_executor_workers(const cf_executor_t *ex);

/* The loop the executor belongs to. */
CF_EXTERN cf_loop_t *cf_executor_loop(const cf_executor_t *ex);

/* A short name of the executor's kind ("thread pool"). */
CF_EXTERN const char *cf_executor_kind(const cf_executor_t *ex);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_EXECUTOR_H */
