/*
 * floor_pingpong.c - the floor under tp_pingpong: a bare round trip through
 * the mechanisms a blocking thread pool on an event loop is made of, with no
 * pool, no futures and no callbacks around them.
 *
 *   floor_pingpong [--n N]     (default 100000)
 *
 * The main thread plays the loop: it hands a "task" to one worker thread
 * (mutex + condition variable), then blocks in epoll_wait() on an eventfd.
 * The worker wakes, runs nothing, writes the eventfd and waits again.  One
 * round trip = one condvar wake-up and one eventfd + epoll wake-up, which is
 * what uv_queue_work() costs at least (libuv adds its queues and callbacks).
 * Nobody spins: this is the floor for a pool whose threads block.
 *
 * Prints one JSON line: {"case": "floor_pingpong", "unit": "us", "value":
 * microseconds per round trip, "cpu_us_per_trip": CPU (user + system, both
 * threads) per round trip, ...}.  Exit 0, 1 on a system error, 2 on usage.
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

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long pending; /* tasks handed over, not yet taken; mu */
static int quit;     /* mu */
static int efd;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *worker(void *arg)
{
    uint64_t one = 1;
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!pending && !quit)
            pthread_cond_wait(&cv, &mu);
        if (quit)
            break;
        pending--;
        pthread_mutex_unlock(&mu);
        /* the task: nothing */
        if (write(efd, &one, sizeof(one)) != sizeof(one))
            die("write eventfd");
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = 100000;
    pthread_t tid;
    struct epoll_event ev = {.events = EPOLLIN};
    int ep;
    double t0 = 0, c0 = 0, secs, cpu;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc && (n = strtol(argv[++i], NULL, 10)) > 0)
            continue;
        fprintf(stderr, "usage: floor_pingpong [--n N]\n");
        return 2;
    }
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        die("eventfd/epoll");
    if (pthread_create(&tid, NULL, worker, NULL))
        die("pthread_create");

    /* One untimed round trip: the worker runs and is blocked. */
    for (long i = -1; i < n; i++) {
        struct epoll_event got;
        uint64_t v;
        if (i == 0) {
            c0 = cpu_s();
            t0 = now_s();
        }
        pthread_mutex_lock(&mu);
        pending++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        while (epoll_wait(ep, &got, 1, -1) != 1)
            ;
        if (read(efd, &v, sizeof(v)) != sizeof(v))
            die("read eventfd");
    }
    secs = now_s() - t0;
    cpu = cpu_s() - c0;

    pthread_mutex_lock(&mu);
    quit = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(tid, NULL);
    printf("{\"case\": \"floor_pingpong\", \"unit\": \"us\", \"value\": %.3f, \"n\": %ld, \"seconds\": %.6f, "
           "\"cpu_us_per_trip\": %.3f}\n",
           secs * 1e6 / (double)n, n, secs, cpu * 1e6 / (double)n);
    return 0;
}
