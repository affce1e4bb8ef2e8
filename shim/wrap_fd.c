/* Wrappers of calls on descriptors. An object's descriptor is a real kernel file (the
 * daemon's cache file): writes, seeks, locks, polls and fstat work in the kernel. The
 * shim only makes sure the bytes a read touches are present first (without asking the
 * daemon when its shared map says they are), and stores the file at close and fsync.
 * A descriptor that is not an object's costs one table lookup. */
#include "objmount.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

/* ---- reads -------------------------------------------------------------------------------- */
static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* Reading [offset, offset + length) of an object file (offset -1: where the descriptor
 * is). ``do_read`` performs the real read; it is repeated if the daemon replaced the
 * cache file's bytes meanwhile. */
typedef ssize_t (*reader_fn)(int fd, void *arg);

static ssize_t object_read(int fd, off_t offset, size_t length, reader_fn do_read, void *arg)
{
    struct om_file *f = om_get_fd(fd);
    ssize_t r = -1;
    if (!f || f->kind != DT_REG) {
        om_put(f);
        return do_read(fd, arg);
    }
    for (int tries = 0;; tries++) {
        uint32_t seq;
        off_t at = offset;
        if (f->map) {
            /* Fast path: a complete file needs no offset and no question. */
            seq = __atomic_load_n(&f->map->seq, __ATOMIC_ACQUIRE);
            if (!(seq & 1) &&
                (__atomic_load_n(&f->map->flags, __ATOMIC_ACQUIRE) & OM_MAP_COMPLETE)) {
                r = do_read(fd, arg);
                if (r < 0 || om_map_seq_same(f, seq) || tries > 4)
                    break;
                if (offset < 0 && r > 0) /* replaced meanwhile: read those bytes again */
                    REAL(lseek)(fd, -(off_t)r, SEEK_CUR);
                continue;
            }
        }
        if (at < 0) {
            at = REAL(lseek)(fd, 0, SEEK_CUR);
            if (at < 0) {
                r = do_read(fd, arg);
                break;
            }
        }
        if (om_ensure_range(fd, f, at, (int64_t)length, &seq) < 0) {
            r = -1;
            break;
        }
        r = do_read(fd, arg);
        if (r < 0 || om_map_seq_same(f, seq) || tries > 4)
            break;
        if (offset < 0)
            REAL(lseek)(fd, at, SEEK_SET);
    }
    om_put(f);
    return r;
}

struct rw_args {
    void *buf;
    size_t n;
    off_t off;
    const struct iovec *iov;
    int cnt;
    int flags;
};

static ssize_t do_read(int fd, void *p)
{
    struct rw_args *a = p;
    return REAL(read)(fd, a->buf, a->n);
}

static ssize_t do_pread(int fd, void *p)
{
    struct rw_args *a = p;
    return REAL(pread64)(fd, a->buf, a->n, a->off);
}

static ssize_t do_readv(int fd, void *p)
{
    struct rw_args *a = p;
    return REAL(readv)(fd, a->iov, a->cnt);
}

static ssize_t do_preadv(int fd, void *p)
{
    struct rw_args *a = p;
    return REAL(preadv64v2)(fd, a->iov, a->cnt, a->off, a->flags);
}

OM_API ssize_t read(int fd, void *buf, size_t n)
{
    struct rw_args a = {.buf = buf, .n = n};
    if (!om_fd_maybe_ours(fd))
        return REAL(read)(fd, buf, n);
    return object_read(fd, -1, n, do_read, &a);
}

OM_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    struct rw_args a = {.buf = buf, .n = n};
    if (!om_fd_maybe_ours(fd) || n > buflen)
        return REAL(__read_chk)(fd, buf, n, buflen);
    return object_read(fd, -1, n, do_read, &a);
}

OM_API ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    struct rw_args a = {.buf = buf, .n = n, .off = off};
    if (!om_fd_maybe_ours(fd))
        return REAL(pread)(fd, buf, n, off);
    return object_read(fd, off, n, do_pread, &a);
}

OM_API ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    struct rw_args a = {.buf = buf, .n = n, .off = off};
    if (!om_fd_maybe_ours(fd))
        return REAL(pread64)(fd, buf, n, off);
    return object_read(fd, off, n, do_pread, &a);
}

OM_API ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    struct rw_args a = {.buf = buf, .n = n, .off = off};
    if (!om_fd_maybe_ours(fd) || n > buflen)
        return REAL(__pread_chk)(fd, buf, n, off, buflen);
    return object_read(fd, off, n, do_pread, &a);
}

OM_API ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    struct rw_args a = {.buf = buf, .n = n, .off = off};
    if (!om_fd_maybe_ours(fd) || n > buflen)
        return REAL(__pread64_chk)(fd, buf, n, off, buflen);
    return object_read(fd, off, n, do_pread, &a);
}

OM_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    struct rw_args a = {.iov = iov, .cnt = cnt};
    if (!om_fd_maybe_ours(fd))
        return REAL(readv)(fd, iov, cnt);
    return object_read(fd, -1, iov_total(iov, cnt), do_readv, &a);
}

#define PREADV(name, params, call, offexpr, flagsexpr)                              \
    OM_API ssize_t name params                                                      \
    {                                                                               \
        struct rw_args a = {.iov = iov, .cnt = cnt, .off = offexpr, .flags = flagsexpr}; \
        if (!om_fd_maybe_ours(fd))                                                  \
            return REAL(name) call;                                                 \
        return object_read(fd, offexpr, iov_total(iov, cnt),                        \
                           (offexpr) < 0 ? do_readv : do_preadv, &a);               \
    }

PREADV(preadv, (int fd, const struct iovec *iov, int cnt, off_t off), (fd, iov, cnt, off),
       off, 0)
PREADV(preadv64, (int fd, const struct iovec *iov, int cnt, off64_t off),
       (fd, iov, cnt, off), off, 0)
PREADV(preadv2, (int fd, const struct iovec *iov, int cnt, off_t off, int flags),
       (fd, iov, cnt, off, flags), off, flags)
PREADV(preadv64v2, (int fd, const struct iovec *iov, int cnt, off64_t off, int flags),
       (fd, iov, cnt, off, flags), off, flags)

/* ---- writes ------------------------------------------------------------------------------- */
/* Writes go straight to the kernel. Only a failure is looked at (success costs nothing):
 * a write that could not reach the cache file (a full cache disk) means the file is not
 * what the program meant, so the daemon must not store it at close. */
static ssize_t written(int fd, ssize_t r)
{
    struct om_file *f;
    int saved = errno;
    if (r >= 0 || (saved != ENOSPC && saved != EDQUOT && saved != EFBIG && saved != EIO) ||
        !om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return r;
    if (f->kind == DT_REG)
        om_write_failed(f, saved);
    om_put(f);
    errno = saved;
    return r;
}

OM_API ssize_t write(int fd, const void *buf, size_t n)
{
    return written(fd, REAL(write)(fd, buf, n));
}

OM_API ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return written(fd, REAL(pwrite)(fd, buf, n, off));
}

OM_API ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    return written(fd, REAL(pwrite64)(fd, buf, n, off));
}

OM_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    return written(fd, REAL(writev)(fd, iov, cnt));
}

OM_API ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return written(fd, REAL(pwritev)(fd, iov, cnt, off));
}

OM_API ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    return written(fd, REAL(pwritev64)(fd, iov, cnt, off));
}

OM_API ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return written(fd, REAL(pwritev2)(fd, iov, cnt, off, flags));
}

OM_API ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    return written(fd, REAL(pwritev64v2)(fd, iov, cnt, off, flags));
}

/* Kernel-side copies read the object's cache file themselves: fill first. */
static int fill_for_copy(int fd, const off_t *off, size_t len)
{
    struct om_file *f;
    uint32_t seq;
    off_t at;
    int r;
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return 0;
    at = off ? *off : REAL(lseek)(fd, 0, SEEK_CUR);
    r = f->kind == DT_REG ? om_ensure_range(fd, f, at < 0 ? -1 : at,
                                            at < 0 ? -1 : (int64_t)len, &seq)
                          : 0;
    om_put(f);
    return r;
}

OM_API ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    if (fill_for_copy(in, off, count) < 0)
        return -1;
    return REAL(sendfile)(out, in, off, count);
}

OM_API ssize_t sendfile64(int out, int in, off64_t *off, size_t count)
{
    if (fill_for_copy(in, (off_t *)off, count) < 0)
        return -1;
    return REAL(sendfile64)(out, in, off, count);
}

OM_API ssize_t copy_file_range(int in, off64_t *off_in, int out, off64_t *off_out, size_t len,
                               unsigned int flags)
{
    if (fill_for_copy(in, (off_t *)off_in, len) < 0)
        return -1;
    return REAL(copy_file_range)(in, off_in, out, off_out, len, flags);
}

OM_API ssize_t splice(int in, off64_t *off_in, int out, off64_t *off_out, size_t len,
                      unsigned int flags)
{
    if (fill_for_copy(in, (off_t *)off_in, len) < 0)
        return -1;
    return REAL(splice)(in, off_in, out, off_out, len, flags);
}

OM_API off_t lseek(int fd, off_t off, int whence)
{
    if ((whence == SEEK_DATA || whence == SEEK_HOLE) && om_fd_maybe_ours(fd) &&
        om_fill_all_fd(fd) < 0)
        return -1;
    return REAL(lseek)(fd, off, whence);
}

OM_API off64_t lseek64(int fd, off64_t off, int whence)
{
    if ((whence == SEEK_DATA || whence == SEEK_HOLE) && om_fd_maybe_ours(fd) &&
        om_fill_all_fd(fd) < 0)
        return -1;
    return REAL(lseek64)(fd, off, whence);
}

OM_API int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (OM_UNLIKELY(request == FICLONE || request == FICLONERANGE)) {
        /* Cloning would share blocks of a cache file not yet filled: copy instead. */
        int src = request == FICLONE ? (int)(intptr_t)arg
                                     : (int)((struct file_clone_range *)arg)->src_fd;
        if (om_fd_maybe_ours(fd) || om_fd_maybe_ours(src)) {
            errno = EOPNOTSUPP;
            return -1;
        }
    }
    return REAL(ioctl)(fd, request, arg);
}

/* ---- mappings ----------------------------------------------------------------------------- */
struct mapping {
    void *addr;
    size_t len;
    struct om_file *file;
    struct mapping *next;
};
static struct mapping *g_mappings;
static int g_nmappings;
static pthread_mutex_t g_map_lock = PTHREAD_MUTEX_INITIALIZER;

static void *mmap_common(void *addr, size_t len, int prot, int flags, int fd, off64_t off,
                         void *(*real)(void *, size_t, int, int, int, off64_t))
{
    struct om_file *f;
    uint32_t seq;
    void *p;
    if (fd < 0 || !om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return real(addr, len, prot, flags, fd, off);
    if (f->kind == DT_REG && om_ensure_range(fd, f, off, (int64_t)len, &seq) < 0) {
        om_put(f);
        return MAP_FAILED;
    }
    p = real(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && f->kind == DT_REG && (flags & MAP_SHARED) && (prot & PROT_WRITE)) {
        struct mapping *m = malloc(sizeof *m);
        if (m) {
            f->mapped_writable = 1;
            m->addr = p;
            m->len = len;
            m->file = f;
            f = NULL; /* the mapping keeps the reference */
            pthread_mutex_lock(&g_map_lock);
            m->next = g_mappings;
            g_mappings = m;
            __atomic_add_fetch(&g_nmappings, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&g_map_lock);
        }
    }
    om_put(f);
    return p;
}

static void *real_mmap(void *a, size_t l, int p, int fl, int fd, off64_t o)
{
    return REAL(mmap64)(a, l, p, fl, fd, o);
}

OM_API void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fd < 0 || !om_fd_maybe_ours(fd))
        return REAL(mmap)(addr, len, prot, flags, fd, off);
    return mmap_common(addr, len, prot, flags, fd, off, real_mmap);
}

OM_API void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    if (fd < 0 || !om_fd_maybe_ours(fd))
        return REAL(mmap64)(addr, len, prot, flags, fd, off);
    return mmap_common(addr, len, prot, flags, fd, off, real_mmap);
}

/* Writes through a shared mapping make no inotify event: tell the daemon, and store. */
static void sync_mappings(void *addr, size_t len, int remove)
{
    struct mapping **pp, *done = NULL;
    pthread_mutex_lock(&g_map_lock);
    pp = &g_mappings;
    while (*pp) {
        struct mapping *m = *pp;
        char *a = addr, *b = m->addr;
        if (a < b + m->len && b < a + len) {
            if (remove) {
                *pp = m->next;
                __atomic_sub_fetch(&g_nmappings, 1, __ATOMIC_RELAXED);
                m->next = done;
                done = m;
                continue;
            }
            m->file->refs++; /* a reference for the store below, under the map lock */
            {
                struct mapping *copy = malloc(sizeof *copy);
                if (copy) {
                    *copy = *m;
                    copy->next = done;
                    done = copy;
                } else {
                    m->file->refs--;
                }
            }
        }
        pp = &m->next;
    }
    pthread_mutex_unlock(&g_map_lock);
    while (done) {
        struct mapping *next = done->next;
        om_flush(done->file);
        om_put(done->file);
        free(done);
        done = next;
    }
}

OM_API int msync(void *addr, size_t len, int flags)
{
    int r = REAL(msync)(addr, len, flags);
    if (r == 0 && __atomic_load_n(&g_nmappings, __ATOMIC_RELAXED))
        sync_mappings(addr, len, 0);
    return r;
}

OM_API int munmap(void *addr, size_t len)
{
    if (__atomic_load_n(&g_nmappings, __ATOMIC_RELAXED))
        sync_mappings(addr, len, 1);
    return REAL(munmap)(addr, len);
}

/* ---- closing: close-to-open ------------------------------------------------------------------ */
static int after_close(struct om_file *f, int r)
{
    if (f->kind == DT_REG && f->accmode != O_RDONLY && om_flush(f) < 0 && r == 0)
        r = -1;
    om_put(f);
    return r;
}

OM_API int close(int fd)
{
    struct om_file *f;
    int r, saved;
    if (OM_UNLIKELY(om_is_socket_fd(fd)))
        om_socket_lost(fd);
    if (!om_fd_maybe_ours(fd))
        return REAL(close)(fd);
    f = om_take_fd(fd);
    r = REAL(close)(fd);
    if (!f)
        return r;
    saved = errno;
    r = after_close(f, r);
    if (r == 0)
        errno = saved;
    return r;
}

struct range_close {
    unsigned int first, last;
    struct om_file *taken[256];
    int n;
};

static int take_in_range(int fd, struct om_file *f, void *arg)
{
    struct range_close *rc = arg;
    (void)f;
    if ((unsigned)fd >= rc->first && (unsigned)fd <= rc->last && rc->n < 256) {
        struct om_file *t = om_take_fd(fd);
        if (t)
            rc->taken[rc->n++] = t;
    }
    return 0;
}

static int close_taken(struct range_close *rc, int r)
{
    for (int i = 0; i < rc->n; i++)
        r = after_close(rc->taken[i], r);
    return r;
}

OM_API int close_range(unsigned int first, unsigned int last, int flags)
{
    struct range_close rc = {.first = first, .last = last};
    int r;
    if (!(flags & CLOSE_RANGE_CLOEXEC)) {
        om_socket_in_range(first, last);
        om_for_each_fd(take_in_range, &rc);
    }
    r = REAL(close_range)(first, last, flags);
    return close_taken(&rc, r);
}

OM_API void closefrom(int lowfd)
{
    struct range_close rc = {.first = (unsigned)(lowfd < 0 ? 0 : lowfd), .last = ~0u};
    om_socket_in_range(rc.first, rc.last);
    om_for_each_fd(take_in_range, &rc);
    REAL(closefrom)(lowfd);
    close_taken(&rc, 0);
}

OM_API int fsync(int fd)
{
    struct om_file *f;
    int r;
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return REAL(fsync)(fd);
    r = f->kind == DT_REG && f->accmode != O_RDONLY ? om_flush(f) : 0;
    om_put(f);
    return r;
}

OM_API int fdatasync(int fd)
{
    if (!om_fd_maybe_ours(fd))
        return REAL(fdatasync)(fd);
    return fsync(fd);
}

OM_API int syncfs(int fd)
{
    if (!om_fd_maybe_ours(fd))
        return REAL(syncfs)(fd);
    return fsync(fd);
}

/* ---- duplicates share the description, as in the kernel ---------------------------------- */
static void duplicated(int oldfd, int newfd)
{
    struct om_file *f;
    if (newfd < 0)
        return;
    f = om_get_fd(oldfd);
    if (f) {
        om_set_fd(newfd, f);
        om_put(f);
    }
}

OM_API int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0 && om_fd_maybe_ours(fd))
        duplicated(fd, r);
    return r;
}

static int dup_onto(int oldfd, int newfd, int flags, int three)
{
    struct om_file *replaced = NULL;
    int r;
    if (OM_UNLIKELY(om_is_socket_fd(newfd)) && oldfd != newfd)
        om_socket_lost(newfd);
    if (oldfd != newfd && om_fd_maybe_ours(newfd))
        replaced = om_take_fd(newfd);
    r = three ? REAL(dup3)(oldfd, newfd, flags) : REAL(dup2)(oldfd, newfd);
    if (r >= 0 && om_fd_maybe_ours(oldfd))
        duplicated(oldfd, r);
    if (replaced) {
        if (r < 0) {
            om_set_fd(newfd, replaced);
            om_put(replaced);
        } else {
            /* dup2 closed what newfd was: that is a close, and stores the file. */
            int saved = errno;
            after_close(replaced, 0);
            errno = saved;
        }
    }
    return r;
}

OM_API int dup2(int oldfd, int newfd)
{
    if (!om_fd_maybe_ours(oldfd) && !om_fd_maybe_ours(newfd) && !om_is_socket_fd(newfd))
        return REAL(dup2)(oldfd, newfd);
    return dup_onto(oldfd, newfd, 0, 0);
}

OM_API int dup3(int oldfd, int newfd, int flags)
{
    if (!om_fd_maybe_ours(oldfd) && !om_fd_maybe_ours(newfd) && !om_is_socket_fd(newfd))
        return REAL(dup3)(oldfd, newfd, flags);
    return dup_onto(oldfd, newfd, flags, 1);
}

static int fcntl_common(int fd, int cmd, void *arg, int (*real)(int, int, ...))
{
    int r = real(fd, cmd, arg);
    if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 && om_fd_maybe_ours(fd))
        duplicated(fd, r);
    return r;
}

OM_API int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg, REAL(fcntl));
}

OM_API int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg, REAL(fcntl64));
}
