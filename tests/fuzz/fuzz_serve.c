/*
 * fuzz_serve.c - libFuzzer target for cfserve's request handling
 * (demos/serve/http.c with demos/common/util.c).
 *
 * The input's first byte picks the chunk sizes in which the rest is fed to
 * the request parser (as reads from a socket would split it), pausing after
 * some requests and resuming as the server does.  Every whole request then
 * goes through what the server does with it before any disk access: the
 * target split and %-decoded, ".." detection, query parameters, conditional
 * and range evaluation against a file, the request line and an access-log
 * line, and a response head.  Nothing may crash, read out of bounds, leak,
 * or produce a range outside the file.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "http.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int pause_every;
static int seen;

static int on_request(http_in *in, http_req *req)
{
    (void)in;
    http_target t;
    if (http_target_parse(req, &t) == 0) {
        (void)http_has_dotdot(t.path);
        static const char *const keys[] = {"n", "ms", "path"};
        for (size_t i = 0; i < 3; i++) {
            char *v = NULL;
            if (demo_query_get(t.query, t.query_len, keys[i], &v) > 0) {
                long long x;
                (void)demo_parse_uint(v, 0, 92, &x);
                free(v);
            }
        }
        free(t.path);
    }
    static const uint64_t sizes[] = {0, 1, 12, 300000, (uint64_t)1 << 40};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        http_file f = {.size = sizes[i], .mtime = 1700000000, .mtime_nsec = 5, .ino = 42};
        char etag[64], lastmod[40];
        uint64_t start, len;
        http_etag(&f, etag);
        http_date(f.mtime, lastmod);
        int st = http_file_status(req, &f, etag, lastmod, &start, &len);
        if (st == 206 && (len == 0 || start >= f.size || len > f.size - start))
            abort(); /* a range outside the file */
        if (st == 200 && (start != 0 || len != f.size))
            abort();
    }
    time_t when;
    (void)http_parse_date(req->ims, &when);
    char *line = http_request_line(req);
    char log[2048], head[1024];
    size_t n = http_log_line(log, sizeof(log), "127.0.0.1", 1700000000, line, 200, 5, req->referer, req->ua);
    if (n == 0 || n >= sizeof(log) || log[n - 1] != '\n' || strlen(log) != n)
        abort();
    http_head h = {.status = 200, .ctype = "text/plain", .length = 5, .date = "x", .extra = NULL};
    (void)http_head_build(head, sizeof(head), &h);
    free(line);
    return pause_every && ++seen % pause_every == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        http_parser_set_max_header_size(HTTP_MAX_PARSER_HEAD);
        init = 1;
    }
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] & 31) + 1, off = 1;
    pause_every = data[0] >> 5;
    seen = 0;
    http_in in;
    http_in_init(&in, NULL, on_request);
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        int status = 0;
        const char *why = NULL;
        http_in_state st = http_in_execute(&in, (const char *)data + off, n, &used, &status, &why);
        if (used > n)
            abort();
        off += used;
        if (st == HTTP_IN_ERROR) {
            if (status < 400 || status > 500 || !why)
                abort();
            break;
        }
        if (st == HTTP_IN_DONE)
            break;
        if (st == HTTP_IN_PAUSED)
            http_in_resume(&in);
        else if (used < n)
            break;
    }
    http_in_free(&in);
    return 0;
}
