/*
 * map_api.c - cf_map's public functions: creating a map, the blocking
 * iterator, callback mode, status and freeing.
 *
 * DESIGN
 *
 * Everything here runs on the loop thread; the window itself (what is in
 * flight, what is delivered next, how a map ends) is map.c's.
 *
 * Iterator mode.  cf_map_next() lets go of the previous result, takes the
 * next one if the oldest chunk is done, else refills the window and runs the
 * loop until the oldest chunk is done or the map has ended.
 *
 * Callback mode.  cf_map_each() gives each chunk future a done callback
 * with the map as data (ending removes those callbacks); every completion
 * pumps: deliver what is ready in order, refill, detect the end.  The first
 * pump is deferred to the loop (the kick), so cf_map_each() never calls
 * back into the caller.  The done future settles once the map has ended;
 * cancelling it ends the map.
 *
 * Lifetime.  cf_map_free() from inside the map's own callback (or while the
 * kick is scheduled) ends the map at once and defers the free to the end of
 * that pass; the result being delivered stays readable until the callback
 * returns (map.c's ownership rule).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "map_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void map_finish_done(cf_map_t *m);

static void map_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    cf_map_t *m = w->data;

    (void)ev;
    (void)revents;
    m->timer_on = 0;
    cf__map_end(m, CF_ETIMEDOUT, cf__printf_alloc("map timed out after %.3f s", m->o.timeout));
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
    cf__map_window_init(m, opts, (size_t)workers);
    if (opts->chunksize) {
        m->chunksize = opts->chunksize;
    } else if (known) {
        size_t per = 4u * (size_t)workers;
        m->chunksize = n_hint ? (n_hint + per - 1) / per : 1;
    } else {
        m->chunksize = 1;
        m->adaptive = 1;
    }
    m->ring = calloc(m->ring_cap, sizeof(*m->ring));
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
    for (;;) {
        if (!m->ended && cf__map_take(m, r)) {
            cf__map_after_delivery(m, r);
            return 0;
        }
        cf__map_release_cur(m); /* nothing to deliver now: the previous result is let go */
        if (m->ended)
            return m->status ? m->status : CF_EOF;
        cf__map_fill(m);
        if (!m->inflight) {
            if (!m->ended)
                cf__map_end_of_input(m);
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
    cf__map_end(m, CF_ECANCELED, NULL);
    map_finish_done(m);
    cf__map_release_cur(m);
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
        if (cf__map_take(m, &r)) {
            int stop = m->cb(m, &r, m->cbdata);
            if (m->free_later)
                break;
            if (stop && !(r.status && m->o.on_error == CF_MAP_STOP))
                cf__map_end(m, 0, NULL);
            else
                cf__map_after_delivery(m, &r);
            continue;
        }
        cf__map_fill(m);
        if (!m->inflight && !m->ended)
            cf__map_end_of_input(m);
        break;
    }
    m->pumping = 0;
    cf__map_release_cur(m);
    if (m->free_later) {
        if (!m->kick_pending)
            map_destroy(m);
        return;
    }
    map_finish_done(m);
}

void cf__map_chunk_done(cf_future_t *f, int status, void *data)
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
    cf__map_end(m, CF_ECANCELED, cf__printf_alloc("map cancelled"));
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
    cf__map_fill(m);
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
        cf__map_end(m, CF_ECANCELED, cf__printf_alloc("map freed"));
        return;
    }
    map_destroy(m);
}
