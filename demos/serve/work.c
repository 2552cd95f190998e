/*
 * work.c - what cfserve runs off the loop: fib in worker processes, static
 * files and md5 on pool threads.  A task touches only its fs_job (and the
 * read-only server fields root, rootlen, md5_max and mime) until the pool
 * hands the job back to the loop.  fs_try_cached() runs the same file code
 * on the loop when the kernel promises not to wait.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#define _GNU_SOURCE /* O_NOFOLLOW, SCHED_IDLE */
#include "cfserve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * The seed's fib, corrected to fib(0) = 0; naive up to CFS_FIB_NAIVE_MAX.
 * The barrier keeps the compiler from turning the double recursion into
 * something cheaper, so a request costs the same exponential time in every build.
 */
__attribute__((noinline)) static int64_t fib_naive(int n)
{
    if (n < 2)
        return n;
    int64_t a = fib_naive(n - 1);
    __asm__ volatile("" ::: "memory");
    return a + fib_naive(n - 2);
}

static int64_t fib(int n)
{
    if (n <= CFS_FIB_NAIVE_MAX)
        return fib_naive(n);
    int64_t a = 0, b = 1;
    for (int i = 1; i < n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    return b;
}

/* Process-pool initializer: idle priority, so a CPU-bound fib never delays the loop. */
int worker_low_priority(void *data, int index, void **worker_data)
{
    struct sched_param sp = {.sched_priority = 0};
    (void)data;
    (void)index;
    (void)worker_data;
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0 && setpriority(PRIO_PROCESS, 0, 19) != 0)
        return -errno;
    return 0;
}

/* Process-pool task: the payload is an int32 n.  Runs in a worker process. */
int fib_task(cf_task_t *task, void *arg)
{
    size_t len = 0;
    int32_t n;
    (void)arg;
    const void *p = cf_task_arg(task, &len);
    if (len != sizeof(n))
        return cf_task_fail(task, CF_EINVAL, "bad payload of %zu bytes", len);
    memcpy(&n, p, sizeof(n));
    if (n < 0 || n > CFS_FIB_MAX)
        return cf_task_fail(task, CF_EINVAL, "n out of range: %d", (int)n);
    cf_task_set_i64(task, fib(n));
    return 0;
}

fs_job *job_new(const server *s, fs_kind kind, char *rel, const http_req *req)
{
    fs_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->srv = s;
    j->kind = kind;
    j->rel = rel;
    j->fd = -1;
    if (req) {
        j->req = *req;
        j->req.url = NULL;
    }
    return j;
}

void job_free(fs_job *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j->rel);
    free(j->body);
    free(j);
}

static void job_fail(fs_job *j, int status, const char *fmt, ...) CF_PRINTF(3, 4);

static void job_fail(fs_job *j, int status, const char *fmt, ...)
{
    va_list ap;
    j->status = status;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
    va_end(ap);
}

/* The status for a failed path lookup or open. */
static int errno_status(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return 404;
    case ENAMETOOLONG:
        return 414;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN:
        return 503;
    case EACCES:
    case EPERM:
    case ELOOP:
        return 403;
    default:
        return 500;
    }
}

static int under_root(const server *s, const char *real)
{
    if (s->rootlen == 1) /* the root is "/" */
        return real[0] == '/';
    return strncmp(real, s->root, s->rootlen) == 0 && (real[s->rootlen] == '\0' || real[s->rootlen] == '/');
}

/*
 * The fast way: openat2(RESOLVE_BENEATH) from the root's descriptor, one
 * system call that the kernel confines to the root (symlinks included).
 * Returns the descriptor; -2 when the kernel cannot say (no openat2, or a
 * path that leaves the root, perhaps through an absolute symlink that lands
 * inside again): then the slow way decides; -1 with the job failed otherwise.
 */
static int open_beneath(fs_job *j, const char *rel, struct stat *st)
{
#ifdef SYS_openat2
    const server *s = j->srv;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    if (s->root_fd < 0)
        return -2;
    int fd = (int)syscall(SYS_openat2, s->root_fd, rel[0] ? rel : ".", &how, sizeof(how));
    if (fd < 0) {
        int err = errno;
        if (err == ENOSYS || err == EXDEV || err == EPERM || err == EAGAIN || err == EINVAL)
            return -2;
        if (errno_status(err) == 404)
            job_fail(j, 404, "no such file: /%.150s", rel);
        else
            job_fail(j, errno_status(err), "cannot open /%.150s: %s", rel, strerror(err));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        int err = errno;
        job_fail(j, 500, "cannot stat /%.150s: %s", rel, strerror(err));
        close(fd);
        return -1;
    }
    return fd;
#else
    (void)j;
    (void)rel;
    (void)st;
    return -2;
#endif
}

/*
 * Resolve `rel` under the root and open it.  Returns the open descriptor (and
 * *real, to free: the name whose extension gives the media type), or -1 with
 * the job failed.
 */
static int open_confined(fs_job *j, const char *rel, char **real_out, struct stat *st)
{
    const server *s = j->srv;
    int bfd = open_beneath(j, rel, st);
    if (bfd != -2) {
        if (bfd >= 0)
            *real_out = demo_xstrndup(rel, strlen(rel));
        return bfd;
    }
    /* The slow way: realpath() and a check that the result is under the root. */
    size_t n = s->rootlen + 1 + strlen(rel) + 1;
    char *full = demo_xmalloc(n);
    snprintf(full, n, "%s/%s", s->root, rel);
    char *real = realpath(full, NULL);
    int err = errno;
    free(full);
    if (!real) {
        if (errno_status(err) == 404)
            job_fail(j, 404, "no such file: /%.150s", rel);
        else
            job_fail(j, errno_status(err), "cannot resolve /%.150s: %s", rel, strerror(err));
        return -1;
    }
    if (!under_root(s, real)) {
        job_fail(j, 403, "/%.150s leads outside the root", rel);
        free(real);
        return -1;
    }
    /* O_NOFOLLOW: a symlink appearing now is refused; O_NONBLOCK: a FIFO must not block the worker. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
        job_fail(j, errno_status(err), "cannot open /%.150s: %s", rel, strerror(err));
        free(real);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        err = errno;
        job_fail(j, 500, "cannot stat /%.150s: %s", rel, strerror(err));
        close(fd);
        free(real);
        return -1;
    }
    *real_out = real;
    return fd;
}

/* MD5 of the open file; stops early (CF_ECANCELED) once the request is cancelled. */
static int md5_fd(cf_task_t *task, fs_job *j, int fd, const struct stat *st)
{
    unsigned char buf[65536], digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int ok = 1;

    if ((uint64_t)st->st_size > j->srv->md5_max) {
        job_fail(j, 403, "file too large for /md5 (%jd bytes, limit %" PRIu64 ")", (intmax_t)st->st_size,
                 j->srv->md5_max);
        return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL))
        ok = 0;
    uint64_t total = 0;
    while (ok) {
        if (cf_task_cancelled(task)) {
            EVP_MD_CTX_free(ctx);
            return CF_ECANCELED;
        }
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            job_fail(j, 500, "read error: %s", strerror(errno));
            EVP_MD_CTX_free(ctx);
            return 0;
        }
        if (got == 0)
            break;
        total += (uint64_t)got;
        if (total > j->srv->md5_max) { /* the file grew past the limit while we read */
            job_fail(j, 403, "file too large for /md5 (limit %" PRIu64 ")", j->srv->md5_max);
            EVP_MD_CTX_free(ctx);
            return 0;
        }
        if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
            ok = 0;
    }
    if (ok && !EVP_DigestFinal_ex(ctx, digest, &dlen))
        ok = 0;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        job_fail(j, 500, "libcrypto MD5 failed");
        return 0;
    }
    j->body = demo_xmalloc(2 * dlen + 2);
    for (unsigned i = 0; i < dlen; i++)
        snprintf(j->body + 2 * i, 3, "%02x", digest[i]);
    j->body[2 * dlen] = '\n';
    j->len = 2 * dlen + 1;
    j->ctype = "text/plain; charset=utf-8";
    j->status = 200;
    return 0;
}

/*
 * A static file: status from the conditional and range headers; small bodies
 * read, large ones kept open.  With `nowait` (the loop thread) the read must
 * not wait for the disk: returns 1 when it would (the job is then half
 * filled and must be reset and sent to the pool), else 0.
 */
static int static_fd(fs_job *j, int *fdp, const struct stat *st, const char *real, int nowait)
{
    http_file f = {.size = (uint64_t)st->st_size,
                   .mtime = st->st_mtim.tv_sec,
                   .mtime_nsec = st->st_mtim.tv_nsec,
                   .ino = (uint64_t)st->st_ino};
    char etag[64], lastmod[40];
    uint64_t start = 0, len = 0;
    http_etag(&f, etag);
    http_date(f.mtime, lastmod);
    j->status = http_file_status(&j->req, &f, etag, lastmod, &start, &len);
    const char *type = demo_mime_lookup(j->srv->mime, real);
    j->ctype = type ? type : "application/octet-stream";
    int n = snprintf(j->extra, sizeof(j->extra), "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n", etag,
                     lastmod);
    if (j->status == 206)
        snprintf(j->extra + n, sizeof(j->extra) - (size_t)n,
                 "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", start, start + len - 1, f.size);
    else if (j->status == 416)
        snprintf(j->extra + n, sizeof(j->extra) - (size_t)n, "Content-Range: bytes */%" PRIu64 "\r\n", f.size);
    if (j->status == 304 || j->status == 416) {
        job_fail(j, j->status, "%s", j->status == 304 ? "" : "the range is not satisfiable");
        return 0;
    }
    j->off = start;
    j->flen = len;
    if (j->req.method == HTTP_HEAD)
        return 0;
    if (len <= CFS_SMALL_FILE) {
        j->body = demo_xmalloc(len ? len : 1);
        size_t got = 0;
        while (got < len) {
            struct iovec iov = {j->body + got, len - got};
            ssize_t r = preadv2(*fdp, &iov, 1, (off_t)(start + got), nowait ? RWF_NOWAIT : 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && nowait) /* EAGAIN: not in the page cache; EOPNOTSUPP: no such promise here */
                return 1;
            if (r < 0) {
                job_fail(j, 500, "read error: %s", strerror(errno));
                return 0;
            }
            if (r == 0) { /* the file shrank: the length is already promised; fail it */
                job_fail(j, 500, "the file shrank while being read");
                return 0;
            }
            got += (size_t)r;
        }
        j->len = len;
        return 0;
    }
    j->fd = *fdp; /* streamed by the loop with sendfile() */
    *fdp = -1;
    return 0;
}

/*
 * Is the file system of `dirfd` one whose open() of a cached file never waits
 * for a network peer or a user-space daemon (local disks and memory)?  NFS,
 * SMB, FUSE, 9p and the like are not: their files are always opened on a
 * pool thread.
 */
int fs_local(int dirfd)
{
    /* ext2/3/4, xfs, btrfs, f2fs, vfat, exfat; memory; overlayfs (over one of those, in containers) */
    static const long local[] = {EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC,   BTRFS_SUPER_MAGIC,
                                 F2FS_SUPER_MAGIC, MSDOS_SUPER_MAGIC, EXFAT_SUPER_MAGIC,
                                 TMPFS_MAGIC,      RAMFS_MAGIC,       OVERLAYFS_SUPER_MAGIC};
    struct statfs sf;
    if (fstatfs(dirfd, &sf) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        if ((long)sf.f_type == local[i])
            return 1;
    return 0;
}

/*
 * Loop thread: a static file the kernel can serve without waiting for the
 * disk is answered at once, with no round trip through the pool.  The path
 * is resolved with RESOLVE_CACHED (fails with EAGAIN unless every component
 * is in the dentry cache) under the same RESOLVE_BENEATH confinement as the
 * pool's way, and RESOLVE_NO_XDEV keeps it on the root's own file system,
 * which fs_local() found local; a small body is read with RWF_NOWAIT (fails
 * unless it is in the page cache).  Anything else (a directory, an error, a
 * cold file, another mount, a file system without RWF_NOWAIT, a kernel
 * before 5.12) leaves the job as it was: returns 0 and the caller submits it
 * to the pool, which decides and words the outcome.  Returns 1 when the job
 * holds its outcome.
 */
int fs_try_cached(fs_job *j)
{
#if defined(SYS_openat2) && defined(RESOLVE_CACHED) && defined(RWF_NOWAIT)
    const server *s = j->srv;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV | RESOLVE_CACHED};
    struct stat st;
    if (j->kind != FS_STATIC || !s->loop_files || s->root_fd < 0 || !j->rel[0])
        return 0;
    int fd = (int)syscall(SYS_openat2, s->root_fd, j->rel, &how, sizeof(how));
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    int would_wait = static_fd(j, &fd, &st, j->rel, 1);
    if (fd >= 0)
        close(fd);
    if (!would_wait)
        return 1;
    free(j->body); /* back to the state job_new() left it in */
    j->body = NULL;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    j->status = 0;
    j->ctype = NULL;
    j->len = 0;
    j->off = j->flen = 0;
    j->extra[0] = j->msg[0] = '\0';
    return 0;
#else
    (void)j;
    return 0;
#endif
}

/* Thread-pool task: a static file or an MD5.  The outcome is in the job. */
int fs_task(cf_task_t *task, void *arg)
{
    fs_job *j = arg;
    struct stat st;
    char *real = NULL;
    int rc = 0;

    int fd = open_confined(j, j->rel, &real, &st);
    if (fd < 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        fd = -1;
        if (j->kind == FS_MD5) {
            job_fail(j, 400, "/%.150s is a directory", j->rel);
            free(real);
            return 0;
        }
        size_t rl = strlen(j->rel);
        if (rl > 0 && j->rel[rl - 1] != '/') { /* the loop adds the Location */
            job_fail(j, 301, "/%.150s is a directory", j->rel);
            free(real);
            return 0;
        }
        size_t n = rl + sizeof("index.html");
        char *index = demo_xmalloc(n);
        snprintf(index, n, "%sindex.html", j->rel);
        free(real);
        real = NULL;
        fd = open_confined(j, index, &real, &st);
        free(index);
        if (fd < 0) {
            if (j->status == 404)
                job_fail(j, 403, "/%.150s is a directory without index.html", j->rel);
            return 0;
        }
    }
    if (!S_ISREG(st.st_mode))
        job_fail(j, 403, "/%.150s is not a regular file", j->rel);
    else if (j->kind == FS_MD5)
        rc = md5_fd(task, j, fd, &st);
    else
        static_fd(j, &fd, &st, real, 0);
    if (fd >= 0)
        close(fd);
    free(real);
    return rc;
}
