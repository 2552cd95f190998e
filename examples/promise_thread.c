/*
 * promise_thread.c - a future completed by code that is not a pool task: a
 * thread of your own (a library callback, a device) hands its result to the
 * loop with cf_loop_call(), the only cfutures call that is safe from any
 * thread; on the loop thread the promise is resolved.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <pthread.h>
#include <stdio.h>

struct job {
    cf_loop_t *loop;
    cf_future_t *promise;
    int64_t value; /* written by the thread, read on the loop thread after the hand-over */
};

static void resolve(cf_loop_t *loop, void *arg) /* runs on the loop thread */
{
    struct job *job = arg;
    cf_future_set_i64(job->promise, job->value);
    cf_loop_release(loop); /* the thread no longer needs the loop kept alive */
}

static void *foreign_thread(void *arg) /* not a cfutures thread */
{
    struct job *job = arg;
    int64_t sum = 0;
    for (int64_t i = 1; i <= 1000000; i++)
        sum += i;
    job->value = sum;
    if (cf_loop_call(job->loop, resolve, job) != 0)
        fprintf(stderr, "cf_loop_call failed\n");
    return NULL;
}

int main(void)
{
    cf_runtime_t *rt = NULL;
    pthread_t t;
    int rc = cf_runtime_new(1, 0, &rt);
    struct job job = {rt ? cf_runtime_loop(rt) : NULL, NULL, 0};

    if (rc == 0 && (rc = cf_future_new(job.loop, &job.promise)) == 0) {
        cf_loop_hold(job.loop); /* a promise alone does not keep the loop alive: the thread will call in */
        if ((rc = -pthread_create(&t, NULL, foreign_thread, &job)) != 0) {
            cf_loop_release(job.loop);
        } else {
            int64_t v = 0;
            rc = cf_future_get_i64(job.promise, -1, &v); /* runs the loop until resolve() ran */
            pthread_join(t, NULL);
            printf("the thread says: 1 + ... + 1000000 = %lld\n", (long long)v);
        }
        cf_future_unref(job.promise);
    }
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    return cf_runtime_free(rt) == 0 && rc == 0 ? 0 : 1;
}
