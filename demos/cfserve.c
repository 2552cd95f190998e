/*
 * cfserve.c - an HTTP/1.1 server on libev that hands its slow work to cfutures.
 *
 *   cfserve [--port P] [--root DIR] [--threads N] [--procs N] [--max-conns N]
 *           [--idle-timeout S] [--header-timeout S]
 *
 * Endpoints:
 *
 *   GET /fib?n=N     fib(N), 0 <= N <= 92, computed in the process pool.  Up to
 *                    N = 45 with the seed's naive recursion (the CPU-bound work
 *                    the demo is about: fib(45) takes seconds); above that
 *                    iteratively, since the recursion would take minutes to
 *                    centuries.  Body: the number and "\n".
 *   GET /md5?path=P  MD5 (libcrypto EVP) of the file P under --root, hashed in
 *                    the thread pool.  Body: 32 hex digits and "\n".
 *   GET /sleep?ms=M  answered after M ms (0..10000) by a cf_sleep() timer future.
 *   GET /stats       JSON: both pools' counters and the server's.
 *   GET /health      "ok\n", answered inline.
 *   GET /anything    a static file under --root ("/" and directories serve
 *                    their index.html), read in the thread pool.
 *
 * HEAD works everywhere (same headers, no body); other methods get 405 with an
 * Allow header.  Paths are confined to --root: an absolute path or a ".."
 * component (also when %-encoded) is 403 before any disk access, and a worker
 * resolves the path with realpath() and checks that the result is still under
 * realpath(--root), so a symlink that leads out is 403 too.  Missing: 404.
 *
 * Design.  One thread runs the libev loop: it accepts connections, reads and
 * parses requests (http-parser), answers the quick ones at once and writes
 * every response.  Nothing on it blocks: disk access (realpath, open, read,
 * hashing) runs on a cfutures thread pool, fib on a process pool, waits on an
 * ev_timer future; their done callbacks run back on the loop.  The process
 * pool is created first, while the program is single-threaded, so its fork
 * server is forked before the thread pool starts threads.  Its workers run at
 * idle priority (SCHED_IDLE), so CPU-bound requests never take the CPU from
 * the loop.
 *
 * A connection keeps a FIFO of responses, one per request, in request order.
 * A response is either ready (inline answers) or waiting for its future; the
 * writer sends ready responses from the head of the FIFO only, so pipelined
 * requests are answered in order even when a slow /fib precedes a /health.
 * At most 32 responses may be outstanding per connection; beyond that the
 * parser is paused and reading stops until the FIFO drains.  Output is written
 * with sendmsg() (MSG_NOSIGNAL) from the responses themselves; the EV_WRITE
 * watcher runs only while a write would block.
 *
 * Lifetime.  A connection is reference counted: being open is one reference,
 * every pending future another.  Closing a connection (write error, timeout,
 * or end of input while a request is still being worked on: the client gave
 * up) cancels its pending futures - a queued task never runs, a running worker
 * process is stopped, a timer is stopped - and the done callbacks, which still
 * run exactly once, only drop their reference, so no callback touches freed
 * memory.
 *
 * Limits: request head (request line and headers) 8 KiB -> 431; request body
 * 1 MiB -> 413 (bodies of acceptable requests are read and discarded);
 * --max-conns open connections (default 1024), beyond which a connection gets
 * 503 and is closed; --header-timeout S for a request's head to arrive in full
 * (from its first byte; default: the idle timeout) -> 408; --idle-timeout S
 * (default 10) between requests, for a body to make progress and for a
 * blocked write to make progress; malformed requests -> 400.  Files above
 * 16 MiB are refused (403): this server reads a file whole.  Every response
 * has Content-Length and "Server: cfserve"; HTTP/1.1 keeps the connection
 * alive unless asked otherwise, HTTP/1.0 only with "Connection: keep-alive".
 * A closing response is followed by a lingering close (shutdown, then read and
 * discard for up to 2 s) so that unread request bytes cannot reset the
 * connection under the response.  No "100 Continue": clients that wait for it
 * send their body after their own timeout.
 *
 * SIGINT or SIGTERM: the listener closes, idle connections close, requests
 * already received are answered, then every connection closes; the pools are
 * freed, a one-line summary goes to stderr and the exit status is 0.  A second
 * signal closes every connection at once, cancelling what is in flight.
 *
 * Output: "listening on http://127.0.0.1:PORT/" on stdout once the socket
 * listens (the port is the one picked when --port is 0).  Exit status: 0
 * after a signal, 1 on a setup error (library errors printed with
 * cf_strerror()), 2 on a usage error.
 */
#define _GNU_SOURCE /* accept4, MSG_NOSIGNAL, O_NOFOLLOW */
#include <cfutures.h>
#include <ev.h>
#include <http_parser.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CFS_MAX_HEAD 8192           /* request line + headers */
#define CFS_MAX_BODY (1u << 20)     /* request body */
#define CFS_MAX_FILE (16u << 20)    /* largest file served (files are read whole) */
#define CFS_MAX_PIPELINE 32         /* outstanding responses per connection */
#define CFS_READ_BUF 16384          /* bytes read per recv() */
#define CFS_LINGER 2.0              /* seconds of lingering close */
#define CFS_LINGER_BYTES (1u << 20) /* discarded at most while lingering */
#define CFS_IOV 64                  /* iovecs per sendmsg() */
#define CFS_FIB_MAX 92              /* fib(92) is the largest that fits an int64 */
#define CFS_FIB_NAIVE_MAX 45        /* above this, fib is computed iteratively */
#define CFS_SLEEP_MAX 10000         /* ms */

/* ------------------------------------------------------------------ types */

typedef struct server server;
typedef struct conn conn;

typedef enum resp_kind {
    RESP_INLINE, /* ready when created */
    RESP_FIB,    /* process-pool future, i64 value */
    RESP_FS,     /* thread-pool future, outcome in the fs_job */
    RESP_SLEEP   /* cf_sleep() future */
} resp_kind;

typedef enum fs_kind { FS_STATIC, FS_MD5 } fs_kind;

/*
 * A file-system request, run on a worker thread.  The loop fills the request
 * part, the worker the outcome; the loop reads the outcome in the done
 * callback, after the pool's hand-back (which orders the two).
 */
typedef struct fs_job {
    /* request (read-only for the worker) */
    const server *srv; /* root and its length */
    fs_kind kind;
    int head;  /* HEAD: stat only, no body */
    char *rel; /* decoded path relative to the root, no leading '/', no ".." */
    /* outcome */
    int status;        /* HTTP status */
    const char *ctype; /* static string */
    char *body;        /* malloc'd, or NULL */
    size_t len;        /* body length (for HEAD: the length a GET would have) */
    char msg[160];     /* error text for non-200 statuses */
} fs_job;

/* One response, queued on its connection in request order. */
typedef struct resp {
    struct resp *next;
    conn *c;
    resp_kind kind;
    int ready; /* status, body and length are final */
    int head;  /* HEAD: send the headers only */
    int close; /* say "Connection: close" (the connection closes after it) */
    int status;
    const char *ctype;
    const char *allow; /* Allow header value, or NULL */
    char *body;        /* malloc'd */
    size_t len;        /* Content-Length */
    char hdr[512];     /* built when it reaches the front of the queue */
    size_t hdr_len;
    int built;
    size_t off; /* bytes of hdr + body sent */
    cf_future_t *fut;
    fs_job *job;
    long arg; /* n for fib, ms for sleep */
} resp;

struct conn {
    server *srv;
    conn *prev, *next; /* the server's list of open connections */
    int fd;
    unsigned refs; /* 1 while open + 1 per pending future + callers on the stack */
    ev_io rio, wio;
    ev_timer timer;
    http_parser parser;
    char in[CFS_READ_BUF]; /* read buffer; holds unparsed bytes while the parser is paused */
    size_t in_len;
    char *url; /* the request target being parsed */
    size_t url_len, url_cap;
    uint64_t body_bytes;
    int in_message; /* a request's first byte arrived, its end not yet */
    int in_headers; /* ... and its head is not complete */
    ev_tstamp msg_start, last_io;
    resp *head, *tail; /* responses not yet sent, oldest first */
    unsigned nresp;
    int err_status; /* status a parser callback failed with */
    int paused;     /* parser paused: too many responses outstanding */
    int rd_done;    /* no more requests will be read */
    int peer_eof;   /* the peer shut down its side */
    int lingering;  /* final response sent, reading and discarding */
    int wblocked;   /* a write would block */
    int rejected;   /* over --max-conns: gets 503 */
    int closed;
    size_t lingered;
    ev_tstamp linger_until;
};

struct server {
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *tpool;
    cf_process_pool_t *ppool;
    char *root; /* realpath of --root */
    size_t rootlen;
    double idle_timeout, header_timeout;
    unsigned max_conns;
    int lfd;
    ev_io accept_w;
    ev_timer accept_backoff;
    ev_signal sigint_w, sigterm_w;
    int stopping;
    const char *stop_signal;
    conn *conns;         /* open connections */
    unsigned open_conns; /* open, not rejected */
    unsigned live_conns; /* allocated (open, or closed with futures pending) */
    uint64_t total_conns, rejected_conns, requests, inflight;
    time_t date_sec;
    char date[64];
};

static const http_parser_settings parser_settings;

/* ------------------------------------------------------------------ small helpers */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "cfserve: out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int report(const char *what, int rc)
{
    fprintf(stderr, "cfserve: %s: %s (%s)\n", what, cf_strerror(rc), cf_err_name(rc));
    return 1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * Decode %XX escapes (and '+' as a space when `plus`) of s[0..len) into a new
 * string.  Returns NULL for a bad escape or a NUL byte.
 */
static char *url_decode(const char *s, size_t len, int plus)
{
    char *out = xmalloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (len - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                free(out);
                return NULL;
            }
            ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (ch == 0) {
            free(out);
            return NULL;
        }
        *o++ = (char)ch;
    }
    *o = '\0';
    return out;
}

/*
 * The decoded value of `key` in the query string q[0..len): 1 and *out (to
 * free) when present, 0 when absent, -1 when its encoding is bad.  The first
 * occurrence wins.
 */
static int query_get(const char *q, size_t len, const char *key, char **out)
{
    size_t klen = strlen(key), i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end - i >= klen && memcmp(q + i, key, klen) == 0 && (end - i == klen || q[i + klen] == '=')) {
            size_t v = end - i == klen ? end : i + klen + 1;
            *out = url_decode(q + v, end - v, 1);
            return *out ? 1 : -1;
        }
        i = end + 1;
    }
    return 0;
}

/* A decimal integer in [lo, hi], digits only; 0 or -1. */
static int parse_uint(const char *s, long lo, long hi, long *out)
{
    long v = 0;
    if (!*s || strlen(s) > 9)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* 1 when some '/'-separated component of `path` is "..", else 0. */
static int has_dotdot(const char *path)
{
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"},
        {"json", "application/json"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"svg", "image/svg+xml"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* ------------------------------------------------------------------ work on the pools */

/*
 * The seed's fib, corrected to fib(0) = 0; naive up to CFS_FIB_NAIVE_MAX.
 * The barrier keeps the compiler from turning the double recursion into
 * something cheaper (some optimisation levels and sanitizer builds do), so
 * that a request costs the same exponential time in every build.
 */
__attribute__((noinline)) static int64_t fib_naive(int n)
{
    if (n < 2)
        return n;
    int64_t a = fib_naive(n - 1);
    __asm__ volatile("" ::: "memory");
    return a + fib_naive(n - 2);
}

static int64_t fib(int n)
{
    if (n <= CFS_FIB_NAIVE_MAX)
        return fib_naive(n);
    int64_t a = 0, b = 1; /* fib(i - 1), fib(i); never computes past fib(n) */
    for (int i = 1; i < n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    return b;
}

/*
 * Process-pool initializer: the workers run at idle priority (SCHED_IDLE, or
 * nice 19 where that is refused), so a CPU-bound fib never delays the loop
 * thread that answers every other request.  Runs in each worker process.
 */
static int worker_low_priority(void *data, int index, void **worker_data)
{
    struct sched_param sp = {.sched_priority = 0};
    (void)data;
    (void)index;
    (void)worker_data;
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0 && setpriority(PRIO_PROCESS, 0, 19) != 0)
        return -errno;
    return 0;
}

/* Process-pool task: the payload is an int32 n.  Runs in a worker process. */
static int fib_task(cf_task_t *task, void *arg)
{
    size_t len = 0;
    int32_t n;
    (void)arg;
    const void *p = cf_task_arg(task, &len);
    if (len != sizeof(n))
        return cf_task_fail(task, CF_EINVAL, "bad payload of %zu bytes", len);
    memcpy(&n, p, sizeof(n));
    if (n < 0 || n > CFS_FIB_MAX)
        return cf_task_fail(task, CF_EINVAL, "n out of range: %d", (int)n);
    cf_task_set_i64(task, fib(n));
    return 0;
}

static void job_fail(fs_job *j, int status, const char *fmt, ...) CF_PRINTF(3, 4);

static void job_fail(fs_job *j, int status, const char *fmt, ...)
{
    va_list ap;
    j->status = status;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
    va_end(ap);
}

/* 1 when the resolved path `real` is the root or under it. */
static int under_root(const server *s, const char *real)
{
    if (s->rootlen == 1) /* the root is "/" */
        return real[0] == '/';
    return strncmp(real, s->root, s->rootlen) == 0 && (real[s->rootlen] == '\0' || real[s->rootlen] == '/');
}

/*
 * Resolve `rel` under the root with realpath() and open it.  Returns the open
 * descriptor (and *real, to free), or -1 with the job failed.  Worker thread.
 */
static int open_confined(fs_job *j, const char *rel, char **real_out, struct stat *st)
{
    const server *s = j->srv;
    size_t n = s->rootlen + 1 + strlen(rel) + 1;
    char *full = xmalloc(n);
    snprintf(full, n, "%s/%s", s->root, rel);
    char *real = realpath(full, NULL);
    int err = errno;
    free(full);
    if (!real) {
        if (err == ENOENT || err == ENOTDIR)
            job_fail(j, 404, "no such file: /%s", rel);
        else if (err == EACCES || err == ELOOP)
            job_fail(j, 403, "cannot resolve /%s: %s", rel, strerror(err));
        else
            job_fail(j, 500, "cannot resolve /%s: %s", rel, strerror(err));
        return -1;
    }
    if (!under_root(s, real)) {
        job_fail(j, 403, "/%s leads outside the root", rel);
        free(real);
        return -1;
    }
    /* O_NOFOLLOW: the resolved path has no symlink left, so one appearing now is refused;
       O_NONBLOCK: opening a FIFO must not block the worker. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
        job_fail(j, err == ENOENT ? 404 : 403, "cannot open /%s: %s", rel, strerror(err));
        free(real);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        err = errno;
        job_fail(j, 500, "cannot stat /%s: %s", rel, strerror(err));
        close(fd);
        free(real);
        return -1;
    }
    *real_out = real;
    return fd;
}

static void md5_fd(fs_job *j, int fd)
{
    unsigned char buf[65536], digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int ok = 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL))
        ok = 0;
    while (ok) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            job_fail(j, 500, "read error: %s", strerror(errno));
            EVP_MD_CTX_free(ctx);
            return;
        }
        if (got == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
            ok = 0;
    }
    if (ok && !EVP_DigestFinal_ex(ctx, digest, &dlen))
        ok = 0;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        job_fail(j, 500, "libcrypto MD5 failed");
        return;
    }
    j->body = xmalloc(2 * dlen + 2);
    for (unsigned i = 0; i < dlen; i++)
        snprintf(j->body + 2 * i, 3, "%02x", digest[i]);
    j->body[2 * dlen] = '\n';
    j->len = 2 * dlen + 1;
    j->ctype = "text/plain; charset=utf-8";
    j->status = 200;
}

static void read_fd(fs_job *j, int fd, const struct stat *st)
{
    size_t size = (size_t)st->st_size, got = 0;
    if (st->st_size > (off_t)CFS_MAX_FILE) {
        job_fail(j, 403, "file too large for this server (%jd bytes, limit %u)", (intmax_t)st->st_size, CFS_MAX_FILE);
        return;
    }
    if (j->head) {
        j->len = size;
        j->status = 200;
        return;
    }
    j->body = xmalloc(size);
    while (got < size) {
        ssize_t n = read(fd, j->body + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            job_fail(j, 500, "read error: %s", strerror(errno));
            free(j->body);
            j->body = NULL;
            return;
        }
        if (n == 0)
            break; /* the file shrank: serve what is there */
        got += (size_t)n;
    }
    j->len = got;
    j->status = 200;
}

/* Thread-pool task: a static file or an MD5.  Always returns 0; the outcome is in the job. */
static int fs_task(cf_task_t *task, void *arg)
{
    fs_job *j = arg;
    struct stat st;
    char *real = NULL;
    (void)task;

    int fd = open_confined(j, j->rel, &real, &st);
    if (fd < 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        if (j->kind == FS_MD5) {
            job_fail(j, 400, "/%s is a directory", j->rel);
            free(real);
            return 0;
        }
        /* A directory: its index.html, resolved and confined like any path. */
        size_t n = strlen(j->rel) + sizeof("/index.html");
        char *index = xmalloc(n);
        snprintf(index, n, "%s%sindex.html", j->rel, j->rel[0] && j->rel[strlen(j->rel) - 1] != '/' ? "/" : "");
        free(real);
        real = NULL;
        fd = open_confined(j, index, &real, &st);
        if (fd < 0) {
            if (j->status == 404)
                job_fail(j, 403, "/%s is a directory without index.html", j->rel);
            free(index);
            return 0;
        }
        free(index);
    }
    if (!S_ISREG(st.st_mode)) {
        job_fail(j, 403, "/%s is not a regular file", j->rel);
    } else if (j->kind == FS_MD5) {
        md5_fd(j, fd);
    } else {
        j->ctype = content_type(real);
        read_fd(j, fd, &st);
    }
    close(fd);
    free(real);
    return 0;
}

static void job_free(fs_job *j)
{
    if (!j)
        return;
    free(j->rel);
    free(j->body);
    free(j);
}

/* ------------------------------------------------------------------ responses */

static void conn_ref(conn *c);
static void conn_unref(conn *c);
static void conn_flush(conn *c);
static void conn_timer_update(conn *c);

static resp *resp_new(conn *c, int head)
{
    resp *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "cfserve: out of memory\n");
        exit(1);
    }
    r->c = c;
    r->head = head;
    r->kind = RESP_INLINE;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nresp++;
    return r;
}

static void resp_free(resp *r)
{
    free(r->body);
    job_free(r->job);
    free(r);
}

/* Make a response ready with a copy of `body`. */
static void resp_set(resp *r, int status, const char *ctype, const char *body, size_t len)
{
    free(r->body);
    r->body = xmalloc(len);
    memcpy(r->body, body, len);
    r->len = len;
    r->status = status;
    r->ctype = ctype;
    r->ready = 1;
}

static void resp_text(resp *r, int status, const char *fmt, ...) CF_PRINTF(3, 4);

/* A plain-text response "<status> <reason>: <text>\n" (just the text for 200). */
static void resp_text(resp *r, int status, const char *fmt, ...)
{
    char msg[512];
    int n = 0;
    va_list ap;

    if (status != 200)
        n = snprintf(msg, sizeof(msg), "%d %s: ", status, http_status_str((enum http_status)status));
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    if (len == sizeof(msg) - 1)
        msg[len - 1] = '\n';
    resp_set(r, status, "text/plain; charset=utf-8", msg, len);
}

static const char *server_date(server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* Build the status line and headers of the response at the front of the queue. */
static void resp_build(conn *c, resp *r)
{
    if (r->built)
        return;
    r->built = 1;
    int n = snprintf(r->hdr, sizeof(r->hdr),
                     "HTTP/1.1 %d %s\r\nServer: cfserve\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n%s%s%s\r\n",
                     r->status, http_status_str((enum http_status)r->status), server_date(c->srv),
                     r->ctype ? r->ctype : "text/plain; charset=utf-8", r->len, r->close ? "close" : "keep-alive",
                     r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "");
    r->hdr_len = n > 0 && (size_t)n < sizeof(r->hdr) ? (size_t)n : 0;
    if (r->head && r->body) { /* HEAD: keep the length, drop the body */
        free(r->body);
        r->body = NULL;
    }
}

/* Bytes of the response on the wire. */
static size_t resp_wire_len(const resp *r)
{
    return r->hdr_len + (r->head ? 0 : r->len);
}

/* Done callback of every future a response waits for.  Loop thread. */
static void resp_done(cf_future_t *f, int status, void *data)
{
    resp *r = data;
    conn *c = r->c;
    server *s = c->srv;

    s->inflight--;
    if (!c->closed) {
        switch (r->kind) {
        case RESP_FIB: {
            int64_t v = 0;
            if (status == 0 && cf_future_result_i64(f, &v) == 0) {
                char num[32];
                int n = snprintf(num, sizeof(num), "%" PRId64 "\n", v);
                resp_set(r, 200, "text/plain; charset=utf-8", num, (size_t)n);
            } else {
                const char *msg = cf_future_error(f);
                resp_text(r, status == CF_ECANCELED ? 503 : 500, "fib(%ld): %s\n", r->arg,
                          msg ? msg : cf_strerror(status));
            }
            break;
        }
        case RESP_SLEEP:
            if (status == 0)
                resp_text(r, 200, "slept %ld ms\n", r->arg);
            else
                resp_text(r, 503, "sleep: %s\n", cf_strerror(status));
            break;
        case RESP_FS: {
            fs_job *j = r->job;
            if (status != 0) {
                const char *msg = cf_future_error(f);
                resp_text(r, status == CF_ECANCELED ? 503 : 500, "%s\n", msg ? msg : cf_strerror(status));
            } else if (j->status != 200) {
                resp_text(r, j->status, "%s\n", j->msg);
            } else {
                r->status = 200;
                r->ctype = j->ctype;
                r->body = j->body; /* NULL for HEAD */
                r->len = j->len;
                j->body = NULL;
                r->ready = 1;
            }
            break;
        }
        case RESP_INLINE:
            break;
        }
    }
    job_free(r->job);
    r->job = NULL;
    cf_future_unref(f);
    r->fut = NULL;
    r->ready = 1;
    if (!c->closed) {
        conn_flush(c);
        conn_timer_update(c);
    }
    conn_unref(c); /* the future's reference */
}

/* Let `r` wait for `f` (one reference, which the response takes over). */
static void resp_wait(resp *r, resp_kind kind, cf_future_t *f)
{
    conn *c = r->c;
    r->kind = kind;
    r->fut = f;
    conn_ref(c);
    c->srv->inflight++;
    int rc = cf_future_on_done(f, resp_done, r, NULL);
    if (rc != 0) {
        report("cf_future_on_done", rc);
        /* A task that already runs still uses its job: then leave the job (this is out-of-memory land). */
        if (cf_future_cancel(f) == 0 || cf_future_get_state(f) == CF_FUTURE_CANCELLED)
            job_free(r->job);
        r->job = NULL;
        cf_future_unref(f);
        r->fut = NULL;
        c->srv->inflight--;
        resp_text(r, 500, "%s\n", cf_strerror(rc));
        conn_unref(c);
    }
}

/* ------------------------------------------------------------------ routes */

/* The query parameter `name` as an integer from 0 to max: 0, or -1 after answering 400. */
static int query_int(resp *r, const char *q, size_t qlen, const char *name, long max, long *out)
{
    char *v = NULL;
    int found = query_get(q, qlen, name, &v);
    int ok = found > 0 && parse_uint(v, 0, max, out) == 0;
    free(v);
    if (!ok) {
        resp_text(r, 400, "%s must be an integer from 0 to %ld\n", name, max);
        return -1;
    }
    return 0;
}

static void route_fib(conn *c, resp *r, const char *q, size_t qlen)
{
    long n = 0;
    if (query_int(r, q, qlen, "n", CFS_FIB_MAX, &n) != 0)
        return;
    int32_t n32 = (int32_t)n;
    cf_future_t *f = NULL;
    int rc = cf_process_pool_submit(c->srv->ppool, fib_task, &n32, sizeof(n32), -1, &f);
    if (rc != 0) {
        resp_text(r, 503, "cannot submit fib(%ld): %s\n", n, cf_strerror(rc));
        return;
    }
    r->arg = n;
    resp_wait(r, RESP_FIB, f);
}

static void route_sleep(conn *c, resp *r, const char *q, size_t qlen)
{
    long ms = 0;
    if (query_int(r, q, qlen, "ms", CFS_SLEEP_MAX, &ms) != 0)
        return;
    cf_future_t *f = NULL;
    int rc = cf_sleep(c->srv->loop, (double)ms / 1000.0, &f);
    if (rc != 0) {
        resp_text(r, 503, "cf_sleep: %s\n", cf_strerror(rc));
        return;
    }
    r->arg = ms;
    resp_wait(r, RESP_SLEEP, f);
}

/* Submit a file-system job for `rel` (decoded, relative, checked); takes `rel`. */
static void submit_fs(conn *c, resp *r, fs_kind kind, char *rel)
{
    fs_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(rel);
        resp_text(r, 503, "out of memory\n");
        return;
    }
    j->srv = c->srv;
    j->kind = kind;
    j->head = r->head;
    j->rel = rel;
    /* No arg_free: the pool would call it before the done callback, which reads the job. */
    cf_future_t *f = NULL;
    int rc = cf_thread_pool_submit(c->srv->tpool, fs_task, j, NULL, &f);
    if (rc != 0) {
        job_free(j);
        resp_text(r, 503, "cannot submit: %s\n", cf_strerror(rc));
        return;
    }
    r->job = j;
    resp_wait(r, RESP_FS, f);
}

static void route_md5(conn *c, resp *r, const char *q, size_t qlen)
{
    char *path = NULL;
    int found = query_get(q, qlen, "path", &path);
    if (found < 0 || (found == 1 && !path[0])) {
        resp_text(r, 400, "path is missing or badly encoded\n");
    } else if (found == 0) {
        resp_text(r, 400, "path is missing\n");
    } else if (path[0] == '/') {
        resp_text(r, 403, "absolute paths are not served\n");
    } else if (has_dotdot(path)) {
        resp_text(r, 403, "\"..\" is not allowed in paths\n");
    } else {
        submit_fs(c, r, FS_MD5, path);
        return;
    }
    free(path);
}

static void route_static(conn *c, resp *r, const char *path)
{
    /* `path` is decoded and starts with '/'. */
    if (has_dotdot(path)) {
        resp_text(r, 403, "\"..\" is not allowed in paths\n");
        return;
    }
    while (*path == '/')
        path++;
    submit_fs(c, r, FS_STATIC, xstrndup(path, strlen(path)));
}

static void route_stats(conn *c, resp *r)
{
    server *s = c->srv;
    cf_pool_stats ts, ps;
    char buf[1024];
    const char *names[2] = {"thread_pool", "process_pool"};
    cf_pool_stats *st[2] = {&ts, &ps};
    size_t n;

    memset(&ts, 0, sizeof(ts));
    memset(&ps, 0, sizeof(ps));
    cf_thread_pool_stats(s->tpool, &ts);
    cf_process_pool_stats(s->ppool, &ps);
    n = (size_t)snprintf(buf, sizeof(buf),
                         "{\"server\":{\"connections_open\":%u,\"connections_total\":%" PRIu64
                         ",\"connections_rejected\":%" PRIu64 ",\"requests_served\":%" PRIu64
                         ",\"requests_in_flight\":%" PRIu64 "}",
                         s->open_conns, s->total_conns, s->rejected_conns, s->requests, s->inflight);
    for (int i = 0; i < 2; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              ",\"%s\":{\"submitted\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"running\":%" PRIu64
                              ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64
                              ",\"workers\":%d}",
                              names[i], st[i]->submitted, st[i]->queued, st[i]->running, st[i]->completed,
                              st[i]->failed, st[i]->cancelled, st[i]->workers);
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}\n");
    resp_set(r, 200, "application/json", buf, n);
}

/* Answer the request just parsed on `c` through `r`. */
static void route(conn *c, resp *r, int method)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, method == HTTP_CONNECT, &u) != 0) {
        resp_text(r, 400, "bad request target\n");
        return;
    }
    if (method != HTTP_GET && method != HTTP_HEAD) {
        r->allow = "GET, HEAD";
        resp_text(r, 405, "%s is not supported\n", http_method_str((enum http_method)method));
        return;
    }
    const char *raw = "/";
    size_t rawlen = 1;
    if (u.field_set & (1 << UF_PATH)) {
        raw = c->url + u.field_data[UF_PATH].off;
        rawlen = u.field_data[UF_PATH].len;
    }
    const char *q = "";
    size_t qlen = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        q = c->url + u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
    }
    char *path = url_decode(raw, rawlen, 0);
    if (!path || path[0] != '/') {
        resp_text(r, 400, "bad path\n");
        free(path);
        return;
    }
    if (strcmp(path, "/health") == 0)
        resp_set(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
    else if (strcmp(path, "/stats") == 0)
        route_stats(c, r);
    else if (strcmp(path, "/fib") == 0)
        route_fib(c, r, q, qlen);
    else if (strcmp(path, "/md5") == 0)
        route_md5(c, r, q, qlen);
    else if (strcmp(path, "/sleep") == 0)
        route_sleep(c, r, q, qlen);
    else
        route_static(c, r, path);
    free(path);
}

/* ------------------------------------------------------------------ parser callbacks */

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->in_message = 1;
    c->in_headers = 1;
    c->msg_start = ev_now(c->srv->ev);
    c->url_len = 0;
    c->body_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->url_len + len > CFS_MAX_HEAD) {
        c->err_status = 431;
        return -1;
    }
    if (c->url_len + len + 1 > c->url_cap) {
        size_t cap = c->url_cap ? c->url_cap : 256;
        while (cap < c->url_len + len + 1)
            cap *= 2;
        char *u = realloc(c->url, cap);
        if (!u) {
            c->err_status = 500;
            return -1;
        }
        c->url = u;
        c->url_cap = cap;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    c->in_headers = 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > CFS_MAX_BODY) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    (void)at;
    c->body_bytes += len; /* read and discarded */
    if (c->body_bytes > CFS_MAX_BODY) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    int keep = http_should_keep_alive(p) && !p->upgrade && !c->srv->stopping;

    c->in_message = 0;
    c->last_io = ev_now(c->srv->ev);
    resp *r = resp_new(c, p->method == HTTP_HEAD);
    r->close = !keep;
    route(c, r, p->method);
    if (!keep) {
        c->rd_done = 1; /* the rest of the input is ignored */
        http_parser_pause(p, 1);
    } else if (c->nresp >= CFS_MAX_PIPELINE) {
        c->paused = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ connections */

static void server_check_done(server *s);

static void conn_ref(conn *c)
{
    c->refs++;
}

static void conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    while (c->head) {
        resp *r = c->head;
        c->head = r->next;
        resp_free(r);
    }
    free(c->url);
    server *s = c->srv;
    s->live_conns--;
    free(c);
    server_check_done(s);
}

/* Close now: pending futures are cancelled, their callbacks drop their references. */
static void conn_close(conn *c)
{
    server *s = c->srv;
    if (c->closed)
        return;
    c->closed = 1;
    ev_io_stop(s->ev, &c->rio);
    ev_io_stop(s->ev, &c->wio);
    ev_timer_stop(s->ev, &c->timer);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->rejected)
        s->open_conns--;
    for (resp *r = c->head; r; r = r->next) {
        if (r->fut)
            cf_future_cancel(r->fut); /* 0, CF_EBUSY (stopping), CF_EALREADY: all fine */
    }
    conn_unref(c); /* the open reference */
}

/*
 * Every response is sent and no more requests will be read: close.  Unless the
 * peer already shut down its side, shut down ours and read and discard what
 * it still sends for a while, so that unread request bytes do not make the
 * kernel reset the connection before the peer read the response.
 */
static void conn_finish(conn *c)
{
    if (c->peer_eof || c->lingering) {
        if (c->peer_eof)
            conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    c->linger_until = ev_now(c->srv->ev) + CFS_LINGER;
    ev_io_stop(c->srv->ev, &c->wio);
    ev_io_start(c->srv->ev, &c->rio);
    conn_timer_update(c);
}

/* Queue an error response that ends the connection (parse error, limit, timeout). */
static void conn_fail(conn *c, int status, const char *what)
{
    c->rd_done = 1;
    c->in_message = c->in_headers = 0;
    ev_io_stop(c->srv->ev, &c->rio);
    resp *r = resp_new(c, 0);
    r->close = 1;
    resp_text(r, status, "%s\n", what);
}

/* When is the connection's next deadline (0: none)? */
static ev_tstamp conn_deadline(const conn *c)
{
    const server *s = c->srv;
    if (c->lingering)
        return c->linger_until;
    if (c->wblocked)
        return c->last_io + s->idle_timeout;
    if (!c->rd_done && c->in_headers)
        return c->msg_start + s->header_timeout;
    if (!c->rd_done && c->in_message)
        return c->last_io + s->idle_timeout;
    if (!c->head && !c->rd_done)
        return c->last_io + s->idle_timeout;
    return 0; /* waiting for our own work */
}

/* Start, move or stop the connection's timer to match its deadline. */
static void conn_timer_update(conn *c)
{
    struct ev_loop *ev = c->srv->ev;
    if (c->closed)
        return;
    ev_tstamp deadline = conn_deadline(c), now = ev_now(ev);
    if (deadline == 0) {
        ev_timer_stop(ev, &c->timer);
        return;
    }
    if (ev_is_active(&c->timer) && now + ev_timer_remaining(ev, &c->timer) <= deadline + 0.001)
        return; /* fires earlier; the callback re-arms it for the real deadline */
    ev_timer_stop(ev, &c->timer);
    ev_timer_set(&c->timer, deadline > now ? deadline - now : 0, 0);
    ev_timer_start(ev, &c->timer);
}

static void conn_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    conn *c = w->data;
    (void)revents;
    ev_tstamp deadline = conn_deadline(c);
    if (deadline == 0)
        return;
    if (deadline > ev_now(ev) + 0.001) {
        conn_timer_update(c);
        return;
    }
    conn_ref(c);
    if (c->lingering || c->wblocked || !c->in_message) {
        conn_close(c); /* idle, not reading our output, or done lingering */
    } else {
        conn_fail(c, 408, c->in_headers ? "the request head did not arrive in time" : "the request body stalled");
        conn_flush(c);
        conn_timer_update(c);
    }
    conn_unref(c);
}

/* Parse what the read buffer holds. */
static void conn_parse(conn *c)
{
    size_t off = 0;
    while (off < c->in_len && !c->rd_done && !c->paused) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + off, c->in_len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        off += n;
        if (e == HPE_PAUSED) {
            if (c->paused && !c->rd_done)
                break; /* resumed by conn_flush() */
            off = c->in_len;
            break;
        }
        if (e != HPE_OK) {
            int status = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            conn_fail(c, status, status == 400 ? http_errno_description(e) : "request too large");
            off = c->in_len;
            break;
        }
        if (c->parser.upgrade) { /* an Upgrade request ended the parse; it was answered normally */
            c->rd_done = 1;
            off = c->in_len;
            break;
        }
        if (n == 0)
            break;
    }
    if (c->rd_done)
        off = c->in_len;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

/* Readable: a request's bytes, or EOF; or lingering bytes to discard. */
static void conn_read(conn *c)
{
    char scratch[4096];
    char *buf = c->lingering ? scratch : c->in + c->in_len;
    size_t room = c->lingering ? sizeof(scratch) : sizeof(c->in) - c->in_len;
    ssize_t n;

    if (room == 0) { /* cannot happen: the buffer only fills while paused, and then we do not read */
        ev_io_stop(c->srv->ev, &c->rio);
        return;
    }
    do
        n = recv(c->fd, buf, room, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c);
        return;
    }
    if (c->lingering) {
        c->lingered += (size_t)n;
        if (n == 0 || c->lingered > CFS_LINGER_BYTES)
            conn_close(c);
        return;
    }
    if (n == 0) {
        /*
         * The peer is done sending.  Responses already made are still sent;
         * but a client that goes away while its request is being worked on
         * has given up on it (nginx's 499): close, which cancels the work.
         */
        c->peer_eof = 1;
        c->rd_done = 1;
        c->in_message = c->in_headers = 0;
        ev_io_stop(c->srv->ev, &c->rio);
        int waiting = 0;
        for (resp *r = c->head; r; r = r->next)
            waiting |= r->fut != NULL;
        if (!c->head || waiting)
            conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    c->last_io = ev_now(c->srv->ev);
    conn_parse(c);
    if (c->rd_done || c->paused)
        ev_io_stop(c->srv->ev, &c->rio);
}

/* Send ready responses from the front of the queue. */
static void conn_flush(conn *c)
{
    server *s = c->srv;
    if (c->closed || c->lingering)
        return;
    for (;;) {
        struct iovec iov[CFS_IOV];
        int niov = 0;
        for (resp *r = c->head; r && r->ready && niov + 2 <= CFS_IOV; r = r->next) {
            resp_build(c, r);
            size_t hdr_off = r->off < r->hdr_len ? r->off : r->hdr_len;
            if (hdr_off < r->hdr_len)
                iov[niov++] = (struct iovec){r->hdr + hdr_off, r->hdr_len - hdr_off};
            if (!r->head && r->len) {
                size_t body_off = r->off > r->hdr_len ? r->off - r->hdr_len : 0;
                iov[niov++] = (struct iovec){r->body + body_off, r->len - body_off};
            }
            if (r->close)
                break;
        }
        if (niov == 0)
            break;
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->wblocked) {
                c->wblocked = 1;
                ev_io_start(s->ev, &c->wio);
            }
            break;
        }
        if (w < 0) {
            conn_close(c); /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
        c->last_io = ev_now(s->ev);
        size_t left = (size_t)w;
        while (c->head && c->head->ready && c->head->built) {
            resp *r = c->head;
            size_t want = resp_wire_len(r) - r->off;
            size_t take = left < want ? left : want;
            r->off += take;
            left -= take;
            if (r->off < resp_wire_len(r))
                break;
            /* Sent in full. */
            int closing = r->close;
            c->head = r->next;
            if (!c->head)
                c->tail = NULL;
            c->nresp--;
            s->requests++;
            resp_free(r);
            if (closing) {
                /* A closing response is always the last one queued: nothing follows. */
                c->rd_done = 1;
                break;
            }
        }
    }
    if (c->wblocked && (!c->head || !c->head->ready)) {
        c->wblocked = 0;
        ev_io_stop(s->ev, &c->wio);
    }
    if (!c->head && c->rd_done) {
        conn_finish(c);
        return;
    }
    if (c->paused && c->nresp < CFS_MAX_PIPELINE / 2 && !c->rd_done) {
        /* Resume the parser on what the buffer still holds, then the socket. */
        c->paused = 0;
        http_parser_pause(&c->parser, 0);
        conn_parse(c);
        if (!c->rd_done && !c->paused)
            ev_io_start(s->ev, &c->rio);
        if (c->head && c->head->ready)
            conn_flush(c);
        else if (!c->head && c->rd_done)
            conn_finish(c);
    }
}

static void conn_io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    conn *c = w->data;
    (void)ev;
    conn_ref(c);
    if (revents & EV_READ) {
        conn_read(c);
        conn_flush(c);
    }
    if ((revents & EV_WRITE) && !c->closed) {
        c->wblocked = 0;
        ev_io_stop(c->srv->ev, &c->wio);
        conn_flush(c);
    }
    conn_timer_update(c);
    conn_unref(c);
}

static void conn_new(server *s, int fd)
{
    conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    c->fd = fd;
    c->refs = 1;
    c->last_io = ev_now(s->ev);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->rio, conn_io_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_io_cb, fd, EV_WRITE);
    ev_timer_init(&c->timer, conn_timer_cb, 0, 0);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->live_conns++;
    s->total_conns++;
    if (s->open_conns >= s->max_conns) {
        c->rejected = 1;
        s->rejected_conns++;
        conn_fail(c, 503, "too many connections");
        conn_flush(c);
    } else {
        s->open_conns++;
        ev_io_start(s->ev, &c->rio);
    }
    conn_timer_update(c);
}

/* ------------------------------------------------------------------ the listener and signals */

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    server *s = w->data;
    (void)revents;
    for (int i = 0; i < 64 && !s->stopping; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            /* Past the limit, plus room for some rejections, drop connections outright. */
            if (s->live_conns >= s->max_conns + s->max_conns / 4 + 16)
                close(fd);
            else
                conn_new(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        /* EMFILE, ENFILE, ENOBUFS, ENOMEM: pause accepting for a moment rather than spin. */
        fprintf(stderr, "cfserve: accept: %s\n", strerror(errno));
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
    if (!s->stopping)
        ev_io_start(ev, &s->accept_w);
}

static void server_check_done(server *s)
{
    if (s->stopping && s->live_conns == 0) {
        ev_signal_stop(s->ev, &s->sigint_w);
        ev_signal_stop(s->ev, &s->sigterm_w);
        ev_break(s->ev, EVBREAK_ALL);
    }
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
        if (force || (!c->head && !c->lingering)) {
            conn_close(c); /* idle, or a partial request that will not be answered */
        } else if (!c->lingering) {
            c->rd_done = 1;
            c->in_message = c->in_headers = 0;
            ev_io_stop(ev, &c->rio);
            if (!c->tail->built)
                c->tail->close = 1;
            conn_timer_update(c);
        }
    }
    server_check_done(s);
}

static int listen_on(int port, int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 511) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out_port = ntohs(sa.sin_port);
    return fd;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fprintf(out, "usage: cfserve [--port P] [--root DIR] [--threads N] [--procs N] [--max-conns N]\n"
                 "               [--idle-timeout S] [--header-timeout S]\n"
                 "  --port P            TCP port on 127.0.0.1 (default 8080; 0 picks a free one)\n"
                 "  --root DIR          directory served and hashed (default .)\n"
                 "  --threads N         thread-pool workers: files and md5 (default: one per CPU)\n"
                 "  --procs N           process-pool workers: fib (default: one per CPU)\n"
                 "  --max-conns N       open connections; more get 503 (default 1024)\n"
                 "  --idle-timeout S    idle keep-alive, body and write progress timeout (default 10)\n"
                 "  --header-timeout S  time for a request head to arrive (default: the idle timeout)\n");
}

/* The value of option `name` at argv[*i] ("--name V" or "--name=V"); NULL if it is not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    server s;
    long port = 8080, threads = 0, procs = 0, max_conns = 1024;
    const char *root = ".", *v;
    double idle = 10, header = -1;

    memset(&s, 0, sizeof(s));
    s.lfd = -1;
    for (int i = 1; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--port"))) {
            if (parse_uint(v, 0, 65535, &port) != 0)
                goto bad;
        } else if ((v = opt_value(argc, argv, &i, "--root"))) {
            root = v;
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (parse_uint(v, 1, 256, &threads) != 0)
                goto bad;
        } else if ((v = opt_value(argc, argv, &i, "--procs"))) {
            if (parse_uint(v, 1, 256, &procs) != 0)
                goto bad;
        } else if ((v = opt_value(argc, argv, &i, "--max-conns"))) {
            if (parse_uint(v, 1, 1000000, &max_conns) != 0)
                goto bad;
        } else if ((v = opt_value(argc, argv, &i, "--idle-timeout"))) {
            if (parse_seconds(v, &idle) != 0)
                goto bad;
        } else if ((v = opt_value(argc, argv, &i, "--header-timeout"))) {
            if (parse_seconds(v, &header) != 0)
                goto bad;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cfserve: unknown option or missing value: '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "cfserve: bad value '%s' for %s\n", v, argv[i - (v == argv[i] ? 1 : 0)]);
        usage(stderr);
        return 2;
    }
    s.idle_timeout = idle;
    s.header_timeout = header > 0 ? header : idle;
    s.max_conns = (unsigned)max_conns;
    s.root = realpath(root, NULL);
    struct stat st;
    if (!s.root || stat(s.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cfserve: --root %s: %s\n", root, s.root ? "not a directory" : strerror(errno));
        free(s.root);
        return 2;
    }
    s.rootlen = strlen(s.root);
    /* The parser counts every byte of a request's head (request line and
       headers) and fails with HPE_HEADER_OVERFLOW past this: 431. */
    http_parser_set_max_header_size(CFS_MAX_HEAD);

    /*
     * A loop of our own: cfutures works on any loop, and the default loop
     * would reap children on SIGCHLD, the process pool's fork server among them.
     */
    s.ev = ev_loop_new(EVFLAG_AUTO);
    if (!s.ev) {
        fprintf(stderr, "cfserve: ev_loop_new failed\n");
        free(s.root);
        return 1;
    }
    int status = 1, rc = cf_loop_new(s.ev, &s.loop);
    if (rc != 0) {
        report("cf_loop_new", rc);
        goto out;
    }
    /* The process pool first: its fork server is forked while we are single-threaded. */
    cf_process_pool_opts popts;
    cf_process_pool_opts_init(&popts);
    if (procs > 0)
        popts.max_workers = (int)procs;
    popts.pipeline = 1; /* never queue a quick fib behind a slow one in a worker */
    popts.initializer = worker_low_priority;
    rc = cf_process_pool_new(s.loop, &popts, &s.ppool);
    if (rc != 0) {
        report("cf_process_pool_new", rc);
        goto out;
    }
    cf_thread_pool_opts topts;
    cf_thread_pool_opts_init(&topts);
    if (threads > 0)
        topts.max_workers = (int)threads;
    topts.name_prefix = "cfserve";
    rc = cf_thread_pool_new(s.loop, &topts, &s.tpool);
    if (rc != 0) {
        report("cf_thread_pool_new", rc);
        goto out;
    }

    signal(SIGPIPE, SIG_IGN); /* sendmsg() uses MSG_NOSIGNAL; this covers anything else */
    int bound = 0;
    s.lfd = listen_on((int)port, &bound);
    if (s.lfd < 0) {
        fprintf(stderr, "cfserve: cannot listen on 127.0.0.1:%ld: %s\n", port, cf_strerror(s.lfd));
        s.lfd = -1;
        goto out;
    }
    ev_io_init(&s.accept_w, accept_cb, s.lfd, EV_READ);
    ev_timer_init(&s.accept_backoff, accept_backoff_cb, 0.1, 0);
    ev_signal_init(&s.sigint_w, signal_cb, SIGINT);
    ev_signal_init(&s.sigterm_w, signal_cb, SIGTERM);
    s.accept_w.data = s.accept_backoff.data = s.sigint_w.data = s.sigterm_w.data = &s;
    ev_io_start(s.ev, &s.accept_w);
    ev_signal_start(s.ev, &s.sigint_w);
    ev_signal_start(s.ev, &s.sigterm_w);

    printf("listening on http://127.0.0.1:%d/\n", bound);
    fflush(stdout);
    ev_run(s.ev, 0);

    fprintf(stderr,
            "cfserve: %s: stopped after %" PRIu64 " responses on %" PRIu64 " connections (%" PRIu64 " rejected)\n",
            s.stop_signal ? s.stop_signal : "loop ended", s.requests, s.total_conns, s.rejected_conns);
    status = s.stop_signal ? 0 : 1;

out:
    if (s.lfd >= 0)
        close(s.lfd);
    if (s.tpool)
        cf_thread_pool_free(s.tpool);
    if (s.ppool)
        cf_process_pool_free(s.ppool);
    if (s.loop && (rc = cf_loop_close(s.loop)) != 0) {
        report("cf_loop_close", rc); /* the binding still uses the loop: leave both */
        status = 1;
    } else {
        ev_loop_destroy(s.ev);
    }
    free(s.root);
    return status;
}
