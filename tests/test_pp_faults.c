/*
 * test_pp_faults.c - the process pool under faults, through the public API:
 * initializers that die before their worker is ready, tasks that leave
 * their worker's process group, cancellation of tasks sent ahead (they
 * never run and cost no worker), stops that spare the tasks sent ahead,
 * stops that catch only the task they were decided for (never one the
 * worker moved on to before the pool read its frames, nor the result of
 * the task before), arguments over the channel's frame limit, fork-server
 * deaths.
 *
 * Crash matrix: a worker that dies at each point of a task's life, each
 * with the affected future failing CF_EWORKER (or, for a task not yet
 * taken, queued again and failing only after max_delivery_deaths) with a
 * message naming what happened, every other future completing:
 *   while reading a TASK frame (part read)   test_worker_killed_reading_a_task
 *   inside the function                      test_worker_killed_during_shutdown,
 *                                            test_worker_killed_with_channel_full_downwards,
 *                                            (and test_process_pool's crash tests)
 *   while writing a RESULT (larger than the pipe, the loop not reading)
 *                                            test_worker_killed_writing_a_result
 *   between tasks                            test_worker_killed_between_tasks
 *   after shutdown started                   test_worker_killed_during_shutdown
 *   channel full upwards / downwards         test_worker_killed_writing_a_result,
 *                                            test_worker_killed_with_channel_full_downwards,
 *                                            test_full_channels_both_ways (no death: no fault)
 * A worker blocked in a system call is waited for in /proc/PID/syscall, a
 * state, not a delay.
 * Every test ends with shutdown(WAIT) returning: a hang is caught by an
 * alarm and fails the run.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int t_square(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t x;

    (void)arg;
    memcpy(&x, cf_task_arg(t, &len), sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}

/* Creates the file named by its payload. */
static int t_touch(cf_task_t *t, void *arg)
{
    size_t len;
    const char *path = cf_task_arg(t, &len);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);

    (void)arg;
    if (fd >= 0)
        close(fd);
    cf_task_set_i64(t, fd >= 0);
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

/* Leaves the worker's process group (joins the fork server's), then spins. */
static int t_leave_group(cf_task_t *t, void *arg)
{
    (void)arg;
    if (setpgid(0, getpgid(getppid())) != 0)
        return cf_task_fail(t, CF_EFAIL, "setpgid failed");
    return t_spin(t, arg);
}

static void tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)w;
    (void)revents;
}

/* Without `path`: `f` has not started.  With it: `f` is not done and the file `path` does not exist yet. */
static int waiting(cf_future_t *f, const char *path)
{
    if (path)
        return access(path, F_OK) != 0 && cf_future_status(f) == CF_EPENDING;
    return cf_future_get_state(f) == CF_FUTURE_PENDING;
}

/* Run the loop while waiting(f, path), 20 s at most (a tick makes it look again). */
static void run_while_waiting(struct fixture *fx, cf_future_t *f, const char *path)
{
    ev_timer t;
    uint64_t deadline = cf_now_ns() + 20 * 1000000000ull;

    ev_timer_init(&t, tick, 0.001, 0.001);
    ev_timer_start(fx->ev, &t);
    while (waiting(f, path) && cf_now_ns() < deadline)
        ev_run(fx->ev, EVRUN_ONCE);
    ev_timer_stop(fx->ev, &t);
}

/* Run the loop until the future is RUNNING; bounded. */
static void run_until_running(struct fixture *fx, cf_future_t *f)
{
    run_while_waiting(fx, f, NULL);
    assert_int_equal(cf_future_get_state(f), CF_FUTURE_RUNNING);
}

static void tmpname(char *path)
{
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}

/* ------------------------------------------------------------------ initializers that die */

static int init_segv(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    raise(SIGSEGV);
    return 0;
}

static int init_abort(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    abort();
}

static int init_exit(void *pool_data, int index, void **worker_data)
{
    (void)pool_data;
    (void)index;
    (void)worker_data;
    _exit(0);
}

/* A worker that dies in any way before it is ready counts as an initializer failure. */
static void test_initializer_death_breaks_the_pool(void **state)
{
    struct fixture *fx = *state;
    cf_worker_init_fn inits[] = {init_segv, init_abort, init_exit};
    const char *how[] = {"SIGSEGV", "SIGABRT", "exited with status 0"};

    for (int k = 0; k < 3; k++) {
        cf_process_pool_opts o;
        cf_process_pool_t *p;
        cf_future_t *fs[3];

        cf_process_pool_opts_init(&o);
        o.max_workers = 2;
        o.initializer = inits[k];
        o.max_init_failures = 3;
        assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
        for (int i = 0; i < 3; i++)
            fs[i] = submit_i(p, t_square, i, -1);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(cf_future_wait(fs[i], -1), 0);
            assert_int_equal(cf_future_status(fs[i]), CF_EBROKEN);
            assert_non_null(strstr(cf_future_error(fs[i]), "before it was ready"));
            assert_non_null(strstr(cf_future_error(fs[i]), how[k]));
            assert_int_equal(cf_future_unref(fs[i]), 0);
        }
        assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
        cf_process_pool_free(p);
    }
}

/* ------------------------------------------------------------------ timeouts */

/* A task that moved its worker out of the worker's process group is still stopped. */
static void test_timeout_after_setpgid(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    cf_future_t *f = submit_i(p, t_leave_group, 0, 0.3), *g;
    int64_t v;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_ETIMEDOUT);
    g = submit_i(p, t_square, 7, -1);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_result_i64(g, &v), 0);
    assert_int_equal(v, 49);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ cancel of tasks sent ahead */

/* A 0 from cancel means the task never runs, and costs no worker. */
static void test_cancel_sent_ahead_never_runs(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char go[] = "/tmp/cf-go-XXXXXX", mark[] = "/tmp/cf-mark-XXXXXX";
    cf_worker_info before, after;
    cf_future_t *a, *b, *c;
    int64_t v = 0;
    int fd;

    tmpname(go);
    tmpname(mark);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, go, sizeof(go), -1, &a), 0);
    run_until_running(fx, a);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &before), 0);
    assert_int_equal(cf_process_pool_submit(p, t_touch, mark, sizeof(mark), -1, &b), 0); /* sent ahead */
    c = submit_i(p, t_square, 5, -1);
    assert_int_equal(cf_future_cancel(b), 0);
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_CANCELLED);
    fd = open(go, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cf_future_wait(c, -1), 0);
    assert_int_equal(cf_future_result_i64(a, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cf_future_result_i64(c, &v), 0);
    assert_int_equal(v, 25);
    assert_int_equal(access(mark, F_OK), -1); /* b never ran */
    assert_int_equal(cf_process_pool_worker_info(p, 0, &after), 0);
    assert_int_equal(after.pid, before.pid); /* and cost no worker */
    assert_int_equal(after.restarts, 0);
    unlink(go);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_future_unref(c), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* A worker replaced after a cancel of a task sent ahead starts with fresh gates. */
static void test_cancel_sent_ahead_then_worker_dies(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char go[] = "/tmp/cf-go-XXXXXX";
    cf_future_t *a, *b, *fs[4];
    cf_worker_info wi;
    int64_t v = 0;

    tmpname(go);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, go, sizeof(go), -1, &a), 0);
    run_until_running(fx, a);
    b = submit_i(p, t_square, 2, -1); /* sent ahead */
    assert_int_equal(cf_future_cancel(b), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(kill(wi.pid, SIGKILL), 0);
    assert_int_equal(cf_future_wait(a, -1), 0);
    assert_int_equal(cf_future_status(a), CF_EWORKER);
    for (int i = 0; i < 4; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, i * i);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* shutdown(CANCEL) cancels tasks sent ahead too; the running one finishes. */
static void test_shutdown_cancel_covers_sent_ahead(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char go[] = "/tmp/cf-go-XXXXXX", mark[] = "/tmp/cf-mark-XXXXXX";
    cf_future_t *a, *b;
    int64_t v = 0;
    int fd;

    tmpname(go);
    tmpname(mark);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, go, sizeof(go), -1, &a), 0);
    run_until_running(fx, a);
    assert_int_equal(cf_process_pool_submit(p, t_touch, mark, sizeof(mark), -1, &b), 0); /* sent ahead */
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_CANCEL), 0);
    assert_int_equal(cf_future_get_state(b), CF_FUTURE_CANCELLED);
    fd = open(go, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    assert_int_equal(cf_future_result_i64(a, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(access(mark, F_OK), -1);
    unlink(go);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ stops and the tasks sent ahead */

/*
 * Blocks SIGTERM in its worker, creates the file named by its argument
 * (it runs now, SIGTERM blocked), and returns as soon as a SIGTERM is
 * pending: a task that ends just before the pool's stop signal lands (the
 * signal waits until the worker dies by SIGKILL after the grace period).
 */
static int t_end_at_sigterm(cf_task_t *t, void *arg)
{
    sigset_t term, pending;
    const char *started = cf_task_arg(t, NULL);
    int fd;

    (void)arg;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    if ((fd = open(started, O_CREAT | O_WRONLY, 0600)) >= 0)
        close(fd);
    for (int i = 0; i < 20000; i++) {
        sigpending(&pending);
        if (sigismember(&pending, SIGTERM))
            break;
        usleep(1000);
    }
    cf_task_set_i64(t, 1);
    return 0;
}

/*
 * Squares its argument - unless it runs in a worker that a stop is on its
 * way to (SIGTERM blocked and pending, left by t_end_at_sigterm): there it
 * waits until that worker dies, as any task caught by the stop would.
 */
static int t_square_unless_stopping(cf_task_t *t, void *arg)
{
    sigset_t pending;

    sigpending(&pending);
    if (sigismember(&pending, SIGTERM))
        for (int i = 0; i < 20000; i++)
            usleep(1000);
    return t_square(t, arg);
}

/* Run the loop until `f` is done or the file `path` exists (20 s at most); 1 if it exists. */
static int run_until_file(struct fixture *fx, cf_future_t *f, const char *path)
{
    run_while_waiting(fx, f, path);
    return access(path, F_OK) == 0;
}

/*
 * A stop decided for a task (timeout, cancel) does not catch the tasks sent
 * ahead behind it, even when the task ends before the signal lands: the
 * worker finds the task's gate set to STOP, takes no other task and waits
 * for the signal; they run on the next worker.
 *
 * The stop must find the task running: the test waits until the task says
 * it runs (a cancel decided between its ACK and the worker's taking its
 * gate would close the gate: the task would never run, no worker stopped).
 * A timeout that finds the gate open starts the clock again, once; a worker
 * that had no CPU for twice the timeout right there (a loaded machine) gets
 * the task closed out - it never runs, the message says so - and the
 * scenario is repeated with a doubled timeout.
 */
static void test_stop_spares_tasks_sent_ahead(void **state)
{
    struct fixture *fx = *state;
    double timeout = 0.2;

    for (int cancel = 0; cancel < 2; cancel++) {
        cf_process_pool_t *p = ppool(fx, 1, 0.3);
        char started[] = "/tmp/cf-mark-XXXXXX";
        cf_future_t *a, *fs[2];
        cf_worker_info wi;
        int64_t v = 0;

        tmpname(started);
        assert_int_equal(
            cf_process_pool_submit(p, t_end_at_sigterm, started, sizeof(started), cancel ? -1 : timeout, &a), 0);
        if (!run_until_file(fx, a, started)) {
            assert_true(!cancel && cf_future_status(a) != CF_EPENDING && timeout < 10);
            assert_int_equal(cf_future_status(a), CF_ETIMEDOUT);
            assert_non_null(strstr(cf_future_error(a), "had not started"));
            assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
            assert_int_equal(wi.restarts, 0);
            assert_int_equal(cf_future_unref(a), 0);
            cf_process_pool_free(p);
            timeout *= 2;
            cancel--; /* again */
            continue;
        }
        unlink(started);
        for (int i = 0; i < 2; i++)
            fs[i] = submit_i(p, t_square_unless_stopping, i + 2, -1); /* sent ahead */
        if (cancel)
            assert_int_equal(cf_future_cancel(a), CF_EBUSY);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(cf_future_wait(fs[i], -1), 0);
            if (cf_future_result_i64(fs[i], &v) != 0)
                fail_msg("%s: task sent ahead: %s", cancel ? "cancel" : "timeout", cf_future_error(fs[i]));
            assert_int_equal(v, (i + 2) * (i + 2));
            assert_int_equal(cf_future_unref(fs[i]), 0);
        }
        assert_int_equal(cf_future_wait(a, -1), 0);
        assert_int_equal(cf_future_status(a), cancel ? CF_ECANCELED : CF_ETIMEDOUT);
        assert_non_null(strstr(cf_future_error(a), "was stopped"));
        assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
        assert_int_equal(wi.restarts, 1);
        assert_int_equal(cf_future_unref(a), 0);
        assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
        cf_process_pool_free(p);
    }
}

/* ------------------------------------------------------------------ limits */

/* An argument over the frame limit is refused at submit, not shipped. */
static void test_argument_over_frame_limit(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    static const char small[8];
    cf_future_t *f = NULL;

    /* The length is checked before a byte of the argument is read. */
    assert_int_equal(cf_process_pool_submit(p, t_square, small, (size_t)1 << 40, -1, &f), CF_E2BIG);
    assert_null(f);
    assert_last_error("frame limit");
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* Per-task timeout 0 means no timeout for this task, whatever the pool's default. */
static void test_timeout_zero_is_none(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f;
    int64_t v = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.task_timeout = 0; /* none */
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    f = submit_i(p, t_square, 9, 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_result_i64(f, &v), 0);
    assert_int_equal(v, 81);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ memory */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* VmSize of a process in bytes. */
static size_t vm_size(pid_t pid)
{
    char path[64], line[256];
    size_t kb = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb > 0);
    return kb * 1024;
}

/* Address space of an idle worker of a pool like the test's. */
static size_t worker_base(struct fixture *fx)
{
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    cf_future_t *f = submit_i(p, t_square, 1, -1);
    cf_worker_info wi;
    size_t base;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    base = vm_size(wi.pid);
    cf_process_pool_free(p);
    return base;
}

#define MIB ((size_t)1 << 20)

/* Returns `n` bytes (its argument) of 0x5a. */
static int t_big_result(cf_task_t *t, void *arg)
{
    size_t len, n;
    uint8_t *b;
    int rc;

    (void)arg;
    memcpy(&n, cf_task_arg(t, &len), sizeof(n));
    b = malloc(n);
    if (!b)
        return cf_task_fail(t, CF_ENOMEM, "task: malloc(%zu) failed", n);
    memset(b, 0x5a, n);
    rc = cf_task_set_bytes(t, b, n);
    free(b);
    return rc;
}
#endif

/* A result the worker has no memory to frame fails with CF_ENOMEM saying so; the worker lives on. */
static void test_result_out_of_memory(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip(); /* sanitizers reserve terabytes of address space: RLIMIT_AS cannot apply */
#else
    struct fixture *fx = *state;
    size_t n = 256 * MIB, base = worker_base(fx);
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_worker_info before, after;
    cf_future_t *f, *g;
    int64_t v = 0;

    /* Room for the result and its copy (2n), not for the result and a frame rounded up to 2n. */
    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.max_memory = base + 640 * MIB;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    assert_int_equal(cf_process_pool_submit(p, t_big_result, &n, sizeof(n), -1, &f), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_ENOMEM);
    assert_non_null(strstr(cf_future_error(f), "out of memory building the result"));
    assert_int_equal(cf_process_pool_worker_info(p, 0, &before), 0);
    g = submit_i(p, t_square, 3, -1);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_result_i64(g, &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &after), 0);
    assert_int_equal(after.restarts, 0); /* the same worker */
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
#endif
}

/* A task whose delivery kills every worker it is sent to fails after max_delivery_deaths. */
static void test_argument_kills_its_workers(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip();
#else
    struct fixture *fx = *state;
    size_t base = worker_base(fx), n = 512 * MIB;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f, *g;
    uint8_t *arg;
    int64_t v = 0;

    cf_process_pool_opts_init(&o);
    o.max_workers = 2;
    o.max_memory = base + 256 * MIB; /* a worker cannot receive the argument */
    o.max_delivery_deaths = 2;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    arg = calloc(1, n);
    assert_non_null(arg);
    assert_int_equal(cf_process_pool_submit(p, t_square, arg, n, -1, &f), 0);
    free(arg);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_EWORKER);
    assert_non_null(strstr(cf_future_error(f), "sent to 2 workers"));
    assert_non_null(strstr(cf_future_error(f), "out of memory receiving a task"));
    g = submit_i(p, t_square, 4, -1);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_result_i64(g, &v), 0);
    assert_int_equal(v, 16);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
#endif
}

/* ------------------------------------------------------------------ crash matrix */

/* A worker killed between tasks (idle): nothing fails, the next tasks run. */
static void test_worker_killed_between_tasks(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    cf_future_t *f = submit_i(p, t_square, 2, -1), *fs[4];
    cf_worker_info wi;
    int64_t v = 0;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(kill(wi.pid, SIGKILL), 0);
    for (int i = 0; i < 4; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, i * i);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* A worker killed after shutdown started: its task fails CF_EWORKER, the queued ones still run. */
static void test_worker_killed_during_shutdown(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char go[] = "/tmp/cf-go-XXXXXX";
    cf_future_t *a, *fs[3];
    cf_worker_info wi;
    int64_t v = 0;

    tmpname(go);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, go, sizeof(go), -1, &a), 0);
    run_until_running(fx, a);
    for (int i = 0; i < 3; i++)
        fs[i] = submit_i(p, t_square, i + 1, -1);
    assert_int_equal(cf_process_pool_shutdown(p, 0), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(kill(wi.pid, SIGKILL), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    assert_int_equal(cf_future_status(a), CF_EWORKER);
    assert_non_null(strstr(cf_future_error(a), "SIGKILL"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, (i + 1) * (i + 1));
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_future_unref(a), 0);
    cf_process_pool_free(p);
}

/*
 * Is process `pid` blocked in system call `nr` with its first argument
 * `arg1` (any if < 0)?  Its third argument goes to *arg3.  (From
 * /proc/PID/syscall: a blocked call is a state the test can wait for.)
 */
static int blocked_in(pid_t pid, long nr, long arg1, unsigned long *arg3)
{
    char path[64], buf[256];
    unsigned long a1 = 0, a2 = 0, a3 = 0;
    long got;
    FILE *f;
    int n;

    snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    n = fgets(buf, sizeof(buf), f) ? sscanf(buf, "%ld 0x%lx 0x%lx 0x%lx", &got, &a1, &a2, &a3) : 0;
    fclose(f);
    if (n != 4 || got != nr || (arg1 >= 0 && (long)a1 != arg1))
        return 0;
    if (arg3)
        *arg3 = a3;
    return 1;
}

/* Wait (bounded) until the worker is blocked in `nr` on descriptor `fd` with a length above `min_len`. */
static void wait_blocked_in(pid_t pid, long nr, int fd, unsigned long min_len)
{
    unsigned long len = 0;

    for (int i = 0; i < 20000; i++) {
        if (blocked_in(pid, nr, fd, &len) && len > min_len)
            return;
        usleep(1000);
    }
    fail_msg("worker %d never blocked in system call %ld on descriptor %d", (int)pid, nr, fd);
}

/* Returns its argument's length (an int64) and its first byte; for large arguments. */
static int t_arg_len(cf_task_t *t, void *arg)
{
    size_t len;
    const uint8_t *a = cf_task_arg(t, &len);

    (void)arg;
    cf_task_set_i64(t, (int64_t)len + (len ? a[0] : 0));
    return 0;
}

/* Returns as many bytes of 0x5a as its (int64) argument says. */
static int t_bytes_of(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t n;
    uint8_t *b;
    int rc;

    (void)arg;
    memcpy(&n, cf_task_arg(t, &len), sizeof(n));
    if (!(b = malloc((size_t)n)))
        return cf_task_fail(t, CF_ENOMEM, "no memory for %lld bytes", (long long)n);
    memset(b, 0x5a, (size_t)n);
    rc = cf_task_set_bytes(t, b, (size_t)n);
    free(b);
    return rc;
}

/* The running worker's pid, once it has done a task. */
static pid_t warm_worker(cf_process_pool_t *p)
{
    cf_future_t *f = submit_i(p, t_square, 2, -1);
    cf_worker_info wi;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    return wi.pid;
}

static void expect_i64(cf_future_t *f, int64_t want)
{
    int64_t v = 0;

    assert_int_equal(cf_future_wait(f, -1), 0);
    if (cf_future_result_i64(f, &v) != 0)
        fail_msg("%s", cf_future_error(f));
    assert_int_equal(v, want);
}

#define ARG_BIG ((size_t)16 << 20) /* more than a socket's buffers hold */

/*
 * A worker killed while reading a TASK frame (part of it read, the rest
 * still in the channel): with max_delivery_deaths 1 that task fails with
 * CF_EWORKER saying so; the task queued behind it runs on the next worker.
 */
static void test_worker_killed_reading_a_task(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f, *g;
    uint8_t *arg;
    pid_t pid;

    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.kill_grace = 0.2;
    o.max_delivery_deaths = 1;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    pid = warm_worker(p);
    arg = calloc(1, ARG_BIG);
    assert_non_null(arg);
    assert_int_equal(cf_process_pool_submit(p, t_arg_len, arg, ARG_BIG, -1, &f), 0);
    free(arg);
    g = submit_i(p, t_square, 3, -1);
    /* The loop does not run: the pool wrote what the socket holds; the
     * worker read that and waits in recv() for the rest of the frame. */
    wait_blocked_in(pid, SYS_recvfrom, 3, 65536);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_EWORKER);
    if (!strstr(cf_future_error(f), "died before it could take it") || !strstr(cf_future_error(f), "SIGKILL"))
        fail_msg("%s", cf_future_error(f));
    expect_i64(g, 9);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * A worker killed while writing a RESULT larger than its pipe holds (the
 * pool's loop is not reading: the channel is full upwards): the task fails
 * with CF_EWORKER naming the signal and the result cut short; the tasks
 * sent ahead behind it run on the next worker.
 */
static void test_worker_killed_writing_a_result(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    cf_future_t *f, *gs[3];
    pid_t pid = warm_worker(p);

    f = submit_i(p, t_bytes_of, 8 << 20, -1);
    for (int i = 0; i < 3; i++)
        gs[i] = submit_i(p, t_square, i + 4, -1);
    wait_blocked_in(pid, SYS_write, 4, 0); /* its RESULT fills the pipe */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_EWORKER);
    if (!strstr(cf_future_error(f), "SIGKILL") || !strstr(cf_future_error(f), "sending the task's result"))
        fail_msg("%s", cf_future_error(f));
    for (int i = 0; i < 3; i++) {
        expect_i64(gs[i], (i + 4) * (i + 4));
        assert_int_equal(cf_future_unref(gs[i]), 0);
    }
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * Waits for the file named in its argument (struct go_bytes), then returns
 * `n` bytes of 0x5a: a result larger than the worker's pipe holds, sent
 * when the test says.
 */
struct go_bytes {
    char go[32];
    int64_t n;
};

static int t_go_then_bytes(cf_task_t *t, void *arg)
{
    size_t len;
    struct go_bytes g;
    uint8_t *b;
    int rc;

    (void)arg;
    memcpy(&g, cf_task_arg(t, &len), sizeof(g));
    for (int i = 0; i < 20000 && access(g.go, F_OK) != 0; i++)
        usleep(1000);
    if (!(b = malloc((size_t)g.n)))
        return cf_task_fail(t, CF_ENOMEM, "no memory for %lld bytes", (long long)g.n);
    memset(b, 0x5a, (size_t)g.n);
    rc = cf_task_set_bytes(t, b, (size_t)g.n);
    free(b);
    return rc;
}

/* Creates the file named by its argument's first half, then waits for the one named by its second half. */
static int t_mark_then_wait(cf_task_t *t, void *arg)
{
    size_t len;
    const char *paths = cf_task_arg(t, &len);
    int fd = open(paths, O_CREAT | O_WRONLY, 0600);

    (void)arg;
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 20000 && access(paths + len / 2, F_OK) != 0; i++)
        usleep(1000);
    cf_task_set_i64(t, 1);
    return 0;
}

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);

    assert_true(fd >= 0);
    close(fd);
}

/*
 * A stop is never decided for a task from a worker's state the pool has
 * not read yet.  Task A ends with a result larger than the worker's pipe
 * holds, and the loop does not run: the worker is blocked writing A's
 * RESULT, with task B (sent ahead with A, in the worker's input already)
 * next.  Cancelling B then finds B's start gate open - B has not started,
 * the cancel returns 0 and kills nobody - and A's result arrives whole.
 * (Had the worker taken B's gate before it sent A's RESULT, the cancel
 * would stop the worker for B and A would die with it, "killed by signal
 * 15 (SIGTERM) while sending the task's result".)
 */
static void test_stop_for_next_task_spares_result(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char mark[] = "/tmp/cf-mark-XXXXXX";
    struct go_bytes g = {.go = "/tmp/cf-go-XXXXXX", .n = 8 << 20};
    cf_worker_info before, after;
    cf_future_t *a, *b;
    const void *data;
    size_t len = 0;
    int rc;

    tmpname(g.go);
    tmpname(mark);
    /* Both submitted before the worker is ready: it gets them in one write. */
    assert_int_equal(cf_process_pool_submit(p, t_go_then_bytes, &g, sizeof(g), -1, &a), 0);
    assert_int_equal(cf_process_pool_submit(p, t_touch, mark, sizeof(mark), -1, &b), 0);
    run_until_running(fx, a);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &before), 0);
    touch(g.go);
    wait_blocked_in(before.pid, SYS_write, 4, 0); /* A's RESULT fills the pipe */
    rc = cf_future_cancel(b);
    assert_int_equal(cf_future_wait(a, -1), 0);
    if (cf_future_result_bytes(a, &data, &len) != 0)
        fail_msg("the task before (the cancel returned %s): %s", cf_err_name(rc), cf_future_error(a));
    assert_int_equal(len, (size_t)g.n);
    if (rc != 0)
        fail_msg("cancel of the task behind a result being sent: %s, expected 0", cf_err_name(rc));
    assert_int_equal(cf_future_status(b), CF_ECANCELED);
    assert_int_equal(access(mark, F_OK), -1); /* b never ran */
    assert_int_equal(cf_process_pool_worker_info(p, 0, &after), 0);
    assert_int_equal(after.pid, before.pid); /* and no worker was stopped */
    assert_int_equal(after.restarts, 0);
    unlink(g.go);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * A cancel of a task that has ended, while the worker runs the next one
 * and the pool has read neither A's RESULT nor B's ACK (the loop does not
 * run), stops no worker: B runs to its end on the same worker; A, whose
 * cancel returned CF_EBUSY (the pool knew it RUNNING), ends CANCELLED when
 * its RESULT is read.
 */
static void test_cancel_after_task_ended_spares_next(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char go_a[] = "/tmp/cf-go-XXXXXX", paths[64];
    char *started = paths, *go_b = paths + sizeof(paths) / 2;
    cf_worker_info before, after;
    cf_future_t *a, *b;
    int64_t v = 0;

    tmpname(go_a);
    strcpy(started, "/tmp/cf-mark-XXXXXX");
    strcpy(go_b, "/tmp/cf-go-XXXXXX");
    tmpname(started);
    tmpname(go_b);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, go_a, sizeof(go_a), -1, &a), 0);
    assert_int_equal(cf_process_pool_submit(p, t_mark_then_wait, paths, sizeof(paths), -1, &b), 0);
    run_until_running(fx, a);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &before), 0);
    touch(go_a);
    for (int i = 0; i < 20000 && access(started, F_OK) != 0; i++)
        usleep(1000); /* B started: A ended */
    assert_int_equal(access(started, F_OK), 0);
    assert_int_equal(cf_future_get_state(a), CF_FUTURE_RUNNING); /* as far as the pool knows */
    assert_int_equal(cf_future_cancel(a), CF_EBUSY);
    touch(go_b);
    assert_int_equal(cf_future_wait(b, -1), 0);
    if (cf_future_result_i64(b, &v) != 0)
        fail_msg("the task after: %s", cf_future_error(b));
    assert_int_equal(v, 1);
    assert_int_equal(cf_future_wait(a, -1), 0);
    assert_int_equal(cf_future_status(a), CF_ECANCELED);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &after), 0);
    assert_int_equal(after.pid, before.pid); /* no worker was stopped */
    assert_int_equal(after.restarts, 0);
    unlink(go_a);
    unlink(started);
    unlink(go_b);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * Full channels without a death are no fault: results larger than the pipe
 * while the loop is busy elsewhere, arguments larger than the socket while
 * the worker is busy - every task completes.
 */
static void test_full_channels_both_ways(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    pid_t pid = warm_worker(p);
    cf_future_t *up[3], *down[2];
    uint8_t *arg = calloc(1, ARG_BIG);

    assert_non_null(arg);
    for (int i = 0; i < 3; i++)
        up[i] = submit_i(p, t_bytes_of, 3 << 20, -1);
    wait_blocked_in(pid, SYS_write, 4, 0); /* the worker waits for the loop */
    for (int i = 0; i < 2; i++) {
        arg[0] = (uint8_t)i;
        assert_int_equal(cf_process_pool_submit(p, t_arg_len, arg, ARG_BIG, -1, &down[i]), 0);
    }
    free(arg);
    for (int i = 0; i < 3; i++) {
        const void *data = NULL;
        size_t n = 0;

        assert_int_equal(cf_future_wait(up[i], -1), 0);
        assert_int_equal(cf_future_result_bytes(up[i], &data, &n), 0);
        assert_int_equal(n, 3 << 20);
        assert_int_equal(((const uint8_t *)data)[n - 1], 0x5a);
        assert_int_equal(cf_future_unref(up[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        expect_i64(down[i], (int64_t)ARG_BIG + i);
        assert_int_equal(cf_future_unref(down[i]), 0);
    }
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/*
 * A worker killed while busy with a task and the channel full downwards (a
 * large argument sent ahead, partly written, the pool waiting to write the
 * rest): the running task fails with CF_EWORKER, the partly written one
 * and the queued one run on the next worker.
 */
static void test_worker_killed_with_channel_full_downwards(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 1, 0.2);
    char never[] = "/tmp/cf-never-XXXXXX";
    cf_future_t *a, *b, *c;
    cf_worker_info wi;
    uint8_t *arg = calloc(1, ARG_BIG);

    assert_non_null(arg);
    tmpname(never);
    assert_int_equal(cf_process_pool_submit(p, t_wait_file, never, sizeof(never), -1, &a), 0);
    run_until_running(fx, a);
    arg[0] = 7;
    assert_int_equal(cf_process_pool_submit(p, t_arg_len, arg, ARG_BIG, -1, &b), 0); /* sent ahead, in part */
    free(arg);
    c = submit_i(p, t_square, 6, -1);
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_int_equal(kill(wi.pid, SIGKILL), 0);
    assert_int_equal(cf_future_wait(a, -1), 0);
    assert_int_equal(cf_future_status(a), CF_EWORKER);
    if (!strstr(cf_future_error(a), "SIGKILL") || !strstr(cf_future_error(a), "while running the task"))
        fail_msg("%s", cf_future_error(a));
    expect_i64(b, (int64_t)ARG_BIG + 7);
    expect_i64(c, 36);
    assert_int_equal(cf_future_unref(a), 0);
    assert_int_equal(cf_future_unref(b), 0);
    assert_int_equal(cf_future_unref(c), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ fork server deaths */

/* Run the loop until the pool's fork server is another process than `old`; bounded. */
static pid_t run_until_new_server(struct fixture *fx, cf_process_pool_t *p, pid_t old)
{
    ev_timer t;
    uint64_t deadline = cf_now_ns() + 20 * 1000000000ull;

    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(fx->ev, &t);
    while (cf_process_pool_server_pid(p) == old && cf_now_ns() < deadline)
        ev_run(fx->ev, EVRUN_ONCE);
    ev_timer_stop(fx->ev, &t);
    return cf_process_pool_server_pid(p);
}

/* A fork server killed from outside is replaced, with its workers; the pool goes on. */
static void test_fork_server_killed_is_restarted(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p = ppool(fx, 2, 0.2);
    cf_future_t *f = submit_i(p, t_square, 2, -1), *fs[6];
    pid_t old = cf_process_pool_server_pid(p);
    int64_t v = 0;

    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(kill(old, SIGKILL), 0);
    assert_int_not_equal(run_until_new_server(fx, p, old), old);
    for (int i = 0; i < 6; i++)
        fs[i] = submit_i(p, t_square, i, -1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(cf_future_wait(fs[i], -1), 0);
        assert_int_equal(cf_future_result_i64(fs[i], &v), 0);
        assert_int_equal(v, i * i);
        assert_int_equal(cf_future_unref(fs[i]), 0);
    }
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* Waits (bounded) for the file named by init_data: the worker is not ready meanwhile. */
static int init_wait_file(void *pool_data, int index, void **worker_data)
{
    (void)index;
    (void)worker_data;
    for (int i = 0; i < 20000 && access(pool_data, F_OK) != 0; i++)
        usleep(1000);
    return 0;
}

/* A fork server that keeps dying before any worker is ready breaks the pool, saying so. */
static void test_fork_server_dying_in_a_row_breaks(void **state)
{
    struct fixture *fx = *state;
    char never[] = "/tmp/cf-never-XXXXXX";
    cf_process_pool_opts o;
    cf_process_pool_t *p;
    cf_future_t *f;
    pid_t server;

    tmpname(never);
    cf_process_pool_opts_init(&o);
    o.max_workers = 1;
    o.initializer = init_wait_file;
    o.init_data = never;
    assert_int_equal(cf_process_pool_new(fx->loop, &o, &p), 0);
    f = submit_i(p, t_square, 3, -1);
    server = cf_process_pool_server_pid(p);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kill(server, SIGKILL), 0);
        pid_t next = run_until_new_server(fx, p, server);
        assert_int_not_equal(next, server);
        server = next;
    }
    assert_int_equal(kill(server, SIGKILL), 0);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), CF_EBROKEN);
    assert_non_null(strstr(cf_future_error(f), "fork server died 3 times in a row"));
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ resources at start-up */

/* With the descriptor table full, a new worker's channel cannot arrive: that
 * is retried and reported as what it is, and the pool works again once
 * descriptors are free.  The pool (and so its fork server) starts before the
 * table is filled: a fork server started under the lowered limit would keep
 * it, which says nothing about the pool. */
static void test_descriptor_table_full_at_start(void **state)
{
    struct fixture *fx = *state;
    cf_process_pool_t *p;
    cf_future_t *f, *g;
    struct rlimit saved, low;
    cf_worker_info wi;
    static int fill[4096];
    int nfill = 0, maxfd = 0;
    int64_t v = 0;

    p = ppool(fx, 1, 0.2);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            maxfd = fd;
    low = saved;
    low.rlim_cur = (rlim_t)maxfd + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (nfill < 4096 && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nfill++; /* fill every free slot below the limit */
    assert_int_equal(errno, EMFILE);
    assert_true(nfill < 4096);

    /* No worker's channel fits. */
    f = submit_i(p, t_square, 3, -1);
    assert_int_equal(cf_future_wait(f, -1), 0);
    assert_int_equal(cf_future_status(f), -EMFILE);
    assert_non_null(strstr(cf_future_error(f), "no worker could be started"));
    assert_int_equal(cf_process_pool_worker_info(p, 0, &wi), 0);
    assert_true(wi.start_failures >= 8);

    /* Descriptors free again: the pool works (it was not broken). */
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    g = submit_i(p, t_square, 4, -1);
    assert_int_equal(cf_future_wait(g, -1), 0);
    assert_int_equal(cf_future_result_i64(g, &v), 0);
    assert_int_equal(v, 16);
    assert_int_equal(cf_future_unref(f), 0);
    assert_int_equal(cf_future_unref(g), 0);
    assert_int_equal(cf_process_pool_shutdown(p, CF_SHUTDOWN_WAIT), 0);
    cf_process_pool_free(p);
}

/* ------------------------------------------------------------------ orphans */

/* Forks a grandchild that leaves the worker's session and waits forever; returns its pid. */
static int t_leave_orphan(cf_task_t *t, void *arg)
{
    pid_t pid = fork();

    (void)arg;
    if (pid == 0) {
        setsid();
        for (;;)
            pause();
    }
    cf_task_set_i64(t, pid);
    return 0;
}

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

/* Is `pid` gone (or a zombie)?  Bounded wait. */
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

/* When the application is SIGKILLed, what its tasks forked (even in a new session) dies too. */
static void test_parent_death_kills_descendants(void **state)
{
    int fds[2], status;
    pid_t child, orphan = 0;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
        cf_loop_t *loop;
        cf_process_pool_t *p;
        cf_process_pool_opts o;
        cf_future_t *f;
        int64_t v = 0;

        close(fds[0]);
        cf_loop_new(ev, &loop);
        cf_process_pool_opts_init(&o);
        o.max_workers = 1;
        if (cf_process_pool_new(loop, &o, &p) || cf_process_pool_submit(p, t_leave_orphan, &v, 8, -1, &f) ||
            cf_future_wait(f, -1) || cf_future_result_i64(f, &v))
            _exit(1);
        orphan = (pid_t)v;
        if (write(fds[1], &orphan, sizeof(orphan)) != (ssize_t)sizeof(orphan))
            _exit(1);
        kill(getpid(), SIGKILL); /* die without any cleanup */
        _exit(1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &orphan, sizeof(orphan)), (ssize_t)sizeof(orphan));
    close(fds[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_true(orphan > 0);
    if (!gone_within(orphan, 10)) {
        kill(orphan, SIGKILL);
        fail_msg("process %d, forked by a task, outlived the application", (int)orphan);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_initializer_death_breaks_the_pool),
        T(test_timeout_after_setpgid),
        T(test_cancel_sent_ahead_never_runs),
        T(test_cancel_sent_ahead_then_worker_dies),
        T(test_shutdown_cancel_covers_sent_ahead),
        T(test_stop_spares_tasks_sent_ahead),
        T(test_stop_for_next_task_spares_result),
        T(test_cancel_after_task_ended_spares_next),
        T(test_argument_over_frame_limit),
        T(test_timeout_zero_is_none),
        T(test_result_out_of_memory),
        T(test_argument_kills_its_workers),
        T(test_worker_killed_between_tasks),
        T(test_worker_killed_during_shutdown),
        T(test_worker_killed_reading_a_task),
        T(test_worker_killed_writing_a_result),
        T(test_full_channels_both_ways),
        T(test_worker_killed_with_channel_full_downwards),
        T(test_fork_server_killed_is_restarted),
        T(test_fork_server_dying_in_a_row_breaks),
        T(test_descriptor_table_full_at_start),
        cmocka_unit_test(test_parent_death_kills_descendants),
    };
    alarm(300); /* a hang fails the run instead of stalling it */
    return cmocka_run_group_tests_name("pp_faults", tests, NULL, NULL);
}
