/*
 * task.c - the worker-side view of a task (cf_task_t), shared by executors.
 *
 * A cf_task_t lives on the stack of whoever runs the task (a pool worker, or
 * the item loop of a map chunk) and points at the outcome it fills in.  These
 * functions run on that worker thread and touch nothing else.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cf__task_run(struct cf_task *task, cf_task_fn fn)
{
    cf__task_finish(task, fn(task, task->arg));
}

void cf__task_finish(struct cf_task *task, int rc)
{
    if (rc > 0) {
        free(task->out->errmsg);
        if (asprintf(&task->out->errmsg, "task returned a positive status (%d)", rc) < 0)
            task->out->errmsg = NULL;
        rc = CF_EFAIL;
    }
    task->out->err = rc;
}

void cf_task_set_result(cf_task_t *task, void *value, cf_free_fn value_free)
{
    CF_REQUIRE(task, "task is NULL");
    cf__outcome_drop_value(task->out);
    task->out->value.ptr = value;
    task->out->value_free = value_free;
}

int cf_task_set_bytes(cf_task_t *task, const void *data, size_t len)
{
    void *copy;

    CF_REQUIRE(task, "task is NULL");
    CF_REQUIRE(data || !len, "data is NULL");
    copy = cf__memdup(data, len);
    if (!copy)
        return CF_ENOMEM;
    cf__outcome_drop_value(task->out);
    task->out->value.ptr = copy;
    task->out->value_free = free;
    task->out->len = len;
    task->out->is_bytes = 1;
    return 0;
}

void cf_task_set_i64(cf_task_t *task, int64_t value)
{
    CF_REQUIRE(task, "task is NULL");
    cf__outcome_drop_value(task->out);
    task->out->value.i64 = value;
}

void cf_task_set_f64(cf_task_t *task, double value)
{
    CF_REQUIRE(task, "task is NULL");
    cf__outcome_drop_value(task->out);
    task->out->value.f64 = value;
}

int cf_task_fail(cf_task_t *task, int err, const char *fmt, ...)
{
    va_list ap;

    CF_REQUIRE(task, "task is NULL");
    va_start(ap, fmt);
    cf__outcome_set_msg(task->out, fmt, ap);
    va_end(ap);
    return err < 0 ? err : CF_EFAIL;
}

int cf_task_cancelled(const cf_task_t *task)
{
    CF_REQUIRE(task, "task is NULL");
    return task->cancel_req && atomic_load_explicit(task->cancel_req, memory_order_relaxed) != 0;
}

void *cf_task_worker_data(const cf_task_t *task)
{
    CF_REQUIRE(task, "task is NULL");
    return task->worker_data;
}

int cf_task_worker_index(const cf_task_t *task)
{
    CF_REQUIRE(task, "task is NULL");
    return task->worker_index;
}

void *cf_task_arg(const cf_task_t *task, size_t *len)
{
    CF_REQUIRE(task, "task is NULL");
    if (len)
        *len = task->arg_len;
    return task->arg;
}
