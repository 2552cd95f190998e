/*
 * fuzz_outcome.c - libFuzzer target for the outcome codec (lib/outcome.h).
 *
 * The input's first byte picks the entry point:
 *   even: the rest is one encoded outcome.  The view (cf__outcome_parse()),
 *         the copying and the owning decoders must agree; an accepted input
 *         must encode back to exactly the same bytes (one encoding per
 *         outcome) and its view must stay inside the input.
 *   odd:  the rest is a sequence of records, as a cf_map chunk's result
 *         carries them (cf__outcome_record_next()): every accepted record
 *         must lie inside the input and re-encode to the same bytes.
 * Nothing may crash, read out of bounds or leak.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "outcome.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c))                                                                                                      \
            __builtin_trap();                                                                                          \
    } while (0)

/* `o` must encode to exactly the n bytes at `buf`. */
static void check_reencodes(const struct cf__outcome *o, const uint8_t *buf, size_t n)
{
    size_t m = cf__outcome_encoded_size(o);
    uint8_t *again;

    CHECK(m == n);
    again = malloc(m);
    if (!again)
        return;
    cf__outcome_encode(o, again);
    CHECK(memcmp(again, buf, n) == 0);
    free(again);
}

/* An outcome that points into a view (nothing owned), for re-encoding. */
static void outcome_of_view(const struct cf__outcome_view *v, struct cf__outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->err = v->err;
    o->errmsg = (char *)v->msg;
    if (v->is_bytes) {
        o->is_bytes = 1;
        o->value.ptr = (void *)v->data;
        o->len = v->len;
    } else {
        o->value.i64 = v->i64;
    }
}

static void check_view_inside(const struct cf__outcome_view *v, const uint8_t *buf, size_t n)
{
    if (v->is_bytes)
        CHECK(v->data >= buf && v->len <= n && (size_t)(v->data - buf) <= n - v->len);
    if (v->msg)
        CHECK((const uint8_t *)v->msg >= buf && (const uint8_t *)v->msg + strlen(v->msg) < buf + n);
}

static void one_outcome(const uint8_t *data, size_t size)
{
    struct cf__outcome_view v;
    struct cf__outcome c, o, tmp;
    int parsed = cf__outcome_parse(data, size, &v);
    int copied = cf__outcome_decode_copy(data, size, &c);
    uint8_t *owned = malloc(size ? size : 1);
    int taken;

    if (copied != CF_ENOMEM)
        CHECK(copied == parsed);
    if (parsed == 0) {
        check_view_inside(&v, data, size);
        outcome_of_view(&v, &tmp);
        check_reencodes(&tmp, data, size);
    }
    if (copied == 0) {
        CHECK(c.err == v.err && c.is_bytes == v.is_bytes && c.len == v.len);
        check_reencodes(&c, data, size);
        cf__outcome_clear(&c);
    }
    if (!owned)
        return;
    memcpy(owned, data, size);
    taken = cf__outcome_decode(owned, size, &o); /* takes `owned` whatever the verdict */
    if (taken != CF_ENOMEM)
        CHECK(taken == parsed);
    if (taken == 0) {
        check_reencodes(&o, data, size);
        cf__outcome_clear(&o);
    }
}

static void records(const uint8_t *data, size_t size)
{
    struct cf__outcome_view v;
    struct cf__outcome tmp;
    size_t off = 0, before;

    for (;;) {
        before = off;
        if (cf__outcome_record_next(data, size, &off, &v)) {
            CHECK(off == before);
            break;
        }
        CHECK(off > before && off <= size && (off - before) % 8 == 0);
        check_view_inside(&v, data + before, off - before);
        outcome_of_view(&v, &tmp);
        CHECK(cf__outcome_record_size(&tmp) == off - before);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        one_outcome(data + 1, size - 1);
    else
        records(data + 1, size - 1);
    return 0;
}
