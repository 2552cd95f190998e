/*
 * tp.h - the thread pool's private types, shared by its three files.
 *
 * DESIGN
 *
 * The thread pool (see the DESIGN comment in thread_pool.c for threads,
 * queues, wake-ups and invariants) is three files:
 *   thread_pool.c  the public API: options, create, submit, shutdown, free,
 *                  statistics, the executor adapter, destroy.
 *   tp_worker.c    the worker threads: taking tasks from the queue (under
 *                  mu), running them, spinning and sleeping, handing
 *                  finished tasks back to the loop inbox (lock-free).
 *   tp_loop.c      the loop side of the hand-off: the submit batch and its
 *                  flush into `incoming` (under submit_mu), completion of a
 *                  finished task, cancel, refill from overflow, stop.
 *
 * Lock order.  mu -> submit_mu; the loop inbox takes no lock.  No lock is
 * held while user code (task, initializer, finalizer, callbacks) runs.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_TP_H
#define CF_TP_H

#include "internal.h"
#include "tsa.h"

#include <string.h>

enum cf__tp_where {
    TP_NONE = 0,     /* not in any pool queue (running, done, or being cancelled) */
    TP_QUEUED = 1,   /* in pool->incoming or pool->queue */
    TP_OVERFLOW = 2, /* in pool->overflow (loop thread) */
    TP_BATCHED = 3,  /* in pool->batch (loop thread), not yet visible to workers */
    TP_TAKEN = 4,    /* taken by a worker: in one of its `taken` slots until it claims it */
};

/* Most tasks a worker takes per acquisition of pool.mu (see "Taking" in
 * thread_pool.c): TP_TAKE_LONG while its recent tasks took TP_SHORT_NS or
 * more each (or nothing is known yet), TP_TAKE_MAX while they were shorter. */
#define TP_TAKE_LONG 16
#define TP_TAKE_MAX 32
#define TP_SHORT_NS 5000u
/* A batch holds finished batchable tasks back this long at most (ns). */
#define TP_HOLD_NS 50000u

struct cf__tp_worker {
    _Alignas(CF__CACHELINE) cf_thread_pool_t *pool; /* one cache line or more per worker */
    pthread_t tid;
    int index;
    int started;
    void *data; /* from the initializer */
    /* This worker's estimate of what its recent tasks took each (ns,
     * moving average over its batches; 0: nothing known yet).  Worker only. */
    uint64_t task_ns;
    pthread_cond_t cv; /* this worker sleeps on it, with pool.mu */
    int sleeping_;     /* pool.mu, through tp_sleeping(): waiting on cv, not yet signalled */
    /* The task this worker runs: set before the worker claims it from its
     * slot, cleared (release) before the task is handed back, read by the
     * loop thread. */
    _Atomic(cf_future_t *) current;
    /* Tasks taken but not yet started: filled under pool.mu; the worker
     * claims each by exchanging it with NULL, the loop (cancel, shutdown)
     * by a compare-and-swap to NULL; whoever gets the pointer owns the task. */
    _Atomic(cf_future_t *) taken[TP_TAKE_MAX];
};

/* The state pool.mu guards (see tsa.h for why it is a sub-structure). */
struct cf__tp_by_mu {
    struct cf__list queue; /* the take side: workers pop */
    int nalive;            /* workers started and not yet exited */
    uint64_t queue_ns_total;
    uint64_t queue_ns_max;
};

/* The state pool.submit_mu guards. */
struct cf__tp_by_submit_mu {
    struct cf__list incoming; /* the submit side: the loop appends */
    char *broken_msg;         /* set once, with mu also held, when the pool breaks */
};

struct cf_thread_pool {
    struct cf_executor ex; /* first: the executor view */
    cf_loop_t *loop;
    cf_thread_pool_opts opts;
    char prefix[16];
    struct cf__tp_worker *workers;
    int nworkers;
    /* Written once, under mu and submit_mu, when the pool breaks; read by
     * every submit, so it sits with the fields that never change, not on a
     * line the workers write. */
    atomic_int broken;

    /* Take side: mu guards mu_guarded_ (reached through tp_mu()); the
     * atomics are written under it and also read without it. */
    _Alignas(CF__CACHELINE) cf__mutex_t mu;
    struct cf__tp_by_mu mu_guarded_;
    atomic_size_t nq;        /* tasks in queue */
    atomic_int stopping;     /* workers exit once both lists are empty */
    atomic_int nsleeping;    /* sleeping workers not yet signalled: incremented under mu and
                                submit_mu, decremented under mu by the one who signals */
    atomic_int nspinning;    /* workers polling nq/nin before sleeping: they need no signal */
    atomic_int nrunning;     /* workers from taking a task until they lock mu again after it */

    /* Submit side: submit_mu guards submit_mu_guarded_ (through tp_smu()). */
    _Alignas(CF__CACHELINE) cf__mutex_t submit_mu;
    struct cf__tp_by_submit_mu submit_mu_guarded_;
    atomic_size_t nin;       /* tasks in incoming */

    /* Loop thread only. */
    _Alignas(CF__CACHELINE) struct cf__list batch;   /* accepted tasks not yet moved to incoming (see tp_flush()) */
    size_t nbatch;
    ev_prepare prepare;      /* flushes `batch` before the loop waits, then may poll the inbox (tp_poll()); unreferenced */
    uint64_t block_ns;       /* when the loop went to wait with tasks in flight; 0: not waiting (or not timed) */
    uint64_t wait_avg;       /* moving average of those waits (each counted up to 2 x CF__TP_POLL_NS) */
    int ncpu;
    struct cf__list overflow;
    size_t noverflow;
    struct cf__exec_counters cnt; /* submitted ... outstanding (executor.c) */
    uint64_t stamp;      /* last clock reading for submit times */
    unsigned stamp_left; /* submits that may still use it */
    int shut;
    int joined;
    int released;
};

/* The guarded state, reachable only with its lock held (checked by
 * -Wthread-safety). */
static inline struct cf__tp_by_mu *tp_mu(cf_thread_pool_t *pool) CF__REQUIRES(pool->mu);
static inline struct cf__tp_by_mu *tp_mu(cf_thread_pool_t *pool)
{
    return &pool->mu_guarded_;
}

static inline struct cf__tp_by_submit_mu *tp_smu(cf_thread_pool_t *pool) CF__REQUIRES(pool->submit_mu);
static inline struct cf__tp_by_submit_mu *tp_smu(cf_thread_pool_t *pool)
{
    return &pool->submit_mu_guarded_;
}

/* The same, for a pool no other thread can reach: before its first worker
 * starts, or after the last one was joined. */
static inline struct cf__tp_by_mu *tp_mu_unshared(cf_thread_pool_t *pool)
{
    return &pool->mu_guarded_;
}

static inline struct cf__tp_by_submit_mu *tp_smu_unshared(cf_thread_pool_t *pool)
{
    return &pool->submit_mu_guarded_;
}

static inline int *tp_sleeping(cf_thread_pool_t *pool, struct cf__tp_worker *w) CF__REQUIRES(pool->mu);
static inline int *tp_sleeping(cf_thread_pool_t *pool, struct cf__tp_worker *w)
{
    (void)pool;
    return &w->sleeping_;
}

static inline size_t tp_load(const atomic_size_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* A task leaves the queue: its outcome, which shared room with the queued
 * task's fields (f->tq), starts empty. */
static inline void tp_outcome_reset(cf_future_t *f)
{
    memset(&f->out, 0, sizeof(f->out));
}

/* The loop-side poll (tp_poll() in tp_loop.c): at most this long before
 * the loop waits, and only while recent waits were shorter; given up after
 * CF__TP_POLL_QUIET_NS while no worker runs a task. */
#define CF__TP_POLL_NS 30000u
#define CF__TP_POLL_QUIET_NS 5000u

/* ------------------------------------------------------------------ tp_worker.c */

/* The worker thread's body; `arg` is its struct cf__tp_worker. */
void *cf__tp_worker_main(void *arg);
/* Move the submit side's list to the take side.  mu and submit_mu held. */
void cf__tp_splice_incoming(cf_thread_pool_t *pool) CF__REQUIRES(pool->mu, pool->submit_mu);
/* Signal one sleeping worker.  mu held.  A signalled worker no longer
 * counts as sleeping, so a burst of submits signals each sleeper once. */
void cf__tp_signal_one_locked(cf_thread_pool_t *pool) CF__REQUIRES(pool->mu);

/* ------------------------------------------------------------------ tp_loop.c (loop thread) */

/* Make the batched tasks visible to the workers. */
void cf__tp_flush(cf_thread_pool_t *pool);
/* The ev_prepare callback that flushes the batch before the loop waits. */
void cf__tp_prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents);
/* Tell the workers to exit once the queue is empty, when no more tasks can come. */
void cf__tp_maybe_stop(cf_thread_pool_t *pool);
/* Complete `f` on a later iteration with `err` (CF_ECANCELED, CF_EBROKEN...). */
void cf__tp_complete_later(cf_future_t *f, int err);
/* The one place a pool task ends (a cf__work run by the loop). */
void cf__tp_complete(cf_loop_t *loop, struct cf__work *w);
/* The future ops' cancel for pool tasks. */
int cf__tp_cancel(cf_future_t *f);
/* Workers not running a task (starting, between tasks, spinning or sleeping). */
size_t cf__tp_workers_idle(cf_thread_pool_t *pool);

/* ------------------------------------------------------------------ thread_pool.c */

/* Free the pool: its user released it and no task is outstanding. */
void cf__tp_destroy(cf_thread_pool_t *pool);

#endif
