/*
 * remote_worker.c - the worker side of the remote executor (remote.h).
 *
 * DESIGN
 *
 * A worker is a consumer of the queue's group "cfw" (see remote.c for the
 * keys) that runs each task in a local process pool, so a crash or a timeout
 * fails only that task.  Two connections on the loop: `rd` for XREADGROUP
 * BLOCK (issued only while a process is free and no drain was asked), `cmd`
 * for everything else.  No thread.
 *
 * Life of a task.  XREADGROUP (or XAUTOCLAIM) hands the entry over ->
 * RPUSH of this worker's identity to the task's history list, whose length
 * is the number of deliveries: beyond the task's max deliveries it fails
 * with a message naming the workers that took it before (they died with it)
 * -> the function is looked up by name (none: the task fails naming the task
 * and this worker) -> the inner names of map chunks and typed calls are
 * turned back into this program's pointers -> cf_process_pool_submit() ->
 * the outcome is XADDed to the client's result stream, then the entry is
 * XACKed and XDELed and the history deleted (a crash between the two posts
 * the result twice: the client drops the duplicate).
 *
 * Heartbeats and claims.  Every claim_idle/3 s a timer resets the idle time
 * of the running tasks' entries (XCLAIM ... JUSTID), checks their cancel keys
 * (EXISTS; a cancelled task is cancelled in the pool, which stops its
 * process), and, with a process free, takes over entries idle for longer
 * than claim_idle (XAUTOCLAIM): their worker stopped heartbeating.
 *
 * Drain.  cf_remote_worker_drain(): no new reads or claims; when the running
 * tasks have posted their results (and the blocking read came back: what it
 * brought is run too), the worker is done.
 *
 * Broker loss.  Connections are reopened with backoff; results finished
 * meanwhile wait in `unsent` and are posted after the reconnect.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_conn.h"

#include "cfutures/remote.h"
#include "outcome.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RW_GROUP "cfw"

struct wtask {
    struct cf__list link; /* w.running or w.unsent */
    cf_remote_worker_t *w;
    cf_future_t *f;
    char entry[48];
    char *client;
    char *id;
    char *fname;
    uint8_t *payload;
    size_t len;
    long long timeout_ms;
    unsigned maxdel;
    uint8_t *result; /* encoded outcome, once done */
    size_t rlen;
    int started;
};

struct cf_remote_worker {
    cf_loop_t *loop;
    cf_remote_worker_opts opts;
    struct cf__rurl url;
    char *queue, *name, *tasks_id, *ident;
    struct cf__rconn cmd, rd;
    cf_process_pool_t *pp;
    struct cf__list running; /* taken, not yet posted */
    struct cf__list unsent;  /* done, result not yet posted (broker down) */
    int nrunning;
    int reading;
    int claiming;
    int ready;
    int draining;
    int done;
    uint64_t tasks_done;
    ev_timer tick, retry;
    double backoff;
};

static void rw_fetch(cf_remote_worker_t *w);
static void rw_post(struct wtask *t);

static void wt_free(struct wtask *t)
{
    free(t->client);
    free(t->id);
    free(t->fname);
    free(t->payload);
    free(t->result);
    free(t);
}

static void rw_check_done(cf_remote_worker_t *w)
{
    if (w->draining && !w->nrunning && !w->reading && !w->claiming && cf__list_empty(&w->unsent))
        w->done = 1;
}

/* ------------------------------------------------------------------ connection */

static void rw_down(cf_remote_worker_t *w)
{
    w->ready = 0;
    w->reading = 0;
    w->claiming = 0;
    cf__rconn_close(&w->cmd);
    cf__rconn_close(&w->rd);
    if (!ev_is_active(&w->retry)) {
        ev_timer_set(&w->retry, w->backoff, 0);
        ev_timer_start(w->loop->ev, &w->retry);
    }
    w->backoff = w->backoff * 2 > 2.0 ? 2.0 : w->backoff * 2;
}

static void rw_conn_down(struct cf__rconn *c, const char *why)
{
    (void)why;
    rw_down(c->data);
}

static void rw_retry_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;
    (void)ev;
    (void)revents;
    if (cf__rconn_open(&w->cmd) != 0 || cf__rconn_open(&w->rd) != 0)
        rw_down(w);
}

static void group_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;

    (void)ac;
    if (!reply)
        return;
    w->ready = 1;
    w->backoff = 0.05;
    /* Results that finished while the broker was away. */
    while (!cf__list_empty(&w->unsent)) {
        struct wtask *t = cf__container_of(w->unsent.next, struct wtask, link);
        cf__list_remove(&t->link);
        rw_post(t);
    }
    rw_fetch(w);
    rw_check_done(w);
}

static void rw_conn_up(struct cf__rconn *c)
{
    cf_remote_worker_t *w = c->data;

    if (!w->cmd.up || !w->rd.up)
        return;
    cf__rconn_cmdf(&w->cmd, group_cb, w, "XGROUP CREATE %s " RW_GROUP " 0 MKSTREAM", w->queue);
}

/* ------------------------------------------------------------------ results */

static void rw_finished(struct wtask *t)
{
    cf_remote_worker_t *w = t->w;

    cf__list_remove(&t->link);
    w->nrunning--;
    w->tasks_done++;
    wt_free(t);
    rw_fetch(w);
    rw_check_done(w);
}

static void post_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct wtask *t = priv;
    (void)ac;
    if (!r) { /* lost with the connection: post again after the reconnect */
        cf__list_remove(&t->link);
        cf__list_push(&t->w->unsent, &t->link);
        return;
    }
    rw_finished(t);
}

/* Post t's result, ack and delete its entry (one pipeline, answered in order: the last reply ends it). */
static void rw_post(struct wtask *t)
{
    cf_remote_worker_t *w = t->w;
    char rkey[400], hkey[400];

    cf__list_push(&w->running, &t->link);
    if (!w->ready) {
        cf__list_remove(&t->link);
        cf__list_push(&w->unsent, &t->link);
        return;
    }
    snprintf(rkey, sizeof(rkey), "%s:r:%s", w->queue, t->client);
    snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", w->queue, t->client, t->id);
    cf__rconn_cmdf(&w->cmd, NULL, NULL, "XADD %s * i %s o %b w %s", rkey, t->id, t->result, t->rlen, w->ident);
    cf__rconn_cmdf(&w->cmd, NULL, NULL, "EXPIRE %s 86400", rkey);
    cf__rconn_cmdf(&w->cmd, NULL, NULL, "XACK %s " RW_GROUP " %s", w->queue, t->entry);
    cf__rconn_cmdf(&w->cmd, NULL, NULL, "XDEL %s %s", w->queue, t->entry);
    if (cf__rconn_cmdf(&w->cmd, post_cb, t, "DEL %s", hkey) != 0) {
        cf__list_remove(&t->link);
        cf__list_push(&w->unsent, &t->link);
    }
}

/* The task ends with `o` (encoded now) or with err and a message. */
static void rw_result(struct wtask *t, struct cf__outcome *o, int err, const char *fmt, ...) CF_PRINTF(4, 5);
static void rw_result(struct wtask *t, struct cf__outcome *o, int err, const char *fmt, ...)
{
    struct cf__outcome mine;

    if (!o) {
        va_list ap;
        memset(&mine, 0, sizeof(mine));
        mine.err = err;
        va_start(ap, fmt);
        cf__outcome_set_msg(&mine, fmt, ap);
        va_end(ap);
        o = &mine;
    }
    cf__outcome_make_portable(o, "a remote task");
    t->rlen = cf__outcome_encoded_size(o);
    t->result = malloc(t->rlen ? t->rlen : 1);
    if (t->result)
        cf__outcome_encode(o, t->result);
    else
        t->rlen = 0;
    if (o == &mine)
        cf__outcome_clear(&mine);
    cf__list_remove(&t->link);
    rw_post(t);
}

static void task_done_cb(cf_future_t *f, int status, void *data)
{
    struct wtask *t = data;

    (void)status;
    t->f = NULL;
    if (cf_future_get_state(f) == CF_FUTURE_CANCELLED && !f->out.errmsg)
        rw_result(t, NULL, CF_ECANCELED, "task %s cancelled on worker %s", t->fname, t->w->ident);
    else if (f->out.err && f->out.errmsg) {
        char *m = f->out.errmsg;
        rw_result(t, NULL, f->out.err, "%s (on worker %s)", m, t->w->ident);
    } else
        rw_result(t, &f->out, 0, NULL);
    cf_future_unref(f);
}

/* ------------------------------------------------------------------ running */

/* Replace the function name stored at `off` of the payload with this program's pointer. */
static int patch(struct wtask *t, size_t off, const char *name)
{
    cf_any_fn fn = cf_fn_lookup(name);

    if (!fn || off + sizeof(fn) > t->len)
        return -1;
    memcpy(t->payload + off, &fn, sizeof(fn));
    return 0;
}

static void rw_start(struct wtask *t, const char *inner, const char *item)
{
    cf_remote_worker_t *w = t->w;
    cf_any_fn fn = cf_fn_lookup(t->fname);
    double timeout = t->timeout_ms < 0 ? -1 : (double)t->timeout_ms / 1000.0;
    int rc;

    if (!fn) {
        rw_result(t, NULL, CF_EINVAL, "worker %s has no task named '%s'", w->ident, t->fname);
        return;
    }
    if (*inner) {
        if (patch(t, CF__INNER_FN_OFFSET, inner) != 0) {
            rw_result(t, NULL, CF_EINVAL, "worker %s has no task named '%s'", w->ident, inner);
            return;
        }
        if (*item) {
            /* Every item of a script-layer array map is a call of `item`. */
            size_t off = 24;
            uint64_t count, ilen;
            memcpy(&count, t->payload + 16, 8);
            for (uint64_t i = 0; i < count && off + 8 <= t->len; i++) {
                memcpy(&ilen, t->payload + off, 8);
                if (ilen > t->len - off - 8 || patch(t, off + 8 + CF__INNER_FN_OFFSET, item) != 0) {
                    rw_result(t, NULL, CF_EINVAL, "worker %s has no task named '%s'", w->ident, item);
                    return;
                }
                off += 8 + ((ilen + 7) & ~(uint64_t)7);
            }
        }
    }
    if (w->opts.task_timeout >= 0 && (timeout < 0 || timeout > w->opts.task_timeout))
        timeout = w->opts.task_timeout;
    rc = cf_process_pool_submit(w->pp, (cf_task_fn)fn, t->payload, t->len, timeout, &t->f);
    if (rc == 0)
        rc = cf_future_on_done(t->f, task_done_cb, t, NULL);
    if (rc != 0) {
        if (t->f) {
            cf_future_cancel(t->f);
            cf_future_unref(t->f);
            t->f = NULL;
        }
        rw_result(t, NULL, rc, "worker %s could not run task '%s': %s", w->ident, t->fname, cf_strerror(rc));
        return;
    }
    t->started = 1;
}

struct hist_req {
    struct wtask *t;
    char *inner, *item;
};

static void hist_list_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct wtask *t = priv;
    redisReply *reply = r;
    char who[2048] = "";
    size_t n = 0;

    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < reply->elements && n < sizeof(who) - 1; i++)
            n += (size_t)snprintf(who + n, sizeof(who) - n, "%s%s", i ? ", " : "", reply->element[i]->str);
    if (n >= sizeof(who))
        n = sizeof(who) - 1;
    rw_result(t, NULL, CF_EWORKER,
              "task '%s' was delivered %u times and its worker died each time (poison task?); "
              "workers: %s",
              t->fname, t->maxdel, n ? who : "?");
}

static void hist_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct hist_req *h = priv;
    struct wtask *t = h->t;
    redisReply *reply = r;

    (void)ac;
    if (!reply) { /* broker lost: the entry stays pending and is claimed again later */
        cf__list_remove(&t->link);
        t->w->nrunning--;
        wt_free(t);
    } else if (reply->type == REDIS_REPLY_INTEGER && (unsigned long long)reply->integer > t->maxdel) {
        char hkey[400];
        snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", t->w->queue, t->client, t->id);
        if (cf__rconn_cmdf(&t->w->cmd, hist_list_cb, t, "LRANGE %s 0 -1", hkey) != 0)
            hist_list_cb(ac, NULL, t);
    } else {
        rw_start(t, h->inner, h->item);
    }
    free(h->inner);
    free(h->item);
    free(h);
}

static char *field_dup(const redisReply *e, const char *key, size_t *len)
{
    const redisReply *v = cf__rentry_field(e, key);
    char *s;

    if (!v || v->type != REDIS_REPLY_STRING)
        return NULL;
    s = malloc(v->len + 1);
    if (!s)
        return NULL;
    memcpy(s, v->str, v->len);
    s[v->len] = 0;
    if (len)
        *len = v->len;
    return s;
}

/* Take one entry: record the delivery, then run it. */
static void rw_take(cf_remote_worker_t *w, const redisReply *e)
{
    struct wtask *t;
    struct hist_req *h;
    char hkey[400], *to, *md;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
        return; /* deleted meanwhile (cancelled) */
    t = calloc(1, sizeof(*t));
    h = calloc(1, sizeof(*h));
    if (!t || !h) {
        free(t);
        free(h);
        return; /* left pending: claimed again later */
    }
    t->w = w;
    snprintf(t->entry, sizeof(t->entry), "%s", e->element[0]->str);
    t->client = field_dup(e, "c", NULL);
    t->id = field_dup(e, "i", NULL);
    t->fname = field_dup(e, "f", NULL);
    t->payload = (uint8_t *)field_dup(e, "p", &t->len);
    h->inner = field_dup(e, "n", NULL);
    h->item = field_dup(e, "m", NULL);
    to = field_dup(e, "t", NULL);
    md = field_dup(e, "d", NULL);
    t->timeout_ms = to ? strtoll(to, NULL, 10) : -1;
    t->maxdel = md ? (unsigned)strtoul(md, NULL, 10) : 3;
    free(to);
    free(md);
    cf__list_push(&w->running, &t->link);
    w->nrunning++;
    if (!t->client || !t->id || !t->fname || !t->payload || !h->inner || !h->item) {
        free(h->inner);
        free(h->item);
        free(h);
        if (!t->client || !t->id) { /* not a task of ours: drop it */
            cf__rconn_cmdf(&w->cmd, NULL, NULL, "XACK %s " RW_GROUP " %s", w->queue, t->entry);
            cf__list_remove(&t->link);
            w->nrunning--;
            wt_free(t);
            return;
        }
        if (!t->fname)
            t->fname = strdup("?");
        rw_result(t, NULL, CF_EINVAL, "worker %s: malformed task entry %s", w->ident, t->entry);
        return;
    }
    h->t = t;
    snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", w->queue, t->client, t->id);
    cf__rconn_cmdf(&w->cmd, NULL, NULL, "EXPIRE %s 86400", hkey);
    if (cf__rconn_cmdf(&w->cmd, hist_cb, h, "RPUSH %s %s", hkey, w->ident) != 0)
        hist_cb(NULL, NULL, h);
}

static void read_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;

    (void)ac;
    w->reading = 0;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0) /* the broker lost its data */
            cf__rconn_cmdf(&w->cmd, NULL, NULL, "XGROUP CREATE %s " RW_GROUP " 0 MKSTREAM", w->queue);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < reply->elements; s++) {
            const redisReply *entries = reply->element[s]->element[1];
            for (size_t i = 0; i < entries->elements; i++)
                rw_take(w, entries->element[i]);
        }
    }
    rw_fetch(w);
    rw_check_done(w);
}

static void rw_fetch(cf_remote_worker_t *w)
{
    int free_procs = w->opts.procs * w->opts.prefetch - w->nrunning;

    if (!w->ready || w->reading || w->draining || free_procs <= 0)
        return;
    if (cf__rconn_cmdf(&w->rd, read_cb, w, "XREADGROUP GROUP " RW_GROUP " %s COUNT %d BLOCK 1000 STREAMS %s >",
                       w->name, free_procs, w->queue) == 0)
        w->reading = 1;
}

/* ------------------------------------------------------------------ heartbeat, cancel, claims */

static void claim_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;

    (void)ac;
    w->claiming = 0;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[1]->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->element[1]->elements; i++)
            rw_take(w, reply->element[1]->element[i]);
    rw_check_done(w);
}

/* The entries whose cancel keys an MGET asked for, in its order. */
struct cancel_check {
    cf_remote_worker_t *w;
    size_t n;
    char entry[][48];
};

static void cancel_check_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct cancel_check *cc = priv;
    cf_remote_worker_t *w = cc->w;
    redisReply *reply = r;

    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements && i < cc->n; i++) {
            if (reply->element[i]->type != REDIS_REPLY_STRING)
                continue;
            /* Found by entry id: the running list may have changed since the request. */
            for (struct cf__list *n = w->running.next; n != &w->running; n = n->next) {
                struct wtask *t = cf__container_of(n, struct wtask, link);
                if (strcmp(t->entry, cc->entry[i]) == 0 && t->f && t->started)
                    cf_future_cancel(t->f);
            }
        }
    free(cc);
}

static void rw_tick_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;
    int n = 0;

    (void)ev;
    (void)revents;
    if (!w->ready)
        return;
    if (w->nrunning) {
        size_t cap = 6 + (size_t)w->nrunning, k = 0, m = 1;
        const char **argv = calloc(cap, sizeof(*argv)), **mget = calloc((size_t)w->nrunning + 1, sizeof(*mget));
        char **keys = calloc((size_t)w->nrunning, sizeof(*keys));
        struct cancel_check *cc = calloc(1, sizeof(*cc) + (size_t)w->nrunning * sizeof(cc->entry[0]));
        if (argv && mget && keys && cc) {
            cc->w = w;
            argv[k++] = "XCLAIM";
            argv[k++] = w->queue;
            argv[k++] = RW_GROUP;
            argv[k++] = w->name;
            argv[k++] = "0";
            mget[0] = "MGET";
            for (struct cf__list *l = w->running.next; l != &w->running; l = l->next) {
                struct wtask *t = cf__container_of(l, struct wtask, link);
                argv[k++] = t->entry;
                memcpy(cc->entry[n], t->entry, sizeof(cc->entry[0]));
                keys[n] = cf__printf_alloc("%s:x:%s:%s", w->queue, t->client, t->id);
                mget[m++] = keys[n] ? keys[n] : "-";
                n++;
            }
            argv[k++] = "JUSTID";
            cf__rconn_cmd(&w->cmd, NULL, NULL, (int)k, argv, NULL);
            cc->n = (size_t)n;
            if (cf__rconn_cmd(&w->cmd, cancel_check_cb, cc, (int)m, mget, NULL) == 0)
                cc = NULL;
        }
        free(cc);
        for (int i = 0; keys && i < n; i++)
            free(keys[i]);
        free(keys);
        free(argv);
        free(mget);
    }
    if (!w->draining && !w->claiming && w->opts.procs * w->opts.prefetch - w->nrunning > 0 &&
        cf__rconn_cmdf(&w->cmd, claim_cb, w, "XAUTOCLAIM %s " RW_GROUP " %s %lld 0-0 COUNT %d", w->queue, w->name,
                       (long long)(w->opts.claim_idle * 1000), w->opts.procs * w->opts.prefetch - w->nrunning) == 0)
        w->claiming = 1;
}

/* ------------------------------------------------------------------ life */

void cf_remote_worker_opts_init(cf_remote_worker_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->url = "redis://127.0.0.1:6379";
    o->queue = "cfutures";
    o->tasks_id = "";
    o->procs = cf_cpu_count();
    o->task_timeout = -1;
    o->claim_idle = 30;
    o->prefetch = 4;
}

int cf_remote_worker_new(cf_loop_t *loop, const cf_remote_worker_opts *opts, cf_remote_worker_t **out)
{
    cf_remote_worker_t *w;
    cf_remote_worker_opts o;
    cf_process_pool_opts po;
    char host[64] = "host";
    int rc;

    if (!loop || !out)
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: %s is NULL", !loop ? "loop" : "out");
    if (opts)
        o = *opts;
    else
        cf_remote_worker_opts_init(&o);
    if (o.procs < 1)
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->procs must be >= 1 (got %d)", o.procs);
    if (o.prefetch < 1)
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->prefetch must be >= 1 (got %d)", o.prefetch);
    if (!(o.claim_idle > 0))
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->claim_idle must be > 0");
    if (!o.queue || !*o.queue || strchr(o.queue, ' '))
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->queue must be a non-empty name without spaces");
    if (o.name && (!*o.name || strchr(o.name, ' ')))
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->name must be a non-empty name without spaces");
    w = calloc(1, sizeof(*w));
    if (!w)
        return CF_ENOMEM;
    rc = cf__rurl_parse(o.url ? o.url : "redis://127.0.0.1:6379", &w->url, "cf_remote_worker_new");
    if (rc) {
        free(w);
        return rc;
    }
    gethostname(host, sizeof(host) - 1);
    w->loop = loop;
    w->opts = o;
    w->queue = strdup(o.queue);
    w->name = o.name ? strdup(o.name) : cf__printf_alloc("%s:%ld", host, (long)getpid());
    w->tasks_id = strdup(o.tasks_id ? o.tasks_id : "");
    w->ident = w->name ? cf__printf_alloc("%s(host %s, pid %ld%s%s)", w->name, host, (long)getpid(),
                                          w->tasks_id && *w->tasks_id ? ", tasks " : "", w->tasks_id ? w->tasks_id : "")
                       : NULL;
    if (!w->queue || !w->name || !w->tasks_id || !w->ident) {
        rc = CF_ENOMEM;
        goto fail;
    }
    cf__list_init(&w->running);
    cf__list_init(&w->unsent);
    cf_process_pool_opts_init(&po);
    po.max_workers = o.procs;
    po.pipeline = (unsigned)o.prefetch;
    rc = cf_process_pool_new(loop, &po, &w->pp);
    if (rc)
        goto fail;
    w->backoff = 0.05;
    ev_timer_init(&w->retry, rw_retry_cb, 0, 0);
    w->retry.data = w;
    ev_timer_init(&w->tick, rw_tick_cb, o.claim_idle / 3, o.claim_idle / 3);
    w->tick.data = w;
    ev_timer_start(loop->ev, &w->tick);
    for (int i = 0; i < 2; i++) {
        struct cf__rconn *c = i ? &w->rd : &w->cmd;
        c->loop = loop;
        c->url = &w->url;
        c->on_up = rw_conn_up;
        c->on_down = rw_conn_down;
        c->data = w;
    }
    if (cf__rconn_open(&w->cmd) != 0 || cf__rconn_open(&w->rd) != 0)
        rw_down(w);
    *out = w;
    return 0;
fail:
    free(w->queue);
    free(w->name);
    free(w->tasks_id);
    free(w->ident);
    free(w);
    return rc;
}

void cf_remote_worker_drain(cf_remote_worker_t *w)
{
    CF_REQUIRE(w, "worker is NULL");
    w->draining = 1;
    rw_check_done(w);
}

int cf_remote_worker_done(const cf_remote_worker_t *w)
{
    CF_REQUIRE(w, "worker is NULL");
    return w->done;
}

int cf_remote_worker_stats(const cf_remote_worker_t *w, uint64_t *tasks_done, int *running)
{
    if (!w)
        return cf__set_error(CF_EINVAL, "cf_remote_worker_stats: worker is NULL");
    if (tasks_done)
        *tasks_done = w->tasks_done;
    if (running)
        *running = w->nrunning;
    return 0;
}

void cf_remote_worker_free(cf_remote_worker_t *w)
{
    if (!w)
        return;
    /* Running tasks are killed with the pool; their entries stay pending on
     * the broker and are claimed by another worker. */
    w->draining = 1;
    w->ready = 0;
    cf__rconn_close(&w->cmd);
    cf__rconn_close(&w->rd);
    while (!cf__list_empty(&w->running) || !cf__list_empty(&w->unsent)) {
        struct cf__list *n = !cf__list_empty(&w->running) ? w->running.next : w->unsent.next;
        struct wtask *t = cf__container_of(n, struct wtask, link);
        if (t->f) {
            cf__future_remove_cb(t->f, task_done_cb, t);
            cf_future_unref(t->f);
        }
        cf__list_remove(n);
        wt_free(t);
    }
    cf_process_pool_free(w->pp);
    if (ev_is_active(&w->tick))
        ev_timer_stop(w->loop->ev, &w->tick);
    if (ev_is_active(&w->retry))
        ev_timer_stop(w->loop->ev, &w->retry);
    free(w->queue);
    free(w->name);
    free(w->tasks_id);
    free(w->ident);
    free(w);
}
