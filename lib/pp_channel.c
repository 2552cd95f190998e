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
 * Timers.  task_timer runs while the head task runs with a timeout; on
 * expiry the task becomes PT_TIMING_OUT and the worker is stopped:
 * cf__pp_worker_stop() sends SIGTERM to the worker (by pid: a task may
 * have left the group) and its process group,
 * kill_timer sends SIGKILL after the grace period.
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

static void worker_task_timer_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    struct pp_worker *w = t->data;
    struct cf__list *n = w->inflight.next;

    (void)ev;
    (void)revents;
    if (n != &w->inflight) {
        struct pp_task *head = cf__container_of(n, struct pp_task, link);
        if (head->state == PT_RUNNING) {
            cf__pp_task_set(head, PT_TIMING_OUT);
            cf__pp_stop_task(head);
        }
    }
}

/* ------------------------------------------------------------------ reading */

/* Decode an outcome payload: `owned` (malloc'd, taken) or `data` (copied from). */
static int frame_outcome(const struct cf__frame_hdr *h, const uint8_t *data, uint8_t *owned, struct cf__outcome *o)
{
    return owned ? cf__outcome_decode(owned, (size_t)h->len, o) : cf__outcome_decode_copy(data, (size_t)h->len, o);
}

static void worker_ack(struct pp_worker *w, struct pp_task *head, uint64_t now)
{
    cf_process_pool_t *pool = w->pool;

    head->t_submit = now; /* from here on: when it started */
    head->acked = 1;
    if (head->state == PT_SENT_CANCELLED || head->state == PT_RECALLED) {
        /* Its gate was closed before the worker came to it: the worker skips it. */
        cf__pp_task_set(head, PT_SKIPPING);
        return;
    }
    if (head->state == PT_CANCELLING) {
        /* Cancelled just after the worker took it: stop the worker. */
        cf__pp_stop_task(head);
        return;
    }
    pool->nrunning++;
    cf__pp_task_set(head, PT_RUNNING);
    cf__future_set_state(head->f, CF_FUTURE_RUNNING);
    if (head->timeout > 0) {
        ev_timer_set(&w->task_timer, head->timeout, 0.);
        ev_timer_start(pool->loop->ev, &w->task_timer);
    }
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
    if (was == PT_SKIPPING) {
        free(owned);
        if (head->f) { /* recalled from a worker being stopped: for another worker */
            head->acked = 0;
            cf__pp_requeue_front(pool, head);
        } else { /* its future ended CANCELLED when its gate was closed */
            cf__pp_task_set(head, PT_DONE);
            cf__pp_task_free(head);
        }
        pool->dispatch_due = 1;
        return;
    }
    cf__pp_task_set(head, PT_DONE);
    cf__pp_timer_stop(pool->loop, &w->task_timer);
    uint64_t ran = now - head->t_submit;
    pool->task_ns_avg = pool->task_ns_avg ? pool->task_ns_avg - pool->task_ns_avg / 8 + ran / 8 : ran + 1;
    pool->nrunning--;
    w->tasks_done++;
    if (was != PT_RUNNING) { /* being stopped anyway; the result came first */
        free(owned);
        cf__pp_complete(head, NULL, was == PT_TIMING_OUT ? CF_ETIMEDOUT : CF_ECANCELED, NULL);
    } else {
        rc = frame_outcome(h, data, owned, &o);
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
        if (head && head->id == h->id &&
            (head->state == PT_SENT || head->state == PT_SENT_CANCELLED || head->state == PT_RECALLED ||
             head->state == PT_CANCELLING)) {
            worker_ack(w, head, now);
            return;
        }
        break;
    case CF__FR_RESULT:
        if (head && head->id == h->id &&
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
    if (w->rfd < 0)
        return;
    atomic_store(&w->ring->want_wake, 1);
    ring_drain(w, &now);
    return;
eof:
    now = 0;
    ring_drain(w, &now); /* what it published before it ended */
    if (w->rfd >= 0)
        cf__pp_worker_ended(w);
}

static void worker_rio_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    struct pp_worker *w = io->data;

    (void)ev;
    (void)revents;
    cf__pp_worker_read(w);
    cf__pp_dispatch_due(w->pool);
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
