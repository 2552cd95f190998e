/*
 * cfcrawl.c - a polite, bounded web crawler on cfutures, libcurl and libxml2.
 *
 *   cfcrawl [options] URL...          (cfcrawl --help lists them)
 *
 * DESIGN
 *
 * Threads.  The libev loop thread owns the crawl: the frontier, the set of
 * URLs already queued, every transfer, and the output.  Transfers run on that
 * loop through libcurl's multi interface: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> one ev_io per socket) and when to call it back
 * (CURLMOPT_TIMERFUNCTION -> one ev_timer), and the watchers hand the events
 * back with curl_multi_socket_action().  A transfer in flight is an easy handle
 * and a buffer, not a thread: --concurrency 1000 needs 1,000 sockets, not
 * 1,000 threads.  Work that takes CPU - decoding and parsing a page with
 * libxml2's HTML parser in SAX mode, resolving its links (plain relative
 * ones by RFC 3986 directly, the rest with curl's URL API) and hashing them
 * for the set of seen URLs, saving it under --output, formatting its result
 * line - runs in a cfutures thread pool of --threads workers (each with its
 * own CURLU handle): the loop thread, which runs every transfer, is the
 * crawl's bottleneck.  The pages that finish in one loop iteration go to
 * the pool together, as at most --threads tasks, so a busy loop wakes each
 * worker once per iteration, not once per page; a task's done callback
 * brings the links and the line back to the loop.  --concurrency bounds the
 * transfers in flight, and no transfer starts while as many pages wait for a
 * parser (the parsers push back on the network), so the bodies held in
 * memory are at most 2 x --concurrency x --max-size.
 *
 * Politeness.  Before any page, robots.txt is fetched once per site (host and
 * port of a start URL; the crawl never leaves them) and its group for our
 * product token (the --user-agent up to the first '/') - else the '*' group -
 * is obeyed: the longest matching Allow/Disallow pattern wins (Allow on a tie;
 * '*' and a final '$' as in RFC 9309), a 4xx means no rules, a 5xx or a
 * network failure means "disallow all".  Crawl-delay (capped at 60 s) and
 * --delay space the starts of transfers to a site; CURLMOPT_MAX_HOST_CONNECTIONS
 * (--host-connections) caps the connections to one host.  --ignore-robots
 * skips robots.txt.
 *
 * Bounds.  The frontier (URLs queued, not yet fetched) never holds more than
 * --max-pages minus the fetches already started: a link that finds no room is
 * dropped and counted (a link of a shallower level takes the room of one of the
 * next level).  Links beyond --max-links on one page are counted and ignored.
 * The body (after decompression, so a gzip bomb stops at the same size) is cut
 * at --max-size, and the transfer fails; a redirect chain longer than
 * --max-redirs fails; every transfer has --timeout, and a server that sends
 * nothing for --timeout (or 30 s) is given up.  Memory stays flat whatever the
 * fan-out of the pages.
 *
 * The crawl goes level by level: the links of a page of depth d+1 are
 * followed only once every page of depth d is done (until then the page waits,
 * its body freed, among the pages that hold back new transfers), so a URL is
 * always first seen at its smallest depth and --depth is exact.  The transfers
 * of depth d+1 start as soon as every URL of depth d has started, so the last,
 * slowest pages of a level do not leave the connections idle.  Redirects are
 * not followed inside curl: a 3xx is reported and its target queued at the
 * same depth, so every URL is fetched at most once.
 *
 * Content.  Non-HTML responses are results (status and type), not parsed; their
 * body is not downloaded unless --output saves it.  A page is decoded with the
 * charset of its Content-Type header, else of its byte order mark, else of its
 * <meta> (libxml2).  Output escapes control characters and invalid UTF-8 (text),
 * and stays valid JSON for any bytes (--json).
 *
 * Per-URL failures never stop the crawl.  SIGINT or SIGTERM stops it: the
 * transfers are removed, queued parses cancelled, and the summary is printed.
 *
 * Exit status: 0 when the crawl ran to its end and a start URL was fetched, 1
 * on a setup error, 2 on a usage error, 3 when every start URL failed, 130 when
 * interrupted.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* vasprintf, strndup */
#include "common/util.h"

#include <cfutures.h>
#include <curl/curl.h>
#include <ev.h>
#include <libxml/HTMLparser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlversion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFCRAWL_VERSION "0.2"
#define MAX_URL_LEN 4096             /* longer links are ignored */
#define MAX_TITLE 4096               /* bytes of title kept */
#define ROBOTS_MAX_SIZE (512u << 10) /* RFC 9309: parse at least 500 KiB */
#define ROBOTS_MAX_RULES 2000
#define MAX_CRAWL_DELAY_S 60.0
#define STALL_S 30L /* a transfer that receives nothing for this long fails */

/* ------------------------------------------------------------ configuration */

typedef struct robots_rule {
    char *pattern;
    int allow;
} robots_rule;

typedef struct site {
    char *host; /* lower case */
    long port;
    char *origin; /* scheme://host:port */
    /* robots.txt, once fetched (loop thread) */
    robots_rule *rules;
    size_t nrules;
    int disallow_all;
    char *robots_error; /* why everything is disallowed; NULL otherwise */
    uint64_t delay_ns;  /* between starts of transfers; max(--delay, Crawl-delay) */
    uint64_t next_start_ns;
} site;

typedef struct crawl_conf {
    int max_depth;   /* < 0: unlimited */
    long max_pages;  /* URLs fetched at most */
    int concurrency; /* transfers in flight; also pages waiting for a parser */
    int threads;     /* parser threads */
    int host_conns;  /* connections per host */
    long timeout_ms; /* per transfer */
    long max_size;   /* body bytes, after decompression */
    long max_links;  /* links taken from one page */
    int max_redirs;  /* redirect hops from a URL fetched by link */
    double delay_s;  /* between transfers to one site */
    int ignore_robots;
    int json;
    const char *user_agent;
    char *robots_token; /* product token of the user agent, for robots.txt */
    int no_proxy_env;   /* no proxy variable is set: curl need not look them up per transfer */
    const char *output; /* directory to save pages in, or NULL */
    int outdir;         /* its descriptor */
    site *sites;        /* the start URLs' sites; read-only once the pool runs (but robots fields) */
    size_t nsites;
} crawl_conf;

/* ------------------------------------------------------------ small helpers */

static void oom(void)
{
    fprintf(stderr, "cfcrawl: out of memory\n");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static char *fmt(const char *f, ...) CF_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

/* Append; returns 0 or -1 when the buffer would pass `limit` or memory runs out. */
static int buf_add(buf *b, const void *p, size_t n, size_t limit)
{
    if (b->len + n > limit)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Make room for `n` bytes (and the NUL) at once; -1 when memory runs out. */
static int buf_reserve(buf *b, size_t n)
{
    if (b->cap >= n + 1)
        return 0;
    char *d = realloc(b->data, n + 1);
    if (!d)
        return -1;
    b->data = d;
    b->cap = n + 1;
    return 0;
}

/*
 * Length of the valid UTF-8 sequence at p (at most n bytes), its code point in
 * *cp; 0 when the bytes there are not valid UTF-8 (overlong, surrogate, cut).
 */
static size_t utf8_next(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Code points a terminal would act on: C0, DEL, C1, and the bidi controls. */
static int is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f;
}

/* Append to an output line; out of memory ends the crawl, as anywhere else. */
static void put(buf *b, const void *p, size_t n)
{
    if (b->len + n < b->cap) { /* the common case: room already */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    } else if (buf_add(b, p, n, SIZE_MAX) != 0) {
        oom();
    }
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_fmt(buf *b, const char *f, ...) CF_PRINTF(2, 3);
static void put_fmt(buf *b, const char *f, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof tmp, f, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* An unsigned number in decimal; with `frac`, its last three digits after a '.' (microseconds as ms). */
static void put_u64(buf *b, uint64_t v, int frac)
{
    char tmp[24], *e = tmp + sizeof tmp, *d = e;
    int digits = 0;
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
        if (frac && ++digits == 3)
            *--d = '.';
    } while (v || (frac && digits < 4));
    put(b, d, (size_t)(e - d));
}

/* The run of printable ASCII at the start of p[0..n) that needs no escape (no backslash, no `quote`), appended;
 * returns its length. */
static size_t put_plain(buf *out, const unsigned char *p, size_t n, int quote)
{
    size_t run = 0;
    while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '\\' && p[run] != quote)
        run++;
    if (run)
        put(out, p, run);
    return run;
}

/* Append `s` for a terminal: controls as \xNN or \uNNNN, invalid UTF-8 bytes as \xNN. */
static void text_str(buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t run = put_plain(out, p, n, 0);
        if (run) {
            p += run;
            n -= run;
            continue;
        }
        unsigned cp;
        size_t len = utf8_next(p, n, &cp);
        if (len == 0 || (len == 1 && is_control(cp)))
            put_fmt(out, "\\x%02x", *p), len = 1;
        else if (is_control(cp))
            put_fmt(out, "\\u%04x", cp);
        else if (cp == '\\')
            puts_(out, "\\\\");
        else
            put(out, p, len);
        p += len;
        n -= len;
    }
}

/* Append `s` as a JSON string (or null); invalid UTF-8 becomes U+FFFD, controls are escaped. */
static void json_str(buf *out, const char *s)
{
    if (!s) {
        puts_(out, "null");
        return;
    }
    put(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t run = put_plain(out, p, n, '"');
        if (run) {
            p += run;
            n -= run;
            continue;
        }
        unsigned cp;
        size_t len = utf8_next(p, n, &cp);
        if (len == 0) {
            puts_(out, "\\ufffd");
            len = 1;
        } else if (cp == '"') {
            puts_(out, "\\\"");
        } else if (cp == '\\') {
            puts_(out, "\\\\");
        } else if (cp == '\n') {
            puts_(out, "\\n");
        } else if (cp == '\t') {
            puts_(out, "\\t");
        } else if (is_control(cp)) {
            put_fmt(out, "\\u%04x", cp);
        } else {
            put(out, p, len);
        }
        p += len;
        n -= len;
    }
    put(out, "\"", 1);
}

/* ------------------------------------------------------------ the URL set */

/* Open addressing (linear probing) over owned strings; grows at 50% load.  Loop thread only. */
typedef struct url_slot {
    char *s; /* NULL: empty */
    uint32_t h;
} url_slot;

typedef struct url_set {
    url_slot *slot; /* with each string's hash: a probe compares strings only on equal hashes */
    size_t cap, n;
} url_set;

static uint32_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, folded to 32 bits */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* The slot holding `s` (hash h), or the empty slot where it would go. */
static size_t url_set_find(const url_set *set, const char *s, uint32_t h)
{
    size_t mask = set->cap - 1, j = h & mask;
    while (set->slot[j].s && (set->slot[j].h != h || strcmp(set->slot[j].s, s) != 0))
        j = (j + 1) & mask;
    return j;
}

/* Insert `s` (hash h), which the set then owns; returns 1 if added, 0 if it was already there (s is not taken). */
static int url_set_add(url_set *set, char *s, uint32_t h)
{
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        url_slot *slot = calloc(cap, sizeof *slot);
        if (!slot)
            oom();
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i].s)
                continue;
            size_t j = set->slot[i].h & (cap - 1);
            while (slot[j].s)
                j = (j + 1) & (cap - 1);
            slot[j] = set->slot[i];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t j = url_set_find(set, s, h);
    if (set->slot[j].s)
        return 0;
    set->slot[j] = (url_slot){.s = s, .h = h};
    set->n++;
    return 1;
}

static int url_set_has(const url_set *set, const char *s, uint32_t h)
{
    return set->cap && set->slot[url_set_find(set, s, h)].s != NULL;
}

/* Remove and free `s` if present (backward-shift deletion: no tombstones). */
static void url_set_remove(url_set *set, const char *s)
{
    if (!set->cap)
        return;
    size_t mask = set->cap - 1, i = url_set_find(set, s, hash_str(s));
    if (!set->slot[i].s)
        return;
    free(set->slot[i].s);
    set->slot[i] = (url_slot){0};
    set->n--;
    for (size_t j = (i + 1) & mask; set->slot[j].s; j = (j + 1) & mask) {
        size_t home = set->slot[j].h & mask;
        /* Move slot j into the hole at i when its home is not in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            set->slot[i] = set->slot[j];
            set->slot[j] = (url_slot){0};
            i = j;
        }
    }
}

static void url_set_free(url_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i].s);
    free(set->slot);
}

/* ------------------------------------------------------------ URLs */

/*
 * Resolve `ref` against `base` (NULL: `ref` must be absolute), drop the
 * fragment, and return the normalised URL (curl_free() it) when it is http(s)
 * and - with `conf` - on one of the crawl's sites (its index in *site_out);
 * NULL otherwise.  Any thread (the sites' host and port are read-only).
 */
/*
 * Is the URL in `u` http(s) and - with `conf` - on one of the crawl's sites
 * (its index in *site_out)?  0 if so, -1 if not.
 */
static int url_on_site(const crawl_conf *conf, CURLU *u, size_t *site_out)
{
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        goto done;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto done;
    if (conf) {
        long p = strtol(port, NULL, 10);
        size_t i;
        for (i = 0; i < conf->nsites; i++) {
            if (conf->sites[i].port == p && strcasecmp(conf->sites[i].host, host) == 0)
                break;
        }
        if (i == conf->nsites)
            goto done;
        if (site_out)
            *site_out = i;
    }
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    return rc;
}

/* The URL in `u` without its fragment, if not longer than MAX_URL_LEN (curl_free() it); else NULL. */
static char *url_text(CURLU *u)
{
    char *out = NULL;
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
        out = NULL;
    if (out && strlen(out) > MAX_URL_LEN) {
        curl_free(out);
        out = NULL;
    }
    return out;
}

static char *resolve_url(const crawl_conf *conf, CURLU *u, const char *base, const char *ref, size_t *site_out)
{
    if (base && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, ref, base ? 0 : CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        return NULL;
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (url_on_site(conf, u, site_out) != 0)
        return NULL;
    return url_text(u);
}

/*
 * The links of one page resolve against one base, parsed once; each link
 * starts from a copy of it.  A relative reference (no scheme, not
 * "//host...") keeps the base's scheme, host and port, so it is on the
 * base's site, which is looked up once too.
 */
typedef struct link_base {
    const char *text; /* the base URL */
    CURLU *u;         /* ... parsed (NULL until needed, or if it cannot be) */
    int on_site;      /* ... http(s) on one of the crawl's sites */
    size_t site;
} link_base;

static CURLU *parse_url(const char *text)
{
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, text, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        u = NULL;
    }
    return u;
}

/*
 * `known`: the base is a URL the crawl fetched, so on that site already; it
 * is parsed only if a link needs the general path.
 */
static void link_base_init(link_base *lb, const crawl_conf *conf, const char *base, const size_t *known)
{
    lb->text = base;
    if (known) {
        lb->u = NULL;
        lb->on_site = 1;
        lb->site = *known;
        return;
    }
    lb->u = parse_url(base);
    lb->on_site = lb->u && url_on_site(conf, lb->u, &lb->site) == 0;
}

static int is_relative_ref(const char *ref)
{
    if (ref[0] == '/' && ref[1] == '/')
        return 0;
    return ref[strcspn(ref, ":/?#")] != ':'; /* a ':' before any of "/?#" ends a scheme */
}

/* Characters a reference may hold to be resolved by fast_resolve(): none that curl's URL parser would
 * encode, decode or reject ('%', spaces, non-ASCII and '\\' take the general path). */
static int plain_char(unsigned char ch, int query)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~' || (!query && ch == '/') || (query && (ch == '=' || ch == '&'));
}

/*
 * RFC 3986 resolution (5.2.2 merge, 5.2.4 remove_dot_segments) of a relative
 * reference of plain characters against `base` (a URL as curl_url_get()
 * normalises it), without building a CURLU: the common link of a page.  The
 * references it takes are those for which the result equals libcurl's (it
 * was compared with curl_url_set/get on hundreds of thousands of generated
 * references); it is malloc'd.  Returns NULL with *general set when `ref`
 * needs the general path.
 */
static char *fast_resolve(const char *base, const char *ref, int *general)
{
    *general = 1;
    size_t rlen = strcspn(ref, "#"); /* the fragment is dropped */
    size_t plen = strcspn(ref, "?");
    if (plen > rlen)
        plen = rlen;
    if (plen == 0 || (plen < rlen && plen + 1 == rlen))
        return NULL; /* "?q" replaces the base's query only; an empty query is left to curl */
    for (size_t i = 0; i < rlen; i++)
        if (i != plen && !plain_char((unsigned char)ref[i], i > plen))
            return NULL;
    /* curl 7.88 strays from RFC 3986 on empty segments after a leading "./" or "../" and on a
     * dot segment in a path followed by a query: such references take the general path. */
    for (size_t i = 0; i + 1 < plen; i++)
        if (ref[i] == '/' && ref[i + 1] == '/')
            return NULL;
    for (size_t i = 0; plen < rlen && i < plen; i++) {
        size_t seg = strcspn(ref + i, "/?");
        if (seg > plen - i)
            seg = plen - i;
        if ((seg == 1 && ref[i] == '.') || (seg == 2 && ref[i] == '.' && ref[i + 1] == '.'))
            return NULL;
        i += seg;
    }
    const char *scheme_end = strstr(base, "://");
    const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    if (!path)
        return NULL;
    size_t origin_len = (size_t)(path - base);
    size_t bpath_len = strcspn(path, "?");
    /* The merged path: the reference itself, or the base's directory and the reference. */
    size_t dir_len = 0;
    if (ref[0] != '/')
        for (size_t i = 0; i < bpath_len; i++)
            if (path[i] == '/')
                dir_len = i + 1;
    size_t in_len = dir_len + plen;
    if (origin_len + in_len + (rlen - plen) > MAX_URL_LEN + 2)
        return NULL; /* too long either way: let the general path say so */
    *general = 0;
    char *in = xmalloc(in_len + 1);
    memcpy(in, path, dir_len);
    memcpy(in + dir_len, ref, plen);
    in[in_len] = '\0';
    /* remove_dot_segments: `in` starts with '/', so only its rules B, C, D and E apply. */
    char *out = xmalloc(origin_len + in_len + (rlen - plen) + 2);
    memcpy(out, base, origin_len);
    char *o = out + origin_len, *o0 = o;
    const char *p = in, *end = in + in_len;
    while (p < end) {
        size_t left = (size_t)(end - p);
        if (left >= 3 && memcmp(p, "/./", 3) == 0) {
            p += 2;
        } else if (left == 2 && memcmp(p, "/.", 2) == 0) {
            *o++ = '/';
            break;
        } else if ((left >= 4 && memcmp(p, "/../", 4) == 0) || (left == 3 && memcmp(p, "/..", 3) == 0)) {
            while (o > o0 && *--o != '/')
                ;
            if (left == 3) {
                *o++ = '/';
                break;
            }
            p += 3;
        } else if ((left == 1 && p[0] == '.') || (left == 2 && memcmp(p, "..", 2) == 0)) {
            break;
        } else {
            const char *seg = p + 1;
            while (seg < end && *seg != '/')
                seg++;
            memcpy(o, p, (size_t)(seg - p));
            o += seg - p;
            p = seg;
        }
    }
    if (o == o0)
        *o++ = '/';
    if (plen < rlen) {
        memcpy(o, ref + plen, rlen - plen);
        o += rlen - plen;
    }
    *o = '\0';
    free(in);
    if ((size_t)(o - out) > MAX_URL_LEN) {
        free(out);
        return NULL;
    }
    return out;
}

/* A string returned by curl, as a malloc'd copy. */
static char *from_curl(char *s)
{
    if (!s)
        return NULL;
    char *m = xstrdup(s);
    curl_free(s);
    return m;
}

/* `ref` (NULL: the base itself) resolved against lb, as resolve_url() would; malloc'd. */
static char *resolve_link(const crawl_conf *conf, CURLU *scratch, link_base *lb, const char *ref,
                          size_t *site_out)
{
    if (ref && !is_relative_ref(ref))
        return from_curl(resolve_url(conf, scratch, lb->text, ref, site_out));
    if (!lb->on_site)
        return NULL;
    if (ref) {
        int general;
        char *out = fast_resolve(lb->text, ref, &general);
        if (!general) {
            if (out)
                *site_out = lb->site;
            return out;
        }
    }
    if (!lb->u && !(lb->u = parse_url(lb->text)))
        return NULL;
    CURLU *u = curl_url_dup(lb->u);
    char *out = NULL;
    if (u && (!ref || curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK)) {
        out = from_curl(url_text(u));
        *site_out = lb->site;
    }
    curl_url_cleanup(u);
    return out;
}

/* The path and query of an absolute URL ("/" when it has no path). */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : "/";
}

/* ------------------------------------------------------------ robots.txt (RFC 9309) */

/* Does `pat` ('*' any run, final '$' end) match a prefix of (or, with '$', all of) `s`? */
static int robots_match(const char *pat, const char *s)
{
    size_t plen = strlen(pat);
    int anchored = plen > 0 && pat[plen - 1] == '$';
    if (anchored)
        plen--;
    /* Greedy wildcard match with one backtrack point: O(len(pat) * len(s)) at worst. */
    const char *star_p = NULL, *star_s = NULL, *pe = pat + plen;
    const char *p = pat;
    while (1) {
        if (p == pe) {
            if (!anchored || *s == '\0')
                return 1;
        } else if (*p == '*') {
            star_p = ++p;
            star_s = s;
            continue;
        } else if (*s && *p == *s) {
            p++, s++;
            continue;
        }
        if (!star_p || !*star_s)
            return 0;
        p = star_p;
        s = ++star_s;
    }
}

/* 1 when `path` (path and query) may be fetched under the site's rules. */
static int robots_allowed(const site *st, const char *path)
{
    if (st->disallow_all)
        return 0;
    if (strcmp(path, "/robots.txt") == 0)
        return 1;
    size_t best = 0;
    int allow = 1, found = 0;
    for (size_t i = 0; i < st->nrules; i++) {
        const robots_rule *r = &st->rules[i];
        size_t len = strlen(r->pattern);
        if (found && (len < best || (len == best && !r->allow)))
            continue;
        if (robots_match(r->pattern, path)) {
            if (!found || len > best || r->allow)
                allow = r->allow;
            best = len;
            found = 1;
        }
    }
    return allow;
}

/* Trim spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/*
 * Parse robots.txt (NUL-terminated `text`) into st's rules and crawl delay for
 * `token` (our product token): the groups naming it, merged; else the '*'
 * groups.  Loop thread.
 */
static void robots_parse(site *st, char *text, const char *token)
{
    robots_rule *mine = NULL, *star = NULL;
    size_t nmine = 0, nstar = 0;
    double delay_mine = -1, delay_star = -1;
    int in_mine = 0, in_star = 0, mine_seen = 0, agents_open = 0;

    for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *key = trim(line), *val = trim(colon + 1);
        if (strcasecmp(key, "user-agent") == 0) {
            if (!agents_open)
                in_mine = in_star = 0; /* a new group starts */
            agents_open = 1;
            size_t tl = strcspn(val, "/ \t");
            if (strcmp(val, "*") == 0)
                in_star = 1;
            else if (tl > 0 && strlen(token) == tl && strncasecmp(val, token, tl) == 0)
                in_mine = mine_seen = 1;
            continue;
        }
        agents_open = 0;
        int allow = strcasecmp(key, "allow") == 0;
        if (allow || strcasecmp(key, "disallow") == 0) {
            if (!*val || strlen(val) > MAX_URL_LEN)
                continue; /* "Disallow:" alone allows everything */
            robots_rule **list = in_mine ? &mine : in_star ? &star : NULL;
            size_t *n = in_mine ? &nmine : &nstar;
            for (int pass = 0; pass < 2 && list; pass++) {
                if (*n < ROBOTS_MAX_RULES) {
                    robots_rule *l = realloc(*list, (*n + 1) * sizeof *l);
                    if (!l)
                        oom();
                    *list = l;
                    l[(*n)++] = (robots_rule){.pattern = xstrdup(val), .allow = allow};
                }
                /* A group naming both us and '*' feeds both lists. */
                if (pass == 0 && in_mine && in_star)
                    list = &star, n = &nstar;
                else
                    list = NULL;
            }
        } else if (strcasecmp(key, "crawl-delay") == 0) {
            char *end;
            double d = strtod(val, &end);
            if (end != val && d >= 0 && isfinite(d)) {
                if (in_mine)
                    delay_mine = d;
                if (in_star)
                    delay_star = d;
            }
        }
    }
    if (mine_seen) {
        st->rules = mine, st->nrules = nmine;
        for (size_t i = 0; i < nstar; i++)
            free(star[i].pattern);
        free(star);
    } else {
        st->rules = star, st->nrules = nstar;
        for (size_t i = 0; i < nmine; i++)
            free(mine[i].pattern);
        free(mine);
        delay_mine = delay_star;
    }
    if (delay_mine > 0) {
        double d = delay_mine < MAX_CRAWL_DELAY_S ? delay_mine : MAX_CRAWL_DELAY_S;
        if ((uint64_t)(d * 1e9) > st->delay_ns)
            st->delay_ns = (uint64_t)(d * 1e9);
    }
}

/* ------------------------------------------------------------ jobs */

enum job_kind { JOB_PAGE, JOB_ROBOTS };

/* A link found on a page (or a redirect's target), with what the loop thread needs to queue it. */
typedef struct page_link {
    char *url;     /* malloc'd; NULL once the frontier took it */
    uint32_t hash; /* hash_str(url), computed by the parse task */
    uint32_t site; /* 16 bytes a link: a page may carry --max-links of them */
} page_link;
enum job_state { JOB_QUEUED, JOB_FETCHING, JOB_BATCHED, JOB_PARSING, JOB_HELD };

typedef struct job {
    struct job *next, *prev; /* frontier level, the in-flight list or the held pages */
    struct crawl *crawl;
    enum job_kind kind;
    enum job_state state;
    char *url; /* a page's is owned by the crawl's set of seen URLs; a robots.txt job's by the job */
    size_t site;
    int depth;
    int hops;     /* redirects that led here */
    int is_start; /* a start URL */
    /* the transfer (loop thread) */
    CURL *easy;
    buf body;
    int not_html;      /* 2xx that is not HTML */
    int skip_body;     /* ... and its body is not wanted */
    int too_large;     /* body passed --max-size */
    int body_seen;     /* on_body ran */
    int discard;       /* the body of an error status: counted, not kept */
    uint64_t received; /* body bytes delivered by curl (decoded) */
    char *content_type;
    long status;
    uint64_t us; /* total time of the transfer */
    /* the parse (worker thread while PARSING, then loop thread) */
    struct job *batch_next; /* the next page of the same task */
    cf_future_t *future;    /* the task's; set in the first page of the task only */
    char *title;
    char *error;
    char *saved;  /* relative path under --output */
    struct page_link *links; /* resolved, on-site, fragment-free */
    size_t nlinks;
    long links_capped; /* links beyond --max-links */
    buf line;          /* the result line, formatted by the parse task (empty until then) */
} job;

static void job_free(job *j)
{
    if (j->kind == JOB_ROBOTS)
        free(j->url);
    free(j->body.data);
    free(j->content_type);
    free(j->title);
    free(j->error);
    free(j->saved);
    for (size_t i = 0; i < j->nlinks; i++)
        free(j->links[i].url);
    free(j->links);
    free(j->line.data);
    free(j);
}

/*
 * Append the result line of j (with its newline): a JSON object with --json,
 * else text for a terminal.  Any thread (the configuration is read-only).
 */
static void format_result(buf *out, const crawl_conf *conf, const job *j)
{
    if (buf_reserve(out, out->len + 512) != 0) /* most lines fit: no doubling from buf_add's 16 KiB */
        oom();
    if (conf->json) {
        puts_(out, "{\"url\":");
        json_str(out, j->url);
        puts_(out, ",\"status\":");
        put_u64(out, (uint64_t)j->status, 0);
        puts_(out, ",\"bytes\":");
        put_u64(out, j->received, 0);
        puts_(out, ",\"ms\":");
        put_u64(out, j->us, 1);
        puts_(out, ",\"depth\":");
        put_u64(out, (uint64_t)j->depth, 0);
        puts_(out, ",\"content_type\":");
        json_str(out, j->content_type);
        puts_(out, ",\"title\":");
        json_str(out, j->title);
        puts_(out, ",\"links\":");
        put_u64(out, j->nlinks, 0);
        if (j->links_capped) {
            puts_(out, ",\"links_capped\":");
            put_u64(out, (uint64_t)j->links_capped, 0);
        }
        if (conf->output) {
            puts_(out, ",\"saved\":");
            json_str(out, j->saved);
        }
        puts_(out, ",\"error\":");
        json_str(out, j->error);
        puts_(out, "}\n");
        return;
    }
    put_fmt(out, "%3ld %8.1f ms %9" PRIu64 " B  d%d  ", j->status, (double)j->us / 1000.0, j->received, j->depth);
    text_str(out, j->url);
    puts_(out, "  ");
    if (j->error) {
        puts_(out, "error: ");
        text_str(out, j->error);
    } else if (j->status >= 300 && j->status < 400) {
        puts_(out, "-> ");
        text_str(out, j->nlinks ? j->links[0].url : "(off-site or no location)");
    } else if (j->not_html) {
        puts_(out, "[");
        text_str(out, j->content_type ? j->content_type : "no content type");
        puts_(out, "]");
    } else {
        text_str(out, j->title ? j->title : "(no title)");
    }
    puts_(out, "\n");
}

/* ------------------------------------------------------------ the page task (worker side) */

typedef struct worker {
    CURLU *url;
    const crawl_conf *conf;
} worker;

static int worker_init(void *pool_data, int index, void **out)
{
    (void)index;
    worker *w = calloc(1, sizeof *w);
    if (!w || !(w->url = curl_url())) {
        free(w);
        return CF_ENOMEM;
    }
    w->conf = pool_data;
    *out = w;
    return 0;
}

static void worker_fini(void *pool_data, int index, void *data)
{
    (void)pool_data, (void)index;
    worker *w = data;
    curl_url_cleanup(w->url);
    free(w);
}

/*
 * What the SAX parser collects from one page: the raw hrefs of <a> and
 * <area> (at most --max-links; the rest counted), the first <base href>, and
 * the text of the first <title> (entities already decoded by the parser).
 * Links are resolved once the whole page is parsed, because <base> applies to
 * links before it too.
 */
typedef struct page_scan {
    char **hrefs;
    size_t n, cap, max;
    long capped;
    char *base;
    buf title;
    int in_title, title_done;
} page_scan;

static const char *attr(const xmlChar **attrs, const char *name)
{
    for (size_t i = 0; attrs && attrs[i]; i += 2)
        if (strcasecmp((const char *)attrs[i], name) == 0)
            return attrs[i + 1] ? (const char *)attrs[i + 1] : "";
    return NULL;
}

static void on_start(void *ctx, const xmlChar *xname, const xmlChar **attrs)
{
    page_scan *ps = ctx;
    const char *name = (const char *)xname, *v;

    if (strcmp(name, "title") == 0) {
        ps->in_title = !ps->title_done;
    } else if ((strcmp(name, "a") == 0 || strcmp(name, "area") == 0) && (v = attr(attrs, "href"))) {
        if (ps->n >= ps->max) {
            ps->capped++;
            return;
        }
        if (strlen(v) > MAX_URL_LEN)
            return;
        if (ps->n == ps->cap) {
            size_t cap = ps->cap ? 2 * ps->cap : 32;
            char **h = realloc(ps->hrefs, cap * sizeof *h);
            if (!h)
                return;
            ps->hrefs = h;
            ps->cap = cap;
        }
        if ((ps->hrefs[ps->n] = strdup(v)))
            ps->n++;
    } else if (strcmp(name, "base") == 0 && !ps->base && (v = attr(attrs, "href"))) {
        ps->base = strndup(v, MAX_URL_LEN);
    }
}

static void on_end(void *ctx, const xmlChar *name)
{
    page_scan *ps = ctx;
    if (strcmp((const char *)name, "title") == 0 && ps->in_title) {
        ps->in_title = 0;
        ps->title_done = 1;
    }
}

static void on_text(void *ctx, const xmlChar *ch, int len)
{
    page_scan *ps = ctx;
    if (ps->in_title && len > 0) {
        size_t room = MAX_TITLE - ps->title.len;
        buf_add(&ps->title, ch, (size_t)len < room ? (size_t)len : room, MAX_TITLE);
    }
}

static void on_parse_error(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg; /* real pages are full of recoverable errors: the parser recovers */
}

static const htmlSAXHandler page_sax = {
    .startElement = on_start,
    .endElement = on_end,
    .characters = on_text,
    .cdataBlock = on_text,
    .warning = on_parse_error,
    .error = on_parse_error,
};

/* Whitespace runs become one space, trimmed; NULL if nothing is left. */
static char *collapse(const buf *b)
{
    if (!b->data)
        return NULL;
    char *out = xmalloc(b->len + 1), *o = out;
    int space = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            space = o > out;
            continue;
        }
        if (space)
            *o++ = ' ';
        space = 0;
        *o++ = c;
    }
    *o = '\0';
    if (o == out) {
        free(out);
        return NULL;
    }
    return out;
}

/* The charset parameter of a Content-Type value, copied; NULL if none. */
static char *header_charset(const char *ct)
{
    const char *p = ct ? strcasestr(ct, "charset=") : NULL;
    if (!p)
        return NULL;
    p += 8;
    if (*p == '"')
        p++;
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:");
    return n > 0 && n < 64 ? strndup(p, n) : NULL;
}

static void add_link(job *j, worker *w, link_base *base, const char *href, size_t *cap)
{
    /* URLs in attributes may carry leading and trailing spaces (HTML strips them). */
    while (*href == ' ' || *href == '\t' || *href == '\n' || *href == '\r' || *href == '\f')
        href++;
    size_t n = strlen(href);
    while (n > 0 && strchr(" \t\n\r\f", href[n - 1]))
        n--;
    char *ref = strndup(href, n);
    if (!ref)
        return;
    /*
     * An empty or fragment-only reference is the document itself (RFC 3986,
     * 5.2.2); libcurl 7.88 resolves those to the directory, so do it here.
     */
    size_t st = 0;
    char *u = resolve_link(w->conf, w->url, base, n && ref[0] != '#' ? ref : NULL, &st);
    free(ref);
    if (!u)
        return;
    if (j->nlinks == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        page_link *l = realloc(j->links, c * sizeof *l);
        if (!l) {
            free(u);
            return;
        }
        j->links = l;
        *cap = c;
    }
    j->links[j->nlinks++] = (page_link){.url = u, .hash = hash_str(u), .site = (uint32_t)st};
}

/* Parse the page in j->body: title and resolved links into j.  Worker thread. */
static void scan_page(job *j, worker *w)
{
    page_scan ps = {.max = (size_t)w->conf->max_links};
    const char *data = j->body.data ? j->body.data : "";
    size_t len = j->body.len;
    char *charset = NULL;
    /* A byte order mark wins over the header (HTML's encoding sniffing); then the header; then <meta>. */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        charset = strdup("UTF-8"), data += 3, len -= 3;
    else if (len >= 2 && memcmp(data, "\xff\xfe", 2) == 0)
        charset = strdup("UTF-16LE"), data += 2, len -= 2;
    else if (len >= 2 && memcmp(data, "\xfe\xff", 2) == 0)
        charset = strdup("UTF-16BE"), data += 2, len -= 2;
    else
        charset = header_charset(j->content_type);

    htmlParserCtxtPtr ctxt =
        htmlCreatePushParserCtxt((htmlSAXHandlerPtr)&page_sax, &ps, NULL, 0, NULL, XML_CHAR_ENCODING_NONE);
    if (!ctxt) {
        free(charset);
        j->error = fmt("HTML parser failed");
        return;
    }
    htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (charset) {
        xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(charset);
        if (h)
            xmlSwitchToEncoding(ctxt, h); /* an unknown name: libxml2 sniffs as usual */
    }
    free(charset);
    /* Chunks of at most 1 MiB (the parser takes an int length). */
    do {
        size_t n = len < (1u << 20) ? len : (1u << 20);
        htmlParseChunk(ctxt, data, (int)n, n == len);
        data += n;
        len -= n;
    } while (len > 0);
    htmlFreeParserCtxt(ctxt);

    j->title = collapse(&ps.title);
    j->links_capped = ps.capped;
    char *abs_base = ps.base ? resolve_url(NULL, w->url, j->url, ps.base, NULL) : NULL;
    size_t cap = 0;
    link_base lb;
    if (ps.n)
        link_base_init(&lb, w->conf, abs_base ? abs_base : j->url, abs_base ? NULL : &j->site);
    for (size_t i = 0; i < ps.n; i++) {
        add_link(j, w, &lb, ps.hrefs[i], &cap);
        free(ps.hrefs[i]);
    }
    if (ps.n)
        curl_url_cleanup(lb.u);
    if (j->nlinks && j->nlinks < cap) { /* the links wait in memory (maybe for a depth to end): no slack */
        page_link *l = realloc(j->links, j->nlinks * sizeof *l);
        if (l)
            j->links = l;
    }
    curl_free(abs_base);
    free(ps.hrefs);
    free(ps.base);
    free(ps.title.data);
}

/* One path segment made safe as a file name: never "", "." or ".."; '/' and NUL cannot occur. */
static char *safe_segment(const char *s, size_t n)
{
    if (n == 0)
        return xstrdup("_");
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return fmt("%%2E%s", n == 2 ? "%2E" : "");
    if (n > 200)
        n = 200; /* NAME_MAX is 255; leave room for "?query" and ".N" */
    return strndup(s, n);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Save j->body under --output as HOST[:PORT]/PATH (a path ending in '/' gets
 * index.html, a query is kept in the file name as "?QUERY").  Every component
 * is opened relative to its parent with O_NOFOLLOW, and "." / ".." segments
 * (which curl already resolves) are renamed, so nothing is written outside the
 * directory.  Worker thread.
 */
static void save_page(job *j, worker *w)
{
    char *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    int dir = -1, fd = -1, err = 0;
    char *rel = NULL;
    if (curl_url_set(w->url, CURLUPART_URL, j->url, 0) != CURLUE_OK ||
        curl_url_get(w->url, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(w->url, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        err = -EINVAL;
        goto done;
    }
    curl_url_get(w->url, CURLUPART_PORT, &port, 0);
    curl_url_get(w->url, CURLUPART_QUERY, &query, 0);

    char *top = port ? fmt("%s:%s", host, port) : xstrdup(host);
    rel = xstrdup(top);
    dir = openat(w->conf->outdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = path;
    char *seg = top;
    for (;;) {
        /* seg is a directory component: create and enter it. */
        if (mkdirat(dir, seg, 0755) != 0 && errno != EEXIST)
            err = -errno;
        int sub = err ? -1 : openat(dir, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 && !err)
            err = -errno;
        free(seg);
        close(dir);
        dir = sub;
        if (err)
            goto done;
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (p[n] != '/')
            break; /* the last segment is the file */
        seg = safe_segment(p, n);
        char *r = fmt("%s/%s", rel, seg);
        free(rel);
        rel = r;
        p += n;
    }
    size_t n = strlen(p);
    char *name = n ? safe_segment(p, n) : xstrdup("index.html");
    if (query) {
        char *q = fmt("%s?%.40s", name, query); /* the query is cut so the name stays under NAME_MAX */
        for (char *c = q; *c; c++)
            if (*c == '/')
                *c = '_';
        free(name);
        name = q;
    }
    fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EISDIR) {
        /* A directory of that name exists already: the page is its index. */
        char *in = fmt("%s/index.html", name);
        free(name);
        name = in;
        fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        err = -errno;
    else
        err = write_all(fd, j->body.data ? j->body.data : "", j->body.len);
    if (!err) {
        char *r = fmt("%s/%s", rel, name);
        free(rel);
        rel = r;
    }
    free(name);
done:
    if (fd >= 0 && close(fd) != 0 && !err)
        err = -errno;
    if (dir >= 0)
        close(dir);
    if (err) {
        free(j->error);
        j->error = fmt("cannot save: %s", strerror(-err));
        free(rel);
    } else {
        j->saved = rel;
    }
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
}

/* The pages of one task: `arg` is the first, batch_next links the rest. */
static int page_task(cf_task_t *task, void *arg)
{
    worker *w = cf_task_worker_data(task);
    for (job *j = arg; j; j = j->batch_next) {
        if (!j->not_html)
            scan_page(j, w);
        if (w->conf->output)
            save_page(j, w);
        format_result(&j->line, w->conf, j); /* here, not on the loop thread */
    }
    return 0;
}

/* ------------------------------------------------------------ the crawl (loop side) */

typedef struct job_fifo {
    job *head, *tail;
    long n;
} job_fifo;

typedef struct sock {
    ev_io io;
    struct crawl *crawl;
} sock;

typedef struct crawl {
    crawl_conf conf;
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *pool;
    CURLM *multi;
    ev_timer curl_timer;  /* curl's timeout */
    ev_timer delay_timer; /* the next start allowed by --delay / Crawl-delay */
    ev_prepare flush;     /* hands the pages of a loop iteration to the pool, before the loop blocks */
    job *batch, *batch_tail; /* pages waiting for that (JOB_BATCHED) */
    int nbatch;
    CURL **idle;          /* easy handles for reuse */
    int nidle;
    url_set seen;
    job_fifo level[2]; /* URLs waiting for a fetch slot: this depth, the next */
    int depth;         /* the shallowest depth not done */
    job inflight;      /* circular list head of jobs being fetched or parsed */
    job_fifo held;     /* pages of the next depth, done: their links wait for this depth to end */
    long submitted;
    int running;   /* jobs fetching or parsing */
    int active[2]; /* ... of them at this depth, at the next */
    int fetching; /* transfers in flight (robots.txt included) */
    int parsing;  /* pages handed to the pool */
    int robots_pending;
    long pages, errors, redirects, cancelled, non_html;
    long links_dropped, links_capped, robots_blocked;
    int starts_ok;
    uint64_t bytes;
    uint64_t t0;
    double cpu0, loop_cpu0; /* CPU seconds of the process, of the loop thread, at t0 */
    int interrupted;
    int fatal;
    int tty;
    buf out; /* a result line being formatted */
    uint64_t last_progress;
    ev_signal sigint, sigterm;
    char **start_urls;
    int nstart_urls;
} crawl;

static void pump(crawl *c);
static void print_result(crawl *c, const job *j);

static void fifo_push(job_fifo *q, job *j)
{
    j->next = NULL;
    j->prev = q->tail;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static void fifo_unlink(job_fifo *q, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        q->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        q->tail = j->prev;
    q->n--;
}

static void inflight_add(crawl *c, job *j)
{
    j->next = &c->inflight;
    j->prev = c->inflight.prev;
    c->inflight.prev->next = j;
    c->inflight.prev = j;
    c->running++;
    c->active[j->depth > c->depth]++;
}

static void inflight_remove(crawl *c, job *j)
{
    j->prev->next = j->next;
    j->next->prev = j->prev;
    c->running--;
    c->active[j->depth > c->depth]--;
}

/*
 * Queue `url` (already normalised, malloc'd, hash h, on site `st`; taken
 * whatever happens) unless it was seen, is
 * deeper than --depth or disallowed by robots.txt.  The frontier holds at most
 * what the crawl can still fetch (--max-pages minus the fetches started): when
 * full, a URL of the current level takes the place of the last one of the next
 * level, and anything else is dropped and counted.
 */
static void frontier_add(crawl *c, char *url, uint32_t h, size_t st, int depth, int hops, int is_start)
{
    if (c->conf.max_depth >= 0 && depth > c->conf.max_depth) {
        free(url);
        return;
    }
    if (!c->conf.ignore_robots && !robots_allowed(&c->conf.sites[st], url_path(url))) {
        if (!is_start)
            c->robots_blocked++;
        if (!is_start || !url_set_add(&c->seen, url, h)) {
            free(url);
            return;
        }
        /* A start URL gets its line: it is why nothing was crawled. */
        site *s = &c->conf.sites[st];
        job line = {.url = url, .depth = depth};
        line.error = s->robots_error ? fmt("robots.txt unreachable (%s): not fetched", s->robots_error)
                                     : fmt("disallowed by robots.txt");
        print_result(c, &line);
        free(line.error);
        c->pages++;
        c->errors++;
        return;
    }
    int next = depth > c->depth;
    long room = c->conf.max_pages - c->submitted;
    if (c->level[0].n + c->level[1].n >= room) {
        if (url_set_has(&c->seen, url, h)) {
            free(url);
            return;
        }
        if (next || c->level[1].n == 0) {
            c->links_dropped++;
            free(url);
            return;
        }
        url_set_add(&c->seen, url, h);
        job *victim = c->level[1].tail;
        fifo_unlink(&c->level[1], victim);
        url_set_remove(&c->seen, victim->url); /* frees victim->url */
        job_free(victim);
        c->links_dropped++;
    } else if (!url_set_add(&c->seen, url, h)) {
        free(url);
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j)
        oom();
    *j = (job){.crawl = c,
               .kind = JOB_PAGE,
               .url = url,
               .site = st,
               .depth = depth,
               .hops = hops,
               .is_start = is_start};
    fifo_push(&c->level[next], j);
}

/* Queue the links (or the redirect target) of a page whose depth is done with. */
static void follow_links(crawl *c, job *j)
{
    int redirect = !j->error && j->status >= 300 && j->status < 400;
    for (size_t i = 0; i < j->nlinks; i++) {
        page_link *l = &j->links[i];
        frontier_add(c, l->url, l->hash, l->site, redirect ? j->depth : j->depth + 1, redirect ? j->hops + 1 : 0, 0);
        l->url = NULL;
    }
}

/*
 * Move on to the next depth while this one is over (nothing of it queued or in
 * flight): the next level's queue and transfers become this level's, and the
 * links of the pages that waited for it are followed.
 */
static void advance(crawl *c)
{
    while (!c->level[0].head && c->active[0] == 0 && (c->level[1].head || c->active[1] || c->held.head)) {
        c->level[0] = c->level[1];
        c->level[1] = (job_fifo){0};
        c->active[0] = c->active[1];
        c->active[1] = 0;
        c->depth++;
        job_fifo held = c->held;
        c->held = (job_fifo){0};
        for (job *j = held.head, *next; j; j = next) {
            next = j->next;
            if (!c->interrupted)
                follow_links(c, j);
            job_free(j);
        }
    }
}

static void progress(crawl *c, int final)
{
    if (!c->tty)
        return;
    uint64_t now = cf_now_ns();
    if (!final && now - c->last_progress < 100000000ull)
        return;
    c->last_progress = now;
    fprintf(stderr, "\r\033[Kdepth %d: %ld fetched, %ld errors, %d in flight, %ld queued", c->depth, c->pages,
            c->errors, c->running, c->level[0].n + c->level[1].n);
    if (final)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* The result line of j, to standard output. */
static void print_result(crawl *c, const job *j)
{
    c->out.len = 0;
    format_result(&c->out, &c->conf, j);
    fwrite(c->out.data, 1, c->out.len, stdout);
}

/* A page's fetch (and parse) is over: report it, queue its links, refill. */
static void page_done(crawl *c, job *j)
{
    inflight_remove(c, j);
    c->pages++;
    c->bytes += j->received;
    if (j->error)
        c->errors++;
    else if (j->not_html)
        c->non_html++;
    if (j->is_start && !j->error)
        c->starts_ok++;
    if (j->line.len) {
        fwrite(j->line.data, 1, j->line.len, stdout);
        free(j->line.data);
        j->line = (buf){0};
    } else {
        print_result(c, j);
    }
    c->links_capped += j->links_capped;
    c->redirects += !j->error && j->status >= 300 && j->status < 400;
    if (!c->interrupted && j->nlinks && j->depth > c->depth) {
        /* A page of the next depth: its links wait until this depth is done. */
        j->state = JOB_HELD;
        fifo_push(&c->held, j);
    } else {
        if (!c->interrupted)
            follow_links(c, j);
        job_free(j);
    }
    progress(c, 0);
}

static void on_parsed(cf_future_t *f, int status, void *data)
{
    crawl *c = ((job *)data)->crawl;
    for (job *j = data, *next; j; j = next) {
        next = j->batch_next;
        c->parsing--;
        if (status == CF_ECANCELED) {
            inflight_remove(c, j);
            c->cancelled++;
            job_free(j);
        } else {
            if (status != 0 && !j->error) { /* only the runtime can fail the task (out of memory) */
                j->error = fmt("%s", cf_future_error(f) ? cf_future_error(f) : cf_strerror(status));
                j->line.len = 0; /* formatted again, with the error */
            }
            free(j->body.data);
            j->body = (buf){0};
            page_done(c, j);
        }
    }
    cf_future_unref(f);
    pump(c);
}

/*
 * Hand the pages that arrived in this loop iteration to the pool: as many
 * tasks as there are parser threads (fewer if fewer pages), each a run of
 * pages, so a busy iteration wakes each worker once rather than once a page.
 */
static void flush_batch(crawl *c)
{
    int ntasks = c->nbatch < c->conf.threads ? c->nbatch : c->conf.threads;
    for (int t = 0; t < ntasks; t++) {
        int n = (c->nbatch + (ntasks - t) - 1) / (ntasks - t); /* split as evenly as possible */
        job *first = c->batch, *last = first;
        for (int i = 1; i < n; i++)
            last = last->batch_next;
        c->batch = last->batch_next;
        last->batch_next = NULL;
        c->nbatch -= n;
        for (job *j = first; j; j = j->batch_next)
            j->state = JOB_PARSING;
        int e = cf_thread_pool_submit(c->pool, page_task, first, NULL, &first->future);
        if (e == 0)
            e = cf_future_on_done(first->future, on_parsed, first, NULL);
        if (e == 0)
            continue;
        fprintf(stderr, "cfcrawl: cannot submit a page: %s\n", cf_strerror(e));
        if (first->future)
            cf_future_unref(first->future); /* never submitted, or its callback cannot be set */
        first->future = NULL;
        c->fatal = c->interrupted = 1;
        for (job *j = first, *next; j; j = next) {
            next = j->batch_next;
            c->parsing--;
            j->error = fmt("%s", cf_strerror(e));
            free(j->body.data);
            j->body = (buf){0};
            page_done(c, j);
        }
    }
    c->batch_tail = NULL;
}

static void on_flush(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev, (void)revents;
    crawl *c = w->data;
    if (c->nbatch == 0)
        return;
    flush_batch(c);
    pump(c);
}

/* ------------------------------------------------------------ transfers: libcurl multi on libev */

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    job *j = data;
    size_t len = size * n;
    if (!j->body_seen) {
        /* The first bytes of the body: the headers are all in. */
        char *ct = NULL;
        long code = 0;
        j->body_seen = 1;
        curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ct);
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
        j->discard = j->kind == JOB_PAGE && (code < 200 || code >= 300); /* error pages: counted, not kept */
        if (j->kind == JOB_PAGE && !j->discard &&
            !(ct && (strncasecmp(ct, "text/html", 9) == 0 || strncasecmp(ct, "application/xhtml+xml", 21) == 0))) {
            j->not_html = 1;
            j->skip_body = !j->crawl->conf.output;
        }
        /* A body of known length gets a buffer of its size: no doubling, no slack to give back. */
        curl_off_t cl = -1;
        size_t limit = j->kind == JOB_ROBOTS ? ROBOTS_MAX_SIZE : (size_t)j->crawl->conf.max_size;
        if (!j->discard && !j->skip_body && curl_easy_getinfo(j->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > 0 && (uint64_t)cl <= limit)
            buf_reserve(&j->body, (size_t)cl); /* on failure, buf_add tries again */
    }
    j->received += len;
    if (j->skip_body)
        return 0; /* stops the transfer: a crawler without --output has no use for it */
    if (j->discard)
        return j->received > (uint64_t)j->crawl->conf.max_size ? 0 : len;
    size_t limit = j->kind == JOB_ROBOTS ? ROBOTS_MAX_SIZE : (size_t)j->crawl->conf.max_size;
    if (buf_add(&j->body, p, len, limit) != 0) {
        j->too_large = 1;
        return 0;
    }
    return len;
}

/*
 * Is none of the variables set that libcurl reads, for every transfer, to
 * pick a proxy for an http(s) URL?  (no_proxy only matters when one is.)
 */
static int no_proxy_env(void)
{
    static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return 0;
    }
    return 1;
}

/* An easy handle with the crawl's options; only URL and job change between transfers. */
static CURL *easy_get(crawl *c)
{
    if (c->nidle)
        return c->idle[--c->nidle];
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    const crawl_conf *k = &c->conf;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, k->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, k->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, k->timeout_ms);
    /* Nothing at all received for this long: a silent or stalled server. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, k->timeout_ms / 1000 < STALL_S ? k->timeout_ms / 1000 + 1 : STALL_S);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->max_size);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (k->no_proxy_env) {
        /* What curl would find in the environment, said once: no proxy. */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    return e;
}

/* Keep a page transfer's handle for the next one (robots.txt handles follow redirects: not kept). */
static void easy_put(crawl *c, job *j)
{
    if (j->kind == JOB_PAGE && c->nidle < c->conf.concurrency)
        c->idle[c->nidle++] = j->easy;
    else
        curl_easy_cleanup(j->easy);
    j->easy = NULL;
}

/* Start the transfer of `j`; 0 or -1 (then j->error says why). */
static int transfer_start(crawl *c, job *j)
{
    j->easy = easy_get(c);
    if (!j->easy) {
        j->error = fmt("cannot create a transfer");
        return -1;
    }
    curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    if (j->kind == JOB_ROBOTS) {
        curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 1L); /* RFC 9309: at least five hops */
        curl_easy_setopt(j->easy, CURLOPT_MAXREDIRS, 5L);
    }
    CURLMcode mc = curl_multi_add_handle(c->multi, j->easy);
    if (mc != CURLM_OK) {
        j->error = fmt("%s", curl_multi_strerror(mc));
        easy_put(c, j);
        return -1;
    }
    j->state = JOB_FETCHING;
    c->fetching++;
    inflight_add(c, j);
    return 0;
}

/* Remove j's transfer from the multi handle and keep its easy handle for reuse. */
static void transfer_release(crawl *c, job *j)
{
    if (!j->easy)
        return;
    curl_multi_remove_handle(c->multi, j->easy);
    easy_put(c, j);
    c->fetching--;
}

static void robots_done(crawl *c, job *j, CURLcode rc);

/* A transfer finished: classify it, then report it or hand the page to the pool. */
static void transfer_done(crawl *c, job *j, CURLcode rc)
{
    curl_off_t us = 0;
    char *ct = NULL, *loc = NULL;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->status);
    curl_easy_getinfo(j->easy, CURLINFO_TOTAL_TIME_T, &us);
    curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ct);
    j->us = us > 0 ? (uint64_t)us : 0;
    if (ct)
        j->content_type = xstrdup(ct);
    if (j->kind == JOB_ROBOTS) {
        robots_done(c, j, rc);
        return;
    }

    if (j->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        j->error = fmt("body larger than %ld bytes (--max-size)", c->conf.max_size);
    } else if (j->skip_body && rc == CURLE_WRITE_ERROR) {
        /* the transfer stopped on purpose: a non-HTML result */
    } else if (rc != CURLE_OK) {
        j->error = fmt("%s", curl_easy_strerror(rc));
    } else if (j->status >= 300 && j->status < 400) {
        curl_easy_getinfo(j->easy, CURLINFO_REDIRECT_URL, &loc);
        if (j->hops >= c->conf.max_redirs) {
            j->error = fmt("more than %d redirects (--max-redirs)", c->conf.max_redirs);
        } else if (loc) {
            /* The target is queued like a link, at the same depth. */
            CURLU *u = curl_url();
            size_t st = 0;
            char *t = u ? from_curl(resolve_url(&c->conf, u, j->url, loc, &st)) : NULL;
            curl_url_cleanup(u);
            if (t) {
                j->links = xmalloc(sizeof *j->links);
                j->links[0] = (page_link){.url = t, .hash = hash_str(t), .site = (uint32_t)st};
                j->nlinks = 1;
            }
        }
    } else if (j->status >= 400) {
        j->error = fmt("HTTP %ld", j->status);
    } else if (j->status < 200) {
        j->error = fmt("unexpected HTTP status %ld", j->status);
    }
    transfer_release(c, j);

    int want_task =
        !j->error && j->status >= 200 && j->status < 300 && !j->skip_body && (!j->not_html || c->conf.output);
    if (want_task && !c->interrupted) {
        /* The buffer grew by doubling: give back the slack while the page waits for a parser. */
        char *d = j->body.data && j->body.cap > j->body.len + 1 ? realloc(j->body.data, j->body.len + 1) : NULL;
        if (d)
            j->body.data = d, j->body.cap = j->body.len + 1;
        /* Queued for the pool: on_flush submits it with the others of this loop iteration. */
        j->state = JOB_BATCHED;
        j->batch_next = NULL;
        if (c->batch_tail)
            c->batch_tail->batch_next = j;
        else
            c->batch = j;
        c->batch_tail = j;
        c->nbatch++;
        c->parsing++;
        return;
    }
    free(j->body.data);
    j->body = (buf){0};
    page_done(c, j);
}

static void check_multi(crawl *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        job *j = NULL;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
        transfer_done(c, j, rc);
    }
    pump(c);
}

static void on_curl_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    crawl *c = w->data;
    int still;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    check_multi(c);
}

static void on_sock(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    crawl *c = ((sock *)w)->crawl;
    int still, fd = w->fd; /* w may be freed inside socket_action */
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(c->multi, fd, action, &still);
    check_multi(c);
}

/* CURLMOPT_SOCKETFUNCTION: keep one ev_io per socket in step with what curl wants. */
static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    crawl *c = userp;
    sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            ev_io_stop(c->ev, &k->io);
            free(k);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k)
            return -1;
        k->crawl = c;
        ev_init(&k->io, on_sock);
        curl_multi_assign(c->multi, s, k);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(c->ev, &k->io);
    ev_io_set(&k->io, s, events);
    ev_io_start(c->ev, &k->io);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; curl is called back from the loop, never from here. */
static int on_curl_timeout(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    crawl *c = userp;
    ev_timer_stop(c->ev, &c->curl_timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&c->curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(c->ev, &c->curl_timer);
    }
    return 0;
}

/* ------------------------------------------------------------ robots.txt and the start */

static void seed(crawl *c);

static void robots_done(crawl *c, job *j, CURLcode rc)
{
    site *s = &c->conf.sites[j->site];
    if (rc == CURLE_OK && j->status >= 200 && j->status < 300) {
        robots_parse(s, j->body.data ? j->body.data : (char[]){""}, c->conf.robots_token);
    } else if (rc == CURLE_OK && j->status >= 400 && j->status < 500 && j->status != 429) {
        /* "unavailable": no rules */
    } else if (j->too_large) {
        /* RFC 9309: parse at least the first 500 KiB */
        robots_parse(s, j->body.data, c->conf.robots_token);
    } else {
        /* unreachable (network error, 5xx, 429): assume complete disallow */
        s->disallow_all = 1;
        s->robots_error = rc != CURLE_OK ? fmt("%s", curl_easy_strerror(rc)) : fmt("HTTP %ld", j->status);
    }
    transfer_release(c, j);
    inflight_remove(c, j);
    job_free(j);
    if (--c->robots_pending == 0 && !c->interrupted)
        seed(c);
}

/* Queue the start URLs (once robots.txt of every site is known). */
static void seed(crawl *c)
{
    CURLU *u = curl_url();
    if (!u)
        oom();
    for (int i = 0; i < c->nstart_urls; i++) {
        size_t st = 0;
        char *n = from_curl(resolve_url(&c->conf, u, NULL, c->start_urls[i], &st));
        if (n)
            frontier_add(c, n, hash_str(n), st, 0, 0, 1);
    }
    curl_url_cleanup(u);
}

static void on_delay(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    pump(w->data);
}

/*
 * Start transfers up to --concurrency in flight, while fewer than --concurrency
 * pages wait for (or are in) a parse - counting, for a transfer of the next
 * depth, the pages whose links wait too; stop the loop once nothing is left.
 */
static void pump(crawl *c)
{
    for (;;) {
        advance(c);
        if (c->interrupted || c->robots_pending > 0 || c->fetching >= c->conf.concurrency ||
            c->parsing >= c->conf.concurrency || c->submitted >= c->conf.max_pages)
            break;
        int next = !c->level[0].head;
        job *j = c->level[next].head;
        if (!j || (next && c->parsing + c->held.n >= c->conf.concurrency))
            break;
        site *s = &c->conf.sites[j->site];
        if (s->delay_ns) {
            uint64_t now = cf_now_ns();
            if (now < s->next_start_ns) {
                if (!ev_is_active(&c->delay_timer)) {
                    ev_timer_set(&c->delay_timer, (double)(s->next_start_ns - now) / 1e9, 0.);
                    ev_timer_start(c->ev, &c->delay_timer);
                }
                break;
            }
            s->next_start_ns = now + s->delay_ns;
        }
        fifo_unlink(&c->level[next], j);
        c->submitted++;
        if (transfer_start(c, j) != 0) {
            inflight_add(c, j);
            page_done(c, j);
        }
    }
    if (c->running == 0 && !ev_is_active(&c->delay_timer))
        ev_break(c->ev, EVBREAK_ONE);
}

static void on_signal(struct ev_loop *ev, ev_signal *w, int revents)
{
    (void)ev, (void)revents;
    crawl *c = w->data;
    if (c->interrupted)
        return;
    c->interrupted = 1;
    ev_timer_stop(c->ev, &c->delay_timer);
    /* Transfers are dropped at once; queued parses end CANCELLED; a running one finishes. */
    for (job *j = c->inflight.next, *next; j != &c->inflight; j = next) {
        next = j->next;
        if (j->state == JOB_FETCHING) {
            transfer_release(c, j);
            inflight_remove(c, j);
            if (j->kind == JOB_PAGE)
                c->cancelled++;
            job_free(j);
        } else if (j->state == JOB_BATCHED) {
            inflight_remove(c, j); /* not handed to the pool yet */
            c->parsing--;
            c->cancelled++;
            job_free(j);
        } else if (j->future) {
            cf_future_cancel(j->future); /* the first page of a task: cancels the task */
        }
    }
    c->batch = c->batch_tail = NULL;
    c->nbatch = 0;
    for (job *j = c->held.head, *next; j; j = next) {
        next = j->next;
        job_free(j); /* reported already; their links are not followed */
    }
    c->held = (job_fifo){0};
    pump(c);
}

/* CPU seconds (user and system) of the process, or with `thread` of the calling thread. */
static double cpu_seconds(int thread)
{
    struct rusage ru;
    if (getrusage(thread ? RUSAGE_THREAD : RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void print_summary(crawl *c)
{
    double secs = (double)(cf_now_ns() - c->t0) / 1e9;
    double rate = secs > 0 ? (double)c->pages / secs : 0.0;
    long left = c->level[0].n + c->level[1].n + c->cancelled;
    if (c->conf.json) {
        printf("{\"summary\":{\"pages\":%ld,\"errors\":%ld,\"redirects\":%ld,\"non_html\":%ld,\"bytes\":%" PRIu64
               ",\"seconds\":%.3f,\"pages_per_second\":%.1f,\"not_fetched\":%ld,\"links_dropped\":%ld,"
               "\"links_capped\":%ld,\"robots_disallowed\":%ld,\"interrupted\":%s,\"cpu_seconds\":%.4f,"
               "\"loop_cpu_seconds\":%.4f}}\n",
               c->pages, c->errors, c->redirects, c->non_html, c->bytes, secs, rate, left, c->links_dropped,
               c->links_capped, c->robots_blocked, c->interrupted && !c->fatal ? "true" : "false",
               cpu_seconds(0) - c->cpu0, cpu_seconds(1) - c->loop_cpu0);
    } else {
        printf("\n%ld pages (%ld not HTML), %ld errors, %ld redirects, %" PRIu64 " bytes in %.2f s: %.1f pages/s",
               c->pages, c->non_html, c->errors, c->redirects, c->bytes, secs, rate);
        if (left > 0)
            printf("; %ld URLs queued but not fetched", left);
        if (c->links_dropped > 0)
            printf("; %ld links dropped (frontier full: --max-pages)", c->links_dropped);
        if (c->links_capped > 0)
            printf("; %ld links past --max-links ignored", c->links_capped);
        if (c->robots_blocked > 0)
            printf("; %ld links disallowed by robots.txt", c->robots_blocked);
        printf("%s\n", c->interrupted && !c->fatal ? " - interrupted" : "");
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f, "usage: cfcrawl [options] URL...\n"
               "Crawls the sites (host and port) of the start URLs, breadth first.\n"
               "  --depth N             follow links at most N hops from a start URL (default 5, -1 = no limit)\n"
               "  --max-pages N         fetch at most N URLs (default 1000)\n"
               "  --concurrency N       transfers in flight (default 16, at most 10000)\n"
               "  --threads N           parser threads (default: the CPUs, at most 4)\n"
               "  --host-connections N  connections to one host (default 8)\n"
               "  --delay S             seconds between transfers to one site (default 0; robots.txt\n"
               "                        Crawl-delay, up to 60 s, raises it)\n"
               "  --user-agent UA       User-Agent header, and the robots.txt token up to its first '/'\n"
               "                        (default cfcrawl/" CFCRAWL_VERSION ")\n"
               "  --ignore-robots       do not fetch or obey robots.txt\n"
               "  --timeout S           seconds allowed per transfer (default 10)\n"
               "  --max-size BYTES      body bytes per page, after decompression (default 10485760)\n"
               "  --max-links N         links taken from one page (default 10000; the rest counted)\n"
               "  --max-redirs N        redirects followed in a row (default 10)\n"
               "  --output DIR          save what is fetched as DIR/HOST[:PORT]/PATH (index.html for '/')\n"
               "  --json                one JSON object per URL, then a summary object\n"
               "  --version, --help\n"
               "Exit status: 0 done, 1 setup error, 2 usage error, 3 every start URL failed, 130 interrupted.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_secs(const char *s, double lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

/* Options that take a number: name, bounds, where it goes. */
typedef struct num_opt {
    const char *name;
    long lo, hi;
    long *dst;
} num_opt;

static void free_conf(crawl_conf *conf)
{
    for (size_t i = 0; i < conf->nsites; i++) {
        site *s = &conf->sites[i];
        free(s->host);
        free(s->origin);
        free(s->robots_error);
        for (size_t r = 0; r < s->nrules; r++)
            free(s->rules[r].pattern);
        free(s->rules);
    }
    free(conf->sites);
    free(conf->robots_token);
}

int main(int argc, char **argv)
{
    static crawl c;
    long depth = 5, max_pages = 1000, concurrency = 16, threads = 0, host_conns = 8, max_size = 10l << 20,
         max_links = 10000, max_redirs = 10;
    double timeout_s = 10, delay_s = 0;
    const num_opt nums[] = {
        {"--depth", -1, 1000000, &depth},
        {"--max-pages", 1, 1000000000, &max_pages},
        {"--concurrency", 1, 10000, &concurrency},
        {"--threads", 1, 64, &threads},
        {"--host-connections", 1, 10000, &host_conns},
        {"--max-size", 1, 1l << 30, &max_size},
        {"--max-links", 0, 100000000, &max_links},
        {"--max-redirs", 0, 100, &max_redirs},
    };
    demo_hold_signals(); /* until the loop watches them: SIGINT during start-up stops the crawl as later */
    c.conf.user_agent = "cfcrawl/" CFCRAWL_VERSION;
    c.conf.outdir = -1;
    c.inflight.next = c.inflight.prev = &c.inflight;
    char **starts = xmalloc((size_t)argc * sizeof *starts);
    int nstarts = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        const num_opt *no = NULL;
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
            if (strcmp(a, nums[k].name) == 0)
                no = &nums[k];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(starts);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("cfcrawl %s (cfutures %s, libcurl %s, libxml2 %s)\n", CFCRAWL_VERSION, cf_version(),
                   curl_version_info(CURLVERSION_NOW)->version, LIBXML_DOTTED_VERSION);
            free(starts);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            c.conf.json = 1;
        } else if (strcmp(a, "--ignore-robots") == 0) {
            c.conf.ignore_robots = 1;
        } else if (no) {
            if (!has_val || parse_long(argv[++i], no->lo, no->hi, no->dst) != 0) {
                fprintf(stderr, "cfcrawl: %s needs a number from %ld to %ld, got '%s'\n", a, no->lo, no->hi,
                        has_val ? argv[i] : "");
                free(starts);
                return 2;
            }
        } else if (strcmp(a, "--timeout") == 0 || strcmp(a, "--delay") == 0) {
            int t = a[2] == 't';
            if (!has_val || parse_secs(argv[++i], t ? 0.001 : 0, t ? &timeout_s : &delay_s) != 0) {
                fprintf(stderr, "cfcrawl: bad %s '%s' (seconds%s)\n", a, has_val ? argv[i] : "", t ? ", > 0" : "");
                free(starts);
                return 2;
            }
        } else if (strcmp(a, "--user-agent") == 0 || strcmp(a, "--output") == 0) {
            if (!has_val || !*argv[i + 1] || strpbrk(argv[i + 1], "\r\n")) {
                fprintf(stderr, "cfcrawl: %s needs a non-empty value on one line\n", a);
                free(starts);
                return 2;
            }
            if (a[2] == 'u')
                c.conf.user_agent = argv[++i];
            else
                c.conf.output = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "cfcrawl: unknown option %s\n", a);
            usage(stderr);
            free(starts);
            return 2;
        } else {
            starts[nstarts++] = argv[i];
        }
    }
    if (nstarts == 0) {
        usage(stderr);
        free(starts);
        return 2;
    }
    c.conf.max_depth = (int)depth;
    c.conf.max_pages = max_pages;
    c.conf.concurrency = (int)concurrency;
    c.conf.threads = threads ? (int)threads : (cf_cpu_count() < 4 ? cf_cpu_count() : 4);
    if (c.conf.threads < 1)
        c.conf.threads = 1;
    c.conf.host_conns = (int)host_conns;
    c.conf.max_size = max_size;
    c.conf.max_links = max_links;
    c.conf.max_redirs = (int)max_redirs;
    c.conf.timeout_ms = (long)(timeout_s * 1000 + 0.5);
    if (c.conf.timeout_ms < 1)
        c.conf.timeout_ms = 1;
    c.conf.delay_s = delay_s;
    size_t tl = strcspn(c.conf.user_agent, "/ \t");
    c.conf.robots_token = strndup(c.conf.user_agent, tl ? tl : strlen(c.conf.user_agent));

    c.conf.no_proxy_env = no_proxy_env();
    /* Results to a pipe or a file: in large writes (a terminal keeps its line buffering). */
    if (!isatty(STDOUT_FILENO))
        setvbuf(stdout, NULL, _IOFBF, 1u << 16);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cfcrawl: curl_global_init failed\n");
        return 1;
    }
    xmlInitParser(); /* once, before the worker threads parse */

    /* Start URLs: normalised, and their hosts (and ports) make the crawl's sites. */
    CURLU *u = curl_url();
    c.conf.sites = xmalloc((size_t)nstarts * sizeof *c.conf.sites);
    int bad = 0;
    for (int i = 0; i < nstarts; i++) {
        char *host = NULL, *port = NULL, *scheme = NULL;
        char *norm = resolve_url(NULL, u, NULL, starts[i], NULL);
        if (!norm || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
            fprintf(stderr, "cfcrawl: not an http(s) URL: %s\n", starts[i]);
            bad = 1;
        } else {
            long p = strtol(port, NULL, 10);
            size_t k;
            for (k = 0; k < c.conf.nsites; k++)
                if (c.conf.sites[k].port == p && strcasecmp(c.conf.sites[k].host, host) == 0)
                    break;
            if (k == c.conf.nsites)
                c.conf.sites[c.conf.nsites++] = (site){.host = xstrdup(host),
                                                       .port = p,
                                                       .origin = fmt("%s://%s:%ld", scheme, host, p),
                                                       .delay_ns = (uint64_t)(delay_s * 1e9)};
        }
        curl_free(norm);
        curl_free(host);
        curl_free(port);
        curl_free(scheme);
    }
    curl_url_cleanup(u);
    if (!bad && c.conf.output) {
        if (mkdir(c.conf.output, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "cfcrawl: cannot create %s: %s\n", c.conf.output, strerror(errno));
            bad = 1;
        } else if ((c.conf.outdir = open(c.conf.output, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
            fprintf(stderr, "cfcrawl: cannot open %s: %s\n", c.conf.output, strerror(errno));
            bad = 1;
        }
    }
    if (bad) {
        free_conf(&c.conf);
        free(starts);
        curl_global_cleanup();
        xmlCleanupParser();
        return c.conf.outdir < 0 && c.conf.output ? 1 : 2;
    }
    c.start_urls = starts;
    c.nstart_urls = nstarts;

    /* A socket per transfer: let the descriptor limit follow the concurrency. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max &&
        rl.rlim_cur < (rlim_t)c.conf.concurrency + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    c.ev = ev_default_loop(0);
    int rc = cf_loop_new(c.ev, &c.loop);
    cf_thread_pool_opts o;
    cf_thread_pool_opts_init(&o);
    o.max_workers = c.conf.threads;
    o.name_prefix = "cfcrawl";
    o.initializer = worker_init;
    o.finalizer = worker_fini;
    o.init_data = &c.conf;
    o.spin_us = 0; /* a parse is short and the loop has other work: spinning workers would steal its CPU */
    if (rc == 0)
        rc = cf_thread_pool_new(c.loop, &o, &c.pool);
    c.multi = curl_multi_init();
    c.idle = calloc((size_t)c.conf.concurrency + c.conf.nsites, sizeof *c.idle);
    if (rc == 0 && (!c.multi || !c.idle))
        rc = CF_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "cfcrawl: cannot start: %s\n", cf_strerror(rc));
        return 1;
    }
    curl_multi_setopt(c.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c.multi, CURLMOPT_SOCKETDATA, &c);
    curl_multi_setopt(c.multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(c.multi, CURLMOPT_TIMERDATA, &c);
    curl_multi_setopt(c.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c.conf.host_conns);
    curl_multi_setopt(c.multi, CURLMOPT_MAXCONNECTS, (long)c.conf.concurrency);
    ev_init(&c.curl_timer, on_curl_timer);
    c.curl_timer.data = &c;
    ev_init(&c.delay_timer, on_delay);
    c.delay_timer.data = &c;
    ev_prepare_init(&c.flush, on_flush);
    c.flush.data = &c;
    ev_prepare_start(c.ev, &c.flush);

    ev_signal_init(&c.sigint, on_signal, SIGINT);
    ev_signal_init(&c.sigterm, on_signal, SIGTERM);
    c.sigint.data = c.sigterm.data = &c;
    ev_signal_start(c.ev, &c.sigint);
    ev_signal_start(c.ev, &c.sigterm);
    demo_release_signals();
    c.tty = isatty(STDERR_FILENO);

    c.t0 = cf_now_ns();
    c.cpu0 = cpu_seconds(0);
    c.loop_cpu0 = cpu_seconds(1);
    if (!c.conf.ignore_robots) {
        for (size_t i = 0; i < c.conf.nsites; i++) {
            job *j = calloc(1, sizeof *j);
            if (!j)
                oom();
            *j = (job){.crawl = &c, .kind = JOB_ROBOTS, .url = fmt("%s/robots.txt", c.conf.sites[i].origin), .site = i};
            if (!j->url)
                oom();
            if (transfer_start(&c, j) != 0) {
                c.conf.sites[i].disallow_all = 1;
                c.conf.sites[i].robots_error = j->error;
                j->error = NULL;
                job_free(j);
                continue;
            }
            c.robots_pending++;
        }
    }
    if (c.robots_pending == 0)
        seed(&c);
    pump(&c);
    if (c.running > 0 || ev_is_active(&c.delay_timer))
        ev_run(c.ev, 0);
    progress(&c, 1);
    print_summary(&c);

    ev_signal_stop(c.ev, &c.sigint);
    ev_signal_stop(c.ev, &c.sigterm);
    ev_timer_stop(c.ev, &c.curl_timer);
    ev_timer_stop(c.ev, &c.delay_timer);
    ev_prepare_stop(c.ev, &c.flush);
    cf_thread_pool_free(c.pool);
    ev_run(c.ev, 0); /* let callbacks of anything cancelled by the free run */
    rc = cf_loop_close(c.loop);
    if (rc != 0)
        fprintf(stderr, "cfcrawl: cf_loop_close: %s\n", cf_strerror(rc));
    for (int i = 0; i < c.nidle; i++)
        curl_easy_cleanup(c.idle[i]);
    free(c.idle);
    curl_multi_cleanup(c.multi);
    job_fifo *lists[] = {&c.level[0], &c.level[1], &c.held};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        while (lists[l]->head) {
            job *j = lists[l]->head;
            lists[l]->head = j->next;
            job_free(j);
        }
    }
    url_set_free(&c.seen); /* after the jobs: it owns their URLs */
    free(c.out.data);
    if (c.conf.outdir >= 0)
        close(c.conf.outdir);
    free_conf(&c.conf);
    free(starts);
    curl_global_cleanup();
    xmlCleanupParser();
    if (c.fatal)
        return 1;
    if (c.interrupted)
        return 130;
    return c.starts_ok == 0 ? 3 : 0;
}
