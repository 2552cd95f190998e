/*
 * watch.c - futures driven by a libev watcher: cf_sleep() (ev_timer) and
 * cf_fd_ready() (ev_io).
 *
 * Loop thread only.  Each future owns a small `struct watch` (its `owner`)
 * holding the watcher and one reference on the future.  The watcher is
 * active, hence referenced, while the future is pending: like any active
 * watcher it keeps ev_run() alive.  The watcher firing or a cancel ends it
 * once (watch_end): stop the watcher, settle, free the watch, drop its
 * reference.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

struct watch {
    cf_future_t *f;
    union {
        ev_timer timer;
        ev_io io;
    } w;
    uint8_t is_io;
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

static struct watch *watch_new(const char *func, cf_loop_t *loop, cf_future_t **out)
{
    struct watch *wt = calloc(1, sizeof(*wt));

    if (wt)
        wt->f = cf__future_alloc(loop);
    if (!wt || !wt->f) {
        free(wt);
        cf__set_error(CF_ENOMEM, "%s: out of memory", func);
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

    if (!loop || !out)
        return cf__set_error(CF_EINVAL, "cf_sleep: %s is NULL", !loop ? "loop" : "out");
    if (isnan(seconds) || seconds < 0)
        return cf__set_error(CF_EINVAL, "cf_sleep: seconds must be >= 0 (got %g)", seconds);
    wt = watch_new("cf_sleep", loop, out);
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

    if (!loop || !out)
        return cf__set_error(CF_EINVAL, "cf_fd_ready: %s is NULL", !loop ? "loop" : "out");
    if (fd < 0)
        return cf__set_error(CF_EINVAL, "cf_fd_ready: fd must be >= 0 (got %d)", fd);
    if (!(events & (EV_READ | EV_WRITE)) || (events & ~(EV_READ | EV_WRITE)))
        return cf__set_error(CF_EINVAL, "cf_fd_ready: events must be EV_READ and/or EV_WRITE (got 0x%x)",
                             (unsigned)events);
    wt = watch_new("cf_fd_ready", loop, out);
    if (!wt)
        return CF_ENOMEM;
    wt->is_io = 1;
    ev_io_init(&wt->w.io, watch_io_cb, fd, events);
    wt->w.io.data = wt;
    ev_io_start(loop->ev, &wt->w.io);
    return 0;
}
