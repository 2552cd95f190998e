/*
 * pp_child.c - the process pool's fork server and worker processes.
 *
 * DESIGN
 *
 * Fork server.  Forked from the application by cf_process_pool_new().  It is
 * single-threaded, puts itself in its own process group (terminal signals
 * such as Ctrl-C go to the application, which decides), dies with its parent
 * (PR_SET_PDEATHSIG), and closes every descriptor it inherited except
 * stdin/stdout/stderr and its control socket.  It waits in poll() on the
 * control socket and on a signalfd for SIGCHLD:
 *   SPAWN     socketpair + fork a worker; send the parent its end (SCM_RIGHTS)
 *   SIGCHLD   reap every exited worker, kill what is left of its process group,
 *             report EXITED {pid, status}
 *   EOF       the pool is gone: kill every worker group, reap them, exit.
 *
 * Worker.  Forked from the fork server, so never from a multi-threaded
 * process.  Leads its own process group (so a timeout kills the task's
 * children too), dies with the fork server, restores default signal handling,
 * applies the memory limit, runs the initializer, then serves frames on its
 * channel with blocking I/O: read TASK, send ACK, run, send RESULT.  Input is
 * buffered (struct chan); the ACK of a task that was already buffered goes
 * out with the RESULT of the task before, in one send(); an idle worker polls
 * for CHAN_SPIN_NS, yielding between polls, before it blocks.  It exits
 * with _exit() (never the application's atexit handlers) on EOF or after
 * max_tasks_per_child tasks.
 */
#include "internal.h"

#include "frame.h"
#include "pp.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
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
#define WORKER_CHAN_FD 3

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
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
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
 * The worker's channel: buffered in both directions.  Input is read in large
 * pieces, so a pipeline of small tasks costs one read(); output frames are
 * gathered and sent together (the RESULT of one task with the ACK of the
 * next), one send() per batch.
 */
struct chan {
    int fd;
    uint8_t *in;
    size_t in_cap, in_off, in_len; /* unread bytes are in[in_off .. in_len) */
    uint8_t *out;
    size_t out_len, out_cap;
};

#define CHAN_IN_MIN 65536
#define CHAN_SPIN_NS 50000 /* an idle worker polls this long before it blocks */

static int chan_flush(struct chan *c)
{
    int rc = write_full(c->fd, c->out, c->out_len);
    c->out_len = 0;
    return rc;
}

/* Append a frame to the output; nothing is sent until chan_flush(). */
static int chan_put(struct chan *c, unsigned type, uint64_t id, const void *payload, size_t len)
{
    size_t need = c->out_len + CF__FRAME_HDR + len;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o)
            return -1;
        c->out = o;
        c->out_cap = cap;
    }
    cf__frame_hdr_encode(c->out + c->out_len, type, id, len);
    if (len)
        memcpy(c->out + c->out_len + CF__FRAME_HDR, payload, len);
    c->out_len = need;
    return 0;
}

static int chan_put_outcome(struct chan *c, unsigned type, uint64_t id, const struct cf__outcome *o)
{
    size_t n = cf__outcome_encoded_size(o);
    uint8_t *buf = malloc(n);
    int rc = -1;

    if (buf) {
        cf__outcome_encode(o, buf);
        rc = chan_put(c, type, id, buf, n);
        free(buf);
    }
    return rc;
}

/* 1 if a whole frame is buffered (its header decoded into *h). */
static int chan_has_frame(const struct chan *c, struct cf__frame_hdr *h)
{
    if (c->in_len - c->in_off < CF__FRAME_HDR || cf__frame_hdr_decode(c->in + c->in_off, h))
        return 0;
    return c->in_len - c->in_off - CF__FRAME_HDR >= h->len;
}

/*
 * Read more input: first polling without blocking for a short while (a
 * steady stream of tasks then costs no sleep and wake-up per task), then
 * blocking.  0, 1 on EOF, -1 on error.
 */
static int chan_fill(struct chan *c, size_t want)
{
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
            return -1;
        c->in = b;
        c->in_cap = want;
    }
    uint64_t spin_until = cf_now_ns() + CHAN_SPIN_NS;
    for (;;) {
        int nowait = cf_now_ns() < spin_until;
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, nowait ? MSG_DONTWAIT : 0);
        if (r > 0) {
            c->in_len += (size_t)r;
            return 0;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (nowait && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            sched_yield(); /* poll politely: a runnable loop thread on this CPU goes first */
            continue;
        }
        return -1;
    }
}

static int send_frame(int fd, unsigned type, uint64_t id, const void *payload, size_t len)
{
    uint8_t hdr[CF__FRAME_HDR];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

    cf__frame_hdr_encode(hdr, type, id, len);
    for (;;) {
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w == (ssize_t)(sizeof(hdr) + len))
            return 0;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        /* A short write of a frame: send the rest plainly. */
        size_t done = (size_t)w;
        if (done < sizeof(hdr)) {
            if (write_full(fd, hdr + done, sizeof(hdr) - done))
                return -1;
            done = sizeof(hdr);
        }
        return write_full(fd, (const uint8_t *)payload + (done - sizeof(hdr)), len - (done - sizeof(hdr)));
    }
}

static int send_outcome(int fd, unsigned type, uint64_t id, const struct cf__outcome *o)
{
    size_t n = cf__outcome_encoded_size(o);
    uint8_t *buf = malloc(n);
    int rc;

    if (!buf)
        return -1;
    cf__outcome_encode(o, buf);
    rc = send_frame(fd, type, id, buf, n);
    free(buf);
    return rc;
}

static void worker_exit(const struct cf__pp_config *cfg, int index, void *wdata, int code)
{
    if (cfg->finalizer)
        cfg->finalizer(cfg->init_data, index, wdata);
    fflush(NULL);
    _exit(code);
}

static void worker_main(int fd, int index, const struct cf__pp_config *cfg) __attribute__((noreturn));
static void worker_main(int fd, int index, const struct cf__pp_config *cfg)
{
    void *wdata = NULL;
    unsigned done = 0;

    setpgid(0, 0);
    if (fd != WORKER_CHAN_FD) {
        dup2(fd, WORKER_CHAN_FD);
        fd = WORKER_CHAN_FD;
    }
    close_from(WORKER_CHAN_FD + 1);
    reset_signals();
    if (cfg->max_memory) {
        struct rlimit rl = {.rlim_cur = cfg->max_memory, .rlim_max = cfg->max_memory};
        setrlimit(RLIMIT_AS, &rl);
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
            send_outcome(fd, CF__FR_INIT_FAIL, 0, &o);
            free(o.errmsg);
            fflush(NULL);
            _exit(3);
        }
    }
    if (send_frame(fd, CF__FR_READY, 0, NULL, 0))
        worker_exit(cfg, index, wdata, 0);

    struct chan ch = {.fd = fd};
    for (;;) {
        struct cf__frame_hdr h;
        struct cf__outcome o;
        struct cf_task task;
        uint8_t *payload;
        cf_task_fn fn;
        int rc;

        /*
         * The next task.  If it is not here yet, what is waiting to be sent
         * (the last RESULT) goes now; otherwise it goes together with this
         * task's ACK.
         */
        while (!chan_has_frame(&ch, &h)) {
            if (ch.out_len && chan_flush(&ch))
                _exit(0);
            size_t want = ch.in_len - ch.in_off >= CF__FRAME_HDR && !cf__frame_hdr_decode(ch.in + ch.in_off, &h)
                              ? CF__FRAME_HDR + (size_t)h.len
                              : 0;
            if ((rc = chan_fill(&ch, want)) > 0)
                worker_exit(cfg, index, wdata, 0); /* EOF: the pool let go of this worker */
            if (rc < 0 || (ch.in_len >= CF__FRAME_HDR && cf__frame_hdr_decode(ch.in + ch.in_off, &h)))
                _exit(4); /* protocol violation or broken channel: the parent reports the exit status */
        }
        if (h.type != CF__FR_TASK || h.len < 8)
            _exit(4);
        /* The payload is copied out so that the task's argument is 8-byte aligned. */
        payload = malloc((size_t)h.len);
        if (!payload)
            _exit(5);
        memcpy(payload, ch.in + ch.in_off + CF__FRAME_HDR, (size_t)h.len);
        ch.in_off += CF__FRAME_HDR + (size_t)h.len;
        memcpy(&fn, payload, sizeof(fn));
        /* The pool must know which task runs before it starts (timeouts, crash reports). */
        if (chan_put(&ch, CF__FR_ACK, h.id, NULL, 0) || chan_flush(&ch))
            _exit(0);

        memset(&o, 0, sizeof(o));
        memset(&task, 0, sizeof(task));
        task.out = &o;
        task.worker_data = wdata;
        task.worker_index = index;
        task.arg = payload + 8;
        task.arg_len = (size_t)h.len - 8;
        cf__task_run(&task, fn);
        if (o.err == 0 && o.value_free && !o.is_bytes) {
            cf__outcome_drop_value(&o);
            free(o.errmsg);
            o.errmsg = strdup("a process-pool task must produce a number or bytes (cf_task_set_bytes), "
                              "not a pointer with a destructor");
            o.err = CF_ENOTSUP;
        }
        free(payload);
        if (chan_put_outcome(&ch, CF__FR_RESULT, h.id, &o))
            _exit(0);
        cf__outcome_clear(&o);
        if (cfg->max_tasks_per_child && ++done >= cfg->max_tasks_per_child) {
            if (chan_flush(&ch))
                _exit(0);
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

static void child_remove(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

static int ctl_send(int ctl, const struct cf__pp_ctl *m, int fd)
{
    struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

    if (fd >= 0) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = sizeof(cm.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    for (;;) {
        ssize_t r = sendmsg(ctl, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static void server_spawn(int ctl, int sfd, int index, const struct cf__pp_config *cfg)
{
    struct cf__pp_ctl reply = {.type = CF__CTL_SPAWNED, .index = index};
    int sp[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
        reply.pid = -errno;
        ctl_send(ctl, &reply, -1);
        return;
    }
    pid = fork();
    if (pid < 0) {
        reply.pid = -errno;
        close(sp[0]);
        close(sp[1]);
        ctl_send(ctl, &reply, -1);
        return;
    }
    if (pid == 0) {
        pid_t server = getppid();
        close(ctl);
        close(sfd);
        close(sp[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != server)
            _exit(0);
        fcntl(sp[1], F_SETFD, 0);
        worker_main(sp[1], index, cfg);
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first */
    close(sp[1]);
    child_add(pid);
    reply.pid = pid;
    ctl_send(ctl, &reply, sp[0]);
    close(sp[0]);
}

static void server_reap(int ctl)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct cf__pp_ctl m = {.type = CF__CTL_EXITED};

        if (pid <= 0)
            return;
        child_remove(pid);
        kill(-pid, SIGKILL); /* whatever the task left behind in the worker's group */
        m.pid = pid;
        m.status = status;
        ctl_send(ctl, &m, -1);
    }
}

static void server_exit(void) __attribute__((noreturn));
static void server_exit(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i])
            kill(-children[i], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    _exit(0);
}

void cf__pp_server_main(int ctl, const struct cf__pp_config *cfg_in)
{
    struct cf__pp_config cfg = *cfg_in;
    sigset_t chld;
    int sfd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != cfg.parent)
        _exit(0);
    if (ctl != CHILD_CTL_FD) {
        dup2(ctl, CHILD_CTL_FD);
        ctl = CHILD_CTL_FD;
    }
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    close_from(CHILD_CTL_FD + 1);
    reset_signals();
    signal(SIGINT, SIG_IGN);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
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
            while (read(sfd, &si, sizeof(si)) > 0)
                ;
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
