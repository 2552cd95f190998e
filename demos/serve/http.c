/*
 * http.c - cfserve's request parsing and response heads (see http.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* timegm */
#include "http.h"

#include "../common/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { H_NONE, H_IMS, H_INM, H_RANGE, H_IF_RANGE, H_REFERER, H_UA };

static const struct {
    const char *name;
    int id;
} wanted[] = {
    {"if-modified-since", H_IMS}, {"if-none-match", H_INM}, {"range", H_RANGE},
    {"if-range", H_IF_RANGE},     {"referer", H_REFERER},   {"user-agent", H_UA},
};

static char *cur_buf(http_req *r, int id, size_t *cap, unsigned *over)
{
    switch (id) {
    case H_IMS:
        *cap = sizeof(r->ims);
        *over = HTTP_OVER_IMS;
        return r->ims;
    case H_INM:
        *cap = sizeof(r->inm);
        *over = HTTP_OVER_INM;
        return r->inm;
    case H_RANGE:
        *cap = sizeof(r->range);
        *over = HTTP_OVER_RANGE;
        return r->range;
    case H_IF_RANGE:
        *cap = sizeof(r->if_range);
        *over = HTTP_OVER_IF_RANGE;
        return r->if_range;
    case H_REFERER:
        *cap = sizeof(r->referer);
        *over = 0;
        return r->referer;
    case H_UA:
        *cap = sizeof(r->ua);
        *over = 0;
        return r->ua;
    default:
        return NULL;
    }
}

static int on_message_begin(http_parser *p)
{
    http_in *in = p->data;
    char *url = in->req.url;
    memset(&in->req, 0, sizeof(in->req));
    in->req.url = url;
    if (url)
        url[0] = '\0';
    in->in_message = in->in_headers = 1;
    in->field_len = 0;
    in->cur = H_NONE;
    in->head_bytes = 0;
    return 0;
}

/* Count header bytes against HTTP_MAX_HEAD: 0, or -1 with 431. */
static int head_count(http_in *in, size_t len)
{
    in->head_bytes += len;
    if (in->head_bytes > HTTP_MAX_HEAD) {
        in->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_in *in = p->data;
    http_req *r = &in->req;
    if (r->url_len + len > HTTP_MAX_URL) {
        in->err_status = 414;
        return -1;
    }
    if (r->url_len + len + 1 > in->url_cap) {
        size_t cap = in->url_cap ? in->url_cap : 256;
        while (cap < r->url_len + len + 1)
            cap *= 2;
        char *u = realloc(r->url, cap);
        if (!u) {
            in->err_status = 500;
            return -1;
        }
        r->url = u;
        in->url_cap = cap;
    }
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    r->url[r->url_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_in *in = p->data;
    if (head_count(in, len + 4) != 0) /* ": " and CRLF count too */
        return -1;
    if (in->field_len == SIZE_MAX) { /* a value ended: a new field begins */
        in->cur = H_NONE;
        in->field_len = 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (in->field_len < sizeof(in->field) - 1)
            in->field[in->field_len] = (char)tolower((unsigned char)at[i]);
        in->field_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_in *in = p->data;
    if (head_count(in, len) != 0)
        return -1;
    if (in->field_len != SIZE_MAX) { /* the field name is complete: which is it? */
        int id = H_NONE;
        if (in->field_len < sizeof(in->field)) {
            in->field[in->field_len] = '\0';
            for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
                if (strcmp(in->field, wanted[i].name) == 0)
                    id = wanted[i].id;
            }
        }
        in->field_len = SIZE_MAX; /* marks "in a value" */
        in->cur = id;
        in->cur_len = 0;
        size_t cap;
        unsigned over;
        char *b = cur_buf(&in->req, id, &cap, &over);
        if (b && b[0]) /* a repeated header: the first one counts, except that a repeat is ignored */
            in->cur = H_NONE;
    }
    size_t cap;
    unsigned over;
    char *b = cur_buf(&in->req, in->cur, &cap, &over);
    if (!b)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (in->cur_len + 1 < cap) {
            b[in->cur_len++] = at[i];
            b[in->cur_len] = '\0';
        } else {
            in->req.over |= (unsigned char)over;
        }
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_in *in = p->data;
    in->in_headers = 0;
    in->cur = H_NONE;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_MAX_BODY) {
        in->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_in *in = p->data;
    (void)at;
    in->req.body_len += len; /* read and discarded */
    if (in->req.body_len > HTTP_MAX_BODY) {
        in->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_in *in = p->data;
    http_req *r = &in->req;
    in->in_message = 0;
    r->method = p->method;
    r->major = p->http_major;
    r->minor = p->http_minor;
    r->keep_alive = http_should_keep_alive(p);
    r->upgrade = p->upgrade;
    if (!r->url) { /* cannot happen: http-parser requires a target; be safe */
        in->err_status = 400;
        return -1;
    }
    if (in->on_request(in, r))
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_in_init(http_in *in, void *owner, http_on_request cb)
{
    memset(in, 0, sizeof(*in));
    http_parser_init(&in->parser, HTTP_REQUEST);
    in->parser.data = in;
    in->on_request = cb;
    in->owner = owner;
}

void http_in_free(http_in *in)
{
    free(in->req.url);
    in->req.url = NULL;
}

void http_in_resume(http_in *in)
{
    http_parser_pause(&in->parser, 0);
}

http_in_state http_in_execute(http_in *in, const char *buf, size_t len, size_t *used, int *status, const char **why)
{
    size_t off = 0;
    *used = 0;
    while (off < len) {
        size_t n = http_parser_execute(&in->parser, &settings, buf + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
        off += n;
        *used = off;
        if (e == HPE_PAUSED)
            return HTTP_IN_PAUSED;
        if (e != HPE_OK) {
            *status = in->err_status ? in->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            *why = *status == 400   ? http_errno_description(e)
                   : *status == 414 ? "request target too long"
                   : *status == 413 ? "request body too large"
                   : *status == 431 ? "request head too large"
                                    : "out of memory";
            in->in_message = in->in_headers = 0;
            return HTTP_IN_ERROR;
        }
        if (in->parser.upgrade) /* the Upgrade request was answered normally; nothing may follow */
            return HTTP_IN_DONE;
        if (n == 0)
            break;
    }
    return HTTP_IN_MORE;
}

int http_target_parse(const http_req *req, http_target *t)
{
    struct http_parser_url u;
    memset(t, 0, sizeof(*t));
    http_parser_url_init(&u);
    if (http_parser_parse_url(req->url, req->url_len, req->method == HTTP_CONNECT, &u) != 0)
        return 400;
    t->raw_path = "/";
    t->raw_path_len = 1;
    if (u.field_set & (1 << UF_PATH)) {
        t->raw_path = req->url + u.field_data[UF_PATH].off;
        t->raw_path_len = u.field_data[UF_PATH].len;
    }
    t->query = "";
    if (u.field_set & (1 << UF_QUERY)) {
        t->query = req->url + u.field_data[UF_QUERY].off;
        t->query_len = u.field_data[UF_QUERY].len;
    }
    t->path = demo_url_decode(t->raw_path, t->raw_path_len, 0);
    if (!t->path || t->path[0] != '/') {
        free(t->path);
        t->path = NULL;
        return 400;
    }
    return 0;
}

int http_has_dotdot(const char *path)
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

void http_etag(const http_file *f, char out[64])
{
    uint64_t ns = (uint64_t)f->mtime * 1000000000u + (uint64_t)f->mtime_nsec;
    snprintf(out, 64, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", f->ino, f->size, ns);
}

void http_date(time_t t, char out[40])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        out[0] = '\0';
}

int http_parse_date(const char *s, time_t *out)
{
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %d %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(s, forms[i], &tm);
        if (end && *end == '\0') {
            time_t t = timegm(&tm);
            if (t == (time_t)-1)
                return -1;
            *out = t;
            return 0;
        }
    }
    return -1;
}

/* 1 when the If-None-Match list `list` holds `etag` (weak comparison) or "*". */
static int etag_listed(const char *list, const char *etag)
{
    const char *p = list;
    const char *bare = etag; /* the tag as given: "\"...\"" */
    size_t blen = strlen(bare);
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *start = p;
        if (*p == '"') {
            p++;
            while (*p && *p != '"')
                p++;
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',')
                p++;
        }
        if ((size_t)(p - start) == blen && memcmp(start, bare, blen) == 0)
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* Parse "bytes=a-b" (one range) against `size`: 1 ok (*start, *len), 0 ignore (not bytes, several ranges,
   malformed), -1 unsatisfiable. */
static int parse_range(const char *s, uint64_t size, uint64_t *start, uint64_t *len)
{
    if (strncasecmp(s, "bytes=", 6) != 0)
        return 0;
    s += 6;
    while (*s == ' ')
        s++;
    if (strchr(s, ','))
        return 0;
    const char *dash = strchr(s, '-');
    if (!dash)
        return 0;
    char a[24], b[24];
    size_t alen = (size_t)(dash - s), blen = strlen(dash + 1);
    while (alen > 0 && s[alen - 1] == ' ')
        alen--;
    while (blen > 0 && dash[blen] == ' ')
        blen--;
    if (alen >= sizeof(a) || blen >= sizeof(b))
        return 0;
    memcpy(a, s, alen);
    a[alen] = '\0';
    memcpy(b, dash + 1, blen);
    b[blen] = '\0';
    long long x = 0, y = 0;
    if (alen == 0) { /* suffix: the last y bytes */
        if (demo_parse_uint(b, 0, INT64_MAX, &y) != 0)
            return 0;
        if (y == 0 || size == 0)
            return -1;
        uint64_t n = (uint64_t)y < size ? (uint64_t)y : size;
        *start = size - n;
        *len = n;
        return 1;
    }
    if (demo_parse_uint(a, 0, INT64_MAX, &x) != 0)
        return 0;
    if (blen > 0 && (demo_parse_uint(b, 0, INT64_MAX, &y) != 0 || y < x))
        return 0;
    if ((uint64_t)x >= size)
        return -1;
    uint64_t last = blen > 0 && (uint64_t)y < size - 1 ? (uint64_t)y : size - 1;
    *start = (uint64_t)x;
    *len = last - (uint64_t)x + 1;
    return 1;
}

int http_file_status(const http_req *req, const http_file *f, const char *etag, const char *lastmod, uint64_t *start,
                     uint64_t *len)
{
    *start = 0;
    *len = f->size;
    if (req->inm[0] && !(req->over & HTTP_OVER_INM)) {
        if (etag_listed(req->inm, etag))
            return 304;
    } else if (req->ims[0] && !(req->over & HTTP_OVER_IMS)) {
        time_t t;
        if (http_parse_date(req->ims, &t) == 0 && f->mtime <= t)
            return 304;
    }
    if (!req->range[0] || (req->over & (HTTP_OVER_RANGE | HTTP_OVER_IF_RANGE)) || req->method != HTTP_GET)
        return 200;
    if (req->if_range[0] && strcmp(req->if_range, etag) != 0 && strcmp(req->if_range, lastmod) != 0)
        return 200; /* the representation changed: the whole of it */
    int rc = parse_range(req->range, f->size, start, len);
    if (rc < 0) {
        *start = 0;
        *len = 0;
        return 416;
    }
    if (rc == 0) {
        *start = 0;
        *len = f->size;
        return 200;
    }
    return 206;
}

size_t http_head_build(char *buf, size_t cap, const http_head *h)
{
    char clen[48] = "";
    if (h->status != 304 && h->status != 204 && h->status >= 200) /* these have no Content-Length */
        snprintf(clen, sizeof(clen), "Content-Length: %" PRIu64 "\r\n", h->length);
    int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nServer: cfserve\r\nDate: %s\r\n%s%s%s%sConnection: %s\r\n%s\r\n",
                     h->status, http_status_str((enum http_status)h->status), h->date, h->ctype ? "Content-Type: " : "",
                     h->ctype ? h->ctype : "", h->ctype ? "\r\n" : "", clen, h->close ? "close" : "keep-alive",
                     h->extra ? h->extra : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Append s escaped (or "-" when empty) to buf at *n. */
static void log_str(char *buf, size_t cap, size_t *n, const char *s)
{
    if (!s || !*s)
        s = "-";
    for (const unsigned char *p = (const unsigned char *)s; *p && *n + 5 < cap; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            *n += (size_t)snprintf(buf + *n, cap - *n, "\\x%02X", *p);
        else
            buf[(*n)++] = (char)*p;
    }
}

size_t http_log_line(char *buf, size_t cap, const char *host, time_t when, const char *request, int status,
                     uint64_t bytes, const char *referer, const char *ua)
{
    struct tm tm;
    char t[40];
    size_t n = 0;
    if (cap < 64) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    cap -= 2; /* room for "\n\0" */
    gmtime_r(&when, &tm);
    strftime(t, sizeof(t), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    n += (size_t)snprintf(buf, cap, "%s - - [%s] \"", host, t);
    if (n >= cap) /* truncated: snprintf ended it at cap - 1 */
        n = cap - 1;
    log_str(buf, cap, &n, request);
    if (n < cap) {
        int k = bytes ? snprintf(buf + n, cap - n, "\" %d %" PRIu64 " \"", status, bytes)
                      : snprintf(buf + n, cap - n, "\" %d - \"", status);
        n += k > 0 ? (size_t)k : 0;
        if (n >= cap)
            n = cap - 1;
    }
    log_str(buf, cap, &n, referer);
    if (n + 3 < cap) {
        memcpy(buf + n, "\" \"", 3);
        n += 3;
    }
    log_str(buf, cap, &n, ua);
    if (n < cap)
        buf[n++] = '"';
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

char *http_request_line(const http_req *req)
{
    const char *m = http_method_str((enum http_method)req->method);
    size_t n = strlen(m) + req->url_len + 16;
    char *s = demo_xmalloc(n);
    snprintf(s, n, "%s %s HTTP/%d.%d", m, req->url ? req->url : "", req->major, req->minor);
    return s;
}
