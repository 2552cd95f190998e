/*
 * test_faults.c - resource failures injected into the library's own calls.
 *
 * Linked with -Wl,--wrap for malloc, calloc, realloc, posix_memalign,
 * strdup, vasprintf, asprintf, open_memstream, mmap (the slab blocks),
 * pthread_create and the library's own slab allocator (cf__slab_alloc, the
 * source of every future and callback node).  One scenario drives the loop, futures, combinators,
 * timer and fd futures, map and the thread pool through their public API;
 * it runs again and again with the Nth wrapped call failing, for N = 1, 2,
 * ... until a run makes fewer than N calls, then with every Nth call
 * failing.  Every run must end with each API call either succeeding or
 * returning CF_ENOMEM / CF_EAGAIN (a refused thread), each future handed out
 * done, and the loop closing cleanly (cf_loop_close() refuses while a
 * future, executor or call is left) - and, under ASan, nothing leaked.
 *
 * The wrappers remember the distinct call sites (return addresses) they
 * served while armed; the test prints how many it reached and how many of
 * those it made fail (CF_FAULTS_VERBOSE=1 lists them as offsets in the
 * executable, for addr2line).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------ injection */

static atomic_int armed;
static atomic_long calls;    /* wrapped calls since arming */
static long fail_at;         /* fail call number fail_at (1-based); 0: none */
static long fail_every;      /* fail every fail_every-th call; 0: none */
static atomic_long injected; /* failures injected since arming */

/* A call site: the wrapped function's caller and that caller's caller, so a
 * helper (cf__printf_alloc(), the slab) called from two places counts twice. */
#define MAX_SITES 1024
static struct site {
    void *ret, *ret2;
    int failed;
} sites[MAX_SITES];
static int nsites;
static pthread_mutex_t sites_mu = PTHREAD_MUTEX_INITIALIZER;

static void note_site(void *ret, int failed)
{
    void *bt[12], *ret2 = NULL;
    int i, k = backtrace(bt, 12);

    for (i = 0; i + 1 < k; i++) {
        if (bt[i] == ret) {
            ret2 = bt[i + 1];
            break;
        }
    }
    pthread_mutex_lock(&sites_mu);
    for (i = 0; i < nsites && !(sites[i].ret == ret && sites[i].ret2 == ret2); i++)
        ;
    if (i == nsites && nsites < MAX_SITES) {
        sites[nsites].ret = ret;
        sites[nsites++].ret2 = ret2;
    }
    if (i < nsites && failed)
        sites[i].failed = 1;
    pthread_mutex_unlock(&sites_mu);
}

/* 1 when this call must fail. */
static int should_fail(void *ret)
{
    long n;
    int fail;

    if (!atomic_load(&armed))
        return 0;
    n = atomic_fetch_add(&calls, 1) + 1;
    fail = (fail_at && n == fail_at) || (fail_every && n % fail_every == 0);
    if (fail)
        atomic_fetch_add(&injected, 1);
    note_site(ret, fail);
    return fail;
}

#define RET __builtin_extract_return_addr(__builtin_return_address(0))

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
char *__real_strdup(const char *s);
int __real_vasprintf(char **s, const char *fmt, va_list ap);
FILE *__real_open_memstream(char **buf, size_t *size);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
struct cf__slab_cache;
void *__real_cf__slab_alloc(struct cf__slab_cache *c);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
char *__wrap_strdup(const char *s);
int __wrap_vasprintf(char **s, const char *fmt, va_list ap);
int __wrap_asprintf(char **s, const char *fmt, ...);
FILE *__wrap_open_memstream(char **buf, size_t *size);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
void *__wrap_cf__slab_alloc(struct cf__slab_cache *c);

void *__wrap_malloc(size_t size)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
    if (should_fail(RET))
        return ENOMEM;
    return __real_posix_memalign(p, align, size);
}

char *__wrap_strdup(const char *s)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

int __wrap_vasprintf(char **s, const char *fmt, va_list ap)
{
    if (should_fail(RET))
        return -1;
    return __real_vasprintf(s, fmt, ap);
}

int __wrap_asprintf(char **s, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (should_fail(RET))
        return -1;
    va_start(ap, fmt);
    rc = __real_vasprintf(s, fmt, ap);
    va_end(ap);
    return rc;
}

FILE *__wrap_open_memstream(char **buf, size_t *size)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_open_memstream(buf, size);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (should_fail(RET)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (should_fail(RET))
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

/* Futures and callback nodes come from the loop's slab caches, which call
 * mmap() only for a new block: the allocator itself is wrapped too. */
void *__wrap_cf__slab_alloc(struct cf__slab_cache *c)
{
    if (should_fail(RET))
        return NULL;
    return __real_cf__slab_alloc(c);
}

static void arm(long at, long every)
{
    fail_at = at;
    fail_every = every;
    atomic_store(&calls, 0);
    atomic_store(&injected, 0);
    atomic_store(&armed, 1);
}

static void disarm(void)
{
    atomic_store(&armed, 0);
}

/* ------------------------------------------------------------------ the scenario */

/* A call's result: success, or a resource failure (CF_EAGAIN: a refused thread, for cf_thread_pool_new() only). */
#define OK_OR_RESOURCE(rc)                                                                                             \
    do {                                                                                                               \
        int rc_ = (rc);                                                                                                \
        if (rc_ != 0 && rc_ != CF_ENOMEM)                                                                              \
            fail_msg("%s returned %s (%s) with call %ld failing", #rc, cf_err_name(rc_), cf_last_error(), fail_at);    \
    } while (0)

/*
 * A future's outcome under faults: a value, or a resource failure, or
 * cancelled as a consequence of one.  `lenient` futures come from work that
 * fails on purpose (failing tasks, a timeout, a broken pool): their own codes
 * are fine too.
 */
static void check_outcome(cf_future_t *f, const char *what, int lenient)
{
    int st = cf_future_status(f);

    if (st == CF_EPENDING)
        fail_msg("%s still pending after the loop ran out of work (call %ld failing)", what, fail_at);
    if (st == 0 || st == CF_ENOMEM || st == CF_ECANCELED)
        return;
    if (lenient && (st == CF_EFAIL || st == CF_ETIMEDOUT || st == CF_EBROKEN))
        return;
    fail_msg("%s ended with %s: %s (call %ld failing)", what, cf_err_name(st), cf_future_error(f), fail_at);
}

static int map_square(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;

    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}

static void free_nothing(void *p)
{
    (void)p;
}

/* A pointer with a destructor cannot cross a map: the item fails with a message. */
static int map_pointer(cf_task_t *t, const void *item, size_t len)
{
    (void)len;
    cf_task_set_result(t, (void *)item, free_nothing);
    return 0;
}

static int plus_one(cf_future_t *src, cf_future_t *dst, void *data)
{
    int64_t v = 0;

    (void)data;
    cf_future_result_i64(src, &v);
    return cf_future_set_i64(dst, v + 1);
}

static void on_done_count(cf_future_t *f, int status, void *data)
{
    (void)f;
    (void)status;
    (*(int *)data)++;
}

static void each_count(cf_future_t *f, size_t index, int status, void *data)
{
    (void)f;
    (void)index;
    (void)status;
    (*(int *)data)++;
}

static void call_count(cf_loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

#define MAXF 128

struct run {
    cf_future_t *fs[MAXF]; /* every future handed out, checked and released at the end */
    const char *what[MAXF];
    int lenient[MAXF];
    int n;
    int delivered; /* callbacks counted; outlives failing_work(), whose iteration may yield after it returns */
};

static void keep_as(struct run *r, cf_future_t *f, const char *what, int lenient)
{
    assert_true(r->n < MAXF);
    r->fs[r->n] = f;
    r->what[r->n] = what;
    r->lenient[r->n++] = lenient;
}

/* A future that must end with its value, CF_ENOMEM or CF_ECANCELED. */
static void keep(struct run *r, cf_future_t *f, const char *what)
{
    keep_as(r, f, what, 0);
}

/* A future of work that fails on purpose. */
static void keep_lenient(struct run *r, cf_future_t *f, const char *what)
{
    keep_as(r, f, what, 1);
}

static int task_bytes(cf_task_t *t, void *arg)
{
    size_t len = 0;
    const void *data = cf_task_arg(t, &len);

    (void)arg;
    return cf_task_set_bytes(t, data, len); /* CF_ENOMEM fails the task */
}

static int task_positive(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 3; /* a positive status: the task fails with a message saying so */
}

static int init_fails(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    return CF_EFAIL;
}

static int pull_five(void *src, const void **item, size_t *len)
{
    int64_t *next = src;
    static const int64_t values[5] = {10, 20, 30, 40, 50};

    if (*next >= 5)
        return 0;
    *item = &values[(*next)++];
    *len = sizeof(int64_t);
    return 1;
}

static int map_result_cb(cf_map_t *m, const cf_map_result *res, void *data)
{
    (void)m;
    if (res->status != 0 && res->status != CF_ENOMEM)
        fail_msg("map item %zu: %s (%s)", res->index, cf_err_name(res->status), res->error);
    (*(int *)data)++;
    return 0;
}

/*
 * The second half: work whose failures allocate messages - failing tasks,
 * bytes values, all/any/group over failures, a timeout, a pull map in
 * callback mode, a bounded pool, a pool whose initializer fails.
 */
static void failing_work(cf_loop_t *loop, struct run *r, cf_thread_pool_t **pools)
{
    cf_thread_pool_opts o;
    cf_future_t *in[4], *f, *never = NULL;
    int nin = 0, rc;
    int64_t pulled = 0;
    cf_map_t *m = NULL;
    cf_group_t *g = NULL;

    cf_thread_pool_opts_init(&o);
    o.max_workers = 1;
    o.max_queued = 1;
    o.on_full = CF_QUEUE_FULL_WAIT;
    rc = cf_thread_pool_new(loop, &o, &pools[0]);
    OK_OR_RESOURCE(rc == CF_EAGAIN ? 0 : rc);
    if (pools[0]) {
        for (int i = 0; i < 2; i++) {
            if (!(rc = cf_thread_pool_submit(pools[0], task_boom, (void *)(intptr_t)i, NULL, &f))) {
                keep_lenient(r, f, "failing task");
                in[nin++] = f;
            }
            OK_OR_RESOURCE(rc);
        }
        if (!(rc = cf_executor_submit_bytes(cf_thread_pool_executor(pools[0]), task_bytes, "hello", 5, &f))) {
            keep_lenient(r, f, "bytes task");
            in[nin++] = f;
        }
        OK_OR_RESOURCE(rc);
    }
    if (nin) {
        if (!(rc = cf_all(in, (size_t)nin, CF_CANCEL_REST, &f)))
            keep_lenient(r, f, "cf_all over failures");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_any(in, nin > 2 ? 2 : (size_t)nin, 0, &f)))
            keep_lenient(r, f, "cf_any over failures");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_timeout(in[0], 30, &f)))
            keep_lenient(r, f, "cf_timeout over a failure");
        OK_OR_RESOURCE(rc);
        rc = cf_group_new(loop, &g);
        OK_OR_RESOURCE(rc);
        for (int i = 0; g && i < nin; i++)
            OK_OR_RESOURCE(cf_group_add(g, in[i]));
        if (g && !(rc = cf_group_future(g, &f)))
            keep_lenient(r, f, "cf_group_future over failures");
        if (g)
            OK_OR_RESOURCE(rc);
        if (g) {
            rc = cf_group_wait(g, -1);
            if (rc != CF_EFAIL)
                OK_OR_RESOURCE(rc);
            cf_group_free(g);
            g = NULL;
        }
    }
    /* A task with a positive status; a failed promise with a message. */
    if (pools[0]) {
        if (!(rc = cf_thread_pool_submit(pools[0], task_positive, NULL, NULL, &f)))
            keep_lenient(r, f, "task with a positive status");
        OK_OR_RESOURCE(rc);
    }
    if (!(rc = cf_future_new(loop, &f))) {
        keep_lenient(r, f, "failed promise");
        OK_OR_RESOURCE(cf_future_set_error(f, CF_EFAIL, "failed on purpose (%d)", 42));
    }
    OK_OR_RESOURCE(rc);

    /* A group larger than one slot segment. */
    g = NULL;
    rc = cf_group_new(loop, &g);
    OK_OR_RESOURCE(rc);
    for (int i = 0; g && i < 65; i++) {
        if ((rc = cf_future_new(loop, &f)) == 0) {
            rc = cf_group_add(g, f);
            cf_future_set_i64(f, i);
            cf_future_unref(f);
        }
        OK_OR_RESOURCE(rc);
    }
    if (g) {
        rc = cf_group_wait(g, -1);
        if (rc != 0)
            OK_OR_RESOURCE(rc);
        cf_group_free(g);
    }

    rc = cf_future_new(loop, &never);
    OK_OR_RESOURCE(rc);
    if (never) {
        if (!(rc = cf_as_completed_each_index(&never, 1, 0, each_count, &r->delivered, NULL, &f)))
            keep_lenient(r, f, "cf_as_completed_each_index timing out");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_timeout(never, 0, &f)))
            keep_lenient(r, f, "cf_timeout expiring");
        else
            cf_future_cancel(never); /* nothing else would end it */
        OK_OR_RESOURCE(rc);
        keep_lenient(r, never, "promise under a timeout");
    }

    /* A pull map in callback mode. */
    if (pools[0]) {
        rc = cf_map_new(cf_thread_pool_executor(pools[0]), map_square, pull_five, &pulled, NULL, &m);
        OK_OR_RESOURCE(rc);
        if (m) {
            rc = cf_map_each(m, map_result_cb, &r->delivered, &f);
            OK_OR_RESOURCE(rc);
            if (!rc) {
                cf_future_wait(f, -1);
                keep_lenient(r, f, "cf_map_each");
            }
            cf_map_free(m);
            m = NULL;
        }
    }

    /* Items that fail with a message, and a map freed in flight. */
    if (pools[0]) {
        static const int64_t few[6] = {1, 2, 3, 4, 5, 6};
        cf_map_opts mo;
        cf_map_result res;
        cf_map_opts_init(&mo);
        mo.chunksize = 1;
        mo.on_error = CF_MAP_CONTINUE;
        rc = cf_map_new_array(cf_thread_pool_executor(pools[0]), map_pointer, few, 6, sizeof(few[0]), &mo, &m);
        OK_OR_RESOURCE(rc);
        if (m) {
            rc = cf_map_next(m, &res);
            if (rc == 0 && res.status != CF_ENOTSUP && res.status != CF_ENOMEM)
                fail_msg("an item that produced a pointer: %s (%s)", cf_err_name(res.status), res.error);
            else if (rc)
                OK_OR_RESOURCE(rc);
            cf_map_free(m);
            m = NULL;
        }
    }

    /* A pool whose initializer fails: it breaks, its tasks fail with a message. */
    cf_thread_pool_opts_init(&o);
    o.max_workers = 1;
    o.initializer = init_fails;
    rc = cf_thread_pool_new(loop, &o, &pools[1]);
    OK_OR_RESOURCE(rc == CF_EAGAIN ? 0 : rc);
    if (pools[1]) {
        rc = cf_thread_pool_submit(pools[1], task_noop, NULL, NULL, &f);
        if (rc == 0)
            keep_lenient(r, f, "task of a broken pool");
        else if (rc != CF_EBROKEN)
            OK_OR_RESOURCE(rc);
    }
}

static void scenario(void)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    struct run r = {.n = 0};
    cf_loop_t *loop = NULL;
    cf_thread_pool_t *pool = NULL, *pools[2] = {NULL, NULL};
    cf_thread_pool_opts o;
    cf_future_t *tasks[3], *f, *promise = NULL, *bytes = NULL;
    cf_as_completed_t *it = NULL;
    cf_group_t *g = NULL;
    cf_map_t *m = NULL;
    int ntasks = 0, callbacks = 0, rc, fds[2];
    static const int64_t items[7] = {1, 2, 3, 4, 5, 6, 7};

    assert_non_null(ev);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);

    arm(fail_at, fail_every);
    rc = cf_loop_new(ev, &loop);
    OK_OR_RESOURCE(rc);
    if (rc)
        goto out;

    /* Promises, values, messages, callbacks, cross-thread calls. */
    rc = cf_future_new(loop, &promise);
    OK_OR_RESOURCE(rc);
    rc = cf_future_new(loop, &bytes);
    OK_OR_RESOURCE(rc);
    if (bytes) {
        keep(&r, bytes, "bytes promise");
        OK_OR_RESOURCE(cf_future_set_bytes(bytes, "abc", 3));
        if (cf_future_get_state(bytes) == CF_FUTURE_PENDING)
            OK_OR_RESOURCE(cf_future_set_error(bytes, CF_ENOMEM, "could not store %d bytes", 3));
        OK_OR_RESOURCE(cf_future_on_done(bytes, on_done_count, &callbacks, NULL));
    }
    OK_OR_RESOURCE(cf_loop_call(loop, call_count, &callbacks));

    /* The thread pool. */
    cf_thread_pool_opts_init(&o);
    o.max_workers = 2;
    rc = cf_thread_pool_new(loop, &o, &pool);
    OK_OR_RESOURCE(rc == CF_EAGAIN ? 0 : rc);
    for (int i = 0; pool && i < 3; i++) {
        rc = cf_thread_pool_submit(pool, task_square, (void *)(intptr_t)(i + 2), NULL, &f);
        OK_OR_RESOURCE(rc);
        if (!rc) {
            tasks[ntasks++] = f;
            keep(&r, f, "task");
            OK_OR_RESOURCE(cf_future_on_done(f, on_done_count, &callbacks, NULL));
        }
    }

    /* Combinators over the tasks (or over promises when there is no pool). */
    if (ntasks) {
        if (!(rc = cf_all(tasks, (size_t)ntasks, 0, &f)))
            keep(&r, f, "cf_all");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_settled(tasks, (size_t)ntasks, &f)))
            keep(&r, f, "cf_settled");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_any(tasks, (size_t)ntasks, 0, &f)))
            keep(&r, f, "cf_any");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_wait_future(tasks, (size_t)ntasks, CF_ALL_COMPLETED, -1, &f)))
            keep(&r, f, "cf_wait_future");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_then(tasks[0], plus_one, NULL, NULL, 0, &f)))
            keep(&r, f, "cf_then");
        OK_OR_RESOURCE(rc);
        if (!(rc = cf_timeout(tasks[ntasks - 1], 30, &f)))
            keep(&r, f, "cf_timeout");
        OK_OR_RESOURCE(rc);
        if (promise) {
            rc = cf_future_adopt(promise, tasks[0]);
            OK_OR_RESOURCE(rc);
        }
        if (!(rc = cf_as_completed_each_index(tasks, (size_t)ntasks, -1, each_count, &callbacks, NULL, &f)))
            keep(&r, f, "cf_as_completed_each_index");
        OK_OR_RESOURCE(rc);
        rc = cf_group_new(loop, &g);
        OK_OR_RESOURCE(rc);
        for (int i = 0; g && i < ntasks; i++)
            OK_OR_RESOURCE(cf_group_add(g, tasks[i]));
        if (g && !(rc = cf_group_future(g, &f)))
            keep(&r, f, "cf_group_future");
        if (g)
            OK_OR_RESOURCE(rc);
        rc = cf_as_completed_new(tasks, (size_t)ntasks, -1, &it);
        OK_OR_RESOURCE(rc);
        for (int i = 0; it && i < ntasks; i++) {
            size_t index;
            rc = cf_as_completed_next_index(it, &f, &index);
            assert_int_equal(rc, 0);
            assert_ptr_equal(f, tasks[index]);
        }
    }

    /* Timer and fd futures. */
    if (!(rc = cf_sleep(loop, 0, &f)))
        keep(&r, f, "cf_sleep");
    OK_OR_RESOURCE(rc);
    if (!(rc = cf_fd_ready(loop, fds[0], EV_READ, &f)))
        keep(&r, f, "cf_fd_ready");
    OK_OR_RESOURCE(rc);

    /* A map on the pool, two items per chunk. */
    if (pool) {
        cf_map_opts mo;
        cf_map_result res;
        cf_map_opts_init(&mo);
        mo.chunksize = 2;
        rc = cf_map_new_array(cf_thread_pool_executor(pool), map_square, items, 7, sizeof(items[0]), &mo, &m);
        OK_OR_RESOURCE(rc);
        while (m && (rc = cf_map_next(m, &res)) == 0) {
            if (res.status == 0)
                assert_int_equal(res.i64, items[res.index] * items[res.index]);
            else if (res.status != CF_ENOMEM)
                fail_msg("map item %zu: %s (%s) with call %ld failing", res.index, cf_err_name(res.status), res.error,
                         fail_at);
        }
        if (m && rc != CF_EOF)
            OK_OR_RESOURCE(rc);
    }

    failing_work(loop, &r, pools);

    ev_run(ev, 0);
    disarm();

out:
    disarm();
    if (loop) {
        ev_run(ev, 0);
        if (m)
            cf_map_free(m);
        if (it)
            cf_as_completed_free(it);
        if (g)
            cf_group_free(g);
        if (pool)
            cf_thread_pool_free(pool);
        for (int i = 0; i < 2; i++)
            if (pools[i])
                cf_thread_pool_free(pools[i]);
        if (promise) {
            cf_future_cancel(promise);
            keep(&r, promise, "adopting promise");
        }
        ev_run(ev, 0);
        for (int i = 0; i < r.n; i++)
            check_outcome(r.fs[i], r.what[i], r.lenient[i]);
        for (int i = 0; i < r.n; i++)
            assert_int_equal(cf_future_unref(r.fs[i]), 0);
        ev_run(ev, 0);
        rc = cf_loop_close(loop);
        if (rc)
            fail_msg("cf_loop_close: %s with call %ld failing", cf_err_name(rc), fail_at);
    }
    ev_loop_destroy(ev);
    close(fds[0]);
    close(fds[1]);
}

/* ------------------------------------------------------------------ tests */

static void report_sites(const char *title)
{
    int failed = 0;

    for (int i = 0; i < nsites; i++)
        failed += sites[i].failed;
    printf("# %s: %d distinct call sites (caller, caller's caller) reached, %d of them made to fail\n", title, nsites,
           failed);
    if (getenv("CF_FAULTS_VERBOSE")) {
        for (int i = 0; i < nsites; i++) {
            Dl_info info;
            uintptr_t base = 0;
            if (dladdr(sites[i].ret, &info) && info.dli_fbase)
                base = (uintptr_t)info.dli_fbase;
            printf("#   0x%lx 0x%lx%s\n", (unsigned long)((uintptr_t)sites[i].ret - base),
                   (unsigned long)((uintptr_t)sites[i].ret2 - base), sites[i].failed ? "" : " (never failed)");
        }
    }
}

/* Fail call N, for every N the scenario reaches. */
static void test_each_call_fails_once(void **state)
{
    long n, clean_calls;
    void *warm[2];

    (void)state;
    backtrace(warm, 2); /* loads the unwinder before anything is armed */
    fail_every = 0;
    for (n = 1; n < 5000; n++) {
        fail_at = n;
        scenario();
        if (atomic_load(&calls) < n) /* nothing left to fail */
            break;
    }
    clean_calls = atomic_load(&calls);
    assert_true(n < 5000);
    assert_true(clean_calls > 20);
    printf("# a clean run makes %ld wrapped calls; %ld runs\n", clean_calls, n);
    report_sites("fail once");
}

/* Fail every Nth call: later steps run on top of earlier failures. */
static void test_every_nth_call_fails(void **state)
{
    (void)state;
    fail_at = 0;
    for (long every = 1; every <= 40; every++) {
        fail_every = every;
        scenario();
        assert_true(every > 1 || atomic_load(&injected) > 0);
    }
    fail_every = 0;
    report_sites("fail every Nth");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_call_fails_once),
        cmocka_unit_test(test_every_nth_call_fails),
    };
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
