/*
 * test_pp_syscalls.c - system-call failures injected into the process pool
 * with -Wl,--wrap (the library is linked statically into this test).
 *
 * Each wrapper fails its n-th call from now (fail_in(), counted in this
 * process; a fork server or worker forked while a countdown runs inherits
 * it, which is how failures reach the fork server's own calls) with the
 * errno given, then passes every call through.  Each test checks that the
 * failure returns an error or fails only what it touches, leaks no
 * descriptor or process, and that the pool then works or broke cleanly.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum { W_FORK, W_SOCKETPAIR, W_PIPE2, W_MMAP, W_SENDMSG, W_READ, W_RECVMSG, W_SEND, W_N };

static int countdown[W_N]; /* > 0: fail when it reaches 0 */
static int fail_errno[W_N];

static void fail_in(int which, int n, int err)
{
    countdown[which] = n;
    fail_errno[which] = err;
}

static int should_fail(int which)
{
    if (countdown[which] > 0 && --countdown[which] == 0) {
        errno = fail_errno[which];
        return 1;
    }
    return 0;
}

pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __wrap_fork(void)
{
    return should_fail(W_FORK) ? -1 : __real_fork();
}

int __real_socketpair(int d, int type, int proto, int sv[2]);
int __wrap_socketpair(int d, int type, int proto, int sv[2]);
int __wrap_socketpair(int d, int type, int proto, int sv[2])
{
    return should_fail(W_SOCKETPAIR) ? -1 : __real_socketpair(d, type, proto, sv);
}

int __real_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags)
{
    return should_fail(W_PIPE2) ? -1 : __real_pipe2(fds, flags);
}

void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    return should_fail(W_MMAP) ? MAP_FAILED : __real_mmap(a, n, prot, flags, fd, off);
}

ssize_t __real_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags)
{
    return should_fail(W_SENDMSG) ? -1 : __real_sendmsg(fd, m, flags);
}

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    return should_fail(W_READ) ? -1 : __real_read(fd, buf, n);
}

ssize_t __real_recvmsg(int fd, struct msghdr *m, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *m, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *m, int flags)
{
    return should_fail(W_RECVMSG) ? -1 : __real_recvmsg(fd, m, flags);
}

ssize_t __real_send(int fd, const void *buf, size_t n, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags)
{
    return should_fail(W_SEND) ? -1 : __real_send(fd, buf, n, flags);
}

/* ------------------------------------------------------------------ helpers */

static int t_square(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t x;

    (void)arg;
    memcpy(&x, cf_task_arg(t, &len), sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}

static int count_fds_now(void)
{
    return count_dir_entries("/proc/self/fd") - 1;
}

static cf_process_pool_t *pool_of(struct fixture *fx, int workers)
{
    cf_process_pool_opts o;
    cf_process_pool_t *p;

    cf_process_pool_opts_init(&o);
    o.max_workers = workers;
    o.kill_grace = 0.2;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    return p;
}

/* n tasks through the pool, each with its value. */
static void run_tasks(cf_process_pool_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        cf_future_t *f;
        int64_t x = i, v = -1;

        assert_int_equal(cf_process_pool_submit(p, t_square, &x, sizeof(x), -1, &f), 0);
        assert_int_equal(cf_future_wait(f, -1), 0);
        if (cf_future_result_i64(f, &v) != 0)
            fail_msg("task %d: %s", i, cf_future_error(f));
        assert_int_equal(v, (int64_t)i * i);
        assert_int_equal(cf_future_unref(f), 0);
    }
}

static void reset(void)
{
    memset(countdown, 0, sizeof(countdown));
}

/* ------------------------------------------------------------------ creation */

static void test_new_fails_cleanly(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        int which, err, want;
    } cases[] = {
        {W_MMAP, ENOMEM, CF_ENOMEM},
        {W_SOCKETPAIR, EMFILE, -EMFILE},
        {W_FORK, EAGAIN, -EAGAIN},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        cf_process_pool_t *p = NULL;
        int fds = count_fds_now();

        fail_in(cases[k].which, 1, cases[k].err);
        assert_int_equal(cf_process_pool_new(fx->loop, NULL, &p), cases[k].want);
        assert_null(p);
        reset();
        assert_int_equal(count_fds_now(), fds);
    }
    /* And then it works. */
    cf_process_pool_t *p = pool_of(fx, 1);
    run_tasks(p, 3);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ the fork server's calls */

/* The fork server cannot make a worker's channel or process for a while: retried, then fine. */
static void test_spawn_failures_in_the_server_are_retried(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        int which, n, err;
    } cases[] = {
        /* The parent makes the control pair (call 1); the server's first spawn makes the next. */
        {W_SOCKETPAIR, 2, EMFILE},
        {W_PIPE2, 1, ENFILE},
        /* The parent forks the server (call 1); the server's first fork of a worker is call 2. */
        {W_FORK, 2, EAGAIN},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int fds = count_fds_now();
        cf_process_pool_t *p;
        cf_worker_info wi;

        fail_in(cases[k].which, cases[k].n, cases[k].err);
        p = pool_of(fx, 1);
        reset(); /* the server has its own copy of the countdown */
        run_tasks(p, 3);
        assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
        assert_int_equal(wi.start_failures, 1);
        cf_process_pool_free(p);
        assert_int_equal(count_fds_now(), fds);
    }
}

/* ------------------------------------------------------------------ the parent's channel calls */

/* sendmsg fails (ENOBUFS): the worker is replaced, the task runs on the next one. */
static void test_sendmsg_failure(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = pool_of(fx, 1);
    int fds;

    run_tasks(p, 1); /* the worker is up */
    fds = count_fds_now();
    fail_in(W_SENDMSG, 1, ENOBUFS);
    run_tasks(p, 3);
    reset();
    assert_int_equal(count_fds_now(), fds);
    cf_process_pool_free(p);
}

/*
 * A worker the pool itself stopped (here: its channel could not be
 * written) did not die of the task being delivered: with
 * max_delivery_deaths 1 the task still runs on the next worker.
 */
static void test_pool_caused_death_is_no_delivery_death(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_worker_info wi;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.kill_grace = 0.2;
    o.max_delivery_deaths = 1;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    run_tasks(p, 1);
    fail_in(W_SENDMSG, 1, ENOBUFS);
    run_tasks(p, 3);
    reset();
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(wi.restarts, 1);
    cf_process_pool_free(p);
}

/* read of a worker's pipe fails (EIO): the worker is replaced, nothing is lost. */
static void test_read_failure(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = pool_of(fx, 1);
    int fds;

    cf_future_t *f;
    int64_t x = 5, v = 0;

    run_tasks(p, 1);
    fds = count_fds_now();
    fail_in(W_READ, 1, EIO);
    assert_int_equal(cf_process_pool_submit(p, t_square, &x, sizeof(x), -1, &f), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    if (cf_future_status(f) == 0) { /* the failed read was the ACK's: the task ran on the next worker */
        assert_int_equal(cf_future_result_i64(f, &v), 0);
        assert_int_equal(v, 25);
    } else { /* it was the RESULT's: the task fails, saying what happened */
        assert_int_equal(cf_future_status(f), CF_EWORKER);
        assert_non_null(strstr(cf_future_error(f), "could not read its channel"));
    }
    assert_int_equal(cf_future_unref(f), 0);
    run_tasks(p, 3);
    reset();
    assert_int_equal(count_fds_now(), fds);
    cf_process_pool_free(p);
}

/* recvmsg on the control socket fails for want of memory: the message waits, nothing breaks. */
static void test_ctl_recvmsg_enomem(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    pid_t server;

    fail_in(W_RECVMSG, 1, ENOMEM); /* the first SPAWNED */
    p = pool_of(fx, 1);
    server = cf_process_pool_server_pid(p);
    run_tasks(p, 3);
    reset();
    assert_int_equal(cf_process_pool_server_pid(p), server); /* the same fork server */
    cf_process_pool_free(p);
}

/* The SPAWN request cannot be sent (ENOBUFS): retried, not lost. */
static void test_spawn_request_not_sent(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_worker_info wi;

    fail_in(W_SEND, 1, ENOBUFS);
    p = pool_of(fx, 1);
    run_tasks(p, 3);
    reset();
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(wi.start_failures, 1);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ the fork server's reports */

/* n tasks through the pool, each bounded: a slot stuck for want of a report fails instead of hanging. */
static void run_tasks_bounded(cf_process_pool_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        cf_future_t *f;
        int64_t x = i, v = -1;

        assert_int_equal(cf_process_pool_submit(p, t_square, &x, sizeof(x), -1, &f), 0);
        if (cf_future_wait(f, 30) != 0) {
            cf_future_unref(f);
            cf_process_pool_free(p); /* so that the teardown does not wait for it */
            fail_msg("task %d never completed: a worker slot is stuck", i);
        }
        if (cf_future_result_i64(f, &v) != 0)
            fail_msg("task %d: %s", i, cf_future_error(f));
        assert_int_equal(v, (int64_t)i * i);
        assert_int_equal(cf_future_unref(f), 0);
    }
}

/* The fork server's SPAWNED report meets a kernel out of buffers: it is sent again, not lost. */
static void test_spawned_report_not_lost(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    int fds = count_fds_now();

    fail_in(W_SENDMSG, 1, ENOBUFS); /* the fork server's first sendmsg: SPAWNED */
    p = pool_of(fx, 1);
    reset(); /* the parent's own sendmsg calls pass */
    run_tasks_bounded(p, 3);
    cf_process_pool_free(p);
    assert_int_equal(count_fds_now(), fds);
}

/* The EXITED report of a dead worker meets a kernel out of memory: sent again, the slot is respawned. */
static void test_exited_report_not_lost(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_worker_info wi;
    int fds = count_fds_now();

    fail_in(W_SENDMSG, 2, ENOMEM); /* the fork server's second sendmsg: EXITED of the first worker */
    p = pool_of(fx, 1);
    reset();
    run_tasks_bounded(p, 1);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(kill(wi.pid, SIGKILL), 0);
    run_tasks_bounded(p, 3);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(wi.restarts, 1);
    cf_process_pool_free(p);
    assert_int_equal(count_fds_now(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_fails_cleanly),  T(test_spawn_failures_in_the_server_are_retried),
        T(test_sendmsg_failure),    T(test_pool_caused_death_is_no_delivery_death),
        T(test_read_failure),
        T(test_ctl_recvmsg_enomem), T(test_spawn_request_not_sent),
        T(test_spawned_report_not_lost), T(test_exited_report_not_lost),
    };
    alarm(300); /* a hang fails the run instead of stalling it */
    return cmocka_run_group_tests_name("pp_syscalls", tests, NULL, NULL);
}
