/*
 * http.h - cfserve's HTTP/1.1 request side and response heads, with no I/O
 * and no server state, so that a fuzzer can drive it on its own.
 *
 * http_in wraps http-parser: bytes go in, whole requests (http_req) come out
 * through a callback; limits become statuses (413 body, 414 target, 431
 * head, 400 anything malformed).  The rest are pure functions: the request
 * target, conditional and range requests against a file's metadata, HTTP
 * dates, entity tags, the response head, and an access-log line.
 * Loop thread (or any single thread).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFSERVE_HTTP_H
#define CFSERVE_HTTP_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define HTTP_MAX_HEAD 8192                                         /* header fields and values -> 431 */
#define HTTP_MAX_PARSER_HEAD (HTTP_MAX_HEAD + HTTP_MAX_URL + 1024) /* http-parser's own bound on a head */
#define HTTP_MAX_URL 4096                                          /* request target -> 414 */
#define HTTP_MAX_BODY (1u << 20)                                   /* request body -> 413 (read and discarded) */

/* One parsed request.  Header values we use are copied, truncated to their buffers (`*_over` set). */
typedef struct http_req {
    int method; /* enum http_method */
    int major, minor;
    int keep_alive; /* http_should_keep_alive() */
    int upgrade;
    char *url; /* the request target, NUL-terminated; owned by the http_in */
    size_t url_len;
    char ims[48];  /* If-Modified-Since */
    char inm[256]; /* If-None-Match */
    char range[128];
    char if_range[96];
    char referer[256];
    char ua[256];       /* User-Agent */
    unsigned char over; /* bit per header that did not fit: then it is ignored */
    uint64_t body_len;
} http_req;

enum { HTTP_OVER_IMS = 1, HTTP_OVER_INM = 2, HTTP_OVER_RANGE = 4, HTTP_OVER_IF_RANGE = 8 };

typedef struct http_in http_in;
/* A whole request arrived (its body discarded).  Return 1 to pause parsing after it, else 0. */
typedef int (*http_on_request)(http_in *in, http_req *req);

struct http_in {
    http_parser parser;
    http_req req;
    size_t url_cap;
    char field[24];
    size_t field_len;
    int cur;           /* the header whose value is being collected */
    size_t cur_len;    /* its length so far */
    size_t head_bytes; /* bytes of header fields and values so far */
    int in_message;    /* a request's first byte arrived, its end not yet */
    int in_headers;    /* ... and its head is not complete */
    int err_status;    /* set by a callback that failed */
    http_on_request on_request;
    void *owner;
};

typedef enum { HTTP_IN_MORE, HTTP_IN_PAUSED, HTTP_IN_DONE, HTTP_IN_ERROR } http_in_state;

void http_in_init(http_in *in, void *owner, http_on_request cb);
void http_in_free(http_in *in);
/*
 * Parse buf[0..len).  *used: bytes consumed.  HTTP_IN_MORE: all consumed,
 * waiting for more; HTTP_IN_PAUSED: the callback paused (resume with
 * http_in_resume() and call again on the rest); HTTP_IN_DONE: no further
 * request may follow on this connection (Upgrade); HTTP_IN_ERROR: *status is
 * 400, 413, 414, 431 or 500 and *why a static description.
 */
http_in_state http_in_execute(http_in *in, const char *buf, size_t len, size_t *used, int *status, const char **why);
void http_in_resume(http_in *in);

/* The parts of a request target. */
typedef struct http_target {
    char *path;           /* %-decoded, starts with '/'; to free */
    const char *raw_path; /* inside req->url, not decoded */
    size_t raw_path_len;
    const char *query;
    size_t query_len;
} http_target;

/* 0, or 400 with nothing to free (bad target, bad escape, NUL byte, no leading '/'). */
int http_target_parse(const http_req *req, http_target *t);

/* 1 when some '/'-separated component of `path` is "..", else 0. */
int http_has_dotdot(const char *path);

/* What a file looks like to HTTP caching. */
typedef struct http_file {
    uint64_t size;
    time_t mtime;
    long mtime_nsec;
    uint64_t ino;
} http_file;

/* A strong entity tag "\"<ino>-<size>-<mtime ns>\"" into out[64]. */
void http_etag(const http_file *f, char out[64]);
/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out[40]. */
void http_date(time_t t, char out[40]);
/* Parse an IMF-fixdate (the other two obsolete forms too): 0, or -1. */
int http_parse_date(const char *s, time_t *out);

/*
 * The status of a GET or HEAD of file `f` given the request's conditional and
 * range headers: 304 (not modified), 416 (bad range), 206 (*start, *len: the
 * one range), or 200 (*start 0, *len the size).  Multiple ranges are ignored
 * (200), as RFC 9110 allows.
 */
int http_file_status(const http_req *req, const http_file *f, const char *etag, const char *lastmod, uint64_t *start,
                     uint64_t *len);

/* The head of a response. */
typedef struct http_head {
    int status;
    const char *ctype; /* NULL: no Content-Type */
    uint64_t length;   /* Content-Length */
    int close;
    const char *date;
    const char *extra; /* more header lines, each ending in "\r\n", or NULL */
} http_head;

/* Write the status line and headers; returns the length, or 0 when `cap` is too small. */
size_t http_head_build(char *buf, size_t cap, const http_head *h);

/*
 * An access-log line in the combined format into buf[cap] (always
 * terminated, ends in '\n'): host, time, request line, status, body bytes,
 * Referer, User-Agent; quotes, backslashes and control bytes escaped as \xHH.
 * Returns its length.
 */
size_t http_log_line(char *buf, size_t cap, const char *host, time_t when, const char *request, int status,
                     uint64_t bytes, const char *referer, const char *ua);

/* "METHOD TARGET HTTP/x.y" of `req` into a new string (to free). */
char *http_request_line(const http_req *req);

#endif
