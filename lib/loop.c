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
 *   inbox  (cf__fifo, guarded by inbox_mu)   work posted by other threads
 *   ready  (cf__fifo, loop thread only)       work due on the loop
 * Both are intrusive: a completion travels inside its own future.
 *
 * Wake-ups.  A poster appends to the inbox under inbox_mu and calls
 * ev_async_send() only when the inbox went from empty to non-empty; the loop
 * empties the inbox in one splice, so one wake-up carries any number of
 * completions.  ev_async coalesces and cannot fill (it is an eventfd counter),
 * so a poster never blocks on the wake-up.
 *
 * Fairness.  The async callback splices the inbox into `ready` and runs at
 * most `batch` items; what is left (and anything deferred by the items
 * themselves) stays in `ready`, and an ev_idle watcher at EV_MAXPRI runs the
 * next batch on the next iteration.  An active idle watcher makes the backend
 * poll with a zero timeout, so I/O keeps being served between batches.  Each
 * pass runs only the items present when it started: work deferred during a
 * pass runs on a later iteration ("never inline").
 *
 * Liveness.  The async watcher is unreferenced (ev_unref) so that it alone
 * never keeps ev_run() alive.  While executor tasks are outstanding the loop
 * holds one reference (ev_ref on 0 -> 1, ev_unref on 1 -> 0), so ev_run() does
 * not return before their callbacks have run.  The idle watcher is referenced
 * while active, which keeps the loop alive for due callbacks.
 *
 * Locks.  inbox_mu is a leaf: nothing else is ever taken while holding it,
 * and ev_async_send() is called after releasing it.
 */
#include "internal.h"

#include <stdlib.h>

#define CF__DEFAULT_BATCH 1024u

static void cf__loop_run_ready(cf_loop_t *loop)
{
    /* Only what is due now: items deferred while running wait for a later pass. */
    size_t n = loop->ready_n < loop->batch ? loop->ready_n : loop->batch;

    while (n--) {
        struct cf__snode *node = cf__fifo_pop(&loop->ready);
        struct cf__work *w = cf__container_of(node, struct cf__work, node);
        loop->ready_n--;
        w->run(loop, w);
    }
    if (loop->ready_n) {
        if (!ev_is_active(&loop->idle))
            ev_idle_start(loop->ev, &loop->idle);
    } else if (ev_is_active(&loop->idle)) {
        ev_idle_stop(loop->ev, &loop->idle);
    }
}

static void cf__loop_async_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    cf_loop_t *loop = w->data;
    (void)ev;
    (void)revents;

    pthread_mutex_lock(&loop->inbox_mu);
    loop->ready_n += loop->inbox_n;
    loop->inbox_n = 0;
    cf__fifo_splice(&loop->ready, &loop->inbox);
    pthread_mutex_unlock(&loop->inbox_mu);

    cf__loop_run_ready(loop);
}

static void cf__loop_idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)ev;
    (void)revents;
    cf__loop_run_ready(w->data);
}

int cf_loop_new(struct ev_loop *ev, cf_loop_t **out)
{
    cf_loop_t *loop;
    int rc;

    if (!ev || !out)
        return CF_EINVAL;
    loop = cf__calloc_aligned(sizeof(*loop));
    if (!loop)
        return CF_ENOMEM;
    rc = cf__mutex_init(&loop->inbox_mu);
    if (rc) {
        free(loop);
        return rc;
    }
    loop->ev = ev;
    loop->batch = CF__DEFAULT_BATCH;
    cf__fifo_init(&loop->inbox);
    cf__fifo_init(&loop->ready);
    atomic_init(&loop->calls_pending, 0);
    cf__slab_init(&loop->futures, sizeof(struct cf_future));
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
    size_t inbox_n;

    if (!loop)
        return CF_EINVAL;
    pthread_mutex_lock(&loop->inbox_mu);
    inbox_n = loop->inbox_n;
    pthread_mutex_unlock(&loop->inbox_mu);
    if (loop->live_futures || loop->live_executors || inbox_n || loop->ready_n ||
        atomic_load(&loop->calls_pending))
        return CF_ELOOPBUSY;
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
    pthread_mutex_destroy(&loop->inbox_mu);
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
    int wake;

    pthread_mutex_lock(&loop->inbox_mu);
    wake = cf__fifo_empty(&loop->inbox);
    cf__fifo_push(&loop->inbox, &w->node);
    loop->inbox_n++;
    pthread_mutex_unlock(&loop->inbox_mu);
    return wake;
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
    return ev_depth(loop->ev) == 0 ? 0 : CF_EDEADLK;
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
            rc = CF_EDEADLK;
            break;
        }
    }
    if (timeout >= 0)
        ev_timer_stop(loop->ev, &timer);
    return rc;
}

int cf__loop_idle(cf_loop_t *loop)
{
    size_t inbox_n;

    pthread_mutex_lock(&loop->inbox_mu);
    inbox_n = loop->inbox_n;
    pthread_mutex_unlock(&loop->inbox_mu);
    return inbox_n == 0 && loop->ready_n == 0 && loop->outstanding == 0 && loop->holds == 0;
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
        return CF_EINVAL;
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
        return CF_EINVAL;
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
    f->magic = CF__FUTURE_LIVE;
    f->refs = 1;
    atomic_init(&f->state, CF_FUTURE_PENDING);
    atomic_init(&f->cancel_req, 0);
    f->scheduled = 0;
    f->where = 0;
    f->taken = 0;
    f->shares_value = 0;
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

    f->magic = CF__FUTURE_DEAD;
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
