/*
 * testutil.h - shared fixture and helpers for the cfutures cmocka tests.
 *
 * Every test gets a fresh non-default loop; teardown checks that the test left
 * nothing behind (cf_loop_close() succeeds only when every future, executor
 * and queued call is gone) and destroys the loop.
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

#endif /* CF_TESTUTIL_H */
