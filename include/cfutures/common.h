/*
 * cfutures/common.h - error codes, visibility and basic types shared by every
 * cfutures header.
 *
 * Error convention: every function that can fail returns an int, 0 on success
 * or a negative CF_E* code on failure.  Codes that have an errno counterpart
 * are the negated errno value (like libuv on Unix), so a system error from
 * pthread_create() or malloc() passes through unchanged; cf_strerror() gives
 * the text of any of them.
 */
#ifndef CFUTURES_COMMON_H
#define CFUTURES_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define CF_EXTERN __attribute__((visibility("default")))
#define CF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CF_EXTERN
#define CF_PRINTF(f, a)
#endif

#define CF_VERSION_MAJOR 0
#define CF_VERSION_MINOR 2
#define CF_VERSION_PATCH 0

/* Error codes.  All are negative; 0 means success. */
enum cf_errno {
    CF_EINVAL = -EINVAL,       /* invalid argument (NULL function, bad count, ...) */
    CF_ENOMEM = -ENOMEM,       /* out of memory */
    CF_EAGAIN = -EAGAIN,       /* the executor's task queue is full */
    CF_EBUSY = -EBUSY,         /* the task is running: cancellation was requested */
    CF_ECANCELED = -ECANCELED, /* the future was cancelled */
    CF_ETIMEDOUT = -ETIMEDOUT, /* a deadline passed */
    CF_EDEADLK = -EDEADLK,     /* a blocking wait would deadlock */
    CF_EPERM = -EPERM,         /* not allowed on this object (e.g. resolving an executor's future) */
    CF_EALREADY = -EALREADY,   /* the future is already done */
    CF_ESHUTDOWN = -ESHUTDOWN, /* the executor has been shut down */
    CF_ENOTSUP = -ENOTSUP,     /* not supported by this executor */

    /* cfutures-specific codes, outside the errno range. */
    CF_EPENDING = -4001, /* the future is not done yet */
    CF_EBROKEN = -4002,  /* the executor is broken (a worker initializer failed) */
    CF_EFAIL = -4003,    /* a task failed (generic task error) */
    CF_ELOOPBUSY = -4004, /* the loop still has live futures or executors */
    CF_EOF = -4005,       /* an iteration has no more items */
    CF_EWORKER = -4006    /* a worker process died while running the task */
};

/*
 * Text for an error code: one of the CF_E* codes, or any negated errno value.
 * Never returns NULL; the string is static.  Any thread.
 */
CF_EXTERN const char *cf_strerror(int err);

/* Short symbolic name of an error code ("CF_ETIMEDOUT", "EPIPE", ...). Any thread. */
CF_EXTERN const char *cf_err_name(int err);

/* Library version as "MAJOR.MINOR.PATCH". Any thread. */
CF_EXTERN const char *cf_version(void);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC).  Any thread. */
CF_EXTERN uint64_t cf_now_ns(void);

/* Number of online CPUs (at least 1).  Any thread. */
CF_EXTERN int cf_cpu_count(void);

/* Destroy notifier for user data the library stores. */
typedef void (*cf_free_fn)(void *data);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_COMMON_H */
