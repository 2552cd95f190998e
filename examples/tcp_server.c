/*
 * tcp_server.c - the plain libev server of tcp_server.h: one descriptor-indexed
 * table of clients, one request line per connection.  No cfutures here.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "tcp_server.h"
#include <err.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 256
static struct client clients[MAX_CLIENTS]; /* by descriptor */
static ev_io listener;

void client_close(struct ev_loop *ev, struct client *c)
{
    ev_io_stop(ev, &c->io);
    close(c->io.fd);
}

static void on_read(struct ev_loop *ev, ev_io *w, int revents)
{
    struct client *c = (struct client *)w;
    char line[32] = "";
    if (c->busy)
        on_leave(ev, c); /* a client sends one line, then waits: it hung up */
    else if (read(w->fd, line, sizeof(line) - 1) > 0)
        on_request(ev, c, line);
    else
        client_close(ev, c);
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
    int fd = accept(w->fd, NULL, NULL);
    if (fd >= MAX_CLIENTS) { /* more clients than this server serves */
        close(fd);
    } else if (fd >= 0) {
        ev_io_init(&clients[fd].io, on_read, fd, EV_READ);
        ev_io_start(ev, &clients[fd].io);
    }
}

void server_start(struct ev_loop *ev, int fd)
{
    if (listen(fd, 16) != 0) /* it listens already: this checks that it is a socket */
        err(2, "descriptor %d (the listening socket)", fd);
    ev_io_init(&listener, on_accept, fd, EV_READ);
    ev_io_start(ev, &listener);
}

void server_stop(struct ev_loop *ev)
{
    ev_io_stop(ev, &listener);
    close(listener.fd);
    for (int fd = 0; fd < MAX_CLIENTS; fd++)
        if (ev_is_active(&clients[fd].io) && !clients[fd].busy)
            client_close(ev, &clients[fd]);
}
