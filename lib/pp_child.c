/*
 * pp_child.c - the process pool's fork server and worker processes.
 *
 * DESIGN
 *
 * Fork server.  Forked from the application by cf_process_pool_new().  It is
 * single-threaded, puts itself in its own process group (terminal signals
 * such as Ctrl-C go to the application, which decides), gets SIGTERM when
 * its parent dies (PR_SET_PDEATHSIG; read from its signalfd, so it cleans up
 * as on EOF), is a child subreaper (PR_SET_CHILD_SUBREAPER: what a task
 * forked and left behind becomes its child, and dies with it), and closes
 * every descriptor it inherited except
 * stdin/stdout/stderr and its control socket.  It waits in poll() on the
 * control socket and on a signalfd for SIGCHLD:
 *   SPAWN     socketpair (tasks down) + pipe (frames up) + fork a worker;
 *             send the parent its ends (SCM_RIGHTS)
 * Every report (SPAWNED, EXITED) reaches the pool: a send that fails for
 * want of kernel buffers or memory is retried with backoff (ctl_send).
 *   SIGCHLD   reap every exited worker, kill what is left of its process group,
 *             report EXITED {pid, status}
 *   SIGCHLD   (orphans inherited as subreaper are reaped silently)
 *   EOF, SIGTERM  the pool is gone: kill every worker group and every child
 *             (found in /proc), reap them all, exit.
 *
 * Worker.  Forked from the fork server, so never from a multi-threaded
 * process.  Leads its own process group (so a timeout kills the task's
 * children too), dies with the fork server, restores default signal handling,
 * applies the memory limit, runs the initializer, then serves frames on its
 * channel with blocking I/O: read TASK, send ACK (stamped with the start
 * time) with what is gathered, take its start gate (pp.h), run, mark the
 * gate DONE, send RESULT (with the run time, from which the pool sizes its
 * pipelines); a task whose gate the pool closed is not run: a CANCELLED
 * RESULT follows its ACK.  After a task whose gate the pool set to STOP
 * while it ran, nothing more is sent: the worker waits for the pool's
 * signal (await_stop()).  Tasks arrive on a socket; frames leave through the slot's ring
 * in shared memory (pp.h), so "send ACK" costs no system call, and the
 * pipe carries a WAKE frame when the pool waits for what was published (an
 * ACK alone only when the pool asked for ACKs), and the frames that do not
 * fit in the ring.  If the pool closed its end, a write raises SIGPIPE and the worker
 * (default dispositions) dies; the pool was done with it.  Input is
 * buffered (struct chan) and a task's argument is used in place when it is
 * aligned; the RESULT of a task is published with the ACK of the next,
 * before that task's gate is taken (so a stop decided for that task cannot
 * lose it).  An idle worker whose recent waits for a task were short polls
 * its socket for CHAN_SPIN_NS before it blocks, without sched_yield()
 * between polls (on a machine with fewer cores than workers + 1 that cost
 * a context switch per poll with the loop); one whose tasks come further
 * apart blocks at once (chan_fill()).  It exits with _exit() (never the
 * application's atexit handlers) on EOF or after max_tasks_per_child
 * tasks.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "frame.h"
#include "pp.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_CTL_FD 3
#define WORKER_IN_FD 3
#define WORKER_OUT_FD 4

static void close_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0) == 0)
        return;
#endif
    for (int fd = lowfd; fd < 65536; fd++)
        close(fd);
}

static void reset_signals(void)
{
    sigset_t none;

    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;

    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * The worker's channel: tasks come in on a socket, frames go out through the
 * slot's ring in shared memory (pp.h), or the pipe for what does not fit.
 * Input is read in large pieces, so a pipeline of small tasks costs one
 * read(); output frames are gathered (the RESULT of one task with the ACK of
 * the next) and moved to the ring together; a system call is made only to
 * wake a waiting pool, or for a frame that goes by the pipe.
 */
struct chan {
    int in_fd, out_fd;
    uint8_t *in;
    size_t in_cap, in_off, in_len; /* unread bytes are in[in_off .. in_len) */
    uint8_t *out;
    size_t out_len, out_cap;
    uint8_t *arg; /* an 8-byte aligned copy of a task's argument, when needed */
    size_t arg_cap;
    struct cf__pp_ring *ring;
    uint64_t tail, published; /* ring positions: written, and made visible to the pool */
    uint32_t seq;             /* the number of the next frame */
    int urgent;               /* a frame other than an ACK waits to be sent: it wakes a waiting pool */
    uint64_t idle_avg;        /* moving average of the waits for a next task, ns (chan_fill()) */
};

#define CHAN_IN_MIN 65536
#define CHAN_SPIN_NS 50000               /* an idle worker polls this long before it blocks, if it polls */
#define CHAN_IDLE_CAP (2 * CHAN_SPIN_NS) /* a wait counts this much at most in idle_avg */

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* Copy one frame (`n` bytes, `need` with its padding) into the ring: 0, or -1 when it is full. */
static int ring_put(struct chan *c, const uint8_t *frame, size_t n, size_t need)
{
    struct cf__pp_ring *r = c->ring;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t used = (size_t)(c->tail - head), off = (size_t)(c->tail % CF__PP_RING), room = CF__PP_RING - off;

    if (need > room) { /* it starts again at the beginning */
        if (room + need > CF__PP_RING - used)
            return -1;
        if (room >= CF__FRAME_HDR)
            cf__frame_hdr_encode(r->data + off, CF__FR_PAD, 0, 0);
        c->tail += room;
        off = 0;
    } else if (need > CF__PP_RING - used) {
        return -1;
    }
    memcpy(r->data + off, frame, n);
    c->tail += need;
    return 0;
}

/*
 * Make what was copied to the ring visible, and wake the pool if it waits
 * for frames like these (pp.h): want_wake >= `level` (CF__PP_WAKE_RESULT
 * when a frame other than an ACK is among them, CF__PP_WAKE_ACK for ACKs
 * alone, CF__PP_WAKE_NEVER when a frame on the pipe follows anyway).
 */
static int ring_publish(struct chan *c, uint32_t level)
{
    uint8_t wake[CF__FRAME_HDR];
    uint32_t want;

    if (c->tail == c->published)
        return 0;
    atomic_store(&c->ring->tail, c->tail);
    c->published = c->tail;
    want = atomic_load(&c->ring->want_wake);
    while (want >= level)
        if (atomic_compare_exchange_weak(&c->ring->want_wake, &want, 0)) {
            cf__frame_hdr_encode(wake, CF__FR_WAKE, 0, 0);
            return write_full(c->out_fd, wake, sizeof(wake));
        }
    return 0;
}

/* Send the gathered frames: through the ring, or the pipe those that do not fit. */
static int chan_flush(struct chan *c)
{
    size_t at = 0;
    int rc = 0;

    while (at < c->out_len) {
        uint64_t len;
        size_t n;

        memcpy(&len, c->out + at + 16, 8);
        n = CF__FRAME_HDR + (size_t)len;
        if (CF__FRAME_HDR + pad8((size_t)len) <= CF__PP_RING_FRAME &&
            ring_put(c, c->out + at, n, CF__FRAME_HDR + pad8((size_t)len)) == 0) {
            at += n;
            continue;
        }
        /* By the pipe; what went to the ring before it is visible first
         * (the pool reads the ring before it takes the pipe's frame). */
        if (ring_publish(c, CF__PP_WAKE_NEVER) || write_full(c->out_fd, c->out + at, n)) {
            rc = -1;
            break;
        }
        at += n;
    }
    c->out_len = 0;
    if (rc == 0)
        rc = ring_publish(c, c->urgent ? CF__PP_WAKE_RESULT : CF__PP_WAKE_ACK);
    c->urgent = 0;
    return rc;
}

/* Room for `n` more output bytes: a pointer to them, or NULL. */
static uint8_t *chan_reserve(struct chan *c, size_t n)
{
    size_t need = c->out_len + n;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o)
            return NULL;
        c->out = o;
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

/* Append a frame without payload (READY); nothing is sent until chan_flush(). */
static int chan_put(struct chan *c, unsigned type, uint64_t id)
{
    uint8_t *p = chan_reserve(c, CF__FRAME_HDR);
    if (!p)
        return -1;
    cf__frame_hdr_encode_flags(p, type, c->seq++, id, 0);
    c->out_len += CF__FRAME_HDR;
    c->urgent = 1;
    return 0;
}

/* Append the ACK of task `id`, stamped with the time it starts (frame.h), which is stored in *start. */
static int chan_put_ack(struct chan *c, uint64_t id, uint64_t *start)
{
    uint64_t now = *start = cf_now_ns();
    uint8_t *p = chan_reserve(c, CF__FRAME_HDR + 8);
    if (!p)
        return -1;
    cf__frame_hdr_encode_flags(p, CF__FR_ACK, c->seq++, id, 8);
    memcpy(p + CF__FRAME_HDR, &now, 8);
    c->out_len += CF__FRAME_HDR + 8;
    return 0;
}

/* Append a frame carrying an encoded outcome, encoded in place. */
static int chan_put_outcome(struct chan *c, unsigned type, uint64_t id, const struct cf__outcome *o)
{
    size_t n = cf__outcome_encoded_size(o);
    uint8_t *p = chan_reserve(c, CF__FRAME_HDR + n);
    if (!p)
        return -1;
    cf__frame_hdr_encode_flags(p, type, c->seq++, id, n);
    cf__outcome_encode(o, p + CF__FRAME_HDR);
    c->out_len += CF__FRAME_HDR + n;
    c->urgent = 1;
    return 0;
}

/* Append the RESULT of task `id`: the encoded outcome, then how long the task ran (frame.h). */
static int chan_put_result(struct chan *c, uint64_t id, const struct cf__outcome *o, uint64_t run_ns)
{
    size_t n = cf__outcome_encoded_size(o);
    uint8_t *p = chan_reserve(c, CF__FRAME_HDR + n + 8);
    if (!p)
        return -1;
    cf__frame_hdr_encode_flags(p, CF__FR_RESULT, c->seq++, id, n + 8);
    cf__outcome_encode(o, p + CF__FRAME_HDR);
    memcpy(p + CF__FRAME_HDR + n, &run_ns, 8);
    c->out_len += CF__FRAME_HDR + n + 8;
    c->urgent = 1;
    return 0;
}

/* 1 if a whole frame is buffered (its header decoded into *h). */
static int chan_has_frame(const struct chan *c, struct cf__frame_hdr *h)
{
    if (c->in_len - c->in_off < CF__FRAME_HDR || cf__frame_hdr_decode(c->in + c->in_off, h))
        return 0;
    return c->in_len - c->in_off - CF__FRAME_HDR >= h->len;
}

/*
 * Read more input: polling without blocking for up to CHAN_SPIN_NS, then
 * blocking.  A poll that finds the next task saves a sleep and a wake-up
 * (tens of microseconds from an idle CPU), which is what a stream of round
 * trips through the pool costs; when tasks come further apart, the poll
 * only takes the CPU from the processes that produce them (on a small
 * machine: the application's loop, a broker, a remote client).  So the
 * worker polls only while its waits for a next task have been short:
 * idle_avg, a moving average (weight 1/4) of how long it waited with
 * nothing buffered, each wait counted up to CHAN_IDLE_CAP, must be below
 * CHAN_SPIN_NS.  Three long waits in a row after short ones raise it
 * above, and the worker then blocks at once; three or four short waits
 * bring it back (a wait it blocked for counts its wake-up too), and it
 * polls again.  The rest of a frame already begun is always polled for.
 * The clock is read through the vDSO: no system call.  The poll does not
 * call sched_yield(): with more processes than cores that made a context
 * switch per poll with the loop.  0, 1 on EOF, -1 on error, -2 out of
 * memory.
 */
static int chan_fill(struct chan *c, size_t want)
{
    int idle = c->in_off == c->in_len; /* nothing of the next frame is here */

    if (c->in_off > 0) { /* keep the unread bytes at the front */
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (want < CHAN_IN_MIN)
        want = CHAN_IN_MIN;
    if (want > c->in_cap) {
        uint8_t *b = realloc(c->in, want);
        if (!b)
            return -2;
        c->in = b;
        c->in_cap = want;
    }
    uint64_t t0 = cf_now_ns(), now = t0;
    uint64_t spin_until = !idle || c->idle_avg < CHAN_SPIN_NS ? t0 + CHAN_SPIN_NS : 0;
    for (;;) {
        int nowait = now < spin_until;
        ssize_t r = recv(c->in_fd, c->in + c->in_len, c->in_cap - c->in_len, nowait ? MSG_DONTWAIT : 0);
        if (r > 0) {
            c->in_len += (size_t)r;
            if (idle) {
                uint64_t waited = (nowait ? now : cf_now_ns()) - t0;
                if (waited > CHAN_IDLE_CAP)
                    waited = CHAN_IDLE_CAP;
                c->idle_avg = c->idle_avg - c->idle_avg / 4 + waited / 4;
            }
            return 0;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR || (nowait && (errno == EAGAIN || errno == EWOULDBLOCK))) {
            if (nowait)
                now = cf_now_ns();
            continue;
        }
        return -1;
    }
}

/*
 * The pool decided to stop this worker for the task that just returned
 * (its gate is STOP, pp.h): its signal is on its way.  Send nothing more,
 * take no other task: die by it (the task may have blocked or caught
 * SIGTERM; SIGKILL follows after the grace period in any case).
 */
static void await_stop(void) __attribute__((noreturn));
static void await_stop(void)
{
    sigset_t term;

    signal(SIGTERM, SIG_DFL);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    for (;;)
        pause();
}

static void worker_exit(const struct cf__pp_config *cfg, int index, void *wdata, int code)
{
    if (cfg->finalizer)
        cfg->finalizer(cfg->init_data, index, wdata);
    fflush(NULL);
    _exit(code);
}

static void worker_main(int in_fd, int out_fd, int index, const struct cf__pp_config *cfg) __attribute__((noreturn));
static void worker_main(int in_fd, int out_fd, int index, const struct cf__pp_config *cfg)
{
    struct chan ch;
    _Atomic uint8_t *gate = cfg->gates + (size_t)index * CF__PP_GATES;
    void *wdata = NULL;
    unsigned done = 0;
    uint32_t seq = 0;

    setpgid(0, 0);
    /* The channel on descriptors 3 (in) and 4 (out), everything above closed. */
    in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, WORKER_OUT_FD + 1);
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, WORKER_OUT_FD + 1);
    if (in_fd < 0 || out_fd < 0 || dup2(in_fd, WORKER_IN_FD) < 0 || dup2(out_fd, WORKER_OUT_FD) < 0)
        _exit(CF__PP_EXIT_SETUP);
    close_from(WORKER_OUT_FD + 1);
    reset_signals();
    memset(&ch, 0, sizeof(ch));
    ch.in_fd = WORKER_IN_FD;
    ch.out_fd = WORKER_OUT_FD;
    ch.ring = cfg->rings + index; /* reset by the pool before this process was asked for */
    if (cfg->max_memory) {
        struct rlimit rl = {.rlim_cur = cfg->max_memory, .rlim_max = cfg->max_memory};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(CF__PP_EXIT_RLIMIT); /* before READY: an initializer failure, named by its status */
    }
    if (cfg->initializer) {
        int rc = cfg->initializer(cfg->init_data, index, &wdata);
        if (rc) {
            struct cf__outcome o;
            memset(&o, 0, sizeof(o));
            o.err = rc < 0 ? rc : CF_EFAIL;
            if (asprintf(&o.errmsg, "initializer of worker %d (pid %d) failed: %s", index, (int)getpid(),
                         cf_strerror(o.err)) < 0)
                o.errmsg = NULL;
            if (chan_put_outcome(&ch, CF__FR_INIT_FAIL, 0, &o) == 0)
                chan_flush(&ch);
            free(o.errmsg);
            fflush(NULL);
            _exit(3);
        }
    }
    if (chan_put(&ch, CF__FR_READY, 0))
        worker_exit(cfg, index, wdata, CF__PP_EXIT_NOMEM_FRAME);
    if (chan_flush(&ch))
        worker_exit(cfg, index, wdata, CF__PP_EXIT_CHANNEL);

    for (;;) {
        struct cf__frame_hdr h;
        struct cf__outcome o;
        struct cf_task task;
        uint8_t *payload;
        uint64_t start, ran;
        cf_task_fn fn;
        _Atomic uint8_t *my_gate;
        uint8_t taken;
        int rc, skip;

        /*
         * The next task.  If it is not here yet, what is waiting to be sent
         * (the last RESULT) goes now; otherwise it goes together with this
         * task's ACK.
         */
        while (!chan_has_frame(&ch, &h)) {
            if (ch.out_len && chan_flush(&ch))
                _exit(CF__PP_EXIT_CHANNEL);
            size_t want = ch.in_len - ch.in_off >= CF__FRAME_HDR && !cf__frame_hdr_decode(ch.in + ch.in_off, &h)
                              ? CF__FRAME_HDR + (size_t)h.len
                              : 0;
            if ((rc = chan_fill(&ch, want)) > 0)
                worker_exit(cfg, index, wdata, 0); /* EOF: the pool let go of this worker */
            if (rc == -2)
                _exit(CF__PP_EXIT_NOMEM_TASK); /* the pool reports the exit status */
            if (rc < 0 || (ch.in_len >= CF__FRAME_HDR && cf__frame_hdr_decode(ch.in + ch.in_off, &h)))
                _exit(CF__PP_EXIT_CHANNEL); /* protocol violation or broken channel */
        }
        if (h.type != CF__FR_TASK || h.len < 8)
            _exit(CF__PP_EXIT_CHANNEL);
        /* The payload stays in the input buffer (untouched until the task
         * returns) unless the argument would not be 8-byte aligned there. */
        payload = ch.in + ch.in_off + CF__FRAME_HDR;
        ch.in_off += CF__FRAME_HDR + (size_t)h.len;
        if (((uintptr_t)payload + 8) % 8 != 0) {
            if (h.len > ch.arg_cap) {
                free(ch.arg);
                ch.arg_cap = (size_t)h.len < 4096 ? 4096 : (size_t)h.len;
                if (!(ch.arg = malloc(ch.arg_cap)))
                    _exit(CF__PP_EXIT_NOMEM_TASK);
            }
            memcpy(ch.arg, payload, (size_t)h.len);
            payload = ch.arg;
        }
        memcpy(&fn, payload, sizeof(fn));
        /*
         * The ACK goes out, with what is gathered (the RESULT of the task
         * before), before the task's start gate is taken: a crash is then
         * the task's, and a stop decided once the gate is taken cannot take
         * the RESULT before along (pp.h).  It wakes the pool only if the
         * pool asked for it; otherwise the pool reads it with the RESULT,
         * or sooner.  Then the gate: if the pool closed it, the task was
         * cancelled before it started and is skipped (its ACK and a
         * CANCELLED RESULT go out together when the pool closed it before
         * the worker came to it).
         */
        if (chan_put_ack(&ch, h.id, &start))
            _exit(CF__PP_EXIT_NOMEM_FRAME);
        my_gate = &gate[seq++ % CF__PP_GATES];
        skip = atomic_load_explicit(my_gate, memory_order_acquire) == CF__GATE_CANCELLED; /* closed for good */
        if (!skip) {
            if (chan_flush(&ch))
                _exit(CF__PP_EXIT_CHANNEL);
            taken = CF__GATE_OPEN;
            skip = !atomic_compare_exchange_strong(my_gate, &taken, CF__GATE_TAKEN);
        }

        memset(&o, 0, sizeof(o));
        memset(&task, 0, sizeof(task));
        task.out = &o;
        task.worker_data = wdata;
        task.worker_index = index;
        task.arg = payload + 8;
        task.arg_len = (size_t)h.len - 8;
        if (skip) {
            o.err = CF_ECANCELED;
        } else {
            cf__task_run(&task, fn);
            /* The task returned: its gate says so, unless the pool decided
             * to stop this worker for it first (pp.h). */
            taken = CF__GATE_TAKEN;
            if (!atomic_compare_exchange_strong(my_gate, &taken, CF__GATE_DONE))
                await_stop();
        }
        if (o.err == 0 && o.value_free && !o.is_bytes) {
            cf__outcome_drop_value(&o);
            free(o.errmsg);
            o.errmsg = strdup("a process-pool task must produce a number or bytes (cf_task_set_bytes), "
                              "not a pointer with a destructor");
            o.err = CF_ENOTSUP;
        }
        ran = cf_now_ns() - start;
        if (chan_put_result(&ch, h.id, &o, ran)) {
            /* No room for the result's frame: free the result and send
             * CF_ENOMEM saying so instead; the worker goes on. */
            size_t need = CF__FRAME_HDR + cf__outcome_encoded_size(&o);
            cf__outcome_clear(&o);
            memset(&o, 0, sizeof(o));
            o.err = CF_ENOMEM;
            if (asprintf(&o.errmsg, "out of memory building the result (%zu bytes)", need) < 0)
                o.errmsg = NULL;
            if (chan_put_result(&ch, h.id, &o, ran))
                _exit(CF__PP_EXIT_NOMEM_RESULT);
        }
        cf__outcome_clear(&o);
        if (cfg->max_tasks_per_child && ++done >= cfg->max_tasks_per_child) {
            if (chan_flush(&ch))
                _exit(CF__PP_EXIT_CHANNEL);
            worker_exit(cfg, index, wdata, 0);
        }
    }
}

/* ------------------------------------------------------------------ fork server */

#define MAX_CHILDREN 4096

static pid_t children[MAX_CHILDREN];

static void child_add(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (!children[i]) {
            children[i] = pid;
            return;
        }
}

static int child_remove(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid) {
            children[i] = 0;
            return 1;
        }
    return 0;
}

static void server_exit(void) __attribute__((noreturn));

/* Send `m` with `nfds` descriptors attached (SCM_RIGHTS); if the pool is gone, clean up and exit. */
static void ctl_send(int ctl, const struct cf__pp_ctl *m, const int *fds, int nfds)
{
    struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } cm;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

    if (nfds > 0) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    /* A report is never dropped: without SPAWNED the pool's slot would wait
     * for ever, without EXITED its dead worker would never be finalized.
     * The kernel out of buffers or memory is waited out (1 ms, doubling to
     * 100 ms); any other error means the pool is gone. */
    for (int wait_ms = 1;;) {
        ssize_t r = sendmsg(ctl, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return;
        if (errno == EINTR)
            continue;
        if (errno != ENOBUFS && errno != ENOMEM && errno != EAGAIN)
            server_exit();
        poll(NULL, 0, wait_ms);
        if (wait_ms < 100)
            wait_ms *= 2;
    }
}

static void server_spawn(int ctl, int sfd, int index, const struct cf__pp_config *cfg)
{
    struct cf__pp_ctl reply = {.type = CF__CTL_SPAWNED, .index = index};
    int sp[2], up[2], fds[2];
    pid_t pid;

    /* Tasks go down a socket (the pool writes with MSG_NOSIGNAL); frames
     * come up a pipe, whose small writes share pages instead of costing a
     * socket buffer each. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
        reply.pid = -errno;
        ctl_send(ctl, &reply, NULL, 0);
        return;
    }
    if (pipe2(up, O_CLOEXEC) < 0) {
        reply.pid = -errno;
        close(sp[0]);
        close(sp[1]);
        ctl_send(ctl, &reply, NULL, 0);
        return;
    }
#ifdef F_SETPIPE_SZ
    fcntl(up[1], F_SETPIPE_SZ, 1 << 20); /* room for large results; the default (64 KiB) if refused */
#endif
    pid = fork();
    if (pid < 0) {
        reply.pid = -errno;
        close(sp[0]);
        close(sp[1]);
        close(up[0]);
        close(up[1]);
        ctl_send(ctl, &reply, NULL, 0);
        return;
    }
    if (pid == 0) {
        pid_t server = getppid();
        close(ctl);
        close(sfd);
        close(sp[0]);
        close(up[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != server)
            _exit(0);
        worker_main(sp[1], up[1], index, cfg);
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first */
    close(sp[1]);
    close(up[1]);
    child_add(pid);
    reply.pid = pid;
    fds[0] = sp[0];
    fds[1] = up[0];
    ctl_send(ctl, &reply, fds, 2);
    close(sp[0]);
    close(up[0]);
}

static void server_reap(int ctl)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct cf__pp_ctl m = {.type = CF__CTL_EXITED};

        if (pid <= 0)
            return;
        if (!child_remove(pid))
            continue;        /* an orphan a task left behind, inherited as subreaper */
        kill(-pid, SIGKILL); /* whatever the task left behind in the worker's group */
        m.pid = pid;
        m.status = status;
        ctl_send(ctl, &m, NULL, 0);
    }
}

/* SIGKILL every child of this process (found in /proc: workers and, the
 * server being a subreaper, whatever their tasks left behind). */
static int kill_children(void)
{
    pid_t self = getpid();
    DIR *d = opendir("/proc");
    struct dirent *e;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char path[300], buf[512], *p;
        int fd, ppid;
        ssize_t n;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        if ((p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == self)
            kill((pid_t)atoi(e->d_name), SIGKILL);
    }
    closedir(d);
    return 0;
}

/*
 * The pool is gone (EOF on the control socket, or the application died:
 * PR_SET_PDEATHSIG sends SIGTERM): kill every worker's group and every
 * descendant - orphans of dead workers are this server's children
 * (PR_SET_CHILD_SUBREAPER) - and reap them all.
 */
static void server_exit(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i])
            kill(-children[i], SIGKILL);
    for (;;) {
        if (kill_children() < 0) {
            /* No /proc: reap the workers only; orphans go to init. */
            for (int i = 0; i < MAX_CHILDREN; i++)
                if (children[i])
                    while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
                        ;
            break;
        }
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
            break;
    }
    _exit(0);
}

void cf__pp_server_main(int ctl, const struct cf__pp_config *cfg_in)
{
    struct cf__pp_config cfg = *cfg_in;
    sigset_t chld;
    int sfd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* caught below (signalfd): clean up, then exit */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (getppid() != cfg.parent)
        _exit(0);
    if (ctl != CHILD_CTL_FD) {
        if (dup2(ctl, CHILD_CTL_FD) < 0)
            _exit(1); /* the pool sees EOF and starts another */
        ctl = CHILD_CTL_FD;
    }
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    close_from(CHILD_CTL_FD + 1);
    reset_signals();
    signal(SIGINT, SIG_IGN);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigaddset(&chld, SIGTERM);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        _exit(1);

    for (;;) {
        struct pollfd pfd[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            server_exit();
        }
        if (pfd[1].revents) {
            struct signalfd_siginfo si;
            int term = 0;
            while (read(sfd, &si, sizeof(si)) > 0)
                term |= si.ssi_signo == SIGTERM;
            if (term)
                server_exit();
            server_reap(ctl);
        }
        if (pfd[0].revents) {
            struct cf__pp_ctl m;
            ssize_t r = recv(ctl, &m, sizeof(m), 0);

            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                server_exit();
            if (r == (ssize_t)sizeof(m) && m.type == CF__CTL_SPAWN)
                server_spawn(ctl, sfd, m.index, &cfg);
        }
    }
}
