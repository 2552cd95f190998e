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
    char entry[48];
    char *client;
    char *id;
    char *xkey; /* its cancel key, Q:x:C:ID (NULL: none) */
    char *fname;
    uint8_t *payload;
    size_t len;
    long long timeout_ms;
    unsigned maxdel;
    double claim_idle; /* seconds, from the task (field "a") or this worker's default */
    uint8_t *result; /* encoded outcome, once done */
    size_t rlen;
    uint64_t seq; /* post number, while in w.posted */
    uint64_t start_ns; /* started to run */
    int ended; /* its process slot is given back (w.nrunning) */
    int queued; /* a task process: in w.runq, not run yet */
    int claimed; /* taken from a worker that stopped heartbeating it: it has a history to delete */
    cf_any_fn fn;       /* a task process: the function to run */
    double run_timeout; /* a task process: seconds, < 0 none (the task's, capped by the worker's) */
    struct cf__list qlink; /* w.runq */
};

/*
 * What a task process tells its supervisor (remote_host.c), in memory shared
 * between them: the task it runs, with its deadline, and the entries it
 * holds, so that the supervisor can heartbeat them while the process is
 * busy, stop the process when the task times out or is cancelled, and post
 * the task's failure when the process dies.  Written by the task process
 * only, between two increments of `seq` (odd while it writes); read by the
 * supervisor, which retries when `seq` was odd or changed.  `drain` and
 * the ring of cancelled entries are written by the supervisor: a held entry
 * found there is not run (it ends CANCELLED).
 */
#define RW_HELD_MAX 8
struct cf__rw_slot {
    _Atomic uint32_t seq;
    _Atomic int drain;             /* supervisor -> process: drain now */
    _Atomic uint64_t tasks_done;   /* results posted by the process */
    int running;                   /* a task runs (the fields below) */
    uint64_t deadline_ns;          /* cf_now_ns() at which it times out, 0: none */
    double timeout;                /* its timeout in seconds */
    double claim_idle;             /* the shortest claim idle of the held entries */
    char entry[48], id[64], fname[128], client[256];
    unsigned nheld;                /* entries taken, the running one included */
    char held[RW_HELD_MAX][48];
    char hkey[RW_HELD_MAX][320];     /* their cancel keys (Q:x:C:ID) */
    _Atomic uint32_t ncancelled;     /* supervisor: entries cancelled so far (the ring's next is % RW_HELD_MAX) */
    unsigned nresume;                /* supervisor, before it starts a process: entries the one before held */
    char resume[RW_HELD_MAX][48];    /* and never ran, to be taken again at once */
    char cancelled[RW_HELD_MAX][48];
};

#define RW_EXPIRY_SLOTS 64
struct cf__rw_expiry {
    uint64_t hash; /* of a result stream's key */
    double at;     /* loop time of its latest EXPIRE */
};

struct cf__rw_host;

struct cf_remote_worker {
    cf_loop_t *loop;
    cf_remote_worker_opts opts;
    struct cf__rurl url;
    char *queue, *name, *tasks_id, *ident, *url_str;
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
    /* A supervisor (remote_host.c): its task processes, one per slot. */
    struct cf__rw_host *hosts;
    struct cf__rw_slot *slots; /* shared with the processes (mmap) */
    ev_timer watch;            /* timeouts and cancels of the running tasks, the processes' drain */
    uint64_t host_unposted;    /* results the drained processes could not post */
    /* A task process: the supervisor's slot, and tasks taken but not run yet. */
    struct cf__rw_slot *slot;
    struct cf__list runq;
    ev_idle run_w;
    int pel_read; /* the entries this consumer held before a restart: read once, first */
    double said_who; /* loop time of the latest SET of Q:w:NAME */
};

/* remote_wtask.c: a task's life on this worker. */

/* Take one stream entry (deliveries: 1 from XREADGROUP, the broker's count from a claim) and run it. */
void cf__rw_take(cf_remote_worker_t *w, const redisReply *e, unsigned deliveries);
/* Post t's result, ack and delete its entry (or keep it in w->unsent while the broker is away). */
void cf__rw_post(struct wtask *t);
/* How many more tasks a task process may hold: prefetch (RW_HELD_MAX at
 * most), but one ahead at most while tasks take RW_LONG_NS or more. */
int cf__rw_room(const cf_remote_worker_t *w);
/* Keep one XREADGROUP outstanding while this worker has room and is not draining. */
void cf__rw_fetch(cf_remote_worker_t *w);
/* Ask the broker to confirm the posted results (one PING behind them) unless one is on its way. */
void cf__rw_confirm(cf_remote_worker_t *w);
/* The broker went away: posted results not yet confirmed are posted again after the reconnect. */
void cf__rw_repost_all(cf_remote_worker_t *w);
/* Mark the worker done once a drain has nothing left (or gave up on the broker). */
void cf__rw_check_done(cf_remote_worker_t *w);
void cf__rw_task_free(struct wtask *t);

/* remote_wtask.c: t ends with err and a message (t is on w.running; posted like a result). */
void cf__rw_fail(struct wtask *t, int err, const char *fmt, ...) CF_PRINTF(3, 4);
/* remote_wtask.c: run the task process's next queued task (w.run_w). */
void cf__rw_run_cb(struct ev_loop *ev, ev_idle *iw, int revents);

/* remote_worker.c: a worker; a task process of a supervisor when slot is given (remote_host.c). */
int cf__rw_new(cf_loop_t *loop, const cf_remote_worker_opts *opts, struct cf__rw_slot *slot, cf_remote_worker_t **out);

/* remote_host.c: a supervisor's life: start its task processes, watch them, drain, free. */
int cf__rw_hosts_start(cf_remote_worker_t *w);
void cf__rw_hosts_drain(cf_remote_worker_t *w);
int cf__rw_hosts_done(const cf_remote_worker_t *w);
void cf__rw_hosts_free(cf_remote_worker_t *w);
/* remote_host.c: heartbeat the entries the task processes hold and read their cancel keys (the
 * supervisor's tick); returns the period the shortest claim idle among them asks for. */
double cf__rw_hosts_beat(cf_remote_worker_t *w);
/* remote_host.c: the number of tasks running in the processes and done by them. */
void cf__rw_hosts_stats(const cf_remote_worker_t *w, uint64_t *done, int *running);

/* remote_worker.c: the broker refused a command the worker cannot go on without
 * (`cmd` on the queue, its reply `err`): drop both connections, say why, retry with backoff. */
void cf__rw_refused(cf_remote_worker_t *w, const char *cmd, const char *err);
/* remote_worker.c: heartbeat at least every claim_idle/3 s from now on. */
void cf__rw_beat_period(cf_remote_worker_t *w, double claim_idle);

#endif /* CF_REMOTE_WORKER_H */
