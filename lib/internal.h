/*
 * internal.h - structures shared by the cfutures modules.  Not installed.
 * Non-static internals are named cf__*; everything here is hidden from the
 * shared library's export table by -fvisibility=hidden.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_INTERNAL_H
#define CF_INTERNAL_H

#include "config.h"

#include <ev.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cfutures.h"
#include "queue.h"
#include "slab.h"

#ifdef NDEBUG
#define CF_ASSERT(cond, msg) ((void)sizeof((cond) ? 1 : 0)) /* checked by the compiler, never run */
#else
#include <stdio.h>
#include <stdlib.h>
#define CF_ASSERT(cond, msg)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "cfutures: %s:%d: %s: assertion '%s' failed: %s\n", __FILE__, __LINE__, \
                    __func__, #cond, msg);                                                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#endif

/* Contract violations (NULL where the API forbids it) abort in every build. */
#define CF_REQUIRE(cond, msg)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            cf__panic(__func__, msg);                                                              \
    } while (0)

void cf__panic(const char *func, const char *msg) __attribute__((noreturn));

/*
 * Record what went wrong for cf_last_error() (this thread's message; printf
 * format, truncated at 511 bytes; allocates nothing) and return `code`, so a
 * failing path reads
 *     return cf__set_error(CF_EINVAL, "cf_x_new: opts->limit must be > 0 (got %d)", o->limit);
 * Name the public function first, then the argument or option field and the
 * value that is wrong.  Any thread.
 */
int cf__set_error(int code, const char *fmt, ...) CF_PRINTF(2, 3);

/* CF_EINVAL with "FUNCTION: WHAT" for cf_last_error(), inside the public
 * function that rejects an argument: `return CF__EINVAL("f is NULL");`. */
#define CF__EINVAL(what) cf__set_error(CF_EINVAL, "%s: %s", __func__, (what))

/* A malloc'd printf result, or NULL when out of memory. */
char *cf__printf_alloc(const char *fmt, ...) CF_PRINTF(1, 2);
/* A malloc'd copy of `len` bytes (at least one byte is allocated), or NULL. */
void *cf__memdup(const void *data, size_t len);

/* Groups of fields written by different threads start on their own cache
 * line, so one thread's writes do not evict the lines another thread uses. */
#define CF__CACHELINE 64
/* calloc() for structures with such groups: zeroed, aligned to CF__CACHELINE. */
void *cf__calloc_aligned(size_t size);

/* Initialise a mutex that spins briefly before sleeping (the critical
 * sections it guards are a few pointer moves). Returns 0 or a negated errno. */
int cf__mutex_init(pthread_mutex_t *mu);

/* ------------------------------------------------------------------ work items
 * Anything the loop runs later: a completion handed back by a worker (through
 * the inbox), a due done-callback dispatch, a cross-thread call.
 */
struct cf__work;
typedef void (*cf__work_fn)(cf_loop_t *loop, struct cf__work *w);

struct cf__work {
    struct cf__snode node;
    cf__work_fn run;
};

/* ------------------------------------------------------------------ loop */
struct cf__cb;

struct cf_loop {
    struct ev_loop *ev;
    ev_async async; /* wake-up from other threads; unreferenced */
    ev_idle idle;   /* EV_MAXPRI; active only while `ready` is non-empty */

    /* The inbox, a lock-free intrusive queue (see loop.c).  Posters: */
    _Alignas(CF__CACHELINE) struct cf__snode *inbox_tail; /* newest node; __atomic builtins */
    atomic_int inbox_idle;       /* the loop found the inbox empty: the next poster wakes it */
    atomic_size_t calls_pending; /* cf_loop_call() items not yet run */
    /* The loop thread's end of the inbox. */
    _Alignas(CF__CACHELINE) struct cf__snode *inbox_head;
    struct cf__snode inbox_stub;

    /* Loop thread only. */
    _Alignas(CF__CACHELINE) struct cf__fifo ready; /* work due on this or the next iteration */
    size_t ready_n;
    unsigned batch;         /* max items run per iteration */
    unsigned holds;         /* cf_loop_hold() count */
    size_t outstanding;     /* executor tasks not yet completed (holds one ev_ref while > 0) */
    size_t live_futures;
    size_t live_executors;
    struct cf__slab_cache futures;  /* every future of this loop */
    struct cf__slab_cache cbs;      /* done-callback nodes */
};

/* A spin-wait pause: lets the sibling hyperthread run, saves power. */
static inline void cf__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Hand `w` to the loop from any thread (lock-free; wakes the loop when it found the inbox empty). */
void cf__loop_post(cf_loop_t *loop, struct cf__work *w);
/*
 * Just before the loop waits, while another thread is about to post (an
 * executor's short task in flight): look at the inbox until `until_ns`
 * (cf_now_ns()) with the wake-up disarmed, so that neither the poster's
 * eventfd write nor the loop's wake-up from epoll is paid.  give_up(data,
 * now) is asked every few microseconds whether to stop early.  1 when
 * something came or is due (the idle watcher runs: the loop does not
 * wait); 0 when nothing came (the wake-up is armed again, as after a pass
 * that found the inbox empty).  Loop thread, from an ev_prepare callback.
 */
int cf__loop_poll_inbox(cf_loop_t *loop, uint64_t until_ns, int (*give_up)(void *data, uint64_t now), void *data);
/* The same in two steps, for posting under another lock: returns 1 when the
 * caller must call cf__loop_wake() (after releasing its own lock). */
int cf__loop_post_nowake(cf_loop_t *loop, struct cf__work *w);
void cf__loop_wake(cf_loop_t *loop);
/* Queue `w` to run on a later iteration. Loop thread. */
void cf__loop_defer(cf_loop_t *loop, struct cf__work *w);
/* Executor task accounting: keeps ev_run() alive while tasks are outstanding. Loop thread. */
void cf__loop_task_begin(cf_loop_t *loop);
void cf__loop_task_end(cf_loop_t *loop);
/* ev_run(EV_RUN_ONCE) for blocking waits; CF_EDEADLK if inside ev_run(). */
int cf__loop_can_block(cf_loop_t *loop);
/*
 * Run the loop (EVRUN_ONCE at a time) until done(arg) is true or `timeout`
 * seconds pass (< 0: no limit).  Returns 0, CF_ETIMEDOUT, or CF_EDEADLK when
 * called inside ev_run() or when nothing left on the loop can make progress.
 */
int cf__loop_run_until(cf_loop_t *loop, int (*done)(void *arg), void *arg, double timeout);
/* 1 when the loop has nothing queued that could still complete anything. */
int cf__loop_idle(cf_loop_t *loop);

/* Run fn for `task`, normalising its return value into task->out->err. Worker thread. */
void cf__task_run(struct cf_task *task, cf_task_fn fn);
/* Store a task function's return value `rc` as the outcome's error (positive -> CF_EFAIL). */
void cf__task_finish(struct cf_task *task, int rc);

/*
 * The library's task trampolines that carry the user's function pointer at
 * byte offset 8 of their payload: the map chunk runner (map.c) and the typed
 * call runner (script.c).  registry.c names them, so executors in other
 * programs (remote.c) can send the inner function by name too.
 */
#define CF__INNER_FN_OFFSET 8
int cf__map_chunk_run(cf_task_t *task, void *arg);
int cf__call_task(cf_task_t *task, void *arg);
/* The map item runner of the script layer's array maps: each map item is a
 * typed call, with the user's function pointer at offset 8 of the item. */
int cf__map_call_item(cf_task_t *task, const void *item, size_t len);

/* ------------------------------------------------------------------ futures */

/* What an owner (an executor) does for its futures. */
struct cf__future_ops {
    /* Cancel request on a PENDING or RUNNING future; returns 0 or CF_EBUSY. */
    int (*cancel)(cf_future_t *f);
};

struct cf__cb {
    struct cf__cb *next;
    cf_future_cb cb;
    void *data;
    cf_free_fn destroy;
};

union cf__value {
    void *ptr;
    int64_t i64;
    double f64;
};

/* What a task produced: a value or an error.  Written by whoever runs the
 * task (a worker), read by the loop after the hand-back. */
struct cf__outcome {
    union cf__value value;
    cf_free_fn value_free; /* destroys value.ptr */
    size_t len;            /* length of a bytes value (value.ptr) */
    int err;               /* 0, or a negative code */
    uint8_t is_bytes;      /* value.ptr holds `len` bytes set by *_set_bytes() */
    char *errmsg;          /* malloc'd, or NULL */
};

/* Store a failure message (vprintf format); replaces an earlier one. */
void cf__outcome_set_msg(struct cf__outcome *o, const char *fmt, va_list ap) CF_PRINTF(2, 0);
/* Destroy the value (if it has a destructor) and forget it. */
void cf__outcome_drop_value(struct cf__outcome *o);
/* Release everything the outcome owns. */
void cf__outcome_clear(struct cf__outcome *o);

/* The worker-side view of a running task (built on the worker's stack). */
struct cf_task {
    struct cf__outcome *out;
    const atomic_uchar *cancel_req;
    void *worker_data;
    int worker_index;
    void *arg;
    size_t arg_len;
};

struct cf_future {
    /* Queue link: the owner's queue while queued, then the inbox/ready queue. */
    union {
        struct cf__list qlink;
        struct cf__work work;
    } u;
    cf_loop_t *loop;
    uint32_t refs;           /* loop thread only; 0 once released (the slab keeps it) */
    atomic_uchar state;      /* PENDING -> RUNNING is written by a worker; final states by the loop */
    atomic_uchar cancel_req; /* set by the loop, polled by the running task */
    uint8_t where;           /* owner-specific position (queued, overflow, ...) */
    /* Loop thread only (one byte, apart from `where`, which a worker may write). */
    uint8_t scheduled : 1;    /* a dispatch or completion is queued */
    uint8_t taken : 1;        /* the pointer value was moved out by cf_future_take() */
    uint8_t shares_value : 1; /* value_src is set (instead of arg and arg_free) */
    uint8_t cb_inline : 1;    /* the one done callback is in cb1, not in a cbs node */
    union {
        /* What the task produced: written by the worker once it took the
         * task (it first copies out `tq` and clears the outcome), read by the
         * loop after the hand-back.  Promises and other futures use only `out`. */
        struct cf__outcome out;
        /* A thread-pool task until a worker takes it. */
        struct {
            cf_task_fn fn;
            size_t arg_len;
            uint64_t t_submit;
            uint8_t batchable; /* CF__SUBMIT_BATCHABLE */
        } tq;
    };
    /* Done callbacks, loop thread only (see future.c): the usual single
     * callback without a destroy notifier is kept inline, so registering it
     * allocates nothing; otherwise every callback is a node in `cbs`. */
    union {
        struct cf__cb *cbs; /* without cb_inline: newest first, or NULL */
        struct {
            cf_future_cb fn;
            void *data;
        } cb1; /* with cb_inline */
    };
    const struct cf__future_ops *ops;
    void *owner;
    union {
        /* An executor's task: its argument, destroyed with arg_free when the
         * task ends. */
        struct {
            void *arg;
            cf_free_fn arg_free;
        };
        /* With shares_value, on a loop-side future (a mirror: cf_future_adopt(),
         * cf_timeout()): the future whose pointer value this one shares; one
         * reference, dropped when this future is released.  A union, so a
         * future stays 120 bytes. */
        cf_future_t *value_src;
    };
};

/* Allocate a future with one reference (the caller's). Loop thread. */
cf_future_t *cf__future_alloc(cf_loop_t *loop);
/* cf_future_unref(), for calls from inside the library (a hidden alias). */
int cf__future_unref(cf_future_t *f);
/* Return a future's memory to the loop's slab cache (refs reached 0). */
void cf__future_release_mem(cf_future_t *f);
/* Callback nodes, from the loop's slab cache. */
struct cf__cb *cf__cb_alloc(cf_loop_t *loop);
void cf__cb_release(cf_loop_t *loop, struct cf__cb *c);
/* Move `f` to a final state and schedule its callbacks for a later iteration. */
void cf__future_settle(cf_future_t *f, cf_future_state st);
/* Run the callbacks registered so far, now (the caller is a deferred context). */
void cf__future_dispatch(cf_future_t *f);
/* Unregister a callback that has not started running; 0 or CF_EINVAL (not found). */
int cf__future_remove_cb(cf_future_t *f, cf_future_cb cb, void *data);
/* Set the state; asserts that the transition is legal.  The one place states change. */
void cf__future_set_state(cf_future_t *f, cf_future_state to);

/* ------------------------------------------------------------------ executors
 * What every executor shares (executor.c): the submission it receives, its
 * counters, and the one path on which its tasks' futures complete.
 */

/* What a submission hands over; `flags` says who owns `arg`. */
struct cf__submit {
    cf_task_fn fn;
    void *arg;           /* an opaque pointer, or (CF__SUBMIT_BYTES) the task's data */
    size_t len;          /* length of the data */
    cf_free_fn arg_free; /* called with arg when the task ends; NULL under CF__SUBMIT_OWNED */
    unsigned flags;
};

enum {
    /* arg points at `len` bytes that are the task's data: executors in other
     * address spaces send them.  Without it, arg is an opaque pointer (len 0),
     * accepted only by executors that share memory. */
    CF__SUBMIT_BYTES = 1u << 0,
    /* arg is a malloc'd buffer handed over to the executor: it frees it with
     * free() when the task ends, or keeps it (a process pool sends it as the
     * task's payload without copying). */
    CF__SUBMIT_OWNED = 1u << 1,
    /* The task's completion may reach the loop late, with later short tasks
     * of the same worker (the thread pool, see "Taking" in thread_pool.c):
     * no task waits for the loop to have seen it.  A map's chunks. */
    CF__SUBMIT_BATCHABLE = 1u << 2,
};

struct cf__executor_ops {
    const char *kind;
    /* Queue s->fn.  On success ownership of s->arg passes to the executor
     * (see the flags); on error the caller keeps it. */
    int (*submit_task)(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out);
    /* The older form, for executors not yet converted to submit_task (used
     * only when submit_task is NULL): len > 0 means bytes, and a buffer whose
     * arg_free is free() may be adopted. */
    int (*submit)(cf_executor_t *ex, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free,
                  cf_future_t **out);
    int (*shutdown)(cf_executor_t *ex, int flags);
    int (*workers)(const cf_executor_t *ex);
    int shares_memory; /* accepts opaque pointer arguments */
};

struct cf_executor {
    const struct cf__executor_ops *ops;
    cf_loop_t *loop;
};

/*
 * Submit through ex's ops: every submission (cf_executor_submit*(), cf_map
 * chunks, combinators) goes this way.  Returns 0, CF_EINVAL, CF_ENOTSUP (an
 * opaque pointer to an executor that does not share memory) or the
 * executor's error; on error the caller keeps s->arg.  Loop thread.
 */
int cf__executor_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out);

/* The counters of one executor (loop thread only). */
struct cf__exec_counters {
    uint64_t submitted, completed, failed, cancelled;
    size_t outstanding; /* accepted tasks not yet completed */
};

/*
 * A task was accepted: `f` (fresh from cf__future_alloc()) gets the
 * executor's future ops and owner, and one more reference - the executor's,
 * dropped by the executor after cf__exec_complete(); the task is counted and
 * keeps the loop alive until it completes.  Loop thread.
 */
void cf__exec_accept(struct cf__exec_counters *c, cf_future_t *f, const struct cf__future_ops *ops, void *owner);

/* Who runs the future's done callbacks after cf__exec_complete(). */
enum {
    /* They are scheduled for a later loop iteration (the caller may be
     * inside user code, e.g. a cancel).  The future must not be done yet. */
    CF__COMPLETE_SCHEDULE = 0,
    /* The caller runs in a deferred context (the loop's ready queue) and
     * calls cf__future_dispatch() itself, after its own bookkeeping. */
    CF__COMPLETE_CALLER_DISPATCHES = 1,
};

/*
 * The one place an executor's task ends, exactly once, on the loop thread:
 * unless the future is already done (cancelled at once), f->out.err decides
 * its final state (0 FINISHED, CF_ECANCELED CANCELLED, else FAILED); the
 * matching counter is bumped; the argument is destroyed (arg_free); the
 * future forgets its owner; the task stops keeping the loop alive; the done
 * callbacks are scheduled, or left to the caller, as `how` says.  The
 * executor's reference is not dropped: the caller does that last.  Returns
 * the final state.
 */
cf_future_state cf__exec_complete(struct cf__exec_counters *c, cf_future_t *f, int how);

/* Copy the counters into the matching fields of *out. */
void cf__exec_counters_get(const struct cf__exec_counters *c, cf_pool_stats *out);

#endif /* CF_INTERNAL_H */
