/*
 * frame.c - encoding and decoding of process-pool frames (see frame.h).
 */
#include "internal.h"

#include "frame.h"

#include <stdlib.h>
#include <string.h>

void cf__frame_hdr_encode(uint8_t out[CF__FRAME_HDR], unsigned type, uint64_t id, uint64_t len)
{
    uint16_t magic = CF__FRAME_MAGIC, t = (uint16_t)type;
    uint32_t flags = 0;

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
    if (h->magic != CF__FRAME_MAGIC || h->type < CF__FR_TASK || h->type > CF__FR_INIT_FAIL || h->flags != 0 ||
        h->len > CF__FRAME_MAX_LEN)
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

size_t cf__outcome_encoded_size(const struct cf__outcome *o)
{
    size_t len = o->is_bytes ? o->len : 0;
    size_t msglen = o->errmsg ? strlen(o->errmsg) + 1 : 0;

    return len + msglen + CF__OUTCOME_TRAILER;
}

void cf__outcome_encode(const struct cf__outcome *o, uint8_t *out)
{
    uint64_t len = o->is_bytes ? o->len : 0;
    uint64_t msglen = o->errmsg ? strlen(o->errmsg) + 1 : 0;
    int32_t err = o->err;
    uint32_t kind = o->is_bytes ? 1u : 0u;
    uint64_t raw = 0;
    uint8_t *t = out + len + msglen;

    if (!o->is_bytes)
        memcpy(&raw, &o->value, sizeof(raw));
    if (len)
        memcpy(out, o->value.ptr, (size_t)len);
    if (msglen)
        memcpy(out + len, o->errmsg, (size_t)msglen);
    memcpy(t, &err, 4);
    memcpy(t + 4, &kind, 4);
    memcpy(t + 8, &raw, 8);
    memcpy(t + 16, &len, 8);
    memcpy(t + 24, &msglen, 8);
}

/* Check an encoded outcome and fill in everything but a bytes value and the
 * message: 0 or CF_EINVAL.  *msglen > 0: the message starts at buf + o->len. */
static int outcome_parse(const uint8_t *buf, size_t n, struct cf__outcome *o, uint64_t *msglen_out)
{
    const uint8_t *t;
    int32_t err;
    uint32_t kind;
    uint64_t raw, len, msglen;

    memset(o, 0, sizeof(*o));
    if (!buf || n < CF__OUTCOME_TRAILER)
        return CF_EINVAL;
    t = buf + n - CF__OUTCOME_TRAILER;
    memcpy(&err, t, 4);
    memcpy(&kind, t + 4, 4);
    memcpy(&raw, t + 8, 8);
    memcpy(&len, t + 16, 8);
    memcpy(&msglen, t + 24, 8);
    if (kind > 1 || err > 0 || (kind == 0 && len != 0) || len > n - CF__OUTCOME_TRAILER ||
        msglen != n - CF__OUTCOME_TRAILER - len || (msglen && buf[len + msglen - 1] != '\0') ||
        (msglen && memchr(buf + len, '\0', (size_t)msglen - 1)))
        return CF_EINVAL;
    o->err = err;
    o->len = (size_t)len;
    o->is_bytes = kind == 1;
    if (kind == 0)
        memcpy(&o->value, &raw, sizeof(raw));
    *msglen_out = msglen;
    return 0;
}

int cf__outcome_decode(uint8_t *buf, size_t n, struct cf__outcome *o)
{
    uint64_t msglen;

    if (outcome_parse(buf, n, o, &msglen)) {
        free(buf);
        return CF_EINVAL;
    }
    if (msglen) {
        o->errmsg = strdup((const char *)buf + o->len);
        if (!o->errmsg) {
            free(buf);
            memset(o, 0, sizeof(*o));
            return CF_ENOMEM;
        }
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
    uint64_t msglen;

    if (outcome_parse(buf, n, o, &msglen))
        return CF_EINVAL;
    if (msglen && !(o->errmsg = strdup((const char *)buf + o->len))) {
        memset(o, 0, sizeof(*o));
        return CF_ENOMEM;
    }
    if (o->is_bytes) {
        o->value.ptr = cf__memdup(buf, o->len);
        if (!o->value.ptr) {
            free(o->errmsg);
            memset(o, 0, sizeof(*o));
            return CF_ENOMEM;
        }
        o->value_free = free;
    }
    return 0;
}
