/*
 * cfcrawl.c - a concurrent web crawler on cfutures, libcurl and libxml2.
 *
 *   cfcrawl [--depth N] [--max-pages N] [--concurrency N] [--timeout S] [--json] URL...
 *
 * Design.  The libev loop owns the crawl: the frontier (a FIFO of URLs still
 * to fetch), the set of URLs already seen, and the output.  Fetching is
 * blocking libcurl code, so it runs in a cfutures thread pool with one worker
 * per unit of concurrency.  The pool's initializer gives every worker thread
 * its own curl easy handle, reused for every transfer of that thread so that
 * connections are kept alive; the finalizer cleans it up.
 *
 * A fetch task downloads one URL (redirects are not followed inside curl: a
 * 3xx is reported and its target queued like a link, so every URL is fetched
 * exactly once), parses the HTML with libxml2's HTML parser in SAX mode (no
 * tree is built; entities are decoded), and resolves every <a>/<area>
 * href against the page (or its <base>) with libcurl's URL API, dropping the
 * fragment and anything that is not http(s) or not on one of the start URLs'
 * hosts (host and port).  The result travels back as the future's value; the
 * done callback on the loop prints the line, queues the new links, and tops
 * the pool up to --concurrency transfers in flight.
 *
 * Per-URL failures (DNS, refused connection, HTTP errors, timeouts, content
 * that is not HTML) are reported on the URL's line and never stop the crawl.
 * SIGINT or SIGTERM stops it: queued fetches are cancelled, running transfers
 * abort through curl's progress callback (which polls cf_task_cancelled()),
 * and the summary is still printed.  On a terminal, a progress line is kept
 * on stderr.
 *
 * Output: one line per fetched URL - status, milliseconds, bytes, depth, URL,
 * title or error - then a summary.  With --json, one JSON object per URL
 * (keys url, status, bytes, ms, depth, title, error) and then one object with
 * the key "summary".
 *
 * Exit status: 0 when the crawl ran to its end (whatever the per-URL
 * results), 1 on a setup error, 2 on a usage error, 130 when interrupted.
 */
#define _GNU_SOURCE /* vasprintf */
#include <cfutures.h>
#include <curl/curl.h>
#include <ev.h>
#include <libxml/HTMLparser.h>
#include <limits.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_BODY (16u << 20) /* larger pages are reported as errors */
#define USER_AGENT "cfcrawl/" "0.1"

/* ------------------------------------------------------------ configuration */

typedef struct site {
    char *host; /* lower case */
    long port;
} site;

typedef struct crawl_conf {
    int max_depth;      /* < 0: unlimited */
    long max_pages;     /* URLs fetched at most */
    int concurrency;    /* transfers in flight, and pool workers */
    long timeout_ms;    /* per transfer */
    int json;
    site *sites;        /* the start URLs' hosts; read-only once the pool runs */
    size_t nsites;
} crawl_conf;

/* ------------------------------------------------------------ small helpers */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "cfcrawl: out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
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

/* Print `s` as a JSON string (or null). */
static void json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* ------------------------------------------------------------ the URL set */

/* Open addressing over owned strings; grows at 50% load.  Loop thread only. */
typedef struct url_set {
    char **slot;
    size_t cap, n;
} url_set;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Insert a copy of `s`; returns 1 if added, 0 if it was already there. */
static int url_set_add(url_set *set, const char *s)
{
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot) {
            fprintf(stderr, "cfcrawl: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i])
                continue;
            size_t j = hash_str(set->slot[i]) & (cap - 1);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = set->slot[i];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t j = hash_str(s) & (set->cap - 1);
    while (set->slot[j]) {
        if (strcmp(set->slot[j], s) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slot[j] = xstrdup(s);
    set->n++;
    return 1;
}

static void url_set_free(url_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* ------------------------------------------------------------ URLs */

/*
 * Resolve `ref` against `base` (NULL: `ref` must be absolute), drop the
 * fragment, and return the normalised URL (curl_free() it) when it is http(s)
 * on one of the crawl's sites; NULL otherwise.  Any thread.
 */
static char *resolve_url(const crawl_conf *conf, CURLU *u, const char *base, const char *ref)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;

    if (base && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, ref, base ? 0 : CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        return NULL;
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
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
    }
    if (curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
        out = NULL;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    return out;
}

/* ------------------------------------------------------------ the fetch task (worker side) */

typedef struct worker {
    CURL *easy;
    CURLU *url;
    buf body;
    const struct crawl_conf *conf; /* the pool's init data */
    int not_html;
    int too_large;
    cf_task_t *task;
} worker;

typedef struct fetch_result {
    long status;      /* HTTP status, 0 when no response */
    uint64_t bytes;   /* body bytes received */
    double ms;        /* transfer time */
    char *title;      /* decoded, whitespace collapsed; NULL if none */
    char *error;      /* NULL when the page was fetched and is HTML (or a redirect) */
    char **links;     /* resolved, on-site, fragment-free */
    size_t nlinks;
} fetch_result;

static void fetch_result_free(void *p)
{
    fetch_result *r = p;
    if (!r)
        return;
    free(r->title);
    free(r->error);
    for (size_t i = 0; i < r->nlinks; i++)
        curl_free(r->links[i]);
    free(r->links);
    free(r);
}

static int is_html(const char *ct)
{
    return ct && (strncasecmp(ct, "text/html", 9) == 0 || strncasecmp(ct, "application/xhtml+xml", 21) == 0);
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    worker *w = data;
    size_t len = size * n;
    if (w->body.len == 0) {
        char *ct = NULL;
        curl_easy_getinfo(w->easy, CURLINFO_CONTENT_TYPE, &ct);
        long code = 0;
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
        /* Error pages are read (for the byte count) whatever their type. */
        if (code >= 200 && code < 300 && !is_html(ct)) {
            w->not_html = 1;
            return 0; /* abort the transfer: the crawler has no use for it */
        }
    }
    if (buf_add(&w->body, p, len, MAX_BODY) != 0) {
        w->too_large = 1;
        return 0;
    }
    return len;
}

static int on_progress(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    worker *w = data;
    return w->task && cf_task_cancelled(w->task) ? 1 : 0;
}

static int worker_init(void *pool_data, int index, void **out)
{
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return CF_ENOMEM;
    w->easy = curl_easy_init();
    w->url = curl_url();
    if (!w->easy || !w->url) {
        curl_easy_cleanup(w->easy);
        curl_url_cleanup(w->url);
        free(w);
        return CF_ENOMEM;
    }
    const crawl_conf *conf = pool_data;
    w->conf = conf;
    curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->easy, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(w->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, conf->timeout_ms);
    curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, conf->timeout_ms);
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(w->easy, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(w->easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(w->easy, CURLOPT_FOLLOWLOCATION, 0L);
    *out = w;
    return 0;
}

static void worker_fini(void *pool_data, int index, void *data)
{
    worker *w = data;
    curl_easy_cleanup(w->easy);
    curl_url_cleanup(w->url);
    free(w->body.data);
    free(w);
}

typedef struct link_walk {
    const crawl_conf *conf;
    worker *w;
    const char *base;
    fetch_result *r;
    size_t cap;
} link_walk;

static void add_link(link_walk *lw, const char *href)
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
    char *u = resolve_url(lw->conf, lw->w->url, lw->base, n && ref[0] != '#' ? ref : lw->base);
    free(ref);
    if (!u)
        return;
    if (lw->r->nlinks == lw->cap) {
        size_t cap = lw->cap ? lw->cap * 2 : 32;
        char **l = realloc(lw->r->links, cap * sizeof *l);
        if (!l) {
            curl_free(u);
            return;
        }
        lw->r->links = l;
        lw->cap = cap;
    }
    lw->r->links[lw->r->nlinks++] = u;
}

/*
 * What the SAX parser collects from one page: the raw hrefs of <a> and
 * <area>, the first <base href>, and the text of the first <title> (entities
 * already decoded by the parser).  Links are resolved once the whole page is
 * parsed, because <base> applies to links before it too.
 */
typedef struct page_scan {
    char **hrefs;
    size_t n, cap;
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
        ps->base = strdup(v);
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
    if (ps->in_title && len > 0)
        buf_add(&ps->title, ch, (size_t)len, 4096);
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

/* Parse the page in w->body: title and resolved links into r. Worker thread. */
static int scan_page(worker *w, const char *url, fetch_result *r)
{
    page_scan ps = {0};
    htmlParserCtxtPtr ctxt = htmlCreatePushParserCtxt((htmlSAXHandlerPtr)&page_sax, &ps, NULL, 0, url,
                                                      XML_CHAR_ENCODING_NONE);
    if (!ctxt)
        return -1;
    htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    htmlParseChunk(ctxt, w->body.data ? w->body.data : "", (int)w->body.len, 1);
    htmlFreeParserCtxt(ctxt);

    r->title = collapse(&ps.title);
    char *abs_base = ps.base ? resolve_url(NULL, w->url, url, ps.base) : NULL;
    link_walk lw = {.conf = w->conf, .w = w, .base = abs_base ? abs_base : url, .r = r};
    for (size_t i = 0; i < ps.n; i++) {
        add_link(&lw, ps.hrefs[i]);
        free(ps.hrefs[i]);
    }
    curl_free(abs_base);
    free(ps.hrefs);
    free(ps.base);
    free(ps.title.data);
    return 0;
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

static int fetch_task(cf_task_t *task, void *arg)
{
    const char *url = arg;
    worker *w = cf_task_worker_data(task);
    fetch_result *r = calloc(1, sizeof *r);
    if (!r)
        return cf_task_fail(task, CF_ENOMEM, "out of memory");

    w->task = task;
    w->body.len = 0;
    w->not_html = w->too_large = 0;
    curl_easy_setopt(w->easy, CURLOPT_URL, url);
    CURLcode rc = curl_easy_perform(w->easy);
    w->task = NULL;
    if (cf_task_cancelled(task)) {
        fetch_result_free(r);
        return CF_ECANCELED;
    }

    curl_off_t bytes = 0, us = 0;
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(w->easy, CURLINFO_SIZE_DOWNLOAD_T, &bytes);
    curl_easy_getinfo(w->easy, CURLINFO_TOTAL_TIME_T, &us);
    r->bytes = (uint64_t)bytes;
    r->ms = (double)us / 1000.0;

    if (w->not_html) {
        char *ct = NULL;
        curl_easy_getinfo(w->easy, CURLINFO_CONTENT_TYPE, &ct);
        r->error = fmt("not HTML (%s)", ct ? ct : "no content type");
    } else if (w->too_large) {
        r->error = fmt("page larger than %u bytes", MAX_BODY);
    } else if (rc != CURLE_OK) {
        r->error = fmt("%s", curl_easy_strerror(rc));
    } else if (r->status >= 300 && r->status < 400) {
        /* A redirect: its target is queued like a link (at the same depth). */
        char *loc = NULL;
        curl_easy_getinfo(w->easy, CURLINFO_REDIRECT_URL, &loc);
        if (loc) {
            link_walk lw = {.conf = w->conf, .w = w, .base = url, .r = r};
            add_link(&lw, loc);
        }
    } else if (r->status >= 400) {
        r->error = fmt("HTTP %ld", r->status);
    } else {
        if (w->body.len > INT_MAX || scan_page(w, url, r) != 0)
            r->error = fmt("HTML parser failed");
    }
    cf_task_set_result(task, r, fetch_result_free);
    return 0;
}

/* ------------------------------------------------------------ the crawl (loop side) */

typedef struct job {
    struct job *next; /* frontier FIFO, then in-flight list */
    struct job *prev;
    struct crawl *crawl;
    char *url;
    int depth;
    cf_future_t *future;
} job;

typedef struct job_fifo {
    job *head, *tail;
    long n;
} job_fifo;

typedef struct crawl {
    crawl_conf conf;
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *pool;
    url_set seen;
    job_fifo level[2];            /* URLs waiting for a fetch slot: this depth, the next */
    int depth;                    /* depth being fetched */
    job inflight;                 /* circular list head of submitted jobs */
    long submitted;
    int running;
    long pages, errors, redirects, cancelled;
    uint64_t bytes;
    uint64_t t0;
    int interrupted;
    int fatal;
    int tty;
    uint64_t last_progress;
    ev_signal sigint, sigterm;
} crawl;

static void job_free(job *j)
{
    free(j->url);
    free(j);
}

/*
 * Queue `url` (already normalised) unless it was seen or is deeper than
 * --depth.  The crawl goes level by level (all of depth d before any of d+1),
 * so a URL is always first seen at its smallest depth and --depth is exact.
 * A redirect's target stays at the depth of the redirect.
 */
static void frontier_add(crawl *c, const char *url, int depth)
{
    if (c->conf.max_depth >= 0 && depth > c->conf.max_depth)
        return;
    if (!url_set_add(&c->seen, url))
        return;
    job *j = xmalloc(sizeof *j);
    *j = (job){.crawl = c, .url = xstrdup(url), .depth = depth};
    job_fifo *q = &c->level[depth > c->depth];
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static job *frontier_take(crawl *c)
{
    job_fifo *q = &c->level[0];
    if (!q->head && c->running == 0 && c->level[1].head) {
        /* Level done: the next one becomes current. */
        *q = c->level[1];
        c->level[1] = (job_fifo){0};
        c->depth++;
    }
    job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
    }
    return j;
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

static void print_result(crawl *c, const job *j, const fetch_result *r)
{
    FILE *out = stdout;
    if (c->conf.json) {
        fputs("{\"url\":", out);
        json_str(out, j->url);
        fprintf(out, ",\"status\":%ld,\"bytes\":%" PRIu64 ",\"ms\":%.3f,\"depth\":%d,\"title\":", r->status,
                r->bytes, r->ms, j->depth);
        json_str(out, r->title);
        fputs(",\"error\":", out);
        json_str(out, r->error);
        fputs("}\n", out);
    } else {
        fprintf(out, "%3ld %8.1f ms %9" PRIu64 " B  d%d  %s  ", r->status, r->ms, r->bytes, j->depth, j->url);
        if (r->error)
            fprintf(out, "error: %s\n", r->error);
        else if (r->status >= 300 && r->status < 400)
            fprintf(out, "-> %s\n", r->nlinks ? r->links[0] : "(off-site or no location)");
        else
            fprintf(out, "%s\n", r->title ? r->title : "(no title)");
    }
}

static void pump(crawl *c);

static void on_fetched(cf_future_t *f, int status, void *data)
{
    job *j = data;
    crawl *c = j->crawl;
    fetch_result *r = NULL;

    j->prev->next = j->next;
    j->next->prev = j->prev;
    c->running--;

    if (status == CF_ECANCELED) {
        c->cancelled++;
    } else if (status != 0) {
        /* Only the runtime can fail the task itself (out of memory). */
        fetch_result e = {.error = (char *)(cf_future_error(f) ? cf_future_error(f) : cf_strerror(status))};
        print_result(c, j, &e);
        c->pages++;
        c->errors++;
    } else {
        cf_future_result(f, (void **)&r);
        print_result(c, j, r);
        c->pages++;
        c->bytes += r->bytes;
        if (r->error)
            c->errors++;
        if (!c->interrupted) {
            int redirect = !r->error && r->status >= 300 && r->status < 400;
            c->redirects += redirect;
            for (size_t i = 0; i < r->nlinks; i++)
                frontier_add(c, r->links[i], redirect ? j->depth : j->depth + 1);
        }
    }
    cf_future_unref(f);
    job_free(j);
    progress(c, 0);
    pump(c);
}

/* Top the pool up to --concurrency transfers; stop the loop once nothing is left. */
static void pump(crawl *c)
{
    while (!c->interrupted && c->running < c->conf.concurrency && c->submitted < c->conf.max_pages) {
        job *j = frontier_take(c);
        if (!j)
            break;
        int rc = cf_thread_pool_submit(c->pool, fetch_task, j->url, NULL, &j->future);
        if (rc == 0)
            rc = cf_future_on_done(j->future, on_fetched, j, NULL);
        if (rc != 0) {
            fprintf(stderr, "cfcrawl: cannot submit %s: %s\n", j->url, cf_strerror(rc));
            if (j->future)
                cf_future_unref(j->future);
            job_free(j);
            c->fatal = 1;
            c->interrupted = 1;
            break;
        }
        j->next = &c->inflight;
        j->prev = c->inflight.prev;
        c->inflight.prev->next = j;
        c->inflight.prev = j;
        c->submitted++;
        c->running++;
    }
    if (c->running == 0)
        ev_break(c->ev, EVBREAK_ONE);
}

static void on_signal(struct ev_loop *ev, ev_signal *w, int revents)
{
    crawl *c = w->data;
    if (c->interrupted)
        return;
    c->interrupted = 1;
    /* Queued fetches end CANCELLED at once; running ones see the flag in the progress callback. */
    for (job *j = c->inflight.next; j != &c->inflight; j = j->next)
        cf_future_cancel(j->future);
    pump(c);
}

static void print_summary(crawl *c)
{
    double secs = (double)(cf_now_ns() - c->t0) / 1e9;
    double rate = secs > 0 ? (double)c->pages / secs : 0.0;
    long left = c->level[0].n + c->level[1].n;
    if (c->conf.json) {
        printf("{\"summary\":{\"pages\":%ld,\"errors\":%ld,\"redirects\":%ld,\"bytes\":%" PRIu64
               ",\"seconds\":%.3f,\"pages_per_second\":%.1f,\"not_fetched\":%ld,\"interrupted\":%s}}\n",
               c->pages, c->errors, c->redirects, c->bytes, secs, rate, left + c->cancelled,
               c->interrupted && !c->fatal ? "true" : "false");
    } else {
        printf("\n%ld pages, %ld errors, %ld redirects, %" PRIu64 " bytes in %.2f s: %.1f pages/s", c->pages,
               c->errors, c->redirects, c->bytes, secs, rate);
        if (left + c->cancelled > 0)
            printf(" (%ld URLs not fetched)", left + c->cancelled);
        printf("%s\n", c->interrupted && !c->fatal ? " - interrupted" : "");
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f, "usage: cfcrawl [--depth N] [--max-pages N] [--concurrency N] [--timeout S] [--json] URL...\n"
               "  --depth N        follow links at most N hops from a start URL (default 5, -1 = no limit)\n"
               "  --max-pages N    fetch at most N URLs (default 1000)\n"
               "  --concurrency N  transfers in flight, one worker thread each (default 8)\n"
               "  --timeout S      seconds allowed per transfer (default 10)\n"
               "  --json           one JSON object per URL, then a summary object\n"
               "Stays on the hosts (and ports) of the start URLs.\n");
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

/* Release the start URLs and sites, and the libraries' global state. */
static void free_start(crawl_conf *conf, char **norm, char **starts, int nstarts)
{
    for (int i = 0; i < nstarts; i++)
        curl_free(norm[i]);
    for (size_t i = 0; i < conf->nsites; i++)
        free(conf->sites[i].host);
    free(conf->sites);
    free(norm);
    free(starts);
    curl_global_cleanup();
    xmlCleanupParser();
}

int main(int argc, char **argv)
{
    static crawl c;
    c.conf = (crawl_conf){.max_depth = 5, .max_pages = 1000, .concurrency = 8, .timeout_ms = 10000};
    c.inflight.next = c.inflight.prev = &c.inflight;
    char **starts = xmalloc((size_t)argc * sizeof *starts);
    int nstarts = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int has_val = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(starts);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            c.conf.json = 1;
        } else if (strcmp(a, "--depth") == 0 && has_val && parse_long(argv[++i], -1, 1000000, &v) == 0) {
            c.conf.max_depth = (int)v;
        } else if (strcmp(a, "--max-pages") == 0 && has_val && parse_long(argv[++i], 1, 1000000000, &v) == 0) {
            c.conf.max_pages = v;
        } else if (strcmp(a, "--concurrency") == 0 && has_val && parse_long(argv[++i], 1, 1024, &v) == 0) {
            c.conf.concurrency = (int)v;
        } else if (strcmp(a, "--timeout") == 0 && has_val) {
            char *end;
            double s = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(s > 0 && s <= 86400)) {
                fprintf(stderr, "cfcrawl: bad --timeout '%s' (seconds, > 0)\n", argv[i]);
                free(starts);
                return 2;
            }
            c.conf.timeout_ms = (long)(s * 1000 + 0.5);
            if (c.conf.timeout_ms < 1)
                c.conf.timeout_ms = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--depth") == 0 || strcmp(a, "--max-pages") == 0 || strcmp(a, "--concurrency") == 0)
                fprintf(stderr, "cfcrawl: %s needs a number in range, got '%s'\n", a, has_val ? argv[i] : "");
            else
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

    xmlInitParser(); /* once, before the worker threads parse */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cfcrawl: curl_global_init failed\n");
        return 1;
    }
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    if (!(cv->features & CURL_VERSION_THREADSAFE) && !(cv->features & CURL_VERSION_ASYNCHDNS))
        fprintf(stderr, "cfcrawl: warning: this libcurl resolves names synchronously\n");

    /* Start URLs: normalised, and their hosts make the crawl's sites. */
    CURLU *u = curl_url();
    c.conf.sites = xmalloc((size_t)nstarts * sizeof *c.conf.sites);
    char **norm = xmalloc((size_t)nstarts * sizeof *norm);
    int bad = 0;
    for (int i = 0; i < nstarts; i++) {
        char *host = NULL, *port = NULL;
        norm[i] = resolve_url(NULL, u, NULL, starts[i]);
        if (!norm[i] || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
            fprintf(stderr, "cfcrawl: not an http(s) URL: %s\n", starts[i]);
            bad = 1;
        } else {
            c.conf.sites[c.conf.nsites++] = (site){.host = xstrdup(host), .port = strtol(port, NULL, 10)};
        }
        curl_free(host);
        curl_free(port);
    }
    curl_url_cleanup(u);
    if (bad) {
        free_start(&c.conf, norm, starts, nstarts);
        return 2;
    }

    c.ev = ev_default_loop(0);
    int rc = cf_loop_new(c.ev, &c.loop);
    cf_thread_pool_opts o;
    cf_thread_pool_opts_init(&o);
    o.max_workers = c.conf.concurrency;
    o.name_prefix = "cfcrawl";
    o.initializer = worker_init;
    o.finalizer = worker_fini;
    o.init_data = &c.conf;
    o.spin_us = 0; /* transfers block on the network: spinning would only burn CPU */
    if (rc == 0)
        rc = cf_thread_pool_new(c.loop, &o, &c.pool);
    if (rc != 0) {
        fprintf(stderr, "cfcrawl: cannot start: %s\n", cf_strerror(rc));
        return 1;
    }

    ev_signal_init(&c.sigint, on_signal, SIGINT);
    ev_signal_init(&c.sigterm, on_signal, SIGTERM);
    c.sigint.data = c.sigterm.data = &c;
    ev_signal_start(c.ev, &c.sigint);
    ev_signal_start(c.ev, &c.sigterm);
    c.tty = isatty(STDERR_FILENO);

    c.t0 = cf_now_ns();
    for (int i = 0; i < nstarts; i++)
        frontier_add(&c, norm[i], 0);
    pump(&c);
    if (c.running > 0)
        ev_run(c.ev, 0);
    progress(&c, 1);
    print_summary(&c);

    ev_signal_stop(c.ev, &c.sigint);
    ev_signal_stop(c.ev, &c.sigterm);
    cf_thread_pool_free(c.pool);
    ev_run(c.ev, 0); /* let callbacks of anything cancelled by the free run */
    rc = cf_loop_close(c.loop);
    if (rc != 0)
        fprintf(stderr, "cfcrawl: cf_loop_close: %s\n", cf_strerror(rc));
    for (int l = 0; l < 2; l++) {
        while (c.level[l].head) {
            job *j = c.level[l].head;
            c.level[l].head = j->next;
            job_free(j);
        }
    }
    url_set_free(&c.seen);
    free_start(&c.conf, norm, starts, nstarts);
    if (c.fatal)
        return 1;
    return c.interrupted ? 130 : 0;
}
