/*
 * test_remote.c - the remote executor against a real redis-server and real
 * cfworker processes.
 *
 * Each test starts its own redis-server on a free 127.0.0.1 port (no
 * persistence) and its own workers, and stops them all.  Conditions are
 * polled with generous bounds; no sleep stands for synchronisation.  Skipped
 * (exit 77) when redis-server is not installed.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cfutures.h>
#include <cfutures/remote.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REDIS_SERVER
#define REDIS_SERVER ""
#endif

/* The tasks (tests/remote/tasks.c, linked in: the client registers the same names). */

struct env {
    struct ev_loop *ev;
    cf_loop_t *loop;
    int port;
    pid_t redis;
    pid_t workers[8];
    int nworkers;
    cf_remote_pool_t *pool;
    char url[64];
    const char *queue;
    int fds_before;
    const char *worker_opt, *worker_val; /* one more cfworker option for the next worker_start() */
};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0), port;
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

/* A synchronous command on a fresh connection; NULL when Redis is not there. */
static redisReply *rcmd(int port, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    va_list ap;

    if (c && !c->err) {
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    if (c)
        redisFree(c);
    return r;
}

static void redis_start(struct env *e)
{
    char port[16];
    pid_t pid;
    snprintf(port, sizeof(port), "%d", e->port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", 1);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        dup2(null, 1);
        execl(REDIS_SERVER, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    e->redis = pid;
    for (int i = 0; i < 2000; i++) { /* up to 20 s */
        redisReply *r = rcmd(e->port, "PING");
        if (r) {
            freeReplyObject(r);
            return;
        }
        nap();
    }
    fail_msg("redis-server did not come up on port %d", e->port);
}

static void redis_stop(struct env *e, int sig)
{
    if (e->redis > 0) {
        kill(e->redis, sig);
        waitpid(e->redis, NULL, 0);
        e->redis = 0;
    }
}

static pid_t worker_start(struct env *e, const char *lib, const char *queue, const char *name, int procs,
                          const char *claim_idle)
{
    char p[16];
    pid_t pid;
    snprintf(p, sizeof(p), "%d", procs);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", 1);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(null, 1);
        if (!getenv("CF_TEST_VERBOSE"))
            dup2(null, 2);
        {
            char *argv[] = {"cfworker", "--redis", e->url,     "--queue",         (char *)queue,
                            "--tasks",  (char *)lib, "--procs", p, "--name", (char *)name, "--claim-idle",
                            (char *)claim_idle, (char *)e->worker_opt, (char *)e->worker_val, NULL};
            execv(CFWORKER, argv);
        }
        _exit(127);
    }
    e->workers[e->nworkers++] = pid;
    return pid;
}

/* Stop worker `pid` with `sig`; its exit status. */
static int worker_stop(struct env *e, pid_t pid, int sig)
{
    int st = -1;
    for (int i = 0; i < e->nworkers; i++)
        if (e->workers[i] == pid) {
            kill(pid, sig);
            waitpid(pid, &st, 0);
            e->workers[i] = 0;
        }
    return st;
}

/* Wait up to `secs` for worker `w` to exit on its own (else SIGKILL it); returns
 * what waitpid() returned (w, or 0 if it had to be killed) and its status in *st. */
static pid_t worker_reap(struct env *e, pid_t w, int secs, int *st)
{
    pid_t got = 0;
    for (int i = 0; i < secs * 100 && got == 0; i++) {
        got = waitpid(w, st, WNOHANG);
        if (got == 0)
            nap();
    }
    if (got == 0) {
        kill(w, SIGKILL);
        waitpid(w, st, 0);
    }
    for (int i = 0; i < e->nworkers; i++)
        if (e->workers[i] == w)
            e->workers[i] = 0;
    return got;
}

static int stray_keys(struct env *e, const char *queue);

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->fds_before = count_fds();
    e->port = free_port();
    snprintf(e->url, sizeof(e->url), "redis://127.0.0.1:%d", e->port);
    redis_start(e);
    e->ev = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(cf_loop_new(e->ev, &e->loop), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    int closed, fds, stray;

    if (e->redis > 0)
        kill(e->redis, SIGCONT); /* a test that froze it failed before it let it go */
    /* Processes first, so that nothing outlives a failed test. */
    for (int i = 0; i < e->nworkers; i++)
        if (e->workers[i] > 0)
            worker_stop(e, e->workers[i], SIGKILL);
    cf_remote_pool_free(e->pool);
    e->pool = NULL;
    stray = e->redis > 0 && e->queue ? stray_keys(e, e->queue) : 0;
    redis_stop(e, SIGTERM);
    ev_run(e->ev, EVRUN_NOWAIT);
    closed = cf_loop_close(e->loop);
    if (closed == 0)
        ev_loop_destroy(e->ev);
    fds = count_fds();
    assert_int_equal(closed, 0);
    assert_int_equal(fds, e->fds_before);
    assert_int_equal(stray, 0); /* the client's keys are gone, the rest expire */
    free(e);
    return 0;
}

static cf_executor_t *client(struct env *e, const char *queue, unsigned max_deliveries)
{
    cf_remote_opts o;
    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = queue;
    o.max_deliveries = max_deliveries;
    o.workers = 3;
    o.broker_timeout = 60;
    e->queue = queue;
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    return cf_remote_pool_executor(e->pool);
}

static int submit_i64(cf_executor_t *ex, cf_task_fn fn, int64_t x, cf_future_t **f)
{
    return cf_executor_submit_bytes(ex, fn, &x, sizeof(x), f);
}

static cf_task_fn task(const char *name)
{
    cf_any_fn fn = cf_fn_lookup(name);
    assert_non_null(fn);
    return (cf_task_fn)fn;
}

/* Keys left on the broker: the client's own, or others without a TTL (the queue stream excepted). */
static int stray_keys(struct env *e, const char *queue)
{
    redisReply *r = rcmd(e->port, "KEYS *");
    int n = 0;
    assert_non_null(r);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *ttl;
        if (strcmp(r->element[i]->str, queue) == 0)
            continue;
        ttl = rcmd(e->port, "TTL %s", r->element[i]->str);
        /* The client's own keys (result stream, presence) must be gone; others need a TTL. */
        if ((ttl && ttl->integer < 0) || strstr(r->element[i]->str, ":r:") || strstr(r->element[i]->str, ":c:")) {
            print_message("stray key: %s\n", r->element[i]->str);
            n++;
        }
        freeReplyObject(ttl);
    }
    freeReplyObject(r);
    return n;
}

/* ------------------------------------------------------------------ tests */

static void test_submit_map_as_completed(void **state)
{
    struct env *e = *state;
    const char *lib = TASKS_SO;
    cf_executor_t *ex;
    cf_future_t *fs[64];
    int64_t v;

    worker_start(e, lib, "q1", "w1", 2, "30");
    worker_start(e, lib, "q1", "w2", 2, "30");
    worker_start(e, lib, "q1", "w3", 2, "30");
    ex = client(e, "q1", 3);

    /* Plain submits, results by as-completed. */
    for (int i = 0; i < 64; i++)
        assert_int_equal(submit_i64(ex, task("rt_square"), i, &fs[i]), 0);
    {
        cf_as_completed_t *it;
        cf_future_t *f;
        size_t idx;
        int seen = 0;
        assert_int_equal(cf_as_completed_new(fs, 64, 60, &it), 0);
        while (cf_as_completed_next_index(it, &f, &idx) == 0) {
            assert_int_equal(cf_future_result_i64(f, &v), 0);
            assert_int_equal(v, (int64_t)(idx * idx));
            seen++;
        }
        assert_int_equal(seen, 64);
        cf_as_completed_free(it);
    }
    for (int i = 0; i < 64; i++)
        cf_future_unref(fs[i]);

    /* Bytes in, bytes out. */
    {
        cf_future_t *f;
        const void *d;
        size_t len;
        assert_int_equal(cf_executor_submit_bytes(ex, task("rt_reverse"), "abc\0def", 7, &f), 0);
        assert_int_equal(cf_future_wait(f, 60), 0);
        assert_int_equal(cf_future_result_bytes(f, &d, &len), 0);
        assert_int_equal(len, 7);
        assert_memory_equal(d, "fed\0cba", 7);
        cf_future_unref(f);
    }

    /* cf_map over 1,000,000 items in chunks of 10,000, spread over the 3
     * workers: every item comes back, in order, right. */
    {
        enum { N = 1000000 };
        int64_t *xs = malloc(N * sizeof(*xs));
        cf_map_opts mo;
        cf_map_t *m;
        cf_map_result r;
        size_t n = 0;
        for (int i = 0; i < N; i++)
            xs[i] = i;
        cf_map_opts_init(&mo);
        mo.chunksize = 10000;
        assert_int_equal(cf_map_new_array(ex, (cf_map_fn)cf_fn_lookup("rt_item"), xs, N, sizeof(int64_t), &mo, &m), 0);
        while (cf_map_next(m, &r) == 0) {
            assert_int_equal(r.status, 0);
            assert_int_equal(r.index, n);
            assert_int_equal(r.i64, 3 * (int64_t)n + 1);
            n++;
        }
        assert_int_equal(n, N);
        cf_map_free(m);

        /* The script layer's array map (the first 100,000 items). */
        enum { N2 = 100000 };
        double *out = malloc(N2 * sizeof(*out));
        assert_int_equal(cf_map_i64_f64(ex, (cf_fn_i64_f64)cf_fn_lookup("rt_half"), xs, N2, 0, out), 0);
        for (int i = 0; i < N2; i++)
            assert_true(out[i] == (double)i * 0.5);
        free(out);
        free(xs);
    }
    {
        cf_future_t *f;
        double d;
        assert_int_equal(cf_submit_i64_f64(ex, (cf_fn_i64_f64)cf_fn_lookup("rt_half"), 7, &f), 0);
        assert_int_equal(cf_future_wait(f, 60), 0);
        assert_int_equal(cf_future_result_f64(f, &d), 0);
        assert_true(d == 3.5);
        cf_future_unref(f);
    }
    cf_remote_pool_free(e->pool);
    e->pool = NULL;
    assert_int_equal(stray_keys(e, "q1"), 0);
}

static int unregistered(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 0;
}

static void test_unknown_task(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex = client(e, "q2", 3);
    cf_future_t *f = NULL;
    int64_t x = 1;

    /* Not registered in the client: refused at submit. */
    assert_int_equal(cf_executor_submit_bytes(ex, unregistered, &x, sizeof(x), &f), CF_EINVAL);
    assert_non_null(strstr(cf_last_error(), "not registered"));
    assert_null(f);
    /* Opaque pointers cannot travel. */
    assert_int_equal(cf_executor_submit(ex, task("rt_square"), &x, NULL, &f), CF_ENOTSUP);

    /* A worker with another task library: it lacks rt_sleep. */
    worker_start(e, TASKS_OTHER_SO, "q2", "other1", 1, "30");
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 1, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_status(f), CF_EINVAL);
    print_message("    error: %s\n", cf_future_error(f));
    assert_non_null(strstr(cf_future_error(f), "rt_sleep"));
    assert_non_null(strstr(cf_future_error(f), "other1"));
    assert_non_null(strstr(cf_future_error(f), "tasks_other"));
    cf_future_unref(f);
    /* rt_square it has. */
    assert_int_equal(submit_i64(ex, task("rt_square"), 9, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    {
        int64_t v;
        assert_int_equal(cf_future_result_i64(f, &v), 0);
        assert_int_equal(v, 81);
    }
    cf_future_unref(f);
}

/* XPENDING: the consumer holding a task, polled until one does. */
static int holder(struct env *e, const char *queue, char *name, size_t cap)
{
    for (int i = 0; i < 6000; i++) {
        redisReply *r = rcmd(e->port, "XPENDING %s cfw - + 10", queue);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
            snprintf(name, cap, "%s", r->element[0]->element[1]->str);
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
        ev_run(e->ev, EVRUN_NOWAIT);
        nap();
    }
    return -1;
}

/* Whether consumer `who` is one of worker `name`'s task processes ("NAME.K"). */
static int of_worker(const char *who, const char *name)
{
    size_t n = strlen(name);
    return strncmp(who, name, n) == 0 && who[n] == '.';
}

static void test_worker_killed(void **state)
{
    struct env *e = *state;
    pid_t w1 = worker_start(e, TASKS_SO, "q3", "k1", 1, "1");
    pid_t w2 = worker_start(e, TASKS_SO, "q3", "k2", 1, "1");
    cf_executor_t *ex = client(e, "q3", 3);
    cf_future_t *f;
    char who[64];
    int64_t v;

    assert_int_equal(submit_i64(ex, task("rt_sleep"), 1500, &f), 0);
    assert_int_equal(holder(e, "q3", who, sizeof(who)), 0);
    worker_stop(e, of_worker(who, "k1") ? w1 : w2, SIGKILL);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 1500);
    cf_future_unref(f);
}

static void test_poison(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex;
    cf_future_t *f;

    worker_start(e, TASKS_SO, "q4", "p1", 1, "1");
    worker_start(e, TASKS_SO, "q4", "p2", 1, "1");
    worker_start(e, TASKS_SO, "q4", "p3", 1, "1");
    ex = client(e, "q4", 2);
    assert_int_equal(cf_executor_submit_bytes(ex, task("rt_poison"), "", 0, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_status(f), CF_EWORKER);
    print_message("    error: %s\n", cf_future_error(f));
    assert_non_null(strstr(cf_future_error(f), "rt_poison"));
    assert_non_null(strstr(cf_future_error(f), "delivered 2 times"));
    cf_future_unref(f);
}

/* Poll `cmd` on `queue` (XPENDING ... cfw: its count; XLEN) until it says
 * `n` or more, running the loop meanwhile; 0, or -1 after a minute. */
static int await_count(struct env *e, const char *cmd, const char *queue, int n)
{
    for (int i = 0; i < 6000; i++) {
        redisReply *r = rcmd(e->port, strcmp(cmd, "XLEN") == 0 ? "XLEN %s" : "XPENDING %s cfw", queue);
        long long have = !r                                                ? 0
                         : r->type == REDIS_REPLY_INTEGER                  ? r->integer
                         : r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0]->integer
                                                                           : 0;
        freeReplyObject(r);
        if (have >= n)
            return 0;
        ev_run(e->ev, EVRUN_NOWAIT);
        nap();
    }
    return -1;
}

/* Entries consumer-held on `queue`, polled until there are `n`. */
static int held(struct env *e, const char *queue, int n)
{
    return await_count(e, "XPENDING", queue, n);
}

/* Wait until `n` entries are in the stream of `queue` (the client's XADDs sent). */
static int queued(struct env *e, const char *queue, int n)
{
    return await_count(e, "XLEN", queue, n);
}

/* A task that crashes its process fails alone with CF_EWORKER; the task its
 * process held behind it runs in the next process; the worker goes on. */
static void test_task_crash(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex;
    cf_future_t *slow, *crash, *after, *later;
    int64_t v;

    ex = client(e, "q18", 3);
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 300, &slow), 0);
    assert_int_equal(cf_executor_submit_bytes(ex, task("rt_crash"), "", 0, &crash), 0);
    assert_int_equal(submit_i64(ex, task("rt_square"), 7, &after), 0);
    assert_int_equal(queued(e, "q18", 3), 0); /* taken in one read: `after` is held behind the crash */
    worker_start(e, TASKS_SO, "q18", "x1", 1, "30");
    assert_int_equal(cf_future_wait(crash, 60), 0);
    assert_int_equal(cf_future_status(crash), CF_EWORKER);
    print_message("    error: %s\n", cf_future_error(crash));
    assert_non_null(strstr(cf_future_error(crash), "rt_crash"));
    assert_non_null(strstr(cf_future_error(crash), "x1"));
    assert_int_equal(cf_future_wait(slow, 60), 0);
    assert_int_equal(cf_future_result_i64(slow, &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(cf_future_wait(after, 60), 0);
    assert_int_equal(cf_future_result_i64(after, &v), 0);
    assert_int_equal(v, 49);
    assert_int_equal(submit_i64(ex, task("rt_square"), 8, &later), 0);
    assert_int_equal(cf_future_wait(later, 60), 0);
    assert_int_equal(cf_future_result_i64(later, &v), 0);
    assert_int_equal(v, 64);
    cf_future_unref(slow);
    cf_future_unref(crash);
    cf_future_unref(after);
    cf_future_unref(later);
}

/*
 * Cancel of a task the worker holds behind a running one (all three tasks
 * are in the stream before the worker starts, so its one process takes
 * them in one read; one alone would run at once and hold nothing behind
 * it).  The held task ends CANCELLED and never runs (rt_mark would leave
 * its file); the one behind it runs.  `crash`: the running task crashes its
 * process, whose successor takes over what it held; else it goes on
 * running, and the supervisor, which sees the cancel while the process is
 * busy, tells the process, whose own look at the cancel key would come
 * too late.
 */
static void cancel_held(struct env *e, const char *queue, int crash)
{
    cf_executor_t *ex;
    cf_future_t *running, *waiting, *after;
    char mark[64];
    int64_t v;

    snprintf(mark, sizeof(mark), "/tmp/cf-test-mark-%d", (int)getpid());
    unlink(mark);
    ex = client(e, queue, 3);
    assert_int_equal(submit_i64(ex, task(crash ? "rt_crash" : "rt_sleep"), crash ? 2500 : 3000, &running), 0);
    assert_int_equal(cf_executor_submit_bytes(ex, task("rt_mark"), mark, strlen(mark), &waiting), 0);
    assert_int_equal(submit_i64(ex, task("rt_square"), 6, &after), 0);
    assert_int_equal(queued(e, queue, 3), 0);
    worker_start(e, TASKS_SO, queue, crash ? "y1" : "z1", 1, "1");
    assert_int_equal(held(e, queue, 3), 0); /* all taken by the worker's one process */
    assert_int_equal(cf_future_cancel(waiting), CF_EBUSY);
    assert_int_equal(cf_future_wait(waiting, 60), 0);
    assert_int_equal(cf_future_get_state(waiting), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_wait(running, 60), 0);
    if (crash) {
        assert_int_equal(cf_future_status(running), CF_EWORKER);
    } else {
        assert_int_equal(cf_future_result_i64(running, &v), 0);
        assert_int_equal(v, 3000);
    }
    assert_int_equal(cf_future_wait(after, 60), 0);
    assert_int_equal(cf_future_result_i64(after, &v), 0);
    assert_int_equal(v, 36);
    assert_int_equal(access(mark, F_OK), -1); /* it never ran */
    cf_future_unref(running);
    cf_future_unref(waiting);
    cf_future_unref(after);
}

static void test_cancel_held(void **state)
{
    cancel_held(*state, "q19", 1);
}

static void test_cancel_held_same_process(void **state)
{
    cancel_held(*state, "q20", 0);
}

static void test_cancel(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex = client(e, "q5", 3);
    cf_future_t *queued, *running;
    char who[64];

    /* No worker yet: the task waits on the broker and is removed from there. */
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 10, &queued), 0);
    for (int i = 0; i < 6000; i++) { /* until the XADD was confirmed */
        redisReply *r = rcmd(e->port, "XLEN q5");
        int n = r ? (int)r->integer : 0;
        freeReplyObject(r);
        if (n == 1)
            break;
        ev_run(e->ev, EVRUN_NOWAIT);
        nap();
    }
    ev_run(e->ev, EVRUN_NOWAIT);
    assert_int_equal(cf_future_cancel(queued), CF_EBUSY);
    assert_int_equal(cf_future_wait(queued, 60), 0);
    assert_int_equal(cf_future_get_state(queued), CF_FUTURE_CANCELLED);
    cf_future_unref(queued);

    /* A running task: the worker stops it. */
    worker_start(e, TASKS_SO, "q5", "c1", 1, "1");
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 600000, &running), 0);
    assert_int_equal(holder(e, "q5", who, sizeof(who)), 0);
    assert_int_equal(cf_future_cancel(running), CF_EBUSY);
    assert_int_equal(cf_future_wait(running, 60), 0);
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_CANCELLED);
    cf_future_unref(running);
}

static void test_sigterm_drain(void **state)
{
    struct env *e = *state;
    pid_t w = worker_start(e, TASKS_SO, "q6", "d1", 1, "30");
    cf_executor_t *ex = client(e, "q6", 3);
    cf_future_t *f;
    char who[64];
    int64_t v;
    int st;

    assert_int_equal(submit_i64(ex, task("rt_sleep"), 500, &f), 0);
    assert_int_equal(holder(e, "q6", who, sizeof(who)), 0);
    st = worker_stop(e, w, SIGTERM); /* returns once it exited: after the task */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 500);
    cf_future_unref(f);
}

/* SIGTERM while the worker starts (its task library loading): a drain with
 * nothing taken, exit 0, not death by the signal. */
static void test_sigterm_at_start(void **state)
{
    struct env *e = *state;
    char fd[16], c;
    int p[2], st;
    pid_t w;

    assert_int_equal(pipe(p), 0);
    snprintf(fd, sizeof(fd), "%d", p[1]);
    setenv("CF_TEST_LOAD_FD", fd, 1);
    w = worker_start(e, TASKS_SO, "q17", "s1", 1, "30");
    unsetenv("CF_TEST_LOAD_FD");
    close(p[1]);
    assert_int_equal(read(p[0], &c, 1), 1); /* loading, in cfworker's main() */
    close(p[0]);
    st = worker_stop(e, w, SIGTERM);
    assert_false(WIFSIGNALED(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_redis_restart(void **state)
{
    struct env *e = *state;
    enum { N = 20000 };
    int64_t *xs = malloc(N * sizeof(*xs));
    cf_executor_t *ex;
    cf_map_opts mo;
    cf_map_t *m;
    cf_map_result r;
    size_t n = 0;

    worker_start(e, TASKS_SO, "q7", "r1", 1, "1");
    worker_start(e, TASKS_SO, "q7", "r2", 1, "1");
    ex = client(e, "q7", 3);
    for (int i = 0; i < N; i++)
        xs[i] = i;
    cf_map_opts_init(&mo);
    mo.chunksize = 100;
    assert_int_equal(cf_map_new_array(ex, (cf_map_fn)cf_fn_lookup("rt_item"), xs, N, sizeof(int64_t), &mo, &m), 0);
    while (cf_map_next(m, &r) == 0) {
        assert_int_equal(r.status, 0);
        assert_int_equal(r.index, n);
        assert_int_equal(r.i64, 3 * (int64_t)n + 1);
        n++;
        if (n == N / 4) { /* kill the broker mid-map, start a fresh one on the same port */
            redis_stop(e, SIGKILL);
            redis_start(e);
        }
    }
    assert_int_equal(cf_map_status(m), 0);
    assert_int_equal(n, N);
    cf_map_free(m);
    free(xs);
}

/* A task past its timeout fails with CF_ETIMEDOUT; an oversized payload is refused at submit. */
static void test_timeout_and_limits(void **state)
{
    struct env *e = *state;
    cf_remote_opts o;
    cf_future_t *f = NULL, *g;
    static char big[4096];
    int64_t v;

    worker_start(e, TASKS_SO, "q10", "t1", 1, "30");
    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = e->queue = "q10";
    o.task_timeout = 0.3;
    o.max_payload = 1024;
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    assert_int_equal(
        cf_executor_submit_bytes(cf_remote_pool_executor(e->pool), task("rt_reverse"), big, sizeof(big), &f), CF_E2BIG);
    assert_non_null(strstr(cf_last_error(), "max_payload"));
    assert_null(f);
    assert_int_equal(submit_i64(cf_remote_pool_executor(e->pool), task("rt_sleep"), 600000, &f), 0);
    assert_int_equal(submit_i64(cf_remote_pool_executor(e->pool), task("rt_square"), 5, &g), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_status(f), CF_ETIMEDOUT);
    assert_int_equal(cf_future_wait(g, 60), 0);
    assert_int_equal(cf_future_result_i64(g, &v), 0);
    assert_int_equal(v, 25);
    cf_future_unref(f);
    cf_future_unref(g);
}

/* More tasks than max_inflight: the rest wait locally, all complete. */
static void test_local_queue(void **state)
{
    struct env *e = *state;
    cf_remote_opts o;
    cf_future_t *fs[40];
    cf_pool_stats st;
    int64_t v;

    worker_start(e, TASKS_SO, "q8", "l1", 2, "30");
    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = e->queue = "q8";
    o.max_inflight = 3;
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(submit_i64(cf_remote_pool_executor(e->pool), task("rt_square"), i, &fs[i]), 0);
    assert_int_equal(cf_remote_pool_stats(e->pool, &st), 0);
    assert_true(st.queued >= 37 && st.running <= 3);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(cf_future_wait(fs[i], 60), 0);
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, (int64_t)i * i);
        cf_future_unref(fs[i]);
    }
    assert_int_equal(cf_remote_pool_stats(e->pool, &st), 0);
    assert_int_equal(st.completed, 40);
    assert_int_equal(st.queued + st.running, 0);
}

/* The broker goes away for good: outstanding tasks fail after broker_timeout, nothing hangs. */
static void test_broker_gone(void **state)
{
    struct env *e = *state;
    cf_remote_opts o;
    cf_future_t *f, *g;

    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = "q9";
    o.broker_timeout = 1;
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    assert_int_equal(submit_i64(cf_remote_pool_executor(e->pool), task("rt_square"), 3, &f), 0);
    for (int i = 0; i < 6000 && !cf_remote_pool_connected(e->pool); i++) {
        ev_run(e->ev, EVRUN_NOWAIT);
        nap();
    }
    assert_true(cf_remote_pool_connected(e->pool));
    redis_stop(e, SIGKILL);
    assert_int_equal(submit_i64(cf_remote_pool_executor(e->pool), task("rt_square"), 4, &g), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_wait(g, 60), 0);
    assert_int_equal(cf_future_status(f), -ENOTCONN);
    assert_int_equal(cf_future_status(g), -ENOTCONN);
    print_message("    error: %s\n", cf_future_error(f));
    assert_non_null(strstr(cf_future_error(f), "no connection to the broker"));
    cf_future_unref(f);
    cf_future_unref(g);
}

/* A client whose tasks carry their own claim idle (cf_remote_opts.claim_idle). */
static cf_executor_t *client_claim(struct env *e, const char *queue, unsigned max_deliveries, double claim_idle)
{
    cf_remote_opts o;
    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = queue;
    o.max_deliveries = max_deliveries;
    o.claim_idle = claim_idle;
    o.broker_timeout = 60;
    e->queue = queue;
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    return cf_remote_pool_executor(e->pool);
}

/* Workers whose own claim idle is an hour: the client's 1 s is what lets
 * another worker take over the task of one killed with -9. */
static void test_claim_idle_from_client(void **state)
{
    struct env *e = *state;
    pid_t w1 = worker_start(e, TASKS_SO, "q10", "c1", 1, "3600");
    pid_t w2 = worker_start(e, TASKS_SO, "q10", "c2", 1, "3600");
    cf_executor_t *ex = client_claim(e, "q10", 3, 1.0);
    cf_future_t *f;
    char who[64];
    int64_t v;

    assert_int_equal(submit_i64(ex, task("rt_sleep"), 1500, &f), 0);
    assert_int_equal(holder(e, "q10", who, sizeof(who)), 0);
    worker_stop(e, of_worker(who, "c1") ? w1 : w2, SIGKILL);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 1500);
    cf_future_unref(f);
}

/* A task running longer than the client's claim idle is heartbeated often
 * enough for it (not every hour/3, the workers' own): the idle worker does
 * not take it over, and with one delivery allowed it succeeds. */
static void test_claim_idle_heartbeat(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex;
    cf_future_t *f;
    int64_t v;

    worker_start(e, TASKS_SO, "q11", "h1", 1, "3600");
    worker_start(e, TASKS_SO, "q11", "h2", 1, "3600");
    ex = client_claim(e, "q11", 1, 5.0); /* heartbeats every 1.7 s: a 3 s stall is tolerated */
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 8000, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    if (cf_future_status(f) != 0)
        print_message("    error: %s\n", cf_future_error(f));
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 8000);
    cf_future_unref(f);
}

/* More pending entries than the claim script reads in one call (1000), all
 * held by a live consumer with an hour's claim idle: the task that a dead
 * consumer took after them is still found, claimed and run. */
static void test_claim_beyond_first_page(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex = client_claim(e, "q12", 3, 0.2);
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", e->port, tv);
    redisReply *r;
    cf_future_t *f;
    int64_t v;
    int got = 0;

    assert_true(c && !c->err);
    r = redisCommand(c, "XGROUP CREATE q12 cfw 0 MKSTREAM"); /* or the client made it: BUSYGROUP */
    freeReplyObject(r);
    for (int i = 0; i < 1200; i++)
        assert_int_equal(redisAppendCommand(c, "XADD q12 * a 3600000 p x"), REDIS_OK);
    for (int i = 0; i < 1200; i++) {
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    r = redisCommand(c, "XREADGROUP GROUP cfw alive COUNT 1200 STREAMS q12 >");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->element[1]->elements == 1200);
    freeReplyObject(r);
    /* The task, taken by a consumer that never runs it. */
    assert_int_equal(submit_i64(ex, task("rt_square"), 7, &f), 0);
    for (int i = 0; i < 2000 && !got; i++) { /* up to 20 s */
        cf_future_wait(f, 0.01);             /* runs the loop: the client sends the task */
        r = redisCommand(c, "XREADGROUP GROUP cfw dead COUNT 1 STREAMS q12 >");
        got = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
        freeReplyObject(r);
    }
    assert_true(got);
    redisFree(c);
    worker_start(e, TASKS_SO, "q12", "b1", 1, "3600");
    assert_int_equal(cf_future_wait(f, 60), 0);
    if (cf_future_status(f) != 0)
        print_message("    error: %s\n", cf_future_error(f));
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 49);
    cf_future_unref(f);
}

/* A worker asked to drain while its blocking read is out, whose broker then
 * goes away: it has nothing left to do and exits (it used to wait for the
 * read's reply, which never came, forever). */
static void test_drain_broker_gone(void **state)
{
    struct env *e = *state;
    pid_t w = worker_start(e, TASKS_SO, "q13", "g1", 1, "30");
    int st = -1, blocked = 0;
    pid_t got = 0;

    e->queue = "q13";
    for (int i = 0; i < 2000 && !blocked; i++) { /* up to 20 s: its XREADGROUP BLOCK is out */
        redisReply *r = rcmd(e->port, "CLIENT LIST");
        blocked = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cmd=xreadgroup") != NULL;
        freeReplyObject(r);
        if (!blocked)
            nap();
    }
    assert_true(blocked);
    /* SIGSTOP holds it there while the drain is asked and the broker goes. */
    kill(w, SIGSTOP);
    kill(w, SIGTERM);
    redis_stop(e, SIGKILL);
    kill(w, SIGCONT);
    got = worker_reap(e, w, 20, &st);
    assert_int_equal(got, w);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/*
 * A drain with a result it cannot post (the broker died while the task ran)
 * waits --broker-timeout seconds for the broker, then exits with status 3,
 * the task left pending there; without that bound it would wait for ever.
 */
static void test_drain_unposted_result(void **state)
{
    struct env *e = *state;
    cf_executor_t *ex;
    cf_future_t *f;
    char who[64];
    int st = -1;
    pid_t w, got = 0;

    e->worker_opt = "--broker-timeout";
    e->worker_val = "0.5";
    w = worker_start(e, TASKS_SO, "q14", "u1", 1, "30");
    ex = client(e, "q14", 3);
    assert_int_equal(submit_i64(ex, task("rt_sleep"), 1500, &f), 0);
    assert_int_equal(holder(e, "q14", who, sizeof(who)), 0);
    kill(w, SIGTERM);       /* the drain is asked while the task runs, */
    redis_stop(e, SIGKILL); /* then the broker goes */
    got = worker_reap(e, w, 30, &st);
    assert_int_equal(got, w);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    cf_future_unref(f);
}

/*
 * The broker freezes (SIGSTOP: its connections stay open, nothing is
 * answered).  The client's task fails after CF__RCONN_STALL + broker_timeout
 * instead of waiting for ever; a worker asked to drain meanwhile exits; once
 * the broker runs again the pool and the other worker carry on.
 */
static void test_broker_frozen(void **state)
{
    struct env *e = *state;
    pid_t w1 = worker_start(e, TASKS_SO, "q15", "z1", 1, "30"), w2;
    cf_remote_opts o;
    cf_executor_t *ex;
    cf_future_t *f;
    int64_t v = 0;
    int st = -1;
    pid_t got = 0;

    cf_remote_opts_init(&o);
    o.url = e->url;
    o.queue = "q15";
    o.broker_timeout = 2;
    e->queue = "q15";
    e->worker_opt = "--broker-timeout";
    e->worker_val = "1";
    w2 = worker_start(e, TASKS_SO, "q15", "z2", 1, "30");
    for (int i = 0, n = 0; n < 2; i++) { /* both workers read (a signal before z2's handler would kill it) */
        redisReply *r = rcmd(e->port, "CLIENT LIST");
        n = 0;
        for (const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : ""; (p = strstr(p, "cmd=xreadgroup")); p++)
            n++;
        freeReplyObject(r);
        assert_true(i < 6000); /* 60 s */
        if (n < 2)
            nap();
    }
    assert_int_equal(cf_remote_pool_new(e->loop, &o, &e->pool), 0);
    ex = cf_remote_pool_executor(e->pool);
    assert_int_equal(submit_i64(ex, task("rt_square"), 3, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 9);
    cf_future_unref(f);

    kill(e->redis, SIGSTOP);
    kill(w2, SIGTERM);
    assert_int_equal(submit_i64(ex, task("rt_square"), 4, &f), 0);
    assert_int_equal(cf_future_wait(f, 120), 0); /* about CF__RCONN_STALL + 2 s */
    assert_int_equal(cf_future_status(f), -ENOTCONN);
    print_message("    error: %s\n", cf_future_error(f));
    assert_non_null(strstr(cf_future_error(f), "answered nothing"));
    cf_future_unref(f);
    got = worker_reap(e, w2, 60, &st);
    assert_int_equal(got, w2);
    if (!WIFEXITED(st))
        print_message("    worker z2: status %#x\n", (unsigned)st);
    assert_true(WIFEXITED(st));
    /* 3 if the first task's result was still unconfirmed when the broker froze */
    assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3);

    kill(e->redis, SIGCONT);
    assert_int_equal(submit_i64(ex, task("rt_square"), 5, &f), 0);
    assert_int_equal(cf_future_wait(f, 60), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 25);
    cf_future_unref(f);
    assert_int_equal(WEXITSTATUS(worker_stop(e, w1, SIGTERM)), 0);
}

/*
 * The broker refuses: a database it does not have, a password it does not
 * take, a queue key that is not a stream.  A client's tasks fail after
 * broker_timeout with the broker's words, and cf_remote_pool_broker_error()
 * has them meanwhile; a worker says why (cf_remote_worker_broker_error())
 * and retries with backoff: it does not ask again as fast as the broker
 * answers.
 */
static void test_broker_refuses(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *cred, *db, *want;
    } cases[] = {
        {"", "/99", "refused SELECT: ERR DB index is out of range"},
        {":nopass@", "", "refused AUTH: "},
    };
    cf_remote_worker_opts wo;
    cf_remote_worker_t *w;
    redisReply *r;
    const char *why, *calls;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char url[96];
        cf_remote_opts o;
        cf_remote_pool_t *pool;
        cf_future_t *f;

        snprintf(url, sizeof(url), "redis://%s127.0.0.1:%d%s", cases[i].cred, e->port, cases[i].db);
        cf_remote_opts_init(&o);
        o.url = url;
        o.queue = "q10";
        o.broker_timeout = 1;
        assert_int_equal(cf_remote_pool_new(e->loop, &o, &pool), 0);
        assert_int_equal(submit_i64(cf_remote_pool_executor(pool), task("rt_square"), 3, &f), 0);
        assert_int_equal(cf_future_wait(f, 60), 0);
        assert_int_equal(cf_future_status(f), -ENOTCONN);
        print_message("    error: %s\n", cf_future_error(f));
        assert_non_null(strstr(cf_future_error(f), cases[i].want));
        assert_non_null(cf_remote_pool_broker_error(pool));
        assert_non_null(strstr(cf_remote_pool_broker_error(pool), cases[i].want));
        assert_int_equal(cf_remote_pool_connected(pool), 0);
        cf_future_unref(f);
        cf_remote_pool_free(pool);
    }

    freeReplyObject(rcmd(e->port, "SET q10s notastream"));
    freeReplyObject(rcmd(e->port, "CONFIG RESETSTAT"));
    cf_remote_worker_opts_init(&wo);
    wo.url = e->url;
    wo.queue = "q10s";
    wo.procs = 1;
    assert_int_equal(cf_remote_worker_new(e->loop, &wo, &w), 0);
    for (int i = 0; i < 150; i++) {
        ev_run(e->ev, EVRUN_NOWAIT);
        nap();
    }
    why = cf_remote_worker_broker_error(w);
    print_message("    worker: %s\n", why ? why : "(connected)");
    assert_non_null(why);
    assert_non_null(strstr(why, "WRONGTYPE"));
    r = rcmd(e->port, "INFO commandstats");
    assert_non_null(r);
    calls = strstr(r->str, "cmdstat_xreadgroup:calls=");
    print_message("    XREADGROUP calls: %s\n", calls ? calls + 25 : "0");
    assert_true(!calls || atol(calls + 25) < 20); /* refused at most once per retry, not in a loop */
    freeReplyObject(r);
    cf_remote_worker_free(w);
    freeReplyObject(rcmd(e->port, "DEL q10s"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_map_as_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_held_same_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_idle_from_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_idle_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_beyond_first_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_broker_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_unposted_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_frozen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_refuses, setup, teardown),
    };
    if (!*REDIS_SERVER || access(REDIS_SERVER, X_OK) != 0) {
        printf("SKIP: redis-server not found\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("CF_TEST_FILTER")) /* one test (or a glob of them) while working on it */
        cmocka_set_test_filter(getenv("CF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
