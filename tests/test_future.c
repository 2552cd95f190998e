/*
 * test_future.c - futures: states, values, errors, callbacks, waits, refcounts.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

struct cbrec {
    pthread_t loop_thread;
    int calls;
    int order[8];
    int status[8];
    int destroyed;
    int wrong_thread;
};

static struct cbrec *g_rec;

static void record_cb(cf_future_t *f, int status, void *data)
{
    int tag = (int)(intptr_t)data;

    (void)f;
    if (!pthread_equal(pthread_self(), g_rec->loop_thread))
        g_rec->wrong_thread++;
    if (g_rec->calls < 8) {
        g_rec->order[g_rec->calls] = tag;
        g_rec->status[g_rec->calls] = status;
    }
    g_rec->calls++;
}

static void record_destroy(void *data)
{
    (void)data;
    g_rec->destroyed++;
}

static void test_promise_finishes_once(void **state)
{
    struct fixture *fx = *state;
    struct cbrec rec = {.loop_thread = pthread_self()};
    cf_future_t *f;
    int64_t v = 0;

    g_rec = &rec;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_status(f), CF_EPENDING);
    assert_int_equal(cf_future_result_i64(f, &v), CF_EPENDING);
    assert_null(cf_future_error(f));
    assert_ptr_equal(cf_future_loop(f), fx->loop);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)1, record_destroy), 0);

    assert_int_equal(cf_future_set_i64(f, 42), 0);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_FINISHED);
    assert_int_equal(rec.calls, 0); /* never inline from the call that completes it */

    /* Resolving twice, failing or cancelling a done future: errors, no change. */
    assert_int_equal(cf_future_set_i64(f, 7), CF_EALREADY);
    assert_int_equal(cf_future_set_error(f, CF_EFAIL, "late"), CF_EALREADY);
    assert_int_equal(cf_future_cancel(f), CF_EALREADY);

    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.status[0], 0);
    assert_int_equal(rec.destroyed, 1);
    assert_int_equal(rec.wrong_thread, 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cf_future_unref(f), 0);
}

static void test_callbacks_in_registration_order(void **state)
{
    struct fixture *fx = *state;
    struct cbrec rec = {.loop_thread = pthread_self()};
    cf_future_t *f;

    g_rec = &rec;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_future_on_done(f, record_cb, (void *)(intptr_t)i, record_destroy), 0);
    assert_int_equal(cf_future_set_f64(f, 2.5), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rec.order[i], i);
    assert_int_equal(rec.destroyed, 5);
    assert_int_equal(cf_future_unref(f), 0);
}

/* The first callback without a destroy notifier is kept inside the future;
 * later ones (with or without one) still run after it, in order, and only
 * theirs are destroyed. */
static void test_mixed_callbacks_in_registration_order(void **state)
{
    struct fixture *fx = *state;
    struct cbrec rec = {.loop_thread = pthread_self()};
    cf_future_t *f, *g;

    g_rec = &rec;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)0, NULL), 0);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)1, record_destroy), 0);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)2, NULL), 0);
    assert_int_equal(cf_future_new(fx->loop, &g), 0);
    assert_int_equal(cf_future_on_done(g, record_cb, (void *)3, NULL), 0);
    assert_int_equal(cf_future_on_done(g, record_cb, (void *)4, NULL), 0);
    assert_int_equal(cf_future_set_i64(f, 1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_set_i64(g, 2), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rec.order[i], i);
    assert_int_equal(rec.destroyed, 1);
    /* A callback added to a done future whose inline callback already ran. */
    assert_int_equal(cf_future_on_done(g, record_cb, (void *)5, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 6);
    assert_int_equal(rec.order[5], 5);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
}

static void test_callback_on_done_future_runs_later(void **state)
{
    struct fixture *fx = *state;
    struct cbrec rec = {.loop_thread = pthread_self()};
    cf_future_t *f;
    double d = 0;

    g_rec = &rec;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_set_f64(f, 1.5), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)9, NULL), 0);
    assert_int_equal(rec.calls, 0); /* scheduled, not run inside on_done */
    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.order[0], 9);
    assert_int_equal(cf_future_result_f64(f, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(cf_future_on_done(f, NULL, NULL, NULL), CF_EINVAL);
    assert_int_equal(cf_future_unref(f), 0);
}

/* A callback that registers another one on the same future: it runs on a later pass. */
static int nested_runs;

static void nested_second(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    (void)data;
    nested_runs++;
}

static void nested_first(cf_future_t *f, int status, void *data)
{
    (void)status;
    (void)data;
    assert_int_equal(cf_future_on_done(f, nested_second, NULL, NULL), 0);
    assert_int_equal(nested_runs, 0);
}

static void test_callback_added_from_callback(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;

    nested_runs = 0;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_on_done(f, nested_first, NULL, NULL), 0);
    assert_int_equal(cf_future_set_i64(f, 1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(nested_runs, 1);
    assert_int_equal(cf_future_unref(f), 0);
}

static int freed_values;

static void count_free(void *p)
{
    (void)p;
    freed_values++;
}

static void test_pointer_value_ownership(void **state)
{
    struct fixture *fx = *state;
    static int a, b;
    cf_future_t *f, *g;
    void *out = NULL;

    freed_values = 0;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_set_result(f, &a, count_free), 0);
    /* A second result is refused and stays the caller's: its destructor is not called. */
    assert_int_equal(cf_future_set_result(f, &b, count_free), CF_EALREADY);
    assert_int_equal(freed_values, 0);
    assert_int_equal(cf_future_result(f, &out), 0);
    assert_ptr_equal(out, &a);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(freed_values, 1);

    /* take() moves ownership out. */
    assert_int_equal(cf_future_new(fx->loop, &g), 0);
    assert_int_equal(cf_future_set_result(g, &b, count_free), 0);
    assert_int_equal(cf_future_take(g, &out), 0);
    assert_ptr_equal(out, &b);
    assert_int_equal(cf_future_take(g, &out), CF_EALREADY);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(freed_values, 1);
}

static void test_bytes_value(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;
    const void *data;
    size_t len;

    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_set_bytes(f, "hello", 5), 0);
    assert_int_equal(cf_future_result_bytes(f, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(cf_future_unref(f), 0);
}

static void test_failure_and_cancel(void **state)
{
    struct fixture *fx = *state;
    struct cbrec rec = {.loop_thread = pthread_self()};
    cf_future_t *f, *g, *h;

    g_rec = &rec;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_set_error(f, 3, "positive codes are not errors"), CF_EINVAL);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_on_done(f, record_cb, (void *)1, NULL), 0);
    assert_int_equal(cf_future_set_error(f, CF_EFAIL, "Don't do %s", "this"), 0);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_FAILED);
    assert_int_equal(cf_future_status(f), CF_EFAIL);
    assert_string_equal(cf_future_error(f), "Don't do this");

    assert_int_equal(cf_future_new(fx->loop, &g), 0);
    assert_int_equal(cf_future_on_done(g, record_cb, (void *)2, NULL), 0);
    assert_int_equal(cf_future_cancel(g), 0);
    assert_int_equal(cf_future_get_state(g), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_status(g), CF_ECANCELED);
    assert_non_null(cf_future_error(g));
    assert_int_equal(cf_future_cancel(g), CF_EALREADY);

    /* An error without a message gets the code's text. */
    assert_int_equal(cf_future_new(fx->loop, &h), 0);
    assert_int_equal(cf_future_set_error(h, CF_ETIMEDOUT, NULL), 0);
    assert_string_equal(cf_future_error(h), cf_strerror(CF_ETIMEDOUT));

    ev_run(fx->ev, 0);
    assert_int_equal(rec.calls, 2);
    assert_int_equal(rec.status[0], CF_EFAIL);
    assert_int_equal(rec.status[1], CF_ECANCELED);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_future_unref(h), 0);
}

static void test_unref_below_zero_is_detected(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;

    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    cf_future_ref(f);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(f), 0);
    /* The memory is still held by the loop's cache, marked released. */
    assert_int_equal(cf_future_unref(f), CF_EINVAL);
    assert_int_equal(cf_future_unref(NULL), CF_EINVAL);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(cf_future_state_name(CF_FUTURE_PENDING), "pending");
    assert_string_equal(cf_future_state_name(CF_FUTURE_RUNNING), "running");
    assert_string_equal(cf_future_state_name(CF_FUTURE_FINISHED), "finished");
    assert_string_equal(cf_future_state_name(CF_FUTURE_FAILED), "failed");
    assert_string_equal(cf_future_state_name(CF_FUTURE_CANCELLED), "cancelled");
}

/* Blocking waits ---------------------------------------------------------- */

static void resolve_from_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    assert_int_equal(cf_future_set_i64(w->data, 5), 0);
}

static void test_wait_runs_the_loop(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;
    ev_timer t;
    int64_t v = 0;

    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    ev_timer_init(&t, resolve_from_timer, 0.01, 0.);
    t.data = f;
    ev_timer_start(fx->ev, &t);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(cf_future_wait(f, 0), 0); /* done: returns at once */
    assert_int_equal(cf_future_unref(f), 0);
}

static void test_wait_timeout_stops_the_wait(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;

    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_wait(f, 0.02), CF_ETIMEDOUT);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_PENDING); /* the future is untouched */
    assert_int_equal(cf_future_set_i64(f, 1), 0);
    assert_int_equal(cf_future_unref(f), 0);
    ev_run(fx->ev, 0);
}

static void test_wait_without_hope_is_a_deadlock(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;

    /* Nothing on the loop can ever resolve it: an error, not a hang. */
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_wait(f, -1), CF_EDEADLK);
    assert_last_error("nothing on the loop can complete");
    assert_int_equal(cf_future_unref(f), 0);
}

static int wait_in_cb_rc;

static void wait_inside(cf_future_t *f, int status, void *data)
{
    (void)status;
    (void)f;
    wait_in_cb_rc = cf_future_wait(data, 1.0);
}

static void test_wait_inside_callback_is_refused(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f, *other;

    wait_in_cb_rc = 0;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_future_new(fx->loop, &other), 0);
    assert_int_equal(cf_future_on_done(f, wait_inside, other, NULL), 0);
    assert_int_equal(cf_future_set_i64(f, 1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(wait_in_cb_rc, CF_EDEADLK);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(other), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_promise_finishes_once),
        T(test_callbacks_in_registration_order),
        T(test_mixed_callbacks_in_registration_order),
        T(test_callback_on_done_future_runs_later),
        T(test_callback_added_from_callback),
        T(test_pointer_value_ownership),
        T(test_bytes_value),
        T(test_failure_and_cancel),
        T(test_unref_below_zero_is_detected),
        cmocka_unit_test(test_state_names),
        T(test_wait_runs_the_loop),
        T(test_wait_timeout_stops_the_wait),
        T(test_wait_without_hope_is_a_deadlock),
        T(test_wait_inside_callback_is_refused),
    };
    return cmocka_run_group_tests_name("future", tests, NULL, NULL);
}
