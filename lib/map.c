/*
 * map.c - cf_map's window: the chunks in flight, results in input order,
 * and the one way a map ends.
 *
 * DESIGN
 *
 * Loop side (loop thread only, no locks).  A map reads its input lazily in
 * chunks of `chunksize` items and keeps a bounded number of chunks in flight
 * in a ring, oldest first (the window, cf__map_window_init(): chunks, items
 * and bytes in flight).  Results are delivered from the oldest chunk only,
 * so they come out in input order whatever order the chunks finish in; when
 * the oldest chunk is used up it leaves the ring and the window is refilled
 * from the input.  Memory is bounded by the ring's size x chunksize items,
 * whatever the length of the input.
 *
 * Worker side.  A chunk is one task over bytes, run by cf__map_chunk_run()
 * on any executor; map_chunk.c has its format and its runner.
 *
 * A chunk whose task failed as a whole (its worker died, it timed out)
 * delivers that error for each of its items, the message naming the range
 * of items (map_chunk_open()): which item was running is not known.
 *
 * Ending.  A map ends once (cf__map_end()): input exhausted and everything
 * delivered, the first failed item under CF_MAP_STOP, a pull or submit
 * error, the timeout, the callback asking to stop, a cancel of the done
 * future, or cf_map_free().  Ending cancels the chunks still in flight
 * (queued ones at once, running ones through their flag).
 *
 * Who owns what a result points at.  A chunk owns its future reference and
 * its range message ("items 30-39: ...") and frees both whenever it leaves
 * the ring: used up, dropped when the map ends, or freed.  A delivered result
 * owns nothing: the map's delivery slot (cur_f, cur_msg) holds a reference
 * on the chunk's future (the records, the future's own error) and a private
 * copy of the range message, from the delivery until the next cf_map_next()
 * or until the callback returns, and longer: the reference stays while the
 * results come from the same chunk (one reference per chunk, not per
 * result), until one from another chunk is delivered or the map lets go
 * (it has nothing to deliver, ends or is freed).  So ending, cancelling or freeing the map
 * while a result is out can free every chunk without reaching the result.
 *
 * map_api.c has the public functions, the timer and callback mode.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "map_internal.h"

#include "map_chunk.h"
#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADAPT_TARGET_NS 2000000u /* aim at ~2 ms of work per chunk */
#define ADAPT_MAX 16384u
#define ITEMS_PER_WORKER 1024u /* default window: items kept in flight per worker */
#define RING_PER_WORKER 1024u /* default window: chunks in flight per worker at most */
#define RING_MAX 16384u
#define MAX_BYTES (8u << 20) /* default window: item bytes in flight beyond the minimum */


void cf__map_release_cur(cf_map_t *m)
{
    if (m->cur_f) {
        cf_future_unref(m->cur_f);
        m->cur_f = NULL;
    }
    free(m->cur_msg);
    m->cur_msg = NULL;
}

/*
 * The window.  An explicit opts.window is a plain bound on chunks in flight.
 * The default keeps 4 x workers chunks in flight at least, which is plenty
 * for big chunks; small chunks (chunksize 1, the first adaptive ones) would
 * then leave the workers waiting for round trips through the loop, so more
 * chunks are sent while fewer than ITEMS_PER_WORKER x workers items and
 * fewer than MAX_BYTES argument bytes are in flight, up to RING_PER_WORKER x
 * workers chunks.  Memory stays bounded: at most ring_cap chunks, each at
 * most chunksize items, and past the minimum at most MAX_BYTES of items.
 */
void cf__map_window_init(cf_map_t *m, const cf_map_opts *o, size_t workers)
{
    if (o->window) {
        m->window = m->ring_cap = o->window;
        m->item_window = 0;
        return;
    }
    m->window = 4u * workers;
    m->item_window = ITEMS_PER_WORKER * workers;
    m->ring_cap = RING_PER_WORKER * workers;
    if (m->ring_cap > RING_MAX)
        m->ring_cap = RING_MAX;
    if (m->ring_cap < m->window)
        m->ring_cap = m->window;
}

static int map_window_open(const cf_map_t *m)
{
    if (m->inflight < m->window)
        return 1;
    return m->inflight < m->ring_cap && m->items_inflight < m->item_window && m->bytes_inflight < MAX_BYTES;
}

static void map_chunk_leaves(cf_map_t *m, const struct chunk *c)
{
    m->items_inflight -= c->count;
    m->bytes_inflight -= c->bytes;
}

static void map_drop_inflight(cf_map_t *m)
{
    while (m->inflight) {
        struct chunk *c = &m->ring[m->head];
        if (m->cb)
            cf__future_remove_cb(c->f, cf__map_chunk_done, m);
        if (cf_future_get_state(c->f) < CF_FUTURE_FINISHED)
            cf_future_cancel(c->f);
        cf_future_unref(c->f);
        free(c->msg); /* a delivered result points at its own copy (cf__map_take()) */
        map_chunk_leaves(m, c);
        m->head = (m->head + 1) % m->ring_cap;
        m->inflight--;
    }
}

/* End the map (once): record why, cancel what is in flight, stop the timer. */
void cf__map_end(cf_map_t *m, int err, char *msg)
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

    if (m->is_array) {
        /* An array's items go in as one piece. */
        size_t left = m->next_item < m->n_items ? m->n_items - m->next_item : 0;
        count = left < m->chunksize ? left : m->chunksize;
        if (count < m->chunksize)
            m->src_end = 1;
        if (count) {
            cf__chunk_begin_array(&b, m->fn, m->item_size, count);
            cf__chunk_add_array(&b, m->items + m->next_item * m->item_size, m->item_size, count);
            m->next_item += count;
        }
    } else {
        cf__chunk_begin(&b, m->fn);
        while (count < m->chunksize) {
            const void *item;
            size_t ilen;

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
            cf__chunk_add(&b, item, ilen);
            count++;
            m->next_item++;
        }
    }
    if (count == 0) {
        free(b.p);
        return 0;
    }
    if (cf__chunk_end(&b, count) != 0) {
        cf__map_end(m, CF_ENOMEM, cf__printf_alloc("out of memory building a chunk"));
        return 0;
    }
    rc = cf__executor_submit(
        m->ex,
        &(struct cf__submit){
            .fn = cf__map_chunk_run,
            .arg = b.p,
            .len = b.len,
            /* A chunk waits for nothing the loop does: its completion may come with its worker's next ones. */
            .flags = CF__SUBMIT_BYTES | CF__SUBMIT_OWNED | CF__SUBMIT_BATCHABLE},
        &f);
    if (rc) {
        free(b.p);
        cf__map_end(m, rc,
                cf__printf_alloc("submitting items %zu..%zu failed: %s", first, first + count - 1, cf_strerror(rc)));
        return 0;
    }
    m->ring[(m->head + m->inflight) % m->ring_cap] =
        (struct chunk){.f = f, .first = first, .count = count, .bytes = b.len};
    m->inflight++;
    m->items_inflight += count;
    m->bytes_inflight += b.len;
    if (m->cb && (rc = cf_future_on_done(f, cf__map_chunk_done, m, NULL)) != 0) {
        cf__map_end(m, rc, cf__printf_alloc("registering a chunk callback failed"));
        return 0;
    }
    return 1;
}

void cf__map_fill(cf_map_t *m)
{
    while (!m->ended && !m->src_end && map_window_open(m))
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

        if (c->count == 1 && !c->f->out.is_bytes) {
            c->one_number = 1; /* the item's number is the future's value */
            return;
        }
        cf_future_result_bytes(c->f, (const void **)&p, &len);
        if (cf__chunk_result_open(p, len, c->count, &c->off, &run_ns) == 0) {
            c->res = p;
            c->res_len = len;
            c->numbers = cf__chunk_result_numbers(p, len);
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
int cf__map_take(cf_map_t *m, cf_map_result *r)
{
    struct chunk *c;
    int st;

    if (!m->inflight)
        return 0;
    c = &m->ring[m->head];
    if (c->pos == 0 && cf_future_get_state(c->f) < CF_FUTURE_FINISHED)
        return 0; /* (a chunk with items taken is done) */
    /* The previous result's message is let go; its chunk's reference is moved
     * below (kept when this result comes from the same chunk). */
    if (m->cur_msg) {
        free(m->cur_msg);
        m->cur_msg = NULL;
    }
    memset(r, 0, sizeof(*r));
    r->index = c->first + c->pos;
    if (c->pos == 0)
        map_chunk_open(m, c);
    if (c->err) {
        st = c->err;
        r->error = c->error;
        if (c->msg) {
            /* The chunk's message goes with the chunk; the result gets its own copy. */
            m->cur_msg = strdup(c->msg);
            r->error = m->cur_msg ? m->cur_msg : cf_strerror(st);
        }
    } else if (c->one_number) {
        st = 0;
        r->i64 = c->f->out.value.i64;
        memcpy(&r->f64, &c->f->out.value, sizeof(r->f64));
    } else if (c->numbers && c->res_len - c->off >= 8) {
        st = 0; /* the compact form: just the number (cf__chunk_result_next()'s first case, inline) */
        memcpy(&r->i64, c->res + c->off, 8);
        memcpy(&r->f64, c->res + c->off, 8);
        c->off += 8;
    } else {
        struct cf__outcome_view v;

        if (cf__chunk_result_next(c->res, c->res_len, &c->off, &v)) {
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

    /* The result points into this chunk's buffer: keep it until a result from
     * another chunk is delivered, or the map lets go of its results. */
    if (m->cur_f != c->f) {
        if (m->cur_f)
            cf__future_unref(m->cur_f);
        c->f->refs++;
        m->cur_f = c->f;
    }
    m->cur_ranged = c->msg != NULL;
    if (++c->pos == c->count) {
        if (m->cb)
            cf__future_remove_cb(c->f, cf__map_chunk_done, m);
        cf__future_unref(c->f); /* the chunk's own; the delivery slot holds another */
        free(c->msg);
        map_chunk_leaves(m, c);
        m->head = (m->head + 1) % m->ring_cap;
        m->inflight--;
    }
    m->delivered++;
    return 1;
}

/* After a delivery: stop on error if asked to, else keep the window full. */
void cf__map_after_delivery(cf_map_t *m, const cf_map_result *r)
{
    if (r->status && m->o.on_error == CF_MAP_STOP)
        cf__map_end(m, r->status,
                m->cur_ranged ? cf__printf_alloc("%s", r->error)
                              : cf__printf_alloc("item %zu: %s", r->index, r->error));
    else
        cf__map_fill(m);
}

/* Input exhausted and nothing in flight: the normal end (or the pull error). */
void cf__map_end_of_input(cf_map_t *m)
{
    if (m->pull_err < 0)
        cf__map_end(m, m->pull_err,
                cf__printf_alloc("reading item %zu failed: %s", m->next_item, cf_strerror(m->pull_err)));
    else
        cf__map_end(m, 0, NULL);
}
