/*
 * outcome.h - the one byte encoding of a task's outcome (struct cf__outcome).
 *
 * Whatever carries an outcome as bytes - a process-pool RESULT or INIT_FAIL
 * frame (frame.h), the per-item records of a cf_map chunk (map.c) - uses this
 * codec, so the layout, its checks and its rules live here only.
 *
 * Layout.  The bytes come first so that a receiver can keep the buffer
 * itself as the bytes value (cf__outcome_decode()):
 *
 *   bytes (len) | message (msglen, NUL-terminated) |
 *   i32 err | u32 kind | u64 raw | u64 len | u64 msglen      (32-byte trailer)
 *
 *   kind 0: a number; raw holds the value's 8 bytes (i64 or f64), len = 0.
 *   kind 1: bytes; `len` bytes at the start, raw = 0.
 *   err < 0: a failure; only the code and the message travel (kind 0,
 *   raw 0, len 0): a failed outcome's value is never read.
 *
 * Integers are in host byte order: both ends are the same program on the
 * same machine.  Exactly one encoding stands for each outcome, and the
 * decoders accept only that one: anything else is CF_EINVAL.  The decoders
 * are fuzzed (tests/fuzz/fuzz_outcome.c).
 *
 * No pointer values cross.  An outcome is encoded to be read in another
 * address space (a worker process) or after the worker's memory is gone, so
 * a successful outcome must be a number or bytes: a pointer value with a
 * destructor (cf_task_set_result()) means nothing there.  Whoever runs a
 * task whose outcome will be encoded calls cf__outcome_make_portable() on it
 * first; the encoder asserts that it was.  (A pointer without a destructor
 * is sent as its 8 bytes, like any number: the task chose to return bits.)
 *
 * Records.  Several outcomes in one buffer (a cf_map chunk's results) are
 * records:  u64 size | encoded outcome (size bytes) | zero padding to 8.
 * The bytes value of every record starts 8-byte aligned when the buffer
 * and the record's offset are.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_OUTCOME_H
#define CF_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

struct cf__outcome;

#define CF__OUTCOME_TRAILER 32u
#define CF__OUTCOME_REC_HDR 8u

/*
 * A decoded outcome that points into the encoded buffer (no copy, no
 * allocation): valid as long as the buffer.
 */
struct cf__outcome_view {
    int err;      /* 0, or a negative code */
    int is_bytes; /* the value is `len` bytes at `data` */
    int64_t i64;  /* a number's 8 bytes, read as i64 ... */
    double f64;   /* ... and as f64 (0 for bytes and failures) */
    const uint8_t *data;
    size_t len;
    const char *msg; /* the message (NUL-terminated), or NULL */
};

/*
 * Make `o` encodable: a successful outcome whose value is a pointer with a
 * destructor becomes a CF_ENOTSUP failure ("<who> must produce a number or
 * bytes (cf_task_set_bytes), not a pointer with a destructor"), the value
 * destroyed.  `who` names the producer ("a mapped item").  Returns o->err.
 */
int cf__outcome_make_portable(struct cf__outcome *o, const char *who);

/* Size of the encoding of `o` (portable, see above), and encoding into `out` (that size). */
size_t cf__outcome_encoded_size(const struct cf__outcome *o);
void cf__outcome_encode(const struct cf__outcome *o, uint8_t *out);

/* Check `n` bytes at `buf` and describe them in *v: 0 or CF_EINVAL. */
int cf__outcome_parse(const uint8_t *buf, size_t n, struct cf__outcome_view *v);

/*
 * Decode an outcome from `buf` (malloc'd, `n` bytes).  Takes ownership of buf:
 * a bytes value keeps it as value.ptr, otherwise it is freed.  The message is
 * copied.  Returns 0, CF_EINVAL (malformed; buf freed) or CF_ENOMEM (buf freed).
 */
int cf__outcome_decode(uint8_t *buf, size_t n, struct cf__outcome *o);
/*
 * The same for a buffer the caller keeps (a frame parsed in place): a bytes
 * value and the message are copied.  Returns 0, CF_EINVAL or CF_ENOMEM.
 */
int cf__outcome_decode_copy(const uint8_t *buf, size_t n, struct cf__outcome *o);

/* Size of `o` as a record (header, encoding, padding), and writing it at `out`. */
size_t cf__outcome_record_size(const struct cf__outcome *o);
void cf__outcome_record_put(const struct cf__outcome *o, uint8_t *out);
/*
 * Parse the record at offset *off of the `n` bytes at `buf` into *v and move
 * *off past it.  Returns 0, or CF_EINVAL (truncated or malformed; *off is
 * left alone).
 */
int cf__outcome_record_next(const uint8_t *buf, size_t n, size_t *off, struct cf__outcome_view *v);

#endif /* CF_OUTCOME_H */
