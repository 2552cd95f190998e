/*
 * cfbench.c - the cfutures side of bench/run: one case per run, one JSON line.
 *
 *   cfbench --case KEY [--n N] [--workers N] [--spin-us N]
 *
 * Cases (the keys of bench/results.json; defaults for --n in brackets):
 *   tp_batch        [1000000]  N no-op thread-pool tasks submitted at once, each
 *                              with a done callback; from the first submit until
 *                              ev_run() returned (every callback ran). tasks/s
 *   tp_pingpong     [100000]   N sequential submit -> done callback -> submit
 *                              round trips on the thread pool. us per round trip
 *   pp_unchunked    [100000]   N no-op process-pool tasks at once, one message
 *                              each, each with a done callback. us per task
 *   pp_pingpong     [10000]    N sequential round trips through a worker
 *                              process. us per round trip
 *   pp_map_chunked  [1000000]  cf_map of f(x) = x*x + 1 over N int64 items on
 *                              the process pool, automatic chunksize. items/s
 *   scaling         [99999]    the seed's map (f(x) = sum over k = 1..51 of
 *                              x^(1/k^1.5)) serially, then on the thread pool
 *                              and on the process pool with automatic
 *                              chunksize, three alternating rounds, best time
 *                              of each; value = the smaller speed-up. x
 *   mem_pending     [1000000]  RSS growth per pending future: N no-op tasks
 *                              queued behind workers that are held busy. bytes
 *   chunk1          [99999]    the seed map with chunksize 1 and auto-chunked on
 *                              both pools, three alternating rounds, best time
 *                              of each; value = the larger slow-down. x
 *   map_stream      [10000000] a lazy map of N items from a pull callback on
 *                              the thread pool; value = peak RSS. MiB
 *   tp_idle_cpu     [10000]    a burst of N no-op tasks, then the loop runs
 *                              idle (an ev_timer) for 2 s with the pool alive;
 *                              value = CPU time (user + system, every thread)
 *                              the process used in those 2 s. ms
 *
 * Pools are created (and warmed up with one task) before timing; the process
 * pool is always created before any thread exists.  Each run measures once:
 * bench/run repeats runs and takes medians.  Every result is checked; a wrong
 * one is an error.
 *
 * Output: {"case": KEY, "unit": U, "value": V, "n": N, ...} on stdout.
 * Exit status 0, 1 on a library error or a wrong result, 2 on a usage error.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <cfutures.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *name;
    long n;
    int workers;
    long spin_us; /* -1: the pool's default */
} opt = {NULL, 0, 2, -1};

static struct ev_loop *ev;
static cf_loop_t *loop;
static cf_thread_pool_t *tpool;
static cf_process_pool_t *ppool;

static int fail(const char *what, int rc)
{
    fflush(stdout);
    fprintf(stderr, "cfbench %s: %s: %s (%s)\n", opt.name, what, cf_strerror(rc), cf_err_name(rc));
    return 1;
}

static double secs_since(uint64_t t0)
{
    return (double)(cf_now_ns() - t0) / 1e9;
}

/* CPU seconds (user + system) used so far by `who` (RUSAGE_SELF: every thread). */
static double cpu_secs(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU time of the timed part of a case: the whole process, and the loop thread alone. */
static double cpu0_all, cpu0_loop, cpu_all, cpu_loop;

static void cpu_start(void)
{
    cpu0_all = cpu_secs(RUSAGE_SELF);
    cpu0_loop = cpu_secs(RUSAGE_THREAD);
}

static void cpu_stop(void)
{
    cpu_all = cpu_secs(RUSAGE_SELF) - cpu0_all;
    cpu_loop = cpu_secs(RUSAGE_THREAD) - cpu0_loop;
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), -1 if unreadable. */
static long proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t len = strlen(field);

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int noop_task(cf_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    return 0;
}

static int open_thread_pool(void)
{
    cf_thread_pool_opts o;
    cf_thread_pool_opts_init(&o);
    o.max_workers = opt.workers;
    if (opt.spin_us >= 0)
        o.spin_us = (unsigned)opt.spin_us;
    int rc = cf_thread_pool_new(loop, &o, &tpool);
    return rc ? fail("cf_thread_pool_new", rc) : 0;
}

static int open_process_pool(void)
{
    cf_process_pool_opts o;
    cf_process_pool_opts_init(&o);
    o.max_workers = opt.workers;
    int rc = cf_process_pool_new(loop, &o, &ppool);
    return rc ? fail("cf_process_pool_new", rc) : 0;
}

/* Submit one no-op to `ex` (pointer form on the thread pool, bytes on the process pool). */
static int submit_noop(cf_executor_t *ex, cf_future_t **f)
{
    if (tpool && ex == cf_thread_pool_executor(tpool))
        return cf_thread_pool_submit(tpool, noop_task, NULL, NULL, f);
    return cf_process_pool_submit(ppool, noop_task, NULL, 0, -1, f);
}

/* Run one task through `ex` and wait for it: workers exist and caches are warm before timing. */
static int warm_up(cf_executor_t *ex)
{
    cf_future_t *f = NULL;
    int rc = submit_noop(ex, &f);
    if (rc == 0)
        rc = cf_future_wait(f, -1);
    if (rc == 0)
        rc = cf_future_status(f);
    if (f)
        cf_future_unref(f);
    return rc ? fail("warm-up task", rc) : 0;
}

/* ------------------------------------------------------------------ batch: N at once */

struct counter {
    long done;
    long errors;
    int first_error;
};

static void count_done(cf_future_t *f, int status, void *data)
{
    struct counter *c = data;
    (void)f;
    c->done++;
    if (status != 0 && c->errors++ == 0)
        c->first_error = status;
}

/* N no-ops at once on `ex`, each with a done callback; seconds until ev_run() returned. */
static int run_batch(cf_executor_t *ex, long n, double *secs)
{
    struct counter c = {0, 0, 0};
    const char *failed = NULL;
    int rc = 0;
    uint64_t t0 = cf_now_ns();
    cpu_start();
    for (long i = 0; i < n; i++) {
        cf_future_t *f = NULL;
        rc = submit_noop(ex, &f);
        if (rc != 0) {
            failed = "submit";
            break;
        }
        rc = cf_future_on_done(f, count_done, &c, NULL);
        cf_future_unref(f); /* the callback holds its own reference */
        if (rc != 0) {
            failed = "cf_future_on_done";
            break;
        }
    }
    /* Returns once every task is done and its callback ran.  Also after a
     * failed submit: the callbacks registered so far count into `c`, which
     * lives in this frame. */
    ev_run(ev, 0);
    *secs = secs_since(t0);
    cpu_stop();
    if (failed)
        return fail(failed, rc);
    if (c.errors)
        return fail("a no-op task failed", c.first_error);
    if (c.done != n) {
        fprintf(stderr, "cfbench: ev_run() returned after %ld of %ld callbacks\n", c.done, n);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ ping-pong: one at a time */

struct pingpong {
    cf_executor_t *ex;
    long left;
    long done;
    int err;
};

static void pingpong_done(cf_future_t *f, int status, void *data);

static void pingpong_next(struct pingpong *p)
{
    cf_future_t *f = NULL;
    int rc = submit_noop(p->ex, &f);
    if (rc == 0) {
        rc = cf_future_on_done(f, pingpong_done, p, NULL);
        cf_future_unref(f);
    }
    if (rc != 0)
        p->err = fail("submit", rc);
    p->left--;
}

static void pingpong_done(cf_future_t *f, int status, void *data)
{
    struct pingpong *p = data;
    (void)f;
    p->done++;
    if (status != 0)
        p->err = fail("a no-op task failed", status);
    else if (p->left > 0)
        pingpong_next(p);
}

static int run_pingpong(cf_executor_t *ex, long n, double *secs)
{
    struct pingpong p = {ex, n, 0, 0};
    uint64_t t0 = cf_now_ns();
    cpu_start();
    pingpong_next(&p);
    ev_run(ev, 0);
    *secs = secs_since(t0);
    cpu_stop();
    if (p.err)
        return p.err;
    if (p.done != n) {
        fprintf(stderr, "cfbench: ev_run() returned after %ld of %ld round trips\n", p.done, n);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ maps */

static int small_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, x * x + 1);
    return 0;
}

static double seed_f(int64_t x)
{
    double s = 0;
    for (int k = 1; k <= 51; k++)
        s += pow((double)x, 1.0 / pow((double)k, 1.5));
    return s;
}

static int seed_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_f64(t, seed_f(x));
    return 0;
}

/* Map fn over xs on ex (automatic chunksize); check against want_i64/want_f64; seconds. */
static int run_map_cs(cf_executor_t *ex, cf_map_fn fn, const int64_t *xs, size_t n, const double *want,
                      size_t want_cs, double *secs, size_t *chunksize)
{
    cf_map_t *m = NULL;
    cf_map_result r;
    cf_map_opts o;
    size_t got = 0, wrong = 0;
    uint64_t t0 = cf_now_ns();
    cf_map_opts_init(&o);
    o.chunksize = want_cs;
    int rc = cf_map_new_array(ex, fn, xs, n, sizeof(xs[0]), &o, &m);
    if (rc != 0)
        return fail("cf_map_new_array", rc);
    while ((rc = cf_map_next(m, &r)) == 0) {
        if (want)
            wrong += r.status != 0 || r.index != got || r.f64 != want[r.index];
        else
            wrong += r.status != 0 || r.index != got || r.i64 != xs[r.index] * xs[r.index] + 1;
        got++;
    }
    *secs = secs_since(t0);
    *chunksize = cf_map_chunksize(m);
    cf_map_free(m);
    if (rc != CF_EOF)
        return fail("cf_map_next", rc);
    if (wrong || got != n) {
        fprintf(stderr, "cfbench: map: %zu wrong of %zu results (expected %zu)\n", wrong, got, n);
        return 1;
    }
    return 0;
}

static int run_map(cf_executor_t *ex, cf_map_fn fn, const int64_t *xs, size_t n, const double *want, double *secs,
                   size_t *chunksize)
{
    return run_map_cs(ex, fn, xs, n, want, 0, secs, chunksize);
}

#define SCALING_ROUNDS 3

static int64_t *iota(size_t n)
{
    int64_t *xs = malloc(n * sizeof(*xs));
    if (xs)
        for (size_t i = 0; i < n; i++)
            xs[i] = (int64_t)i;
    return xs;
}

struct stream {
    int64_t next, end, value;
    long delivered;
};

static int stream_pull(void *src, const void **item, size_t *len)
{
    struct stream *s = src;
    if (s->next >= s->end)
        return 0;
    s->value = s->next++;
    *item = &s->value;
    *len = sizeof(s->value);
    return 1;
}

static int stream_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    struct stream *s = data;
    (void)m;
    if (r->status != 0 || r->i64 != (int64_t)r->index * (int64_t)r->index + 1)
        return 1; /* stops the map: reported as a wrong count below */
    s->delivered++;
    return 0;
}

/* ------------------------------------------------------------------ mem_pending */

/* Held-busy workers: each blocks until the gate opens. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_waiting;

static int gate_task(cf_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    gate_waiting++;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return 0;
}

static int run_mem_pending(long n, double *bytes_per, long *rss_delta_kib)
{
    cf_future_t **fs = malloc((size_t)n * sizeof(*fs));
    cf_future_t *gates[64];
    int nw = opt.workers < 64 ? opt.workers : 64, rc = 0;
    if (!fs)
        return fail("malloc", CF_ENOMEM);
    /* Touch the caller's array now: it is not the runtime's memory.  (Not with
     * zeros: malloc + memset(0) may become calloc, which touches nothing.) */
    memset(fs, 0xff, (size_t)n * sizeof(*fs));

    for (int i = 0; i < nw; i++)
        if ((rc = cf_thread_pool_submit(tpool, gate_task, NULL, NULL, &gates[i])) != 0)
            return fail("cf_thread_pool_submit", rc);
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < nw)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);

    long before = proc_status_kib("VmRSS");
    for (long i = 0; i < n; i++)
        if ((rc = cf_thread_pool_submit(tpool, noop_task, NULL, NULL, &fs[i])) != 0)
            return fail("cf_thread_pool_submit", rc);
    long after = proc_status_kib("VmRSS");
    cf_pool_stats st;
    cf_thread_pool_stats(tpool, &st);

    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    ev_run(ev, 0);
    for (long i = 0; i < n; i++) {
        if (cf_future_status(fs[i]) != 0)
            rc = 1;
        cf_future_unref(fs[i]);
    }
    for (int i = 0; i < nw; i++)
        cf_future_unref(gates[i]);
    free(fs);
    if (st.queued != (uint64_t)n) {
        fprintf(stderr, "cfbench: %llu tasks queued, expected %ld\n", (unsigned long long)st.queued, n);
        return 1;
    }
    *rss_delta_kib = after - before;
    *bytes_per = (double)(after - before) * 1024.0 / (double)n;
    return rc;
}

/* ------------------------------------------------------------------ tp_idle_cpu */

static void idle_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* CPU time the process uses while the loop sits idle for `secs` after a burst of n tasks. */
static int run_idle_cpu(long n, double secs, double *cpu_ms, double *loop_ms)
{
    double dummy;
    ev_timer t;
    int rc = run_batch(cf_thread_pool_executor(tpool), n, &dummy);
    if (rc)
        return rc;
    ev_timer_init(&t, idle_timer_cb, secs, 0.);
    cpu_start();
    ev_timer_start(ev, &t);
    ev_run(ev, 0); /* only the timer keeps it running */
    cpu_stop();
    *cpu_ms = cpu_all * 1e3;
    *loop_ms = cpu_loop * 1e3;
    return 0;
}

/* ------------------------------------------------------------------ main */

static long default_n(const char *c)
{
    static const struct {
        const char *name;
        long n;
    } d[] = {{"tp_batch", 1000000},       {"tp_pingpong", 100000}, {"pp_unchunked", 100000},
             {"pp_pingpong", 10000},      {"pp_map_chunked", 1000000}, {"scaling", 99999},
             {"mem_pending", 1000000},    {"map_stream", 10000000}, {"tp_idle_cpu", 10000},
             {"chunk1", 99999}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        if (strcmp(d[i].name, c) == 0)
            return d[i].n;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cfbench --case KEY [--n N] [--workers N] [--spin-us N]\n"
               "cases: tp_batch tp_pingpong pp_unchunked pp_pingpong pp_map_chunked scaling mem_pending map_stream\n"
               "       tp_idle_cpu chunk1\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int run_case(void)
{
    const char *c = opt.name;
    long n = opt.n;
    double secs = 0;
    int rc;

    /* The process pool first, while this process has one thread. */
    int need_pp = !strncmp(c, "pp_", 3) || !strcmp(c, "scaling") || !strcmp(c, "chunk1");
    int need_tp = !strncmp(c, "tp_", 3) || !strcmp(c, "scaling") || !strcmp(c, "chunk1") || !strcmp(c, "mem_pending") ||
                  !strcmp(c, "map_stream");
    if ((need_pp && open_process_pool()) || (need_tp && open_thread_pool()))
        return 1;
    if ((ppool && warm_up(cf_process_pool_executor(ppool))) || (tpool && warm_up(cf_thread_pool_executor(tpool))))
        return 1;

    if (!strcmp(c, "tp_batch") || !strcmp(c, "pp_unchunked")) {
        int tp = c[0] == 't';
        cf_executor_t *ex = tp ? cf_thread_pool_executor(tpool) : cf_process_pool_executor(ppool);
        if ((rc = run_batch(ex, n, &secs)) != 0)
            return rc;
        if (tp)
            printf("{\"case\": \"%s\", \"unit\": \"tasks/s\", \"value\": %.6g, \"n\": %ld, \"seconds\": %.6f, "
                   "\"cpu_ns_per_task\": %.1f, \"loop_cpu_ns_per_task\": %.1f",
                   c, (double)n / secs, n, secs, cpu_all * 1e9 / (double)n, cpu_loop * 1e9 / (double)n);
        else
            printf("{\"case\": \"%s\", \"unit\": \"us\", \"value\": %.6g, \"n\": %ld, \"seconds\": %.6f", c,
                   secs * 1e6 / (double)n, n, secs);
    } else if (!strcmp(c, "tp_pingpong") || !strcmp(c, "pp_pingpong")) {
        cf_executor_t *ex = c[0] == 't' ? cf_thread_pool_executor(tpool) : cf_process_pool_executor(ppool);
        if ((rc = run_pingpong(ex, n, &secs)) != 0)
            return rc;
        printf("{\"case\": \"%s\", \"unit\": \"us\", \"value\": %.6g, \"n\": %ld, \"seconds\": %.6f, "
               "\"cpu_us_per_trip\": %.3f, \"loop_cpu_us_per_trip\": %.3f",
               c, secs * 1e6 / (double)n, n, secs, cpu_all * 1e6 / (double)n, cpu_loop * 1e6 / (double)n);
    } else if (!strcmp(c, "pp_map_chunked")) {
        int64_t *xs = iota((size_t)n);
        size_t cs = 0;
        if (!xs)
            return fail("malloc", CF_ENOMEM);
        rc = run_map(cf_process_pool_executor(ppool), small_item, xs, (size_t)n, NULL, &secs, &cs);
        free(xs);
        if (rc)
            return rc;
        printf("{\"case\": \"%s\", \"unit\": \"items/s\", \"value\": %.6g, \"n\": %ld, \"seconds\": %.6f, "
               "\"chunksize\": %zu",
               c, (double)n / secs, n, secs, cs);
    } else if (!strcmp(c, "scaling")) {
        int64_t *xs = iota((size_t)n);
        double *want = malloc((size_t)n * sizeof(*want));
        double tp_s = 0, pp_s = 0;
        size_t tp_cs = 0, pp_cs = 0;
        if (!xs || !want) {
            free(xs);
            free(want);
            return fail("malloc", CF_ENOMEM);
        }
        /*
         * Three rounds of serial, thread pool, process pool, alternating; the
         * best time of each counts (the same for all three), so a moment of
         * outside load does not decide the ratio.
         */
        double serial = 0;
        rc = 0;
        for (int round = 0; round < SCALING_ROUNDS && !rc; round++) {
            double s1, t1, p1;
            uint64_t t0 = cf_now_ns();
            for (long i = 0; i < n; i++)
                want[i] = seed_f(xs[i]);
            s1 = secs_since(t0);
            rc = run_map(cf_thread_pool_executor(tpool), seed_item, xs, (size_t)n, want, &t1, &tp_cs);
            if (!rc)
                rc = run_map(cf_process_pool_executor(ppool), seed_item, xs, (size_t)n, want, &p1, &pp_cs);
            serial = round == 0 || s1 < serial ? s1 : serial;
            tp_s = round == 0 || t1 < tp_s ? t1 : tp_s;
            pp_s = round == 0 || p1 < pp_s ? p1 : pp_s;
        }
        free(xs);
        free(want);
        if (rc)
            return rc;
        double tp_x = serial / tp_s, pp_x = serial / pp_s;
        printf("{\"case\": \"%s\", \"unit\": \"x\", \"value\": %.4f, \"n\": %ld, \"serial_s\": %.4f, "
               "\"thread_s\": %.4f, \"thread_speedup\": %.4f, \"thread_chunksize\": %zu, \"process_s\": %.4f, "
               "\"process_speedup\": %.4f, \"process_chunksize\": %zu",
               c, tp_x < pp_x ? tp_x : pp_x, n, serial, tp_s, tp_x, tp_cs, pp_s, pp_x, pp_cs);
    } else if (!strcmp(c, "chunk1")) {
        /*
         * The seed map with chunksize 1 and auto-chunked, on each pool,
         * alternating, best of SCALING_ROUNDS each; value = the larger of
         * the two slow-downs (chunksize 1 time / auto time).
         */
        int64_t *xs = iota((size_t)n);
        double *want = malloc((size_t)n * sizeof(*want));
        double best[2][2] = {{0, 0}, {0, 0}}; /* [pool: thread, process][auto, chunksize 1] */
        size_t cs_auto[2] = {0, 0}, cs;
        if (!xs || !want) {
            free(xs);
            free(want);
            return fail("malloc", CF_ENOMEM);
        }
        for (long i = 0; i < n; i++)
            want[i] = seed_f(xs[i]);
        rc = 0;
        for (int round = 0; round < SCALING_ROUNDS && !rc; round++)
            for (int pool = 0; pool < 2 && !rc; pool++)
                for (int one = 0; one < 2 && !rc; one++) {
                    cf_executor_t *ex = pool ? cf_process_pool_executor(ppool) : cf_thread_pool_executor(tpool);
                    double t;
                    rc = run_map_cs(ex, seed_item, xs, (size_t)n, want, one ? 1 : 0, &t, &cs);
                    if (!one)
                        cs_auto[pool] = cs;
                    if (round == 0 || t < best[pool][one])
                        best[pool][one] = t;
                }
        free(xs);
        free(want);
        if (rc)
            return rc;
        double tx = best[0][1] / best[0][0], px = best[1][1] / best[1][0];
        printf("{\"case\": \"%s\", \"unit\": \"x\", \"value\": %.4f, \"n\": %ld, \"thread_auto_s\": %.4f, "
               "\"thread_one_s\": %.4f, \"thread_ratio\": %.4f, \"thread_chunksize\": %zu, \"process_auto_s\": %.4f, "
               "\"process_one_s\": %.4f, \"process_ratio\": %.4f, \"process_chunksize\": %zu",
               c, tx > px ? tx : px, n, best[0][0], best[0][1], tx, cs_auto[0], best[1][0], best[1][1], px,
               cs_auto[1]);
    } else if (!strcmp(c, "mem_pending")) {
        double per = 0;
        long delta = 0;
        if ((rc = run_mem_pending(n, &per, &delta)) != 0)
            return rc;
        printf("{\"case\": \"%s\", \"unit\": \"bytes\", \"value\": %.1f, \"n\": %ld, \"rss_delta_kib\": %ld", c, per,
               n, delta);
    } else if (!strcmp(c, "map_stream")) {
        struct stream s = {0, n, 0, 0};
        cf_map_t *m = NULL;
        cf_future_t *done = NULL;
        long hwm0 = proc_status_kib("VmHWM");
        uint64_t t0 = cf_now_ns();
        rc = cf_map_new(cf_thread_pool_executor(tpool), small_item, stream_pull, &s, NULL, &m);
        if (rc == 0)
            rc = cf_map_each(m, stream_cb, &s, &done);
        if (rc != 0) {
            cf_map_free(m); /* holds &s, which this block owns */
            return fail("cf_map", rc);
        }
        ev_run(ev, 0);
        secs = secs_since(t0);
        int st = cf_future_status(done);
        cf_future_unref(done);
        cf_map_free(m);
        if (st != 0 || s.delivered != n) {
            fprintf(stderr, "cfbench: map_stream delivered %ld of %ld (%s)\n", s.delivered, n, cf_strerror(st));
            return 1;
        }
        long hwm = proc_status_kib("VmHWM");
        printf("{\"case\": \"%s\", \"unit\": \"MiB\", \"value\": %.2f, \"n\": %ld, \"seconds\": %.4f, "
               "\"items_per_s\": %.6g, \"hwm_before_mib\": %.2f",
               c, (double)hwm / 1024.0, n, secs, (double)n / secs, (double)hwm0 / 1024.0);
    } else if (!strcmp(c, "tp_idle_cpu")) {
        double cpu_ms = 0, loop_ms = 0;
        if ((rc = run_idle_cpu(n, 2.0, &cpu_ms, &loop_ms)) != 0)
            return rc;
        printf("{\"case\": \"%s\", \"unit\": \"ms\", \"value\": %.3f, \"n\": %ld, \"idle_seconds\": 2, "
               "\"loop_cpu_ms\": %.3f",
               c, cpu_ms, n, loop_ms);
    } else {
        fprintf(stderr, "cfbench: unknown case '%s'\n", c);
        usage(stderr);
        return 2;
    }
    printf(", \"workers\": %d, \"library\": \"cfutures %s\"}\n", opt.workers, cf_version());
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        long v;
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--case") && has) {
            opt.name = argv[++i];
        } else if (!strcmp(argv[i], "--n") && has && parse_long(argv[++i], 1, 1000000000, &v) == 0) {
            opt.n = v;
        } else if (!strcmp(argv[i], "--workers") && has && parse_long(argv[++i], 1, 1024, &v) == 0) {
            opt.workers = (int)v;
        } else if (!strcmp(argv[i], "--spin-us") && has && parse_long(argv[++i], 0, 1000000, &v) == 0) {
            opt.spin_us = v;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cfbench: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!opt.name || !default_n(opt.name)) {
        usage(stderr);
        return 2;
    }
    if (!opt.n)
        opt.n = default_n(opt.name);

    ev = ev_loop_new(EVFLAG_AUTO);
    if (!ev || cf_loop_new(ev, &loop) != 0) {
        fprintf(stderr, "cfbench: cannot create the loop\n");
        return 1;
    }
    int rc = run_case();
    if (tpool)
        cf_thread_pool_free(tpool);
    if (ppool)
        cf_process_pool_free(ppool);
    ev_run(ev, 0);
    if (cf_loop_close(loop) == 0)
        ev_loop_destroy(ev);
    return rc;
}
