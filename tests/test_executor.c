/*
 * test_executor.c - what executors share (lib/executor.c): submissions whose
 * flags say who owns the argument, through the thread pool and the process
 * pool alike, and the counters every executor keeps.  (Each pool's own
 * behaviour is tested in test_thread_pool.c and test_process_pool.c.)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

#include "internal.h"

/* The task's bytes as an i64 sum of their values, and their length checked. */
static int sum_bytes(cf_task_t *t, void *arg)
{
    size_t len;
    const uint8_t *p = cf_task_arg(t, &len);
    int64_t sum = 0;

    if (p != arg)
        return cf_task_fail(t, CF_EINVAL, "arg and cf_task_arg() differ");
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    cf_task_set_i64(t, sum * 1000 + (int64_t)len);
    return 0;
}

static int fail_task(cf_task_t *t, void *arg)
{
    (void)arg;
    return cf_task_fail(t, CF_EFAIL, "failed on purpose");
}

static int destroyed;

static void count_destroy(void *p)
{
    destroyed++;
    free(p);
}

/* A handed-over buffer: the executor runs the task on those bytes and frees the buffer. */
static void submit_owned(cf_executor_t *ex, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    int64_t v = 0, sum = 0;
    cf_future_t *f;

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        sum += buf[i] = (uint8_t)(i * 7);
    assert_int_equal(
        cf__executor_submit(
            ex,
            &(struct cf__submit){.fn = sum_bytes, .arg = buf, .len = len, .flags = CF__SUBMIT_BYTES | CF__SUBMIT_OWNED},
            &f),
        0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, sum * 1000 + (int64_t)len);
    assert_int_equal(cf_future_unref(f), 0);
}

static void check_flags_rejected(cf_executor_t *ex)
{
    uint8_t b[4] = {0};
    cf_future_t *f;

    /* A handed-over buffer is bytes, and its destructor is free(): no arg_free. */
    assert_int_equal(
        cf__executor_submit(ex, &(struct cf__submit){.fn = sum_bytes, .arg = b, .flags = CF__SUBMIT_OWNED}, &f),
        CF_EINVAL);
    assert_int_equal(
        cf__executor_submit(
            ex,
            &(struct cf__submit){
                .fn = sum_bytes, .arg = b, .len = 4, .arg_free = free, .flags = CF__SUBMIT_BYTES | CF__SUBMIT_OWNED},
            &f),
        CF_EINVAL);
    assert_int_equal(cf__executor_submit(ex, &(struct cf__submit){.arg = b, .len = 4, .flags = CF__SUBMIT_BYTES}, &f),
                     CF_EINVAL);
    assert_int_equal(
        cf__executor_submit(ex, &(struct cf__submit){.fn = sum_bytes, .len = 4, .flags = CF__SUBMIT_BYTES}, &f),
        CF_EINVAL);
    assert_int_equal(cf__executor_submit(ex, NULL, &f), CF_EINVAL);
}

static void test_thread_pool_submissions(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_executor_t *ex = cf_thread_pool_executor(p);
    uint8_t kept[3] = {1, 2, 3};
    cf_pool_stats st;
    cf_future_t *f, *g;
    int64_t v;

    check_flags_rejected(ex);
    submit_owned(ex, 0);
    submit_owned(ex, 100);
    submit_owned(ex, 1u << 16);

    /* Bytes the caller keeps: used in place, arg_free called once the task is done. */
    destroyed = 0;
    uint8_t *copy = malloc(3);
    assert_non_null(copy);
    memcpy(copy, kept, 3);
    assert_int_equal(
        cf__executor_submit(
            ex,
            &(struct cf__submit){
                .fn = sum_bytes, .arg = copy, .len = 3, .arg_free = count_destroy, .flags = CF__SUBMIT_BYTES},
            &f),
        0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 6 * 1000 + 3);
    assert_int_equal(destroyed, 1);
    assert_int_equal(cf_future_unref(f), 0);

    /* The counters every executor keeps. */
    assert_int_equal(cf_executor_submit(ex, fail_task, NULL, NULL, &g), 0);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_status(g), CF_EFAIL);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.submitted, 5);
    assert_int_equal(st.completed, 4);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.cancelled, 0);
    cf_thread_pool_free(p);
}

static void test_process_pool_submissions(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_executor_t *ex;
    cf_pool_stats st;
    cf_future_t *f;
    int x = 1;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    ex = cf_process_pool_executor(p);
    check_flags_rejected(ex);
    /* An opaque pointer cannot reach another process. */
    assert_int_equal(cf__executor_submit(ex, &(struct cf__submit){.fn = sum_bytes, .arg = &x}, &f), CF_ENOTSUP);
    submit_owned(ex, 0);
    submit_owned(ex, 100);
    submit_owned(ex, 1u << 16);
    assert_int_equal(cf_process_pool_stats(p, &st), 0);
    assert_int_equal(st.submitted, 3);
    assert_int_equal(st.completed, 3);
    cf_process_pool_free(p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_thread_pool_submissions),
        T(test_process_pool_submissions),
    };
    return cmocka_run_group_tests_name("executor", tests, NULL, NULL);
}
