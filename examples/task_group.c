/*
 * task_group.c - structured concurrency (asyncio.TaskGroup): a group of
 * tasks waited for together.  When one member fails, the group cancels the
 * others and reports that first failure.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int check_range(cf_task_t *task, int64_t hi) /* runs on a worker thread */
{
    for (int64_t x = 1; x <= hi; x++) {
        if (cf_task_cancelled(task)) /* the group gave up: stop early */
            return CF_ECANCELED;
        if (x == 1000003 && hi == 3000000) /* pretend this input is bad */
            return cf_task_fail(task, CF_EINVAL, "bad input at %lld", (long long)x);
    }
    cf_task_set_i64(task, hi);
    return 0;
}

/* Run a group of tasks over `his`; print how it ended. */
static int run_group(cf_runtime_t *rt, const int64_t *his, int n)
{
    cf_group_t *g;
    int rc = cf_group_new(cf_runtime_loop(rt), &g);
    for (int i = 0; rc == 0 && i < n; i++) {
        cf_future_t *f;
        if ((rc = cf_submit_i64_task(cf_runtime_threads(rt), check_range, his[i], &f)) == 0) {
            rc = cf_group_add(g, f); /* the group takes its own reference */
            cf_future_unref(f);
        }
    }
    if (rc == 0) {
        int status = cf_group_wait(g, -1); /* runs the loop until every member is done */
        if (status == 0)
            printf("group of %d: all done\n", n);
        else
            printf("group of %d failed: %s (%s)\n", n, cf_group_error(g), cf_err_name(status));
    }
    cf_group_free(g);
    return rc;
}

int main(void)
{
    static const int64_t good[] = {1000, 2000, 3000}, bad[] = {1000, 3000000, 50000000000};
    cf_runtime_t *rt;
    int rc = cf_runtime_new(2, 0, &rt);

    if (rc == 0)
        rc = run_group(rt, good, 3);
    if (rc == 0)
        rc = run_group(rt, bad, 3); /* the third would run for a minute: it is cancelled instead */
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    return cf_runtime_free(rt) == 0 && rc == 0 ? 0 : 1;
}
