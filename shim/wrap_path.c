/* Wrappers of calls that take a path: open, the stat family, and every call that
 * changes a name or its attributes. A local path costs one prefix comparison. */
#include "objmount.h"

#include <stdio.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <utime.h>

#define OM_LOCAL (-3)
#define OM_EXT (-2)

_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "x86-64 layout");

/* A reply with no payload: 0, -1 with errno, or OM_EXT with the local path in ext. */
static int finish(struct om_msg *m, char *ext)
{
    int st = om_status(m);
    if (st == OM_EXTERNAL && m->argc > 1 && m->args[1].is_bytes) {
        snprintf(ext, PATH_MAX, "%.*s", (int)m->args[1].len, m->args[1].b);
        om_msg_free(m);
        return OM_EXT;
    }
    if (st != 0)
        return om_reply_errno(m);
    om_msg_free(m);
    return 0;
}

/* ---- open ------------------------------------------------------------------------------- */
static inline void forget_stale(int fd)
{
    if (OM_UNLIKELY(fd >= 0 && om_fd_maybe_ours(fd)))
        om_put(om_take_fd(fd));
}

static int open_object(const char *vp, int flags, mode_t mode)
{
    char ext[PATH_MAX];
    int fd = om_open_vpath(vp, flags, mode, ext, sizeof ext);
    if (fd == OM_EXT) {
        fd = REAL(openat)(AT_FDCWD, ext, flags, mode);
        forget_stale(fd);
    }
    return fd;
}

#define OPEN_MODE(flags)                                                            \
    mode_t mode = 0;                                                                \
    if ((flags) & (O_CREAT | __O_TMPFILE)) {                                        \
        va_list ap;                                                                 \
        va_start(ap, flags);                                                        \
        mode = (mode_t)va_arg(ap, int);                                             \
        va_end(ap);                                                                 \
    }

#define OPEN_BODY(dirfd, real_call)                                                 \
    char vp[PATH_MAX];                                                              \
    int k = om_classify(dirfd, path, vp, sizeof vp);                                \
    if (k == 0) {                                                                   \
        int fd_ = real_call;                                                        \
        forget_stale(fd_);                                                          \
        return fd_;                                                                 \
    }                                                                               \
    if (k < 0)                                                                      \
        return -1;                                                                  \
    return open_object(vp, flags, mode);

OM_API int open(const char *path, int flags, ...)
{
    OPEN_MODE(flags)
    OPEN_BODY(AT_FDCWD, REAL(open)(path, flags, mode))
}

OM_API int open64(const char *path, int flags, ...)
{
    OPEN_MODE(flags)
    OPEN_BODY(AT_FDCWD, REAL(open64)(path, flags, mode))
}

OM_API int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags)
    OPEN_BODY(dirfd, REAL(openat)(dirfd, path, flags, mode))
}

OM_API int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags)
    OPEN_BODY(dirfd, REAL(openat64)(dirfd, path, flags, mode))
}

OM_API int __open_2(const char *path, int flags)
{
    mode_t mode = 0;
    OPEN_BODY(AT_FDCWD, REAL(__open_2)(path, flags))
}

OM_API int __open64_2(const char *path, int flags)
{
    mode_t mode = 0;
    OPEN_BODY(AT_FDCWD, REAL(__open64_2)(path, flags))
}

OM_API int __openat_2(int dirfd, const char *path, int flags)
{
    mode_t mode = 0;
    OPEN_BODY(dirfd, REAL(__openat_2)(dirfd, path, flags))
}

OM_API int __openat64_2(int dirfd, const char *path, int flags)
{
    mode_t mode = 0;
    OPEN_BODY(dirfd, REAL(__openat64_2)(dirfd, path, flags))
}

OM_API int creat(const char *path, mode_t mode)
{
    int flags = O_CREAT | O_WRONLY | O_TRUNC;
    OPEN_BODY(AT_FDCWD, REAL(creat)(path, mode))
}

OM_API int creat64(const char *path, mode_t mode)
{
    int flags = O_CREAT | O_WRONLY | O_TRUNC;
    OPEN_BODY(AT_FDCWD, REAL(creat64)(path, mode))
}

/* ---- stdio: the stream reads and writes through glibc's own calls, so the file is
 * whole in the cache before the stream exists. ------------------------------------------ */
static int stdio_flags(const char *mode)
{
    int flags;
    switch (mode[0]) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
    }
    for (const char *m = mode + 1; *m && *m != ','; m++) {
        if (*m == '+')
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        else if (*m == 'e')
            flags |= O_CLOEXEC;
        else if (*m == 'x')
            flags |= O_EXCL;
    }
    return flags;
}

static FILE *fopen_object(const char *vp, const char *mode)
{
    int flags = stdio_flags(mode), fd;
    FILE *fp;
    if (flags < 0) {
        errno = EINVAL;
        return NULL;
    }
    fd = open_object(vp, flags, 0666);
    if (fd < 0)
        return NULL;
    if (om_fill_all_fd(fd) < 0 || !(fp = REAL(fdopen)(fd, mode))) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    return fp;
}

OM_API FILE *fopen(const char *path, const char *mode)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(fopen)(path, mode);
    return k < 0 ? NULL : fopen_object(vp, mode);
}

OM_API FILE *fopen64(const char *path, const char *mode)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(fopen64)(path, mode);
    return k < 0 ? NULL : fopen_object(vp, mode);
}

OM_API FILE *fdopen(int fd, const char *mode)
{
    if (om_fd_maybe_ours(fd) && om_fill_all_fd(fd) < 0)
        return NULL;
    return REAL(fdopen)(fd, mode);
}

static FILE *freopen_common(const char *path, const char *mode, FILE *stream,
                            FILE *(*real)(const char *, const char *, FILE *))
{
    char vp[PATH_MAX];
    int k = path ? om_classify(AT_FDCWD, path, vp, sizeof vp) : 0;
    int old = stream ? fileno(stream) : -1;
    if (k == 0) {
        struct om_file *f = old >= 0 ? om_take_fd(old) : NULL;
        FILE *r = real(path, mode, stream);
        if (f) {
            if (f->kind == DT_REG && f->accmode != O_RDONLY)
                om_flush(f);
            om_put(f);
        }
        return r;
    }
    if (k < 0)
        return NULL;
    {
        /* Keep the stream, point its descriptor at the object. */
        int flags = stdio_flags(mode), fd;
        if (flags < 0 || old < 0) {
            errno = EINVAL;
            return NULL;
        }
        fflush(stream);
        fd = open_object(vp, flags & ~O_CLOEXEC, 0666);
        if (fd < 0 || om_fill_all_fd(fd) < 0)
            return NULL;
        if (fd != old) {
            if (dup2(fd, old) < 0) {
                close(fd);
                return NULL;
            }
            close(fd);
        }
        clearerr(stream);
        rewind(stream);
        return stream;
    }
}

OM_API FILE *freopen(const char *path, const char *mode, FILE *stream)
{
    return freopen_common(path, mode, stream, REAL(freopen));
}

OM_API FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
    return freopen_common(path, mode, stream, REAL(freopen64));
}

OM_API int fclose(FILE *fp)
{
    int fd = fp ? fileno(fp) : -1;
    struct om_file *f;
    int r;
    if (!om_fd_maybe_ours(fd))
        return REAL(fclose)(fp);
    f = om_take_fd(fd);
    r = REAL(fclose)(fp);
    if (f && f->kind == DT_REG && f->accmode != O_RDONLY && om_flush(f) < 0)
        r = EOF;
    om_put(f);
    return r;
}

/* ---- temporary files in object directories (sed -i makes its temporary beside the
 * file it edits) ------------------------------------------------------------------------ */
static int fill_template(char *tmpl, int suffixlen)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned long long counter;
    size_t len = strlen(tmpl);
    char *x;
    unsigned long long v;
    struct timespec ts;
    if (suffixlen < 0 || len < (size_t)suffixlen + 6)
        return -1;
    x = tmpl + len - suffixlen - 6;
    if (memcmp(x, "XXXXXX", 6) != 0)
        return -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 16) ^
        (__atomic_add_fetch(&counter, 7919, __ATOMIC_RELAXED) * 2654435761ULL);
    for (int i = 0; i < 6; i++) {
        x[i] = chars[v % 62];
        v /= 62;
    }
    return 0;
}

static int mkstemp_object(char *tmpl, int flags, int suffixlen)
{
    char saved[PATH_MAX];
    if (strlen(tmpl) >= sizeof saved) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(saved, tmpl);
    for (int attempt = 0; attempt < 100; attempt++) {
        char vp[PATH_MAX];
        int fd;
        strcpy(tmpl, saved);
        if (fill_template(tmpl, suffixlen) < 0) {
            errno = EINVAL;
            return -1;
        }
        if (om_classify(AT_FDCWD, tmpl, vp, sizeof vp) <= 0)
            return -1;
        fd = open_object(vp, (flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

#define MKSTEMP(name, params, call, flags, suffix)                                  \
    OM_API int name params                                                          \
    {                                                                               \
        char vp[PATH_MAX];                                                          \
        int k = om_classify(AT_FDCWD, tmpl, vp, sizeof vp);                         \
        if (k == 0)                                                                 \
            return REAL(name) call;                                                 \
        return k < 0 ? -1 : mkstemp_object(tmpl, flags, suffix);                    \
    }

MKSTEMP(mkstemp, (char *tmpl), (tmpl), 0, 0)
MKSTEMP(mkstemp64, (char *tmpl), (tmpl), 0, 0)
MKSTEMP(mkostemp, (char *tmpl, int flags), (tmpl, flags), flags, 0)
MKSTEMP(mkostemp64, (char *tmpl, int flags), (tmpl, flags), flags, 0)
MKSTEMP(mkstemps, (char *tmpl, int suffixlen), (tmpl, suffixlen), 0, suffixlen)
MKSTEMP(mkstemps64, (char *tmpl, int suffixlen), (tmpl, suffixlen), 0, suffixlen)
MKSTEMP(mkostemps, (char *tmpl, int suffixlen, int flags), (tmpl, suffixlen, flags), flags,
        suffixlen)
MKSTEMP(mkostemps64, (char *tmpl, int suffixlen, int flags), (tmpl, suffixlen, flags), flags,
        suffixlen)

OM_API char *mkdtemp(char *tmpl)
{
    char vp[PATH_MAX], saved[PATH_MAX];
    int k = om_classify(AT_FDCWD, tmpl, vp, sizeof vp);
    if (k == 0)
        return REAL(mkdtemp)(tmpl);
    if (k < 0 || strlen(tmpl) >= sizeof saved)
        return NULL;
    strcpy(saved, tmpl);
    for (int attempt = 0; attempt < 100; attempt++) {
        strcpy(tmpl, saved);
        if (fill_template(tmpl, 0) < 0) {
            errno = EINVAL;
            return NULL;
        }
        if (mkdir(tmpl, 0700) == 0)
            return tmpl;
        if (errno != EEXIST)
            return NULL;
    }
    return NULL;
}

/* ---- the stat family -------------------------------------------------------------------- */
static int stat_at(int dirfd, const char *path, struct stat *st, int flags, char *ext)
{
    char vp[PATH_MAX];
    int k;
    if (path && path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
        struct om_file *f;
        int r;
        if (dirfd == AT_FDCWD) {
            if (!om_cwd_get(vp, sizeof vp))
                return OM_LOCAL;
            return om_stat_vpath(vp, 1, st, ext, PATH_MAX);
        }
        f = om_get_fd(dirfd);
        if (!f)
            return OM_LOCAL;
        r = om_fstat_file(dirfd, f, st);
        om_put(f);
        return r;
    }
    k = om_classify(dirfd, path, vp, sizeof vp);
    if (k == 0)
        return OM_LOCAL;
    if (k < 0)
        return -1;
    return om_stat_vpath(vp, !(flags & AT_SYMLINK_NOFOLLOW), st, ext, PATH_MAX);
}

#define STAT_WRAPPER(name, type, follow_flags)                                      \
    OM_API int name(const char *path, type *st)                                     \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r = stat_at(AT_FDCWD, path, (struct stat *)st, follow_flags, ext);      \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(path, st);                                            \
        if (r == OM_EXT)                                                            \
            return REAL(name)(ext, st);                                             \
        return r;                                                                   \
    }

STAT_WRAPPER(stat, struct stat, 0)
STAT_WRAPPER(stat64, struct stat64, 0)
STAT_WRAPPER(lstat, struct stat, AT_SYMLINK_NOFOLLOW)
STAT_WRAPPER(lstat64, struct stat64, AT_SYMLINK_NOFOLLOW)

#define XSTAT_WRAPPER(name, type, follow_flags)                                     \
    OM_API int name(int ver, const char *path, type *st)                            \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r = stat_at(AT_FDCWD, path, (struct stat *)st, follow_flags, ext);      \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(ver, path, st);                                       \
        if (r == OM_EXT)                                                            \
            return REAL(name)(ver, ext, st);                                        \
        return r;                                                                   \
    }

XSTAT_WRAPPER(__xstat, struct stat, 0)
XSTAT_WRAPPER(__xstat64, struct stat64, 0)
XSTAT_WRAPPER(__lxstat, struct stat, AT_SYMLINK_NOFOLLOW)
XSTAT_WRAPPER(__lxstat64, struct stat64, AT_SYMLINK_NOFOLLOW)

#define FSTATAT_WRAPPER(name, type)                                                 \
    OM_API int name(int dirfd, const char *path, type *st, int flags)               \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r = stat_at(dirfd, path, (struct stat *)st, flags, ext);                \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(dirfd, path, st, flags);                              \
        if (r == OM_EXT)                                                            \
            return REAL(name)(AT_FDCWD, ext, st, flags & ~AT_EMPTY_PATH);           \
        return r;                                                                   \
    }

FSTATAT_WRAPPER(fstatat, struct stat)
FSTATAT_WRAPPER(fstatat64, struct stat64)

#define FXSTATAT_WRAPPER(name, type)                                                \
    OM_API int name(int ver, int dirfd, const char *path, type *st, int flags)      \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r = stat_at(dirfd, path, (struct stat *)st, flags, ext);                \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(ver, dirfd, path, st, flags);                         \
        if (r == OM_EXT)                                                            \
            return REAL(name)(ver, AT_FDCWD, ext, st, flags & ~AT_EMPTY_PATH);      \
        return r;                                                                   \
    }

FXSTATAT_WRAPPER(__fxstatat, struct stat)
FXSTATAT_WRAPPER(__fxstatat64, struct stat64)

static int fstat_object(int fd, struct stat *st)
{
    struct om_file *f = om_get_fd(fd);
    int r;
    if (!f)
        return OM_LOCAL;
    r = om_fstat_file(fd, f, st);
    om_put(f);
    return r;
}

OM_API int fstat(int fd, struct stat *st)
{
    int r;
    if (!om_fd_maybe_ours(fd) || (r = fstat_object(fd, st)) == OM_LOCAL)
        return REAL(fstat)(fd, st);
    return r;
}

OM_API int fstat64(int fd, struct stat64 *st)
{
    int r;
    if (!om_fd_maybe_ours(fd) || (r = fstat_object(fd, (struct stat *)st)) == OM_LOCAL)
        return REAL(fstat64)(fd, st);
    return r;
}

OM_API int __fxstat(int ver, int fd, struct stat *st)
{
    int r;
    if (!om_fd_maybe_ours(fd) || (r = fstat_object(fd, st)) == OM_LOCAL)
        return REAL(__fxstat)(ver, fd, st);
    return r;
}

OM_API int __fxstat64(int ver, int fd, struct stat64 *st)
{
    int r;
    if (!om_fd_maybe_ours(fd) || (r = fstat_object(fd, (struct stat *)st)) == OM_LOCAL)
        return REAL(__fxstat64)(ver, fd, st);
    return r;
}

static void to_statx(struct statx *x, const struct stat *st)
{
    memset(x, 0, sizeof *x);
    x->stx_mask = STATX_BASIC_STATS;
    x->stx_blksize = (uint32_t)st->st_blksize;
    x->stx_nlink = (uint32_t)st->st_nlink;
    x->stx_uid = st->st_uid;
    x->stx_gid = st->st_gid;
    x->stx_mode = (uint16_t)st->st_mode;
    x->stx_ino = st->st_ino;
    x->stx_size = (uint64_t)st->st_size;
    x->stx_blocks = (uint64_t)st->st_blocks;
    x->stx_atime.tv_sec = st->st_atim.tv_sec;
    x->stx_atime.tv_nsec = (uint32_t)st->st_atim.tv_nsec;
    x->stx_mtime.tv_sec = st->st_mtim.tv_sec;
    x->stx_mtime.tv_nsec = (uint32_t)st->st_mtim.tv_nsec;
    x->stx_ctime.tv_sec = st->st_ctim.tv_sec;
    x->stx_ctime.tv_nsec = (uint32_t)st->st_ctim.tv_nsec;
    x->stx_dev_major = major(st->st_dev);
    x->stx_dev_minor = minor(st->st_dev);
}

OM_API int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *x)
{
    char ext[PATH_MAX];
    struct stat st;
    int r = stat_at(dirfd, path, &st, flags, ext);
    if (r == OM_LOCAL)
        return REAL(statx)(dirfd, path, flags, mask, x);
    if (r == OM_EXT)
        return REAL(statx)(AT_FDCWD, ext, flags & ~AT_EMPTY_PATH, mask, x);
    if (r == 0)
        to_statx(x, &st);
    return r;
}

/* ---- names -------------------------------------------------------------------------------- */
static int call_path(int op, const char *vp, char *ext)
{
    struct om_msg m;
    if (om_call(&m, op, "s", vp) < 0)
        return -1;
    return finish(&m, ext);
}

OM_API int mkdir(const char *path, mode_t mode)
{
    return mkdirat(AT_FDCWD, path, mode);
}

OM_API int mkdirat(int dirfd, const char *path, mode_t mode)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    struct om_msg m;
    int k = om_classify(dirfd, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(mkdirat)(dirfd, path, mode);
    if (k < 0 || om_call(&m, OM_MKDIR, "sii", vp, (int64_t)mode, (int64_t)om_umask()) < 0)
        return -1;
    r = finish(&m, ext);
    return r == OM_EXT ? REAL(mkdirat)(AT_FDCWD, ext, mode) : r;
}

OM_API int rmdir(const char *path)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(rmdir)(path);
    if (k < 0)
        return -1;
    r = call_path(OM_RMDIR, vp, ext);
    return r == OM_EXT ? REAL(rmdir)(ext) : r;
}

OM_API int unlink(const char *path)
{
    return unlinkat(AT_FDCWD, path, 0);
}

OM_API int unlinkat(int dirfd, const char *path, int flags)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(dirfd, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(unlinkat)(dirfd, path, flags);
    if (k < 0)
        return -1;
    r = call_path(flags & AT_REMOVEDIR ? OM_RMDIR : OM_UNLINK, vp, ext);
    return r == OM_EXT ? REAL(unlinkat)(AT_FDCWD, ext, flags) : r;
}

OM_API int remove(const char *path)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(remove)(path);
    if (k < 0)
        return -1;
    r = call_path(OM_UNLINK, vp, ext);
    if (r < 0 && r != OM_EXT && errno == EISDIR)
        r = call_path(OM_RMDIR, vp, ext);
    return r == OM_EXT ? REAL(remove)(ext) : r;
}

OM_API int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     unsigned int flags)
{
    char vo[PATH_MAX], vn[PATH_MAX], ext[PATH_MAX];
    struct om_msg m;
    int ko = om_classify(olddirfd, oldpath, vo, sizeof vo);
    int kn = om_classify(newdirfd, newpath, vn, sizeof vn);
    int r;
    if (ko == 0 && kn == 0)
        return REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
    if (ko < 0 || kn < 0)
        return -1;
    if (ko != kn) {
        errno = EXDEV; /* programs (mv) copy across file systems */
        return -1;
    }
    if (om_call(&m, OM_RENAME, "ssi", vo, vn, (int64_t)flags) < 0)
        return -1;
    r = finish(&m, ext);
    if (r == OM_EXT) {
        errno = EXDEV;
        return -1;
    }
    return r;
}

OM_API int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    return renameat2(olddirfd, oldpath, newdirfd, newpath, 0);
}

OM_API int rename(const char *oldpath, const char *newpath)
{
    return renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

OM_API int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                  int flags)
{
    char vo[PATH_MAX], vn[PATH_MAX], ext[PATH_MAX];
    struct om_msg m;
    int ko = om_classify(olddirfd, oldpath, vo, sizeof vo);
    int kn = om_classify(newdirfd, newpath, vn, sizeof vn);
    if (ko == 0 && kn == 0)
        return REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags);
    if (ko < 0 || kn < 0)
        return -1;
    if (ko != kn) {
        errno = EXDEV;
        return -1;
    }
    /* AT_SYMLINK_FOLLOW travels as is; the daemon refuses other flags. */
    if (om_call(&m, OM_LINK, "ssi", vo, vn, (int64_t)flags) < 0)
        return -1;
    return finish(&m, ext) == 0 ? 0 : -1;
}

OM_API int link(const char *oldpath, const char *newpath)
{
    return linkat(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

OM_API int symlinkat(const char *target, int dirfd, const char *path)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    struct om_msg m;
    int k = om_classify(dirfd, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(symlinkat)(target, dirfd, path);
    if (k < 0 || om_call(&m, OM_SYMLINK, "ss", target, vp) < 0)
        return -1;
    r = finish(&m, ext);
    return r == OM_EXT ? REAL(symlinkat)(target, AT_FDCWD, ext) : r;
}

OM_API int symlink(const char *target, const char *path)
{
    return symlinkat(target, AT_FDCWD, path);
}

static ssize_t readlink_object(const char *vp, char *buf, size_t size, char *ext)
{
    struct om_msg m;
    size_t n;
    int st;
    if (om_call(&m, OM_READLINK, "s", vp) < 0)
        return -1;
    st = om_status(&m);
    if (st != 0 || m.argc < 2 || !m.args[1].is_bytes)
        return finish(&m, ext);
    n = m.args[1].len < size ? m.args[1].len : size;
    memcpy(buf, m.args[1].b, n);
    om_msg_free(&m);
    return (ssize_t)n;
}

OM_API ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    ssize_t r;
    int k = om_classify(dirfd, path, vp, sizeof vp);
    if (k == 0)
        return REAL(readlinkat)(dirfd, path, buf, size);
    if (k < 0)
        return -1;
    r = readlink_object(vp, buf, size, ext);
    return r == OM_EXT ? REAL(readlinkat)(AT_FDCWD, ext, buf, size) : r;
}

OM_API ssize_t readlink(const char *path, char *buf, size_t size)
{
    return readlinkat(AT_FDCWD, path, buf, size);
}

OM_API ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        return REAL(__readlink_chk)(path, buf, len, buflen);
    return readlinkat(AT_FDCWD, path, buf, len);
}

OM_API ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len,
                                size_t buflen)
{
    if (len > buflen)
        return REAL(__readlinkat_chk)(dirfd, path, buf, len, buflen);
    return readlinkat(dirfd, path, buf, len);
}

OM_API int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    struct om_msg m;
    int k = om_classify(dirfd, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(mknodat)(dirfd, path, mode, dev);
    if (k < 0 || om_call(&m, OM_MKNOD, "siii", vp, (int64_t)mode, (int64_t)dev,
                         (int64_t)om_umask()) < 0)
        return -1;
    r = finish(&m, ext);
    return r == OM_EXT ? REAL(mknodat)(AT_FDCWD, ext, mode, dev) : r;
}

OM_API int mknod(const char *path, mode_t mode, dev_t dev)
{
    return mknodat(AT_FDCWD, path, mode, dev);
}

OM_API int mkfifoat(int dirfd, const char *path, mode_t mode)
{
    return mknodat(dirfd, path, (mode & 07777) | S_IFIFO, 0);
}

OM_API int mkfifo(const char *path, mode_t mode)
{
    return mkfifoat(AT_FDCWD, path, mode);
}

/* ---- attributes: chmod, chown, utimes, truncate -------------------------------------------- */
struct setattr {
    int flags;
    int64_t mode, uid, gid, size, atime_s, atime_ns, mtime_s, mtime_ns;
};

static int setattr_object(const char *vp, uint64_t handle, const struct setattr *s, char *ext)
{
    struct om_msg m;
    if (om_call(&m, OM_SETATTR, "siiiiiiiiii", vp, (int64_t)handle, (int64_t)s->flags, s->mode,
                s->uid, s->gid, s->size, s->atime_s, s->atime_ns, s->mtime_s, s->mtime_ns) < 0)
        return -1;
    return finish(&m, ext);
}

/* dirfd + path, or (path NULL or "" with AT_EMPTY_PATH) the descriptor itself. Returns
 * OM_LOCAL when neither is an object's. */
static int setattr_at(int dirfd, const char *path, int at_flags, struct setattr *s,
                      char *ext)
{
    char vp[PATH_MAX];
    int k;
    if (!(at_flags & AT_SYMLINK_NOFOLLOW))
        s->flags |= OM_SETATTR_FOLLOW;
    if (path == NULL || (path[0] == '\0' && (at_flags & AT_EMPTY_PATH))) {
        struct om_file *f = om_get_fd(dirfd);
        int r;
        if (!f)
            return OM_LOCAL;
        r = setattr_object(f->kind == DT_REG ? "" : f->vpath,
                           f->kind == DT_REG ? f->handle : 0, s, ext);
        om_put(f);
        return r;
    }
    k = om_classify(dirfd, path, vp, sizeof vp);
    if (k == 0)
        return OM_LOCAL;
    if (k < 0)
        return -1;
    return setattr_object(vp, 0, s, ext);
}

OM_API int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
    char ext[PATH_MAX];
    struct setattr s = {.flags = OM_SETATTR_MODE, .mode = mode};
    int r = setattr_at(dirfd, path, flags, &s, ext);
    if (r == OM_LOCAL)
        return REAL(fchmodat)(dirfd, path, mode, flags);
    return r == OM_EXT ? REAL(fchmodat)(AT_FDCWD, ext, mode, flags) : r;
}

OM_API int chmod(const char *path, mode_t mode)
{
    return fchmodat(AT_FDCWD, path, mode, 0);
}

OM_API int lchmod(const char *path, mode_t mode)
{
    return fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW);
}

OM_API int fchmod(int fd, mode_t mode)
{
    char ext[PATH_MAX];
    struct setattr s = {.flags = OM_SETATTR_MODE, .mode = mode};
    int r;
    if (!om_fd_maybe_ours(fd) || (r = setattr_at(fd, NULL, 0, &s, ext)) == OM_LOCAL)
        return REAL(fchmod)(fd, mode);
    return r;
}

static void owner(struct setattr *s, uid_t uid, gid_t gid)
{
    if (uid != (uid_t)-1) {
        s->flags |= OM_SETATTR_UID;
        s->uid = uid;
    }
    if (gid != (gid_t)-1) {
        s->flags |= OM_SETATTR_GID;
        s->gid = gid;
    }
}

OM_API int fchownat(int dirfd, const char *path, uid_t uid, gid_t gid, int flags)
{
    char ext[PATH_MAX];
    struct setattr s = {0};
    int r;
    owner(&s, uid, gid);
    r = setattr_at(dirfd, path, flags, &s, ext);
    if (r == OM_LOCAL)
        return REAL(fchownat)(dirfd, path, uid, gid, flags);
    return r == OM_EXT ? REAL(fchownat)(AT_FDCWD, ext, uid, gid, flags) : r;
}

OM_API int chown(const char *path, uid_t uid, gid_t gid)
{
    return fchownat(AT_FDCWD, path, uid, gid, 0);
}

OM_API int lchown(const char *path, uid_t uid, gid_t gid)
{
    return fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

OM_API int fchown(int fd, uid_t uid, gid_t gid)
{
    char ext[PATH_MAX];
    struct setattr s = {0};
    int r;
    owner(&s, uid, gid);
    if (!om_fd_maybe_ours(fd) || (r = setattr_at(fd, NULL, 0, &s, ext)) == OM_LOCAL)
        return REAL(fchown)(fd, uid, gid);
    return r;
}

static void times_from(struct setattr *s, const struct timespec t[2])
{
    s->flags |= OM_SETATTR_ATIME | OM_SETATTR_MTIME;
    if (!t) {
        s->atime_ns = s->mtime_ns = UTIME_NOW;
        return;
    }
    s->atime_s = t[0].tv_sec;
    s->atime_ns = t[0].tv_nsec;
    s->mtime_s = t[1].tv_sec;
    s->mtime_ns = t[1].tv_nsec;
}

/* path may be NULL here (the descriptor itself), as for the system call. */
static int utimens_at(int dirfd, const char *path, const struct timespec times[2], int flags)
{
    char ext[PATH_MAX];
    struct setattr s = {0};
    int r;
    times_from(&s, times);
    r = setattr_at(dirfd, path, flags, &s, ext);
    if (r == OM_LOCAL)
        return path ? REAL(utimensat)(dirfd, path, times, flags) : REAL(futimens)(dirfd, times);
    return r == OM_EXT ? REAL(utimensat)(AT_FDCWD, ext, times, flags) : r;
}

OM_API int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
{
    return utimens_at(dirfd, path, times, flags);
}

OM_API int futimens(int fd, const struct timespec times[2])
{
    if (!om_fd_maybe_ours(fd))
        return REAL(futimens)(fd, times);
    return utimens_at(fd, NULL, times, 0);
}

static int utimes_common(int dirfd, const char *path, const struct timeval tv[2], int flags)
{
    struct timespec ts[2];
    if (!tv)
        return utimens_at(dirfd, path, NULL, flags);
    ts[0].tv_sec = tv[0].tv_sec;
    ts[0].tv_nsec = tv[0].tv_usec * 1000;
    ts[1].tv_sec = tv[1].tv_sec;
    ts[1].tv_nsec = tv[1].tv_usec * 1000;
    return utimens_at(dirfd, path, ts, flags);
}

OM_API int utimes(const char *path, const struct timeval tv[2])
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(utimes)(path, tv);
    return k < 0 ? -1 : utimes_common(AT_FDCWD, path, tv, 0);
}

OM_API int lutimes(const char *path, const struct timeval tv[2])
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(lutimes)(path, tv);
    return k < 0 ? -1 : utimes_common(AT_FDCWD, path, tv, AT_SYMLINK_NOFOLLOW);
}

OM_API int futimes(int fd, const struct timeval tv[2])
{
    if (!om_fd_maybe_ours(fd))
        return REAL(futimes)(fd, tv);
    return utimes_common(fd, NULL, tv, 0);
}

OM_API int futimesat(int dirfd, const char *path, const struct timeval tv[2])
{
    char vp[PATH_MAX];
    int k = path ? om_classify(dirfd, path, vp, sizeof vp) : om_fd_maybe_ours(dirfd);
    if (k == 0)
        return REAL(futimesat)(dirfd, path, tv);
    return k < 0 ? -1 : utimes_common(dirfd, path, tv, 0);
}

OM_API int utime(const char *path, const struct utimbuf *buf)
{
    char vp[PATH_MAX];
    struct timespec ts[2];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(utime)(path, buf);
    if (k < 0)
        return -1;
    if (!buf)
        return utimensat(AT_FDCWD, path, NULL, 0);
    ts[0].tv_sec = buf->actime;
    ts[0].tv_nsec = 0;
    ts[1].tv_sec = buf->modtime;
    ts[1].tv_nsec = 0;
    return utimensat(AT_FDCWD, path, ts, 0);
}

OM_API int truncate(const char *path, off_t length)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    struct setattr s = {.flags = OM_SETATTR_SIZE | OM_SETATTR_FOLLOW, .size = length};
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(truncate)(path, length);
    if (k < 0)
        return -1;
    if (length < 0) {
        errno = EINVAL;
        return -1;
    }
    r = setattr_object(vp, 0, &s, ext);
    return r == OM_EXT ? REAL(truncate)(ext, length) : r;
}

OM_API int truncate64(const char *path, off64_t length)
{
    return truncate(path, (off_t)length);
}

/* ---- access ------------------------------------------------------------------------------ */
static int access_object(const char *vp, int mode, int flags, char *ext)
{
    struct om_msg m;
    struct om_attr a;
    if (mode == F_OK && !(flags & AT_SYMLINK_NOFOLLOW)) {
        int hit = om_page_lookup(vp, &a);
        if (hit == 0) {
            errno = ENOENT;
            return -1;
        }
        if (hit == 1 && !S_ISLNK(a.mode))
            return 0;
    }
    if (om_call(&m, OM_ACCESS, "sii", vp, (int64_t)mode, (int64_t)flags) < 0)
        return -1;
    return finish(&m, ext);
}

OM_API int faccessat(int dirfd, const char *path, int mode, int flags)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(dirfd, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(faccessat)(dirfd, path, mode, flags);
    if (k < 0)
        return -1;
    r = access_object(vp, mode, flags, ext);
    return r == OM_EXT ? REAL(faccessat)(AT_FDCWD, ext, mode, flags) : r;
}

OM_API int access(const char *path, int mode)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(access)(path, mode);
    if (k < 0)
        return -1;
    r = access_object(vp, mode, 0, ext);
    return r == OM_EXT ? REAL(access)(ext, mode) : r;
}

OM_API int euidaccess(const char *path, int mode)
{
    char vp[PATH_MAX], ext[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp), r;
    if (k == 0)
        return REAL(euidaccess)(path, mode);
    if (k < 0)
        return -1;
    r = access_object(vp, mode, AT_EACCESS, ext);
    return r == OM_EXT ? REAL(euidaccess)(ext, mode) : r;
}

OM_API int eaccess(const char *path, int mode)
{
    return euidaccess(path, mode);
}

/* ---- file systems --------------------------------------------------------------------------- */
static int statfs_object(const char *vp, struct statfs *sf, char *ext)
{
    struct om_msg m;
    if (om_call(&m, OM_STATFS, "s", vp) < 0)
        return -1;
    if (om_status(&m) != 0 || m.argc < 8)
        return finish(&m, ext);
    memset(sf, 0, sizeof *sf);
    sf->f_bsize = m.args[1].i;
    sf->f_frsize = m.args[1].i;
    sf->f_blocks = (fsblkcnt_t)m.args[2].i;
    sf->f_bfree = (fsblkcnt_t)m.args[3].i;
    sf->f_bavail = (fsblkcnt_t)m.args[3].i;
    sf->f_files = (fsfilcnt_t)m.args[4].i;
    sf->f_ffree = (fsfilcnt_t)m.args[5].i;
    sf->f_namelen = m.args[6].i;
    sf->f_type = m.args[7].i;
    om_msg_free(&m);
    return 0;
}

static void to_statvfs(struct statvfs *v, const struct statfs *s)
{
    memset(v, 0, sizeof *v);
    v->f_bsize = (unsigned long)s->f_bsize;
    v->f_frsize = (unsigned long)s->f_frsize;
    v->f_blocks = s->f_blocks;
    v->f_bfree = s->f_bfree;
    v->f_bavail = s->f_bavail;
    v->f_files = s->f_files;
    v->f_ffree = s->f_ffree;
    v->f_favail = s->f_ffree;
    v->f_namemax = (unsigned long)s->f_namelen;
}

static int statfs_at(int fd, const char *path, struct statfs *sf, char *ext)
{
    char vp[PATH_MAX];
    if (!path) {
        struct om_file *f = om_get_fd(fd);
        int r;
        if (!f)
            return OM_LOCAL;
        r = statfs_object(f->vpath ? f->vpath : "/", sf, ext);
        om_put(f);
        return r;
    }
    {
        int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
        if (k == 0)
            return OM_LOCAL;
        if (k < 0)
            return -1;
    }
    return statfs_object(vp, sf, ext);
}

#define STATFS_PATH(name, type)                                                     \
    OM_API int name(const char *path, type *buf)                                    \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r = statfs_at(-1, path, (struct statfs *)buf, ext);                     \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(path, buf);                                           \
        return r == OM_EXT ? REAL(name)(ext, buf) : r;                              \
    }
#define STATFS_FD(name, type)                                                       \
    OM_API int name(int fd, type *buf)                                              \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        int r;                                                                      \
        if (!om_fd_maybe_ours(fd) ||                                                \
            (r = statfs_at(fd, NULL, (struct statfs *)buf, ext)) == OM_LOCAL)       \
            return REAL(name)(fd, buf);                                             \
        return r == OM_EXT ? -1 : r;                                                \
    }

STATFS_PATH(statfs, struct statfs)
STATFS_PATH(statfs64, struct statfs64)
STATFS_FD(fstatfs, struct statfs)
STATFS_FD(fstatfs64, struct statfs64)

#define STATVFS_PATH(name, type)                                                    \
    OM_API int name(const char *path, type *buf)                                    \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        struct statfs sf;                                                           \
        int r = statfs_at(-1, path, &sf, ext);                                      \
        if (r == OM_LOCAL)                                                          \
            return REAL(name)(path, buf);                                           \
        if (r == OM_EXT)                                                            \
            return REAL(name)(ext, buf);                                            \
        if (r == 0)                                                                 \
            to_statvfs((struct statvfs *)buf, &sf);                                 \
        return r;                                                                   \
    }
#define STATVFS_FD(name, type)                                                      \
    OM_API int name(int fd, type *buf)                                              \
    {                                                                               \
        char ext[PATH_MAX];                                                         \
        struct statfs sf;                                                           \
        int r;                                                                      \
        if (!om_fd_maybe_ours(fd) || (r = statfs_at(fd, NULL, &sf, ext)) == OM_LOCAL) \
            return REAL(name)(fd, buf);                                             \
        if (r == 0)                                                                 \
            to_statvfs((struct statvfs *)buf, &sf);                                 \
        return r == OM_EXT ? -1 : r;                                                \
    }

_Static_assert(sizeof(struct statvfs) == sizeof(struct statvfs64), "x86-64 layout");
_Static_assert(sizeof(struct statfs) == sizeof(struct statfs64), "x86-64 layout");
STATVFS_PATH(statvfs, struct statvfs)
STATVFS_PATH(statvfs64, struct statvfs64)
STATVFS_FD(fstatvfs, struct statvfs)
STATVFS_FD(fstatvfs64, struct statvfs64)

/* ---- extended attributes: user.* kept in the object's metadata (as on the FUSE mount) ---- */
enum { XA_GET = OM_XATTR_GET, XA_SET = OM_XATTR_SET, XA_LIST = OM_XATTR_LIST,
       XA_REMOVE = OM_XATTR_REMOVE };

struct xattr_req {
    int action, follow, flags;
    const char *name;   /* "" for XA_LIST */
    const void *in;     /* XA_SET: the value */
    size_t in_len;
    void *out;          /* XA_GET, XA_LIST: the caller's buffer (size 0: only the size) */
    size_t cap;
};

/* The daemon's answer: a size (get, list), 0 (set, remove), -1 with errno, or OM_EXT. */
static ssize_t xattr_object(const char *vp, uint64_t handle, const struct xattr_req *x,
                            char *ext)
{
    struct om_msg m;
    struct om_attr a;
    ssize_t n = 0;
    int st, hit;
    if (x->action == XA_GET && strncmp(x->name, "user.", 5) != 0) {
        /* Only user.* is stored: ls -l asks every file for its SELinux label and ACL, and
         * is answered here when the status page vouches for the file. */
        hit = handle ? 1 : om_page_lookup(vp, &a);
        if (hit == 0) {
            errno = ENOENT;
            return -1;
        }
        if (hit == 1 && (handle || !x->follow || !S_ISLNK(a.mode))) {
            errno = ENODATA;
            return -1;
        }
    }
    if (om_call(&m, OM_XATTR, "siiisbi", vp, (int64_t)handle, (int64_t)x->follow,
                (int64_t)x->action, x->name, x->in ? (const char *)x->in : "", x->in_len,
                (int64_t)x->flags) < 0)
        return -1;
    st = om_status(&m);
    if (st == OM_EXTERNAL && m.argc > 1 && m.args[1].is_bytes) {
        snprintf(ext, PATH_MAX, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        return OM_EXT;
    }
    if (st != 0)
        return om_reply_errno(&m);
    if (x->action == XA_GET || x->action == XA_LIST) {
        if (m.argc < 2 || !m.args[1].is_bytes) {
            om_msg_free(&m);
            errno = EPROTO;
            return -1;
        }
        n = (ssize_t)m.args[1].len;
        if (x->cap > 0) {
            if ((size_t)n > x->cap) {
                om_msg_free(&m);
                errno = ERANGE;
                return -1;
            }
            memcpy(x->out, m.args[1].b, (size_t)n);
        }
    }
    om_msg_free(&m);
    return n;
}

static ssize_t xattr_path(const char *path, const struct xattr_req *x, char *ext)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return OM_LOCAL;
    if (k < 0)
        return -1;
    return xattr_object(vp, 0, x, ext);
}

static ssize_t xattr_fd(int fd, const struct xattr_req *x, char *ext)
{
    struct om_file *f;
    ssize_t r;
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return OM_LOCAL;
    r = xattr_object(f->kind == DT_REG ? "" : f->vpath, f->kind == DT_REG ? f->handle : 0,
                     x, ext);
    om_put(f);
    return r;
}

/* Path and descriptor forms: the request, then the real call for a local file (or the
 * local path a symlink led to). */
#define XATTR_PATH(ret, fn, params, follow_, action_, name_, in_, in_len_, out_, cap_,      \
                   flags_, args)                                                           \
    OM_API ret fn params                                                                   \
    {                                                                                      \
        char ext[PATH_MAX];                                                                \
        struct xattr_req x = {action_, follow_, flags_, name_, in_, in_len_, out_, cap_};  \
        ssize_t r = xattr_path(path, &x, ext);                                             \
        if (r == OM_LOCAL)                                                                 \
            return REAL(fn) args;                                                          \
        if (r == OM_EXT) {                                                                 \
            path = ext;                                                                    \
            return REAL(fn) args;                                                          \
        }                                                                                  \
        return (ret)r;                                                                     \
    }
#define XATTR_FD(ret, fn, params, action_, name_, in_, in_len_, out_, cap_, flags_, args)  \
    OM_API ret fn params                                                                   \
    {                                                                                      \
        char ext[PATH_MAX];                                                                \
        struct xattr_req x = {action_, 1, flags_, name_, in_, in_len_, out_, cap_};        \
        ssize_t r = xattr_fd(fd, &x, ext);                                                 \
        if (r == OM_LOCAL)                                                                 \
            return REAL(fn) args;                                                          \
        if (r == OM_EXT) { /* a descriptor's object never leads elsewhere */               \
            errno = EIO;                                                                   \
            return -1;                                                                     \
        }                                                                                  \
        return (ret)r;                                                                     \
    }

XATTR_PATH(ssize_t, getxattr, (const char *path, const char *n, void *v, size_t s),
           1, XA_GET, n, NULL, 0, v, s, 0, (path, n, v, s))
XATTR_PATH(ssize_t, lgetxattr, (const char *path, const char *n, void *v, size_t s),
           0, XA_GET, n, NULL, 0, v, s, 0, (path, n, v, s))
XATTR_FD(ssize_t, fgetxattr, (int fd, const char *n, void *v, size_t s),
         XA_GET, n, NULL, 0, v, s, 0, (fd, n, v, s))
XATTR_PATH(int, setxattr, (const char *path, const char *n, const void *v, size_t s, int fl),
           1, XA_SET, n, v, s, NULL, 0, fl, (path, n, v, s, fl))
XATTR_PATH(int, lsetxattr, (const char *path, const char *n, const void *v, size_t s, int fl),
           0, XA_SET, n, v, s, NULL, 0, fl, (path, n, v, s, fl))
XATTR_FD(int, fsetxattr, (int fd, const char *n, const void *v, size_t s, int fl),
         XA_SET, n, v, s, NULL, 0, fl, (fd, n, v, s, fl))
XATTR_PATH(ssize_t, listxattr, (const char *path, char *l, size_t s),
           1, XA_LIST, "", NULL, 0, l, s, 0, (path, l, s))
XATTR_PATH(ssize_t, llistxattr, (const char *path, char *l, size_t s),
           0, XA_LIST, "", NULL, 0, l, s, 0, (path, l, s))
XATTR_FD(ssize_t, flistxattr, (int fd, char *l, size_t s),
         XA_LIST, "", NULL, 0, l, s, 0, (fd, l, s))
XATTR_PATH(int, removexattr, (const char *path, const char *n),
           1, XA_REMOVE, n, NULL, 0, NULL, 0, 0, (path, n))
XATTR_PATH(int, lremovexattr, (const char *path, const char *n),
           0, XA_REMOVE, n, NULL, 0, NULL, 0, 0, (path, n))
XATTR_FD(int, fremovexattr, (int fd, const char *n),
         XA_REMOVE, n, NULL, 0, NULL, 0, 0, (fd, n))

OM_API mode_t umask(mode_t mask)
{
    mode_t old = REAL(umask)(mask);
    om_umask_set(mask);
    return old;
}
