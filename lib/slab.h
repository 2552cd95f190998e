/*
 * slab.h - fixed-size object allocator for one thread (the loop thread).
 *
 * Objects are carved out of blocks of CF__SLAB_SIZE bytes aligned to their
 * size, so an object's block is found by masking its address and no object
 * carries an allocator header.  Each block keeps its own free list and count;
 * blocks with free objects are on the cache's `partial` list, and new objects
 * come from the most recently used one.  A block whose objects are all free
 * again is kept as the cache's single spare or returned to the system, so a
 * burst of a million futures does not pin its memory afterwards.
 *
 * A fresh block hands out objects in address order (a bump pointer over its
 * never-used part), so pages are touched only as they are needed.  A freed
 * object's first pointer-sized word holds the free-list link; the allocator
 * writes nothing else in it, so a released future keeps its zero reference
 * count.
 * Not thread-safe: one cache per loop, used on the loop thread.
 *
 * Filling ahead (opt-in, cf__slab_fill_ahead(); the loop's futures cache).
 * Faulting in a block (2 MiB of pages the kernel must clear) costs more than
 * handing out its objects, and it fell on the loop thread in the middle of
 * a burst.  Once such a cache needs a second block, it starts one helper
 * thread ("cf-slab", every signal blocked) that maps and faults in the next
 * blocks while the loop fills the current one, keeping CF__SLAB_FILL_AHEAD
 * of them prepared: whenever the loop takes one, the helper prepares
 * another.  It also returns the cache's emptied blocks to the system (an
 * munmap() costs about as much as faulting a block in).  The loop and the
 * helper share only `filler` (a mutex, a condition variable, the prepared
 * blocks and the emptied ones); the helper touches no cache field.  If no
 * block is ready, the loop waits for the one the helper is faulting in (an
 * mmap() of its own would wait for the helper's hold on the process's mmap
 * lock anyway); only when the helper could not map one (out of memory) or
 * could not be started does the loop map a block itself, as without it.
 * The helper's blocks are transparent huge pages where the system allows
 * and they cost less than 4 KiB pages (see filler_main() in slab.c).  At
 * most CF__SLAB_FILL_AHEAD blocks (4 MiB) are held ahead; they are released
 * with the cache, and cf__slab_fini() stops and joins the helper.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_SLAB_H
#define CF_SLAB_H

#include <stddef.h>
#include <stdint.h>

/* Large blocks make a burst cheap: each block costs an mmap() and, when it
 * empties, an munmap() that flushes the TLB of every CPU running one of the
 * process's threads; 2 MiB blocks do that 8 times less often than 256 KiB
 * ones for the same objects.  Pages are still touched only as used. */
#define CF__SLAB_SIZE ((size_t)2 * 1024 * 1024)

/* Blocks a cache that fills ahead keeps prepared: two, so that one late
 * wake-up of its helper on a busy machine does not leave the loop without. */
#define CF__SLAB_FILL_AHEAD 2

struct cf__slab;
struct cf__slab_filler;

struct cf__slab_cache {
    size_t obj_size;
    struct cf__slab *partial; /* blocks with a free object, most recently used first */
    struct cf__slab *spare;   /* one completely free block kept for reuse */
    size_t live;              /* objects handed out */
    int fill_ahead;           /* cf__slab_fill_ahead() was called */
    struct cf__slab_filler *filler; /* its helper, once started (NULL if it could not be) */
};

/* obj_size is rounded up to a multiple of 8 (at least one pointer). */
void cf__slab_init(struct cf__slab_cache *c, size_t obj_size);
/* Let a helper thread fault in the next block ahead of need (see above). */
void cf__slab_fill_ahead(struct cf__slab_cache *c);
/* Blocks the helper has ready now (0 before it started); for tests. */
int cf__slab_fill_ready(struct cf__slab_cache *c);
/* Release every block and stop the helper; every object must have been freed. */
void cf__slab_fini(struct cf__slab_cache *c);
/* An object (contents undefined), or NULL when out of memory. */
void *cf__slab_alloc(struct cf__slab_cache *c);
/* Return an object; its first pointer-sized word is overwritten. */
void cf__slab_free(struct cf__slab_cache *c, void *obj);

#endif /* CF_SLAB_H */
