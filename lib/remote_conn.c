/*
 * remote_conn.c - Redis connections on a cfutures loop (remote_conn.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_conn.h"

#include <hiredis/adapters/libev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cf__rurl_parse(const char *url, struct cf__rurl *u, const char *who)
{
    const char *p, *at, *slash, *colon, *hend;
    size_t n;

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!url || strncmp(url, "redis://", 8) != 0)
        return cf__set_error(CF_EINVAL, "%s: url '%.100s' must start with redis://", who, url ? url : "(null)");
    p = url + 8;
    slash = strchr(p, '/');
    at = strchr(p, '@');
    if (at && slash && at > slash)
        at = NULL;
    if (at) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (!c || (size_t)(c - p) >= sizeof(u->user) || (size_t)(at - c - 1) >= sizeof(u->pass))
            return cf__set_error(CF_EINVAL, "%s: url '%.100s': credentials must be user:password@ (user may be empty)",
                                 who, url);
        memcpy(u->user, p, (size_t)(c - p));
        memcpy(u->pass, c + 1, (size_t)(at - c - 1));
        p = at + 1;
    }
    hend = slash ? slash : p + strlen(p);
    colon = memchr(p, ':', (size_t)(hend - p));
    n = (size_t)((colon ? colon : hend) - p);
    if (n == 0 || n >= sizeof(u->host))
        return cf__set_error(CF_EINVAL, "%s: url '%.100s' has no host", who, url);
    memcpy(u->host, p, n);
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hend || port < 1 || port > 65535)
            return cf__set_error(CF_EINVAL, "%s: url '%.100s': bad port", who, url);
        u->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000)
            return cf__set_error(CF_EINVAL, "%s: url '%.100s': bad database number", who, url);
        u->db = (int)db;
    }
    return 0;
}

/* ------------------------------------------------------------------ hiredis' libev adapter, unreferenced */

/*
 * redisLibevAttach() puts the context's two ev_io watchers on our loop; we
 * keep its watchers, its event callbacks and its bookkeeping, and wrap its
 * four hooks only to take the active watchers out of the loop's reference
 * count (ev_unref after a start, ev_ref before a stop), so that an idle
 * connection does not keep ev_run() alive.
 */
static void rc_add_read(void *p)
{
    redisLibevEvents *e = p;
    if (!e->reading) {
        redisLibevAddRead(p);
        ev_unref(e->loop);
    }
}
static void rc_del_read(void *p)
{
    redisLibevEvents *e = p;
    if (e->reading) {
        ev_ref(e->loop);
        redisLibevDelRead(p);
    }
}
static void rc_add_write(void *p)
{
    redisLibevEvents *e = p;
    if (!e->writing) {
        redisLibevAddWrite(p);
        ev_unref(e->loop);
    }
}
static void rc_del_write(void *p)
{
    redisLibevEvents *e = p;
    if (e->writing) {
        ev_ref(e->loop);
        redisLibevDelWrite(p);
    }
}
static void rc_cleanup(void *p)
{
    rc_del_read(p);
    rc_del_write(p);
    redisLibevCleanup(p); /* frees the adapter's state */
}

/* The adapter's read event, noting when this connection last read. */
static void rc_read_event(struct ev_loop *ev, ev_io *w, int revents)
{
    redisLibevEvents *e = w->data;
    struct cf__rconn *c = e->context->data;

    if (c)
        c->last_rx = ev_now(ev);
    redisLibevReadEvent(ev, w, revents);
}

static void rc_stall_stop(struct cf__rconn *c)
{
    if (ev_is_active(&c->stall)) {
        ev_ref(c->loop->ev);
        ev_timer_stop(c->loop->ev, &c->stall);
    }
}

/* Once a second: a connection that awaits replies and read nothing for CF__RCONN_STALL s is dropped. */
static void rc_stall_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    struct cf__rconn *c = t->data;

    (void)revents;
    if (!c->ac || !c->ac->replies.head) {
        c->last_rx = ev_now(ev); /* nothing awaited: the clock starts with the next command */
        return;
    }
    if (ev_now(ev) - c->last_rx < CF__RCONN_STALL)
        return;
    cf__rconn_close(c); /* pending callbacks run with a NULL reply */
    snprintf(c->err, sizeof(c->err), "the broker answered nothing for %.0f s", CF__RCONN_STALL);
    if (c->on_down)
        c->on_down(c, c->err);
}

/* The context is gone (hiredis frees it after this callback): report once. */
static void rc_lost(struct cf__rconn *c, const char *why)
{
    if (!c->ac)
        return;
    snprintf(c->err, sizeof(c->err), "%s", why && *why ? why : "connection closed");
    c->ac = NULL;
    c->up = 0;
    if (c->on_down)
        c->on_down(c, c->err);
}

static void rc_connect_cb(const redisAsyncContext *ac, int status)
{
    struct cf__rconn *c = ac->data;

    if (!c)
        return;
    if (status != REDIS_OK) {
        rc_lost(c, ac->errstr);
        return;
    }
    c->up = 1;
    if (c->on_up)
        c->on_up(c);
}

static void rc_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct cf__rconn *c = ac->data;

    (void)status;
    if (c)
        rc_lost(c, ac->err ? ac->errstr : "connection closed by the broker");
}

/*
 * AUTH and SELECT from the URL answered: a refusal (a wrong password, a
 * database the broker does not have) drops the connection with the
 * broker's words as the reason; the owner retries with its backoff and
 * reports the reason (cf_remote_pool_broker_error(), the client's
 * broker_timeout message, cf_remote_worker_broker_error()).
 */
static void rc_setup_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct cf__rconn *c = ac->data;
    redisReply *reply = r;

    if (!c || !reply || reply->type != REDIS_REPLY_ERROR)
        return;
    cf__rconn_close(c); /* from a reply callback: hiredis frees the context once it returns */
    cf__rconn_refusal(c->err, sizeof(c->err), priv, reply->str);
    if (c->on_down)
        c->on_down(c, c->err);
}

static void rc_skip_probe_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct cf__rconn *c = priv;
    redisReply *reply = r;

    if (reply && ac->data == c && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0)
        c->skip = 1;
}

int cf__rconn_open(struct cf__rconn *c)
{
    redisAsyncContext *ac;

    CF_ASSERT(!c->ac, "connection already open");
    ac = redisAsyncConnect(c->url->host, c->url->port);
    if (!ac)
        return CF_ENOMEM;
    if (ac->err) {
        snprintf(c->err, sizeof(c->err), "%s", ac->errstr);
        redisAsyncFree(ac);
        return -ECONNREFUSED;
    }
    c->ac = ac;
    c->up = 0;
    ac->data = c;
    if (redisLibevAttach(c->loop->ev, ac) != REDIS_OK) {
        snprintf(c->err, sizeof(c->err), "could not attach the connection to the loop");
        c->ac = NULL;
        redisAsyncFree(ac);
        return CF_ENOMEM;
    }
    ev_set_cb(&((redisLibevEvents *)ac->ev.data)->rev, rc_read_event);
    ac->ev.addRead = rc_add_read;
    ac->ev.delRead = rc_del_read;
    ac->ev.addWrite = rc_add_write;
    ac->ev.delWrite = rc_del_write;
    ac->ev.cleanup = rc_cleanup;
    c->last_rx = ev_now(c->loop->ev);
    rc_stall_stop(c); /* lost (not closed) before this open */
    ev_timer_init(&c->stall, rc_stall_cb, 1.0, 1.0);
    c->stall.data = c;
    ev_timer_start(c->loop->ev, &c->stall);
    ev_unref(c->loop->ev);
    redisAsyncSetConnectCallback(ac, rc_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rc_disconnect_cb);
    /* Queued now, sent first once connected. */
    if (c->url->pass[0]) {
        if (c->url->user[0])
            redisAsyncCommand(ac, rc_setup_cb, (void *)"AUTH", "AUTH %s %s", c->url->user, c->url->pass);
        else
            redisAsyncCommand(ac, rc_setup_cb, (void *)"AUTH", "AUTH %s", c->url->pass);
    }
    if (c->url->db)
        redisAsyncCommand(ac, rc_setup_cb, (void *)"SELECT", "SELECT %d", c->url->db);
    /* Does the broker take CLIENT REPLY (Redis >= 3.2, and the ACL allows it)? */
    c->skip = 0;
    redisAsyncCommand(ac, rc_skip_probe_cb, c, "CLIENT REPLY ON");
    return 0;
}

const char *cf__rconn_open_both(struct cf__rconn *a, struct cf__rconn *b)
{
    if (cf__rconn_open(a) != 0)
        return a->err;
    if (cf__rconn_open(b) != 0)
        return b->err;
    return NULL;
}

void cf__rconn_refusal(char *why, size_t cap, const char *what, const char *err)
{
    snprintf(why, cap, "the broker refused %.50s: %.120s", what, err); /* fits the 192 bytes of err/why */
}

void cf__rconn_close(struct cf__rconn *c)
{
    redisAsyncContext *ac = c->ac;

    rc_stall_stop(c);
    if (!ac)
        return;
    c->ac = NULL;
    c->up = 0;
    ac->data = NULL; /* no on_down for a close we asked for */
    redisAsyncFree(ac); /* stops and frees the watchers (rc_cleanup) */
}

int cf__rconn_cmd(struct cf__rconn *c, redisCallbackFn *cb, void *priv, int argc, const char **argv,
                  const size_t *lens)
{
    if (!c->ac)
        return -ENOTCONN;
    if (redisAsyncCommandArgv(c->ac, cb, priv, argc, argv, lens) != REDIS_OK)
        return -ENOTCONN;
    return 0;
}

int cf__rconn_cmdf(struct cf__rconn *c, redisCallbackFn *cb, void *priv, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (!c->ac)
        return -ENOTCONN;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(c->ac, cb, priv, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : -ENOTCONN;
}

/* Append CLIENT REPLY SKIP and the formatted command `cmd` to ac's output, both or neither. */
static int append_noreply(redisAsyncContext *ac, const char *cmd, size_t len)
{
    static const char SKIP[] = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n";
    char *both;
    int rc;

    /* Straight into the output buffer, both or neither: no reply is coming,
     * so no callback may wait for one in the context's queue. */
    both = malloc(sizeof(SKIP) - 1 + len);
    rc = both ? 0 : CF_ENOMEM;
    if (both) {
        memcpy(both, SKIP, sizeof(SKIP) - 1);
        memcpy(both + sizeof(SKIP) - 1, cmd, len);
        if (redisAppendFormattedCommand(&ac->c, both, sizeof(SKIP) - 1 + len) != REDIS_OK)
            rc = CF_ENOMEM;
        free(both);
    }
    if (ac->ev.addWrite)
        ac->ev.addWrite(ac->ev.data);
    return rc;
}

int cf__rconn_cmdf_noreply(struct cf__rconn *c, const char *fmt, ...)
{
    redisAsyncContext *ac = c->ac;
    va_list ap;
    char *cmd;
    int len, rc;

    if (!ac || !c->up)
        return -ENOTCONN;
    va_start(ap, fmt);
    if (!c->skip) {
        rc = redisvAsyncCommand(ac, NULL, NULL, fmt, ap);
        va_end(ap);
        return rc == REDIS_OK ? 0 : -ENOTCONN;
    }
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return CF_ENOMEM;
    rc = append_noreply(ac, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int cf__rconn_cmd_noreply(struct cf__rconn *c, int argc, const char **argv, const size_t *lens)
{
    redisAsyncContext *ac = c->ac;
    char *cmd;
    int len, rc;

    if (!ac || !c->up)
        return -ENOTCONN;
    if (!c->skip)
        return redisAsyncCommandArgv(ac, NULL, NULL, argc, argv, lens) == REDIS_OK ? 0 : -ENOTCONN;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return CF_ENOMEM;
    rc = append_noreply(ac, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/*
 * Not from one of c's own reply callbacks: a write error there would free
 * the context under hiredis' feet; the write watcher sends it in this loop
 * iteration then.
 */
void cf__rconn_flush(struct cf__rconn *c)
{
    if (c->ac && c->up && !(c->ac->c.flags & REDIS_IN_CALLBACK))
        redisAsyncHandleWrite(c->ac); /* the rest, if any, waits for the write watcher */
}

const redisReply *cf__rentry_field(const redisReply *entry, const char *key)
{
    const redisReply *kv;

    if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements < 2)
        return NULL;
    kv = entry->element[1];
    if (!kv || kv->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, key) == 0)
            return kv->element[i + 1];
    return NULL;
}
