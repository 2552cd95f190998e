/*
 * comb.c - the combinator engine: inputs, references, timer, finish once.
 *
 * DESIGN: see comb.h.  The kinds live in comb_gather.c (wait, all, settled,
 * any), comb_chain.c (then, adopt, timeout), comb_each.c (as-completed) and
 * comb_group.c (task groups).  Loop thread only, no locks.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "comb.h"

#include <stdlib.h>

#define GROW_SEG_LEN 64 /* slots per segment of a growing comb */

static int comb_cancel(cf_future_t *f);
static const struct cf__future_ops comb_ops = {.cancel = comb_cancel};

static void comb_input_cb(cf_future_t *f, int status, void *data);
static void comb_timer_cb(struct ev_loop *ev, ev_timer *w, int revents);

static void comb_free(struct cf__comb *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct cf__comb_slot *s = cf__comb_slot(c, i);
        if (s->f)
            cf_future_unref(s->f);
    }
    if (c->ops->fini)
        c->ops->fini(c);
    for (size_t k = 1; k < c->nseg; k++)
        free(c->segs[k]);
    if (c->segs != &c->seg0)
        free(c->segs);
    free(c->seg0);
    free(c);
}

void cf__comb_ref(struct cf__comb *c)
{
    c->refs++;
}

void cf__comb_unref(struct cf__comb *c)
{
    if (--c->refs == 0)
        comb_free(c);
}

struct cf__comb *cf__comb_new(cf_loop_t *loop, const struct cf__comb_ops *ops, size_t size, size_t n, int with_out)
{
    struct cf__comb *c = calloc(1, size);

    if (!c)
        return NULL;
    c->ops = ops;
    c->loop = loop;
    c->refs = 1;
    c->segs = &c->seg0;
    c->seg_len = n ? n : GROW_SEG_LEN;
    if (n) {
        c->seg0 = calloc(n, sizeof(*c->seg0));
        if (!c->seg0) {
            free(c);
            return NULL;
        }
        c->nseg = 1;
    }
    if (with_out && cf__comb_add_output(c)) {
        free(c->seg0);
        free(c);
        return NULL;
    }
    ev_timer_init(&c->timer, comb_timer_cb, 0., 0.);
    c->timer.data = c;
    return c;
}

void cf__comb_discard(struct cf__comb *c)
{
    cf__comb_detach(c);
    if (c->out) {
        cf_future_t *out = c->out;
        c->out = NULL;
        out->ops = NULL;
        out->owner = NULL;
        cf_future_unref(out);
    }
    cf__comb_unref(c);
}

int cf__comb_add_output(struct cf__comb *c)
{
    cf_future_t *out = cf__future_alloc(c->loop);

    if (!out)
        return cf__set_error(CF_ENOMEM, "out of memory for a combinator's output future");
    out->ops = &comb_ops;
    out->owner = c;
    c->out = out;
    return 0;
}

void cf__comb_take_output(struct cf__comb *c, cf_future_t *out)
{
    cf_future_ref(out);
    out->ops = &comb_ops;
    out->owner = c;
    c->out = out;
}

cf_future_t *cf__comb_output(struct cf__comb *c)
{
    cf_future_ref(c->out);
    return c->out;
}

int cf__comb_attach(struct cf__comb *c, struct cf__comb_slot *s, cf_future_t *f, size_t index)
{
    int rc;

    s->c = c;
    s->index = index;
    s->f = f;
    cf_future_ref(f);
    rc = cf_future_on_done(f, comb_input_cb, s, NULL);
    if (rc)
        return cf__set_error(rc, "out of memory registering a combinator's input callback");
    s->attached = 1;
    c->refs++;
    return 0;
}

int cf__comb_build(cf_loop_t *loop, const struct cf__comb_ops *ops, size_t size, cf_future_t *const *fs, size_t n,
                   struct cf__comb **out)
{
    struct cf__comb *c = cf__comb_new(loop, ops, size, n, 1);

    if (!c)
        return cf__set_error(CF_ENOMEM, "out of memory for a combinator over %zu inputs", n);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        int rc = cf__comb_attach(c, &c->seg0[i], fs[i], i);
        if (rc) {
            c->n = i + 1; /* slot i holds a reference too */
            cf__comb_discard(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

int cf__comb_add(struct cf__comb *c, cf_future_t *f)
{
    size_t i = c->n;
    int rc;

    if (i == c->nseg * c->seg_len) { /* a new segment */
        struct cf__comb_slot *seg = calloc(c->seg_len, sizeof(*seg));
        if (!seg)
            return cf__set_error(CF_ENOMEM, "out of memory adding input %zu", i);
        if (c->nseg == 0) {
            c->seg0 = seg;
        } else {
            struct cf__comb_slot **segs = realloc(c->segs == &c->seg0 ? NULL : c->segs, (c->nseg + 1) * sizeof(*segs));
            if (!segs) {
                free(seg);
                return cf__set_error(CF_ENOMEM, "out of memory adding input %zu", i);
            }
            if (c->segs == &c->seg0)
                segs[0] = c->seg0;
            c->segs = segs;
            segs[c->nseg] = seg;
        }
        c->nseg++;
    }
    c->n++;
    rc = cf__comb_attach(c, cf__comb_slot(c, i), f, i);
    if (rc)
        c->ndone++; /* never attached: counts as seen */
    return rc;
}

void cf__comb_start_timer(struct cf__comb *c, double seconds)
{
    if (seconds < 0)
        return;
    ev_timer_set(&c->timer, seconds, 0.);
    ev_timer_start(c->loop->ev, &c->timer);
    c->timer_on = 1;
}

void cf__comb_detach(struct cf__comb *c)
{
    c->finished = 1;
    if (c->timer_on) {
        ev_timer_stop(c->loop->ev, &c->timer);
        c->timer_on = 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        struct cf__comb_slot *s = cf__comb_slot(c, i);
        if (s->attached && cf__future_remove_cb(s->f, comb_input_cb, s) == 0) {
            s->attached = 0;
            c->refs--; /* never the last: the caller holds the comb's own reference */
        }
    }
}

/* Settle `out` (if any, and if still pending) with state `st`; err/msg for failures. */
static void comb_settle(struct cf__comb *c, cf_future_state st, int err, char *msg)
{
    cf_future_t *out = c->out;

    if (!out || cf__done(out)) {
        free(msg);
        return;
    }
    if (st != CF_FUTURE_FINISHED) {
        out->out.err = st == CF_FUTURE_CANCELLED ? CF_ECANCELED : err;
        free(out->out.errmsg);
        out->out.errmsg = msg;
    } else {
        free(msg);
    }
    cf__future_settle(out, st);
}

void cf__comb_finish(struct cf__comb *c, cf_future_state st, int err, char *msg)
{
    if (c->finished) {
        free(msg);
        return;
    }
    comb_settle(c, st, err, msg);
    cf__comb_detach(c);
    if (c->out) {
        cf_future_t *out = c->out;
        c->out = NULL;
        if (out->owner == c)
            out->owner = NULL; /* done: cancel no longer reaches the comb */
        cf_future_unref(out);
    }
    cf__comb_unref(c);
}

void cf__comb_cancel_pending(struct cf__comb *c, const cf_future_t *except)
{
    for (size_t i = 0; i < c->n; i++) {
        cf_future_t *f = cf__comb_slot(c, i)->f;
        if (f && f != except && !cf__done(f))
            cf_future_cancel(f);
    }
}

static void comb_input_cb(cf_future_t *f, int status, void *data)
{
    struct cf__comb_slot *s = data;
    struct cf__comb *c = s->c;

    (void)f;
    s->attached = 0;
    if (!c->finished) {
        c->refs++; /* keep c alive through its own finish */
        c->ndone++;
        c->ops->input_done(c, s, status);
        cf__comb_unref(c);
    }
    cf__comb_unref(c); /* this registration's reference */
}

static void comb_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct cf__comb *c = w->data;

    (void)ev;
    (void)revents;
    c->timer_on = 0;
    c->refs++;
    c->ops->timed_out(c);
    cf__comb_unref(c);
}

static int comb_cancel(cf_future_t *f)
{
    struct cf__comb *c = f->owner;

    if (!c || c->finished)
        return CF_EALREADY;
    c->refs++;
    if (c->ops->cancel_inputs)
        cf__comb_cancel_pending(c, NULL);
    cf__comb_finish(c, CF_FUTURE_CANCELLED, CF_ECANCELED, NULL);
    cf__comb_unref(c);
    return 0;
}

int cf__comb_check_inputs(const char *func, cf_future_t *const *fs, size_t n, cf_loop_t **loop)
{
    if (n && !fs)
        return cf__set_error(CF_EINVAL, "%s: fs is NULL but n is %zu", func, n);
    for (size_t i = 0; i < n; i++) {
        if (!fs[i])
            return cf__set_error(CF_EINVAL, "%s: fs[%zu] is NULL", func, i);
        if (*loop && fs[i]->loop != *loop)
            return cf__set_error(CF_EINVAL, "%s: fs[%zu] belongs to another loop than fs[0]", func, i);
        *loop = fs[i]->loop;
    }
    return 0;
}

int cf__comb_check_inputs_loop(const char *func, cf_future_t *const *fs, size_t n, cf_loop_t **loop)
{
    int rc = cf__comb_check_inputs(func, fs, n, loop);

    if (rc)
        return rc;
    if (!*loop)
        return cf__set_error(CF_EINVAL, "%s: no inputs (n is 0): nothing names the loop", func);
    return 0;
}
