/*
 * test_loop.c - loop binding: liveness, cross-thread calls, batching, close.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "testutil.h"

static void test_new_rejects_null(void **state)
{
    struct fixture *fx = *state;
    cf_loop_t *l;

    assert_int_equal(cf_loop_new(NULL, &l), CF_EINVAL);
    assert_int_equal(cf_loop_new(fx->ev, NULL), CF_EINVAL);
    assert_ptr_equal(cf_loop_ev(fx->loop), fx->ev);
    assert_int_equal(cf_loop_close(NULL), CF_EINVAL);
    assert_int_equal(cf_loop_call(NULL, NULL, NULL), CF_EINVAL);
    assert_int_equal(cf_loop_call(fx->loop, NULL, NULL), CF_EINVAL);
}

static void test_two_bindings_on_one_loop(void **state)
{
    struct fixture *fx = *state;
    cf_loop_t *second;

    assert_int_equal(cf_loop_new(fx->ev, &second), 0);
    assert_int_equal(cf_loop_close(second), 0);
}

static void test_run_returns_with_nothing_to_do(void **state)
{
    struct fixture *fx = *state;

    /* Our own watchers never keep the loop alive by themselves. */
    assert_int_equal(ev_run(fx->ev, 0), 0);
}

static void test_close_refuses_while_future_alive(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f;

    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    assert_int_equal(cf_loop_close(fx->loop), CF_ELOOPBUSY);
    assert_last_error("1 future(s) and 0 executor(s) still alive");
    assert_int_equal(cf_future_unref(f), 0);
}

struct calls {
    pthread_t loop_thread;
    int n;
    int wrong_thread;
    int order_errors;
    int last[4];
    int per_thread;
};

static struct calls *g_calls;

static void on_call(cf_loop_t *loop, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int thread = (int)(v >> 24), seq = (int)(v & 0xffffff);

    (void)loop;
    g_calls->n++;
    if (!pthread_equal(pthread_self(), g_calls->loop_thread))
        g_calls->wrong_thread++;
    if (seq != g_calls->last[thread] + 1)
        g_calls->order_errors++;
    g_calls->last[thread] = seq;
}

struct caller {
    cf_loop_t *loop;
    int index;
    int count;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;

    for (int i = 1; i <= c->count; i++)
        if (cf_loop_call(c->loop, on_call, (void *)(((uintptr_t)c->index << 24) | (uintptr_t)i)) != 0)
            abort();
    return NULL;
}

static void release_cb(cf_loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(cf_loop_release(loop), 0);
}

static void test_calls_from_foreign_threads(void **state)
{
    struct fixture *fx = *state;
    struct calls calls = {.loop_thread = pthread_self(), .per_thread = 20000};
    struct caller callers[4];
    pthread_t t[4];

    g_calls = &calls;
    cf_loop_hold(fx->loop); /* the loop must wait for the calls */
    for (int i = 0; i < 4; i++) {
        callers[i] = (struct caller){fx->loop, i, calls.per_thread};
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &callers[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* All calls are queued: a last one, made after them, releases the hold. */
    assert_int_equal(cf_loop_call(fx->loop, release_cb, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(calls.n, 4 * calls.per_thread);
    assert_int_equal(calls.wrong_thread, 0);
    assert_int_equal(calls.order_errors, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(calls.last[i], calls.per_thread);
}

static int inline_ran;

static void mark_inline(cf_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    inline_ran++;
}

static void test_call_from_loop_thread_is_not_inline(void **state)
{
    struct fixture *fx = *state;

    inline_ran = 0;
    cf_loop_hold(fx->loop);
    assert_int_equal(cf_loop_call(fx->loop, mark_inline, NULL), 0);
    assert_int_equal(inline_ran, 0);
    assert_int_equal(cf_loop_call(fx->loop, release_cb, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(inline_ran, 1);
    assert_int_equal(cf_loop_release(fx->loop), CF_EINVAL); /* no hold left */
}

/* Batching: at most `batch` items per iteration, other watchers run in between. */
struct batching {
    int items;
    int in_this_iteration;
    int max_per_iteration;
    int prepares;
};

static struct batching *g_batch;

static void count_item(cf_loop_t *loop, void *arg)
{
    (void)arg;
    g_batch->items++;
    g_batch->in_this_iteration++;
    if (g_batch->in_this_iteration > g_batch->max_per_iteration)
        g_batch->max_per_iteration = g_batch->in_this_iteration;
    if (g_batch->items == 1000)
        cf_loop_release(loop);
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev;
    (void)w;
    (void)revents;
    g_batch->prepares++;
    g_batch->in_this_iteration = 0;
}

static void test_batch_bound_leaves_room_for_io(void **state)
{
    struct fixture *fx = *state;
    struct batching b = {0};
    ev_prepare prep;

    g_batch = &b;
    cf_loop_set_batch(fx->loop, 10);
    ev_prepare_init(&prep, prepare_cb);
    ev_prepare_start(fx->ev, &prep);
    ev_unref(fx->ev);
    cf_loop_hold(fx->loop);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cf_loop_call(fx->loop, count_item, NULL), 0);
    ev_run(fx->ev, 0);
    ev_ref(fx->ev);
    ev_prepare_stop(fx->ev, &prep);
    assert_int_equal(b.items, 1000);
    assert_true(b.max_per_iteration <= 10);
    assert_true(b.prepares >= 100);
    cf_loop_set_batch(fx->loop, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_rejects_null, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_two_bindings_on_one_loop, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_run_returns_with_nothing_to_do, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_close_refuses_while_future_alive, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_calls_from_foreign_threads, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_call_from_loop_thread_is_not_inline, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_batch_bound_leaves_room_for_io, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
