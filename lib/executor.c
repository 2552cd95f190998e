/*
 * executor.c - the executor interface, and what every executor shares.
 *
 * Every submission goes through cf__executor_submit() and so through the
 * executor's ops; ownership of the argument is stated by flags
 * (CF__SUBMIT_*), never inferred from the destructor's address.  An
 * executor counts its tasks in a struct cf__exec_counters, takes each
 * accepted task with cf__exec_accept() and ends it with cf__exec_complete(),
 * so final states, counters, argument destruction and loop accounting are
 * the same for the thread pool, the process pool and any later executor.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int cf_executor_submit(cf_executor_t *ex, cf_task_fn fn, void *arg, cf_free_fn arg_free, cf_future_t **out)
{
    struct cf__submit s = {.fn = fn, .arg = arg, .arg_free = arg_free};

    return cf__executor_submit(ex, &s, out);
}

int cf_executor_submit_bytes(cf_executor_t *ex, cf_task_fn fn, const void *data, size_t len, cf_future_t **out)
{
    void *copy;
    int rc;

    if (!ex || !fn || !out || (!data && len))
        return CF__EINVAL(!ex ? "ex is NULL" : !fn ? "fn is NULL" : !out ? "out is NULL" : "data is NULL with len > 0");
    copy = cf__memdup(data, len);
    if (!copy)
        return CF_ENOMEM;
    rc = cf__executor_submit(
        ex, &(struct cf__submit){.fn = fn, .arg = copy, .len = len, .flags = CF__SUBMIT_BYTES | CF__SUBMIT_OWNED}, out);
    if (rc)
        free(copy);
    return rc;
}

int cf_executor_shutdown(cf_executor_t *ex, int flags)
{
    if (!ex)
        return CF__EINVAL("ex is NULL");
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

/* ------------------------------------------------------------------ shared by executors */

int cf__executor_submit(cf_executor_t *ex, const struct cf__submit *s, cf_future_t **out)
{
    if (!ex || !s || !s->fn || !out || ((s->flags & CF__SUBMIT_BYTES) && !s->arg && s->len) ||
        ((s->flags & CF__SUBMIT_OWNED) && (!(s->flags & CF__SUBMIT_BYTES) || s->arg_free)))
        return cf__set_error(CF_EINVAL, "submit: %s",
                             !ex            ? "the executor is NULL"
                             : !s || !s->fn ? "the task function is NULL"
                             : !out         ? "out is NULL"
                                            : "invalid argument buffer");
    if (!(s->flags & CF__SUBMIT_BYTES) && s->arg && !ex->ops->shares_memory)
        return cf__set_error(CF_ENOTSUP,
                             "submit: a %s does not share memory with the caller: pass the argument "
                             "as bytes (cf_executor_submit_bytes())",
                             ex->ops->kind);
    if (ex->ops->submit_task)
        return ex->ops->submit_task(ex, s, out);
    /* An executor still on the older form: it adopts a buffer freed with free(). */
    return ex->ops->submit(ex, s->fn, s->arg, (s->flags & CF__SUBMIT_BYTES) ? s->len : 0,
                           (s->flags & CF__SUBMIT_OWNED) ? free : s->arg_free, out);
}

void cf__exec_accept(struct cf__exec_counters *c, cf_future_t *f, const struct cf__future_ops *ops, void *owner)
{
    f->ops = ops;
    f->owner = owner;
    f->refs++; /* the executor's reference, dropped after cf__exec_complete() */
    c->outstanding++;
    c->submitted++;
    cf__loop_task_begin(f->loop);
}

cf_future_state cf__exec_complete(struct cf__exec_counters *c, cf_future_t *f, int how)
{
    cf_future_state st = (cf_future_state)atomic_load_explicit(&f->state, memory_order_acquire);

    if (st < CF_FUTURE_FINISHED) {
        st = f->out.err == 0 ? CF_FUTURE_FINISHED : f->out.err == CF_ECANCELED ? CF_FUTURE_CANCELLED : CF_FUTURE_FAILED;
        if (how == CF__COMPLETE_SCHEDULE)
            cf__future_settle(f, st);
        else
            cf__future_set_state(f, st);
    } else {
        CF_ASSERT(how == CF__COMPLETE_CALLER_DISPATCHES, "a done future's callbacks are the caller's to run");
    }
    if (st == CF_FUTURE_FINISHED)
        c->completed++;
    else if (st == CF_FUTURE_CANCELLED)
        c->cancelled++;
    else
        c->failed++;
    CF_ASSERT(!f->shares_value, "an executor's future carries its task's argument");
    if (f->arg_free)
        f->arg_free(f->arg);
    f->arg_free = NULL;
    f->arg = NULL;
    f->owner = NULL;
    c->outstanding--;
    cf__loop_task_end(f->loop);
    return st;
}

void cf__exec_counters_get(const struct cf__exec_counters *c, cf_pool_stats *out)
{
    out->submitted = c->submitted;
    out->completed = c->completed;
    out->failed = c->failed;
    out->cancelled = c->cancelled;
}
