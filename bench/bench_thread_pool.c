/*
 * bench_thread_pool.c - per-task overhead of the cfutures thread pool.
 *
 * Measurements, not pass/fail.  Each benchmark runs 3 times on a pool created
 * beforehand (thread start-up is not timed); the median is reported.
 *
 *   tp_batch     N no-op tasks submitted at once, each with a done callback;
 *                timed from the first submit until ev_run() returned, i.e.
 *                every task ran and every callback ran.  Reports tasks/s, and
 *                the submit phase alone in ns per task.
 *   tp_pingpong  N sequential round trips: submit a no-op task, its done
 *                callback submits the next one.  Reports microseconds per
 *                round trip (loop -> worker -> loop wake-up latency).
 *
 * Usage: bench_thread_pool [--tasks N] [--rounds N] [--workers N]
 *                          [--spin-us N] [--json]
 *   --tasks N    tasks in tp_batch (default 1000000)
 *   --rounds N   round trips in tp_pingpong (default 100000)
 *   --workers N  pool threads (default: one per CPU)
 *   --spin-us N  how long an idle worker polls before sleeping (default: the pool's)
 *   --json       print one JSON object instead of text
 *
 * Exit status 0, or 1 when the library reported an error (printed with
 * cf_strerror()), 2 on a usage error.
 */
#include <cfutures.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPS 3

static int noop_task(cf_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    return 0;
}

static int report(const char *what, int rc)
{
    fflush(stdout);
    fprintf(stderr, "bench_thread_pool: %s: %s (%s)\n", what, cf_strerror(rc), cf_err_name(rc));
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[REPS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ------------------------------------------------------------------ tp_batch */

struct batch {
    long done;
    long errors;
    int first_error;
};

static void batch_done(cf_future_t *f, int status, void *data)
{
    struct batch *b = data;
    (void)f;
    b->done++;
    if (status != 0 && b->errors++ == 0)
        b->first_error = status;
}

/* One run: *rate in tasks/s, *submit_ns per task for the submit loop alone. */
static int run_batch(struct ev_loop *ev, cf_thread_pool_t *pool, long n, double *rate, double *submit_ns)
{
    struct batch b = {0, 0, 0};
    long submitted = 0;
    int err = 0;

    uint64_t t0 = cf_now_ns();
    for (; submitted < n; submitted++) {
        cf_future_t *f = NULL;
        int rc = cf_thread_pool_submit(pool, noop_task, NULL, NULL, &f);
        if (rc != 0) {
            err = report("cf_thread_pool_submit", rc);
            break;
        }
        rc = cf_future_on_done(f, batch_done, &b, NULL);
        if (rc != 0 && !err)
            err = report("cf_future_on_done", rc);
        /* The callback holds its own reference until it ran. */
        rc = cf_future_unref(f);
        if (rc != 0 && !err)
            err = report("cf_future_unref", rc);
        if (err)
            break;
    }
    uint64_t t1 = cf_now_ns();
    ev_run(ev, 0); /* returns once every task is done and its callback ran */
    uint64_t t2 = cf_now_ns();

    if (err)
        return err;
    if (b.errors)
        return report("a no-op task failed", b.first_error);
    if (b.done != n) {
        fprintf(stderr, "bench_thread_pool: ev_run() returned after %ld of %ld callbacks\n", b.done, n);
        return CF_EFAIL;
    }
    *rate = (double)n / ((double)(t2 - t0) / 1e9);
    *submit_ns = (double)(t1 - t0) / (double)n;
    return 0;
}

/* ------------------------------------------------------------------ tp_pingpong */

struct pingpong {
    cf_thread_pool_t *pool;
    long left; /* round trips still to start */
    long done;
    int err;
};

static void pingpong_done(cf_future_t *f, int status, void *data);

static int pingpong_next(struct pingpong *p)
{
    cf_future_t *f = NULL;
    int rc = cf_thread_pool_submit(p->pool, noop_task, NULL, NULL, &f);
    if (rc != 0)
        return report("cf_thread_pool_submit", rc);
    p->left--;
    int err = cf_future_on_done(f, pingpong_done, p, NULL);
    if (err != 0)
        report("cf_future_on_done", err);
    rc = cf_future_unref(f);
    if (rc != 0 && !err)
        err = report("cf_future_unref", rc);
    return err;
}

static void pingpong_done(cf_future_t *f, int status, void *data)
{
    struct pingpong *p = data;
    (void)f;
    p->done++;
    if (status != 0) {
        p->err = report("a no-op task failed", status);
        return;
    }
    if (p->left > 0)
        p->err = pingpong_next(p);
}

/* One run: *us per round trip. */
static int run_pingpong(struct ev_loop *ev, cf_thread_pool_t *pool, long rounds, double *us)
{
    struct pingpong p = {pool, rounds, 0, 0};

    uint64_t t0 = cf_now_ns();
    int rc = pingpong_next(&p);
    ev_run(ev, 0); /* returns after the last round trip's callback */
    uint64_t t1 = cf_now_ns();

    if (rc != 0)
        return rc;
    if (p.err != 0)
        return p.err;
    if (p.done != rounds) {
        fprintf(stderr, "bench_thread_pool: ev_run() returned after %ld of %ld round trips\n", p.done, rounds);
        return CF_EFAIL;
    }
    *us = (double)(t1 - t0) / 1e3 / (double)rounds;
    return 0;
}

/* ------------------------------------------------------------------ main */

struct options {
    long tasks;
    long rounds;
    int workers; /* 0: default */
    long spin_us; /* -1: default */
    int json;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_thread_pool [--tasks N] [--rounds N] [--workers N] [--spin-us N] [--json]\n"
                 "  --tasks N    no-op tasks submitted at once in tp_batch (default 1000000)\n"
                 "  --rounds N   sequential round trips in tp_pingpong (default 100000)\n"
                 "  --workers N  pool threads (default: one per CPU)\n"
                 "  --spin-us N  microseconds an idle worker polls before sleeping (default: the pool's)\n"
                 "  --json       print one JSON object\n");
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/*
 * Match "--name VALUE" or "--name=VALUE" at argv[*i]; on a match parse the
 * value into *out.  Returns 0 no match, 1 matched, -1 bad or missing value.
 */
static int numeric_opt(int argc, char **argv, int *i, const char *name, long min, long max, long *out)
{
    size_t len = strlen(name);
    const char *val;

    if (strncmp(argv[*i], name, len) != 0)
        return 0;
    if (argv[*i][len] == '=')
        val = argv[*i] + len + 1;
    else if (argv[*i][len] == '\0' && *i + 1 < argc)
        val = argv[++*i];
    else if (argv[*i][len] == '\0')
        val = "";
    else
        return 0;
    if (parse_long(val, min, max, out) != 0) {
        fprintf(stderr, "bench_thread_pool: %s wants a number from %ld to %ld, not '%s'\n", name, min, max, val);
        return -1;
    }
    return 1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        long v = 0;
        int m;
        if ((m = numeric_opt(argc, argv, &i, "--tasks", 1, 100000000, &o->tasks)) != 0 ||
            (m = numeric_opt(argc, argv, &i, "--rounds", 1, 100000000, &o->rounds)) != 0 ||
            (m = numeric_opt(argc, argv, &i, "--spin-us", 0, 1000000, &o->spin_us)) != 0) {
            if (m < 0)
                return 2;
        } else if ((m = numeric_opt(argc, argv, &i, "--workers", 1, 1024, &v)) != 0) {
            if (m < 0)
                return 2;
            o->workers = (int)v;
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "bench_thread_pool: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

static void print_runs_json(const double *v, int n)
{
    printf("[");
    for (int i = 0; i < n; i++)
        printf("%s%.6g", i ? ", " : "", v[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    struct options o = {1000000, 100000, 0, -1, 0};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;

    /* A loop of our own: the benchmark needs nothing from the default loop (its SIGCHLD handling). */
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    if (!ev) {
        fprintf(stderr, "bench_thread_pool: ev_loop_new failed\n");
        return 1;
    }
    cf_loop_t *loop = NULL;
    cf_thread_pool_t *pool = NULL;
    int failed = 0;
    double rate[REPS], submit_ns[REPS], us[REPS];

    rc = cf_loop_new(ev, &loop);
    if (rc != 0) {
        report("cf_loop_new", rc);
        failed = 1;
        goto out;
    }

    cf_thread_pool_opts opts;
    cf_thread_pool_opts_init(&opts);
    if (o.workers > 0)
        opts.max_workers = o.workers;
    if (o.spin_us >= 0)
        opts.spin_us = (unsigned)o.spin_us;
    opts.name_prefix = "bench";
    rc = cf_thread_pool_new(loop, &opts, &pool);
    if (rc != 0) {
        report("cf_thread_pool_new", rc);
        failed = 1;
        goto out;
    }
    int workers = cf_executor_workers(cf_thread_pool_executor(pool));

    if (!o.json) {
        printf("cfutures %s thread pool: %d worker%s, spin %u us, %d CPUs; median of %d runs\n", cf_version(),
               workers, workers == 1 ? "" : "s", opts.spin_us, cf_cpu_count(), REPS);
        printf("%-12s %9ld no-op tasks at once  ", "tp_batch", o.tasks);
        fflush(stdout);
    }
    for (int r = 0; r < REPS; r++) {
        if (run_batch(ev, pool, o.tasks, &rate[r], &submit_ns[r]) != 0) {
            failed = 1;
            goto out;
        }
    }
    if (!o.json)
        printf("%8.3f M tasks/s   (submit alone %.0f ns/task; runs %.3f %.3f %.3f M/s)\n",
               median(rate, REPS) / 1e6, median(submit_ns, REPS), rate[0] / 1e6, rate[1] / 1e6, rate[2] / 1e6);

    if (!o.json) {
        printf("%-12s %9ld round trips         ", "tp_pingpong", o.rounds);
        fflush(stdout);
    }
    for (int r = 0; r < REPS; r++) {
        if (run_pingpong(ev, pool, o.rounds, &us[r]) != 0) {
            failed = 1;
            goto out;
        }
    }
    if (!o.json) {
        printf("%8.2f us/round trip (runs %.2f %.2f %.2f us)\n", median(us, REPS), us[0], us[1], us[2]);
    } else {
        printf("{\"library\": \"cfutures\", \"version\": \"%s\", \"cpus\": %d, \"workers\": %d, \"spin_us\": %u, "
               "\"reps\": %d,\n",
               cf_version(), cf_cpu_count(), workers, opts.spin_us, REPS);
        printf(" \"tp_batch\": {\"tasks\": %ld, \"median_tasks_per_s\": %.6g, \"median_submit_ns_per_task\": %.6g, "
               "\"runs_tasks_per_s\": ",
               o.tasks, median(rate, REPS), median(submit_ns, REPS));
        print_runs_json(rate, REPS);
        printf("},\n \"tp_pingpong\": {\"rounds\": %ld, \"median_us_per_round_trip\": %.6g, \"runs_us\": ", o.rounds,
               median(us, REPS));
        print_runs_json(us, REPS);
        printf("}}\n");
    }

out:
    if (pool)
        cf_thread_pool_free(pool);
    if (loop && (rc = cf_loop_close(loop)) != 0) {
        /* The binding still uses the ev_loop: leak both rather than destroy it under it. */
        report("cf_loop_close", rc);
        failed = 1;
    } else {
        ev_loop_destroy(ev);
    }
    return failed;
}
