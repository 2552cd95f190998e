/*
 * test_slab.c - the per-loop fixed-size object allocator (lib/slab.c).
 *
 * Linked with -Wl,--wrap=mmap,--wrap=munmap: the wrappers count the bytes the
 * allocator holds from the kernel (so "a free block is kept as the one spare
 * or returned" is checked, not assumed) and can refuse a mapping.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "slab.h"

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);

/* Atomics: a cache that fills ahead maps from its helper thread too. */
static atomic_long mapped;     /* bytes mapped through the wrappers and not unmapped */
static atomic_int refuse_mmap; /* the next mmap calls fail with ENOMEM */
static pthread_t test_thread;  /* its mmap calls are counted in test_thread_maps */
static atomic_int test_thread_maps;

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p;

    if (refuse_mmap) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED)
        atomic_fetch_add(&mapped, (long)len);
    if (pthread_equal(pthread_self(), test_thread))
        atomic_fetch_add(&test_thread_maps, 1);
    return p;
}

int __wrap_munmap(void *addr, size_t len)
{
    int rc = __real_munmap(addr, len);

    if (rc == 0)
        atomic_fetch_sub(&mapped, (long)len);
    return rc;
}

#define BLOCK ((long)CF__SLAB_SIZE)

static uintptr_t block_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(CF__SLAB_SIZE - 1);
}

static void test_sizes_are_rounded(void **state)
{
    struct cf__slab_cache c;

    (void)state;
    cf__slab_init(&c, 1);
    assert_int_equal(c.obj_size, sizeof(void *)); /* room for the free-list link */
    cf__slab_fini(&c);
    cf__slab_init(&c, 13);
    assert_int_equal(c.obj_size, 16);
    cf__slab_fini(&c);
    cf__slab_init(&c, 120);
    assert_int_equal(c.obj_size, 120);
    cf__slab_fini(&c);
    assert_int_equal(mapped, 0); /* nothing mapped before the first object */
}

static void test_objects_are_distinct_and_reused_last_freed_first(void **state)
{
    struct cf__slab_cache c;
    char *a, *b, *d;

    (void)state;
    cf__slab_init(&c, 40);
    a = cf__slab_alloc(&c);
    b = cf__slab_alloc(&c);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(mapped, BLOCK); /* one block, aligned to its size */
    assert_int_equal(block_of(a), block_of(b));
    assert_int_equal((uintptr_t)a % 8, 0);
    assert_true(b >= a + 40 || a >= b + 40); /* no overlap */
    assert_int_equal(c.live, 2);
    memset(a, 0xAA, 40);
    memset(b, 0xBB, 40);
    /* Freeing overwrites only the first pointer-sized word (a released
     * future keeps its zero reference count further in). */
    cf__slab_free(&c, a);
    assert_int_equal(c.live, 1);
    for (size_t i = sizeof(void *); i < 40; i++)
        assert_int_equal((unsigned char)a[i], 0xAA);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal((unsigned char)b[i], 0xBB);
    d = cf__slab_alloc(&c);
    assert_ptr_equal(d, a); /* the last freed object comes back first */
    cf__slab_free(&c, d);
    cf__slab_free(&c, b);
    assert_int_equal(c.live, 0);
    cf__slab_fini(&c);
    assert_int_equal(mapped, 0);
}

/* Many blocks' worth, freed again: at most the block in use and one spare stay. */
static void test_free_blocks_go_back(void **state)
{
    struct cf__slab_cache c;
    size_t per_block = (CF__SLAB_SIZE - 64) / 128, n = per_block * 5 + 7;
    char **objs = malloc(n * sizeof(*objs));

    (void)state;
    assert_non_null(objs);
    cf__slab_init(&c, 128);
    for (size_t i = 0; i < n; i++) {
        objs[i] = cf__slab_alloc(&c);
        assert_non_null(objs[i]);
        memcpy(objs[i] + 8, &i, sizeof(i)); /* each object remembers who it is */
    }
    assert_int_equal(c.live, n);
    assert_true(mapped >= 6 * BLOCK && mapped <= 7 * BLOCK);
    for (size_t i = 0; i < n; i++) {
        size_t who;
        memcpy(&who, objs[i] + 8, sizeof(who));
        assert_int_equal(who, i); /* no object was handed out twice */
    }
    /* Free every other object: no block becomes empty, nothing is returned. */
    for (size_t i = 0; i < n; i += 2)
        cf__slab_free(&c, objs[i]);
    assert_true(mapped >= 6 * BLOCK);
    for (size_t i = 1; i < n; i += 2)
        cf__slab_free(&c, objs[i]);
    assert_int_equal(c.live, 0);
    assert_true(mapped <= 2 * BLOCK); /* the last block in use and one spare */
    /* The spare is used again before anything new is mapped. */
    long before = mapped;
    for (size_t i = 0; i < 2 * per_block; i++)
        objs[i] = cf__slab_alloc(&c);
    assert_int_equal(mapped, before);
    for (size_t i = 0; i < 2 * per_block; i++)
        cf__slab_free(&c, objs[i]);
    cf__slab_fini(&c);
    assert_int_equal(mapped, 0);
    free(objs);
}

/* Filling ahead: a helper thread maps and faults in the next block while
 * the cache fills one; the block it prepared is used, and the cache's fini
 * stops the helper and returns everything, the prepared block included. */
static void test_fill_ahead_prepares_and_returns_everything(void **state)
{
    struct cf__slab_cache c;
    size_t per_block = (CF__SLAB_SIZE - 64) / 128, n = per_block * 3 + 7;
    char **objs = malloc((n + per_block) * sizeof(*objs));
    int threads;
    long spins = 0;

    (void)state;
    assert_non_null(objs);
    test_thread = pthread_self();
    atomic_store(&test_thread_maps, 0);
    cf__slab_init(&c, 128);
    cf__slab_fill_ahead(&c);
    for (size_t i = 0; i < n; i++) {
        objs[i] = cf__slab_alloc(&c);
        assert_non_null(objs[i]);
        memcpy(objs[i] + 8, &i, sizeof(i));
    }
    assert_non_null(c.filler); /* started when the second block was needed */
    /* (Counted with the helper alive: a sanitizer may start a thread of its
     * own with the process's second one.) */
    threads = count_dir_entries("/proc/self/task");
    /* Four blocks in use; the helper prepares CF__SLAB_FILL_AHEAD more and
     * no more (waiting for them is waiting for the helper's work, not for
     * time to pass). */
    while (cf__slab_fill_ready(&c) < CF__SLAB_FILL_AHEAD && spins++ < 10000000)
        sched_yield();
    assert_int_equal(cf__slab_fill_ready(&c), CF__SLAB_FILL_AHEAD);
    assert_int_equal(atomic_load(&mapped), (4 + CF__SLAB_FILL_AHEAD) * BLOCK);
    /* One more block's worth: the cache takes a prepared block, and the
     * helper prepares another. */
    for (size_t i = n; i < n + per_block; i++) {
        objs[i] = cf__slab_alloc(&c);
        assert_non_null(objs[i]);
        memcpy(objs[i] + 8, &i, sizeof(i));
    }
    while (cf__slab_fill_ready(&c) < CF__SLAB_FILL_AHEAD && spins++ < 10000000)
        sched_yield();
    assert_int_equal(atomic_load(&mapped), (5 + CF__SLAB_FILL_AHEAD) * BLOCK); /* five in use, the rest prepared */
    /* The cache mapped only its first block itself: it waited for the
     * helper's blocks rather than map its own. */
    assert_int_equal(atomic_load(&test_thread_maps), 1);
    for (size_t i = 0; i < n + per_block; i++) {
        size_t who;
        memcpy(&who, objs[i] + 8, sizeof(who));
        assert_int_equal(who, i); /* no object was handed out twice */
        cf__slab_free(&c, objs[i]);
    }
    cf__slab_fini(&c);
    assert_int_equal(atomic_load(&mapped), 0);
    assert_int_equal(count_dir_entries("/proc/self/task"), threads - 1); /* the helper was joined */
    free(objs);
}

/* The helper's mapping refused: the cache tries its own, returns NULL when
 * that is refused too, and fills ahead again once memory is back. */
static void test_fill_ahead_out_of_memory(void **state)
{
    struct cf__slab_cache c;
    size_t per_block = (CF__SLAB_SIZE - 64) / 128, n = 0;
    char **objs = malloc((per_block * (3 + CF__SLAB_FILL_AHEAD) + 2) * sizeof(*objs));
    long spins = 0;

    (void)state;
    assert_non_null(objs);
    cf__slab_init(&c, 128);
    cf__slab_fill_ahead(&c);
    while (n < per_block + 1) /* the second block comes from the helper */
        assert_non_null(objs[n++] = cf__slab_alloc(&c));
    while (cf__slab_fill_ready(&c) < CF__SLAB_FILL_AHEAD && spins++ < 10000000)
        sched_yield();
    assert_int_equal(atomic_load(&mapped), (2 + CF__SLAB_FILL_AHEAD) * BLOCK);
    refuse_mmap = 1;
    while (n < per_block * (2 + CF__SLAB_FILL_AHEAD)) /* the prepared blocks still serve */
        assert_non_null(objs[n++] = cf__slab_alloc(&c));
    assert_null(cf__slab_alloc(&c)); /* neither the helper nor the cache gets a block */
    refuse_mmap = 0;
    assert_non_null(objs[n++] = cf__slab_alloc(&c));
    while (n)
        cf__slab_free(&c, objs[--n]);
    cf__slab_fini(&c);
    assert_int_equal(atomic_load(&mapped), 0);
    free(objs);
}

/* A refused mapping is a NULL object; the cache stays usable. */
static void test_out_of_memory(void **state)
{
    struct cf__slab_cache c;
    void *a, *b;

    (void)state;
    cf__slab_init(&c, 64);
    refuse_mmap = 1;
    assert_null(cf__slab_alloc(&c));
    assert_int_equal(c.live, 0);
    refuse_mmap = 0;
    a = cf__slab_alloc(&c);
    assert_non_null(a);
    cf__slab_free(&c, a);
    b = cf__slab_alloc(&c);
    assert_ptr_equal(a, b);
    cf__slab_free(&c, b);
    cf__slab_fini(&c);
    assert_int_equal(mapped, 0);
}

/* Random allocations and frees against a shadow list of live objects. */
static void test_random_churn(void **state)
{
    struct cf__slab_cache c;
    enum { SLOTS = 50000, STEPS = 400000 };
    uint32_t **live = calloc(SLOTS, sizeof(*live));
    uint64_t x = 0x9E3779B97F4A7C15ull;

    (void)state;
    assert_non_null(live);
    cf__slab_init(&c, 24);
    for (uint32_t step = 0; step < STEPS; step++) {
        uint32_t k;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = (uint32_t)(x % SLOTS);
        if (live[k]) {
            assert_int_equal(live[k][2], k); /* untouched since it was handed out */
            assert_int_equal(live[k][5], ~k);
            cf__slab_free(&c, live[k]);
            live[k] = NULL;
        } else {
            live[k] = cf__slab_alloc(&c);
            assert_non_null(live[k]);
            live[k][2] = k;
            live[k][5] = ~k;
        }
    }
    for (uint32_t k = 0; k < SLOTS; k++) {
        if (live[k]) {
            assert_int_equal(live[k][2], k);
            cf__slab_free(&c, live[k]);
        }
    }
    assert_int_equal(c.live, 0);
    cf__slab_fini(&c);
    assert_int_equal(mapped, 0);
    free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_are_rounded),
        cmocka_unit_test(test_objects_are_distinct_and_reused_last_freed_first),
        cmocka_unit_test(test_free_blocks_go_back),
        cmocka_unit_test(test_fill_ahead_prepares_and_returns_everything),
        cmocka_unit_test(test_fill_ahead_out_of_memory),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_random_churn),
    };
    return cmocka_run_group_tests_name("slab", tests, NULL, NULL);
}
