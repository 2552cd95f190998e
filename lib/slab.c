/*
 * slab.c - fixed-size object allocator (see slab.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"
#include "slab.h"
#include "tsa.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

struct cf__slab {
    struct cf__slab *next, *prev; /* in the cache's partial list */
    void *free;                   /* freed objects of this block */
    char *bump;                   /* first never-used object */
    char *end;                    /* past the last whole object */
    size_t nfree;                 /* free objects, bump part included */
    size_t nobj;
    int on_partial;
    int huge; /* the helper asked for a huge page for it (filler_main()) */
};

#define SLAB_HDR ((sizeof(struct cf__slab) + 63) & ~(size_t)63)

static struct cf__slab *slab_of(void *obj)
{
    return (struct cf__slab *)((uintptr_t)obj & ~(uintptr_t)(CF__SLAB_SIZE - 1));
}

/* CF__SLAB_SIZE bytes aligned to CF__SLAB_SIZE, straight from the kernel;
 * `populate`: faulted in by one system call instead of page by page.
 * `huge` (with populate): as one transparent huge page where the system
 * allows it (THP "madvise" mode): one 2 MiB page costs the kernel one
 * allocation and one clear instead of 512 faults, page-table entries and
 * LRU insertions, and returns to it as cheaply; the RSS is the same, a
 * populated block being resident in full either way.  Only the fill-ahead
 * helper asks for it: where free 2 MiB pages are handed back to a
 * hypervisor (free page reporting), clearing one can take ten times as
 * long while the host faults it in again, a delay the loop thread must not
 * take when it maps a block itself (the helper failed); 4 KiB pages come
 * from memory the guest still holds. */
static void *slab_map(int populate, int huge)
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
    if (populate && huge) /* best effort: without it, 4 KiB pages */
        madvise(aligned, CF__SLAB_SIZE, MADV_HUGEPAGE);
#else
    (void)huge;
#endif
#ifdef MADV_POPULATE_WRITE
    if (populate)
        madvise(aligned, CF__SLAB_SIZE, MADV_POPULATE_WRITE); /* best effort */
#else
    (void)populate;
#endif
    return aligned;
}

/* ------------------------------------------------------------------ filling ahead */

struct cf__slab_filler {
    pthread_t tid;
    cf__mutex_t mu;
    pthread_cond_t cv;       /* the helper waits for room or for quit */
    pthread_cond_t cv_ready; /* the loop waits for a block */
    /* Under mu. */
    int quit;
    int failed; /* the helper's last mapping failed (out of memory) */
    int nready;
    void *ready[CF__SLAB_FILL_AHEAD]; /* mapped, faulted-in blocks, not yet taken */
    struct cf__slab *dead;            /* emptied blocks to return to the system (via next) */
};

/* CPU time of the calling thread, in ns (0 if unavailable). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What faulting in a block of 4 KiB pages costs, about (0.5-1 ms on a 2026
 * VM): a huge page that took longer is tried against them. */
#define FILL_SMALL_GUESS_NS 1000000u
/* While huge pages cost less, small ones are tried again every this many blocks. */
#define FILL_PROBE_EVERY 16u
/* While huge pages cost more, they are tried again every this many blocks,
 * or as soon as the helper has returned a huge block (see filler_main()). */
#define FILL_PROBE_COLD 64u

/*
 * The helper thread.  Huge or small pages: a huge page is usually several
 * times cheaper to fault in (~0.2 ms for 2 MiB against 0.5-1 ms of 4 KiB
 * pages on a 2026 VM), but where the hypervisor takes free 2 MiB pages
 * back (free page reporting, a couple of seconds after they were freed) it
 * costs 4-6 ms while the host faults it in again.  So the helper times each
 * block (its own CPU time, which includes such stalls) and keeps using the
 * kind that cost less.  While huge pages are cheaper it tries small ones
 * again every FILL_PROBE_EVERY blocks.  Once a huge page was expensive the
 * supply of recently freed ones is used up, and it stays so until more are
 * freed: the helper tries a huge page again only after it has returned a
 * huge block itself (whose page the kernel hands out again, still backed),
 * or after FILL_PROBE_COLD blocks, so a burst on a cold machine does not pay
 * a 5 ms probe every 16 blocks.
 */
static void *filler_main(void *arg)
{
    struct cf__slab_filler *fl = arg;
    uint64_t ns_huge = 0, ns_small = 0;
    unsigned nmapped = 0, next_probe = FILL_PROBE_EVERY, huge_freed = 0;
    int huge = 1, prefer = 1;

#ifdef HAVE_PTHREAD_SETNAME_NP
    pthread_setname_np(pthread_self(), "cf-slab");
#endif
    cf__mutex_lock(&fl->mu);
    for (;;) {
        void *b;

        while (!fl->quit && fl->nready == CF__SLAB_FILL_AHEAD && !fl->dead)
            cf__cond_wait(&fl->cv, &fl->mu);
        if (fl->quit)
            break;
        if (fl->dead) { /* munmap() costs the loop as much as faulting in */
            struct cf__slab *d = fl->dead;
            fl->dead = d->next;
            cf__mutex_unlock(&fl->mu);
            huge_freed += d->huge;
            munmap(d, CF__SLAB_SIZE);
            cf__mutex_lock(&fl->mu);
            continue;
        }
        cf__mutex_unlock(&fl->mu);
        {
            uint64_t t0 = thread_cpu_ns(), dt;
            int prefer_huge; /* which kind cost less when last measured */

            b = slab_map(1, huge);
            dt = thread_cpu_ns() - t0;
            if (b) {
                ((struct cf__slab *)b)->huge = huge;
                if (t0 && huge)
                    ns_huge = dt;
                else if (t0)
                    ns_small = dt;
            }
            if (huge)
                huge_freed = 0; /* what was freed before this one no longer tells */
            prefer_huge = !ns_huge || ns_huge <= (ns_small ? ns_small : FILL_SMALL_GUESS_NS);
            if (prefer_huge != prefer) { /* the other kind's turn comes after a full interval */
                prefer = prefer_huge;
                next_probe = nmapped + (prefer ? FILL_PROBE_EVERY : FILL_PROBE_COLD);
            }
            if (++nmapped >= next_probe) { /* try the other kind once */
                huge = !prefer;
                next_probe = nmapped + (prefer ? FILL_PROBE_EVERY : FILL_PROBE_COLD);
            } else {
                huge = prefer || huge_freed;
            }
        }
        cf__mutex_lock(&fl->mu);
        if (b)
            fl->ready[fl->nready++] = b;
        else
            fl->failed = 1; /* out of memory: the loop maps its own, then asks again */
        pthread_cond_signal(&fl->cv_ready);
        if (!b && !fl->quit)
            cf__cond_wait(&fl->cv, &fl->mu);
    }
    cf__mutex_unlock(&fl->mu);
    return NULL;
}

/* Start the helper; NULL (and no retry) if a thread cannot be had. */
static struct cf__slab_filler *filler_start(void)
{
    struct cf__slab_filler *fl = calloc(1, sizeof(*fl));
    sigset_t all, old;
    int rc;

    if (!fl)
        return NULL;
    cf__mutex_init(&fl->mu);
    pthread_cond_init(&fl->cv, NULL);
    pthread_cond_init(&fl->cv_ready, NULL);
    sigfillset(&all); /* signals go to the application's threads */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&fl->tid, NULL, filler_main, fl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&fl->cv_ready);
        pthread_cond_destroy(&fl->cv);
        pthread_mutex_destroy(&fl->mu);
        free(fl);
        return NULL;
    }
    return fl;
}

static void filler_stop(struct cf__slab_filler *fl)
{
    cf__mutex_lock(&fl->mu);
    fl->quit = 1;
    pthread_cond_signal(&fl->cv);
    cf__mutex_unlock(&fl->mu);
    pthread_join(fl->tid, NULL);
    while (fl->nready)
        munmap(fl->ready[--fl->nready], CF__SLAB_SIZE);
    while (fl->dead) {
        struct cf__slab *d = fl->dead;
        fl->dead = d->next;
        munmap(d, CF__SLAB_SIZE);
    }
    pthread_cond_destroy(&fl->cv_ready);
    pthread_cond_destroy(&fl->cv);
    pthread_mutex_destroy(&fl->mu);
    free(fl);
}

/*
 * A block the helper prepared, waiting for the one it is preparing if none
 * is ready; NULL when it could not map one (the caller then tries itself).
 * Waiting beats mapping a block here: the helper, faulting its block in,
 * holds the process's mmap lock for reading, and the mmap() of a block of
 * our own would wait for that lock anyway, then do the same work again.
 */
static void *filler_take(struct cf__slab_cache *c)
{
    struct cf__slab_filler *fl = c->filler;
    void *b;

    if (!fl) {
        if (c->fill_ahead != 1)
            return NULL;
        c->fill_ahead = 2; /* started once: a failure is not retried */
        fl = c->filler = filler_start();
        if (!fl)
            return NULL;
    }
    cf__mutex_lock(&fl->mu);
    while (!fl->nready && !fl->failed)
        cf__cond_wait(&fl->cv_ready, &fl->mu);
    b = fl->nready ? fl->ready[--fl->nready] : NULL;
    fl->failed = 0;
    pthread_cond_signal(&fl->cv); /* room for another, or try again */
    cf__mutex_unlock(&fl->mu);
    return b;
}

int cf__slab_fill_ready(struct cf__slab_cache *c)
{
    int n = 0;

    if (c->filler) {
        cf__mutex_lock(&c->filler->mu);
        n = c->filler->nready;
        cf__mutex_unlock(&c->filler->mu);
    }
    return n;
}

void cf__slab_fill_ahead(struct cf__slab_cache *c)
{
    if (!c->fill_ahead)
        c->fill_ahead = 1;
}

/* ------------------------------------------------------------------ the cache */

void cf__slab_init(struct cf__slab_cache *c, size_t obj_size)
{
    if (obj_size < sizeof(void *))
        obj_size = sizeof(void *);
    c->obj_size = (obj_size + 7) & ~(size_t)7;
    c->partial = NULL;
    c->spare = NULL;
    c->live = 0;
    c->fill_ahead = 0;
    c->filler = NULL;
}

void cf__slab_fini(struct cf__slab_cache *c)
{
    CF_ASSERT(c->live == 0, "slab cache released with objects in use");
    if (c->filler)
        filler_stop(c->filler);
    c->filler = NULL;
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
    s = c->live > 0 ? filler_take(c) : NULL;
    if (!s)
        s = slab_map(c->live > 0, 0);
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
        if (c->spare && c->filler) { /* the helper returns it */
            cf__mutex_lock(&c->filler->mu);
            s->next = c->filler->dead;
            c->filler->dead = s;
            pthread_cond_signal(&c->filler->cv);
            cf__mutex_unlock(&c->filler->mu);
        } else if (c->spare) {
            munmap(s, CF__SLAB_SIZE);
        } else {
            c->spare = s;
        }
    }
}
