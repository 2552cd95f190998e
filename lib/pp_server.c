/*
 * pp_server.c - the process pool's control protocol with its fork server,
 * and the life of a worker slot, parent side.
 *
 * DESIGN
 *
 * Control channel (SOCK_SEQPACKET, pp.h): the pool sends SPAWN {index}; the
 * fork server answers SPAWNED {index, pid} with the parent's ends of the
 * worker's channel attached (SCM_RIGHTS), or pid = -errno, and reports every
 * reaped worker with EXITED {pid, status}.  ctl_cb reads them all.
 *
 * A worker slot's states (cf__pp_worker_set() is the only place that
 * changes one, and asserts the transition):
 *
 *     EMPTY --spawn--> SPAWNING --SPAWNED--> STARTING --READY--> READY --stop--> STOPPING
 *       ^                 |                     |                  |                |
 *       |            failed/server gone   INIT_FAIL, EOF,     EOF or exit     EOF or exit
 *       |                 |                   or exit              |                |
 *       |                 v                     v                  v                |
 *       +------------- (EMPTY)               FAILED              DYING <-----------+
 *       |                                       |                  |
 *       +--------------- EXITED: finalize ------+------------------+
 *
 * A READY worker told to stop (a running task cancelled or timed out, a
 * kill) is STOPPING: dispatch sends it nothing more, so the signal cannot
 * reach a task sent after the decision to stop it.
 *
 * A worker's end is known from its channel (EOF) and from the fork server's
 * EXITED report, in either order; the channel is drained first so no result
 * already written is lost (cf__pp_worker_finalize()).  Then the task it was
 * running (acknowledged, no result) fails with CF_EWORKER and a message
 * naming worker, pid, signal or exit status; tasks sent but not acknowledged
 * go back to the front of the queue; the slot is respawned.  A slot that
 * ends FAILED - its initializer reported failure, or the process ended in
 * any way (crash, _exit, kill) before it said READY - counts as an
 * initializer failure; max_init_failures in a row break the pool, naming
 * the last one.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "pp_pool.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const w_names[] = {
    [W_EMPTY] = "EMPTY", [W_SPAWNING] = "SPAWNING", [W_STARTING] = "STARTING",
    [W_READY] = "READY", [W_FAILED] = "FAILED",     [W_DYING] = "DYING",
    [W_STOPPING] = "STOPPING",
};

/* Allowed transitions: w_next[from] has bit `to` set. */
#define B(s) (1u << (s))
static const unsigned w_next[] = {
    [W_EMPTY] = B(W_SPAWNING),
    [W_SPAWNING] = B(W_EMPTY) | B(W_STARTING),
    [W_STARTING] = B(W_READY) | B(W_FAILED),
    [W_READY] = B(W_DYING) | B(W_STOPPING),
    [W_STOPPING] = B(W_DYING),
    [W_FAILED] = B(W_EMPTY),
    [W_DYING] = B(W_EMPTY),
};
#undef B

const char *cf__pp_worker_state_name(int st)
{
    return st >= 0 && st < (int)(sizeof(w_names) / sizeof(w_names[0])) && w_names[st] ? w_names[st] : "?";
}

void cf__pp_worker_set(struct pp_worker *w, int st)
{
    CF_ASSERT(w->state >= 0 && w->state <= W_STOPPING && (w_next[w->state] & (1u << st)),
              "process pool: worker state change not allowed");
#ifdef CF_PP_TRACE
    fprintf(stderr, "cfutures pp: worker %d (pid %d) %s -> %s\n", w->index, (int)w->pid,
            cf__pp_worker_state_name(w->state), cf__pp_worker_state_name(st));
#endif
    w->state = st;
}

static void describe_status(int status, char *buf, size_t n)
{
    if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (SIG%s)%s", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
                 WCOREDUMP(status) ? ", core dumped" : "");
    else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d%s", WEXITSTATUS(status),
                 WEXITSTATUS(status) == CF__PP_EXIT_SETUP          ? " (could not set up its channel)"
                 : WEXITSTATUS(status) == CF__PP_EXIT_CHANNEL      ? " (malformed input or broken channel)"
                 : WEXITSTATUS(status) == CF__PP_EXIT_NOMEM_TASK   ? " (out of memory receiving a task)"
                 : WEXITSTATUS(status) == CF__PP_EXIT_NOMEM_RESULT ? " (out of memory building the result)"
                 : WEXITSTATUS(status) == CF__PP_EXIT_NOMEM_FRAME  ? " (out of memory for a frame to the pool)"
                 : WEXITSTATUS(status) == CF__PP_EXIT_RLIMIT       ? " (could not apply max_memory: setrlimit failed)"
                                                                   : "");
    else
        snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
}

static struct pp_worker *worker_by_pid(cf_process_pool_t *pool, pid_t pid)
{
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].pid == pid && pool->workers[i].state > W_SPAWNING)
            return &pool->workers[i];
    return NULL;
}

/* The worker ended (its channel closed, or its exit was reported). */
static void worker_mark_ended(struct pp_worker *w)
{
    if (w->state == W_STARTING)
        cf__pp_worker_set(w, W_FAILED); /* any end before READY is an initializer failure */
    else if (w->state == W_READY || w->state == W_STOPPING)
        cf__pp_worker_set(w, W_DYING);
    cf__pp_io_stop(w->pool->loop, &w->rio);
}

/* The worker's channel ended (EOF, read error, protocol violation): make sure it is gone. */
void cf__pp_worker_ended(struct pp_worker *w)
{
    worker_mark_ended(w);
    cf__pp_worker_signal(w, SIGKILL); /* the exit report follows */
}

/* The worker's exit status is in: account for it and replace it. */
void cf__pp_worker_finalize(struct pp_worker *w)
{
    cf_process_pool_t *pool = w->pool;
    struct cf__list requeue;
    struct cf__list *n;
    char how[128];
    int crashed = 0, init_failed, mid_result;
    pid_t pid = w->pid;

    w->pid = 0;            /* reaped: never signal that pid (or group) again */
    cf__pp_worker_read(w); /* drain what the worker wrote before it died */
    mid_result = !cf__frame_reader_idle(&w->rd); /* only a RESULT is large enough to be cut short */
    worker_mark_ended(w);
    cf__pp_worker_close(w);
    init_failed = w->state == W_FAILED;
    if (w->stop_why)
        snprintf(how, sizeof(how), "was stopped by the pool: %s", w->stop_why);
    else
        describe_status(w->status, how, sizeof(how));
    free(w->stop_why);
    w->stop_why = NULL;
    cf__list_init(&requeue);
    for (int first = 1; (n = cf__list_pop(&w->inflight)); first = 0) {
        struct pp_task *t = cf__container_of(n, struct pp_task, link);
        int was = t->state;

        w->ninflight--;
        /* The worker died with no task running: the first task sent was
         * being delivered (a worker reads tasks in order and acknowledges
         * each before it runs it).  After max_delivery_deaths such deaths
         * in a row it fails instead of killing workers forever. */
        if (first && was == PT_SENT && !w->pool_stopped && !pool->broken && !pool->server_dead &&
            ++t->deliveries_failed >= pool->opts.max_delivery_deaths) {
            cf__pp_task_set(t, PT_DONE);
            cf__pp_complete(t, NULL, CF_EWORKER,
                            cf__printf_alloc("the task was sent to %u worker%s in turn and each died before it "
                                             "could take it; last: worker %d (pid %d) %s",
                                             (unsigned)t->deliveries_failed, t->deliveries_failed == 1 ? "" : "s",
                                             w->index, (int)pid, how));
            cf__pp_task_free(t);
            continue;
        }
        if (was == PT_RUNNING || was == PT_TIMING_OUT || was == PT_CANCELLING) {
            pool->nrunning--;
            cf__pp_task_set(t, PT_DONE);
            if (pool->broken)
                cf__pp_complete(t, NULL, pool->broken_err, pool->broken_msg ? strdup(pool->broken_msg) : NULL);
            else if (was == PT_TIMING_OUT)
                cf__pp_complete(t, NULL, CF_ETIMEDOUT,
                                cf__printf_alloc("the task timed out after %.3f s; worker %d (pid %d) was stopped (%s)",
                                                 t->timeout, w->index, (int)pid, how));
            else if (was == PT_CANCELLING)
                cf__pp_complete(t, NULL, CF_ECANCELED,
                                cf__printf_alloc("the task was cancelled while running; worker %d (pid %d) was "
                                                 "stopped (%s)",
                                                 w->index, (int)pid, how));
            else {
                crashed = 1;
                cf__pp_complete(t, NULL, CF_EWORKER,
                                cf__printf_alloc("worker %d (pid %d) %s while %s", w->index, (int)pid, how,
                                                 mid_result ? "sending the task's result" : "running the task"));
            }
            cf__pp_task_free(t);
        } else if (was == PT_SENT_CANCELLED || was == PT_SKIPPING) {
            cf__pp_task_set(t, PT_DONE); /* cancelled while in the pipe: nothing to do */
            cf__pp_task_free(t);
        } else { /* sent, not taken (or behind a task the worker was stopped for): for another worker */
            cf__pp_task_set(t, PT_QUEUED);
            t->w = NULL;
            t->acked = 0;
            cf__list_push(&requeue, &t->link);
            pool->nqueued++;
        }
    }
    /* Unstarted tasks go back to the front of the queue, in their order. */
    if (!cf__list_empty(&requeue)) {
        struct cf__list *first = requeue.next, *last = requeue.prev;
        last->next = pool->queue.next;
        pool->queue.next->prev = last;
        pool->queue.next = first;
        first->prev = &pool->queue;
    }

    if (init_failed) {
        pool->init_failures++;
        if (pool->init_failures >= pool->opts.max_init_failures) {
            if (w->init_msg)
                cf__pp_break(pool, CF_EBROKEN,
                             cf__printf_alloc("process pool broken: worker initializer failed %u times in a row; "
                                              "last: %s",
                                              pool->init_failures, w->init_msg));
            else
                cf__pp_break(pool, CF_EBROKEN,
                             cf__printf_alloc("process pool broken: worker initializer failed %u times in a row; "
                                              "last: worker %d (pid %d) %s before it was ready",
                                              pool->init_failures, w->index, (int)pid, how));
        }
    }
    if (crashed && pool->opts.on_crash == CF_CRASH_BREAK)
        cf__pp_break(pool, CF_EBROKEN,
                     cf__printf_alloc("process pool broken: worker %d (pid %d) %s", w->index, (int)pid, how));
    free(w->init_msg);
    w->init_msg = NULL;
    cf__pp_worker_set(w, W_EMPTY);
    w->used = 0;
    w->pool_stopped = 0;
    if (!pool->broken && !pool->server_dead && (!pool->shut || pool->nqueued)) {
        w->restarts++;
        cf__pp_worker_spawn(w);
    }
    if (pool->broken)
        cf__pp_fail_queue(pool, pool->broken_err, pool->broken_msg);
    pool->dispatch_due = 1;
    cf__pp_dispatch_due(pool);
}

static void start_failed(cf_process_pool_t *pool, struct pp_worker *w, int err);

void cf__pp_worker_spawn(struct pp_worker *w)
{
    struct cf__pp_ctl m = {.type = CF__CTL_SPAWN, .index = w->index};
    ssize_t r;

    /* No process writes to the slot's ring now: start it afresh (pp.h). */
    atomic_store(&w->ring->tail, 0);
    atomic_store(&w->ring->head, 0);
    atomic_store(&w->ring->want_wake, CF__PP_WAKE_RESULT);
    w->ring_head = 0;
    w->rseq = 0;
    w->ack_wake = 0;
    cf__pp_worker_set(w, W_SPAWNING);
    while ((r = send(w->pool->ctl, &m, sizeof(m), MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (r == (ssize_t)sizeof(m))
        return;
    if (r < 0 && errno != EPIPE && errno != ECONNRESET)
        start_failed(w->pool, w, -errno); /* ENOBUFS, EAGAIN ...: retried with backoff */
    else
        cf__pp_worker_set(w, W_EMPTY); /* the server is gone: the ctl watcher sees it */
}

/*
 * The fork server died (killed from outside, OOM killer): its workers die
 * with it.  Their running tasks fail, the rest is queued again, and a new
 * fork server is started with new workers - unless it died
 * CF__PP_SERVER_DEATHS times in a row without a worker getting ready in
 * between, which breaks the pool.
 */
#define CF__PP_SERVER_DEATHS 3
static void pp_server_gone(cf_process_pool_t *pool)
{
    char how[128];
    int status = 0, rc;

    if (pool->server_dead)
        return;
    pool->server_dead = 1;
    pool->server_deaths++;
    cf__pp_io_stop(pool->loop, &pool->ctl_io);
    close(pool->ctl);
    pool->ctl = -1;
    kill(pool->server_pid, SIGKILL); /* EOF with the process alive: a protocol failure */
    while (waitpid(pool->server_pid, &status, 0) < 0 && errno == EINTR)
        ;
    describe_status(status, how, sizeof(how));
    /* Workers die with the fork server (PR_SET_PDEATHSIG); fail what they held. */
    for (int i = 0; i < pool->nworkers; i++) {
        struct pp_worker *w = &pool->workers[i];
        if (w->state == W_EMPTY)
            continue;
        if (w->state == W_SPAWNING) {
            cf__pp_worker_set(w, W_EMPTY);
            continue;
        }
        cf__pp_worker_signal(w, SIGKILL);
        w->status = SIGKILL;
        cf__pp_worker_finalize(w);
    }
    if (pool->broken || (pool->shut && !pool->nqueued))
        return;
    if (pool->server_deaths >= CF__PP_SERVER_DEATHS) {
        cf__pp_break(pool, CF_EBROKEN,
                     cf__printf_alloc("process pool broken: its fork server died %u times in a row; last: pid %d %s",
                                      pool->server_deaths, (int)pool->server_pid, how));
        return;
    }
    if ((rc = cf__pp_server_start(pool)) != 0) {
        cf__pp_break(pool, CF_EBROKEN,
                     cf__printf_alloc("process pool broken: its fork server (pid %d) %s and a new one cannot be "
                                      "started: %s",
                                      (int)pool->server_pid, how, cf_strerror(rc)));
        return;
    }
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state == W_EMPTY) {
            pool->workers[i].restarts++;
            cf__pp_worker_spawn(&pool->workers[i]);
        }
}

/* Resources that run out for a while: a worker that cannot start for want of them is retried. */
static int start_err_transient(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -EAGAIN || err == -ENOBUFS;
}

static const char *start_err_text(int err)
{
    return err == -EAGAIN ? "out of processes (fork: EAGAIN)" : cf_strerror(err);
}

/* Retry empty slots after CF__PP_RESPAWN_MIN s, doubling to CF__PP_RESPAWN_MAX s. */
#define CF__PP_RESPAWN_MIN 0.01
#define CF__PP_RESPAWN_MAX 1.0
/* Failures in a row, with no worker alive, after which queued tasks fail
 * (the pool stays usable, and tasks queued later get as many tries again). */
#define CF__PP_START_TRIES 8

static int pool_has_worker(const cf_process_pool_t *pool)
{
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state >= W_STARTING)
            return 1;
    return 0;
}

/* A worker could not be started for want of resources: retry later, say why if nothing can run. */
static void start_failed(cf_process_pool_t *pool, struct pp_worker *w, int err)
{
    double delay = CF__PP_RESPAWN_MIN;

    cf__pp_worker_set(w, W_EMPTY);
    w->start_failures++;
    pool->start_failures++;
    pool->start_err = err;
    for (unsigned i = 1; i < pool->start_failures && delay < CF__PP_RESPAWN_MAX; i++)
        delay *= 2;
    if (delay > CF__PP_RESPAWN_MAX)
        delay = CF__PP_RESPAWN_MAX;
    if (!ev_is_active(&pool->respawn_timer)) {
        ev_timer_set(&pool->respawn_timer, delay, 0.);
        ev_timer_start(pool->loop->ev, &pool->respawn_timer);
        ev_unref(pool->loop->ev); /* queued tasks keep the loop alive, not the retry */
    }
    if (pool->start_failures - pool->start_failed_at >= CF__PP_START_TRIES && !pool_has_worker(pool) &&
        pool->nqueued) {
        char *msg = cf__printf_alloc("no worker could be started: %s (%u attempts in a row); the pool retries for "
                                     "later tasks",
                                     start_err_text(err), pool->start_failures);
        cf__pp_fail_queue(pool, err, msg);
        free(msg);
        pool->start_failed_at = pool->start_failures;
    }
}

void cf__pp_respawn_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    cf_process_pool_t *pool = t->data;

    (void)revents;
    ev_ref(ev); /* balanced with the ev_unref at start: the timer is stopped now */
    if (pool->broken || pool->server_dead || (pool->shut && !pool->nqueued))
        return;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state == W_EMPTY)
            cf__pp_worker_spawn(&pool->workers[i]);
}

/* SPAWNED: the worker's channel (fd, rfd) arrived, or the spawn failed. */
static void ctl_spawned(cf_process_pool_t *pool, const struct cf__pp_ctl *m, int fd, int rfd)
{
    struct pp_worker *w = &pool->workers[m->index];

    if (w->state != W_SPAWNING || m->pid <= 0 || fd < 0 || rfd < 0) {
        /* pid > 0 without descriptors: they did not fit our descriptor table
         * (MSG_CTRUNC); the worker finds its channel closed and exits. */
        int err = m->pid < 0 ? m->pid : -EMFILE;
        if (fd >= 0)
            close(fd);
        if (rfd >= 0)
            close(rfd);
        if (w->state != W_SPAWNING)
            return;
        if (start_err_transient(err)) {
            start_failed(pool, w, err);
            return;
        }
        cf__pp_worker_set(w, W_EMPTY);
        cf__pp_break(
            pool, err,
            cf__printf_alloc("process pool broken: cannot start worker %d: %s", m->index, start_err_text(err)));
        return;
    }
    w->pid = m->pid;
    w->seq = 0; /* the new process counts its tasks, and so its start gates, from 0 */
    cf__pp_worker_set(w, W_STARTING);
    cf__pp_worker_open(w, fd, rfd);
    if (pool->shut && !pool->nqueued)
        shutdown(fd, SHUT_WR); /* nothing to do: let it exit */
}

/* EXITED: the fork server reaped a worker. */
static void ctl_exited(cf_process_pool_t *pool, const struct cf__pp_ctl *m)
{
    struct pp_worker *w = worker_by_pid(pool, m->pid);

    if (!w)
        return;
    w->status = m->status;
    cf__pp_worker_finalize(w);
}

void cf__pp_ctl_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    cf_process_pool_t *pool = io->data;

    (void)ev;
    (void)revents;
    for (;;) {
        struct cf__pp_ctl m;
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(2 * sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
        int fds[2] = {-1, -1};
        ssize_t r = recvmsg(pool->ctl, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOMEM || errno == ENOBUFS)
                return; /* (out of memory: the message waits; retried on the next readiness) */
            pp_server_gone(pool);
            return;
        }
        if (r == 0) {
            pp_server_gone(pool);
            return;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                memcpy(fds, CMSG_DATA(c), (k < 2 ? k : 2) * sizeof(int));
            }
        /* fds[0]: tasks go down this socket; fds[1]: frames come up this pipe. */
        if (r == (ssize_t)sizeof(m) && m.type == CF__CTL_SPAWNED && m.index >= 0 && m.index < pool->nworkers) {
            ctl_spawned(pool, &m, fds[0], fds[1]);
            continue;
        }
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        if (r == (ssize_t)sizeof(m) && m.type == CF__CTL_EXITED)
            ctl_exited(pool, &m);
    }
}
