/*
 * frame.c - encoding and decoding of process-pool frames (see frame.h).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "frame.h"

#include <stdlib.h>
#include <string.h>

void cf__frame_hdr_encode(uint8_t out[CF__FRAME_HDR], unsigned type, uint64_t id, uint64_t len)
{
    cf__frame_hdr_encode_flags(out, type, 0, id, len);
}

void cf__frame_hdr_encode_flags(uint8_t out[CF__FRAME_HDR], unsigned type, uint32_t flags, uint64_t id, uint64_t len)
{
    uint16_t magic = CF__FRAME_MAGIC, t = (uint16_t)type;

    memcpy(out, &magic, 2);
    memcpy(out + 2, &t, 2);
    memcpy(out + 4, &flags, 4);
    memcpy(out + 8, &id, 8);
    memcpy(out + 16, &len, 8);
}

int cf__frame_hdr_decode(const uint8_t in[CF__FRAME_HDR], struct cf__frame_hdr *h)
{
    memcpy(&h->magic, in, 2);
    memcpy(&h->type, in + 2, 2);
    memcpy(&h->flags, in + 4, 4);
    memcpy(&h->id, in + 8, 8);
    memcpy(&h->len, in + 16, 8);
    if (h->magic != CF__FRAME_MAGIC || h->type < CF__FR_TASK || h->type > CF__FR_PAD ||
        (h->type == CF__FR_TASK && h->flags != 0) || h->len > CF__FRAME_MAX_LEN)
        return CF_EINVAL;
    return 0;
}

void cf__frame_reader_init(struct cf__frame_reader *r, uint64_t max_len)
{
    memset(r, 0, sizeof(*r));
    r->max_len = max_len;
}

int cf__frame_reader_idle(const struct cf__frame_reader *r)
{
    return r->hdr_got == 0;
}

void cf__frame_reader_reset(struct cf__frame_reader *r)
{
    free(r->payload);
    cf__frame_reader_init(r, r->max_len);
}

void cf__frame_reader_want(const struct cf__frame_reader *r, uint8_t **where, size_t *n)
{
    if (r->hdr_got < CF__FRAME_HDR) {
        *where = (uint8_t *)r->hdr + r->hdr_got;
        *n = CF__FRAME_HDR - r->hdr_got;
    } else {
        *where = r->payload + r->got;
        *n = (size_t)r->h.len - r->got;
    }
}

int cf__frame_reader_got(struct cf__frame_reader *r, size_t n, struct cf__frame_hdr *h, uint8_t **payload)
{
    if (r->hdr_got < CF__FRAME_HDR) {
        r->hdr_got += n;
        if (r->hdr_got < CF__FRAME_HDR)
            return 0;
        if (cf__frame_hdr_decode(r->hdr, &r->h) || r->h.len > r->max_len)
            return CF_EINVAL;
        if (r->h.len) {
            if (r->h.len > SIZE_MAX - 1)
                return CF_ENOMEM;
            r->payload = malloc((size_t)r->h.len);
            if (!r->payload)
                return CF_ENOMEM;
            r->got = 0;
            return 0;
        }
    } else {
        r->got += n;
        if (r->got < r->h.len)
            return 0;
    }
    *h = r->h;
    *payload = r->payload;
    r->payload = NULL;
    r->hdr_got = 0;
    r->got = 0;
    return 1;
}
