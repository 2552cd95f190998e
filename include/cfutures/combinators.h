/*
 * cfutures/combinators.h - composing futures: wait, as-completed, all/any,
 * then, timeouts, timer and fd futures, task groups.
 *
 * Everything here runs on the loop thread and works with futures from any
 * executor (or promises, or other combinators), mixed freely.  Each
 * combinator holds a reference on its inputs for as long as it needs them,
 * and each returns its output future with one reference for the caller.
 *
 * Outputs of combinators cannot be resolved with cf_future_set_*()
 * (CF_EPERM); cancelling one cancels what it waits for, as documented per
 * function.  Blocking forms run the loop (like cf_future_wait()) and return
 * CF_EDEADLK when called inside a loop callback.
 *
 * Inputs are given as an array `fs` of `n` futures of one loop; NULL entries
 * or futures of different loops are CF_EINVAL.  Except for cf_wait(), n must
 * be at least 1: the inputs name the loop the output belongs to.  Every
 * CF_EINVAL and CF_ENOMEM sets cf_last_error() (see common.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_COMBINATORS_H
#define CFUTURES_COMBINATORS_H

#include "common.h"
#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ wait */

typedef enum cf_wait_mode {
    CF_FIRST_COMPLETED = 1, /* any input is done */
    CF_FIRST_EXCEPTION = 2, /* any input FAILED (cancelled does not count), or all are done */
    CF_ALL_COMPLETED = 3    /* every input is done */
} cf_wait_mode;

/*
 * Python's concurrent.futures.wait(): run the loop until `mode` is satisfied
 * or `timeout` seconds pass (< 0: no limit).  A timeout is not a failure: the
 * call returns 0 either way and reports which inputs are done: done[i] is set
 * to 1 or 0 for every position (optional), *ndone (optional) counts the done
 * positions.  Returns immediately when the condition already holds.
 * n may be 0 (returns 0 at once).  Returns 0, CF_EINVAL (bad mode, NaN
 * timeout, NULL fs with n > 0, NULL entry), CF_ENOMEM or CF_EDEADLK.  Loop
 * thread, outside loop callbacks.
 */
CF_EXTERN int cf_wait(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, unsigned char *done,
                      size_t *ndone);

/*
 * Callback form of cf_wait(): *out finishes (never fails) when `mode` is
 * satisfied or the timeout passed; its i64 value is the number of done
 * positions at that moment.  Cancelling *out only stops the waiting.
 * Returns 0, CF_EINVAL (as cf_wait(), and n == 0) or CF_ENOMEM.
 */
CF_EXTERN int cf_wait_future(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, cf_future_t **out);

/* ------------------------------------------------------------------ all / any / settled */

/* Flags for cf_all() and cf_any(). */
enum {
    CF_CANCEL_REST = 1 << 0 /* cf_all: on the first failure; cf_any: on the first success */
};

/*
 * Gather: *out finishes when every input finished, with a list value (read it
 * with cf_future_result_list()) of the inputs in input order, so the value
 * for position i is the value of list[i].  The first input that fails or is
 * cancelled fails *out with its code and message ("input 3: <message>");
 * with CF_CANCEL_REST the other inputs are then cancelled.  Cancelling *out
 * cancels the inputs.  Returns 0, CF_EINVAL (n == 0, unknown flags) or
 * CF_ENOMEM.
 */
CF_EXTERN int cf_all(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out);

/*
 * Settled: *out finishes, never fails, once every input is done (in whatever
 * state), with the same list value as cf_all().
 */
CF_EXTERN int cf_settled(cf_future_t *const *fs, size_t n, cf_future_t **out);

/*
 * Any: *out finishes with the first input to finish successfully; its pointer
 * value is that input (read it with cf_future_result(); valid while *out
 * lives).  Fails only when every input failed or was cancelled, with a
 * message carrying every input's error; the code is the inputs' code when all
 * agree, else CF_EFAIL.  With CF_CANCEL_REST the other inputs are
 * cancelled after a success.  Cancelling *out cancels the inputs.
 * Returns 0, CF_EINVAL (n == 0, unknown flags) or CF_ENOMEM.
 */
CF_EXTERN int cf_any(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out);

/*
 * The list value of a cf_all() or cf_settled() future: *list points at *n
 * futures (owned by `f`, valid while it lives).  Returns cf_future_status(f),
 * or CF_EINVAL when `f` does not hold a list.
 */
CF_EXTERN int cf_future_result_list(const cf_future_t *f, cf_future_t *const **list, size_t *n);

/* ------------------------------------------------------------------ then / adopt / timeout */

/*
 * Continuation.  Runs on the loop thread when `src` is done; `dst` is a
 * pending promise the continuation resolves with cf_future_set_*(), now or
 * later (or hands to cf_future_adopt()).  Return 0, or a negative code to
 * fail `dst` with it (if it is still pending).
 */
typedef int (*cf_then_fn)(cf_future_t *src, cf_future_t *dst, void *data);

/* Flags for cf_then(). */
enum {
    CF_THEN_ALWAYS = 1 << 0 /* run fn whatever the outcome of src (default: only on success) */
};

/*
 * Chain: *out is `dst` of the continuation.  Without CF_THEN_ALWAYS, a
 * failed src fails *out with the same code and message and a cancelled src
 * cancels it, without calling fn.  Cancelling *out before fn ran cancels src
 * (and so, through chains, everything upstream); a cancelled src cancels
 * *out (and so everything downstream).  `destroy` is called with `data` once
 * fn ran or will not run.
 */
CF_EXTERN int cf_then(cf_future_t *src, cf_then_fn fn, void *data, cf_free_fn destroy, int flags, cf_future_t **out);

/*
 * Make the pending promise `dst` complete as `src` does (value, error or
 * cancellation); afterwards `dst` cannot be resolved by hand, and cancelling
 * it cancels src.  A pointer value stays owned by src, which `dst` keeps
 * alive.  Returns 0, CF_EINVAL, CF_EALREADY (dst done), CF_EPERM (dst is not
 * a plain promise).
 */
CF_EXTERN int cf_future_adopt(cf_future_t *dst, cf_future_t *src);

/*
 * Deadline: *out completes as `src` does, unless `seconds` pass first: then
 * *out fails with CF_ETIMEDOUT and cancellation of src is requested.
 * Cancelling *out cancels src.
 */
CF_EXTERN int cf_timeout(cf_future_t *src, double seconds, cf_future_t **out);

/* ------------------------------------------------------------------ timer and I/O futures */

/*
 * A future that finishes (i64 value 0) after `seconds`, on an ev_timer.
 * While pending it keeps ev_run() alive, like any active timer.  Cancelling
 * it stops the timer.  Returns 0, CF_EINVAL (negative or NaN seconds) or
 * CF_ENOMEM.
 */
CF_EXTERN int cf_sleep(cf_loop_t *loop, double seconds, cf_future_t **out);

/*
 * A future that finishes when `fd` is ready for `events` (EV_READ and/or
 * EV_WRITE), on an ev_io; its i64 value is the events that fired.  One-shot.
 * While pending it keeps ev_run() alive, like any active I/O watcher: a
 * descriptor that never becomes ready keeps ev_run(loop, 0) from returning
 * until the future is cancelled.  Cancelling it stops the watcher.  The
 * descriptor stays the caller's: close it only after the future is done.
 * Returns 0, CF_EINVAL (negative fd, events not EV_READ/EV_WRITE) or
 * CF_ENOMEM.
 */
CF_EXTERN int cf_fd_ready(cf_loop_t *loop, int fd, int events, cf_future_t **out);

/* ------------------------------------------------------------------ as completed */

typedef struct cf_as_completed cf_as_completed_t;

/*
 * Python's as_completed(): iterate over the inputs as they complete -
 * those already done first (in input order), then in completion order; each
 * future once even if passed several times (its position is then the first
 * one).  `timeout` (seconds, < 0: none) counts from this call.  n may be 0
 * (the iteration is empty).  Returns 0, CF_EINVAL or CF_ENOMEM.
 */
CF_EXTERN int cf_as_completed_new(cf_future_t *const *fs, size_t n, double timeout, cf_as_completed_t **out);

/*
 * Next completed future, running the loop as needed.  *f is borrowed: valid
 * while the iterator lives.  Returns 0, CF_EOF when every future was
 * returned, CF_ETIMEDOUT once the timeout passed (the iteration has then
 * failed: later calls return it again), CF_EDEADLK inside a loop callback or
 * when nothing could complete the remaining futures.
 */
CF_EXTERN int cf_as_completed_next(cf_as_completed_t *it, cf_future_t **f);

/*
 * cf_as_completed_next() that also reports where the future was in the
 * caller's array: *index (optional) is its position in `fs` (the first one
 * for a future passed several times), so per-input data kept in a parallel
 * array is found without a search.  Same return values.
 */
CF_EXTERN int cf_as_completed_next_index(cf_as_completed_t *it, cf_future_t **f, size_t *index);

/* Free the iterator (pending inputs are left alone). */
CF_EXTERN void cf_as_completed_free(cf_as_completed_t *it);

/* Callback for cf_as_completed_each(). Loop thread. */
typedef void (*cf_each_cb)(cf_future_t *f, int status, void *data);

/*
 * Callback form: cb runs for each future in as-completed order (the first
 * ones on the next loop iteration, never inline).  *out finishes (i64 value:
 * the number of futures) after the last, or fails with CF_ETIMEDOUT when the
 * timeout passes first (cb is not called after that).  Cancelling *out stops
 * the iteration.  `destroy` is called with `data` when the iteration ends.
 * n must be at least 1.  Returns 0, CF_EINVAL or CF_ENOMEM.
 */
CF_EXTERN int cf_as_completed_each(cf_future_t *const *fs, size_t n, double timeout, cf_each_cb cb, void *data,
                                   cf_free_fn destroy, cf_future_t **out);

/* Callback for cf_as_completed_each_index(): `index` is the future's position in fs. Loop thread. */
typedef void (*cf_each_index_cb)(cf_future_t *f, size_t index, int status, void *data);

/*
 * cf_as_completed_each() whose callback also gets the future's position in
 * `fs` (the first one for a future passed several times).  Same rules and
 * return values.
 */
CF_EXTERN int cf_as_completed_each_index(cf_future_t *const *fs, size_t n, double timeout, cf_each_index_cb cb,
                                         void *data, cf_free_fn destroy, cf_future_t **out);

/* ------------------------------------------------------------------ task groups */

typedef struct cf_group cf_group_t;

/*
 * Structured concurrency, like asyncio.TaskGroup: add futures, then wait for
 * all of them.  The first member that fails (cancelled members do not count)
 * cancels every other member; the group then reports that failure.
 * Returns 0, CF_EINVAL or CF_ENOMEM.
 */
CF_EXTERN int cf_group_new(cf_loop_t *loop, cf_group_t **out);

/*
 * Add a member (the group takes a reference).  Returns 0, CF_EINVAL (NULL,
 * or a future of another loop), CF_ESHUTDOWN once the group failed or was
 * closed by cf_group_future(), or CF_ENOMEM.
 */
CF_EXTERN int cf_group_add(cf_group_t *g, cf_future_t *f);

/*
 * Run the loop until every member is done.  Returns 0, the first failure's
 * code (see cf_group_error()), CF_ETIMEDOUT (members keep running), or
 * CF_EDEADLK.
 */
CF_EXTERN int cf_group_wait(cf_group_t *g, double timeout);

/*
 * Close the group (no more members) and get a future that finishes (i64
 * value: the number of members) once all are done, or fails with the first
 * failure.  Cancelling it cancels the members.  One per group.
 */
CF_EXTERN int cf_group_future(cf_group_t *g, cf_future_t **out);

/* Message of the first failure ("member 2: <message>"), or NULL.  Aborts on a NULL group. */
CF_EXTERN const char *cf_group_error(const cf_group_t *g);

/* Free the group (NULL: nothing); members still pending are cancelled. */
CF_EXTERN void cf_group_free(cf_group_t *g);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_COMBINATORS_H */
