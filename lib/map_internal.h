/*
 * map_internal.h - the state of one cf_map, shared by map.c (the window:
 * chunks in flight, delivery in order, ending) and map_api.c (the public
 * functions and callback mode).  Loop thread only; nothing here is locked.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_MAP_INTERNAL_H
#define CF_MAP_INTERNAL_H

#include "internal.h"

#include <cfutures/map.h>

struct chunk {
    cf_future_t *f;
    size_t first; /* input index of the first item */
    size_t count;
    size_t bytes; /* the chunk's argument buffer */
    size_t pos; /* items delivered */
    size_t off; /* read offset in the result buffer */
    const uint8_t *res; /* the result buffer (the future's bytes), once opened */
    size_t res_len;
    int one_number; /* a one-item chunk answered with its number itself (map_chunk.c) */
    int numbers;    /* the result buffer is in the compact form of numbers only */
    /* Set when the first item is taken: 0, or the error of the whole chunk
     * (its task failed: a worker died, a timeout...), with its message. */
    int err;
    const char *error; /* msg, or a message owned by f */
    char *msg;         /* "items 30-39: ..." (malloc'd) for a chunk of several items */
};

struct cf_map {
    cf_executor_t *ex;
    cf_loop_t *loop;
    cf_map_fn fn;
    cf_map_opts o;
    /* input */
    cf_map_pull_fn pull;
    void *src;
    const uint8_t *items;
    size_t n_items, item_size;
    int is_array;
    size_t next_item;
    int src_end;
    int pull_err;
    /* chunks in flight */
    size_t chunksize;
    int adaptive;
    size_t window;         /* chunks always allowed in flight */
    size_t ring_cap;       /* chunks in flight at most (the ring's size) */
    size_t item_window;    /* beyond `window`: more chunks while fewer items than this are in flight */
    size_t items_inflight; /* items of the chunks in the ring */
    size_t bytes_inflight; /* argument bytes of the chunks in the ring */
    struct chunk *ring;
    size_t head, inflight;
    /* outcome */
    int ended;
    int status;
    char *errmsg;
    cf_future_t *cur_f; /* backs the last delivered result */
    char *cur_msg;      /* the same, for a failed chunk's message */
    int cur_ranged;     /* the last result's error already names its chunk's range */
    size_t delivered;
    ev_timer timer;
    int timer_on;
    /* callback mode */
    cf_map_cb cb;
    void *cbdata;
    cf_future_t *done;
    struct cf__work kick;
    int kick_pending;
    int pumping;
    int free_later;
};

/* map.c: the window. */
void cf__map_window_init(cf_map_t *m, const cf_map_opts *o, size_t workers);
void cf__map_release_cur(cf_map_t *m);
void cf__map_end(cf_map_t *m, int err, char *msg); /* takes msg (malloc'd or NULL) */
void cf__map_fill(cf_map_t *m);
int cf__map_take(cf_map_t *m, cf_map_result *r);
void cf__map_after_delivery(cf_map_t *m, const cf_map_result *r);
void cf__map_end_of_input(cf_map_t *m);

/* map_api.c: the done callback each chunk carries in callback mode. */
void cf__map_chunk_done(cf_future_t *f, int status, void *data);

#endif
