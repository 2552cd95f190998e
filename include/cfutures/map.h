/*
 * cfutures/map.h - a lazy, bounded, chunked map over any executor.
 *
 * Python's Executor.map() submits its whole input at once.  cf_map reads the
 * input lazily - from an array or from a pull callback - in chunks, keeps at
 * most `window` chunks in flight, and delivers results in input order, each
 * item's error at its position.  An input of any length, even an endless one,
 * runs in flat memory.
 *
 * Items are bytes (an array element, or what the pull callback hands over);
 * each chunk travels to a worker as one task, so the same map runs on a
 * thread pool or on workers in other processes.  The item function reports
 * its result with cf_task_set_i64(), cf_task_set_f64() or cf_task_set_bytes()
 * (values with destructors cannot be mapped), or fails with cf_task_fail().
 *
 * Failed chunks.  When a chunk's task fails as a whole - its worker process
 * died, it timed out, its result could not be read - which of its items was
 * running is not known.  Every item of the chunk is then delivered with that
 * error, and the message names the chunk's range of items: "items 30-39:
 * worker 1 (pid 4242) killed by signal 9 (SIGKILL) while running task 3" (a
 * chunk of one item says "item 30: ..." in cf_map_error(), like a failed
 * item).  The items are not run again, since running an item twice may not
 * be harmless; use chunksize = 1 to have such failures pinned to single
 * items.
 *
 * Threads: every cf_map_* function runs on the loop thread; the item function
 * runs on a worker.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_MAP_H
#define CFUTURES_MAP_H

#include "common.h"
#include "executor.h"
#include "future.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_map cf_map_t;

/*
 * Item function.  Runs on a worker.  `item` points at the item's bytes
 * (8-byte aligned, `len` bytes).  Return as a cf_task_fn.  It may poll
 * cf_task_cancelled() to stop early when the map is stopped.
 */
typedef int (*cf_map_fn)(cf_task_t *task, const void *item, size_t len);

/*
 * Pull callback: produce the next item.  Set *item and *len, and return 1; return
 * 0 at the end of the input, or a negative code to end the map with that
 * error.  The bytes are copied before the next call.  Loop thread.
 */
typedef int (*cf_map_pull_fn)(void *src, const void **item, size_t *len);

typedef enum cf_map_on_error {
    CF_MAP_STOP = 0,    /* the first failed item ends the map; the rest is cancelled */
    CF_MAP_CONTINUE = 1 /* every item is delivered with its own status */
} cf_map_on_error;

typedef struct cf_map_opts {
    size_t chunksize;          /* items per task; 0 = auto: ceil(n / (4 x workers)) for arrays,
                                  adaptive (aiming at ~2 ms of work per chunk) for pull inputs */
    size_t window;             /* chunks in flight at most; 0 = automatic: at least 4 x workers chunks,
                                  and for small chunks more while fewer than 1024 x workers items and
                                  less than 8 MiB of item bytes are in flight (1024 x workers chunks
                                  at most), so that chunksize 1 keeps the workers busy */
    cf_map_on_error on_error;  /* default CF_MAP_STOP */
    double timeout;            /* seconds for the whole map, from creation; < 0 = none (default) */
} cf_map_opts;

/* Fill `o` with the defaults. */
CF_EXTERN void cf_map_opts_init(cf_map_opts *o);

/*
 * A map over `n` items of `item_size` bytes at `items` (the array must stay
 * valid and unchanged while the map lives).  opts NULL = defaults.
 * Returns 0, CF_EINVAL or CF_ENOMEM.  Work starts on the first
 * cf_map_next() or cf_map_each().
 */
CF_EXTERN int cf_map_new_array(cf_executor_t *ex, cf_map_fn fn, const void *items, size_t n, size_t item_size,
                               const cf_map_opts *opts, cf_map_t **out);

/* A map over the items a pull callback produces (see cf_map_pull_fn). */
CF_EXTERN int cf_map_new(cf_executor_t *ex, cf_map_fn fn, cf_map_pull_fn pull, void *src, const cf_map_opts *opts,
                         cf_map_t **out);

/* One delivered result.  Pointers are valid until the next call / until the callback returns. */
typedef struct cf_map_result {
    size_t index;      /* position in the input */
    int status;        /* 0, or the item's error code */
    const char *error; /* message when status != 0 */
    int64_t i64;       /* the value as stored by the item function: i64 and f64 */
    double f64;        /*   are the same 8 bytes read two ways */
    const void *data;  /* a bytes value (cf_task_set_bytes()), else NULL */
    size_t len;
} cf_map_result;

/*
 * Blocking iterator: the next result in input order, running the loop as
 * needed.  Returns 0 with *r filled; CF_EOF after the last; the map's error
 * once it ended early (a failed item under CF_MAP_STOP - delivered first,
 * with its status - a pull error, a submit error, or CF_ETIMEDOUT); CF_EDEADLK
 * inside a loop callback; CF_EINVAL in callback mode.
 */
CF_EXTERN int cf_map_next(cf_map_t *m, cf_map_result *r);

/*
 * Callback for cf_map_each(): one result, in input order, on the loop
 * thread.  Return 0 to go on, non-zero to stop the map (what is in flight
 * is cancelled).
 */
typedef int (*cf_map_cb)(cf_map_t *m, const cf_map_result *r, void *data);

/*
 * Callback mode: deliver every result through cb.  *done (optional) finishes
 * with the number of results delivered when the map ends normally or was
 * stopped by cb, or fails with the map's error.  Cancelling *done stops the
 * map.  Returns 0, CF_EINVAL (already iterating) or CF_ENOMEM.
 */
CF_EXTERN int cf_map_each(cf_map_t *m, cf_map_cb cb, void *data, cf_future_t **done);

/* The map's outcome so far: 0, or the error that ended it. */
CF_EXTERN int cf_map_status(const cf_map_t *m);

/* Message for cf_map_status() ("item 7: Don't do this", "items 30-39: ..." for a
 * failed chunk, see above), or NULL. */
CF_EXTERN const char *cf_map_error(const cf_map_t *m);

/* Chunk size in use now (it changes over time for adaptive chunking). */
CF_EXTERN size_t cf_map_chunksize(const cf_map_t *m);

/*
 * Stop and free the map.  Chunks still queued are cancelled, running ones are
 * asked to stop; no callback runs afterwards.  Safe from inside cf_map_each's
 * callback.
 */
CF_EXTERN void cf_map_free(cf_map_t *m);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_MAP_H */
