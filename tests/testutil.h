/*
 * testutil.h - shared fixture and helpers for the cfutures cmocka tests.
 *
 * Every test gets a fresh non-default loop; teardown checks that the test left
 * nothing behind (cf_loop_close() succeeds only when every future, executor
 * and queued call is gone) and destroys the loop.
 *
 * Also here: the task functions, promise makers and gate that several test
 * files need (named task_*, new_* so they cannot clash with a file's own
 * helpers), and T(), the usual way to list a test with this fixture.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_TESTUTIL_H
#define CF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cfutures.h>

struct fixture {
    struct ev_loop *ev;
    cf_loop_t *loop;
    pthread_t loop_thread;
};

static inline int fixture_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->ev = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->ev);
    assert_int_equal(cf_loop_new(fx->ev, &fx->loop), 0);
    fx->loop_thread = pthread_self();
    *state = fx;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    struct fixture *fx = *state;

    /* Tasks still running when a test freed its pool complete on the loop:
     * let them, then nothing may be left. */
    ev_run(fx->ev, 0);
    assert_int_equal(cf_loop_close(fx->loop), 0);
    ev_loop_destroy(fx->ev);
    free(fx);
    return 0;
}

/* A thread pool of `workers` threads on the fixture's loop. */
static inline cf_thread_pool_t *make_pool(struct fixture *fx, int workers)
{
    cf_thread_pool_opts o;
    cf_thread_pool_t *p;

    cf_thread_pool_opts_init(&o);
    o.max_workers = workers;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &p), 0);
    return p;
}

/* Entries of a /proc directory (threads in /proc/self/task, descriptors in /proc/self/fd). */
static inline int count_dir_entries(const char *path)
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

/* A gate a task can block on until the test opens it (no sleeps). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int waiting;
};

static inline void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    g->waiting = 0;
}

static inline void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static inline void gate_pass(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->waiting++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    g->waiting--;
    pthread_mutex_unlock(&g->mu);
}

/* Wait until `n` threads wait at the gate. */
static inline void gate_wait_for(struct gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->waiting < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static inline void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A test with the fresh-loop fixture, for the CMUnitTest arrays. */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

/* ------------------------------------------------------------------ tasks */

/* Does nothing. */
static inline int task_noop(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 0;
}

/* i64 value: arg (an intptr_t) squared. */
static inline int task_square(cf_task_t *t, void *arg)
{
    int64_t x = (int64_t)(intptr_t)arg;
    cf_task_set_i64(t, x * x);
    return 0;
}

/* Fails with CF_EFAIL and the message "boom <arg>". */
static inline int task_boom(cf_task_t *t, void *arg)
{
    return cf_task_fail(t, CF_EFAIL, "boom %d", (int)(intptr_t)arg);
}

/* Runs until its worker is stopped from outside (timeouts, cancels, kills). */
static inline int t_spin(cf_task_t *t, void *arg)
{
    volatile uint64_t n = 0;
    (void)t;
    (void)arg;
    for (;;)
        n++;
    return 0;
}

/* Blocks at the gate `arg` until the test opens it, then finishes with 1. */
static inline int task_wait_gate(cf_task_t *t, void *arg)
{
    gate_pass(arg);
    cf_task_set_i64(t, 1);
    return 0;
}

/* ------------------------------------------------------------------ futures */

/* A pending promise on the fixture's loop. */
static inline cf_future_t *new_promise(struct fixture *fx)
{
    cf_future_t *f;
    assert_int_equal(cf_future_new(fx->loop, &f), 0);
    return f;
}

/* A promise already finished with i64 value v. */
static inline cf_future_t *new_resolved(struct fixture *fx, int64_t v)
{
    cf_future_t *f = new_promise(fx);
    assert_int_equal(cf_future_set_i64(f, v), 0);
    return f;
}

/* Drop one reference on each of fs[0..n), checking each drop. */
static inline void unref_all(cf_future_t **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cf_future_unref(fs[i]), 0);
}

/* The call just made failed with a cf_last_error() message containing `part`. */
#define assert_last_error(part)                                                                                        \
    do {                                                                                                               \
        const char *last_ = cf_last_error();                                                                           \
        if (!strstr(last_, (part)))                                                                                    \
            fail_msg("cf_last_error() is \"%s\", expected it to contain \"%s\"", last_, (part));                       \
    } while (0)

/* A process pool of `workers` with kill grace `grace` on the fixture's loop. */
static inline cf_process_pool_t *ppool(struct fixture *fx, int workers, double grace)
{
    cf_process_pool_opts o;
    cf_process_pool_t *p;

    cf_process_pool_opts_init(&o);
    o.max_workers = workers;
    o.kill_grace = grace;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    return p;
}

/* Submit fn with an int64_t argument and a per-task timeout. */
static inline cf_future_t *submit_i(cf_process_pool_t *p, cf_task_fn fn, int64_t x, double timeout)
{
    cf_future_t *f;
    assert_int_equal(cf_process_pool_submit(p, fn, &x, sizeof(x), timeout, &f), 0);
    return f;
}

#endif /* CF_TESTUTIL_H */
