/*
 * thread_pool.c - the thread-pool executor.
 *
 * DESIGN
 *
 * Threads.  The loop thread submits, cancels, shuts down and completes
 * futures.  N worker threads (named "<prefix>-<i>", every signal blocked)
 * take tasks from the queue and run them.
 *
 * Queues.  A task is its future: the queue link and the task fields live
 * inside struct cf_future, so queueing allocates nothing.
 *   batch     (cf__list, loop thread)   accepted tasks not yet visible to the
 *                                       workers (see "Batching")
 *   incoming  (cf__list, submit_mu)     the submit side: the loop appends
 *   queue     (cf__list, mu)            the take side: workers pop; when it is
 *                                       empty a worker moves all of `incoming`
 *                                       into it at once
 *   overflow  (cf__list, loop thread)   tasks accepted under CF_QUEUE_FULL_WAIT
 *                                       while max_queued tasks were queued
 *   worker.taken[] (atomic slots)       tasks a worker took but has not
 *                                       started (see "Taking")
 *   loop inbox (see loop.c)             finished tasks on their way back
 * FIFO order holds across them: batch -> incoming -> queue -> taken; overflow enters
 * after the batch was flushed.  The submit side and the take side have their
 * own lock and counters (nin, nq), so submits and takes do not contend for
 * one lock or cache line.
 *
 * Batching.  A submit appends to `batch`, which tp_flush() moves to
 * `incoming` under one submit_mu acquisition.  The batch is flushed at once
 * unless the tasks already visible to the workers outnumber the workers that
 * are not running one, so a task starts as soon as a worker could take it
 * even when the application does not return to the loop; otherwise at
 * TP_BATCH_MAX tasks,
 * from an ev_prepare watcher before the loop waits, and before shutdown or
 * a refill from overflow.  Batched tasks count as queued and cancel at once.
 *
 * Taking.  Under mu a worker pops k tasks into its `taken` slots, k = 1
 * unless the queue is long: k = nq / (2 * workers), at most TP_TAKE_MAX, so
 * every other worker still finds at least as many tasks as this one took
 * and a long task holds back at most a few short ones.  The clock is read
 * once per take for the queue-time statistics.  A slot is claimed by whoever
 * swaps its pointer to NULL first: the worker (atomic exchange, just before
 * it runs the task) or the loop (compare-and-swap, in cancel and in
 * shutdown), so a taken task that has not started still cancels at once.
 *
 * Life of a task.
 *   submit (loop):  future gets the pool's reference; appended to `batch`
 *                   (then `incoming`, see above).
 *   take (worker):  under mu: pop into a `taken` slot, where = TP_TAKEN.
 *   claim (worker): worker.current = f, then exchange the slot with NULL;
 *                   state PENDING -> RUNNING.
 *   run (worker):   fn(task, arg) without locks; outcome written into the future.
 *   hand back:      worker.current = NULL, then the future is pushed onto the
 *                   lock-free loop inbox; the ev_async wake-up is sent only
 *                   when the loop had found the inbox empty.
 *   complete (loop): tp_complete(): final state, counters, arg_free, refill from
 *                   overflow, done callbacks, drop the pool's reference.
 * Cancel of a batched, queued or taken-but-unclaimed task removes it (under
 * mu and submit_mu for the shared lists, by claiming the slot for a taken
 * one) and defers tp_complete() to the next iteration; the state is
 * CANCELLED at once.  Cancel of a running task only sets its cancel_req flag
 * (CF_EBUSY).
 *
 * Wake-ups.  Each worker sleeps on its own condition variable (with mu).  A
 * worker registers as sleeping while holding mu and submit_mu, after seeing
 * both lists empty; a flush that finds a sleeper and no spinning worker
 * signals one sleeper (taking mu after releasing submit_mu), and a signalled
 * worker stops counting as a sleeper at once, so a burst signals each
 * sleeper once.  A worker that takes a task while more wait and a sleeper
 * exists with no spinner signals one more.  After finishing its tasks a
 * worker polls nin/nq for spin_us (lock-free reads of atomics) before
 * sleeping, unless another worker already spins: one spinner takes the next
 * task at once, and more would take CPUs from the loop thread that produces
 * the work.  A spinning worker re-checks both lists under the locks before
 * it sleeps, so a submit that saw it spinning needs no signal.  An idle
 * worker never spins.
 *
 * Lock order.  mu -> submit_mu (the inbox takes no lock).  The loop thread takes submit_mu and mu
 * one at a time when submitting, and never holds either while running user
 * code.
 *
 * Invariants.
 *   - Only the loop thread frees futures, and a worker clears worker.current
 *     (release) before handing its task back, so a future the loop reads from
 *     worker.current is alive.  A worker sets current before it claims a
 *     slot (both sequentially consistent), so a shutdown that fails to claim
 *     the slot sees the task in current and sets its cancel_req.
 *   - `where` of a task in `incoming` or `queue` is TP_QUEUED; a worker sets
 *     TP_TAKEN under mu when it takes it and never writes it again; cancel
 *     reads it under mu.
 *   - A future in a `taken` slot is alive: only the claimer completes it.
 *   - f->tq (fn, arg_len, submit time) is valid until a worker takes the
 *     task; the worker copies it out and clears the outcome that shares its
 *     room.
 *   - pool.cnt.outstanding counts accepted tasks whose tp_complete() has not run;
 *     each holds one reference on the loop (cf__loop_task_begin/end) and one
 *     reference on its future.
 *   - the pool struct is destroyed when the user released it and
 *     outstanding == 0.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cf__tp_where {
    TP_NONE = 0,     /* not in any pool queue (running, done, or being cancelled) */
    TP_QUEUED = 1,   /* in pool->incoming or pool->queue */
    TP_OVERFLOW = 2, /* in pool->overflow (loop thread) */
    TP_BATCHED = 3,  /* in pool->batch (loop thread), not yet visible to workers */
    TP_TAKEN = 4,    /* taken by a worker: in one of its `taken` slots until it claims it */
};

/* Most tasks a worker takes per acquisition of pool.mu (see "Taking" above). */
#define TP_TAKE_MAX 16

struct cf__tp_worker {
    _Alignas(CF__CACHELINE) cf_thread_pool_t *pool; /* one cache line or more per worker */
    pthread_t tid;
    int index;
    int started;
    void *data; /* from the initializer */
    pthread_cond_t cv; /* this worker sleeps on it, with pool.mu */
    int sleeping;      /* pool.mu: waiting on cv, not yet signalled */
    /* The task this worker runs: set before the worker claims it from its
     * slot, cleared (release) before the task is handed back, read by the
     * loop thread. */
    _Atomic(cf_future_t *) current;
    /* Tasks taken but not yet started: filled under pool.mu; the worker
     * claims each by exchanging it with NULL, the loop (cancel, shutdown)
     * by a compare-and-swap to NULL; whoever gets the pointer owns the task. */
    _Atomic(cf_future_t *) taken[TP_TAKE_MAX];
};

struct cf_thread_pool {
    struct cf_executor ex; /* first: the executor view */
    cf_loop_t *loop;
    cf_thread_pool_opts opts;
    char prefix[16];
    struct cf__tp_worker *workers;
    int nworkers;

    /* Take side, guarded by mu (atomics are also read without it). */
    _Alignas(CF__CACHELINE) pthread_mutex_t mu;
    struct cf__list queue;
    atomic_size_t nq;        /* tasks in queue */
    atomic_int stopping;     /* workers exit once both lists are empty */
    atomic_int nsleeping;    /* sleeping workers not yet signalled: incremented under mu and
                                submit_mu, decremented under mu by the one who signals */
    atomic_int nspinning;    /* workers polling nq/nin before sleeping: they need no signal */
    atomic_int nrunning;     /* workers from taking a task until they lock mu again after it */
    int nalive;
    uint64_t queue_ns_total;
    uint64_t queue_ns_max;

    /* Submit side, guarded by submit_mu. */
    _Alignas(CF__CACHELINE) pthread_mutex_t submit_mu;
    struct cf__list incoming;
    atomic_size_t nin;       /* tasks in incoming */
    atomic_int broken;       /* written under mu and submit_mu */
    char *broken_msg;

    /* Loop thread only. */
    _Alignas(CF__CACHELINE) struct cf__list batch;   /* accepted tasks not yet moved to incoming (see tp_flush()) */
    size_t nbatch;
    ev_prepare prepare;      /* flushes `batch` before the loop waits; unreferenced */
    struct cf__list overflow;
    size_t noverflow;
    struct cf__exec_counters cnt; /* submitted ... outstanding (executor.c) */
    uint64_t stamp;      /* last clock reading for submit times */
    unsigned stamp_left; /* submits that may still use it */
    int shut;
    int joined;
    int released;
};

static int tp_cancel(cf_future_t *f);
static const struct cf__future_ops tp_ops = {.cancel = tp_cancel};
static const struct cf__executor_ops tp_executor_ops;

static inline void tp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline size_t tp_load(const atomic_size_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Move the submit side's list to the take side.  Both locks held. */
static void tp_splice_incoming(cf_thread_pool_t *pool)
{
    struct cf__list *first = pool->incoming.next, *last = pool->incoming.prev;

    if (first == &pool->incoming)
        return;
    first->prev = pool->queue.prev;
    pool->queue.prev->next = first;
    last->next = &pool->queue;
    pool->queue.prev = last;
    cf__list_init(&pool->incoming);
    atomic_store_explicit(&pool->nq, tp_load(&pool->nq) + tp_load(&pool->nin), memory_order_relaxed);
    atomic_store_explicit(&pool->nin, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------ worker side */

static void tp_set_thread_name(cf_thread_pool_t *pool, int index)
{
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[16];
    char num[12];
    size_t nlen, plen;

    nlen = (size_t)snprintf(num, sizeof(num), "-%d", index);
    plen = strlen(pool->prefix);
    if (plen + nlen > sizeof(name) - 1)
        plen = sizeof(name) - 1 - nlen;
    memcpy(name, pool->prefix, plen);
    memcpy(name + plen, num, nlen + 1);
    pthread_setname_np(pthread_self(), name);
#else
    (void)pool;
    (void)index;
#endif
}

static void tp_complete(cf_loop_t *loop, struct cf__work *w);

/* A task leaves the queue: its outcome, which shared room with the queued
 * task's fields (f->tq), starts empty. */
static void tp_outcome_reset(cf_future_t *f)
{
    memset(&f->out, 0, sizeof(f->out));
}

/* Hand a finished (or failed-without-running) task back to the loop; returns
 * 1 when the caller must wake the loop (after releasing any lock it holds). */
static int tp_hand_back(cf_thread_pool_t *pool, cf_future_t *f)
{
    f->u.work.run = tp_complete;
    return cf__loop_post_nowake(pool->loop, &f->u.work);
}

/* An initializer failed: the pool is broken; fail every queued task. */
static void tp_break(struct cf__tp_worker *w, int err)
{
    cf_thread_pool_t *pool = w->pool;
    struct cf__list *n;
    int wake = 0;

    pthread_mutex_lock(&pool->mu);
    pthread_mutex_lock(&pool->submit_mu);
    if (!atomic_load_explicit(&pool->broken, memory_order_relaxed)) {
        atomic_store_explicit(&pool->broken, 1, memory_order_relaxed);
        if (asprintf(&pool->broken_msg, "thread pool broken: initializer of worker %s-%d failed: %s (%s)",
                     pool->prefix, w->index, cf_strerror(err), cf_err_name(err)) < 0)
            pool->broken_msg = NULL;
    }
    tp_splice_incoming(pool);
    pthread_mutex_unlock(&pool->submit_mu);
    while ((n = cf__list_pop(&pool->queue))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        atomic_fetch_sub_explicit(&pool->nq, 1, memory_order_relaxed);
        f->where = TP_NONE;
        tp_outcome_reset(f);
        f->out.err = CF_EBROKEN;
        f->out.errmsg = pool->broken_msg ? strdup(pool->broken_msg) : NULL;
        wake |= tp_hand_back(pool, f);
    }
    pool->nalive--;
    pthread_mutex_unlock(&pool->mu);
    if (wake)
        cf__loop_wake(pool->loop);
}

/* Run a task the worker took; f->tq was copied out into `fn` and `arg_len`. */
static void tp_run_task(struct cf__tp_worker *w, cf_future_t *f, cf_task_fn fn, size_t arg_len)
{
    struct cf_task task = {
        .out = &f->out,
        .cancel_req = &f->cancel_req,
        .worker_data = w->data,
        .worker_index = w->index,
        .arg = f->arg,
        .arg_len = arg_len,
    };

    cf__task_run(&task, fn);
}

/* Signal one sleeping worker.  pool.mu held.  A signalled worker no longer
 * counts as sleeping, so a burst of submits signals each sleeper once. */
static void tp_signal_one_locked(cf_thread_pool_t *pool)
{
    for (int i = 0; i < pool->nworkers; i++) {
        struct cf__tp_worker *w = &pool->workers[i];
        if (w->sleeping) {
            w->sleeping = 0;
            atomic_fetch_sub_explicit(&pool->nsleeping, 1, memory_order_relaxed);
            pthread_cond_signal(&w->cv);
            return;
        }
    }
}

/* Wake one sleeping worker if tasks are waiting that no awake worker is
 * about to take.  Called with pool.mu held. */
static void tp_wake_more_locked(cf_thread_pool_t *pool)
{
    if (atomic_load_explicit(&pool->nsleeping, memory_order_relaxed) &&
        !atomic_load_explicit(&pool->nspinning, memory_order_relaxed) && (tp_load(&pool->nq) || tp_load(&pool->nin)))
        tp_signal_one_locked(pool);
}

static void *tp_worker_main(void *arg)
{
    struct cf__tp_worker *w = arg;
    cf_thread_pool_t *pool = w->pool;
    int rc = 0, may_spin = 0;

    tp_set_thread_name(pool, w->index);
    if (pool->opts.initializer) {
        rc = pool->opts.initializer(pool->opts.init_data, w->index, &w->data);
        if (rc) {
            tp_break(w, rc < 0 ? rc : CF_EFAIL);
            return NULL;
        }
    }

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        struct cf__list *n;

        if (cf__list_empty(&pool->queue) && tp_load(&pool->nin)) {
            pthread_mutex_lock(&pool->submit_mu);
            tp_splice_incoming(pool);
            pthread_mutex_unlock(&pool->submit_mu);
        }
        if (!cf__list_empty(&pool->queue)) {
            size_t nq = tp_load(&pool->nq);
            size_t k = nq / (2u * (size_t)pool->nworkers);
            uint64_t now = cf_now_ns();

            /* Take several only while the queue is long: each other worker still finds
             * at least as many tasks as this one took. */
            if (k < 1)
                k = 1;
            if (k > TP_TAKE_MAX)
                k = TP_TAKE_MAX;
            for (size_t i = 0; i < k && (n = cf__list_pop(&pool->queue)); i++) {
                cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
                uint64_t waited = now > f->tq.t_submit ? now - f->tq.t_submit : 0;

                pool->queue_ns_total += waited;
                if (waited > pool->queue_ns_max)
                    pool->queue_ns_max = waited;
                f->where = TP_TAKEN;
                atomic_store_explicit(&w->taken[i], f, memory_order_relaxed);
                nq--;
            }
            atomic_store_explicit(&pool->nq, nq, memory_order_relaxed);
            atomic_store_explicit(&pool->nrunning, atomic_load_explicit(&pool->nrunning, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            tp_wake_more_locked(pool);
            pthread_mutex_unlock(&pool->mu);

            for (size_t i = 0; i < k; i++) {
                cf_future_t *f = atomic_load_explicit(&w->taken[i], memory_order_relaxed);
                cf_task_fn fn;
                size_t arg_len;

                if (!f)
                    continue; /* cancelled by the loop thread */
                /* `current` first: a shutdown that fails to claim the slot then sees it. */
                atomic_store_explicit(&w->current, f, memory_order_seq_cst);
                f = atomic_exchange_explicit(&w->taken[i], NULL, memory_order_seq_cst);
                if (!f) {
                    atomic_store_explicit(&w->current, NULL, memory_order_release);
                    continue;
                }
                fn = f->tq.fn;
                arg_len = f->tq.arg_len;
                cf__future_set_state(f, CF_FUTURE_RUNNING);
                tp_outcome_reset(f);
                tp_run_task(w, f, fn, arg_len);

                /* Cleared before the hand-back: once the loop sees the task it may free it. */
                atomic_store_explicit(&w->current, NULL, memory_order_release);
                if (tp_hand_back(pool, f))
                    cf__loop_wake(pool->loop);
            }
            may_spin = 1;
            pthread_mutex_lock(&pool->mu);
            atomic_store_explicit(&pool->nrunning, atomic_load_explicit(&pool->nrunning, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
            continue;
        }
        if (atomic_load_explicit(&pool->stopping, memory_order_relaxed) && !tp_load(&pool->nin))
            break;
        /* One spinner is enough to take the next task at once; more would
         * only take cores from the loop thread that feeds them. */
        if (may_spin && pool->opts.spin_us && !atomic_load_explicit(&pool->nspinning, memory_order_relaxed)) {
            uint64_t until = cf_now_ns() + (uint64_t)pool->opts.spin_us * 1000u;
            unsigned spins = 0;

            may_spin = 0;
            atomic_fetch_add_explicit(&pool->nspinning, 1, memory_order_relaxed);
            pthread_mutex_unlock(&pool->mu);
            while (!tp_load(&pool->nin) && !tp_load(&pool->nq) &&
                   !atomic_load_explicit(&pool->stopping, memory_order_relaxed) &&
                   ((++spins & 31u) || cf_now_ns() < until))
                tp_cpu_relax();
            pthread_mutex_lock(&pool->mu);
            /* A submitter that saw us spinning did not signal: we re-check both lists below. */
            atomic_fetch_sub_explicit(&pool->nspinning, 1, memory_order_relaxed);
            continue;
        }
        /* Register as a sleeper under submit_mu, after seeing `incoming` empty,
         * so that a submit either is seen here or sees the sleeper. */
        pthread_mutex_lock(&pool->submit_mu);
        if (tp_load(&pool->nin)) {
            pthread_mutex_unlock(&pool->submit_mu);
            continue;
        }
        w->sleeping = 1;
        atomic_fetch_add_explicit(&pool->nsleeping, 1, memory_order_relaxed);
        pthread_mutex_unlock(&pool->submit_mu);
        while (w->sleeping)
            pthread_cond_wait(&w->cv, &pool->mu);
    }
    pool->nalive--;
    pthread_mutex_unlock(&pool->mu);

    if (pool->opts.finalizer)
        pool->opts.finalizer(pool->opts.init_data, w->index, w->data);
    return NULL;
}

/* ------------------------------------------------------------------ loop side */

static void tp_destroy(cf_thread_pool_t *pool)
{
    ev_ref(pool->loop->ev); /* balance the ev_unref() after starting the prepare watcher */
    ev_prepare_stop(pool->loop->ev, &pool->prepare);
    pool->loop->live_executors--;
    for (int i = 0; i < pool->nworkers; i++)
        pthread_cond_destroy(&pool->workers[i].cv);
    pthread_mutex_destroy(&pool->submit_mu);
    pthread_mutex_destroy(&pool->mu);
    free(pool->broken_msg);
    free(pool->workers);
    free(pool);
}

static void tp_complete_later(cf_future_t *f, int err);
static void tp_wake_one(cf_thread_pool_t *pool);
static int tp_need_wake_locked(cf_thread_pool_t *pool);

/* Workers not running a task (starting, between tasks, spinning or sleeping). */
static size_t tp_workers_idle(cf_thread_pool_t *pool)
{
    int running = atomic_load_explicit(&pool->nrunning, memory_order_relaxed);

    return running < pool->nworkers ? (size_t)(pool->nworkers - running) : 0;
}

/* Make the batched tasks visible to the workers: one submit_mu acquisition
 * and at most one wake-up for the whole batch.  Loop thread. */
static void tp_flush(cf_thread_pool_t *pool)
{
    struct cf__list *first, *last, *n;
    int wake;

    if (!pool->nbatch)
        return;
    for (n = pool->batch.next; n != &pool->batch; n = n->next)
        cf__container_of(n, struct cf_future, u.qlink)->where = TP_QUEUED;
    first = pool->batch.next;
    last = pool->batch.prev;
    pthread_mutex_lock(&pool->submit_mu);
    if (atomic_load_explicit(&pool->broken, memory_order_relaxed)) {
        const char *msg = pool->broken_msg;
        pthread_mutex_unlock(&pool->submit_mu); /* broken_msg no longer changes */
        while ((n = cf__list_pop(&pool->batch))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_NONE;
            tp_complete_later(f, CF_EBROKEN);
            f->out.errmsg = msg ? strdup(msg) : NULL;
        }
        pool->nbatch = 0;
        return;
    }
    first->prev = pool->incoming.prev;
    pool->incoming.prev->next = first;
    last->next = &pool->incoming;
    pool->incoming.prev = last;
    atomic_store_explicit(&pool->nin, tp_load(&pool->nin) + pool->nbatch, memory_order_relaxed);
    wake = tp_need_wake_locked(pool);
    pthread_mutex_unlock(&pool->submit_mu);
    cf__list_init(&pool->batch);
    pool->nbatch = 0;
    if (wake)
        tp_wake_one(pool);
}

static void tp_prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev;
    (void)revents;
    tp_flush(w->data);
}

/* Tell the workers to exit once the queue is empty, when no more tasks can come. */
static void tp_maybe_stop(cf_thread_pool_t *pool)
{
    if (!pool->shut || pool->noverflow || atomic_load(&pool->stopping))
        return;
    tp_flush(pool);
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stopping, 1);
    while (atomic_load_explicit(&pool->nsleeping, memory_order_relaxed))
        tp_signal_one_locked(pool);
    pthread_mutex_unlock(&pool->mu);
}

/* Complete `f` on a later iteration with `err` (CF_ECANCELED, CF_EBROKEN...). */
static void tp_complete_later(cf_future_t *f, int err)
{
    tp_outcome_reset(f);
    f->out.err = err;
    if (err == CF_ECANCELED)
        cf__future_set_state(f, CF_FUTURE_CANCELLED);
    f->scheduled = 1;
    f->u.work.run = tp_complete;
    cf__loop_defer(f->loop, &f->u.work);
}

/* Signal one sleeping worker for tasks just added to `incoming` (called
 * after submit_mu was released, when the submit saw a sleeper and no spinner). */
static void tp_wake_one(cf_thread_pool_t *pool)
{
    pthread_mutex_lock(&pool->mu);
    tp_signal_one_locked(pool);
    pthread_mutex_unlock(&pool->mu);
}

/* A worker must be signalled for new tasks: one sleeps and none spins.  submit_mu held. */
static int tp_need_wake_locked(cf_thread_pool_t *pool)
{
    return atomic_load_explicit(&pool->nsleeping, memory_order_relaxed) &&
           !atomic_load_explicit(&pool->nspinning, memory_order_relaxed);
}

/* Move tasks waiting for queue room into the queue (CF_QUEUE_FULL_WAIT). */
static void tp_refill(cf_thread_pool_t *pool)
{
    struct cf__list failed;
    struct cf__list *n;
    size_t moved = 0;
    int wake = 0;
    const char *msg;

    if (!pool->noverflow)
        return;
    tp_flush(pool); /* tasks batched before the overflow ones go first */
    cf__list_init(&failed);
    pthread_mutex_lock(&pool->submit_mu);
    if (atomic_load_explicit(&pool->broken, memory_order_relaxed)) {
        while ((n = cf__list_pop(&pool->overflow)))
            cf__list_push(&failed, n);
        pool->noverflow = 0;
    } else {
        size_t queued = tp_load(&pool->nin) + tp_load(&pool->nq);
        size_t room = queued < pool->opts.max_queued ? pool->opts.max_queued - queued : 0;
        while (moved < room && (n = cf__list_pop(&pool->overflow))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_QUEUED;
            cf__list_push(&pool->incoming, n);
            moved++;
        }
        pool->noverflow -= moved;
        atomic_store_explicit(&pool->nin, tp_load(&pool->nin) + moved, memory_order_relaxed);
        wake = moved && tp_need_wake_locked(pool);
    }
    msg = pool->broken_msg;
    while ((n = cf__list_pop(&failed))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        f->where = TP_NONE;
        tp_complete_later(f, CF_EBROKEN);
        f->out.errmsg = msg ? strdup(msg) : NULL;
    }
    pthread_mutex_unlock(&pool->submit_mu);
    if (wake)
        tp_wake_one(pool);
    tp_maybe_stop(pool);
}

/* The one place a pool task ends: runs on the loop thread from the ready queue. */
static void tp_complete(cf_loop_t *loop, struct cf__work *w)
{
    cf_future_t *f = cf__container_of(w, struct cf_future, u.work);
    cf_thread_pool_t *pool = f->owner;

    (void)loop;
    cf__exec_complete(&pool->cnt, f, CF__COMPLETE_CALLER_DISPATCHES);
    tp_refill(pool);
    cf__future_dispatch(f);
    cf_future_unref(f); /* the pool's reference */
    if (pool->released && pool->cnt.outstanding == 0)
        tp_destroy(pool);
}

/* Take `f` back from the worker slot it waits in; 1 if this thread got it. */
static int tp_claim_taken(cf_thread_pool_t *pool, cf_future_t *f)
{
    for (int i = 0; i < pool->nworkers; i++) {
        for (int j = 0; j < TP_TAKE_MAX; j++) {
            cf_future_t *expect = f;
            if (atomic_compare_exchange_strong_explicit(&pool->workers[i].taken[j], &expect, NULL,
                                                        memory_order_seq_cst, memory_order_seq_cst))
                return 1;
        }
    }
    return 0;
}

static int tp_cancel(cf_future_t *f)
{
    cf_thread_pool_t *pool = f->owner;
    int where;

    /* A worker moves `where` from TP_QUEUED to TP_TAKEN under pool.mu when it takes the task. */
    pthread_mutex_lock(&pool->mu);
    where = f->where;
    if (where == TP_TAKEN && !tp_claim_taken(pool, f))
        where = TP_NONE; /* the worker claimed it: running or done */
    if (where == TP_BATCHED) {
        cf__list_remove(&f->u.qlink);
        pool->nbatch--;
    } else if (where == TP_QUEUED) {
        pthread_mutex_lock(&pool->submit_mu);
        tp_splice_incoming(pool); /* the task is in `queue` now */
        pthread_mutex_unlock(&pool->submit_mu);
        cf__list_remove(&f->u.qlink);
        atomic_store_explicit(&pool->nq, tp_load(&pool->nq) - 1, memory_order_relaxed);
    } else if (where == TP_OVERFLOW) {
        cf__list_remove(&f->u.qlink);
        pool->noverflow--;
    } else {
        atomic_store_explicit(&f->cancel_req, 1, memory_order_relaxed);
    }
    f->where = TP_NONE;
    pthread_mutex_unlock(&pool->mu);
    if (where == TP_NONE)
        return CF_EBUSY;
    tp_complete_later(f, CF_ECANCELED);
    tp_maybe_stop(pool);
    return 0;
}

void cf_thread_pool_opts_init(cf_thread_pool_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->max_workers = cf_cpu_count();
    o->name_prefix = "cf-worker";
    o->on_full = CF_QUEUE_FULL_FAIL;
    o->spin_us = 50;
}

static void tp_join(cf_thread_pool_t *pool)
{
    if (pool->joined)
        return;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].tid, NULL);
    pool->joined = 1;
}

int cf_thread_pool_new(cf_loop_t *loop, const cf_thread_pool_opts *opts, cf_thread_pool_t **out)
{
    cf_thread_pool_opts defaults;
    cf_thread_pool_t *pool;
    sigset_t all, old;
    int rc = 0;

    if (!loop || !out)
        return CF_EINVAL;
    if (!opts) {
        cf_thread_pool_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->max_workers < 1 || (opts->on_full != CF_QUEUE_FULL_FAIL && opts->on_full != CF_QUEUE_FULL_WAIT) ||
        opts->spin_us > 1000000u)
        return CF_EINVAL;

    pool = cf__calloc_aligned(sizeof(*pool));
    if (!pool)
        return CF_ENOMEM;
    pool->workers = (size_t)opts->max_workers > SIZE_MAX / sizeof(*pool->workers)
                        ? NULL
                        : cf__calloc_aligned((size_t)opts->max_workers * sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return CF_ENOMEM;
    }
    pool->ex.ops = &tp_executor_ops;
    pool->ex.loop = loop;
    pool->loop = loop;
    pool->opts = *opts;
    snprintf(pool->prefix, sizeof(pool->prefix), "%s",
             opts->name_prefix && *opts->name_prefix ? opts->name_prefix : "cf-worker");
    pool->opts.name_prefix = NULL; /* not kept: the caller owns the string */
    pool->nworkers = opts->max_workers;
    cf__list_init(&pool->queue);
    cf__list_init(&pool->incoming);
    cf__list_init(&pool->batch);
    cf__list_init(&pool->overflow);
    atomic_init(&pool->nq, 0);
    atomic_init(&pool->nin, 0);
    atomic_init(&pool->stopping, 0);
    atomic_init(&pool->nsleeping, 0);
    atomic_init(&pool->nspinning, 0);
    atomic_init(&pool->nrunning, 0);
    cf__mutex_init(&pool->mu);
    cf__mutex_init(&pool->submit_mu);
    for (int i = 0; i < pool->nworkers; i++)
        pthread_cond_init(&pool->workers[i].cv, NULL);
    loop->live_executors++;
    ev_prepare_init(&pool->prepare, tp_prepare_cb);
    pool->prepare.data = pool;
    ev_prepare_start(loop->ev, &pool->prepare);
    ev_unref(loop->ev); /* only outstanding tasks keep ev_run() alive */

    /* Workers inherit a mask with every signal blocked: signals go to the application's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < pool->nworkers; i++) {
        struct cf__tp_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        pthread_mutex_lock(&pool->mu);
        pool->nalive++;
        pthread_mutex_unlock(&pool->mu);
        rc = pthread_create(&w->tid, NULL, tp_worker_main, w);
        if (rc) {
            pthread_mutex_lock(&pool->mu);
            pool->nalive--;
            pthread_mutex_unlock(&pool->mu);
            break;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc) {
        pool->shut = 1;
        tp_maybe_stop(pool);
        tp_join(pool);
        tp_destroy(pool);
        return -rc;
    }
    *out = pool;
    return 0;
}

/* The submit time recorded for queue-time statistics.  The clock is read for
 * the first task that finds no task queued and then once every
 * TP_STAMP_EVERY submits; tasks in between share the last reading, so a
 * queue time may be overstated by the duration of that many submits. */
#define TP_STAMP_EVERY 16u
/* Largest loop-side batch of submitted tasks moved to the workers at once. */
#define TP_BATCH_MAX 64u
static uint64_t tp_submit_stamp(cf_thread_pool_t *pool)
{
    if (pool->stamp_left == 0 || (pool->nbatch == 0 && tp_load(&pool->nin) == 0 && tp_load(&pool->nq) == 0)) {
        pool->stamp = cf_now_ns();
        pool->stamp_left = TP_STAMP_EVERY;
    }
    pool->stamp_left--;
    return pool->stamp;
}

static int tp_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free,
                     cf_future_t **out)
{
    cf_future_t *f;

    if (pool->shut)
        return CF_ESHUTDOWN;
    if (atomic_load_explicit(&pool->broken, memory_order_relaxed))
        return CF_EBROKEN;
    if (pool->opts.max_queued &&
        (pool->noverflow ||
         pool->nbatch + tp_load(&pool->nin) + tp_load(&pool->nq) >= pool->opts.max_queued) &&
        pool->opts.on_full == CF_QUEUE_FULL_FAIL)
        return CF_EAGAIN;
    f = cf__future_alloc(pool->loop);
    if (!f)
        return CF_ENOMEM;
    cf__exec_accept(&pool->cnt, f, &tp_ops, pool); /* the pool's reference, dropped in tp_complete() */
    f->tq.fn = fn;
    f->tq.arg_len = len;
    f->tq.t_submit = tp_submit_stamp(pool);
    f->arg = arg;
    f->arg_free = arg_free;

    if (pool->opts.max_queued &&
        (pool->noverflow ||
         pool->nbatch + tp_load(&pool->nin) + tp_load(&pool->nq) >= pool->opts.max_queued)) {
        f->where = TP_OVERFLOW;
        cf__list_push(&pool->overflow, &f->u.qlink);
        pool->noverflow++;
    } else {
        f->where = TP_BATCHED;
        cf__list_push(&pool->batch, &f->u.qlink);
        /* Batch only while the workers that are not running a task still
         * find enough tasks waiting: none of them could start this one now. */
        if (++pool->nbatch >= TP_BATCH_MAX || tp_load(&pool->nin) + tp_load(&pool->nq) < tp_workers_idle(pool) + 1u)
            tp_flush(pool);
    }

    *out = f;
    return 0;
}

int cf_thread_pool_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, cf_free_fn arg_free, cf_future_t **out)
{
    if (!pool || !fn || !out)
        return CF_EINVAL;
    return tp_submit(pool, fn, arg, 0, arg_free, out);
}

static int tp_ex_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out)
{
    return tp_submit((cf_thread_pool_t *)ex, s->fn, s->arg, s->len, (s->flags & CF__SUBMIT_OWNED) ? free : s->arg_free,
                     out);
}

static int tp_ex_shutdown(cf_executor_t *ex, int flags)
{
    return cf_thread_pool_shutdown((cf_thread_pool_t *)ex, flags);
}

static int tp_ex_workers(const cf_executor_t *ex)
{
    return ((const cf_thread_pool_t *)ex)->nworkers;
}

static const struct cf__executor_ops tp_executor_ops = {
    .kind = "thread pool",
    .submit_task = tp_ex_submit,
    .shutdown = tp_ex_shutdown,
    .workers = tp_ex_workers,
    .shares_memory = 1,
};

cf_executor_t *cf_thread_pool_executor(cf_thread_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return &pool->ex;
}

static int tp_drained(void *pool)
{
    return ((cf_thread_pool_t *)pool)->cnt.outstanding == 0;
}

int cf_thread_pool_shutdown(cf_thread_pool_t *pool, int flags)
{
    if (!pool || (flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL)))
        return CF_EINVAL;
    pool->shut = 1;
    if (flags & CF_SHUTDOWN_CANCEL) {
        struct cf__list taken;
        struct cf__list *n;

        cf__list_init(&taken);
        while ((n = cf__list_pop(&pool->batch)))
            cf__list_push(&taken, n);
        pool->nbatch = 0;
        pthread_mutex_lock(&pool->mu);
        pthread_mutex_lock(&pool->submit_mu);
        tp_splice_incoming(pool);
        pthread_mutex_unlock(&pool->submit_mu);
        while ((n = cf__list_pop(&pool->queue)))
            cf__list_push(&taken, n);
        atomic_store_explicit(&pool->nq, 0, memory_order_relaxed);
        pthread_mutex_unlock(&pool->mu);
        /* Tasks taken by a worker but not started are cancelled like queued ones. */
        for (int i = 0; i < pool->nworkers; i++) {
            for (int j = 0; j < TP_TAKE_MAX; j++) {
                cf_future_t *g = atomic_load_explicit(&pool->workers[i].taken[j], memory_order_seq_cst);
                if (g && atomic_compare_exchange_strong_explicit(&pool->workers[i].taken[j], &g, NULL,
                                                                 memory_order_seq_cst, memory_order_seq_cst))
                    cf__list_push(&taken, &g->u.qlink);
            }
        }
        /* Only the loop frees futures, and a worker clears `current` before
         * handing its task back: a future seen here is still alive. */
        for (int i = 0; i < pool->nworkers; i++) {
            cf_future_t *cur = atomic_load_explicit(&pool->workers[i].current, memory_order_acquire);
            if (cur)
                atomic_store_explicit(&cur->cancel_req, 1, memory_order_relaxed);
        }
        while ((n = cf__list_pop(&pool->overflow)))
            cf__list_push(&taken, n);
        pool->noverflow = 0;
        while ((n = cf__list_pop(&taken))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_NONE;
            tp_complete_later(f, CF_ECANCELED);
        }
    }
    tp_maybe_stop(pool);
    if (flags & CF_SHUTDOWN_WAIT) {
        int rc = cf__loop_run_until(pool->loop, tp_drained, pool, -1);
        if (rc)
            return rc;
        tp_join(pool);
    }
    return 0;
}

void cf_thread_pool_free(cf_thread_pool_t *pool)
{
    if (!pool)
        return;
    CF_REQUIRE(!pool->released, "thread pool freed twice");
    cf_thread_pool_shutdown(pool, CF_SHUTDOWN_CANCEL);
    tp_join(pool);
    pool->released = 1;
    if (pool->cnt.outstanding == 0)
        tp_destroy(pool);
}

int cf_thread_pool_stats(cf_thread_pool_t *pool, cf_pool_stats *out)
{
    if (!pool || !out)
        return CF_EINVAL;
    pthread_mutex_lock(&pool->mu);
    pthread_mutex_lock(&pool->submit_mu);
    out->queued = pool->nbatch + tp_load(&pool->nin) + tp_load(&pool->nq) + pool->noverflow;
    pthread_mutex_unlock(&pool->submit_mu);
    out->queue_ns_total = pool->queue_ns_total;
    out->queue_ns_max = pool->queue_ns_max;
    out->workers = pool->nalive;
    pthread_mutex_unlock(&pool->mu);
    out->running = 0;
    for (int i = 0; i < pool->nworkers; i++) {
        out->running += atomic_load_explicit(&pool->workers[i].current, memory_order_acquire) != NULL;
        for (int j = 0; j < TP_TAKE_MAX; j++) /* taken, not started: still queued */
            out->queued += atomic_load_explicit(&pool->workers[i].taken[j], memory_order_relaxed) != NULL;
    }
    cf__exec_counters_get(&pool->cnt, out);
    return 0;
}
