/*
 * tasks_other.c - a different task library: rt_square only (a worker built
 * from other code than the client's, for the mismatch test).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/registry.h>

#include <string.h>

static int rt_square(cf_task_t *t, void *arg)
{
    size_t len;
    int64_t x;
    (void)arg;
    memcpy(&x, cf_task_arg(t, &len), sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}
CF_REGISTER(rt_square);
