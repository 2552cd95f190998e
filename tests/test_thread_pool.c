/*
 * test_thread_pool.c - the thread-pool executor.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* pthread_create failures injected through -Wl,--wrap=pthread_create. */
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
static atomic_int create_fail_after = -1; /* -1: never fail */

/* Threads created and joined while create_fail_after >= 0 (joins counted
 * through -Wl,--wrap=pthread_join). */
static atomic_int created_while_failing, joined_while_failing;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    int n = atomic_load(&create_fail_after), rc;
    if (n == 0)
        return EAGAIN;
    if (n > 0)
        atomic_fetch_sub(&create_fail_after, 1);
    rc = __real_pthread_create(t, a, fn, arg);
    if (n > 0 && rc == 0)
        atomic_fetch_add(&created_while_failing, 1);
    return rc;
}

int __real_pthread_join(pthread_t t, void **ret);
int __wrap_pthread_join(pthread_t t, void **ret);
int __wrap_pthread_join(pthread_t t, void **ret)
{
    int rc = __real_pthread_join(t, ret);
    if (rc == 0 && atomic_load(&create_fail_after) >= 0)
        atomic_fetch_add(&joined_while_failing, 1);
    return rc;
}

static int noop(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 0;
}

static int square(cf_task_t *t, void *arg)
{
    int64_t x = (int64_t)(intptr_t)arg;
    cf_task_set_i64(t, x * x);
    return 0;
}

static int wait_gate(cf_task_t *t, void *arg)
{
    gate_pass(arg);
    cf_task_set_i64(t, 7);
    return 0;
}

/* Blocks at the gate, then honours a cancellation request. */
static int wait_gate_cancellable(cf_task_t *t, void *arg)
{
    gate_pass(arg);
    return cf_task_cancelled(t) ? CF_ECANCELED : 0;
}

/* ------------------------------------------------------------------ misuse */

static void test_misuse_returns_errors(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    cf_future_t *f;

    cf_thread_pool_opts_init(&o);
    assert_int_equal(o.max_workers, cf_cpu_count());
    o.max_workers = 0;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    o.max_workers = -1;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    o.max_workers = 1;
    o.on_full = (cf_queue_full)7;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    assert_int_equal(cf_thread_pool_new(NULL, NULL, &p), CF_EINVAL);

    p = make_pool(fx, 1);
    assert_int_equal(cf_thread_pool_submit(p, NULL, NULL, NULL, &f), CF_EINVAL);
    assert_int_equal(cf_thread_pool_submit(NULL, noop, NULL, NULL, &f), CF_EINVAL);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, NULL), CF_EINVAL);
    assert_int_equal(cf_thread_pool_shutdown(p, 1 << 9), CF_EINVAL);

    /* An executor's future cannot be resolved by hand. */
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &f), 0);
    assert_int_equal(cf_future_set_i64(f, 1), CF_EPERM);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_set_i64(f, 1), CF_EALREADY);
    assert_int_equal(cf_future_cancel(f), CF_EALREADY);
    assert_int_equal(cf_future_unref(f), 0);

    assert_int_equal(cf_thread_pool_shutdown(p, 0), 0);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &f), CF_ESHUTDOWN);
    assert_last_error("shut down");
    assert_int_equal(cf_thread_pool_shutdown(p, 0), 0); /* again: harmless */
    cf_thread_pool_free(p);
}

/* Each rejected option names its field, the allowed range and the value. */
static void test_option_errors_name_the_field(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p = NULL;
    cf_future_t *f;

    cf_thread_pool_opts_init(&o);
    o.max_workers = 0;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_new: opts->max_workers must be between 1 and 4096 (got 0)");
    o.max_workers = 4097;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    assert_string_equal(cf_last_error(),
                        "cf_thread_pool_new: opts->max_workers must be between 1 and 4096 (got 4097)");
    o.max_workers = 1;
    o.on_full = (cf_queue_full)7;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    assert_string_equal(cf_last_error(),
                        "cf_thread_pool_new: opts->on_full must be CF_QUEUE_FULL_FAIL or CF_QUEUE_FULL_WAIT (got 7)");
    o.on_full = CF_QUEUE_FULL_WAIT;
    o.spin_us = 1000001;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_new: opts->spin_us must be at most 1000000 (got 1000001)");
    assert_null(p);
    assert_int_equal(cf_thread_pool_new(NULL, NULL, &p), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_new: loop is NULL");
    assert_int_equal(cf_thread_pool_new(fx->loop, NULL, NULL), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_new: out is NULL");

    p = make_pool(fx, 1);
    assert_int_equal(cf_thread_pool_submit(p, NULL, NULL, NULL, &f), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_submit: fn is NULL");
    assert_int_equal(cf_thread_pool_shutdown(p, 1 << 9), CF_EINVAL);
    assert_string_equal(cf_last_error(),
                        "cf_thread_pool_shutdown: flags has unknown bits 0x200 (known: CF_SHUTDOWN_WAIT, CF_SHUTDOWN_CANCEL)");
    assert_int_equal(cf_thread_pool_stats(p, NULL), CF_EINVAL);
    assert_string_equal(cf_last_error(), "cf_thread_pool_stats: out is NULL");
    cf_thread_pool_free(p);
}

/* ------------------------------------------------------------------ states and values */

static void test_states_pending_running_finished(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    struct gate g;
    cf_future_t *a, *b;
    int64_t v = 0;

    gate_init(&g);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &a), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)3, NULL, &b), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_future_get_state(a), CF_FUTURE_RUNNING);
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_status(a), CF_EPENDING);
    gate_open(&g);
    assert_int_equal(cf_future_wait(b, -1), 0);
    assert_int_equal(cf_future_get_state(a), CF_FUTURE_FINISHED);
    assert_int_equal(cf_future_result_i64(a, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(cf_future_result_i64(b, &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

/* Two tasks that each wait (10 s at most) until both run at the same time. */
struct meet {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
};

static int meet_other(cf_task_t *t, void *arg)
{
    struct meet *m = arg;
    struct timespec until;
    int rc = 0;

    (void)t;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&m->mu);
    m->arrived++;
    pthread_cond_broadcast(&m->cv);
    while (m->arrived < 2 && rc == 0)
        rc = pthread_cond_timedwait(&m->cv, &m->mu, &until);
    pthread_mutex_unlock(&m->mu);
    return m->arrived >= 2 ? 0 : CF_ETIMEDOUT;
}

/* A worker spinning after its last task takes one of two new tasks; the
 * other must wake the sleeping worker rather than wait behind it. */
static void test_spinning_worker_does_not_hide_a_sleeper(void **state)
{
    struct fixture *fx = *state;
    struct meet m = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    cf_future_t *warm, *a, *b;

    cf_thread_pool_opts_init(&o);
    o.max_workers = 2;
    o.spin_us = 1000000; /* the worker that ran `warm` spins through the test */
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)2, NULL, &warm), 0);
    assert_int_equal(cf_future_wait(warm, -1), 0);
    assert_int_equal(cf_thread_pool_submit(p, meet_other, &m, NULL, &a), 0);
    assert_int_equal(cf_thread_pool_submit(p, meet_other, &m, NULL, &b), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_status(a), 0);
    assert_int_equal(cf_future_status(b), 0);
    assert_int_equal(cf_future_unref(warm), 0);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    cf_thread_pool_free(p);
}

static void record_order(cf_future_t *f, int status, void *data)
{
    int *order = data;
    int64_t v = 0;

    (void)status;
    if (cf_future_result_i64(f, &v) == 0)
        order[order[0]++ + 1] = (int)v;
}

/* Tasks submitted while every worker is busy and others wait are held in the
 * loop's batch: they count as queued, cancel at once, and run in order. */
static void test_tasks_behind_busy_workers(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    struct gate g;
    cf_future_t *blocker, *f[5];
    cf_pool_stats st;
    int order[8] = {0};

    gate_init(&g);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &blocker), 0);
    gate_wait_for(&g, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cf_thread_pool_submit(p, square, (void *)(intptr_t)(i + 1), NULL, &f[i]), 0);
        assert_int_equal(cf_future_on_done(f[i], record_order, order, NULL), 0);
    }
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.queued, 5);
    assert_int_equal(st.running, 1);
    assert_int_equal(cf_future_cancel(f[3]), 0);
    assert_int_equal(cf_future_get_state(f[3]), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_cancel(f[0]), 0);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.queued, 3);
    gate_open(&g);
    ev_run(fx->ev, 0);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 4);
    assert_int_equal(order[2], 9);
    assert_int_equal(order[3], 25);
    assert_int_equal(cf_future_get_state(f[0]), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.queued + st.running, 0);
    assert_int_equal(st.cancelled, 2);
    assert_int_equal(cf_future_unref(blocker), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_future_unref(f[i]), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

static int fails(cf_task_t *t, void *arg)
{
    return cf_task_fail(t, CF_EFAIL, "Don't do %s", (const char *)arg);
}

static int positive(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 5;
}

static int bytes_task(cf_task_t *t, void *arg)
{
    return cf_task_set_bytes(t, arg, strlen(arg));
}

static int args_freed;

static void free_arg(void *p)
{
    (void)p;
    args_freed++;
}

static void test_failures_and_values(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *f1, *f2, *f3;
    const void *data;
    size_t len;

    args_freed = 0;
    assert_int_equal(cf_thread_pool_submit(p, fails, "this", free_arg, &f1), 0);
    assert_int_equal(cf_thread_pool_submit(p, positive, NULL, free_arg, &f2), 0);
    assert_int_equal(cf_thread_pool_submit(p, bytes_task, "payload", free_arg, &f3), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_get_state(f1), CF_FUTURE_FAILED);
    assert_int_equal(cf_future_status(f1), CF_EFAIL);
    assert_string_equal(cf_future_error(f1), "Don't do this");
    assert_int_equal(cf_future_status(f2), CF_EFAIL);
    assert_non_null(strstr(cf_future_error(f2), "positive"));
    assert_int_equal(cf_future_result_bytes(f3, &data, &len), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "payload", 7);
    assert_int_equal(args_freed, 3);
    assert_int_equal(cf_future_unref(f1), 0);
    assert_int_equal(cf_future_unref(f2), 0);
    assert_int_equal(cf_future_unref(f3), 0);
    cf_thread_pool_free(p);
}

/* ------------------------------------------------------------------ cancellation */

static int cancel_cb_status;

static void cancel_cb(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)data;
    cancel_cb_status = status;
}

static void test_cancel_queued_task(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    struct gate g;
    cf_future_t *blocker, *queued;
    cf_pool_stats st;

    gate_init(&g);
    args_freed = 0;
    cancel_cb_status = 1;
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &blocker), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)2, free_arg, &queued), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_future_on_done(queued, cancel_cb, NULL, NULL), 0);
    assert_int_equal(cf_future_cancel(queued), 0);
    assert_int_equal(cf_future_get_state(queued), CF_FUTURE_CANCELLED); /* at once */
    assert_int_equal(cf_future_cancel(queued), CF_EALREADY);
    gate_open(&g);
    ev_run(fx->ev, 0);
    assert_int_equal(cancel_cb_status, CF_ECANCELED);
    assert_int_equal(args_freed, 1);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.completed, 1);
    assert_int_equal(cf_future_unref(blocker), 0);
    assert_int_equal(cf_future_unref(queued), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

static atomic_int taken_runs;

static int count_run(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    atomic_fetch_add(&taken_runs, 1);
    return 0;
}

/* A worker takes several tasks at once from a long queue; one it took but has
 * not started (it is blocked in the task before) still cancels at once. */
static void test_cancel_task_taken_but_not_started(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    struct gate g1, g2;
    cf_future_t *a, *b, *c[19];
    cf_pool_stats st;

    gate_init(&g1);
    gate_init(&g2);
    atomic_store(&taken_runs, 0);
    cancel_cb_status = 1;
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g1, NULL, &a), 0);
    gate_wait_for(&g1, 1);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g2, NULL, &b), 0);
    for (int i = 0; i < 19; i++)
        assert_int_equal(cf_thread_pool_submit(p, count_run, NULL, NULL, &c[i]), 0);
    ev_run(fx->ev, EVRUN_NOWAIT); /* the prepare watcher publishes the batch */
    gate_open(&g1);               /* the worker takes b and the next few tasks at once */
    gate_wait_for(&g2, 1);
    assert_int_equal(cf_future_on_done(c[4], cancel_cb, NULL, NULL), 0);
    int rc = cf_future_cancel(c[4]);
    if (rc != 0)
        gate_open(&g2); /* fail without leaving the worker blocked */
    assert_int_equal(rc, 0);
    assert_int_equal(cf_future_get_state(c[4]), CF_FUTURE_CANCELLED); /* at once */
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.queued, 18);
    assert_int_equal(st.running, 1);
    gate_open(&g2);
    ev_run(fx->ev, 0);
    assert_int_equal(cancel_cb_status, CF_ECANCELED);
    assert_int_equal(atomic_load(&taken_runs), 18); /* the cancelled one never ran */
    for (int i = 0; i < 19; i++) {
        assert_int_equal(cf_future_status(c[i]), i == 4 ? CF_ECANCELED : 0);
        assert_int_equal(cf_future_unref(c[i]), 0);
    }
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.completed, 20);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g1);
    gate_destroy(&g2);
}

/*
 * A worker whose tasks are short holds a map's finished chunks back and
 * hands them to the loop with the rest of its batch; any other task taken
 * in the same batch must not run while it holds them, since it may wait for
 * the loop to have seen them.  Here one worker, trained on short chunks,
 * takes a map's chunk and then a task that waits until the map's callback
 * (on the loop) has had that chunk's result.  Holding the chunk across the
 * task would leave the task waiting until its deadline.
 */
static int quick_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;

    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, x + 1);
    return 0;
}

static atomic_int chunk_seen;

static int saw_chunk(cf_map_t *m, const cf_map_result *r, void *data)
{
    (void)m;
    (void)data;
    if (r->status == 0 && r->i64 == 42)
        atomic_store(&chunk_seen, 1);
    return 0;
}

/* Waits (at most 20 s) for the loop to have delivered the map's result. */
static int wait_for_chunk(cf_task_t *t, void *arg)
{
    struct timespec t0, now;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&chunk_seen)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 20)
            return cf_task_fail(t, CF_ETIMEDOUT, "the loop never saw the chunk taken before this task");
        sched_yield();
    }
    return 0;
}

static void test_task_after_held_chunks_is_not_held_up(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    cf_executor_t *ex = cf_thread_pool_executor(p);
    enum { TRAIN = 4096 };
    int64_t *xs = malloc(TRAIN * sizeof(*xs)), one = 41;
    cf_future_t *g, *b, *f1, *f2, *done = NULL;
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    struct gate gt;
    size_t k = 0;
    int rc;

    assert_non_null(xs);
    for (int i = 0; i < TRAIN; i++)
        xs[i] = i;
    /* Short chunks, many at a time: the worker learns that its tasks are short. */
    cf_map_opts_init(&o);
    o.chunksize = 1;
    assert_int_equal(cf_map_new_array(ex, quick_item, xs, TRAIN, sizeof(xs[0]), &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0)
        assert_int_equal(r.i64, (int64_t)k++ + 1);
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(k, TRAIN);
    cf_map_free(m);

    /* The worker waits at a gate (a task taken alone, which its estimate does
     * not count) while the chunk, the waiting task and two more queue up
     * behind it: it then takes the chunk and the waiting task together. */
    gate_init(&gt);
    atomic_store(&chunk_seen, 0);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &gt, NULL, &g), 0);
    gate_wait_for(&gt, 1);
    assert_int_equal(cf_map_new_array(ex, quick_item, &one, 1, sizeof(one), &o, &m), 0);
    assert_int_equal(cf_map_each(m, saw_chunk, NULL, &done), 0);
    ev_run(fx->ev, EVRUN_NOWAIT); /* the map's first pump submits its chunk */
    assert_int_equal(cf_thread_pool_submit(p, wait_for_chunk, NULL, NULL, &b), 0);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &f1), 0);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &f2), 0);
    ev_run(fx->ev, EVRUN_NOWAIT); /* the prepare watcher publishes the rest */
    gate_open(&gt);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_status(b), 0);
    assert_int_equal(atomic_load(&chunk_seen), 1);
    assert_int_equal(cf_future_status(done), 0);
    cf_future_unref(g);
    cf_future_unref(b);
    cf_future_unref(f1);
    cf_future_unref(f2);
    cf_future_unref(done);
    cf_map_free(m);
    cf_thread_pool_free(p);
    gate_destroy(&gt);
    free(xs);
}

static void test_cancel_running_task(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct gate g1, g2;
    cf_future_t *honours, *ignores;

    gate_init(&g1);
    gate_init(&g2);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate_cancellable, &g1, NULL, &honours), 0);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g2, NULL, &ignores), 0);
    gate_wait_for(&g1, 1);
    gate_wait_for(&g2, 1);
    assert_int_equal(cf_future_cancel(honours), CF_EBUSY);
    assert_int_equal(cf_future_cancel(ignores), CF_EBUSY);
    assert_int_equal(cf_future_get_state(honours), CF_FUTURE_RUNNING);
    gate_open(&g1);
    gate_open(&g2);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_get_state(honours), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_get_state(ignores), CF_FUTURE_FINISHED);
    assert_int_equal(cf_future_unref(honours), 0);
    assert_int_equal(cf_future_unref(ignores), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g1);
    gate_destroy(&g2);
}

struct race {
    int callbacks;
    int cancelled_ok;
    int busy;
    int wrong;
    int *seen;
};

static struct race *g_race;

static void race_cb(cf_future_t *f, int status, void *data)
{
    int i = (int)(intptr_t)data;

    g_race->callbacks++;
    g_race->seen[i]++;
    if (status != 0 && status != CF_ECANCELED)
        g_race->wrong++;
    (void)f;
}

static void test_cancel_races_with_workers(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    enum { N = 20000 };
    struct race r = {0};
    cf_future_t **fs = calloc(N, sizeof(*fs));
    int *rc = calloc(N, sizeof(*rc));
    cf_pool_stats st;

    r.seen = calloc(N, sizeof(int));
    g_race = &r;
    for (int i = 0; i < N; i++) {
        assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &fs[i]), 0);
        assert_int_equal(cf_future_on_done(fs[i], race_cb, (void *)(intptr_t)i, NULL), 0);
        rc[i] = cf_future_cancel(fs[i]); /* while a worker may be taking it */
        assert_true(rc[i] == 0 || rc[i] == CF_EBUSY);
    }
    ev_run(fx->ev, 0);
    assert_int_equal(r.callbacks, N);
    assert_int_equal(r.wrong, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r.seen[i], 1);
        if (rc[i] == 0) {
            assert_int_equal(cf_future_get_state(fs[i]), CF_FUTURE_CANCELLED);
            r.cancelled_ok++;
        } else {
            assert_int_equal(cf_future_get_state(fs[i]), CF_FUTURE_FINISHED);
            r.busy++;
        }
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.submitted, N);
    assert_int_equal(st.cancelled, (uint64_t)r.cancelled_ok);
    assert_int_equal(st.completed, (uint64_t)r.busy);
    assert_int_equal(st.queued + st.running, 0);
    cf_thread_pool_free(p);
    free(fs);
    free(rc);
    free(r.seen);
}

/* ------------------------------------------------------------------ workers */

struct init_state {
    atomic_int inits;
    atomic_int finis;
    atomic_int fail_index; /* worker index whose initializer fails, -1 none */
};

static int init_worker(void *pool_data, int index, void **worker_data)
{
    struct init_state *s = pool_data;

    if (index == atomic_load(&s->fail_index))
        return CF_ENOMEM;
    atomic_fetch_add(&s->inits, 1);
    *worker_data = (void *)(intptr_t)(1000 + index);
    return 0;
}

static void fini_worker(void *pool_data, int index, void *worker_data)
{
    struct init_state *s = pool_data;

    if ((intptr_t)worker_data == 1000 + index)
        atomic_fetch_add(&s->finis, 1);
}

static int report_worker(cf_task_t *t, void *arg)
{
    char name[32] = "";
    sigset_t mask;
    int64_t v;

    (void)arg;
    pthread_getname_np(pthread_self(), name, sizeof(name));
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    if (strncmp(name, "tp-test-", 8) != 0 || !sigismember(&mask, SIGINT) || !sigismember(&mask, SIGTERM))
        return cf_task_fail(t, CF_EFAIL, "name '%s' or mask wrong", name);
    v = (intptr_t)cf_task_worker_data(t) - 1000;
    if (v != cf_task_worker_index(t))
        return cf_task_fail(t, CF_EFAIL, "worker data %lld for worker %d", (long long)v, cf_task_worker_index(t));
    cf_task_set_i64(t, v);
    return 0;
}

static void test_initializer_names_and_signals(void **state)
{
    struct fixture *fx = *state;
    struct init_state s;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    cf_future_t *fs[50];

    atomic_init(&s.inits, 0);
    atomic_init(&s.finis, 0);
    atomic_init(&s.fail_index, -1);
    cf_thread_pool_opts_init(&o);
    o.max_workers = 3;
    o.name_prefix = "tp-test";
    o.initializer = init_worker;
    o.finalizer = fini_worker;
    o.init_data = &s;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(cf_thread_pool_submit(p, report_worker, NULL, NULL, &fs[i]), 0);
    ev_run(fx->ev, 0);
    for (int i = 0; i < 50; i++) {
        int64_t v = -1;
        if (cf_future_status(fs[i]) != 0)
            fail_msg("task %d: %s", i, cf_future_error(fs[i]));
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_true(v >= 0 && v < 3);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    cf_thread_pool_free(p);
    assert_int_equal(atomic_load(&s.inits), 3);
    assert_int_equal(atomic_load(&s.finis), 3);
}

/* The task's result: the scheduling policy of the worker thread running it. */
static int report_policy(cf_task_t *t, void *arg)
{
    struct sched_param sp;
    int policy = -1;

    (void)arg;
    if (pthread_getschedparam(pthread_self(), &policy, &sp) != 0)
        return cf_task_fail(t, CF_EFAIL, "pthread_getschedparam failed");
    cf_task_set_i64(t, policy);
    return 0;
}

static int init_policy_other(void *pool_data, int index, void **worker_data)
{
    struct sched_param sp = {.sched_priority = 0};

    (void)pool_data;
    (void)index;
    *worker_data = NULL;
    return pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp) == 0 ? 0 : CF_EFAIL;
}

/* Every task on a pool of `workers` reports `want` as its worker's policy. */
static void check_policies(struct fixture *fx, cf_worker_init_fn init, int want)
{
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    cf_future_t *fs[40];

    cf_thread_pool_opts_init(&o);
    o.max_workers = 3;
    o.initializer = init;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(cf_thread_pool_submit(p, report_policy, NULL, NULL, &fs[i]), 0);
    ev_run(fx->ev, 0);
    for (int i = 0; i < 40; i++) {
        int64_t v = -1;
        if (cf_future_status(fs[i]) != 0)
            fail_msg("task %d: %s", i, cf_future_error(fs[i]));
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, want);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    cf_thread_pool_free(p);
}

/* Workers run under SCHED_BATCH (a woken worker does not preempt the loop
 * thread); an initializer may choose another policy. */
static void test_workers_run_under_the_batch_policy(void **state)
{
    struct fixture *fx = *state;

#ifdef SCHED_BATCH
    check_policies(fx, NULL, SCHED_BATCH);
#else
    check_policies(fx, NULL, SCHED_OTHER);
#endif
    check_policies(fx, init_policy_other, SCHED_OTHER);
}

static void test_failing_initializer_breaks_the_pool(void **state)
{
    struct fixture *fx = *state;
    struct init_state s;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    cf_future_t *fs[20], *later;
    int broken = 0;

    atomic_init(&s.inits, 0);
    atomic_init(&s.finis, 0);
    atomic_init(&s.fail_index, 0);
    cf_thread_pool_opts_init(&o);
    o.max_workers = 1; /* the only worker fails: every queued task must fail */
    o.name_prefix = "brk";
    o.initializer = init_worker;
    o.init_data = &s;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    for (int i = 0; i < 20; i++) {
        int rc = cf_thread_pool_submit(p, noop, NULL, NULL, &fs[i]);
        if (rc == CF_EBROKEN) { /* the worker may already have failed */
            fs[i] = NULL;
            broken++;
            continue;
        }
        assert_int_equal(rc, 0);
    }
    ev_run(fx->ev, 0);
    for (int i = 0; i < 20; i++) {
        if (!fs[i])
            continue;
        assert_int_equal(cf_future_status(fs[i]), CF_EBROKEN);
        assert_non_null(strstr(cf_future_error(fs[i]), "initializer of worker brk-0 failed"));
        assert_int_equal(cf_future_unref(fs[i]), 0);
        broken++;
    }
    assert_int_equal(broken, 20);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &later), CF_EBROKEN);
    assert_last_error("thread pool broken: initializer");
    cf_thread_pool_free(p);
}

static void test_thread_creation_failure_leaves_nothing(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;

    /* Every thread the pool created is joined before the error returns.
     * (Counting /proc/self/task instead races with the kernel: a joined
     * thread may still be listed for a moment.) */
    cf_thread_pool_opts_init(&o);
    o.max_workers = 4;
    atomic_store(&created_while_failing, 0);
    atomic_store(&joined_while_failing, 0);
    atomic_store(&create_fail_after, 2); /* the third thread cannot be created */
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), -EAGAIN);
    assert_int_equal(atomic_load(&created_while_failing), 2);
    assert_int_equal(atomic_load(&joined_while_failing), 2);
    atomic_store(&create_fail_after, -1);
}

/* ------------------------------------------------------------------ queue bound */

static void test_bounded_queue(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;
    struct gate g;
    cf_future_t *blocker, *q1, *q2, *over, *waits1, *waits2;
    cf_pool_stats st;
    int64_t v;

    gate_init(&g);
    cf_thread_pool_opts_init(&o);
    o.max_workers = 1;
    o.max_queued = 2;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &blocker), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)2, NULL, &q1), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)3, NULL, &q2), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)4, NULL, &over), CF_EAGAIN);
    gate_open(&g);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_unref(blocker), 0);
    assert_int_equal(cf_future_unref(q1), 0);
    assert_int_equal(cf_future_unref(q2), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);

    /* CF_QUEUE_FULL_WAIT: a pending future that runs once room frees up. */
    gate_init(&g);
    o.on_full = CF_QUEUE_FULL_WAIT;
    o.max_queued = 1;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &blocker), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)5, NULL, &q1), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)6, NULL, &waits1), 0);
    assert_int_equal(cf_thread_pool_submit(p, square, (void *)7, NULL, &waits2), 0);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.queued, 3);
    assert_int_equal(cf_future_cancel(waits2), 0); /* a waiting task cancels at once too */
    gate_open(&g);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_result_i64(waits1, &v), 0);
    assert_int_equal(v, 36);
    assert_int_equal(cf_future_get_state(waits2), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_unref(blocker), 0);
    assert_int_equal(cf_future_unref(q1), 0);
    assert_int_equal(cf_future_unref(waits1), 0);
    assert_int_equal(cf_future_unref(waits2), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

/* ------------------------------------------------------------------ shutdown and free */

static int shutdown_rc;

static void shutdown_inside(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    shutdown_rc = cf_thread_pool_shutdown(data, CF_SHUTDOWN_WAIT);
}

static void test_shutdown_paths(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 1);
    struct gate g;
    cf_future_t *running, *queued[5], *f;
    cf_pool_stats st;

    /* CANCEL: queued tasks end cancelled, the running one finishes. */
    gate_init(&g);
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &running), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_thread_pool_submit(p, square, (void *)(intptr_t)i, NULL, &queued[i]), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_thread_pool_shutdown(p, CF_SHUTDOWN_CANCEL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_future_get_state(queued[i]), CF_FUTURE_CANCELLED);
    gate_open(&g);
    /* WAIT: runs the loop until everything is done, then joins the workers. */
    assert_int_equal(cf_thread_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_FINISHED);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.workers, 0);
    assert_int_equal(cf_future_unref(running), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_future_unref(queued[i]), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);

    /* WAIT from inside a loop callback, with a task still to wait for, is refused. */
    p = make_pool(fx, 2);
    gate_init(&g);
    shutdown_rc = 0;
    assert_int_equal(cf_thread_pool_submit(p, wait_gate, &g, NULL, &running), 0);
    gate_wait_for(&g, 1);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &f), 0);
    assert_int_equal(cf_future_on_done(f, shutdown_inside, p, NULL), 0);
    while (shutdown_rc == 0) /* the callback runs inside ev_run(): the shutdown must not wait there */
        ev_run(fx->ev, EVRUN_ONCE);
    assert_int_equal(shutdown_rc, CF_EDEADLK);
    assert_int_equal(cf_thread_pool_submit(p, noop, NULL, NULL, &queued[0]), CF_ESHUTDOWN);
    gate_open(&g);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_FINISHED);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(running), 0);
    cf_thread_pool_free(p);
    gate_destroy(&g);
}

static int free_callbacks;

static void count_free_cb(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    (void)data;
    free_callbacks++;
}

static void test_free_with_tasks_outstanding(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *fs[200];

    free_callbacks = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(cf_thread_pool_submit(p, square, (void *)(intptr_t)i, NULL, &fs[i]), 0);
        assert_int_equal(cf_future_on_done(fs[i], count_free_cb, NULL, NULL), 0);
    }
    cf_thread_pool_free(p); /* cancels what is queued, joins the workers */
    ev_run(fx->ev, 0);
    assert_int_equal(free_callbacks, 200);
    for (int i = 0; i < 200; i++) {
        cf_future_state s = cf_future_get_state(fs[i]);
        assert_true(s == CF_FUTURE_FINISHED || s == CF_FUTURE_CANCELLED);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
}

/* ------------------------------------------------------------------ volume */

struct volume {
    pthread_t loop_thread;
    long callbacks;
    long wrong;
};

static void volume_cb(cf_future_t *f, int status, void *data)
{
    struct volume *v = cf_future_loop(f) ? data : NULL;
    int64_t x = -1;

    v->callbacks++;
    if (status || !pthread_equal(pthread_self(), v->loop_thread) || cf_future_result_i64(f, &x) != 0)
        v->wrong++;
}

static int echo_index(cf_task_t *t, void *arg)
{
    cf_task_set_i64(t, (int64_t)(intptr_t)arg);
    return 0;
}

static void test_a_million_tasks(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    struct volume v = {.loop_thread = pthread_self()};
    long n = 1000000;
    cf_pool_stats st;

    for (long i = 0; i < n; i++) {
        cf_future_t *f;
        assert_int_equal(cf_thread_pool_submit(p, echo_index, (void *)(intptr_t)i, NULL, &f), 0);
        assert_int_equal(cf_future_on_done(f, volume_cb, &v, NULL), 0);
        assert_int_equal(cf_future_unref(f), 0);
    }
    ev_run(fx->ev, 0); /* returns by itself once every callback ran */
    assert_int_equal(v.callbacks, n);
    assert_int_equal(v.wrong, 0);
    assert_int_equal(cf_thread_pool_stats(p, &st), 0);
    assert_int_equal(st.completed, (uint64_t)n);
    assert_true(st.queue_ns_total > 0);
    cf_thread_pool_free(p);
}

struct loop_thread_arg {
    long n;
    long callbacks;
    long wrong;
    int rc;
};

static void *own_loop_main(void *arg)
{
    struct loop_thread_arg *a = arg;
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    struct volume v = {.loop_thread = pthread_self()};
    cf_loop_t *loop;
    cf_thread_pool_t *p;

    if (!ev || cf_loop_new(ev, &loop) || cf_thread_pool_new(loop, NULL, &p)) {
        a->rc = -1;
        return NULL;
    }
    for (long i = 0; i < a->n; i++) {
        cf_future_t *f;
        if (cf_thread_pool_submit(p, echo_index, (void *)(intptr_t)i, NULL, &f) ||
            cf_future_on_done(f, volume_cb, &v, NULL) || cf_future_unref(f))
            a->rc = -2;
    }
    ev_run(ev, 0);
    a->callbacks = v.callbacks;
    a->wrong = v.wrong;
    cf_thread_pool_free(p);
    if (cf_loop_close(loop))
        a->rc = -3;
    ev_loop_destroy(ev);
    return NULL;
}

static void test_two_loops_in_two_threads(void **state)
{
    struct loop_thread_arg a[2] = {{.n = 50000}, {.n = 50000}};
    pthread_t t[2];

    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, own_loop_main, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[i].callbacks, a[i].n);
        assert_int_equal(a[i].wrong, 0);
    }
}

static int sleep_ms(cf_task_t *t, void *arg)
{
    struct timespec ts = {0, (long)(intptr_t)arg * 1000000L};
    nanosleep(&ts, NULL);
    cf_task_set_i64(t, (int64_t)(intptr_t)arg);
    return 0;
}

/*
 * The loop-side poll: a loop waiting for a short task looks at its inbox
 * before it sleeps, with the wake-up disarmed.  Sequential short tasks all
 * complete with their values; then a task that outlasts the poll still
 * wakes the loop (the wake-up was armed again when the poll gave up),
 * well before the wait's timeout.
 */
static void test_loop_poll_then_long_task(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_future_t *f;
    int64_t v;

    for (int i = 0; i < 3; i++) {
        for (int64_t k = 0; k < 2000; k++) {
            assert_int_equal(cf_thread_pool_submit(p, square, (void *)(intptr_t)k, NULL, &f), 0);
            assert_int_equal(cf_future_wait(f, 60), 0);
            assert_int_equal(cf_future_result_i64(f, &v), 0);
            assert_int_equal(v, k * k);
            assert_int_equal(cf_future_unref(f), 0);
        }
        assert_int_equal(cf_thread_pool_submit(p, sleep_ms, (void *)(intptr_t)20, NULL, &f), 0);
        assert_int_equal(cf_future_wait(f, 10), 0);
        assert_int_equal(cf_future_result_i64(f, &v), 0);
        assert_int_equal(v, 20);
        assert_int_equal(cf_future_unref(f), 0);
    }
    assert_int_equal(cf_thread_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_thread_pool_free(p);
}

static void test_executor_interface(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *p = make_pool(fx, 2);
    cf_executor_t *ex = cf_thread_pool_executor(p);
    cf_future_t *f1, *f2;
    const void *data;
    size_t len;
    int64_t v;

    assert_int_equal(cf_executor_workers(ex), 2);
    assert_ptr_equal(cf_executor_loop(ex), fx->loop);
    assert_string_equal(cf_executor_kind(ex), "thread pool");
    assert_int_equal(cf_executor_submit(ex, square, (void *)6, NULL, &f1), 0);
    assert_int_equal(cf_executor_submit_bytes(ex, bytes_task, "abc", 4, &f2), 0);
    assert_int_equal(cf_executor_submit(ex, NULL, NULL, NULL, &f1), CF_EINVAL);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_result_i64(f1, &v), 0);
    assert_int_equal(v, 36);
    assert_int_equal(cf_future_result_bytes(f2, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(cf_future_unref(f1), 0);
    assert_int_equal(cf_future_unref(f2), 0);
    assert_int_equal(cf_executor_shutdown(ex, CF_SHUTDOWN_WAIT), 0);
    cf_thread_pool_free(p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_misuse_returns_errors),
        T(test_option_errors_name_the_field),
        T(test_states_pending_running_finished),
        T(test_failures_and_values),
        T(test_cancel_queued_task),
        T(test_cancel_task_taken_but_not_started),
        T(test_cancel_running_task),
        T(test_task_after_held_chunks_is_not_held_up),
        T(test_cancel_races_with_workers),
        T(test_spinning_worker_does_not_hide_a_sleeper),
        T(test_tasks_behind_busy_workers),
        T(test_initializer_names_and_signals),
        T(test_failing_initializer_breaks_the_pool),
        T(test_workers_run_under_the_batch_policy),
        T(test_thread_creation_failure_leaves_nothing),
        T(test_bounded_queue),
        T(test_shutdown_paths),
        T(test_free_with_tasks_outstanding),
        T(test_a_million_tasks),
        T(test_two_loops_in_two_threads),
        T(test_executor_interface),
        T(test_loop_poll_then_long_task),
    };
    return cmocka_run_group_tests_name("thread_pool", tests, NULL, NULL);
}
