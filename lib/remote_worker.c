/*
 * remote_worker.c - the worker side of the remote executor (remote.h): its
 * life, its connections, heartbeats, cancel checks and claims; a task's own
 * life is in remote_wtask.c.
 *
 * DESIGN
 *
 * A worker is a consumer of the queue's group "cfw" (see remote_broker.c for
 * the keys).  cf_remote_worker_new() makes a supervisor: it reads no tasks
 * but starts `procs` task processes (remote_host.c), each a worker of its
 * own with consumer name "NAME.K" that reads, runs and posts its tasks in
 * place, so that a crash or a timeout fails only that task and no process
 * stands between the broker and the task.  Two connections on a worker's
 * loop: `rd` for XREADGROUP BLOCK (issued by cf__rw_fetch() only while the
 * worker has room and no drain was asked), `cmd` for everything else.  No
 * thread.  A task's life from its delivery to its posted result is in
 * remote_wtask.c.
 *
 * Heartbeats and claims.  A task's claim idle comes with it (the client's
 * cf_remote_opts.claim_idle, field "a"; none: this worker's claim_idle).
 * A timer resets the idle time of the entries a worker holds (XCLAIM ...
 * JUSTID) every third of the shortest claim idle among them (this worker's
 * own when it holds none), and checks their cancel keys (MGET; a cancelled
 * task not run yet ends CANCELLED).  While a task process runs a task its
 * loop waits, so its supervisor does the same for it (remote_host.c).
 * Another timer, with room for a task, runs CLAIM_LUA: it takes over
 * entries idle for longer than their own claim idle (their worker stopped
 * heartbeating), records that worker in the task's history, and says when
 * the next pending one will be due, which is when it runs again (at the
 * latest after a third of this worker's claim_idle, 1 s at most).
 *
 * Drain.  cf_remote_worker_drain(): no new reads or claims; when the running
 * tasks have posted their results (and the blocking read came back: what it
 * brought is run too), the worker is done.  A supervisor hands the drain on
 * to its task processes and is done when they all are.
 *
 * Broker loss.  Connections are reopened with backoff (50 ms doubling to
 * 2 s); results finished meanwhile wait in `unsent` and are posted after the
 * reconnect.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_worker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ connection */

/* A drain waits opts.broker_timeout for an absent broker at most (then cf__rw_check_done() lets it end). */
static void rw_give_up_arm(cf_remote_worker_t *w)
{
    if (w->draining && !w->ready && w->opts.broker_timeout >= 0 && !ev_is_active(&w->give_up)) {
        ev_timer_set(&w->give_up, w->opts.broker_timeout, 0);
        ev_timer_start(w->loop->ev, &w->give_up);
    }
}

static void rw_give_up_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;

    (void)ev;
    (void)revents;
    w->gave_up = 1;
    cf__rw_check_done(w);
}

static void rw_down(cf_remote_worker_t *w, const char *why)
{
    if (why && *why)
        snprintf(w->why, sizeof(w->why), "%s", why);
    w->ready = 0;
    w->reading = 0;
    w->claiming = 0;
    cf__rconn_close(&w->cmd);
    cf__rconn_close(&w->rd);
    cf__rw_repost_all(w); /* not confirmed: maybe lost with the connection */
    memset(w->expiry, 0, sizeof(w->expiry)); /* the broker may come back without them: EXPIRE again */
    if (ev_is_active(&w->confirm))
        ev_timer_stop(w->loop->ev, &w->confirm);
    if (!ev_is_active(&w->retry)) {
        ev_timer_set(&w->retry, w->backoff, 0);
        ev_timer_start(w->loop->ev, &w->retry);
    }
    w->backoff = w->backoff * 2 > 2.0 ? 2.0 : w->backoff * 2;
    rw_give_up_arm(w);
    cf__rw_check_done(w); /* a drain that waited for the blocking read */
}

static void rw_conn_down(struct cf__rconn *c, const char *why)
{
    rw_down(c->data, why);
}

void cf__rw_refused(cf_remote_worker_t *w, const char *cmd, const char *err)
{
    char what[64], why[sizeof(w->why)];

    snprintf(what, sizeof(what), "%s on queue '%.24s'", cmd, w->queue);
    cf__rconn_refusal(why, sizeof(why), what, err);
    rw_down(w, why);
}

/* Open the connections (rw_conn_up() follows), or go down again with the reason.
 * A supervisor reads nothing: `cmd` is all it needs. */
static void rw_open(cf_remote_worker_t *w)
{
    const char *why = !w->hosts ? cf__rconn_open_both(&w->cmd, &w->rd)
                      : cf__rconn_open(&w->cmd) != 0 ? w->cmd.err
                                                     : NULL;

    if (why)
        rw_down(w, why);
}

static void rw_confirm_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    (void)ev;
    (void)revents;
    cf__rw_confirm(tm->data);
}

static void rw_retry_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    (void)ev;
    (void)revents;
    rw_open(tm->data);
}

/*
 * Q:w:CONSUMER holds a reading worker's identity for a day, renewed hourly:
 * the claim script records it in the history of each task it takes over
 * from that consumer, for the message that names the workers a poison task
 * killed.
 */
static void rw_say_who(cf_remote_worker_t *w)
{
    if (w->hosts)
        return; /* a supervisor holds no entries */
    if (cf__rconn_cmdf_noreply(&w->cmd, "SET %s:w:%s %s EX 86400", w->queue, w->name, w->ident) == 0)
        w->said_who = ev_now(w->loop->ev);
}

static void group_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;

    (void)ac;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        /* Not a stream (another program's key?), or no permission: nothing to read from. */
        cf__rw_refused(w, "XGROUP CREATE", reply->str);
        return;
    }
    w->ready = 1;
    w->why[0] = 0;
    rw_say_who(w);
    w->backoff = 0.05;
    w->gave_up = 0; /* back in time after all: everything is posted */
    if (ev_is_active(&w->give_up))
        ev_timer_stop(w->loop->ev, &w->give_up);
    /* Results that finished while the broker was away. */
    while (!cf__list_empty(&w->unsent)) {
        struct wtask *t = cf__container_of(w->unsent.next, struct wtask, link);
        cf__list_remove(&t->link);
        cf__rw_post(t);
    }
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

static void rw_conn_up(struct cf__rconn *c)
{
    cf_remote_worker_t *w = c->data;

    if (!w->cmd.up || (!w->hosts && !w->rd.up))
        return;
    cf__rconn_cmdf(&w->cmd, group_cb, w, "XGROUP CREATE %s " RW_GROUP " 0 MKSTREAM", w->queue);
}

/* ------------------------------------------------------------------ heartbeat, cancel, claims */

/*
 * Claims.  Each task carries its own claim idle (field "a", from the client's
 * options; 0 or missing: this worker's claim_idle), so XAUTOCLAIM, which has
 * one min-idle-time for all, cannot do it: this script walks up to 1000 of
 * the group's pending entries from a cursor (ARGV[5]: "-" or "(<id>"),
 * claims those idle for longer than their own claim idle (XCLAIM with that
 * min-idle-time, so a heartbeat that came in between wins) and returns {ms
 * until the next one is due or -1, claimed entries, their delivery counts,
 * the cursor for the next call or "" after the last page}.  A queue with
 * more pending entries than one page is walked over several calls, so a
 * dead worker's entries behind a thousand live ones are found too.  The
 * broker's count is what limits deliveries: a first delivery's history
 * entry can be lost with the worker that took it.  Pending entries whose
 * stream entry is gone are acknowledged.
 */
static const char CLAIM_LUA[] =
    "local pend = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], '+', 1000)\n"
    "local out, cnt, due, max = {}, {}, -1, tonumber(ARGV[4])\n"
    "for _, p in ipairs(pend) do\n"
    "  local e = redis.call('XRANGE', KEYS[1], p[1], p[1])\n"
    "  if #e == 0 then redis.call('XACK', KEYS[1], ARGV[1], p[1]) else\n"
    "    local a, f = 0, e[1][2]\n"
    "    for i = 1, #f, 2 do if f[i] == 'a' then a = tonumber(f[i + 1]) or 0 end end\n"
    "    if a <= 0 then a = tonumber(ARGV[3]) end\n"
    "    if p[3] >= a then\n"
    "      if #out < max then\n"
    "        local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], a, p[1])\n"
    "        if #c > 0 and c[1] then\n"
    "          out[#out + 1] = c[1]; cnt[#cnt + 1] = p[4] + 1\n"
    "          local cl, id = '', ''\n"
    "          for i = 1, #f, 2 do if f[i] == 'c' then cl = f[i + 1] elseif f[i] == 'i' then id = f[i + 1] end end\n"
    "          local hk = KEYS[1] .. ':h:' .. cl .. ':' .. id\n"
    "          redis.call('RPUSH', hk, redis.call('GET', KEYS[1] .. ':w:' .. p[2]) or p[2])\n"
    "          redis.call('EXPIRE', hk, 86400)\n"
    "        end\n"
    "      end\n"
    "    elseif due < 0 or a - p[3] < due then due = a - p[3] end\n"
    "  end\n"
    "end\n"
    "local nxt = ''\n"
    "if #pend >= 1000 then nxt = '(' .. pend[#pend][1] end\n"
    "return {due, out, cnt, nxt}\n";

static void claim_cb(redisAsyncContext *ac, void *r, void *priv)
{
    cf_remote_worker_t *w = priv;
    redisReply *reply = r;
    double next = w->opts.claim_idle / 3 < 1.0 ? w->opts.claim_idle / 3 : 1.0;

    (void)ac;
    w->claiming = 0;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_ARRAY) {
        if (reply->element[0]->integer >= 0 && (double)reply->element[0]->integer / 1000 + 0.01 < next)
            next = (double)reply->element[0]->integer / 1000 + 0.01;
        const redisReply *cnt = reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY
                                    ? reply->element[2]
                                    : NULL;
        for (size_t i = 0; i < reply->element[1]->elements; i++) {
            long long n = cnt && i < cnt->elements && cnt->element[i]->type == REDIS_REPLY_INTEGER
                              ? cnt->element[i]->integer
                              : 2;
            cf__rw_take(w, reply->element[1]->element[i], n > 1 ? (unsigned)n : 2u);
        }
        /* More pages: the next one soon (not at once: a long queue of live
         * tasks would keep the broker busy), else from the start again. */
        if (reply->elements >= 4 && reply->element[3]->type == REDIS_REPLY_STRING && reply->element[3]->len > 0 &&
            reply->element[3]->len < sizeof(w->claim_from)) {
            memcpy(w->claim_from, reply->element[3]->str, reply->element[3]->len + 1);
            if (next > 0.05)
                next = 0.05;
        } else {
            strcpy(w->claim_from, "-");
        }
    } else if (reply) {
        strcpy(w->claim_from, "-"); /* an error: from the start next time */
    }
    if (!w->draining) {
        ev_timer_stop(w->loop->ev, &w->claim);
        ev_timer_set(&w->claim, next, 0);
        ev_timer_start(w->loop->ev, &w->claim);
    }
    cf__rw_fetch(w);
    cf__rw_check_done(w);
}

/* Look for tasks to claim (while a process is free), then again when one is due. */
static void rw_claim_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;
    int room = cf__rw_room(w);
    char dflt[24], max[16];

    (void)ev;
    (void)revents;
    snprintf(dflt, sizeof(dflt), "%lld", (long long)(w->opts.claim_idle * 1000));
    snprintf(max, sizeof(max), "%d", room);
    if (w->ready && !w->draining && !w->claiming && room > 0 &&
        cf__rconn_cmdf(&w->cmd, claim_cb, w, "EVAL %s 1 %s " RW_GROUP " %s %s %s %s", CLAIM_LUA, w->queue, w->name,
                       dflt, max, w->claim_from) == 0) {
        w->claiming = 1;
        return;
    }
    if (!w->draining) {
        ev_timer_set(&w->claim, w->opts.claim_idle / 3 < 1.0 ? w->opts.claim_idle / 3 : 1.0, 0);
        ev_timer_start(w->loop->ev, &w->claim);
    }
}

/* Heartbeat often enough for the running task with the shortest claim idle. */
void cf__rw_beat_period(cf_remote_worker_t *w, double claim_idle)
{
    double p = claim_idle / 3;

    if (p < w->tick.repeat) {
        w->tick.repeat = p;
        ev_timer_again(w->loop->ev, &w->tick);
    }
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
                if (strcmp(t->entry, cc->entry[i]) != 0)
                    continue;
                if (t->queued) { /* not run yet (a running one is the supervisor's to stop) */
                    cf__list_remove(&t->qlink);
                    t->queued = 0;
                    cf__rw_fail(t, CF_ECANCELED, "task %s cancelled on worker %s", t->fname, w->ident);
                }
                break;
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
    cf__rw_confirm(w); /* results posted since the last reply on cmd */
    if (ev_now(w->loop->ev) - w->said_who > 3600)
        rw_say_who(w);
    if (w->nrunning) {
        size_t cap = 6 + (size_t)w->nrunning, k = 0, m = 1;
        const char **argv = calloc(cap, sizeof(*argv)), **mget = calloc((size_t)w->nrunning + 1, sizeof(*mget));
        struct cancel_check *cc = calloc(1, sizeof(*cc) + (size_t)w->nrunning * sizeof(cc->entry[0]));
        if (argv && mget && cc) {
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
                mget[m++] = t->xkey ? t->xkey : "-";
                n++;
            }
            argv[k++] = "JUSTID";
            cf__rconn_cmd(&w->cmd, NULL, NULL, (int)k, argv, NULL);
            cc->n = (size_t)n;
            if (cf__rconn_cmd(&w->cmd, cancel_check_cb, cc, (int)m, mget, NULL) == 0)
                cc = NULL;
        }
        free(cc);
        free(argv);
        free(mget);
    }
    /* Back to this worker's own period once the tasks with shorter claim idles are gone. */
    {
        double p = w->hosts ? cf__rw_hosts_beat(w) : w->opts.claim_idle / 3;
        for (struct cf__list *l = w->running.next; l != &w->running; l = l->next) {
            struct wtask *t = cf__container_of(l, struct wtask, link);
            if (t->claim_idle / 3 < p)
                p = t->claim_idle / 3;
        }
        if (p != w->tick.repeat) {
            w->tick.repeat = p;
            ev_timer_again(w->loop->ev, &w->tick);
        }
    }
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
    o->broker_timeout = 30;
    o->prefetch = 4;
}

int cf_remote_worker_new(cf_loop_t *loop, const cf_remote_worker_opts *opts, cf_remote_worker_t **out)
{
    return cf__rw_new(loop, opts, NULL, out);
}

int cf__rw_new(cf_loop_t *loop, const cf_remote_worker_opts *opts, struct cf__rw_slot *slot, cf_remote_worker_t **out)
{
    cf_remote_worker_t *w;
    cf_remote_worker_opts o;
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
    if (isnan(o.broker_timeout))
        return cf__set_error(CF_EINVAL, "cf_remote_worker_new: opts->broker_timeout is NaN (a negative value means none)");
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
    w->url_str = strdup(o.url ? o.url : "redis://127.0.0.1:6379");
    w->ident = w->name ? cf__printf_alloc("%s(host %s, pid %ld%s%s)", w->name, host, (long)getpid(),
                                          w->tasks_id && *w->tasks_id ? ", tasks " : "", w->tasks_id ? w->tasks_id : "")
                       : NULL;
    if (!w->queue || !w->name || !w->tasks_id || !w->ident || !w->url_str) {
        rc = CF_ENOMEM;
        goto fail;
    }
    cf__list_init(&w->running);
    cf__list_init(&w->unsent);
    cf__list_init(&w->posted);
    cf__list_init(&w->runq);
    w->backoff = 0.05;
    strcpy(w->claim_from, "-");
    ev_timer_init(&w->retry, rw_retry_cb, 0, 0);
    w->retry.data = w;
    ev_timer_init(&w->confirm, rw_confirm_cb, 0, 0); /* set when started (cf__rw_post()) */
    w->confirm.data = w;
    ev_timer_init(&w->give_up, rw_give_up_cb, 0, 0);
    w->give_up.data = w;
    ev_timer_init(&w->tick, rw_tick_cb, o.claim_idle / 3, o.claim_idle / 3);
    w->tick.data = w;
    ev_timer_start(loop->ev, &w->tick);
    ev_timer_init(&w->claim, rw_claim_cb, o.claim_idle / 3 < 1.0 ? o.claim_idle / 3 : 1.0, 0);
    w->claim.data = w;
    ev_idle_init(&w->run_w, cf__rw_run_cb);
    w->run_w.data = w;
    for (int i = 0; i < 2; i++) {
        struct cf__rconn *c = i ? &w->rd : &w->cmd;
        c->loop = loop;
        c->url = &w->url;
        c->on_up = rw_conn_up;
        c->on_down = rw_conn_down;
        c->data = w;
    }
    if (slot) {
        w->slot = slot; /* a task process: reads, runs and claims its tasks */
        ev_timer_start(loop->ev, &w->claim);
    } else if ((rc = cf__rw_hosts_start(w)) != 0) { /* before the connections: no sockets in the processes */
        cf__rw_hosts_free(w);
        ev_timer_stop(loop->ev, &w->tick);
        goto fail;
    }
    rw_open(w);
    *out = w;
    return 0;
fail:
    free(w->url_str);
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
    if (w->hosts)
        cf__rw_hosts_drain(w);
    cf__rw_confirm(w);
    rw_give_up_arm(w);
    cf__rw_check_done(w);
}

int cf_remote_worker_done(const cf_remote_worker_t *w)
{
    CF_REQUIRE(w, "worker is NULL");
    return w->done;
}

const char *cf_remote_worker_broker_error(const cf_remote_worker_t *w)
{
    CF_REQUIRE(w, "worker is NULL");
    if (w->ready)
        return NULL;
    return w->why[0] ? w->why : "connecting";
}

size_t cf_remote_worker_unposted(const cf_remote_worker_t *w)
{
    size_t n = 0;

    CF_REQUIRE(w, "worker is NULL");
    /* Giving up needs the broker away, so the posted results were moved to unsent (rw_down()). */
    if (w->gave_up)
        for (const struct cf__list *l = w->unsent.next; l != &w->unsent; l = l->next)
            n++;
    return n + (size_t)w->host_unposted;
}

int cf_remote_worker_stats(const cf_remote_worker_t *w, uint64_t *tasks_done, int *running)
{
    if (!w)
        return cf__set_error(CF_EINVAL, "cf_remote_worker_stats: worker is NULL");
    uint64_t done = w->tasks_done;
    int run = w->nrunning;

    if (w->hosts)
        cf__rw_hosts_stats(w, &done, &run);
    if (tasks_done)
        *tasks_done = done;
    if (running)
        *running = run;
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
    cf__rw_repost_all(w); /* to free them with the unsent ones */
    while (!cf__list_empty(&w->running) || !cf__list_empty(&w->unsent)) {
        struct cf__list *n = !cf__list_empty(&w->running) ? w->running.next : w->unsent.next;
        struct wtask *t = cf__container_of(n, struct wtask, link);
        cf__list_remove(n);
        cf__rw_task_free(t);
    }
    if (w->slot) {
        if (ev_is_active(&w->run_w))
            ev_idle_stop(w->loop->ev, &w->run_w);
    } else {
        cf__rw_hosts_free(w);
    }
    if (ev_is_active(&w->tick))
        ev_timer_stop(w->loop->ev, &w->tick);
    if (ev_is_active(&w->claim))
        ev_timer_stop(w->loop->ev, &w->claim);
    if (ev_is_active(&w->retry))
        ev_timer_stop(w->loop->ev, &w->retry);
    if (ev_is_active(&w->confirm))
        ev_timer_stop(w->loop->ev, &w->confirm);
    if (ev_is_active(&w->give_up))
        ev_timer_stop(w->loop->ev, &w->give_up);
    free(w->queue);
    free(w->name);
    free(w->tasks_id);
    free(w->ident);
    free(w->url_str);
    free(w);
}
