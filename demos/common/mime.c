/* demos/common/mime.c - see mime.h.  A sorted array searched with bsearch(). */
/* Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE. */
#define _GNU_SOURCE
#include "mime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *ext;
    const char *type; /* points into types[] */
    size_t order;     /* position in the file: the first listing of an extension wins */
} entry;

struct demo_mime {
    entry *e;
    size_t n, cap;
    char **types;
    size_t ntypes, types_cap;
};

static int by_ext(const void *a, const void *b)
{
    return strcasecmp(((const entry *)a)->ext, ((const entry *)b)->ext);
}

static int by_ext_order(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcasecmp(x->ext, y->ext);
    return c ? c : x->order < y->order ? -1 : x->order > y->order;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

void demo_mime_free(demo_mime *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].ext);
    for (size_t i = 0; i < m->ntypes; i++)
        free(m->types[i]);
    free(m->e);
    free(m->types);
    free(m);
}

int demo_mime_load(const char *path, demo_mime **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    demo_mime *m = calloc(1, sizeof(*m));
    char *line = NULL;
    size_t cap = 0;
    int rc = m ? 0 : -ENOMEM;

    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        char *save = NULL, *type = strtok_r(line, " \t\r\n", &save);
        if (!type || type[0] == '#' || !strchr(type, '/'))
            continue;
        char *ext = strtok_r(NULL, " \t\r\n", &save);
        if (!ext)
            continue;
        if ((rc = grow((void **)&m->types, &m->types_cap, m->ntypes + 1, sizeof(char *))) != 0)
            break;
        if (!(m->types[m->ntypes] = strdup(type))) {
            rc = -ENOMEM;
            break;
        }
        const char *t = m->types[m->ntypes++];
        for (; ext && ext[0] != '#'; ext = strtok_r(NULL, " \t\r\n", &save)) {
            if ((rc = grow((void **)&m->e, &m->cap, m->n + 1, sizeof(entry))) != 0)
                break;
            if (!(m->e[m->n].ext = strdup(ext))) {
                rc = -ENOMEM;
                break;
            }
            m->e[m->n].order = m->n;
            m->e[m->n++].type = t;
        }
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    free(line);
    fclose(f);
    if (rc != 0) {
        demo_mime_free(m);
        return rc;
    }
    qsort(m->e, m->n, sizeof(entry), by_ext_order);
    size_t kept = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (kept > 0 && strcasecmp(m->e[kept - 1].ext, m->e[i].ext) == 0) {
            free(m->e[i].ext);
            continue;
        }
        m->e[kept++] = m->e[i];
    }
    m->n = kept;
    *out = m;
    return 0;
}

const char *demo_mime_lookup(const demo_mime *m, const char *path)
{
    if (!m || m->n == 0)
        return NULL;
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot || !dot[1])
        return NULL;
    entry key = {.ext = (char *)(dot + 1)};
    const entry *e = bsearch(&key, m->e, m->n, sizeof(entry), by_ext);
    return e ? e->type : NULL;
}

size_t demo_mime_count(const demo_mime *m)
{
    return m ? m->n : 0;
}
