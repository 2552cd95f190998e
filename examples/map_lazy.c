/*
 * map_lazy.c - a map over an input made as it is consumed (a pull callback, like a Python
 * generator), two chunks in flight at most, each item's outcome given to a callback in order.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>

static int pull(void *src, const void **item, size_t *len) /* loop thread, when the map wants input */
{
    int64_t *x = src;
    *item = x; /* the map copies the item before the next call */
    *len = sizeof(*x);
    return ++*x <= 10 ? 1 : 0; /* 1: an item (1..10), 0: the end of the input */
}

static int square(cf_task_t *task, const void *item, size_t len) /* runs on a worker thread */
{
    int64_t x = *(const int64_t *)item;
    if (x == 7)
        return cf_task_fail(task, CF_EINVAL, "%lld is unlucky", (long long)x);
    cf_task_set_i64(task, x * x);
    return 0;
}

static int print(cf_map_t *m, const cf_map_result *r, void *data) /* loop thread, in input order */
{
    if (r->status == 0)
        printf("item %zu: %lld\n", r->index, (long long)r->i64);
    else
        printf("item %zu failed: %s\n", r->index, r->error);
    return 0; /* go on; non-zero would stop the map */
}

int main(void)
{
    int64_t src = 0;
    cf_runtime_t *rt;
    cf_map_t *m = NULL;
    cf_future_t *done = NULL;
    cf_map_opts o;
    int64_t n;
    int rc = cf_runtime_new(2, 0, &rt);

    cf_map_opts_init(&o);
    o.chunksize = 3;              /* items per task (0: adapts to the time an item takes) */
    o.window = 2;                 /* chunks in flight: the input is pulled as results come back */
    o.on_error = CF_MAP_CONTINUE; /* a failed item does not end the map */
    if (rc == 0 && (rc = cf_map_new(cf_runtime_threads(rt), square, pull, &src, &o, &m)) == 0 &&
        (rc = cf_map_each(m, print, NULL, &done)) == 0 && (rc = cf_future_get_i64(done, -1, &n)) == 0)
        printf("%lld results, chunks of %zu, status %d\n", (long long)n, cf_map_chunksize(m), cf_map_status(m));
    if (rc != 0)
        fprintf(stderr, "error: %s: %s\n", cf_strerror(rc), m && cf_map_error(m) ? cf_map_error(m) : "");
    cf_futures_unref(&done, 1);
    cf_map_free(m);
    return cf_runtime_free(rt) == 0 && rc == 0 ? 0 : 1;
}
