/*
 * seed_map_checked.c - seed_map.c with every return value checked.
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
    int rc = cf_runtime_new(0, 3, &rt);
    if (rc != 0) {
        fprintf(stderr, "cf_runtime_new: %s\n", cf_strerror(rc));
        return 1;
    }
    rc = cf_map_i64_f64(cf_runtime_processes(rt), f, xs, 99999, 8333, ys);
    if (rc != 0)
        fprintf(stderr, "cf_map_i64_f64: %s\n", cf_strerror(rc));
    else
        printf("%d results, f(1) = %.3f, f(99999) = %.3f\n", 99999, ys[0], ys[99998]);
    int frc = cf_runtime_free(rt);
    if (frc != 0)
        fprintf(stderr, "cf_runtime_free: %s\n", cf_strerror(frc));
    return rc == 0 && frc == 0 ? 0 : 1;
}
