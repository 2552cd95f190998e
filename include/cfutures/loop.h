/*
 * cfutures/loop.h - binding the runtime to a libev loop.
 *
 * A cf_loop_t attaches cfutures to a `struct ev_loop` that the application
 * owns (the default loop or any other).  cfutures never touches the loop's
 * userdata and keeps no global state: any number of loops, each driven by its
 * own thread, can run side by side with their own executors.
 *
 * Threads: every cf_loop_* function except cf_loop_call() must be called on
 * the loop thread, i.e. the thread that runs ev_run() on the ev_loop (or,
 * while the loop is not running, the thread that will).  Every callback the
 * library invokes runs on that thread, from inside ev_run().
 *
 * Liveness: cfutures' own watchers do not keep ev_run() alive by themselves.
 * A task submitted to an executor does: ev_run(loop, 0) keeps running while
 * any submitted task is outstanding (queued, running, or finished but with
 * done callbacks not yet run) and returns on its own once none is and no other
 * watcher is active, like libuv requests.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_LOOP_H
#define CFUTURES_LOOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
typedef struct cf_loop cf_loop_t;

/*
 * Attach cfutures to `ev` and return the binding in *out.  Starts one internal
 * ev_async (unreferenced) and one ev_idle (active only while callbacks are
 * due).  `ev` must outlive the binding.  Returns 0, CF_EINVAL (NULL ev or
 * out) or CF_ENOMEM.  Loop thread.
 */
CF_EXTERN int cf_loop_new(struct ev_loop *ev, cf_loop_t **out);

/*
 * Detach and free the binding.  Fails with CF_ELOOPBUSY, freeing nothing, while
 * futures or executors created on it are still alive (every future unref'd,
 * every executor freed) or cross-thread calls are still queued; run the loop
 * and release them first.  Returns 0, CF_EINVAL or CF_ELOOPBUSY.  Loop thread.
 */
CF_EXTERN int cf_loop_close(cf_loop_t *loop);

/* The ev_loop this binding is attached to. Any thread. */
CF_EXTERN struct ev_loop *cf_loop_ev(const cf_loop_t *loop);

/* Callback for cf_loop_call(). Runs on the loop thread. */
typedef void (*cf_loop_call_fn)(cf_loop_t *loop, void *arg);

/*
 * Run fn(loop, arg) on the loop thread, from a later iteration of ev_run().
 * Safe from any thread, including the loop thread (where fn never runs inline).
 * Calls made by one thread run in the order they were made, each exactly once.
 * A queued call does not keep ev_run() alive by itself: a thread that hands
 * work to a loop which may otherwise go idle should hold cf_loop_hold().  The
 * binding must not be closed while calls may still be made.
 * Returns 0, CF_EINVAL (NULL loop or fn) or CF_ENOMEM.
 */
CF_EXTERN int cf_loop_call(cf_loop_t *loop, cf_loop_call_fn fn, void *arg);

/*
 * Keep ev_run() from returning (hold) until the matching release, e.g. while
 * another thread will still cf_loop_call() into the loop.  Holds nest.
 * cf_loop_release() returns CF_EINVAL when there is no hold.  Loop thread.
 */
CF_EXTERN void cf_loop_hold(cf_loop_t *loop);
CF_EXTERN int cf_loop_release(cf_loop_t *loop);

/*
 * Maximum number of completions (and due done-callback batches) processed per
 * loop iteration; the rest continue on the next iteration so that a burst of
 * completions cannot starve I/O watchers.  Default 1024; 0 restores it.
 * Loop thread.
 */
CF_EXTERN void cf_loop_set_batch(cf_loop_t *loop, unsigned batch);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_LOOP_H */
