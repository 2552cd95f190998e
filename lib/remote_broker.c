/*
 * remote_broker.c - the remote executor's client on the broker: the table of
 * sent tasks, completion, the connections' life, sending, reading results
 * and cancelling (remote_client.h).
 *
 * DESIGN
 *
 * Keys (Q is the queue name, C the client id "<host>:<pid>:<random>").
 *   Q            stream of tasks; consumer group "cfw" of workers
 *   Q:r:C        this client's result stream (deleted by cf_remote_pool_free(),
 *                else it expires a day after the last result)
 *   Q:c:C        "this client is known": SET NX at each connect.  Missing on a
 *                reconnect means the broker lost its data (restarted without
 *                persistence): the tasks on it are re-sent.
 *   Q:x:C:ID     cancel request for task ID (a worker watches it; 1 h TTL)
 *   Q:h:C:ID     the workers that took task ID (written by workers)
 * A task entry: i ID, c C, f name, n inner name, m item name, t timeout ms,
 * d max deliveries, a claim idle ms (0: the worker's own), p payload.  A
 * result entry: i ID, o encoded outcome (outcome.h), w the worker's identity.
 *
 * Connections.  Two, both on the application's loop (remote_conn.h): `cmd`
 * for XADD and the cancel script; `rd` for XREAD BLOCK on the result
 * stream (a blocking read occupies its connection), issued only while tasks
 * are on the broker, each one preceded by the XDEL of the results the last
 * one brought (without a reply: CLIENT REPLY SKIP).  No thread.
 *
 * Queues (loop thread only).
 *   pool.queue   tasks not yet sent (beyond max_inflight, or while down)
 *   pool.tab     tasks sent, by id (hash), until their result arrives
 * A result for an id not in the table (a duplicate after a re-delivery, a
 * task that was cancelled or failed meanwhile) is dropped: every future
 * completes exactly once, through cf__rp_complete().
 *
 * Cancel.  A task still local is removed at once.  A sent one: a Lua script
 * deletes the entry if no worker took it (XPENDING empty: XDEL), and the
 * future ends CANCELLED; otherwise it sets the cancel key, the worker stops
 * the task and reports CF_ECANCELED.
 *
 * Broker loss.  Both connections are dropped and reopened with backoff (50 ms
 * doubling to 2 s).  After broker_timeout seconds down, every outstanding
 * task fails with -ENOTCONN.  On reconnect, tasks whose XADD was not
 * confirmed, or all sent tasks if the broker lost its data, are sent again
 * (at least once; duplicates are dropped by id).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_client.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rp_read(cf_remote_pool_t *pool);

static const char CANCEL_LUA[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)\n"
    "if #p > 0 then redis.call('SET', KEYS[2], '1', 'EX', 3600) return 0 end\n"
    "return redis.call('XDEL', KEYS[1], ARGV[2])\n";

/* ------------------------------------------------------------------ the table of sent tasks */

static size_t tab_slot(const cf_remote_pool_t *pool, uint64_t id)
{
    return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & (pool->tab_cap - 1);
}

static int tab_add(cf_remote_pool_t *pool, struct rtask *t)
{
    if (pool->nsent + 1 > pool->tab_cap) {
        size_t cap = pool->tab_cap ? pool->tab_cap * 2 : 256;
        struct rtask **nt = calloc(cap, sizeof(*nt)), **old = pool->tab;
        size_t ocap = pool->tab_cap;
        if (!nt)
            return CF_ENOMEM;
        pool->tab = nt;
        pool->tab_cap = cap;
        for (size_t i = 0; i < ocap; i++)
            for (struct rtask *x = old[i], *nx; x; x = nx) {
                size_t s = tab_slot(pool, x->id);
                nx = x->hnext;
                x->hnext = nt[s];
                nt[s] = x;
            }
        free(old);
    }
    size_t s = tab_slot(pool, t->id);
    t->hnext = pool->tab[s];
    pool->tab[s] = t;
    pool->nsent++;
    return 0;
}

static struct rtask *tab_find(cf_remote_pool_t *pool, uint64_t id)
{
    if (!pool->tab_cap)
        return NULL;
    for (struct rtask *t = pool->tab[tab_slot(pool, id)]; t; t = t->hnext)
        if (t->id == id)
            return t;
    return NULL;
}

static void tab_del(cf_remote_pool_t *pool, struct rtask *t)
{
    struct rtask **pp = &pool->tab[tab_slot(pool, t->id)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = t->hnext;
        pool->nsent--;
    }
}

/* ------------------------------------------------------------------ completion */

static void rt_maybe_free(struct rtask *t)
{
    if (t->state == RT_DONE && t->replies == 0) {
        free(t->data);
        free(t);
    }
}

/* Complete t's future (once) with outcome `o` (moved) or err/msg (msg malloc'd or NULL). */
void cf__rp_complete(struct rtask *t, struct cf__outcome *o, int err, char *msg)
{
    cf_remote_pool_t *pool = t->pool;
    cf_future_t *f = t->f;

    if (t->state == RT_SENT)
        tab_del(pool, t);
    else if (t->state == RT_QUEUED) {
        cf__list_remove(&t->link);
        pool->nqueued--;
    }
    t->state = RT_DONE;
    t->f = NULL;
    if (f) {
        if (o) {
            f->out = *o;
        } else {
            f->out.err = err;
            f->out.errmsg = msg;
            msg = NULL;
        }
        cf__exec_complete(&pool->cnt, f, CF__COMPLETE_SCHEDULE);
        cf_future_unref(f); /* the pool's reference */
    } else if (o) {
        cf__outcome_clear(o);
    }
    free(msg);
    rt_maybe_free(t);
}

static void rp_fail_all(cf_remote_pool_t *pool, int err, const char *why)
{
    struct cf__list *n;

    while ((n = pool->queue.next) != &pool->queue) {
        struct rtask *t = cf__container_of(n, struct rtask, link);
        cf__rp_complete(t, NULL, err, why ? strdup(why) : NULL);
    }
    for (size_t i = 0; i < pool->tab_cap; i++)
        while (pool->tab[i])
            cf__rp_complete(pool->tab[i], NULL, err, why ? strdup(why) : NULL);
}

/* ------------------------------------------------------------------ connection life */

static void rp_down(cf_remote_pool_t *pool, const char *why);

/* Open both connections (conn_up() follows), or go down again with the reason. */
static void rp_open(cf_remote_pool_t *pool)
{
    const char *why = cf__rconn_open_both(&pool->cmd, &pool->rd);

    if (why)
        rp_down(pool, why);
}

static void retry_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    (void)ev;
    (void)revents;
    rp_open(tm->data);
}

static void dead_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_pool_t *pool = tm->data;
    char *msg;
    (void)ev;
    (void)revents;
    msg = cf__printf_alloc("remote executor: no connection to the broker at %s:%d for %.1f s (%s)", pool->url.host,
                           pool->url.port, pool->opts.broker_timeout, pool->why[0] ? pool->why : "connection lost");
    rp_fail_all(pool, -ENOTCONN, msg);
    free(msg);
}

/* One of the connections failed: drop both, try again later. */
static void rp_down(cf_remote_pool_t *pool, const char *why)
{
    if (why && *why)
        snprintf(pool->why, sizeof(pool->why), "%s", why);
    pool->ready = 0;
    pool->reading = 0;
    cf__rconn_close(&pool->cmd);
    cf__rconn_close(&pool->rd);
    if (pool->freeing)
        return;
    if (!pool->down) {
        pool->down = 1;
        if (pool->opts.broker_timeout >= 0) {
            ev_timer_set(&pool->dead, pool->opts.broker_timeout, 0);
            ev_timer_start(pool->loop->ev, &pool->dead);
            ev_unref(pool->loop->ev);
        }
    }
    if (!ev_is_active(&pool->retry)) {
        ev_timer_set(&pool->retry, pool->backoff, 0);
        ev_timer_start(pool->loop->ev, &pool->retry);
        ev_unref(pool->loop->ev);
    }
    pool->backoff = pool->backoff * 2 > 2.0 ? 2.0 : pool->backoff * 2;
}

static void conn_down(struct cf__rconn *c, const char *why)
{
    rp_down(c->data, why);
}

static void stop_timer(cf_remote_pool_t *pool, ev_timer *tm)
{
    if (ev_is_active(tm)) {
        ev_ref(pool->loop->ev);
        ev_timer_stop(pool->loop->ev, tm);
    }
}

/* SET NX of the client key answered: OK = the broker did not know this client. */
static void known_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_pool_t *pool = priv;
    redisReply *reply = r;
    int lost = reply && reply->type == REDIS_REPLY_STATUS && pool->connects > 1;

    (void)ac;
    if (!reply || pool->freeing)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[sizeof(pool->why)];
        cf__rconn_refusal(why, sizeof(why), "SET of the client key", reply->str);
        rp_down(pool, why);
        return;
    }
    pool->ready = 1;
    pool->why[0] = 0;
    pool->down = 0;
    pool->backoff = 0.05;
    stop_timer(pool, &pool->dead);
    /* Re-send what the broker may not have: everything if it lost its data,
     * else the tasks whose XADD was not confirmed. */
    for (size_t i = 0; i < pool->tab_cap; i++)
        for (struct rtask **pp = &pool->tab[i]; *pp;) {
            struct rtask *t = *pp;
            if (lost || !t->confirmed) {
                *pp = t->hnext;
                pool->nsent--;
                t->state = RT_QUEUED;
                cf__list_push(pool->queue.next, &t->link); /* before the first: to the front */
                pool->nqueued++;
            } else {
                pp = &t->hnext;
            }
        }
    if (lost)
        pool->last[0] = '0', pool->last[1] = 0;
    cf__rp_pump(pool);
    rp_read(pool);
}

static void conn_up(struct cf__rconn *c)
{
    cf_remote_pool_t *pool = c->data;

    if (!pool->cmd.up || !pool->rd.up)
        return;
    pool->connects++;
    cf__rconn_cmdf(&pool->cmd, NULL, NULL, "XGROUP CREATE %s " RP_GROUP " 0 MKSTREAM", pool->qname);
    cf__rconn_cmdf(&pool->cmd, known_cb, pool, "SET %s 1 NX EX " RP_TTL, pool->ckey);
}

/* ------------------------------------------------------------------ sending */

static void xadd_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct rtask *t = priv;
    redisReply *reply = r;

    (void)ac;
    t->replies--;
    if (t->via_rd) {
        cf_remote_pool_t *pool = t->pool;
        t->via_rd = 0;
        if (--pool->rd_xadds == 0 && reply && !pool->freeing && pool->nqueued) {
            t->replies++; /* t stays while the tasks held back for this answer go out */
            cf__rp_pump(pool);
            t->replies--;
        }
    }
    if (t->state == RT_SENT && reply && reply->type == REDIS_REPLY_STRING && reply->len < sizeof(t->entry)) {
        memcpy(t->entry, reply->str, reply->len + 1);
        t->confirmed = 1;
        if (t->cancel_req)
            cf__rp_cancel(t->f);
    } else if (t->state == RT_SENT && reply && reply->type == REDIS_REPLY_ERROR) {
        cf__rp_complete(t, NULL, CF_EFAIL, cf__printf_alloc("remote executor: the broker refused the task: %s", reply->str));
        return;
    }
    rt_maybe_free(t);
}

static int rp_send(cf_remote_pool_t *pool, struct rtask *t, struct cf__rconn *c)
{
    char id[24], to[24], md[16], ci[24];
    const char *argv[21];
    size_t lens[21];
    int n = 0;

#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
#define ARGS(s) ARG((s), strlen(s))
    snprintf(id, sizeof(id), "%llu", (unsigned long long)t->id);
    snprintf(to, sizeof(to), "%lld", pool->opts.task_timeout < 0 ? -1LL : (long long)(pool->opts.task_timeout * 1000));
    snprintf(md, sizeof(md), "%u", pool->opts.max_deliveries);
    snprintf(ci, sizeof(ci), "%lld", (long long)(pool->opts.claim_idle * 1000));
    ARGS("XADD");
    ARGS(pool->qname);
    ARGS("*");
    ARGS("i");
    ARGS(id);
    ARGS("c");
    ARGS(pool->cid);
    ARGS("f");
    ARGS(t->fn);
    ARGS("n");
    ARGS(t->inner ? t->inner : "");
    ARGS("m");
    ARGS(t->item ? t->item : "");
    ARGS("t");
    ARGS(to);
    ARGS("d");
    ARGS(md);
    ARGS("a");
    ARGS(ci);
    ARGS("p");
    ARG((const char *)(t->data ? t->data : (const uint8_t *)""), t->len);
#undef ARG
#undef ARGS
    if (cf__rconn_cmd(c, xadd_cb, t, n, argv, lens) != 0)
        return -ENOTCONN;
    t->replies++;
    t->confirmed = 0;
    if (c == &pool->rd) {
        t->via_rd = 1;
        pool->rd_xadds++;
    }
    return 0;
}

/*
 * Send queued tasks while there is room on the broker.  Tasks go on `cmd`,
 * except when no XREAD is outstanding on `rd` (nothing was on the broker:
 * the first task of a round trip, say): then they go on `rd`, followed by
 * the XREAD for their results (and the XDEL of the results read before),
 * in one write, which the broker handles in one wake-up.  Until the broker
 * answered those XADDs no task goes on `cmd` (they wait here, a broker
 * round trip at most), so the stream keeps the submission order.
 */
void cf__rp_pump(cf_remote_pool_t *pool)
{
    struct cf__rconn *c = pool->reading ? &pool->cmd : &pool->rd;

    while (pool->ready && pool->nqueued && pool->nsent < pool->opts.max_inflight &&
           (c == &pool->rd || !pool->rd_xadds)) {
        struct rtask *t = cf__container_of(pool->queue.next, struct rtask, link);
        if (tab_add(pool, t) != 0)
            break;
        cf__list_remove(&t->link);
        pool->nqueued--;
        t->state = RT_SENT;
        if (rp_send(pool, t, c) != 0)
            break; /* down: re-sent on reconnect (unconfirmed) */
        /* On cmd, alone on the broker (a round trip waits for it) or big
         * (the workers can start while the next ones are encoded): out now. */
        if (c == &pool->cmd && (pool->nsent == 1 || t->len >= 16384))
            cf__rconn_flush(&pool->cmd);
    }
    rp_read(pool);
    if (c == &pool->rd)
        cf__rconn_flush(&pool->rd);
}

/* ------------------------------------------------------------------ results */

static void read_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_pool_t *pool = priv;
    redisReply *reply = r;
    const char *del[1 + 2 + 512];
    size_t dlen[1 + 2 + 512];
    int nd = 0;

    (void)ac;
    pool->reading = 0;
    if (!reply || pool->freeing)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[sizeof(pool->why)];
        cf__rconn_refusal(why, sizeof(why), "XREAD of the result stream", reply->str);
        rp_down(pool, why);
        return;
    }
    del[nd] = "XDEL", dlen[nd++] = 4;
    del[nd] = pool->rkey, dlen[nd++] = strlen(pool->rkey);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        const redisReply *entries = reply->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            const redisReply *e = entries->element[i], *idr = cf__rentry_field(e, "i"), *o = cf__rentry_field(e, "o");
            struct rtask *t;

            if (e->element[0]->len < sizeof(pool->last))
                memcpy(pool->last, e->element[0]->str, e->element[0]->len + 1);
            if (nd < (int)(sizeof(del) / sizeof(del[0]))) {
                del[nd] = e->element[0]->str;
                dlen[nd++] = e->element[0]->len;
            }
            if (!idr || !o || idr->type != REDIS_REPLY_STRING || o->type != REDIS_REPLY_STRING)
                continue;
            t = tab_find(pool, strtoull(idr->str, NULL, 10));
            if (!t)
                continue; /* a duplicate, or already completed */
            {
                struct cf__outcome out;
                memset(&out, 0, sizeof(out));
                int rc = cf__outcome_decode_copy((const uint8_t *)o->str, o->len, &out);
                if (rc != 0)
                    cf__rp_complete(t, NULL, rc, cf__printf_alloc("remote executor: unreadable result from worker %s",
                                                              cf__rentry_field(e, "w") ? cf__rentry_field(e, "w")->str : "?"));
                else
                    cf__rp_complete(t, &out, 0, NULL);
            }
        }
    }
    /* The entries read are deleted on `rd` itself, without a reply, just
     * before the next XREAD: one write, and no wake-up for an answer. */
    if (nd > 2)
        cf__rconn_cmd_noreply(&pool->rd, nd, del, dlen);
    cf__rp_pump(pool);
    rp_read(pool);
}

/* Keep one XREAD BLOCK outstanding while tasks are on the broker. */
static void rp_read(cf_remote_pool_t *pool)
{
    if (!pool->ready || pool->reading || !pool->nsent || pool->freeing)
        return;
    if (cf__rconn_cmdf(&pool->rd, read_cb, pool, "XREAD COUNT 512 BLOCK 1000 STREAMS %s %s", pool->rkey, pool->last) ==
        0)
        pool->reading = 1;
}

/* ------------------------------------------------------------------ cancel */

static void cancel_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct rtask *t = priv;
    redisReply *reply = r;

    (void)ac;
    t->replies--;
    if (t->state == RT_SENT && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        cf__rp_complete(t, NULL, CF_ECANCELED, NULL); /* removed before any worker took it */
        return;
    }
    rt_maybe_free(t);
}

int cf__rp_cancel(cf_future_t *f)
{
    struct rtask *t = f->owner;
    cf_remote_pool_t *pool = t->pool;

    if (t->state == RT_QUEUED) {
        cf__rp_complete(t, NULL, CF_ECANCELED, NULL);
        return 0;
    }
    if (t->state != RT_SENT)
        return CF_EALREADY;
    t->cancel_req = 1;
    atomic_store(&f->cancel_req, 1);
    if (t->confirmed) {
        char xkey[256];
        snprintf(xkey, sizeof(xkey), "%s:x:%s:%llu", pool->qname, pool->cid, (unsigned long long)t->id);
        if (cf__rconn_cmdf(&pool->cmd, cancel_cb, t, "EVAL %s 2 %s %s " RP_GROUP " %s", CANCEL_LUA, pool->qname, xkey,
                           t->entry) == 0)
            t->replies++;
    }
    return CF_EBUSY;
}

/* ------------------------------------------------------------------ setup */

void cf__rp_connect(cf_remote_pool_t *pool)
{
    pool->backoff = 0.05;
    ev_timer_init(&pool->retry, retry_cb, 0, 0);
    pool->retry.data = pool;
    ev_timer_init(&pool->dead, dead_cb, 0, 0);
    pool->dead.data = pool;
    for (int i = 0; i < 2; i++) {
        struct cf__rconn *c = i ? &pool->rd : &pool->cmd;
        c->loop = pool->loop;
        c->url = &pool->url;
        c->on_up = conn_up;
        c->on_down = conn_down;
        c->data = pool;
    }
    rp_open(pool);
}

void cf__rp_stop_timers(cf_remote_pool_t *pool)
{
    stop_timer(pool, &pool->retry);
    stop_timer(pool, &pool->dead);
}
