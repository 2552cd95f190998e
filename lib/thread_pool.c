/*
 * thread_pool.c - the thread-pool executor: its public API (options,
 * create, submit, shutdown, free, statistics), the executor adapter and
 * destroy.
 *
 * DESIGN
 *
 * Files.  This comment describes the whole pool.  The worker threads
 * (taking, running, spinning, sleeping, handing back) are in tp_worker.c;
 * the loop side of the hand-off (batch flush, completion, cancel, refill,
 * stop) is in tp_loop.c; the types shared by the three are in tp.h.
 * This file takes mu and submit_mu only in cf_thread_pool_new(),
 * cf_thread_pool_shutdown() and cf_thread_pool_stats(), in the order below.
 *
 *
 * Threads.  The loop thread submits, cancels, shuts down and completes
 * futures.  N worker threads (named "<prefix>-<i>", every signal blocked,
 * SCHED_BATCH where the system has it) take tasks from the queue and run
 * them.  SCHED_BATCH keeps a worker that is woken up from preempting the
 * thread that woke it, the loop thread submitting a burst (see "Wake-ups").
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
 * Batching.  A submit appends to `batch`, which cf__tp_flush() moves to
 * `incoming` under one submit_mu acquisition.  The batch is flushed at once
 * unless the tasks already visible to the workers outnumber the workers that
 * are not running one, so a task starts as soon as a worker could take it
 * even when the application does not return to the loop.  That test reads
 * counters the workers write (nin, nq, nrunning), which costs the loop a
 * cache miss each time, so it is made on the first task of a batch and
 * then on every TP_CHECK_EVERY-th: a burst leaves a starving worker
 * waiting for at most that many submits.  Otherwise the batch is flushed at
 * TP_BATCH_MAX tasks,
 * from an ev_prepare watcher before the loop waits, and before shutdown or
 * a refill from overflow.  Batched tasks count as queued and cancel at once.
 *
 * Taking.  Under mu a worker pops k tasks into its `taken` slots, k = 1
 * unless the queue is long: k = nq / (2 * workers), at most TP_TAKE_LONG
 * (16), so every other worker still finds at least as many tasks as this
 * one took and a long task holds back at most a few short ones.  Each
 * worker keeps a moving average of what its tasks took, from the batches
 * of several (the clock is read once per batch, which also serves the
 * queue-time statistics of the next take; a task taken alone says nothing
 * about a long queue).  While that is under TP_SHORT_NS (5 us) it takes up
 * to TP_TAKE_MAX (32), and the batch's tasks submitted as batchable
 * (CF__SUBMIT_BATCHABLE: a map's chunks) go back together with at most one
 * wake-up of the loop, once the batch ends or has run for TP_HOLD_NS (50
 * us), whichever comes first: a map with chunksize 1 then wakes its loop
 * once per batch instead of once every few items (each wake-up is an
 * eventfd write for the worker and an epoll_wait() return for the loop).
 * Any other task goes back as soon as it finished, and the held ones go
 * before it runs: a task may wait for the loop to have seen an earlier one
 * (a done callback that releases it), which holding that one back would
 * deadlock; a map's item has no business waiting for the map's own
 * results.  A slot is claimed by whoever swaps its pointer to NULL first:
 * the worker (atomic exchange, just before it runs the task) or the loop
 * (compare-and-swap, in cancel and in shutdown), so a taken task that has
 * not started still cancels at once.
 *
 * Life of a task.
 *   submit (loop):  future gets the pool's reference; appended to `batch`
 *                   (then `incoming`, see above).
 *   take (worker):  under mu: pop into a `taken` slot, where = TP_TAKEN.
 *   claim (worker): worker.current = f, then exchange the slot with NULL;
 *                   state PENDING -> RUNNING.
 *   run (worker):   fn(task, arg) without locks; outcome written into the future.
 *   hand back:      worker.current = NULL, then the future is pushed onto the
 *                   lock-free loop inbox (at once, or a batchable short task
 *                   with its batch's others, see "Taking"); the ev_async
 *                   wake-up is sent only when the loop had found the inbox
 *                   empty.
 *   complete (loop): cf__tp_complete(): final state, counters, arg_free, refill from
 *                   overflow, done callbacks, drop the pool's reference.
 * Cancel of a batched, queued or taken-but-unclaimed task removes it (under
 * mu and submit_mu for the shared lists, by claiming the slot for a taken
 * one) and defers cf__tp_complete() to the next iteration; the state is
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
 * worker never spins.  A signalled worker, being SCHED_BATCH, waits for a
 * free CPU instead of preempting the loop thread that signalled it: with
 * more threads than CPUs, a burst of submits is no longer interrupted at
 * every wake-up (on 2 CPUs that halved the CPU time per task of tp_batch and
 * doubled its throughput).
 *
 * Lock order.  mu -> submit_mu (the inbox takes no lock).  The loop thread takes submit_mu and mu
 * one at a time when submitting, and never holds either while running user
 * code.  What each lock guards is reached only through tp_mu(pool) and
 * tp_smu(pool) (tp.h), which clang's -Wthread-safety lets a function call
 * only while it holds that lock (see tsa.h); the order itself is checked by
 * ThreadSanitizer at run time.
 *
 * Invariants.
 *   - Only the loop thread frees futures, and a worker clears worker.current
 *     (release) before handing its task back, so a future the loop reads from
 *     worker.current is alive.  A worker sets current before it claims a
 *     slot with an exchange (acquire-release), so a shutdown whose
 *     compare-and-swap fails has read the NULL that exchange wrote, and with
 *     it sees the task in current and sets its cancel_req.
 *   - `where` of a task in `incoming` or `queue` is TP_QUEUED; a worker sets
 *     TP_TAKEN under mu when it takes it and never writes it again; cancel
 *     reads it under mu.
 *   - A future in a `taken` slot is alive: only the claimer completes it.
 *   - f->tq (fn, arg_len, submit time) is valid until a worker takes the
 *     task; the worker copies it out and clears the outcome that shares its
 *     room.
 *   - pool.cnt.outstanding counts accepted tasks whose cf__tp_complete() has not run;
 *     each holds one reference on the loop (cf__loop_task_begin/end) and one
 *     reference on its future.
 *   - the pool struct is destroyed when the user released it and
 *     outstanding == 0.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "tp.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cf__future_ops tp_ops = {.cancel = cf__tp_cancel};
static const struct cf__executor_ops tp_executor_ops;

void cf__tp_destroy(cf_thread_pool_t *pool)
{
    ev_ref(pool->loop->ev); /* balance the ev_unref() after starting the prepare watcher */
    ev_prepare_stop(pool->loop->ev, &pool->prepare);
    pool->loop->live_executors--;
    for (int i = 0; i < pool->nworkers; i++)
        pthread_cond_destroy(&pool->workers[i].cv);
    pthread_mutex_destroy(&pool->submit_mu);
    pthread_mutex_destroy(&pool->mu);
    free(tp_smu_unshared(pool)->broken_msg); /* every worker was joined */
    free(pool->workers);
    free(pool);
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

/* Bounds of the options cf_thread_pool_new() accepts. */
#define TP_MAX_WORKERS 4096
#define TP_MAX_SPIN_US 1000000u

int cf_thread_pool_new(cf_loop_t *loop, const cf_thread_pool_opts *opts, cf_thread_pool_t **out)
{
    cf_thread_pool_opts defaults;
    cf_thread_pool_t *pool;
    sigset_t all, old;
    int rc = 0;

    if (!loop)
        return CF__EINVAL("loop is NULL");
    if (!out)
        return CF__EINVAL("out is NULL");
    if (!opts) {
        cf_thread_pool_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->max_workers < 1 || opts->max_workers > TP_MAX_WORKERS)
        return cf__set_error(CF_EINVAL, "%s: opts->max_workers must be between 1 and %d (got %d)", __func__,
                             TP_MAX_WORKERS, opts->max_workers);
    if (opts->on_full != CF_QUEUE_FULL_FAIL && opts->on_full != CF_QUEUE_FULL_WAIT)
        return cf__set_error(CF_EINVAL, "%s: opts->on_full must be CF_QUEUE_FULL_FAIL or CF_QUEUE_FULL_WAIT (got %d)",
                             __func__, (int)opts->on_full);
    if (opts->spin_us > TP_MAX_SPIN_US)
        return cf__set_error(CF_EINVAL, "%s: opts->spin_us must be at most %u (got %u)", __func__, TP_MAX_SPIN_US,
                             opts->spin_us);

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
    pool->ncpu = cf_cpu_count();
    cf__list_init(&tp_mu_unshared(pool)->queue); /* no worker runs yet */
    cf__list_init(&tp_smu_unshared(pool)->incoming);
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
    ev_prepare_init(&pool->prepare, cf__tp_prepare_cb);
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
        cf__mutex_lock(&pool->mu);
        tp_mu(pool)->nalive++;
        cf__mutex_unlock(&pool->mu);
        rc = pthread_create(&w->tid, NULL, cf__tp_worker_main, w);
        if (rc) {
            cf__mutex_lock(&pool->mu);
            tp_mu(pool)->nalive--;
            cf__mutex_unlock(&pool->mu);
            break;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc) {
        pool->shut = 1;
        cf__tp_maybe_stop(pool);
        tp_join(pool);
        cf__tp_destroy(pool);
        return -rc;
    }
    *out = pool;
    return 0;
}

/* The submit time recorded for queue-time statistics.  The clock is read for
 * the first task that finds no task queued and then once every
 * TP_STAMP_EVERY submits; tasks in between share the last reading, so a
 * queue time may be overstated by the duration of that many submits (a few
 * microseconds).  A clock reading costs as much as a few submits. */
#define TP_STAMP_EVERY 64u
/* Largest loop-side batch of submitted tasks moved to the workers at once. */
#define TP_BATCH_MAX 64u
/* A batch checks whether a worker is starving on its first task and then on
 * every TP_CHECK_EVERY-th (a power of two; see "Batching"). */
#define TP_CHECK_EVERY 8u
static uint64_t tp_submit_stamp(cf_thread_pool_t *pool)
{
    if (pool->stamp_left == 0 || (pool->nbatch == 0 && tp_load(&pool->nin) == 0 && tp_load(&pool->nq) == 0)) {
        pool->stamp = cf_now_ns();
        pool->stamp_left = TP_STAMP_EVERY;
    }
    pool->stamp_left--;
    return pool->stamp;
}

/* A submit to a broken pool: CF_EBROKEN, with why it broke as the message. */
static int tp_refuse_broken(cf_thread_pool_t *pool)
{
    const char *msg;
    int rc;

    cf__mutex_lock(&pool->submit_mu);
    msg = tp_smu(pool)->broken_msg;
    rc = cf__set_error(CF_EBROKEN, "%s", msg ? msg : "thread pool broken");
    cf__mutex_unlock(&pool->submit_mu);
    return rc;
}

static int tp_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free, int batchable,
                     cf_future_t **out)
{
    cf_future_t *f;

    if (pool->shut)
        return cf__set_error(CF_ESHUTDOWN, "thread pool: shut down, it takes no new tasks");
    if (atomic_load_explicit(&pool->broken, memory_order_relaxed))
        return tp_refuse_broken(pool);
    if (pool->opts.max_queued &&
        (pool->noverflow ||
         pool->nbatch + tp_load(&pool->nin) + tp_load(&pool->nq) >= pool->opts.max_queued) &&
        pool->opts.on_full == CF_QUEUE_FULL_FAIL)
        return CF_EAGAIN;
    f = cf__future_alloc(pool->loop);
    if (!f)
        return CF_ENOMEM;
    cf__exec_accept(&pool->cnt, f, &tp_ops, pool); /* the pool's reference, dropped in cf__tp_complete() */
    f->tq.fn = fn;
    f->tq.arg_len = len;
    f->tq.t_submit = tp_submit_stamp(pool);
    f->tq.batchable = (uint8_t)batchable;
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
        if (++pool->nbatch >= TP_BATCH_MAX ||
            ((pool->nbatch & (TP_CHECK_EVERY - 1)) == 1 &&
             tp_load(&pool->nin) + tp_load(&pool->nq) < cf__tp_workers_idle(pool) + 1u))
            cf__tp_flush(pool);
    }

    *out = f;
    return 0;
}

int cf_thread_pool_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, cf_free_fn arg_free, cf_future_t **out)
{
    if (!pool)
        return CF__EINVAL("pool is NULL");
    if (!fn)
        return CF__EINVAL("fn is NULL");
    if (!out)
        return CF__EINVAL("out is NULL");
    return tp_submit(pool, fn, arg, 0, arg_free, 0, out);
}

static int tp_ex_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out)
{
    return tp_submit((cf_thread_pool_t *)ex, s->fn, s->arg, s->len, (s->flags & CF__SUBMIT_OWNED) ? free : s->arg_free,
                     (s->flags & CF__SUBMIT_BATCHABLE) != 0, out);
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
    if (!pool)
        return CF__EINVAL("pool is NULL");
    if (flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL))
        return cf__set_error(CF_EINVAL, "%s: flags has unknown bits 0x%x (known: CF_SHUTDOWN_WAIT, CF_SHUTDOWN_CANCEL)",
                             __func__, (unsigned)(flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL)));
    pool->shut = 1;
    if (flags & CF_SHUTDOWN_CANCEL) {
        struct cf__list taken;
        struct cf__list *n;

        cf__list_init(&taken);
        while ((n = cf__list_pop(&pool->batch)))
            cf__list_push(&taken, n);
        pool->nbatch = 0;
        cf__mutex_lock(&pool->mu);
        cf__mutex_lock(&pool->submit_mu);
        cf__tp_splice_incoming(pool);
        cf__mutex_unlock(&pool->submit_mu);
        while ((n = cf__list_pop(&tp_mu(pool)->queue)))
            cf__list_push(&taken, n);
        atomic_store_explicit(&pool->nq, 0, memory_order_relaxed);
        cf__mutex_unlock(&pool->mu);
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
            cf__tp_complete_later(f, CF_ECANCELED);
        }
    }
    cf__tp_maybe_stop(pool);
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
        cf__tp_destroy(pool);
}

int cf_thread_pool_stats(cf_thread_pool_t *pool, cf_pool_stats *out)
{
    if (!pool)
        return CF__EINVAL("pool is NULL");
    if (!out)
        return CF__EINVAL("out is NULL");
    cf__mutex_lock(&pool->mu);
    cf__mutex_lock(&pool->submit_mu);
    out->queued = pool->nbatch + tp_load(&pool->nin) + tp_load(&pool->nq) + pool->noverflow;
    cf__mutex_unlock(&pool->submit_mu);
    out->queue_ns_total = tp_mu(pool)->queue_ns_total;
    out->queue_ns_max = tp_mu(pool)->queue_ns_max;
    out->workers = tp_mu(pool)->nalive;
    cf__mutex_unlock(&pool->mu);
    out->running = 0;
    for (int i = 0; i < pool->nworkers; i++) {
        out->running += atomic_load_explicit(&pool->workers[i].current, memory_order_acquire) != NULL;
        for (int j = 0; j < TP_TAKE_MAX; j++) /* taken, not started: still queued */
            out->queued += atomic_load_explicit(&pool->workers[i].taken[j], memory_order_relaxed) != NULL;
    }
    cf__exec_counters_get(&pool->cnt, out);
    return 0;
}
