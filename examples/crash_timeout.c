/*
 * crash_timeout.c - process-pool fault isolation.  One task kills its own
 * worker, one runs past its timeout; each fails alone, with its own error,
 * the pool replaces the workers, and every other task completes.  (Python's
 * ProcessPoolExecutor would break the whole pool on the crash, and has no
 * per-task timeout.)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static int work(cf_task_t *task, void *arg) /* runs in a worker process */
{
    int64_t x = *(const int64_t *)arg; /* the task's copy of the bytes given at submit */
    if (x == 3)
        raise(SIGSEGV); /* a crash: only this task fails */
    if (x == 5)
        for (;;)
            pause(); /* hangs: stopped by its timeout */
    cf_task_set_i64(task, x * 10);
    return 0;
}

int main(void)
{
    cf_runtime_t *rt;
    cf_future_t *fs[8] = {NULL};
    int rc = cf_runtime_new(0, 2, &rt), failures = 0;

    for (int64_t i = 0; rc == 0 && i < 8; i++) /* a 0.5 s timeout for each task, from when it starts */
        rc = cf_process_pool_submit(cf_runtime_process_pool(rt), work, &i, sizeof(i), 0.5, &fs[i]);
    for (int i = 0; rc == 0 && i < 8; i++) {
        int64_t v;
        int status = cf_future_get_i64(fs[i], -1, &v);
        if (status == 0)
            printf("task %d = %lld\n", i, (long long)v);
        else /* cf_future_error() also names the worker, its pid and the signal */
            printf("task %d failed: %s\n", i, cf_err_name(status));
        failures += status != 0;
    }
    cf_process_pool_t *pool = cf_runtime_process_pool(rt);
    if (rc == 0) /* no more submits; runs the loop until the workers have exited */
        rc = cf_process_pool_shutdown(pool, CF_SHUTDOWN_WAIT);
    cf_future_t *late = NULL;
    if (rc == 0)
        printf("submit after shutdown: %s\n", cf_err_name(cf_process_pool_submit(pool, work, "", 1, 0, &late)));
    cf_pool_stats st;
    if (rc == 0 && (rc = cf_process_pool_stats(pool, &st)) == 0)
        printf("completed %llu, failed %llu\n", (unsigned long long)st.completed, (unsigned long long)st.failed);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    cf_futures_unref(fs, 8);
    cf_future_unref(late); /* NULL: the submit failed */
    return cf_runtime_free(rt) == 0 && rc == 0 && failures == 2 ? 0 : 1;
}
