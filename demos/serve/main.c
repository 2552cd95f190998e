/*
 * cfserve - an HTTP/1.1 static file server on libev that hands its slow work
 * to cfutures.  See usage() for the options and README.md for the endpoints.
 *
 * main.c: options, the descriptor budget, the listener and its back-off,
 * signals, and the access log.
 *
 * Descriptors.  The soft RLIMIT_NOFILE is raised to the hard one; what the
 * pools, the listener and the log hold is counted, and the rest is shared
 * out: every connection may hold 1 + CFS_MAX_FILES descriptors, so
 * --max-conns defaults to (and is clamped to) what fits.  A connection past
 * --max-conns is answered 503 and closed; past that allowance it is shed
 * (503 written at once, no state kept).  Should accept() still fail with
 * EMFILE/ENFILE, a spare descriptor held for that purpose is closed, the
 * connection accepted and shed with 503, and the spare reopened; if even that
 * fails, accepting pauses for 100 ms.  Such errors are logged once a second at
 * most, with their count.
 *
 * Signals.  SIGINT or SIGTERM: the listener closes, idle connections close,
 * requests already received are answered, then the pools are freed and the
 * exit status is 0; a second signal closes everything at once.  SIGHUP reopens
 * the access log (for log rotation).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* PACKAGE_VERSION; defines _GNU_SOURCE (accept4) */
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cfserve.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static int report(const char *what, int rc)
{
    fprintf(stderr, "cfserve: %s: %s (%s)\n", what, cf_strerror(rc), cf_err_name(rc));
    return 1;
}

void server_check_done(server *s)
{
    if (s->stopping && s->live_conns == 0) {
        ev_signal_stop(s->ev, &s->sigint_w);
        ev_signal_stop(s->ev, &s->sigterm_w);
        ev_signal_stop(s->ev, &s->sighup_w);
        ev_break(s->ev, EVBREAK_ALL);
    }
}

/* ------------------------------------------------------------------ accepting */

/* Answer 503 and close, keeping no state: the connection limit or the descriptor limit is reached. */
static void shed(server *s, int fd)
{
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nServer: cfserve\r\nContent-Type: text/plain; "
                              "charset=utf-8\r\nContent-Length: 42\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                              "503 Service Unavailable: server is full\n\n\n";
    char drain[4096];
    s->shed_conns++;
    /* Read what already arrived so that closing does not reset the connection under the answer. */
    while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0) {
    }
    if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void accept_error(server *s, int err)
{
    ev_tstamp now = ev_now(s->ev);
    s->emfile++;
    if (now - s->emfile_logged >= 1.0) {
        fprintf(stderr, "cfserve: accept: %s (%" PRIu64 " times so far); answering 503\n", strerror(err), s->emfile);
        s->emfile_logged = now;
    }
}

static void peer_name(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
    else if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "-");
}

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    server *s = w->data;
    (void)revents;
    for (int i = 0; i < 64 && !s->stopping; i++) {
        struct sockaddr_storage sa;
        socklen_t slen = sizeof(sa);
        int fd = accept4(s->lfd, (struct sockaddr *)&sa, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            char peer[INET6_ADDRSTRLEN];
            peer_name(&sa, peer, sizeof(peer));
            if (s->open_conns < s->max_conns)
                conn_new(s, fd, peer, 0);
            else if (s->rejected_open < s->max_rejected)
                conn_new(s, fd, peer, 1);
            else
                shed(s, fd);
            continue;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            break;
        if ((err == EMFILE || err == ENFILE) && s->spare_fd >= 0) {
            /* The reserve descriptor: give it up for one connection, answer it, take it back. */
            accept_error(s, err);
            close(s->spare_fd);
            s->spare_fd = -1;
            fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0)
                shed(s, fd);
            s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd >= 0 && s->spare_fd >= 0)
                continue;
        } else if (err == EMFILE || err == ENFILE) {
            accept_error(s, err);
        } else {
            fprintf(stderr, "cfserve: accept: %s\n", strerror(err));
        }
        /* No descriptor to spare (or ENOBUFS, ENOMEM): pause accepting for a moment rather than spin. */
        ev_io_stop(ev, &s->accept_w);
        ev_timer_set(&s->accept_backoff, 0.1, 0);
        ev_timer_start(ev, &s->accept_backoff);
        break;
    }
}

static void accept_backoff_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    server *s = w->data;
    (void)revents;
    if (s->spare_fd < 0)
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!s->stopping)
        ev_io_start(ev, &s->accept_w);
}

/* ------------------------------------------------------------------ signals and the log */

static int log_open(server *s)
{
    int fd = open(s->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (s->log_fd >= 0)
        close(s->log_fd);
    s->log_fd = fd;
    return 0;
}

static void sighup_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    server *s = w->data;
    (void)ev;
    (void)revents;
    if (!s->log_path)
        return;
    int rc = log_open(s);
    if (rc != 0)
        fprintf(stderr, "cfserve: SIGHUP: cannot reopen %s: %s; still writing to the old file\n", s->log_path,
                strerror(-rc));
    else
        fprintf(stderr, "cfserve: SIGHUP: reopened %s\n", s->log_path);
}

/*
 * First signal: stop accepting, close idle connections, let the others finish
 * the requests already received.  Second signal: close everything now.
 */
static void signal_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    server *s = w->data;
    int force = s->stopping;
    (void)revents;

    if (!s->stopping) {
        s->stopping = 1;
        s->stop_signal = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
        ev_io_stop(ev, &s->accept_w);
        ev_timer_stop(ev, &s->accept_backoff);
        close(s->lfd);
        s->lfd = -1;
    }
    /* Closing a connection unlinks (and may free) only that one, so `next` stays valid. */
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (force || (!c->head && !c->lingering))
            conn_close(c); /* idle, or a partial request that will not be answered */
        else if (!c->lingering)
            conn_stop_reading(c);
    }
    server_check_done(s);
}

/* ------------------------------------------------------------------ setup */

static int listen_on(const char *host, int port, char *shown, size_t cap)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) {
        fprintf(stderr, "cfserve: --bind %s: %s\n", host, gai_strerror(g));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = -errno;
        freeaddrinfo(ai);
        return err;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage sa;
    socklen_t slen = sizeof(sa);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
        int err = -errno;
        close(fd);
        freeaddrinfo(ai);
        return err;
    }
    char name[INET6_ADDRSTRLEN];
    peer_name(&sa, name, sizeof(name));
    int bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                               : ((struct sockaddr_in *)&sa)->sin_port);
    snprintf(shown, cap, sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", name, bound);
    freeaddrinfo(ai);
    return fd;
}

static void ready_timeout_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)w;
    (void)revents; /* only ends the wait for the workers */
}

/* Descriptors open now. */
static int fds_in_use(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return 64; /* no /proc: guess generously */
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cfserve [OPTION]...\n"
            "Serve the files under --root over HTTP/1.1, with /fib, /md5, /sleep, /stats and /health.\n"
            "  --bind ADDR          address to listen on, IPv4 or IPv6 (default 127.0.0.1)\n"
            "  --port P             TCP port (default 8080; 0 picks a free one)\n"
            "  --root DIR           directory served and hashed (default .)\n"
            "  --threads N          file thread-pool workers (default: one per CPU)\n"
            "  --hash-threads N     /md5 thread-pool workers (default: one per CPU)\n"
            "  --procs N            process-pool workers for /fib (default: one per CPU)\n"
            "  --max-conns N        open connections; more get 503 (default and upper bound: what\n"
            "                       the descriptor limit allows, %d descriptors per connection)\n"
            "  --idle-timeout S     idle keep-alive, stalled body or write (default 10)\n"
            "  --header-timeout S   time for a request head to arrive (default: the idle timeout)\n"
            "  --request-timeout S  time for a whole request to arrive (default 60)\n"
            "  --min-rate B         bytes/s a body upload or a response download must average after\n"
            "                       the idle timeout's grace (default 1024; 0 turns it off)\n"
            "  --md5-max SIZE       largest file /md5 hashes, K/M/G suffixes (default 1G)\n"
            "  --access-log FILE    append a combined-format line per response; SIGHUP reopens it\n"
            "  --mime-types FILE    extension to media type table (default /etc/mime.types)\n"
            "  --version            print the version and exit\n"
            "  --help               print this help and exit\n",
            CFS_FDS_PER_CONN);
}

int main(int argc, char **argv)
{
    server s;
    long long port = 8080, threads = 0, hthreads = 0, procs = 0, max_conns = 0, min_rate = 1024;
    uint64_t md5_max = (uint64_t)1 << 30;
    const char *root = ".", *bind_addr = "127.0.0.1", *mime_path = "/etc/mime.types", *v = NULL;
    double idle = 10, header = -1, request = 60;

    demo_hold_signals(); /* until the loop watches them: a stop during start-up is a graceful one */
    memset(&s, 0, sizeof(s));
    s.lfd = s.spare_fd = s.log_fd = s.root_fd = -1;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if ((v = demo_opt_value(argc, argv, &i, "--port"))) {
            if (demo_parse_uint(v, 0, 65535, &port) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--bind"))) {
            bind_addr = v;
        } else if ((v = demo_opt_value(argc, argv, &i, "--root"))) {
            root = v;
        } else if ((v = demo_opt_value(argc, argv, &i, "--threads"))) {
            if (demo_parse_uint(v, 1, 256, &threads) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--hash-threads"))) {
            if (demo_parse_uint(v, 1, 256, &hthreads) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--procs"))) {
            if (demo_parse_uint(v, 1, 256, &procs) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--max-conns"))) {
            if (demo_parse_uint(v, 1, 1000000, &max_conns) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--idle-timeout"))) {
            if (demo_parse_seconds(v, 86400, &idle) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--header-timeout"))) {
            if (demo_parse_seconds(v, 86400, &header) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--request-timeout"))) {
            if (demo_parse_seconds(v, 86400, &request) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--min-rate"))) {
            if (demo_parse_uint(v, 0, 1LL << 40, &min_rate) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--md5-max"))) {
            if (demo_parse_size(v, 0, (uint64_t)1 << 50, &md5_max) != 0)
                goto bad;
        } else if ((v = demo_opt_value(argc, argv, &i, "--access-log"))) {
            s.log_path = v;
        } else if ((v = demo_opt_value(argc, argv, &i, "--mime-types"))) {
            mime_path = v;
        } else if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(opt, "--version") == 0) {
            printf("cfserve %s (cfutures %s)\n", PACKAGE_VERSION, cf_version());
            return 0;
        } else {
            fprintf(stderr, "cfserve: unknown option or missing value: '%s'\n", opt);
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "cfserve: bad value '%s' for %s\n", v, opt);
        usage(stderr);
        return 2;
    }
    s.idle_timeout = idle;
    s.header_timeout = header > 0 ? header : idle;
    s.request_timeout = request;
    s.min_rate = (double)min_rate;
    s.md5_max = md5_max;
    s.root = realpath(root, NULL);
    struct stat st;
    if (!s.root || stat(s.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cfserve: --root %s: %s\n", root, s.root ? "not a directory" : strerror(errno));
        free(s.root);
        return 2;
    }
    s.rootlen = strlen(s.root);
    s.root_fd = open(s.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    s.loop_files = s.root_fd >= 0 && fs_local(s.root_fd);
    int rc = demo_mime_load(mime_path, &s.mime);
    if (rc != 0)
        fprintf(stderr, "cfserve: %s: %s; every file is served as application/octet-stream\n", mime_path,
                strerror(-rc));
    if (s.log_path && (rc = log_open(&s)) != 0) {
        fprintf(stderr, "cfserve: --access-log %s: %s\n", s.log_path, strerror(-rc));
        demo_mime_free(s.mime);
        free(s.root);
        return 2;
    }
    http_parser_set_max_header_size(HTTP_MAX_PARSER_HEAD);

    /* Use every descriptor we may: raise the soft limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > (1u << 20) ? (1u << 20) : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }

    /* A loop of our own: the default loop would reap the fork server on SIGCHLD. */
    s.ev = ev_loop_new(EVFLAG_AUTO);
    if (!s.ev) {
        fprintf(stderr, "cfserve: ev_loop_new failed\n");
        free(s.root);
        return 1;
    }
    int status = 1;
    if ((rc = cf_loop_new(s.ev, &s.loop)) != 0) {
        report("cf_loop_new", rc);
        goto out;
    }
    /* The process pool first: its fork server is forked while we are single-threaded. */
    cf_process_pool_opts popts;
    cf_process_pool_opts_init(&popts);
    if (procs > 0)
        popts.max_workers = (int)procs;
    s.procs = popts.max_workers;
    popts.pipeline = 1; /* never queue a quick fib behind a slow one in a worker */
    popts.initializer = worker_low_priority;
    if ((rc = cf_process_pool_new(s.loop, &popts, &s.ppool)) != 0) {
        report("cf_process_pool_new", rc);
        goto out;
    }
    cf_thread_pool_opts topts;
    cf_thread_pool_opts_init(&topts);
    if (threads > 0)
        topts.max_workers = (int)threads;
    topts.name_prefix = "cfserve-file";
    if ((rc = cf_thread_pool_new(s.loop, &topts, &s.tpool)) != 0) {
        report("cf_thread_pool_new", rc);
        goto out;
    }
    int nthreads = topts.max_workers;
    cf_thread_pool_opts_init(&topts);
    if (hthreads > 0)
        topts.max_workers = (int)hthreads;
    topts.name_prefix = "cfserve-md5";
    topts.max_queued = 256; /* past that, /md5 is 503 at once */
    if ((rc = cf_thread_pool_new(s.loop, &topts, &s.hpool)) != 0) {
        report("cf_thread_pool_new", rc);
        goto out;
    }
    nthreads += topts.max_workers;

    signal(SIGPIPE, SIG_IGN); /* sends use MSG_NOSIGNAL; this covers anything else */
    char shown[INET6_ADDRSTRLEN + 16];
    s.lfd = listen_on(bind_addr, (int)port, shown, sizeof(shown));
    if (s.lfd < 0) {
        fprintf(stderr, "cfserve: cannot listen on %s port %lld: %s\n", bind_addr, port, cf_strerror(s.lfd));
        s.lfd = -1;
        goto out;
    }
    s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    /* The descriptor budget: what is left after ours, a margin for worker threads' files and respawns. */
    long long avail = (long long)rl.rlim_cur - fds_in_use() - nthreads - 2 * s.procs - 16;
    long long fit = avail > 0 ? avail * 8 / (8 * CFS_FDS_PER_CONN + 1) : 0;
    if (fit < 1) {
        fprintf(stderr, "cfserve: the descriptor limit (%llu) leaves no room for connections\n",
                (unsigned long long)rl.rlim_cur);
        goto out;
    }
    if (max_conns > fit) {
        fprintf(stderr, "cfserve: --max-conns %lld lowered to %lld: the descriptor limit is %llu\n", max_conns, fit,
                (unsigned long long)rl.rlim_cur);
        max_conns = fit;
    }
    s.max_conns = (unsigned)(max_conns > 0 ? max_conns : fit);
    s.max_rejected = s.max_conns / 8 + 1;

    /* Ready means ready: wait (at most 30 s) until every process-pool worker runs. */
    ev_timer ready;
    ev_timer_init(&ready, ready_timeout_cb, 30, 0);
    ev_timer_start(s.ev, &ready);
    for (;;) {
        cf_pool_stats ps;
        cf_process_pool_stats(s.ppool, &ps);
        if (ps.workers >= s.procs || !ev_is_active(&ready))
            break;
        ev_run(s.ev, EVRUN_ONCE);
    }
    ev_timer_stop(s.ev, &ready);

    ev_io_init(&s.accept_w, accept_cb, s.lfd, EV_READ);
    ev_timer_init(&s.accept_backoff, accept_backoff_cb, 0.1, 0);
    ev_signal_init(&s.sigint_w, signal_cb, SIGINT);
    ev_signal_init(&s.sigterm_w, signal_cb, SIGTERM);
    ev_signal_init(&s.sighup_w, sighup_cb, SIGHUP);
    s.accept_w.data = s.accept_backoff.data = s.sigint_w.data = s.sigterm_w.data = s.sighup_w.data = &s;
    ev_io_start(s.ev, &s.accept_w);
    ev_signal_start(s.ev, &s.sigint_w);
    ev_signal_start(s.ev, &s.sigterm_w);
    ev_signal_start(s.ev, &s.sighup_w);
    demo_release_signals();

    printf("listening on http://%s/\n", shown);
    fflush(stdout);
    ev_run(s.ev, 0);

    fprintf(stderr,
            "cfserve: %s: stopped after %" PRIu64 " responses on %" PRIu64 " connections (%" PRIu64
            " rejected, %" PRIu64 " shed)\n",
            s.stop_signal ? s.stop_signal : "loop ended", s.requests, s.total_conns, s.rejected_conns, s.shed_conns);
    status = s.stop_signal ? 0 : 1;

out:
    if (s.lfd >= 0)
        close(s.lfd);
    if (s.spare_fd >= 0)
        close(s.spare_fd);
    if (s.tpool)
        cf_thread_pool_free(s.tpool);
    if (s.hpool)
        cf_thread_pool_free(s.hpool);
    if (s.ppool)
        cf_process_pool_free(s.ppool);
    if (s.loop && (rc = cf_loop_close(s.loop)) != 0) {
        report("cf_loop_close", rc); /* the binding still uses the loop: leave both */
        status = 1;
    } else {
        ev_loop_destroy(s.ev);
    }
    if (s.log_fd >= 0)
        close(s.log_fd);
    demo_mime_free(s.mime);
    if (s.root_fd >= 0)
        close(s.root_fd);
    free(s.root);
    return status;
}
