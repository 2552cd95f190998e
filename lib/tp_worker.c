/*
 * tp_worker.c - the thread pool's worker threads.
 *
 * DESIGN
 *
 * Owns what runs on a worker thread: the thread body (name, scheduling
 * policy, initializer, finalizer), taking tasks from `queue` into the worker's `taken` slots
 * under mu (moving `incoming` over under submit_mu when `queue` is empty),
 * claiming and running each, handing it back to the loop inbox, spinning
 * for spin_us after a burst and sleeping on the worker's own condition
 * variable, and breaking the pool when an initializer fails.  See
 * thread_pool.c for the whole design ("Taking", "Wake-ups", invariants).
 *
 * Lock order.  mu -> submit_mu.  A worker holds mu while it takes tasks
 * and while it sleeps (pthread_cond_wait releases it); it takes submit_mu
 * only inside mu, to splice `incoming` or to register as a sleeper.  It
 * runs tasks and hands them back with no lock held; the loop inbox is
 * lock-free.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "tp.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Move the submit side's list to the take side.  Both locks held. */
void cf__tp_splice_incoming(cf_thread_pool_t *pool)
{
    struct cf__list *first = tp_smu(pool)->incoming.next, *last = tp_smu(pool)->incoming.prev;

    if (first == &tp_smu(pool)->incoming)
        return;
    first->prev = tp_mu(pool)->queue.prev;
    tp_mu(pool)->queue.prev->next = first;
    last->next = &tp_mu(pool)->queue;
    tp_mu(pool)->queue.prev = last;
    cf__list_init(&tp_smu(pool)->incoming);
    atomic_store_explicit(&pool->nq, tp_load(&pool->nq) + tp_load(&pool->nin), memory_order_relaxed);
    atomic_store_explicit(&pool->nin, 0, memory_order_relaxed);
}

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

/* Run this worker under SCHED_BATCH (Linux): a worker that wakes up then does
 * not preempt the thread that woke it.  That thread is usually the loop
 * thread in the middle of a burst of submits; under the default policy every
 * wake-up of a sleeping worker took the CPU from it (on a machine with fewer
 * CPUs than the loop and the workers, thousands of times per million tasks),
 * and the tasks it had not yet submitted waited.  The weight of the thread
 * (its nice value) is unchanged; an initializer may choose another policy. */
static void tp_set_batch_policy(void)
{
#ifdef SCHED_BATCH
    struct sched_param sp = {.sched_priority = 0};

    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp); /* best effort */
#endif
}

/* Hand a finished (or failed-without-running) task back to the loop; returns
 * 1 when the caller must wake the loop (after releasing any lock it holds). */
static int tp_hand_back(cf_thread_pool_t *pool, cf_future_t *f)
{
    f->u.work.run = cf__tp_complete;
    return cf__loop_post_nowake(pool->loop, &f->u.work);
}

/* Hand back the finished tasks a batch held (see "Taking" in
 * thread_pool.c), with one wake-up of the loop at most. */
static void tp_hand_back_held(cf_thread_pool_t *pool, cf_future_t **done, size_t *ndone)
{
    int wake = 0;

    for (size_t i = 0; i < *ndone; i++)
        wake |= tp_hand_back(pool, done[i]);
    *ndone = 0;
    if (wake)
        cf__loop_wake(pool->loop);
}

/* An initializer failed: the pool is broken; fail every queued task. */
static void tp_break(struct cf__tp_worker *w, int err)
{
    cf_thread_pool_t *pool = w->pool;
    struct cf__list *n;
    const char *msg;
    int wake = 0;

    cf__mutex_lock(&pool->mu);
    cf__mutex_lock(&pool->submit_mu);
    if (!atomic_load_explicit(&pool->broken, memory_order_relaxed)) {
        atomic_store_explicit(&pool->broken, 1, memory_order_relaxed);
        if (asprintf(&tp_smu(pool)->broken_msg, "thread pool broken: initializer of worker %s-%d failed: %s (%s)",
                     pool->prefix, w->index, cf_strerror(err), cf_err_name(err)) < 0)
            tp_smu(pool)->broken_msg = NULL;
    }
    cf__tp_splice_incoming(pool);
    msg = tp_smu(pool)->broken_msg; /* set once, above: it stays valid until the pool is destroyed */
    cf__mutex_unlock(&pool->submit_mu);
    while ((n = cf__list_pop(&tp_mu(pool)->queue))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        atomic_fetch_sub_explicit(&pool->nq, 1, memory_order_relaxed);
        f->where = TP_NONE;
        tp_outcome_reset(f);
        f->out.err = CF_EBROKEN;
        f->out.errmsg = msg ? strdup(msg) : NULL;
        wake |= tp_hand_back(pool, f);
    }
    tp_mu(pool)->nalive--;
    cf__mutex_unlock(&pool->mu);
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
void cf__tp_signal_one_locked(cf_thread_pool_t *pool)
{
    for (int i = 0; i < pool->nworkers; i++) {
        struct cf__tp_worker *w = &pool->workers[i];
        if (*tp_sleeping(pool, w)) {
            *tp_sleeping(pool, w) = 0;
            atomic_fetch_sub_explicit(&pool->nsleeping, 1, memory_order_relaxed);
            pthread_cond_signal(&w->cv);
            return;
        }
    }
}

/* Wake one sleeping worker if tasks are waiting that no awake worker is
 * about to take.  Called with pool.mu held. */
static void tp_wake_more_locked(cf_thread_pool_t *pool) CF__REQUIRES(pool->mu);
static void tp_wake_more_locked(cf_thread_pool_t *pool)
{
    if (atomic_load_explicit(&pool->nsleeping, memory_order_relaxed) &&
        !atomic_load_explicit(&pool->nspinning, memory_order_relaxed) && (tp_load(&pool->nq) || tp_load(&pool->nin)))
        cf__tp_signal_one_locked(pool);
}

void *cf__tp_worker_main(void *arg)
{
    struct cf__tp_worker *w = arg;
    cf_thread_pool_t *pool = w->pool;
    int rc = 0, may_spin = 0, clock_ok = 0;
    uint64_t t_end = 0; /* clock reading after the last batch (valid with clock_ok) */

    tp_set_thread_name(pool, w->index);
    tp_set_batch_policy();
    if (pool->opts.initializer) {
        rc = pool->opts.initializer(pool->opts.init_data, w->index, &w->data);
        if (rc) {
            tp_break(w, rc < 0 ? rc : CF_EFAIL);
            return NULL;
        }
    }

    cf__mutex_lock(&pool->mu);
    for (;;) {
        struct cf__list *n;

        if (cf__list_empty(&tp_mu(pool)->queue) && tp_load(&pool->nin)) {
            cf__mutex_lock(&pool->submit_mu);
            cf__tp_splice_incoming(pool);
            cf__mutex_unlock(&pool->submit_mu);
        }
        if (!cf__list_empty(&tp_mu(pool)->queue)) {
            size_t nq = tp_load(&pool->nq);
            size_t k = nq / (2u * (size_t)pool->nworkers), got = 0;
            int short_tasks = w->task_ns && w->task_ns < TP_SHORT_NS;
            size_t kmax = short_tasks ? TP_TAKE_MAX : TP_TAKE_LONG;
            uint64_t now = clock_ok ? t_end : cf_now_ns();
            cf_future_t *done[TP_TAKE_MAX];
            size_t ndone = 0, ran = 0;

            /* Take several only while the queue is long: each other worker still finds
             * at least as many tasks as this one took (more of them while tasks are short). */
            if (k < 1)
                k = 1;
            if (k > kmax)
                k = kmax;
            for (; got < k && (n = cf__list_pop(&tp_mu(pool)->queue)); got++) {
                cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
                uint64_t waited = now > f->tq.t_submit ? now - f->tq.t_submit : 0;

                tp_mu(pool)->queue_ns_total += waited;
                if (waited > tp_mu(pool)->queue_ns_max)
                    tp_mu(pool)->queue_ns_max = waited;
                f->where = TP_TAKEN;
                atomic_store_explicit(&w->taken[got], f, memory_order_relaxed);
                nq--;
            }
            atomic_store_explicit(&pool->nq, nq, memory_order_relaxed);
            atomic_store_explicit(&pool->nrunning, atomic_load_explicit(&pool->nrunning, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            tp_wake_more_locked(pool);
            cf__mutex_unlock(&pool->mu);

            for (size_t i = 0; i < got; i++) {
                cf_future_t *f = atomic_load_explicit(&w->taken[i], memory_order_relaxed);
                cf_task_fn fn;
                size_t arg_len;
                int hold;

                if (!f)
                    continue; /* cancelled by the loop thread */
                /* `current` first: a shutdown that fails to claim the slot read
                 * this exchange's NULL (acquire), so it then sees `current`. */
                atomic_store_explicit(&w->current, f, memory_order_relaxed);
                f = atomic_exchange_explicit(&w->taken[i], NULL, memory_order_acq_rel);
                if (!f) {
                    atomic_store_explicit(&w->current, NULL, memory_order_release);
                    continue;
                }
                fn = f->tq.fn;
                arg_len = f->tq.arg_len;
                hold = short_tasks && f->tq.batchable;
                if (!hold)
                    tp_hand_back_held(pool, done, &ndone); /* this task might wait for the loop to see them */
                cf__future_set_state(f, CF_FUTURE_RUNNING);
                tp_outcome_reset(f);
                tp_run_task(w, f, fn, arg_len);
                ran++;

                /* Cleared before the hand-back: once the loop sees the task it may free it. */
                atomic_store_explicit(&w->current, NULL, memory_order_release);
                if (!hold) {
                    if (tp_hand_back(pool, f))
                        cf__loop_wake(pool->loop);
                    continue;
                }
                done[ndone++] = f; /* handed back with the batch's others */
                if (cf_now_ns() - now > TP_HOLD_NS) {
                    tp_hand_back_held(pool, done, &ndone); /* not so short after all */
                    short_tasks = 0;
                }
            }
            tp_hand_back_held(pool, done, &ndone);
            /* What this batch's tasks took each (see "Taking"; a task taken
             * alone is not counted); the reading also serves the next take if
             * it follows at once. */
            t_end = cf_now_ns();
            clock_ok = 1;
            if (ran > 1) {
                uint64_t each = (t_end - now) / ran;
                w->task_ns = w->task_ns ? (3 * w->task_ns + each) / 4 : each;
            }
            may_spin = 1;
            cf__mutex_lock(&pool->mu);
            atomic_store_explicit(&pool->nrunning, atomic_load_explicit(&pool->nrunning, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
            continue;
        }
        clock_ok = 0;
        if (atomic_load_explicit(&pool->stopping, memory_order_relaxed) && !tp_load(&pool->nin))
            break;
        /* One spinner is enough to take the next task at once; more would
         * only take cores from the loop thread that feeds them. */
        if (may_spin && pool->opts.spin_us && !atomic_load_explicit(&pool->nspinning, memory_order_relaxed)) {
            uint64_t until = cf_now_ns() + (uint64_t)pool->opts.spin_us * 1000u;
            unsigned spins = 0;

            may_spin = 0;
            atomic_fetch_add_explicit(&pool->nspinning, 1, memory_order_relaxed);
            cf__mutex_unlock(&pool->mu);
            while (!tp_load(&pool->nin) && !tp_load(&pool->nq) &&
                   !atomic_load_explicit(&pool->stopping, memory_order_relaxed) &&
                   ((++spins & 31u) || cf_now_ns() < until))
                cf__cpu_relax();
            cf__mutex_lock(&pool->mu);
            /* A submitter that saw us spinning did not signal: we re-check both lists below. */
            atomic_fetch_sub_explicit(&pool->nspinning, 1, memory_order_relaxed);
            continue;
        }
        /* Register as a sleeper under submit_mu, after seeing `incoming` empty,
         * so that a submit either is seen here or sees the sleeper. */
        cf__mutex_lock(&pool->submit_mu);
        if (tp_load(&pool->nin)) {
            cf__mutex_unlock(&pool->submit_mu);
            continue;
        }
        *tp_sleeping(pool, w) = 1;
        atomic_fetch_add_explicit(&pool->nsleeping, 1, memory_order_relaxed);
        cf__mutex_unlock(&pool->submit_mu);
        while (*tp_sleeping(pool, w))
            cf__cond_wait(&w->cv, &pool->mu);
    }
    tp_mu(pool)->nalive--;
    cf__mutex_unlock(&pool->mu);

    if (pool->opts.finalizer)
        pool->opts.finalizer(pool->opts.init_data, w->index, w->data);
    return NULL;
}
