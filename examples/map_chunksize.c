/*
 * map_chunksize.c - the seed's map on both pools, with chunksize 1 and with
 * automatic chunks (ceil(n / (4 x workers)), multiprocessing.Pool's rule).
 * One item per task pays a round trip per item; chunks pay it once per
 * chunk.  Times go to stderr; stdout says whether every run matched.
 * Usage: map_chunksize [ITEMS]   (default 99999, the seed's range(1, 100000))
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double f(int64_t x) /* the seed's f, on a worker thread or in a worker process */
{
    double r = 0;
    for (int k = 1; k <= 51; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 99999;
    int64_t *xs = malloc(n * sizeof(*xs));
    double *want = malloc(n * sizeof(*want)), *got = malloc(n * sizeof(*got));
    cf_runtime_t *rt = NULL;
    int rc = xs && want && got ? cf_runtime_new(2, 2, &rt) : CF_ENOMEM;
    int bad = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        xs[i] = (int64_t)i + 1;
        want[i] = f(xs[i]); /* the serial run, to compare with */
    }
    fprintf(stderr, "cfutures %s, %d CPUs\n", cf_version(), cf_cpu_count()); /* what the times depend on */
    cf_executor_t *pools[2] = {cf_runtime_threads(rt), cf_runtime_processes(rt)};
    for (int p = 0; rc == 0 && p < 2; p++) {
        for (int c = 0; rc == 0 && c < 2; c++) {
            size_t chunksize = c == 0 ? 1 : 0; /* 0: automatic */
            uint64_t t0 = cf_now_ns();
            rc = cf_map_i64_f64(pools[p], f, xs, n, chunksize, got);
            fprintf(stderr, "%s, chunksize %s: %.3f s\n", cf_executor_kind(pools[p]), chunksize ? "1" : "auto",
                    (double)(cf_now_ns() - t0) / 1e9);
            for (size_t i = 0; rc == 0 && i < n; i++)
                bad += got[i] != want[i];
            printf("%s, chunksize %s: %zu results, %s\n", cf_executor_kind(pools[p]), chunksize ? "1" : "auto", n,
                   bad ? "WRONG" : "all equal to the serial run");
        }
    }
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    free(xs);
    free(want);
    free(got);
    return cf_runtime_free(rt) == 0 && rc == 0 && bad == 0 ? 0 : 1;
}
