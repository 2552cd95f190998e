/*
 * remote_wtask.c - a task's life on a remote worker (remote_worker.h).
 *
 * DESIGN
 *
 * XREADGROUP (or a claim, remote_worker.c) hands an entry over ->
 * cf__rw_take() copies its fields and RPUSHes this worker's identity to the
 * task's history list (the names for the message below).  A first delivery
 * starts at once; a claimed one waits for the RPUSH's answer: beyond the
 * task's max deliveries (the broker's delivery count, or the history's length
 * if longer: a first delivery's RPUSH can die unsent with its worker) it fails
 * with a message naming the workers that took it before (they died with it) -> the function is looked up by name (none:
 * the task fails naming the task and this worker) -> the inner names of map
 * chunks and typed calls are turned back into this program's pointers ->
 * cf_process_pool_submit() -> the outcome is encoded (outcome.h) and
 * cf__rw_post() XADDs it to the client's result stream, then XACKs and XDELs
 * the entry and deletes the history, in one pipeline with no replies asked
 * for (a crash between the two posts the result twice: the client drops the
 * duplicate).  The task's process slot is free once it ends; its result
 * waits in w->posted until a PING behind it is answered (cf__rw_confirm())
 * and is posted again if the connection drops first.  A result finished
 * while the broker is away waits in w->unsent and is posted after the
 * reconnect.  The history's RPUSH and EXPIRE of a first delivery ask for no
 * replies either.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_worker.h"

#include "map_chunk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cf__rw_task_free(struct wtask *t)
{
    free(t->client);
    free(t->id);
    free(t->fname);
    free(t->payload);
    free(t->result);
    free(t);
}

void cf__rw_check_done(cf_remote_worker_t *w)
{
    if (w->draining && !w->nrunning && !w->reading && !w->claiming &&
        ((cf__list_empty(&w->unsent) && cf__list_empty(&w->posted)) || w->gave_up))
        w->done = 1;
}

/* ------------------------------------------------------------------ results */

/* Results posted but not yet confirmed: a PING follows once this many are
 * waiting (or this many bytes), or RW_CONFIRM_AFTER seconds after a post. */
#define RW_CONFIRM_TASKS 64
#define RW_CONFIRM_BYTES ((size_t)1 << 20)
#define RW_CONFIRM_AFTER 0.1

struct confirm {
    cf_remote_worker_t *w;
    uint64_t upto; /* the posts before the PING */
};

static int confirm_due(const cf_remote_worker_t *w)
{
    return w->nposted && (w->draining || w->nposted >= RW_CONFIRM_TASKS || w->posted_bytes >= RW_CONFIRM_BYTES);
}

/* The PING's reply: every command sent before it on cmd has run. */
static void confirm_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct confirm *k = priv;
    cf_remote_worker_t *w = k->w;
    uint64_t upto = k->upto;

    (void)ac;
    free(k);
    w->confirming = 0;
    if (!r)
        return; /* lost with the connection: rw_down() posts them again */
    while (!cf__list_empty(&w->posted)) {
        struct wtask *t = cf__container_of(w->posted.next, struct wtask, link);
        if (t->seq > upto)
            break;
        cf__list_remove(&t->link);
        w->nposted--;
        w->posted_bytes -= t->rlen;
        cf__rw_task_free(t);
    }
    if (confirm_due(w))
        cf__rw_confirm(w);
    cf__rw_check_done(w);
}

void cf__rw_confirm(cf_remote_worker_t *w)
{
    struct confirm *k;

    if (w->confirming || !w->nposted || !w->ready)
        return;
    k = malloc(sizeof(*k));
    if (!k)
        return; /* the next post or heartbeat asks again */
    k->w = w;
    k->upto = w->post_seq;
    if (cf__rconn_cmdf(&w->cmd, confirm_cb, k, "PING") != 0) {
        free(k);
        return;
    }
    w->confirming = 1;
}

void cf__rw_repost_all(cf_remote_worker_t *w)
{
    while (!cf__list_empty(&w->posted)) {
        struct wtask *t = cf__container_of(w->posted.next, struct wtask, link);
        cf__list_remove(&t->link);
        cf__list_push(&w->unsent, &t->link);
    }
    w->nposted = 0;
    w->posted_bytes = 0;
}

/*
 * A result stream expires a day after its latest EXPIRE (the client deletes
 * it when freed); one EXPIRE a minute per stream is plenty, remembered in a
 * small table by the key's hash (a collision only sends one more EXPIRE).
 */
static int rkey_expire_due(cf_remote_worker_t *w, const char *rkey)
{
    uint64_t h = 1469598103934665603ull;
    double now = ev_now(w->loop->ev);
    struct cf__rw_expiry *x;

    for (const char *p = rkey; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    x = &w->expiry[h % RW_EXPIRY_SLOTS];
    if (x->hash == h && now - x->at < 60)
        return 0;
    x->hash = h;
    x->at = now;
    return 1;
}

/*
 * Post t's result, ack and delete its entry and its history, in order on
 * cmd, with no replies asked for (cf__rconn_cmdf_noreply()): the worker does
 * not wake up for them.  The result stays in w->posted until a later reply
 * on cmd (cf__rw_confirm()) says the broker ran these commands; if the
 * connection drops first, it is posted again after the reconnect (the client
 * drops a duplicate).  While the broker is away it waits in w->unsent.
 */
void cf__rw_post(struct wtask *t)
{
    cf_remote_worker_t *w = t->w;
    char rkey[400], hkey[400];

    if (!w->ready) {
        cf__list_push(&w->unsent, &t->link);
        return;
    }
    snprintf(rkey, sizeof(rkey), "%s:r:%s", w->queue, t->client);
    snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", w->queue, t->client, t->id);
    if (cf__rconn_cmdf_noreply(&w->cmd, "XADD %s * i %s o %b w %s", rkey, t->id, t->result, t->rlen, w->ident) != 0 ||
        (rkey_expire_due(w, rkey) && cf__rconn_cmdf_noreply(&w->cmd, "EXPIRE %s 86400", rkey) != 0) ||
        cf__rconn_cmdf_noreply(&w->cmd, "XACK %s " RW_GROUP " %s", w->queue, t->entry) != 0 ||
        cf__rconn_cmdf_noreply(&w->cmd, "XDEL %s %s", w->queue, t->entry) != 0 ||
        cf__rconn_cmdf_noreply(&w->cmd, "DEL %s", hkey) != 0) {
        /* Down (or out of memory): all of it again later, which is harmless. */
        cf__list_push(&w->unsent, &t->link);
        return;
    }
    free(t->payload); /* only the result is needed from now on */
    t->payload = NULL;
    t->seq = ++w->post_seq;
    cf__list_push(&w->posted, &t->link);
    w->nposted++;
    w->posted_bytes += t->rlen;
    if (confirm_due(w))
        cf__rw_confirm(w);
    else if (!ev_is_active(&w->confirm)) { /* a few results: confirmed soon all the same */
        /* Set again each time: a stopped ev_timer keeps what was left of its
         * time (about 0 once it fired), and would fire at once: a PING per
         * result. */
        ev_timer_set(&w->confirm, RW_CONFIRM_AFTER, 0);
        ev_timer_start(w->loop->ev, &w->confirm);
    }
    if (!w->nrunning || t->rlen >= 16384)
        cf__rconn_flush(&w->cmd); /* nothing else is about to end, or big: out now */
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
    if (!t->ended) { /* its slot is free for the next task now, whatever the broker says */
        t->ended = 1;
        t->w->nrunning--;
        t->w->tasks_done++;
    }
    cf__rw_post(t);
}

void cf__rw_task_done_cb(cf_future_t *f, int status, void *data)
{
    struct wtask *t = data;
    cf_remote_worker_t *w = t->w;

    (void)status;
    t->f = NULL;
    {
        uint64_t d = cf_now_ns() - t->start_ns;
        w->task_ns = w->task_ns ? (w->task_ns * 7 + d) / 8 : d;
    }
    if (cf_future_get_state(f) == CF_FUTURE_CANCELLED && !f->out.errmsg)
        rw_result(t, NULL, CF_ECANCELED, "task %s cancelled on worker %s", t->fname, t->w->ident);
    else if (f->out.err && f->out.errmsg) {
        char *m = f->out.errmsg;
        rw_result(t, NULL, f->out.err, "%s (on worker %s)", m, t->w->ident);
    } else
        rw_result(t, &f->out, 0, NULL);
    cf_future_unref(f);
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

/* ------------------------------------------------------------------ running */

/* Replace the function name stored at `off` of the payload with this program's pointer. */
static int patch(struct wtask *t, size_t off, cf_any_fn fn)
{
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
        if (patch(t, CF__INNER_FN_OFFSET, cf_fn_lookup(inner)) != 0) {
            rw_result(t, NULL, CF_EINVAL, "worker %s has no task named '%s'", w->ident, inner);
            return;
        }
        if (*item) {
            /* Every item of a script-layer array map is a call of `item`
             * (in any chunk form: map_chunk.h). */
            cf_any_fn item_fn = cf_fn_lookup(item);
            if (!item_fn) {
                rw_result(t, NULL, CF_EINVAL, "worker %s has no task named '%s'", w->ident, item);
                return;
            }
            if (cf__chunk_patch_items(t->payload, t->len, CF__INNER_FN_OFFSET, item_fn) != 0) {
                rw_result(t, NULL, CF_EINVAL, "worker %s: malformed map chunk in task entry %s", w->ident, t->entry);
                return;
            }
        }
    }
    if (w->opts.task_timeout >= 0 && (timeout < 0 || timeout > w->opts.task_timeout))
        timeout = w->opts.task_timeout;
    t->start_ns = cf_now_ns();
    rc = cf_process_pool_submit(w->pp, (cf_task_fn)fn, t->payload, t->len, timeout, &t->f);
    if (rc == 0)
        rc = cf_future_on_done(t->f, cf__rw_task_done_cb, t, NULL);
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
    unsigned deliveries; /* the broker's count, this one included */
};

static void hist_list_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct wtask *t = priv;
    cf_remote_worker_t *w = t->w;
    redisReply *reply = r;
    char who[2048] = "";
    size_t n = 0;

    (void)ac;
    /* The last entry is this worker's own (it did not run the task). */
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < reply->elements && n < sizeof(who) - 1; i++)
            n += (size_t)snprintf(who + n, sizeof(who) - n, "%s%s", i ? ", " : "", reply->element[i]->str);
    if (n >= sizeof(who))
        n = sizeof(who) - 1;
    rw_result(t, NULL, CF_EWORKER,
              "task '%s' was delivered %u times and its worker died each time (poison task?); "
              "workers: %s",
              t->fname, t->maxdel, n ? who : "?");
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

static void hist_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct hist_req *h = priv;
    struct wtask *t = h->t;
    cf_remote_worker_t *w = t->w;
    redisReply *reply = r;

    (void)ac;
    if (!reply) { /* broker lost: the entry stays pending and is claimed again later */
        cf__list_remove(&t->link);
        t->w->nrunning--;
        cf__rw_task_free(t);
    } else if ((reply->type == REDIS_REPLY_INTEGER && (unsigned long long)reply->integer > t->maxdel) ||
               h->deliveries > t->maxdel) {
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
    cf__rw_fetch(w);
    cf__rw_check_done(w);
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
void cf__rw_take(cf_remote_worker_t *w, const redisReply *e, unsigned deliveries)
{
    struct wtask *t;
    struct hist_req *h;
    char hkey[400], *to, *md, *ci;

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
    ci = field_dup(e, "a", NULL);
    t->claim_idle = ci && atoll(ci) > 0 ? (double)atoll(ci) / 1000 : w->opts.claim_idle;
    if (t->claim_idle < 0.003)
        t->claim_idle = 0.003; /* as the client allows: heartbeats every millisecond at most */
    free(ci);
    cf__rw_beat_period(w, t->claim_idle);
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
            cf__rw_task_free(t);
            return;
        }
        if (!t->fname)
            t->fname = strdup("?");
        rw_result(t, NULL, CF_EINVAL, "worker %s: malformed task entry %s", w->ident, t->entry);
        return;
    }
    h->t = t;
    h->deliveries = deliveries;
    snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", w->queue, t->client, t->id);
    if (deliveries <= 1) {
        /* A first delivery (XREADGROUP >) cannot be over the limit: start it
         * at once, then record it (behind the hand-over to the process, in
         * front of its result on cmd), without waiting for the broker's
         * answer.  A task that ended in rw_start() (unknown name) has
         * posted its result already: no record to leave behind. */
        rw_start(t, h->inner, h->item);
        if (t->started) {
            cf__rconn_cmdf_noreply(&w->cmd, "RPUSH %s %s", hkey, w->ident);
            cf__rconn_cmdf_noreply(&w->cmd, "EXPIRE %s 86400", hkey);
        }
        free(h->inner);
        free(h->item);
        free(h);
        return;
    }
    if (cf__rconn_cmdf(&w->cmd, hist_cb, h, "RPUSH %s %s", hkey, w->ident) != 0)
        hist_cb(NULL, NULL, h);
    else
        cf__rconn_cmdf(&w->cmd, NULL, NULL, "EXPIRE %s 86400", hkey);
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
        if (strncmp(reply->str, "NOGROUP", 7) == 0) { /* the broker lost its data */
            cf__rconn_cmdf(&w->cmd, NULL, NULL, "XGROUP CREATE %s " RW_GROUP " 0 MKSTREAM", w->queue);
        } else {
            /* Reading again at once would only be refused again, as fast as
             * the broker answers: go down, say why, retry with backoff. */
            cf__rw_refused(w, "XREADGROUP", reply->str);
            return;
        }
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < reply->elements; s++) {
            const redisReply *entries = reply->element[s]->element[1];
            for (size_t i = 0; i < entries->elements; i++)
                cf__rw_take(w, entries->element[i], 1);
        }
        cf__rconn_flush(&w->cmd); /* the deliveries' history records, now that the tasks are handed over */
    }
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

/* Long tasks: a broker round trip is small beside them, and a task held
 * here while another worker is idle (a map's tail) costs a whole task. */
#define RW_LONG_NS (2 * 1000 * 1000)

int cf__rw_room(const cf_remote_worker_t *w)
{
    int per = w->opts.prefetch;

    if (per > 2 && w->task_ns >= RW_LONG_NS)
        per = 2;
    return w->opts.procs * per - w->nrunning;
}

void cf__rw_fetch(cf_remote_worker_t *w)
{
    int free_procs = cf__rw_room(w);

    if (!w->ready || w->reading || w->draining || free_procs <= 0)
        return;
    if (cf__rconn_cmdf(&w->rd, read_cb, w, "XREADGROUP GROUP " RW_GROUP " %s COUNT %d BLOCK 1000 STREAMS %s >",
                       w->name, free_procs, w->queue) == 0)
        w->reading = 1;
}

