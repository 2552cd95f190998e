/*
 * map_chunk.h - the byte format of cf_map chunks and their results, shared
 * by the map (loop side, map.c) and the chunk task (worker side,
 * map_chunk.c).  See map_chunk.c for the layout.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_MAP_CHUNK_H
#define CF_MAP_CHUNK_H

#include "internal.h"
#include "outcome.h"

/* A growing chunk buffer; `oom` is set (and sticks) when a growth failed. */
struct cf__chunk_buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
};

/* Start a chunk for item function `fn`. */
void cf__chunk_begin(struct cf__chunk_buf *b, cf_map_fn fn);
/* Append one item of `len` bytes. */
void cf__chunk_add(struct cf__chunk_buf *b, const void *item, size_t len);
/*
 * Or: start a chunk of up to `max_count` items of `item_len` (> 0) bytes
 * each (an array's), room made for all of them, and append `n` items that
 * lie back to back at `items`.
 */
void cf__chunk_begin_array(struct cf__chunk_buf *b, cf_map_fn fn, size_t item_len, size_t max_count);
void cf__chunk_add_array(struct cf__chunk_buf *b, const void *items, size_t item_len, size_t n);
/* Write the item count into the header: 0, or -1 (buffer freed) when out of memory. */
int cf__chunk_end(struct cf__chunk_buf *b, size_t count);

/*
 * Check a chunk's result buffer for `count` items: 0 with *off at the first
 * outcome record (read them with cf__outcome_record_next()) and *run_ns the
 * time the worker spent on the chunk, or -1 when it is malformed.
 */
int cf__chunk_result_open(const uint8_t *p, size_t len, size_t count, size_t *off, uint64_t *run_ns);
/*
 * The outcome of the next item at *off (advanced past it), in either result
 * form: 0, or CF_EINVAL when malformed.
 */
int cf__chunk_result_next(const uint8_t *p, size_t len, size_t *off, struct cf__outcome_view *v);

#endif
