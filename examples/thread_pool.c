/*
 * thread_pool.c - the core API without the script layer: a thread pool with
 * options (a scratch buffer per worker, from an initializer), tasks submitted
 * to it and through the executor interface every pool has, then shutdown.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int init(void *pool_data, int index, void **worker_data) /* on each worker thread as it starts */
{
    return (*worker_data = malloc(64)) ? 0 : CF_ENOMEM;
}

static void fini(void *pool_data, int index, void *worker_data) /* on each worker thread as it exits */
{
    free(worker_data);
}

static int greet(cf_task_t *task, void *arg) /* runs on a worker thread */
{
    size_t len;
    const char *name = cf_task_arg(task, &len); /* the pointer given, or the task's copy of the bytes */
    char *buf = cf_task_worker_data(task);      /* what init() made for this worker */
    int n = snprintf(buf, 64, "hello, %s", name);
    return cf_task_set_bytes(task, buf, n < 64 ? (size_t)n : 63); /* copied: the buffer serves the next task */
}

int main(void)
{
    cf_loop_t *loop;
    cf_thread_pool_t *pool;
    cf_thread_pool_opts o;
    cf_future_t *fs[2] = {NULL};
    const void *p;
    size_t n;

    cf_thread_pool_opts_init(&o);
    o.initializer = init;
    o.finalizer = fini;
    if (cf_loop_new(ev_default_loop(0), &loop) != 0 || cf_thread_pool_new(loop, &o, &pool) != 0)
        return 1;
    char *name = strdup("thread pool"); /* free(name) runs on the loop thread when the task is done */
    int rc = name ? cf_thread_pool_submit(pool, greet, name, free, &fs[0]) : CF_ENOMEM;
    if (rc == 0) /* the same pool through the executor interface; bytes are copied for the task */
        rc = cf_executor_submit_bytes(cf_thread_pool_executor(pool), greet, "executor", 9, &fs[1]);
    for (int i = 0; rc == 0 && i < 2; i++)
        if ((rc = cf_future_wait(fs[i], -1)) == 0 && (rc = cf_future_result_bytes(fs[i], &p, &n)) == 0)
            printf("%.*s\n", (int)n, (const char *)p);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", cf_strerror(rc));
    cf_futures_unref(fs, 2);
    cf_executor_shutdown(cf_thread_pool_executor(pool), CF_SHUTDOWN_WAIT); /* wait for the rest, join the workers */
    cf_thread_pool_free(pool);
    return cf_loop_close(loop) != 0 || rc != 0;
}
