/*
 * remote.c - the remote executor, client side (remote.h): options, submit,
 * shutdown and free; the protocol on the broker is in remote_broker.c.
 *
 * DESIGN
 *
 * A pool is an executor (executor.h) whose tasks travel by name: submit
 * looks up the registered names of the task function (and of the inner
 * function of a map chunk or a typed call, and of the mapped function of a
 * script-layer array map), copies the payload into an rtask and queues it
 * locally; cf__rp_pump() sends it when the broker is up and fewer than
 * max_inflight tasks are on it.  Every future completes through
 * cf__rp_complete(), exactly once.  See remote_broker.c for the keys, the
 * connections, cancel and broker loss.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_client.h"

#include "map_chunk.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cf__future_ops rp_future_ops = {.cancel = cf__rp_cancel};
static const struct cf__executor_ops rp_executor_ops;

/* ------------------------------------------------------------------ submit */

/* The name of the function pointer at offset `off` of data (len bytes), or NULL. */
static const char *inner_name(const uint8_t *data, size_t len, size_t off)
{
    cf_any_fn fn;

    if (off + sizeof(fn) > len)
        return NULL;
    memcpy(&fn, data + off, sizeof(fn));
    return fn ? cf_fn_name(fn) : NULL;
}

static int rp_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out)
{
    cf_remote_pool_t *pool = (cf_remote_pool_t *)ex;
    const char *name, *inner = NULL, *item = NULL;
    struct rtask *t;
    cf_future_t *f;
    int compact = 0;

    if (pool->shut)
        return cf__set_error(CF_ESHUTDOWN, "remote executor: shut down, it takes no new tasks");
    if (!(s->flags & CF__SUBMIT_BYTES))
        return cf__set_error(CF_ENOTSUP, "remote executor: tasks take bytes, not pointers");
    name = cf_fn_name((cf_any_fn)s->fn);
    if (!name)
        return cf__set_error(CF_EINVAL, "remote executor: the task function is not registered "
                                        "(cf_task_register() or CF_REGISTER() in the client and the workers)");
    if (s->len > pool->opts.max_payload)
        return cf__set_error(CF_E2BIG, "remote executor: payload of %zu bytes exceeds max_payload (%zu)", s->len,
                             pool->opts.max_payload);
    if (s->fn == cf__map_chunk_run || s->fn == cf__call_task) {
        inner = inner_name(s->arg, s->len, CF__INNER_FN_OFFSET);
        if (!inner)
            return cf__set_error(CF_EINVAL, "remote executor: the %s function is not registered "
                                            "(cf_fn_register() or CF_REGISTER() in the client and the workers)",
                                 s->fn == cf__map_chunk_run ? "map" : "called");
        if (strcmp(inner, "cf.map_call") == 0) {
            /* A script-layer array map: every item is a call of one function. */
            item = inner_name(s->arg, s->len, 24 + 8 + CF__INNER_FN_OFFSET);
            if (!item)
                return cf__set_error(CF_EINVAL, "remote executor: the mapped function is not registered "
                                                "(cf_fn_register() or CF_REGISTER() in the client and the workers)");
        }
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return CF_ENOMEM;
    t->len = s->len;
    /* A map chunk whose items differ in a few bytes travels as a template
     * and those bytes (map_chunk.c): the script layer's items, for one,
     * shrink from 32 bytes to 8 on the way through the broker, the worker
     * and its process.  The item function stays in the template, where the
     * worker rewrites it once. */
    if (s->fn == cf__map_chunk_run &&
        cf__chunk_compact(s->arg, s->len, CF__INNER_FN_OFFSET, item ? sizeof(cf_any_fn) : 0, &t->data, &t->len) < 0) {
        free(t);
        return CF_ENOMEM;
    }
    if (t->data) {
        compact = 1;
    } else if (s->flags & CF__SUBMIT_OWNED) {
        t->data = s->arg;
    } else if (s->len) {
        t->data = cf__memdup(s->arg, s->len);
        if (!t->data) {
            free(t);
            return CF_ENOMEM;
        }
    }
    f = cf__future_alloc(pool->loop);
    if (!f) {
        if (compact || !(s->flags & CF__SUBMIT_OWNED))
            free(t->data);
        free(t);
        return CF_ENOMEM;
    }
    t->pool = pool;
    t->f = f;
    t->id = ++pool->next_id;
    t->fn = name;
    t->inner = inner;
    t->item = item;
    t->state = RT_QUEUED;
    cf__exec_accept(&pool->cnt, f, &rp_future_ops, t);
    if (compact && (s->flags & CF__SUBMIT_OWNED))
        free(s->arg); /* ours on success, and no longer needed */
    if (!(s->flags & CF__SUBMIT_OWNED) && s->arg_free)
        s->arg_free(s->arg);
    cf__list_push(&pool->queue, &t->link);
    pool->nqueued++;
    *out = f;
    cf__rp_pump(pool);
    return 0;
}

/* ------------------------------------------------------------------ life */

static int rp_idle(void *arg)
{
    cf_remote_pool_t *pool = arg;
    return pool->cnt.outstanding == 0;
}

int cf_remote_pool_shutdown(cf_remote_pool_t *pool, int flags)
{
    if (!pool)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_shutdown: pool is NULL");
    pool->shut = 1;
    if (flags & CF_SHUTDOWN_CANCEL) {
        while (pool->queue.next != &pool->queue)
            cf__rp_complete(cf__container_of(pool->queue.next, struct rtask, link), NULL, CF_ECANCELED, NULL);
        for (size_t i = 0; i < pool->tab_cap; i++)
            for (struct rtask *t = pool->tab[i]; t; t = t->hnext)
                if (t->f && !t->cancel_req)
                    cf__rp_cancel(t->f);
    }
    if (flags & CF_SHUTDOWN_WAIT) {
        int rc = cf__loop_can_block(pool->loop);
        if (rc)
            return cf__set_error(rc, "cf_remote_pool_shutdown: CF_SHUTDOWN_WAIT inside a loop callback");
        return cf__loop_run_until(pool->loop, rp_idle, pool, -1);
    }
    return 0;
}

static int rp_ex_shutdown(cf_executor_t *ex, int flags)
{
    return cf_remote_pool_shutdown((cf_remote_pool_t *)ex, flags);
}

static int rp_ex_workers(const cf_executor_t *ex)
{
    return ((const cf_remote_pool_t *)ex)->opts.workers;
}

static const struct cf__executor_ops rp_executor_ops = {
    .kind = "remote",
    .submit_task = rp_submit,
    .shutdown = rp_ex_shutdown,
    .workers = rp_ex_workers,
    .shares_memory = 0,
};

void cf_remote_opts_init(cf_remote_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->url = "redis://127.0.0.1:6379";
    o->queue = "cfutures";
    o->max_inflight = 1024;
    o->task_timeout = -1;
    o->max_deliveries = 3;
    o->broker_timeout = 30;
    o->max_payload = (size_t)64 << 20;
    o->workers = 8;
}

int cf_remote_pool_new(cf_loop_t *loop, const cf_remote_opts *opts, cf_remote_pool_t **out)
{
    cf_remote_pool_t *pool;
    cf_remote_opts o;
    char host[64] = "host";
    int rc;

    if (!loop || !out)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: %s is NULL", !loop ? "loop" : "out");
    if (opts)
        o = *opts;
    else
        cf_remote_opts_init(&o);
    if (!o.queue || !*o.queue || strchr(o.queue, ' '))
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->queue must be a non-empty name without spaces");
    if (o.max_inflight < 1)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->max_inflight must be >= 1");
    if (o.max_deliveries < 1)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->max_deliveries must be >= 1");
    if (o.max_payload > ((size_t)512 << 20))
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->max_payload must be <= 512 MiB (a Redis string)");
    if (o.workers < 1)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->workers must be >= 1 (got %d)", o.workers);
    if (isnan(o.task_timeout) || isnan(o.broker_timeout))
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: timeouts must be numbers");
    if (!(o.claim_idle >= 0) || o.claim_idle > 1e9)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->claim_idle must be >= 0 seconds (0: the workers' own)");
    if (o.claim_idle > 0 && o.claim_idle < 0.003)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_new: opts->claim_idle must be at least 3 ms");
    pool = calloc(1, sizeof(*pool));
    if (!pool)
        return CF_ENOMEM;
    rc = cf__rurl_parse(o.url ? o.url : "redis://127.0.0.1:6379", &pool->url, "cf_remote_pool_new");
    if (rc) {
        free(pool);
        return rc;
    }
    pool->ex.ops = &rp_executor_ops;
    pool->ex.loop = loop;
    pool->loop = loop;
    pool->opts = o;
    pool->opts.url = NULL;
    gethostname(host, sizeof(host) - 1);
    snprintf(pool->cid, sizeof(pool->cid), "%s:%ld:%08lx", host, (long)getpid(),
             (unsigned long)((cf_now_ns() ^ (uint64_t)(uintptr_t)pool) & 0xffffffffu));
    pool->qname = strdup(o.queue);
    pool->opts.queue = pool->qname;
    pool->rkey = cf__printf_alloc("%s:r:%s", o.queue, pool->cid);
    pool->ckey = cf__printf_alloc("%s:c:%s", o.queue, pool->cid);
    if (!pool->qname || !pool->rkey || !pool->ckey) {
        free(pool->qname);
        free(pool->rkey);
        free(pool->ckey);
        free(pool);
        return CF_ENOMEM;
    }
    strcpy(pool->last, "0");
    cf__list_init(&pool->queue);
    loop->live_executors++;
    cf__rp_connect(pool);
    *out = pool;
    return 0;
}

cf_executor_t *cf_remote_pool_executor(cf_remote_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return &pool->ex;
}

int cf_remote_pool_connected(const cf_remote_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return pool->ready;
}

const char *cf_remote_pool_broker_error(const cf_remote_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    if (pool->ready)
        return NULL;
    return pool->why[0] ? pool->why : "connecting";
}

int cf_remote_pool_stats(cf_remote_pool_t *pool, cf_pool_stats *out)
{
    if (!pool || !out)
        return cf__set_error(CF_EINVAL, "cf_remote_pool_stats: %s is NULL", !pool ? "pool" : "out");
    memset(out, 0, sizeof(*out));
    cf__exec_counters_get(&pool->cnt, out);
    out->queued = pool->nqueued;
    out->running = pool->nsent;
    out->workers = pool->opts.workers;
    return 0;
}

/* Delete the client's keys with a short synchronous connection (the loop may not be running). */
static void rp_delete_keys(cf_remote_pool_t *pool)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(pool->url.host, pool->url.port, tv);
    redisReply *r;

    if (!c)
        return;
    if (!c->err) {
        redisSetTimeout(c, tv);
        if (pool->url.pass[0]) {
            r = pool->url.user[0] ? redisCommand(c, "AUTH %s %s", pool->url.user, pool->url.pass)
                                  : redisCommand(c, "AUTH %s", pool->url.pass);
            freeReplyObject(r);
        }
        if (pool->url.db) {
            r = redisCommand(c, "SELECT %d", pool->url.db);
            freeReplyObject(r);
        }
        r = redisCommand(c, "DEL %s %s", pool->rkey, pool->ckey);
        freeReplyObject(r);
    }
    redisFree(c);
}

void cf_remote_pool_free(cf_remote_pool_t *pool)
{
    if (!pool)
        return;
    cf_remote_pool_shutdown(pool, CF_SHUTDOWN_CANCEL);
    /* Tasks on the broker: their futures end CANCELLED now; workers that
     * still run them see the cancel keys set above, and their results go to
     * a stream nobody reads, which expires. */
    pool->freeing = 1;
    for (size_t i = 0; i < pool->tab_cap; i++)
        while (pool->tab[i])
            cf__rp_complete(pool->tab[i], NULL, CF_ECANCELED, NULL);
    cf__rp_stop_timers(pool);
    /* Let the cancel requests out before closing (a close drops unsent commands). */
    if (pool->cmd.ac && pool->cmd.up)
        redisAsyncHandleWrite(pool->cmd.ac);
    cf__rconn_close(&pool->cmd); /* pending callbacks run with NULL replies and release the tasks */
    cf__rconn_close(&pool->rd);
    rp_delete_keys(pool);
    pool->loop->live_executors--;
    free(pool->tab);
    free(pool->qname);
    free(pool->rkey);
    free(pool->ckey);
    free(pool);
}
