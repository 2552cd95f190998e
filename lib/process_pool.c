/*
 * process_pool.c - the process-pool executor, parent side.
 *
 * DESIGN
 *
 * Processes.  The application (loop thread) owns the pool.  At creation it
 * forks a fork server (pp_child.c), which forks one worker per slot on
 * request.  Nothing here uses threads or ev_child, so the pool works on any
 * loop and next to other code that reaps children.
 *
 * Channels.
 *   ctl      SOCK_SEQPACKET to the fork server: SPAWN / SPAWNED (+2 fds) / EXITED
 *   worker   frames of frame.h, per worker a SOCK_STREAM socket for TASK frames
 *            (written with MSG_NOSIGNAL; shutdown(SHUT_WR) tells an idle
 *            worker to exit) and a pipe for the worker's frames (small writes
 *            share pipe pages instead of costing a socket buffer each);
 *            non-blocking here under an ev_io for reading the pipe (always on)
 *            and one for writing the socket (on while frames wait to be sent);
 *            blocking in the worker.
 * Every watcher is unreferenced (ev_unref after start, ev_ref before stop):
 * the pool never keeps ev_run() alive by itself; outstanding tasks do, through
 * cf__loop_task_begin()/end(), as in the thread pool.
 *
 * Queues (loop thread only, no locks).
 *   pool.queue        tasks waiting for a worker (FIFO; re-queued tasks go first)
 *   worker.inflight   tasks sent to the worker, oldest first: up to `pipeline`,
 *                     and only about CF__PP_AHEAD_NS of work by the measured
 *                     task time; the head is RUNNING once the worker
 *                     acknowledged it; the tail may not be fully written yet
 *                     (pp_task.sent)
 *
 * Life of a task.  submit -> queue -> sent (the frames of several tasks per
 * sendmsg()) -> ACK: running, the timeout timer starts -> RESULT: the outcome
 * is decoded into the future, which completes.  Results are read in 64 KiB
 * pieces and decoded in place (worker_read()); dispatch runs once per burst
 * of results (pp_dispatch_due()).
 *
 * Faults.  A worker's death is known from its channel (EOF) and from the fork
 * server's EXITED report, in either order; the channel is drained first so no
 * result already written is lost.  Then the task it was running (acknowledged,
 * no result) fails with CF_EWORKER and a message naming worker, pid, signal or
 * exit status and task; tasks sent but not acknowledged go back to the front
 * of the queue; the slot is respawned.  Timeout and cancel of a running task
 * send SIGTERM to the worker's process group and SIGKILL after the grace
 * period; the task then fails with CF_ETIMEDOUT or ends CANCELLED.
 * Initializer failures in a row (max_init_failures) break the pool.
 *
 * Invariants.
 *   - a task is in exactly one of: pool.queue, one worker's inflight, or done.
 *   - every future completes exactly once, through pp_complete().
 */
#include "internal.h"

#include "frame.h"
#include "pp.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

enum pt_state { PT_QUEUED = 1, PT_SENT, PT_RUNNING, PT_DONE };
enum pt_stop { STOP_NONE = 0, STOP_TIMEOUT, STOP_CANCEL };
enum w_state { W_EMPTY = 0, W_SPAWNING, W_STARTING, W_READY, W_DYING };

struct pp_worker;

struct pp_task {
    struct cf__list link; /* pool.queue or worker.inflight */
    cf_future_t *f;       /* NULL once the future completed (e.g. cancelled while sent) */
    cf_process_pool_t *pool;
    struct pp_worker *w;
    uint64_t id;
    double timeout;
    cf_task_fn fn;
    uint8_t *payload;
    size_t len;
    uint64_t t_submit;
    uint8_t state;
    uint8_t stop;
    uint8_t hdr[CF__FRAME_HDR + 8]; /* frame header + fn pointer */
    size_t sent;                    /* bytes of the frame written */
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
    int eof;
    int exited;
    int status;
    int init_failed;
    char *init_msg;
    ev_timer task_timer;
    ev_timer kill_timer;
    uint64_t tasks_done;
    uint64_t restarts;
    unsigned used; /* tasks taken by the current process */
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
    size_t outstanding;
    uint64_t submitted, completed, failed, cancelled;
    uint64_t queue_ns_total, queue_ns_max;
    size_t nrunning;
    unsigned init_failures; /* in a row */
    int shut;
    int broken;
    int broken_err;
    char *broken_msg;
    int server_dead;
    uint8_t *rbuf; /* read buffer shared by the workers' channels (loop thread) */
    uint64_t task_ns_avg; /* moving average of ACK -> RESULT time; 0 = none measured yet */
    int dispatch_due;     /* results were read: dispatch once the read burst is handled */
};

/* Work (in average task time) a worker may have sent ahead of the task it runs. */
#define CF__PP_AHEAD_NS 2000000u

#define CF__PP_RBUF 65536

static int pp_cancel(cf_future_t *f);
static const struct cf__future_ops pp_future_ops = {.cancel = pp_cancel};
static const struct cf__executor_ops pp_executor_ops;

static void pp_dispatch(cf_process_pool_t *pool);
static void pp_dispatch_due(cf_process_pool_t *pool);
static void worker_spawn(struct pp_worker *w);

/* ------------------------------------------------------------------ watchers */

static void io_start(cf_loop_t *loop, ev_io *w)
{
    ev_io_start(loop->ev, w);
    ev_unref(loop->ev);
}

static void io_stop(cf_loop_t *loop, ev_io *w)
{
    if (ev_is_active(w)) {
        ev_ref(loop->ev);
        ev_io_stop(loop->ev, w);
    }
}

static void timer_stop(cf_loop_t *loop, ev_timer *t)
{
    if (ev_is_active(t))
        ev_timer_stop(loop->ev, t);
}

/* ------------------------------------------------------------------ completion */

static void pp_task_free(struct pp_task *t)
{
    if (t->payload != t->inl)
        free(t->payload);
    free(t);
}

/* Complete the task's future (once) with outcome `o` (moved) or error err/msg. */
static void pp_complete(struct pp_task *t, struct cf__outcome *o, int err, char *msg)
{
    cf_process_pool_t *pool = t->pool;
    cf_future_t *f = t->f;
    cf_future_state st;

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
    st = f->out.err == 0 ? CF_FUTURE_FINISHED
         : f->out.err == CF_ECANCELED ? CF_FUTURE_CANCELLED
                                      : CF_FUTURE_FAILED;
    if (st == CF_FUTURE_FINISHED)
        pool->completed++;
    else if (st == CF_FUTURE_CANCELLED)
        pool->cancelled++;
    else
        pool->failed++;
    f->owner = NULL;
    cf__future_settle(f, st);
    pool->outstanding--;
    cf__loop_task_end(pool->loop);
    cf_future_unref(f); /* the pool's reference */
}

/* Fail every queued task (pool broken or freed). */
static void pp_fail_queue(cf_process_pool_t *pool, int err, const char *msg)
{
    struct cf__list *n;

    while ((n = cf__list_pop(&pool->queue))) {
        struct pp_task *t = cf__container_of(n, struct pp_task, link);
        pool->nqueued--;
        t->state = PT_DONE;
        pp_complete(t, NULL, err, msg ? strdup(msg) : NULL);
        pp_task_free(t);
    }
}

/* Break the pool: fail what is queued now, stop every worker (their tasks fail as they die). */
static void pp_break(cf_process_pool_t *pool, int err, char *msg)
{
    if (pool->broken) {
        free(msg);
        return;
    }
    pool->broken = 1;
    pool->broken_err = err;
    pool->broken_msg = msg;
    pp_fail_queue(pool, err, msg);
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].pid > 0 && pool->workers[i].ninflight)
            kill(-pool->workers[i].pid, SIGKILL);
}

/* ------------------------------------------------------------------ sending */

static void worker_flush(struct pp_worker *w);

static void worker_wio_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    (void)ev;
    (void)revents;
    worker_flush(io->data);
}

/*
 * Write as much of the unsent tail of inflight as the socket takes: the
 * frames of up to CF__PP_IOV / 2 tasks go out in one sendmsg().
 */
#define CF__PP_IOV 64
static void worker_flush(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;
    struct cf__list *n = w->inflight.next;

    while (n != &w->inflight) {
        struct iovec iov[CF__PP_IOV];
        struct msghdr msg = {.msg_iov = iov};
        size_t k = 0;

        /* Gather: skip what was sent, then header + payload of each task. */
        for (struct cf__list *m = n; m != &w->inflight && k + 2 <= CF__PP_IOV; m = m->next) {
            struct pp_task *t = cf__container_of(m, struct pp_task, link);
            size_t total = sizeof(t->hdr) + t->len;

            if (t->sent >= total)
                continue;
            if (t->sent < sizeof(t->hdr)) {
                iov[k++] = (struct iovec){t->hdr + t->sent, sizeof(t->hdr) - t->sent};
                if (t->len)
                    iov[k++] = (struct iovec){t->payload, t->len};
            } else {
                iov[k++] = (struct iovec){t->payload + (t->sent - sizeof(t->hdr)), total - t->sent};
            }
        }
        if (k == 0)
            break;
        msg.msg_iovlen = k;
        ssize_t r = sendmsg(w->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!w->wio_on) {
                    io_start(loop, &w->wio);
                    w->wio_on = 1;
                }
                return;
            }
            return; /* EPIPE/ECONNRESET: the read side sees the death */
        }
        /* Credit the bytes written to the tasks, in order. */
        size_t left = (size_t)r;
        for (; n != &w->inflight; n = n->next) {
            struct pp_task *t = cf__container_of(n, struct pp_task, link);
            size_t total = sizeof(t->hdr) + t->len, take = total - t->sent;

            if (take > left) {
                t->sent += left;
                break;
            }
            t->sent = total;
            left -= take;
        }
    }
    if (w->wio_on) {
        io_stop(loop, &w->wio);
        w->wio_on = 0;
    }
}

/* Send one queued task to `w`. */
static void pp_send_one(cf_process_pool_t *pool, struct pp_worker *w, uint64_t now)
{
    struct pp_task *t = cf__container_of(cf__list_pop(&pool->queue), struct pp_task, link);
    uint64_t waited = now > t->t_submit ? now - t->t_submit : 0;

    pool->nqueued--;
    pool->queue_ns_total += waited;
    if (waited > pool->queue_ns_max)
        pool->queue_ns_max = waited;
    t->state = PT_SENT;
    t->w = w;
    t->sent = 0;
    cf__frame_hdr_encode(t->hdr, CF__FR_TASK, t->id, t->len + 8);
    memcpy(t->hdr + CF__FRAME_HDR, &t->fn, sizeof(t->fn));
    cf__list_push(&w->inflight, &t->link);
    w->ninflight++;
    w->used++;
}

/*
 * Hand queued tasks to ready workers, breadth first: every idle worker gets a
 * task before any worker gets a second one in its pipeline, so that work
 * spreads over the workers instead of queueing behind one of them.
 */
static void pp_dispatch(cf_process_pool_t *pool)
{
    uint64_t touched = 0; /* workers to flush (the first 64; the rest are flushed each time) */
    uint64_t now = 0;     /* read once, when the first task goes out */
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
                worker_flush(w);
        }
    }
    for (int i = 0; i < pool->nworkers && i < 64; i++)
        if (touched & (UINT64_C(1) << i))
            worker_flush(&pool->workers[i]);
}

/* ------------------------------------------------------------------ worker deaths */

static void describe_status(int status, char *buf, size_t n)
{
    if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (SIG%s)%s", WTERMSIG(status), sigabbrev_np(WTERMSIG(status))
                 ? sigabbrev_np(WTERMSIG(status)) : "?", WCOREDUMP(status) ? ", core dumped" : "");
    else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
}

static struct pp_worker *worker_by_pid(cf_process_pool_t *pool, pid_t pid)
{
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].pid == pid && pool->workers[i].state != W_EMPTY)
            return &pool->workers[i];
    return NULL;
}

static void worker_close(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;

    io_stop(loop, &w->rio);
    if (w->wio_on)
        io_stop(loop, &w->wio);
    w->wio_on = 0;
    timer_stop(loop, &w->task_timer);
    timer_stop(loop, &w->kill_timer);
    if (w->fd >= 0)
        close(w->fd);
    if (w->rfd >= 0)
        close(w->rfd);
    w->fd = w->rfd = -1;
    cf__frame_reader_reset(&w->rd);
}

static void worker_read(struct pp_worker *w);

/* Both the EOF and the exit status are in: account for the worker and replace it. */
static void worker_finalize(struct pp_worker *w)
{
    cf_process_pool_t *pool = w->pool;
    struct cf__list requeue;
    struct cf__list *n;
    char how[96];
    int crashed = 0;

    w->state = W_DYING;
    worker_read(w); /* drain what the worker wrote before it died */
    worker_close(w);
    describe_status(w->status, how, sizeof(how));
    cf__list_init(&requeue);
    while ((n = cf__list_pop(&w->inflight))) {
        struct pp_task *t = cf__container_of(n, struct pp_task, link);

        w->ninflight--;
        if (t->state == PT_RUNNING) {
            pool->nrunning--;
            t->state = PT_DONE;
            if (pool->broken)
                pp_complete(t, NULL, pool->broken_err, pool->broken_msg ? strdup(pool->broken_msg) : NULL);
            else if (t->stop == STOP_TIMEOUT)
                pp_complete(t, NULL, CF_ETIMEDOUT,
                            cf__printf_alloc("task %llu timed out after %.3f s; worker %d (pid %d) was stopped (%s)",
                                      (unsigned long long)t->id, t->timeout, w->index, (int)w->pid, how));
            else if (t->stop == STOP_CANCEL)
                pp_complete(t, NULL, CF_ECANCELED,
                            cf__printf_alloc("task %llu cancelled while running; worker %d (pid %d) was stopped (%s)",
                                      (unsigned long long)t->id, w->index, (int)w->pid, how));
            else {
                crashed = 1;
                pp_complete(t, NULL, CF_EWORKER,
                            cf__printf_alloc("worker %d (pid %d) %s while running task %llu", w->index, (int)w->pid,
                                      how, (unsigned long long)t->id));
            }
            pp_task_free(t);
        } else if (!t->f) {
            pp_task_free(t); /* cancelled while in the pipe: nothing to do */
        } else {
            t->state = PT_QUEUED;
            t->w = NULL;
            cf__list_push(&requeue, &t->link);
            pool->nqueued++;
        }
    }
    /* Unstarted tasks go back to the front of the queue, in their order. */
    if (!cf__list_empty(&requeue)) {
        struct cf__list *first = requeue.next, *last = requeue.prev;
        last->next = pool->queue.next;
        pool->queue.next->prev = last;
        pool->queue.next = first;
        first->prev = &pool->queue;
    }

    if (w->init_failed) {
        pool->init_failures++;
        if (pool->init_failures >= pool->opts.max_init_failures)
            pp_break(pool, CF_EBROKEN,
                     cf__printf_alloc("process pool broken: worker initializer failed %u times in a row; last: %s",
                               pool->init_failures, w->init_msg ? w->init_msg : how));
    }
    if (crashed && pool->opts.on_crash == CF_CRASH_BREAK)
        pp_break(pool, CF_EBROKEN,
                 cf__printf_alloc("process pool broken: worker %d (pid %d) %s", w->index, (int)w->pid, how));
    free(w->init_msg);
    w->init_msg = NULL;
    w->init_failed = 0;
    w->state = W_EMPTY;
    w->pid = 0;
    w->eof = w->exited = 0;
    w->used = 0;
    if (!pool->broken && !pool->server_dead && (!pool->shut || pool->nqueued)) {
        w->restarts++;
        worker_spawn(w);
    }
    if (pool->broken)
        pp_fail_queue(pool, pool->broken_err, pool->broken_msg);
    pool->dispatch_due = 1;
    pp_dispatch_due(pool);
}

/* Stop a worker: SIGTERM to its process group now, SIGKILL after the grace period. */
static void worker_stop(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;

    if (w->pid <= 0)
        return;
    kill(-w->pid, SIGTERM);
    if (!ev_is_active(&w->kill_timer)) {
        ev_timer_set(&w->kill_timer, w->pool->opts.kill_grace, 0.);
        ev_timer_start(loop->ev, &w->kill_timer);
    }
}

static void worker_kill_timer_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    struct pp_worker *w = t->data;

    (void)ev;
    (void)revents;
    if (w->pid > 0)
        kill(-w->pid, SIGKILL);
}

static void worker_task_timer_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    struct pp_worker *w = t->data;
    struct cf__list *n = w->inflight.next;

    (void)ev;
    (void)revents;
    if (n != &w->inflight) {
        struct pp_task *head = cf__container_of(n, struct pp_task, link);
        if (head->state == PT_RUNNING && head->stop == STOP_NONE) {
            head->stop = STOP_TIMEOUT;
            worker_stop(w);
        }
    }
}

/* ------------------------------------------------------------------ reading */

/* Decode an outcome payload: `owned` (malloc'd, taken) or `data` (copied from). */
static int frame_outcome(const struct cf__frame_hdr *h, const uint8_t *data, uint8_t *owned, struct cf__outcome *o)
{
    return owned ? cf__outcome_decode(owned, (size_t)h->len, o) : cf__outcome_decode_copy(data, (size_t)h->len, o);
}

/*
 * One frame from worker `w`: its payload is `data` (h->len bytes), which is
 * `owned` (malloc'd, and then this function frees or keeps it) or else a view
 * into the read buffer.  `now` is when the read that brought it returned.
 */
static void worker_frame(struct pp_worker *w, const struct cf__frame_hdr *h, const uint8_t *data, uint8_t *owned,
                         uint64_t now)
{
    cf_process_pool_t *pool = w->pool;
    struct cf__list *n = w->inflight.next;
    struct pp_task *head = n != &w->inflight ? cf__container_of(n, struct pp_task, link) : NULL;

    switch (h->type) {
    case CF__FR_READY:
        free(owned);
        if (w->state == W_STARTING) {
            w->state = W_READY;
            pool->init_failures = 0;
            pp_dispatch(pool);
            if (pool->shut && !pool->nqueued && !w->ninflight)
                shutdown(w->fd, SHUT_WR); /* nothing left to do: let it exit */
        }
        return;
    case CF__FR_INIT_FAIL: {
        struct cf__outcome o;
        w->init_failed = 1;
        if (frame_outcome(h, data, owned, &o) == 0) {
            free(w->init_msg);
            w->init_msg = o.errmsg;
            o.errmsg = NULL;
            cf__outcome_clear(&o);
        }
        return;
    }
    case CF__FR_ACK:
        free(owned);
        if (head && head->id == h->id && head->state == PT_SENT) {
            head->state = PT_RUNNING;
            head->t_submit = now; /* from here on: when it started */
            pool->nrunning++;
            if (head->f)
                cf__future_set_state(head->f, CF_FUTURE_RUNNING);
            if (head->timeout >= 0) {
                ev_timer_set(&w->task_timer, head->timeout, 0.);
                ev_timer_start(pool->loop->ev, &w->task_timer);
            }
            if (head->stop == STOP_CANCEL)
                worker_stop(w);
            return;
        }
        break;
    case CF__FR_RESULT:
        if (head && head->id == h->id && head->state == PT_RUNNING) {
            struct cf__outcome o;
            int rc;

            timer_stop(pool->loop, &w->task_timer);
            uint64_t ran = now - head->t_submit;
            pool->task_ns_avg = pool->task_ns_avg ? pool->task_ns_avg - pool->task_ns_avg / 8 + ran / 8 : ran + 1;
            cf__list_remove(&head->link);
            w->ninflight--;
            pool->nrunning--;
            head->state = PT_DONE;
            w->tasks_done++;
            if (head->stop != STOP_NONE) { /* being killed anyway; the result came first */
                free(owned);
                pp_complete(head, NULL, head->stop == STOP_TIMEOUT ? CF_ETIMEDOUT : CF_ECANCELED, NULL);
            } else {
                rc = frame_outcome(h, data, owned, &o);
                if (rc)
                    pp_complete(head, NULL, rc,
                                cf__printf_alloc("malformed result for task %llu from worker %d (pid %d)",
                                          (unsigned long long)head->id, w->index, (int)w->pid));
                else
                    pp_complete(head, &o, 0, NULL);
            }
            pp_task_free(head);
            pool->dispatch_due = 1; /* after the rest of the burst: one write per worker */
            return;
        }
        break;
    default:
        break;
    }
    /* Anything else is a protocol violation: stop the worker. */
    free(owned);
    kill(-w->pid, SIGKILL);
}

/*
 * Read what the worker wrote, in pieces of up to CF__PP_RBUF bytes, and hand
 * each complete frame to worker_frame(): a burst of results costs one read().
 * Frames that lie whole in the buffer are handled in place; the incremental
 * reader (w->rd) keeps a frame split across reads, and the rest of a large
 * payload is read straight into its own buffer.
 */
static void worker_read(struct pp_worker *w)
{
    cf_process_pool_t *pool = w->pool;

    if (w->rfd < 0)
        return;
    if (!pool->rbuf && !(pool->rbuf = malloc(CF__PP_RBUF)))
        return; /* retried on the next readiness */
    for (;;) {
        uint8_t *where, *buf = pool->rbuf;
        size_t want, cap = CF__PP_RBUF;
        int direct = 0;

        cf__frame_reader_want(&w->rd, &where, &want);
        if (!cf__frame_reader_idle(&w->rd) && want >= CF__PP_RBUF) {
            buf = where; /* the rest of a large payload */
            cap = want;
            direct = 1;
        }
        ssize_t r = read(w->rfd, buf, cap);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            goto eof; /* ECONNRESET: treat as EOF */
        }
        if (r == 0)
            goto eof;
        uint64_t now = cf_now_ns();
        for (size_t off = 0; off < (size_t)r;) {
            struct cf__frame_hdr h;
            uint8_t *payload;
            int rc;

            if (!direct && cf__frame_reader_idle(&w->rd) && (size_t)r - off >= CF__FRAME_HDR) {
                if (cf__frame_hdr_decode(buf + off, &h)) {
                    kill(-w->pid, SIGKILL); /* malformed stream: the worker is of no more use */
                    goto eof;
                }
                if ((size_t)r - off - CF__FRAME_HDR >= h.len) { /* whole: handle it in place */
                    off += CF__FRAME_HDR + (size_t)h.len;
                    worker_frame(w, &h, buf + off - (size_t)h.len, NULL, now);
                    if (w->rfd < 0)
                        return;
                    continue;
                }
            }
            if (direct) {
                want = (size_t)r;
            } else {
                cf__frame_reader_want(&w->rd, &where, &want);
                if (want > (size_t)r - off)
                    want = (size_t)r - off;
                memcpy(where, buf + off, want);
            }
            off += want;
            rc = cf__frame_reader_got(&w->rd, want, &h, &payload);
            if (rc < 0) {
                kill(-w->pid, SIGKILL); /* malformed stream: the worker is of no more use */
                goto eof;
            }
            if (rc == 1) {
                worker_frame(w, &h, payload, payload, now);
                if (w->rfd < 0)
                    return;
            }
        }
        if ((size_t)r < cap)
            break; /* drained: the next readiness brings more */
    }
    return;
eof:
    if (!w->eof) {
        w->eof = 1;
        w->state = W_DYING;
        io_stop(w->pool->loop, &w->rio);
        if (w->pid > 0)
            kill(-w->pid, SIGKILL); /* make sure it is gone: the exit report follows */
    }
}

/* After reading results: hand out work once for the whole burst. */
static void pp_dispatch_due(cf_process_pool_t *pool)
{
    if (!pool->dispatch_due)
        return;
    pool->dispatch_due = 0;
    pp_dispatch(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *x = &pool->workers[i];
        if (pool->shut && !pool->nqueued && !x->ninflight && x->fd >= 0 && x->state == W_READY)
            shutdown(x->fd, SHUT_WR); /* nothing left to do: let it exit */
    }
}

static void worker_rio_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    struct pp_worker *w = io->data;

    (void)ev;
    (void)revents;
    worker_read(w);
    pp_dispatch_due(w->pool);
    if (w->eof && w->exited && w->state != W_EMPTY)
        worker_finalize(w);
}

/* ------------------------------------------------------------------ fork server */

static void worker_spawn(struct pp_worker *w)
{
    struct cf__pp_ctl m = {.type = CF__CTL_SPAWN, .index = w->index};

    w->state = W_SPAWNING;
    if (send(w->pool->ctl, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
        w->state = W_EMPTY; /* the server is gone: the ctl watcher sees it */
}

static void pp_server_gone(cf_process_pool_t *pool)
{
    if (pool->server_dead)
        return;
    pool->server_dead = 1;
    io_stop(pool->loop, &pool->ctl_io);
    /* Workers die with the fork server (PR_SET_PDEATHSIG); fail what they held. */
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        if (w->state == W_EMPTY)
            continue;
        if (w->state == W_SPAWNING) {
            w->state = W_EMPTY;
            continue;
        }
        if (w->pid > 0)
            kill(-w->pid, SIGKILL);
        w->eof = 1;
        w->exited = 1;
        w->status = SIGKILL;
        worker_finalize(w);
    }
    if (!pool->shut)
        pp_break(pool, CF_EBROKEN, cf__printf_alloc("process pool broken: its fork server (pid %d) died", (int)pool->server_pid));
    else
        pp_fail_queue(pool, CF_EBROKEN, "process pool's fork server died");
}

static void ctl_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    cf_process_pool_t *pool = io->data;

    (void)ev;
    (void)revents;
    for (;;) {
        struct cf__pp_ctl m;
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(2 * sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
        int fds[2] = {-1, -1}, fd, rfd;
        ssize_t r = recvmsg(pool->ctl, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            pp_server_gone(pool);
            return;
        }
        if (r == 0) {
            pp_server_gone(pool);
            return;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                memcpy(fds, CMSG_DATA(c), (k < 2 ? k : 2) * sizeof(int));
            }
        fd = fds[0];   /* tasks go down this socket */
        rfd = fds[1];  /* frames come up this pipe */
        if (r != (ssize_t)sizeof(m) || m.type != CF__CTL_SPAWNED) {
            if (fd >= 0)
                close(fd);
            if (rfd >= 0)
                close(rfd);
            if (r != (ssize_t)sizeof(m))
                continue;
        }
        if (m.type == CF__CTL_SPAWNED && m.index >= 0 && m.index < pool->nworkers) {
            struct pp_worker *w = &pool->workers[m.index];
            if (w->state != W_SPAWNING || m.pid <= 0 || fd < 0 || rfd < 0) {
                if (fd >= 0)
                    close(fd);
                if (rfd >= 0)
                    close(rfd);
                if (w->state == W_SPAWNING) {
                    w->state = W_EMPTY;
                    pp_break(pool, m.pid < 0 ? m.pid : CF_EBROKEN,
                             cf__printf_alloc("process pool broken: cannot start worker %d: %s", m.index,
                                       cf_strerror(m.pid < 0 ? m.pid : CF_EBROKEN)));
                }
                continue;
            }
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
            w->fd = fd;
            w->rfd = rfd;
            w->pid = m.pid;
            w->state = W_STARTING;
            ev_io_init(&w->rio, worker_rio_cb, rfd, EV_READ);
            w->rio.data = w;
            ev_io_init(&w->wio, worker_wio_cb, fd, EV_WRITE);
            w->wio.data = w;
            io_start(pool->loop, &w->rio);
            if (pool->shut && !pool->nqueued)
                shutdown(fd, SHUT_WR); /* nothing to do: let it exit */
        } else {
            if (m.type == CF__CTL_EXITED) {
                struct pp_worker *w = worker_by_pid(pool, m.pid);
                if (w) {
                    w->exited = 1;
                    w->status = m.status;
                    worker_read(w);
                    if (!w->eof) { /* the process is gone: its end is closed, EOF is due */
                        w->eof = 1;
                        io_stop(pool->loop, &w->rio);
                    }
                    worker_finalize(w);
                }
            }
        }
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
    o->pipeline = 32;
    o->on_crash = CF_CRASH_REPLACE;
    o->max_init_failures = 3;
}

int cf_process_pool_new(cf_loop_t *loop, const cf_process_pool_opts *opts, cf_process_pool_t **out)
{
    cf_process_pool_opts defaults;
    struct cf__pp_config cfg;
    cf_process_pool_t *pool;
    int sp[2];
    pid_t pid;

    if (!loop || !out)
        return CF_EINVAL;
    if (!opts) {
        cf_process_pool_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->max_workers < 1 || opts->max_workers > 1024 || isnan(opts->task_timeout) ||
        isnan(opts->kill_grace) || opts->kill_grace < 0 || opts->pipeline < 1 ||
        (opts->on_crash != CF_CRASH_REPLACE && opts->on_crash != CF_CRASH_BREAK) || opts->max_init_failures < 1)
        return CF_EINVAL;
    pool = calloc(1, sizeof(*pool));
    if (!pool)
        return CF_ENOMEM;
    pool->workers = calloc((size_t)opts->max_workers, sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return CF_ENOMEM;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        int err = -errno;
        free(pool->workers);
        free(pool);
        return err;
    }
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
        free(pool->workers);
        free(pool);
        return err;
    }
    if (pid == 0) {
        close(sp[0]);
        cf__pp_server_main(sp[1], &cfg);
    }
    close(sp[1]);
    pool->ex.ops = &pp_executor_ops;
    pool->ex.loop = loop;
    pool->loop = loop;
    pool->opts = *opts;
    pool->server_pid = pid;
    pool->ctl = sp[0];
    pool->nworkers = opts->max_workers;
    pool->next_id = 1;
    cf__list_init(&pool->queue);
    fcntl(pool->ctl, F_SETFL, fcntl(pool->ctl, F_GETFL) | O_NONBLOCK);
    ev_io_init(&pool->ctl_io, ctl_cb, pool->ctl, EV_READ);
    pool->ctl_io.data = pool;
    io_start(loop, &pool->ctl_io);
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        w->fd = w->rfd = -1;
        cf__list_init(&w->inflight);
        cf__frame_reader_init(&w->rd, CF__FRAME_MAX_LEN);
        ev_timer_init(&w->task_timer, worker_task_timer_cb, 0., 0.);
        w->task_timer.data = w;
        ev_timer_init(&w->kill_timer, worker_kill_timer_cb, 0., 0.);
        w->kill_timer.data = w;
        worker_spawn(w);
    }
    loop->live_executors++;
    *out = pool;
    return 0;
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

    if (pool->shut)
        return CF_ESHUTDOWN;
    if (pool->broken)
        return CF_EBROKEN;
    if (!adopt && len > SIZE_MAX - sizeof(*t))
        return CF_ENOMEM;
    t = malloc(sizeof(*t) + (adopt ? 0 : len));
    if (!t)
        return CF_ENOMEM;
    memset(t, 0, sizeof(*t));
    if (adopt) {
        t->payload = adopt;
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
    f->ops = &pp_future_ops;
    f->owner = t;
    f->refs++; /* the pool's reference */
    t->f = f;
    t->pool = pool;
    t->id = pool->next_id++;
    t->timeout = timeout < 0 ? pool->opts.task_timeout : timeout;
    t->fn = fn;
    t->len = len;
    t->t_submit = cf_now_ns();
    t->state = PT_QUEUED;
    cf__list_push(&pool->queue, &t->link);
    pool->nqueued++;
    pool->outstanding++;
    pool->submitted++;
    cf__loop_task_begin(pool->loop);
    *out = f;
    pp_dispatch(pool);
    return 0;
}

int cf_process_pool_submit(cf_process_pool_t *pool, cf_task_fn fn, const void *data, size_t len, double timeout,
                           cf_future_t **out)
{
    if (!pool || !fn || !out || (!data && len) || isnan(timeout))
        return CF_EINVAL;
    return pp_submit(pool, fn, data, NULL, len, timeout, out);
}

static int pp_cancel(cf_future_t *f)
{
    struct pp_task *t = f->owner;
    cf_process_pool_t *pool = t->pool;

    switch (t->state) {
    case PT_QUEUED:
        cf__list_remove(&t->link);
        pool->nqueued--;
        t->state = PT_DONE;
        pp_complete(t, NULL, CF_ECANCELED, NULL);
        pp_task_free(t);
        return 0;
    case PT_SENT:
        pp_complete(t, NULL, CF_ECANCELED, NULL);
        if (t->sent == 0) { /* not a byte of it written yet: take it back */
            cf__list_remove(&t->link);
            t->w->ninflight--;
            t->w->used--;
            pp_task_free(t);
        } else {
            /* Already in the worker's pipe: it must not run.  The worker is
             * stopped when it takes the task (see the ACK), and the tasks sent
             * behind it go back to the queue. */
            t->stop = STOP_CANCEL;
        }
        return 0;
    case PT_RUNNING:
        atomic_store(&f->cancel_req, 1);
        if (t->stop == STOP_NONE) {
            t->stop = STOP_CANCEL;
            worker_stop(t->w);
        }
        return CF_EBUSY;
    default:
        return CF_EALREADY;
    }
}

static int pp_all_exited(void *arg)
{
    cf_process_pool_t *pool = arg;

    if (pool->outstanding)
        return 0;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state != W_EMPTY)
            return 0;
    return 1;
}

int cf_process_pool_shutdown(cf_process_pool_t *pool, int flags)
{
    if (!pool || (flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL)))
        return CF_EINVAL;
    pool->shut = 1;
    if (flags & (CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL))
        while (pool->nqueued) {
            struct pp_task *t = cf__container_of(pool->queue.next, struct pp_task, link);
            pp_cancel(t->f);
        }
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        for (struct cf__list *n = w->inflight.next; n != &w->inflight;) {
            struct pp_task *t = cf__container_of(n, struct pp_task, link);
            n = n->next;
            if ((flags & CF_SHUTDOWN_KILL) && t->f)
                pp_cancel(t->f);
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

        if (w->pid > 0)
            kill(-w->pid, SIGKILL);
        while ((n = cf__list_pop(&w->inflight))) {
            struct pp_task *t = cf__container_of(n, struct pp_task, link);
            if (t->state == PT_RUNNING)
                pool->nrunning--;
            pp_complete(t, NULL, CF_ECANCELED, cf__printf_alloc("process pool freed while the task was running"));
            pp_task_free(t);
        }
        w->ninflight = 0;
        worker_close(w);
        free(w->init_msg);
    }
    pp_fail_queue(pool, CF_ECANCELED, NULL);
    io_stop(pool->loop, &pool->ctl_io);
    close(pool->ctl); /* the fork server kills and reaps every worker, then exits */
    while (waitpid(pool->server_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    pool->loop->live_executors--;
    free(pool->broken_msg);
    free(pool->workers);
    free(pool->rbuf);
    free(pool);
}

int cf_process_pool_stats(cf_process_pool_t *pool, cf_pool_stats *out)
{
    int alive = 0;

    if (!pool || !out)
        return CF_EINVAL;
    for (int i = 0; i < pool->nworkers; i++)
        alive += pool->workers[i].state == W_READY || pool->workers[i].state == W_STARTING;
    out->submitted = pool->submitted;
    out->queued = pool->nqueued;
    out->running = pool->nrunning;
    out->completed = pool->completed;
    out->failed = pool->failed;
    out->cancelled = pool->cancelled;
    out->queue_ns_total = pool->queue_ns_total;
    out->queue_ns_max = pool->queue_ns_max;
    out->workers = alive;
    return 0;
}

int cf_process_pool_worker_info(cf_process_pool_t *pool, int index, cf_worker_info *out)
{
    if (!pool || !out || index < 0 || index >= pool->nworkers)
        return CF_EINVAL;
    out->pid = pool->workers[index].state >= W_STARTING ? pool->workers[index].pid : 0;
    out->tasks_done = pool->workers[index].tasks_done;
    out->restarts = pool->workers[index].restarts;
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

static int pp_ex_submit(cf_executor_t *ex, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free,
                        cf_future_t **out)
{
    cf_process_pool_t *pool = (cf_process_pool_t *)ex;
    int rc;

    /* The pool frees payloads with free(): adopt the buffer only if that is its destructor. */
    if (arg_free == free)
        return pp_submit(pool, fn, NULL, arg, len, -1, out);
    rc = pp_submit(pool, fn, arg, NULL, len, -1, out);
    if (rc == 0 && arg_free)
        arg_free(arg);
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
    .submit = pp_ex_submit,
    .shutdown = pp_ex_shutdown,
    .workers = pp_ex_workers,
    .shares_memory = 0,
};
