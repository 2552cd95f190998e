/*
 * routes.c - which request gets which answer.  Loop thread.
 *
 *   /health  200 "ok" while every pool has a live worker, else 503 saying which
 *   /stats   JSON counters of the server and the three pools
 *   /fib     process pool          /md5   hashing thread pool (size cap, cancellable)
 *   /sleep   cf_sleep() timer      else   a static file (file thread pool)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE
#include "cfserve.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The query parameter `name` as an integer from 0 to max: 0, or -1 after answering 400. */
static int query_int(resp *r, const http_target *t, const char *name, long max, long *out)
{
    char *v = NULL;
    long long x = 0;
    int found = demo_query_get(t->query, t->query_len, name, &v);
    int ok = found > 0 && demo_parse_uint(v, 0, max, &x) == 0;
    free(v);
    if (!ok) {
        resp_text(r, 400, "%s must be an integer from 0 to %ld\n", name, max);
        return -1;
    }
    *out = (long)x;
    return 0;
}

static void route_fib(conn *c, resp *r, const http_target *t)
{
    long n = 0;
    if (query_int(r, t, "n", CFS_FIB_MAX, &n) != 0)
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

static void route_sleep(conn *c, resp *r, const http_target *t)
{
    long ms = 0;
    if (query_int(r, t, "ms", CFS_SLEEP_MAX, &ms) != 0)
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
static void submit_fs(conn *c, resp *r, fs_kind kind, char *rel, const http_req *req)
{
    server *s = c->srv;
    if (strlen(rel) + s->rootlen + 2 > PATH_MAX) {
        free(rel);
        resp_text(r, 414, "path too long\n");
        return;
    }
    fs_job *j = job_new(s, kind, rel, req);
    if (!j) {
        free(rel);
        resp_text(r, 503, "out of memory\n");
        return;
    }
    if (kind == FS_STATIC && fs_try_cached(j)) { /* answered on the loop: nothing to wait for */
        s->files_on_loop++;
        r->job = j;
        r->file = 1;
        c->nfiles++;
        resp_take_job(r, j);
        r->job = NULL;
        job_free(j);
        return;
    }
    /* No arg_free: the pool would call it before the done callback, which reads the job. */
    cf_future_t *f = NULL;
    int rc = cf_thread_pool_submit(kind == FS_MD5 ? s->hpool : s->tpool, fs_task, j, NULL, &f);
    if (rc != 0) {
        job_free(j);
        resp_text(r, 503, "cannot submit: %s\n", cf_strerror(rc));
        return;
    }
    r->job = j;
    if (kind == FS_STATIC) {
        r->file = 1;
        c->nfiles++;
    }
    resp_wait(r, RESP_FS, f);
}

static void route_md5(conn *c, resp *r, const http_target *t, const http_req *req)
{
    char *path = NULL;
    int found = demo_query_get(t->query, t->query_len, "path", &path);
    if (found < 0 || (found == 1 && !path[0])) {
        resp_text(r, 400, "path is missing or badly encoded\n");
    } else if (found == 0) {
        resp_text(r, 400, "path is missing\n");
    } else if (path[0] == '/') {
        resp_text(r, 403, "absolute paths are not served\n");
    } else if (http_has_dotdot(path)) {
        resp_text(r, 403, "\"..\" is not allowed in paths\n");
    } else {
        submit_fs(c, r, FS_MD5, path, req);
        return;
    }
    free(path);
}

static void route_static(conn *c, resp *r, const http_target *t, const http_req *req)
{
    const char *path = t->path; /* decoded, starts with '/' */
    if (http_has_dotdot(path)) {
        resp_text(r, 403, "\"..\" is not allowed in paths\n");
        return;
    }
    /* Where the directory is, should this name one without its trailing slash. */
    size_t n = t->raw_path_len + t->query_len + 3;
    r->location = demo_xmalloc(n);
    snprintf(r->location, n, "%.*s/%s%.*s", (int)t->raw_path_len, t->raw_path, t->query_len ? "?" : "",
             (int)t->query_len, t->query);
    while (*path == '/')
        path++;
    submit_fs(c, r, FS_STATIC, demo_xstrndup(path, strlen(path)), req);
}

static size_t pool_json(char *buf, size_t cap, const char *name, const cf_pool_stats *st)
{
    int n =
        snprintf(buf, cap,
                 ",\"%s\":{\"submitted\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"running\":%" PRIu64
                 ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64 ",\"workers\":%d}",
                 name, st->submitted, st->queued, st->running, st->completed, st->failed, st->cancelled, st->workers);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void route_stats(conn *c, resp *r)
{
    server *s = c->srv;
    cf_pool_stats ts, hs, ps;
    char buf[4096];
    size_t n;

    memset(&ts, 0, sizeof(ts));
    memset(&hs, 0, sizeof(hs));
    memset(&ps, 0, sizeof(ps));
    cf_thread_pool_stats(s->tpool, &ts);
    cf_thread_pool_stats(s->hpool, &hs);
    cf_process_pool_stats(s->ppool, &ps);
    n = (size_t)snprintf(buf, sizeof(buf),
                         "{\"server\":{\"connections_open\":%u,\"connections_total\":%" PRIu64
                         ",\"connections_rejected\":%" PRIu64 ",\"connections_shed\":%" PRIu64
                         ",\"requests_served\":%" PRIu64 ",\"requests_in_flight\":%" PRIu64 ",\"timeouts\":%" PRIu64
                         ",\"accept_emfile\":%" PRIu64 ",\"max_conns\":%u,\"loop_files\":%s,\"files_on_loop\":%" PRIu64
                         "}",
                         s->open_conns, s->total_conns, s->rejected_conns, s->shed_conns, s->requests, s->inflight,
                         s->timeouts, s->emfile, s->max_conns, s->loop_files ? "true" : "false", s->files_on_loop);
    n += pool_json(buf + n, sizeof(buf) - n, "thread_pool", &ts);
    n += pool_json(buf + n, sizeof(buf) - n, "hash_pool", &hs);
    n += pool_json(buf + n, sizeof(buf) - n, "process_pool", &ps);
    /* The processes behind the pool, for diagnostics (and the tests that kill them). */
    n--; /* reopen the process_pool object */
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"fork_server_pid\":%d,\"worker_pids\":[",
                          (int)cf_process_pool_server_pid(s->ppool));
    for (int i = 0; i < s->procs && n < sizeof(buf) - 32; i++) {
        cf_worker_info wi;
        memset(&wi, 0, sizeof(wi));
        cf_process_pool_worker_info(s->ppool, i, &wi);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%d", i ? "," : "", (int)wi.pid);
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "]}}\n");
    resp_set(r, 200, "application/json", buf, n);
}

/* 200 while every pool can take work; 503 naming the one that cannot. */
static void route_health(conn *c, resp *r)
{
    server *s = c->srv;
    cf_pool_stats ts, hs, ps;
    memset(&ts, 0, sizeof(ts));
    memset(&hs, 0, sizeof(hs));
    memset(&ps, 0, sizeof(ps));
    cf_thread_pool_stats(s->tpool, &ts);
    cf_thread_pool_stats(s->hpool, &hs);
    cf_process_pool_stats(s->ppool, &ps);
    if (ps.workers == 0)
        resp_text(r, 503, "process pool: no live worker (of %d): broken or restarting\n", s->procs);
    else if (ts.workers == 0 || hs.workers == 0)
        resp_text(r, 503, "thread pool: no live worker\n");
    else
        resp_set(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void route(conn *c, resp *r, const http_req *req)
{
    http_target t;
    if (http_target_parse(req, &t) != 0) {
        resp_text(r, 400, "bad request target\n");
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        snprintf(r->extra, sizeof(r->extra), "Allow: GET, HEAD\r\n");
        resp_text(r, 405, "%s is not supported\n", http_method_str((enum http_method)req->method));
    } else if (strcmp(t.path, "/health") == 0) {
        route_health(c, r);
    } else if (strcmp(t.path, "/stats") == 0) {
        route_stats(c, r);
    } else if (strcmp(t.path, "/fib") == 0) {
        route_fib(c, r, &t);
    } else if (strcmp(t.path, "/md5") == 0) {
        route_md5(c, r, &t, req);
    } else if (strcmp(t.path, "/sleep") == 0) {
        route_sleep(c, r, &t);
    } else {
        route_static(c, r, &t, req);
    }
    free(t.path);
}
