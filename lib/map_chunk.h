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

#include "cfutures/registry.h"

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
 * For the remote executor: re-encode the chunk p (len bytes, CHUNK or FIXED
 * form) in the SPARSE form (map_chunk.c) when its items all have one length
 * and that makes it at most 3/4 of its size.  Bytes [pin_off, pin_off +
 * pin_len) of the items (pin_len 0: none) must be the same in every item
 * for that (a function pointer the worker rewrites).  1 with *out (malloc'd)
 * and *out_len, 0 when the chunk stays as it is, CF_ENOMEM.
 */
int cf__chunk_compact(const uint8_t *p, size_t len, size_t pin_off, size_t pin_len, uint8_t **out, size_t *out_len);
/*
 * Write `fn` at offset `at` of every item of the chunk p, in any form (a
 * remote worker puts its own address of the items' function there): 0, or
 * -1 when the chunk is malformed, an item is too short or, in the SPARSE
 * form, `at` lies in the varying bytes.
 */
int cf__chunk_patch_items(uint8_t *p, size_t len, size_t at, cf_any_fn fn);

/*
 * Check a chunk's result buffer for `count` items: 0 with *off at the first
 * outcome record (read them with cf__chunk_result_next()) and *run_ns the
 * time the worker spent on the chunk, or -1 when it is malformed.
 */
int cf__chunk_result_open(const uint8_t *p, size_t len, size_t count, size_t *off, uint64_t *run_ns);
/* 1 when an opened result buffer is in the compact form: each outcome is just
 * its number's 8 bytes, read in place. */
int cf__chunk_result_numbers(const uint8_t *p, size_t len);
/*
 * The outcome of the next item at *off (advanced past it), in either result
 * form: 0, or CF_EINVAL when malformed.
 */
int cf__chunk_result_next(const uint8_t *p, size_t len, size_t *off, struct cf__outcome_view *v);

#endif
