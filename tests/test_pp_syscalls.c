/*
 * test_pp_syscalls.c - system-call failures injected into the process pool
 * with -Wl,--wrap (the library is linked statically into this test).
 *
 * Each wrapper fails its n-th call from now, either counted in this process
 * (fail_in(); a fork server or worker forked while a countdown runs
 * inherits its own copy, which is how failures reach the fork server's
 * first calls) or counted over every process of one kind - the test, the
 * fork server or the workers - in a shared mapping (fail_in_role()), so
 * that exactly one call fails.  Each test checks that the failure returns
 * an error or fails only what it touches, leaks no descriptor or process,
 * and that the pool then works or broke cleanly, saying why.
 *
 * THE CALL SITES THAT CAN FAIL, and how each is covered.  "wrap" = a
 * failure injected here (test named); "other" = covered by another test;
 * "argued" = why the call cannot fail, or why its failure needs nothing.
 * close() is not listed: on Linux it always releases the descriptor.
 *
 * Parent (the application's process)
 *   pp_pool.c
 *    1 calloc(pool)                 wrap  test_parent_allocation_failures
 *    2 calloc(workers)              wrap  test_parent_allocation_failures
 *    3 mmap(gates)                  wrap  test_new_fails_cleanly
 *    4 socketpair(ctl)              wrap  test_new_fails_cleanly, test_server_restart_fails
 *    5 fork(fork server)            wrap  test_new_fails_cleanly, test_server_restart_fails
 *    6 fcntl(ctl, O_NONBLOCK)       argued: F_GETFL/F_SETFL on a descriptor just made fail only with EBADF
 *    7 malloc(task)                 wrap  test_parent_allocation_failures (submit: CF_ENOMEM)
 *    8 cf__future_alloc (slab)      wrap  test_parent_allocation_failures (submit: CF_ENOMEM)
 *    9 strdup(message), fail_queue  wrap  test_parent_allocation_failures (scenario 1: a NULL message)
 *   10 vasprintf, "pool freed while the task was running"
 *                                   wrap  test_parent_allocation_failures (scenario 2)
 *   11 shutdown(SHUT_WR) x3         argued: on a connected socket only ENOTCONN (the worker is gone:
 *                                   its pipe says so)
 *   12 waitpid(fork server), free   argued: EINTR is retried; ECHILD (reaped by someone else) leaves
 *                                   nothing to do
 *   13 munmap(gates)                argued: the exact mapping made at creation
 *   65 timerfd_create(ACK tick)     wrap  test_new_fails_cleanly
 *   pp_channel.c
 *   14 kill(pid), kill(-pid)        argued: only ESRCH (already gone)
 *   15 sendmsg(TASK frames)         wrap  test_sendmsg_failure, test_pool_caused_death_is_no_delivery_death
 *                                   (ENOBUFS); EAGAIN: test_pp_faults' full-channel tests; EPIPE/ECONNRESET
 *                                   happen only once the worker is gone, which its pipe reports
 *   16 read(worker pipe)            wrap  test_read_failure (EIO)
 *   17 malloc(read buffer)          wrap  test_parent_allocation_failures (retried on the next readiness)
 *   18 frame reader, payload malloc wrap  test_parent_allocation_failures (a 200 KiB result: the worker is
 *                                   stopped, "the pool ran out of memory reading its channel")
 *   19 outcome decode (allocations) wrap  test_parent_allocation_failures ("out of memory decoding the result")
 *   20 vasprintf(stop_why)          argued: reached only after another failure; NULL: the message names
 *                                   the exit status instead
 *   21 vasprintf(result message)    argued: the same (after a decode failure); NULL: the code's own text
 *   22 fcntl(O_NONBLOCK) x2         argued: as 6
 *   66 timerfd_settime(ACK tick)    argued: a timerfd of the pool's with a valid value fails only with
 *                                   EBADF, EFAULT or EINVAL
 *   pp_server.c
 *   23 vasprintf, timeout message   wrap  test_parent_allocation_failures (the timed-out task)
 *   24 vasprintf, crash message     wrap  test_parent_allocation_failures (the crashing task)
 *   25 vasprintf, crash-break message  wrap  test_parent_allocation_failures (scenario 1)
 *   26 vasprintf, the other messages of finalize, server death, start failure (delivery deaths,
 *      cancel while running, initializer breaks, server breaks, "no worker could be started",
 *      "cannot start worker"; 9 sites)
 *                                   argued: cf__pp_complete() and cf__pp_break() take a NULL message,
 *                                   the future keeps its code (the same path as 9, 10, 23-25)
 *   27 strdup(broken message), finalize  argued: as 26
 *   28 send(SPAWN)                  wrap  test_spawn_request_not_sent (ENOBUFS: retried with backoff);
 *                                   EPIPE/ECONNRESET only once the fork server is gone: its EOF follows
 *   29 recvmsg(ctl)                 wrap  test_ctl_recvmsg_enomem (ENOMEM: the message waits),
 *                                   test_ctl_recvmsg_reset (ECONNRESET: the fork server is replaced)
 *   30 kill, waitpid(fork server), server death   argued: as 14 and 12
 *   31 cf__pp_server_start (restart)  wrap  test_server_restart_fails (socketpair, fork: the pool breaks)
 * Fork server
 *   32 setpgid, prctl x2            argued: constant, valid arguments (setpgid(0, 0) of a new child)
 *   33 dup2(ctl, 3)                 wrap  test_server_calls_fail (it exits; the pool starts another)
 *   34 fcntl(FD_CLOEXEC), close_range  argued: valid descriptor; close_range falls back to close()
 *   35 signal, sigprocmask          argued: valid arguments
 *   36 signalfd                     wrap  test_server_calls_fail
 *   37 poll (main loop)             wrap  test_server_calls_fail
 *   38 read(signalfd)               wrap  test_server_calls_fail (signals stay pending; reaped anyway)
 *   39 recv(ctl)                    wrap  test_server_calls_fail
 *   40 socketpair (worker channel)  wrap  test_spawn_failures_in_the_server_are_retried
 *   41 pipe2 (worker channel)       wrap  test_spawn_failures_in_the_server_are_retried
 *   42 fcntl(F_SETPIPE_SZ)          argued: refused, the pipe keeps its default size (results are
 *                                   written in more pieces)
 *   43 fork (worker)                wrap  test_spawn_failures_in_the_server_are_retried
 *   44 setpgid(pid, pid)            argued: the worker does the same; ESRCH if it already died
 *   45 sendmsg(SPAWNED, EXITED)     wrap  test_spawned_report_not_lost, test_exited_report_not_lost
 *   46 poll (sendmsg backoff)       argued: a failed wait only retries sooner
 *   47 waitpid, kill (reaping)      argued: WNOHANG ends on 0 or ECHILD; kill only ESRCH
 *   48 opendir, open, read (/proc at exit)  argued: without /proc the workers alone are reaped; an
 *                                   unreadable entry is a process that is gone
 * Worker
 *   49 prctl(PDEATHSIG), setpgid    argued: as 32
 *   50 fcntl(F_DUPFD_CLOEXEC) x2    argued: the same branch as 51 (exit 116 before READY)
 *   51 dup2 x2                      wrap  test_worker_calls_fail
 *   52 setrlimit(RLIMIT_AS)         wrap  test_worker_calls_fail (exit 121 before READY)
 *   53 realloc, READY frame         wrap  test_worker_calls_fail (exit 120 before READY)
 *   54 write, the WAKE after READY (its first write)  wrap  test_worker_calls_fail (exit 117; READY is
 *                                   read from the ring at EOF, the task runs elsewhere)
 *   55 realloc, input buffer        wrap  test_worker_calls_fail (exit 118: the task runs elsewhere)
 *   56 recv, input                  wrap  test_worker_calls_fail (exit 117: the task runs elsewhere)
 *   57 write, a WAKE after an ACK or RESULT  argued: the same call and exit as 54; which publish finds
 *                                   the pool waiting depends on timing, and what was published before
 *                                   the exit is read from the ring all the same
 *   58 write, RESULT by the pipe    wrap  test_worker_calls_fail (a 200 KiB result; exit 117: the task
 *                                   fails, naming it)
 *   59 realloc, RESULT frame        other test_pp_faults test_result_out_of_memory (RLIMIT_AS: CF_ENOMEM
 *                                   result saying so, the worker lives on)
 *   60 malloc(aligned argument copy)  argued: the same exit as 55 (118)
 *   61 realloc, ACK frame           argued: the buffer made for READY holds it unless a RESULT waits
 *                                   in it too; then exit 120 as 53
 *   62 write, before a recycling exit  argued: the same function and exit as 58
 *   63 asprintf/strdup (initializer-failure, result-too-large, not-a-number messages; 3 sites)
 *                                   argued: a NULL message; the pool names the code or status
 *   64 the small CF_ENOMEM result after 59 failed  argued: reached only after 59; exit 119
 *   67 signal, sigprocmask, pause (a task whose gate the pool set to STOP returned: the worker
 *      waits for the signal)         argued: valid arguments; pause() returns only after a
 *                                   caught signal and is called again; the pool's SIGKILL follows
 *                                   after the grace period in any case
 *
 * Count: 67 entries (a few group sites that share one path).  Failure
 * injected here: 37 (1-5, 7-10, 15-19, 23-25, 28, 29, 31, 33, 36-41, 43,
 * 45, 51-56, 58, 65); covered by another test: 1 (59); argued: 29 (6,
 * 11-14, 20-22, 26, 27, 30, 32, 34, 35, 42, 44, 46-50, 57, 60-64, 66, 67).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum {
    W_FORK,
    W_SOCKETPAIR,
    W_PIPE2,
    W_MMAP,
    W_SENDMSG,
    W_READ,
    W_RECVMSG,
    W_SEND,
    W_ALLOC, /* malloc, calloc, realloc, strdup, vasprintf, asprintf, cf__slab_alloc */
    W_RECV,
    W_WRITE,
    W_WRITE_RESULT, /* a write() that carries a RESULT frame (a large one: it goes by the pipe) */
    W_SIGNALFD,
    W_DUP2,
    W_SETRLIMIT,
    W_POLL,
    W_TIMERFD,
    W_N
};

static int countdown[W_N]; /* > 0: fail when it reaches 0 */
static int fail_errno[W_N];

static void fail_in(int which, int n, int err)
{
    countdown[which] = n;
    fail_errno[which] = err;
}

/*
 * Failures aimed at one kind of process: the test's own (R_PARENT), the
 * fork server (R_SERVER: its parent is the test) or a worker (R_WORKER).
 * The countdown lives in a shared mapping, so exactly one call fails over
 * every process, however many workers are forked while it runs.
 */
enum { R_PARENT = 1, R_SERVER, R_WORKER };
struct shared {
    _Atomic int countdown[W_N];
    _Atomic int hits[W_N];
    int role[W_N];
    int err[W_N];
};
static struct shared *shm;
static pid_t test_pid;

void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);

static int role(void)
{
    return getpid() == test_pid ? R_PARENT : getppid() == test_pid ? R_SERVER : R_WORKER;
}

/* Fail the n-th call of `which` made by a process of kind `r` (from now, over all processes). */
static void fail_in_role(int which, int r, int n, int err)
{
    if (!shm) {
        shm = __real_mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(shm != MAP_FAILED);
        test_pid = getpid();
    }
    shm->role[which] = 0;
    atomic_store(&shm->countdown[which], n);
    atomic_store(&shm->hits[which], 0);
    shm->err[which] = err;
    shm->role[which] = r;
}

static int hits(int which)
{
    return atomic_load(&shm->hits[which]);
}

static void disarm(int which)
{
    shm->role[which] = 0;
    atomic_store(&shm->countdown[which], 0);
}

static int should_fail(int which)
{
    if (countdown[which] > 0 && --countdown[which] == 0) {
        errno = fail_errno[which];
        return 1;
    }
    if (shm && shm->role[which] && atomic_load(&shm->countdown[which]) > 0 && role() == shm->role[which] &&
        atomic_fetch_sub(&shm->countdown[which], 1) == 1) {
        atomic_fetch_add(&shm->hits[which], 1);
        errno = shm->err[which];
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

int __real_timerfd_create(int clock, int flags);
int __wrap_timerfd_create(int clock, int flags);
int __wrap_timerfd_create(int clock, int flags)
{
    return should_fail(W_TIMERFD) ? -1 : __real_timerfd_create(clock, flags);
}

int __real_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags)
{
    return should_fail(W_PIPE2) ? -1 : __real_pipe2(fds, flags);
}

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

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    return should_fail(W_ALLOC) ? NULL : __real_malloc(n);
}

void *__real_calloc(size_t k, size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_calloc(size_t k, size_t n)
{
    return should_fail(W_ALLOC) ? NULL : __real_calloc(k, n);
}

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    return should_fail(W_ALLOC) ? NULL : __real_realloc(p, n);
}

char *__real_strdup(const char *s);
char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s)
{
    return should_fail(W_ALLOC) ? NULL : __real_strdup(s);
}

int __real_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    if (should_fail(W_ALLOC)) {
        *out = NULL;
        return -1;
    }
    return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...);
int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return rc;
}

struct cf__slab_cache;
void *__real_cf__slab_alloc(struct cf__slab_cache *c);
void *__wrap_cf__slab_alloc(struct cf__slab_cache *c);
void *__wrap_cf__slab_alloc(struct cf__slab_cache *c)
{
    if (should_fail(W_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_cf__slab_alloc(c);
}

ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
    return should_fail(W_RECV) ? -1 : __real_recv(fd, buf, n, flags);
}

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    uint16_t magic = 0, type = 0;

    if (n >= 4) {
        memcpy(&magic, buf, 2);
        memcpy(&type, (const uint8_t *)buf + 2, 2);
    }
    if (magic == 0xCFF5u && type == 3 /* RESULT */ && should_fail(W_WRITE_RESULT))
        return -1;
    return should_fail(W_WRITE) ? -1 : __real_write(fd, buf, n);
}

int __real_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
    return should_fail(W_SIGNALFD) ? -1 : __real_signalfd(fd, mask, flags);
}

int __real_dup2(int a, int b);
int __wrap_dup2(int a, int b);
int __wrap_dup2(int a, int b)
{
    return should_fail(W_DUP2) ? -1 : __real_dup2(a, b);
}

int __real_setrlimit(int res, const struct rlimit *rl);
int __wrap_setrlimit(int res, const struct rlimit *rl);
int __wrap_setrlimit(int res, const struct rlimit *rl)
{
    return should_fail(W_SETRLIMIT) ? -1 : __real_setrlimit(res, rl);
}

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    return should_fail(W_POLL) ? -1 : __real_poll(fds, n, timeout);
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
        {W_TIMERFD, EMFILE, -EMFILE},
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

/* ------------------------------------------------------------------ every allocation of the parent */

static int t_crash(cf_task_t *t, void *arg)
{
    (void)t;
    (void)arg;
    raise(SIGSEGV);
    return 0;
}

/* 200 KiB of bytes: more than the pool's read buffer, so the frame reader allocates. */
static int t_bytes(cf_task_t *t, void *arg)
{
    static uint8_t b[200 * 1024];

    (void)arg;
    memset(b, 0x5a, sizeof(b));
    return cf_task_set_bytes(t, b, sizeof(b));
}

/*
 * One life of a pool: creation, a task that succeeds, one that crashes its
 * worker, one that times out, one with a large result, one cancelled while
 * queued, shutdown(WAIT), free.  Whatever fails must fail cleanly: an error
 * returned, or a future that completes with an error and a message.
 */
static void alloc_scenario(struct fixture *fx, int variant)
{
    enum { SQUARE, CRASH, TIMEOUT, BYTES, CANCEL, NT };
    cf_task_fn fns[NT] = {t_square, t_crash, t_spin, t_bytes, t_square};
    cf_future_t *fs[NT] = {0};
    cf_process_pool_opts o;
    cf_process_pool_t *p = NULL;
    int rc;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.kill_grace = 0.05;
    if (variant == 1)
        o.on_crash = CF_CRASH_BREAK; /* the crash breaks the pool: the tasks after it fail with its message */
    rc = cf_process_pool_new(fx->loop, &o, &p);
    if (rc != 0) {
        assert_int_equal(rc, CF_ENOMEM);
        assert_null(p);
        return;
    }
    for (int i = 0; i < NT; i++) {
        int64_t x = 6;
        rc = cf_process_pool_submit(p, fns[i], &x, sizeof(x), i == TIMEOUT ? 0.02 : -1, &fs[i]);
        if (rc != 0) {
            assert_int_equal(rc, CF_ENOMEM);
            fs[i] = NULL;
        }
    }
    if (fs[CANCEL])
        cf_future_cancel(fs[CANCEL]);
    if (variant == 2) { /* freed with a task running: it fails saying so */
        cf_future_t *g = NULL;
        int64_t x = 1;
        if (cf_process_pool_submit(p, t_spin, &x, sizeof(x), -1, &g) == 0) {
            for (int i = 0; i < 2000 && cf_future_get_state(g) == CF_FUTURE_PENDING; i++)
                cf_future_wait(fs[SQUARE] ? fs[SQUARE] : g, 0.005);
            cf_process_pool_free(p);
            assert_int_equal(cf_future_wait(g, 30), 0);
            assert_int_not_equal(cf_future_status(g), 0);
            assert_int_equal(cf_future_unref(g), 0);
            p = NULL;
        }
    }
    for (int i = 0; i < NT; i++) {
        int64_t v = 0;
        size_t n = 0;

        if (!fs[i])
            continue;
        if (cf_future_wait(fs[i], 30) != 0) {
            if (p)
                cf_process_pool_free(p);
            fail_msg("task %d never completed", i);
        }
        if (cf_future_status(fs[i]) == 0) {
            assert_true(i == SQUARE || i == BYTES);
            if (i == SQUARE) {
                assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
                assert_int_equal(v, 36);
            } else {
                const void *data = NULL;
                assert_int_equal(cf_future_result_bytes(fs[i], &data, &n), 0);
                assert_int_equal(n, 200 * 1024);
            }
        } else {
            assert_non_null(cf_future_error(fs[i]));
        }
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    if (!p)
        return;
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * The n-th allocation of the parent fails (malloc, calloc, realloc, strdup,
 * vasprintf, the future slab), for every n the scenario reaches: each run
 * ends cleanly and leaks no descriptor (and, under ASan, no memory).
 */
static void test_parent_allocation_failures(void **state)
{
    struct fixture *fx = *state;
    int fds = count_fds_now(), n;

    for (int variant = 0; variant < 3; variant++) {
        for (n = 1; n < 2000; n++) {
            fail_in_role(W_ALLOC, R_PARENT, n, ENOMEM);
            alloc_scenario(fx, variant);
            int hit = hits(W_ALLOC);
            disarm(W_ALLOC);
            assert_int_equal(count_fds_now(), fds);
            if (!hit)
                break; /* the scenario made fewer than n allocations: all were failed in turn */
        }
        assert_true(n > 10 && n < 2000);
        print_message("pp_syscalls: scenario %d: its %d allocations in the parent failed in turn\n", variant, n - 1);
    }
}

/* ------------------------------------------------------------------ the fork server's own calls */

/* The fork server cannot set up (signalfd), read its requests (recv) or wait (poll): it exits, the pool restarts it. */
static void test_server_calls_fail(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        int which, err, restarted;
    } cases[] = {
        {W_SIGNALFD, EMFILE, 1}, {W_RECV, EIO, 1}, {W_POLL, ENOMEM, 1}, {W_DUP2, EBADF, 1},
        {W_READ, EIO, 0}, /* its signalfd: the signals stay pending, the next poll() sees them */
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int fds = count_fds_now();
        cf_process_pool_t *p;
        pid_t first;

        fail_in_role(cases[k].which, R_SERVER, 1, cases[k].err);
        p = pool_of(fx, 1);
        first = cf_process_pool_server_pid(p);
        run_tasks_bounded(p, 1);
        if (!cases[k].restarted) { /* a worker's death makes the server read its signalfd */
            cf_worker_info wi;
            assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
            assert_int_equal(kill(wi.pid, SIGKILL), 0);
        }
        run_tasks_bounded(p, 3);
        assert_int_equal(hits(cases[k].which), 1);
        disarm(cases[k].which);
        if (cases[k].restarted)
            assert_int_not_equal(cf_process_pool_server_pid(p), first); /* a new fork server */
        else
            assert_int_equal(cf_process_pool_server_pid(p), first);
        cf_process_pool_free(p);
        assert_int_equal(count_fds_now(), fds);
    }
}

/* ------------------------------------------------------------------ the workers' own calls */

/*
 * A worker's call fails: before it is ready (dup2 of its channel, setrlimit
 * for max_memory) it is replaced as an initializer failure; writing the
 * WAKE for its READY (its first write: the ring starts out waited for) or
 * waiting for a task (recv) it dies before taking the task, which runs on
 * the next worker; writing a RESULT that goes by the pipe (larger than a
 * ring frame) it dies and that task fails naming the broken channel.
 */
static void test_worker_calls_fail(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        int which, n, err;
        const char *first_fails; /* NULL: every task succeeds */
    } cases[] = {
        {W_DUP2, 1, EMFILE, NULL},      {W_SETRLIMIT, 1, EPERM, NULL}, {W_WRITE, 1, EIO, NULL}, /* READY's WAKE */
        {W_RECV, 1, EIO, NULL},         {W_WRITE_RESULT, 1, EIO, "status 117"}, /* a RESULT by the pipe */
        {W_ALLOC, 1, ENOMEM, NULL}, /* the READY frame's buffer */
        {W_ALLOC, 2, ENOMEM, NULL}, /* the input buffer, before a task is read */
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int fds = count_fds_now();
        cf_process_pool_opts o;
        cf_process_pool_t *p;
        cf_worker_info wi;
        cf_future_t *f;
        int64_t x = 5, v = 0;

        cf_process_pool_opts_init(&o);
        o.max_workers = 1;
        o.kill_grace = 0.2;
        o.max_memory = (size_t)RLIM_INFINITY; /* setrlimit is called; no limit (sanitizers reserve terabytes) */
        fail_in_role(cases[k].which, R_WORKER, cases[k].n, cases[k].err);
        assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
        assert_int_equal(cf_process_pool_submit(p, cases[k].which == W_WRITE_RESULT ? t_bytes : t_square, &x,
                                                sizeof(x), -1, &f),
                         0);
        assert_int_equal(cf_future_wait(f, 30), 0);
        if (cases[k].first_fails) {
            assert_int_equal(cf_future_status(f), CF_EWORKER);
            if (!strstr(cf_future_error(f), cases[k].first_fails) || !strstr(cf_future_error(f), "broken channel"))
                fail_msg("case %zu: %s", k, cf_future_error(f));
        } else {
            if (cf_future_result_i64(f, &v) != 0)
                fail_msg("case %zu: %s", k, cf_future_error(f));
            assert_int_equal(v, 25);
        }
        assert_int_equal(cf_future_unref(f), 0);
        run_tasks_bounded(p, 3);
        assert_int_equal(hits(cases[k].which), 1);
        disarm(cases[k].which);
        assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
        assert_int_equal(wi.restarts, 1);
        cf_process_pool_free(p);
        assert_int_equal(count_fds_now(), fds);
    }
}

/* ------------------------------------------------------------------ the control socket */

/* recvmsg on the control socket fails for good (ECONNRESET): the fork server is taken for dead and replaced. */
static void test_ctl_recvmsg_reset(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = pool_of(fx, 1);
    pid_t first = cf_process_pool_server_pid(p);

    run_tasks(p, 1);
    fail_in(W_RECVMSG, 1, ECONNRESET);
    {
        cf_worker_info wi;
        assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
        assert_int_equal(kill(wi.pid, SIGKILL), 0); /* its EXITED report is the next message */
    }
    run_tasks_bounded(p, 3);
    reset();
    assert_int_not_equal(cf_process_pool_server_pid(p), first);
    cf_process_pool_free(p);
}

/* The fork server died and a new one cannot be made (socketpair, fork): the pool breaks, saying why. */
static void test_server_restart_fails(void **state)
{
    struct fixture *fx = *state;
    static const int which[] = {W_SOCKETPAIR, W_FORK};

    for (size_t k = 0; k < 2; k++) {
        int fds = count_fds_now();
        cf_process_pool_t *p = pool_of(fx, 1);
        cf_future_t *f;
        int64_t x = 2;
        int rc;

        cf_worker_info wi;

        run_tasks(p, 1);
        fail_in(which[k], 1, which[k] == W_FORK ? EAGAIN : EMFILE);
        /* The worker too, so that the task cannot run before the pool sees the fork server die. */
        assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
        assert_int_equal(kill(wi.pid, SIGKILL), 0);
        assert_int_equal(kill(cf_process_pool_server_pid(p), SIGKILL), 0);
        rc = cf_process_pool_submit(p, t_square, &x, sizeof(x), -1, &f);
        if (rc != 0)
            fail_msg("case %zu: submit: %s", k, cf_strerror(rc));
        assert_int_equal(cf_future_wait(f, 30), 0);
        reset();
        assert_int_equal(cf_future_status(f), CF_EBROKEN);
        if (!strstr(cf_future_error(f), "a new one cannot be started"))
            fail_msg("%s", cf_future_error(f));
        assert_int_equal(cf_future_unref(f), 0);
        assert_int_equal(cf_process_pool_submit(p, t_square, &x, sizeof(x), -1, &f), CF_EBROKEN);
        assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
        cf_process_pool_free(p);
        assert_int_equal(count_fds_now(), fds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_fails_cleanly),  T(test_spawn_failures_in_the_server_are_retried),
        T(test_sendmsg_failure),    T(test_pool_caused_death_is_no_delivery_death),
        T(test_read_failure),
        T(test_ctl_recvmsg_enomem), T(test_spawn_request_not_sent),
        T(test_spawned_report_not_lost), T(test_exited_report_not_lost),
        T(test_parent_allocation_failures), T(test_server_calls_fail),
        T(test_worker_calls_fail), T(test_ctl_recvmsg_reset),
        T(test_server_restart_fails),
    };
    alarm(300); /* a hang fails the run instead of stalling it */
    return cmocka_run_group_tests_name("pp_syscalls", tests, NULL, NULL);
}
