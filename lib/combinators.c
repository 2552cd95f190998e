/*
 * combinators.c - wait, all/any/settled, then, adopt, timeout, as-completed
 * and task groups.
 *
 * DESIGN
 *
 * Everything here runs on the loop thread; nothing takes a lock.
 *
 * One engine serves every combinator: a `comb` watches input futures through
 * `slots` (one per input position) and owns an output future (`out`, whose
 * owner is the comb and whose ops route cf_future_cancel() here).
 *
 *   attach:  each slot takes a reference on its input and registers
 *            comb_input_cb with the slot as data; each registration holds a
 *            reference on the comb.
 *   react:   comb_input_cb runs the kind's rule (wait condition, first
 *            failure, first success, ...), unless the comb already finished.
 *   finish:  comb_finish() settles `out` (callbacks run on a later
 *            iteration), unregisters from inputs still pending (so a
 *            never-completed input does not keep the comb alive), stops the
 *            timer and drops the comb's own reference.
 *
 * References: the comb holds one on each input (until freed) and one on `out`
 * (until finished).  A comb is freed when its own reference and every
 * registration are gone, whichever comes last.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum comb_kind { K_WAIT, K_ALL, K_SETTLED, K_ANY, K_THEN, K_MIRROR, K_EACH, K_GROUP };

struct comb;

struct slot {
    struct comb *c;
    cf_future_t *f;
    size_t index;
    uint8_t attached;
};

struct comb {
    enum comb_kind kind;
    cf_loop_t *loop;
    cf_future_t *out; /* reference held until finished; NULL for iterators */
    unsigned refs;
    uint8_t finished;
    uint8_t timed_out;
    uint8_t timer_on;
    uint8_t kicked; /* K_EACH: the already-done inputs were yielded */
    int flags;
    int mode;
    size_t n;        /* slots in use */
    size_t ndone;    /* inputs seen done */
    struct slot *slots;    /* fixed kinds: array of n */
    struct slot **gslots;  /* K_GROUP: grows */
    size_t gcap;
    ev_timer timer;
    double timeout;
    /* K_THEN */
    cf_then_fn then_fn;
    void *data;
    cf_free_fn destroy;
    /* K_EACH and the as-completed iterator: positions in yield order */
    size_t *fifo;
    size_t fifo_head, fifo_tail;
    cf_each_cb each_cb;
    struct cf__work kick;
    /* K_GROUP */
    uint8_t closed;
    int first_err;
    char *first_msg;
};

static int comb_cancel(cf_future_t *f);
static const struct cf__future_ops comb_ops = {.cancel = comb_cancel};

static void comb_unref_future(void *f)
{
    cf_future_unref(f);
}

static struct slot *comb_slot(struct comb *c, size_t i)
{
    return c->kind == K_GROUP ? c->gslots[i] : &c->slots[i];
}

static void comb_free(struct comb *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = comb_slot(c, i);
        if (s->f)
            cf_future_unref(s->f);
        if (c->kind == K_GROUP)
            free(s);
    }
    if (c->destroy)
        c->destroy(c->data);
    free(c->slots);
    free(c->gslots);
    free(c->fifo);
    free(c->first_msg);
    free(c);
}

static void comb_unref(struct comb *c)
{
    if (--c->refs == 0)
        comb_free(c);
}

static void comb_timer_cb(struct ev_loop *ev, ev_timer *w, int revents);
static void comb_input_cb(cf_future_t *f, int status, void *data);

/* Allocate a comb with `n` fixed slots and, if `with_out`, its output future. */
static struct comb *comb_new(cf_loop_t *loop, enum comb_kind kind, size_t n, int with_out)
{
    struct comb *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->kind = kind;
    c->loop = loop;
    c->refs = 1;
    c->timeout = -1;
    if (n && kind != K_GROUP) {
        c->slots = calloc(n, sizeof(*c->slots));
        if (!c->slots) {
            free(c);
            return NULL;
        }
    }
    if (with_out) {
        c->out = cf__future_alloc(loop);
        if (!c->out) {
            free(c->slots);
            free(c);
            return NULL;
        }
        c->out->ops = &comb_ops;
        c->out->owner = c;
    }
    ev_timer_init(&c->timer, comb_timer_cb, 0., 0.);
    c->timer.data = c;
    return c;
}

/* Undo comb_new() before anything was attached or handed out. */
static void comb_discard(struct comb *c)
{
    if (c->out) {
        c->out->ops = NULL;
        c->out->owner = NULL;
        cf_future_unref(c->out);
    }
    c->destroy = NULL;
    comb_unref(c);
}

static int comb_attach(struct comb *c, struct slot *s, cf_future_t *f, size_t index)
{
    int rc;

    s->c = c;
    s->index = index;
    s->f = f;
    cf_future_ref(f);
    rc = cf_future_on_done(f, comb_input_cb, s, NULL);
    if (rc)
        return rc;
    s->attached = 1;
    c->refs++;
    return 0;
}

static void comb_start_timer(struct comb *c, double timeout)
{
    if (timeout < 0)
        return;
    ev_timer_set(&c->timer, timeout, 0.);
    ev_timer_start(c->loop->ev, &c->timer);
    c->timer_on = 1;
}

/* Stop watching: unregister from pending inputs, stop the timer, drop `out`. */
static void comb_detach(struct comb *c)
{
    c->finished = 1;
    if (c->timer_on) {
        ev_timer_stop(c->loop->ev, &c->timer);
        c->timer_on = 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = comb_slot(c, i);
        if (s->attached && cf__future_remove_cb(s->f, comb_input_cb, s) == 0) {
            s->attached = 0;
            c->refs--; /* never the last: the caller holds the comb's own reference */
        }
    }
}

/* Settle `out` (if any, and if still pending) with state `st`; err/msg for failures. */
static void comb_settle(struct comb *c, cf_future_state st, int err, char *msg)
{
    cf_future_t *out = c->out;

    if (!out) {
        free(msg);
        return;
    }
    if (cf_future_get_state(out) >= CF_FUTURE_FINISHED) {
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

/* The end of a comb: settle, detach, release `out` and the comb's own reference. */
static void comb_finish(struct comb *c, cf_future_state st, int err, char *msg)
{
    if (c->finished) {
        free(msg);
        return;
    }
    comb_settle(c, st, err, msg);
    comb_detach(c);
    if (c->out) {
        cf_future_t *out = c->out;
        c->out = NULL;
        if (out->owner == c) {
            out->owner = NULL; /* done: cancel no longer reaches the comb */
        }
        cf_future_unref(out);
    }
    comb_unref(c);
}

static char *comb_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int state_of(const cf_future_t *f)
{
    return (int)cf_future_get_state(f);
}

static int is_done(const cf_future_t *f)
{
    return state_of(f) >= CF_FUTURE_FINISHED;
}

/* Copy src's outcome into c->out (value shared: out keeps src alive). */
static void comb_mirror_finish(struct comb *c, cf_future_t *src)
{
    cf_future_t *out = c->out;
    int st = state_of(src);

    if (st == CF_FUTURE_FINISHED && out && !is_done(out)) {
        out->out.value = src->out.value;
        out->out.len = src->out.len;
        out->out.is_bytes = src->out.is_bytes;
        out->out.value_free = NULL;
        if (src->out.value_free) { /* a pointer value owned by src: keep src alive */
            cf_future_ref(src);
            out->arg = src;
            out->arg_free = comb_unref_future;
        }
    }
    comb_finish(c, (cf_future_state)st, src->out.err, comb_strdup(src->out.errmsg));
}

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

static struct flist *flist_from(struct comb *c)
{
    struct flist *l = malloc(sizeof(*l) + c->n * sizeof(l->fs[0]));

    if (!l)
        return NULL;
    l->n = c->n;
    for (size_t i = 0; i < c->n; i++) {
        l->fs[i] = comb_slot(c, i)->f;
        cf_future_ref(l->fs[i]);
    }
    return l;
}

static void comb_finish_list(struct comb *c)
{
    struct flist *l = flist_from(c);

    if (!l) {
        comb_finish(c, CF_FUTURE_FAILED, CF_ENOMEM, NULL);
        return;
    }
    c->out->out.value.ptr = l;
    c->out->out.value_free = flist_free;
    c->out->out.len = l->n;
    comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
}

int cf_future_result_list(const cf_future_t *f, cf_future_t *const **list, size_t *n)
{
    int rc = cf_future_status(f);
    const struct flist *l;

    if (rc)
        return rc;
    if (f->out.value_free != flist_free)
        return CF_EINVAL;
    l = f->out.value.ptr;
    if (list)
        *list = l->fs;
    if (n)
        *n = l->n;
    return 0;
}

/* ------------------------------------------------------------------ rules */

static int wait_satisfied(struct comb *c)
{
    size_t done = 0, failed = 0;

    for (size_t i = 0; i < c->n; i++) {
        int st = state_of(c->slots[i].f);
        done += st >= CF_FUTURE_FINISHED;
        failed += st == CF_FUTURE_FAILED;
    }
    switch (c->mode) {
    case CF_FIRST_COMPLETED:
        return done > 0 || c->n == 0;
    case CF_FIRST_EXCEPTION:
        return failed > 0 || done == c->n;
    default:
        return done == c->n;
    }
}

static void wait_finish(struct comb *c)
{
    size_t done = 0;

    for (size_t i = 0; i < c->n; i++)
        done += is_done(c->slots[i].f);
    c->out->out.value.i64 = (int64_t)done;
    comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
}

static void cancel_pending_inputs(struct comb *c, const cf_future_t *except)
{
    for (size_t i = 0; i < c->n; i++) {
        cf_future_t *f = comb_slot(c, i)->f;
        if (f && f != except && !is_done(f))
            cf_future_cancel(f);
    }
}

static void any_fail_all(struct comb *c)
{
    char *msg = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&msg, &size);
    int code = 0;

    for (size_t i = 0; i < c->n; i++) {
        cf_future_t *f = c->slots[i].f;
        int st = cf_future_status(f);

        code = i == 0 || st == code ? st : CF_EFAIL;
        if (m)
            fprintf(m, "%s[%zu] %s: %s", i ? "; " : "", i, cf_err_name(st), cf_future_error(f));
    }
    if (m && c->n == 0)
        fputs("no inputs", m);
    if (m)
        fclose(m);
    else
        msg = NULL;
    if (c->n == 0)
        code = CF_EINVAL;
    else if (code == CF_ECANCELED)
        code = CF_EFAIL; /* every input cancelled is a failure of the any, not its cancellation */
    comb_finish(c, CF_FUTURE_FAILED, code, msg);
}

static void each_yield_due(struct comb *c)
{
    while (!c->finished && c->fifo_head < c->fifo_tail) {
        struct slot *s = &c->slots[c->fifo[c->fifo_head++]];
        c->each_cb(s->f, cf_future_status(s->f), c->data);
    }
    if (!c->finished && c->fifo_head == c->n) {
        c->out->out.value.i64 = (int64_t)c->n;
        comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    }
}

static void group_maybe_finish(struct comb *c)
{
    if (!c->closed || c->ndone < c->n || c->finished)
        return;
    if (c->first_err) {
        comb_finish(c, CF_FUTURE_FAILED, c->first_err, comb_strdup(c->first_msg));
    } else {
        if (c->out)
            c->out->out.value.i64 = (int64_t)c->n;
        comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    }
}

static void then_run(struct comb *c, cf_future_t *src)
{
    cf_future_t *dst = c->out;
    int st = state_of(src);
    int rc;

    if (!(c->flags & CF_THEN_ALWAYS) && st != CF_FUTURE_FINISHED) {
        comb_mirror_finish(c, src);
        return;
    }
    /* dst becomes a plain promise that the continuation resolves. */
    dst->ops = NULL;
    dst->owner = NULL;
    cf_future_ref(dst);
    rc = c->then_fn(src, dst, c->data);
    if (rc < 0 && !is_done(dst))
        cf_future_set_error(dst, rc, "continuation failed: %s", cf_strerror(rc));
    if (c->destroy) {
        c->destroy(c->data);
        c->destroy = NULL;
    }
    c->out = NULL; /* the comb no longer settles dst */
    cf_future_unref(dst);
    comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
    cf_future_unref(dst);
}

static void comb_input_cb(cf_future_t *f, int status, void *data)
{
    struct slot *s = data;
    struct comb *c = s->c;

    s->attached = 0;
    if (c->finished) {
        comb_unref(c);
        return;
    }
    c->refs++; /* keep c alive through its own finish */
    c->ndone++;
    switch (c->kind) {
    case K_WAIT:
        if (wait_satisfied(c))
            wait_finish(c);
        break;
    case K_ALL:
        if (status) {
            if (c->flags & CF_CANCEL_REST)
                cancel_pending_inputs(c, f);
            comb_finish(c, status == CF_ECANCELED ? CF_FUTURE_CANCELLED : CF_FUTURE_FAILED, status,
                        cf__printf_alloc("input %zu: %s", s->index, cf_future_error(f)));
        } else if (c->ndone == c->n) {
            comb_finish_list(c);
        }
        break;
    case K_SETTLED:
        if (c->ndone == c->n)
            comb_finish_list(c);
        break;
    case K_ANY:
        if (status == 0) {
            if (c->flags & CF_CANCEL_REST)
                cancel_pending_inputs(c, f);
            cf_future_ref(f);
            c->out->out.value.ptr = f;
            c->out->out.value_free = comb_unref_future;
            comb_finish(c, CF_FUTURE_FINISHED, 0, NULL);
        } else if (c->ndone == c->n) {
            any_fail_all(c);
        }
        break;
    case K_THEN:
        then_run(c, f);
        break;
    case K_MIRROR:
        comb_mirror_finish(c, f);
        break;
    case K_EACH:
        c->fifo[c->fifo_tail++] = s->index;
        if (!c->each_cb) { /* the iterator: stop the timer once everything is in */
            if (c->fifo_tail == c->n)
                comb_detach(c);
        } else if (c->kicked) {
            each_yield_due(c);
        }
        break;
    case K_GROUP:
        if (status && status != CF_ECANCELED && !c->first_err) {
            c->first_err = status;
            c->first_msg = cf__printf_alloc("member %zu: %s", s->index, cf_future_error(f));
            cancel_pending_inputs(c, f);
        }
        group_maybe_finish(c);
        break;
    }
    comb_unref(c); /* the extra reference */
    comb_unref(c); /* this registration's reference */
}

static void comb_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct comb *c = w->data;

    (void)ev;
    (void)revents;
    c->timer_on = 0;
    c->timed_out = 1;
    switch (c->kind) {
    case K_WAIT:
        wait_finish(c);
        break;
    case K_MIRROR: {
        cf_future_t *src = c->slots[0].f;
        cf_future_ref(src);
        comb_finish(c, CF_FUTURE_FAILED, CF_ETIMEDOUT, cf__printf_alloc("timed out after %.3f s", c->timeout));
        cf_future_cancel(src);
        cf_future_unref(src);
        break;
    }
    case K_EACH:
        if (c->out)
            comb_finish(c, CF_FUTURE_FAILED, CF_ETIMEDOUT, cf__printf_alloc("timed out after %.3f s", c->timeout));
        else
            comb_detach(c); /* the iterator: later next() calls report the timeout */
        break;
    default:
        break;
    }
}

static int comb_cancel(cf_future_t *f)
{
    struct comb *c = f->owner;

    if (!c || c->finished)
        return CF_EALREADY;
    c->refs++;
    switch (c->kind) {
    case K_ALL:
    case K_SETTLED:
    case K_ANY:
    case K_THEN:
    case K_MIRROR:
    case K_GROUP:
        cancel_pending_inputs(c, NULL);
        break;
    default:
        break;
    }
    comb_finish(c, CF_FUTURE_CANCELLED, CF_ECANCELED, NULL);
    comb_unref(c);
    return 0;
}

/* ------------------------------------------------------------------ constructors */

static int check_inputs(cf_future_t *const *fs, size_t n, cf_loop_t **loop)
{
    if (n && !fs)
        return CF_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i])
            return CF_EINVAL;
        if (*loop && fs[i]->loop != *loop)
            return CF_EINVAL;
        *loop = fs[i]->loop;
    }
    return 0;
}

/* As check_inputs(), and there must be an input to name the loop. */
static int check_inputs_loop(cf_future_t *const *fs, size_t n, cf_loop_t **loop)
{
    int rc = check_inputs(fs, n, loop);

    return rc ? rc : *loop ? 0 : CF_EINVAL;
}

/* Build a comb over fs[0..n) and attach every slot. */
static int comb_build(cf_loop_t *loop, enum comb_kind kind, cf_future_t *const *fs, size_t n, struct comb **out)
{
    struct comb *c = comb_new(loop, kind, n, 1);

    if (!c)
        return CF_ENOMEM;
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        int rc = comb_attach(c, &c->slots[i], fs[i], i);
        if (rc) {
            c->n = i + 1; /* slots[i] holds a reference too */
            comb_detach(c);
            comb_discard(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

/* Hand the comb's output to the caller (one reference of their own). */
static cf_future_t *comb_output(struct comb *c)
{
    cf_future_ref(c->out);
    return c->out;
}

int cf_wait_future(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, cf_future_t **out)
{
    cf_loop_t *loop = NULL;
    struct comb *c;
    int rc;

    if (!out || mode < CF_FIRST_COMPLETED || mode > CF_ALL_COMPLETED || isnan(timeout))
        return CF_EINVAL;
    rc = check_inputs_loop(fs, n, &loop); /* with no input, nothing names the loop: use cf_wait() */
    if (rc)
        return rc;
    rc = comb_build(loop, K_WAIT, fs, n, &c);
    if (rc)
        return rc;
    c->mode = mode;
    *out = comb_output(c);
    if (wait_satisfied(c)) {
        wait_finish(c);
        return 0;
    }
    c->timeout = timeout;
    comb_start_timer(c, timeout);
    return 0;
}

int cf_wait(cf_future_t *const *fs, size_t n, cf_wait_mode mode, double timeout, unsigned char *done, size_t *ndone)
{
    cf_loop_t *loop = NULL;
    cf_future_t *w = NULL;
    size_t count = 0;
    int rc;

    if (mode < CF_FIRST_COMPLETED || mode > CF_ALL_COMPLETED || isnan(timeout))
        return CF_EINVAL;
    rc = check_inputs(fs, n, &loop);
    if (rc)
        return rc;
    if (n) {
        rc = cf_wait_future(fs, n, mode, timeout, &w);
        if (rc)
            return rc;
        rc = cf_future_wait(w, -1);
        if (rc == CF_EDEADLK && !is_done(w))
            cf_future_cancel(w);
        cf_future_unref(w);
        if (rc && rc != CF_EDEADLK)
            rc = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int d = is_done(fs[i]);
        if (done)
            done[i] = (unsigned char)d;
        count += (size_t)d;
    }
    if (ndone)
        *ndone = count;
    return rc;
}

static int combine(cf_future_t *const *fs, size_t n, int flags, enum comb_kind kind, cf_future_t **out)
{
    cf_loop_t *loop = NULL;
    struct comb *c;
    int rc;

    if (!out)
        return CF_EINVAL;
    rc = check_inputs_loop(fs, n, &loop);
    if (rc)
        return rc;
    rc = comb_build(loop, kind, fs, n, &c);
    if (rc)
        return rc;
    c->flags = flags;
    *out = comb_output(c);
    return 0;
}

int cf_all(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out)
{
    return combine(fs, n, flags, K_ALL, out);
}

int cf_settled(cf_future_t *const *fs, size_t n, cf_future_t **out)
{
    return combine(fs, n, 0, K_SETTLED, out);
}

int cf_any(cf_future_t *const *fs, size_t n, int flags, cf_future_t **out)
{
    return combine(fs, n, flags, K_ANY, out);
}

int cf_then(cf_future_t *src, cf_then_fn fn, void *data, cf_free_fn destroy, int flags, cf_future_t **out)
{
    struct comb *c;
    int rc;

    if (!src || !fn || !out || (flags & ~CF_THEN_ALWAYS))
        return CF_EINVAL;
    rc = comb_build(src->loop, K_THEN, &src, 1, &c);
    if (rc)
        return rc;
    c->then_fn = fn;
    c->data = data;
    c->destroy = destroy;
    c->flags = flags;
    *out = comb_output(c);
    return 0;
}

int cf_timeout(cf_future_t *src, double seconds, cf_future_t **out)
{
    struct comb *c;
    int rc;

    if (!src || !out || isnan(seconds) || seconds < 0)
        return CF_EINVAL;
    rc = comb_build(src->loop, K_MIRROR, &src, 1, &c);
    if (rc)
        return rc;
    c->timeout = seconds;
    *out = comb_output(c);
    comb_start_timer(c, seconds);
    return 0;
}

int cf_future_adopt(cf_future_t *dst, cf_future_t *src)
{
    struct comb *c;
    int rc;

    if (!dst || !src || dst == src || dst->loop != src->loop)
        return CF_EINVAL;
    if (is_done(dst))
        return CF_EALREADY;
    if (dst->ops)
        return CF_EPERM;
    c = comb_new(src->loop, K_MIRROR, 1, 0);
    if (!c)
        return CF_ENOMEM;
    c->n = 1;
    rc = comb_attach(c, &c->slots[0], src, 0);
    if (rc) {
        comb_detach(c);
        comb_unref(c);
        return rc;
    }
    cf_future_ref(dst);
    c->out = dst;
    dst->ops = &comb_ops;
    dst->owner = c;
    return 0;
}

/* ------------------------------------------------------------------ as completed */

/* Positions of the first occurrence of each distinct future, in input order. */
static int dedupe(cf_future_t *const *fs, size_t n, size_t **pos, size_t *npos)
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
        return CF_ENOMEM;
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

static int each_build(cf_future_t *const *fs, size_t n, double timeout, int with_out, struct comb **out)
{
    cf_loop_t *loop = NULL;
    struct comb *c;
    size_t *pos, npos;
    int rc;

    if (isnan(timeout))
        return CF_EINVAL;
    rc = check_inputs_loop(fs, n, &loop);
    if (rc)
        return rc;
    rc = dedupe(fs, n, &pos, &npos);
    if (rc)
        return rc;
    c = comb_new(loop, K_EACH, npos, with_out);
    if (!c) {
        free(pos);
        return CF_ENOMEM;
    }
    c->fifo = malloc((npos ? npos : 1) * sizeof(*c->fifo));
    if (!c->fifo) {
        free(pos);
        comb_discard(c);
        return CF_ENOMEM;
    }
    /* Already-done futures first, in input order; then attach the rest. */
    for (size_t k = 0; k < npos; k++) {
        struct slot *s = &c->slots[k];
        cf_future_t *f = fs[pos[k]];

        c->n = k + 1;
        if (is_done(f)) {
            s->c = c;
            s->index = k;
            s->f = f;
            cf_future_ref(f);
            c->fifo[c->fifo_tail++] = k;
            c->ndone++;
        } else {
            rc = comb_attach(c, s, f, k);
            if (rc) {
                free(pos);
                comb_detach(c);
                comb_discard(c);
                return rc;
            }
        }
    }
    free(pos);
    c->timeout = timeout;
    comb_start_timer(c, timeout);
    *out = c;
    return 0;
}

struct cf_as_completed {
    struct comb *c;
};

int cf_as_completed_new(cf_future_t *const *fs, size_t n, double timeout, cf_as_completed_t **out)
{
    cf_as_completed_t *it;
    int rc;

    if (!out)
        return CF_EINVAL;
    it = malloc(sizeof(*it));
    if (!it)
        return CF_ENOMEM;
    if (n == 0) {
        it->c = NULL;
        *out = it;
        return 0;
    }
    rc = each_build(fs, n, timeout, 0, &it->c);
    if (rc) {
        free(it);
        return rc;
    }
    if (it->c->fifo_tail == it->c->n)
        comb_detach(it->c); /* everything is already done */
    *out = it;
    return 0;
}

static int each_ready(void *arg)
{
    const struct comb *c = arg;

    return c->fifo_head < c->fifo_tail || c->timed_out;
}

int cf_as_completed_next(cf_as_completed_t *it, cf_future_t **f)
{
    struct comb *c;
    int rc;

    if (!it || !f)
        return CF_EINVAL;
    c = it->c;
    if (!c || c->fifo_head == c->n)
        return CF_EOF;
    rc = cf__loop_run_until(c->loop, each_ready, c, -1);
    if (rc)
        return rc;
    if (c->fifo_head < c->fifo_tail) {
        *f = c->slots[c->fifo[c->fifo_head++]].f;
        return 0;
    }
    return CF_ETIMEDOUT;
}

void cf_as_completed_free(cf_as_completed_t *it)
{
    if (!it)
        return;
    if (it->c) {
        struct comb *c = it->c;
        if (!c->finished)
            comb_detach(c);
        comb_unref(c);
    }
    free(it);
}

static void each_kick(cf_loop_t *loop, struct cf__work *w)
{
    struct comb *c = cf__container_of(w, struct comb, kick);

    (void)loop;
    c->kicked = 1;
    if (!c->finished)
        each_yield_due(c);
    comb_unref(c);
}

int cf_as_completed_each(cf_future_t *const *fs, size_t n, double timeout, cf_each_cb cb, void *data,
                         cf_free_fn destroy, cf_future_t **out)
{
    struct comb *c;
    int rc;

    if (!cb || !out)
        return CF_EINVAL;
    rc = each_build(fs, n, timeout, 1, &c);
    if (rc)
        return rc;
    c->each_cb = cb;
    c->data = data;
    c->destroy = destroy;
    *out = comb_output(c);
    c->refs++;
    c->kick.run = each_kick;
    cf__loop_defer(c->loop, &c->kick);
    return 0;
}

/* ------------------------------------------------------------------ groups */

struct cf_group {
    struct comb *c;
};

int cf_group_new(cf_loop_t *loop, cf_group_t **out)
{
    cf_group_t *g;

    if (!loop || !out)
        return CF_EINVAL;
    g = malloc(sizeof(*g));
    if (!g)
        return CF_ENOMEM;
    g->c = comb_new(loop, K_GROUP, 0, 0);
    if (!g->c) {
        free(g);
        return CF_ENOMEM;
    }
    g->c->refs++; /* the group's own reference, besides the comb's */
    *out = g;
    return 0;
}

int cf_group_add(cf_group_t *g, cf_future_t *f)
{
    struct comb *c;
    struct slot *s;
    int rc;

    if (!g || !f || f->loop != g->c->loop)
        return CF_EINVAL;
    c = g->c;
    if (c->closed || c->first_err || c->finished)
        return CF_ESHUTDOWN;
    if (c->n == c->gcap) {
        size_t cap = c->gcap ? c->gcap * 2 : 8;
        struct slot **bigger = realloc(c->gslots, cap * sizeof(*bigger));
        if (!bigger)
            return CF_ENOMEM;
        c->gslots = bigger;
        c->gcap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return CF_ENOMEM;
    c->gslots[c->n++] = s;
    rc = comb_attach(c, s, f, c->n - 1);
    if (rc) { /* keep the slot (it holds a reference) but count it done */
        c->ndone++;
        return rc;
    }
    return 0;
}

static int group_all_done(void *arg)
{
    const struct comb *c = arg;

    return c->ndone == c->n;
}

int cf_group_wait(cf_group_t *g, double timeout)
{
    int rc;

    if (!g || isnan(timeout))
        return CF_EINVAL;
    rc = cf__loop_run_until(g->c->loop, group_all_done, g->c, timeout);
    return rc ? rc : g->c->first_err;
}

int cf_group_future(cf_group_t *g, cf_future_t **out)
{
    struct comb *c;

    if (!g || !out)
        return CF_EINVAL;
    c = g->c;
    if (c->closed)
        return CF_EALREADY;
    c->out = cf__future_alloc(c->loop);
    if (!c->out)
        return CF_ENOMEM;
    c->out->ops = &comb_ops;
    c->out->owner = c;
    c->closed = 1;
    *out = comb_output(c);
    c->refs++;
    group_maybe_finish(c);
    comb_unref(c);
    return 0;
}

const char *cf_group_error(const cf_group_t *g)
{
    CF_REQUIRE(g, "group is NULL");
    return g->c->first_msg;
}

void cf_group_free(cf_group_t *g)
{
    struct comb *c;

    if (!g)
        return;
    c = g->c;
    if (!c->finished) {
        c->refs++;
        cancel_pending_inputs(c, NULL);
        if (c->out) {
            comb_finish(c, CF_FUTURE_CANCELLED, CF_ECANCELED, NULL);
        } else {
            comb_detach(c);
            comb_unref(c); /* the comb's own reference */
        }
        comb_unref(c);
    }
    comb_unref(c); /* the group's reference */
    free(g);
}

/* ------------------------------------------------------------------ sleep and fd futures */

struct watch {
    cf_future_t *f;
    union {
        ev_timer timer;
        ev_io io;
    } w;
    int is_io;
};

static void watch_end(struct watch *wt, cf_future_state st, int64_t value)
{
    cf_future_t *f = wt->f;
    cf_loop_t *loop = f->loop;

    if (wt->is_io)
        ev_io_stop(loop->ev, &wt->w.io);
    else
        ev_timer_stop(loop->ev, &wt->w.timer);
    f->owner = NULL;
    if (st == CF_FUTURE_FINISHED)
        f->out.value.i64 = value;
    else
        f->out.err = CF_ECANCELED;
    cf__future_settle(f, st);
    free(wt);
    cf_future_unref(f); /* the watcher's reference */
}

static int watch_cancel(cf_future_t *f)
{
    struct watch *wt = f->owner;

    if (!wt)
        return CF_EALREADY;
    watch_end(wt, CF_FUTURE_CANCELLED, 0);
    return 0;
}

static const struct cf__future_ops watch_ops = {.cancel = watch_cancel};

static void watch_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    watch_end(w->data, CF_FUTURE_FINISHED, 0);
}

static void watch_io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    watch_end(w->data, CF_FUTURE_FINISHED, revents & (EV_READ | EV_WRITE));
}

static struct watch *watch_new(cf_loop_t *loop, cf_future_t **out)
{
    struct watch *wt = calloc(1, sizeof(*wt));

    if (!wt)
        return NULL;
    wt->f = cf__future_alloc(loop);
    if (!wt->f) {
        free(wt);
        return NULL;
    }
    wt->f->ops = &watch_ops;
    wt->f->owner = wt;
    cf_future_ref(wt->f); /* one for the caller, one for the watcher */
    *out = wt->f;
    return wt;
}

int cf_sleep(cf_loop_t *loop, double seconds, cf_future_t **out)
{
    struct watch *wt;

    if (!loop || !out || isnan(seconds) || seconds < 0)
        return CF_EINVAL;
    wt = watch_new(loop, out);
    if (!wt)
        return CF_ENOMEM;
    ev_timer_init(&wt->w.timer, watch_timer_cb, seconds, 0.);
    wt->w.timer.data = wt;
    ev_timer_start(loop->ev, &wt->w.timer);
    return 0;
}

int cf_fd_ready(cf_loop_t *loop, int fd, int events, cf_future_t **out)
{
    struct watch *wt;

    if (!loop || !out || fd < 0 || !(events & (EV_READ | EV_WRITE)) || (events & ~(EV_READ | EV_WRITE)))
        return CF_EINVAL;
    wt = watch_new(loop, out);
    if (!wt)
        return CF_ENOMEM;
    wt->is_io = 1;
    ev_io_init(&wt->w.io, watch_io_cb, fd, events);
    wt->w.io.data = wt;
    ev_io_start(loop->ev, &wt->w.io);
    return 0;
}
