/*
 * seed_map.c - the seed's map: f(x) = sum of x^(1/k^1.5) for k = 1..51 over
 * x = 1..99999 on three worker processes, in chunks, results in input order
 * (Python: ProcessPoolExecutor(3).map(f, NUMBERS, chunksize=...)).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <math.h>
#include <stdio.h>

static double f(int64_t x) /* runs in a worker process */
{
    double r = 0;
    for (int k = 1; k <= 51; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}

int main(void)
{
    static int64_t xs[99999];
    static double ys[99999];
    cf_runtime_t *rt;

    for (int i = 0; i < 99999; i++)
        xs[i] = i + 1;
    cf_runtime_new(0, 3, &rt);
    /* chunksize 8333 = 99999 / (4 x 3), the seed's choice; 0 would pick it too. */
    cf_map_i64_f64(cf_runtime_processes(rt), f, xs, 99999, 8333, ys);
    printf("%d results, f(1) = %.3f, f(99999) = %.3f\n", 99999, ys[0], ys[99998]);
    cf_runtime_free(rt);
}
