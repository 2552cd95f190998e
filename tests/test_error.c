/*
 * test_error.c - error codes, texts, the last-error message, version, clock.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

#include <stdio.h>

/* Every code, from the one list the library's tables come from. */
static const struct {
    int code;
    const char *name;
    const char *text;
} codes[] = {
#define ENTRY(name, value, text) {CF_##name, "CF_" #name, text},
    CF_ERRNO_MAP(ENTRY)
#undef ENTRY
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static void test_every_code_has_distinct_text(void **state)
{
    (void)state;
    assert_true(NCODES >= 17);
    for (size_t i = 0; i < NCODES; i++) {
        const char *t = cf_strerror(codes[i].code);
        const char *n = cf_err_name(codes[i].code);
        assert_true(codes[i].code < 0);
        assert_string_equal(t, codes[i].text);
        assert_string_equal(n, codes[i].name);
        assert_true(strlen(t) > 0);
        assert_string_not_equal(t, "unknown error");
        assert_true(strncmp(n, "CF_E", 4) == 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
            assert_string_not_equal(t, codes[j].text);
            assert_string_not_equal(n, codes[j].name);
        }
    }
    /* The enum and the list agree. */
    assert_int_equal(CF_EOF, -4005);
    assert_int_equal(CF_EWORKER, -4006);
    assert_string_equal(cf_err_name(CF_EWORKER), "CF_EWORKER");
    assert_string_equal(cf_err_name(CF_ETIMEDOUT), "CF_ETIMEDOUT");
    assert_string_equal(cf_strerror(0), "success");
}

static void test_errno_codes_pass_through(void **state)
{
    (void)state;
    assert_int_equal(CF_EINVAL, -EINVAL);
    assert_int_equal(CF_ETIMEDOUT, -ETIMEDOUT);
    /* An errno value cfutures has no name for still gets the system's text. */
    assert_string_equal(cf_strerror(-EPIPE), "Broken pipe");
    assert_string_equal(cf_err_name(-EPIPE), "EPIPE");
}

static void test_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(cf_strerror(-4999), "unknown error");
    assert_string_equal(cf_strerror(12345), "unknown error");
    assert_string_equal(cf_err_name(-4999), "CF_EUNKNOWN");
}

static void *fail_in_thread(void *arg)
{
    cf_future_t *out;

    (void)arg;
    assert_int_equal(cf_sleep(NULL, 1, &out), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_sleep: loop is NULL");
    return NULL;
}

static void test_last_error_is_per_thread(void **state)
{
    pthread_t t;
    cf_future_t *out;

    (void)state;
    assert_non_null(cf_last_error());
    assert_int_equal(cf_future_wait(NULL, -1), CF_EINVAL);
    assert_int_equal(cf_as_completed_new(NULL, 1, -1, NULL), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_as_completed_new: out is NULL");
    /* Another thread's failure does not touch this thread's message. */
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(cf_last_error(), "cf_as_completed_new: out is NULL");
    /* A success leaves it alone; the next failure replaces it. */
    assert_int_equal(cf_wait(NULL, 0, CF_ALL_COMPLETED, -1, NULL, NULL), 0);
    assert_string_equal(cf_last_error(), "cf_as_completed_new: out is NULL");
    assert_int_equal(cf_sleep(NULL, 1, &out), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_sleep: loop is NULL");
}

static int map_fn(cf_task_t *t, const void *item, size_t len)
{
    (void)t;
    (void)item;
    (void)len;
    return 0;
}

/* Each rejected argument is named, by the function that rejected it: the
 * message never comes from an earlier, unrelated failure. */
static void test_invalid_arguments_are_named(void **state)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    cf_future_t *f;
    cf_runtime_t *rt;
    cf_thread_pool_t *tp;
    cf_executor_t *ex;
    cf_map_opts bad;
    cf_process_pool_opts ppo_pipe, ppo_workers;
    cf_process_pool_t *pp;
    cf_map_t *m;
    int64_t xs[3] = {1, 2, 3};
    static const char *const want[] = {
        "cf_loop_new: out is NULL",
        "cf_future_new: loop is NULL",
        "cf_future_on_done: cb is NULL",
        "cf_future_set_error: err must be negative (got 0)",
        "cf_future_set_bytes: data is NULL with len > 0",
        "cf_future_unref: f is NULL",
        "cf_future_cancel: f is NULL",
        "cf_future_wait: f is NULL",
        "cf_loop_call: fn is NULL",
        "cf_loop_release: no cf_loop_hold() to release",
        "cf_executor_submit_bytes: ex is NULL",
        "cf_executor_shutdown: ex is NULL",
        "cf_runtime_new: no pool: threads and processes are both 0",
        "cf_runtime_new_opts: out is NULL",
        "cf_runtime_run: rt is NULL",
        "cf_future_get_i64: out is NULL",
        "submit: ex is NULL",
        "map: ex is NULL",
        "cf_map_new: opts->on_error must be CF_MAP_STOP or CF_MAP_CONTINUE (got 7)",
        "cf_map_new_array: items is NULL with n = 3",
        "cf_process_pool_new: opts->pipeline must be >= 1",
        "cf_process_pool_new: opts->max_workers must be between 1 and 1024 (got 0)",
    };
    int rc[sizeof(want) / sizeof(want[0])];
    char got[sizeof(want) / sizeof(want[0])][512];
    size_t i = 0;

    (void)state;
    assert_non_null(ev);
    assert_int_equal(cf_loop_new(ev, &loop), 0);
    assert_int_equal(cf_future_new(loop, &f), 0);
    assert_int_equal(cf_thread_pool_new(loop, NULL, &tp), 0);
    ex = cf_thread_pool_executor(tp);
    cf_map_opts_init(&bad);
    bad.on_error = (cf_map_on_error)7;
    cf_process_pool_opts_init(&ppo_pipe);
    ppo_pipe.pipeline = 0;
    cf_process_pool_opts_init(&ppo_workers);
    ppo_workers.max_workers = 0;
#define TRY(call) (rc[i] = (call), snprintf(got[i], sizeof(got[i]), "%s", cf_last_error()), i++)
    TRY(cf_loop_new(ev, NULL));
    TRY(cf_future_new(NULL, &f));
    TRY(cf_future_on_done(f, NULL, NULL, NULL));
    TRY(cf_future_set_error(f, 0, "no"));
    TRY(cf_future_set_bytes(f, NULL, 3));
    TRY(cf_future_unref(NULL));
    TRY(cf_future_cancel(NULL));
    TRY(cf_future_wait(NULL, 0));
    TRY(cf_loop_call(loop, NULL, NULL));
    TRY(cf_loop_release(loop));
    TRY(cf_executor_submit_bytes(NULL, NULL, NULL, 0, &f));
    TRY(cf_executor_shutdown(NULL, 0));
    TRY(cf_runtime_new(0, 0, &rt));
    TRY(cf_runtime_new_opts(NULL, NULL, NULL));
    TRY(cf_runtime_run(NULL));
    TRY(cf_future_get_i64(f, 0, NULL));
    TRY(cf_submit_i64_i64(NULL, NULL, 1, &f));
    TRY(cf_map_i64_i64(NULL, NULL, NULL, 0, 0, NULL));
    TRY(cf_map_new_array(ex, map_fn, xs, 3, 8, &bad, &m));
    TRY(cf_map_new_array(ex, map_fn, NULL, 3, 8, NULL, &m));
    TRY(cf_process_pool_new(loop, &ppo_pipe, &pp));
    TRY(cf_process_pool_new(loop, &ppo_workers, &pp));
#undef TRY
    assert_int_equal(i, sizeof(want) / sizeof(want[0]));
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(rc[i], CF_EINVAL);
        assert_string_equal(got[i], want[i]);
    }
    assert_int_equal(cf_future_cancel(f), 0);
    assert_int_equal(cf_future_unref(f), 0);
    cf_thread_pool_free(tp);
    ev_run(ev, 0);
    assert_int_equal(cf_loop_close(loop), 0);
    ev_loop_destroy(ev);
}

static void test_version_and_clock(void **state)
{
    char want[32];
    uint64_t a, b;

    (void)state;
    snprintf(want, sizeof(want), "%d.%d.%d", CF_VERSION_MAJOR, CF_VERSION_MINOR, CF_VERSION_PATCH);
    assert_string_equal(cf_version(), want);
    a = cf_now_ns();
    b = cf_now_ns();
    assert_true(b >= a);
    assert_true(cf_cpu_count() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_distinct_text),
        cmocka_unit_test(test_errno_codes_pass_through),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_last_error_is_per_thread),
        cmocka_unit_test(test_invalid_arguments_are_named),
        cmocka_unit_test(test_version_and_clock),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
