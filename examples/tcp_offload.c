/*
 * tcp_offload.c - cfutures in an existing libev TCP server: a client sends a
 * number, fib(number) runs in a worker process, the answer goes back; a client
 * that leaves first has its task cancelled.  SIGTERM shuts down, in order.
 * The listening socket is descriptor 3, as systemd socket activation passes it
 * (systemd-socket-activate -l 7000 ./tcp_offload); tcp_offload_test.py runs it.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct client {
    ev_io io;         /* watches the connection; stopped once the client left or was closed */
    cf_future_t *job; /* the request in flight, or NULL */
    int64_t n;
} clients[256]; /* by descriptor */
static ev_io listener;
static cf_process_pool_t *pool; /* where requests are offloaded */

static int64_t fib(int64_t n) /* runs in a worker process */
{
    return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

static void close_client(struct ev_loop *ev, struct client *c)
{
    ev_io_stop(ev, &c->io);
    close(c->io.fd);
    cf_futures_unref(&c->job, 1); /* drops the request's future, if any; c->job = NULL */
}

static void on_answer(cf_future_t *f, int status, void *data) /* loop thread, once per request */
{
    struct client *c = data;
    fprintf(stderr, "fib(%lld): %s\n", (long long)c->n, status == 0 ? "answered" : cf_err_name(status));
    if (status == 0)
        dprintf(c->io.fd, "%lld\n", (long long)cf_future_i64(f));
    close_client(cf_loop_ev(cf_future_loop(f)), c); /* one request per connection */
}

static void on_read(struct ev_loop *ev, ev_io *w, int revents) /* a request, or the client left */
{
    struct client *c = (struct client *)w;
    char buf[32] = "";
    if (c->job) { /* it left (or sent more) before its answer: stop the work */
        ev_io_stop(ev, w);
        cf_future_cancel(c->job); /* on_answer() then gets CF_ECANCELED */
    } else if (read(w->fd, buf, sizeof(buf) - 1) <= 0) {
        close_client(ev, c);
    } else {
        c->n = strtoll(buf, NULL, 10);
        if (cf_submit_i64_i64(cf_process_pool_executor(pool), fib, c->n, &c->job) != 0 ||
            cf_future_on_done(c->job, on_answer, c, NULL) != 0)
            close_client(ev, c); /* not submitted, or out of memory */
    }
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
    int fd = accept(w->fd, NULL, NULL);
    if (fd >= 256) { /* more clients than this server serves */
        close(fd);
    } else if (fd >= 0) {
        ev_io_init(&clients[fd].io, on_read, fd, EV_READ);
        ev_io_start(ev, &clients[fd].io);
    }
}

static void on_sigterm(struct ev_loop *ev, ev_signal *w, int revents) /* the shutdown, in order */
{
    ev_signal_stop(ev, w); /* 1: no more signals, no new clients */
    ev_io_stop(ev, &listener);
    close(listener.fd);
    for (int fd = 0; fd < 256; fd++) /* 2: close the clients that wait for no answer */
        if (ev_is_active(&clients[fd].io) && !clients[fd].job)
            close_client(ev, &clients[fd]);
    cf_process_pool_free(pool); /* 3: every task cancelled, the workers stopped and reaped */
}

int main(void)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO); /* the server's own loop */
    cf_loop_t *loop;
    ev_signal sig;

    if (listen(3, 16) != 0) /* it listens already: this checks that it is a socket */
        err(2, "descriptor 3 (the listening socket)");
    if (!ev || cf_loop_new(ev, &loop) != 0 || cf_process_pool_new(loop, NULL, &pool) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN); /* a client may leave before its answer is written */
    ev_io_init(&listener, on_accept, 3, EV_READ);
    ev_io_start(ev, &listener);
    ev_signal_init(&sig, on_sigterm, SIGTERM);
    ev_signal_start(ev, &sig);
    ev_run(ev, 0);                /* 4: after on_sigterm(), until the cancelled tasks' callbacks closed their clients */
    if (cf_loop_close(loop) != 0) /* 5: the binding (no future is left), then the loop */
        return 1;
    ev_loop_destroy(ev);
    fprintf(stderr, "shut down\n");
}
