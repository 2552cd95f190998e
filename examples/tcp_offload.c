/*
 * tcp_offload.c - cfutures added to an existing libev TCP server (tcp_server.c):
 * each request, a number n, runs fib(n) in a worker process and the answer goes
 * back; a client that leaves first has its task cancelled; SIGTERM shuts down
 * in order.  It listens on descriptor 3, as socket activation passes it
 * (systemd-socket-activate -l 7000 ./tcp_offload).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "tcp_server.h"
#include <cfutures.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static cf_process_pool_t *pool; /* where requests are offloaded */

static int64_t fib(int64_t n) /* runs in a worker process */
{
    return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

static void on_answer(cf_future_t *f, int status, void *data) /* loop thread, once per request */
{
    struct client *c = data;
    fprintf(stderr, "%s\n", status == 0 ? "answered" : cf_err_name(status));
    if (status == 0)
        dprintf(c->io.fd, "%lld\n", (long long)cf_future_i64(f));
    client_close(cf_loop_ev(cf_future_loop(f)), c); /* one request per connection */
    c->busy = NULL;
    cf_future_unref(f); /* the reference cf_submit_i64_i64() gave */
}

void on_request(struct ev_loop *ev, struct client *c, const char *line)
{
    cf_future_t *f = NULL;
    if (cf_submit_i64_i64(cf_process_pool_executor(pool), fib, atoll(line), &f) != 0 ||
        cf_future_on_done(f, on_answer, c, NULL) != 0) {
        cf_futures_unref(&f, 1); /* not submitted, or out of memory: drop it, if any */
        client_close(ev, c);
    } else {
        c->busy = f;
    }
}

void on_leave(struct ev_loop *ev, struct client *c)
{
    ev_io_stop(ev, &c->io);   /* the answer has nobody to go to: */
    cf_future_cancel(c->busy); /* the worker is stopped, on_answer() gets CF_ECANCELED */
}

static void on_sigterm(struct ev_loop *ev, ev_signal *w, int revents)
{
    ev_break(ev, EVBREAK_ALL);
}

int main(void)
{
    struct ev_loop *ev = ev_default_loop(0); /* the server's own loop */
    cf_loop_t *loop;
    ev_signal sig;

    server_start(ev, 3);
    if (cf_loop_new(ev, &loop) != 0 || cf_process_pool_new(loop, NULL, &pool) != 0)
        return 1;
    cf_loop_set_batch(loop, 64); /* at most 64 answers per loop turn: accepts and reads go on between */
    signal(SIGPIPE, SIG_IGN); /* a client may leave before its answer is written */
    ev_signal_init(&sig, on_sigterm, SIGTERM);
    ev_signal_start(ev, &sig);
    ev_run(ev, 0); /* serves until SIGTERM, then shuts down in this order: */
    ev_signal_stop(ev, &sig);
    server_stop(ev);            /* 1: no new clients; the idle ones closed */
    cf_process_pool_free(pool); /* 2: running tasks cancelled, the workers stopped and reaped */
    ev_run(ev, 0);              /* 3: until on_answer() has closed the last busy client */
    fprintf(stderr, "shut down\n");
    return cf_loop_close(loop) != 0; /* 4: no future is left: unbind the loop */
}
