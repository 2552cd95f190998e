/*
 * pp_channel.c - the process pool's channel to one worker, parent side.
 *
 * DESIGN
 *
 * A worker's channel is a SOCK_STREAM socket for TASK frames (written here
 * with MSG_NOSIGNAL | MSG_DONTWAIT; shutdown(SHUT_WR) tells an idle worker
 * to exit), the slot's frame ring in shared memory for the worker's frames
 * (READY, INIT_FAIL, ACK, RESULT; pp.h), and a pipe that carries WAKE
 * frames and the worker's frames that do not fit in the ring, and whose EOF
 * says the worker ended.  Both descriptors are non-blocking here, under an
 * ev_io for reading the pipe (always on while the worker lives) and one for
 * writing the socket (on only while frames wait to be sent).
 *
 * Writing (cf__pp_worker_flush).  The unsent tail of worker.inflight is
 * gathered into one sendmsg() - the frames of up to CF__PP_IOV / 2 tasks -
 * and the bytes written are credited to the tasks in order (pp_task.sent).
 *
 * Reading (cf__pp_worker_read).  The pipe is read in pieces of up to
 * CF__PP_RBUF bytes into a buffer shared by all workers; frames that lie
 * whole in it are handled in place, the incremental reader (worker.rd) keeps
 * a frame split across reads, and the rest of a large payload is read
 * straight into its own buffer.  Every pipe frame first lets the ring be
 * read up to it (ring_drain(): frames are taken strictly by number); after
 * the pipe is read empty the ring is read, want_wake set, and the ring read
 * once more (pp.h).  Each frame goes to frame_handle(), which
 * moves the head of inflight along SENT -> RUNNING (ACK) -> DONE (RESULT),
 * or SENT_CANCELLED -> SKIPPING -> DONE for a task whose gate was closed.
 * Anything out of order is a protocol violation: the worker is killed.  EOF
 * (or a read error) means the worker ended: what it published in the ring
 * is read, then cf__pp_worker_ended() records
 * it; the fork server's EXITED report then finalizes the slot (pp_server.c).
 *
 * Lazy ACKs.  An ACK does not wake the pool (pp.h): a task that ends soon
 * costs the loop one wake-up, for its RESULT, and its ACK is read with
 * it.  The ACK is read sooner whenever the ring is read for another reason
 * (a wake-up for another frame, a timer, the tick below), and within about
 * two ticks of CF__PP_ACK_LAZY_NS in any case: the pool's ACK tick (a
 * timerfd, on while some worker's head task is sent and not acknowledged)
 * reads the rings, and for a head still not acknowledged a tick after it
 * became the head asks the worker to wake the pool for ACKs as well
 * (want_wake = CF__PP_WAKE_ACK, until that ACK is read).  So the future's
 * RUNNING state and the `running` statistic follow a task's start by at
 * most a couple of milliseconds.  Nothing else waits for an ACK: a cancel
 * that finds the task's start gate taken stops the worker at once, if the
 * gate says the task still runs (pp_stop.c: frames not read yet do not
 * matter); a timeout is counted from the start the worker stamps in
 * the ACK (below); crash attribution reads the ring after the pipe's EOF,
 * where an ACK published before the worker died is found as before.
 *
 * Timers.  task_timer runs while the head task has a timeout: until its
 * timeout counted from when it was sent (it cannot have started before),
 * and, once its ACK is read, until its deadline counted from the start
 * stamped in the ACK.  On expiry the ring is read; a head that has not
 * acknowledged gets its ACK asked for (its deadline is not earlier than
 * when it starts); an acknowledged one past its deadline becomes
 * PT_TIMING_OUT and the worker is stopped if the task's gate says it still
 * runs (pp_stop.c; otherwise it has ended, and its RESULT, not read yet,
 * completes it CF_ETIMEDOUT): cf__pp_worker_stop() sends
 * SIGTERM to the worker (by pid: a task may have left the group) and its
 * process group, kill_timer sends SIGKILL after the grace period.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "pp_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Signal the worker and everything left in its process group.  The worker
 * itself is signalled by pid too: a task may have moved it to another
 * process group (setpgid()).
 */
/* The pool gives up on the worker's channel: record why (once) and kill it. */
static void worker_lost(struct pp_worker *w, const char *why, int err)
{
    if (err)
        w->pool_stopped = 1; /* the pool's own failure: not the task's */
    if (!w->stop_why)
        w->stop_why = err ? cf__printf_alloc("%s (%s)", why, strerror(err)) : cf__printf_alloc("%s", why);
    cf__pp_worker_signal(w, SIGKILL);
}

void cf__pp_worker_signal(struct pp_worker *w, int sig)
{
    if (w->pid <= 0)
        return;
    kill(w->pid, sig);
    kill(-w->pid, sig);
}

/* ------------------------------------------------------------------ writing */

static void worker_wio_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    (void)ev;
    (void)revents;
    cf__pp_worker_flush(io->data);
}

/*
 * Write as much of the unsent tail of inflight as the socket takes: the
 * frames of up to CF__PP_IOV / 2 tasks go out in one sendmsg().
 */
#define CF__PP_IOV 64
void cf__pp_worker_flush(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;
    struct cf__list *n = w->inflight.prev;

    /* The tasks not wholly written are the tail of inflight (tasks are
     * appended, and leave from the head only once their RESULT came):
     * find the first of them from the end, in O(unsent), not O(inflight). */
    while (n != &w->inflight) {
        struct pp_task *t = cf__container_of(n, struct pp_task, link);
        if (t->sent >= sizeof(t->hdr) + t->len)
            break;
        n = n->prev;
    }
    n = n->next;

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
                    cf__pp_io_start(loop, &w->wio);
                    w->wio_on = 1;
                }
                return;
            }
            if (errno != EPIPE && errno != ECONNRESET) {
                /* ENOBUFS, ENOMEM ...: no readiness will say when to retry,
                 * so the channel is given up: stop the worker; its
                 * unstarted tasks go to another. */
                worker_lost(w, "the pool could not write to its channel", errno);
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
        cf__pp_io_stop(loop, &w->wio);
        w->wio_on = 0;
    }
}

/* ------------------------------------------------------------------ stopping */

void cf__pp_worker_stop(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;

    if (w->pid <= 0)
        return;
    if (w->state == W_READY)
        cf__pp_worker_set(w, W_STOPPING); /* no new task for it */
    w->pool_stopped = 1;
    cf__pp_worker_signal(w, SIGTERM);
    if (!ev_is_active(&w->kill_timer)) {
        ev_timer_set(&w->kill_timer, w->pool->opts.kill_grace, 0.);
        ev_timer_start(loop->ev, &w->kill_timer);
    }
}

static void worker_kill_timer_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    (void)ev;
    (void)revents;
    cf__pp_worker_signal(t->data, SIGKILL);
}

static struct pp_task *worker_head(struct pp_worker *w)
{
    return w->inflight.next != &w->inflight ? cf__container_of(w->inflight.next, struct pp_task, link) : NULL;
}

/* Seconds the head task `t` (acknowledged, with a timeout) has left at `now`; <= 0 when it is over. */
static double task_left(const struct pp_task *t, uint64_t now)
{
    return t->timeout - (now > t->t_submit ? (double)(now - t->t_submit) / 1e9 : 0.);
}

static void ring_drain(struct pp_worker *w, uint64_t *now);

/* The ACK tick (pool.tick_fd): on, one-shot CF__PP_ACK_LAZY_NS from now, or off.  Setting it also
 * clears its readiness.  timerfd_settime() on a timerfd with valid values does not fail. */
static void tick_set(cf_process_pool_t *pool, int on)
{
    struct itimerspec its = {.it_value = {.tv_sec = 0, .tv_nsec = on ? CF__PP_ACK_LAZY_NS : 0}};

    (void)timerfd_settime(pool->tick_fd, 0, &its, NULL);
    pool->tick_on = on;
}

/*
 * The head of w's inflight is not acknowledged, and nothing will read the
 * ring soon: ask the worker to wake the pool for ACKs too (pp.h), then look
 * once more, for an ACK published before the worker could see the request.
 * Not from inside a read of the ring (it reads the ring).
 */
static void ask_for_ack(struct pp_worker *w, uint64_t *now)
{
    uint32_t want = CF__PP_WAKE_RESULT;

    w->ack_wake = 1;
    /* 0: a WAKE is on its way, and the read it brings asks for ACKs. */
    atomic_compare_exchange_strong(&w->ring->want_wake, &want, CF__PP_WAKE_ACK);
    ring_drain(w, now);
}

/*
 * Watch the head task of w's inflight; called whenever the head changes or
 * is acknowledged.  ACKs do not wake the pool (pp.h), so:
 *   - a head sent but not acknowledged is watched by the pool's ACK tick:
 *     if its ACK is still missing a tick after it became the head, the
 *     pool asks to be woken for it (so a running task is known as running
 *     within about two ticks); with a timeout, task_timer also runs until
 *     its timeout counted from when it was sent (it cannot have started
 *     before, so its deadline is not earlier);
 *   - a running head with a timeout: task_timer runs until its deadline,
 *     counted from the start the worker stamped in the ACK.
 * The tick is a timerfd rather than an ev_timer: an active short ev_timer
 * gives every wait of the loop a short timeout, which cost 5-6 us of CPU
 * per round trip here (a timer armed and cancelled in the kernel at each
 * wait); the timerfd is armed once per tick, not once per wait.
 * `now` may be 0 (read here when needed).
 */
void cf__pp_worker_watch(struct pp_worker *w, uint64_t now)
{
    cf_process_pool_t *pool = w->pool;
    struct pp_task *head = worker_head(w);
    int timed;

    if (head && head->state == PT_SENT && !head->acked) {
        if (!now)
            now = cf_now_ns();
        if (head->id != w->head_id) {
            w->head_id = head->id;
            w->head_ns = now;
        }
        if (!w->ack_wake && !pool->tick_on)
            tick_set(pool, 1);
        timed = !w->ack_wake && head->timeout > 0;
    } else {
        timed = head && head->state == PT_RUNNING && head->timeout > 0;
    }
    cf__pp_timer_stop(pool->loop, &w->task_timer);
    if (timed) {
        double left = task_left(head, now ? now : cf_now_ns());
        ev_timer_set(&w->task_timer, left > 0 ? left : 0., 0.);
        ev_timer_start(pool->loop->ev, &w->task_timer);
    }
}

/*
 * The head task's timeout timer: read the ring (the ACKs published since
 * the pool last looked); a running head past its timeout is stopped; a
 * head that has not said it started by the time it could have timed out
 * gets its ACK asked for (its precise deadline is known from the ACK).  The
 * ACK goes out just before the worker takes the task's start gate: a head
 * whose gate is still open has not started, and its clock starts again.
 */
static void worker_task_timer_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    struct pp_worker *w = t->data;
    struct pp_task *head;
    uint64_t now = 0;

    (void)ev;
    (void)revents;
    ring_drain(w, &now);
    if (!now)
        now = cf_now_ns();
    head = worker_head(w);
    if (w->rfd >= 0 && head && head->state == PT_SENT && !head->acked && head->timeout > 0 &&
        task_left(head, now) <= 0 && !w->ack_wake) {
        ask_for_ack(w, &now);
        head = worker_head(w);
    }
    if (w->rfd >= 0 && head && head->state == PT_RUNNING && head->timeout > 0 && task_left(head, now) <= 0) {
        if (!head->clock_restarted && !cf__pp_task_started(head)) {
            /* Acknowledged but not started yet (a worker that had no CPU
             * since its ACK): its clock starts again, once, so that a task
             * times out after it ran for its timeout; still not started
             * then, it is closed out (and never runs). */
            head->clock_restarted = 1;
            head->t_submit = now;
        } else {
            cf__pp_task_set(head, PT_TIMING_OUT);
            cf__pp_stop_task(head);
        }
    }
    if (w->rfd >= 0)
        cf__pp_worker_watch(w, now);
    cf__pp_dispatch_due(w->pool);
}

/*
 * The ACK tick: read every worker's ring; a head still not acknowledged a
 * tick after it became the head gets its ACK asked for; the tick goes on
 * while younger heads wait for theirs, and stops otherwise.
 */
static void pool_tick_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    cf_process_pool_t *pool = io->data;
    int watching = 0;

    (void)ev;
    (void)revents;
    tick_set(pool, 0); /* it fired: off, and no longer readable; a head met below sets it again */
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        struct pp_task *head;
        uint64_t now = 0;

        if (w->rfd < 0)
            continue;
        ring_drain(w, &now);
        head = worker_head(w);
        if (w->rfd < 0 || !head || head->state != PT_SENT || head->acked || w->ack_wake)
            continue;
        if (!now)
            now = cf_now_ns();
        if (now - w->head_ns < CF__PP_ACK_LAZY_NS) {
            watching = 1;
            continue;
        }
        ask_for_ack(w, &now);
        if (w->rfd >= 0)
            cf__pp_worker_watch(w, now);
    }
    if (watching && !pool->tick_on)
        tick_set(pool, 1);
    cf__pp_dispatch_due(pool);
}

/* ------------------------------------------------------------------ reading */

/* Decode an outcome payload: `owned` (malloc'd, taken) or `data` (copied from). */
static int frame_outcome(size_t len, const uint8_t *data, uint8_t *owned, struct cf__outcome *o)
{
    return owned ? cf__outcome_decode(owned, len, o) : cf__outcome_decode_copy(data, len, o);
}

/* The ACK of the head task: the worker took it at `started` (its clock stamp). */
static void worker_ack(struct pp_worker *w, struct pp_task *head, uint64_t started, uint64_t now)
{
    cf_process_pool_t *pool = w->pool;

    head->t_submit = started < now ? started : now; /* from here on: when it started */
    head->acked = 1;
    if (w->ack_wake) { /* ACKs need not wake the pool any more */
        uint32_t want = CF__PP_WAKE_ACK;
        w->ack_wake = 0;
        atomic_compare_exchange_strong(&w->ring->want_wake, &want, CF__PP_WAKE_RESULT);
    }
    if (head->state == PT_SENT_CANCELLED) {
        /* Its gate was closed before the worker came to it: the worker skips it. */
        cf__pp_task_set(head, PT_SKIPPING);
    } else if (head->state == PT_CANCELLING) {
        /* Cancelled after the worker took it: the stop was decided then, by its gate (pp_stop.c). */
    } else {
        pool->nrunning++;
        cf__pp_task_set(head, PT_RUNNING);
        cf__future_set_state(head->f, CF_FUTURE_RUNNING);
    }
    cf__pp_worker_watch(w, now);
}

static void worker_result(struct pp_worker *w, struct pp_task *head, const struct cf__frame_hdr *h, const uint8_t *data,
                          uint8_t *owned, uint64_t now)
{
    cf_process_pool_t *pool = w->pool;
    int was = head->state;
    struct cf__outcome o;
    int rc;

    cf__list_remove(&head->link);
    w->ninflight--;
    cf__pp_worker_watch(w, now); /* the next head */
    if (was == PT_SKIPPING) {
        /* Its future ended CANCELLED when its gate was closed. */
        free(owned);
        cf__pp_task_set(head, PT_DONE);
        cf__pp_task_free(head);
        pool->dispatch_due = 1;
        return;
    }
    cf__pp_task_set(head, PT_DONE);
    uint64_t ran;
    memcpy(&ran, data + h->len - 8, 8); /* how long it ran, by the worker's clock (frame.h) */
    pool->task_ns_avg = pool->task_ns_avg ? pool->task_ns_avg - pool->task_ns_avg / 8 + ran / 8 : ran + 1;
    pool->nrunning--;
    w->tasks_done++;
    if (was != PT_RUNNING) { /* being stopped anyway; the result came first */
        free(owned);
        const char *found = head->never_started ? "it had not started when that was decided, and never ran"
                                                : "it had just returned when that was decided; its result is dropped";
        if (was == PT_TIMING_OUT)
            cf__pp_complete(head, NULL, CF_ETIMEDOUT,
                            cf__printf_alloc("the task timed out after %.3f s; worker %d (pid %d) was kept: %s",
                                             head->timeout, w->index, (int)w->pid, found));
        else
            cf__pp_complete(head, NULL, CF_ECANCELED,
                            cf__printf_alloc("the task was cancelled; worker %d (pid %d) was kept: %s", w->index,
                                             (int)w->pid, found));
    } else {
        rc = frame_outcome((size_t)h->len - 8, data, owned, &o);
        if (rc)
            cf__pp_complete(head, NULL, rc,
                            cf__printf_alloc("%s the result from worker %d (pid %d)",
                                             rc == CF_ENOMEM ? "out of memory decoding" : "malformed", w->index,
                                             (int)w->pid));
        else
            cf__pp_complete(head, &o, 0, NULL);
    }
    cf__pp_task_free(head);
    pool->dispatch_due = 1; /* after the rest of the burst: one write per worker */
}

/*
 * One frame from worker `w`, in its turn: its payload is `data` (h->len
 * bytes), which is `owned` (malloc'd, and then this function frees or keeps
 * it) or else a view into the read buffer or the ring.  `now` is when the
 * read that brought it returned.
 */
static void frame_handle(struct pp_worker *w, const struct cf__frame_hdr *h, const uint8_t *data, uint8_t *owned,
                         uint64_t now)
{
    cf_process_pool_t *pool = w->pool;
    struct cf__list *n = w->inflight.next;
    struct pp_task *head = n != &w->inflight ? cf__container_of(n, struct pp_task, link) : NULL;

    switch (h->type) {
    case CF__FR_READY:
        free(owned);
        if (w->state == W_STARTING) {
            cf__pp_worker_set(w, W_READY);
            pool->init_failures = 0;
            pool->server_deaths = 0;
            pool->start_failures = 0;
            pool->start_failed_at = 0;
            cf__pp_dispatch(pool);
            if (pool->shut && !pool->nqueued && !w->ninflight)
                shutdown(w->fd, SHUT_WR); /* nothing left to do: let it exit */
        }
        return;
    case CF__FR_INIT_FAIL: {
        struct cf__outcome o;
        if (w->state == W_STARTING)
            cf__pp_worker_set(w, W_FAILED);
        if (frame_outcome((size_t)h->len, data, owned, &o) == 0) {
            free(w->init_msg);
            w->init_msg = o.errmsg;
            o.errmsg = NULL;
            cf__outcome_clear(&o);
        }
        return;
    }
    case CF__FR_ACK:
        if (h->len == 8 && head && head->id == h->id && !head->acked &&
            (head->state == PT_SENT || head->state == PT_SENT_CANCELLED || head->state == PT_CANCELLING)) {
            uint64_t started;
            memcpy(&started, data, 8);
            free(owned);
            worker_ack(w, head, started, now);
            return;
        }
        break;
    case CF__FR_RESULT:
        if (h->len >= 8 && head && head->id == h->id &&
            (head->state == PT_RUNNING || head->state == PT_TIMING_OUT || head->state == PT_CANCELLING ||
             head->state == PT_SKIPPING)) {
            worker_result(w, head, h, data, owned, now);
            return;
        }
        break;
    default:
        break;
    }
    /* Anything else is a protocol violation: stop the worker. */
    free(owned);
    worker_lost(w, "it sent a frame out of order", 0);
}

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/*
 * Take the frames waiting in the worker's ring (pp.h), in number order, up
 * to one that comes by the pipe.  `*now` is read once, at the first frame.
 */
static void ring_drain(struct pp_worker *w, uint64_t *now)
{
    struct cf__pp_ring *r = w->ring;
    uint64_t tail = atomic_load(&r->tail);

    while (w->rfd >= 0 && w->ring_head < tail) {
        uint64_t left = tail - w->ring_head;
        size_t off = (size_t)(w->ring_head % CF__PP_RING), room = CF__PP_RING - off, need;
        struct cf__frame_hdr h;

        if (left > CF__PP_RING || (room < CF__FRAME_HDR && left < room))
            goto malformed;
        if (room < CF__FRAME_HDR) {
            w->ring_head += room; /* too little for a header: the frame went to the beginning */
            continue;
        }
        if (left < CF__FRAME_HDR || cf__frame_hdr_decode(r->data + off, &h))
            goto malformed;
        if (h.type == CF__FR_PAD) {
            if (left < room)
                goto malformed;
            w->ring_head += room;
            continue;
        }
        if (h.len > room - CF__FRAME_HDR || (need = CF__FRAME_HDR + pad8((size_t)h.len)) > room || need > left)
            goto malformed;
        if (h.flags != w->rseq)
            break; /* the next frame comes by the pipe */
        if (!*now)
            *now = cf_now_ns();
        w->rseq++;
        frame_handle(w, &h, r->data + off + CF__FRAME_HDR, NULL, *now);
        w->ring_head += need;
        atomic_store_explicit(&r->head, w->ring_head, memory_order_release);
    }
    return;
malformed:
    w->ring_head = tail; /* read no further */
    worker_lost(w, "it sent a malformed frame", 0);
}

/* The ring was read empty: ask the worker to wake the pool for more (at
 * the ACK level if an ACK is overdue), then look once more, for a frame
 * published before the worker could see the request (pp.h). */
static void ring_rearm(struct pp_worker *w)
{
    uint64_t now = 0;

    atomic_store(&w->ring->want_wake, w->ack_wake ? CF__PP_WAKE_ACK : CF__PP_WAKE_RESULT);
    ring_drain(w, &now);
}

/* A frame that came by the pipe: a WAKE for the ring, or the next frame in number order. */
static void worker_frame(struct pp_worker *w, const struct cf__frame_hdr *h, const uint8_t *data, uint8_t *owned,
                         uint64_t now)
{
    ring_drain(w, &now); /* what the worker put in the ring before it wrote this */
    if (h->type == CF__FR_WAKE || w->rfd < 0) {
        free(owned);
        return;
    }
    if (h->flags != w->rseq) {
        free(owned);
        worker_lost(w, "it sent a frame out of order", 0);
        return;
    }
    w->rseq++;
    frame_handle(w, h, data, owned, now);
}

/*
 * Read what the worker wrote to its pipe, in pieces of up to CF__PP_RBUF
 * bytes, and hand each complete frame to worker_frame(): a burst of results
 * costs one read().  Then take what waits in the ring, ask the worker to
 * wake the pool for more (want_wake), and look once more (pp.h).
 */
void cf__pp_worker_read(struct pp_worker *w)
{
    cf_process_pool_t *pool = w->pool;
    uint64_t now;

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
                break;
            if (errno != ECONNRESET)
                worker_lost(w, "the pool could not read its channel", errno);
            goto eof;
        }
        if (r == 0)
            goto eof;
        now = cf_now_ns();
        for (size_t off = 0; off < (size_t)r;) {
            struct cf__frame_hdr h;
            uint8_t *payload;
            int rc;

            if (!direct && cf__frame_reader_idle(&w->rd) && (size_t)r - off >= CF__FRAME_HDR) {
                if (cf__frame_hdr_decode(buf + off, &h)) {
                    worker_lost(w, "it sent a malformed frame", 0);
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
                if (rc == CF_ENOMEM)
                    worker_lost(w, "the pool ran out of memory reading its channel", ENOMEM);
                else
                    worker_lost(w, "it sent a malformed frame", 0);
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
    now = 0;
    ring_drain(w, &now);
    if (w->rfd >= 0)
        ring_rearm(w);
    return;
eof:
    now = 0;
    ring_drain(w, &now); /* what it published before it ended */
    if (w->rfd >= 0)
        cf__pp_worker_ended(w);
}

/* Count one wait of the loop for a frame (capped at twice the poll) in pool.wait_avg (weight 1/4). */
static void pool_waited(cf_process_pool_t *pool, uint64_t waited)
{
    if (waited > 2 * CF__PP_POLL_NS)
        waited = 2 * CF__PP_POLL_NS;
    pool->wait_avg = pool->wait_avg - pool->wait_avg / 4 + waited / 4;
}

static void worker_rio_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    struct pp_worker *w = io->data;
    cf_process_pool_t *pool = w->pool;

    (void)ev;
    (void)revents;
    if (pool->block_ns) { /* woken for a frame after a wait with tasks in flight */
        pool_waited(pool, cf_now_ns() - pool->block_ns);
        pool->block_ns = 0;
    }
    cf__pp_worker_read(w);
    cf__pp_dispatch_due(pool);
}

/* A worker the loop-side poll looks at: it has tasks in flight, and is not asked to wake the pool for ACKs. */
static int poll_worth(const struct pp_worker *w)
{
    return w->rfd >= 0 && w->ninflight && !w->ack_wake;
}

/*
 * The loop-side poll (pool.poll, an ev_prepare: it runs just before the
 * loop waits).  A worker that publishes a frame the pool asked to be woken
 * for writes a WAKE to its pipe, and the loop's wait ends in epoll: a
 * system call on each side and a wake-up of the loop, which on a virtual
 * machine cost more than a short task itself.  So while tasks are in
 * flight and the loop's recent waits for a frame were short (wait_avg, a
 * moving average like the worker's idle_avg in pp_child.c, each wait
 * counted up to twice CF__PP_POLL_NS, below CF__PP_POLL_NS), and fewer
 * workers have tasks in flight than there are CPUs (so the poll does not
 * take a CPU from a worker: with every CPU busy computing, a wait costs
 * less than a poll), the loop
 * first polls the rings for up to CF__PP_POLL_NS (CF__PP_POLL_QUIET_NS
 * if no frame at all comes meanwhile, not even an ACK: then the workers
 * are not running, another process has the CPU, and polling would only
 * keep it from them), with want_wake cleared so
 * that the workers do not write WAKEs meanwhile.  Frames found are handled
 * (ring_drain()); the poll ends as soon as a future completed (its
 * callbacks are then due, and the loop does not wait) or time is up.
 * Either way want_wake is set again and each ring read once more before
 * the loop may wait (pp.h), so a frame published at any moment wakes the
 * loop or is read here.  When waits were long (tasks that run for a
 * while), the loop does not poll at all: it only notes when it went to
 * wait, and worker_rio_cb() counts the wait.  Nothing else changes: the
 * frames are the same, taken in the same order, by the same code.
 */
static void pool_poll_cb(struct ev_loop *ev, ev_prepare *p, int revents)
{
    cf_process_pool_t *pool = p->data;
    cf_loop_t *loop = pool->loop;
    uint64_t t0, now = 0, until;
    int any = 0, heard = 0;

    (void)ev;
    (void)revents;
    pool->block_ns = 0;
    if (ev_is_active(&loop->idle))
        return; /* the loop will not wait: work is due */
    for (int i = 0; i < pool->nworkers; i++)
        any += poll_worth(&pool->workers[i]);
    if (!any || any >= pool->ncpu)
        return; /* nothing to poll for, or no CPU left for polling: the workers would lose it */
    t0 = cf_now_ns();
    if (pool->wait_avg >= CF__PP_POLL_NS) {
        pool->block_ns = t0;
        return;
    }
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        uint32_t want = CF__PP_WAKE_RESULT;
        if (poll_worth(w)) /* 0 already: a WAKE is on its way (and the pipe's read sets it again) */
            atomic_compare_exchange_strong(&w->ring->want_wake, &want, 0);
    }
    until = t0 + CF__PP_POLL_NS;
    for (unsigned spins = 1; !ev_is_active(&loop->idle); spins++) {
        for (int i = 0; i < pool->nworkers; i++) {
            struct pp_worker *w = &pool->workers[i];
            if (w->rfd >= 0 && atomic_load_explicit(&w->ring->tail, memory_order_acquire) != w->ring_head) {
                heard = 1;
                now = 0;
                ring_drain(w, &now);
            }
        }
        if (pool->dispatch_due)
            cf__pp_dispatch_due(pool);
        if ((spins & 15) == 0 && ((now = cf_now_ns()) >= until || (!heard && now >= t0 + CF__PP_POLL_QUIET_NS)))
            break;
        cf__cpu_relax();
    }
    if (ev_is_active(&loop->idle))
        pool_waited(pool, cf_now_ns() - t0);
    else
        pool->block_ns = t0;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].rfd >= 0)
            ring_rearm(&pool->workers[i]);
    cf__pp_dispatch_due(pool);
}

/* ------------------------------------------------------------------ set-up */

void cf__pp_worker_init(struct pp_worker *w, cf_process_pool_t *pool, int index)
{
    w->pool = pool;
    w->index = index;
    w->fd = w->rfd = -1;
    cf__list_init(&w->inflight);
    cf__frame_reader_init(&w->rd, CF__FRAME_MAX_LEN);
    ev_timer_init(&w->task_timer, worker_task_timer_cb, 0., 0.);
    w->task_timer.data = w;
    ev_timer_init(&w->kill_timer, worker_kill_timer_cb, 0., 0.);
    w->kill_timer.data = w;
}

/* Watch the pool's ACK tick (pool.tick_fd, made by cf_process_pool_new()); poll the rings before the loop waits. */
void cf__pp_tick_init(cf_process_pool_t *pool)
{
    ev_io_init(&pool->tick_io, pool_tick_cb, pool->tick_fd, EV_READ);
    pool->tick_io.data = pool;
    cf__pp_io_start(pool->loop, &pool->tick_io);
    pool->ncpu = cf_cpu_count();
    ev_prepare_init(&pool->poll, pool_poll_cb);
    pool->poll.data = pool;
    ev_prepare_start(pool->loop->ev, &pool->poll);
    ev_unref(pool->loop->ev);
}

/* Stop watching the tick and polling the rings; close the tick. */
void cf__pp_tick_fini(cf_process_pool_t *pool)
{
    cf__pp_io_stop(pool->loop, &pool->tick_io);
    close(pool->tick_fd);
    ev_ref(pool->loop->ev); /* balance the ev_unref() after starting the poll */
    ev_prepare_stop(pool->loop->ev, &pool->poll);
}

/* The worker's channel arrived from the fork server: watch it. */
void cf__pp_worker_open(struct pp_worker *w, int fd, int rfd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
    w->fd = fd;
    w->rfd = rfd;
    ev_io_init(&w->rio, worker_rio_cb, rfd, EV_READ);
    w->rio.data = w;
    ev_io_init(&w->wio, worker_wio_cb, fd, EV_WRITE);
    w->wio.data = w;
    cf__pp_io_start(w->pool->loop, &w->rio);
}

void cf__pp_worker_close(struct pp_worker *w)
{
    cf_loop_t *loop = w->pool->loop;

    cf__pp_io_stop(loop, &w->rio);
    if (w->wio_on)
        cf__pp_io_stop(loop, &w->wio);
    w->wio_on = 0;
    cf__pp_timer_stop(loop, &w->task_timer);
    cf__pp_timer_stop(loop, &w->kill_timer);
    if (w->fd >= 0)
        close(w->fd);
    if (w->rfd >= 0)
        close(w->rfd);
    w->fd = w->rfd = -1;
    cf__frame_reader_reset(&w->rd);
}
