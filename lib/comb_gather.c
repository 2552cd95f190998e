/*
 * comb_gather.c - combinators over a set of inputs: cf_wait(),
 * cf_wait_future(), cf_all(), cf_settled(), cf_any() and the list value of
 * all/settled.  Built on the engine in comb.c (see comb.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "comb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ list values */

struct flist {
    size_t n;
    cf_future_t *fs[];
};

static void flist_free(void *p)
{
    struct flist *l = p;

    for (size_t i = 0; i < l->n; i++)
        cf_future_unref(l->fs[i]);
    free(l);
}

/* Finish with a list of the inputs in input order (CF_ENOMEM if it cannot be made). */
static void finish_list(struct cf__comb *c)
{
    struct flist *l = malloc(sizeof(*l) + c->n * sizeof(l->fs[0]));

    if (!l) {
        cf__comb_finish(c, CF_FUTURE_FAILED, CF_ENOMEM, NULL);
        return;
    }
    l->n = c->n;
    for (size_t i = 0; i < c->n; i++) {
        l->fs[i] = cf__comb_slot(c, i)->f;
        cf_future_ref(l->fs[i]);
    }
    c->out->out.value.ptr = l;
    c->out->out.value_free = flist_free;
    c->out->out.len = l->n;
    cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
}

int cf_future_result_list(const cf_future_t *f, cf_future_t *const **list, size_t *n)
{
    const struct flist *l;
    int rc;

    if (!f)
        return cf__set_error(CF_EINVAL, "cf_future_result_list: f is NULL");
    rc = cf_future_status(f);
    if (rc)
        return rc;
    if (f->out.value_free != flist_free)
        return cf__set_error(CF_EINVAL,
                             "cf_future_result_list: the future holds no list (not from cf_all()/cf_settled())");
    l = f->out.value.ptr;
    if (list)
        *list = l->fs;
    if (n)
        *n = l->n;
    return 0;
}

/* ------------------------------------------------------------------ wait */

struct wait_comb {
    struct cf__comb c;
    cf_wait_mode mode;
};

static int wait_satisfied(struct wait_comb *w)
{
    struct cf__comb *c = &w->c;
    size_t done = 0, failed = 0;

    for (size_t i = 0; i < c->n; i++) {
        cf_future_state st = cf_future_get_state(c->seg0[i].f);
        done += st >= CF_FUTURE_FINISHED;
        failed += st == CF_FUTURE_FAILED;
    }
    switch (w->mode) {
    case CF_FIRST_COMPLETED:
        return done > 0 || c->n == 0;
    case CF_FIRST_EXCEPTION:
        return failed > 0 || done == c->n;
    default:
        return done == c->n;
    }
}

/* Finish with the number of done inputs (whether or not the mode is satisfied). */
static void wait_finish(struct cf__comb *c)
{
    size_t done = 0;

    for (size_t i = 0; i < c->n; i++)
        done += cf__done(c->seg0[i].f);
    c->out->out.value.i64 = (int64_t)done;
    cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
}

static void wait_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    (void)s;
    (void)status;
    if (wait_satisfied((struct wait_comb *)c))
        wait_finish(c);
}

static const struct cf__comb_ops wait_ops = {
    .input_done = wait_input_done,
    .timed_out = wait_finish,
    .cancel_inputs = 0, /* cancelling the wait only stops the waiting */
};

static int check_mode(const char *func, cf_wait_mode mode, double timeout)
{
    if (mode < CF_FIRST_COMPLETED || mode > CF_ALL_COMPLETED)
        return cf__set_error(CF_EINVAL, "%s: mode %d is not a cf_wait_mode", func, (int)mode);
    if (isnan(timeout))
        return cf__set_error(CF_EINVAL, "%s: timeout is NaN", func);
    return 0;
}

int cf_wait_future(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, cf_future_t **out)
{
    cf_loop_t *loop = NULL;
    struct cf__comb *c;
    int rc;

    if (!out)
        return cf__set_error(CF_EINVAL, "cf_wait_future: out is NULL");
    rc = check_mode("cf_wait_future", mode, timeout);
    if (!rc) /* with no input, nothing names the loop: use cf_wait() */
        rc = cf__comb_check_inputs_loop("cf_wait_future", fs, n, &loop);
    if (!rc)
        rc = cf__comb_build(loop, &wait_ops, sizeof(struct wait_comb), fs, n, &c);
    if (rc)
        return rc;
    ((struct wait_comb *)c)->mode = mode;
    *out = cf__comb_output(c);
    if (wait_satisfied((struct wait_comb *)c))
        wait_finish(c);
    else
        cf__comb_start_timer(c, timeout);
    return 0;
}

int cf_wait(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, unsigned char *done, size_t *ndone)
{
    cf_loop_t *loop = NULL;
    cf_future_t *w = NULL;
    size_t count = 0;
    int rc;

    rc = check_mode("cf_wait", mode, timeout);
    if (!rc)
        rc = cf__comb_check_inputs("cf_wait", fs, n, &loop);
    if (rc)
        return rc;
    if (n) {
        rc = cf_wait_future(fs, n, mode, timeout, &w);
        if (rc)
            return rc;
        rc = cf_future_wait(w, -1);
        if (rc == CF_EDEADLK && !cf__done(w))
            cf_future_cancel(w);
        cf_future_unref(w);
        if (rc && rc != CF_EDEADLK)
            rc = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int d = cf__done(fs[i]);
        if (done)
            done[i] = (unsigned char)d;
        count += (size_t)d;
    }
    if (ndone)
        *ndone = count;
    return rc;
}

/* ------------------------------------------------------------------ all / settled / any */

struct gather_comb {
    struct cf__comb c;
    int flags; /* CF_CANCEL_REST */
};

static void all_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    if (status) {
        if (((struct gather_comb *)c)->flags & CF_CANCEL_REST)
            cf__comb_cancel_pending(c, s->f);
        cf__comb_finish(c, status == CF_ECANCELED ? CF_FUTURE_CANCELLED : CF_FUTURE_FAILED, status,
                        cf__printf_alloc("input %zu: %s", s->index, cf_future_error(s->f)));
    } else if (c->ndone == c->n) {
        finish_list(c);
    }
}

static void settled_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    (void)s;
    (void)status;
    if (c->ndone == c->n)
        finish_list(c);
}

static void unref_future(void *f)
{
    cf_future_unref(f);
}

/* Every input failed or was cancelled: fail with all their errors. */
static void any_fail_all(struct cf__comb *c)
{
    char *msg = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&msg, &size);
    int code = 0;

    for (size_t i = 0; i < c->n; i++) {
        cf_future_t *f = c->seg0[i].f;
        int st = cf_future_status(f);

        code = i == 0 || st == code ? st : CF_EFAIL;
        if (m)
            fprintf(m, "%s[%zu] %s: %s", i ? "; " : "", i, cf_err_name(st), cf_future_error(f));
    }
    if (m)
        fclose(m);
    else
        msg = NULL;
    if (code == CF_ECANCELED)
        code = CF_EFAIL; /* every input cancelled is a failure of the any, not its cancellation */
    cf__comb_finish(c, CF_FUTURE_FAILED, code, msg);
}

static void any_input_done(struct cf__comb *c, struct cf__comb_slot *s, int status)
{
    if (status == 0) {
        if (((struct gather_comb *)c)->flags & CF_CANCEL_REST)
            cf__comb_cancel_pending(c, s->f);
        cf_future_ref(s->f);
        c->out->out.value.ptr = s->f;
        c->out->out.value_free = unref_future;
        cf__comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    } else if (c->ndone == c->n) {
        any_fail_all(c);
    }
}

static const struct cf__comb_ops all_ops = {.input_done = all_input_done, .cancel_inputs = 1};
static const struct cf__comb_ops settled_ops = {.input_done = settled_input_done, .cancel_inputs = 1};
static const struct cf__comb_ops any_ops = {.input_done = any_input_done, .cancel_inputs = 1};

static int gather(const char *func, const struct cf__comb_ops *ops, cf_future_t *const *fs, size_t n, int flags,
                  cf_future_t **out)
{
    cf_loop_t *loop = NULL;
    struct cf__comb *c;
    int rc;

    if (!out)
        return cf__set_error(CF_EINVAL, "%s: out is NULL", func);
    if (flags & ~CF_CANCEL_REST)
        return cf__set_error(CF_EINVAL, "%s: unknown flags 0x%x", func, (unsigned)flags);
    rc = cf__comb_check_inputs_loop(func, fs, n, &loop);
    if (!rc)
        rc = cf__comb_build(loop, ops, sizeof(struct gather_comb), fs, n, &c);
    if (rc)
        return rc;
    ((struct gather_comb *)c)->flags = flags;
    *out = cf__comb_output(c);
    return 0;
}

int cf_all(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out)
{
    return gather("cf_all", &all_ops, fs, n, flags, out);
}

int cf_settled(cf_future_t *const *fs, size_t n, cf_future_t **out)
{
    return gather("cf_settled", &settled_ops, fs, n, 0, out);
}

int cf_any(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out)
{
    return gather("cf_any", &any_ops, fs, n, flags, out);
}
