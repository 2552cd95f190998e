/*
 * outcome.c - encoding and decoding of task outcomes (see outcome.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "outcome.h"

#include <stdlib.h>
#include <string.h>

enum { KIND_NUMBER = 0, KIND_BYTES = 1 };

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

int cf__outcome_make_portable(struct cf__outcome *o, const char *who)
{
    if (o->err == 0 && o->value_free && !o->is_bytes) {
        cf__outcome_drop_value(o);
        free(o->errmsg);
        o->errmsg = cf__printf_alloc("%s must produce a number or bytes (cf_task_set_bytes), "
                                     "not a pointer with a destructor",
                                     who);
        o->err = CF_ENOTSUP;
    }
    return o->err;
}

/* The five trailer fields of `o`. */
struct fields {
    int32_t err;
    uint32_t kind;
    uint64_t raw, len, msglen;
};

static struct fields outcome_fields(const struct cf__outcome *o)
{
    struct fields f = {.err = o->err};

    CF_ASSERT(o->err != 0 || o->is_bytes || !o->value_free,
              "a pointer value with a destructor cannot be encoded (cf__outcome_make_portable())");
    if (o->err == 0 && o->is_bytes) {
        f.kind = KIND_BYTES;
        f.len = o->len;
    } else if (o->err == 0) {
        memcpy(&f.raw, &o->value, sizeof(f.raw));
    }
    f.msglen = o->errmsg ? strlen(o->errmsg) + 1 : 0;
    return f;
}

size_t cf__outcome_encoded_size(const struct cf__outcome *o)
{
    struct fields f = outcome_fields(o);

    return (size_t)f.len + (size_t)f.msglen + CF__OUTCOME_TRAILER;
}

void cf__outcome_encode(const struct cf__outcome *o, uint8_t *out)
{
    struct fields f = outcome_fields(o);
    uint8_t *t = out + f.len + f.msglen;

    if (f.len)
        memcpy(out, o->value.ptr, (size_t)f.len);
    if (f.msglen)
        memcpy(out + f.len, o->errmsg, (size_t)f.msglen);
    memcpy(t, &f.err, 4);
    memcpy(t + 4, &f.kind, 4);
    memcpy(t + 8, &f.raw, 8);
    memcpy(t + 16, &f.len, 8);
    memcpy(t + 24, &f.msglen, 8);
}

int cf__outcome_parse(const uint8_t *buf, size_t n, struct cf__outcome_view *v)
{
    struct fields f;
    const uint8_t *t;

    memset(v, 0, sizeof(*v));
    if (!buf || n < CF__OUTCOME_TRAILER)
        return CF_EINVAL;
    t = buf + n - CF__OUTCOME_TRAILER;
    memcpy(&f.err, t, 4);
    memcpy(&f.kind, t + 4, 4);
    memcpy(&f.raw, t + 8, 8);
    memcpy(&f.len, t + 16, 8);
    memcpy(&f.msglen, t + 24, 8);
    if (f.err > 0 || f.kind > KIND_BYTES || (f.kind == KIND_NUMBER && f.len != 0) ||
        (f.kind == KIND_BYTES && f.raw != 0) || (f.err < 0 && (f.kind != KIND_NUMBER || f.raw != 0)))
        return CF_EINVAL;
    if (f.len > n - CF__OUTCOME_TRAILER || f.msglen != n - CF__OUTCOME_TRAILER - f.len)
        return CF_EINVAL;
    if (f.msglen && (buf[f.len + f.msglen - 1] != '\0' || memchr(buf + f.len, '\0', (size_t)f.msglen - 1)))
        return CF_EINVAL;
    v->err = f.err;
    v->is_bytes = f.kind == KIND_BYTES;
    memcpy(&v->i64, &f.raw, 8);
    memcpy(&v->f64, &f.raw, 8);
    v->data = v->is_bytes ? buf : NULL;
    v->len = (size_t)f.len;
    v->msg = f.msglen ? (const char *)buf + f.len : NULL;
    return 0;
}

/* Fill `o` from a view, the value's bytes left out. */
static void outcome_from_view(const struct cf__outcome_view *v, struct cf__outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->err = v->err;
    o->is_bytes = (uint8_t)v->is_bytes;
    o->len = v->len;
    if (!v->is_bytes)
        o->value.i64 = v->i64;
}

int cf__outcome_decode(uint8_t *buf, size_t n, struct cf__outcome *o)
{
    struct cf__outcome_view v;

    if (cf__outcome_parse(buf, n, &v)) {
        memset(o, 0, sizeof(*o));
        free(buf);
        return CF_EINVAL;
    }
    outcome_from_view(&v, o);
    if (v.msg && !(o->errmsg = strdup(v.msg))) {
        memset(o, 0, sizeof(*o));
        free(buf);
        return CF_ENOMEM;
    }
    if (o->is_bytes) {
        o->value.ptr = buf; /* the bytes are at the start of buf */
        o->value_free = free;
    } else {
        free(buf);
    }
    return 0;
}

int cf__outcome_decode_copy(const uint8_t *buf, size_t n, struct cf__outcome *o)
{
    struct cf__outcome_view v;

    if (cf__outcome_parse(buf, n, &v)) {
        memset(o, 0, sizeof(*o));
        return CF_EINVAL;
    }
    outcome_from_view(&v, o);
    if (v.msg && !(o->errmsg = strdup(v.msg))) {
        memset(o, 0, sizeof(*o));
        return CF_ENOMEM;
    }
    if (o->is_bytes) {
        o->value.ptr = cf__memdup(v.data, v.len);
        if (!o->value.ptr) {
            free(o->errmsg);
            memset(o, 0, sizeof(*o));
            return CF_ENOMEM;
        }
        o->value_free = free;
    }
    return 0;
}

size_t cf__outcome_record_size(const struct cf__outcome *o)
{
    return CF__OUTCOME_REC_HDR + pad8(cf__outcome_encoded_size(o));
}

void cf__outcome_record_put(const struct cf__outcome *o, uint8_t *out)
{
    uint64_t size = cf__outcome_encoded_size(o);

    memcpy(out, &size, 8);
    cf__outcome_encode(o, out + CF__OUTCOME_REC_HDR);
    memset(out + CF__OUTCOME_REC_HDR + size, 0, pad8((size_t)size) - (size_t)size);
}

int cf__outcome_record_next(const uint8_t *buf, size_t n, size_t *off, struct cf__outcome_view *v)
{
    uint64_t size;
    size_t at = *off, room;

    memset(v, 0, sizeof(*v));
    if (!buf || at > n || n - at < CF__OUTCOME_REC_HDR)
        return CF_EINVAL;
    memcpy(&size, buf + at, 8);
    at += CF__OUTCOME_REC_HDR;
    room = n - at;
    if (size > room || pad8((size_t)size) > room || cf__outcome_parse(buf + at, (size_t)size, v))
        return CF_EINVAL;
    for (size_t i = (size_t)size; i < pad8((size_t)size); i++)
        if (buf[at + i]) {
            memset(v, 0, sizeof(*v));
            return CF_EINVAL; /* one encoding per outcome: the padding is zero */
        }
    *off = at + pad8((size_t)size);
    return 0;
}
