/*
 * slab.c - see slab.h.
 *
 * A block is CF__SLAB_BLOCK bytes, aligned to its size, so an object finds
 * its block by masking its address.  The block header holds the free list of
 * released objects, the bump pointer of objects never handed out, and the
 * count of live objects.  Blocks with released objects sit on a doubly
 * linked `partial` list.  Loop thread only: no locks.
 */
#include "slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define CF__SLAB_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF__SLAB_MALLOC 1
#endif
#endif

struct cf__slab_free {
    struct cf__slab_free *next;
};

struct cf__slab_block {
    struct cf__slab_block *next, *prev; /* on s->partial */
    struct cf__slab_free *free;         /* released objects */
    void *owner;                        /* the slab's owner */
    unsigned live;                      /* objects handed out */
    unsigned carved;                    /* objects ever handed out (bump) */
    int on_partial;
    char pad[64 - 4 * sizeof(void *) - 3 * sizeof(unsigned)];
};

#define HDR sizeof(struct cf__slab_block)

void cf__slab_init(struct cf__slab *s, size_t size, void *owner)
{
    memset(s, 0, sizeof(*s));
    s->owner = owner;
    s->size = (size + 7) & ~(size_t)7;
    s->per_block = (unsigned)((CF__SLAB_BLOCK - HDR) / s->size);
}

#ifdef CF__SLAB_MALLOC
/*
 * One malloc() per object.  Up to 4096 released objects are kept (their
 * memory stays readable, so a release of a released future is still detected
 * by its magic number rather than reported as a use after free).
 */
#define CF__SLAB_KEEP 4096u

#define PREFIX 16

void *cf__slab_owner(const void *p)
{
    void *owner;
    memcpy(&owner, (const char *)p - PREFIX, sizeof(owner));
    return owner;
}

void *cf__slab_alloc(struct cf__slab *s)
{
    void *p;
    if (s->partial) {
        struct cf__slab_free *o = (struct cf__slab_free *)s->partial;
        s->partial = (struct cf__slab_block *)o->next;
        s->blocks--;
        p = o;
    } else {
        char *m = malloc(PREFIX + s->size);
        if (!m)
            return NULL;
        memcpy(m, &s->owner, sizeof(s->owner));
        p = m + PREFIX;
    }
    s->live++;
    return p;
}

void cf__slab_free(struct cf__slab *s, void *p)
{
    s->live--;
    if (s->blocks < CF__SLAB_KEEP) {
        struct cf__slab_free *o = p;
        o->next = (struct cf__slab_free *)s->partial;
        s->partial = (struct cf__slab_block *)o;
        s->blocks++;
    } else {
        free((char *)p - PREFIX);
    }
}

void cf__slab_destroy(struct cf__slab *s)
{
    while (s->partial) {
        struct cf__slab_free *o = (struct cf__slab_free *)s->partial;
        s->partial = (struct cf__slab_block *)o->next;
        free((char *)o - PREFIX);
    }
    s->blocks = 0;
}
#else
static struct cf__slab_block *block_of(void *p)
{
    return (struct cf__slab_block *)((uintptr_t)p & ~(uintptr_t)(CF__SLAB_BLOCK - 1));
}

void *cf__slab_owner(const void *p)
{
    return block_of((void *)p)->owner;
}

static void partial_remove(struct cf__slab *s, struct cf__slab_block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        s->partial = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->next = b->prev = NULL;
    b->on_partial = 0;
}

static void release_block(struct cf__slab *s, struct cf__slab_block *b)
{
    s->blocks--;
    munmap(b, CF__SLAB_BLOCK);
}

/* A block aligned to its size: map twice the size, unmap the slack around it. */
static struct cf__slab_block *map_block(void)
{
    size_t sz = CF__SLAB_BLOCK;
    char *p = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)p + sz - 1) & ~(uintptr_t)(sz - 1);
    size_t head = a - (uintptr_t)p;
    if (head)
        munmap(p, head);
    if (sz - head)
        munmap((char *)a + sz, sz - head);
    return (struct cf__slab_block *)a;
}

void *cf__slab_alloc(struct cf__slab *s)
{
    struct cf__slab_block *b = s->partial;

    if (b) {
        struct cf__slab_free *o = b->free;
        b->free = o->next;
        b->live++;
        if (!b->free)
            partial_remove(s, b);
        s->live++;
        return o;
    }
    b = s->fresh;
    if (!b || b->carved == s->per_block) {
        if (s->spare) {
            b = s->spare;
            s->spare = NULL;
        } else {
            b = map_block();
            if (!b)
                return NULL;
            s->blocks++;
        }
        memset(b, 0, HDR);
        b->owner = s->owner;
        s->fresh = b;
    }
    void *p = (char *)b + HDR + (size_t)b->carved * s->size;
    b->carved++;
    b->live++;
    s->live++;
    return p;
}

void cf__slab_free(struct cf__slab *s, void *p)
{
    struct cf__slab_block *b = block_of(p);
    struct cf__slab_free *o = p;

    s->live--;
    if (--b->live == 0 && b != s->fresh) {
        /* Every object of a finished block is back: return it (or keep it as the spare). */
        if (b->on_partial)
            partial_remove(s, b);
        if (s->spare)
            release_block(s, s->spare);
        s->spare = b;
        return;
    }
    o->next = b->free;
    b->free = o;
    if (!b->on_partial) {
        b->next = s->partial;
        b->prev = NULL;
        if (s->partial)
            s->partial->prev = b;
        s->partial = b;
        b->on_partial = 1;
    }
}

void cf__slab_destroy(struct cf__slab *s)
{
    while (s->partial) {
        struct cf__slab_block *b = s->partial;
        partial_remove(s, b);
        if (b != s->fresh)
            release_block(s, b);
    }
    if (s->fresh)
        release_block(s, s->fresh);
    if (s->spare)
        release_block(s, s->spare);
    s->fresh = s->spare = NULL;
}
#endif
