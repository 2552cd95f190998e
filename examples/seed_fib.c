/*
 * seed_fib.c - the seed's fib(25..37) on three worker processes, each result
 * printed as soon as its task completes (Python: submit + as_completed).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int64_t fib(int64_t n) { return n <= 2 ? 1 : fib(n - 1) + fib(n - 2); } /* in a worker process */

int main(void)
{
    cf_runtime_t *rt;
    cf_future_t *fs[13];

    cf_runtime_new(0, 3, &rt); /* no thread pool, 3 worker processes */
    for (int i = 0; i < 13; i++)
        cf_submit_i64_i64(cf_runtime_processes(rt), fib, 25 + i, &fs[i]);
    /* In completion order; c.index is the position in fs; TAKE: the loop releases the futures. */
    for (cf_completed c = CF_COMPLETED_TAKE(fs, 13); cf_completed_next(&c) == 0;)
        printf("fib(%zu) = %lld\n", 25 + c.index, (long long)cf_future_i64(c.future));
    cf_runtime_free(rt);
}
