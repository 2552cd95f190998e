/*
 * demos/common/mime.h - media types by file extension, read from a
 * mime.types file (Debian's media-types package installs /etc/mime.types):
 * lines of "type ext ext ...", '#' comments.
 *
 * Build the table once (any thread), then look up from any thread: the table
 * is read-only after demo_mime_load().
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_DEMO_MIME_H
#define CF_DEMO_MIME_H

#include <stddef.h>

typedef struct demo_mime demo_mime;

/*
 * Read `path` into *out.  Returns 0, or a negated errno (the file cannot be
 * opened or read; ENOMEM).  A later extension of a type already listed does
 * not replace the first.
 */
int demo_mime_load(const char *path, demo_mime **out);

/* The type for the extension of `path` (after its last '.' in its last
 * component, case-insensitive), or NULL when there is none.  `m` may be NULL. */
const char *demo_mime_lookup(const demo_mime *m, const char *path);

/* Number of extensions known. */
size_t demo_mime_count(const demo_mime *m);

void demo_mime_free(demo_mime *m);

#endif
