/*
 * outside.c - a program outside the cfutures tree, built only with
 * `pkg-config --cflags --libs cfutures` against an installed copy.
 *
 * It attaches cfutures to its own non-default loop, submits 100,000 tasks,
 * checks that every done callback runs on the loop thread with the right
 * value, that ev_run() returns by itself, and that misuse returns errors.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NTASKS 100000

static pthread_t loop_thread;
static long callbacks, wrong_thread, wrong_value;

static int square(cf_task_t *task, void *arg)
{
    int64_t x = (int64_t)(intptr_t)arg;
    cf_task_set_i64(task, x * x);
    return 0;
}

static void done(cf_future_t *f, int status, void *data)
{
    int64_t x = (int64_t)(intptr_t)data, v = -1;

    callbacks++;
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    if (status != 0 || cf_future_result_i64(f, &v) != 0 || v != x * x)
        wrong_value++;
}

#define EXPECT(cond)                                                                                               \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            fprintf(stderr, "outside: %s:%d: expected %s\n", __FILE__, __LINE__, #cond);                           \
            return 1;                                                                                              \
        }                                                                                                          \
    } while (0)

int main(void)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    cf_loop_t *loop;
    cf_thread_pool_t *pool;
    cf_thread_pool_opts o;
    cf_future_t *f;

    EXPECT(ev != NULL);
    EXPECT(cf_loop_new(ev, &loop) == 0);
    loop_thread = pthread_self();

    cf_thread_pool_opts_init(&o);
    o.max_workers = 0;
    EXPECT(cf_thread_pool_new(loop, &o, &pool) == CF_EINVAL);
    o.max_workers = -1;
    EXPECT(cf_thread_pool_new(loop, &o, &pool) == CF_EINVAL);
    EXPECT(cf_thread_pool_new(loop, NULL, &pool) == 0);
    EXPECT(cf_thread_pool_submit(pool, NULL, NULL, NULL, &f) == CF_EINVAL);

    for (intptr_t i = 0; i < NTASKS; i++) {
        EXPECT(cf_thread_pool_submit(pool, square, (void *)i, NULL, &f) == 0);
        EXPECT(cf_future_on_done(f, done, (void *)i, NULL) == 0);
        EXPECT(cf_future_unref(f) == 0);
    }
    ev_run(ev, 0); /* returns by itself once every task is done */
    printf("outside: %ld callbacks, %ld on another thread, %ld wrong values\n", callbacks, wrong_thread,
           wrong_value);
    EXPECT(callbacks == NTASKS && wrong_thread == 0 && wrong_value == 0);

    EXPECT(cf_thread_pool_shutdown(pool, 0) == 0);
    EXPECT(cf_thread_pool_submit(pool, square, NULL, NULL, &f) == CF_ESHUTDOWN);
    cf_thread_pool_free(pool);
    EXPECT(cf_loop_close(loop) == 0);
    ev_loop_destroy(ev);
    printf("outside: ok (%s)\n", cf_version());
    return 0;
}
