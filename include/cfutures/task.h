/*
 * cfutures/task.h - the worker side of a task, common to every executor.
 *
 * A task function runs on a worker (a pool thread, or a worker process) with
 * a cf_task_t that is valid only for the duration of the call.  There it may
 * use only the cf_task_* functions below (and cf_loop_call()); it reports its
 * outcome through them and its return value.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_TASK_H
#define CFUTURES_TASK_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_task cf_task_t;

/*
 * A task.  Runs on a worker.  Return 0 for success (after an optional
 * cf_task_set_*()), a negative error code for failure (cf_task_fail() sets a
 * message and returns the code), or CF_ECANCELED to end cancelled.  A positive
 * return is a failure with CF_EFAIL.  `arg` is the argument given at submit
 * (for byte submissions: the task's copy of the bytes, see cf_task_arg()).
 */
typedef int (*cf_task_fn)(cf_task_t *task, void *arg);

/* Store the task's value; the last call wins (an earlier value is destroyed). */
CF_EXTERN void cf_task_set_result(cf_task_t *task, void *value, cf_free_fn value_free);
CF_EXTERN void cf_task_set_i64(cf_task_t *task, int64_t value);
CF_EXTERN void cf_task_set_f64(cf_task_t *task, double value);

/* Store a copy of `len` bytes as the value (read with cf_future_result_bytes()).
 * Returns 0 or CF_ENOMEM (the earlier value is then kept). */
CF_EXTERN int cf_task_set_bytes(cf_task_t *task, const void *data, size_t len);

/*
 * Record a failure message (printf format, NULL for none) and return `err`
 * unchanged, for `return cf_task_fail(t, CF_EFAIL, "bad input %d", x);`.
 * A non-negative err becomes CF_EFAIL.
 */
CF_EXTERN int cf_task_fail(cf_task_t *task, int err, const char *fmt, ...) CF_PRINTF(3, 4);

/* 1 once cancellation of this running task was requested, else 0. */
CF_EXTERN int cf_task_cancelled(const cf_task_t *task);

/* The argument and its length in bytes (0 for pointer submissions). */
CF_EXTERN void *cf_task_arg(const cf_task_t *task, size_t *len);

/* The per-worker data the executor's initializer produced (NULL without one). */
CF_EXTERN void *cf_task_worker_data(const cf_task_t *task);

/* Index of the worker running the task, 0 .. workers-1. */
CF_EXTERN int cf_task_worker_index(const cf_task_t *task);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_TASK_H */
