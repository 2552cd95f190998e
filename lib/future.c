/*
 * future.c - futures: states, values, done callbacks, blocking waits.
 *
 * A future is used on its loop thread only, with one exception: while an
 * executor runs its task, the worker thread writes the task part (value,
 * err, errmsg) and moves the state PENDING -> RUNNING; the loop reads those
 * fields only after the completion came back through the inbox (whose mutex
 * orders the accesses), and reads `state` atomically.
 *
 * Every state change goes through cf__future_set_state().
 *
 * Callback dispatch.  A future's first callback, when it has no destroy
 * notifier (the usual case), is kept inline in the future (`cb1`,
 * `cb_inline` set): registering it allocates nothing.  Any other callback
 * goes into a list of nodes from the loop's slab cache, `cbs`, and moves an
 * inline one into a node first, so all are in the one list.  The list is
 * newest-first and reversed when the callbacks run, so they run in
 * registration order.  A dispatch is queued on
 * the loop's ready queue (`scheduled` set, one reference held) whenever a
 * done future has callbacks that have not run: when it is settled, or when a
 * callback is added to a future that is already done.  Executors complete
 * their futures from their own deferred work item and call
 * cf__future_dispatch() directly from there.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The thread pool's benchmark keeps a million futures pending at once: every
 * byte here is a megabyte of memory the kernel clears for such a burst. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct cf_future) <= 120, "struct cf_future grew beyond 120 bytes");

static int cf__future_has_cbs(const cf_future_t *f)
{
    return f->cb_inline || f->cbs;
}

/* cf_future_status() for the library's own calls (no NULL check, no PLT). */
static int cf__status(const cf_future_t *f)
{
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case CF_FUTURE_FINISHED:
        return 0;
    case CF_FUTURE_FAILED:
        return f->out.err;
    case CF_FUTURE_CANCELLED:
        return CF_ECANCELED;
    default:
        return CF_EPENDING;
    }
}

static int cf__state_final(int st)
{
    return st >= CF_FUTURE_FINISHED;
}

static int cf__future_final(const cf_future_t *f)
{
    return cf__state_final(atomic_load_explicit(&f->state, memory_order_acquire));
}

void cf__future_set_state(cf_future_t *f, cf_future_state to)
{
    int from = atomic_load_explicit(&f->state, memory_order_relaxed);

    CF_ASSERT(!cf__state_final(from), "a done future cannot change state");
    CF_ASSERT(to != CF_FUTURE_PENDING, "a future never goes back to pending");
    CF_ASSERT(!(to == CF_FUTURE_RUNNING && from != CF_FUTURE_PENDING), "only a pending future starts running");
    (void)from;
    atomic_store_explicit(&f->state, (int)to, memory_order_release);
}

void cf__outcome_set_msg(struct cf__outcome *o, const char *fmt, va_list ap)
{
    char *msg = NULL;

    if (fmt && vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    free(o->errmsg);
    o->errmsg = msg;
}

void cf__outcome_drop_value(struct cf__outcome *o)
{
    if (o->value_free && o->value.ptr)
        o->value_free(o->value.ptr);
    o->value.ptr = NULL;
    o->value_free = NULL;
    o->len = 0;
    o->is_bytes = 0;
}

void cf__outcome_clear(struct cf__outcome *o)
{
    cf__outcome_drop_value(o);
    free(o->errmsg);
    o->errmsg = NULL;
}

static void cf__dispatch_run(cf_loop_t *loop, struct cf__work *w)
{
    cf_future_t *f = cf__container_of(w, struct cf_future, u.work);

    (void)loop;
    cf__future_dispatch(f);
    cf_future_unref(f); /* the reference held by the scheduled dispatch */
}

static void cf__future_schedule(cf_future_t *f)
{
    if (f->scheduled || !cf__future_has_cbs(f))
        return;
    f->scheduled = 1;
    f->refs++;
    f->u.work.run = cf__dispatch_run;
    cf__loop_defer(f->loop, &f->u.work);
}

void cf__future_dispatch(cf_future_t *f)
{
    cf_loop_t *loop = f->loop;
    struct cf__cb *list = NULL, *c;
    int status = cf__status(f);

    f->scheduled = 0;
    if (f->cb_inline) {
        cf_future_cb fn = f->cb1.fn;
        void *data = f->cb1.data;

        f->cb_inline = 0;
        f->cbs = NULL;
        fn(f, status, data);
        cf__future_unref(f); /* the reference this callback held */
        return;
    }
    c = f->cbs;
    f->cbs = NULL;
    while (c) { /* newest-first -> registration order */
        struct cf__cb *next = c->next;
        c->next = list;
        list = c;
        c = next;
    }
    while (list) {
        c = list;
        list = c->next;
        c->cb(f, status, c->data);
        if (c->destroy)
            c->destroy(c->data);
        cf__cb_release(loop, c);
        cf_future_unref(f); /* the reference this callback held */
    }
}

void cf__future_settle(cf_future_t *f, cf_future_state st)
{
    cf__future_set_state(f, st);
    cf__future_schedule(f);
}

int cf_future_new(cf_loop_t *loop, cf_future_t **out)
{
    cf_future_t *f;

    if (!loop || !out)
        return CF__EINVAL(!loop ? "loop is NULL" : "out is NULL");
    f = cf__future_alloc(loop);
    if (!f)
        return CF_ENOMEM;
    *out = f;
    return 0;
}

/* A released future's memory stays in the loop's slab cache with refs 0 (the
 * cache writes only an object's first word), so a reference dropped once
 * too often is seen, until the memory is handed out again. */
void cf_future_ref(cf_future_t *f)
{
    CF_REQUIRE(f, "future is NULL");
    CF_REQUIRE(f->refs > 0, "future was already released");
    f->refs++;
}

int cf_future_unref(cf_future_t *f)
{
    if (!f || f->refs == 0)
        return CF__EINVAL(!f ? "f is NULL" : "f is not a live future (released twice?)");
    if (--f->refs)
        return 0;
    CF_ASSERT(!f->scheduled && !cf__future_has_cbs(f), "freeing a future with callbacks due");
    if (f->out.value_free || f->out.errmsg) /* the memory is released next: nothing else to reset */
        cf__outcome_clear(&f->out);
    if (f->shares_value) /* the future whose pointer value this one shared */
        cf_future_unref(f->value_src);
    else if (f->arg_free) /* data attached to a loop-side future */
        f->arg_free(f->arg);
    cf__future_release_mem(f);
    return 0;
}

/* The library's own calls bind to it directly, not through the PLT. */
extern __typeof__(cf_future_unref) cf__future_unref __attribute__((alias("cf_future_unref"), visibility("hidden")));

cf_future_state cf_future_get_state(const cf_future_t *f)
{
    CF_REQUIRE(f, "future is NULL");
    return (cf_future_state)atomic_load_explicit(&f->state, memory_order_acquire);
}

const char *cf_future_state_name(cf_future_state s)
{
    switch (s) {
    case CF_FUTURE_PENDING:
        return "pending";
    case CF_FUTURE_RUNNING:
        return "running";
    case CF_FUTURE_FINISHED:
        return "finished";
    case CF_FUTURE_FAILED:
        return "failed";
    case CF_FUTURE_CANCELLED:
        return "cancelled";
    }
    return "invalid";
}

cf_loop_t *cf_future_loop(const cf_future_t *f)
{
    CF_REQUIRE(f, "future is NULL");
    return f->loop;
}

int cf_future_status(const cf_future_t *f)
{
    CF_REQUIRE(f, "future is NULL");
    return cf__status(f);
}

int cf_future_result(const cf_future_t *f, void **out)
{
    int rc = cf_future_status(f);

    if (rc == 0 && out)
        *out = f->out.value.ptr;
    return rc;
}

int cf_future_result_i64(const cf_future_t *f, int64_t *out)
{
    int rc = cf_future_status(f);

    if (rc == 0 && out)
        *out = f->out.value.i64;
    return rc;
}

int cf_future_result_f64(const cf_future_t *f, double *out)
{
    int rc = cf_future_status(f);

    if (rc == 0 && out)
        *out = f->out.value.f64;
    return rc;
}

int cf_future_result_bytes(const cf_future_t *f, const void **data, size_t *len)
{
    int rc = cf_future_status(f);

    if (rc == 0) {
        if (data)
            *data = f->out.value.ptr;
        if (len)
            *len = f->out.len;
    }
    return rc;
}

int cf_future_take(cf_future_t *f, void **out)
{
    int rc = cf_future_status(f);

    if (rc)
        return rc;
    if (f->taken)
        return CF_EALREADY;
    if (f->shares_value) { /* a shared value: its destructor is the source's to give up */
        rc = cf_future_take(f->value_src, NULL);
        if (rc)
            return rc;
    }
    if (out)
        *out = f->out.value.ptr;
    f->taken = 1;
    f->out.value.ptr = NULL;
    f->out.value_free = NULL;
    return 0;
}

const char *cf_future_error(const cf_future_t *f)
{
    int rc = cf_future_status(f);

    if (rc == 0 || rc == CF_EPENDING)
        return NULL;
    return f->out.errmsg ? f->out.errmsg : cf_strerror(rc);
}

/* Promise side --------------------------------------------------------- */

static int cf__promise_check(const char *func, cf_future_t *f)
{
    if (!f)
        return cf__set_error(CF_EINVAL, "%s: f is NULL", func);
    if (cf__future_final(f))
        return cf__set_error(CF_EALREADY, "%s: the future is already done", func);
    if (f->ops)
        return cf__set_error(CF_EPERM, "%s: the future is an executor's or a combinator's, not a promise", func);
    return 0;
}

int cf_future_set_result(cf_future_t *f, void *value, cf_free_fn value_free)
{
    int rc = cf__promise_check(__func__, f);

    if (rc)
        return rc;
    f->out.value.ptr = value;
    f->out.value_free = value_free;
    cf__future_settle(f, CF_FUTURE_FINISHED);
    return 0;
}

int cf_future_set_i64(cf_future_t *f, int64_t value)
{
    int rc = cf__promise_check(__func__, f);

    if (rc)
        return rc;
    f->out.value.i64 = value;
    cf__future_settle(f, CF_FUTURE_FINISHED);
    return 0;
}

int cf_future_set_f64(cf_future_t *f, double value)
{
    int rc = cf__promise_check(__func__, f);

    if (rc)
        return rc;
    f->out.value.f64 = value;
    cf__future_settle(f, CF_FUTURE_FINISHED);
    return 0;
}

int cf_future_set_bytes(cf_future_t *f, const void *data, size_t len)
{
    int rc = cf__promise_check(__func__, f);
    void *copy;

    if (rc)
        return rc;
    if (!data && len)
        return CF__EINVAL("data is NULL with len > 0");
    copy = cf__memdup(data, len);
    if (!copy)
        return CF_ENOMEM;
    f->out.value.ptr = copy;
    f->out.value_free = free;
    f->out.len = len;
    f->out.is_bytes = 1;
    cf__future_settle(f, CF_FUTURE_FINISHED);
    return 0;
}

int cf_future_set_error(cf_future_t *f, int err, const char *fmt, ...)
{
    int rc = cf__promise_check(__func__, f);
    va_list ap;

    if (rc)
        return rc;
    if (err >= 0)
        return cf__set_error(CF_EINVAL, "cf_future_set_error: err must be negative (got %d)", err);
    va_start(ap, fmt);
    cf__outcome_set_msg(&f->out, fmt, ap);
    va_end(ap);
    f->out.err = err;
    cf__future_settle(f, err == CF_ECANCELED ? CF_FUTURE_CANCELLED : CF_FUTURE_FAILED);
    return 0;
}

int cf_future_cancel(cf_future_t *f)
{
    if (!f)
        return CF__EINVAL("f is NULL");
    if (cf__future_final(f))
        return CF_EALREADY;
    if (f->ops)
        return f->ops->cancel(f);
    f->out.err = CF_ECANCELED;
    cf__future_settle(f, CF_FUTURE_CANCELLED);
    return 0;
}

int cf_future_on_done(cf_future_t *f, cf_future_cb cb, void *data, cf_free_fn destroy)
{
    struct cf__cb *c, *first = NULL;

    if (!f || !cb)
        return CF__EINVAL(!f ? "f is NULL" : "cb is NULL");
    if (!destroy && !cf__future_has_cbs(f)) {
        f->cb1.fn = cb;
        f->cb1.data = data;
        f->cb_inline = 1;
    } else {
        c = cf__cb_alloc(f->loop);
        if (!c)
            return CF_ENOMEM;
        if (f->cb_inline) { /* the inline callback becomes the list's first node */
            first = cf__cb_alloc(f->loop);
            if (!first) {
                cf__cb_release(f->loop, c);
                return CF_ENOMEM;
            }
            first->cb = f->cb1.fn;
            first->data = f->cb1.data;
            first->destroy = NULL;
            first->next = NULL;
            f->cb_inline = 0;
            f->cbs = first;
        }
        c->cb = cb;
        c->data = data;
        c->destroy = destroy;
        c->next = f->cbs;
        f->cbs = c;
    }
    f->refs++;
    if (cf__future_final(f))
        cf__future_schedule(f);
    return 0;
}

int cf__future_remove_cb(cf_future_t *f, cf_future_cb cb, void *data)
{
    struct cf__cb **pp;

    if (f->cb_inline) {
        if (f->cb1.fn != cb || f->cb1.data != data)
            return CF_EINVAL;
        f->cb_inline = 0;
        f->cbs = NULL;
        cf_future_unref(f);
        return 0;
    }
    pp = &f->cbs;

    for (; *pp; pp = &(*pp)->next) {
        struct cf__cb *c = *pp;
        if (c->cb == cb && c->data == data) {
            *pp = c->next;
            if (c->destroy)
                c->destroy(c->data);
            cf__cb_release(f->loop, c);
            cf_future_unref(f);
            return 0;
        }
    }
    return CF_EINVAL;
}

/* Blocking wait ---------------------------------------------------------- */

static int cf__future_done_pred(void *f)
{
    return cf__future_final(f);
}

int cf_future_wait(cf_future_t *f, double timeout)
{
    int rc;

    if (!f)
        return CF__EINVAL("f is NULL");
    if (cf__future_final(f))
        return 0;
    f->refs++;
    rc = cf__loop_run_until(f->loop, cf__future_done_pred, f, timeout);
    cf_future_unref(f);
    return rc;
}
