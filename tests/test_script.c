/*
 * test_script.c - the script-style layer: runtimes, typed submits on both
 * pools, value accessors and their checked forms, a task that fails,
 * cancellation, as-completed by index (order, duplicates, timeout, taking the
 * references), array maps (order, chunk sizes, in place, a crashing worker),
 * calls from inside loop callbacks, and frees that leave nothing behind.
 *
 * Every test makes its own runtime and ends with cf_runtime_free() == 0,
 * which succeeds only when no future, executor or queued call is left on the
 * runtime's loop; ASan's leak checker covers the rest.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>

#include <cfutures.h>

/* ------------------------------------------------------------------ task functions */

static int64_t square(int64_t x)
{
    return x * x;
}

static double half(int64_t x)
{
    return (double)x / 2;
}

static int64_t floor_i(double x)
{
    return (int64_t)floor(x);
}

static double twice(double x)
{
    return 2 * x;
}

/* Sum of the bytes: checks that the bytes arrive whole. */
static int64_t byte_sum(const void *data, size_t len)
{
    const unsigned char *p = data;
    int64_t s = 0;
    for (size_t i = 0; i < len; i++)
        s += p[i];
    return s;
}

static double byte_len(const void *data, size_t len)
{
    (void)data;
    return (double)len;
}

/* The seed's task that raises. */
static int fib_or_raise(cf_task_t *task, int64_t n)
{
    if (n == 34)
        return cf_task_fail(task, CF_EFAIL, "Don't do this");
    int64_t a = 0, b = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    cf_task_set_i64(task, a);
    return 0;
}

static int f64_to_bytes(cf_task_t *task, double x)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%.1f", x);
    return cf_task_set_bytes(task, buf, (size_t)n + 1);
}

/* Reverses the bytes it was given. */
static int reverse_bytes(cf_task_t *task, const void *data, size_t len)
{
    unsigned char *r = malloc(len ? len : 1);
    if (!r)
        return CF_ENOMEM;
    for (size_t i = 0; i < len; i++)
        r[i] = ((const unsigned char *)data)[len - 1 - i];
    int rc = cf_task_set_bytes(task, r, len);
    free(r);
    return rc;
}

/* Runs until cancelled (thread pool: the flag; process pool: the worker is killed). */
static int until_cancelled(cf_task_t *task, int64_t x)
{
    (void)x;
    while (!cf_task_cancelled(task))
        sched_yield();
    return CF_ECANCELED;
}

/* Kills its worker process for x == 13. */
static int64_t crash_on_13(int64_t x)
{
    if (x == 13)
        raise(SIGKILL);
    return x;
}

/* ------------------------------------------------------------------ helpers */

static cf_runtime_t *runtime(int threads, int processes)
{
    cf_runtime_t *rt = NULL;
    assert_int_equal(cf_runtime_new(threads, processes, &rt), 0);
    assert_non_null(rt);
    return rt;
}

static void free_runtime(cf_runtime_t *rt)
{
    assert_int_equal(cf_runtime_free(rt), 0);
}

/* Every typed shape on one executor, values checked through both accessor forms. */
static void check_shapes(cf_executor_t *ex)
{
    cf_future_t *f[9];
    unsigned char big[1000];
    int64_t big_sum = 0, i64;
    double f64;
    const void *data;
    size_t len;

    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (unsigned char)(i * 7);
        big_sum += big[i];
    }
    assert_int_equal(cf_submit_i64_i64(ex, square, -12, &f[0]), 0);
    assert_int_equal(cf_submit_i64_f64(ex, half, 5, &f[1]), 0);
    assert_int_equal(cf_submit_f64_i64(ex, floor_i, 2.75, &f[2]), 0);
    assert_int_equal(cf_submit_f64_f64(ex, twice, 1.25, &f[3]), 0);
    assert_int_equal(cf_submit_bytes_i64(ex, byte_sum, "\x01\x02\x03", 3, &f[4]), 0);
    assert_int_equal(cf_submit_bytes_i64(ex, byte_sum, big, sizeof(big), &f[5]), 0); /* beyond the stack buffer */
    assert_int_equal(cf_submit_bytes_f64(ex, byte_len, NULL, 0, &f[6]), 0);
    assert_int_equal(cf_submit_f64_task(ex, f64_to_bytes, 4.5, &f[7]), 0);
    assert_int_equal(cf_submit_bytes_task(ex, reverse_bytes, "abc", 3, &f[8]), 0);

    assert_int_equal(cf_future_i64(f[0]), 144);
    assert_true(cf_future_f64(f[1]) == 2.5);
    assert_int_equal(cf_future_i64(f[2]), 2);
    assert_true(cf_future_f64(f[3]) == 2.5);
    assert_int_equal(cf_future_i64(f[4]), 6);
    assert_int_equal(cf_future_get_i64(f[5], -1, &i64), 0);
    assert_int_equal(i64, big_sum);
    assert_int_equal(cf_future_get_f64(f[6], -1, &f64), 0);
    assert_true(f64 == 0.0);
    assert_string_equal(cf_future_bytes(f[7], &len), "4.5");
    assert_int_equal(len, 4);
    assert_int_equal(cf_future_get_bytes(f[8], -1, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "cba", 3);
    assert_int_equal(cf_futures_unref(f, 9), 0);
    for (int i = 0; i < 9; i++)
        assert_null(f[i]);
}

/* ------------------------------------------------------------------ runtime */

static void test_runtime_new_and_free(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 0);
    assert_non_null(cf_runtime_ev(rt));
    assert_non_null(cf_runtime_loop(rt));
    assert_non_null(cf_runtime_threads(rt));
    assert_non_null(cf_runtime_thread_pool(rt));
    assert_null(cf_runtime_processes(rt));
    assert_null(cf_runtime_process_pool(rt));
    assert_int_equal(cf_executor_workers(cf_runtime_threads(rt)), 2);
    free_runtime(rt);

    rt = runtime(0, 1);
    assert_null(cf_runtime_threads(rt));
    assert_non_null(cf_runtime_processes(rt));
    assert_int_equal(cf_executor_workers(cf_runtime_processes(rt)), 1);
    free_runtime(rt);

    rt = runtime(CF_RUNTIME_CPUS, CF_RUNTIME_CPUS);
    assert_int_equal(cf_executor_workers(cf_runtime_threads(rt)), cf_cpu_count());
    assert_int_equal(cf_executor_workers(cf_runtime_processes(rt)), cf_cpu_count());
    free_runtime(rt);
    assert_int_equal(cf_runtime_free(NULL), 0);
}

static void test_runtime_bad_arguments(void **state)
{
    (void)state;
    cf_runtime_t *rt = (cf_runtime_t *)(uintptr_t)1; /* must stay untouched */
    assert_int_equal(cf_runtime_new(0, 0, &rt), CF_EINVAL);
    assert_int_equal(cf_runtime_new(-2, 1, &rt), CF_EINVAL);
    assert_int_equal(cf_runtime_new(1, -5, &rt), CF_EINVAL);
    assert_int_equal(cf_runtime_new(1, 1, NULL), CF_EINVAL);
    assert_int_equal(cf_runtime_new_opts(NULL, NULL, &rt), CF_EINVAL);
    assert_true(rt == (cf_runtime_t *)(uintptr_t)1);
    assert_int_equal(cf_runtime_run(NULL), CF_EINVAL);

    /* A bad pool option fails the whole runtime and leaves nothing behind. */
    cf_thread_pool_opts t;
    cf_process_pool_opts p;
    cf_thread_pool_opts_init(&t);
    cf_process_pool_opts_init(&p);
    t.max_workers = 0;
    p.max_workers = 1;
    assert_int_equal(cf_runtime_new_opts(&t, &p, &rt), CF_EINVAL);
    assert_true(rt == (cf_runtime_t *)(uintptr_t)1);

    t.max_workers = 1;
    t.name_prefix = "script";
    assert_int_equal(cf_runtime_new_opts(&t, NULL, &rt), 0);
    free_runtime(rt);
}

static void test_free_with_futures_held(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 1);
    cf_future_t *f, *g;

    assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, 3, &f), 0);
    assert_int_equal(cf_submit_i64_i64(cf_runtime_processes(rt), square, 4, &g), 0);
    assert_int_equal(cf_future_i64(f), 9);
    /* The futures are the caller's: the runtime refuses to close under them... */
    assert_int_equal(cf_runtime_free(rt), CF_ELOOPBUSY);
    /* ...but the pools are gone already, and the values are still readable. */
    assert_null(cf_runtime_threads(rt));
    assert_null(cf_runtime_processes(rt));
    assert_int_equal(cf_future_i64(f), 9);
    assert_true(cf_future_get_state(g) == CF_FUTURE_FINISHED || cf_future_get_state(g) == CF_FUTURE_CANCELLED);
    cf_future_unref(f);
    cf_future_unref(g);
    free_runtime(rt);
}

/* Entries of a /proc directory (threads in /proc/self/task, descriptors in /proc/self/fd). */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_free_leaves_nothing(void **state)
{
    (void)state;
    int fds = count_entries("/proc/self/fd"), threads = count_entries("/proc/self/task");

    for (int round = 0; round < 3; round++) {
        cf_runtime_t *rt = runtime(3, 2);
        cf_future_t *f[2];
        assert_true(count_entries("/proc/self/task") >= threads + 3);
        assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, 9, &f[0]), 0);
        assert_int_equal(cf_submit_i64_i64(cf_runtime_processes(rt), square, 9, &f[1]), 0);
        assert_int_equal(cf_future_i64(f[0]) + cf_future_i64(f[1]), 162);
        assert_int_equal(cf_futures_unref(f, 2), 0);
        free_runtime(rt);
        /* Threads joined, workers and fork server reaped, every descriptor closed. */
        assert_int_equal(count_entries("/proc/self/task"), threads);
        assert_int_equal(count_entries("/proc/self/fd"), fds);
    }
}

/* ------------------------------------------------------------------ typed submits */

static void test_shapes_thread_pool(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 0);
    check_shapes(cf_runtime_threads(rt));
    free_runtime(rt);
}

static void test_shapes_process_pool(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(0, 2);
    check_shapes(cf_runtime_processes(rt));
    free_runtime(rt);
}

static void test_submit_bad_arguments(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 0);
    cf_executor_t *ex = cf_runtime_threads(rt);
    cf_future_t *f = NULL;

    assert_int_equal(cf_submit_i64_i64(NULL, square, 1, &f), CF_EINVAL);
    assert_int_equal(cf_submit_i64_i64(ex, NULL, 1, &f), CF_EINVAL);
    assert_int_equal(cf_submit_i64_i64(ex, square, 1, NULL), CF_EINVAL);
    assert_int_equal(cf_submit_bytes_i64(ex, byte_sum, NULL, 3, &f), CF_EINVAL);
    assert_null(f);
    assert_int_equal(cf_future_get_i64(NULL, -1, NULL), CF_EINVAL);
    assert_int_equal(cf_futures_unref(NULL, 2), CF_EINVAL);
    assert_int_equal(cf_futures_unref(NULL, 0), 0);
    assert_int_equal(cf_future_i64(NULL), 0);

    /* After shutdown the executor's error comes through unchanged. */
    assert_int_equal(cf_executor_shutdown(ex, CF_SHUTDOWN_WAIT), 0);
    assert_int_equal(cf_submit_i64_i64(ex, square, 1, &f), CF_ESHUTDOWN);
    assert_null(f);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ failures and cancellation */

static void check_raise(cf_executor_t *ex)
{
    cf_future_t *f[5];
    int64_t v = -1;

    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_submit_i64_task(ex, fib_or_raise, 30 + i, &f[i]), 0);
    assert_int_equal(cf_future_get_i64(f[3], -1, &v), 0);
    assert_int_equal(v, 3524578); /* fib(33) */
    assert_int_equal(cf_future_get_i64(f[4], -1, &v), CF_EFAIL);
    assert_int_equal(v, 3524578); /* untouched */
    assert_string_equal(cf_future_error(f[4]), "Don't do this");
    assert_int_equal(cf_future_i64(f[4]), 0);
    assert_true(cf_future_f64(f[4]) == 0.0);
    assert_int_equal(cf_future_get_state(f[4]), CF_FUTURE_FAILED);
    assert_int_equal(cf_futures_unref(f, 5), 0);
}

static void test_task_that_raises(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 2);
    check_raise(cf_runtime_threads(rt));
    check_raise(cf_runtime_processes(rt));
    free_runtime(rt);
}

static void check_cancel(cf_executor_t *ex)
{
    cf_future_t *busy, *queued;
    int64_t v = -1;
    int rc;

    /* One worker: `queued` waits behind `busy`, which runs until cancelled. */
    assert_int_equal(cf_submit_i64_task(ex, until_cancelled, 0, &busy), 0);
    assert_int_equal(cf_submit_i64_i64(ex, square, 5, &queued), 0);
    assert_int_equal(cf_future_cancel(queued), 0);
    assert_int_equal(cf_future_get_state(queued), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_get_i64(queued, -1, &v), CF_ECANCELED);
    assert_int_equal(v, -1);

    /* A bounded wait ends the wait, not the task. */
    assert_int_equal(cf_future_get_i64(busy, 0.01, &v), CF_ETIMEDOUT);
    assert_false(cf_future_get_state(busy) == CF_FUTURE_CANCELLED);
    rc = cf_future_cancel(busy);
    assert_true(rc == CF_EBUSY || rc == 0);
    assert_int_equal(cf_future_get_i64(busy, -1, &v), CF_ECANCELED);
    assert_int_equal(v, -1);
    cf_future_unref(busy);
    cf_future_unref(queued);
}

static void test_cancel(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 1);
    check_cancel(cf_runtime_threads(rt));
    check_cancel(cf_runtime_processes(rt));
    /* The process pool replaced the killed worker and goes on. */
    cf_future_t *f;
    assert_int_equal(cf_submit_i64_i64(cf_runtime_processes(rt), square, 6, &f), 0);
    assert_int_equal(cf_future_i64(f), 36);
    cf_future_unref(f);
    free_runtime(rt);
}

static void test_free_cancels_outstanding(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 1);
    cf_future_t *f[4];

    /* Running and queued tasks on both pools: the free stops them all. */
    assert_int_equal(cf_submit_i64_task(cf_runtime_threads(rt), until_cancelled, 0, &f[0]), 0);
    assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, 2, &f[1]), 0);
    assert_int_equal(cf_submit_i64_task(cf_runtime_processes(rt), until_cancelled, 0, &f[2]), 0);
    assert_int_equal(cf_submit_i64_i64(cf_runtime_processes(rt), square, 2, &f[3]), 0);
    assert_int_equal(cf_futures_unref(f, 4), 0);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ as completed */

static void test_completed_order_and_index(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 0);
    cf_loop_t *loop = cf_runtime_loop(rt);
    cf_future_t *fs[5];
    size_t order[5], got = 0;

    assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, 7, &fs[0]), 0);
    assert_int_equal(cf_future_new(loop, &fs[1]), 0);
    assert_int_equal(cf_future_new(loop, &fs[2]), 0);
    assert_int_equal(cf_future_set_i64(fs[2], 20), 0);
    assert_int_equal(cf_future_set_i64(fs[1], 10), 0);
    fs[3] = fs[1]; /* the same future twice: returned once, with its first position */
    cf_future_ref(fs[3]);
    assert_int_equal(cf_future_new(loop, &fs[4]), 0);
    assert_int_equal(cf_future_set_error(fs[4], CF_EFAIL, "no"), 0);

    int rc;
    cf_completed c = CF_COMPLETED(fs, 5);
    while ((rc = cf_completed_next(&c)) == 0) {
        assert_true(got < 4);
        assert_ptr_equal(c.future, fs[c.index]);
        order[got++] = c.index;
    }
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(cf_completed_next(&c), CF_EOF); /* stays ended */
    assert_int_equal(got, 4);
    /* Those done before the iteration, in input order, then the task. */
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 4);
    assert_int_equal(order[3], 0);
    assert_int_equal(cf_future_i64(fs[0]), 49);
    assert_int_equal(cf_futures_unref(fs, 5), 0);

    /* No futures at all. */
    cf_completed e = CF_COMPLETED(NULL, 0);
    assert_int_equal(cf_completed_next(&e), CF_EOF);
    free_runtime(rt);
}

static void test_completed_take(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 2);
    cf_future_t *fs[8];
    int seen[8] = {0};
    int rc;

    for (int i = 0; i < 8; i++) {
        cf_executor_t *ex = i % 2 ? cf_runtime_threads(rt) : cf_runtime_processes(rt);
        assert_int_equal(cf_submit_i64_i64(ex, square, i, &fs[i]), 0);
    }
    cf_completed c = CF_COMPLETED_TAKE(fs, 8);
    while ((rc = cf_completed_next(&c)) == 0) {
        assert_false(seen[c.index]);
        seen[c.index] = 1;
        assert_ptr_equal(fs[c.index], c.future);
        assert_int_equal(cf_future_i64(c.future), (int64_t)(c.index * c.index));
    }
    assert_int_equal(rc, CF_EOF);
    for (int i = 0; i < 8; i++) {
        assert_true(seen[i]);
        assert_null(fs[i]); /* released by the iteration */
    }

    /* Ended early: the iteration releases what it still holds. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, i, &fs[i]), 0);
    cf_completed d = CF_COMPLETED_TAKE(fs, 3);
    assert_int_equal(cf_completed_next(&d), 0);
    cf_completed_end(&d);
    cf_completed_end(&d);
    assert_int_equal(cf_completed_next(&d), CF_EOF);
    for (int i = 0; i < 3; i++)
        assert_null(fs[i]);

    /* Never started: ending releases all. */
    assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(rt), square, 1, &fs[0]), 0);
    cf_completed never = CF_COMPLETED_TAKE(fs, 1);
    cf_completed_end(&never);
    assert_null(fs[0]);
    free_runtime(rt);
}

static void test_completed_timeout_and_errors(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(1, 0);
    cf_loop_t *loop = cf_runtime_loop(rt);
    cf_future_t *fs[2];

    assert_int_equal(cf_future_new(loop, &fs[0]), 0);
    assert_int_equal(cf_future_new(loop, &fs[1]), 0);
    assert_int_equal(cf_future_set_i64(fs[1], 1), 0);

    /* The held loop could still complete fs[0]: the iteration times out. */
    cf_loop_hold(loop);
    cf_completed c = CF_COMPLETED(fs, 2);
    c.timeout = 0.01;
    assert_int_equal(cf_completed_next(&c), 0);
    assert_int_equal(c.index, 1);
    assert_int_equal(cf_completed_next(&c), CF_ETIMEDOUT);
    assert_null(c.future);
    assert_int_equal(cf_completed_next(&c), CF_EOF);
    assert_int_equal(cf_loop_release(loop), 0);

    /* Nothing could complete fs[0]: deadlock, not a hang. */
    cf_completed d = CF_COMPLETED(fs, 1);
    assert_int_equal(cf_completed_next(&d), CF_EDEADLK);

    /* A NULL entry. */
    cf_future_t *bad[2] = {fs[1], NULL};
    cf_completed e = CF_COMPLETED(bad, 2);
    assert_int_equal(cf_completed_next(&e), CF_EINVAL);
    assert_int_equal(cf_completed_next(NULL), CF_EINVAL);
    cf_completed_end(NULL);

    cf_future_cancel(fs[0]);
    assert_int_equal(cf_futures_unref(fs, 2), 0);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ inside a loop callback */

struct in_cb {
    cf_runtime_t *rt;
    cf_future_t *pending;
    int ran;
};

static void blocking_calls_in_callback(cf_future_t *f, int status, void *data)
{
    struct in_cb *x = data;
    int64_t v = -1;
    int64_t xs[2] = {1, 2}, ys[2];
    (void)status;

    x->ran = 1;
    /* The future of this callback is done: reading it is fine. */
    assert_int_equal(cf_future_get_i64(f, -1, &v), 0);
    assert_int_equal(v, 4);
    /* Waiting is not. */
    assert_int_equal(cf_future_get_i64(x->pending, -1, &v), CF_EDEADLK);
    assert_int_equal(cf_future_i64(x->pending), 0);
    cf_completed c = CF_COMPLETED(&x->pending, 1);
    assert_int_equal(cf_completed_next(&c), CF_EDEADLK);
    assert_int_equal(cf_map_i64_i64(cf_runtime_threads(x->rt), square, xs, 2, 1, ys), CF_EDEADLK);
    assert_int_equal(cf_runtime_run(x->rt), CF_EDEADLK);
    assert_int_equal(cf_runtime_free(x->rt), CF_EDEADLK);
    cf_future_cancel(x->pending);
}

static void test_blocking_calls_in_callback(void **state)
{
    (void)state;
    struct in_cb x = {runtime(1, 0), NULL, 0};
    cf_future_t *f;

    assert_int_equal(cf_future_new(cf_runtime_loop(x.rt), &x.pending), 0);
    assert_int_equal(cf_submit_i64_i64(cf_runtime_threads(x.rt), square, 2, &f), 0);
    assert_int_equal(cf_future_on_done(f, blocking_calls_in_callback, &x, NULL), 0);
    cf_future_unref(f);
    assert_int_equal(cf_runtime_run(x.rt), 0);
    assert_true(x.ran);
    cf_future_unref(x.pending);
    free_runtime(x.rt);
}

/* ------------------------------------------------------------------ maps */

static void check_map(cf_executor_t *ex, size_t n, size_t chunksize)
{
    int64_t *xs = malloc(n * sizeof(*xs)), *ys = malloc(n * sizeof(*ys));
    double *dx = malloc(n * sizeof(*dx)), *dy = malloc(n * sizeof(*dy));
    assert_true(xs && ys && dx && dy);

    for (size_t i = 0; i < n; i++) {
        xs[i] = (int64_t)i - 50;
        ys[i] = -1;
        dx[i] = (double)i + 0.5;
    }
    assert_int_equal(cf_map_i64_i64(ex, square, xs, n, chunksize, ys), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ys[i], xs[i] * xs[i]);
    assert_int_equal(cf_map_i64_f64(ex, half, xs, n, chunksize, dy), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(dy[i] == (double)xs[i] / 2);
    assert_int_equal(cf_map_f64_i64(ex, floor_i, dx, n, chunksize, ys), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ys[i], (int64_t)i);
    assert_int_equal(cf_map_f64_f64(ex, twice, dx, n, chunksize, dx), 0); /* in place */
    for (size_t i = 0; i < n; i++)
        assert_true(dx[i] == 2 * ((double)i + 0.5));
    free(xs);
    free(ys);
    free(dx);
    free(dy);
}

static void test_map_thread_pool(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 0);
    check_map(cf_runtime_threads(rt), 1000, 0);
    check_map(cf_runtime_threads(rt), 1000, 1);
    check_map(cf_runtime_threads(rt), 999, 7);
    check_map(cf_runtime_threads(rt), 3, 100);
    free_runtime(rt);
}

static void test_map_process_pool(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(0, 2);
    check_map(cf_runtime_processes(rt), 1000, 0);
    check_map(cf_runtime_processes(rt), 1000, 1);
    check_map(cf_runtime_processes(rt), 1, 0);
    free_runtime(rt);
}

static void test_map_edges(void **state)
{
    (void)state;
    cf_thread_pool_opts to;
    cf_process_pool_opts po;
    cf_runtime_t *rt = NULL;
    int64_t xs[40], ys[40];

    cf_thread_pool_opts_init(&to);
    to.max_workers = 1;
    cf_process_pool_opts_init(&po);
    po.max_workers = 2;
    assert_int_equal(cf_runtime_new_opts(&to, &po, &rt), 0);

    assert_int_equal(cf_map_i64_i64(cf_runtime_threads(rt), square, NULL, 0, 0, NULL), 0);
    assert_int_equal(cf_map_i64_i64(NULL, square, xs, 1, 0, ys), CF_EINVAL);
    assert_int_equal(cf_map_i64_i64(cf_runtime_threads(rt), NULL, xs, 1, 0, ys), CF_EINVAL);
    assert_int_equal(cf_map_i64_i64(cf_runtime_threads(rt), square, NULL, 1, 0, ys), CF_EINVAL);
    assert_int_equal(cf_map_i64_i64(cf_runtime_threads(rt), square, xs, 1, 0, NULL), CF_EINVAL);

    /* A worker dies on item 13: the map reports it; items before it are filled. */
    for (int i = 0; i < 40; i++) {
        xs[i] = i;
        ys[i] = -1;
    }
    assert_int_equal(cf_map_i64_i64(cf_runtime_processes(rt), crash_on_13, xs, 40, 1, ys), CF_EWORKER);
    for (int i = 0; i < 13; i++)
        assert_int_equal(ys[i], i);
    assert_int_equal(ys[13], -1);
    /* The pool replaced the worker: the next map runs whole. */
    xs[13] = 12;
    assert_int_equal(cf_map_i64_i64(cf_runtime_processes(rt), crash_on_13, xs, 40, 3, ys), 0);
    assert_int_equal(ys[13], 12);
    assert_int_equal(ys[39], 39);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ callback style on a runtime */

static void count_done(cf_future_t *f, int status, void *data)
{
    int64_t *sum = data;
    int64_t v = 0;
    assert_int_equal(status, 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    *sum += v;
}

static void test_runtime_run_callbacks(void **state)
{
    (void)state;
    cf_runtime_t *rt = runtime(2, 2);
    int64_t sum = 0;

    for (int i = 1; i <= 10; i++) {
        cf_executor_t *ex = i % 2 ? cf_runtime_threads(rt) : cf_runtime_processes(rt);
        cf_future_t *f;
        assert_int_equal(cf_submit_i64_i64(ex, square, i, &f), 0);
        assert_int_equal(cf_future_on_done(f, count_done, &sum, NULL), 0);
        cf_future_unref(f);
    }
    assert_int_equal(cf_runtime_run(rt), 0); /* returns once every task is done */
    assert_int_equal(sum, 385);
    free_runtime(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_new_and_free),
        cmocka_unit_test(test_runtime_bad_arguments),
        cmocka_unit_test(test_free_with_futures_held),
        cmocka_unit_test(test_free_leaves_nothing),
        cmocka_unit_test(test_shapes_thread_pool),
        cmocka_unit_test(test_shapes_process_pool),
        cmocka_unit_test(test_submit_bad_arguments),
        cmocka_unit_test(test_task_that_raises),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_cancels_outstanding),
        cmocka_unit_test(test_completed_order_and_index),
        cmocka_unit_test(test_completed_take),
        cmocka_unit_test(test_completed_timeout_and_errors),
        cmocka_unit_test(test_blocking_calls_in_callback),
        cmocka_unit_test(test_map_thread_pool),
        cmocka_unit_test(test_map_process_pool),
        cmocka_unit_test(test_map_edges),
        cmocka_unit_test(test_runtime_run_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
