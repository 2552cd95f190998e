/*
 * tsa.h - lock annotations for clang's -Wthread-safety.
 *
 * DESIGN
 *
 * A cf__mutex_t is a pthread_mutex_t that clang knows as a capability.  It
 * is taken and released only through cf__mutex_lock()/cf__mutex_unlock()
 * (and waited on through cf__cond_wait()), so with -Wthread-safety
 * (configure --enable-thread-safety-analysis, CC=clang) the compiler checks
 * that every lock is released on every path, none is taken twice or
 * released when not held, and every function marked CF__REQUIRES(mu) is
 * called with mu held.  Other compilers see plain pthread calls.
 *
 * What is checked and how:
 *   - file-scope state: CF__GUARDED_BY(mu) on the variable (registry.c);
 *   - state inside a structure: clang cannot yet check guarded_by on a C
 *     structure member (clang <= 18 does not parse it; later versions
 *     resolve it without the object and report every access, llvm issue
 *     161854).  Such state lives in a sub-structure reached only through an
 *     inline accessor marked CF__REQUIRES(obj->mu), e.g. tp_mu(pool) in
 *     tp.h, so every access names, and is checked against, its lock;
 *   - lock order is written in each module's DESIGN comment; clang's
 *     acquired_before has the same limitation, so the order is checked at
 *     run time by ThreadSanitizer (lock-order-inversion), not here.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_TSA_H
#define CF_TSA_H

#include <pthread.h>

#if defined(__clang__)
#define CF__TSA(x) __attribute__((x))
#else
#define CF__TSA(x)
#endif

#define CF__CAPABILITY(name) CF__TSA(capability(name))
#define CF__GUARDED_BY(mu) CF__TSA(guarded_by(mu))
#define CF__REQUIRES(...) CF__TSA(requires_capability(__VA_ARGS__))
#define CF__ACQUIRE(...) CF__TSA(acquire_capability(__VA_ARGS__))
#define CF__RELEASE(...) CF__TSA(release_capability(__VA_ARGS__))
/* For the few functions the analysis cannot follow; say why next to it. */
#define CF__NO_TSA CF__TSA(no_thread_safety_analysis)

typedef pthread_mutex_t cf__mutex_t CF__CAPABILITY("mutex");

static inline void cf__mutex_lock(cf__mutex_t *mu) CF__ACQUIRE(*mu) CF__NO_TSA;
static inline void cf__mutex_lock(cf__mutex_t *mu)
{
    pthread_mutex_lock(mu);
}

static inline void cf__mutex_unlock(cf__mutex_t *mu) CF__RELEASE(*mu) CF__NO_TSA;
static inline void cf__mutex_unlock(cf__mutex_t *mu)
{
    pthread_mutex_unlock(mu);
}

/* pthread_cond_wait(): mu is held before and after (released while waiting). */
static inline void cf__cond_wait(pthread_cond_t *cv, cf__mutex_t *mu) CF__REQUIRES(*mu) CF__NO_TSA;
static inline void cf__cond_wait(pthread_cond_t *cv, cf__mutex_t *mu)
{
    pthread_cond_wait(cv, mu);
}

#endif
