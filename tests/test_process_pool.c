/*
 * test_process_pool.c - the process-pool executor: values, crashes, timeouts,
 * cancellation, large payloads, volume, initializers, recycling, shutdown,
 * and what is left behind (descriptors, children, orphans).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static int64_t arg_i(cf_task_t *t)
{
    size_t len;
    int64_t x;
    memcpy(&x, cf_task_arg(t, &len), sizeof(x));
    return x;
}

/* Open descriptors, not counting the one that reads /proc/self/fd. */
static int count_fds_now(void)
{
    return count_dir_entries("/proc/self/fd") - 1;
}

/* State letter of a process ('Z' zombie), 0 if it does not exist. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!p || !(p = strrchr(buf, ')')))
        return 0;
    return p[2];
}

static int count_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[300], buf[512], *p;
        FILE *f;
        int ppid;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        p = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (p && (p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
            n++;
    }
    closedir(d);
    return n;
}

/* Is `pid` gone (or a zombie about to be reaped by someone else)?  Bounded wait. */
static int gone_within(pid_t pid, double seconds)
{
    uint64_t deadline = cf_now_ns() + (uint64_t)(seconds * 1e9);

    while (cf_now_ns() < deadline) {
        char s = proc_state(pid);
        if (s == 0 || s == 'Z' || s == 'X')
            return 1;
        usleep(10000);
    }
    return 0;
}

static void tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)w;
    (void)revents;
}

/* Run the loop until the future is RUNNING (its worker acknowledged it); bounded. */
static void run_until_running(struct fixture *fx, cf_future_t *f)
{
    ev_timer t;
    uint64_t deadline = cf_now_ns() + 20 * 1000000000ull;

    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(fx->ev, &t);
    while (cf_future_get_state(f) == CF_FUTURE_PENDING && cf_now_ns() < deadline)
        ev_run(fx->ev, EVRUN_ONCE);
    ev_timer_stop(fx->ev, &t);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_RUNNING);
}

/* ------------------------------------------------------------------ tasks */

static int64_t fib(int64_t n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int t_fib(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_i64(t, fib(arg_i(t)));
    return 0;
}

static int t_square(cf_task_t *t, void *arg)
{
    int64_t x = arg_i(t);
    (void)arg;
    cf_task_set_i64(t, x * x);
    return 0;
}

static int t_crash(cf_task_t *t, void *arg)
{
    (void)arg;
    switch (arg_i(t)) {
    case 0:
        raise(SIGSEGV);
        break;
    case 1:
        abort();
    case 2:
        exit(3);
    default:
        pause(); /* killed from outside */
    }
    return 0;
}

static int t_getpid(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_i64(t, getpid());
    return 0;
}

static int t_pointer(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_result(t, malloc(8), free);
    return 0;
}

static int t_xor_bytes(cf_task_t *t, void *arg)
{
    size_t len;
    const uint8_t *in = cf_task_arg(t, &len);
    uint8_t *out = malloc(len ? len : 1);
    int rc;

    (void)arg;
    if (!out)
        return CF_ENOMEM;
    for (size_t i = 0; i < len; i++)
        out[i] = in[i] ^ 0x5a;
    rc = cf_task_set_bytes(t, out, len);
    free(out);
    return rc;
}

/* t_xor_bytes, but the argument must be 8-byte aligned (as a malloc'd one + 8 would be). */
static int t_aligned_xor(cf_task_t *t, void *arg)
{
    size_t len;
    const void *in = cf_task_arg(t, &len);

    if ((uintptr_t)in % 8 != 0)
        return CF_EINVAL;
    return t_xor_bytes(t, arg);
}

/* Writes its pid to the file named by its payload, then waits to be killed. */
static int t_pid_then_pause(cf_task_t *t, void *arg)
{
    size_t len;
    const char *path = cf_task_arg(t, &len);
    char tmp[300];
    FILE *f;

    (void)arg;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return cf_task_fail(t, CF_EFAIL, "cannot write %s", tmp);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    rename(tmp, path); /* appears whole */
    for (;;)
        pause();
    return 0;
}

/* Sleeps for its payload's milliseconds: a task that is short, but not
 * short enough to end while the loop polls for it. */
static int t_sleep_ms(cf_task_t *t, void *arg)
{
    (void)arg;
    usleep((useconds_t)(arg_i(t) * 1000));
    cf_task_set_i64(t, arg_i(t));
    return 0;
}

/* Returns once the file named by its payload exists (the test creates it). */
static int t_wait_file(cf_task_t *t, void *arg)
{
    size_t len;
    const char *path = cf_task_arg(t, &len);

    (void)arg;
    for (int i = 0; i < 20000 && access(path, F_OK) != 0; i++)
        usleep(1000);
    cf_task_set_i64(t, access(path, F_OK) == 0);
    return 0;
}

/* Read the pid a task wrote (bounded wait: the loop does not run meanwhile). */
static pid_t wait_for_pid_file(const char *path)
{
    uint64_t deadline = cf_now_ns() + 20 * 1000000000ull;
    int pid = 0;

    while (cf_now_ns() < deadline) {
        FILE *f = fopen(path, "r");
        if (f) {
            int ok = fscanf(f, "%d", &pid) == 1;
            fclose(f);
            if (ok && pid > 0)
                return pid;
        }
        usleep(2000);
    }
    return 0;
}

/* Forks a grandchild that waits forever, records its pid in a file, then spins. */
static int t_grandchild(cf_task_t *t, void *arg)
{
    size_t len;
    const char *path = cf_task_arg(t, &len);
    pid_t pid = fork();
    FILE *f;

    (void)arg;
    if (pid == 0) {
        for (;;)
            pause();
    }
    {
        char tmp[300];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "w");
        if (!f)
            return cf_task_fail(t, CF_EFAIL, "cannot write %s", tmp);
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
        rename(tmp, path); /* appears whole */
    }
    for (;;)
        pause();
    return 0;
}

/* Writes its worker's pid to the file named by its argument, then runs until stopped. */
static int t_pid_then_spin(cf_task_t *t, void *arg)
{
    size_t len;
    const char *path = cf_task_arg(t, &len);
    char tmp[300];
    FILE *f;

    (void)arg;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w")))
        return cf_task_fail(t, CF_EFAIL, "cannot write %s", tmp);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    rename(tmp, path); /* appears whole */
    return t_spin(t, arg);
}

/* Run the loop for `seconds` (a timer ends the wait). */
static void run_for(struct fixture *fx, double seconds)
{
    ev_timer t;
    uint64_t deadline = cf_now_ns() + (uint64_t)(seconds * 1e9);

    ev_timer_init(&t, tick, seconds, 0.);
    ev_timer_start(fx->ev, &t);
    while (cf_now_ns() < deadline && ev_is_active(&t))
        ev_run(fx->ev, EVRUN_ONCE);
    ev_timer_stop(fx->ev, &t);
}

/* ------------------------------------------------------------------ tests */

static void test_values_and_misuse(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f, *g, *h;
    int64_t v;

    cf_process_pool_opts_init(&o);
    o.max_workers = 0;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), CF_EINVAL);
    o.max_workers = 1;
    o.pipeline = 0;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), CF_EINVAL);

    p = ppool(fx, 2, 0.2);
    assert_int_equal(cf_process_pool_submit(p, NULL, NULL, 0, -1, &f), CF_EINVAL);
    assert_int_equal(cf_process_pool_submit(p, t_fib, NULL, 8, -1, &f), CF_EINVAL);
    assert_int_equal(cf_executor_submit(cf_process_pool_executor(p), t_fib, &v, NULL, &f), CF_ENOTSUP);
    assert_string_equal(cf_executor_kind(cf_process_pool_executor(p)), "process pool");
    f = submit_i(p, t_fib, 30, -1);
    g = submit_i(p, t_pointer, 0, -1);
    assert_int_equal(cf_future_set_i64(f, 1), CF_EPERM);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 832040);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_status(g), CF_ENOTSUP);
    assert_int_equal(cf_process_pool_shutdown(p, 0), 0);
    assert_int_equal(cf_process_pool_submit(p, t_fib, &v, sizeof(v), -1, &h), CF_ESHUTDOWN);
    assert_last_error("shut down");
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    cf_process_pool_free(p);
}

static void test_crashes_fail_only_their_task(void **state)
{
    struct fixture *fx = *state;
    static const char *want[] = {"killed by signal 11 (SIGSEGV)", "killed by signal 6 (SIGABRT)",
                                 "exited with status 3", "killed by signal 9 (SIGKILL)"};
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    char path[] = "/tmp/cf-worker-pid-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);
    for (int kind = 0; kind < 4; kind++) {
        cf_future_t *crash, *others[10];
        cf_worker_info before[2], after[2];
        char *msg;

        for (int i = 0; i < 2; i++)
            assert_int_equal(cf_process_pool_worker_info(p, i, &before[i]), 0);
        if (kind == 3)
            assert_int_equal(cf_process_pool_submit(p, t_pid_then_pause, path, sizeof(path), -1, &crash), 0);
        else
            crash = submit_i(p, t_crash, kind, -1);
        for (int i = 0; i < 10; i++)
            others[i] = submit_i(p, t_square, i, -1);
        if (kind == 3) {
            /* Killed from outside: the task tells us its worker's pid once it runs. */
            run_until_running(fx, crash);
            pid_t pid = wait_for_pid_file(path);
            assert_true(pid > 0);
            assert_int_equal(kill(pid, SIGKILL), 0);
        }
        assert_int_equal(cf_future_wait(crash, -1), 0);
        assert_int_equal(cf_future_status(crash), CF_EWORKER);
        msg = (char *)cf_future_error(crash);
        if (!strstr(msg, want[kind]) || !strstr(msg, "pid ") || !strstr(msg, "task"))
            fail_msg("kind %d: unexpected message '%s'", kind, msg);
        for (int i = 0; i < 10; i++) {
            int64_t v = -1;
            assert_int_equal(cf_future_wait(others[i], -1), 0);
            assert_int_equal(cf_future_result_i64(others[i], &v), 0);
            assert_int_equal(v, (int64_t)i * i);
            assert_int_equal(cf_future_unref(others[i]), 0);
        }
        assert_int_equal(cf_future_unref(crash), 0);
        /* The worker was replaced. */
        uint64_t restarts_before = before[0].restarts + before[1].restarts, restarts_after;
        for (int i = 0; i < 2; i++)
            assert_int_equal(cf_process_pool_worker_info(p, i, &after[i]), 0);
        restarts_after = after[0].restarts + after[1].restarts;
        assert_true(restarts_after > restarts_before);
    }
    unlink(path);
    /* The pool still works. */
    cf_future_t *f = submit_i(p, t_fib, 20, -1);
    int64_t v;
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 6765);
    assert_int_equal(cf_future_unref(f), 0);
    cf_process_pool_free(p);
}

/*
 * Short tasks are streamed: many are sent ahead to each worker.  A crash in
 * the middle of such a stream fails exactly the task that crashed; every task
 * sent ahead of it to the same worker runs again elsewhere (or on the
 * replacement) and completes with its own value.
 */
static void test_crash_in_a_deep_pipeline(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    enum { WARM = 2000, N = 400, BAD = 150 };
    cf_future_t *warm[WARM], *fs[N];

    /* Tiny tasks first, so that the pool measures them as short. */
    for (int i = 0; i < WARM; i++)
        warm[i] = submit_i(p, t_square, i, -1);
    for (int i = 0; i < WARM; i++) {
        assert_int_equal(cf_future_wait(warm[i], -1), 0);
        assert_int_equal(cf_future_status(warm[i]), 0);
        assert_int_equal(cf_future_unref(warm[i]), 0);
    }
    for (int i = 0; i < N; i++)
        fs[i] = i == BAD ? submit_i(p, t_crash, 0, -1) : submit_i(p, t_square, i, -1);
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        if (i == BAD) {
            assert_int_equal(cf_future_status(fs[i]), CF_EWORKER);
            assert_non_null(strstr(cf_future_error(fs[i]), "SIGSEGV"));
        } else {
            assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
            assert_int_equal(v, (int64_t)i * i);
        }
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    cf_pool_stats st;
    assert_int_equal(cf_process_pool_stats(p, &st), 0);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.completed, WARM + N - 1);
    cf_process_pool_free(p);
}

/* Worker initializer: the workers of this pool ignore SIGTERM. */
static int init_ignore_term(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    signal(SIGTERM, SIG_IGN);
    return 0;
}

static void test_timeouts_stop_the_worker(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2), *stubborn_pool;
    cf_process_pool_opts o;
    cf_future_t *spin = submit_i(p, t_spin, 0, 0.2);
    cf_future_t *stubborn, *after;
    int64_t v;

    /* Workers that ignore SIGTERM get SIGKILL after the grace period. */
    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.kill_grace = 0.2;
    o.initializer = init_ignore_term;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &stubborn_pool), 0);
    stubborn = submit_i(stubborn_pool, t_spin, 0, 0.2);

    assert_int_equal(cf_future_wait(spin, -1), 0);
    assert_int_equal(cf_future_wait(stubborn, -1), 0);
    assert_int_equal(cf_future_status(spin), CF_ETIMEDOUT);
    assert_non_null(strstr(cf_future_error(spin), "SIGTERM"));
    assert_int_equal(cf_future_status(stubborn), CF_ETIMEDOUT);
    assert_non_null(strstr(cf_future_error(stubborn), "SIGKILL"));
    after = submit_i(p, t_square, 12, -1);
    assert_int_equal(cf_future_wait(after, -1), 0);
    assert_int_equal(cf_future_result_i64(after, &v), 0);
    assert_int_equal(v, 144);
    assert_int_equal(cf_future_unref(spin), 0);
    assert_int_equal(cf_future_unref(stubborn), 0);
    assert_int_equal(cf_future_unref(after), 0);
    cf_process_pool_free(p);
    cf_process_pool_free(stubborn_pool);
}

static void test_timeout_kills_grandchildren(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char path[] = "/tmp/cf-grandchild-XXXXXX";
    int fd = mkstemp(path);
    cf_future_t *f;
    int pid = 0;

    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(cf_process_pool_submit(p, t_grandchild, path, sizeof(path), 3.0, &f), 0);
    run_until_running(fx, f);
    pid = wait_for_pid_file(path); /* the grandchild exists well before the deadline */
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_ETIMEDOUT);
    unlink(path);
    assert_true(pid > 0);
    assert_true(gone_within(pid, 10));
    assert_int_equal(cf_future_unref(f), 0);
    cf_process_pool_free(p);
}

static void test_cancel_running_and_queued(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    cf_future_t *running = submit_i(p, t_spin, 0, -1);
    cf_future_t *queued1 = submit_i(p, t_square, 2, -1);
    cf_future_t *queued2 = submit_i(p, t_square, 3, -1);
    cf_future_t *queued3 = submit_i(p, t_square, 4, -1);
    int64_t v;

    run_until_running(fx, running);
    assert_int_equal(cf_future_cancel(queued3), 0);
    assert_int_equal(cf_future_get_state(queued3), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_cancel(running), CF_EBUSY);
    assert_int_equal(cf_future_wait(running, -1), 0);
    assert_int_equal(cf_future_get_state(running), CF_FUTURE_CANCELLED);
    assert_int_equal(cf_future_wait(queued2, -1), 0);
    assert_int_equal(cf_future_result_i64(queued1, &v), 0);
    assert_int_equal(v, 4);
    assert_int_equal(cf_future_result_i64(queued2, &v), 0);
    assert_int_equal(v, 9);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_unref(running), 0);
    assert_int_equal(cf_future_unref(queued1), 0);
    assert_int_equal(cf_future_unref(queued2), 0);
    assert_int_equal(cf_future_unref(queued3), 0);
    cf_process_pool_free(p);
}

/*
 * Occupy a worker: `path` (a mkstemp template, rewritten) names a file that
 * does not exist; the returned task runs on a worker, waiting for the file,
 * until release_worker(path).
 */
static cf_future_t *hold_worker(struct fixture *fx, cf_process_pool_t *p, char *path)
{
    cf_future_t *f;
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, path, strlen(path) + 1, -1, &f), 0);
    run_until_running(fx, f);
    return f;
}

static void release_worker(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);

    assert_true(fd >= 0);
    close(fd);
}

/* A task cancelled after it was sent to a worker, behind a running one, must never run. */
static void test_cancel_task_sent_ahead(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char path[] = "/tmp/cf-go-XXXXXX";
    cf_future_t *a = hold_worker(fx, p, path), *b, *c;
    int64_t v = 0;

    b = submit_i(p, t_spin, 0, -1); /* sent ahead: the only worker is busy, none is starting */
    c = submit_i(p, t_square, 5, -1);
    assert_int_equal(cf_future_cancel(b), 0);
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_CANCELLED);
    release_worker(path);
    assert_int_equal(cf_future_wait(c, -1), 0);
    assert_int_equal(cf_future_result_i64(a, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cf_future_result_i64(c, &v), 0);
    assert_int_equal(v, 25);
    unlink(path);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_future_unref(c), 0);
    cf_process_pool_free(p);
}

/*
 * A task's ACK does not wake the pool, so the pool may not know yet that a
 * task started when the task's worker dies or the task is cancelled; both
 * must end as for a task known to run: a crash fails the task, naming it
 * as running (what the worker published is read after its pipe closes;
 * the task is not run again), and a cancel stops the worker.
 */
static void test_start_not_read_yet(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char path[] = "/tmp/cf-started-XXXXXX";
    int fd = mkstemp(path);
    cf_future_t *f;
    pid_t pid;

    assert_true(fd >= 0);
    close(fd);
    for (int cancel = 0; cancel < 2; cancel++) {
        cf_future_t *warm = submit_i(p, t_square, 2, -1);

        assert_int_equal(cf_future_wait(warm, -1), 0); /* a worker is ready: a task is sent when submitted */
        assert_int_equal(cf_future_unref(warm), 0);
        unlink(path);
        assert_int_equal(cf_process_pool_submit(p, t_pid_then_spin, path, sizeof(path), -1, &f), 0);
        pid = wait_for_pid_file(path); /* the task runs; the loop did not run since it was sent */
        assert_true(pid > 0);
        assert_int_equal(cf_future_get_state(f), CF_FUTURE_PENDING); /* its ACK is not read */
        if (cancel) {
            assert_int_equal(cf_future_cancel(f), CF_EBUSY);
        } else {
            assert_int_equal(kill(pid, SIGKILL), 0);
        }
        assert_int_equal(cf_future_wait(f, 20.0), 0);
        if (cancel) {
            assert_int_equal(cf_future_get_state(f), CF_FUTURE_CANCELLED);
            assert_non_null(strstr(cf_future_error(f), "cancelled while running"));
        } else {
            assert_int_equal(cf_future_status(f), CF_EWORKER);
            assert_non_null(strstr(cf_future_error(f), "SIGKILL"));
            assert_non_null(strstr(cf_future_error(f), "while running the task"));
        }
        assert_true(gone_within(pid, 10));
        assert_int_equal(cf_future_unref(f), 0);
    }
    unlink(path);
    cf_process_pool_free(p);
}

/*
 * A task's timeout counts from when it starts: a task with a short timeout
 * sent ahead behind a long one is not timed out while it waits, however
 * long that is, and a running one is.
 */
static void test_timeout_counts_from_the_start(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char path[] = "/tmp/cf-go-XXXXXX";
    cf_future_t *a = hold_worker(fx, p, path), *b, *c;
    int64_t v = 0;

    b = submit_i(p, t_square, 7, 0.05); /* sent ahead: waits behind `a` */
    c = submit_i(p, t_spin, 0, 0.05);
    run_for(fx, 0.3); /* six times b's timeout */
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_PENDING);
    assert_int_equal(cf_future_get_state(c), CF_FUTURE_PENDING);
    release_worker(path);
    assert_int_equal(cf_future_wait(b, -1), 0);
    assert_int_equal(cf_future_result_i64(b, &v), 0);
    assert_int_equal(v, 49);
    assert_int_equal(cf_future_result_i64(a, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cf_future_wait(c, -1), 0);
    assert_int_equal(cf_future_status(c), CF_ETIMEDOUT);
    unlink(path);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_future_unref(c), 0);
    cf_process_pool_free(p);
}

/*
 * After a stream of round trips, the loop polls the workers' rings before
 * it waits (pp_channel.c); a task that starts during the poll (its ACK is
 * read there) but ends after it must still wake the loop: the poll asks
 * for wake-ups again before the loop waits.  Then the other way round: a
 * round trip after long waits, and again a stream.  Every result arrives
 * (a lost wake-up would leave the wait to its timeout).
 */
static void test_poll_then_wait(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    int64_t v = 0;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++) {
            cf_future_t *f = submit_i(p, t_square, i, -1);
            assert_int_equal(cf_future_wait(f, 30.0), 0);
            assert_int_equal(cf_future_result_i64(f, &v), 0);
            assert_int_equal(v, (int64_t)i * i);
            assert_int_equal(cf_future_unref(f), 0);
        }
        for (int i = 0; i < 5; i++) {
            cf_future_t *f = submit_i(p, t_sleep_ms, 20 + round, -1);
            assert_int_equal(cf_future_wait(f, 30.0), 0);
            assert_int_equal(cf_future_result_i64(f, &v), 0);
            assert_int_equal(v, 20 + round);
            assert_int_equal(cf_future_unref(f), 0);
        }
    }
    cf_process_pool_free(p);
}

static void test_64_mib_in_and_out(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    size_t n = 64u << 20;
    uint8_t *buf = malloc(n);
    cf_future_t *f[2];
    const void *out;
    size_t len;

    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 31 + (i >> 12));
    /* Two at once: arguments and results cross in both directions together. */
    for (int k = 0; k < 2; k++)
        assert_int_equal(cf_process_pool_submit(p, t_xor_bytes, buf, n, -1, &f[k]), 0);
    for (int k = 0; k < 2; k++) {
        const uint8_t *o;
        size_t bad = 0;
        assert_int_equal(cf_future_wait(f[k], -1), 0);
        assert_int_equal(cf_future_result_bytes(f[k], &out, &len), 0);
        assert_int_equal(len, n);
        o = out;
        for (size_t i = 0; i < n; i++)
            bad += o[i] != (uint8_t)(buf[i] ^ 0x5a);
        assert_int_equal(bad, 0);
        assert_int_equal(cf_future_unref(f[k]), 0);
    }
    free(buf);
    cf_process_pool_free(p);
}

/*
 * Arguments and results of many sizes in one stream: odd lengths (frames that
 * leave the next argument unaligned in the worker's input buffer), and sizes
 * around and above the pool's 64 KiB read buffer (frames split across reads,
 * payloads read straight into their own buffer), between small ones decoded
 * in place.
 */
static void test_mixed_sizes_in_one_stream(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    static const size_t sizes[] = {0, 1, 3, 7, 8, 9, 61, 100, 4093, 65536 - 57, 65536 - 56, 65536, 65537, 200001, 5};
    enum { ROUNDS = 40 };
    size_t nsizes = sizeof(sizes) / sizeof(sizes[0]), n = ROUNDS * nsizes;
    cf_future_t **fs = calloc(n, sizeof(*fs));
    uint8_t *buf = malloc(200001);

    assert_non_null(fs);
    assert_non_null(buf);
    for (size_t i = 0; i < 200001; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cf_process_pool_submit(p, t_aligned_xor, buf, sizes[i % nsizes], -1, &fs[i]), 0);
    for (size_t i = 0; i < n; i++) {
        size_t want = sizes[i % nsizes], len, bad = 0;
        const void *out;

        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_status(fs[i]), 0);
        assert_int_equal(cf_future_result_bytes(fs[i], &out, &len), 0);
        assert_int_equal(len, want);
        for (size_t k = 0; k < len; k++)
            bad += ((const uint8_t *)out)[k] != (uint8_t)(buf[k] ^ 0x5a);
        assert_int_equal(bad, 0);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    free(buf);
    free(fs);
    cf_process_pool_free(p);
}

struct tally {
    long n, wrong;
};

static void tally_cb(cf_future_t *f, int status, void *data)
{
    struct tally *t = data;
    int64_t v = -1;

    t->n++;
    if (status || cf_future_result_i64(f, &v) || v < 0)
        t->wrong++;
}

static void test_100k_tiny_tasks_and_map(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    struct tally t = {0};
    int64_t xs[5000];
    cf_map_t *m;
    cf_map_result r;
    size_t k = 0;
    int rc;

    for (int64_t i = 0; i < 100000; i++) {
        cf_future_t *f = submit_i(p, t_square, i, -1);
        assert_int_equal(cf_future_on_done(f, tally_cb, &t, NULL), 0);
        assert_int_equal(cf_future_unref(f), 0);
    }
    ev_run(fx->ev, 0);
    assert_int_equal(t.n, 100000);
    assert_int_equal(t.wrong, 0);

    for (int i = 0; i < 5000; i++)
        xs[i] = i;
    assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), NULL, xs, 10, 8, NULL, &m), CF_EINVAL);
    cf_map_opts o;
    cf_map_opts_init(&o);
    o.chunksize = 37;
    extern int cf_test_square_item(cf_task_t *, const void *, size_t);
    assert_int_equal(cf_map_new_array(cf_process_pool_executor(p), cf_test_square_item, xs, 5000, 8, &o, &m), 0);
    while ((rc = cf_map_next(m, &r)) == 0) {
        assert_int_equal(r.index, k);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.i64, (int64_t)(k * k));
        k++;
    }
    assert_int_equal(rc, CF_EOF);
    assert_int_equal(k, 5000);
    cf_map_free(m);
    cf_process_pool_free(p);
}

int cf_test_square_item(cf_task_t *t, const void *item, size_t len);
int cf_test_square_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}

static int init_ok(void *pool_data, int index, void **worker_data)
{
    *worker_data = (void *)(intptr_t)(*(int *)pool_data + index);
    return 0;
}

static int init_fails(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    return CF_ENOMEM;
}

static int t_worker_data(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_i64(t, (int64_t)(intptr_t)cf_task_worker_data(t) - cf_task_worker_index(t));
    return 0;
}

static void test_initializers(void **state)
{
    struct fixture *fx = *state;
    static int base = 500;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f, *fs[5];
    int64_t v;

    cf_process_pool_opts_init(&o);
    o.max_workers = 2;
    o.initializer = init_ok;
    o.init_data = &base;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    f = submit_i(p, t_worker_data, 0, -1);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(cf_future_unref(f), 0);
    cf_process_pool_free(p);

    /* An initializer that keeps failing breaks the pool instead of looping. */
    o.initializer = init_fails;
    o.max_init_failures = 3;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    for (int i = 0; i < 5; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_status(fs[i]), CF_EBROKEN);
        assert_non_null(strstr(cf_future_error(fs[i]), "initializer"));
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_process_pool_submit(p, t_square, &v, sizeof(v), -1, &f), CF_EBROKEN);
    assert_last_error("process pool broken");
    cf_process_pool_free(p);
}

static void test_max_tasks_per_child(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *fs[9];
    int64_t pids[9];
    int distinct = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.max_tasks_per_child = 3;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    for (int i = 0; i < 9; i++)
        fs[i] = submit_i(p, t_getpid, 0, -1);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_result_i64(fs[i], &pids[i]), 0);
        assert_int_equal(cf_future_unref(fs[i]), 0);
        if (i == 0 || pids[i] != pids[i - 1])
            distinct++;
        if (i % 3)
            assert_int_equal(pids[i], pids[i - 1]);
    }
    assert_int_equal(distinct, 3);
    cf_process_pool_free(p);
}

static void test_crash_break_policy(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *crash, *rest[6], *f;
    int64_t v = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.on_crash = CF_CRASH_BREAK;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    crash = submit_i(p, t_crash, 0, -1);
    for (int i = 0; i < 6; i++)
        rest[i] = submit_i(p, t_square, i, -1);
    assert_int_equal(cf_future_wait(crash, -1), 0);
    assert_int_equal(cf_future_status(crash), CF_EWORKER);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(cf_future_wait(rest[i], -1), 0);
        assert_int_equal(cf_future_status(rest[i]), CF_EBROKEN);
        assert_int_equal(cf_future_unref(rest[i]), 0);
    }
    assert_int_equal(cf_process_pool_submit(p, t_square, &v, sizeof(v), -1, &f), CF_EBROKEN);
    assert_int_equal(cf_future_unref(crash), 0);
    cf_process_pool_free(p);
}

static void test_shutdown_paths(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    cf_future_t *fs[6], *spin;
    cf_pool_stats st;

    for (int i = 0; i < 6; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(cf_future_get_state(fs[i]), CF_FUTURE_FINISHED);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_process_pool_stats(p, &st), 0);
    assert_int_equal(st.workers, 0);
    assert_int_equal(st.completed, 6);
    cf_process_pool_free(p);

    p = ppool(fx, 1, 0.2);
    spin = submit_i(p, t_spin, 0, -1);
    for (int i = 0; i < 6; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    run_until_running(fx, spin);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_CANCEL | CF_SHUTDOWN_KILL | CF_SHUTDOWN_WAIT), 0);
    assert_int_equal(cf_future_get_state(spin), CF_FUTURE_CANCELLED);
    for (int i = 0; i < 6; i++) {
        cf_future_state s = cf_future_get_state(fs[i]);
        assert_true(s == CF_FUTURE_CANCELLED || s == CF_FUTURE_FINISHED);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_future_unref(spin), 0);
    cf_process_pool_free(p);
}

static void test_nothing_left_behind(void **state)
{
    struct fixture *fx = *state;
    int fds = count_fds_now(), children = count_children();
    cf_process_pool_t *p = ppool(fx, 3, 0.2);
    cf_future_t *f = submit_i(p, t_spin, 0, -1), *g = submit_i(p, t_square, 5, -1);

    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_true(count_children() > children);
    cf_process_pool_free(p); /* with a task still running */
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_CANCELLED);
    assert_int_equal(count_fds_now(), fds);
    assert_int_equal(count_children(), children);
    ev_run(fx->ev, 0);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
}

/* A process that creates a pool and dies: its fork server and workers must follow. */
static void test_parent_death_leaves_no_workers(void **state)
{
    int fds[2];
    pid_t child, pids[4];
    int status;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
        cf_loop_t *loop;
        cf_process_pool_t *p;
        cf_future_t *f[3];
        cf_process_pool_opts o;

        close(fds[0]);
        cf_loop_new(ev, &loop);
        cf_process_pool_opts_init(&o);
        o.max_workers = 3;
        if (cf_process_pool_new(loop, &o, &p))
            _exit(1);
        for (int i = 0; i < 3; i++) /* each worker busy: all are up */
            cf_process_pool_submit(p, t_spin, &(int64_t){0}, 8, -1, &f[i]);
        for (int i = 0; i < 3; i++)
            while (cf_future_get_state(f[i]) == CF_FUTURE_PENDING)
                ev_run(ev, EVRUN_ONCE);
        pids[0] = cf_process_pool_server_pid(p);
        for (int i = 0; i < 3; i++) {
            cf_worker_info wi;
            cf_process_pool_worker_info(p, i, &wi);
            pids[i + 1] = wi.pid;
        }
        if (write(fds[1], pids, sizeof(pids)) != (ssize_t)sizeof(pids))
            _exit(1);
        kill(getpid(), SIGKILL); /* die without any cleanup */
        _exit(1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
    close(fds[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    for (int i = 0; i < 4; i++) {
        assert_true(pids[i] > 0);
        if (!gone_within(pids[i], 10))
            fail_msg("process %d (%s) outlived its parent", (int)pids[i], i ? "worker" : "fork server");
    }
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static int t_big_alloc(cf_task_t *t, void *arg)
{
    size_t n = (size_t)arg_i(t);
    char *p = malloc(n);

    (void)arg;
    if (!p)
        return cf_task_fail(t, CF_ENOMEM, "malloc(%zu) failed", n);
    memset(p, 1, n);
    cf_task_set_i64(t, p[n - 1]);
    free(p);
    return 0;
}
#endif

static void test_memory_limit(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip(); /* sanitizers reserve terabytes of address space: RLIMIT_AS cannot apply */
#else
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *big, *small;
    int64_t v = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.max_memory = (size_t)1 << 30; /* far above what a worker needs, far below the big task */
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    big = submit_i(p, t_big_alloc, (int64_t)8 << 30, -1);
    small = submit_i(p, t_big_alloc, 1 << 20, -1);
    assert_int_equal(cf_future_wait(big, -1), 0);
    assert_int_equal(cf_future_wait(small, -1), 0);
    assert_int_equal(cf_future_status(big), CF_ENOMEM);
    assert_int_equal(cf_future_result_i64(small, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cf_future_unref(big), 0);
    assert_int_equal(cf_future_unref(small), 0);
    cf_process_pool_free(p);
#endif
}

static void test_worker_info_and_stats(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    cf_future_t *f = submit_i(p, t_square, 3, -1);
    cf_worker_info wi;
    cf_pool_stats st;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 2, &wi), CF_EINVAL);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(cf_process_pool_stats(p, &st), 0);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(st.completed, 1);
    assert_true(cf_process_pool_server_pid(p) > 0);
    assert_int_equal(cf_future_unref(f), 0);
    cf_process_pool_free(p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_values_and_misuse),
        T(test_crashes_fail_only_their_task),
        T(test_crash_in_a_deep_pipeline),
        T(test_timeouts_stop_the_worker),
        T(test_timeout_kills_grandchildren),
        T(test_cancel_running_and_queued),
        T(test_cancel_task_sent_ahead),
        T(test_start_not_read_yet),
        T(test_timeout_counts_from_the_start),
        T(test_poll_then_wait),
        T(test_64_mib_in_and_out),
        T(test_mixed_sizes_in_one_stream),
        T(test_100k_tiny_tasks_and_map),
        T(test_initializers),
        T(test_max_tasks_per_child),
        T(test_crash_break_policy),
        T(test_shutdown_paths),
        T(test_nothing_left_behind),
        cmocka_unit_test(test_parent_death_leaves_no_workers),
        T(test_worker_info_and_stats),
        T(test_memory_limit),
    };
    return cmocka_run_group_tests_name("process_pool", tests, NULL, NULL);
}
