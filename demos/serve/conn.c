/*
 * conn.c - cfserve's connections: reading and parsing requests, the queue of
 * responses, writing them, and every deadline.
 *
 * A connection keeps a FIFO of responses, one per request, in request order.
 * A response is ready (inline answers) or waits for its future; the writer
 * sends ready responses from the head of the FIFO only, so pipelined requests
 * are answered in order.  Output is bounded per connection whatever a client
 * pipelines: at most CFS_MAX_PIPELINE responses are outstanding and at most
 * CFS_MAX_FILES of them hold (or will hold) an open file; past either bound
 * the parser pauses and reading stops until the queue drains.  Inline bodies
 * are small (error texts, /stats, fib, md5, files up to CFS_SMALL_FILE);
 * larger files go from their descriptor to the socket with sendfile(), in
 * CFS_SENDFILE_CHUNK pieces, so no file body is ever held in memory.
 *
 * Deadlines (conn_deadline()): a request's head must arrive within
 * --header-timeout of its first byte; the whole request within
 * --request-timeout; a body, and any response the peer is slow to read, must
 * move at least --min-rate bytes/s on average after a grace of
 * --idle-timeout, and never stall longer than --idle-timeout; an idle
 * keep-alive connection closes after --idle-timeout.  Waiting for our own
 * work has no deadline (the pools bound it).
 *
 * A client that half-closes (shutdown(SHUT_WR)) after its requests still
 * gets every answer.  One that closes outright cannot be told apart by
 * reading, so while an HTTP/1.1 answer is being worked on after the peer's
 * EOF, the connection sends "102 Processing" every CFS_PROBE_INTERVAL
 * seconds (clients must accept 1xx responses): once the peer has gone the
 * send fails, the connection closes and its work is cancelled.
 *
 * Lifetime: a connection is reference counted - open is one reference,
 * every pending future another.  Closing cancels the pending futures (a
 * queued task never runs, a running md5 stops at its next block, a worker
 * process is stopped, a timer is stopped); their done callbacks still run
 * exactly once and only drop their reference.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* MSG_NOSIGNAL, MSG_MORE */
#include "cfserve.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int on_request(http_in *in, http_req *req);
static void conn_finish(conn *c);

/* ------------------------------------------------------------------ the server's clock and log */

const char *server_date(server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        http_date(now, s->date);
        s->date_sec = now;
    }
    return s->date;
}

/* One access-log line for a response that was sent (or abandoned: 499 when nothing was sent). */
void server_log(server *s, const conn *c, resp *r)
{
    if (s->log_fd < 0 || !r->log_req)
        return;
    char line[2048];
    uint64_t body = r->off > r->hdr_len ? r->off - r->hdr_len : 0;
    int status = r->built && r->off > 0 ? r->status : 499;
    size_t n = http_log_line(line, sizeof(line), c->peer, time(NULL), r->log_req, status, body, r->log_ref, r->log_ua);
    /* One write per line with O_APPEND: lines never interleave; a failed write loses that line only. */
    if (write(s->log_fd, line, n) < 0) {
    }
}

/* ------------------------------------------------------------------ responses */

resp *resp_new(conn *c, int head)
{
    resp *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "cfserve: out of memory\n");
        exit(1);
    }
    r->c = c;
    r->head = head;
    r->fd = -1;
    r->kind = RESP_INLINE;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nresp++;
    return r;
}

static void resp_free(resp *r)
{
    if (r->file)
        r->c->nfiles--;
    if (r->fd >= 0)
        close(r->fd);
    free(r->body);
    free(r->log_req);
    free(r->log_ref);
    free(r->log_ua);
    free(r->location);
    job_free(r->job);
    free(r);
}

void resp_set(resp *r, int status, const char *ctype, const char *body, size_t len)
{
    free(r->body);
    r->body = demo_xmalloc(len);
    memcpy(r->body, body, len);
    r->len = len;
    r->status = status;
    r->ctype = ctype;
    r->ready = 1;
}

/* A plain-text response "<status> <reason>: <text>\n" (just the text for 200). */
void resp_text(resp *r, int status, const char *fmt, ...)
{
    char msg[512];
    int n = 0;
    va_list ap;

    if (status != 200)
        n = snprintf(msg, sizeof(msg), "%d %s: ", status, http_status_str((enum http_status)status));
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    if (len == sizeof(msg) - 1)
        msg[len - 1] = '\n';
    if (status == 503 && !strstr(r->extra, "Retry-After"))
        snprintf(r->extra + strlen(r->extra), sizeof(r->extra) - strlen(r->extra), "Retry-After: 1\r\n");
    resp_set(r, status, "text/plain; charset=utf-8", msg, len);
}

/* Bytes of the body on the wire. */
static uint64_t resp_body_len(const resp *r)
{
    if (r->head || r->status == 304)
        return 0;
    return r->fd >= 0 ? r->flen : r->len;
}

static uint64_t resp_wire_len(const resp *r)
{
    return r->hdr_len + resp_body_len(r);
}

/* Build the status line and headers of a ready response. */
static void resp_build(conn *c, resp *r)
{
    if (r->built)
        return;
    r->built = 1;
    http_head h = {.status = r->status,
                   .ctype = r->status == 304 ? NULL : r->ctype,
                   .length = r->fd >= 0 ? r->flen : r->len,
                   .close = r->close,
                   .date = server_date(c->srv),
                   .extra = r->extra};
    r->hdr_len = http_head_build(r->hdr, sizeof(r->hdr), &h);
    if (r->hdr_len == 0) { /* cannot happen with our header sizes; answer something valid */
        r->status = 500;
        r->extra[0] = '\0';
        h.status = 500;
        h.extra = NULL;
        r->hdr_len = http_head_build(r->hdr, sizeof(r->hdr), &h);
    }
    if (r->head && r->body) {
        free(r->body);
        r->body = NULL;
    }
}

/* The outcome of a file-system job becomes the response. */
void resp_take_job(resp *r, fs_job *j)
{
    conn *c = r->c;
    memcpy(r->extra, j->extra, sizeof(j->extra));
    if (j->status == 200 || j->status == 206) {
        r->status = j->status;
        r->ctype = j->ctype;
        if (j->fd >= 0) {
            r->fd = j->fd;
            j->fd = -1;
            r->foff = j->off;
            r->flen = j->flen;
        } else {
            r->body = j->body; /* NULL for HEAD */
            r->len = j->body ? j->len : (size_t)j->flen;
            j->body = NULL;
            if (r->head)
                r->len = j->kind == FS_STATIC ? (size_t)j->flen : j->len;
        }
        r->ready = 1;
    } else if (j->status == 304) {
        r->status = 304;
        r->ready = 1;
    } else if (j->status == 301 && r->location) {
        snprintf(r->extra, sizeof(r->extra), "Location: %.400s\r\n", r->location);
        resp_text(r, 301, "moved to %.400s\n", r->location);
    } else {
        resp_text(r, j->status, "%s\n", j->msg);
    }
    if (r->file && r->fd < 0) { /* no descriptor held after all */
        r->file = 0;
        c->nfiles--;
    }
}

/* Done callback of every future a response waits for.  Loop thread. */
static void resp_done(cf_future_t *f, int status, void *data)
{
    resp *r = data;
    conn *c = r->c;
    server *s = c->srv;

    s->inflight--;
    if (!c->closed) {
        switch (r->kind) {
        case RESP_FIB: {
            int64_t v = 0;
            if (status == 0 && cf_future_result_i64(f, &v) == 0) {
                char num[32];
                int n = snprintf(num, sizeof(num), "%" PRId64 "\n", v);
                resp_set(r, 200, "text/plain; charset=utf-8", num, (size_t)n);
            } else {
                const char *msg = cf_future_error(f);
                resp_text(r, status == CF_ECANCELED || status == CF_EBROKEN ? 503 : 500, "fib(%ld): %s\n", r->arg,
                          msg ? msg : cf_strerror(status));
            }
            break;
        }
        case RESP_SLEEP:
            if (status == 0)
                resp_text(r, 200, "slept %ld ms\n", r->arg);
            else
                resp_text(r, 503, "sleep: %s\n", cf_strerror(status));
            break;
        case RESP_FS:
            if (status != 0) {
                const char *msg = cf_future_error(f);
                resp_text(r, status == CF_ECANCELED || status == CF_EBROKEN ? 503 : 500, "%s\n",
                          msg ? msg : cf_strerror(status));
                if (r->file) {
                    r->file = 0;
                    c->nfiles--;
                }
            } else {
                resp_take_job(r, r->job);
            }
            break;
        case RESP_INLINE:
            break;
        }
    }
    job_free(r->job);
    r->job = NULL;
    cf_future_unref(f);
    r->fut = NULL;
    r->ready = 1;
    if (!c->closed) {
        conn_flush(c);
        conn_timer_update(c);
    }
    conn_unref(c); /* the future's reference */
}

/* Let `r` wait for `f` (one reference, which the response takes over). */
void resp_wait(resp *r, resp_kind kind, cf_future_t *f)
{
    conn *c = r->c;
    r->kind = kind;
    r->fut = f;
    conn_ref(c);
    c->srv->inflight++;
    int rc = cf_future_on_done(f, resp_done, r, NULL);
    if (rc != 0) {
        fprintf(stderr, "cfserve: cf_future_on_done: %s\n", cf_strerror(rc));
        /* A task that already runs still uses its job: then leave the job (out-of-memory land). */
        if (cf_future_cancel(f) == 0 || cf_future_get_state(f) == CF_FUTURE_CANCELLED)
            job_free(r->job);
        r->job = NULL;
        cf_future_unref(f);
        r->fut = NULL;
        c->srv->inflight--;
        if (r->file) {
            r->file = 0;
            c->nfiles--;
        }
        resp_text(r, 500, "%s\n", cf_strerror(rc));
        conn_unref(c);
    }
}

/* ------------------------------------------------------------------ connections */

void conn_ref(conn *c)
{
    c->refs++;
}

void conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    while (c->head) {
        resp *r = c->head;
        c->head = r->next;
        server_log(c->srv, c, r);
        resp_free(r);
    }
    http_in_free(&c->in);
    server *s = c->srv;
    s->live_conns--;
    free(c);
    server_check_done(s);
}

/* Close now: pending futures are cancelled, their callbacks drop their references. */
void conn_close(conn *c)
{
    server *s = c->srv;
    if (c->closed)
        return;
    c->closed = 1;
    ev_io_stop(s->ev, &c->rio);
    ev_io_stop(s->ev, &c->wio);
    ev_timer_stop(s->ev, &c->timer);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejected)
        s->rejected_open--;
    else
        s->open_conns--;
    for (resp *r = c->head; r; r = r->next) {
        if (r->fut)
            cf_future_cancel(r->fut); /* 0, CF_EBUSY (stopping), CF_EALREADY: all fine */
    }
    conn_unref(c); /* the open reference */
}

/*
 * Every response is sent and no more requests will be read: close.  Unless the
 * peer already shut down its side, shut down ours and read and discard what
 * it still sends for a while, so that unread request bytes do not make the
 * kernel reset the connection before the peer read the response.
 */
static void conn_finish(conn *c)
{
    if (c->peer_eof || c->lingering) {
        if (c->peer_eof)
            conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    c->linger_until = ev_now(c->srv->ev) + CFS_LINGER;
    ev_io_stop(c->srv->ev, &c->wio);
    c->wblocked = 0;
    ev_io_start(c->srv->ev, &c->rio);
    conn_timer_update(c);
}

/* Queue an error response that ends the connection (parse error, limit, timeout). */
static void conn_fail(conn *c, int status, const char *what)
{
    c->rd_done = 1;
    c->in.in_message = c->in.in_headers = 0;
    ev_io_stop(c->srv->ev, &c->rio);
    resp *r = resp_new(c, 0);
    r->close = 1;
    resp_text(r, status, "%s\n", what);
}

void conn_stop_reading(conn *c)
{
    c->rd_done = 1;
    c->in.in_message = c->in.in_headers = 0;
    ev_io_stop(c->srv->ev, &c->rio);
    if (c->tail && !c->tail->built)
        c->tail->close = 1;
    conn_timer_update(c);
}

static int conn_over_limits(const conn *c)
{
    return c->nresp >= CFS_MAX_PIPELINE || c->nfiles >= CFS_MAX_FILES;
}

/* May the connection probe a half-closed peer now?  An answer is being worked on, nothing else is unsent. */
static int conn_probing(const conn *c)
{
    return c->peer_eof && !c->lingering && c->head && !c->head->ready && c->head->http11 && c->head->off == 0;
}

/* When is the connection's next deadline (0: none)? */
static ev_tstamp conn_deadline(const conn *c)
{
    const server *s = c->srv;
    if (c->lingering)
        return c->linger_until;
    if (c->wblocked) {
        ev_tstamp d = c->last_io + s->idle_timeout;
        if (s->min_rate > 0) {
            ev_tstamp r = c->out_start + s->idle_timeout + (double)c->out_bytes / s->min_rate;
            d = r < d ? r : d;
        }
        return d;
    }
    if (!c->rd_done && c->in.in_message) {
        ev_tstamp d = c->msg_start + s->request_timeout;
        if (c->in.in_headers) {
            ev_tstamp h = c->msg_start + s->header_timeout;
            return h < d ? h : d;
        }
        ev_tstamp i = c->last_io + s->idle_timeout;
        d = i < d ? i : d;
        if (s->min_rate > 0) {
            ev_tstamp r = c->body_start + s->idle_timeout + (double)c->in.req.body_len / s->min_rate;
            d = r < d ? r : d;
        }
        return d;
    }
    if (!c->head && !c->rd_done)
        return c->last_io + s->idle_timeout;
    if (conn_probing(c))
        return c->next_probe;
    return 0; /* waiting for our own work */
}

void conn_timer_update(conn *c)
{
    struct ev_loop *ev = c->srv->ev;
    if (c->closed)
        return;
    ev_tstamp deadline = conn_deadline(c), now = ev_now(ev);
    if (deadline == 0) {
        ev_timer_stop(ev, &c->timer);
        return;
    }
    if (ev_is_active(&c->timer) && now + ev_timer_remaining(ev, &c->timer) <= deadline + 0.001)
        return; /* fires earlier; the callback re-arms it for the real deadline */
    ev_timer_stop(ev, &c->timer);
    ev_timer_set(&c->timer, deadline > now ? deadline - now : 0, 0);
    ev_timer_start(ev, &c->timer);
}

/* Send "102 Processing" to a half-closed peer; a peer that has gone makes it fail: close. */
static void conn_probe(conn *c)
{
    static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
    int outq = 0, err = 0;
    socklen_t elen = sizeof(err);
    c->next_probe = ev_now(c->srv->ev) + CFS_PROBE_INTERVAL;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err != 0) {
        conn_close(c);
        return;
    }
    if (ioctl(c->fd, SIOCOUTQ, &outq) != 0 || outq != 0)
        return; /* earlier bytes not yet acknowledged: try later (a partial probe would corrupt the stream) */
    ssize_t w = send(c->fd, probe, sizeof(probe) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_close(c);
}

static void conn_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    conn *c = w->data;
    (void)revents;
    ev_tstamp deadline = conn_deadline(c);
    if (deadline == 0)
        return;
    if (deadline > ev_now(ev) + 0.001) {
        conn_timer_update(c);
        return;
    }
    conn_ref(c);
    if (conn_probing(c)) {
        conn_probe(c);
    } else if (c->lingering || c->wblocked || c->rd_done || !c->in.in_message) {
        if (c->wblocked)
            c->srv->timeouts++;
        conn_close(c); /* idle, not reading our output (fast enough), or done lingering */
    } else {
        c->srv->timeouts++;
        ev_tstamp now = ev_now(ev);
        const char *why = c->in.in_headers ? "the request head did not arrive in time"
                          : now >= c->msg_start + c->srv->request_timeout - 0.001 ? "the request took too long"
                                                                                  : "the request body is too slow";
        conn_fail(c, 408, why);
        conn_flush(c);
    }
    conn_timer_update(c);
    conn_unref(c);
}

/* Track the phases of the request being parsed, for the deadlines. */
static void conn_note_phase(conn *c)
{
    ev_tstamp now = ev_now(c->srv->ev);
    if (!c->in.in_message) {
        c->msg_start = c->body_start = 0;
        return;
    }
    if (c->msg_start == 0)
        c->msg_start = now;
    if (!c->in.in_headers && c->body_start == 0)
        c->body_start = now;
}

/* Parse what the read buffer holds. */
static void conn_parse(conn *c)
{
    size_t off = 0;
    while (off < c->buf_len && !c->rd_done && !c->paused) {
        size_t used = 0;
        int status = 0;
        const char *why = NULL;
        http_in_state st = http_in_execute(&c->in, c->buf + off, c->buf_len - off, &used, &status, &why);
        off += used;
        if (st == HTTP_IN_PAUSED) {
            if (c->paused && !c->rd_done) {
                conn_note_phase(c);
                break; /* resumed by conn_flush() */
            }
            off = c->buf_len;
            break;
        }
        if (st == HTTP_IN_ERROR) {
            conn_fail(c, status, why);
            break;
        }
        if (st == HTTP_IN_DONE) {
            c->rd_done = 1;
            break;
        }
        if (used == 0)
            break;
    }
    if (!c->rd_done)
        conn_note_phase(c);
    if (c->rd_done)
        off = c->buf_len;
    memmove(c->buf, c->buf + off, c->buf_len - off);
    c->buf_len -= off;
}

/* The parser has a whole request: queue its response and route it. */
static int on_request(http_in *in, http_req *req)
{
    conn *c = in->owner;
    server *s = c->srv;
    int keep = req->keep_alive && !req->upgrade && !s->stopping;

    c->last_io = ev_now(s->ev);
    c->msg_start = c->body_start = 0;
    resp *r = resp_new(c, req->method == HTTP_HEAD);
    r->close = !keep;
    r->http11 = req->major > 1 || (req->major == 1 && req->minor >= 1);
    if (s->log_fd >= 0) {
        r->log_req = http_request_line(req);
        r->log_ref = req->referer[0] ? demo_xstrndup(req->referer, strlen(req->referer)) : NULL;
        r->log_ua = req->ua[0] ? demo_xstrndup(req->ua, strlen(req->ua)) : NULL;
    }
    route(c, r, req);
    if (!keep) {
        c->rd_done = 1; /* the rest of the input is ignored */
        return 1;
    }
    if (conn_over_limits(c)) {
        c->paused = 1;
        return 1;
    }
    return 0;
}

/* Readable: a request's bytes, or EOF; or lingering bytes to discard. */
static void conn_read(conn *c)
{
    char scratch[4096];
    char *buf = c->lingering ? scratch : c->buf + c->buf_len;
    size_t room = c->lingering ? sizeof(scratch) : sizeof(c->buf) - c->buf_len;
    ssize_t n;

    if (room == 0) { /* the buffer only fills while paused, and then we do not read */
        ev_io_stop(c->srv->ev, &c->rio);
        return;
    }
    do
        n = recv(c->fd, buf, room, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c); /* ECONNRESET: the peer is gone; its work is cancelled */
        return;
    }
    if (c->lingering) {
        c->lingered += (size_t)n;
        if (n == 0 || c->lingered > CFS_LINGER_BYTES)
            conn_close(c);
        return;
    }
    if (n == 0) {
        /*
         * The peer is done sending (half-close, or gone).  A partial request
         * is dropped; answers to whole ones are still sent (see the probe).
         */
        c->peer_eof = 1;
        c->rd_done = 1;
        c->in.in_message = c->in.in_headers = 0;
        ev_io_stop(c->srv->ev, &c->rio);
        if (!c->head) {
            conn_close(c);
            return;
        }
        c->next_probe = ev_now(c->srv->ev); /* probe at once if the head answer is still being worked on */
        if (c->tail && !c->tail->built)
            c->tail->close = 1;
        return;
    }
    c->buf_len += (size_t)n;
    c->last_io = ev_now(c->srv->ev);
    conn_parse(c);
    if (c->rd_done || c->paused)
        ev_io_stop(c->srv->ev, &c->rio);
}

/* Account `w` bytes written from the head of the queue. */
static int conn_sent(conn *c, size_t w)
{
    server *s = c->srv;
    c->last_io = ev_now(s->ev);
    c->out_bytes += w;
    while (c->head && c->head->ready && c->head->built) {
        resp *r = c->head;
        uint64_t want = resp_wire_len(r) - r->off;
        uint64_t take = w < want ? w : want;
        r->off += take;
        w -= (size_t)take;
        if (r->off < resp_wire_len(r))
            break;
        int closing = r->close;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->nresp--;
        s->requests++;
        server_log(s, c, r);
        resp_free(r);
        if (closing) {
            c->rd_done = 1; /* a closing response is always the last one queued */
            return 1;
        }
    }
    return 0;
}

/* Send ready responses from the front of the queue. */
void conn_flush(conn *c)
{
    server *s = c->srv;
    if (c->closed || c->lingering)
        return;
    for (;;) {
        resp *h = c->head;
        if (!h || !h->ready)
            break;
        resp_build(c, h);
        ssize_t w;
        if (h->fd >= 0 && !h->head && h->off >= h->hdr_len) {
            uint64_t done = h->off - h->hdr_len, left = h->flen - done;
            off_t o = (off_t)(h->foff + done);
            w = sendfile(c->fd, h->fd, &o, left < CFS_SENDFILE_CHUNK ? (size_t)left : CFS_SENDFILE_CHUNK);
            if (w == 0) { /* the file shrank under us: the promised length cannot be kept */
                conn_close(c);
                return;
            }
        } else {
            struct iovec iov[CFS_IOV];
            int niov = 0, more = 0;
            for (resp *r = h; r && r->ready && niov + 2 <= CFS_IOV; r = r->next) {
                resp_build(c, r);
                uint64_t hdr_off = r->off < r->hdr_len ? r->off : r->hdr_len;
                if (hdr_off < r->hdr_len)
                    iov[niov++] = (struct iovec){r->hdr + hdr_off, r->hdr_len - hdr_off};
                if (r->fd >= 0 && !r->head) {
                    more = 1; /* its body follows with sendfile() */
                    break;
                }
                if (resp_body_len(r)) {
                    uint64_t body_off = r->off > r->hdr_len ? r->off - r->hdr_len : 0;
                    iov[niov++] = (struct iovec){r->body + body_off, r->len - body_off};
                }
                if (r->close)
                    break;
            }
            if (niov == 0)
                break;
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
            w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->wblocked) {
                c->wblocked = 1;
                if (c->out_start == 0) {
                    c->out_start = ev_now(s->ev);
                    c->out_bytes = 0;
                }
                ev_io_start(s->ev, &c->wio);
            }
            break;
        }
        if (w < 0) {
            conn_close(c); /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
        if (conn_sent(c, (size_t)w))
            break;
    }
    if (!c->head || !c->head->ready) {
        c->out_start = 0; /* nothing left to send: the next output phase starts afresh */
        if (c->wblocked) {
            c->wblocked = 0;
            ev_io_stop(s->ev, &c->wio);
        }
    }
    if (!c->head && c->rd_done) {
        conn_finish(c);
        return;
    }
    if (c->paused && !conn_over_limits(c) && !c->rd_done) {
        /* Resume the parser on what the buffer still holds, then the socket. */
        c->paused = 0;
        http_in_resume(&c->in);
        conn_parse(c);
        if (!c->rd_done && !c->paused)
            ev_io_start(s->ev, &c->rio);
        if (c->head && c->head->ready)
            conn_flush(c);
        else if (!c->head && c->rd_done)
            conn_finish(c);
    }
}

static void conn_io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    conn *c = w->data;
    (void)ev;
    conn_ref(c);
    if (revents & EV_READ) {
        conn_read(c);
        if (!c->closed)
            conn_flush(c);
    }
    if ((revents & EV_WRITE) && !c->closed) {
        c->wblocked = 0;
        ev_io_stop(c->srv->ev, &c->wio);
        conn_flush(c);
    }
    conn_timer_update(c);
    conn_unref(c);
}

void conn_new(server *s, int fd, const char *peer, int reject)
{
    conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    c->fd = fd;
    c->refs = 1;
    c->last_io = ev_now(s->ev);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    http_in_init(&c->in, c, on_request);
    ev_io_init(&c->rio, conn_io_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_io_cb, fd, EV_WRITE);
    ev_timer_init(&c->timer, conn_timer_cb, 0, 0);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->live_conns++;
    s->total_conns++;
    conn_ref(c); /* a failed write may close it below */
    if (reject) {
        c->rejected = 1;
        s->rejected_open++;
        s->rejected_conns++;
        conn_fail(c, 503, "too many connections");
        conn_flush(c);
    } else {
        s->open_conns++;
        ev_io_start(s->ev, &c->rio);
    }
    conn_timer_update(c);
    conn_unref(c);
}
