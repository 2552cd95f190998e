/*
 * fuzz_frame.c - libFuzzer target for the process-pool frame decoder.
 *
 * The input's first byte picks the chunk sizes in which the rest is fed to
 * the incremental reader (as reads from a socket would split it); every
 * complete frame's payload then goes through both outcome decoders (the
 * copying one, used for frames parsed in place, and the owning one), which
 * must agree.  Nothing may crash, read out of bounds or leak.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "internal.h"

#include "frame.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cf__frame_reader r;
    size_t off = 1, step;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 37 + 1;
    cf__frame_reader_init(&r, 1u << 20); /* bound allocations while fuzzing */
    while (off < size) {
        struct cf__frame_hdr h;
        uint8_t *where, *payload;
        size_t want, take;
        int rc;

        cf__frame_reader_want(&r, &where, &want);
        take = want < step ? want : step;
        if (take > size - off)
            take = size - off;
        memcpy(where, data + off, take);
        off += take;
        rc = cf__frame_reader_got(&r, take, &h, &payload);
        if (rc < 0)
            break;
        if (rc == 1) {
            struct cf__outcome o, c;
            int copied = cf__outcome_decode_copy(payload, (size_t)h.len, &c);

            if (copied == 0)
                cf__outcome_clear(&c);
            /* decode takes the payload, whatever the verdict */
            if (payload) {
                int owned = cf__outcome_decode(payload, (size_t)h.len, &o);
                if (owned != copied && owned != CF_ENOMEM && copied != CF_ENOMEM)
                    __builtin_trap();
                if (owned == 0)
                    cf__outcome_clear(&o);
            }
        }
    }
    cf__frame_reader_reset(&r);
    return 0;
}
