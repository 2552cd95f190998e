/*
 * as_completed.c - Python's as_completed() with the core iterator: tasks of
 * different lengths on a thread pool, each handled as soon as it completes,
 * the whole iteration bounded by a timeout.  The order varies with the load.
 * Then the same futures through the callback form, cf_as_completed_each().
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

/* Runs on a worker thread: counts the Collatz steps of x. */
static int64_t collatz_steps(int64_t x)
{
    int64_t steps = 0;
    for (; x != 1; steps++)
        x = x % 2 ? 3 * x + 1 : x / 2;
    return steps;
}

/* The callback form: runs on the loop thread for each future, in as-completed order. */
static void add_steps(cf_future_t *f, int status, void *data)
{
    if (status == 0)
        *(int64_t *)data += cf_future_i64(f);
}

int main(void)
{
    static const int64_t inputs[] = {27, 97, 871, 6171, 77031, 837799};
    enum { N = sizeof(inputs) / sizeof(inputs[0]) };
    cf_future_t *fs[N] = {NULL};
    cf_as_completed_t *it = NULL;
    cf_runtime_t *rt;
    int rc = cf_runtime_new(2, 0, &rt);

    for (int i = 0; rc == 0 && i < N; i++)
        rc = cf_submit_i64_i64(cf_runtime_threads(rt), collatz_steps, inputs[i], &fs[i]);
    size_t ndone = 0;
    if (rc == 0) /* Python's wait(FIRST_COMPLETED): run the loop until one is done (how many varies) */
        rc = cf_wait(fs, N, CF_FIRST_COMPLETED, 10.0, NULL, &ndone);
    fprintf(stderr, "%zu done at first\n", ndone);
    if (rc == 0)
        rc = cf_as_completed_new(fs, N, 10.0 /* seconds for all */, &it);
    cf_future_t *f;
    size_t i;
    while (rc == 0 && (rc = cf_as_completed_next_index(it, &f, &i)) == 0) /* f is fs[i], the next one done */
        printf("%lld reaches 1 in %lld steps\n", (long long)inputs[i], (long long)cf_future_i64(f));
    if (rc != CF_EOF)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    int64_t total = 0;
    cf_future_t *each = NULL; /* done after the last callback, with the number of futures */
    if (rc == CF_EOF && cf_as_completed_each(fs, N, 10.0, add_steps, &total, NULL, &each) == 0 &&
        cf_future_wait(each, -1) == 0)
        printf("%lld futures, %lld steps in all\n", (long long)cf_future_i64(each), (long long)total);
    cf_future_unref(each);
    cf_pool_stats st; /* the pool's counters: every task finished with a value */
    if (rc == CF_EOF && cf_thread_pool_stats(cf_runtime_thread_pool(rt), &st) == 0)
        printf("the pool completed %llu tasks, %llu failed\n", (unsigned long long)st.completed,
               (unsigned long long)st.failed);
    cf_as_completed_free(it);
    cf_futures_unref(fs, N);
    return cf_runtime_free(rt) == 0 && rc == CF_EOF ? 0 : 1;
}
