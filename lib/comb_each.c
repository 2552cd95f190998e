/*
 * comb_each.c - as-completed: the iterator (cf_as_completed_new/next/free)
 * and the callback form (cf_as_completed_each).  Built on the engine in
 * comb.c (see comb.h).
 *
 * A FIFO of slots in yield order: inputs already done are queued at creation
 * in input order, the others as they complete.  A future passed several
 * times gets one slot (a pointer hash set finds the duplicates), whose index
 * is the position of its first occurrence in the caller's array.  The
 * callback form yields its first batch from a deferred work item, so no
 * callback runs inside the call that starts it.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "comb.h"

#include <math.h>
#include <stdlib.h>

struct each_comb {
    struct cf__comb c;
    struct cf__comb_slot **fifo; /* n entries: slots in yield order */
    size_t head, tail;
    double timeout;
    uint8_t timed_out;
    /* The callback form only. */
    uint8_t kicked; /* the already-done inputs were yielded */
    cf_each_cb cb;
    cf_each_index_cb icb;
    void *data;
    cf_free_fn destroy;
    struct cf__work kick;
};

static struct each_comb *each_of(struct cf__comb *c)
{
    return (struct each_comb *)c;
}

/* Yield what is queued (callback form), then finish after the last. */
static void each_yield_due(struct each_comb *e)
{
    struct cf__comb *c = &e->c;

    while (!c->finished && e->head < e->tail) {
        struct cf__comb_slot *s = e->fifo[e->head++];
        if (e->icb)
            e->icb(s->f, s->index, cf_future_status(s->f), e->data);
        else
            e->cb(s->f, cf_future_status(s->f), e->data);
    }
    if (!c->finished && e->head == c->n) {
        c->out->out.value.i64 = (int64_t)c->n;
        cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    }
}

static void each_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    struct each_comb *e = each_of(c);

    (void)status;
    e->fifo[e->tail++] = s;
    if (!c->out) { /* the iterator: stop the timer once everything is in */
        if (e->tail == c->n)
            cf__comb_detach(c);
    } else if (e->kicked) {
        each_yield_due(e);
    }
}

static void each_timed_out(struct cf__comb *c)
{
    struct each_comb *e = each_of(c);

    e->timed_out = 1;
    if (c->out)
        cf__comb_finish(c, CF_FUTURE_FAILED, CF_ETIMEDOUT, cf__printf_alloc("timed out after %.3f s", e->timeout));
    else
        cf__comb_detach(c); /* the iterator: later next() calls report the timeout */
}

static void each_fini(struct cf__comb *c)
{
    struct each_comb *e = each_of(c);

    if (e->destroy)
        e->destroy(e->data);
    free(e->fifo);
}

static const struct cf__comb_ops each_ops = {
    .input_done = each_input_done,
    .timed_out = each_timed_out,
    .fini = each_fini,
    .cancel_inputs = 0, /* cancelling the iteration leaves the inputs alone */
};

/* Positions of the first occurrence of each distinct future, in input order. */
static int dedupe(const char *func, cf_future_t *const *fs, size_t n, size_t **pos, size_t *npos)
{
    size_t cap = 16, count = 0;
    cf_future_t **table;
    size_t *p;

    while (cap < n * 2)
        cap *= 2;
    table = calloc(cap, sizeof(*table));
    p = malloc((n ? n : 1) * sizeof(*p));
    if (!table || !p) {
        free(table);
        free(p);
        return cf__set_error(CF_ENOMEM, "%s: out of memory for %zu inputs", func, n);
    }
    for (size_t i = 0; i < n; i++) {
        size_t h = ((uintptr_t)fs[i] >> 4) * 0x9E3779B97F4A7C15ull & (cap - 1);
        while (table[h] && table[h] != fs[i])
            h = (h + 1) & (cap - 1);
        if (!table[h]) {
            table[h] = fs[i];
            p[count++] = i;
        }
    }
    free(table);
    *pos = p;
    *npos = count;
    return 0;
}

static int each_build(const char *func, cf_future_t *const *fs, size_t n, double timeout, int with_out,
                      struct each_comb **out)
{
    cf_loop_t *loop = NULL;
    struct cf__comb *c;
    struct each_comb *e;
    size_t *pos = NULL, npos = 0;
    int rc;

    if (isnan(timeout))
        return cf__set_error(CF_EINVAL, "%s: timeout is NaN", func);
    rc = cf__comb_check_inputs_loop(func, fs, n, &loop);
    if (!rc)
        rc = dedupe(func, fs, n, &pos, &npos);
    if (rc)
        return rc;
    c = cf__comb_new(loop, &each_ops, sizeof(struct each_comb), npos, with_out);
    e = (struct each_comb *)c;
    if (c)
        e->fifo = malloc(npos * sizeof(*e->fifo));
    if (!c || !e->fifo) {
        free(pos);
        if (c)
            cf__comb_discard(c);
        return cf__set_error(CF_ENOMEM, "%s: out of memory for %zu inputs", func, n);
    }
    /* Already-done futures first, in input order; then attach the rest. */
    for (size_t k = 0; k < npos; k++) {
        struct cf__comb_slot *s = &c->seg0[k];
        cf_future_t *f = fs[pos[k]];

        c->n = k + 1;
        if (cf__done(f)) {
            s->c = c;
            s->index = pos[k];
            s->f = f;
            cf_future_ref(f);
            e->fifo[e->tail++] = s;
            c->ndone++;
        } else {
            rc = cf__comb_attach(c, s, f, pos[k]);
            if (rc) {
                free(pos);
                cf__comb_discard(c);
                return rc;
            }
        }
    }
    free(pos);
    e->timeout = timeout;
    cf__comb_start_timer(c, timeout);
    *out = e;
    return 0;
}

/* ------------------------------------------------------------------ iterator */

struct cf_as_completed {
    struct each_comb *e; /* NULL for no inputs */
};

int cf_as_completed_new(cf_future_t *const *fs, size_t n, double timeout, cf_as_completed_t **out)
{
    cf_as_completed_t *it;
    int rc;

    if (!out)
        return cf__set_error(CF_EINVAL, "cf_as_completed_new: out is NULL");
    it = malloc(sizeof(*it));
    if (!it)
        return cf__set_error(CF_ENOMEM, "cf_as_completed_new: out of memory");
    it->e = NULL;
    if (n) {
        rc = each_build("cf_as_completed_new", fs, n, timeout, 0, &it->e);
        if (rc) {
            free(it);
            return rc;
        }
        if (it->e->tail == it->e->c.n)
            cf__comb_detach(&it->e->c); /* everything is already done */
    }
    *out = it;
    return 0;
}

static int each_ready(void *arg)
{
    const struct each_comb *e = arg;

    return e->head < e->tail || e->timed_out;
}

int cf_as_completed_next_index(cf_as_completed_t *it, cf_future_t **f, size_t *index)
{
    struct each_comb *e;
    int rc;

    if (!it || !f)
        return cf__set_error(CF_EINVAL, "cf_as_completed_next: %s is NULL", !it ? "it" : "f");
    e = it->e;
    if (!e || e->head == e->c.n)
        return CF_EOF;
    rc = cf__loop_run_until(e->c.loop, each_ready, e, -1);
    if (rc)
        return cf__set_error(rc, "cf_as_completed_next: %s with %zu of %zu futures not done",
                             rc == CF_EDEADLK ? "cannot wait inside a loop callback, or nothing can complete them"
                                              : cf_strerror(rc),
                             e->c.n - e->tail, e->c.n);
    if (e->head < e->tail) {
        struct cf__comb_slot *s = e->fifo[e->head++];
        *f = s->f;
        if (index)
            *index = s->index;
        return 0;
    }
    return cf__set_error(CF_ETIMEDOUT, "cf_as_completed_next: timed out after %.3f s with %zu of %zu futures done",
                         e->timeout, e->tail, e->c.n);
}

int cf_as_completed_next(cf_as_completed_t *it, cf_future_t **f)
{
    return cf_as_completed_next_index(it, f, NULL);
}

void cf_as_completed_free(cf_as_completed_t *it)
{
    if (!it)
        return;
    if (it->e) {
        struct cf__comb *c = &it->e->c;
        if (!c->finished)
            cf__comb_detach(c);
        cf__comb_unref(c);
    }
    free(it);
}

/* ------------------------------------------------------------------ callback form */

static void each_kick(cf_loop_t *loop, struct cf__work *w)
{
    struct each_comb *e = cf__container_of(w, struct each_comb, kick);

    (void)loop;
    e->kicked = 1;
    if (!e->c.finished)
        each_yield_due(e);
    cf__comb_unref(&e->c);
}

static int each_start(const char *func, cf_future_t *const *fs, size_t n, double timeout, cf_each_cb cb,
                      cf_each_index_cb icb, void *data, cf_free_fn destroy, cf_future_t **out)
{
    struct each_comb *e;
    int rc;

    if ((!cb && !icb) || !out)
        return cf__set_error(CF_EINVAL, "%s: %s is NULL", func, !out ? "out" : "cb");
    rc = each_build(func, fs, n, timeout, 1, &e);
    if (rc)
        return rc;
    e->cb = cb;
    e->icb = icb;
    e->data = data;
    e->destroy = destroy;
    *out = cf__comb_output(&e->c);
    cf__comb_ref(&e->c); /* the kick's */
    e->kick.run = each_kick;
    cf__loop_defer(e->c.loop, &e->kick);
    return 0;
}

int cf_as_completed_each(cf_future_t *const *fs, size_t n, double timeout, cf_each_cb cb, void *data,
                         cf_free_fn destroy, cf_future_t **out)
{
    return each_start("cf_as_completed_each", fs, n, timeout, cb, NULL, data, destroy, out);
}

int cf_as_completed_each_index(cf_future_t *const *fs, size_t n, double timeout, cf_each_index_cb cb, void *data,
                               cf_free_fn destroy, cf_future_t **out)
{
    return each_start("cf_as_completed_each_index", fs, n, timeout, NULL, cb, data, destroy, out);
}
