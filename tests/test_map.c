/*
 * test_map.c - cf_map: order, chunking, errors, pull inputs, early stop, memory.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

static int64_t item_i64(const void *item)
{
    int64_t x;
    memcpy(&x, item, sizeof(x));
    return x;
}

static int sq_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x = item_i64(item);

    if (len != sizeof(int64_t))
        return cf_task_fail(t, CF_EINVAL, "bad length %zu", len);
    if (x == 7)
        return cf_task_fail(t, CF_EFAIL, "seven");
    cf_task_set_i64(t, x * x);
    return 0;
}

static int sqrt_item(cf_task_t *t, const void *item, size_t len)
{
    (void)len;
    cf_task_set_f64(t, sqrt((double)item_i64(item)));
    return 0;
}

static int bytes_item(cf_task_t *t, const void *item, size_t len)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "<%.*s>", (int)len, (const char *)item);
    return cf_task_set_bytes(t, buf, (size_t)n);
}

static int ptr_item(cf_task_t *t, const void *item, size_t len)
{
    (void)item;
    (void)len;
    cf_task_set_result(t, malloc(4), free);
    return 0;
}

static void test_array_order_and_values(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    enum { N = 10001 };
    int64_t *xs = malloc(N * sizeof(*xs));
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    size_t k;
    int rc;

    for (int i = 0; i < N; i++)
        xs[i] = i + 10;
    for (int chunk = 0; chunk < 3; chunk++) {
        cf_map_opts_init(&o);
        o.chunksize = chunk == 0 ? 1 : chunk == 1 ? 0 : 333;
        o.window = chunk == 2 ? 3 : 0;
        assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), sqrt_item, xs, N, sizeof(xs[0]), &o, &m), 0);
        if (chunk == 1)
            assert_int_equal(cf_map_chunksize(m), (N + 7) / 8); /* ceil(n / (4 x 2 workers)) */
        k = 0;
        while ((rc = cf_map_next(m, &r)) == 0) {
            assert_int_equal(r.index, k);
            assert_int_equal(r.status, 0);
            assert_true(r.f64 == sqrt((double)xs[k]));
            k++;
        }
        assert_int_equal(rc, CF_EOF);
        assert_int_equal(k, N);
        assert_int_equal(cf_map_next(m, &r), CF_EOF);
        assert_int_equal(cf_map_status(m), 0);
        cf_map_free(m);
    }
    free(xs);
    cf_thread_pool_free(p);
}

static void test_bytes_results_and_empty_input(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    const char words[4][8] = {"one", "two", "three", "four"};
    cf_map_t *m;
    cf_map_result r;
    char want[16];

    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), bytes_item, words, 4, 8, NULL, &m), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cf_map_next(m, &r), 0);
        snprintf(want, sizeof(want), "<%.8s>", words[i]);
        assert_int_equal(r.len, strlen(want));
        assert_memory_equal(r.data, want, r.len);
    }
    assert_int_equal(cf_map_next(m, &r), CF_EOF);
    cf_map_free(m);

    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), bytes_item, NULL, 0, 8, NULL, &m), 0);
    assert_int_equal(cf_map_next(m, &r), CF_EOF);
    cf_map_free(m);

    /* Pointer values with destructors cannot be mapped. */
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), ptr_item, words, 1, 8, NULL, &m), 0);
    assert_int_equal(cf_map_next(m, &r), 0);
    assert_int_equal(r.status, CF_ENOTSUP);
    cf_map_free(m);

    /* Misuse. */
    assert_int_equal(cf_map_new_array(NULL, bytes_item, words, 4, 8, NULL, &m), CF_EINVAL);
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), NULL, words, 4, 8, NULL, &m), CF_EINVAL);
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), bytes_item, NULL, 4, 8, NULL, &m), CF_EINVAL);
    cf_thread_pool_free(p);
}

/* Items of 3 bytes; item "b.." gives bytes, "e.." an error, the others a number. */
static int mixed_item(cf_task_t *t, const void *item, size_t len)
{
    const char *s = item;

    if (len != 3)
        return cf_task_fail(t, CF_EINVAL, "bad length %zu", len);
    if (s[0] == 'b')
        return cf_task_set_bytes(t, s, 3);
    if (s[0] == 'e')
        return cf_task_fail(t, CF_EFAIL, "item %.3s", s);
    cf_task_set_i64(t, (s[1] - '0') * 10 + (s[2] - '0'));
    return 0;
}

/*
 * Array items whose size is no multiple of 8, and chunks whose results start
 * as plain numbers and then meet bytes and errors (the compact number form
 * turns into records part-way): every result is the item's.  With chunksize
 * 1 each chunk is one item, which answers with its number itself when it
 * has one (map_chunk.c) and with a record otherwise; on both pools.
 */
static void mixed_results_on(cf_executor_t *ex, size_t chunksize)
{
    char items[40][3];
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    size_t k = 0;
    int rc;

    for (int i = 0; i < 40; i++) {
        items[i][0] = i % 7 == 5 ? 'b' : i % 11 == 9 ? 'e' : 'n';
        items[i][1] = (char)('0' + i / 10);
        items[i][2] = (char)('0' + i % 10);
    }
    cf_map_opts_init(&o);
    o.chunksize = chunksize;
    o.on_error = CF_MAP_CONTINUE;
    assert_int_equal(cf_map_new_array(ex, mixed_item, items, 40, 3, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0) {
        assert_int_equal(r.index, k);
        if (items[k][0] == 'b') {
            assert_int_equal(r.status, 0);
            assert_int_equal(r.len, 3);
            assert_memory_equal(r.data, items[k], 3);
        } else if (items[k][0] == 'e') {
            char want[16];
            snprintf(want, sizeof(want), "item %.3s", items[k]);
            assert_int_equal(r.status, CF_EFAIL);
            assert_string_equal(r.error, want);
        } else {
            assert_int_equal(r.status, 0);
            assert_null(r.data);
            assert_int_equal(r.i64, (int64_t)k);
            assert_memory_equal(&r.f64, &r.i64, 8); /* the same eight bytes, read as a double */
        }
        k++;
    }
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(k, 40);
    cf_map_free(m);
}

static void test_odd_items_and_mixed_results(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *pp;
    cf_process_pool_opts po;
    cf_thread_pool_t *p;

    cf_process_pool_opts_init(&po); /* before any thread of this test */
    po.max_workers = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &po, &pp), 0);
    p = make_pool(fx, 2);
    mixed_results_on(cf_thread_pool_executor(p), 13);
    mixed_results_on(cf_thread_pool_executor(p), 1);
    mixed_results_on(cf_process_pool_executor(pp), 1);
    cf_thread_pool_free(p);
    cf_process_pool_free(pp);
}

static void test_error_policies(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    int64_t xs[40];
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    size_t k = 0;
    int rc;

    for (int i = 0; i < 40; i++)
        xs[i] = i;
    cf_map_opts_init(&o);
    o.chunksize = 3;
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), sq_item, xs, 40, 8, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0) {
        assert_int_equal(r.index, k);
        if (k == 7) {
            assert_int_equal(r.status, CF_EFAIL);
            assert_string_equal(r.error, "seven");
        } else {
            assert_int_equal(r.status, 0);
            assert_int_equal(r.i64, (int64_t)(k * k));
        }
        k++;
    }
    assert_int_equal(k, 8); /* delivered up to and including the failure */
    assert_int_equal(rc, CF_EFAIL);
    assert_string_equal(cf_map_error(m), "item 7: seven");
    assert_int_equal(cf_map_next(m, &r), CF_EFAIL);
    cf_map_free(m);

    o.on_error = CF_MAP_CONTINUE;
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), sq_item, xs, 40, 8, &o, &m), 0);
    k = 0;
    while ((rc = cf_map_next(m, &r)) == 0)
        assert_int_equal(r.status, r.index == 7 ? CF_EFAIL : 0), k++;
    assert_int_equal(k, 40);
    assert_int_equal(rc, CF_EOF);
    cf_map_free(m);
    cf_thread_pool_free(p);
}

/* Pull inputs ------------------------------------------------------------ */

struct counter {
    int64_t next, end; /* end < 0: endless */
    int64_t value;
    int fail_at;
    long pulls;
};

static int pull_counter(void *src, const void **item, size_t *len)
{
    struct counter *c = src;

    c->pulls++;
    if (c->end >= 0 && c->next >= c->end)
        return 0;
    if (c->fail_at >= 0 && c->next == c->fail_at)
        return CF_EFAIL;
    c->value = c->next++;
    *item = &c->value;
    *len = sizeof(c->value);
    return 1;
}

struct collect {
    long n;
    long bad;
    long stop_after;
};

static int collect_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    struct collect *c = data;

    (void)m;
    if (r->status || r->index != (size_t)c->n || r->i64 != (int64_t)(r->index * r->index))
        c->bad++;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static long max_rss_kib(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static void test_ten_million_pulled_items_in_flat_memory(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct counter c = {.next = 0, .end = 10000000, .fail_at = -1};
    struct collect col = {0};
    cf_map_opts o;
    cf_map_t *m;
    cf_future_t *done;
    int64_t n = 0;
    long before = max_rss_kib();

    cf_map_opts_init(&o);
    o.on_error = CF_MAP_CONTINUE;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sq_item, pull_counter, &c, &o, &m), 0);
    assert_int_equal(cf_map_each(m, collect_cb, &col, &done), 0);
    assert_int_equal(cf_map_each(m, collect_cb, &col, NULL), CF_EINVAL);
    assert_int_equal(cf_map_next(m, &(cf_map_result){0}), CF_EINVAL);
    assert_int_equal(col.n, 0); /* never inline */
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_result_i64(done, &n), 0);
    assert_int_equal(n, 10000000);
    assert_int_equal(col.n, 10000000);
    assert_int_equal(col.bad, 1); /* item 7 fails by design */
    /* Loose bound: the precise figure is measured by bench/bench_map.  ASan
     * keeps up to 256 MiB of freed memory in quarantine, so it gets more room. */
#ifdef __SANITIZE_ADDRESS__
    assert_true(max_rss_kib() - before < 640 * 1024);
#else
    assert_true(max_rss_kib() - before < 200 * 1024);
#endif
    assert_int_equal(cf_future_unref(done), 0);
    cf_map_free(m);
    cf_thread_pool_free(p);
}

static void test_endless_input_stopped_early(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct counter c = {.next = 8, .end = -1, .fail_at = -1};
    struct collect col = {.n = 0, .stop_after = 1000};
    cf_map_opts o;
    cf_map_t *m;
    cf_future_t *done;
    cf_map_result r;
    long pulls;
    int64_t n;

    /* Stopped by the callback. */
    cf_map_opts_init(&o);
    o.chunksize = 4;
    c.next = 0;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sqrt_item, pull_counter, &c, &o, &m), 0);
    col.bad = 0;
    assert_int_equal(cf_map_each(m, collect_cb, &col, &done), 0);
    assert_int_equal(cf_future_wait(done, -1), 0);
    assert_int_equal(cf_future_result_i64(done, &n), 0);
    assert_int_equal(n, 1000);
    pulls = c.pulls;
    ev_run(fx->ev, 0);
    assert_int_equal(c.pulls, pulls); /* nothing more is read once stopped */
    assert_int_equal(cf_future_unref(done), 0);
    cf_map_free(m);

    /* Freed in the middle of an iteration: queued chunks are cancelled. */
    c.next = 0;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sqrt_item, pull_counter, &c, &o, &m), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cf_map_next(m, &r), 0);
    pulls = c.pulls;
    cf_map_free(m);
    ev_run(fx->ev, 0);
    assert_int_equal(c.pulls, pulls);
    cf_thread_pool_free(p);
}

static void test_pull_error_and_timeout(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct counter c = {.next = 0, .end = -1, .fail_at = 50};
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    int rc;
    size_t k = 0;

    cf_map_opts_init(&o);
    o.chunksize = 8;
    o.on_error = CF_MAP_CONTINUE;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sqrt_item, pull_counter, &c, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0)
        k++;
    assert_int_equal(k, 50); /* everything before the bad read is delivered */
    assert_int_equal(rc, CF_EFAIL);
    assert_non_null(strstr(cf_map_error(m), "reading item 50"));
    cf_map_free(m);

    /* The timeout counts for the whole map. */
    c = (struct counter){.next = 0, .end = -1, .fail_at = -1};
    o.timeout = 0.05;
    o.window = 1;
    o.chunksize = 1;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sqrt_item, pull_counter, &c, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0)
        ;
    assert_int_equal(rc, CF_ETIMEDOUT);
    cf_map_free(m);
    cf_thread_pool_free(p);
}

static int free_in_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    (void)r;
    if (++*(int *)data == 3)
        cf_map_free(m); /* safe from inside the map's own callback */
    return 0;
}

static void test_free_from_callback(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    int64_t xs[100];
    cf_map_opts o;
    cf_map_t *m;
    cf_future_t *done;
    int seen = 0;

    for (int i = 0; i < 100; i++)
        xs[i] = i;
    cf_map_opts_init(&o);
    o.chunksize = 2;
    assert_int_equal(cf_map_new_array(cf_thread_pool_executor(p), sqrt_item, xs, 100, 8, &o, &m), 0);
    assert_int_equal(cf_map_each(m, free_in_cb, &seen, &done), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(seen, 3);
    assert_int_equal(cf_future_get_state(done), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_unref(done), 0);
    cf_thread_pool_free(p);
}


/* The window ----------------------------------------------------------------- */

/* Big items (64 KiB each) pulled one per chunk. */
struct big_src {
    long pulls, end;
    int64_t buf[8192];
};

static int pull_big(void *src, const void **item, size_t *len)
{
    struct big_src *b = src;

    if (b->pulls == b->end)
        return 0;
    b->buf[0] = b->pulls++;
    *item = b->buf;
    *len = sizeof(b->buf);
    return 1;
}

static int first_i64_item(cf_task_t *t, const void *item, size_t len)
{
    (void)len;
    cf_task_set_i64(t, item_i64(item));
    return 0;
}

/*
 * With chunksize 1 the default window counts items, not chunks: on 2 workers
 * 1024 x 2 one-item chunks are sent before the first result is awaited (a
 * window of 4 x workers chunks left the workers waiting on round trips), and
 * one more after it.  An explicit window still bounds chunks, and big items
 * are bounded by bytes (8 MiB past the first 4 x workers chunks).
 */
static void test_window_counts_items_for_small_chunks(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct big_src *b = calloc(1, sizeof(*b));
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    long k;
    int rc;

    assert_non_null(b);
    cf_map_opts_init(&o);
    o.chunksize = 1;
    for (int explicit_window = 0; explicit_window < 2; explicit_window++) {
        struct counter c = {.next = 0, .end = 5000, .fail_at = -1};

        o.window = explicit_window ? 3 : 0;
        assert_int_equal(cf_map_new(cf_thread_pool_executor(p), sqrt_item, pull_counter, &c, &o, &m), 0);
        assert_int_equal(cf_map_next(m, &r), 0);
        assert_int_equal(r.index, 0);
        assert_int_equal(c.pulls, explicit_window ? 3 + 1 : 2048 + 1);
        for (k = 1; (rc = cf_map_next(m, &r)) == 0; k++) {
            assert_int_equal(r.index, (size_t)k);
            assert_true(r.f64 == sqrt((double)k));
        }
        assert_int_equal(rc, CF_EOF);
        assert_int_equal(k, 5000);
        cf_map_free(m);
    }

    o.window = 0;
    b->end = 1000;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(p), first_i64_item, pull_big, b, &o, &m), 0);
    assert_int_equal(cf_map_next(m, &r), 0);
    assert_in_range(b->pulls, 100, 140); /* 8 MiB / 64 KiB = 128 */
    for (k = 1; (rc = cf_map_next(m, &r)) == 0; k++)
        assert_int_equal(r.i64, k);
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(k, 1000);
    cf_map_free(m);
    free(b);
    cf_thread_pool_free(p);
}

/* Failed chunks ------------------------------------------------------------ */

/* Item 33 kills its worker process: the chunk's task fails as a whole. */
static int crash_item(cf_task_t *t, const void *item, size_t len)
{
    (void)len;
    if (item_i64(item) == 33)
        raise(SIGKILL);
    cf_task_set_i64(t, item_i64(item) * item_i64(item));
    return 0;
}

/* Items of 1 to 300 bytes: byte j of item i is (i + j) & 0xff, its length 1 + i % 300. */
struct len_src {
    long pulls, end;
    uint8_t buf[300];
};

static int pull_len(void *src, const void **item, size_t *len)
{
    struct len_src *b = src;
    size_t n = 1 + (size_t)(b->pulls % 300);

    if (b->pulls == b->end)
        return 0;
    for (size_t j = 0; j < n; j++)
        b->buf[j] = (uint8_t)((size_t)b->pulls + j);
    b->pulls++;
    *item = b->buf;
    *len = n;
    return 1;
}

static int64_t len_expect(long i)
{
    size_t n = 1 + (size_t)(i % 300);
    int64_t sum = 0;

    for (size_t j = 0; j < n; j++)
        sum += (uint8_t)((size_t)i + j);
    return sum + (int64_t)n * 100000;
}

static int sum_item(cf_task_t *t, const void *item, size_t len)
{
    const uint8_t *p = item;
    int64_t sum = 0;

    for (size_t j = 0; j < len; j++)
        sum += p[j];
    cf_task_set_i64(t, sum + (int64_t)len * 100000);
    return 0;
}

/*
 * On a process pool, chunks of items of every length from 1 to 300 bytes,
 * one and several items a chunk: small chunks are built in place and larger
 * ones move to the heap part way; every item arrives whole.
 */
static void test_process_pool_item_lengths(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_process_pool_opts po;
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    int rc;

    cf_process_pool_opts_init(&po);
    po.max_workers = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &po, &p), 0);
    for (size_t cs = 1; cs <= 3; cs += 2) {
        struct len_src src = {.end = 900};
        long k = 0;

        cf_map_opts_init(&o);
        o.chunksize = cs;
        assert_int_equal(cf_map_new(cf_process_pool_executor(p), sum_item, pull_len, &src, &o, &m), 0);
        while ((rc = cf_map_next(m, &r)) == 0) {
            assert_int_equal(r.index, k);
            assert_int_equal(r.status, 0);
            assert_int_equal(r.i64, len_expect(k));
            k++;
        }
        assert_int_equal(rc, CF_EOF);
        assert_int_equal(k, 900);
        cf_map_free(m);
    }
    cf_process_pool_free(p);
}

static void test_failed_chunk_names_its_items(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_process_pool_opts po;
    int64_t xs[50];
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    size_t k = 0;
    int rc;

    cf_process_pool_opts_init(&po);
    po.max_workers = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &po, &p), 0);
    for (int i = 0; i < 50; i++)
        xs[i] = i;
    cf_map_opts_init(&o);
    o.chunksize = 10;
    o.on_error = CF_MAP_CONTINUE;
    assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), crash_item, xs, 50, 8, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0) {
        assert_int_equal(r.index, k);
        if (k >= 30 && k <= 39) {
            assert_int_equal(r.status, CF_EWORKER);
            assert_non_null(strstr(r.error, "SIGKILL"));
            assert_memory_equal(r.error, "items 30-39: ", 13);
        } else {
            assert_int_equal(r.status, 0);
            assert_int_equal(r.i64, (int64_t)(k * k));
        }
        k++;
    }
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(k, 50);
    cf_map_free(m);

    /* Stopping at the first failure: the map's message names the range once. */
    o.on_error = CF_MAP_STOP;
    assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), crash_item, xs, 50, 8, &o, &m), 0);
    k = 0;
    while ((rc = cf_map_next(m, &r)) == 0) {
        /* The result that ended the map stays valid until the next call. */
        if (k == 30) {
            assert_int_equal(r.status, CF_EWORKER);
            assert_memory_equal(r.error, "items 30-39: ", 13);
        }
        k++;
    }
    assert_int_equal(k, 31); /* items 0-29, then item 30 with the chunk's error */
    assert_int_equal(rc, CF_EWORKER);
    assert_memory_equal(cf_map_error(m), "items 30-39: worker ", 20);
    cf_map_free(m);

    /* A chunk of one item is that item's failure. */
    o.chunksize = 1;
    assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), crash_item, xs, 50, 8, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0)
        ;
    assert_int_equal(rc, CF_EWORKER);
    assert_memory_equal(cf_map_error(m), "item 33: worker ", 16);
    cf_map_free(m);
    cf_process_pool_free(p);
}

/*
 * A result handed to the callback stays readable until the callback returns,
 * even when the callback ends the map under it: cf_map_free() or a cancel of
 * *done drops every chunk in flight, the failed chunk the result came from
 * included.  (Reading a freed message is what ASan catches here.)
 */
struct end_in_cb {
    int how; /* 0: cf_map_free(), 1: cancel *done */
    cf_future_t *done;
    size_t calls;
    int status;
    char error[64];
};

static int end_in_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    struct end_in_cb *e = data;

    e->calls++;
    if (r->status == 0)
        return 0;
    if (e->how == 0)
        cf_map_free(m);
    else
        assert_int_equal(cf_future_cancel(e->done), 0);
    e->status = r->status;
    snprintf(e->error, sizeof(e->error), "%s", r->error);
    return 0;
}

static void test_result_outlives_the_map_end(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_process_pool_opts po;
    int64_t xs[50];
    cf_map_opts o;
    cf_map_t *m;

    cf_process_pool_opts_init(&po);
    po.max_workers = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &po, &p), 0);
    for (int i = 0; i < 50; i++)
        xs[i] = i;
    cf_map_opts_init(&o);
    o.chunksize = 10;
    for (int how = 0; how < 2; how++) {
        for (int policy = 0; policy < 2; policy++) {
            struct end_in_cb e = {.how = how};

            o.on_error = policy ? CF_MAP_CONTINUE : CF_MAP_STOP;
            assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), crash_item, xs, 50, 8, &o, &m), 0);
            assert_int_equal(cf_map_each(m, end_in_cb, &e, &e.done), 0);
            ev_run(fx->ev, 0);
            assert_int_equal(e.calls, 31); /* items 0-29, then item 30 ends the map */
            assert_int_equal(e.status, CF_EWORKER);
            assert_memory_equal(e.error, "items 30-39: ", 13);
            assert_int_equal(cf_future_get_state(e.done), CF_FUTURE_CANCELLED);
            cf_future_unref(e.done);
            if (how == 1)
                cf_map_free(m);
        }
    }
    cf_process_pool_free(p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_array_order_and_values),
        T(test_bytes_results_and_empty_input),
        T(test_odd_items_and_mixed_results),
        T(test_error_policies),
        T(test_ten_million_pulled_items_in_flat_memory),
        T(test_endless_input_stopped_early),
        T(test_pull_error_and_timeout),
        T(test_free_from_callback),
        T(test_window_counts_items_for_small_chunks),
        T(test_process_pool_item_lengths),
        T(test_failed_chunk_names_its_items),
        T(test_result_outlives_the_map_end),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
