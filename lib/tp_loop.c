/*
 * tp_loop.c - the loop side of the thread pool's hand-off.
 *
 * DESIGN
 *
 * Owns what the loop thread does between a submit and a task's end: the
 * loop-only `batch` and its flush into `incoming` (one submit_mu
 * acquisition and at most one wake-up per batch, and the ev_prepare
 * watcher that flushes before the loop waits), the completion of a
 * finished task (cf__tp_complete(), run from the loop inbox or the ready
 * queue), cancel of a batched, queued, taken or overflowing task, the
 * refill from `overflow` under CF_QUEUE_FULL_WAIT, and telling the workers
 * to stop.  Every function here runs on the loop thread.  See
 * thread_pool.c for the whole design.
 *
 * Lock order.  mu -> submit_mu.  cf__tp_cancel() takes mu, then submit_mu
 * inside it to splice `incoming`; the flush and the refill take submit_mu
 * alone and, after releasing it, mu alone to signal a sleeper.  No lock is
 * held while done callbacks run.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "tp.h"

#include <stdlib.h>
#include <string.h>

static void tp_wake_one(cf_thread_pool_t *pool);
static int tp_need_wake_locked(cf_thread_pool_t *pool) CF__REQUIRES(pool->submit_mu);


/* Workers not running a task (starting, between tasks, spinning or sleeping). */
size_t cf__tp_workers_idle(cf_thread_pool_t *pool)
{
    int running = atomic_load_explicit(&pool->nrunning, memory_order_relaxed);

    return running < pool->nworkers ? (size_t)(pool->nworkers - running) : 0;
}

/* Make the batched tasks visible to the workers: one submit_mu acquisition
 * and at most one wake-up for the whole batch.  Loop thread. */
void cf__tp_flush(cf_thread_pool_t *pool)
{
    struct cf__list *first, *last, *n;
    int wake;

    if (!pool->nbatch)
        return;
    for (n = pool->batch.next; n != &pool->batch; n = n->next)
        cf__container_of(n, struct cf_future, u.qlink)->where = TP_QUEUED;
    first = pool->batch.next;
    last = pool->batch.prev;
    cf__mutex_lock(&pool->submit_mu);
    if (atomic_load_explicit(&pool->broken, memory_order_relaxed)) {
        const char *msg = tp_smu(pool)->broken_msg;
        cf__mutex_unlock(&pool->submit_mu); /* broken_msg no longer changes */
        while ((n = cf__list_pop(&pool->batch))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_NONE;
            cf__tp_complete_later(f, CF_EBROKEN);
            f->out.errmsg = msg ? strdup(msg) : NULL;
        }
        pool->nbatch = 0;
        return;
    }
    first->prev = tp_smu(pool)->incoming.prev;
    tp_smu(pool)->incoming.prev->next = first;
    last->next = &tp_smu(pool)->incoming;
    tp_smu(pool)->incoming.prev = last;
    atomic_store_explicit(&pool->nin, tp_load(&pool->nin) + pool->nbatch, memory_order_relaxed);
    wake = tp_need_wake_locked(pool);
    cf__mutex_unlock(&pool->submit_mu);
    cf__list_init(&pool->batch);
    pool->nbatch = 0;
    if (wake)
        tp_wake_one(pool);
}

/* A wait of the loop for this pool's tasks ended (a completion came, or the poll saw one). */
static void tp_waited(cf_thread_pool_t *pool, uint64_t ns)
{
    if (ns > 2 * CF__TP_POLL_NS)
        ns = 2 * CF__TP_POLL_NS;
    pool->wait_avg = (pool->wait_avg * 3 + ns) / 4;
}

static int tp_poll_give_up(void *data, uint64_t now)
{
    cf_thread_pool_t *pool = data;

    /* No worker has a task: it sleeps, or has no CPU (another process has
     * it), and polling would only keep the CPU from it. */
    return now >= pool->block_ns + CF__TP_POLL_QUIET_NS && !atomic_load_explicit(&pool->nrunning, memory_order_relaxed);
}

/*
 * The loop-side poll.  A task's end wakes a waiting loop through the
 * eventfd (the worker's write, the loop's return from epoll_wait): on a
 * virtual machine that costs more than a short task.  So just before the
 * loop waits, while this pool has tasks in flight but fewer than there are
 * CPUs (each task can have a CPU and one is left for the loop: a poll must
 * not take a CPU from a worker) and the loop's recent waits for this pool were short
 * (wait_avg below CF__TP_POLL_NS), the loop looks at its inbox for up to
 * CF__TP_POLL_NS with the wake-up disarmed (cf__loop_poll_inbox()), and
 * gives up after CF__TP_POLL_QUIET_NS while no worker runs a task (and
 * never polls with opts.spin_us 0: a pool asked not to spin).  With
 * long tasks the waits are long and the loop does not poll (it notes when
 * it went to wait; cf__tp_complete() counts the wait).  Nothing else
 * changes: completions come through the inbox as before.
 */
static void tp_poll(cf_thread_pool_t *pool)
{
    cf_loop_t *loop = pool->loop;
    uint64_t t0;

    pool->block_ns = 0;
    if (!pool->opts.spin_us || !pool->cnt.outstanding || ev_is_active(&loop->idle))
        return; /* asked never to spin, nothing in flight, or the loop will not wait */
    if (pool->cnt.outstanding >= (size_t)pool->ncpu)
        return; /* a CPU for each task and none left over: a wait costs less than a poll */
    t0 = pool->block_ns = cf_now_ns();
    if (pool->wait_avg >= CF__TP_POLL_NS)
        return; /* long tasks: wait (and count the wait) */
    if (cf__loop_poll_inbox(loop, t0 + CF__TP_POLL_NS, tp_poll_give_up, pool)) {
        tp_waited(pool, cf_now_ns() - t0);
        pool->block_ns = 0;
    } else {
        pool->block_ns = t0; /* the wait counts from here: a poll that was too short shows as a long wait */
    }
}

void cf__tp_prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev;
    (void)revents;
    cf__tp_flush(w->data);
    tp_poll(w->data);
}

/* Tell the workers to exit once the queue is empty, when no more tasks can come. */
void cf__tp_maybe_stop(cf_thread_pool_t *pool)
{
    if (!pool->shut || pool->noverflow || atomic_load(&pool->stopping))
        return;
    cf__tp_flush(pool);
    cf__mutex_lock(&pool->mu);
    atomic_store(&pool->stopping, 1);
    while (atomic_load_explicit(&pool->nsleeping, memory_order_relaxed))
        cf__tp_signal_one_locked(pool);
    cf__mutex_unlock(&pool->mu);
}

/* Complete `f` on a later iteration with `err` (CF_ECANCELED, CF_EBROKEN...). */
void cf__tp_complete_later(cf_future_t *f, int err)
{
    tp_outcome_reset(f);
    f->out.err = err;
    if (err == CF_ECANCELED)
        cf__future_set_state(f, CF_FUTURE_CANCELLED);
    f->scheduled = 1;
    f->u.work.run = cf__tp_complete;
    cf__loop_defer(f->loop, &f->u.work);
}

/* Signal one sleeping worker for tasks just added to `incoming` (called
 * after submit_mu was released, when the submit saw a sleeper and no spinner). */
static void tp_wake_one(cf_thread_pool_t *pool)
{
    cf__mutex_lock(&pool->mu);
    cf__tp_signal_one_locked(pool);
    cf__mutex_unlock(&pool->mu);
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
    cf__tp_flush(pool); /* tasks batched before the overflow ones go first */
    cf__list_init(&failed);
    cf__mutex_lock(&pool->submit_mu);
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
            cf__list_push(&tp_smu(pool)->incoming, n);
            moved++;
        }
        pool->noverflow -= moved;
        atomic_store_explicit(&pool->nin, tp_load(&pool->nin) + moved, memory_order_relaxed);
        wake = moved && tp_need_wake_locked(pool);
    }
    msg = tp_smu(pool)->broken_msg;
    while ((n = cf__list_pop(&failed))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        f->where = TP_NONE;
        cf__tp_complete_later(f, CF_EBROKEN);
        f->out.errmsg = msg ? strdup(msg) : NULL;
    }
    cf__mutex_unlock(&pool->submit_mu);
    if (wake)
        tp_wake_one(pool);
    cf__tp_maybe_stop(pool);
}

/* The one place a pool task ends: runs on the loop thread from the ready queue. */
void cf__tp_complete(cf_loop_t *loop, struct cf__work *w)
{
    cf_future_t *f = cf__container_of(w, struct cf_future, u.work);
    cf_thread_pool_t *pool = f->owner;

    (void)loop;
    if (pool->block_ns) { /* the first completion after the loop waited for this pool */
        tp_waited(pool, cf_now_ns() - pool->block_ns);
        pool->block_ns = 0;
    }
    cf__exec_complete(&pool->cnt, f, CF__COMPLETE_CALLER_DISPATCHES);
    tp_refill(pool);
    cf__future_dispatch(f);
    cf__future_unref(f); /* the pool's reference */
    if (pool->released && pool->cnt.outstanding == 0)
        cf__tp_destroy(pool);
}

/* Take `f` back from the worker slot it waits in; 1 if this thread got it. */
static int tp_claim_taken(cf_thread_pool_t *pool, cf_future_t *f)
{
    for (int i = 0; i < pool->nworkers; i++) {
        for (int j = 0; j < TP_TAKE_MAX; j++) {
            cf_future_t *expect = f;
            if (atomic_load_explicit(&pool->workers[i].taken[j], memory_order_relaxed) == f &&
                atomic_compare_exchange_strong_explicit(&pool->workers[i].taken[j], &expect, NULL, memory_order_seq_cst,
                                                        memory_order_seq_cst))
                return 1;
        }
    }
    return 0;
}

int cf__tp_cancel(cf_future_t *f)
{
    cf_thread_pool_t *pool = f->owner;
    int where;

    /* A worker moves `where` from TP_QUEUED to TP_TAKEN under pool.mu when it takes the task. */
    cf__mutex_lock(&pool->mu);
    where = f->where;
    if (where == TP_TAKEN && !tp_claim_taken(pool, f))
        where = TP_NONE; /* the worker claimed it: running or done */
    if (where == TP_BATCHED) {
        cf__list_remove(&f->u.qlink);
        pool->nbatch--;
    } else if (where == TP_QUEUED) {
        cf__mutex_lock(&pool->submit_mu);
        cf__tp_splice_incoming(pool); /* the task is in `queue` now */
        cf__mutex_unlock(&pool->submit_mu);
        cf__list_remove(&f->u.qlink);
        atomic_store_explicit(&pool->nq, tp_load(&pool->nq) - 1, memory_order_relaxed);
    } else if (where == TP_OVERFLOW) {
        cf__list_remove(&f->u.qlink);
        pool->noverflow--;
    } else {
        atomic_store_explicit(&f->cancel_req, 1, memory_order_relaxed);
    }
    f->where = TP_NONE;
    cf__mutex_unlock(&pool->mu);
    if (where == TP_NONE)
        return CF_EBUSY;
    cf__tp_complete_later(f, CF_ECANCELED);
    cf__tp_maybe_stop(pool);
    return 0;
}
