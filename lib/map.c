/*
 * map.c - lazy, bounded, chunked map over any executor.
 *
 * DESIGN
 *
 * Loop side (loop thread only, no locks).  A map reads its input lazily in
 * chunks of `chunksize` items and keeps at most `window` chunks in flight in
 * a ring, oldest first.  Results are delivered from the oldest chunk only, so
 * they come out in input order whatever order the chunks finish in; when the
 * oldest chunk is used up it leaves the ring and the window is refilled from
 * the input.  Memory is bounded by window x chunksize items, whatever the
 * length of the input.
 *
 * Worker side.  A chunk is one task over bytes, run by cf__map_chunk_run()
 * on any executor; map_chunk.c has its format and its runner.
 *
 * A chunk whose task failed as a whole (its worker died, it timed out)
 * delivers that error for each of its items, the message naming the range
 * of items (map_chunk_open()): which item was running is not known.
 *
 * Ending.  A map ends once: input exhausted and everything delivered, the
 * first failed item under CF_MAP_STOP, a pull or submit error, the timeout,
 * the callback asking to stop, or cf_map_free().  Ending cancels the chunks
 * still in flight (queued ones at once, running ones through their flag).
 *
 * Lifetime.  In callback mode each chunk future carries a done callback with
 * the map as data; ending removes those callbacks.  cf_map_free() from inside
 * the map's own callback (or while the first delivery is scheduled) is
 * deferred to the end of that pass.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "map_chunk.h"
#include "outcome.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADAPT_TARGET_NS 2000000u /* aim at ~2 ms of work per chunk */
#define ADAPT_MAX 16384u

/* ------------------------------------------------------------------ loop side */

struct chunk {
    cf_future_t *f;
    size_t first; /* input index of the first item */
    size_t count;
    size_t pos; /* items delivered */
    size_t off; /* read offset in the result buffer */
    /* Set when the first item is taken: 0, or the error of the whole chunk
     * (its task failed: a worker died, a timeout...), with its message. */
    int err;
    const char *error; /* msg, or a message owned by f */
    char *msg;         /* "items 30-39: ..." (malloc'd) for a chunk of several items */
};

struct cf_map {
    cf_executor_t *ex;
    cf_loop_t *loop;
    cf_map_fn fn;
    cf_map_opts o;
    /* input */
    cf_map_pull_fn pull;
    void *src;
    const uint8_t *items;
    size_t n_items, item_size;
    int is_array;
    size_t next_item;
    int src_end;
    int pull_err;
    /* chunks in flight */
    size_t chunksize;
    int adaptive;
    size_t window;
    struct chunk *ring;
    size_t head, inflight;
    /* outcome */
    int ended;
    int status;
    char *errmsg;
    cf_future_t *cur_f; /* backs the last delivered result */
    char *cur_msg;      /* the same, for a failed chunk's message */
    int cur_ranged;     /* the last result's error already names its chunk's range */
    size_t delivered;
    ev_timer timer;
    int timer_on;
    /* callback mode */
    cf_map_cb cb;
    void *cbdata;
    cf_future_t *done;
    struct cf__work kick;
    int kick_pending;
    int pumping;
    int free_later;
};

static void map_chunk_done(cf_future_t *f, int status, void *data);
static void map_finish_done(cf_map_t *m);

static void map_release_cur(cf_map_t *m)
{
    if (m->cur_f) {
        cf_future_unref(m->cur_f);
        m->cur_f = NULL;
    }
    free(m->cur_msg);
    m->cur_msg = NULL;
}

static void map_drop_inflight(cf_map_t *m)
{
    while (m->inflight) {
        struct chunk *c = &m->ring[m->head];
        if (m->cb)
            cf__future_remove_cb(c->f, map_chunk_done, m);
        if (cf_future_get_state(c->f) < CF_FUTURE_FINISHED)
            cf_future_cancel(c->f);
        cf_future_unref(c->f);
        if (c->f == m->cur_f && !m->cur_msg)
            m->cur_msg = c->msg; /* the result just delivered may point at it: kept until the next call */
        else
            free(c->msg);
        m->head = (m->head + 1) % m->window;
        m->inflight--;
    }
}

/* End the map (once): record why, cancel what is in flight, stop the timer. */
static void map_end(cf_map_t *m, int err, char *msg)
{
    if (m->ended) {
        free(msg);
        return;
    }
    m->ended = 1;
    m->status = err;
    m->errmsg = err ? msg : NULL;
    if (!err)
        free(msg);
    if (m->timer_on) {
        ev_timer_stop(m->loop->ev, &m->timer);
        m->timer_on = 0;
    }
    map_drop_inflight(m);
}

/* Build and submit one chunk; 0 when the input had nothing more. */
static int map_submit_chunk(cf_map_t *m)
{
    struct cf__chunk_buf b = {0};
    size_t count = 0, first = m->next_item;
    cf_future_t *f;
    int rc;

    cf__chunk_begin(&b, m->fn);
    while (count < m->chunksize) {
        const void *item;
        size_t ilen;

        if (m->is_array) {
            if (m->next_item >= m->n_items) {
                m->src_end = 1;
                break;
            }
            item = m->items + m->next_item * m->item_size;
            ilen = m->item_size;
        } else {
            rc = m->pull(m->src, &item, &ilen);
            if (rc <= 0) {
                m->src_end = 1;
                m->pull_err = rc;
                break;
            }
            if (!item && ilen) {
                m->src_end = 1;
                m->pull_err = CF_EINVAL;
                break;
            }
        }
        cf__chunk_add(&b, item, ilen);
        count++;
        m->next_item++;
    }
    if (count == 0) {
        free(b.p);
        return 0;
    }
    if (cf__chunk_end(&b, count) != 0) {
        map_end(m, CF_ENOMEM, cf__printf_alloc("out of memory building a chunk"));
        return 0;
    }
    rc = cf__executor_submit(
        m->ex,
        &(struct cf__submit){
            .fn = cf__map_chunk_run, .arg = b.p, .len = b.len, .flags = CF__SUBMIT_BYTES | CF__SUBMIT_OWNED},
        &f);
    if (rc) {
        free(b.p);
        map_end(m, rc,
                cf__printf_alloc("submitting items %zu..%zu failed: %s", first, first + count - 1, cf_strerror(rc)));
        return 0;
    }
    m->ring[(m->head + m->inflight) % m->window] = (struct chunk){.f = f, .first = first, .count = count};
    m->inflight++;
    if (m->cb && (rc = cf_future_on_done(f, map_chunk_done, m, NULL)) != 0) {
        map_end(m, rc, cf__printf_alloc("registering a chunk callback failed"));
        return 0;
    }
    return 1;
}

static void map_fill(cf_map_t *m)
{
    while (!m->ended && !m->src_end && m->inflight < m->window)
        if (!map_submit_chunk(m))
            break;
}

/* Adaptive chunking: size the next chunks from how long this one ran. */
static void map_adapt(cf_map_t *m, uint64_t run_ns, size_t count)
{
    uint64_t per_item, want;

    if (!m->adaptive || !count)
        return;
    per_item = run_ns / count;
    want = per_item ? ADAPT_TARGET_NS / per_item : (uint64_t)m->chunksize * 4;
    if (want > (uint64_t)m->chunksize * 4)
        want = (uint64_t)m->chunksize * 4;
    if (want < m->chunksize / 2)
        want = m->chunksize / 2;
    if (want < 1)
        want = 1;
    if (want > ADAPT_MAX)
        want = ADAPT_MAX;
    m->chunksize = (size_t)want;
}

/*
 * The oldest chunk is done and its first item is being taken: check its
 * result header, or record why the whole chunk failed.  Which item was
 * running when a chunk's task failed is not known, so the message names the
 * chunk's range of items.
 */
static void map_chunk_open(cf_map_t *m, struct chunk *c)
{
    int st = cf_future_status(c->f);
    const char *why;

    if (st == 0) {
        const uint8_t *p;
        size_t len;
        uint64_t run_ns;

        cf_future_result_bytes(c->f, (const void **)&p, &len);
        if (cf__chunk_result_open(p, len, c->count, &c->off, &run_ns) == 0) {
            map_adapt(m, run_ns, c->count);
            return;
        }
        st = CF_EINVAL;
        why = "malformed map result";
    } else {
        why = cf_future_error(c->f);
    }
    c->err = st;
    c->error = why ? why : cf_strerror(st);
    if (c->count > 1 && (c->msg = cf__printf_alloc("items %zu-%zu: %s", c->first, c->first + c->count - 1, c->error)))
        c->error = c->msg;
}

/* Take the next result from the oldest chunk if it is done. Returns 1 if *r was filled. */
static int map_take(cf_map_t *m, cf_map_result *r)
{
    struct chunk *c;
    int st;

    if (!m->inflight)
        return 0;
    c = &m->ring[m->head];
    if (cf_future_get_state(c->f) < CF_FUTURE_FINISHED)
        return 0;
    memset(r, 0, sizeof(*r));
    r->index = c->first + c->pos;
    if (c->pos == 0)
        map_chunk_open(m, c);
    if (c->err) {
        st = c->err;
        r->error = c->error;
    } else {
        const uint8_t *p;
        size_t len;
        struct cf__outcome_view v;

        cf_future_result_bytes(c->f, (const void **)&p, &len);
        if (cf__outcome_record_next(p, len, &c->off, &v)) {
            st = CF_EINVAL;
            r->error = "malformed map result";
        } else {
            st = v.err;
            r->error = v.msg;
            r->i64 = v.i64;
            r->f64 = v.f64;
            r->data = v.data;
            r->len = v.len;
        }
    }
    r->status = st;
    if (st && !r->error)
        r->error = cf_strerror(st);
    if (st) {
        r->i64 = 0;
        r->f64 = 0;
    }

    /* The result points into this chunk's buffer: keep it until the next delivery. */
    map_release_cur(m);
    cf_future_ref(c->f);
    m->cur_f = c->f;
    m->cur_ranged = c->msg != NULL;
    if (++c->pos == c->count) {
        if (m->cb)
            cf__future_remove_cb(c->f, map_chunk_done, m);
        cf_future_unref(c->f);
        m->cur_msg = c->msg; /* r->error may point at it */
        m->head = (m->head + 1) % m->window;
        m->inflight--;
    }
    m->delivered++;
    return 1;
}

/* After a delivery: stop on error if asked to, else keep the window full. */
static void map_after_delivery(cf_map_t *m, const cf_map_result *r)
{
    if (r->status && m->o.on_error == CF_MAP_STOP)
        map_end(m, r->status,
                m->cur_ranged ? cf__printf_alloc("%s", r->error)
                              : cf__printf_alloc("item %zu: %s", r->index, r->error));
    else
        map_fill(m);
}

/* Input exhausted and nothing in flight: the normal end (or the pull error). */
static void map_end_of_input(cf_map_t *m)
{
    if (m->pull_err < 0)
        map_end(m, m->pull_err,
                cf__printf_alloc("reading item %zu failed: %s", m->next_item, cf_strerror(m->pull_err)));
    else
        map_end(m, 0, NULL);
}

static void map_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    cf_map_t *m = w->data;

    (void)ev;
    (void)revents;
    m->timer_on = 0;
    map_end(m, CF_ETIMEDOUT, cf__printf_alloc("map timed out after %.3f s", m->o.timeout));
    if (m->cb)
        map_finish_done(m);
}

void cf_map_opts_init(cf_map_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->on_error = CF_MAP_STOP;
    o->timeout = -1;
}

static int map_create(cf_executor_t *ex, cf_map_fn fn, const cf_map_opts *opts, size_t n_hint, int known,
                      cf_map_t **out)
{
    cf_map_opts defaults;
    cf_map_t *m;
    int workers;

    if (!ex || !fn || !out)
        return cf__set_error(CF_EINVAL, "cf_map_new: %s is NULL", !ex ? "ex" : !fn ? "fn" : "out");
    if (!opts) {
        cf_map_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->on_error != CF_MAP_STOP && opts->on_error != CF_MAP_CONTINUE)
        return cf__set_error(CF_EINVAL, "cf_map_new: opts->on_error must be CF_MAP_STOP or CF_MAP_CONTINUE (got %d)",
                             (int)opts->on_error);
    if (isnan(opts->timeout))
        return cf__set_error(CF_EINVAL, "cf_map_new: opts->timeout is NaN (a negative value means none)");
    m = calloc(1, sizeof(*m));
    if (!m)
        return CF_ENOMEM;
    workers = cf_executor_workers(ex);
    if (workers < 1)
        workers = 1;
    m->ex = ex;
    m->loop = ex->loop;
    m->fn = fn;
    m->o = *opts;
    m->window = opts->window ? opts->window : 4u * (size_t)workers;
    if (opts->chunksize) {
        m->chunksize = opts->chunksize;
    } else if (known) {
        size_t per = 4u * (size_t)workers;
        m->chunksize = n_hint ? (n_hint + per - 1) / per : 1;
    } else {
        m->chunksize = 1;
        m->adaptive = 1;
    }
    m->ring = calloc(m->window, sizeof(*m->ring));
    if (!m->ring) {
        free(m);
        return CF_ENOMEM;
    }
    ev_timer_init(&m->timer, map_timer_cb, opts->timeout >= 0 ? opts->timeout : 0., 0.);
    m->timer.data = m;
    if (opts->timeout >= 0) {
        ev_timer_start(m->loop->ev, &m->timer);
        m->timer_on = 1;
    }
    *out = m;
    return 0;
}

int cf_map_new_array(cf_executor_t *ex, cf_map_fn fn, const void *items, size_t n, size_t item_size,
                     const cf_map_opts *opts, cf_map_t **out)
{
    int rc;

    if (n && (!items || !item_size))
        return cf__set_error(CF_EINVAL, "cf_map_new_array: %s with n = %zu", !items ? "items is NULL" : "item_size is 0",
                             n);
    rc = map_create(ex, fn, opts, n, 1, out);
    if (rc)
        return rc;
    (*out)->is_array = 1;
    (*out)->items = items;
    (*out)->n_items = n;
    (*out)->item_size = item_size;
    return 0;
}

int cf_map_new(cf_executor_t *ex, cf_map_fn fn, cf_map_pull_fn pull, void *src, const cf_map_opts *opts, cf_map_t **out)
{
    int rc;

    if (!pull)
        return CF__EINVAL("pull is NULL");
    rc = map_create(ex, fn, opts, 0, 0, out);
    if (rc)
        return rc;
    (*out)->pull = pull;
    (*out)->src = src;
    return 0;
}

static int map_head_ready(void *arg)
{
    cf_map_t *m = arg;

    return m->ended || !m->inflight || cf_future_get_state(m->ring[m->head].f) >= CF_FUTURE_FINISHED;
}

int cf_map_next(cf_map_t *m, cf_map_result *r)
{
    int rc;

    if (!m || !r || m->cb)
        return CF__EINVAL(!m ? "m is NULL" : !r ? "r is NULL" : "the map delivers to a callback (cf_map_each())");
    map_release_cur(m);
    for (;;) {
        if (!m->ended && map_take(m, r)) {
            map_after_delivery(m, r);
            return 0;
        }
        if (m->ended)
            return m->status ? m->status : CF_EOF;
        map_fill(m);
        if (!m->inflight) {
            if (!m->ended)
                map_end_of_input(m);
            continue;
        }
        rc = cf__loop_run_until(m->loop, map_head_ready, m, -1);
        if (rc)
            return rc;
    }
}

/* Callback mode ----------------------------------------------------------- */

static void map_destroy(cf_map_t *m)
{
    map_end(m, CF_ECANCELED, NULL);
    map_finish_done(m);
    map_release_cur(m);
    free(m->errmsg);
    free(m->ring);
    free(m);
}

static void map_finish_done(cf_map_t *m)
{
    cf_future_t *d = m->done;

    if (!d || !m->ended)
        return;
    m->done = NULL;
    d->owner = NULL;
    if (cf_future_get_state(d) < CF_FUTURE_FINISHED) {
        if (m->status == 0) {
            d->out.value.i64 = (int64_t)m->delivered;
            cf__future_settle(d, CF_FUTURE_FINISHED);
        } else {
            d->out.err = m->status;
            d->out.errmsg = m->errmsg ? strdup(m->errmsg) : NULL;
            cf__future_settle(d, m->status == CF_ECANCELED ? CF_FUTURE_CANCELLED : CF_FUTURE_FAILED);
        }
    }
    cf_future_unref(d);
}

static void map_pump(cf_map_t *m)
{
    cf_map_result r;

    if (m->pumping)
        return;
    m->pumping = 1;
    while (!m->ended && !m->free_later) {
        if (map_take(m, &r)) {
            int stop = m->cb(m, &r, m->cbdata);
            if (m->free_later)
                break;
            if (stop && !(r.status && m->o.on_error == CF_MAP_STOP))
                map_end(m, 0, NULL);
            else
                map_after_delivery(m, &r);
            map_release_cur(m);
            continue;
        }
        map_fill(m);
        if (!m->inflight && !m->ended)
            map_end_of_input(m);
        break;
    }
    m->pumping = 0;
    map_release_cur(m);
    if (m->free_later) {
        if (!m->kick_pending)
            map_destroy(m);
        return;
    }
    map_finish_done(m);
}

static void map_chunk_done(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    map_pump(data);
}

static void map_kick(cf_loop_t *loop, struct cf__work *w)
{
    cf_map_t *m = cf__container_of(w, cf_map_t, kick);

    (void)loop;
    m->kick_pending = 0;
    if (m->free_later)
        map_destroy(m);
    else
        map_pump(m);
}

static int map_done_cancel(cf_future_t *f)
{
    cf_map_t *m = f->owner;

    if (!m)
        return CF_EALREADY;
    map_end(m, CF_ECANCELED, cf__printf_alloc("map cancelled"));
    map_finish_done(m);
    return 0;
}

static const struct cf__future_ops map_done_ops = {.cancel = map_done_cancel};

int cf_map_each(cf_map_t *m, cf_map_cb cb, void *data, cf_future_t **done)
{
    if (!m || !cb || m->cb || m->delivered || m->inflight)
        return CF__EINVAL(!m ? "m is NULL" : !cb ? "cb is NULL" : "the map was already started");
    m->done = cf__future_alloc(m->loop);
    if (!m->done)
        return CF_ENOMEM;
    m->done->ops = &map_done_ops;
    m->done->owner = m;
    m->cb = cb;
    m->cbdata = data;
    if (done) {
        cf_future_ref(m->done);
        *done = m->done;
    }
    map_fill(m);
    m->kick.run = map_kick;
    m->kick_pending = 1;
    cf__loop_defer(m->loop, &m->kick);
    return 0;
}

int cf_map_status(const cf_map_t *m)
{
    CF_REQUIRE(m, "map is NULL");
    return m->status;
}

const char *cf_map_error(const cf_map_t *m)
{
    CF_REQUIRE(m, "map is NULL");
    return m->status ? (m->errmsg ? m->errmsg : cf_strerror(m->status)) : NULL;
}

size_t cf_map_chunksize(const cf_map_t *m)
{
    CF_REQUIRE(m, "map is NULL");
    return m->chunksize;
}

void cf_map_free(cf_map_t *m)
{
    if (!m)
        return;
    if (m->pumping || m->kick_pending) {
        m->free_later = 1;
        map_end(m, CF_ECANCELED, cf__printf_alloc("map freed"));
        return;
    }
    map_destroy(m);
}
