/*
 * remote_client.h - the remote executor's client: its task and pool
 * structures, shared by the API (remote.c) and the broker protocol
 * (remote_broker.c).  Not installed.  Loop thread only.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_REMOTE_CLIENT_H
#define CF_REMOTE_CLIENT_H

#include "remote_conn.h"

#include "cfutures/remote.h"
#include "outcome.h"

#define RP_GROUP "cfw"
#define RP_TTL "86400"

enum { RT_QUEUED = 1, RT_SENT, RT_DONE };

struct rtask {
    struct cf__list link; /* pool.queue while queued */
    struct rtask *hnext;  /* pool.tab chain while sent */
    cf_remote_pool_t *pool;
    cf_future_t *f; /* NULL once completed */
    uint64_t id;
    const char *fn, *inner, *item; /* registered names (live as long as the process) */
    uint8_t *data;
    size_t len;
    uint8_t state;
    uint8_t confirmed;   /* the XADD reply arrived (entry is valid) */
    uint8_t cancel_req;
    uint8_t via_rd;      /* its XADD went on rd, ahead of an XREAD (cf__rp_pump()) */
    unsigned replies;    /* replies still expected that point at this task */
    char entry[48];      /* stream entry id */
};

struct cf_remote_pool {
    struct cf_executor ex;
    cf_loop_t *loop;
    cf_remote_opts opts;
    char *qname;
    struct cf__rurl url;
    char cid[96];
    char *rkey, *ckey;
    struct cf__rconn cmd, rd;
    int ready;        /* both up and the connect sequence done */
    int reading;      /* an XREAD is outstanding on rd */
    unsigned rd_xadds; /* XADDs sent on rd whose replies have not come */
    int shut;
    int freeing;
    struct cf__exec_counters cnt;
    struct cf__list queue;
    size_t nqueued;
    struct rtask **tab;
    size_t tab_cap, nsent;
    uint64_t next_id;
    char last[48]; /* last result entry id read */
    ev_timer retry;   /* reconnect */
    double backoff;
    ev_timer dead;    /* broker_timeout after going down */
    int down;
    char why[192];    /* why the broker was lost last (the broker's refusal, a connection error) */
    uint64_t connects;
};

/* remote_broker.c: the protocol on the broker. */

/* Complete t's future (once) with outcome `o` (moved) or err/msg (msg malloc'd or NULL). */
void cf__rp_complete(struct rtask *t, struct cf__outcome *o, int err, char *msg);
/* The future's cancel operation: removes a local task, asks the broker or the worker for a sent one. */
int cf__rp_cancel(cf_future_t *f);
/* Send queued tasks while there is room on the broker (and keep the result read going). */
void cf__rp_pump(cf_remote_pool_t *pool);
/* Set up the two connections and start connecting (from cf_remote_pool_new()). */
void cf__rp_connect(cf_remote_pool_t *pool);
/* Stop the reconnect and broker-timeout timers (from cf_remote_pool_free()). */
void cf__rp_stop_timers(cf_remote_pool_t *pool);

#endif /* CF_REMOTE_CLIENT_H */
