/*
 * cfutures/script.h - script-style use of cfutures: a runtime in one call,
 * typed tasks, blocking accessors, as-completed by index, array maps.
 *
 * Programs shaped like Python's
 *
 *     with ProcessPoolExecutor(3) as ex:
 *         fs = [ex.submit(fib, n) for n in range(25, 38)]
 *         for f in as_completed(fs): print(f.result())
 *
 * want a pool, a function of a number, and the results.  This layer gives
 * them that on top of the callback-first API, with nothing hidden:
 *
 *   - cf_runtime_new() makes a runtime that owns an ev loop of its own, the
 *     cf_loop_t bound to it and a thread pool and/or a process pool;
 *     cf_runtime_free() frees all of them.  No global state, no threads
 *     besides the thread pool's workers.
 *   - cf_submit_i64_i64() and friends run a plain C function such as
 *     `int64_t fib(int64_t)` on any executor, threads or processes (the
 *     function pointer is valid in the forked workers; the argument travels
 *     as bytes).  The *_task forms give the function the cf_task_t so that it
 *     can fail with a message (cf_task_fail()), set a bytes value or poll for
 *     cancellation.
 *   - cf_future_i64() and friends wait for a future and return its value;
 *     cf_future_get_i64() and friends are the checked forms.
 *   - cf_completed_next() walks futures in completion order and hands back
 *     each one's position in the input array.
 *   - cf_map_i64_i64() and friends map a function over an array of numbers,
 *     in chunks, results in an array in input order.
 *
 * Blocking calls here run the runtime's (or the future's) loop, like
 * cf_future_wait(): other watchers keep being served meanwhile.  Called from
 * inside a loop callback, where they cannot wait, they return CF_EDEADLK.
 *
 * Threads: everything here is called on the loop thread (the thread that
 * created the runtime), except the task functions, which run on a worker
 * thread or in a worker process.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_SCRIPT_H
#define CFUTURES_SCRIPT_H

#include "common.h"
#include "executor.h"
#include "future.h"
#include "loop.h"
#include "process_pool.h"
#include "task.h"
#include "thread_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ runtime */

typedef struct cf_runtime cf_runtime_t;

/* Worker count meaning "one per online CPU" (cf_cpu_count()). */
#define CF_RUNTIME_CPUS (-1)

/*
 * Create a runtime: a new ev loop (ev_loop_new(EVFLAG_AUTO)), the cf_loop_t
 * bound to it, then a process pool of `processes` workers and a thread pool
 * of `threads` workers; 0 means no such pool, CF_RUNTIME_CPUS one worker per
 * CPU.  The process pool is created first, so that its fork server is forked
 * before the thread pool starts threads.  On error nothing is left behind.
 * Returns 0, CF_EINVAL (NULL out, a count below CF_RUNTIME_CPUS, or no pool
 * at all), CF_ENOMEM, or what cf_process_pool_new() / cf_thread_pool_new()
 * return.  The calling thread becomes the runtime's loop thread.
 */
CF_EXTERN int cf_runtime_new(int threads, int processes, cf_runtime_t **out);

/*
 * The same with full pool options: `topts` / `popts` NULL means no thread /
 * process pool (at least one must be given).  Returns as cf_runtime_new().
 */
CF_EXTERN int cf_runtime_new_opts(const cf_thread_pool_opts *topts, const cf_process_pool_opts *popts,
                                  cf_runtime_t **out);

/*
 * Free the runtime: free the pools (queued tasks are cancelled, running
 * threads are joined, worker processes are killed), run the loop until the
 * done callbacks of those tasks ran, close the cf_loop_t and destroy the ev
 * loop.  Futures are not the runtime's to free: drop yours first
 * (cf_future_unref(), cf_futures_unref()); while any is alive this returns
 * CF_ELOOPBUSY having freed only the pools, and can be called again once
 * they are gone.  Stop your own watchers on cf_runtime_ev() first (an active
 * one would keep the loop running).  NULL is a no-op returning 0.
 * Returns 0, CF_ELOOPBUSY, or CF_EDEADLK (nothing freed) from inside one of
 * the runtime's loop callbacks.  Loop thread.
 */
CF_EXTERN int cf_runtime_free(cf_runtime_t *rt);

/*
 * Run the runtime's loop until no submitted task is outstanding and no other
 * watcher is active (ev_run(ev, 0)): for callback-style programs.
 * Returns 0, CF_EINVAL (NULL), or CF_EDEADLK inside a loop callback.
 */
CF_EXTERN int cf_runtime_run(cf_runtime_t *rt);

/* The runtime's ev loop, to add watchers of your own. Loop thread. */
CF_EXTERN struct ev_loop *cf_runtime_ev(const cf_runtime_t *rt);

/* The runtime's cf_loop_t (for promises, timers, combinators). Loop thread. */
CF_EXTERN cf_loop_t *cf_runtime_loop(const cf_runtime_t *rt);

/*
 * The thread pool's / process pool's executor, or NULL when the runtime has
 * no such pool.  Borrowed: valid until cf_runtime_free().
 */
CF_EXTERN cf_executor_t *cf_runtime_threads(const cf_runtime_t *rt);
CF_EXTERN cf_executor_t *cf_runtime_processes(const cf_runtime_t *rt);

/* The pools themselves (stats, per-task timeouts), or NULL. Borrowed. */
CF_EXTERN cf_thread_pool_t *cf_runtime_thread_pool(const cf_runtime_t *rt);
CF_EXTERN cf_process_pool_t *cf_runtime_process_pool(const cf_runtime_t *rt);

/* ------------------------------------------------------------------ typed tasks */

/*
 * Plain task functions, named by shape (argument _ value).  They run on a
 * worker thread or in a worker process and cannot fail; their return value
 * becomes the future's value (read it with cf_future_i64() / cf_future_f64()).
 * A bytes argument is the task's copy, 8-byte aligned, valid during the call.
 */
typedef int64_t (*cf_fn_i64_i64)(int64_t x);
typedef double (*cf_fn_i64_f64)(int64_t x);
typedef int64_t (*cf_fn_f64_i64)(double x);
typedef double (*cf_fn_f64_f64)(double x);
typedef int64_t (*cf_fn_bytes_i64)(const void *data, size_t len);
typedef double (*cf_fn_bytes_f64)(const void *data, size_t len);

/*
 * Task forms: the function also gets the cf_task_t.  It sets its value with
 * cf_task_set_i64(), cf_task_set_f64() or cf_task_set_bytes() and returns 0,
 * or fails with `return cf_task_fail(task, CF_EFAIL, "Don't do this");`, and
 * may poll cf_task_cancelled().  Return values as for cf_task_fn.
 */
typedef int (*cf_task_i64_fn)(cf_task_t *task, int64_t x);
typedef int (*cf_task_f64_fn)(cf_task_t *task, double x);
typedef int (*cf_task_bytes_fn)(cf_task_t *task, const void *data, size_t len);

/*
 * Submit fn(x) to `ex` (any executor: cf_runtime_threads(),
 * cf_runtime_processes(), or a pool of your own) and return its future in
 * *out, with one reference for the caller.  The argument is copied; the
 * function must be one of the program's own or of a library loaded before
 * the pool was created (in a process pool it is called through the same
 * pointer in a worker forked from the program).  Returns 0 or what
 * cf_executor_submit_bytes() returns: CF_EINVAL (NULL ex, fn or out, or NULL
 * data with len > 0), CF_ESHUTDOWN, CF_EBROKEN, CF_EAGAIN, CF_ENOMEM.  On
 * error *out is untouched and nothing runs.  Loop thread.
 */
CF_EXTERN int cf_submit_i64_i64(cf_executor_t *ex, cf_fn_i64_i64 fn, int64_t x, cf_future_t **out);
CF_EXTERN int cf_submit_i64_f64(cf_executor_t *ex, cf_fn_i64_f64 fn, int64_t x, cf_future_t **out);
CF_EXTERN int cf_submit_f64_i64(cf_executor_t *ex, cf_fn_f64_i64 fn, double x, cf_future_t **out);
CF_EXTERN int cf_submit_f64_f64(cf_executor_t *ex, cf_fn_f64_f64 fn, double x, cf_future_t **out);
CF_EXTERN int cf_submit_bytes_i64(cf_executor_t *ex, cf_fn_bytes_i64 fn, const void *data, size_t len,
                                  cf_future_t **out);
CF_EXTERN int cf_submit_bytes_f64(cf_executor_t *ex, cf_fn_bytes_f64 fn, const void *data, size_t len,
                                  cf_future_t **out);
CF_EXTERN int cf_submit_i64_task(cf_executor_t *ex, cf_task_i64_fn fn, int64_t x, cf_future_t **out);
CF_EXTERN int cf_submit_f64_task(cf_executor_t *ex, cf_task_f64_fn fn, double x, cf_future_t **out);
CF_EXTERN int cf_submit_bytes_task(cf_executor_t *ex, cf_task_bytes_fn fn, const void *data, size_t len,
                                   cf_future_t **out);

/*
 * Drop the references in fs[0..n-1] (NULL entries are skipped) and set the
 * entries to NULL.  Returns 0, or the first error of cf_future_unref()
 * (every entry is still tried).  Loop thread.
 */
CF_EXTERN int cf_futures_unref(cf_future_t **fs, size_t n);

/* ------------------------------------------------------------------ values */

/*
 * Python's future.result() for C scripts: wait for `f` without limit
 * (running its loop, see cf_future_wait()), then return its value - the i64
 * or f64 it finished with, or its bytes (pointing into the future, valid
 * while it lives; *len, if not NULL, gets their length).  A future that
 * failed or was cancelled, or cannot be waited for here (inside a loop
 * callback while it is pending), gives 0, 0.0 or NULL with *len = 0: use the
 * checked forms below when that matters.  As with cf_future_result(), a
 * value read as another kind than it was stored gives its raw bits.  Loop
 * thread.
 */
CF_EXTERN int64_t cf_future_i64(cf_future_t *f);
CF_EXTERN double cf_future_f64(cf_future_t *f);
CF_EXTERN const void *cf_future_bytes(cf_future_t *f, size_t *len);

/*
 * Checked forms: wait up to `timeout` seconds (< 0: no limit) for `f`, then
 * store its value.  Return 0 with the value stored; the future's error code
 * if it failed (message: cf_future_error()) or CF_ECANCELED; CF_ETIMEDOUT when
 * the wait timed out (the task goes on: cf_future_get_state() is then still
 * pending or running); CF_EDEADLK inside a loop callback while `f` is
 * pending; CF_EINVAL for NULL arguments.  On anything but 0 the outputs are
 * untouched.  Loop thread.
 */
CF_EXTERN int cf_future_get_i64(cf_future_t *f, double timeout, int64_t *out);
CF_EXTERN int cf_future_get_f64(cf_future_t *f, double timeout, double *out);
CF_EXTERN int cf_future_get_bytes(cf_future_t *f, double timeout, const void **data, size_t *len);

/* ------------------------------------------------------------------ as completed, by index */

/*
 * An iteration over futures in completion order that hands back positions:
 *
 *     for (cf_completed c = CF_COMPLETED(fs, n); cf_completed_next(&c) == 0;)
 *         printf("%zu done: %lld\n", c.index, (long long)cf_future_i64(c.future));
 *
 * Same order as cf_as_completed_next(): futures already done first, in input
 * order, then as they complete; a future given at several positions comes
 * once, with its first position.  The caller owns the struct (usually on the
 * stack) and keeps fs[] alive during the iteration.
 *
 * CF_COMPLETED keeps the caller's references: fs[] and its futures are
 * untouched and still the caller's to release.  CF_COMPLETED_TAKE hands them
 * to the iteration, like Python's as_completed() dropping each future it
 * yielded: the future just returned stays valid until the next call, then
 * its reference is dropped and its entries in fs[] are set to NULL; when the
 * iteration ends (any non-zero return, or cf_completed_end()) the references
 * still in fs[] are dropped and their entries set to NULL.
 */
typedef struct cf_completed {
    cf_future_t **fs;    /* the futures */
    size_t n;            /* how many */
    double timeout;      /* seconds for the whole iteration, from the first cf_completed_next(); < 0 none */
    int take;            /* 1: the iteration owns the references in fs[] (see above) */
    size_t index;        /* out: position in fs of the future just returned */
    cf_future_t *future; /* out: that future */
    void *priv_;         /* private iteration state: NULL before the first call */
} cf_completed;

/* Initializers: iterate over fs[0..n-1] without a timeout, keeping / taking the references. */
#define CF_COMPLETED(fs, n) {(fs), (n), -1.0, 0, 0, NULL, NULL}
#define CF_COMPLETED_TAKE(fs, n) {(fs), (n), -1.0, 1, 0, NULL, NULL}

/*
 * Next completed future: runs the loop as needed, then sets c->index and
 * c->future and returns 0.  Returns CF_EOF after the last; CF_ETIMEDOUT when
 * the timeout passed; CF_EDEADLK inside a loop callback, or when nothing could
 * complete the remaining futures; CF_EINVAL (NULL c, NULL fs with n > 0, a
 * NULL entry, futures of different loops); CF_ENOMEM.  Any non-zero return
 * ends the iteration and releases its state (later calls return CF_EOF).
 * Loop thread.
 */
CF_EXTERN int cf_completed_next(cf_completed *c);

/* End an iteration early and release its state (later calls return CF_EOF);
 * harmless when it already ended.  Loop thread. */
CF_EXTERN void cf_completed_end(cf_completed *c);

/* ------------------------------------------------------------------ maps over arrays */

/*
 * out[i] = fn(xs[i]) for i in 0..n-1, on `ex`, `chunksize` items per task
 * (0: automatic, ceil(n / (4 x workers)) like multiprocessing.Pool), results
 * written in input order.  Runs the loop until every item is done (a
 * blocking call built on cf_map, at most 4 x workers chunks in flight).
 * `out` may be the same array as `xs` when both have the same type.
 * Returns 0; or the first failed item's error (a crashed worker: CF_EWORKER;
 * the rest of the map is then cancelled and `out` is filled up to that item
 * only); CF_EINVAL (NULL ex, fn, or xs/out with n > 0); CF_ENOMEM;
 * CF_EDEADLK inside a loop callback.  Loop thread.
 */
CF_EXTERN int cf_map_i64_i64(cf_executor_t *ex, cf_fn_i64_i64 fn, const int64_t *xs, size_t n, size_t chunksize,
                             int64_t *out);
CF_EXTERN int cf_map_i64_f64(cf_executor_t *ex, cf_fn_i64_f64 fn, const int64_t *xs, size_t n, size_t chunksize,
                             double *out);
CF_EXTERN int cf_map_f64_i64(cf_executor_t *ex, cf_fn_f64_i64 fn, const double *xs, size_t n, size_t chunksize,
                             int64_t *out);
CF_EXTERN int cf_map_f64_f64(cf_executor_t *ex, cf_fn_f64_f64 fn, const double *xs, size_t n, size_t chunksize,
                             double *out);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_SCRIPT_H */
