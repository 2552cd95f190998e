/*
 * frame.h - the wire format between a process pool and its workers.
 *
 * Every message is a frame: a 24-byte header followed by `len` payload bytes.
 *
 *   u16 magic (CF__FRAME_MAGIC) | u16 type | u32 flags | u64 id | u64 len
 *
 *   TASK       parent -> worker  id = task id; payload = u64 fn | argument bytes
 *   ACK        worker -> parent  id = task id; payload = u64 start time (CLOCK_MONOTONIC ns,
 *                                 cf_now_ns()): the worker took the task then
 *   RESULT     worker -> parent  id = task id; payload = an encoded outcome, then u64 how
 *                                 long the task ran (ns, the worker's clock)
 *   READY      worker -> parent  the initializer succeeded
 *   INIT_FAIL  worker -> parent  payload = an encoded outcome (err, message)
 *   WAKE       worker -> parent  on the pipe: frames wait in the shared ring
 *   PAD        worker -> parent  in the ring: the rest of the ring's end is unused
 *
 * A worker's frames (ACK ... INIT_FAIL) carry their number in `flags` (0,
 * 1, 2 ... for each worker process): most go through a ring in shared
 * memory, the others (large ones, or when the ring is full) through the
 * pipe, and the number puts them back in order (pp.h).  TASK frames have
 * flags 0.
 *
 * Outcomes are encoded by the outcome codec (outcome.h), which also states
 * what may cross processes.  Integers are in host byte order: both ends are
 * the same program on the same machine.  The decoders reject anything
 * malformed with CF_EINVAL; they are fuzzed (tests/fuzz/).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_FRAME_H
#define CF_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "outcome.h"

#define CF__FRAME_MAGIC 0xCFF5u
#define CF__FRAME_HDR 24u
#define CF__FRAME_MAX_LEN (UINT64_C(1) << 34) /* 16 GiB */

enum cf__frame_type {
    CF__FR_TASK = 1,
    CF__FR_ACK = 2,
    CF__FR_RESULT = 3,
    CF__FR_READY = 4,
    CF__FR_INIT_FAIL = 5,
    CF__FR_WAKE = 6,
    CF__FR_PAD = 7,
};

struct cf__frame_hdr {
    uint16_t magic;
    uint16_t type;
    uint32_t flags;
    uint64_t id;
    uint64_t len;
};

void cf__frame_hdr_encode(uint8_t out[CF__FRAME_HDR], unsigned type, uint64_t id, uint64_t len);
/* The same with `flags` (a worker frame's number). */
void cf__frame_hdr_encode_flags(uint8_t out[CF__FRAME_HDR], unsigned type, uint32_t flags, uint64_t id, uint64_t len);
/* 0, or CF_EINVAL for a bad magic, unknown type or oversized length. */
int cf__frame_hdr_decode(const uint8_t in[CF__FRAME_HDR], struct cf__frame_hdr *h);

/*
 * Incremental reader: cf__frame_reader_want() says where the next bytes go
 * and how many are wanted; after reading n (<= wanted) bytes there, call
 * cf__frame_reader_got(): 1 when a frame is complete (h and payload, which
 * the caller then owns, or NULL when len is 0), 0 when more is needed,
 * CF_EINVAL for a malformed header, CF_ENOMEM.
 */
struct cf__frame_reader {
    uint8_t hdr[CF__FRAME_HDR];
    size_t hdr_got;
    struct cf__frame_hdr h;
    uint8_t *payload;
    size_t got;
    uint64_t max_len;
};

void cf__frame_reader_init(struct cf__frame_reader *r, uint64_t max_len);
void cf__frame_reader_want(const struct cf__frame_reader *r, uint8_t **where, size_t *n);
int cf__frame_reader_got(struct cf__frame_reader *r, size_t n, struct cf__frame_hdr *h, uint8_t **payload);
void cf__frame_reader_reset(struct cf__frame_reader *r);
/* 1 when the reader holds no part of a frame (the next byte starts a header). */
int cf__frame_reader_idle(const struct cf__frame_reader *r);

#endif /* CF_FRAME_H */
