/*
 * floor_batch.c - the floor under tp_batch: a bare two-lock batch hand-off,
 * with no futures, no callbacks objects and no allocation per task.
 *
 *   floor_batch [--n N] [--threads T]     (default 1000000 tasks, 2 threads)
 *
 * Tasks are preallocated (and faulted in) nodes of one array.  The main
 * thread plays the loop: it appends every task to the work queue (lock 1;
 * a condition variable wakes sleeping workers), then waits in epoll_wait() on
 * an eventfd.  Each worker takes up to 16 tasks per acquisition of lock 1,
 * runs each (nothing), and appends the finished ones to the done list (lock
 * 2), writing the eventfd only when the done list was empty.  The main thread
 * takes the whole done list per wake-up (lock 2) and "runs each callback"
 * (counts it).  Timed like tp_batch: from the first submit until the last
 * callback.  This is the least any thread pool with a completion queue does
 * per task; a library adds its task objects, states and callbacks on top.
 *
 * Prints one JSON line: {"case": "floor_batch", "unit": "tasks/s", "value":
 * tasks per second, "cpu_ns_per_task": CPU (user + system, all threads)
 * per task, ...}.  Exit 0, 1 on a system error, 2 on usage.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "peer_clock.h"

#define TAKE_MAX 16

struct task {
    struct task *next;
    long id;
};

static pthread_mutex_t work_mu = PTHREAD_MUTEX_INITIALIZER; /* lock 1 */
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static struct task *work_head, **work_tail = &work_head; /* work_mu */
static long work_n;                                     /* work_mu */
static int idle_workers, quit;                          /* work_mu */
static int nthreads = 2;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER; /* lock 2 */
static struct task *done_head, **done_tail = &done_head;    /* done_mu */
static int efd;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&work_mu);
    for (;;) {
        struct task *mine[TAKE_MAX];
        long k;
        while (!work_n && !quit) {
            idle_workers++;
            pthread_cond_wait(&work_cv, &work_mu);
            idle_workers--;
        }
        if (!work_n)
            break;
        /* Several per acquisition only while the queue is long. */
        k = work_n / (2 * nthreads);
        k = k < 1 ? 1 : k > TAKE_MAX ? TAKE_MAX : k;
        for (long i = 0; i < k; i++) {
            mine[i] = work_head;
            work_head = work_head->next;
        }
        if (!work_head)
            work_tail = &work_head;
        work_n -= k;
        pthread_mutex_unlock(&work_mu);

        for (long i = 0; i < k; i++) {
            int was_empty;
            /* the task: nothing */
            pthread_mutex_lock(&done_mu);
            was_empty = done_head == NULL;
            mine[i]->next = NULL;
            *done_tail = mine[i];
            done_tail = &mine[i]->next;
            pthread_mutex_unlock(&done_mu);
            if (was_empty) {
                uint64_t one = 1;
                if (write(efd, &one, sizeof(one)) != sizeof(one))
                    die("write eventfd");
            }
        }
        pthread_mutex_lock(&work_mu);
    }
    pthread_mutex_unlock(&work_mu);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = 1000000, done = 0;
    pthread_t tids[64];
    struct epoll_event ev = {.events = EPOLLIN};
    struct task *tasks;
    int ep;
    double t0, c0, secs, cpu;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc && (n = strtol(argv[++i], NULL, 10)) > 0)
            continue;
        if (!strcmp(argv[i], "--threads") && i + 1 < argc && (nthreads = atoi(argv[++i])) > 0 && nthreads <= 64)
            continue;
        fprintf(stderr, "usage: floor_batch [--n N] [--threads T]\n");
        return 2;
    }
    tasks = malloc((size_t)n * sizeof(*tasks));
    if (!tasks)
        die("malloc");
    for (long i = 0; i < n; i++) { /* faulted in before timing, like libuv's requests */
        tasks[i].next = NULL;
        tasks[i].id = i;
    }
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        die("eventfd/epoll");
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&tids[i], NULL, worker, NULL))
            die("pthread_create");

    c0 = cpu_s();
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&work_mu);
        tasks[i].next = NULL;
        *work_tail = &tasks[i];
        work_tail = &tasks[i].next;
        work_n++;
        if (idle_workers)
            pthread_cond_signal(&work_cv);
        pthread_mutex_unlock(&work_mu);
    }
    while (done < n) {
        struct epoll_event got;
        struct task *t;
        uint64_t v;
        if (epoll_wait(ep, &got, 1, -1) != 1)
            continue;
        if (read(efd, &v, sizeof(v)) < 0)
            continue;
        pthread_mutex_lock(&done_mu);
        t = done_head;
        done_head = NULL;
        done_tail = &done_head;
        pthread_mutex_unlock(&done_mu);
        for (; t; t = t->next) /* the callbacks: count */
            done++;
    }
    secs = now_s() - t0;
    cpu = cpu_s() - c0;

    pthread_mutex_lock(&work_mu);
    quit = 1;
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(tids[i], NULL);
    free(tasks);
    printf("{\"case\": \"floor_batch\", \"unit\": \"tasks/s\", \"value\": %.1f, \"n\": %ld, \"seconds\": %.6f, "
           "\"cpu_ns_per_task\": %.1f, \"threads\": %d}\n",
           (double)n / secs, n, secs, cpu * 1e9 / (double)n, nthreads);
    return 0;
}
