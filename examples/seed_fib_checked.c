/*
 * seed_fib_checked.c - seed_fib.c with every return value checked: the same
 * program, as it would be written where errors matter.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int64_t fib(int64_t n) /* runs in a worker process */
{
    return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, cf_strerror(rc));
    return 1;
}

int main(void)
{
    cf_runtime_t *rt;
    cf_future_t *fs[13] = {NULL};
    int rc = cf_runtime_new(0, 3, &rt);
    if (rc != 0)
        return fail("cf_runtime_new", rc);
    for (int i = 0; i < 13; i++) {
        if ((rc = cf_submit_i64_i64(cf_runtime_processes(rt), fib, 25 + i, &fs[i])) != 0) {
            cf_futures_unref(fs, 13);
            cf_runtime_free(rt);
            return fail("cf_submit_i64_i64", rc);
        }
    }
    cf_completed c = CF_COMPLETED_TAKE(fs, 13);
    while ((rc = cf_completed_next(&c)) == 0) {
        int64_t v;
        int status = cf_future_get_i64(c.future, -1, &v);
        if (status != 0)
            printf("fib(%zu) failed: %s\n", 25 + c.index, cf_future_error(c.future));
        else
            printf("fib(%zu) = %lld\n", 25 + c.index, (long long)v);
    }
    if (rc != CF_EOF) /* the iteration ended early; it released the futures anyway */
        fail("cf_completed_next", rc);
    int frc = cf_runtime_free(rt);
    if (frc != 0)
        return fail("cf_runtime_free", frc);
    return rc == CF_EOF ? 0 : 1;
}
