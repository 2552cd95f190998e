/*
 * cfutures/registry.h - task functions known by name, for executors whose
 * workers run in other programs (the remote executor, remote.h).
 *
 * A function pointer means nothing in a process that was not forked from the
 * caller (address-space layout randomisation, a different build), so a task
 * sent to another machine names its function instead.  The client and every
 * worker register the same functions under the same names - usually by
 * linking the same task library, whose CF_REGISTER() lines register its
 * functions when the library is loaded - and the remote executor translates
 * the pointer it is given into the name, and the worker translates it back.
 *
 * Any function that can be submitted can be registered: a cf_task_fn, a
 * cf_map_fn given to cf_map_*(), a cf_fn_i64_i64 or other shape of the
 * script layer (script.h).  The registry is process-wide and only grows.
 *
 * Threads: any thread; registration usually happens in constructors, before
 * main() or during dlopen().
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_REGISTRY_H
#define CFUTURES_REGISTRY_H

#include "common.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Any function pointer, stored without its type. */
typedef void (*cf_any_fn)(void);

/* Longest name accepted, in bytes (without the terminating NUL). */
#define CF_TASK_NAME_MAX 200

/*
 * Register `fn` under `name` (1..CF_TASK_NAME_MAX bytes of printable ASCII
 * without spaces; "cf." starts names reserved for the library).  Registering
 * the same pair again is a no-op.  Returns 0, CF_EINVAL (bad name, NULL fn,
 * the name already taken by another function, or the function already
 * registered under another name; cf_last_error() says which) or CF_ENOMEM.
 */
CF_EXTERN int cf_fn_register(const char *name, cf_any_fn fn);

/* cf_fn_register() for a cf_task_fn. */
CF_EXTERN int cf_task_register(const char *name, cf_task_fn fn);

/* The name `fn` is registered under, or NULL.  The string lives as long as the process. */
CF_EXTERN const char *cf_fn_name(cf_any_fn fn);

/* The function registered under `name`, or NULL. */
CF_EXTERN cf_any_fn cf_fn_lookup(const char *name);

/*
 * Register function `fn` under its own identifier when the program or shared
 * object is loaded (a constructor); write at file scope:
 *
 *     static int square(cf_task_t *t, void *arg) { ... }
 *     CF_REGISTER(square);
 *
 * A failure (a name clash) is reported on stderr, naming the function.
 */
#define CF_REGISTER(fn) CF_REGISTER_AS(fn, #fn)

/* The same under an explicit name (a string literal). */
#define CF_REGISTER_AS(fn, name)                                                                   \
    __attribute__((constructor)) static void cf__register_##fn(void)                              \
    {                                                                                              \
        cf_fn_register_or_warn((name), (cf_any_fn)(fn));                                          \
    }                                                                                              \
    struct cf__register_##fn##_semicolon

/* cf_fn_register(), with a failure written to stderr instead of returned
 * (for constructors, which have no caller to tell): used by CF_REGISTER(). */
CF_EXTERN void cf_fn_register_or_warn(const char *name, cf_any_fn fn);

#ifdef __cplusplus
}
#endif
#endif /* CFUTURES_REGISTRY_H */
