/*
 * test_remote_chunk.c - the remote executor's compact map chunks
 * (map_chunk.h: cf__chunk_compact(), cf__chunk_patch_items() and the SPARSE
 * form in the chunk runner), without a broker: chunks are built as cf_map
 * builds them, compacted as the remote client does, patched as a remote
 * worker does, and run by the chunk task on a real thread pool.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

#include "internal.h"

#include "map_chunk.h"

/* An item as the script layer makes them: constant bytes, a function pointer, an argument. */
struct item {
    uint32_t magic;
    uint32_t shape;
    cf_any_fn fn;
    int64_t x;
};

#define ITEM_MAGIC 0x4d455449u

static void marker_a(void)
{
}

static void marker_b(void)
{
}

/* The item function: checks the constant bytes, returns 3x + 1 (+ 1000 when fn is marker_b). */
static int item_fn(cf_task_t *t, const void *p, size_t len)
{
    struct item it;

    if (len != sizeof(it))
        return cf_task_fail(t, CF_EINVAL, "item of %zu bytes", len);
    memcpy(&it, p, sizeof(it));
    if (it.magic != ITEM_MAGIC || it.shape != 7)
        return cf_task_fail(t, CF_EINVAL, "item bytes lost");
    cf_task_set_i64(t, 3 * it.x + 1 + (it.fn == marker_b ? 1000 : 0));
    return 0;
}

/* A CHUNK form chunk of n items x = first + i * step, as cf_map builds one from a pull source. */
static struct cf__chunk_buf build(size_t n, int64_t first, int64_t step, cf_any_fn fn)
{
    struct cf__chunk_buf b = {0};

    cf__chunk_begin(&b, item_fn);
    for (size_t i = 0; i < n; i++) {
        struct item it = {ITEM_MAGIC, 7, fn, first + (int64_t)i * step};
        cf__chunk_add(&b, &it, sizeof(it));
    }
    assert_int_equal(cf__chunk_end(&b, n), 0);
    return b;
}

/* Run chunk p on a thread pool; check that item i gave want(i), or return the task's error. */
static int run(struct fixture *fx, const uint8_t *p, size_t len, size_t n, int64_t first, int64_t step, int64_t extra)
{
    cf_thread_pool_t *pool = make_pool(fx, 1);
    cf_future_t *f;
    const void *res;
    size_t rlen, off;
    uint64_t run_ns;
    int rc;

    assert_int_equal(cf_executor_submit_bytes(cf_thread_pool_executor(pool), cf__map_chunk_run, p, len, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    rc = cf_future_result_bytes(f, &res, &rlen);
    if (rc == 0) {
        assert_int_equal(cf__chunk_result_open(res, rlen, n, &off, &run_ns), 0);
        for (size_t i = 0; i < n; i++) {
            struct cf__outcome_view v;
            assert_int_equal(cf__chunk_result_next(res, rlen, &off, &v), 0);
            assert_int_equal(v.err, 0);
            assert_int_equal(v.i64, 3 * (first + (int64_t)i * step) + 1 + extra);
        }
    } else {
        rc = cf_future_status(f);
    }
    cf_future_unref(f);
    cf_thread_pool_free(pool);
    return rc;
}

static void test_compact_runs_the_same(void **state)
{
    struct fixture *fx = *state;
    enum { N = 3125 };
    struct cf__chunk_buf b = build(N, -5, 3, marker_a);
    uint8_t *c = NULL;
    size_t clen = 0;

    /* Only the 8 bytes of x vary: 24-byte items + their lengths become 8 bytes each. */
    assert_int_equal(cf__chunk_compact(b.p, b.len, offsetof(struct item, fn), sizeof(cf_any_fn), &c, &clen), 1);
    assert_non_null(c);
    assert_true(clen <= 48 + 24 + 8 * N + 8);
    assert_true(clen * 3 < b.len);
    assert_int_equal(run(fx, c, clen, N, -5, 3, 0), 0);
    assert_int_equal(run(fx, b.p, b.len, N, -5, 3, 0), 0);

    /* A worker's own address of the item function goes into the template once. */
    assert_int_equal(cf__chunk_patch_items(c, clen, offsetof(struct item, fn), marker_b), 0);
    assert_int_equal(run(fx, c, clen, N, -5, 3, 1000), 0);
    free(c);

    /* Items that are all the same still run (one byte is kept per item). */
    c = NULL;
    free(b.p);
    b = build(N, 42, 0, marker_a);
    assert_int_equal(cf__chunk_compact(b.p, b.len, offsetof(struct item, fn), sizeof(cf_any_fn), &c, &clen), 1);
    assert_true(clen < 48 + 24 + N + 16);
    assert_int_equal(run(fx, c, clen, N, 42, 0, 0), 0);
    free(c);
    free(b.p);
}

static void test_compact_declines(void **state)
{
    struct cf__chunk_buf b, v = {0};
    uint8_t *c = NULL;
    size_t clen = 0;

    (void)state;
    /* The pinned bytes (the function pointer) differ in the last item: left as it is. */
    cf__chunk_begin(&v, item_fn);
    for (int i = 0; i < 100; i++) {
        struct item a = {ITEM_MAGIC, 7, i < 99 ? marker_a : marker_b, i};
        cf__chunk_add(&v, &a, sizeof(a));
    }
    assert_int_equal(cf__chunk_end(&v, 100), 0);
    assert_int_equal(cf__chunk_compact(v.p, v.len, offsetof(struct item, fn), sizeof(cf_any_fn), &c, &clen), 0);
    assert_null(c);
    /* Without a pin it compacts (the pointer is among the varying bytes)... */
    assert_int_equal(cf__chunk_compact(v.p, v.len, 0, 0, &c, &clen), 1);
    /* ...and then a worker cannot patch it. */
    assert_int_equal(cf__chunk_patch_items(c, clen, offsetof(struct item, fn), marker_b), -1);
    free(c);
    c = NULL;
    free(v.p);

    /* Items of different lengths, a single item, or no gain: left as they are. */
    v = (struct cf__chunk_buf){0};
    cf__chunk_begin(&v, item_fn);
    cf__chunk_add(&v, "abcdefgh", 8);
    cf__chunk_add(&v, "abcdefghij", 10);
    cf__chunk_add(&v, "abcdefgh", 8);
    assert_int_equal(cf__chunk_end(&v, 3), 0);
    assert_int_equal(cf__chunk_compact(v.p, v.len, 0, 0, &c, &clen), 0);
    free(v.p);
    v = (struct cf__chunk_buf){0};
    {
        int64_t xs[64];
        for (int i = 0; i < 64; i++)
            xs[i] = (int64_t)0x0101010101010101 * i;
        cf__chunk_begin_array(&v, item_fn, sizeof(int64_t), 64);
        cf__chunk_add_array(&v, xs, sizeof(int64_t), 64);
        assert_int_equal(cf__chunk_end(&v, 64), 0);
        assert_int_equal(cf__chunk_compact(v.p, v.len, 0, 0, &c, &clen), 0); /* every byte varies */
        assert_int_equal(cf__chunk_compact(v.p, v.len - 8 * 62, 0, 0, &c, &clen), 0); /* malformed */
        free(v.p);
    }
    b = build(1, 0, 1, marker_a);
    assert_int_equal(cf__chunk_compact(b.p, b.len, 0, 0, &c, &clen), 0);
    assert_null(c);
    free(b.p);
}

static void test_patch_every_form(void **state)
{
    struct fixture *fx = *state;
    struct cf__chunk_buf b = build(50, 1, 2, marker_a), f = {0};
    struct item items[50];

    /* CHUNK form: every item. */
    assert_int_equal(cf__chunk_patch_items(b.p, b.len, offsetof(struct item, fn), marker_b), 0);
    assert_int_equal(run(fx, b.p, b.len, 50, 1, 2, 1000), 0);
    /* An offset past the items' end, or a truncated chunk: refused. */
    assert_int_equal(cf__chunk_patch_items(b.p, b.len, sizeof(struct item) - 4, marker_b), -1);
    assert_int_equal(cf__chunk_patch_items(b.p, b.len - 9, offsetof(struct item, fn), marker_b), -1);
    free(b.p);

    /* Items of several lengths: each one, as long as the pointer fits in it;
     * a length that runs past the end, in any item: refused. */
    {
        struct cf__chunk_buf m = {0};
        uint8_t item16[16] = {0}, item24[24] = {0};
        cf_any_fn got;
        uint64_t big = 1u << 20;
        cf__chunk_begin(&m, item_fn);
        cf__chunk_add(&m, item16, sizeof(item16));
        cf__chunk_add(&m, item24, sizeof(item24));
        cf__chunk_add(&m, item16, sizeof(item16));
        assert_int_equal(cf__chunk_end(&m, 3), 0);
        assert_int_equal(cf__chunk_patch_items(m.p, m.len, 8, marker_b), 0);
        memcpy(&got, m.p + 24 + 8 + 16 + 8 + 8, sizeof(got)); /* the second item's bytes 8..15 */
        assert_true(got == marker_b);
        assert_int_equal(cf__chunk_patch_items(m.p, m.len, 12, marker_b), -1); /* past a 16-byte item */
        memcpy(m.p + 24 + 8 + 16, &big, 8); /* the second item's length */
        assert_int_equal(cf__chunk_patch_items(m.p, m.len, 8, marker_b), -1);
        free(m.p);
    }

    /* FIXED form (an array's items). */
    for (int i = 0; i < 50; i++)
        items[i] = (struct item){ITEM_MAGIC, 7, marker_a, 1 + 2 * i};
    cf__chunk_begin_array(&f, item_fn, sizeof(struct item), 50);
    cf__chunk_add_array(&f, items, sizeof(struct item), 50);
    assert_int_equal(cf__chunk_end(&f, 50), 0);
    assert_int_equal(cf__chunk_patch_items(f.p, f.len, offsetof(struct item, fn), marker_b), 0);
    assert_int_equal(run(fx, f.p, f.len, 50, 1, 2, 1000), 0);
    free(f.p);
}

/* A SPARSE chunk that lies about its sizes fails as a task; nothing is read out of bounds. */
static void test_malformed_sparse(void **state)
{
    struct fixture *fx = *state;
    enum { N = 200 };
    struct cf__chunk_buf b = build(N, 0, 1, marker_a);
    uint8_t *c = NULL;
    size_t clen = 0;
    uint64_t v;

    assert_int_equal(cf__chunk_compact(b.p, b.len, offsetof(struct item, fn), sizeof(cf_any_fn), &c, &clen), 1);
    free(b.p);
    for (int field = 2; field <= 5; field++) {
        uint8_t *d = malloc(clen);
        memcpy(d, c, clen);
        v = field == 2 ? (uint64_t)N * 1000 : field == 3 ? 1u << 30 : field == 4 ? 1000 : 0;
        memcpy(d + 8 * field, &v, 8); /* count, item length, var_off, var_len */
        assert_int_equal(run(fx, d, clen, N, 0, 1, 0), CF_EINVAL);
        assert_int_equal(cf__chunk_patch_items(d, clen, offsetof(struct item, fn), marker_b), -1);
        free(d);
    }
    assert_int_equal(run(fx, c, clen - 8, N, 0, 1, 0), CF_EINVAL); /* truncated */
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_compact_runs_the_same),
        T(test_compact_declines),
        T(test_patch_every_form),
        T(test_malformed_sparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
