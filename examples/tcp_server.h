/*
 * tcp_server.h - a small line-per-connection libev TCP server, standing for
 * the server an application already has; tcp_offload.c adds cfutures to it.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef TCP_SERVER_H
#define TCP_SERVER_H
#include <ev.h>

struct client {
    ev_io io;   /* the connection, active until client_close() */
    void *busy; /* the application's request in flight, or NULL */
};

/* Accept clients on the listening socket `fd` (it exits with status 2 when fd is not one). */
void server_start(struct ev_loop *ev, int fd);
/* Stop accepting and close every client that is not busy. */
void server_stop(struct ev_loop *ev);
void client_close(struct ev_loop *ev, struct client *c);

/* The application's part: a client sent `line`; a busy client became readable (it left). */
void on_request(struct ev_loop *ev, struct client *c, const char *line);
void on_leave(struct ev_loop *ev, struct client *c);
#endif
