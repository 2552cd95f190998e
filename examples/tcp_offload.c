/*
 * tcp_offload.c - cfutures in an existing libev TCP server: a number sent by
 * a client is answered with fib(number) computed in a worker process; when the
 * client leaves first its task is cancelled.  SIGTERM shuts down, in order.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct client {
    ev_io io;         /* first member: the watcher is the client */
    cf_future_t *job; /* the request in flight, or NULL */
    int64_t n;
};
static cf_executor_t *pool;       /* where requests are offloaded */
static struct client *conns[256]; /* open connections by descriptor, for the shutdown */

static int64_t fib(int64_t n) /* runs in a worker process */
{
    return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

static void drop(struct ev_loop *ev, struct client *c) /* the client left, or the server stops */
{
    ev_io_stop(ev, &c->io);
    close(c->io.fd);
    conns[c->io.fd] = NULL, c->io.fd = -1;
    if (c->job) /* the answer is no longer wanted: stop the work; on_answer() frees c */
        cf_future_cancel(c->job);
    else
        free(c);
}

static void on_answer(cf_future_t *f, int status, void *data) /* on the loop thread */
{
    struct client *c = data;
    printf("fib(%lld): %s\n", (long long)c->n, status == 0 ? "answered" : cf_err_name(status));
    if (status == 0 && c->io.fd >= 0)
        dprintf(c->io.fd, "%lld\n", (long long)cf_future_i64(f));
    cf_future_unref(f), c->job = NULL;
    if (c->io.fd < 0)
        free(c);
}

static void on_read(struct ev_loop *ev, ev_io *w, int revents)
{
    struct client *c = (struct client *)w;
    char buf[32] = "";
    if (c->job || read(w->fd, buf, sizeof(buf) - 1) <= 0) /* left, or did not wait for its answer */
        return drop(ev, c);
    c->n = strtoll(buf, NULL, 10);
    if (cf_submit_i64_i64(pool, fib, c->n, &c->job) != 0) /* c->job stays NULL */
        return drop(ev, c);
    if (cf_future_on_done(c->job, on_answer, c, NULL) != 0) /* out of memory: drop the request too */
        cf_future_unref(c->job), c->job = NULL, drop(ev, c);
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
    int fd = accept(w->fd, NULL, NULL);
    if (fd < 0)
        return;
    if (fd >= 256 || !(conns[fd] = calloc(1, sizeof(struct client))))
        return (void)close(fd);
    ev_io_init(&conns[fd]->io, on_read, fd, EV_READ);
    ev_io_start(ev, &conns[fd]->io);
}

static void on_sigterm(struct ev_loop *ev, ev_signal *w, int revents)
{
    ev_break(ev, EVBREAK_ALL);
}

int main(void)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO); /* the server's own loop */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cf_loop_t *loop;
    cf_process_pool_t *pp;
    ev_io lio;
    ev_signal sig;

    /* cfutures first: the pool's fork server is forked before the server opens anything. */
    if (!ev || cf_loop_new(ev, &loop) != 0 || cf_process_pool_new(loop, NULL, &pp) != 0)
        return 1;
    pool = cf_process_pool_executor(pp);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(lfd, (struct sockaddr *)&a, alen) || listen(lfd, 16) || getsockname(lfd, (struct sockaddr *)&a, &alen))
        return 1;
    signal(SIGPIPE, SIG_IGN); /* a client may leave before its answer is written */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    ev_io_init(&lio, on_accept, lfd, EV_READ);
    ev_io_start(ev, &lio);
    ev_signal_init(&sig, on_sigterm, SIGTERM);
    ev_signal_start(ev, &sig);
    ev_run(ev, 0);

    ev_io_stop(ev, &lio), ev_signal_stop(ev, &sig), close(lfd); /* shutdown 1: no new clients */
    for (int fd = 0; fd < 256; fd++)                           /* 2: close clients, cancel their tasks */
        if (conns[fd])
            drop(ev, conns[fd]);
    cf_process_pool_free(pp);          /* 3: the workers and the fork server, stopped and reaped */
    ev_run(ev, 0);                     /* 4: the cancelled tasks' callbacks run (and free their clients) */
    if (cf_loop_close(loop) != 0)      /* 5: the binding (no future is left), then the loop */
        return 1;
    ev_loop_destroy(ev);
    printf("shut down\n");
}
