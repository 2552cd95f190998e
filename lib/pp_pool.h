/*
 * pp_pool.h - the process pool's parent side, shared by pp_pool.c (API,
 * queue, dispatch, completion), pp_channel.c (a worker's channel: buffered
 * writes, framed reads, timers) and pp_server.c (the fork server's control
 * protocol: spawns, descriptor passing, exits, worker deaths).  Loop thread
 * only; see the DESIGN comment in pp_pool.c.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_PP_POOL_H
#define CF_PP_POOL_H

#include "internal.h"

#include "frame.h"
#include "pp.h"

/* A task's states; every change goes through cf__pp_task_set() (pp_pool.c). */
enum pt_state {
    PT_QUEUED = 1,     /* in pool.queue */
    PT_SENT,           /* in a worker's inflight, not acknowledged */
    PT_SENT_CANCELLED, /* the same, but its future already ended CANCELLED: it must not run */
    PT_RUNNING,        /* acknowledged: the worker runs it */
    PT_TIMING_OUT,     /* running past its timeout: the worker is being stopped, unless the task had
                        * ended (pp_stop.c) */
    PT_CANCELLING,     /* running (or taken by the worker), cancelled: the worker is being stopped,
                        * unless the task had ended (pp_stop.c) */
    PT_SKIPPING,       /* SENT_CANCELLED, acknowledged: the worker skips it, its RESULT follows */
    PT_DONE,           /* out of every list; about to be freed */
};

/* A worker slot's states; every change goes through cf__pp_worker_set() (pp_server.c). */
enum w_state {
    W_EMPTY = 0, /* no process */
    W_SPAWNING,  /* SPAWN sent to the fork server */
    W_STARTING,  /* forked, running its initializer */
    W_READY,     /* said READY: takes tasks */
    W_FAILED,    /* ended before READY (initializer failed or process died): waiting for its exit */
    W_DYING,     /* ended after READY (channel closed): waiting for its exit */
    W_STOPPING,  /* READY, then told to stop (SIGTERM sent): takes no new task */
};

struct pp_worker;

struct pp_task {
    struct cf__list link; /* pool.queue or worker.inflight */
    cf_future_t *f;       /* NULL once the future completed (PT_SENT_CANCELLED, PT_DONE) */
    cf_process_pool_t *pool;
    struct pp_worker *w;
    uint64_t id;
    double timeout;
    cf_task_fn fn;
    uint8_t *payload;
    size_t len;
    uint64_t t_submit; /* when submitted; once acknowledged, when it started (the worker's stamp) */
    uint8_t state;
    uint8_t payload_owned;          /* payload is a malloc'd buffer (adopted), not inl */
    uint8_t acked;                  /* the worker acknowledged it (it runs, or skips it) */
    uint8_t deliveries_failed;      /* workers that died while this task was being delivered */
    uint8_t clock_restarted;        /* its timeout found it acknowledged but not started: counted afresh */
    uint8_t never_started;          /* a stop decided for it closed its gate before the worker took it */
    uint8_t hdr[CF__FRAME_HDR + 8]; /* frame header + fn pointer */
    size_t sent;                    /* bytes of the frame written */
    uint32_t seq;                   /* its place among the tasks sent to the worker's process (gates) */
    uint8_t inl[];                  /* the payload, when copied in at submit */
};

struct pp_worker {
    cf_process_pool_t *pool;
    int index;
    int state;
    pid_t pid;
    int fd;  /* socket: TASK frames to the worker */
    int rfd; /* pipe: frames from the worker */
    ev_io rio, wio;
    int wio_on;
    struct cf__frame_reader rd;
    struct cf__list inflight;
    size_t ninflight;
    int status;       /* wait status, once the fork server reported the exit */
    char *stop_why;   /* why the pool itself killed it (its channel failed), for the messages */
    int pool_stopped; /* the pool signalled it (timeout, cancel, channel failure): its death is not a task's fault */
    char *init_msg;
    ev_timer task_timer;
    ev_timer kill_timer;
    uint64_t tasks_done;
    uint64_t restarts;
    uint64_t start_failures;
    unsigned used;            /* tasks taken by the current process */
    uint32_t seq;             /* tasks sent to the current process */
    _Atomic uint8_t *gate;    /* its CF__PP_GATES start gates (pp.h) */
    struct cf__pp_ring *ring; /* its frame ring (pp.h) */
    uint64_t ring_head;       /* how far the pool read the ring */
    uint32_t rseq;            /* the number of the next frame to take from the current process */
    uint8_t ack_wake;         /* the head's ACK is overdue: ask to be woken for ACKs (pp.h) */
    uint64_t head_id;         /* the head of inflight last watched (cf__pp_worker_watch()) */
    uint64_t head_ns;         /* when it became the head */
};

struct cf_process_pool {
    struct cf_executor ex;
    cf_loop_t *loop;
    cf_process_pool_opts opts;
    pid_t server_pid;
    int ctl;
    ev_io ctl_io;
    struct pp_worker *workers;
    int nworkers;
    struct cf__list queue;
    size_t nqueued;
    uint64_t next_id;
    struct cf__exec_counters cnt; /* submitted ... outstanding (executor.c) */
    uint64_t queue_ns_total, queue_ns_max;
    uint64_t stamp;      /* last clock reading for submit times (pp_submit_stamp()) */
    unsigned stamp_left; /* submits that may still use it */
    size_t nrunning;
    unsigned init_failures; /* in a row */
    int shut;
    int broken;
    int broken_err;
    char *broken_msg;
    int server_dead;
    unsigned server_deaths;    /* in a row, without a worker getting ready in between */
    unsigned start_failures;   /* workers that could not be started for want of resources, in a row */
    unsigned start_failed_at;  /* start_failures when queued tasks were last failed for them */
    int start_err;             /* the last such failure (negated errno) */
    ev_timer respawn_timer;    /* retries empty slots after such a failure, with backoff */
    uint8_t *rbuf;             /* read buffer shared by the workers' channels (loop thread) */
    uint64_t task_ns_avg;      /* moving average of task run time (RESULT frames); 0 = none measured yet */
    int dispatch_due;          /* results were read: dispatch once the read burst is handled */
    _Atomic uint8_t *gates;    /* shared with the workers: nworkers * CF__PP_GATES */
    struct cf__pp_ring *rings; /* shared with the workers: one per slot, the gates follow them */
    int tick_fd;               /* the ACK tick: a timerfd (cf__pp_worker_watch()) */
    ev_io tick_io;
    int tick_on;
    ev_prepare poll;   /* the loop-side poll of the rings before the loop waits (pp_channel.c); unreferenced */
    uint64_t wait_avg; /* moving average of the loop's waits for a frame with tasks in flight, ns */
    uint64_t block_ns; /* when the loop went to wait for frames with tasks in flight; 0: it did not */
    int ncpu;          /* cf_cpu_count() when the pool was made */
};

/* The ACK tick: how long after a task became the head of its worker's
 * inflight the pool looks for its ACK if nothing else made it read the
 * ring, and asks for it then (pp_channel.c). */
#define CF__PP_ACK_LAZY_NS 1000000u
/* Work (in average task time) a worker may have sent ahead of the task it runs. */
#define CF__PP_AHEAD_NS 2000000u
#define CF__PP_RBUF 65536
/* The loop polls the rings this long at most before it waits, while its
 * recent waits for a frame were shorter on average (pp_channel.c). */
#define CF__PP_POLL_NS 30000u
/* ... and this long only, if no frame at all came meanwhile. */
#define CF__PP_POLL_QUIET_NS 5000u

/* pp_pool.c */
int cf__pp_server_start(cf_process_pool_t *pool);
void cf__pp_task_set(struct pp_task *t, int st);
const char *cf__pp_task_state_name(int st);
void cf__pp_task_free(struct pp_task *t);
void cf__pp_complete(struct pp_task *t, struct cf__outcome *o, int err, char *msg);
void cf__pp_fail_queue(cf_process_pool_t *pool, int err, const char *msg);
void cf__pp_break(cf_process_pool_t *pool, int err, char *msg);
void cf__pp_dispatch(cf_process_pool_t *pool);
void cf__pp_dispatch_due(cf_process_pool_t *pool);
void cf__pp_io_start(cf_loop_t *loop, ev_io *w);
void cf__pp_io_stop(cf_loop_t *loop, ev_io *w);
void cf__pp_timer_stop(cf_loop_t *loop, ev_timer *t);

/* pp_stop.c */
int cf__pp_cancel(cf_future_t *f);
int cf__pp_cancel_sent(struct pp_task *t);
int cf__pp_task_started(const struct pp_task *t);
void cf__pp_stop_task(struct pp_task *t);

/* pp_channel.c */
void cf__pp_worker_flush(struct pp_worker *w);
void cf__pp_worker_signal(struct pp_worker *w, int sig);
void cf__pp_worker_read(struct pp_worker *w);
void cf__pp_worker_watch(struct pp_worker *w, uint64_t now);
void cf__pp_worker_stop(struct pp_worker *w);
void cf__pp_worker_close(struct pp_worker *w);
void cf__pp_worker_open(struct pp_worker *w, int fd, int rfd);
void cf__pp_worker_init(struct pp_worker *w, cf_process_pool_t *pool, int index);
void cf__pp_tick_init(cf_process_pool_t *pool);
void cf__pp_tick_fini(cf_process_pool_t *pool);

/* pp_server.c */
void cf__pp_worker_set(struct pp_worker *w, int st);
const char *cf__pp_worker_state_name(int st);
void cf__pp_worker_spawn(struct pp_worker *w);
void cf__pp_worker_ended(struct pp_worker *w);
void cf__pp_worker_finalize(struct pp_worker *w);
void cf__pp_ctl_cb(struct ev_loop *ev, ev_io *io, int revents);
void cf__pp_respawn_cb(struct ev_loop *ev, ev_timer *t, int revents);

#endif /* CF_PP_POOL_H */
