/*
 * raise.c - the seed's task that raises: fib(30..34) where 34 fails with
 * "Don't do this".  Submitted one by one, the failure is that one future's
 * outcome; mapped, results come in input order until the failed item, whose
 * error then ends the map (Python's executor.map re-raising).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int64_t fib(int64_t n)
{
    return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

static int fib_task(cf_task_t *task, int64_t n) /* runs on a worker thread */
{
    if (n == 34)
        return cf_task_fail(task, CF_EFAIL, "Don't do this"); /* Python: raise Exception(...) */
    cf_task_set_i64(task, fib(n));
    return 0;
}

static int fib_item(cf_task_t *task, const void *item, size_t len) /* a cf_map item function */
{
    (void)len;
    return fib_task(task, *(const int64_t *)item);
}

int main(void)
{
    int64_t numbers[] = {30, 31, 32, 33, 34};
    cf_future_t *fs[5] = {NULL};
    cf_runtime_t *rt;
    int rc = cf_runtime_new(3, 0, &rt);

    /* 1. submit each; every outcome, value or error, in input order. */
    for (int i = 0; rc == 0 && i < 5; i++)
        rc = cf_submit_i64_task(cf_runtime_threads(rt), fib_task, numbers[i], &fs[i]);
    for (int i = 0; rc == 0 && i < 5; i++) {
        int64_t v;
        int status = cf_future_get_i64(fs[i], -1, &v); /* waits; the future's error if it failed */
        if (status == 0)
            printf("fib(%lld) = %lld\n", (long long)numbers[i], (long long)v);
        else
            printf("raise an exception: %s (%s)\n", cf_future_error(fs[i]), cf_err_name(status));
    }
    cf_futures_unref(fs, 5);

    /* 2. map: fib(30..33) in order, then the map ends with 34's error. */
    cf_map_t *m = NULL;
    cf_map_result r;
    int end = CF_EOF;
    if (rc == 0)
        rc = cf_map_new_array(cf_runtime_threads(rt), fib_item, numbers, 5, sizeof(numbers[0]), NULL, &m);
    while (rc == 0 && (end = cf_map_next(m, &r)) == 0) {
        if (r.status == 0)
            printf("map: fib(%lld) = %lld\n", (long long)numbers[r.index], (long long)r.i64);
    }
    if (rc == 0)
        printf("map ended: %s (%s)\n", cf_map_error(m), cf_err_name(end));
    cf_map_free(m);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    return cf_runtime_free(rt) == 0 && rc == 0 && end == CF_EFAIL ? 0 : 1;
}
