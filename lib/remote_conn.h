/*
 * remote_conn.h - Redis connections on a cfutures loop, shared by the remote
 * client (remote.c) and the remote worker (remote_worker.c).  Not installed.
 *
 * A connection is a hiredis async context attached to the application's
 * loop with hiredis' own libev adapter (adapters/libev.h,
 * redisLibevAttach()); its watchers are unreferenced (remote_conn.c wraps
 * the adapter's hooks for that): an idle connection does not keep ev_run()
 * alive; outstanding tasks do (cf__loop_task_begin()).  On connect it sends
 * AUTH and SELECT from the URL before anything else (pipelined: Redis
 * answers in order).  A lost connection reports once through on_down; the
 * owner reconnects with cf__rconn_open() (with its own backoff).  A broker
 * that stops answering (frozen, or a peer that accepts and says nothing)
 * counts as lost after CF__RCONN_STALL seconds with replies awaited.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_REMOTE_CONN_H
#define CF_REMOTE_CONN_H

#include "internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

struct cf__rurl {
    char host[256];
    int port;
    int db;
    char user[128];
    char pass[256];
};

/* Parse redis://[user:password@]host[:port][/db] (`who` names the caller for
 * the error message).  Returns 0 or CF_EINVAL with cf_last_error() set. */
int cf__rurl_parse(const char *url, struct cf__rurl *u, const char *who);

struct cf__rconn {
    cf_loop_t *loop;
    const struct cf__rurl *url;
    redisAsyncContext *ac; /* NULL while down */
    int up;               /* connected (the connect callback said so) */
    int skip;             /* the broker takes CLIENT REPLY SKIP (probed on connect) */
    void (*on_up)(struct cf__rconn *c);
    void (*on_down)(struct cf__rconn *c, const char *why);
    void *data;
    char err[192];        /* the latest connection error */
    ev_timer stall;       /* every second while open: replies awaited and nothing read for
                             CF__RCONN_STALL seconds drop the connection (a frozen broker) */
    double last_rx;       /* loop time of the latest read, or of the open */
};

/* Seconds a connection may await a reply with nothing read before it is
 * dropped as dead (hiredis 0.14 has no reply timeouts; every blocking read
 * here blocks for 1 s at most, so a live broker answers far sooner). */
#define CF__RCONN_STALL 10.0

/* Start connecting; on_up or on_down follows.  0, or CF_ENOMEM. */
int cf__rconn_open(struct cf__rconn *c);
/* Drop the connection now: pending callbacks run with a NULL reply; on_down is not called. */
void cf__rconn_close(struct cf__rconn *c);
/* Send a command (binary-safe arguments).  0, or CF_ENOTCONN-like -ENOTCONN while down. */
int cf__rconn_cmd(struct cf__rconn *c, redisCallbackFn *cb, void *priv, int argc, const char **argv,
                  const size_t *lens);
/* The same with printf-like hiredis formatting (%s, %b, %d ...). */
int cf__rconn_cmdf(struct cf__rconn *c, redisCallbackFn *cb, void *priv, const char *fmt, ...);
/* Send a command whose reply nobody reads: preceded by CLIENT REPLY SKIP, so
 * the broker sends no reply and this side does not wake up for one, where the
 * broker allows it (else as cf__rconn_cmdf() without a callback).  Commands
 * on one connection still run in order; a later reply on it means this one
 * ran.  0, or -ENOTCONN while down, CF_ENOMEM. */
int cf__rconn_cmdf_noreply(struct cf__rconn *c, const char *fmt, ...);
/* The same with binary-safe arguments, as cf__rconn_cmd(). */
int cf__rconn_cmd_noreply(struct cf__rconn *c, int argc, const char **argv, const size_t *lens);

/* Open `a`, then `b` (on_up follows for each): NULL, or the error of the one that could not start. */
const char *cf__rconn_open_both(struct cf__rconn *a, struct cf__rconn *b);
/* "the broker refused WHAT: ERR" into why[cap]: the reason a refusal gives for going down. */
void cf__rconn_refusal(char *why, size_t cap, const char *what, const char *err);

/* Write what is queued now, not at the loop's next turn (for a command on
 * the critical path; it spares the loop watching for writability).  A write
 * error reports through on_down before this returns.  Called from one of
 * c's own reply callbacks it leaves the write to the write watcher. */
void cf__rconn_flush(struct cf__rconn *c);

/* Fields of a stream entry reply ([id, [k1, v1, k2, v2 ...]]): the value of `key`, or NULL. */
const redisReply *cf__rentry_field(const redisReply *entry, const char *key);

#endif /* CF_REMOTE_CONN_H */
