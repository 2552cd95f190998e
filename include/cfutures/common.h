/*
 * cfutures/common.h - error codes, visibility and basic types shared by every
 * cfutures header.
 *
 * Error convention: every function that can fail returns an int, 0 on success
 * or a negative CF_E* code on failure.  Codes that have an errno counterpart
 * are the negated errno value (like libuv on Unix), so a system error from
 * pthread_create() or malloc() passes through unchanged; cf_strerror() gives
 * the text of any of them, cf_last_error() the details of the latest failure
 * in the calling thread.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
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

/*
 * Error codes, from one list: XX(name, value, text) for CF_<name>.  All are
 * negative; 0 means success.  The codes with an errno counterpart come
 * first (their value is the negated errno), then the cfutures-specific ones,
 * outside the errno range.  cf_strerror() and cf_err_name() are generated
 * from the same list, so a code cannot lack a name or a text.  Like libuv's
 * UV_ERRNO_MAP, the list can be expanded by applications too.
 */
#define CF_ERRNO_MAP(XX)                                                                                               \
    XX(EINVAL, -EINVAL, "invalid argument")                                                                            \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                                               \
    XX(E2BIG, -E2BIG, "argument too large for this executor")                                                          \
    XX(EAGAIN, -EAGAIN, "task queue is full")                                                                          \
    XX(EBUSY, -EBUSY, "task is running; cancellation was requested")                                                   \
    XX(ECANCELED, -ECANCELED, "cancelled")                                                                             \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                                             \
    XX(EDEADLK, -EDEADLK, "blocking wait would deadlock (inside a loop callback, or nothing can complete it)")         \
    XX(EPERM, -EPERM, "operation not permitted on this future")                                                        \
    XX(EALREADY, -EALREADY, "future is already done")                                                                  \
    XX(ESHUTDOWN, -ESHUTDOWN, "executor is shut down")                                                                 \
    XX(ENOTSUP, -ENOTSUP, "not supported by this executor")                                                            \
    XX(EPENDING, -4001, "future is not done yet")                                                                      \
    XX(EBROKEN, -4002, "executor is broken (the future's error says why)")                                              \
    XX(EFAIL, -4003, "task failed")                                                                                    \
    XX(ELOOPBUSY, -4004, "loop still has live futures, executors or queued calls")                                     \
    XX(EOF, -4005, "no more items")                                                                                    \
    XX(EWORKER, -4006, "worker process died while running the task")

enum cf_errno {
#define CF__ERRNO_ENUM(name, value, text) CF_##name = (value),
    CF_ERRNO_MAP(CF__ERRNO_ENUM)
#undef CF__ERRNO_ENUM
};

/*
 * NULL arguments.  A function that returns an int status reports a NULL
 * handle or a NULL required pointer (an out-parameter, a function) as
 * CF_EINVAL, with cf_last_error() naming the argument.  A function that has
 * no status to return (void, a pointer, a value: cf_future_ref(),
 * cf_future_get_state(), cf_group_error() ...) aborts with a message naming
 * the function instead: that is a contract violation, not a run-time
 * condition.  Destructors (*_free(), cf_future_unref()) accept NULL and do
 * nothing.  Parameters documented as optional may be NULL.
 */

/*
 * Text for an error code: one of the CF_E* codes, or any negated errno value.
 * Never returns NULL; the string is static.  Any thread.
 */
CF_EXTERN const char *cf_strerror(int err);

/* Short symbolic name of an error code ("CF_ETIMEDOUT", "EPIPE", ...). Any thread. */
CF_EXTERN const char *cf_err_name(int err);

/*
 * What went wrong in this thread's latest failing cfutures call, in words:
 * "cf_thread_pool_new: opts->max_workers must be >= 0 (got -3)".  When a call
 * returns a negative code (CF_EOF and CF_EPENDING, which report a state,
 * excepted) the library sets the message where it can say more than the
 * code does: which argument or option field is wrong, what ran out.  Read it
 * right after the failing call: successful calls do not clear it, and a
 * failure reported without a message of its own (an executor's code passed
 * through) leaves an earlier text in place.  Never NULL ("" until the first
 * message); the string is thread-local, valid until this thread's next
 * cfutures call.  Any thread.
 */
CF_EXTERN const char *cf_last_error(void);

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
