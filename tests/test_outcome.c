/*
 * test_outcome.c - the outcome codec (lib/outcome.h): the in-place view, the
 * record sequence used by cf_map chunks, the portability rule, and the
 * one-encoding-per-outcome checks.  (The owning and copying decoders are
 * also exercised through frames in test_frame.c.)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

#include "internal.h"

#include "outcome.h"

static uint8_t *encode(const struct cf__outcome *o, size_t *n)
{
    uint8_t *b;

    *n = cf__outcome_encoded_size(o);
    b = malloc(*n);
    assert_non_null(b);
    cf__outcome_encode(o, b);
    return b;
}

static void test_view_points_into_the_buffer(void **state)
{
    struct cf__outcome o;
    struct cf__outcome_view v;
    char bytes[] = "viewed";
    uint8_t *b;
    size_t n;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.value.f64 = -0.5;
    b = encode(&o, &n);
    assert_int_equal(n, CF__OUTCOME_TRAILER);
    assert_int_equal(cf__outcome_parse(b, n, &v), 0);
    assert_int_equal(v.err, 0);
    assert_false(v.is_bytes);
    assert_true(v.f64 == -0.5);
    assert_null(v.data);
    assert_null(v.msg);
    free(b);

    memset(&o, 0, sizeof(o));
    o.value.ptr = bytes;
    o.len = sizeof(bytes);
    o.is_bytes = 1;
    b = encode(&o, &n);
    assert_int_equal(cf__outcome_parse(b, n, &v), 0);
    assert_true(v.is_bytes);
    assert_ptr_equal(v.data, b);
    assert_int_equal(v.len, sizeof(bytes));
    assert_int_equal(v.i64, 0);
    free(b);

    memset(&o, 0, sizeof(o));
    o.err = CF_EWORKER;
    o.errmsg = "worker 1 died";
    b = encode(&o, &n);
    assert_int_equal(cf__outcome_parse(b, n, &v), 0);
    assert_int_equal(v.err, CF_EWORKER);
    assert_string_equal(v.msg, "worker 1 died");
    assert_ptr_equal(v.msg, (const char *)b);
    free(b);
}

/* A failure carries its code and message only: a value left in it does not travel. */
static void test_failure_carries_no_value(void **state)
{
    struct cf__outcome o;
    struct cf__outcome_view v;
    char bytes[] = "ignored";
    uint8_t *b;
    size_t n;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.value.ptr = bytes;
    o.len = sizeof(bytes);
    o.is_bytes = 1;
    o.err = CF_EFAIL;
    b = encode(&o, &n);
    assert_int_equal(n, CF__OUTCOME_TRAILER);
    assert_int_equal(cf__outcome_parse(b, n, &v), 0);
    assert_int_equal(v.err, CF_EFAIL);
    assert_false(v.is_bytes);
    assert_null(v.data);
    free(b);
}

static void test_make_portable(void **state)
{
    struct cf__outcome o;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.value.ptr = strdup("a heap pointer");
    o.value_free = free;
    assert_int_equal(cf__outcome_make_portable(&o, "a mapped item"), CF_ENOTSUP);
    assert_null(o.value.ptr);
    assert_null(o.value_free);
    assert_string_equal(o.errmsg, "a mapped item must produce a number or bytes (cf_task_set_bytes), "
                                  "not a pointer with a destructor");
    cf__outcome_clear(&o);

    /* Numbers, bytes and failures are left alone. */
    memset(&o, 0, sizeof(o));
    o.value.i64 = 7;
    assert_int_equal(cf__outcome_make_portable(&o, "x"), 0);
    assert_int_equal(o.value.i64, 7);
    o.value.ptr = strdup("b");
    o.value_free = free;
    o.len = 1;
    o.is_bytes = 1;
    assert_int_equal(cf__outcome_make_portable(&o, "x"), 0);
    assert_true(o.is_bytes);
    cf__outcome_clear(&o);
    memset(&o, 0, sizeof(o));
    o.err = CF_EFAIL;
    o.value.ptr = strdup("dropped with the failure");
    o.value_free = free;
    assert_int_equal(cf__outcome_make_portable(&o, "x"), CF_EFAIL);
    assert_null(o.errmsg);
    cf__outcome_clear(&o);
}

static void test_records(void **state)
{
    struct cf__outcome o[4];
    struct cf__outcome_view v;
    uint8_t *b;
    size_t n = 0, off = 0, at;

    (void)state;
    memset(o, 0, sizeof(o));
    o[0].value.i64 = 42;
    o[1].value.ptr = "abc";
    o[1].len = 3;
    o[1].is_bytes = 1;
    o[2].err = CF_EFAIL;
    o[2].errmsg = "seven";
    o[3].is_bytes = 1; /* empty bytes */
    for (int i = 0; i < 4; i++)
        n += cf__outcome_record_size(&o[i]);
    b = malloc(n);
    assert_non_null(b);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cf__outcome_record_size(&o[i]) % 8, 0);
        cf__outcome_record_put(&o[i], b + off);
        off += cf__outcome_record_size(&o[i]);
    }
    off = 0;
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), 0);
    assert_int_equal(v.i64, 42);
    at = off;
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), 0);
    assert_true(v.is_bytes);
    assert_memory_equal(v.data, "abc", 3);
    assert_ptr_equal(v.data, b + at + CF__OUTCOME_REC_HDR); /* the bytes start the record */
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), 0);
    assert_int_equal(v.err, CF_EFAIL);
    assert_string_equal(v.msg, "seven");
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), 0);
    assert_true(v.is_bytes);
    assert_int_equal(v.len, 0);
    assert_int_equal(off, n);
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), CF_EINVAL); /* past the end */
    assert_int_equal(off, n);

    /* Truncated anywhere: rejected, the offset stays. */
    for (size_t cut = 0; cut < n; cut++) {
        size_t o2 = 0;
        int ok = 0;
        while (cf__outcome_record_next(b, cut, &o2, &v) == 0)
            ok++;
        assert_true(o2 <= cut);
        assert_true(ok < 4);
    }
    /* Non-zero padding is not the encoding of anything. */
    off = 0;
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), 0);
    b[off + CF__OUTCOME_REC_HDR + 3 + CF__OUTCOME_TRAILER] = 1; /* the padding after "abc" + trailer */
    at = off;
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), CF_EINVAL);
    assert_int_equal(off, at);
    /* A size running past the buffer. */
    memset(b, 0xff, 8);
    off = 0;
    assert_int_equal(cf__outcome_record_next(b, n, &off, &v), CF_EINVAL);
    free(b);
}

/* Build a trailer by hand. */
static uint8_t *forge(size_t body, int32_t err, uint32_t kind, uint64_t raw, uint64_t len, uint64_t msglen, size_t *n)
{
    uint8_t *b = calloc(1, body + CF__OUTCOME_TRAILER);
    uint8_t *t = b + body;

    assert_non_null(b);
    memcpy(t, &err, 4);
    memcpy(t + 4, &kind, 4);
    memcpy(t + 8, &raw, 8);
    memcpy(t + 16, &len, 8);
    memcpy(t + 24, &msglen, 8);
    *n = body + CF__OUTCOME_TRAILER;
    return b;
}

static void expect_rejected(uint8_t *b, size_t n)
{
    struct cf__outcome_view v;
    struct cf__outcome o;

    assert_int_equal(cf__outcome_parse(b, n, &v), CF_EINVAL);
    assert_int_equal(cf__outcome_decode_copy(b, n, &o), CF_EINVAL);
    assert_int_equal(cf__outcome_decode(b, n, &o), CF_EINVAL); /* frees b */
}

static void test_only_one_encoding(void **state)
{
    uint8_t *b;
    size_t n;

    (void)state;
    b = forge(0, 0, 1, 5, 0, 0, &n); /* bytes with a raw value */
    expect_rejected(b, n);
    b = forge(0, CF_EFAIL, 0, 5, 0, 0, &n); /* a failure with a value */
    expect_rejected(b, n);
    b = forge(3, CF_EFAIL, 1, 0, 3, 0, &n); /* a failure with bytes */
    expect_rejected(b, n);
    b = forge(0, 0, 2, 0, 0, 0, &n); /* unknown kind */
    expect_rejected(b, n);
    b = forge(0, 1, 0, 0, 0, 0, &n); /* positive error */
    expect_rejected(b, n);
    b = forge(4, 0, 0, 0, 4, 0, &n); /* a number with bytes */
    expect_rejected(b, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_points_into_the_buffer),
        cmocka_unit_test(test_failure_carries_no_value),
        cmocka_unit_test(test_make_portable),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_only_one_encoding),
    };
    return cmocka_run_group_tests_name("outcome", tests, NULL, NULL);
}
