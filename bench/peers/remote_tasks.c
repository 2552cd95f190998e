/*
 * remote_tasks.c - the tasks of the remote-executor measurements: loaded by
 * cfworker (--tasks remote_tasks.so) and linked into remote_bench, which
 * submits them by the same names.
 *
 *   noop     bytes -> i64 1
 *   seed_f   the seed map's item function: x -> sum over k = 1..50 of
 *            x^(1/k^1.5) (as bench/cfbench.c's scaling case, K = 50)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/registry.h>

#include <math.h>

int noop(cf_task_t *t, void *arg);
int noop(cf_task_t *t, void *arg)
{
    (void)arg;
    cf_task_set_i64(t, 1);
    return 0;
}
CF_REGISTER(noop);

double seed_f(int64_t x);
double seed_f(int64_t x)
{
    double r = 0;
    for (int k = 1; k <= 50; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}
CF_REGISTER(seed_f);
