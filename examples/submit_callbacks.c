/*
 * submit_callbacks.c - submit work to a thread pool and print each result
 * from a done callback.  Callbacks run on the loop thread, one at a time, as
 * the tasks complete (so the order of the lines varies from run to run).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int64_t square(int64_t x) /* runs on a worker thread */
{
    return x * x;
}

static void done(cf_future_t *f, int status, void *data) /* runs on the loop thread */
{
    long x = (long)(intptr_t)data;
    if (status == 0)
        printf("%ld^2 = %lld\n", x, (long long)cf_future_i64(f));
    else
        printf("%ld failed: %s\n", x, cf_future_error(f));
}

int main(void)
{
    cf_runtime_t *rt;
    int rc = cf_runtime_new(CF_RUNTIME_CPUS, 0, &rt); /* one worker thread per CPU, no processes */
    for (long i = 0; rc == 0 && i < 10; i++) {
        cf_future_t *f;
        rc = cf_submit_i64_i64(cf_runtime_threads(rt), square, i, &f);
        if (rc == 0) {
            rc = cf_future_on_done(f, done, (void *)(intptr_t)i, NULL);
            cf_future_unref(f); /* the callback holds its own reference */
        }
    }
    if (rc == 0)
        rc = cf_runtime_run(rt); /* returns once every task is done and its callback ran */
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    return cf_runtime_free(rt) == 0 && rc == 0 ? 0 : 1;
}
