/*
 * map_chunk.c - cf_map's chunks as bytes: built on the loop, run by a task
 * on any executor, their results read back on the loop.
 *
 * DESIGN
 *
 * A chunk is one task.  Its argument is a self-contained byte buffer (a
 * header with the item function, then length-prefixed items), its value a
 * byte buffer of per-item outcomes, encoded as records by the outcome codec
 * (outcome.h, which also says why an item's value must be a number or
 * bytes).  Being bytes, a chunk runs unchanged on workers in another address
 * space.  The chunk runner checks the task's cancellation flag between items
 * and measures its own run time, which the map uses to size later chunks.
 *
 *   chunk:  u64 CHUNK_MAGIC | u64 fn | u64 count | { u64 len | bytes (pad 8) } x count
 *   chunk:  u64 FIXED_MAGIC | u64 fn | u64 count | u64 len | { bytes (pad 8) } x count
 *   chunk:  u64 SPARSE_MAGIC | u64 fn | u64 count | u64 len | u64 var_off | u64 var_len |
 *           template (len bytes, pad 8) | { var_len bytes } x count (pad 8)
 *   result: u64 RESULT_MAGIC | u64 count | u64 run_ns | { outcome record } x count
 *   result: u64 NUMBERS_MAGIC | u64 count | u64 run_ns | { u64 number } x count
 *
 * The second chunk form carries the items of an array (all `len` bytes
 * long): copied in one piece when len is a multiple of 8.  The second result
 * form is used while every item succeeded with a number and no message (the
 * common case: 8 bytes an item instead of a 40-byte record); the first item
 * that does not fit turns the buffer into records.  The reader accepts both
 * (cf__chunk_result_next()).
 *
 * One item.  A FIXED chunk of one item (an array mapped with chunksize 1)
 * whose item succeeded with a number and no message answers with that
 * number as the task's own value instead of a result buffer: the common
 * chunksize-1 map then allocates nothing on the worker (and the loop frees
 * no buffer from another thread's heap).  Anything else, and every other
 * chunk, answers with a result buffer; the map accepts both
 * (map_chunk_open() in map.c).  Only a pull map's chunks (CHUNK form, or
 * SPARSE made from one) are timed: an array's chunk size never adapts.
 *
 * The third chunk form is for the remote executor, whose chunks cross the
 * network and the broker several times: cf__chunk_compact() re-encodes a
 * chunk whose items all have one length and differ from each other only
 * within one range of bytes (a script-layer map's items are calls that
 * differ only in their argument) as one template item and each item's
 * varying bytes.  The runner rebuilds each item from the template before
 * calling the item function.  Local executors never see it.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "map_chunk.h"

#include "outcome.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MAGIC 0x4b4843504d464355ull   /* "UCFMPCHK" */
#define RESULT_MAGIC 0x5345524d50464355ull  /* "UCFMPRES" */
#define FIXED_MAGIC 0x5846435050464355ull   /* "UCFPPCFX" */
#define NUMBERS_MAGIC 0x4d554e4d50464355ull /* "UCFMPNUM" */
#define CHUNK_HDR 24u
#define SPARSE_MAGIC 0x5053435050464355ull  /* "UCFPPCSP" */
#define FIXED_HDR 32u
#define SPARSE_HDR 48u
#define RES_HDR 24u

/* ------------------------------------------------------------------ byte buffers */

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static int buf_reserve(struct cf__chunk_buf *b, size_t more)
{
    size_t cap;
    uint8_t *p;

    if (b->oom)
        return -1;
    if (b->len + more <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_u64(struct cf__chunk_buf *b, uint64_t v)
{
    if (buf_reserve(b, 8) == 0) {
        memcpy(b->p + b->len, &v, 8);
        b->len += 8;
    }
}

/* Append n bytes, zero-padded to a multiple of 8. */
static void buf_put(struct cf__chunk_buf *b, const void *data, size_t n)
{
    size_t padded = pad8(n);

    if (buf_reserve(b, padded) == 0) {
        if (n)
            memcpy(b->p + b->len, data, n);
        memset(b->p + b->len + n, 0, padded - n);
        b->len += padded;
    }
}

static uint64_t rd_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ------------------------------------------------------------------ loop side: building a chunk */

void cf__chunk_begin(struct cf__chunk_buf *b, cf_map_fn fn)
{
    buf_u64(b, CHUNK_MAGIC);
    if (buf_reserve(b, 8) == 0) {
        memcpy(b->p + b->len, &fn, sizeof(fn));
        b->len += 8;
    }
    buf_u64(b, 0); /* count, filled in by cf__chunk_end() */
}

void cf__chunk_add(struct cf__chunk_buf *b, const void *item, size_t len)
{
    buf_u64(b, len);
    buf_put(b, item, len);
}

void cf__chunk_begin_array(struct cf__chunk_buf *b, cf_map_fn fn, size_t item_len, size_t max_count)
{
    size_t size = FIXED_HDR + max_count * pad8(item_len);

    /* The whole chunk's size is known: one allocation of just that (a chunk of one
     * small item is 40 bytes, not the 256 a growing buffer starts with). */
    if (!b->p && !b->oom) {
        b->p = malloc(size);
        if (!b->p)
            b->oom = 1;
        else
            b->cap = size;
    }
    if (buf_reserve(b, size) != 0)
        return;
    buf_u64(b, FIXED_MAGIC);
    memcpy(b->p + b->len, &fn, sizeof(fn));
    b->len += 8;
    buf_u64(b, 0); /* count, filled in by cf__chunk_end() */
    buf_u64(b, item_len);
}

void cf__chunk_add_array(struct cf__chunk_buf *b, const void *items, size_t item_len, size_t n)
{
    const uint8_t *src = items;
    size_t stride = pad8(item_len);

    if (buf_reserve(b, n * stride) != 0)
        return;
    if (stride == item_len) {
        memcpy(b->p + b->len, src, n * item_len);
        b->len += n * item_len;
        return;
    }
    for (size_t i = 0; i < n; i++)
        buf_put(b, src + i * item_len, item_len);
}

int cf__chunk_end(struct cf__chunk_buf *b, size_t count)
{
    uint64_t c64 = count;

    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return -1;
    }
    memcpy(b->p + 16, &c64, 8);
    return 0;
}

/*
 * Where the items of a CHUNK or FIXED form chunk lie: the first item's
 * offset, its length (which every item must have; 0 when they differ) and
 * the stride between items.  0, or -1 when the chunk is malformed.
 */
static int chunk_items(const uint8_t *p, size_t len, uint64_t *count, size_t *first, size_t *ilen, size_t *stride)
{
    uint64_t n;

    if (len < CHUNK_HDR)
        return -1;
    n = rd_u64(p + 16);
    if (rd_u64(p) == FIXED_MAGIC) {
        uint64_t l;
        if (len < FIXED_HDR || (l = rd_u64(p + 24)) == 0 || l > len || n > (len - FIXED_HDR) / pad8((size_t)l))
            return -1;
        *count = n;
        *first = FIXED_HDR;
        *ilen = (size_t)l;
        *stride = pad8((size_t)l);
        return 0;
    }
    if (rd_u64(p) != CHUNK_MAGIC)
        return -1;
    /* Every item is checked; all must have the first one's length for a stride to exist. */
    size_t off = CHUNK_HDR, l0 = 0;
    int same = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l;
        if (off + 8 > len || (l = rd_u64(p + off)) > len - off - 8)
            return -1;
        if (i == 0)
            l0 = (size_t)l;
        else if (l != l0)
            same = 0;
        off += 8 + pad8((size_t)l);
    }
    *count = n;
    *first = CHUNK_HDR + 8;
    *ilen = same ? l0 : 0;
    *stride = 8 + pad8(*ilen);
    return 0;
}

int cf__chunk_compact(const uint8_t *p, size_t len, size_t pin_off, size_t pin_len, uint8_t **out, size_t *out_len)
{
    uint64_t count;
    size_t first, ilen, stride, lo, hi, size;
    const uint8_t *a;
    uint8_t *q;

    if (chunk_items(p, len, &count, &first, &ilen, &stride) != 0 || count < 2 || ilen == 0)
        return 0;
    /* The range [lo, hi) of the bytes in which some item differs from the
     * first: the XOR of every item with the first, ORed together word by
     * word (items are zero-padded to 8 bytes), then its first and last
     * non-zero bytes. */
    a = p + first;
    {
        uint64_t acc[8] = {0}, *m = acc;
        size_t words = pad8(ilen) / 8;
        if (words > 8) {
            m = calloc(words, 8);
            if (!m)
                return CF_ENOMEM;
        }
        for (uint64_t i = 1; i < count; i++) {
            const uint8_t *b = a + i * stride;
            for (size_t w = 0; w < words; w++)
                m[w] |= rd_u64(a + 8 * w) ^ rd_u64(b + 8 * w);
        }
        lo = ilen;
        hi = 0;
        for (size_t j = 0; j < ilen; j++)
            if (((const uint8_t *)m)[j]) {
                if (lo == ilen)
                    lo = j;
                hi = j + 1;
            }
        if (m != acc)
            free(m);
    }
    if (lo >= hi) { /* all the same: one byte varies all the same (a count needs room) */
        lo = ilen - 1;
        if (pin_len && lo < pin_off + pin_len && pin_off <= lo)
            lo = 0;
        hi = lo + 1;
    }
    if (pin_len && (pin_off + pin_len > ilen || (lo < pin_off + pin_len && pin_off < hi)))
        return 0; /* the pinned bytes must lie in the template */
    if ((hi - lo) > (SIZE_MAX - SPARSE_HDR - 2 * pad8(ilen)) / count)
        return 0;
    size = SPARSE_HDR + pad8(ilen) + pad8((size_t)count * (hi - lo));
    if (size > len / 4 * 3)
        return 0; /* not worth it */
    q = calloc(1, size);
    if (!q)
        return CF_ENOMEM;
    {
        uint64_t h[6] = {SPARSE_MAGIC, 0, count, ilen, lo, hi - lo};
        memcpy(h + 1, p + 8, 8); /* the item function, as it was */
        memcpy(q, h, sizeof(h));
    }
    memcpy(q + SPARSE_HDR, a, ilen);
    {
        uint8_t *v = q + SPARSE_HDR + pad8(ilen);
        size_t n = hi - lo;
        if (n <= 8) /* a number or part of one: without a call per item */
            for (uint64_t i = 0; i < count; i++, v += n)
                for (size_t j = 0; j < n; j++)
                    v[j] = a[i * stride + lo + j];
        else
            for (uint64_t i = 0; i < count; i++, v += n)
                memcpy(v, a + i * stride + lo, n);
    }
    *out = q;
    *out_len = size;
    return 1;
}

/* A SPARSE chunk's fields, checked: 0, or -1 when malformed. */
static int sparse_open(const uint8_t *p, size_t len, uint64_t *count, size_t *ilen, size_t *var_off, size_t *var_len)
{
    uint64_t n, l, vo, vl;

    if (len < SPARSE_HDR || rd_u64(p) != SPARSE_MAGIC)
        return -1;
    n = rd_u64(p + 16);
    l = rd_u64(p + 24);
    vo = rd_u64(p + 32);
    vl = rd_u64(p + 40);
    if (l == 0 || l > len - SPARSE_HDR || vo > l || vl == 0 || vl > l - vo || pad8((size_t)l) > len - SPARSE_HDR ||
        n > (len - SPARSE_HDR - pad8((size_t)l)) / vl)
        return -1;
    *count = n;
    *ilen = (size_t)l;
    *var_off = (size_t)vo;
    *var_len = (size_t)vl;
    return 0;
}

int cf__chunk_patch_items(uint8_t *p, size_t len, size_t at, cf_any_fn fn)
{
    uint64_t count;
    size_t first, ilen, stride, vo, vl;

    if (len >= CHUNK_HDR && rd_u64(p) == SPARSE_MAGIC) {
        if (sparse_open(p, len, &count, &ilen, &vo, &vl) != 0 || at + sizeof(fn) > ilen ||
            (vo < at + sizeof(fn) && at < vo + vl))
            return -1;
        memcpy(p + SPARSE_HDR + at, &fn, sizeof(fn));
        return 0;
    }
    if (chunk_items(p, len, &count, &first, &ilen, &stride) != 0)
        return -1;
    if (ilen) {
        if (count && at + sizeof(fn) > ilen)
            return -1;
        for (uint64_t i = 0; i < count; i++)
            memcpy(p + first + i * stride + at, &fn, sizeof(fn));
        return 0;
    }
    /* Items of several lengths (CHUNK form): each one on its own. */
    size_t off = CHUNK_HDR;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t l = rd_u64(p + off);
        if (at + sizeof(fn) > l)
            return -1;
        memcpy(p + off + 8 + at, &fn, sizeof(fn));
        off += 8 + pad8((size_t)l);
    }
    return 0;
}

int cf__chunk_result_open(const uint8_t *p, size_t len, size_t count, size_t *off, uint64_t *run_ns)
{
    if (len < RES_HDR || (rd_u64(p) != RESULT_MAGIC && rd_u64(p) != NUMBERS_MAGIC) || rd_u64(p + 8) != count)
        return -1;
    if (rd_u64(p) == NUMBERS_MAGIC && (count > (len - RES_HDR) / 8 || len - RES_HDR != count * 8))
        return -1;
    *run_ns = rd_u64(p + 16);
    *off = RES_HDR;
    return 0;
}

int cf__chunk_result_numbers(const uint8_t *p, size_t len)
{
    return len >= RES_HDR && rd_u64(p) == NUMBERS_MAGIC;
}

int cf__chunk_result_next(const uint8_t *p, size_t len, size_t *off, struct cf__outcome_view *v)
{
    if (len >= RES_HDR && rd_u64(p) == NUMBERS_MAGIC) {
        uint64_t raw;

        memset(v, 0, sizeof(*v));
        if (*off < RES_HDR || *off > len || len - *off < 8)
            return CF_EINVAL;
        raw = rd_u64(p + *off);
        memcpy(&v->i64, &raw, 8);
        memcpy(&v->f64, &raw, 8);
        *off += 8;
        return 0;
    }
    return cf__outcome_record_next(p, len, off, v);
}

/* ------------------------------------------------------------------ worker side: running a chunk */

static void put_record(struct cf__chunk_buf *out, const struct cf__outcome *o)
{
    size_t n = cf__outcome_record_size(o);

    if (buf_reserve(out, n) == 0) {
        cf__outcome_record_put(o, out->p + out->len);
        out->len += n;
    }
}

/* A success with a number and no message: it fits the NUMBERS form. */
static int is_plain_number(const struct cf__outcome *o)
{
    return o->err == 0 && !o->is_bytes && !o->errmsg && !o->value_free;
}

/*
 * The NUMBERS form met an item that does not fit: rewrite the `done` numbers
 * written so far as records, in a new buffer (out->oom set when that failed).
 */
static void numbers_to_records(struct cf__chunk_buf *out, uint64_t done)
{
    struct cf__chunk_buf rec = {0};
    uint64_t count;

    if (out->oom)
        return; /* reported at the end */
    count = rd_u64(out->p + 8);
    buf_u64(&rec, RESULT_MAGIC);
    buf_u64(&rec, count);
    buf_u64(&rec, 0); /* run_ns, filled in at the end */
    for (uint64_t i = 0; i < done; i++) {
        struct cf__outcome o;
        uint64_t raw = rd_u64(out->p + RES_HDR + i * 8);

        memset(&o, 0, sizeof(o));
        memcpy(&o.value.i64, &raw, 8);
        put_record(&rec, &o);
    }
    free(out->p);
    *out = rec;
}

/* Run the item function on one item into `o` (or record that the task was cancelled). */
static void chunk_run_item(cf_task_t *task, cf_map_fn fn, const uint8_t *ip, size_t ilen, struct cf__outcome *o)
{
    memset(o, 0, sizeof(*o));
    if (cf_task_cancelled(task)) {
        o->err = CF_ECANCELED;
    } else {
        struct cf_task it = *task;
        it.out = o;
        it.arg = (void *)ip;
        it.arg_len = ilen;
        cf__task_finish(&it, fn(&it, ip, ilen));
        cf__outcome_make_portable(o, "a mapped item");
    }
}

/* Hand the result buffer to the task's outcome (or fail the task when it could not be built). */
static int chunk_finish(cf_task_t *task, struct cf__chunk_buf *out, uint64_t run_ns)
{
    if (out->oom) {
        free(out->p);
        return cf_task_fail(task, CF_ENOMEM, "out of memory while building map results");
    }
    memcpy(out->p + 16, &run_ns, 8);
    cf__outcome_drop_value(task->out);
    task->out->value.ptr = out->p;
    task->out->value_free = free;
    task->out->len = out->len;
    task->out->is_bytes = 1;
    return 0;
}

/*
 * A FIXED chunk of one item (an array mapped with chunksize 1): its item's
 * number is the task's own value, no result buffer (see "One item" above);
 * anything else goes back as one outcome record.
 */
static int chunk_run_one(cf_task_t *task, cf_map_fn fn, const uint8_t *ip, size_t ilen)
{
    struct cf__chunk_buf out = {0};
    struct cf__outcome o;

    chunk_run_item(task, fn, ip, ilen, &o);
    if (is_plain_number(&o)) {
        cf__outcome_drop_value(task->out);
        task->out->value = o.value;
        return 0;
    }
    buf_u64(&out, RESULT_MAGIC);
    buf_u64(&out, 1);
    buf_u64(&out, 0); /* run_ns: an array's chunks are not timed */
    put_record(&out, &o);
    cf__outcome_clear(&o);
    return chunk_finish(task, &out, 0);
}

/* The task every chunk runs: the item function over each item of the chunk. */
int cf__map_chunk_run(cf_task_t *task, void *arg)
{
    size_t len, off;
    const uint8_t *p = cf_task_arg(task, &len);
    struct cf__chunk_buf out = {0};
    cf_map_fn fn;
    uint64_t count, fixed_len = 0, t0 = 0;
    int fixed, numbers = 1;
    uint8_t *item = NULL; /* SPARSE form: the item being rebuilt from the template */
    const uint8_t *vars = NULL;
    size_t var_off = 0, var_len = 0;

    (void)arg;
    if (len < CHUNK_HDR || (rd_u64(p) != CHUNK_MAGIC && rd_u64(p) != FIXED_MAGIC && rd_u64(p) != SPARSE_MAGIC))
        return cf_task_fail(task, CF_EINVAL, "malformed map chunk");
    fixed = rd_u64(p) != CHUNK_MAGIC;
    memcpy(&fn, p + 8, sizeof(fn));
    count = rd_u64(p + 16);
    off = CHUNK_HDR;
    if (rd_u64(p) == SPARSE_MAGIC) {
        size_t ilen;
        if (sparse_open(p, len, &count, &ilen, &var_off, &var_len) != 0)
            return cf_task_fail(task, CF_EINVAL, "malformed map chunk");
        item = malloc(pad8(ilen));
        if (!item)
            return cf_task_fail(task, CF_ENOMEM, "out of memory for a map item");
        memcpy(item, p + SPARSE_HDR, ilen);
        fixed_len = ilen;
        vars = p + SPARSE_HDR + pad8(ilen);
    } else if (fixed) {
        if (len < FIXED_HDR || (fixed_len = rd_u64(p + 24)) == 0 || fixed_len > len ||
            count > (len - FIXED_HDR) / pad8((size_t)fixed_len))
            return cf_task_fail(task, CF_EINVAL, "malformed map chunk");
        off = FIXED_HDR;
        if (count == 1)
            return chunk_run_one(task, fn, p + off, (size_t)fixed_len);
    }
    /* Only a pull map's chunks are timed: their size adapts to it (map.c);
     * an array's chunk size is fixed. */
    if (rd_u64(p) != FIXED_MAGIC)
        t0 = cf_now_ns();
    buf_u64(&out, NUMBERS_MAGIC);
    buf_u64(&out, count);
    buf_u64(&out, 0); /* run_ns, filled in below */
    /* Room for every number at once when the count is believable. */
    if (count <= len / 8)
        buf_reserve(&out, (size_t)count * 8);

    for (uint64_t i = 0; i < count; i++) {
        struct cf__outcome o;
        uint64_t ilen;
        size_t at;

        const uint8_t *ip;

        if (item) {
            ilen = fixed_len;
            at = off;
            memcpy(item + var_off, vars + i * var_len, var_len);
        } else if (fixed) {
            ilen = fixed_len;
            at = off;
            if (ilen > len - off) {
                free(out.p);
                return cf_task_fail(task, CF_EINVAL, "malformed map chunk (item %llu)", (unsigned long long)i);
            }
        } else {
            if (off + 8 > len || (ilen = rd_u64(p + off)) > len - off - 8) {
                free(out.p);
                return cf_task_fail(task, CF_EINVAL, "malformed map chunk (item %llu)", (unsigned long long)i);
            }
            at = off + 8;
        }
        ip = item ? item : p + at;
        chunk_run_item(task, fn, ip, (size_t)ilen, &o);
        if (numbers && !is_plain_number(&o)) {
            numbers = 0;
            numbers_to_records(&out, i);
        }
        if (numbers) {
            uint64_t raw;
            memcpy(&raw, &o.value.i64, 8);
            buf_u64(&out, raw);
        } else {
            put_record(&out, &o);
        }
        cf__outcome_clear(&o);
        if (!item)
            off = at + pad8((size_t)ilen);
    }
    free(item);
    return chunk_finish(task, &out, t0 ? cf_now_ns() - t0 : 0);
}
