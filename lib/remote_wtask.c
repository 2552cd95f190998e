/*
 * remote_wtask.c - a task's life on a remote worker (remote_worker.h).
 *
 * DESIGN
 *
 * In a task process (remote_host.c).  XREADGROUP (or a claim,
 * remote_worker.c) hands an entry over -> cf__rw_take() copies its fields; a
 * claimed one beyond the task's max deliveries (the broker's delivery
 * count) fails with a message naming the workers that took it before and
 * died (the task's history, which the claim script writes) -> the function
 * is looked up by name (none: the task fails naming the task and this
 * worker) -> the inner names of map chunks and typed calls are turned back
 * into this program's pointers -> the task waits in w->runq and runs in this
 * process (cf__rw_run_cb(): one task per loop iteration; a lone task that
 * just arrived runs at once, before anything else is written, so that its
 * result is the next thing the broker hears) -> the outcome is encoded
 * (outcome.h) and cf__rw_post() XADDs it to the client's result stream,
 * then XACKs and XDELs the entry (and deletes a claimed task's history), in
 * one pipeline with no replies asked for (a crash between the two posts
 * the result twice: the client drops the duplicate).  Its result waits in
 * w->posted until a PING behind it is answered (cf__rw_confirm()) and is
 * posted again if the connection drops first.  A result finished while the
 * broker is away waits in w->unsent and is posted after the reconnect.
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
    free(t->xkey);
    free(t->fname);
    free(t->payload);
    free(t->result);
    free(t);
}

void cf__rw_check_done(cf_remote_worker_t *w)
{
    if (w->draining && !w->nrunning && !w->reading && !w->claiming && (!w->hosts || cf__rw_hosts_done(w)) &&
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
        (t->claimed && cf__rconn_cmdf_noreply(&w->cmd, "DEL %s", hkey) != 0)) {
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

/* The task ends with `o` (encoded now). */
static void rw_result(struct wtask *t, struct cf__outcome *o)
{
    cf__outcome_make_portable(o, "a remote task");
    t->rlen = cf__outcome_encoded_size(o);
    t->result = malloc(t->rlen ? t->rlen : 1);
    if (t->result)
        cf__outcome_encode(o, t->result);
    else
        t->rlen = 0;
    cf__list_remove(&t->link);
    if (!t->ended) { /* its slot is free for the next task now, whatever the broker says */
        t->ended = 1;
        t->w->nrunning--;
        t->w->tasks_done++;
    }
    cf__rw_post(t);
}

void cf__rw_fail(struct wtask *t, int err, const char *fmt, ...)
{
    struct cf__outcome o;
    va_list ap;

    memset(&o, 0, sizeof(o));
    o.err = err;
    va_start(ap, fmt);
    cf__outcome_set_msg(&o, fmt, ap);
    va_end(ap);
    rw_result(t, &o);
    cf__outcome_clear(&o);
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
    double timeout = t->timeout_ms <= 0 ? -1 : (double)t->timeout_ms / 1000.0;

    if (!fn) {
        cf__rw_fail(t, CF_EINVAL, "worker %s has no task named '%s'", w->ident, t->fname);
        return;
    }
    if (*inner) {
        if (patch(t, CF__INNER_FN_OFFSET, cf_fn_lookup(inner)) != 0) {
            cf__rw_fail(t, CF_EINVAL, "worker %s has no task named '%s'", w->ident, inner);
            return;
        }
        if (*item) {
            /* Every item of a script-layer array map is a call of `item`
             * (in any chunk form: map_chunk.h). */
            cf_any_fn item_fn = cf_fn_lookup(item);
            if (!item_fn) {
                cf__rw_fail(t, CF_EINVAL, "worker %s has no task named '%s'", w->ident, item);
                return;
            }
            if (cf__chunk_patch_items(t->payload, t->len, CF__INNER_FN_OFFSET, item_fn) != 0) {
                cf__rw_fail(t, CF_EINVAL, "worker %s: malformed map chunk in task entry %s", w->ident, t->entry);
                return;
            }
        }
    }
    if (w->opts.task_timeout > 0 && (timeout < 0 || timeout > w->opts.task_timeout))
        timeout = w->opts.task_timeout;
    /* Run here, in turn (cf__rw_run_cb()). */
    t->fn = fn;
    t->run_timeout = timeout;
    t->queued = 1;
    cf__list_push(&w->runq, &t->qlink);
    if (!ev_is_active(&w->run_w))
        ev_idle_start(w->loop->ev, &w->run_w);
}

/*
 * A task process runs its tasks itself, one per loop iteration, so that what
 * the loop has to send or read goes between two tasks.  Before a task runs,
 * what it took is told to the supervisor (the slot) and the history records
 * and the next read are sent; a task the supervisor saw cancelled while it
 * waited here ends CANCELLED without running.
 */
static void slot_publish(cf_remote_worker_t *w, const struct wtask *run)
{
    struct cf__rw_slot *s = w->slot;
    unsigned n = 0;
    double ci = w->opts.claim_idle;

    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    s->running = run != NULL;
    if (run) {
        snprintf(s->entry, sizeof(s->entry), "%s", run->entry);
        snprintf(s->id, sizeof(s->id), "%s", run->id);
        snprintf(s->fname, sizeof(s->fname), "%s", run->fname);
        snprintf(s->client, sizeof(s->client), "%s", run->client);
        s->timeout = run->run_timeout;
        s->deadline_ns = run->run_timeout > 0 ? run->start_ns + (uint64_t)(run->run_timeout * 1e9) : 0;
    }
    for (struct cf__list *l = w->running.next; l != &w->running && n < RW_HELD_MAX; l = l->next) {
        struct wtask *t = cf__container_of(l, struct wtask, link);
        snprintf(s->held[n], sizeof(s->held[n]), "%s", t->entry);
        snprintf(s->hkey[n], sizeof(s->hkey[n]), "%s", t->xkey ? t->xkey : "-");
        if (t->claim_idle < ci)
            ci = t->claim_idle;
        n++;
    }
    s->nheld = n;
    s->claim_idle = ci;
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
}

static int slot_cancelled(const cf_remote_worker_t *w, const struct wtask *t)
{
    uint32_t n = atomic_load_explicit(&w->slot->ncancelled, memory_order_acquire);

    for (uint32_t i = 0; i < n && i < RW_HELD_MAX; i++)
        if (strncmp(w->slot->cancelled[i], t->entry, sizeof(w->slot->cancelled[i])) == 0)
            return 1;
    return 0;
}

void cf__rw_run_cb(struct ev_loop *ev, ev_idle *iw, int revents)
{
    cf_remote_worker_t *w = iw->data;
    struct wtask *t;
    struct cf__outcome o;
    struct cf_task task;
    uint64_t d;

    (void)revents;
    if (cf__list_empty(&w->runq)) {
        ev_idle_stop(ev, iw);
        return;
    }
    t = cf__container_of(w->runq.next, struct wtask, qlink);
    cf__list_remove(&t->qlink);
    t->queued = 0;
    if (cf__list_empty(&w->runq))
        ev_idle_stop(ev, iw); /* (a task taken meanwhile starts it again) */
    if (slot_cancelled(w, t)) {
        cf__rw_fail(t, CF_ECANCELED, "task %s cancelled on worker %s", t->fname, w->ident);
        goto next;
    }
    t->start_ns = cf_now_ns();
    slot_publish(w, t);
    memset(&o, 0, sizeof(o));
    memset(&task, 0, sizeof(task));
    task.out = &o;
    task.arg = t->payload;
    task.arg_len = t->len;
    cf__task_run(&task, (cf_task_fn)t->fn);
    d = cf_now_ns() - t->start_ns;
    w->task_ns = w->task_ns ? (w->task_ns * 7 + d) / 8 : d;
    if (o.err == 0 && o.value_free && !o.is_bytes) {
        cf__outcome_drop_value(&o);
        cf__rw_fail(t, CF_ENOTSUP,
                    "task %s: a remote task must produce a number or bytes (cf_task_set_bytes), not a pointer "
                    "with a destructor (on worker %s)",
                    t->fname, w->ident);
    } else if (o.err && o.errmsg) {
        cf__rw_fail(t, o.err, "%s (on worker %s)", o.errmsg, w->ident);
    } else {
        rw_result(t, &o);
    }
    cf__outcome_clear(&o);
    atomic_fetch_add_explicit(&w->slot->tasks_done, 1, memory_order_relaxed);
next:
    slot_publish(w, NULL);
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

/* The LRANGE of a task's history: the workers that took it and died with it (the claim script records each). */
static void hist_list_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct wtask *t = priv;
    cf_remote_worker_t *w = t->w;
    redisReply *reply = r;
    char who[2048] = "";
    size_t n = 0;

    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements && n < sizeof(who) - 1; i++)
            if (reply->element[i]->type == REDIS_REPLY_STRING)
                n += (size_t)snprintf(who + n, sizeof(who) - n, "%s%s", n ? ", " : "", reply->element[i]->str);
    if (n >= sizeof(who))
        n = sizeof(who) - 1;
    cf__rw_fail(t, CF_EWORKER,
              "task '%s' was delivered %u times and its worker died each time (poison task?); "
              "workers: %s",
              t->fname, t->maxdel, n ? who : "?");
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

/*
 * Take one entry and run it.  A claimed one (deliveries > 1: its worker
 * stopped heartbeating it, the claim script recorded that worker in the
 * task's history) beyond the task's max deliveries fails instead, naming
 * the workers that took it and died.
 */
void cf__rw_take(cf_remote_worker_t *w, const redisReply *e, unsigned deliveries)
{
    struct wtask *t;
    char *inner, *item, *to, *md, *ci;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
        return; /* deleted meanwhile (cancelled) */
    t = calloc(1, sizeof(*t));
    if (!t)
        return; /* left pending: claimed again later */
    t->w = w;
    snprintf(t->entry, sizeof(t->entry), "%s", e->element[0]->str);
    t->client = field_dup(e, "c", NULL);
    t->id = field_dup(e, "i", NULL);
    t->fname = field_dup(e, "f", NULL);
    t->payload = (uint8_t *)field_dup(e, "p", &t->len);
    if (t->client && t->id) /* built once: the heartbeats read it each tick */
        t->xkey = cf__printf_alloc("%s:x:%s:%s", w->queue, t->client, t->id);
    t->claimed = deliveries > 1;
    inner = field_dup(e, "n", NULL);
    item = field_dup(e, "m", NULL);
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
    if (!t->client || !t->id || !t->fname || !t->payload || !inner || !item) {
        if (!t->client || !t->id) { /* not a task of ours: drop it */
            cf__rconn_cmdf(&w->cmd, NULL, NULL, "XACK %s " RW_GROUP " %s", w->queue, t->entry);
            cf__list_remove(&t->link);
            w->nrunning--;
            cf__rw_task_free(t);
        } else {
            if (!t->fname)
                t->fname = strdup("?");
            cf__rw_fail(t, CF_EINVAL, "worker %s: malformed task entry %s", w->ident, t->entry);
        }
    } else if (deliveries > t->maxdel) {
        char hkey[400];
        snprintf(hkey, sizeof(hkey), "%s:h:%s:%s", w->queue, t->client, t->id);
        if (cf__rconn_cmdf(&w->cmd, hist_list_cb, t, "LRANGE %s 0 -1", hkey) != 0)
            hist_list_cb(NULL, NULL, t);
    } else {
        rw_start(t, inner, item);
    }
    free(inner);
    free(item);
}

/*
 * A task process's first read is of the entries its consumer holds (ID 0
 * instead of >).  Those the process before it in the slot held and never
 * ran (the supervisor lists them: that process died, or was stopped for
 * another task) are taken as they are; others (left by an earlier run of
 * this worker) are left to the claims, which count them as deliveries
 * again.  Entries deleted meanwhile (cancelled) are acknowledged.
 */
static int pel_due(const cf_remote_worker_t *w)
{
    return w->slot && !w->pel_read && w->slot->nresume;
}

static int resumed(const cf_remote_worker_t *w, const redisReply *e)
{
    for (unsigned i = 0; i < w->slot->nresume && i < RW_HELD_MAX; i++)
        if (strncmp(w->slot->resume[i], e->element[0]->str, sizeof(w->slot->resume[i])) == 0)
            return 1;
    return 0;
}

static void read_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;
    int pel = pel_due(w);

    (void)ac;
    w->reading = 0;
    if (!reply)
        return;
    if (pel)
        w->pel_read = 1;
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
            for (size_t i = 0; i < entries->elements; i++) {
                const redisReply *e = entries->element[i];
                if (!pel)
                    cf__rw_take(w, e, 1);
                else if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
                    continue;
                else if (e->element[1]->type != REDIS_REPLY_ARRAY)
                    cf__rconn_cmdf(&w->cmd, NULL, NULL, "XACK %s " RW_GROUP " %s", w->queue, e->element[0]->str);
                else if (resumed(w, e))
                    cf__rw_take(w, e, 1);
            }
        }
        /* A task process with one task to run runs it now, before anything
         * else goes out: its result is the next thing the broker hears.
         * With more, the next read goes out first (cf__rw_fetch() below) and
         * they run in turn (cf__rw_run_cb()). */
        if (w->slot && w->runq.next != &w->runq && w->runq.next->next == &w->runq)
            cf__rw_run_cb(w->loop->ev, &w->run_w, 0);
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
    if (per > RW_HELD_MAX)
        per = RW_HELD_MAX; /* what the supervisor can see and heartbeat */
    return per - w->nrunning;
}

void cf__rw_fetch(cf_remote_worker_t *w)
{
    int free_procs = cf__rw_room(w);

    if (w->hosts || !w->ready || w->reading || w->draining || free_procs <= 0)
        return; /* (a supervisor: its task processes read) */
    if (pel_due(w)) {
        if (cf__rconn_cmdf(&w->rd, read_cb, w, "XREADGROUP GROUP " RW_GROUP " %s COUNT 256 STREAMS %s 0", w->name,
                           w->queue) == 0)
            w->reading = 1;
        return;
    }
    if (cf__rconn_cmdf(&w->rd, read_cb, w, "XREADGROUP GROUP " RW_GROUP " %s COUNT %d BLOCK 1000 STREAMS %s >",
                       w->name, free_procs, w->queue) == 0)
        w->reading = 1;
}

