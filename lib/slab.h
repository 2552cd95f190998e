/*
 * slab.h - fixed-size object allocator for one thread (the loop thread).
 *
 * Futures and callback nodes are allocated and released at a high rate, and a
 * burst can keep a million of them alive at once.  A slab hands them out of
 * 64 KiB blocks: no per-object malloc header (a pending future costs its own
 * size), no malloc call on the hot path, and released objects are reused
 * first from the fullest blocks' free lists.  A block whose objects are all
 * released is given back to the system, except one kept as a spare, so a
 * burst does not pin its peak memory.
 *
 * Objects are 8-byte aligned.  Under AddressSanitizer every object is its own
 * malloc() (with the owner in a 16-byte prefix) so that use after release is
 * still caught.
 */
#ifndef CF_SLAB_H
#define CF_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define CF__SLAB_BLOCK 65536u

struct cf__slab_block;

struct cf__slab {
    void *owner;                    /* returned by cf__slab_owner() for every object */
    size_t size;                    /* object size, a multiple of 8 */
    unsigned per_block;             /* objects per block */
    struct cf__slab_block *partial; /* blocks with released objects to reuse */
    struct cf__slab_block *fresh;   /* block being carved (bump allocation) */
    struct cf__slab_block *spare;   /* one empty block kept for the next burst */
    size_t live;                    /* objects handed out */
    size_t blocks;                  /* blocks held from the system */
};

void cf__slab_init(struct cf__slab *s, size_t size, void *owner);
/* The owner of the slab that `p` came from. */
void *cf__slab_owner(const void *p);
void *cf__slab_alloc(struct cf__slab *s);
void cf__slab_free(struct cf__slab *s, void *p);
/* Give every block back; only valid when no object is live. */
void cf__slab_destroy(struct cf__slab *s);

#endif /* CF_SLAB_H */
