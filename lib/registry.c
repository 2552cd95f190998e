/*
 * registry.c - task functions known by name (registry.h).
 *
 * DESIGN
 *
 * One process-wide table of (name, function) pairs, guarded by a mutex (a
 * leaf lock: nothing else is taken under it).  Entries are never removed, so
 * a name returned by cf_fn_name() stays valid.  Lookups are linear: a program
 * registers a handful of functions and the remote executor looks one up per
 * submitted task, which is small next to a network round trip.
 *
 * The library's own task trampolines (the map chunk runner and the typed-call
 * runner of the script layer) carry the user's function pointer inside their
 * payload; they are entries under reserved "cf." names, so a worker can run
 * map chunks and typed calls too (remote.c rewrites the inner pointer).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"
#include "tsa.h"

#include "cfutures/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reg_entry {
    char *name;
    cf_any_fn fn;
};

static cf__mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER; /* guards the table (tsa.h) */
static struct reg_entry *reg_tab CF__GUARDED_BY(reg_mu);
static size_t reg_n CF__GUARDED_BY(reg_mu), reg_cap CF__GUARDED_BY(reg_mu);

static const struct reg_entry reg_builtin[] = {
    {"cf.map_chunk", (cf_any_fn)cf__map_chunk_run},
    {"cf.call", (cf_any_fn)cf__call_task},
    {"cf.map_call", (cf_any_fn)cf__map_call_item},
};

static int name_ok(const char *name)
{
    size_t n = 0;

    for (const char *p = name; *p; p++, n++)
        if (*p <= ' ' || *p > '~')
            return 0;
    return n >= 1 && n <= CF_TASK_NAME_MAX;
}

int cf_fn_register(const char *name, cf_any_fn fn)
{
    int rc = 0;

    if (!name || !fn)
        return cf__set_error(CF_EINVAL, "cf_fn_register: %s is NULL", !name ? "name" : "fn");
    if (!name_ok(name))
        return cf__set_error(CF_EINVAL,
                             "cf_fn_register: name '%.60s' must be 1..%d printable characters without spaces",
                             name, CF_TASK_NAME_MAX);
    if (strncmp(name, "cf.", 3) == 0)
        return cf__set_error(CF_EINVAL, "cf_fn_register: names starting with 'cf.' are reserved ('%s')", name);
    cf__mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++) {
        int same_name = strcmp(reg_tab[i].name, name) == 0, same_fn = reg_tab[i].fn == fn;
        if (same_name && same_fn)
            goto out;
        if (same_name || same_fn) {
            rc = cf__set_error(CF_EINVAL,
                               same_name ? "cf_fn_register: name '%s' is taken by another function"
                                         : "cf_fn_register: the function is already registered as '%s'",
                               same_name ? name : reg_tab[i].name);
            goto out;
        }
    }
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        struct reg_entry *t = realloc(reg_tab, cap * sizeof(*t));
        if (!t) {
            rc = cf__set_error(CF_ENOMEM, "cf_fn_register: out of memory");
            goto out;
        }
        reg_tab = t;
        reg_cap = cap;
    }
    reg_tab[reg_n].name = strdup(name);
    if (!reg_tab[reg_n].name) {
        rc = cf__set_error(CF_ENOMEM, "cf_fn_register: out of memory");
        goto out;
    }
    reg_tab[reg_n++].fn = fn;
out:
    cf__mutex_unlock(&reg_mu);
    return rc;
}

int cf_task_register(const char *name, cf_task_fn fn)
{
    return cf_fn_register(name, (cf_any_fn)fn);
}

void cf_fn_register_or_warn(const char *name, cf_any_fn fn)
{
    if (cf_fn_register(name, fn) != 0)
        fprintf(stderr, "cfutures: registering task '%s' failed: %s\n", name ? name : "(null)", cf_last_error());
}

const char *cf_fn_name(cf_any_fn fn)
{
    const char *name = NULL;

    CF_REQUIRE(fn, "fn is NULL");
    for (size_t i = 0; i < sizeof(reg_builtin) / sizeof(reg_builtin[0]); i++)
        if (reg_builtin[i].fn == fn)
            return reg_builtin[i].name;
    cf__mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n && !name; i++)
        if (reg_tab[i].fn == fn)
            name = reg_tab[i].name;
    cf__mutex_unlock(&reg_mu);
    return name;
}

cf_any_fn cf_fn_lookup(const char *name)
{
    cf_any_fn fn = NULL;

    CF_REQUIRE(name, "name is NULL");
    for (size_t i = 0; i < sizeof(reg_builtin) / sizeof(reg_builtin[0]); i++)
        if (strcmp(reg_builtin[i].name, name) == 0)
            return reg_builtin[i].fn;
    cf__mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n && !fn; i++)
        if (strcmp(reg_tab[i].name, name) == 0)
            fn = reg_tab[i].fn;
    cf__mutex_unlock(&reg_mu);
    return fn;
}
