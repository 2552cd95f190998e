/*
 * comb_group.c - task groups (cf_group_*): a growing comb whose first failing
 * member cancels the others.  Built on the engine in comb.c (see comb.h).
 *
 * The group handle holds a reference on the comb besides the comb's own, so
 * cf_group_wait() and cf_group_error() work after the comb finished.  The
 * output future exists only once cf_group_future() closed the group.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "comb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct group_comb {
    struct cf__comb c;
    uint8_t closed;  /* cf_group_future() was called: no more members */
    int first_err;   /* the first member failure (cancellations do not count) */
    char *first_msg; /* "member 2: <message>" */
};

struct cf_group {
    struct group_comb *g;
};

static void group_maybe_finish(struct group_comb *g)
{
    struct cf__comb *c = &g->c;

    if (!g->closed || c->ndone < c->n || c->finished)
        return;
    if (g->first_err) {
        cf__comb_finish(c, CF_FUTURE_FAILED, g->first_err, g->first_msg ? strdup(g->first_msg) : NULL);
    } else {
        c->out->out.value.i64 = (int64_t)c->n;
        cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    }
}

static void group_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    struct group_comb *g = (struct group_comb *)c;

    if (status && status != CF_ECANCELED && !g->first_err) {
        g->first_err = status;
        g->first_msg = cf__printf_alloc("member %zu: %s", s->index, cf_future_error(s->f));
        cf__comb_cancel_pending(c, s->f);
    }
    group_maybe_finish(g);
}

static void group_fini(struct cf__comb *c)
{
    free(((struct group_comb *)c)->first_msg);
}

static const struct cf__comb_ops group_ops = {
    .input_done = group_input_done,
    .fini = group_fini,
    .cancel_inputs = 1,
};

int cf_group_new(cf_loop_t *loop, cf_group_t **out)
{
    cf_group_t *h;

    if (!loop || !out)
        return cf__set_error(CF_EINVAL, "cf_group_new: %s is NULL", !loop ? "loop" : "out");
    h = malloc(sizeof(*h));
    if (!h)
        return cf__set_error(CF_ENOMEM, "cf_group_new: out of memory");
    h->g = (struct group_comb *)cf__comb_new(loop, &group_ops, sizeof(struct group_comb), 0, 0);
    if (!h->g) {
        free(h);
        return cf__set_error(CF_ENOMEM, "cf_group_new: out of memory");
    }
    cf__comb_ref(&h->g->c); /* the handle's reference, besides the comb's own */
    *out = h;
    return 0;
}

int cf_group_add(cf_group_t *h, cf_future_t *f)
{
    struct group_comb *g;

    if (!h || !f)
        return cf__set_error(CF_EINVAL, "cf_group_add: %s is NULL", !h ? "g" : "f");
    g = h->g;
    if (f->loop != g->c.loop)
        return cf__set_error(CF_EINVAL, "cf_group_add: f belongs to another loop than the group");
    if (g->closed || g->first_err || g->c.finished)
        return cf__set_error(CF_ESHUTDOWN, "cf_group_add: the group %s",
                             g->first_err ? "failed already" : "is closed (cf_group_future() was called)");
    return cf__comb_add(&g->c, f);
}

static int group_all_done(void *arg)
{
    const struct group_comb *g = arg;

    return g->c.ndone == g->c.n;
}

int cf_group_wait(cf_group_t *h, double timeout)
{
    int rc;

    if (!h)
        return cf__set_error(CF_EINVAL, "cf_group_wait: g is NULL");
    if (isnan(timeout))
        return cf__set_error(CF_EINVAL, "cf_group_wait: timeout is NaN");
    rc = cf__loop_run_until(h->g->c.loop, group_all_done, h->g, timeout);
    if (rc)
        return cf__set_error(rc, "cf_group_wait: %s with %zu of %zu members not done",
                             rc == CF_ETIMEDOUT ? "timed out"
                                                : "cannot wait inside a loop callback, or nothing can complete them",
                             h->g->c.n - h->g->c.ndone, h->g->c.n);
    if (h->g->first_err)
        return cf__set_error(h->g->first_err, "cf_group_wait: %s",
                             h->g->first_msg ? h->g->first_msg : cf_strerror(h->g->first_err));
    return rc;
}

int cf_group_future(cf_group_t *h, cf_future_t **out)
{
    struct group_comb *g;
    int rc;

    if (!h || !out)
        return cf__set_error(CF_EINVAL, "cf_group_future: %s is NULL", !h ? "g" : "out");
    g = h->g;
    if (g->closed)
        return cf__set_error(CF_EALREADY, "cf_group_future: already called on this group");
    rc = cf__comb_add_output(&g->c);
    if (rc)
        return rc;
    g->closed = 1;
    *out = cf__comb_output(&g->c);
    cf__comb_ref(&g->c);
    group_maybe_finish(g);
    cf__comb_unref(&g->c);
    return 0;
}

const char *cf_group_error(const cf_group_t *h)
{
    CF_REQUIRE(h, "group is NULL");
    return h->g->first_msg;
}

void cf_group_free(cf_group_t *h)
{
    struct cf__comb *c;

    if (!h)
        return;
    c = &h->g->c;
    if (!c->finished) {
        cf__comb_ref(c);
        cf__comb_cancel_pending(c, NULL);
        cf__comb_finish(c, CF_FUTURE_CANCELLED, CF_ECANCELED, NULL);
        cf__comb_unref(c);
    }
    cf__comb_unref(c); /* the handle's reference */
    free(h);
}
