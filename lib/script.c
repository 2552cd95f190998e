/*
 * script.c - the script-style layer: runtime, typed tasks, blocking
 * accessors, as-completed by index, maps over number arrays.
 *
 * DESIGN
 *
 * Public API only.  Everything here is built on the callback-first API of the
 * other headers (executor submits of bytes, cf_future_wait(), cf_as_completed,
 * cf_map); it adds no thread, no lock and no global state.
 *
 * Typed tasks.  A call travels as one self-contained byte payload:
 *
 *     struct call { u32 magic | u32 shape | fn pointer | argument (i64 or f64) } [ bytes ]
 *
 * submitted with cf_executor_submit_bytes(), so the same call runs on a
 * thread or in a forked worker process (where the function pointer is valid:
 * the worker is a fork of this program).  One trampoline, call_task(),
 * checks the payload and calls the user's function by shape.  Map items are
 * the same struct without bytes, produced one at a time by a pull callback
 * over the caller's array, so cf_map keeps its laziness, window and chunking.
 *
 * As-completed by index.  cf_completed wraps a cf_as_completed_t and maps
 * each returned future back to its first position through a table of
 * (future, position) pairs sorted by address: O(n log n) in all.
 *
 * Runtime.  Owns one ev loop, its cf_loop_t and up to two pools, created in
 * that order (process pool before thread pool: its fork server must be forked
 * before any worker thread exists) and freed in reverse.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <cfutures.h>

#include <ev.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ runtime */

struct cf_runtime {
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *tp;
    cf_process_pool_t *pp;
};

static void runtime_free_pools(cf_runtime_t *rt)
{
    if (rt->tp) {
        cf_thread_pool_free(rt->tp);
        rt->tp = NULL;
    }
    if (rt->pp) {
        cf_process_pool_free(rt->pp);
        rt->pp = NULL;
    }
}

int cf_runtime_new_opts(const cf_thread_pool_opts *topts, const cf_process_pool_opts *popts, cf_runtime_t **out)
{
    cf_runtime_t *rt;
    int rc;

    if (!out || (!topts && !popts))
        return CF__EINVAL(!out ? "out is NULL" : "no pool: topts and popts are both NULL");
    rt = calloc(1, sizeof(*rt));
    if (!rt)
        return CF_ENOMEM;
    errno = 0;
    rt->ev = ev_loop_new(EVFLAG_AUTO);
    if (!rt->ev) {
        rc = errno > 0 ? -errno : CF_ENOMEM;
        free(rt);
        return rc;
    }
    rc = cf_loop_new(rt->ev, &rt->loop);
    if (rc == 0 && popts)
        rc = cf_process_pool_new(rt->loop, popts, &rt->pp);
    if (rc == 0 && topts)
        rc = cf_thread_pool_new(rt->loop, topts, &rt->tp);
    if (rc != 0) {
        runtime_free_pools(rt);
        if (rt->loop) {
            ev_run(rt->ev, 0); /* nothing was submitted: returns at once */
            if (cf_loop_close(rt->loop) != 0)
                return rc; /* cannot happen; leak rather than destroy the loop under the binding */
        }
        ev_loop_destroy(rt->ev);
        free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

int cf_runtime_new(int threads, int processes, cf_runtime_t **out)
{
    cf_thread_pool_opts topts;
    cf_process_pool_opts popts;

    if (threads < CF_RUNTIME_CPUS || processes < CF_RUNTIME_CPUS || (!threads && !processes))
        return cf__set_error(CF_EINVAL, "cf_runtime_new: %s",
                             !threads && !processes ? "no pool: threads and processes are both 0"
                                                    : "a worker count must be >= 0, or CF_RUNTIME_CPUS");
    cf_thread_pool_opts_init(&topts);
    cf_process_pool_opts_init(&popts);
    if (threads > 0)
        topts.max_workers = threads;
    if (processes > 0)
        popts.max_workers = processes;
    return cf_runtime_new_opts(threads ? &topts : NULL, processes ? &popts : NULL, out);
}

int cf_runtime_free(cf_runtime_t *rt)
{
    int rc;

    if (!rt)
        return 0;
    if (ev_depth(rt->ev) > 0)
        return cf__set_error(CF_EDEADLK, "cf_runtime_free: called from inside the runtime's own loop");
    runtime_free_pools(rt);
    /* Cancelled and killed tasks complete on the loop: let their callbacks run. */
    ev_run(rt->ev, 0);
    rc = cf_loop_close(rt->loop);
    if (rc != 0)
        return rc;
    ev_loop_destroy(rt->ev);
    free(rt);
    return 0;
}

int cf_runtime_run(cf_runtime_t *rt)
{
    if (!rt)
        return CF__EINVAL("rt is NULL");
    if (ev_depth(rt->ev) > 0)
        return cf__set_error(CF_EDEADLK, "cf_runtime_run: called from inside the runtime's own loop");
    ev_run(rt->ev, 0);
    return 0;
}

struct ev_loop *cf_runtime_ev(const cf_runtime_t *rt)
{
    return rt ? rt->ev : NULL;
}

cf_loop_t *cf_runtime_loop(const cf_runtime_t *rt)
{
    return rt ? rt->loop : NULL;
}

cf_executor_t *cf_runtime_threads(const cf_runtime_t *rt)
{
    return rt && rt->tp ? cf_thread_pool_executor(rt->tp) : NULL;
}

cf_executor_t *cf_runtime_processes(const cf_runtime_t *rt)
{
    return rt && rt->pp ? cf_process_pool_executor(rt->pp) : NULL;
}

cf_thread_pool_t *cf_runtime_thread_pool(const cf_runtime_t *rt)
{
    return rt ? rt->tp : NULL;
}

cf_process_pool_t *cf_runtime_process_pool(const cf_runtime_t *rt)
{
    return rt ? rt->pp : NULL;
}

/* ------------------------------------------------------------------ typed tasks */

#define CALL_MAGIC 0x6c6c6163u /* "call" */

enum shape {
    SHAPE_I64_I64 = 1,
    SHAPE_I64_F64,
    SHAPE_F64_I64,
    SHAPE_F64_F64,
    SHAPE_BYTES_I64,
    SHAPE_BYTES_F64,
    SHAPE_I64_TASK,
    SHAPE_F64_TASK,
    SHAPE_BYTES_TASK
};

/* The payload of a typed task (then, for bytes shapes, the argument bytes). */
struct call {
    uint32_t magic;
    uint32_t shape;
    union {
        void (*any)(void);
        cf_fn_i64_i64 i64_i64;
        cf_fn_i64_f64 i64_f64;
        cf_fn_f64_i64 f64_i64;
        cf_fn_f64_f64 f64_f64;
        cf_fn_bytes_i64 bytes_i64;
        cf_fn_bytes_f64 bytes_f64;
        cf_task_i64_fn i64_task;
        cf_task_f64_fn f64_task;
        cf_task_bytes_fn bytes_task;
    } fn;
    union {
        int64_t i;
        double d;
    } x;
};

/* Run one call on a worker.  `p` is 8-byte aligned (task argument or map item). */
static int run_call(cf_task_t *task, const void *p, size_t len)
{
    const struct call *c = p;
    const void *data = (const char *)p + sizeof(*c);
    size_t dlen;

    if (len < sizeof(*c) || c->magic != CALL_MAGIC)
        return cf_task_fail(task, CF_EINVAL, "not a typed call (%zu bytes)", len);
    dlen = len - sizeof(*c);
    switch ((enum shape)c->shape) {
    case SHAPE_I64_I64:
        cf_task_set_i64(task, c->fn.i64_i64(c->x.i));
        return 0;
    case SHAPE_I64_F64:
        cf_task_set_f64(task, c->fn.i64_f64(c->x.i));
        return 0;
    case SHAPE_F64_I64:
        cf_task_set_i64(task, c->fn.f64_i64(c->x.d));
        return 0;
    case SHAPE_F64_F64:
        cf_task_set_f64(task, c->fn.f64_f64(c->x.d));
        return 0;
    case SHAPE_BYTES_I64:
        cf_task_set_i64(task, c->fn.bytes_i64(data, dlen));
        return 0;
    case SHAPE_BYTES_F64:
        cf_task_set_f64(task, c->fn.bytes_f64(data, dlen));
        return 0;
    case SHAPE_I64_TASK:
        return c->fn.i64_task(task, c->x.i);
    case SHAPE_F64_TASK:
        return c->fn.f64_task(task, c->x.d);
    case SHAPE_BYTES_TASK:
        return c->fn.bytes_task(task, data, dlen);
    }
    return cf_task_fail(task, CF_EINVAL, "unknown call shape %u", (unsigned)c->shape);
}

/* The task function of every typed submit. */
int cf__call_task(cf_task_t *task, void *arg); /* registry.c names it (remote executors) */
int cf__call_task(cf_task_t *task, void *arg)
{
    size_t len = 0;
    void *p = cf_task_arg(task, &len);

    (void)arg;
    return run_call(task, p, len);
}

static int submit_call(cf_executor_t *ex, enum shape shape, void (*fn)(void), int64_t xi, double xd,
                       const void *data, size_t len, cf_future_t **out)
{
    unsigned char small[256];
    struct call c;
    unsigned char *buf = small;
    int rc;

    if (!ex || !fn || !out || (!data && len > 0))
        return cf__set_error(CF_EINVAL, "submit: %s",
                             !ex    ? "ex is NULL"
                             : !fn  ? "fn is NULL"
                             : !out ? "out is NULL"
                                    : "data is NULL with len > 0");
    memset(&c, 0, sizeof(c));
    c.magic = CALL_MAGIC;
    c.shape = (uint32_t)shape;
    c.fn.any = fn;
    if (shape == SHAPE_F64_I64 || shape == SHAPE_F64_F64 || shape == SHAPE_F64_TASK)
        c.x.d = xd;
    else
        c.x.i = xi;
    if (len > sizeof(small) - sizeof(c)) {
        if (len > SIZE_MAX - sizeof(c))
            return CF_ENOMEM;
        buf = malloc(sizeof(c) + len);
        if (!buf)
            return CF_ENOMEM;
    }
    memcpy(buf, &c, sizeof(c));
    if (len)
        memcpy(buf + sizeof(c), data, len);
    rc = cf_executor_submit_bytes(ex, cf__call_task, buf, sizeof(c) + len, out);
    if (buf != small)
        free(buf);
    return rc;
}

int cf_submit_i64_i64(cf_executor_t *ex, cf_fn_i64_i64 fn, int64_t x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_I64_I64, (void (*)(void))fn, x, 0, NULL, 0, out);
}

int cf_submit_i64_f64(cf_executor_t *ex, cf_fn_i64_f64 fn, int64_t x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_I64_F64, (void (*)(void))fn, x, 0, NULL, 0, out);
}

int cf_submit_f64_i64(cf_executor_t *ex, cf_fn_f64_i64 fn, double x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_F64_I64, (void (*)(void))fn, 0, x, NULL, 0, out);
}

int cf_submit_f64_f64(cf_executor_t *ex, cf_fn_f64_f64 fn, double x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_F64_F64, (void (*)(void))fn, 0, x, NULL, 0, out);
}

int cf_submit_bytes_i64(cf_executor_t *ex, cf_fn_bytes_i64 fn, const void *data, size_t len, cf_future_t **out)
{
    return submit_call(ex, SHAPE_BYTES_I64, (void (*)(void))fn, 0, 0, data, len, out);
}

int cf_submit_bytes_f64(cf_executor_t *ex, cf_fn_bytes_f64 fn, const void *data, size_t len, cf_future_t **out)
{
    return submit_call(ex, SHAPE_BYTES_F64, (void (*)(void))fn, 0, 0, data, len, out);
}

int cf_submit_i64_task(cf_executor_t *ex, cf_task_i64_fn fn, int64_t x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_I64_TASK, (void (*)(void))fn, x, 0, NULL, 0, out);
}

int cf_submit_f64_task(cf_executor_t *ex, cf_task_f64_fn fn, double x, cf_future_t **out)
{
    return submit_call(ex, SHAPE_F64_TASK, (void (*)(void))fn, 0, x, NULL, 0, out);
}

int cf_submit_bytes_task(cf_executor_t *ex, cf_task_bytes_fn fn, const void *data, size_t len, cf_future_t **out)
{
    return submit_call(ex, SHAPE_BYTES_TASK, (void (*)(void))fn, 0, 0, data, len, out);
}

int cf_futures_unref(cf_future_t **fs, size_t n)
{
    int first = 0;

    if (!fs)
        return n ? CF_EINVAL : 0;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i])
            continue;
        int rc = cf_future_unref(fs[i]);
        if (rc != 0 && first == 0)
            first = rc;
        fs[i] = NULL;
    }
    return first;
}

/* ------------------------------------------------------------------ values */

/* Wait for f (unless done) and return its status. */
static int settle(cf_future_t *f, double timeout)
{
    int rc = cf_future_status(f);

    if (rc != CF_EPENDING)
        return rc;
    rc = cf_future_wait(f, timeout);
    if (rc != 0)
        return rc;
    return cf_future_status(f);
}

int cf_future_get_i64(cf_future_t *f, double timeout, int64_t *out)
{
    int rc;

    if (!f || !out)
        return CF__EINVAL(!f ? "f is NULL" : "out is NULL");
    rc = settle(f, timeout);
    return rc ? rc : cf_future_result_i64(f, out);
}

int cf_future_get_f64(cf_future_t *f, double timeout, double *out)
{
    int rc;

    if (!f || !out)
        return CF__EINVAL(!f ? "f is NULL" : "out is NULL");
    rc = settle(f, timeout);
    return rc ? rc : cf_future_result_f64(f, out);
}

int cf_future_get_bytes(cf_future_t *f, double timeout, const void **data, size_t *len)
{
    int rc;

    if (!f || !data || !len)
        return CF__EINVAL(!f ? "f is NULL" : !data ? "data is NULL" : "len is NULL");
    rc = settle(f, timeout);
    return rc ? rc : cf_future_result_bytes(f, data, len);
}

int64_t cf_future_i64(cf_future_t *f)
{
    int64_t v = 0;

    if (f)
        cf_future_get_i64(f, -1, &v);
    return v;
}

double cf_future_f64(cf_future_t *f)
{
    double v = 0;

    if (f)
        cf_future_get_f64(f, -1, &v);
    return v;
}

const void *cf_future_bytes(cf_future_t *f, size_t *len)
{
    const void *data = NULL;
    size_t n = 0;

    if (!f || cf_future_get_bytes(f, -1, &data, &n) != 0) {
        data = NULL;
        n = 0;
    }
    if (len)
        *len = n;
    return data;
}

/* ------------------------------------------------------------------ as completed, by index */

struct pos {
    const cf_future_t *f;
    size_t index;
};

/* priv_ of an iteration that ended (a constant, not state). */
static const char completed_ended;
#define ENDED ((void *)(uintptr_t)&completed_ended)

struct completed_state {
    cf_as_completed_t *it;
    struct pos *pos;    /* sorted by (address, index) */
    size_t n;
    struct pos *handed; /* take: first table entry of the future handed out last, or NULL */
};

/* take: drop the references of every position of the future handed out last. */
static void completed_release_handed(cf_completed *c, struct completed_state *s)
{
    struct pos *p = s->handed;

    s->handed = NULL;
    if (!p)
        return;
    for (const cf_future_t *f = p->f; p < s->pos + s->n && p->f == f; p++) {
        if (c->fs[p->index]) {
            cf_future_unref(c->fs[p->index]);
            c->fs[p->index] = NULL;
        }
    }
}

static int pos_cmp(const void *a, const void *b)
{
    const struct pos *x = a, *y = b;
    uintptr_t fx = (uintptr_t)x->f, fy = (uintptr_t)y->f;

    if (fx != fy)
        return fx < fy ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int pos_find(const void *key, const void *elem)
{
    uintptr_t k = (uintptr_t)((const struct pos *)key)->f, e = (uintptr_t)((const struct pos *)elem)->f;

    return k < e ? -1 : k > e;
}

void cf_completed_end(cf_completed *c)
{
    struct completed_state *s;

    if (!c)
        return;
    if (c->priv_ && c->priv_ != ENDED) {
        s = c->priv_;
        cf_as_completed_free(s->it);
        free(s->pos);
        free(s);
    }
    if (c->take && c->priv_ != ENDED)
        cf_futures_unref(c->fs, c->fs ? c->n : 0);
    c->priv_ = ENDED;
}

/* Set up the iteration state: 0 or an error. */
static int completed_start(cf_completed *c)
{
    struct completed_state *s;
    int rc;

    if (!c->fs && c->n > 0)
        return cf__set_error(CF_EINVAL, "cf_completed_next: fs is NULL with n = %zu", c->n);
    s = calloc(1, sizeof(*s));
    if (!s)
        return CF_ENOMEM;
    s->n = c->n;
    if (c->n > 0) {
        s->pos = calloc(c->n, sizeof(*s->pos));
        if (!s->pos) {
            free(s);
            return CF_ENOMEM;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        s->pos[i].f = c->fs[i];
        s->pos[i].index = i;
    }
    if (c->n > 1)
        qsort(s->pos, c->n, sizeof(*s->pos), pos_cmp);
    rc = cf_as_completed_new((cf_future_t *const *)c->fs, c->n, c->timeout, &s->it);
    if (rc != 0) {
        free(s->pos);
        free(s);
        return rc;
    }
    c->priv_ = s;
    return 0;
}

int cf_completed_next(cf_completed *c)
{
    struct completed_state *s;
    struct pos key, *hit;
    cf_future_t *f = NULL;
    int rc;

    if (!c)
        return CF__EINVAL("c is NULL");
    if (c->priv_ == ENDED)
        return CF_EOF;
    if (!c->priv_) {
        rc = completed_start(c);
        if (rc != 0)
            goto end;
    }
    s = c->priv_;
    if (c->take)
        completed_release_handed(c, s);
    rc = cf_as_completed_next(s->it, &f);
    if (rc != 0)
        goto end;
    key.f = f;
    key.index = 0;
    hit = bsearch(&key, s->pos, s->n, sizeof(*s->pos), pos_find);
    if (!hit) { /* cannot happen: the iterator returns only its inputs */
        rc = CF_EINVAL;
        goto end;
    }
    while (hit > s->pos && hit[-1].f == f) /* the first position of a repeated future */
        hit--;
    c->index = hit->index;
    c->future = f;
    s->handed = hit;
    return 0;

end:
    cf_completed_end(c);
    c->future = NULL;
    return rc;
}

/* ------------------------------------------------------------------ maps over arrays */

struct map_src {
    struct call item; /* the item handed to cf_map; copied before the next pull */
    const void *xs;
    int xs_f64;
    size_t n, next;
};

static int map_pull(void *src, const void **item, size_t *len)
{
    struct map_src *ms = src;

    if (ms->next == ms->n)
        return 0;
    if (ms->xs_f64)
        ms->item.x.d = ((const double *)ms->xs)[ms->next];
    else
        ms->item.x.i = ((const int64_t *)ms->xs)[ms->next];
    ms->next++;
    *item = &ms->item;
    *len = sizeof(ms->item);
    return 1;
}

int cf__map_call_item(cf_task_t *task, const void *item, size_t len); /* registry.c names it */
int cf__map_call_item(cf_task_t *task, const void *item, size_t len)
{
    return run_call(task, item, len);
}

static int map_array(cf_executor_t *ex, enum shape shape, void (*fn)(void), const void *xs, size_t n,
                     size_t chunksize, void *out, int out_f64)
{
    struct map_src src;
    cf_map_opts o;
    cf_map_t *m = NULL;
    cf_map_result r;
    int rc, failed = 0;

    if (!ex || !fn || (n > 0 && (!xs || !out)))
        return cf__set_error(CF_EINVAL, "map: %s",
                             !ex   ? "ex is NULL"
                             : !fn ? "fn is NULL"
                             : !xs ? "xs is NULL"
                                   : "out is NULL");
    memset(&src, 0, sizeof(src));
    src.item.magic = CALL_MAGIC;
    src.item.shape = (uint32_t)shape;
    src.item.fn.any = fn;
    src.xs = xs;
    src.xs_f64 = shape == SHAPE_F64_I64 || shape == SHAPE_F64_F64;
    src.n = n;

    cf_map_opts_init(&o);
    if (chunksize == 0) {
        size_t parts = 4 * (size_t)cf_executor_workers(ex);
        chunksize = parts ? (n + parts - 1) / parts : 1;
    }
    o.chunksize = chunksize ? chunksize : 1;
    o.on_error = CF_MAP_STOP;
    rc = cf_map_new(ex, cf__map_call_item, map_pull, &src, &o, &m);
    if (rc != 0)
        return rc;
    while ((rc = cf_map_next(m, &r)) == 0) {
        if (r.status != 0) {
            failed = r.status; /* the map ends with it after this delivery */
            continue;
        }
        if (r.index >= n)
            continue; /* cannot happen */
        if (out_f64)
            ((double *)out)[r.index] = r.f64;
        else
            ((int64_t *)out)[r.index] = r.i64;
    }
    cf_map_free(m);
    if (failed)
        return failed;
    return rc == CF_EOF ? 0 : rc;
}

int cf_map_i64_i64(cf_executor_t *ex, cf_fn_i64_i64 fn, const int64_t *xs, size_t n, size_t chunksize, int64_t *out)
{
    return map_array(ex, SHAPE_I64_I64, (void (*)(void))fn, xs, n, chunksize, out, 0);
}

int cf_map_i64_f64(cf_executor_t *ex, cf_fn_i64_f64 fn, const int64_t *xs, size_t n, size_t chunksize, double *out)
{
    return map_array(ex, SHAPE_I64_F64, (void (*)(void))fn, xs, n, chunksize, out, 1);
}

int cf_map_f64_i64(cf_executor_t *ex, cf_fn_f64_i64 fn, const double *xs, size_t n, size_t chunksize, int64_t *out)
{
    return map_array(ex, SHAPE_F64_I64, (void (*)(void))fn, xs, n, chunksize, out, 0);
}

int cf_map_f64_f64(cf_executor_t *ex, cf_fn_f64_f64 fn, const double *xs, size_t n, size_t chunksize, double *out)
{
    return map_array(ex, SHAPE_F64_F64, (void (*)(void))fn, xs, n, chunksize, out, 1);
}
