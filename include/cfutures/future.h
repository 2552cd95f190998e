/*
 * cfutures/future.h - futures owned by a loop.
 *
 * A future is the eventual outcome of a computation: a value, an error (code
 * and message) or a cancellation.  Futures belong to one cf_loop_t and are
 * used only on its loop thread; worker threads see a task through the
 * cf_task_t view (see thread_pool.h) and never touch the future itself.
 *
 * States:
 *
 *     PENDING --> RUNNING --> FINISHED | FAILED | CANCELLED
 *        \_______________________________________^
 *
 * PENDING: created, or queued in an executor.  RUNNING: a worker took the
 * task.  FINISHED, FAILED and CANCELLED are final ("done").  cf_future_cancel()
 * succeeds at once only while PENDING; on a RUNNING task it requests
 * cancellation, which the task may honour.
 *
 * Done callbacks run on the loop thread, in registration order, exactly once
 * each, never inline from the call that registers them or that completes the
 * future: a callback added to a future that is already done runs on a later
 * loop iteration.  Each registered callback holds a reference on the future
 * until it has run.
 *
 * Memory: futures are reference counted (loop thread only).  The creator owns
 * one reference; cf_future_unref() drops it.  A value stored with a destructor
 * is destroyed when the future is freed.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_FUTURE_H
#define CFUTURES_FUTURE_H

#include "common.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_future cf_future_t;

typedef enum cf_future_state {
    CF_FUTURE_PENDING = 0,
    CF_FUTURE_RUNNING = 1,
    CF_FUTURE_FINISHED = 2,
    CF_FUTURE_FAILED = 3,
    CF_FUTURE_CANCELLED = 4
} cf_future_state;

/*
 * Done callback.  `status` is 0 when the future finished with a value, the
 * error code when it failed, CF_ECANCELED when it was cancelled.  Runs on the
 * loop thread; it may call any cfutures function.  Blocking waits do not
 * block there: cf_future_wait() on a future that is already done returns 0,
 * on any other it returns CF_EDEADLK at once.
 */
typedef void (*cf_future_cb)(cf_future_t *f, int status, void *data);

/*
 * Create a pending future that loop-side code resolves itself (the promise
 * side): cf_future_set_*(), cf_future_set_error(), cf_future_cancel().
 * An unresolved promise does not keep ev_run() alive.
 * Returns 0, CF_EINVAL or CF_ENOMEM.  Loop thread.
 */
CF_EXTERN int cf_future_new(cf_loop_t *loop, cf_future_t **out);

/* Take another reference. Loop thread. */
CF_EXTERN void cf_future_ref(cf_future_t *f);

/*
 * Drop a reference; the last one frees the future (and destroys its value).
 * Returns 0, or CF_EINVAL when the future was already released (detected while
 * its memory is still held by the loop's cache, which debug builds keep
 * poisoned; in general an extra unref is a use after free).  Loop thread.
 */
CF_EXTERN int cf_future_unref(cf_future_t *f);

/* Current state. Loop thread. */
CF_EXTERN cf_future_state cf_future_get_state(const cf_future_t *f);

/* Name of a state ("pending", "running", "finished", "failed", "cancelled"). */
CF_EXTERN const char *cf_future_state_name(cf_future_state s);

/* The loop the future belongs to. */
CF_EXTERN cf_loop_t *cf_future_loop(const cf_future_t *f);

/*
 * Outcome of the future: 0 if it finished with a value, its error code if it
 * failed, CF_ECANCELED if cancelled, CF_EPENDING if not done.  Loop thread.
 */
CF_EXTERN int cf_future_status(const cf_future_t *f);

/*
 * The value of a finished future, as stored (pointer, signed integer or
 * double; reading it as another kind gives the raw bits reinterpreted).
 * Return cf_future_status(): on anything but 0, *out is left unchanged.
 * The pointer stays owned by the future.  Loop thread.
 */
CF_EXTERN int cf_future_result(const cf_future_t *f, void **out);
CF_EXTERN int cf_future_result_i64(const cf_future_t *f, int64_t *out);
CF_EXTERN int cf_future_result_f64(const cf_future_t *f, double *out);

/*
 * A bytes value (cf_task_set_bytes(), cf_future_set_bytes()): *data points
 * into the future, valid while it lives.  Returns cf_future_status().
 */
CF_EXTERN int cf_future_result_bytes(const cf_future_t *f, const void **data, size_t *len);

/*
 * Take the pointer value out of a finished future: the caller becomes its
 * owner and the future forgets its destructor.  A value the future shares
 * with the future it mirrors (cf_future_adopt(), cf_timeout()) is taken from
 * that future too.  Returns cf_future_status(), or CF_EALREADY if the value
 * was already taken.  Loop thread.
 */
CF_EXTERN int cf_future_take(cf_future_t *f, void **out);

/*
 * Error message of a failed or cancelled future ("Don't do this", or the
 * cf_strerror() text when the failure carried no message); NULL otherwise.
 * Owned by the future.  Loop thread.
 */
CF_EXTERN const char *cf_future_error(const cf_future_t *f);

/*
 * Promise side: complete a future made by cf_future_new().  The future's
 * state changes at once; done callbacks run on a later loop iteration.
 * Return 0, CF_EALREADY if the future is already done (the value is then
 * NOT taken: the caller still owns it), CF_EPERM on an executor's future,
 * CF_EINVAL for a non-negative error code.  Loop thread.
 */
CF_EXTERN int cf_future_set_result(cf_future_t *f, void *value, cf_free_fn value_free);
CF_EXTERN int cf_future_set_i64(cf_future_t *f, int64_t value);
CF_EXTERN int cf_future_set_f64(cf_future_t *f, double value);
/* Stores a copy of the bytes; CF_ENOMEM leaves the future pending. */
CF_EXTERN int cf_future_set_bytes(cf_future_t *f, const void *data, size_t len);
CF_EXTERN int cf_future_set_error(cf_future_t *f, int err, const char *fmt, ...) CF_PRINTF(3, 4);

/*
 * Cancel.  PENDING (a promise, or a task still queued): the future becomes
 * CANCELLED at once and 0 is returned.  RUNNING: the task's cancellation flag
 * is set (see cf_task_cancelled()) and CF_EBUSY is returned; the future ends
 * CANCELLED if the task honours it, otherwise with the task's outcome.
 * Done: CF_EALREADY.  Loop thread.
 */
CF_EXTERN int cf_future_cancel(cf_future_t *f);

/*
 * Register a done callback; `destroy`, if given, is called with `data` right
 * after the callback ran.  On error nothing is kept and destroy is not called.
 * Returns 0, CF_EINVAL (NULL cb) or CF_ENOMEM.  Loop thread.
 */
CF_EXTERN int cf_future_on_done(cf_future_t *f, cf_future_cb cb, void *data, cf_free_fn destroy);

/*
 * Run the loop until `f` is done or `timeout` seconds pass (timeout < 0:
 * no limit).  For script-style programs: the loop keeps serving every other
 * watcher meanwhile.  A timeout ends the wait, not the task.
 *
 * A future that is already done returns 0 at once, without running the loop,
 * whatever the timeout and wherever the call is made - inside a loop
 * callback too.  Otherwise, called from inside ev_run() (any loop callback:
 * a done callback, a watcher, a cf_loop_call() function) it returns
 * CF_EDEADLK at once instead of running the loop recursively.
 *
 * Returns 0 once done (then see cf_future_status()), CF_ETIMEDOUT,
 * CF_EDEADLK (inside ev_run() on a pending future, or nothing left on the
 * loop could ever complete the future) or CF_EINVAL (f is NULL).  Loop
 * thread.
 */
CF_EXTERN int cf_future_wait(cf_future_t *f, double timeout);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_FUTURE_H */
