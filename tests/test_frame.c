/*
 * test_frame.c - the process-pool wire format (lib/frame.h): headers, the
 * incremental reader, outcome encoding, and rejection of malformed input.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

#include "internal.h"

#include "frame.h"

static void test_header_round_trip(void **state)
{
    uint8_t buf[CF__FRAME_HDR];
    struct cf__frame_hdr h;

    (void)state;
    cf__frame_hdr_encode(buf, CF__FR_RESULT, 42, 1000);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), 0);
    assert_int_equal(h.type, CF__FR_RESULT);
    assert_int_equal(h.id, 42);
    assert_int_equal(h.len, 1000);
}

static void test_bad_headers_rejected(void **state)
{
    uint8_t buf[CF__FRAME_HDR];
    struct cf__frame_hdr h;
    uint16_t type = 99;
    uint32_t flags = 1;

    (void)state;
    cf__frame_hdr_encode(buf, CF__FR_TASK, 1, 10);
    buf[0] ^= 0xff; /* magic */
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
    cf__frame_hdr_encode(buf, CF__FR_TASK, 1, 10);
    memcpy(buf + 2, &type, 2);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
    cf__frame_hdr_encode(buf, CF__FR_TASK, 1, 10);
    memcpy(buf + 4, &flags, 4);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
    cf__frame_hdr_encode(buf, CF__FR_TASK, 1, CF__FRAME_MAX_LEN + 1);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
    type = CF__FR_PAD + 1;
    cf__frame_hdr_encode(buf, CF__FR_ACK, 1, 0);
    memcpy(buf + 2, &type, 2);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
}

/* A worker's frames carry their number in flags; WAKE and PAD are frames too. */
static void test_worker_frames_are_numbered(void **state)
{
    uint8_t buf[CF__FRAME_HDR];
    struct cf__frame_hdr h;

    (void)state;
    cf__frame_hdr_encode_flags(buf, CF__FR_RESULT, 77, 5, 40);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), 0);
    assert_int_equal(h.type, CF__FR_RESULT);
    assert_int_equal(h.flags, 77);
    assert_int_equal(h.id, 5);
    assert_int_equal(h.len, 40);
    cf__frame_hdr_encode(buf, CF__FR_WAKE, 0, 0);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), 0);
    assert_int_equal(h.type, CF__FR_WAKE);
    cf__frame_hdr_encode(buf, CF__FR_PAD, 0, 0);
    assert_int_equal(cf__frame_hdr_decode(buf, &h), 0);
    assert_int_equal(h.type, CF__FR_PAD);
    cf__frame_hdr_encode_flags(buf, CF__FR_TASK, 1, 5, 40); /* TASK frames are not numbered */
    assert_int_equal(cf__frame_hdr_decode(buf, &h), CF_EINVAL);
}

/* Feed `n` bytes to a reader in pieces of `step`; count the frames. */
static int feed(struct cf__frame_reader *r, const uint8_t *data, size_t n, size_t step, uint64_t *ids, int max)
{
    size_t off = 0;
    int frames = 0;

    while (off < n) {
        uint8_t *where, *payload;
        struct cf__frame_hdr h;
        size_t want, take;
        int rc;

        cf__frame_reader_want(r, &where, &want);
        take = want < step ? want : step;
        if (take > n - off)
            take = n - off;
        memcpy(where, data + off, take);
        off += take;
        rc = cf__frame_reader_got(r, take, &h, &payload);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (frames < max)
                ids[frames] = h.id + (payload ? payload[0] : 0);
            frames++;
            free(payload);
        }
    }
    return frames;
}

static void test_reader_any_chunking(void **state)
{
    uint8_t stream[3 * CF__FRAME_HDR + 5 + 1];
    struct cf__frame_reader r;
    uint64_t ids[3];
    size_t off = 0;

    (void)state;
    cf__frame_hdr_encode(stream, CF__FR_ACK, 1, 0);
    off += CF__FRAME_HDR;
    cf__frame_hdr_encode(stream + off, CF__FR_RESULT, 10, 5);
    off += CF__FRAME_HDR;
    memcpy(stream + off, "\x05xyzw", 5);
    off += 5;
    cf__frame_hdr_encode(stream + off, CF__FR_READY, 20, 1);
    off += CF__FRAME_HDR;
    stream[off++] = 7;
    for (size_t step = 1; step <= sizeof(stream); step++) {
        cf__frame_reader_init(&r, CF__FRAME_MAX_LEN);
        assert_int_equal(feed(&r, stream, off, step, ids, 3), 3);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 15);
        assert_int_equal(ids[2], 27);
        cf__frame_reader_reset(&r);
    }
    /* Idle only between frames. */
    cf__frame_reader_init(&r, CF__FRAME_MAX_LEN);
    assert_true(cf__frame_reader_idle(&r));
    assert_int_equal(feed(&r, stream, CF__FRAME_HDR + 3, 64, ids, 3), 1);
    assert_false(cf__frame_reader_idle(&r));
    cf__frame_reader_reset(&r);
    assert_true(cf__frame_reader_idle(&r));
    /* A reader with a smaller limit refuses a large frame. */
    cf__frame_reader_init(&r, 4);
    assert_int_equal(feed(&r, stream, off, 64, ids, 3), CF_EINVAL);
    cf__frame_reader_reset(&r);
}

static void round_trip(const struct cf__outcome *in, struct cf__outcome *out)
{
    size_t n = cf__outcome_encoded_size(in);
    uint8_t *buf = malloc(n);

    assert_non_null(buf);
    cf__outcome_encode(in, buf);
    assert_int_equal(cf__outcome_decode(buf, n, out), 0);
}

/* Decode a copy: the caller's buffer is left alone and may go away. */
static void round_trip_copy(const struct cf__outcome *in, struct cf__outcome *out)
{
    size_t n = cf__outcome_encoded_size(in);
    uint8_t *buf = malloc(n);

    assert_non_null(buf);
    cf__outcome_encode(in, buf);
    assert_int_equal(cf__outcome_decode_copy(buf, n, out), 0);
    memset(buf, 0xa5, n);
    free(buf);
}

static void test_outcome_decode_copy(void **state)
{
    struct cf__outcome in, out;
    char bytes[] = "copied bytes";

    (void)state;
    memset(&in, 0, sizeof(in));
    in.value.f64 = 2.5;
    round_trip_copy(&in, &out);
    assert_int_equal(out.is_bytes, 0);
    assert_true(out.value.f64 == 2.5);
    cf__outcome_clear(&out);

    memset(&in, 0, sizeof(in));
    in.value.ptr = bytes;
    in.len = sizeof(bytes);
    in.is_bytes = 1;
    round_trip_copy(&in, &out);
    assert_int_equal(out.is_bytes, 1);
    assert_int_equal(out.len, sizeof(bytes));
    assert_memory_equal(out.value.ptr, bytes, sizeof(bytes));
    cf__outcome_clear(&out);

    in.len = 0;
    round_trip_copy(&in, &out);
    assert_int_equal(out.is_bytes, 1);
    assert_int_equal(out.len, 0);
    assert_non_null(out.value.ptr);
    cf__outcome_clear(&out);

    memset(&in, 0, sizeof(in));
    in.err = CF_EFAIL;
    in.errmsg = "kept after the buffer is gone";
    round_trip_copy(&in, &out);
    assert_int_equal(out.err, CF_EFAIL);
    assert_string_equal(out.errmsg, "kept after the buffer is gone");
    cf__outcome_clear(&out);
}

static void test_outcome_round_trips(void **state)
{
    struct cf__outcome in, out;
    char bytes[] = "some bytes";

    (void)state;
    memset(&in, 0, sizeof(in));
    in.value.i64 = -123456789;
    round_trip(&in, &out);
    assert_int_equal(out.err, 0);
    assert_int_equal(out.value.i64, -123456789);
    assert_int_equal(out.is_bytes, 0);
    cf__outcome_clear(&out);

    memset(&in, 0, sizeof(in));
    in.value.ptr = bytes;
    in.len = sizeof(bytes);
    in.is_bytes = 1;
    round_trip(&in, &out);
    assert_int_equal(out.is_bytes, 1);
    assert_int_equal(out.len, sizeof(bytes));
    assert_memory_equal(out.value.ptr, bytes, sizeof(bytes));
    cf__outcome_clear(&out);

    in.len = 0; /* empty bytes */
    round_trip(&in, &out);
    assert_int_equal(out.is_bytes, 1);
    assert_int_equal(out.len, 0);
    cf__outcome_clear(&out);

    memset(&in, 0, sizeof(in));
    in.err = CF_EFAIL;
    in.errmsg = "Don't do this";
    round_trip(&in, &out);
    assert_int_equal(out.err, CF_EFAIL);
    assert_string_equal(out.errmsg, "Don't do this");
    cf__outcome_clear(&out);
}

/* Build a trailer by hand. */
static uint8_t *forge(size_t body, int32_t err, uint32_t kind, uint64_t len, uint64_t msglen, size_t *n)
{
    uint8_t *b = calloc(1, body + CF__OUTCOME_TRAILER);
    uint8_t *t = b + body;
    uint64_t raw = 0;

    memcpy(t, &err, 4);
    memcpy(t + 4, &kind, 4);
    memcpy(t + 8, &raw, 8);
    memcpy(t + 16, &len, 8);
    memcpy(t + 24, &msglen, 8);
    *n = body + CF__OUTCOME_TRAILER;
    return b;
}

/* The copying decoder rejects what the owning one rejects; the caller keeps (and frees) the buffer. */
static void expect_both_reject(uint8_t *b, size_t n)
{
    struct cf__outcome o;

    assert_int_equal(cf__outcome_decode_copy(b, n, &o), CF_EINVAL);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* frees b */
}

static void test_malformed_outcomes_rejected(void **state)
{
    struct cf__outcome o;
    uint8_t *b;
    size_t n;

    (void)state;
    b = forge(4, 0, 1, 2, 0, &n);
    expect_both_reject(b, n);
    b = forge(4, CF_EFAIL, 0, 0, 4, &n);
    memcpy(b, "a\0c\0", 4);
    expect_both_reject(b, n);
    assert_int_equal(cf__outcome_decode_copy(NULL, 0, &o), CF_EINVAL);
    assert_int_equal(cf__outcome_decode(NULL, 0, &o), CF_EINVAL);
    b = calloc(1, 8);
    assert_int_equal(cf__outcome_decode(b, 8, &o), CF_EINVAL); /* shorter than a trailer */
    b = forge(0, 0, 2, 0, 0, &n);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* kind > 1 */
    b = forge(0, 5, 0, 0, 0, &n);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* positive error */
    b = forge(4, 0, 1, 8, 0, &n);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* bytes longer than the body */
    b = forge(4, 0, 1, 2, 0, &n);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* lengths do not add up */
    b = forge(4, CF_EFAIL, 0, 0, 4, &n);
    memcpy(b, "abcd", 4);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* message not NUL-terminated */
    b = forge(4, CF_EFAIL, 0, 0, 4, &n);
    memcpy(b, "a\0c\0", 4);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* NUL inside the message */
    b = forge(4, 0, 0, 4, 0, &n);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* a number with bytes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_bad_headers_rejected),
        cmocka_unit_test(test_worker_frames_are_numbered),
        cmocka_unit_test(test_reader_any_chunking),
        cmocka_unit_test(test_outcome_round_trips),
        cmocka_unit_test(test_outcome_decode_copy),
        cmocka_unit_test(test_malformed_outcomes_rejected),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
