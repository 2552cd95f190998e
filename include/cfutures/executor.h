/*
 * cfutures/executor.h - the interface every executor implements.
 *
 * Combinators and cf_map() take a cf_executor_t, so they work with the thread
 * pool and with any later executor (a process pool, a remote backend) without
 * change.  An executor view is borrowed from its pool (cf_thread_pool_executor())
 * and valid as long as the pool is.
 *
 * Threads: loop thread, like the pools themselves.
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

/* Stop the executor; flags as cf_thread_pool_shutdown(). */
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
