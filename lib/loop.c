/*
 * loop.c - the binding between cfutures and a libev loop, and the loop inbox.
 *
 * DESIGN
 *
 * Threads.  One loop thread runs ev_run() and owns every cf_loop_t field
 * except the inbox.  Any number of other threads (executor workers, foreign
 * threads calling cf_loop_call()) hand work to the loop through the inbox.
 *
 * Queues.
 *   inbox  (lock-free MPSC queue, any thread)  work posted by other threads
 *   ready  (cf__fifo, loop thread only)         work due on the loop
 * Both are intrusive: a completion travels inside its own future.  The inbox
 * is a linked queue with a stub node (D. Vyukov's intrusive MPSC queue): a
 * poster swaps itself in as the tail with one atomic exchange and then links
 * the previous tail to itself; the loop follows `next` links from its head.
 * Between a poster's exchange and its link the loop sees the queue end early;
 * it then simply looks again on the next iteration.  Order: per poster, and
 * across posters in the order of their exchanges.
 *
 * Wake-ups.  When the loop finds the inbox empty it sets inbox_idle and looks
 * once more; a poster that finds inbox_idle set after linking clears it and
 * calls ev_async_send() (both sides use sequentially consistent accesses, so
 * either the loop sees the new node or the poster sees the flag).  While the
 * loop keeps finding work, posters send no wake-up at all.  ev_async
 * coalesces and cannot fill (it is an eventfd counter), so a poster never
 * blocks on the wake-up.
 *
 * Fairness.  A pass (the async callback, or the idle watcher) runs at most
 * `batch` items: first those that were in `ready` when it started, then
 * inbox items, each run as it is taken; what is left (and anything deferred
 * by the items themselves) stays, and an ev_idle watcher at EV_MAXPRI runs
 * the next pass on the next iteration.  An active idle watcher makes the
 * backend poll with a zero timeout, so I/O keeps being served between
 * passes.  Work deferred during a pass runs on a later iteration ("never
 * inline"); an item posted to the inbox during a pass may run in it, after
 * the item that posted it returned.  Items are taken from the inbox only as
 * they are about to run, so their memory is touched once, while it is hot,
 * and the next one is prefetched while one runs: the loop does not wait for
 * each completion's cache lines in turn.
 *
 * Liveness.  The async watcher is unreferenced (ev_unref) so that it alone
 * never keeps ev_run() alive.  While executor tasks are outstanding the loop
 * holds one reference (ev_ref on 0 -> 1, ev_unref on 1 -> 0), so ev_run() does
 * not return before their callbacks have run.  The idle watcher is referenced
 * while active, which keeps the loop alive for due callbacks.
 *
 * Locks.  None: the inbox is lock-free and everything else is the loop
 * thread's.  A poster's link is a release store and the loop's read of it an
 * acquire load, so what a poster wrote before posting is visible to the loop
 * when it runs the item.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <stdlib.h>

#define CF__DEFAULT_BATCH 1024u

/* Append `n` to the inbox; returns the node it was linked behind. */
static struct cf__snode *cf__inbox_push(cf_loop_t *loop, struct cf__snode *n)
{
    struct cf__snode *prev;

    __atomic_store_n(&n->next, NULL, __ATOMIC_RELAXED);
    prev = __atomic_exchange_n(&loop->inbox_tail, n, __ATOMIC_ACQ_REL);
    __atomic_store_n(&prev->next, n, __ATOMIC_SEQ_CST);
    return prev;
}

/* The oldest posted item, or NULL: empty, or a poster is between its exchange
 * and its link (*busy = 1: look again later).  Loop thread. */
static struct cf__snode *cf__inbox_pop(cf_loop_t *loop, int *busy)
{
    struct cf__snode *h = loop->inbox_head, *next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE);

    if (h == &loop->inbox_stub) {
        if (!next) {
            *busy = __atomic_load_n(&loop->inbox_tail, __ATOMIC_SEQ_CST) != h;
            return NULL;
        }
        loop->inbox_head = h = next;
        next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE);
    }
    if (next) {
        loop->inbox_head = next;
        return h;
    }
    if (h != __atomic_load_n(&loop->inbox_tail, __ATOMIC_SEQ_CST)) {
        *busy = 1;
        return NULL;
    }
    /* `h` is the last node: queue the stub behind it so that `h` can leave. */
    cf__inbox_push(loop, &loop->inbox_stub);
    next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE);
    if (next) {
        loop->inbox_head = next;
        return h;
    }
    *busy = 1;
    return NULL;
}

/* 1 when something was posted and not yet taken (a poster may be mid-post). */
static int cf__inbox_nonempty(cf_loop_t *loop)
{
    struct cf__snode *h = loop->inbox_head;

    return __atomic_load_n(&h->next, __ATOMIC_SEQ_CST) != NULL ||
           __atomic_load_n(&loop->inbox_tail, __ATOMIC_SEQ_CST) != h;
}

/* The inbox is empty (not busy): arm the wake-up, then look again for a post
 * that missed the flag; 1 when something is there after all. */
static int cf__loop_inbox_drained(cf_loop_t *loop)
{
    atomic_store(&loop->inbox_idle, 1);
    return cf__inbox_nonempty(loop);
}

int cf__loop_poll_inbox(cf_loop_t *loop, uint64_t until_ns, int (*give_up)(void *data, uint64_t now), void *data)
{
    int got = 0;

    if (ev_is_active(&loop->idle))
        return 1; /* the loop will not wait */
    /* Disarmed: a poster meanwhile links its node and sends no wake-up. */
    atomic_store(&loop->inbox_idle, 0);
    for (unsigned spins = 1;; spins++) {
        if (cf__inbox_nonempty(loop)) {
            got = 1;
            break;
        }
        if ((spins & 15) == 0) {
            uint64_t now = cf_now_ns();
            if (now >= until_ns || give_up(data, now))
                break;
        }
        cf__cpu_relax();
    }
    /* Armed again and looked at once more, as a pass that found it empty. */
    if (got || cf__loop_inbox_drained(loop)) {
        ev_idle_start(loop->ev, &loop->idle);
        return 1;
    }
    return 0;
}

/* One pass: run what was due in `ready` when it started, then take posted
 * items from the inbox and run each as it is taken, `batch` items in all;
 * keep the idle watcher on while more is due. */
static void cf__loop_pass(cf_loop_t *loop)
{
    /* Only what is due now: items deferred while running wait for a later pass. */
    size_t n = loop->ready_n < loop->batch ? loop->ready_n : loop->batch;
    size_t budget = loop->batch - n;
    int more = 0;

    while (n--) {
        struct cf__snode *node = cf__fifo_pop(&loop->ready);
        struct cf__work *w = cf__container_of(node, struct cf__work, node);
        loop->ready_n--;
        w->run(loop, w);
    }
    while (budget) {
        int busy = 0;
        struct cf__snode *node = cf__inbox_pop(loop, &busy);
        struct cf__work *w;

        if (!node) {
            more = busy || cf__loop_inbox_drained(loop);
            break;
        }
        /* Most items are completions inside their future, which a worker
         * wrote: ask for the next one now (the node and the rest of its
         * future), so it arrives while this one runs, instead of following
         * the queue one miss at a time.  (A prefetch never faults, whatever
         * lies past a smaller item or the stub.) */
        __builtin_prefetch(loop->inbox_head);
        __builtin_prefetch((const char *)loop->inbox_head + CF__CACHELINE);
        __builtin_prefetch((const char *)node + CF__CACHELINE);
        budget--;
        w = cf__container_of(node, struct cf__work, node);
        w->run(loop, w);
    }
    if (!budget)
        more = 1; /* the inbox was not seen empty */
    if (loop->ready_n || more) {
        if (!ev_is_active(&loop->idle))
            ev_idle_start(loop->ev, &loop->idle);
    } else if (ev_is_active(&loop->idle)) {
        ev_idle_stop(loop->ev, &loop->idle);
    }
}

static void cf__loop_async_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    (void)ev;
    (void)revents;
    cf__loop_pass(w->data);
}

static void cf__loop_idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)ev;
    (void)revents;
    cf__loop_pass(w->data);
}

int cf_loop_new(struct ev_loop *ev, cf_loop_t **out)
{
    cf_loop_t *loop;

    if (!ev || !out)
        return CF__EINVAL(!ev ? "ev is NULL" : "out is NULL");
    loop = cf__calloc_aligned(sizeof(*loop));
    if (!loop)
        return CF_ENOMEM;
    loop->ev = ev;
    loop->batch = CF__DEFAULT_BATCH;
    loop->inbox_stub.next = NULL;
    loop->inbox_head = &loop->inbox_stub;
    loop->inbox_tail = &loop->inbox_stub;
    atomic_init(&loop->inbox_idle, 1);
    cf__fifo_init(&loop->ready);
    atomic_init(&loop->calls_pending, 0);
    cf__slab_init(&loop->futures, sizeof(struct cf_future));
    cf__slab_fill_ahead(&loop->futures); /* a burst of futures: see slab.h */
    cf__slab_init(&loop->cbs, sizeof(struct cf__cb));

    ev_async_init(&loop->async, cf__loop_async_cb);
    loop->async.data = loop;
    ev_async_start(ev, &loop->async);
    ev_unref(ev);

    ev_idle_init(&loop->idle, cf__loop_idle_cb);
    ev_set_priority(&loop->idle, EV_MAXPRI);
    loop->idle.data = loop;

    *out = loop;
    return 0;
}

int cf_loop_close(cf_loop_t *loop)
{
    int undelivered;

    if (!loop)
        return CF__EINVAL("loop is NULL");
    undelivered = cf__inbox_nonempty(loop) || loop->ready_n || atomic_load(&loop->calls_pending);
    if (loop->live_futures || loop->live_executors || undelivered)
        return cf__set_error(CF_ELOOPBUSY,
                             "cf_loop_close: %lu future(s) and %lu executor(s) still alive, completions %s; "
                             "unref and free them (and let the loop run) first",
                             (unsigned long)loop->live_futures, (unsigned long)loop->live_executors,
                             undelivered ? "waiting to be delivered" : "all delivered");
    CF_ASSERT(loop->outstanding == 0, "no future alive but tasks outstanding");

    ev_ref(loop->ev); /* balance the ev_unref() done after starting the async watcher */
    ev_async_stop(loop->ev, &loop->async);
    if (ev_is_active(&loop->idle))
        ev_idle_stop(loop->ev, &loop->idle);
    while (loop->holds) {
        loop->holds--;
        ev_unref(loop->ev);
    }
    cf__slab_fini(&loop->futures);
    cf__slab_fini(&loop->cbs);
    free(loop);
    return 0;
}

struct ev_loop *cf_loop_ev(const cf_loop_t *loop)
{
    CF_REQUIRE(loop, "loop is NULL");
    return loop->ev;
}

int cf__loop_post_nowake(cf_loop_t *loop, struct cf__work *w)
{
    cf__inbox_push(loop, &w->node);
    /* After the link (sequentially consistent): the loop either sees the node or set the flag before. */
    return atomic_load(&loop->inbox_idle) && atomic_exchange(&loop->inbox_idle, 0);
}

void cf__loop_wake(cf_loop_t *loop)
{
    ev_async_send(loop->ev, &loop->async);
}

void cf__loop_post(cf_loop_t *loop, struct cf__work *w)
{
    if (cf__loop_post_nowake(loop, w))
        cf__loop_wake(loop);
}

void cf__loop_defer(cf_loop_t *loop, struct cf__work *w)
{
    cf__fifo_push(&loop->ready, &w->node);
    loop->ready_n++;
    if (!ev_is_active(&loop->idle))
        ev_idle_start(loop->ev, &loop->idle);
}

void cf__loop_task_begin(cf_loop_t *loop)
{
    if (loop->outstanding++ == 0)
        ev_ref(loop->ev);
}

void cf__loop_task_end(cf_loop_t *loop)
{
    CF_ASSERT(loop->outstanding > 0, "task accounting underflow");
    if (--loop->outstanding == 0)
        ev_unref(loop->ev);
}

int cf__loop_can_block(cf_loop_t *loop)
{
    if (ev_depth(loop->ev) == 0)
        return 0;
    return cf__set_error(CF_EDEADLK, "cannot wait inside a callback of the loop: it would wait for itself");
}

static void cf__run_until_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    *(int *)w->data = 1;
}

int cf__loop_run_until(cf_loop_t *loop, int (*done)(void *arg), void *arg, double timeout)
{
    ev_timer timer;
    int fired = 0, rc = 0;

    if (done(arg))
        return 0;
    rc = cf__loop_can_block(loop);
    if (rc)
        return rc;
    if (timeout >= 0) {
        ev_timer_init(&timer, cf__run_until_timer_cb, timeout, 0.);
        timer.data = &fired;
        ev_timer_start(loop->ev, &timer);
    }
    while (!done(arg)) {
        if (fired) {
            rc = CF_ETIMEDOUT;
            break;
        }
        /* ev_run() returns 0 once no referenced watcher is left: with nothing
         * queued either, nothing on this loop can make progress any more (only
         * foreign threads could, and they must hold the loop: cf_loop_hold()). */
        if (!ev_run(loop->ev, EVRUN_ONCE) && !fired && !done(arg) && cf__loop_idle(loop)) {
            rc = cf__set_error(CF_EDEADLK, "nothing on the loop can complete what is waited for (no task, watcher "
                                           "or timer left, and no thread holds the loop)");
            break;
        }
    }
    if (timeout >= 0)
        ev_timer_stop(loop->ev, &timer);
    return rc;
}

int cf__loop_idle(cf_loop_t *loop)
{
    return !cf__inbox_nonempty(loop) && loop->ready_n == 0 && loop->outstanding == 0 && loop->holds == 0;
}

/* ------------------------------------------------------------------ cross-thread calls */

struct cf__call {
    struct cf__work work;
    cf_loop_call_fn fn;
    void *arg;
};

static void cf__call_run(cf_loop_t *loop, struct cf__work *w)
{
    struct cf__call *c = cf__container_of(w, struct cf__call, work);
    cf_loop_call_fn fn = c->fn;
    void *arg = c->arg;

    free(c);
    atomic_fetch_sub(&loop->calls_pending, 1);
    fn(loop, arg);
}

int cf_loop_call(cf_loop_t *loop, cf_loop_call_fn fn, void *arg)
{
    struct cf__call *c;

    if (!loop || !fn)
        return CF__EINVAL(!loop ? "loop is NULL" : "fn is NULL");
    c = malloc(sizeof(*c));
    if (!c)
        return CF_ENOMEM;
    c->work.run = cf__call_run;
    c->fn = fn;
    c->arg = arg;
    atomic_fetch_add(&loop->calls_pending, 1);
    cf__loop_post(loop, &c->work);
    return 0;
}

void cf_loop_hold(cf_loop_t *loop)
{
    CF_REQUIRE(loop, "loop is NULL");
    loop->holds++;
    ev_ref(loop->ev);
}

int cf_loop_release(cf_loop_t *loop)
{
    if (!loop || loop->holds == 0)
        return CF__EINVAL(!loop ? "loop is NULL" : "no cf_loop_hold() to release");
    loop->holds--;
    ev_unref(loop->ev);
    return 0;
}

void cf_loop_set_batch(cf_loop_t *loop, unsigned batch)
{
    CF_REQUIRE(loop, "loop is NULL");
    loop->batch = batch ? batch : CF__DEFAULT_BATCH;
}

/* ------------------------------------------------------------------ allocation */

cf_future_t *cf__future_alloc(cf_loop_t *loop)
{
    cf_future_t *f = cf__slab_alloc(&loop->futures);

    if (!f)
        return NULL;
    f->u.qlink.next = f->u.qlink.prev = NULL;
    f->loop = loop;
    f->refs = 1;
    atomic_init(&f->state, CF_FUTURE_PENDING);
    atomic_init(&f->cancel_req, 0);
    f->scheduled = 0;
    f->where = 0;
    f->taken = 0;
    f->shares_value = 0;
    f->cb_inline = 0;
    f->out.value.ptr = NULL;
    f->out.value_free = NULL;
    f->out.len = 0;
    f->out.err = 0;
    f->out.is_bytes = 0;
    f->out.errmsg = NULL;
    f->cbs = NULL;
    f->ops = NULL;
    f->owner = NULL;
    f->arg = NULL;
    f->arg_free = NULL;
    loop->live_futures++;
    return f;
}

void cf__future_release_mem(cf_future_t *f)
{
    cf_loop_t *loop = f->loop;

    loop->live_futures--;
    cf__slab_free(&loop->futures, f);
}

struct cf__cb *cf__cb_alloc(cf_loop_t *loop)
{
    return cf__slab_alloc(&loop->cbs);
}

void cf__cb_release(cf_loop_t *loop, struct cf__cb *c)
{
    cf__slab_free(&loop->cbs, c);
}
