/*
 * test_conformance.c - behaviours that other executor libraries' test suites
 * check, ported to the public API, and the documented guarantees about when
 * callbacks stop and when user data may be freed.
 *
 * The first part checks the lifetime promises: a callback never runs after
 * the end of its operation (an iteration that finished, timed out or was
 * cancelled; a map that was freed or stopped; a continuation whose output
 * was cancelled), and every destroy notifier runs exactly once.  A program
 * that hands the library the address of an object on its stack relies on
 * exactly these promises.
 *
 * The rest follows CPython's test_concurrent_futures (wait modes over mixed
 * states, as_completed with duplicates and a timeout, cancel and set_result
 * rules, done callbacks, submitting from a done callback, shutdown without
 * waiting, max_workers and initializer checks), pebble (a timeout stops only
 * its worker, a task that calls exit()), loky (a pool reused after a crash)
 * and libuv's threadpool tests (closing a loop that still has work, a
 * saturated bounded queue on many threads).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

/*
 * Gates and the FIFO that tasks block on live for the whole program, and the
 * teardown opens them: a test that fails while a worker waits there does not
 * leave the worker blocked on memory that is gone, nor the teardown's loop
 * run waiting for it.
 */
static struct gate test_gate, map_gate, shutdown_gate;
static int fifo_fd = -1;
static char fifo_path[64];

static void gate_close(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 0;
    pthread_mutex_unlock(&g->mu);
}

static int conf_teardown(void **state)
{
    gate_open(&test_gate);
    gate_open(&map_gate);
    gate_open(&shutdown_gate);
    if (fifo_fd >= 0) {
        /* One byte more than any reader waits for, so a failed test's reader returns. */
        if (write(fifo_fd, "\1", 1) != 1)
            fail_msg("fifo: %s", strerror(errno));
        close(fifo_fd);
        fifo_fd = -1;
        unlink(fifo_path);
    }
    return fixture_teardown(state);
}

#undef T
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, conf_teardown)

/* Counts calls of a destroy notifier. */
static void count_destroy(void *data)
{
    (*(int *)data)++;
}

/* Turn the loop without blocking until `pred(arg)` holds (what it waits for
 * may happen on another thread, with no loop event to wake a blocking run). */
static void run_until(struct fixture *fx, int (*pred)(void *), void *arg)
{
    while (!pred(arg)) {
        ev_run(fx->ev, EVRUN_NOWAIT);
        if (!pred(arg))
            sched_yield();
    }
}

static int gate_has_waiter(void *arg)
{
    struct gate *g = arg;
    int w;

    pthread_mutex_lock(&g->mu);
    w = g->waiting;
    pthread_mutex_unlock(&g->mu);
    return w > 0;
}

static int future_running(void *arg)
{
    return cf_future_get_state(arg) != CF_FUTURE_PENDING;
}

/* ================================================================== callback lifetimes */

/* as-completed, callback form: the callback cancels the iteration. */
struct each_probe {
    cf_future_t *out;
    int calls;
    int destroyed;
    int calls_at_destroy;
};

static void each_cancel_first(cf_future_t *f, int status, void *data)
{
    struct each_probe *p = data;

    (void)f;
    (void)status;
    p->calls++;
    assert_int_equal(p->destroyed, 0); /* no callback after the destroy notifier */
    cf_future_cancel(p->out);
}

static void each_probe_destroy(void *data)
{
    struct each_probe *p = data;

    p->destroyed++;
    p->calls_at_destroy = p->calls;
}

static void test_each_cancelled_from_its_callback_stops(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *late = new_promise(fx);
    cf_future_t *fs[4] = {new_resolved(fx, 1), new_resolved(fx, 2), late, new_resolved(fx, 3)};
    struct each_probe p = {0};

    assert_int_equal(cf_as_completed_each(fs, 4, -1, each_cancel_first, &p, each_probe_destroy, &p.out), 0);
    assert_int_equal(cf_future_wait(p.out, -1), 0);
    assert_int_equal(cf_future_get_state(p.out), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_set_i64(late, 4), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(p.calls, 1); /* three inputs were ready: only the first was delivered */
    assert_int_equal(p.destroyed, 1);
    assert_int_equal(p.calls_at_destroy, 1);
    assert_int_equal(cf_future_unref(p.out), 0);
    unref_all(fs, 4);
}

static void each_count_cb(cf_future_t *f, int status, void *data)
{
    struct each_probe *p = data;

    (void)f;
    (void)status;
    assert_int_equal(p->destroyed, 0);
    p->calls++;
}

/* A timed-out iteration calls nothing afterwards, and its destroy notifier
 * has run by the time its output is done and the loop turned once more. */
static void test_each_timeout_ends_the_iteration(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *never = new_promise(fx);
    cf_future_t *fs[2] = {never, never};
    struct each_probe p = {0};

    assert_int_equal(cf_as_completed_each(fs, 2, 0, each_count_cb, &p, each_probe_destroy, &p.out), 0);
    assert_int_equal(cf_future_wait(p.out, -1), 0);
    assert_int_equal(cf_future_status(p.out), CF_ETIMEDOUT);
    ev_run(fx->ev, EVRUN_NOWAIT);
    assert_int_equal(p.destroyed, 1); /* the iteration ended: data may be released now */
    assert_int_equal(cf_future_set_i64(never, 1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(p.calls, 0);
    assert_int_equal(p.destroyed, 1);
    assert_int_equal(cf_future_unref(p.out), 0);
    assert_int_equal(cf_future_unref(never), 0);
}

/* Cancelling the iteration from outside: nothing is called afterwards, the
 * notifier runs once, the inputs are left alone. */
static void test_each_cancelled_from_outside(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *a = new_promise(fx), *b = new_promise(fx);
    cf_future_t *fs[2] = {a, b};
    struct each_probe p = {0};

    assert_int_equal(cf_as_completed_each_index(fs, 2, -1, (cf_each_index_cb)NULL, &p, NULL, &p.out), CF_EINVAL);
    assert_int_equal(cf_as_completed_each(fs, 2, -1, each_count_cb, &p, each_probe_destroy, &p.out), 0);
    assert_int_equal(cf_future_set_i64(a, 1), 0);
    while (p.calls < 1)
        ev_run(fx->ev, EVRUN_ONCE);
    assert_int_equal(p.calls, 1);
    assert_int_equal(cf_future_cancel(p.out), 0);
    ev_run(fx->ev, EVRUN_NOWAIT);
    assert_int_equal(p.destroyed, 1);
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_PENDING); /* inputs are not cancelled */
    assert_int_equal(cf_future_set_i64(b, 2), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.destroyed, 1);
    unref_all((cf_future_t *[]){a, b, p.out}, 3);
}

/* cf_then: cancelling the output before src is done: fn never runs, the
 * notifier runs once; src is cancelled. */
static int then_must_not_run(cf_future_t *src, cf_future_t *dst, void *data)
{
    (void)src;
    (void)dst;
    (void)data;
    fail_msg("a continuation ran after its output was cancelled");
    return 0;
}

struct then_probe {
    int ran, destroyed;
};

static int then_records(cf_future_t *src, cf_future_t *dst, void *data)
{
    struct then_probe *p = data;

    (void)src;
    assert_int_equal(p->destroyed, 0);
    p->ran++;
    return cf_future_set_i64(dst, 7);
}

static void then_probe_destroy(void *data)
{
    ((struct then_probe *)data)->destroyed++;
}

static void test_then_notifier_once_whatever_the_path(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *src = new_promise(fx), *out;
    struct then_probe p = {0};
    int destroyed = 0;

    /* Output cancelled first. */
    assert_int_equal(cf_then(src, then_must_not_run, &destroyed, count_destroy, CF_THEN_ALWAYS, &out), 0);
    assert_int_equal(cf_future_cancel(out), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_get_state(src), CF_FUTURE_CANCELLED);
    assert_int_equal(destroyed, 1);
    unref_all((cf_future_t *[]){src, out}, 2);

    /* Source failed, no CF_THEN_ALWAYS: fn does not run, the notifier does. */
    destroyed = 0;
    src = new_promise(fx);
    assert_int_equal(cf_then(src, then_must_not_run, &destroyed, count_destroy, 0, &out), 0);
    assert_int_equal(cf_future_set_error(src, CF_EFAIL, "no"), 0);
    assert_int_equal(cf_future_wait(out, -1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_status(out), CF_EFAIL);
    assert_int_equal(destroyed, 1);
    unref_all((cf_future_t *[]){src, out}, 2);

    /* Normal path: fn, then the notifier. */
    src = new_resolved(fx, 1);
    assert_int_equal(cf_then(src, then_records, &p, then_probe_destroy, 0, &out), 0);
    assert_int_equal(p.ran, 0); /* never inline */
    assert_int_equal(cf_future_wait(out, -1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(p.ran, 1);
    assert_int_equal(p.destroyed, 1);
    unref_all((cf_future_t *[]){src, out}, 2);
}

/* cf_future_on_done: the notifier runs right after its callback, once. */
struct done_probe {
    int calls, destroyed, status;
};

static void done_probe_cb(cf_future_t *f, int status, void *data)
{
    struct done_probe *p = data;

    (void)f;
    assert_int_equal(p->destroyed, 0);
    p->calls++;
    p->status = status;
}

static void done_probe_destroy(void *data)
{
    struct done_probe *p = data;

    assert_int_equal(p->calls, 1);
    p->destroyed++;
}

static void test_on_done_notifier_after_the_callback(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *f = new_promise(fx);
    struct done_probe p[3] = {{0}};

    assert_int_equal(cf_future_on_done(f, done_probe_cb, &p[0], done_probe_destroy), 0);
    assert_int_equal(cf_future_on_done(f, NULL, &p[2], done_probe_destroy), CF_EINVAL);
    assert_int_equal(cf_future_cancel(f), 0);
    assert_int_equal(p[0].calls, 0); /* never inline from the call that completes it */
    /* Added after completion: runs on a later iteration, not inline. */
    assert_int_equal(cf_future_on_done(f, done_probe_cb, &p[1], done_probe_destroy), 0);
    assert_int_equal(p[1].calls, 0);
    ev_run(fx->ev, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p[i].calls, 1);
        assert_int_equal(p[i].destroyed, 1);
        assert_int_equal(p[i].status, CF_ECANCELED);
    }
    assert_int_equal(p[2].destroyed, 0); /* a refused registration keeps nothing */
    ev_run(fx->ev, 0);
    assert_int_equal(p[0].calls, 1);
    assert_int_equal(cf_future_unref(f), 0);
}

/* cf_map: after cf_map_free(), neither the pull callback nor the result
 * callback runs, even for a chunk that was running when it was freed. */

static int map_item_blocks_first(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;

    (void)len;
    memcpy(&x, item, sizeof(x));
    if (x == 0)
        gate_pass(&map_gate);
    cf_task_set_i64(t, x * 10);
    return 0;
}

struct map_probe {
    int64_t next, cur;
    int pulls, results;
    int stop_after; /* the result callback returns non-zero once it saw this many; 0: never */
    cf_map_t *free_in_cb;
};

static int map_probe_pull(void *src, const void **item, size_t *len)
{
    struct map_probe *p = src;

    p->pulls++;         /* endless: the window bounds what is in flight */
    p->cur = p->next++; /* the map copies the bytes before the next call */
    *item = &p->cur;
    *len = sizeof(p->cur);
    return 1;
}

static int map_probe_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    struct map_probe *p = data;

    (void)m;
    assert_int_equal(r->status, 0);
    assert_int_equal(r->index, (size_t)p->results); /* input order */
    assert_int_equal(r->i64, (int64_t)r->index * 10);
    p->results++;
    return p->stop_after && p->results >= p->stop_after;
}

static cf_map_t *probe_map(struct fixture *fx, cf_thread_pool_t *pool, struct map_probe *p)
{
    cf_map_opts o;
    cf_map_t *m;

    (void)fx;
    cf_map_opts_init(&o);
    o.chunksize = 1;
    o.window = 4;
    assert_int_equal(cf_map_new(cf_thread_pool_executor(pool), map_item_blocks_first, map_probe_pull, p, &o, &m), 0);
    return m;
}

static void test_map_free_ends_every_callback(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 2);
    struct map_probe p = {0};
    cf_future_t *done;
    cf_map_t *m = probe_map(fx, pool, &p);
    int pulls;

    gate_close(&map_gate);
    assert_int_equal(cf_map_each(m, map_probe_cb, &p, &done), 0);
    run_until(fx, gate_has_waiter, &map_gate); /* item 0 is running, blocked */
    pulls = p.pulls;
    assert_true(pulls >= 1);
    assert_int_equal(p.results, 0); /* results come in input order: item 0 holds them back */
    cf_map_free(m);
    gate_open(&map_gate);
    ev_run(fx->ev, 0);
    assert_int_equal(p.results, 0);
    assert_int_equal(p.pulls, pulls);
    assert_int_not_equal(cf_future_get_state(done), CF_FUTURE_PENDING);
    assert_int_not_equal(cf_future_status(done), 0);
    assert_int_equal(cf_future_unref(done), 0);
    cf_thread_pool_free(pool);
}

static void test_map_stopped_or_cancelled_calls_nothing_more(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 2);
    cf_future_t *done;
    int64_t n = -1;

    gate_close(&map_gate);
    gate_open(&map_gate);
    /* Stopped by its callback after 5 results. */
    {
        struct map_probe p = {.stop_after = 5};
        cf_map_t *m = probe_map(fx, pool, &p);
        int pulls;

        assert_int_equal(cf_map_each(m, map_probe_cb, &p, &done), 0);
        assert_int_equal(cf_future_wait(done, -1), 0);
        assert_int_equal(cf_future_result_i64(done, &n), 0);
        assert_int_equal(n, 5);
        pulls = p.pulls;
        ev_run(fx->ev, 0);
        assert_int_equal(p.results, 5);
        assert_int_equal(p.pulls, pulls);
        cf_map_free(m);
        ev_run(fx->ev, 0);
        assert_int_equal(p.results, 5);
        assert_int_equal(cf_future_unref(done), 0);
    }
    /* Cancelled through *done. */
    {
        struct map_probe p = {0};
        cf_map_t *m = probe_map(fx, pool, &p);
        int results, pulls;

        assert_int_equal(cf_map_each(m, map_probe_cb, &p, &done), 0);
        while (p.results < 3)
            ev_run(fx->ev, EVRUN_ONCE);
        assert_int_equal(cf_future_cancel(done), 0);
        results = p.results;
        pulls = p.pulls;
        ev_run(fx->ev, 0);
        assert_int_equal(p.results, results);
        assert_int_equal(p.pulls, pulls);
        assert_int_equal(cf_future_get_state(done), CF_FUTURE_CANCELLED);
        cf_map_free(m);
        ev_run(fx->ev, 0);
        assert_int_equal(p.results, results);
        assert_int_equal(cf_future_unref(done), 0);
    }
    cf_thread_pool_free(pool);
}

/* arg_free: once per accepted task, whatever its end; never for a refused one. */
static void test_arg_free_once_per_accepted_task(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 1);
    int freed[4] = {0};
    cf_future_t *blocker, *queued, *shut, *ran, *refused = NULL;

    gate_close(&test_gate);
    assert_int_equal(cf_thread_pool_submit(pool, task_wait_gate, &test_gate, NULL, &blocker), 0);
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed[0], count_destroy, &queued), 0);
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed[1], count_destroy, &shut), 0);
    run_until(fx, gate_has_waiter, &test_gate);
    assert_int_equal(cf_future_cancel(queued), 0);
    ev_run(fx->ev, EVRUN_NOWAIT);
    assert_int_equal(freed[0], 1);
    assert_int_equal(cf_thread_pool_shutdown(pool, CF_SHUTDOWN_CANCEL), 0);
    assert_int_equal(cf_future_get_state(shut), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed[2], count_destroy, &refused), CF_ESHUTDOWN);
    assert_null(refused);
    gate_open(&test_gate);
    assert_int_equal(cf_thread_pool_shutdown(pool, CF_SHUTDOWN_WAIT), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(freed[0], 1);
    assert_int_equal(freed[1], 1);
    assert_int_equal(freed[2], 0);
    cf_thread_pool_free(pool);

    pool = make_pool(fx, 1);
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed[3], count_destroy, &ran), 0);
    assert_int_equal(cf_future_wait(ran, -1), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(freed[3], 1);
    cf_thread_pool_free(pool);
    ev_run(fx->ev, 0);
    assert_int_equal(freed[3], 1);
    unref_all((cf_future_t *[]){blocker, queued, shut, ran}, 4);
}

/* ================================================================== CPython test_concurrent_futures */

/* wait() over every mix of done, cancelled, failed and pending futures. */
static void test_wait_over_mixed_states(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *pending = new_promise(fx), *finished = new_resolved(fx, 1), *failed = new_promise(fx),
                *cancelled = new_promise(fx);
    unsigned char done[4];
    size_t ndone = 99;

    assert_int_equal(cf_future_set_error(failed, CF_EFAIL, "raised"), 0);
    assert_int_equal(cf_future_cancel(cancelled), 0);

    /* FIRST_COMPLETED: a cancelled future counts as completed. */
    assert_int_equal(cf_wait((cf_future_t *[]){pending, cancelled}, 2, CF_FIRST_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    assert_int_equal(done[0], 0);
    assert_int_equal(done[1], 1);
    /* FIRST_EXCEPTION with a failure among them: returns at once. */
    assert_int_equal(
        cf_wait((cf_future_t *[]){finished, failed, pending, cancelled}, 4, CF_FIRST_EXCEPTION, -1, done, &ndone), 0);
    assert_int_equal(ndone, 3);
    assert_memory_equal(done, ((unsigned char[]){1, 1, 0, 1}), 4);
    /* FIRST_EXCEPTION without one: waits for all (bounded by the timeout here). */
    assert_int_equal(cf_wait((cf_future_t *[]){finished, cancelled, pending}, 3, CF_FIRST_EXCEPTION, 0, done, &ndone),
                     0);
    assert_int_equal(ndone, 2);
    assert_int_equal(done[2], 0);
    /* FIRST_EXCEPTION when everything is done but nothing failed: returns. */
    assert_int_equal(cf_wait((cf_future_t *[]){finished, cancelled}, 2, CF_FIRST_EXCEPTION, -1, done, &ndone), 0);
    assert_int_equal(ndone, 2);
    /* ALL_COMPLETED over done futures of every kind, and a duplicate. */
    assert_int_equal(
        cf_wait((cf_future_t *[]){finished, failed, cancelled, finished}, 4, CF_ALL_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 4);
    /* ALL_COMPLETED with a pending one and a timeout: not a failure. */
    assert_int_equal(cf_wait((cf_future_t *[]){finished, pending}, 2, CF_ALL_COMPLETED, 0, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    assert_int_equal(cf_wait((cf_future_t *[]){finished, pending}, 2, CF_ALL_COMPLETED, NAN, done, &ndone), CF_EINVAL);

    /* The callback form agrees. */
    cf_future_t *w;
    int64_t v = -1;
    assert_int_equal(cf_wait_future((cf_future_t *[]){pending, failed, finished}, 3, CF_FIRST_EXCEPTION, -1, &w), 0);
    assert_int_equal(cf_future_wait(w, -1), 0);
    assert_int_equal(cf_future_result_i64(w, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(cf_future_unref(w), 0);
    /* Cancelling the waiter does not cancel what it waits for. */
    assert_int_equal(cf_wait_future((cf_future_t *[]){pending}, 1, CF_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(cf_future_cancel(w), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_get_state(pending), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_unref(w), 0);

    assert_int_equal(cf_future_cancel(pending), 0);
    ev_run(fx->ev, 0);
    unref_all((cf_future_t *[]){pending, finished, failed, cancelled}, 4);
}

/* wait() on executor futures: a running task, a finished one and a failing one. */
static void test_wait_on_running_tasks(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 2);
    cf_future_t *running, *quick, *boom;
    unsigned char done[3];
    size_t ndone;

    gate_close(&test_gate);
    assert_int_equal(cf_thread_pool_submit(pool, task_wait_gate, &test_gate, NULL, &running), 0);
    assert_int_equal(cf_thread_pool_submit(pool, task_square, (void *)3, NULL, &quick), 0);
    assert_int_equal(cf_wait((cf_future_t *[]){running, quick}, 2, CF_FIRST_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    assert_int_equal(done[0], 0);
    assert_int_equal(done[1], 1);
    assert_int_equal(cf_thread_pool_submit(pool, task_boom, (void *)1, NULL, &boom), 0);
    assert_int_equal(cf_wait((cf_future_t *[]){running, quick, boom}, 3, CF_FIRST_EXCEPTION, -1, done, &ndone), 0);
    assert_memory_equal(done, ((unsigned char[]){0, 1, 1}), 3);
    assert_int_equal(cf_future_status(boom), CF_EFAIL);
    assert_string_equal(cf_future_error(boom), "boom 1");
    gate_open(&test_gate);
    assert_int_equal(cf_wait((cf_future_t *[]){running, quick, boom}, 3, CF_ALL_COMPLETED, -1, done, &ndone), 0);
    assert_int_equal(ndone, 3);
    cf_thread_pool_free(pool);
    unref_all((cf_future_t *[]){running, quick, boom}, 3);
}

/* as_completed(): duplicates once each, then the timeout; the iterator's
 * callback form over the same inputs. */
static void test_as_completed_duplicates_and_timeout(void **state)
{
    struct fixture *fx = *state;
    cf_future_t *a = new_resolved(fx, 1), *b = new_promise(fx), *c = new_promise(fx);
    cf_future_t *fs[6] = {a, b, a, c, b, a}, *f;
    cf_as_completed_t *it;
    size_t index;

    assert_int_equal(cf_future_set_error(c, CF_EFAIL, "c failed"), 0);
    assert_int_equal(cf_as_completed_new(fs, 6, 0, &it), 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, a);
    assert_int_equal(index, 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, c); /* failed futures are yielded like the others */
    assert_int_equal(index, 3);
    assert_int_equal(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
    assert_int_equal(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
    cf_as_completed_free(it);

    /* No timeout: b arrives once although passed twice. */
    assert_int_equal(cf_as_completed_new(fs, 6, -1, &it), 0);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_int_equal(cf_as_completed_next(it, &f), 0);
    assert_int_equal(cf_future_set_i64(b, 2), 0);
    assert_int_equal(cf_as_completed_next_index(it, &f, &index), 0);
    assert_ptr_equal(f, b);
    assert_int_equal(index, 1);
    assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    unref_all((cf_future_t *[]){a, b, c}, 3);
}

/* cancel() of running and finished futures; set_result twice. */
static int value_frees;

static void count_value_free(void *v)
{
    (void)v;
    value_frees++;
}

static void test_cancel_and_set_result_rules(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 1);
    cf_future_t *running, *finished, *p;
    static int first, second;

    gate_close(&test_gate);
    assert_int_equal(cf_thread_pool_submit(pool, task_wait_gate, &test_gate, NULL, &running), 0);
    run_until(fx, gate_has_waiter, &test_gate);
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_RUNNING);
    assert_int_equal(cf_future_cancel(running), CF_EBUSY); /* requested, not done */
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_RUNNING);
    assert_int_equal(cf_future_set_i64(running, 5), CF_EPERM); /* an executor's future */
    gate_open(&test_gate);
    assert_int_equal(cf_future_wait(running, -1), 0);
    assert_int_equal(cf_future_status(running), 0); /* the task ignored the request */
    assert_int_equal(cf_future_cancel(running), CF_EALREADY);

    assert_int_equal(cf_thread_pool_submit(pool, task_square, (void *)4, NULL, &finished), 0);
    assert_int_equal(cf_future_wait(finished, -1), 0);
    assert_int_equal(cf_future_cancel(finished), CF_EALREADY);
    assert_int_equal(cf_future_get_state(finished), CF_FUTURE_FINISHED);

    /* A promise: the second outcome is refused and its value stays the caller's. */
    value_frees = 0;
    p = new_promise(fx);
    assert_int_equal(cf_future_set_result(p, &first, count_value_free), 0);
    assert_int_equal(cf_future_set_result(p, &second, count_value_free), CF_EALREADY);
    assert_int_equal(cf_future_set_error(p, CF_EFAIL, "late"), CF_EALREADY);
    assert_int_equal(cf_future_cancel(p), CF_EALREADY);
    assert_int_equal(value_frees, 0);
    void *v = NULL;
    assert_int_equal(cf_future_result(p, &v), 0);
    assert_ptr_equal(v, &first);
    assert_int_equal(cf_future_unref(p), 0);
    assert_int_equal(value_frees, 1); /* the stored value only */
    p = new_promise(fx);
    assert_int_equal(cf_future_set_error(p, 3, "not an error code"), CF_EINVAL);
    assert_int_equal(cf_future_get_state(p), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_set_error(p, CF_EFAIL, "first"), 0);
    assert_int_equal(cf_future_set_i64(p, 1), CF_EALREADY);
    assert_string_equal(cf_future_error(p), "first");
    assert_int_equal(cf_future_unref(p), 0);

    cf_thread_pool_free(pool);
    unref_all((cf_future_t *[]){running, finished}, 2);
}

/* Submitting from a done callback: a chain of tasks, each started by the
 * previous one's callback. */
struct chain {
    cf_thread_pool_t *pool;
    int64_t last;
    int steps;
    int rc;
};

static void chain_next(cf_future_t *f, int status, void *data)
{
    struct chain *c = data;
    cf_future_t *next;

    assert_int_equal(status, 0);
    assert_int_equal(cf_future_result_i64(f, &c->last), 0);
    assert_int_equal(cf_future_wait(f, 0), 0); /* done: fine inside a callback */
    if (++c->steps == 10)
        return;
    c->rc = cf_thread_pool_submit(c->pool, task_square, (void *)(intptr_t)(c->steps + 1), NULL, &next);
    if (c->rc)
        return;
    c->rc = cf_future_on_done(next, chain_next, c, NULL);
    cf_future_unref(next); /* the callback holds its own reference */
}

static void test_submit_from_a_done_callback(void **state)
{
    struct fixture *fx = *state;
    struct chain c = {.pool = make_pool(fx, 2)};
    cf_future_t *first;

    assert_int_equal(cf_thread_pool_submit(c.pool, task_square, (void *)1, NULL, &first), 0);
    assert_int_equal(cf_future_on_done(first, chain_next, &c, NULL), 0);
    assert_int_equal(cf_future_unref(first), 0);
    ev_run(fx->ev, 0); /* the pending tasks keep the loop alive to the end of the chain */
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.steps, 10);
    assert_int_equal(c.last, 100);
    cf_thread_pool_free(c.pool);
}

/* A process pool task: i64 argument squared. */
static int64_t arg_i64(cf_task_t *t)
{
    size_t len;
    int64_t x;

    memcpy(&x, cf_task_arg(t, &len), sizeof(x));
    return x;
}

static int pt_square(cf_task_t *t, void *arg)
{
    int64_t x = arg_i64(t);

    (void)arg;
    cf_task_set_i64(t, x * x);
    return 0;
}

/* Blocks reading one byte from the FIFO named by its argument. */
static int pt_read_fifo(cf_task_t *t, void *arg)
{
    char c = 0;
    int fd = open(arg, O_RDONLY);

    if (fd < 0 || read(fd, &c, 1) != 1)
        return cf_task_fail(t, CF_EFAIL, "fifo: %s", strerror(errno));
    close(fd);
    cf_task_set_i64(t, c);
    return 0;
}

static void make_fifo(char *path, size_t size, int *rdwr)
{
    snprintf(path, size, "/tmp/cf-conformance-%ld-%d", (long)getpid(), rand());
    assert_int_equal(mkfifo(path, 0600), 0);
    /* Held open for writing so a reader's open() does not wait for a writer. */
    snprintf(fifo_path, sizeof(fifo_path), "%s", path);
    *rdwr = fifo_fd = open(path, O_RDWR);
    assert_true(*rdwr >= 0);
}

/* shutdown(wait=False, cancel_futures=True) on both pools through the
 * executor interface: queued tasks end CANCELLED at once, the running one
 * completes, later submits fail with CF_ESHUTDOWN. */
static void shutdown_no_wait(struct fixture *fx, cf_executor_t *ex, cf_task_fn blocker_fn, const void *blocker_arg,
                             size_t blocker_len, cf_task_fn sq, void (*release)(void *), void *release_arg)
{
    cf_future_t *running, *queued[5], *refused = NULL;
    int64_t x = 3, v = -1;

    assert_int_equal(cf_executor_submit_bytes(ex, blocker_fn, blocker_arg, blocker_len, &running), 0);
    run_until(fx, future_running, running);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_executor_submit_bytes(ex, sq, &x, sizeof(x), &queued[i]), 0);
    assert_int_equal(cf_executor_shutdown(ex, CF_SHUTDOWN_CANCEL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cf_future_get_state(queued[i]), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_executor_submit_bytes(ex, sq, &x, sizeof(x), &refused), CF_ESHUTDOWN);
    assert_null(refused);
    assert_string_equal(cf_strerror(CF_ESHUTDOWN), "executor is shut down");
    release(release_arg);
    assert_int_equal(cf_future_wait(running, -1), 0);
    assert_int_equal(cf_future_result_i64(running, &v), 0);
    assert_int_equal(v, 1);
    unref_all(queued, 5);
    assert_int_equal(cf_future_unref(running), 0);
}

static int tp_gate_bytes(cf_task_t *t, void *arg)
{
    (void)arg;
    gate_pass(&shutdown_gate);
    cf_task_set_i64(t, 1);
    return 0;
}

static void open_shutdown_gate(void *arg)
{
    (void)arg;
    gate_open(&shutdown_gate);
}

static void write_fifo_one(void *arg)
{
    assert_int_equal(write(*(int *)arg, "\1", 1), 1);
}

static void test_shutdown_without_wait_cancels_queued(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *tp = make_pool(fx, 1);
    cf_process_pool_opts o;
    cf_process_pool_t *pp;
    char path[64];
    int rdwr;

    gate_close(&shutdown_gate);
    shutdown_no_wait(fx, cf_thread_pool_executor(tp), tp_gate_bytes, NULL, 0, pt_square, open_shutdown_gate, NULL);
    cf_thread_pool_free(tp);

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.pipeline = 1;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &pp), 0);
    make_fifo(path, sizeof(path), &rdwr);
    shutdown_no_wait(fx, cf_process_pool_executor(pp), pt_read_fifo, path, strlen(path) + 1, pt_square, write_fifo_one,
                     &rdwr);
    cf_process_pool_free(pp);
    close(rdwr);
    fifo_fd = -1;
    unlink(path);
}

/* max_workers out of range, with a message that names the field. */
static void test_max_workers_validation(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts po;
    cf_thread_pool_opts to;
    cf_process_pool_t *pp = NULL;
    cf_thread_pool_t *tp = NULL;
    static const int bad[] = {0, -1, -2147483647 - 1};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cf_process_pool_opts_init(&po);
        po.max_workers = bad[i];
        assert_int_equal(cf_process_pool_new(fx->loop, &po, &pp), CF_EINVAL);
        assert_last_error("max_workers");
        assert_null(pp);
        cf_thread_pool_opts_init(&to);
        to.max_workers = bad[i];
        assert_int_equal(cf_thread_pool_new(fx->loop, &to, &tp), CF_EINVAL);
        assert_last_error("max_workers");
        assert_null(tp);
    }
}

/* An initializer that fails breaks a process pool (Python's BrokenProcessPool). */
static int init_fails(void *pool_data, int worker_index, void **worker_data)
{
    (void)pool_data;
    (void)worker_index;
    (void)worker_data;
    return CF_EFAIL;
}

static void test_initializer_failure_breaks_process_pool(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *pp;
    cf_future_t *fs[3], *later = NULL;
    int64_t x = 2;

    cf_process_pool_opts_init(&o);
    o.max_workers = 2;
    o.initializer = init_fails;
    o.max_init_failures = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &pp), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cf_process_pool_submit(pp, pt_square, &x, sizeof(x), -1, &fs[i]), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_status(fs[i]), CF_EBROKEN);
        assert_non_null(cf_future_error(fs[i]));
    }
    assert_int_equal(cf_process_pool_submit(pp, pt_square, &x, sizeof(x), -1, &later), CF_EBROKEN);
    assert_null(later);
    unref_all(fs, 3);
    cf_process_pool_free(pp);
}

/* ================================================================== pebble */

static int pt_exit_zero(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    exit(0);
}

static uint64_t restarts_of(cf_process_pool_t *pp, int nworkers)
{
    uint64_t sum = 0;

    for (int i = 0; i < nworkers; i++) {
        cf_worker_info wi;
        assert_int_equal(cf_process_pool_worker_info(pp, i, &wi), 0);
        sum += wi.restarts;
    }
    return sum;
}

/* A per-task timeout stops only the worker that runs that task: a task
 * running on the other worker meanwhile completes. */
static void test_timeout_stops_only_its_worker(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *pp;
    cf_future_t *survivor, *spin;
    char path[64];
    int rdwr;
    uint64_t restarts;
    int64_t v = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 2;
    o.pipeline = 1;
    o.kill_grace = 0.2;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &pp), 0);
    make_fifo(path, sizeof(path), &rdwr);
    restarts = restarts_of(pp, 2);
    assert_int_equal(cf_process_pool_submit(pp, pt_read_fifo, path, strlen(path) + 1, 0, &survivor), 0);
    run_until(fx, future_running, survivor);
    assert_int_equal(cf_process_pool_submit(pp, t_spin, NULL, 0, 0.1, &spin), 0);
    assert_int_equal(cf_future_wait(spin, -1), 0);
    assert_int_equal(cf_future_status(spin), CF_ETIMEDOUT);
    assert_int_equal(cf_future_get_state(survivor), CF_FUTURE_RUNNING);
    assert_int_equal(write(rdwr, "\7", 1), 1);
    assert_int_equal(cf_future_wait(survivor, -1), 0);
    assert_int_equal(cf_future_result_i64(survivor, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(restarts_of(pp, 2), restarts + 1);
    unref_all((cf_future_t *[]){survivor, spin}, 2);
    cf_process_pool_free(pp);
    close(rdwr);
    fifo_fd = -1;
    unlink(path);
}

/* A task that calls exit(0): its future fails with CF_EWORKER (a clean exit
 * status is no result), the worker is replaced, the pool goes on. */
static void test_task_that_calls_exit(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *pp = ppool(fx, 1, 0.2);
    cf_future_t *f, *after;
    int64_t v = 0;

    assert_int_equal(cf_process_pool_submit(pp, pt_exit_zero, NULL, 0, -1, &f), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_EWORKER);
    if (!strstr(cf_future_error(f), "exited with status"))
        fail_msg("unexpected message '%s'", cf_future_error(f));
    after = submit_i(pp, pt_square, 9, -1);
    assert_int_equal(cf_future_wait(after, -1), 0);
    assert_int_equal(cf_future_result_i64(after, &v), 0);
    assert_int_equal(v, 81);
    unref_all((cf_future_t *[]){f, after}, 2);
    cf_process_pool_free(pp);
}

/* ================================================================== loky */

static int pt_crash(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    raise(SIGKILL);
    return 0;
}

/* After crashes the same pool takes many small tasks; every one completes. */
static void test_reuse_after_crashes(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *pp = ppool(fx, 2, 0.2);
    enum { N = 2000 };
    cf_future_t **fs = calloc(N, sizeof(*fs));
    cf_pool_stats st;

    assert_non_null(fs);
    for (int round = 0; round < 3; round++) {
        cf_future_t *crash;
        assert_int_equal(cf_process_pool_submit(pp, pt_crash, NULL, 0, -1, &crash), 0);
        assert_int_equal(cf_future_wait(crash, -1), 0);
        assert_int_equal(cf_future_status(crash), CF_EWORKER);
        assert_int_equal(cf_future_unref(crash), 0);
    }
    for (int i = 0; i < N; i++)
        fs[i] = submit_i(pp, pt_square, i, -1);
    assert_int_equal(cf_wait(fs, N, CF_ALL_COMPLETED, -1, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, (int64_t)i * i);
    }
    unref_all(fs, N);
    assert_int_equal(cf_process_pool_stats(pp, &st), 0);
    assert_int_equal(st.completed, N);
    assert_int_equal(st.failed, 3);
    assert_int_equal(st.queued + st.running, 0);
    free(fs);
    cf_process_pool_free(pp);
}

/* ================================================================== libuv threadpool */

static void call_mark(cf_loop_t *loop, void *arg)
{
    (void)loop;
    *(int *)arg = 1;
}

static int int_set(void *arg)
{
    return *(int *)arg;
}

/* A loop that still has a pool or queued work refuses to close, and keeps working. */
static void test_close_refused_while_work_remains(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_t *pool = make_pool(fx, 1);
    cf_future_t *f;
    int64_t v = 0;
    int called = 0;

    assert_int_equal(cf_loop_close(fx->loop), CF_ELOOPBUSY);
    assert_int_equal(cf_thread_pool_submit(pool, task_square, (void *)6, NULL, &f), 0);
    assert_int_equal(cf_loop_close(fx->loop), CF_ELOOPBUSY);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 36);
    assert_int_equal(cf_future_unref(f), 0);
    cf_thread_pool_free(pool);
    /* Only a queued cross-thread call left. */
    assert_int_equal(cf_loop_call(fx->loop, call_mark, &called), 0);
    assert_int_equal(cf_loop_close(fx->loop), CF_ELOOPBUSY);
    run_until(fx, int_set, &called);
}

/* Many threads, a small bounded queue that makes submitters wait for room:
 * every task runs once, every callback runs once. */
struct volume {
    int done;
    int64_t sum;
};

static void volume_cb(cf_future_t *f, int status, void *data)
{
    struct volume *v = data;
    int64_t x = 0;

    assert_int_equal(status, 0);
    assert_int_equal(cf_future_result_i64(f, &x), 0);
    v->done++;
    v->sum += x;
}

static void test_saturated_queue_on_many_threads(void **state)
{
    struct fixture *fx = *state;
    cf_thread_pool_opts o;
    cf_thread_pool_t *pool;
    struct volume v = {0};
    cf_pool_stats st;
    enum { N = 4000 };
    int64_t want = 0;

    cf_thread_pool_opts_init(&o);
    o.max_workers = 48;
    o.max_queued = 8;
    o.on_full = CF_QUEUE_FULL_WAIT;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &pool), 0);
    for (int i = 0; i < N; i++) {
        cf_future_t *f;
        assert_int_equal(cf_thread_pool_submit(pool, task_square, (void *)(intptr_t)(i % 100), NULL, &f), 0);
        assert_int_equal(cf_future_on_done(f, volume_cb, &v, NULL), 0);
        assert_int_equal(cf_future_unref(f), 0);
        want += (int64_t)(i % 100) * (i % 100);
    }
    ev_run(fx->ev, 0);
    assert_int_equal(v.done, N);
    assert_int_equal(v.sum, want);
    assert_int_equal(cf_thread_pool_stats(pool, &st), 0);
    assert_int_equal(st.submitted, N);
    assert_int_equal(st.completed, N);
    assert_int_equal(st.queued + st.running + st.failed + st.cancelled, 0);
    cf_thread_pool_free(pool);

    /* Under CF_QUEUE_FULL_FAIL the submit beyond the bound is refused, nothing kept. */
    cf_future_t *blocker, *q[2], *over = NULL;
    int freed = 0;
    gate_close(&test_gate);
    o.max_workers = 1;
    o.max_queued = 2;
    o.on_full = CF_QUEUE_FULL_FAIL;
    assert_int_equal(cf_thread_pool_new(fx->loop, &o, &pool), 0);
    assert_int_equal(cf_thread_pool_submit(pool, task_wait_gate, &test_gate, NULL, &blocker), 0);
    run_until(fx, gate_has_waiter, &test_gate);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cf_thread_pool_submit(pool, task_noop, NULL, NULL, &q[i]), 0);
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed, count_destroy, &over), CF_EAGAIN);
    assert_null(over);
    assert_int_equal(cf_future_cancel(q[0]), 0); /* cancelling queued work makes room */
    assert_int_equal(cf_thread_pool_submit(pool, task_noop, &freed, count_destroy, &over), 0);
    gate_open(&test_gate);
    assert_int_equal(cf_wait((cf_future_t *[]){blocker, q[1], over}, 3, CF_ALL_COMPLETED, -1, NULL, NULL), 0);
    ev_run(fx->ev, 0);
    assert_int_equal(freed, 1);
    cf_thread_pool_free(pool);
    unref_all((cf_future_t *[]){blocker, q[0], q[1], over}, 4);
}

int main(void)
{
    gate_init(&test_gate);
    gate_init(&map_gate);
    gate_init(&shutdown_gate);
    const struct CMUnitTest tests[] = {
        T(test_each_cancelled_from_its_callback_stops),
        T(test_each_timeout_ends_the_iteration),
        T(test_each_cancelled_from_outside),
        T(test_then_notifier_once_whatever_the_path),
        T(test_on_done_notifier_after_the_callback),
        T(test_map_free_ends_every_callback),
        T(test_map_stopped_or_cancelled_calls_nothing_more),
        T(test_arg_free_once_per_accepted_task),
        T(test_wait_over_mixed_states),
        T(test_wait_on_running_tasks),
        T(test_as_completed_duplicates_and_timeout),
        T(test_cancel_and_set_result_rules),
        T(test_submit_from_a_done_callback),
        T(test_shutdown_without_wait_cancels_queued),
        T(test_max_workers_validation),
        T(test_initializer_failure_breaks_process_pool),
        T(test_timeout_stops_only_its_worker),
        T(test_task_that_calls_exit),
        T(test_reuse_after_crashes),
        T(test_close_refused_while_work_remains),
        T(test_saturated_queue_on_many_threads),
    };
    return cmocka_run_group_tests_name("conformance", tests, NULL, NULL);
}
