/*
 * slab.c - fixed-size object allocator (see slab.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"
#include "slab.h"

#include <sys/mman.h>

struct cf__slab {
    struct cf__slab *next, *prev; /* in the cache's partial list */
    void *free;                   /* freed objects of this block */
    char *bump;                   /* first never-used object */
    char *end;                    /* past the last whole object */
    size_t nfree;                 /* free objects, bump part included */
    size_t nobj;
    int on_partial;
};

#define SLAB_HDR ((sizeof(struct cf__slab) + 63) & ~(size_t)63)

static struct cf__slab *slab_of(void *obj)
{
    return (struct cf__slab *)((uintptr_t)obj & ~(uintptr_t)(CF__SLAB_SIZE - 1));
}

/* CF__SLAB_SIZE bytes aligned to CF__SLAB_SIZE, straight from the kernel;
 * `populate`: faulted in by one system call instead of page by page, as one
 * transparent huge page where the system allows it (THP "madvise" mode): the
 * block is filled whole anyway, and one 2 MiB page costs the kernel one
 * allocation and one clear instead of 512 faults, page-table entries and
 * LRU insertions, and returns to it as cheaply.  A burst of a million
 * futures spent more than half its loop-thread time in those.  The RSS is
 * the same: a populated block is resident in full either way. */
static void *slab_map(int populate)
{
    size_t len = 2 * CF__SLAB_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *aligned;
    size_t head, tail;

    if (p == MAP_FAILED)
        return NULL;
    aligned = (char *)(((uintptr_t)p + CF__SLAB_SIZE - 1) & ~(uintptr_t)(CF__SLAB_SIZE - 1));
    head = (size_t)(aligned - p);
    tail = len - head - CF__SLAB_SIZE;
    if (head)
        munmap(p, head);
    if (tail)
        munmap(aligned + CF__SLAB_SIZE, tail);
#ifdef MADV_NOHUGEPAGE
    if (!populate) /* where huge pages are the default, a few objects would pin a whole block */
        madvise(aligned, CF__SLAB_SIZE, MADV_NOHUGEPAGE);
#endif
#ifdef MADV_HUGEPAGE
    if (populate) /* best effort: without it, 4 KiB pages */
        madvise(aligned, CF__SLAB_SIZE, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
    if (populate)
        madvise(aligned, CF__SLAB_SIZE, MADV_POPULATE_WRITE); /* best effort */
#else
    (void)populate;
#endif
    return aligned;
}

void cf__slab_init(struct cf__slab_cache *c, size_t obj_size)
{
    if (obj_size < sizeof(void *))
        obj_size = sizeof(void *);
    c->obj_size = (obj_size + 7) & ~(size_t)7;
    c->partial = NULL;
    c->spare = NULL;
    c->live = 0;
}

void cf__slab_fini(struct cf__slab_cache *c)
{
    CF_ASSERT(c->live == 0, "slab cache released with objects in use");
    while (c->partial) {
        struct cf__slab *s = c->partial;
        c->partial = s->next;
        munmap(s, CF__SLAB_SIZE);
    }
    if (c->spare)
        munmap(c->spare, CF__SLAB_SIZE);
    c->spare = NULL;
}

static void partial_push(struct cf__slab_cache *c, struct cf__slab *s)
{
    s->prev = NULL;
    s->next = c->partial;
    if (c->partial)
        c->partial->prev = s;
    c->partial = s;
    s->on_partial = 1;
}

static void partial_remove(struct cf__slab_cache *c, struct cf__slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_partial = 0;
}

static struct cf__slab *slab_new(struct cf__slab_cache *c)
{
    struct cf__slab *s = c->spare;

    if (s) {
        c->spare = NULL;
        return s;
    }
    /* The first block fills page by page (a loop with a few futures touches
     * little); once a cache needs more blocks it is filling fast. */
    s = slab_map(c->live > 0);
    if (!s)
        return NULL;
    s->free = NULL;
    s->bump = (char *)s + SLAB_HDR;
    s->nobj = (CF__SLAB_SIZE - SLAB_HDR) / c->obj_size;
    s->end = s->bump + s->nobj * c->obj_size;
    s->nfree = s->nobj;
    return s;
}

void *cf__slab_alloc(struct cf__slab_cache *c)
{
    struct cf__slab *s = c->partial;
    void *obj;

    if (!s) {
        s = slab_new(c);
        if (!s)
            return NULL;
        partial_push(c, s);
    }
    if (s->free) {
        obj = s->free;
        s->free = *(void **)obj;
    } else {
        obj = s->bump;
        s->bump += c->obj_size;
    }
    if (--s->nfree == 0)
        partial_remove(c, s);
    c->live++;
    return obj;
}

void cf__slab_free(struct cf__slab_cache *c, void *obj)
{
    struct cf__slab *s = slab_of(obj);

    *(void **)obj = s->free;
    s->free = obj;
    c->live--;
    if (++s->nfree == 1) {
        partial_push(c, s);
        return;
    }
    if (s->nfree == s->nobj) {
        /* Completely free: keep it as the spare unless it is the only block in use. */
        if (c->partial == s && !s->next)
            return;
        partial_remove(c, s);
        if (c->spare) {
            munmap(s, CF__SLAB_SIZE);
        } else {
            c->spare = s;
        }
    }
}
