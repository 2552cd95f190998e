/*
 * comb_chain.c - combinators over one input: cf_then(), cf_future_adopt()
 * and cf_timeout().  Built on the engine in comb.c (see comb.h).
 *
 * A mirror (adopt, timeout) copies its input's outcome into the output.  A
 * pointer value is shared, not copied: the output then records the input in
 * `value_src` (flagged by `shares_value`) and holds a reference on it until
 * the output is freed.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "comb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Finish `c` as src ended (value shared: the output keeps src alive). */
static void mirror_finish(struct cf__comb *c, cf_future_t *src)
{
    cf_future_t *out = c->out;
    cf_future_state st = cf_future_get_state(src);

    if (st == CF_FUTURE_FINISHED && out && !cf__done(out)) {
        out->out.value = src->out.value;
        out->out.len = src->out.len;
        out->out.is_bytes = src->out.is_bytes;
        out->out.value_free = NULL;
        /* A pointer value owned by src, or by the future src shares it with. */
        if ((src->out.value_free || src->shares_value) && !out->shares_value) {
            CF_ASSERT(!out->arg_free, "a mirror's output carries no task argument");
            cf_future_ref(src);
            out->value_src = src;
            out->shares_value = 1;
        }
    }
    cf__comb_finish(c, st, src->out.err, dup_or_null(src->out.errmsg));
}

/* ------------------------------------------------------------------ then */

struct then_comb {
    struct cf__comb c;
    cf_then_fn fn;
    void *data;
    cf_free_fn destroy; /* called with data once fn ran or will not run */
    int flags;
};

static void then_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    struct then_comb *t = (struct then_comb *)c;
    cf_future_t *dst = c->out;
    int rc;

    if (!(t->flags & CF_THEN_ALWAYS) && status != 0) {
        mirror_finish(c, s->f);
        return;
    }
    /* dst becomes a plain promise that the continuation resolves. */
    dst->ops = NULL;
    dst->owner = NULL;
    cf_future_ref(dst);
    rc = t->fn(s->f, dst, t->data);
    if (rc < 0 && !cf__done(dst))
        cf_future_set_error(dst, rc, "continuation failed: %s", cf_strerror(rc));
    if (t->destroy) {
        t->destroy(t->data);
        t->destroy = NULL;
    }
    c->out = NULL; /* the comb no longer settles dst */
    cf_future_unref(dst);
    cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    cf_future_unref(dst);
}

static void then_fini(struct cf__comb *c)
{
    struct then_comb *t = (struct then_comb *)c;

    if (t->destroy)
        t->destroy(t->data);
}

static const struct cf__comb_ops then_ops = {.input_done = then_input_done, .fini = then_fini, .cancel_inputs = 1};

int cf_then(cf_future_t *src, cf_then_fn fn, void *data, cf_free_fn destroy, int flags, cf_future_t **out)
{
    struct cf__comb *c;
    struct then_comb *t;
    int rc;

    if (!src || !fn || !out)
        return cf__set_error(CF_EINVAL, "cf_then: %s is NULL", !src ? "src" : !fn ? "fn" : "out");
    if (flags & ~CF_THEN_ALWAYS)
        return cf__set_error(CF_EINVAL, "cf_then: unknown flags 0x%x", (unsigned)flags);
    rc = cf__comb_build(src->loop, &then_ops, sizeof(struct then_comb), &src, 1, &c);
    if (rc)
        return rc;
    t = (struct then_comb *)c;
    t->fn = fn;
    t->data = data;
    t->destroy = destroy;
    t->flags = flags;
    *out = cf__comb_output(c);
    return 0;
}

/* ------------------------------------------------------------------ adopt / timeout */

struct mirror_comb {
    struct cf__comb c;
    double timeout; /* cf_timeout(): seconds, for the message */
};

static void mirror_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    (void)status;
    mirror_finish(c, s->f);
}

static void mirror_timed_out(struct cf__comb *c)
{
    cf_future_t *src = c->seg0[0].f;

    cf_future_ref(src);
    cf__comb_finish(c, CF_FUTURE_FAILED, CF_ETIMEDOUT,
                    cf__printf_alloc("timed out after %.3f s", ((struct mirror_comb *)c)->timeout));
    cf_future_cancel(src);
    cf_future_unref(src);
}

static const struct cf__comb_ops mirror_ops = {
    .input_done = mirror_input_done,
    .timed_out = mirror_timed_out,
    .cancel_inputs = 1,
};

int cf_timeout(cf_future_t *src, double seconds, cf_future_t **out)
{
    struct cf__comb *c;
    int rc;

    if (!src || !out)
        return cf__set_error(CF_EINVAL, "cf_timeout: %s is NULL", !src ? "src" : "out");
    if (isnan(seconds) || seconds < 0)
        return cf__set_error(CF_EINVAL, "cf_timeout: seconds must be >= 0 (got %g)", seconds);
    rc = cf__comb_build(src->loop, &mirror_ops, sizeof(struct mirror_comb), &src, 1, &c);
    if (rc)
        return rc;
    ((struct mirror_comb *)c)->timeout = seconds;
    *out = cf__comb_output(c);
    cf__comb_start_timer(c, seconds);
    return 0;
}

int cf_future_adopt(cf_future_t *dst, cf_future_t *src)
{
    struct cf__comb *c;
    int rc;

    if (!dst || !src)
        return cf__set_error(CF_EINVAL, "cf_future_adopt: %s is NULL", !dst ? "dst" : "src");
    if (dst == src)
        return cf__set_error(CF_EINVAL, "cf_future_adopt: dst and src are the same future");
    if (dst->loop != src->loop)
        return cf__set_error(CF_EINVAL, "cf_future_adopt: dst and src belong to different loops");
    if (cf__done(dst))
        return cf__set_error(CF_EALREADY, "cf_future_adopt: dst is already done");
    if (dst->ops)
        return cf__set_error(CF_EPERM,
                             "cf_future_adopt: dst is not a plain promise (an executor's or combinator's future)");
    c = cf__comb_new(src->loop, &mirror_ops, sizeof(struct mirror_comb), 1, 0);
    if (!c)
        return cf__set_error(CF_ENOMEM, "cf_future_adopt: out of memory");
    c->n = 1;
    rc = cf__comb_attach(c, &c->seg0[0], src, 0);
    if (rc) {
        cf__comb_discard(c);
        return rc;
    }
    cf__comb_take_output(c, dst);
    return 0;
}
