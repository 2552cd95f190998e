/*
 * cfserve.h - the types and functions the parts of cfserve share.
 *
 *   main.c    options, descriptor budget, the listener, signals, access log
 *   conn.c    connections: reading, the response queue, writing, deadlines
 *   http.c    requests in, response heads out (no I/O; see http.h)
 *   routes.c  which request gets which answer
 *   work.c    what runs on the pools: files, md5, fib (and cached files on the loop)
 *
 * One thread runs the libev loop and owns every server, connection and
 * response object; work.c's tasks run on pool threads and worker processes
 * and touch only their fs_job until the pool hands it back.  A static file
 * the kernel can serve from its caches without waiting (fs_try_cached) is
 * answered on the loop and never reaches the pool.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFSERVE_H
#define CFSERVE_H

#include <cfutures.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/mime.h"
#include "../common/util.h"
#include "http.h"

#define CFS_MAX_PIPELINE 16             /* responses outstanding per connection: past it, parsing pauses */
#define CFS_MAX_FILES 4                 /* ... of which holding (or about to hold) an open file */
#define CFS_SMALL_FILE (8u << 10)       /* files up to this size are read whole; larger ones are streamed */
#define CFS_READ_BUF 16384              /* request bytes read per recv() */
#define CFS_LINGER 2.0                  /* seconds of lingering close */
#define CFS_LINGER_BYTES (1u << 20)     /* discarded at most while lingering */
#define CFS_IOV 32                      /* iovecs per sendmsg() */
#define CFS_SENDFILE_CHUNK (512u << 10) /* bytes per sendfile() call */
#define CFS_PROBE_INTERVAL 1.0          /* seconds between liveness probes of a half-closed client */
#define CFS_FIB_MAX 92                  /* fib(92) is the largest that fits an int64 */
#define CFS_FIB_NAIVE_MAX 45            /* above this, fib is computed iteratively */
#define CFS_SLEEP_MAX 10000             /* ms */
#define CFS_FDS_PER_CONN (1 + CFS_MAX_FILES)

typedef struct server server;
typedef struct conn conn;

typedef enum resp_kind { RESP_INLINE, RESP_FIB, RESP_FS, RESP_SLEEP } resp_kind;
typedef enum fs_kind { FS_STATIC, FS_MD5 } fs_kind;

/*
 * A file-system request, run on a worker thread.  The loop fills the request
 * part, the worker the outcome; the loop reads the outcome in the done
 * callback, after the pool's hand-back (which orders the two).
 */
typedef struct fs_job {
    /* request (read-only for the worker) */
    const server *srv;
    fs_kind kind;
    http_req req; /* the headers that matter (url not set) */
    char *rel;    /* decoded path relative to the root, no leading '/', no ".." */
    /* outcome */
    int status;
    const char *ctype;
    char *body; /* small file or md5 text, malloc'd */
    size_t len;
    int fd;             /* a large file to stream, or -1 */
    uint64_t off, flen; /* its part to send */
    char extra[384];    /* header lines (ETag, Last-Modified, Content-Range, ...) */
    char msg[200];      /* error text for other statuses */
} fs_job;

/* One response, queued on its connection in request order. */
typedef struct resp {
    struct resp *next;
    conn *c;
    resp_kind kind;
    int ready;  /* status and body are final */
    int head;   /* HEAD: headers only */
    int close;  /* "Connection: close": the connection closes after it */
    int http11; /* the request was HTTP/1.1 or later (it may be sent a 1xx) */
    int file;   /* counted in conn.nfiles */
    int status;
    const char *ctype;
    char *body; /* inline body, malloc'd */
    size_t len;
    int fd;              /* file body: descriptor, or -1 */
    uint64_t foff, flen; /* ... its part (flen is the Content-Length) */
    char extra[512];     /* header lines */
    char hdr[1024];
    size_t hdr_len;
    int built;
    uint64_t off; /* bytes of hdr + body sent */
    cf_future_t *fut;
    fs_job *job;
    long arg;
    char *log_req, *log_ref, *log_ua; /* for the access log, or NULL */
    char *location;                   /* where a directory without its trailing slash moved */
} resp;

struct conn {
    server *srv;
    conn *prev, *next;
    int fd;
    unsigned refs; /* 1 while open + 1 per pending future + callers on the stack */
    ev_io rio, wio;
    ev_timer timer;
    http_in in;
    char buf[CFS_READ_BUF];
    size_t buf_len;
    resp *head, *tail;
    unsigned nresp, nfiles;
    ev_tstamp msg_start, last_io, body_start, out_start;
    uint64_t out_bytes; /* sent since out_start */
    int paused, rd_done, peer_eof, lingering, wblocked, rejected, closed;
    size_t lingered;
    ev_tstamp linger_until, next_probe;
    char peer[INET6_ADDRSTRLEN];
};

struct server {
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *tpool; /* static files: resolve, open, stat, small reads */
    cf_thread_pool_t *hpool; /* md5: long reads and hashing, apart so they never delay files */
    cf_process_pool_t *ppool;
    int procs;
    demo_mime *mime;
    char *root;  /* realpath of --root */
    int root_fd; /* ... opened O_PATH, for openat2() */
    int loop_files; /* the root is on a local file system: cached files may be opened on the loop */
    size_t rootlen;
    double idle_timeout, header_timeout, request_timeout;
    double min_rate; /* bytes/s a transfer must keep after the idle timeout's grace */
    uint64_t md5_max;
    unsigned max_conns, max_rejected;
    int lfd, spare_fd;
    ev_io accept_w;
    ev_timer accept_backoff;
    ev_signal sigint_w, sigterm_w, sighup_w;
    int stopping;
    const char *stop_signal;
    const char *log_path;
    int log_fd;
    conn *conns;
    unsigned open_conns, rejected_open, live_conns;
    uint64_t total_conns, rejected_conns, shed_conns, requests, inflight, emfile, timeouts;
    uint64_t files_on_loop; /* static files answered without the pool (fs_try_cached) */
    ev_tstamp emfile_logged;
    time_t date_sec;
    char date[40];
};

/* conn.c */
void conn_new(server *s, int fd, const char *peer, int reject);
void conn_close(conn *c);
void conn_ref(conn *c);
void conn_unref(conn *c);
void conn_flush(conn *c);
void conn_timer_update(conn *c);
void conn_stop_reading(conn *c); /* SIGTERM: answer what was received, then close */
const char *server_date(server *s);
void server_check_done(server *s);
void server_log(server *s, const conn *c, resp *r);

/* responses (conn.c) */
resp *resp_new(conn *c, int head);
void resp_set(resp *r, int status, const char *ctype, const char *body, size_t len);
void resp_text(resp *r, int status, const char *fmt, ...) CF_PRINTF(3, 4);
void resp_wait(resp *r, resp_kind kind, cf_future_t *f);
void resp_take_job(resp *r, fs_job *j);

/* routes.c */
void route(conn *c, resp *r, const http_req *req);

/* work.c */
int fib_task(cf_task_t *task, void *arg);
int fs_task(cf_task_t *task, void *arg);
int fs_try_cached(fs_job *j);
int fs_local(int dirfd);
int worker_low_priority(void *data, int index, void **worker_data);
fs_job *job_new(const server *s, fs_kind kind, char *rel, const http_req *req);
void job_free(fs_job *j);

#endif
