/*
 * remote_worker.h - the remote executor's worker: its task and worker
 * structures, shared by the worker's life and broker side
 * (remote_worker.c) and a task's life (remote_wtask.c).  Not installed.
 * Loop thread only.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_REMOTE_WORKER_H
#define CF_REMOTE_WORKER_H

#include "remote_conn.h"

#include "cfutures/remote.h"
#include "outcome.h"

#define RW_GROUP "cfw"

struct wtask {
    struct cf__list link; /* w.running, w.posted or w.unsent */
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
    double claim_idle; /* seconds, from the task (field "a") or this worker's default */
    uint8_t *result; /* encoded outcome, once done */
    size_t rlen;
    uint64_t seq; /* post number, while in w.posted */
    uint64_t start_ns; /* handed to the process pool */
    int started;
    int ended; /* its process slot is given back (w.nrunning) */
};

#define RW_EXPIRY_SLOTS 64
struct cf__rw_expiry {
    uint64_t hash; /* of a result stream's key */
    double at;     /* loop time of its latest EXPIRE */
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
    struct cf__list posted;  /* result sent, not yet confirmed by a later reply on cmd */
    size_t nposted, posted_bytes;
    uint64_t post_seq;
    int confirming; /* a PING that confirms posted results is outstanding */
    int nrunning;
    int reading;
    int claiming;
    char claim_from[48]; /* where the next claim script call walks the pending entries from */
    int ready;
    int draining;
    int gave_up; /* a drain waited opts.broker_timeout for an absent broker: unsent results stay unposted */
    int done;
    uint64_t tasks_done;
    uint64_t task_ns; /* moving average of a task's time from hand-over to result */
    struct cf__rw_expiry expiry[RW_EXPIRY_SLOTS]; /* result streams EXPIREd lately (remote_wtask.c) */
    ev_timer tick, retry, claim;
    ev_timer confirm; /* 0.1 s after a result is posted: confirm what is still unconfirmed */
    ev_timer give_up; /* while draining without the broker: opts.broker_timeout */
    double backoff;
    char why[192]; /* why the broker was lost last (the broker's refusal, a connection error) */
};

/* remote_wtask.c: a task's life on this worker. */

/* Take one stream entry (from XREADGROUP: claimed 0, or a claim: 1): record the delivery, then run it. */
void cf__rw_take(cf_remote_worker_t *w, const redisReply *e, unsigned deliveries);
/* Post t's result, ack and delete its entry (or keep it in w->unsent while the broker is away). */
void cf__rw_post(struct wtask *t);
/* How many more tasks this worker may hold: prefetch per process, but one
 * ahead per process at most while tasks take RW_LONG_NS or more. */
int cf__rw_room(const cf_remote_worker_t *w);
/* Keep one XREADGROUP outstanding while this worker has room and is not draining. */
void cf__rw_fetch(cf_remote_worker_t *w);
/* Ask the broker to confirm the posted results (one PING behind them) unless one is on its way. */
void cf__rw_confirm(cf_remote_worker_t *w);
/* The broker went away: posted results not yet confirmed are posted again after the reconnect. */
void cf__rw_repost_all(cf_remote_worker_t *w);
/* Mark the worker done once a drain has nothing left (or gave up on the broker). */
void cf__rw_check_done(cf_remote_worker_t *w);
/* The process-pool future's callback (removed again by cf_remote_worker_free()). */
void cf__rw_task_done_cb(cf_future_t *f, int status, void *data);
void cf__rw_task_free(struct wtask *t);

/* remote_worker.c: the broker refused a command the worker cannot go on without
 * (`cmd` on the queue, its reply `err`): drop both connections, say why, retry with backoff. */
void cf__rw_refused(cf_remote_worker_t *w, const char *cmd, const char *err);
/* remote_worker.c: heartbeat at least every claim_idle/3 s from now on. */
void cf__rw_beat_period(cf_remote_worker_t *w, double claim_idle);

#endif /* CF_REMOTE_WORKER_H */
