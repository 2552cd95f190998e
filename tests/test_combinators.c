/*
 * test_combinators.c - wait, all/any/settled, then, adopt, timeout, sleep,
 * fd futures, as-completed and task groups.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <unistd.h>

/* ------------------------------------------------------------------ wait */

static void test_wait_modes(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *fs[3] = {new_promise(fx), new_resolved(fx, 1), new_promise(fx)};
    unsigned char done[3];
    size_t ndone = 99;

    /* FIRST_COMPLETED: already satisfied, returns at once. */
    assert_int_equal(cf_wait(fs, 3, CF_FIRST_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    assert_int_equal(done[0], 0);
    assert_int_equal(done[1], 1);
    /* ALL_COMPLETED with a timeout: returns 0, the not-done ones flagged 0. */
    assert_int_equal(cf_wait(fs, 3, CF_ALL_COMPLETED, 0.02, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    /* FIRST_EXCEPTION: a cancelled input does not count as an exception... */
    assert_int_equal(cf_future_cancel(fs[0]), 0);
    assert_int_equal(cf_wait(fs, 3, CF_FIRST_EXCEPTION, 0.02, done, &ndone), 0);
    assert_int_equal(ndone, 2);
    assert_int_equal(done[2], 0);
    /* ...a failure does. */
    assert_int_equal(cf_future_set_error(fs[2], CF_EFAIL, "x"), 0);
    assert_int_equal(cf_wait(fs, 3, CF_FIRST_EXCEPTION, -1, done, &ndone), 0);
    assert_int_equal(ndone, 3);
    /* Misuse. */
    assert_int_equal(cf_wait(fs, 3, (cf_wait_mode)9, -1, done, &ndone), CF_EINVAL);
    assert_int_equal(cf_wait(NULL, 3, CF_ALL_COMPLETED, -1, done, &ndone), CF_EINVAL);
    assert_int_equal(cf_wait(NULL, 0, CF_ALL_COMPLETED, -1, NULL, &ndone), 0); /* empty: done at once */
    assert_int_equal(ndone, 0);
    ev_run(fx->ev, 0);
    unref_all(fs, 3);
}

static void test_wait_across_two_executors(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *a = make_pool(fx, 1), *b = make_pool(fx, 1);
    cf_future_t *fs[4], *w;
    static struct gate g; /* outlives the frame whatever happens to the test */
    unsigned char done[4];
    size_t ndone;
    int64_t n = -1;

    gate_init(&g);
    assert_int_equal(cf_thread_pool_submit(b, task_wait_gate, &g, NULL, &fs[1]), 0);
    /* fs[0] completes before fs[2] starts, whatever the machine's load. */
    assert_int_equal(cf_thread_pool_submit(a, task_square, (void *)3, NULL, &fs[0]), 0);
    assert_int_equal(cf_future_wait(fs[0], -1), 0);
    assert_int_equal(cf_sleep(fx->loop, 0.01, &fs[2]), 0);
    assert_int_equal(cf_future_wait(fs[2], -1), 0);
    fs[3] = fs[0]; /* a duplicate */
    assert_int_equal(cf_wait_future(fs, 4, CF_ALL_COMPLETED, 0.05, &w), 0);
    assert_int_equal(cf_future_set_i64(w, 1), CF_EPERM); /* a combinator's output */
    assert_int_equal(cf_future_wait(w, -1), 0);
    assert_int_equal(cf_future_result_i64(w, &n), 0);
    assert_int_equal(n, 3); /* positions 0, 2, 3 done; the gated task is not */
    /* as-completed over the same mix: the done ones first, the gated task last. */
    cf_as_completed_t *it;
    cf_future_t *got[3];
    assert_int_equal(cf_as_completed_new(fs, 4, -1, &it), 0);
    assert_int_equal(cf_as_completed_next(it, &got[0]), 0);
    assert_int_equal(cf_as_completed_next(it, &got[1]), 0);
    assert_ptr_equal(got[0], fs[0]);
    assert_ptr_equal(got[1], fs[2]);
    gate_open(&g);
    assert_int_equal(cf_as_completed_next(it, &got[2]), 0);
    assert_ptr_equal(got[2], fs[1]);
    assert_int_equal(cf_as_completed_next(it, &got[2]), CF_EOF);
    cf_as_completed_free(it);
    assert_int_equal(cf_wait(fs, 4, CF_ALL_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 4);
    unref_all(fs, 3);
    assert_int_equal(cf_future_unref(w), 0);
    cf_thread_pool_free(a);
    cf_thread_pool_free(b);
    gate_destroy(&g);
}

static int wait_rc_in_cb;

static void wait_in_cb(cf_future_t *f, int status, void *data)
{
    unsigned char d[1];
    size_t n;

    (void)status;
    (void)data;
    wait_rc_in_cb = cf_wait(&f, 1, CF_ALL_COMPLETED, -1, d, &n); /* f is done: no need to block */
    cf_future_t *p = data;
    wait_rc_in_cb = wait_rc_in_cb ? wait_rc_in_cb : cf_wait(&p, 1, CF_ALL_COMPLETED, -1, d, &n);
}

static void test_wait_inside_callback(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f = new_promise(fx), *pending = new_promise(fx);

    assert_int_equal(cf_future_on_done(f, wait_in_cb, pending, NULL), 0);
    assert_int_equal(cf_future_set_i64(f, 1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(wait_rc_in_cb, CF_EDEADLK);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(pending), 0);
}

/*
 * cf_future_wait() inside a callback: on a future that is already done it
 * returns 0 at once (there is nothing to wait for, so nothing recurses); on a
 * pending one it refuses with CF_EDEADLK instead of running the loop.
 */
struct wait_probe {
    cf_future_t *done, *pending;
    int rc_done, rc_pending, rc_timeout;
    uint64_t iterations;
};

static void future_wait_in_cb(cf_future_t *f, int status, void *data)
{
    struct wait_probe *p = data;
    unsigned before = ev_iteration(cf_loop_ev(cf_future_loop(f)));

    (void)status;
    p->rc_done = cf_future_wait(p->done, -1);
    p->rc_timeout = cf_future_wait(p->done, 0);
    p->rc_pending = cf_future_wait(p->pending, 5);
    p->iterations = ev_iteration(cf_loop_ev(cf_future_loop(f))) - before;
}

static void test_future_wait_inside_callback(void **state)
{
    struct fixture *fx = *state;
    struct wait_probe p = {.done = new_resolved(fx, 1), .pending = new_promise(fx), .rc_done = 99};
    cf_future_t *trigger = new_resolved(fx, 2);

    assert_int_equal(cf_future_on_done(trigger, future_wait_in_cb, &p, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(p.rc_done, 0);
    assert_int_equal(p.rc_timeout, 0);
    assert_int_equal(p.rc_pending, CF_EDEADLK);
    assert_int_equal(p.iterations, 0); /* the loop was not run from inside */
    assert_int_equal(cf_future_get_state(p.pending), CF_FUTURE_PENDING);
    unref_all((cf_future_t *[]){p.done, p.pending, trigger}, 3);
}

/* ------------------------------------------------------------------ all / settled / any */

static void test_all_values_in_input_order(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *fs[5], *all, *empty;
    cf_future_t *const *list;
    size_t n;

    for (int i = 0; i < 4; i++)
        assert_int_equal(cf_thread_pool_submit(p, task_square, (void *)(intptr_t)(i + 2), NULL, &fs[i]), 0);
    fs[4] = fs[1]; /* duplicates are fine */
    assert_int_equal(cf_all(fs, 5, 0, &all), 0);
    assert_int_equal(cf_future_wait(all, -1), 0);
    assert_int_equal(cf_future_result_list(all, &list, &n), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        int64_t v;
        assert_int_equal(cf_future_result_i64(list[i], &v), 0);
        assert_int_equal(v, (int64_t)((i == 4 ? 3 : i + 2) * (i == 4 ? 3 : i + 2)));
    }
    /* Empty input: an empty list at once. */
    assert_int_equal(cf_all(NULL, 0, 0, &empty), CF_EINVAL); /* no input names the loop */
    unref_all(fs, 4);
    assert_int_equal(cf_future_unref(all), 0);
    cf_thread_pool_free(p);
}

static void test_all_first_failure_and_cancel_rest(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    static struct gate g; /* outlives the frame whatever happens to the test */
    cf_future_t *fs[3], *all;

    gate_init(&g);
    assert_int_equal(cf_thread_pool_submit(p, task_wait_gate, &g, NULL, &fs[0]), 0);
    fs[1] = new_promise(fx);
    fs[2] = new_promise(fx);
    assert_int_equal(cf_all(fs, 3, CF_CANCEL_REST, &all), 0);
    assert_int_equal(cf_future_set_error(fs[1], CF_EFAIL, "second broke"), 0);
    assert_int_equal(cf_future_wait(all, -1), 0);
    assert_int_equal(cf_future_status(all), CF_EFAIL);
    assert_string_equal(cf_future_error(all), "input 1: second broke");
    assert_int_equal(cf_future_get_state(fs[2]), CF_FUTURE_CANCELLED); /* the rest was cancelled */
    gate_open(&g);
    ev_run(fx->ev, 0);
    unref_all(fs, 3);
    assert_int_equal(cf_future_unref(all), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

static void test_cancel_all_cancels_inputs(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *fs[2] = {new_promise(fx), new_promise(fx)}, *all;

    assert_int_equal(cf_all(fs, 2, 0, &all), 0);
    assert_int_equal(cf_future_cancel(all), 0);
    assert_int_equal(cf_future_get_state(all), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_get_state(fs[0]), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_get_state(fs[1]), CF_FUTURE_CANCELLED);
    ev_run(fx->ev, 0);
    unref_all(fs, 2);
    assert_int_equal(cf_future_unref(all), 0);
}

static void test_settled_never_fails(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *fs[3] = {new_resolved(fx, 1), new_promise(fx), new_promise(fx)}, *s;
    cf_future_t *const *list;
    size_t n;

    assert_int_equal(cf_settled(fs, 3, &s), 0);
    assert_int_equal(cf_future_set_error(fs[1], CF_EFAIL, "no"), 0);
    assert_int_equal(cf_future_cancel(fs[2]), 0);
    assert_int_equal(cf_future_wait(s, -1), 0);
    assert_int_equal(cf_future_status(s), 0);
    assert_int_equal(cf_future_result_list(s, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(cf_future_status(list[1]), CF_EFAIL);
    assert_int_equal(cf_future_status(list[2]), CF_ECANCELED);
    assert_int_equal(cf_future_result_list(fs[0], &list, &n), CF_EINVAL); /* not a list */
    unref_all(fs, 3);
    assert_int_equal(cf_future_unref(s), 0);
}

static void test_any(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *fs[3], *any, *all_fail, *none;
    void *winner = NULL;

    assert_int_equal(cf_thread_pool_submit(p, task_boom, (void *)1, NULL, &fs[0]), 0);
    assert_int_equal(cf_thread_pool_submit(p, task_square, (void *)5, NULL, &fs[1]), 0);
    fs[2] = new_promise(fx);
    assert_int_equal(cf_any(fs, 3, CF_CANCEL_REST, &any), 0);
    assert_int_equal(cf_future_wait(any, -1), 0);
    assert_int_equal(cf_future_result(any, &winner), 0);
    assert_ptr_equal(winner, fs[1]);
    assert_int_equal(cf_future_get_state(fs[2]), CF_FUTURE_CANCELLED);

    /* Every input failing: one failure carrying every error. */
    cf_future_t *bad[2] = {fs[0], new_promise(fx)};
    assert_int_equal(cf_future_set_error(bad[1], CF_ETIMEDOUT, "slow"), 0);
    assert_int_equal(cf_any(bad, 2, 0, &all_fail), 0);
    assert_int_equal(cf_future_wait(all_fail, -1), 0);
    assert_int_equal(cf_future_status(all_fail), CF_EFAIL);
    assert_non_null(strstr(cf_future_error(all_fail), "[0] CF_EFAIL: boom 1"));
    assert_non_null(strstr(cf_future_error(all_fail), "[1] CF_ETIMEDOUT: slow"));
    assert_int_equal(cf_any(NULL, 0, 0, &none), CF_EINVAL);
    unref_all(fs, 3);
    assert_int_equal(cf_future_unref(bad[1]), 0);
    assert_int_equal(cf_future_unref(any), 0);
    assert_int_equal(cf_future_unref(all_fail), 0);
    cf_thread_pool_free(p);
}

/* ------------------------------------------------------------------ then / adopt / timeout */

static int plus_one(cf_future_t *src, cf_future_t *dst, void *data)
{
    int64_t v;

    (void)data;
    assert_int_equal(cf_future_result_i64(src, &v), 0);
    return cf_future_set_i64(dst, v + 1);
}

static int then_calls;

static int count_then(cf_future_t *src, cf_future_t *dst, void *data)
{
    (void)data;
    then_calls++;
    return cf_future_set_i64(dst, cf_future_status(src));
}

static int then_fails(cf_future_t *src, cf_future_t *dst, void *data)
{
    (void)src;
    (void)dst;
    (void)data;
    return CF_ENOTSUP;
}

static cf_future_t *g_later;

static int then_later(cf_future_t *src, cf_future_t *dst, void *data)
{
    (void)src;
    (void)data;
    return cf_future_adopt(dst, g_later); /* resolved later, by another future */
}

static int destroyed;

static void count_destroy(void *p)
{
    (void)p;
    destroyed++;
}

static void test_then_chains(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    cf_future_t *src, *t1, *t2, *failed, *t3, *t4, *t5, *t6;
    int64_t v = 0;

    destroyed = 0;
    assert_int_equal(cf_thread_pool_submit(p, task_square, (void *)3, NULL, &src), 0);
    assert_int_equal(cf_then(src, plus_one, NULL, count_destroy, 0, &t1), 0);
    assert_int_equal(cf_then(t1, plus_one, NULL, count_destroy, 0, &t2), 0);
    assert_int_equal(cf_future_set_i64(t2, 1), CF_EPERM);
    assert_int_equal(cf_future_wait(t2, -1), 0);
    assert_int_equal(cf_future_result_i64(t2, &v), 0);
    assert_int_equal(v, 11);
    assert_int_equal(destroyed, 2);

    /* Errors propagate without calling the continuation, unless CF_THEN_ALWAYS. */
    then_calls = 0;
    failed = new_promise(fx);
    assert_int_equal(cf_then(failed, count_then, NULL, NULL, 0, &t3), 0);
    assert_int_equal(cf_then(failed, count_then, NULL, NULL, CF_THEN_ALWAYS, &t4), 0);
    assert_int_equal(cf_future_set_error(failed, CF_EFAIL, "upstream"), 0);
    assert_int_equal(cf_future_wait(t3, -1), 0);
    assert_int_equal(cf_future_wait(t4, -1), 0);
    assert_int_equal(cf_future_status(t3), CF_EFAIL);
    assert_string_equal(cf_future_error(t3), "upstream");
    assert_int_equal(cf_future_result_i64(t4, &v), 0);
    assert_int_equal(v, CF_EFAIL);
    assert_int_equal(then_calls, 1);

    /* A continuation that returns an error fails its future. */
    assert_int_equal(cf_then(t2, then_fails, NULL, NULL, 0, &t5), 0);
    assert_int_equal(cf_future_wait(t5, -1), 0);
    assert_int_equal(cf_future_status(t5), CF_ENOTSUP);

    /* A continuation that resolves later, through adopt. */
    g_later = new_promise(fx);
    assert_int_equal(cf_then(t2, then_later, NULL, NULL, 0, &t6), 0);
    ev_run(fx->ev, EVRUN_NOWAIT);
    ev_run(fx->ev, EVRUN_NOWAIT);
    assert_int_equal(cf_future_get_state(t6), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_set_i64(g_later, 77), 0);
    assert_int_equal(cf_future_wait(t6, -1), 0);
    assert_int_equal(cf_future_result_i64(t6, &v), 0);
    assert_int_equal(v, 77);

    cf_future_t *all[] = {src, t1, t2, failed, t3, t4, t5, t6, g_later};
    unref_all(all, sizeof(all) / sizeof(all[0]));
    cf_thread_pool_free(p);
}

static void test_cancel_chain_in_the_middle(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *a = new_promise(fx), *b, *c;

    assert_int_equal(cf_then(a, plus_one, NULL, NULL, 0, &b), 0);
    assert_int_equal(cf_then(b, plus_one, NULL, NULL, 0, &c), 0);
    assert_int_equal(cf_future_cancel(b), 0);
    assert_int_equal(cf_future_get_state(a), CF_FUTURE_CANCELLED); /* upstream */
    assert_int_equal(cf_future_wait(c, -1), 0);
    assert_int_equal(cf_future_get_state(c), CF_FUTURE_CANCELLED); /* downstream */
    unref_all((cf_future_t *[]){a, b, c}, 3);
}

static void test_adopt_rules(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *dst = new_promise(fx), *src = new_promise(fx), *done = new_resolved(fx, 1);
    static int value;
    void *out;

    assert_int_equal(cf_future_adopt(dst, dst), CF_EINVAL);
    assert_int_equal(cf_future_adopt(done, src), CF_EALREADY);
    assert_int_equal(cf_future_adopt(dst, src), 0);
    assert_int_equal(cf_future_set_i64(dst, 1), CF_EPERM);
    assert_int_equal(cf_future_set_result(src, &value, count_destroy), 0);
    assert_int_equal(cf_future_wait(dst, -1), 0);
    assert_int_equal(cf_future_result(dst, &out), 0);
    assert_ptr_equal(out, &value);
    destroyed = 0;
    assert_int_equal(cf_future_unref(src), 0); /* dst keeps src (and its value) alive */
    assert_int_equal(destroyed, 0);
    assert_int_equal(cf_future_unref(dst), 0);
    assert_int_equal(destroyed, 1);
    assert_int_equal(cf_future_unref(done), 0);
}

static void test_timeout(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *slow = new_promise(fx), *fast = new_promise(fx), *t1, *t2;
    int64_t v;

    assert_int_equal(cf_timeout(slow, 0.02, &t1), 0);
    assert_int_equal(cf_timeout(fast, -1, &t2), CF_EINVAL);
    assert_int_equal(cf_timeout(fast, 5, &t2), 0);
    assert_int_equal(cf_future_set_i64(fast, 3), 0);
    assert_int_equal(cf_future_wait(t1, -1), 0);
    assert_int_equal(cf_future_status(t1), CF_ETIMEDOUT);
    assert_non_null(strstr(cf_future_error(t1), "timed out"));
    assert_int_equal(cf_future_get_state(slow), CF_FUTURE_CANCELLED); /* cancellation requested */
    assert_int_equal(cf_future_wait(t2, -1), 0);
    assert_int_equal(cf_future_result_i64(t2, &v), 0);
    assert_int_equal(v, 3);
    unref_all((cf_future_t *[]){slow, fast, t1, t2}, 4);
}

static int value_frees;

static void count_value_free(void *p)
{
    (void)p;
    value_frees++;
}

/* A mirrored pointer value is shared; taking it from the mirror takes it from its source. */
static void test_shared_value_taken_once(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *src = new_promise(fx), *t, *dst = new_promise(fx);
    static int value;
    void *got = NULL, *again = NULL;

    value_frees = 0;
    assert_int_equal(cf_timeout(src, 10, &t), 0);
    assert_int_equal(cf_future_adopt(dst, t), 0); /* a mirror of a mirror */
    assert_int_equal(cf_future_set_result(src, &value, count_value_free), 0);
    assert_int_equal(cf_future_wait(dst, -1), 0);
    assert_int_equal(cf_future_result(dst, &got), 0);
    assert_ptr_equal(got, &value);
    assert_int_equal(cf_future_unref(src), 0); /* t keeps src alive, dst keeps t */
    assert_int_equal(cf_future_unref(t), 0);
    got = NULL;
    assert_int_equal(cf_future_take(dst, &got), 0); /* the caller now owns the value */
    assert_ptr_equal(got, &value);
    assert_int_equal(cf_future_take(dst, &again), CF_EALREADY);
    assert_int_equal(cf_future_unref(dst), 0); /* frees t and src: the value is not destroyed */
    assert_int_equal(value_frees, 0);
}

static void test_last_error_names_the_argument(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *fs[2] = {new_promise(fx), NULL}, *out, *other;
    struct ev_loop *ev2 = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop2;

    assert_int_equal(cf_all(NULL, 3, 0, &out), CF_EINVAL);
    assert_last_error("cf_all: fs is NULL but n is 3");
    assert_int_equal(cf_any(fs, 2, 0, &out), CF_EINVAL);
    assert_last_error("cf_any: fs[1] is NULL");
    assert_int_equal(cf_settled(fs, 0, &out), CF_EINVAL);
    assert_last_error("cf_settled: no inputs");
    assert_int_equal(cf_all(fs, 1, 0x40, &out), CF_EINVAL);
    assert_last_error("cf_all: unknown flags 0x40");
    assert_int_equal(cf_wait(fs, 1, (cf_wait_mode)7, -1, NULL, NULL), CF_EINVAL);
    assert_last_error("cf_wait: mode 7 is not a cf_wait_mode");
    assert_int_equal(cf_wait_future(fs, 1, CF_ALL_COMPLETED, -1, NULL), CF_EINVAL);
    assert_last_error("cf_wait_future: out is NULL");
    assert_int_equal(cf_timeout(fs[0], -3, &out), CF_EINVAL);
    assert_last_error("cf_timeout: seconds must be >= 0 (got -3)");
    assert_int_equal(cf_then(fs[0], NULL, NULL, NULL, 0, &out), CF_EINVAL);
    assert_last_error("cf_then: fn is NULL");
    assert_int_equal(cf_sleep(fx->loop, -1, &out), CF_EINVAL);
    assert_last_error("cf_sleep: seconds must be >= 0 (got -1)");
    assert_int_equal(cf_fd_ready(fx->loop, 0, 0x100, &out), CF_EINVAL);
    assert_last_error("cf_fd_ready: events must be EV_READ and/or EV_WRITE (got 0x100)");
    assert_int_equal(cf_group_new(NULL, NULL), CF_EINVAL);
    assert_last_error("cf_group_new: loop is NULL");
    assert_int_equal(cf_as_completed_next(NULL, &out), CF_EINVAL);
    assert_last_error("cf_as_completed_next: it is NULL");

    /* Futures of two loops cannot be combined. */
    assert_non_null(ev2);
    assert_int_equal(cf_loop_new(ev2, &loop2), 0);
    assert_int_equal(cf_future_new(loop2, &other), 0);
    fs[1] = other;
    assert_int_equal(cf_all(fs, 2, 0, &out), CF_EINVAL);
    assert_last_error("cf_all: fs[1] belongs to another loop than fs[0]");
    assert_int_equal(cf_future_adopt(fs[0], other), CF_EINVAL);
    assert_last_error("cf_future_adopt: dst and src belong to different loops");
    assert_int_equal(cf_future_unref(other), 0);
    assert_int_equal(cf_loop_close(loop2), 0);
    ev_loop_destroy(ev2);
    assert_int_equal(cf_future_unref(fs[0]), 0);
}

/* ------------------------------------------------------------------ timers and fds */

static void test_sleep_and_fd_ready(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *s, *s2, *rd;
    int fds[2];
    int64_t ev = 0;

    assert_int_equal(cf_sleep(fx->loop, -1, &s), CF_EINVAL);
    assert_int_equal(cf_sleep(fx->loop, 0.01, &s), 0);
    assert_int_equal(cf_sleep(fx->loop, 100, &s2), 0);
    assert_int_equal(cf_future_wait(s, -1), 0);
    assert_int_equal(cf_future_status(s), 0);
    assert_int_equal(cf_future_cancel(s2), 0); /* stops the timer: ev_run can return */
    assert_int_equal(cf_future_get_state(s2), CF_FUTURE_CANCELLED);

    assert_int_equal(pipe(fds), 0);
    assert_int_equal(cf_fd_ready(fx->loop, fds[0], 0, &rd), CF_EINVAL);
    assert_int_equal(cf_fd_ready(fx->loop, -1, EV_READ, &rd), CF_EINVAL);
    assert_int_equal(cf_fd_ready(fx->loop, fds[0], EV_READ, &rd), 0);
    assert_int_equal(cf_future_wait(rd, 0.01), CF_ETIMEDOUT);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(cf_future_wait(rd, -1), 0);
    assert_int_equal(cf_future_result_i64(rd, &ev), 0);
    assert_int_equal(ev, EV_READ);
    close(fds[0]);
    close(fds[1]);
    ev_run(fx->ev, 0);
    unref_all((cf_future_t *[]){s, s2, rd}, 3);
}

/* ------------------------------------------------------------------ as completed */

static void test_as_completed_order(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *done1 = new_resolved(fx, 1), *done2 = new_resolved(fx, 2), *late = new_promise(fx),
                *later = new_promise(fx);
    cf_future_t *fs[6] = {late, done2, later, done1, done2, late};
    cf_as_completed_t *it;
    cf_future_t *f;

    assert_int_equal(cf_as_completed_new(fs, 6, -1, &it), 0);
    /* Already-done first, in input order. */
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, done2);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, done1);
    /* Then completion order; each future once. */
    assert_int_equal(cf_future_set_i64(later, 4), 0);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, later);
    assert_int_equal(cf_future_set_i64(late, 3), 0);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, late);
    assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);

    /* Empty input: the end at once. */
    assert_int_equal(cf_as_completed_new(NULL, 0, -1, &it), 0);
    assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    unref_all((cf_future_t *[]){done1, done2, late, later}, 4);
}

static void test_as_completed_timeout(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *fs[2] = {new_resolved(fx, 1), new_promise(fx)};
    cf_as_completed_t *it;
    cf_future_t *f;

    assert_int_equal(cf_as_completed_new(fs, 2, 0.02, &it), 0);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_int_equal(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
    assert_last_error("cf_as_completed_next: timed out after 0.020 s with 1 of 2 futures done");
    assert_int_equal(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
    cf_as_completed_free(it);
    unref_all(fs, 2);
}

struct each_rec {
    int n;
    cf_future_t *order[4];
};

static struct each_rec *g_each;

static void each_cb(cf_future_t *f, int status, void *data)
{
    (void)status;
    (void)data;
    g_each->order[g_each->n++] = f;
}

static void test_as_completed_callbacks(void **state)
{
    struct fixture *fx = *state;
    struct each_rec rec = {0};
    cf_future_t *a = new_promise(fx), *b = new_resolved(fx, 2);
    cf_future_t *fs[3] = {a, b, a}, *out;
    int64_t n = 0;

    g_each = &rec;
    assert_int_equal(cf_as_completed_each(fs, 3, -1, each_cb, NULL, NULL, &out), 0);
    assert_int_equal(rec.n, 0); /* never inline */
    assert_int_equal(cf_future_set_i64(a, 1), 0);
    assert_int_equal(cf_future_wait(out, -1), 0);
    assert_int_equal(cf_future_result_i64(out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rec.n, 2);
    assert_ptr_equal(rec.order[0], b); /* the already-done one first */
    assert_ptr_equal(rec.order[1], a);
    unref_all((cf_future_t *[]){a, b, out}, 3);
}

struct pos_rec {
    int n;
    cf_future_t *f[4];
    size_t index[4];
};

static void each_index_cb(cf_future_t *f, size_t index, int status, void *data)
{
    struct pos_rec *r = data;

    (void)status;
    r->f[r->n] = f;
    r->index[r->n++] = index;
}

static void test_as_completed_reports_positions(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *done1 = new_resolved(fx, 1), *done2 = new_resolved(fx, 2), *late = new_promise(fx),
                *later = new_promise(fx);
    cf_future_t *fs[6] = {late, done2, done2, later, done1, late}, *f, *out;
    cf_as_completed_t *it;
    struct pos_rec rec = {0};
    size_t index = 99;

    /* The iterator: each future with the position of its first occurrence. */
    assert_int_equal(cf_as_completed_new(fs, 6, -1, &it), 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, done2);
    assert_int_equal(index, 1);
    assert_int_equal(cf_as_completed_next_index(it, &f, NULL), 0); /* index is optional */
    assert_ptr_equal(f, done1);
    assert_int_equal(cf_future_set_i64(later, 4), 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, later);
    assert_int_equal(index, 3);

    /* The callback form over the same inputs, started before `late` is done. */
    assert_int_equal(cf_as_completed_each_index(fs, 6, -1, each_index_cb, &rec, NULL, &out), 0);
    assert_int_equal(rec.n, 0); /* never inline */
    assert_int_equal(cf_future_set_i64(late, 3), 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, late);
    assert_int_equal(index, 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), CF_EOF);
    cf_as_completed_free(it);
    assert_int_equal(cf_future_wait(out, -1), 0);
    assert_int_equal(rec.n, 4);
    assert_ptr_equal(rec.f[0], done2); /* done at the start, in input order */
    assert_int_equal(rec.index[0], 1);
    assert_ptr_equal(rec.f[1], later);
    assert_int_equal(rec.index[1], 3);
    assert_ptr_equal(rec.f[2], done1);
    assert_int_equal(rec.index[2], 4);
    assert_ptr_equal(rec.f[3], late);
    assert_int_equal(rec.index[3], 0);
    assert_int_equal(cf_as_completed_each_index(fs, 6, -1, NULL, NULL, NULL, &out), CF_EINVAL);
    assert_last_error("cf_as_completed_each_index: cb is NULL");
    unref_all((cf_future_t *[]){done1, done2, late, later, out}, 5);
}

/* ------------------------------------------------------------------ groups */

static void test_group_second_task_fails(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_group_t *g;
    cf_future_t *sleeper, *failing, *pending, *late, *gf;

    assert_int_equal(cf_group_new(fx->loop, &g), 0);
    assert_int_equal(cf_sleep(fx->loop, 30, &sleeper), 0);
    assert_int_equal(cf_thread_pool_submit(p, task_boom, (void *)2, NULL, &failing), 0);
    pending = new_promise(fx);
    assert_int_equal(cf_group_add(g, sleeper), 0);
    assert_int_equal(cf_group_add(g, failing), 0);
    assert_int_equal(cf_group_add(g, pending), 0);
    assert_int_equal(cf_group_wait(g, -1), CF_EFAIL);
    assert_string_equal(cf_group_error(g), "member 1: boom 2");
    assert_int_equal(cf_future_get_state(sleeper), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_get_state(pending), CF_FUTURE_CANCELLED);
    late = new_promise(fx);
    assert_int_equal(cf_group_add(g, late), CF_ESHUTDOWN);
    assert_int_equal(cf_group_future(g, &gf), 0);
    assert_int_equal(cf_future_wait(gf, -1), 0);
    assert_int_equal(cf_future_status(gf), CF_EFAIL);
    cf_group_free(g);
    unref_all((cf_future_t *[]){sleeper, failing, pending, late, gf}, 5);
    cf_thread_pool_free(p);
}

/* More members than one slot segment holds; the failing one far in. */
static void test_group_many_members(void **state)
{
    struct fixture *fx = *state;
    enum { N = 300 };
    cf_future_t *fs[N], *gf;
    cf_group_t *g;
    int64_t n = 0;

    assert_int_equal(cf_group_new(fx->loop, &g), 0);
    for (int i = 0; i < N; i++) {
        fs[i] = new_promise(fx);
        assert_int_equal(cf_group_add(g, fs[i]), 0);
    }
    for (int i = 0; i < N; i += 2)
        assert_int_equal(cf_future_set_i64(fs[i], i), 0);
    assert_int_equal(cf_future_set_error(fs[201], CF_EFAIL, "odd one out"), 0);
    assert_int_equal(cf_group_wait(g, -1), CF_EFAIL);
    assert_string_equal(cf_group_error(g), "member 201: odd one out");
    assert_last_error("member 201: odd one out");
    for (int i = 1; i < N; i += 2)
        assert_int_equal(cf_future_get_state(fs[i]), i == 201 ? CF_FUTURE_FAILED : CF_FUTURE_CANCELLED);
    cf_group_free(g);
    unref_all(fs, N);

    /* And a successful one: the count covers every member. */
    assert_int_equal(cf_group_new(fx->loop, &g), 0);
    for (int i = 0; i < N; i++) {
        fs[i] = new_resolved(fx, i);
        assert_int_equal(cf_group_add(g, fs[i]), 0);
    }
    assert_int_equal(cf_group_future(g, &gf), 0);
    assert_int_equal(cf_future_wait(gf, -1), 0);
    assert_int_equal(cf_future_result_i64(gf, &n), 0);
    assert_int_equal(n, N);
    cf_group_free(g);
    unref_all(fs, N);
    assert_int_equal(cf_future_unref(gf), 0);
}

static void test_group_success_and_free(void **state)
{
    struct fixture *fx = *state;
    cf_group_t *g;
    cf_future_t *a = new_promise(fx), *b = new_promise(fx), *gf, *c;
    int64_t n;

    assert_int_equal(cf_group_new(fx->loop, &g), 0);
    assert_int_equal(cf_group_add(g, a), 0);
    assert_int_equal(cf_group_add(g, b), 0);
    assert_int_equal(cf_group_future(g, &gf), 0);
    assert_int_equal(cf_group_future(g, &c), CF_EALREADY);
    assert_int_equal(cf_future_set_i64(a, 1), 0);
    assert_int_equal(cf_future_cancel(b), 0); /* a cancelled member is not a failure */
    assert_int_equal(cf_future_wait(gf, -1), 0);
    assert_int_equal(cf_future_result_i64(gf, &n), 0);
    assert_int_equal(n, 2);
    cf_group_free(g);

    /* Freeing a group cancels what is still pending. */
    c = new_promise(fx);
    assert_int_equal(cf_group_new(fx->loop, &g), 0);
    assert_int_equal(cf_group_add(g, c), 0);
    assert_int_equal(cf_group_wait(g, 0.01), CF_ETIMEDOUT);
    assert_last_error("cf_group_wait: timed out with 1 of 1 members not done");
    cf_group_free(g);
    assert_int_equal(cf_future_get_state(c), CF_FUTURE_CANCELLED);
    ev_run(fx->ev, 0);
    unref_all((cf_future_t *[]){a, b, gf, c}, 4);
}

/* ------------------------------------------------------------------ thread identity */

static pthread_t g_loop_thread;
static int g_wrong;

static void check_thread(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    (void)data;
    if (!pthread_equal(pthread_self(), g_loop_thread))
        g_wrong++;
}

static void test_every_callback_on_the_loop_thread(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *fs[64], *all, *any;

    g_loop_thread = pthread_self();
    g_wrong = 0;
    for (int i = 0; i < 64; i++) {
        assert_int_equal(cf_thread_pool_submit(p, task_square, (void *)(intptr_t)i, NULL, &fs[i]), 0);
        assert_int_equal(cf_future_on_done(fs[i], check_thread, NULL, NULL), 0);
    }
    assert_int_equal(cf_all(fs, 64, 0, &all), 0);
    assert_int_equal(cf_any(fs, 64, 0, &any), 0);
    assert_int_equal(cf_future_on_done(all, check_thread, NULL, NULL), 0);
    assert_int_equal(cf_future_on_done(any, check_thread, NULL, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(g_wrong, 0);
    unref_all(fs, 64);
    assert_int_equal(cf_future_unref(all), 0);
    assert_int_equal(cf_future_unref(any), 0);
    cf_thread_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_wait_modes),
        T(test_wait_across_two_executors),
        T(test_wait_inside_callback),
        T(test_future_wait_inside_callback),
        T(test_all_values_in_input_order),
        T(test_all_first_failure_and_cancel_rest),
        T(test_cancel_all_cancels_inputs),
        T(test_settled_never_fails),
        T(test_any),
        T(test_then_chains),
        T(test_cancel_chain_in_the_middle),
        T(test_adopt_rules),
        T(test_timeout),
        T(test_shared_value_taken_once),
        T(test_last_error_names_the_argument),
        T(test_sleep_and_fd_ready),
        T(test_as_completed_order),
        T(test_as_completed_timeout),
        T(test_as_completed_callbacks),
        T(test_as_completed_reports_positions),
        T(test_group_second_task_fails),
        T(test_group_many_members),
        T(test_group_success_and_free),
        T(test_every_callback_on_the_loop_thread),
    };
    return cmocka_run_group_tests_name("combinators", tests, NULL, NULL);
}
