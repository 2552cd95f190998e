/*
 * pp_soak.c - a bounded soak of the process pool through the public API.
 *
 * Runs N tasks (default 200,000; `pp_soak N [seed]`) through a process pool
 * with max_tasks_per_child recycling, keeping a window of tasks in flight,
 * and injects faults at random: tasks that kill their worker (SIGKILL,
 * _exit), tasks that run past their timeout, and cancels of tasks still
 * queued or sent ahead to a busy worker.  At the end it checks:
 *   - every future completed exactly once (done callbacks counted);
 *   - every crash failed with CF_EWORKER, every timeout with CF_ETIMEDOUT,
 *     every other task finished with its value or ended CANCELLED;
 *   - a task whose cancel returned 0 never ran, and no task ran twice (the
 *     tasks count their runs in a shared mapping);
 *   - the pool's counters equal the injected faults exactly;
 *   - after cf_process_pool_free(): the same descriptors as before, no
 *     child process; resident memory did not grow past a bound between the
 *     first tenth and the end.
 * Prints its figures and exits 0, or names the first check that failed and
 * exits 1.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include <cfutures.h>

#include <dirent.h>
#include <ev.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

enum kind { K_VALUE, K_KILL, K_EXIT, K_TIMEOUT };

struct arg {
    int64_t i;
    int64_t kind;
};

static _Atomic uint32_t *runs; /* shared with the workers: runs of task i */

static int t_soak(cf_task_t *t, void *data)
{
    size_t len;
    struct arg a;
    volatile uint64_t n = 0;

    (void)data;
    memcpy(&a, cf_task_arg(t, &len), sizeof(a));
    atomic_fetch_add(&runs[a.i], 1);
    switch (a.kind) {
    case K_KILL:
        raise(SIGKILL);
        break;
    case K_EXIT:
        _exit(7);
    case K_TIMEOUT:
        for (;;)
            n++;
    default:
        break;
    }
    cf_task_set_i64(t, a.i * 3);
    return 0;
}

struct soak {
    cf_process_pool_t *pool;
    long n, next, done_cbs;
    long window;
    uint8_t *kind;        /* per task */
    int8_t *cancel_rc;    /* per task: 1 not cancelled, 0 cancel returned 0, -1 CF_EBUSY */
    uint8_t *completions; /* per task: done callbacks seen */
    int *status;          /* per task: final status */
    cf_future_t **fs;     /* until done */
    long inflight;
    long injected[4], cancels0, cancels_busy;
    unsigned seed;
    int bad;
};

static void fail(struct soak *s, const char *what, long i)
{
    if (!s->bad)
        fprintf(stderr, "pp_soak: FAILED: %s (task %ld)\n", what, i);
    s->bad = 1;
}

static struct soak S;

static long rss_kib(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static int count_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char path[300], buf[512], *p;
        FILE *f;
        int ppid;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
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

static void submit_more(void);

static void on_done(cf_future_t *f, int status, void *data)
{
    long i = (long)(intptr_t)data;
    int64_t v = -1;

    S.completions[i]++;
    S.status[i] = status;
    if (status == 0 && (cf_future_result_i64(f, &v) || v != i * 3))
        fail(&S, "a value task did not finish with its value", i);
    if (status != 0 && S.kind[i] == K_VALUE && S.cancel_rc[i] == 1)
        fprintf(stderr, "pp_soak: value task %ld: %s: %s\n", i, cf_err_name(status), cf_future_error(f));
    S.fs[i] = NULL;
    cf_future_unref(f); /* the future is done with: memory must stay flat */
    S.done_cbs++;
    S.inflight--;
    submit_more();
}

/* Submit up to the window; inject faults and cancels. */
static void submit_more(void)
{
    while (S.next < S.n && S.inflight < S.window) {
        long i = S.next++;
        unsigned r = (unsigned)rand_r(&S.seed) % 10000;
        struct arg a = {.i = i, .kind = r < 6 ? K_KILL : r < 12 ? K_EXIT : r < 14 ? K_TIMEOUT : K_VALUE};
        cf_future_t *f;

        S.kind[i] = (uint8_t)a.kind;
        S.cancel_rc[i] = 1;
        if (cf_process_pool_submit(S.pool, t_soak, &a, sizeof(a), a.kind == K_TIMEOUT ? 0.02 : -1, &f)) {
            fail(&S, "submit refused", i);
            S.next = S.n;
            return;
        }
        S.injected[a.kind]++;
        S.fs[i] = f;
        S.inflight++;
        if (cf_future_on_done(f, on_done, (void *)(intptr_t)i, NULL)) {
            fail(&S, "on_done refused", i);
            return;
        }
        /* Cancel, now and then, a value task submitted a few before: queued,
         * sent ahead to a busy worker, or already running (not one that
         * finished and whose callback is still due: that is CF_EALREADY). */
        long j = i - 1 - (long)(rand_r(&S.seed) % 8);
        if (r >= 9900 && j >= 0 && S.kind[j] == K_VALUE && S.cancel_rc[j] == 1 && !S.completions[j] &&
            cf_future_get_state(S.fs[j]) < CF_FUTURE_FINISHED) {
            int rc = cf_future_cancel(S.fs[j]);
            if (rc == 0) {
                S.cancel_rc[j] = 0;
                S.cancels0++;
                if (cf_future_get_state(S.fs[j]) != CF_FUTURE_CANCELLED)
                    fail(&S, "cancel returned 0 but the future is not CANCELLED", j);
            } else if (rc == CF_EBUSY) {
                S.cancel_rc[j] = -1;
                S.cancels_busy++;
            } else {
                fail(&S, "unexpected cancel result", j);
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    struct rlimit nocore = {0, 0};
    cf_process_pool_opts o;
    cf_pool_stats st;
    cf_loop_t *loop;
    long rss_early = 0, rss_end, restarts = 0, finished = 0, worker_fail = 0, timed_out = 0, cancelled = 0;
    int fds_before, fds_after, children_after;
    uint64_t t0;

    S.n = argc > 1 ? atol(argv[1]) : 200000;
    S.seed = argc > 2 ? (unsigned)atol(argv[2]) : 12345u;
    S.window = 256;
    if (S.n < 1 || !ev || cf_loop_new(ev, &loop))
        return 2;
    setrlimit(RLIMIT_CORE, &nocore); /* crashes on purpose: no core files */
    runs = mmap(NULL, (size_t)S.n * sizeof(*runs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    S.kind = calloc((size_t)S.n, 1);
    S.cancel_rc = calloc((size_t)S.n, 1);
    S.completions = calloc((size_t)S.n, 1);
    S.status = calloc((size_t)S.n, sizeof(int));
    S.fs = calloc((size_t)S.n, sizeof(*S.fs));
    if (runs == MAP_FAILED || !S.kind || !S.cancel_rc || !S.completions || !S.status || !S.fs)
        return 2;
    /* Touch the bookkeeping now, so that resident memory measures the pool. */
    memset((void *)runs, 0, (size_t)S.n * sizeof(*runs));
    memset(S.kind, 0, (size_t)S.n);
    memset(S.cancel_rc, 1, (size_t)S.n);
    memset(S.completions, 0, (size_t)S.n);
    memset(S.status, 0, (size_t)S.n * sizeof(int));
    memset(S.fs, 0, (size_t)S.n * sizeof(*S.fs));
    fds_before = count_fds();
    cf_process_pool_opts_init(&o);
    o.max_workers = 2;
    o.max_tasks_per_child = 997;
    o.kill_grace = 0.02;
    if (cf_process_pool_new(loop, &o, &S.pool))
        return 2;
    t0 = cf_now_ns();
    submit_more();
    while (S.done_cbs < S.next || S.next < S.n) {
        ev_run(ev, EVRUN_ONCE);
        if (!rss_early && S.done_cbs >= S.n / 10)
            rss_early = rss_kib();
    }
    double secs = (double)(cf_now_ns() - t0) / 1e9;
    rss_end = rss_kib();

    for (long i = 0; i < S.n; i++) {
        if (S.completions[i] != 1)
            fail(&S, "future did not complete exactly once", i);
        if (atomic_load(&runs[i]) > 1)
            fail(&S, "task ran more than once", i);
        switch (S.kind[i]) {
        case K_KILL:
        case K_EXIT:
            worker_fail++;
            if (S.status[i] != CF_EWORKER)
                fail(&S, "a crash did not end CF_EWORKER", i);
            break;
        case K_TIMEOUT:
            timed_out++;
            if (S.status[i] != CF_ETIMEDOUT)
                fail(&S, "a timeout did not end CF_ETIMEDOUT", i);
            break;
        default:
            if (S.cancel_rc[i] == 0) {
                cancelled++;
                if (S.status[i] != CF_ECANCELED)
                    fail(&S, "a task cancelled with 0 did not end CANCELLED", i);
                if (atomic_load(&runs[i]) != 0)
                    fail(&S, "a task cancelled with 0 ran", i);
            } else if (S.cancel_rc[i] < 0) {
                cancelled++;
                if (S.status[i] != CF_ECANCELED)
                    fail(&S, "a running task cancelled did not end CANCELLED", i);
            } else {
                finished++;
                if (S.status[i] != 0) {
                    fprintf(stderr, "pp_soak: task %ld ended %s\n", i, cf_err_name(S.status[i]));
                    fail(&S, "a value task did not finish", i);
                }
                if (atomic_load(&runs[i]) != 1)
                    fail(&S, "a finished task did not run exactly once", i);
            }
        }
    }
    cf_process_pool_stats(S.pool, &st);
    if ((long)st.submitted != S.n || (long)st.completed != finished || (long)st.failed != worker_fail + timed_out ||
        (long)st.cancelled != cancelled)
        fail(&S, "pool counters differ from the injected faults", -1);
    for (int w = 0; w < o.max_workers; w++) {
        cf_worker_info wi;
        cf_process_pool_worker_info(S.pool, w, &wi);
        restarts += (long)wi.restarts;
    }
    if (cf_process_pool_shutdown(S.pool, CF_SHUTDOWN_WAIT))
        fail(&S, "shutdown(WAIT) failed", -1);
    cf_process_pool_free(S.pool);
    fds_after = count_fds();
    children_after = count_children();
    if (fds_after != fds_before)
        fail(&S, "descriptors leaked", fds_after - fds_before);
    if (children_after != 0)
        fail(&S, "child processes left", children_after);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* (Sanitizers hold freed memory in quarantine: resident memory says nothing there.) */
    if (rss_end - rss_early > 16 * 1024)
        fail(&S, "resident memory grew by more than 16 MiB", rss_end - rss_early);
#endif

    printf("pp_soak: %ld tasks in %.1f s (%.0f tasks/s), 2 workers, max_tasks_per_child %u\n", S.n, secs,
           (double)S.n / secs, o.max_tasks_per_child);
    printf("  injected: %ld SIGKILL, %ld _exit, %ld timeouts; cancels: %ld returned 0, %ld CF_EBUSY\n",
           S.injected[K_KILL], S.injected[K_EXIT], S.injected[K_TIMEOUT], S.cancels0, S.cancels_busy);
    printf("  pool: completed %llu, failed %llu, cancelled %llu; worker restarts %ld\n",
           (unsigned long long)st.completed, (unsigned long long)st.failed, (unsigned long long)st.cancelled, restarts);
    printf("  descriptors %d -> %d, children after free %d, RSS %ld KiB at 10%% -> %ld KiB at the end\n", fds_before,
           fds_after, children_after, rss_early, rss_end);
    printf("pp_soak: %s\n", S.bad ? "FAILED" : "ok");
    cf_loop_close(loop);
    ev_loop_destroy(ev);
    return S.bad ? 1 : 0;
}
