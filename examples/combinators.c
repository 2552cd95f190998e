/*
 * combinators.c - futures of different kinds composed: a timer, a file
 * descriptor becoming readable, and a pool task.  cf_all() waits for all of
 * them, cf_then() continues with their values (and can start more work,
 * which cf_future_adopt() hands on), cf_any() takes the first.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>
#include <unistd.h>

static int write_byte(cf_task_t *task, int64_t fd) /* runs on a worker thread */
{
    cf_task_set_i64(task, write((int)fd, "x", 1));
    return 0;
}

/* Continuation: runs on the loop thread once every input of cf_all() finished. */
static int report(cf_future_t *all, cf_future_t *dst, void *data)
{
    cf_future_t *const *list;
    size_t n;
    cf_future_result_list(all, &list, &n);
    printf("all %zu done: timer %lld, fd events %s, task wrote %lld byte\n", n, (long long)cf_future_i64(list[0]),
           cf_future_i64(list[1]) & EV_READ ? "EV_READ" : "?", (long long)cf_future_i64(list[2]));
    return cf_future_set_i64(dst, (int64_t)n);
}

static int64_t times_ten(int64_t x) /* runs on a worker thread */
{
    return x * 10;
}

/* Continuation that starts more work: dst completes as the new task does. */
static int more_work(cf_future_t *src, cf_future_t *dst, void *data)
{
    cf_future_t *next;
    int rc = cf_submit_i64_i64(data /* the executor */, times_ten, cf_future_i64(src), &next);
    if (rc == 0) {
        rc = cf_future_adopt(dst, next);
        cf_future_unref(next); /* dst keeps it alive */
    }
    return rc;
}

int main(void)
{
    cf_runtime_t *rt;
    cf_future_t *in[3] = {NULL}, *all = NULL, *then = NULL, *more = NULL, *slow = NULL, *any = NULL, *late = NULL,
                *deadline = NULL;
    int p[2], rc = pipe(p) == 0 ? cf_runtime_new(1, 0, &rt) : -errno;
    if (rc != 0)
        return 1;
    cf_loop_t *loop = cf_runtime_loop(rt);

    if ((rc = cf_sleep(loop, 0.01, &in[0])) == 0 &&           /* a timer */
        (rc = cf_fd_ready(loop, p[0], EV_READ, &in[1])) == 0 &&  /* the read end of a pipe */
        (rc = cf_submit_i64_task(cf_runtime_threads(rt), write_byte, p[1], &in[2])) == 0 && /* fills it */
        (rc = cf_all(in, 3, CF_CANCEL_REST, &all)) == 0 &&
        (rc = cf_then(all, report, NULL, NULL, 0, &then)) == 0)
        printf("then: %lld futures\n", (long long)cf_future_i64(then)); /* runs the loop until `then` is done */
    if (rc == 0 && (rc = cf_then(then, more_work, cf_runtime_threads(rt), NULL, 0, &more)) == 0)
        printf("then, adopting a task: %lld\n", (long long)cf_future_i64(more));

    /* The first of a 10-second timer and the (finished) task; the timer is then cancelled. */
    if (rc == 0 && (rc = cf_sleep(loop, 10, &slow)) == 0) {
        cf_future_t *race[2] = {slow, in[2]};
        if ((rc = cf_any(race, 2, CF_CANCEL_REST, &any)) == 0 && (rc = cf_future_wait(any, -1)) == 0)
            printf("any: the %s won; the timer is %s\n", cf_future_i64(in[2]) == 1 ? "task" : "timer",
                   cf_future_state_name(cf_future_get_state(slow)));
    }
    /* A 0.01 s deadline on another 10-second timer: it fails with CF_ETIMEDOUT, the timer is cancelled. */
    if (rc == 0 && (rc = cf_sleep(loop, 10, &late)) == 0 && (rc = cf_timeout(late, 0.01, &deadline)) == 0 &&
        (rc = cf_future_wait(deadline, -1)) == 0)
        printf("timeout: %s; the timer is %s\n", cf_err_name(cf_future_status(deadline)),
               cf_future_state_name(cf_future_get_state(late)));
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    cf_future_t *mine[] = {in[0], in[1], in[2], all, then, more, slow, any, late, deadline};
    cf_futures_unref(mine, 10);
    close(p[0]);
    close(p[1]);
    return cf_runtime_free(rt) == 0 && rc == 0 ? 0 : 1;
}
