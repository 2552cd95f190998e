/*
 * pp_pool.c - the process-pool executor, parent side: API, queue, dispatch
 * policy, completion.
 *
 * DESIGN
 *
 * Processes.  The application (loop thread) owns the pool.  At creation it
 * forks a fork server (pp_child.c), which forks one worker per slot on
 * request.  Nothing here uses threads or ev_child, so the pool works on any
 * loop and next to other code that reaps children.
 *
 * Files.
 *   pp_pool.c     this file: the public API, the queue, dispatch, the task
 *                 state machine, completion (through executor.c's helper)
 *   pp_channel.c  one worker's channel: buffered writes of TASK frames,
 *                 framed reads of its frames, the task and kill timers
 *   pp_stop.c     cancels, and the stop of a worker for the task it runs
 *   pp_server.c   the control protocol with the fork server (SPAWN,
 *                 SPAWNED + descriptors, EXITED) and the worker slot's
 *                 state machine: deaths, requeues, respawns
 *   pp_child.c    the fork server and the worker processes
 *   pp_pool.h     the parent side's structures; pp.h the control messages
 *
 * Every watcher is unreferenced (ev_unref after start, ev_ref before stop):
 * the pool never keeps ev_run() alive by itself; outstanding tasks do, through
 * cf__exec_accept()/cf__exec_complete(), as in the thread pool.
 *
 * Queues (loop thread only, no locks).
 *   pool.queue        tasks waiting for a worker (FIFO; re-queued tasks go first)
 *   worker.inflight   tasks sent to the worker, oldest first: up to `pipeline`,
 *                     and only about CF__PP_AHEAD_NS of work by the measured
 *                     task time; the head is RUNNING once the worker
 *                     acknowledged it; the tail may not be fully written yet
 *                     (pp_task.sent)
 *
 * A task's states (cf__pp_task_set() is the only place that changes one,
 * and asserts the transition):
 *
 *   QUEUED --send--> SENT --ACK--> RUNNING --RESULT--------------> DONE
 *     ^  \            | \ \           |  \--timeout--> TIMING_OUT --> DONE
 *     |   cancel      |  \ \          |  \--cancel---> CANCELLING --> DONE
 *     |    v          |   \ \         \--worker died-----------------> DONE
 *     |   DONE        |    \ cancel, gate already taken --> CANCELLING
 *     |               |  cancel, gate closed: SENT_CANCELLED --ACK--> SKIPPING
 *     +-worker died---+       \--worker died--> DONE      RESULT --> DONE
 *
 * The ACK that moves SENT to RUNNING is read lazily (pp_channel.c): a
 * task may end before the pool knows it started, and then goes through
 * RUNNING and DONE in one read.
 *
 * Cancelling a task sent ahead (SENT) closes its start gate (pp.h): if the
 * worker has not taken the gate yet, the future ends CANCELLED at once and
 * the worker skips the task; if it has, the task runs (or has just ended)
 * and is stopped like a running one (CF_EBUSY).  A 0 from cancel means the
 * task never runs.  A worker is stopped for a task (timeout, cancel) only
 * while it runs that very task, which the task's gate decides, not the
 * frames read so far (pp.h, pp_stop.c); it is then STOPPING and gets no
 * new task, takes no other gate, and the tasks sent ahead to it go back to
 * the front of the queue, for another worker, when it is gone.
 *
 * Dispatch.  Queued tasks go to ready workers breadth first (every idle
 * worker gets one before any gets a second); results are read in bursts and
 * dispatch runs once per burst (cf__pp_dispatch_due()).
 *
 * Invariants.
 *   - a task is in exactly one of: pool.queue, one worker's inflight, or done.
 *   - every future completes exactly once, through cf__pp_complete().
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "pp_pool.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct cf__future_ops pp_future_ops = {.cancel = cf__pp_cancel};
static const struct cf__executor_ops pp_executor_ops;

/* ------------------------------------------------------------------ task states */

static const char *const pt_names[] = {
    [PT_QUEUED] = "QUEUED",
    [PT_SENT] = "SENT",
    [PT_SENT_CANCELLED] = "SENT_CANCELLED",
    [PT_RUNNING] = "RUNNING",
    [PT_TIMING_OUT] = "TIMING_OUT",
    [PT_CANCELLING] = "CANCELLING",
    [PT_SKIPPING] = "SKIPPING",
    [PT_DONE] = "DONE",
};

#define B(s) (1u << (s))
static const unsigned pt_next[] = {
    [0] = B(PT_QUEUED),
    [PT_QUEUED] = B(PT_SENT) | B(PT_DONE),
    [PT_SENT] = B(PT_QUEUED) | B(PT_RUNNING) | B(PT_SENT_CANCELLED) | B(PT_CANCELLING) | B(PT_DONE),
    [PT_SENT_CANCELLED] = B(PT_SKIPPING) | B(PT_DONE),
    [PT_SKIPPING] = B(PT_DONE),
    [PT_RUNNING] = B(PT_TIMING_OUT) | B(PT_CANCELLING) | B(PT_DONE),
    [PT_TIMING_OUT] = B(PT_DONE),
    [PT_CANCELLING] = B(PT_DONE),
    [PT_DONE] = 0,
};
#undef B

const char *cf__pp_task_state_name(int st)
{
    return st > 0 && st <= PT_DONE ? pt_names[st] : "NONE";
}

void cf__pp_task_set(struct pp_task *t, int st)
{
    CF_ASSERT(t->state <= PT_DONE && (pt_next[t->state] & (1u << st)), "process pool: task state change not allowed");
#ifdef CF_PP_TRACE
    fprintf(stderr, "cfutures pp: task %llu %s -> %s\n", (unsigned long long)t->id, cf__pp_task_state_name(t->state),
            cf__pp_task_state_name(st));
#endif
    t->state = (uint8_t)st;
}

/* ------------------------------------------------------------------ watchers */

void cf__pp_io_start(cf_loop_t *loop, ev_io *w)
{
    ev_io_start(loop->ev, w);
    ev_unref(loop->ev);
}

void cf__pp_io_stop(cf_loop_t *loop, ev_io *w)
{
    if (ev_is_active(w)) {
        ev_ref(loop->ev);
        ev_io_stop(loop->ev, w);
    }
}

void cf__pp_timer_stop(cf_loop_t *loop, ev_timer *t)
{
    if (ev_is_active(t))
        ev_timer_stop(loop->ev, t);
}

/* ------------------------------------------------------------------ completion */

void cf__pp_task_free(struct pp_task *t)
{
    if (t->payload_owned)
        free(t->payload);
    free(t);
}

/* Complete the task's future (once) with outcome `o` (moved) or error err/msg. */
void cf__pp_complete(struct pp_task *t, struct cf__outcome *o, int err, char *msg)
{
    cf_process_pool_t *pool = t->pool;
    cf_future_t *f = t->f;

    if (!f) {
        if (o)
            cf__outcome_clear(o);
        free(msg);
        return;
    }
    t->f = NULL;
    if (o) {
        f->out = *o;
    } else {
        f->out.err = err;
        f->out.errmsg = msg;
    }
    cf__exec_complete(&pool->cnt, f, CF__COMPLETE_SCHEDULE);
    cf_future_unref(f); /* the pool's reference */
}

/* Fail every queued task (pool broken or freed). */
void cf__pp_fail_queue(cf_process_pool_t *pool, int err, const char *msg)
{
    struct cf__list *n;

    while ((n = cf__list_pop(&pool->queue))) {
        struct pp_task *t = cf__container_of(n, struct pp_task, link);
        pool->nqueued--;
        cf__pp_task_set(t, PT_DONE);
        cf__pp_complete(t, NULL, err, msg ? strdup(msg) : NULL);
        cf__pp_task_free(t);
    }
}

/* Break the pool: fail what is queued now, stop every worker (their tasks fail as they die). */
void cf__pp_break(cf_process_pool_t *pool, int err, char *msg)
{
    if (pool->broken) {
        free(msg);
        return;
    }
    pool->broken = 1;
    pool->broken_err = err;
    pool->broken_msg = msg;
    cf__pp_fail_queue(pool, err, msg);
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].ninflight)
            cf__pp_worker_signal(&pool->workers[i], SIGKILL);
}

/* ------------------------------------------------------------------ dispatch */

/* Send one queued task to `w`. */
static void pp_send_one(cf_process_pool_t *pool, struct pp_worker *w, uint64_t now)
{
    struct pp_task *t = cf__container_of(cf__list_pop(&pool->queue), struct pp_task, link);
    uint64_t waited = now > t->t_submit ? now - t->t_submit : 0;

    pool->nqueued--;
    pool->queue_ns_total += waited;
    if (waited > pool->queue_ns_max)
        pool->queue_ns_max = waited;
    t->t_submit = now; /* it cannot start before (cf__pp_worker_watch()) */
    cf__pp_task_set(t, PT_SENT);
    t->w = w;
    t->sent = 0;
    t->seq = w->seq++;
    atomic_store_explicit(&w->gate[t->seq % CF__PP_GATES], CF__GATE_OPEN, memory_order_release);
    cf__frame_hdr_encode(t->hdr, CF__FR_TASK, t->id, t->len + 8);
    memcpy(t->hdr + CF__FRAME_HDR, &t->fn, sizeof(t->fn));
    cf__list_push(&w->inflight, &t->link);
    if (w->ninflight++ == 0)
        cf__pp_worker_watch(w, now); /* the new head */
    w->used++;
}

static void pp_dispatch_at(cf_process_pool_t *pool, uint64_t now);

/*
 * Hand queued tasks to ready workers, breadth first: every idle worker gets a
 * task before any worker gets a second one in its pipeline, so that work
 * spreads over the workers instead of queueing behind one of them.
 */
void cf__pp_dispatch(cf_process_pool_t *pool)
{
    pp_dispatch_at(pool, 0);
}

/* The same; `now` is a clock reading just taken, or 0 (then read once, when the first task goes out). */
static void pp_dispatch_at(cf_process_pool_t *pool, uint64_t now)
{
    uint64_t touched = 0; /* workers to flush (the first 64; the rest are flushed each time) */
    size_t starting = 0;

    /*
     * How far ahead to send: up to `pipeline` tasks, but only about
     * CF__PP_AHEAD_NS of work by the measured task time (2 while nothing is
     * measured), so that short tasks are streamed and long ones are not
     * queued behind each other.
     */
    unsigned ahead = pool->opts.pipeline, first = ahead + 1;
    if (ahead > 2) {
        uint64_t want = pool->task_ns_avg ? CF__PP_AHEAD_NS / pool->task_ns_avg + 1 : 2;
        if (want < ahead)
            ahead = (unsigned)want;
    }
    if (ahead > CF__PP_GATES - 1)
        ahead = CF__PP_GATES - 1; /* a start gate per task in flight */
    for (int i = 0; i < pool->nworkers; i++) {
        const struct pp_worker *w = &pool->workers[i];
        starting += w->state == W_SPAWNING || w->state == W_STARTING;
        if (w->state == W_READY && w->ninflight < first)
            first = (unsigned)w->ninflight + 1; /* the shallowest pipeline */
    }
    for (unsigned depth = first; depth <= ahead && pool->nqueued; depth++) {
        /* A task sent ahead waits behind the one running: only do so when the
         * workers about to start could not take it first. */
        if (depth > 1 && pool->nqueued <= starting)
            break;
        for (int i = 0; i < pool->nworkers && pool->nqueued; i++) {
            struct pp_worker *w = &pool->workers[i];

            if (w->state != W_READY || w->ninflight >= depth ||
                (pool->opts.max_tasks_per_child && w->used >= pool->opts.max_tasks_per_child))
                continue;
            if (!now)
                now = cf_now_ns();
            pp_send_one(pool, w, now);
            if (i < 64)
                touched |= UINT64_C(1) << i;
            else
                cf__pp_worker_flush(w);
        }
    }
    for (int i = 0; i < pool->nworkers && i < 64; i++)
        if (touched & (UINT64_C(1) << i))
            cf__pp_worker_flush(&pool->workers[i]);
}

/* After reading results: hand out work once for the whole burst. */
void cf__pp_dispatch_due(cf_process_pool_t *pool)
{
    if (!pool->dispatch_due)
        return;
    pool->dispatch_due = 0;
    cf__pp_dispatch(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *x = &pool->workers[i];
        if (pool->shut && !pool->nqueued && !x->ninflight && x->fd >= 0 && x->state == W_READY)
            shutdown(x->fd, SHUT_WR); /* nothing left to do: let it exit */
    }
}

/* ------------------------------------------------------------------ public API */

void cf_process_pool_opts_init(cf_process_pool_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->max_workers = cf_cpu_count();
    o->task_timeout = -1;
    o->kill_grace = 1.0;
    o->pipeline = CF__PP_GATES - 1; /* as deep as the start gates allow: the 2 ms bound does the rest */
    o->on_crash = CF_CRASH_REPLACE;
    o->max_init_failures = 3;
    o->max_delivery_deaths = 3;
}

/*
 * Fork the fork server and watch its control socket: at creation, and again
 * if it died (cf__pp_server_restart()).  Returns 0 or a negated errno.
 */
int cf__pp_server_start(cf_process_pool_t *pool)
{
    const cf_process_pool_opts *opts = &pool->opts;
    struct cf__pp_config cfg;
    int sp[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return -errno;
    cfg.gates = pool->gates;
    cfg.rings = pool->rings;
    cfg.initializer = opts->initializer;
    cfg.finalizer = opts->finalizer;
    cfg.init_data = opts->init_data;
    cfg.max_tasks_per_child = opts->max_tasks_per_child;
    cfg.max_memory = opts->max_memory;
    cfg.parent = getpid();
    fflush(NULL); /* no buffered output may be duplicated by the children */
    pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(sp[0]);
        close(sp[1]);
        return err;
    }
    if (pid == 0) {
        close(sp[0]);
        cf__pp_server_main(sp[1], &cfg);
    }
    close(sp[1]);
    pool->server_pid = pid;
    pool->ctl = sp[0];
    pool->server_dead = 0;
    fcntl(pool->ctl, F_SETFL, fcntl(pool->ctl, F_GETFL) | O_NONBLOCK);
    ev_io_init(&pool->ctl_io, cf__pp_ctl_cb, pool->ctl, EV_READ);
    pool->ctl_io.data = pool;
    cf__pp_io_start(pool->loop, &pool->ctl_io);
    return 0;
}

/* 0, or CF_EINVAL naming the option that is out of range. */
static int pp_check_opts(const cf_process_pool_opts *o)
{
    const char *what = NULL;

    if (o->max_workers < 1 || o->max_workers > 1024)
        return cf__set_error(CF_EINVAL, "cf_process_pool_new: opts->max_workers must be between 1 and 1024 (got %d)",
                             o->max_workers);
    if (isnan(o->task_timeout))
        what = "opts->task_timeout is NaN (<= 0 means none)";
    else if (isnan(o->kill_grace) || o->kill_grace < 0)
        what = "opts->kill_grace must be a number >= 0";
    else if (o->pipeline < 1)
        what = "opts->pipeline must be >= 1";
    else if (o->on_crash != CF_CRASH_REPLACE && o->on_crash != CF_CRASH_BREAK)
        what = "opts->on_crash must be CF_CRASH_REPLACE or CF_CRASH_BREAK";
    else if (o->max_init_failures < 1)
        what = "opts->max_init_failures must be >= 1";
    else if (o->max_delivery_deaths < 1 || o->max_delivery_deaths > 255)
        return cf__set_error(CF_EINVAL,
                             "cf_process_pool_new: opts->max_delivery_deaths must be between 1 and 255 (got %u)",
                             o->max_delivery_deaths);
    return what ? cf__set_error(CF_EINVAL, "cf_process_pool_new: %s", what) : 0;
}

int cf_process_pool_new(cf_loop_t *loop, const cf_process_pool_opts *opts, cf_process_pool_t **out)
{
    cf_process_pool_opts defaults;
    cf_process_pool_t *pool;
    size_t gates_len;
    void *gates;
    int rc;

    if (!loop || !out)
        return CF__EINVAL(!loop ? "loop is NULL" : "out is NULL");
    if (!opts) {
        cf_process_pool_opts_init(&defaults);
        opts = &defaults;
    }
    if ((rc = pp_check_opts(opts)) != 0)
        return rc;
    pool = calloc(1, sizeof(*pool));
    if (!pool)
        return CF_ENOMEM;
    pool->workers = calloc((size_t)opts->max_workers, sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return CF_ENOMEM;
    }
    /* One shared mapping: the workers' frame rings, then their start gates (pp.h). */
    gates_len = (size_t)opts->max_workers * (sizeof(struct cf__pp_ring) + CF__PP_GATES);
    gates = mmap(NULL, gates_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (gates == MAP_FAILED) {
        free(pool->workers);
        free(pool);
        return CF_ENOMEM;
    }
    pool->rings = gates;
    pool->gates = (_Atomic uint8_t *)((uint8_t *)gates + (size_t)opts->max_workers * sizeof(struct cf__pp_ring));
    pool->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (pool->tick_fd < 0) {
        rc = -errno;
        munmap(gates, gates_len);
        free(pool->workers);
        free(pool);
        return rc;
    }
    pool->ex.ops = &pp_executor_ops;
    pool->ex.loop = loop;
    pool->loop = loop;
    pool->opts = *opts;
    pool->nworkers = opts->max_workers;
    pool->next_id = 1;
    cf__list_init(&pool->queue);
    ev_timer_init(&pool->respawn_timer, cf__pp_respawn_cb, 0., 0.);
    pool->respawn_timer.data = pool;
    if ((rc = cf__pp_server_start(pool)) != 0) {
        close(pool->tick_fd);
        munmap(gates, gates_len);
        free(pool->workers);
        free(pool);
        return rc;
    }
    cf__pp_tick_init(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        cf__pp_worker_init(&pool->workers[i], pool, i);
        pool->workers[i].gate = pool->gates + (size_t)i * CF__PP_GATES;
        pool->workers[i].ring = pool->rings + i;
        cf__pp_worker_spawn(&pool->workers[i]);
    }
    loop->live_executors++;
    *out = pool;
    return 0;
}

/* The submit time recorded for queue-time statistics.  The clock is read for
 * a task that finds the queue empty and then once every PP_STAMP_EVERY
 * submits; tasks in between share the last reading, so a queue time may be
 * overstated by the duration of that many submits (as in the thread pool). */
#define PP_STAMP_EVERY 16u
static uint64_t pp_submit_stamp(cf_process_pool_t *pool)
{
    if (pool->stamp_left == 0 || pool->nqueued == 0) {
        pool->stamp = cf_now_ns();
        pool->stamp_left = PP_STAMP_EVERY;
    }
    pool->stamp_left--;
    return pool->stamp;
}

/*
 * Queue a task.  `adopt` non-NULL: the payload is that malloc'd buffer, which
 * the pool takes on success; otherwise `len` bytes of `data` are copied into
 * the task's own allocation (one allocation per task).
 */
static int pp_submit(cf_process_pool_t *pool, cf_task_fn fn, const void *data, uint8_t *adopt, size_t len,
                     double timeout, cf_future_t **out)
{
    struct pp_task *t;
    cf_future_t *f;
    int fresh;

    if (pool->shut)
        return cf__set_error(CF_ESHUTDOWN, "process pool: shut down, it takes no new tasks");
    if (pool->broken)
        return cf__set_error(CF_EBROKEN, "%s", pool->broken_msg ? pool->broken_msg : "process pool broken");
    if ((uint64_t)len > CF__FRAME_MAX_LEN - 8)
        return cf__set_error(CF_E2BIG,
                             "process pool: a task argument of %zu bytes is over the channel's frame limit "
                             "(%llu bytes)",
                             len, (unsigned long long)(CF__FRAME_MAX_LEN - 8));
    if (!adopt && len > SIZE_MAX - sizeof(*t))
        return CF_ENOMEM;
    t = malloc(sizeof(*t) + (adopt ? 0 : len));
    if (!t)
        return CF_ENOMEM;
    memset(t, 0, sizeof(*t));
    if (adopt) {
        t->payload = adopt;
        t->payload_owned = 1;
    } else {
        t->payload = t->inl;
        if (len)
            memcpy(t->inl, data, len);
    }
    f = cf__future_alloc(pool->loop);
    if (!f) {
        free(t);
        return CF_ENOMEM;
    }
    cf__exec_accept(&pool->cnt, f, &pp_future_ops, t); /* the pool's reference, dropped in cf__pp_complete() */
    t->f = f;
    t->pool = pool;
    t->id = pool->next_id++;
    t->timeout = timeout < 0 ? pool->opts.task_timeout : timeout; /* <= 0: none */
    t->fn = fn;
    t->len = len;
    fresh = pool->stamp_left == 0 || pool->nqueued == 0; /* pp_submit_stamp() reads the clock */
    t->t_submit = pp_submit_stamp(pool);
    cf__pp_task_set(t, PT_QUEUED);
    cf__list_push(&pool->queue, &t->link);
    pool->nqueued++;
    *out = f;
    pp_dispatch_at(pool, fresh ? t->t_submit : 0); /* the clock need not be read again */
    return 0;
}

int cf_process_pool_submit(cf_process_pool_t *pool, cf_task_fn fn, const void *data, size_t len, double timeout,
                           cf_future_t **out)
{
    if (!pool || !fn || !out || (!data && len) || isnan(timeout))
        return CF__EINVAL(!pool          ? "pool is NULL"
                          : !fn          ? "fn is NULL"
                          : !out         ? "out is NULL"
                          : !data && len ? "data is NULL with len > 0"
                                         : "timeout is NaN");
    return pp_submit(pool, fn, data, NULL, len, timeout, out);
}

static int pp_all_exited(void *arg)
{
    cf_process_pool_t *pool = arg;

    if (pool->cnt.outstanding)
        return 0;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state != W_EMPTY)
            return 0;
    return 1;
}

int cf_process_pool_shutdown(cf_process_pool_t *pool, int flags)
{
    if (!pool || (flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL)))
        return CF__EINVAL(!pool ? "pool is NULL" : "flags has bits other than CF_SHUTDOWN_WAIT, _CANCEL and _KILL");
    pool->shut = 1;
    if (flags & (CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL))
        while (pool->nqueued) {
            struct pp_task *t = cf__container_of(pool->queue.next, struct pp_task, link);
            cf__pp_cancel(t->f);
        }
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        for (struct cf__list *n = w->inflight.next; n != &w->inflight;) {
            struct pp_task *t = cf__container_of(n, struct pp_task, link);
            n = n->next;
            if ((flags & CF_SHUTDOWN_KILL) && t->f)
                cf__pp_cancel(t->f);
            else if ((flags & CF_SHUTDOWN_CANCEL) && t->state == PT_SENT)
                cf__pp_cancel_sent(t); /* sent ahead, not started: it must not run either */
        }
        /* Idle workers: closing our write side ends them (EOF -> exit 0). */
        if (!pool->nqueued && w->fd >= 0 && w->ninflight == 0)
            shutdown(w->fd, SHUT_WR);
    }
    if (flags & CF_SHUTDOWN_WAIT) {
        int rc;
        cf_loop_hold(pool->loop); /* worker exits are reported on unreferenced watchers */
        rc = cf__loop_run_until(pool->loop, pp_all_exited, pool, -1);
        cf_loop_release(pool->loop);
        return rc;
    }
    return 0;
}

void cf_process_pool_free(cf_process_pool_t *pool)
{
    if (!pool)
        return;
    cf_process_pool_shutdown(pool, CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL);
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        struct cf__list *n;

        cf__pp_worker_signal(w, SIGKILL);
        while ((n = cf__list_pop(&w->inflight))) {
            struct pp_task *t = cf__container_of(n, struct pp_task, link);
            int running = t->state == PT_RUNNING || t->state == PT_TIMING_OUT || t->state == PT_CANCELLING;
            if (running)
                pool->nrunning--;
            cf__pp_task_set(t, PT_DONE);
            cf__pp_complete(t, NULL, CF_ECANCELED,
                            running ? cf__printf_alloc("process pool freed while the task was running") : NULL);
            cf__pp_task_free(t);
        }
        w->ninflight = 0;
        cf__pp_worker_close(w);
        free(w->init_msg);
        free(w->stop_why);
    }
    cf__pp_fail_queue(pool, CF_ECANCELED, NULL);
    if (ev_is_active(&pool->respawn_timer)) {
        ev_ref(pool->loop->ev);
        ev_timer_stop(pool->loop->ev, &pool->respawn_timer);
    }
    if (!pool->server_dead) {
        cf__pp_io_stop(pool->loop, &pool->ctl_io);
        close(pool->ctl); /* the fork server kills and reaps every worker, then exits */
        while (waitpid(pool->server_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    cf__pp_tick_fini(pool);
    pool->loop->live_executors--;
    free(pool->broken_msg);
    munmap(pool->rings, (size_t)pool->nworkers * (sizeof(struct cf__pp_ring) + CF__PP_GATES));
    free(pool->workers);
    free(pool->rbuf);
    free(pool);
}

int cf_process_pool_stats(cf_process_pool_t *pool, cf_pool_stats *out)
{
    int alive = 0;

    if (!pool || !out)
        return CF__EINVAL(!pool ? "pool is NULL" : "out is NULL");
    for (int i = 0; i < pool->nworkers; i++)
        alive += pool->workers[i].state == W_READY || pool->workers[i].state == W_STARTING;
    memset(out, 0, sizeof(*out));
    cf__exec_counters_get(&pool->cnt, out);
    out->queued = pool->nqueued;
    out->running = pool->nrunning;
    out->queue_ns_total = pool->queue_ns_total;
    out->queue_ns_max = pool->queue_ns_max;
    out->workers = alive;
    return 0;
}

int cf_process_pool_worker_info(cf_process_pool_t *pool, int index, cf_worker_info *out)
{
    if (!pool || !out || index < 0 || index >= pool->nworkers)
        return CF__EINVAL(!pool ? "pool is NULL" : !out ? "out is NULL" : "index is not a worker slot of the pool");
    out->pid = pool->workers[index].state >= W_STARTING ? pool->workers[index].pid : 0;
    out->tasks_done = pool->workers[index].tasks_done;
    out->restarts = pool->workers[index].restarts;
    out->start_failures = pool->workers[index].start_failures;
    return 0;
}

pid_t cf_process_pool_server_pid(const cf_process_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return pool->server_pid;
}

cf_executor_t *cf_process_pool_executor(cf_process_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return &pool->ex;
}

/* The executor interface: the flags say whether the buffer is handed over. */
static int pp_ex_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out)
{
    cf_process_pool_t *pool = (cf_process_pool_t *)ex;
    size_t len = (s->flags & CF__SUBMIT_BYTES) ? s->len : 0;
    int rc;

    if (s->flags & CF__SUBMIT_OWNED)
        return pp_submit(pool, s->fn, NULL, s->arg, len, -1, out);
    rc = pp_submit(pool, s->fn, s->arg, NULL, len, -1, out);
    if (rc == 0 && s->arg_free)
        s->arg_free(s->arg); /* copied: the caller's buffer is done with */
    return rc;
}

static int pp_ex_shutdown(cf_executor_t *ex, int flags)
{
    return cf_process_pool_shutdown((cf_process_pool_t *)ex, flags);
}

static int pp_ex_workers(const cf_executor_t *ex)
{
    return ((const cf_process_pool_t *)ex)->nworkers;
}

static const struct cf__executor_ops pp_executor_ops = {
    .kind = "process pool",
    .submit_task = pp_ex_submit,
    .shutdown = pp_ex_shutdown,
    .workers = pp_ex_workers,
    .shares_memory = 0,
};
