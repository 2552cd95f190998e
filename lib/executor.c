/*
 * executor.c - the executor interface: dispatch through each executor's ops.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int cf_executor_submit(cf_executor_t *ex, cf_task_fn fn, void *arg, cf_free_fn arg_free, cf_future_t **out)
{
    if (!ex || !fn || !out)
        return CF_EINVAL;
    if (!ex->ops->shares_memory && arg)
        return CF_ENOTSUP;
    return ex->ops->submit(ex, fn, arg, 0, arg_free, out);
}

int cf_executor_submit_bytes(cf_executor_t *ex, cf_task_fn fn, const void *data, size_t len, cf_future_t **out)
{
    void *copy;
    int rc;

    if (!ex || !fn || !out || (!data && len))
        return CF_EINVAL;
    copy = cf__memdup(data, len);
    if (!copy)
        return CF_ENOMEM;
    rc = ex->ops->submit(ex, fn, copy, len, free, out);
    if (rc)
        free(copy);
    return rc;
}

int cf_executor_shutdown(cf_executor_t *ex, int flags)
{
    if (!ex)
        return CF_EINVAL;
    return ex->ops->shutdown(ex, flags);
}

int cf_executor_workers(const cf_executor_t *ex)
{
    CF_REQUIRE(ex, "executor is NULL");
    return ex->ops->workers(ex);
}

cf_loop_t *cf_executor_loop(const cf_executor_t *ex)
{
    CF_REQUIRE(ex, "executor is NULL");
    return ex->loop;
}

const char *cf_executor_kind(const cf_executor_t *ex)
{
    CF_REQUIRE(ex, "executor is NULL");
    return ex->ops->kind;
}
