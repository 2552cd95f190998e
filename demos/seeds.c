/*
 * seeds.c - the seed programs of cfutures, on a thread pool and a process pool.
 *
 * The project started from articles that show Python's concurrent.futures on
 * small CPU-bound programs.  This demo runs the same programs with cfutures and
 * times each one serially, on a thread pool and on a process pool:
 *
 *   1. fib(25..37): one task per number, results printed from done callbacks
 *      as they complete; ev_run() returns by itself once every task is done.
 *   2. fib(30..34) where the task for 34 raises "Don't do this": the error
 *      arrives through the same done callback as the values.
 *      Then the seed's map() version: cf_map yields fib(30..33) in input
 *      order, then the error of 34 ends the iteration.
 *   3. Brute-force gcd of six pairs, results in input order with cf_map
 *      (Python's list(pool.map(gcd, numbers))), read with the blocking
 *      iterator cf_map_next().
 *   4. map with and without chunksize: f(x) = sum of x^(1/k^1.5) for
 *      k = 1..51 over 99,999 items, chunksize 1 vs automatic chunking,
 *      every result checked against the serial run.
 *   5. The md5 walk: hash every file under a directory (default: the source
 *      tree) with libcrypto's MD5, digests checked against the serial run.
 *
 * Parts 1 and 2 submit with cf_executor_submit_bytes(), part 3 uses cf_map,
 * part 4 the script layer's cf_map_i64_f64(): the same code runs on both
 * pools through the executor interface.  One cf_runtime_t owns the loop and
 * both pools; it creates the process pool first, before the thread pool
 * starts threads, so the fork server is forked from a single-threaded process.
 *
 * Installed as cfseeds.
 *
 * Usage: cfseeds [--workers N] [--quick] [--md5-dir DIR] | --help | --version
 *   --workers N    workers in each pool (default: one per CPU)
 *   --quick        fib over 25..30 in part 1 and 9,999 items in part 4
 *   --md5-dir DIR  directory for part 5 (default: the source tree it was built
 *                  from, or the current directory when that is gone)
 *
 * Exit status: 0 when every result is right, 1 on a wrong result or a library
 * error (printed with cf_strerror()), 2 on a usage error.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* nftw, strdup */
#include <cfutures.h>

#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CF_HAVE_LIBCRYPTO
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#endif

#ifndef CF_SOURCE_DIR
#define CF_SOURCE_DIR "."
#endif

/* ------------------------------------------------------------------ the work */

static int64_t fib(int n)
{
    if (n <= 2)
        return 1;
    return fib(n - 1) + fib(n - 2);
}

/* The seed's gcd: count down from min(a, b) to the first common divisor. */
static int64_t gcd_brute(int64_t a, int64_t b)
{
    for (int64_t i = a < b ? a : b; i > 0; i--) {
        if (a % i == 0 && b % i == 0)
            return i;
    }
    return 0;
}

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* Print a library error; return 1 so that callers can add it to a failure count. */
static int report(const char *what, int rc)
{
    fflush(stdout);
    fprintf(stderr, "cfseeds: %s: %s (%s)\n", what, cf_strerror(rc), cf_err_name(rc));
    return 1;
}

static void print_cost(const char *what, double serial_s, double pool_s, int workers)
{
    printf("COST %-40s %.3fs  (serial %.3fs, %d worker%s", what, pool_s, serial_s, workers, workers == 1 ? "" : "s");
    if (pool_s > 0)
        printf(", speed-up %.2fx", serial_s / pool_s);
    printf(")\n");
}

/* One pool the demo runs on, through the executor interface. */
struct pool_ref {
    const char *name;
    cf_executor_t *ex;
};

/* ------------------------------------------------------------------ parts 1 and 2: fib with callbacks */

struct fib_run {
    int done;     /* callbacks that ran */
    int failures; /* wrong values or unexpected errors */
};

struct fib_job {
    int n;
    int raises;     /* the task fails with "Don't do this" (part 2) */
    int64_t expect; /* value from the serial run */
    struct fib_run *run;
};

/* Task: runs on a worker thread or in a worker process; `arg` is its copy of the job. */
static int fib_task(cf_task_t *task, void *arg)
{
    const struct fib_job *job = arg;

    if (job->raises)
        return cf_task_fail(task, CF_EFAIL, "Don't do this");
    cf_task_set_i64(task, fib(job->n));
    return 0;
}

/* Done callback: runs on the loop thread, in completion order. */
static void fib_done(cf_future_t *f, int status, void *data)
{
    struct fib_job *job = data;
    struct fib_run *run = job->run;

    run->done++;
    if (status != 0) {
        const char *msg = cf_future_error(f);
        printf("raise an exception: %s\n", msg ? msg : cf_strerror(status));
        if (!job->raises || status != CF_EFAIL || !msg || strcmp(msg, "Don't do this") != 0) {
            fprintf(stderr, "cfseeds: fib(%d) failed unexpectedly: %s\n", job->n, cf_strerror(status));
            run->failures++;
        }
        return;
    }

    int64_t v = 0;
    int rc = cf_future_result_i64(f, &v);
    if (rc != 0) {
        run->failures += report("cf_future_result_i64", rc);
        return;
    }
    printf("fib(%d) = %" PRId64 "\n", job->n, v);
    if (job->raises || v != job->expect) {
        fprintf(stderr, "cfseeds: fib(%d): got %" PRId64 ", expected %s%" PRId64 "\n", job->n, v,
                job->raises ? "an error, not " : "", job->expect);
        run->failures++;
    }
}

/*
 * Submit fib(lo..hi) to each pool, each task with a done callback, then run
 * the loop until it returns by itself: tasks keep ev_run() alive while
 * outstanding.  A job travels as bytes (cf_executor_submit_bytes), so the same
 * task function runs in a thread or in a worker process.  `raise_at` is the n
 * whose task fails (0: none).  Returns the number of failures.
 */
static int fib_demo(struct ev_loop *ev, const struct pool_ref *pools, int npools, int workers, int lo, int hi,
                    int raise_at)
{
    int count = hi - lo + 1, failures = 0;
    struct fib_run run = {0, 0};
    struct fib_job *jobs = calloc((size_t)count, sizeof(*jobs));
    if (!jobs)
        return report("calloc", CF_ENOMEM);

    /* Serial run: the reference values and the time to beat. */
    uint64_t t0 = cf_now_ns();
    for (int i = 0; i < count; i++) {
        jobs[i].n = lo + i;
        jobs[i].raises = jobs[i].n == raise_at;
        jobs[i].run = &run;
        if (!jobs[i].raises)
            jobs[i].expect = fib(jobs[i].n);
    }
    uint64_t serial_ns = cf_now_ns() - t0;

    for (int p = 0; p < npools; p++) {
        int submitted = 0;

        printf("-- %s\n", pools[p].name);
        run.done = 0;
        t0 = cf_now_ns();
        for (int i = 0; i < count; i++) {
            cf_future_t *f = NULL;
            int rc = cf_executor_submit_bytes(pools[p].ex, fib_task, &jobs[i], sizeof(jobs[i]), &f);
            if (rc != 0) {
                run.failures += report("cf_executor_submit_bytes", rc);
                break; /* what was submitted still runs: drain it below */
            }
            submitted++;
            rc = cf_future_on_done(f, fib_done, &jobs[i], NULL);
            if (rc != 0) {
                run.failures += report("cf_future_on_done", rc);
                run.done++; /* its callback will never run */
            }
            /* The registered callback holds its own reference until it ran. */
            rc = cf_future_unref(f);
            if (rc != 0)
                run.failures += report("cf_future_unref", rc);
        }
        ev_run(ev, 0);
        uint64_t pool_ns = cf_now_ns() - t0;

        if (run.done != submitted) {
            fprintf(stderr, "cfseeds: ev_run() returned after %d of %d callbacks\n", run.done, submitted);
            run.failures++;
        }
        print_cost(pools[p].name, seconds(serial_ns), seconds(pool_ns), workers);
    }
    failures = run.failures;
    free(jobs);
    return failures;
}

/* ------------------------------------------------------------------ part 2b: the same with map */

struct fib_item {
    int32_t n;
    int32_t raises;
};

/* Map item function: runs on a worker thread. */
static int fib_item_fn(cf_task_t *task, const void *item, size_t len)
{
    const struct fib_item *it = item;
    (void)len;

    if (it->raises)
        return cf_task_fail(task, CF_EFAIL, "Don't do this");
    cf_task_set_i64(task, fib(it->n));
    return 0;
}

/*
 * The seed's second half: `for num, result in zip(NUMBERS, executor.map(fib,
 * NUMBERS))`.  map() yields in input order and the first error ends the
 * iteration at its position: fib(30..33), then the error of 34.
 */
static int fib_map_demo(cf_executor_t *ex)
{
    struct fib_item items[5];
    cf_map_t *m = NULL;
    cf_map_result r;
    int failures = 0, delivered = 0, raised = 0;

    for (int i = 0; i < 5; i++) {
        items[i].n = 30 + i;
        items[i].raises = items[i].n == 34;
    }
    int rc = cf_map_new_array(ex, fib_item_fn, items, 5, sizeof(items[0]), NULL, &m);
    if (rc != 0)
        return report("cf_map_new_array", rc);

    while ((rc = cf_map_next(m, &r)) == 0) {
        const struct fib_item *it = &items[r.index];
        delivered++;
        if (r.index != (size_t)delivered - 1) {
            fprintf(stderr, "cfseeds: map delivered item %zu at position %d\n", r.index, delivered - 1);
            failures++;
        }
        if (r.status == 0) {
            printf("fib(%d) = %" PRId64 "\n", (int)it->n, r.i64);
            if (it->raises || r.i64 != fib(it->n)) {
                fprintf(stderr, "cfseeds: map: wrong value for fib(%d)\n", (int)it->n);
                failures++;
            }
        } else {
            printf("raise an exception: %s\n", r.error ? r.error : cf_strerror(r.status));
            raised = 1;
            if (!it->raises || r.status != CF_EFAIL) {
                fprintf(stderr, "cfseeds: map: fib(%d) failed unexpectedly: %s\n", (int)it->n,
                        cf_strerror(r.status));
                failures++;
            }
        }
    }
    /* The map ends with the error of the item that raised, after delivering it. */
    if (rc != CF_EFAIL || !raised || delivered != 5) {
        fprintf(stderr, "cfseeds: map ended with %s after %d results; expected CF_EFAIL after 5\n", cf_err_name(rc),
                delivered);
        failures++;
    } else {
        const char *msg = cf_map_error(m);
        printf("map stopped: %s\n", msg ? msg : cf_strerror(rc));
    }
    cf_map_free(m);
    return failures;
}

/* ------------------------------------------------------------------ part 3: gcd, results in input order */

struct gcd_pair {
    int64_t a, b;
};

static const struct gcd_pair gcd_pairs[] = {
    {1963309, 2265973}, {1879675, 2493670}, {2030677, 3814172},
    {1551645, 2229620}, {1988912, 4736670}, {2198964, 7876293},
};
static const int64_t gcd_expect[] = {1, 5, 1, 5, 2, 3};
#define NPAIRS (sizeof(gcd_pairs) / sizeof(gcd_pairs[0]))

/* Map item function: runs on a worker thread. */
static int gcd_item_fn(cf_task_t *task, const void *item, size_t len)
{
    const struct gcd_pair *p = item;
    (void)len;
    cf_task_set_i64(task, gcd_brute(p->a, p->b));
    return 0;
}

static void print_list(const char *label, const int64_t *v, size_t n)
{
    printf("%s[", label);
    for (size_t i = 0; i < n; i++)
        printf("%s%" PRId64, i ? ", " : "", v[i]);
    printf("]\n");
}

static int check_list(const char *label, const int64_t *v)
{
    if (memcmp(v, gcd_expect, sizeof(gcd_expect)) == 0)
        return 0;
    fflush(stdout);
    fprintf(stderr, "cfseeds: gcd %s results differ from the expected [1, 5, 1, 5, 2, 3]\n", label);
    return 1;
}

/*
 * Python's `results = list(pool.map(gcd, numbers))`: cf_map over the array of
 * pairs, read with the blocking iterator cf_map_next() (it runs the loop), so
 * results come in input order whatever order the tasks finish in.
 */
static int gcd_demo(const struct pool_ref *pools, int npools, int workers)
{
    int failures = 0;
    int64_t serial[NPAIRS];

    uint64_t t0 = cf_now_ns();
    for (size_t i = 0; i < NPAIRS; i++)
        serial[i] = gcd_brute(gcd_pairs[i].a, gcd_pairs[i].b);
    uint64_t serial_ns = cf_now_ns() - t0;
    print_list("serial:       ", serial, NPAIRS);
    failures += check_list("serial", serial);

    for (int p = 0; p < npools; p++) {
        int64_t pooled[NPAIRS] = {0};
        size_t got = 0;
        cf_map_t *m = NULL;
        cf_map_result r;
        char label[32];

        t0 = cf_now_ns();
        int rc = cf_map_new_array(pools[p].ex, gcd_item_fn, gcd_pairs, NPAIRS, sizeof(gcd_pairs[0]), NULL, &m);
        if (rc != 0)
            return failures + report("cf_map_new_array", rc);
        while ((rc = cf_map_next(m, &r)) == 0) {
            if (r.status != 0) {
                failures += report(r.error ? r.error : "gcd task", r.status);
            } else if (r.index >= NPAIRS || r.index != got) {
                fprintf(stderr, "cfseeds: map delivered item %zu at position %zu\n", r.index, got);
                failures++;
            } else {
                pooled[r.index] = r.i64;
            }
            got++;
        }
        uint64_t pool_ns = cf_now_ns() - t0;
        if (rc != CF_EOF)
            failures += report(cf_map_error(m) ? cf_map_error(m) : "cf_map_next", rc);
        else if (got != NPAIRS) {
            fprintf(stderr, "cfseeds: map delivered %zu results for %zu pairs\n", got, NPAIRS);
            failures++;
        }
        cf_map_free(m);

        snprintf(label, sizeof(label), "%s: ", pools[p].name);
        printf("%-14s", label);
        print_list("", pooled, NPAIRS);
        failures += check_list(pools[p].name, pooled);
        print_cost(pools[p].name, seconds(serial_ns), seconds(pool_ns), workers);
    }
    return failures;
}

/* ------------------------------------------------------------------ part 4: map with and without chunksize */

#define SEED_K 50

/* The seed's f(x) = sum over k = 1..K+1 of x^(1/k^1.5). */
static double seed_f(int64_t x)
{
    double s = 0;
    for (int k = 1; k <= SEED_K + 1; k++)
        s += pow((double)x, 1.0 / pow((double)k, 1.5));
    return s;
}

/*
 * One map run with the script layer's cf_map_i64_f64(): the seed's f over
 * the array, results straight into `got` in input order (chunksize 0 =
 * automatic).  Returns failures; sets *ns.
 */
static int seed_map_run(cf_executor_t *ex, const int64_t *xs, const double *want, double *got, size_t n,
                        size_t chunksize, uint64_t *ns)
{
    size_t wrong = 0;

    uint64_t t0 = cf_now_ns();
    int rc = cf_map_i64_f64(ex, seed_f, xs, n, chunksize, got);
    *ns = cf_now_ns() - t0;
    if (rc != 0)
        return report("cf_map_i64_f64", rc);
    for (size_t i = 0; i < n; i++)
        wrong += got[i] != want[i];
    if (wrong) {
        fprintf(stderr, "cfseeds: map chunksize %zu: %zu of %zu results wrong\n", chunksize, wrong, n);
        return 1;
    }
    return 0;
}

static int seed_map_demo(const struct pool_ref *pools, int npools, int workers, size_t n)
{
    int64_t *xs = malloc(n * sizeof(*xs));
    double *want = malloc(n * sizeof(*want));
    double *got = malloc(n * sizeof(*got));
    int failures = 0;

    if (!xs || !want || !got) {
        free(xs);
        free(want);
        free(got);
        return report("malloc", CF_ENOMEM);
    }
    for (size_t i = 0; i < n; i++)
        xs[i] = (int64_t)i;
    uint64_t t0 = cf_now_ns();
    for (size_t i = 0; i < n; i++)
        want[i] = seed_f(xs[i]);
    uint64_t serial_ns = cf_now_ns() - t0;
    printf("serial: %zu items, K = %d: %.3fs\n", n, SEED_K, seconds(serial_ns));

    for (int p = 0; p < npools; p++) {
        for (int auto_chunks = 0; auto_chunks < 2; auto_chunks++) {
            uint64_t ns = 0;
            size_t parts = 4 * (size_t)cf_executor_workers(pools[p].ex);
            size_t used = auto_chunks ? (n + parts - 1) / parts : 1; /* what chunksize 0 picks */
            char what[64];

            failures += seed_map_run(pools[p].ex, xs, want, got, n, auto_chunks ? 0 : 1, &ns);
            snprintf(what, sizeof(what), "%s, chunksize %zu%s", pools[p].name, used, auto_chunks ? " (auto)" : "");
            print_cost(what, seconds(serial_ns), seconds(ns), workers);
        }
    }
    if (!failures)
        printf("every result equals the serial run\n");
    free(xs);
    free(want);
    free(got);
    return failures;
}

/* ------------------------------------------------------------------ part 5: md5 of every file under a directory */

#ifdef CF_HAVE_LIBCRYPTO
#define MD5_LEN 16

struct walk {
    char **paths;
    size_t n, cap;
    uint64_t bytes;
    int failed;
};

static struct walk *walk_target; /* nftw() has no user pointer */

static int walk_add(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    struct walk *w = walk_target;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        char **p = realloc(w->paths, cap * sizeof(*p));
        if (!p)
            return -1;
        w->paths = p;
        w->cap = cap;
    }
    if (!(w->paths[w->n] = strdup(path)))
        return -1;
    w->n++;
    w->bytes += (uint64_t)st->st_size;
    return 0;
}

/* MD5 of a file's contents with libcrypto; 0 or a negated errno. Any thread. */
static int md5_file(const char *path, unsigned char out[MD5_LEN])
{
    unsigned char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ? 0 : CF_ENOMEM;
    for (;;) {
        ssize_t got = rc ? 0 : read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = -errno;
        if (got <= 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
            rc = CF_EFAIL;
    }
    unsigned len = 0;
    if (rc == 0 && !EVP_DigestFinal_ex(ctx, out, &len))
        rc = CF_EFAIL;
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}

/* Map item function: the item is a NUL-terminated path. */
static int md5_item(cf_task_t *task, const void *item, size_t len)
{
    unsigned char digest[MD5_LEN];
    (void)len;
    int rc = md5_file(item, digest);
    if (rc != 0)
        return cf_task_fail(task, rc, "%s: %s", (const char *)item, cf_strerror(rc));
    return cf_task_set_bytes(task, digest, sizeof(digest));
}

struct path_src {
    const struct walk *w;
    size_t next;
};

/* Pull callback: the paths, one at a time, NUL included (lengths vary). */
static int path_pull(void *src, const void **item, size_t *len)
{
    struct path_src *ps = src;
    if (ps->next == ps->w->n)
        return 0;
    *item = ps->w->paths[ps->next];
    *len = strlen(ps->w->paths[ps->next]) + 1;
    ps->next++;
    return 1;
}

static void hex(const unsigned char *d, char out[2 * MD5_LEN + 1])
{
    for (int i = 0; i < MD5_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/*
 * The seed's md5 walk: list every regular file under `dir` (serially, like
 * os.walk), then hash them all serially, on the thread pool and on the
 * process pool with cf_map over a pull input, and check that every pool
 * computed the same digest (or the same error) for every file.
 */
static int md5_demo(const struct pool_ref *pools, int npools, int workers, const char *dir)
{
    struct walk w = {0};
    int failures = 0;
    char *real = realpath(dir, NULL);
    if (real)
        dir = real;
    walk_target = &w;
    if (nftw(dir, walk_add, 32, FTW_PHYS) != 0) {
        fprintf(stderr, "cfseeds: cannot walk %s: %s\n", dir, strerror(errno));
        failures = 1;
        goto out;
    }
    printf("%zu files, %.1f MiB under %s\n", w.n, (double)w.bytes / (1 << 20), dir);

    unsigned char(*want)[MD5_LEN] = calloc(w.n ? w.n : 1, MD5_LEN);
    int *want_rc = calloc(w.n ? w.n : 1, sizeof(int));
    if (!want || !want_rc) {
        free(want);
        free(want_rc);
        failures = report("calloc", CF_ENOMEM);
        goto out;
    }
    /* Twice: the first pass fills the page cache, so every timed run reads from memory. */
    uint64_t t0 = 0;
    for (int pass = 0; pass < 2; pass++) {
        t0 = cf_now_ns();
        for (size_t i = 0; i < w.n; i++)
            want_rc[i] = md5_file(w.paths[i], want[i]);
    }
    uint64_t serial_ns = cf_now_ns() - t0;
    for (size_t i = 0; i < w.n && i < 3; i++) {
        char h[2 * MD5_LEN + 1];
        hex(want[i], h);
        printf("  %s  %s\n", want_rc[i] ? "(unreadable)                    " : h, w.paths[i]);
    }
    printf("serial: %.3fs\n", seconds(serial_ns));

    for (int p = 0; p < npools; p++) {
        struct path_src src = {&w, 0};
        cf_map_opts o;
        cf_map_t *m = NULL;
        cf_map_result r;
        size_t got = 0, differ = 0;

        cf_map_opts_init(&o);
        o.on_error = CF_MAP_CONTINUE; /* an unreadable file is that file's result, not the end */
        t0 = cf_now_ns();
        int rc = cf_map_new(pools[p].ex, md5_item, path_pull, &src, &o, &m);
        if (rc != 0) {
            failures += report("cf_map_new", rc);
            break;
        }
        while ((rc = cf_map_next(m, &r)) == 0) {
            int same = r.index == got && r.status == want_rc[r.index] &&
                       (r.status != 0 || (r.len == MD5_LEN && memcmp(r.data, want[r.index], MD5_LEN) == 0));
            if (!same && differ++ < 3)
                fprintf(stderr, "cfseeds: md5 of %s differs on the %s\n", w.paths[r.index], pools[p].name);
            got++;
        }
        uint64_t pool_ns = cf_now_ns() - t0;
        if (rc != CF_EOF)
            failures += report(cf_map_error(m) ? cf_map_error(m) : "cf_map_next", rc);
        if (got != w.n || differ) {
            fprintf(stderr, "cfseeds: md5 on the %s: %zu of %zu digests, %zu differ\n", pools[p].name, got, w.n,
                    differ);
            failures++;
        }
        cf_map_free(m);
        print_cost(pools[p].name, seconds(serial_ns), seconds(pool_ns), workers);
    }
    if (!failures)
        printf("every digest equals the serial run\n");
    free(want);
    free(want_rc);
out:
    for (size_t i = 0; i < w.n; i++)
        free(w.paths[i]);
    free(w.paths);
    free(real);
    return failures;
}
#endif /* CF_HAVE_LIBCRYPTO */

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fprintf(out, "usage: cfseeds [--workers N] [--quick] [--md5-dir DIR]\n"
                 "       cfseeds --help | --version\n"
                 "The seed programs of cfutures (fib, a task that raises, gcd, map with and without\n"
                 "chunksize, an md5 walk), each run serially, on a thread pool and on a process pool.\n"
                 "  --workers N    workers in each pool (default: one per CPU)\n"
                 "  --quick        fib over 25..30 instead of 25..37, 9,999 map items instead of 99,999\n"
                 "  --md5-dir DIR  the directory whose files part 5 hashes (default: the source tree)\n"
                 "  --help         this text\n"
                 "  --version      the version of cfseeds and of the cfutures library\n"
                 "Exit status: 0 when every result is right, 1 otherwise, 2 on a usage error.\n");
}

static int parse_workers(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 1024)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int workers = 0; /* 0: the pool's default, one per CPU */
    int quick = 0;
    const char *md5_dir = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            if (parse_workers(argv[++i], &workers) != 0) {
                fprintf(stderr, "cfseeds: --workers wants a number from 1 to 1024, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (strncmp(argv[i], "--workers=", 10) == 0) {
            if (parse_workers(argv[i] + 10, &workers) != 0) {
                fprintf(stderr, "cfseeds: --workers wants a number from 1 to 1024, not '%s'\n", argv[i] + 10);
                return 2;
            }
        } else if (strcmp(argv[i], "--md5-dir") == 0 && i + 1 < argc) {
            md5_dir = argv[++i];
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("cfseeds (cfutures) %s\n", cf_version());
            return 0;
        } else {
            fprintf(stderr, "cfseeds: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!md5_dir) /* the source tree it was built from, if it is still there */
        md5_dir = access(CF_SOURCE_DIR, R_OK | X_OK) == 0 ? CF_SOURCE_DIR : ".";
    /* Results appear as tasks complete, even through a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /*
     * One runtime (cfutures/script.h): a loop of its own rather than
     * EV_DEFAULT (cfutures works on any loop and keeps no global state, and
     * the default loop would take over SIGCHLD), the process pool first (its
     * fork server is forked before any thread exists), then the thread pool.
     */
    int failures = 0;
    cf_runtime_t *rt = NULL;
    cf_process_pool_opts popts;
    cf_thread_pool_opts opts;
    cf_process_pool_opts_init(&popts);
    cf_thread_pool_opts_init(&opts);
    if (workers > 0)
        popts.max_workers = opts.max_workers = workers;
    opts.name_prefix = "cfseeds";
    int rc = cf_runtime_new_opts(&opts, &popts, &rt);
    if (rc != 0) {
        report("cf_runtime_new_opts", rc);
        return 1;
    }
    struct ev_loop *ev = cf_runtime_ev(rt);
    workers = cf_executor_workers(cf_runtime_threads(rt));

    struct pool_ref pools[2] = {
        {"thread pool", cf_runtime_threads(rt)},
        {"process pool", cf_runtime_processes(rt)},
    };
    int fib_hi = quick ? 30 : 37;
    printf("cfutures %s seed demos: a thread pool and a process pool of %d worker%s each, %d CPUs\n", cf_version(),
           workers, workers == 1 ? "" : "s", cf_cpu_count());

    printf("\n== 1. fib(25..%d): submit, print from done callbacks as tasks complete\n", fib_hi);
    failures += fib_demo(ev, pools, 2, workers, 25, fib_hi, 0);

    printf("\n== 2. fib(30..34): the task for 34 raises \"Don't do this\"\n");
    failures += fib_demo(ev, pools, 2, workers, 30, 34, 34);
    for (int p = 0; p < 2; p++) {
        printf("-- the same with map on the %s: results in input order, the error ends the iteration\n",
               pools[p].name);
        failures += fib_map_demo(pools[p].ex);
    }

    printf("\n== 3. gcd of six pairs, brute force, results in input order\n");
    failures += gcd_demo(pools, 2, workers);

    printf("\n== 4. map with and without chunksize\n");
    failures += seed_map_demo(pools, 2, workers, quick ? 9999 : 99999);

#ifdef CF_HAVE_LIBCRYPTO
    printf("\n== 5. md5 of every file under a directory\n");
    failures += md5_demo(pools, 2, workers, md5_dir);
#else
    printf("\n== 5. md5 walk skipped: built without libcrypto\n");
#endif

    /* Joins the threads, stops the workers and the fork server, closes the loop. */
    rc = cf_runtime_free(rt);
    if (rc != 0)
        failures += report("cf_runtime_free", rc);

    if (failures) {
        fprintf(stderr, "cfseeds: FAILED (%d problem%s)\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    printf("\nAll results correct.\n");
    return 0;
}
