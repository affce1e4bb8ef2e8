/* Directories. An object directory's descriptor is a real, empty shadow directory (so
 * fchdir, *at() calls and a process's working directory work in the kernel); its
 * entries come from the daemon's listing. glibc's scandir, glob and nftw call its own
 * opendir/readdir internally, so they are wrapped too. */
#include "objmount.h"

#include <ftw.h>
#include <glob.h>

/* ---- directory streams -------------------------------------------------------------------- */
static DIR *open_dir_object(const char *vp)
{
    char ext[PATH_MAX];
    struct om_file *f;
    DIR *d;
    int fd = om_open_vpath(vp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, ext, sizeof ext);
    if (fd == -2)
        return REAL(opendir)(ext);
    if (fd < 0)
        return NULL;
    f = om_get_fd(fd);
    if (f && om_list(f) < 0) {
        int saved = errno;
        om_put(f);
        close(fd);
        errno = saved;
        return NULL;
    }
    om_put(f);
    d = REAL(fdopendir)(fd);
    if (!d) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return d;
}

OM_API DIR *opendir(const char *path)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(opendir)(path);
    return k < 0 ? NULL : open_dir_object(vp);
}

OM_API DIR *fdopendir(int fd)
{
    struct om_file *f;
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return REAL(fdopendir)(fd);
    if (f->kind != DT_DIR) {
        om_put(f);
        errno = ENOTDIR;
        return NULL;
    }
    if (!f->listed && om_list(f) < 0) {
        om_put(f);
        return NULL;
    }
    om_put(f);
    return REAL(fdopendir)(fd);
}

/* The next entry of an object directory stream, or NULL (errno untouched at the end). */
static struct dirent64 *next_entry(struct om_file *f)
{
    struct dirent64 *d = (struct dirent64 *)f->dirent_buf;
    const struct om_dirent *e;
    size_t len;
    if (!f->listed && om_list(f) < 0)
        return NULL;
    if (f->cursor >= f->nentries)
        return NULL;
    e = &f->entries[f->cursor++];
    len = strlen(e->name);
    if (len > NAME_MAX)
        len = NAME_MAX;
    d->d_ino = e->ino;
    d->d_off = (off64_t)f->cursor;
    d->d_reclen = (unsigned short)(offsetof(struct dirent64, d_name) + len + 1);
    d->d_type = e->type;
    memcpy(d->d_name, e->name, len);
    d->d_name[len] = '\0';
    return d;
}

static struct om_file *stream_file(DIR *d, int *fd_out)
{
    int fd;
    struct om_file *f;
    if (!d)
        return NULL;
    fd = dirfd(d);
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return NULL;
    if (f->kind != DT_DIR) {
        om_put(f);
        return NULL;
    }
    if (fd_out)
        *fd_out = fd;
    return f;
}

OM_API struct dirent *readdir(DIR *d)
{
    struct om_file *f = stream_file(d, NULL);
    struct dirent64 *e;
    if (!f)
        return REAL(readdir)(d);
    e = next_entry(f);
    om_put(f); /* the descriptor keeps the file alive while the stream is open */
    return (struct dirent *)e;
}

OM_API struct dirent64 *readdir64(DIR *d)
{
    struct om_file *f = stream_file(d, NULL);
    struct dirent64 *e;
    if (!f)
        return REAL(readdir64)(d);
    e = next_entry(f);
    om_put(f);
    return e;
}

/* Deprecated in glibc, still imported by older binaries. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
OM_API int readdir64_r(DIR *d, struct dirent64 *entry, struct dirent64 **result)
{
    struct om_file *f = stream_file(d, NULL);
    struct dirent64 *e;
    int saved = errno;
    if (!f)
        return REAL(readdir64_r)(d, entry, result);
    errno = 0;
    e = next_entry(f);
    om_put(f);
    if (!e && errno) {
        int err = errno;
        errno = saved;
        return err;
    }
    errno = saved;
    if (e)
        memcpy(entry, e, e->d_reclen);
    *result = e ? entry : NULL;
    return 0;
}

OM_API int readdir_r(DIR *d, struct dirent *entry, struct dirent **result)
{
    struct om_file *f = stream_file(d, NULL);
    if (!f)
        return REAL(readdir_r)(d, entry, result);
    om_put(f);
    return readdir64_r(d, (struct dirent64 *)entry, (struct dirent64 **)result);
}
#pragma GCC diagnostic pop

OM_API void rewinddir(DIR *d)
{
    struct om_file *f = stream_file(d, NULL);
    if (f) {
        f->listed = 0; /* listed again, as a local directory shows new entries */
        f->cursor = 0;
        om_put(f);
    }
    REAL(rewinddir)(d);
}

OM_API long telldir(DIR *d)
{
    struct om_file *f = stream_file(d, NULL);
    long pos;
    if (!f)
        return REAL(telldir)(d);
    pos = (long)f->cursor;
    om_put(f);
    return pos;
}

OM_API void seekdir(DIR *d, long pos)
{
    struct om_file *f = stream_file(d, NULL);
    if (!f) {
        REAL(seekdir)(d, pos);
        return;
    }
    f->cursor = pos < 0 ? 0 : (size_t)pos;
    om_put(f);
}

OM_API int closedir(DIR *d)
{
    int fd = dirfd(d);
    struct om_file *f = om_fd_maybe_ours(fd) ? om_take_fd(fd) : NULL;
    int r = REAL(closedir)(d);
    om_put(f);
    return r;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

OM_API ssize_t getdents64(int fd, void *buf, size_t n)
{
    struct om_file *f;
    size_t used = 0;
    if (!om_fd_maybe_ours(fd) || !(f = om_get_fd(fd)))
        return REAL(getdents64)(fd, buf, n);
    if (f->kind != DT_DIR) {
        om_put(f);
        errno = ENOTDIR;
        return -1;
    }
    if (!f->listed && om_list(f) < 0) {
        om_put(f);
        return -1;
    }
    while (f->cursor < f->nentries) {
        const struct om_dirent *e = &f->entries[f->cursor];
        size_t len = strlen(e->name);
        size_t reclen = (offsetof(struct linux_dirent64, d_name) + len + 1 + 7) & ~(size_t)7;
        struct linux_dirent64 *d = (struct linux_dirent64 *)((char *)buf + used);
        if (used + reclen > n)
            break;
        d->d_ino = e->ino;
        d->d_off = (int64_t)f->cursor + 1;
        d->d_reclen = (unsigned short)reclen;
        d->d_type = e->type;
        memcpy(d->d_name, e->name, len + 1);
        used += reclen;
        f->cursor++;
    }
    om_put(f);
    if (used == 0 && f->cursor < f->nentries) {
        errno = EINVAL;
        return -1;
    }
    return (ssize_t)used;
}

/* ---- scandir: glibc's reads its stream internally ------------------------------------------- */
static int scan_object(DIR *d, struct dirent64 ***namelist,
                       int (*filter)(const struct dirent64 *),
                       int (*compar)(const struct dirent64 **, const struct dirent64 **))
{
    struct dirent64 **list = NULL, *e;
    size_t n = 0, cap = 0;
    int saved = errno;
    while ((e = readdir64(d))) {
        struct dirent64 *copy;
        if (filter && !filter(e))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct dirent64 **grown = realloc(list, ncap * sizeof *grown);
            if (!grown)
                goto fail;
            list = grown;
            cap = ncap;
        }
        copy = malloc(e->d_reclen);
        if (!copy)
            goto fail;
        memcpy(copy, e, e->d_reclen);
        list[n++] = copy;
    }
    closedir(d);
    if (compar && n > 1)
        qsort(list, n, sizeof *list, (int (*)(const void *, const void *))compar);
    *namelist = list;
    errno = saved;
    return (int)n;
fail:
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    closedir(d);
    errno = ENOMEM;
    return -1;
}

OM_API int scandir64(const char *path, struct dirent64 ***namelist,
                     int (*filter)(const struct dirent64 *),
                     int (*compar)(const struct dirent64 **, const struct dirent64 **))
{
    char vp[PATH_MAX];
    DIR *d;
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(scandir64)(path, namelist, filter, compar);
    if (k < 0 || !(d = open_dir_object(vp)))
        return -1;
    return scan_object(d, namelist, filter, compar);
}

OM_API int scandir(const char *path, struct dirent ***namelist,
                   int (*filter)(const struct dirent *),
                   int (*compar)(const struct dirent **, const struct dirent **))
{
    char vp[PATH_MAX];
    DIR *d;
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(scandir)(path, namelist, filter, compar);
    if (k < 0 || !(d = open_dir_object(vp)))
        return -1;
    return scan_object(d, (struct dirent64 ***)namelist,
                       (int (*)(const struct dirent64 *))filter,
                       (int (*)(const struct dirent64 **, const struct dirent64 **))compar);
}

OM_API int scandirat(int dirfd, const char *path, struct dirent ***namelist,
                     int (*filter)(const struct dirent *),
                     int (*compar)(const struct dirent **, const struct dirent **))
{
    char vp[PATH_MAX];
    DIR *d;
    int k = om_classify(dirfd, path, vp, sizeof vp);
    if (k == 0)
        return REAL(scandirat)(dirfd, path, namelist, filter, compar);
    if (k < 0 || !(d = open_dir_object(vp)))
        return -1;
    return scan_object(d, (struct dirent64 ***)namelist,
                       (int (*)(const struct dirent64 *))filter,
                       (int (*)(const struct dirent64 **, const struct dirent64 **))compar);
}

/* ---- glob: let glibc match, through these wrappers ------------------------------------------ */
static int glob_touches_objects(const char *pattern)
{
    char vp[PATH_MAX];
    return om_classify(AT_FDCWD, pattern, vp, sizeof vp) != 0;
}

static void *glob_opendir(const char *path)
{
    return opendir(path);
}

static struct dirent *glob_readdir(void *d)
{
    return readdir(d);
}

static void glob_closedir(void *d)
{
    closedir(d);
}

static int glob_stat(const char *path, struct stat *st)
{
    return stat(path, st);
}

static int glob_lstat(const char *path, struct stat *st)
{
    return lstat(path, st);
}

OM_API int glob(const char *pattern, int flags, int (*errfunc)(const char *, int),
                glob_t *pglob)
{
    if ((flags & GLOB_ALTDIRFUNC) || !glob_touches_objects(pattern))
        return REAL(glob)(pattern, flags, errfunc, pglob);
    pglob->gl_opendir = glob_opendir;
    pglob->gl_readdir = glob_readdir;
    pglob->gl_closedir = glob_closedir;
    pglob->gl_stat = glob_stat;
    pglob->gl_lstat = glob_lstat;
    return REAL(glob)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, pglob);
}

OM_API int glob64(const char *pattern, int flags, int (*errfunc)(const char *, int),
                  glob64_t *pglob)
{
    if ((flags & GLOB_ALTDIRFUNC) || !glob_touches_objects(pattern))
        return REAL(glob64)(pattern, flags, errfunc, pglob);
    pglob->gl_opendir = glob_opendir;
    pglob->gl_readdir = (struct dirent64 * (*)(void *)) glob_readdir;
    pglob->gl_closedir = glob_closedir;
    pglob->gl_stat = (int (*)(const char *, struct stat64 *))glob_stat;
    pglob->gl_lstat = (int (*)(const char *, struct stat64 *))glob_lstat;
    return REAL(glob64)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, pglob);
}

/* ---- nftw / ftw: a walk over object directories through these wrappers ------------------- */
typedef int (*nftw_fn)(const char *, const struct stat *, int, struct FTW *);

static int walk(char *path, size_t len, int level, size_t base, nftw_fn fn, int flags)
{
    struct stat st;
    struct FTW ftw = {.base = (int)base, .level = level};
    int r = 0;
    int got = (flags & FTW_PHYS) ? lstat(path, &st) : stat(path, &st);
    if (got < 0) {
        if (!(flags & FTW_PHYS) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
            return fn(path, &st, FTW_SLN, &ftw);
        return fn(path, &st, FTW_NS, &ftw);
    }
    if (S_ISLNK(st.st_mode))
        return fn(path, &st, FTW_SL, &ftw);
    if (!S_ISDIR(st.st_mode))
        return fn(path, &st, FTW_F, &ftw);
    if (!(flags & FTW_DEPTH) && (r = fn(path, &st, FTW_D, &ftw)) != 0)
        return r;
    {
        DIR *d = opendir(path);
        struct dirent64 *e;
        if (!d)
            return fn(path, &st, FTW_DNR, &ftw);
        while (r == 0 && (e = readdir64(d))) {
            size_t n = strlen(e->d_name);
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (len + 1 + n >= PATH_MAX) {
                errno = ENAMETOOLONG;
                r = -1;
                break;
            }
            path[len] = '/';
            memcpy(path + len + 1, e->d_name, n + 1);
            r = walk(path, len + 1 + n, level + 1, len + 1, fn, flags);
            path[len] = '\0';
        }
        closedir(d);
    }
    if (r == 0 && (flags & FTW_DEPTH))
        r = fn(path, &st, FTW_DP, &ftw);
    return r;
}

static int nftw_object(const char *dir, nftw_fn fn, int flags)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    const char *slash;
    if (len >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    slash = strrchr(path, '/');
    return walk(path, len, 0, slash ? (size_t)(slash - path + 1) : 0, fn, flags);
}

OM_API int nftw(const char *dir, nftw_fn fn, int nopenfd, int flags)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, dir, vp, sizeof vp);
    if (k == 0)
        return REAL(nftw)(dir, fn, nopenfd, flags);
    return k < 0 ? -1 : nftw_object(dir, fn, flags);
}

OM_API int nftw64(const char *dir,
                  int (*fn)(const char *, const struct stat64 *, int, struct FTW *),
                  int nopenfd, int flags)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, dir, vp, sizeof vp);
    if (k == 0)
        return REAL(nftw64)(dir, fn, nopenfd, flags);
    return k < 0 ? -1 : nftw_object(dir, (nftw_fn)fn, flags);
}

static __thread int (*g_ftw_fn)(const char *, const struct stat *, int);

static int ftw_adapter(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_DP)
        type = FTW_D;
    if (type == FTW_SL || type == FTW_SLN)
        type = FTW_NS;
    return g_ftw_fn(path, st, type);
}

OM_API int ftw(const char *dir, int (*fn)(const char *, const struct stat *, int),
               int nopenfd)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, dir, vp, sizeof vp);
    if (k == 0)
        return REAL(ftw)(dir, fn, nopenfd);
    if (k < 0)
        return -1;
    g_ftw_fn = fn;
    return nftw_object(dir, ftw_adapter, 0);
}

OM_API int ftw64(const char *dir, int (*fn)(const char *, const struct stat64 *, int),
                 int nopenfd)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, dir, vp, sizeof vp);
    if (k == 0)
        return REAL(ftw64)(dir, fn, nopenfd);
    if (k < 0)
        return -1;
    g_ftw_fn = (int (*)(const char *, const struct stat *, int))fn;
    return nftw_object(dir, ftw_adapter, 0);
}

/* ---- the working directory ------------------------------------------------------------------- */
OM_API int chdir(const char *path)
{
    char vp[PATH_MAX];
    struct om_msg m;
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0) {
        int r = REAL(chdir)(path);
        if (r == 0 && om_cwd_ours)
            om_cwd_set(NULL);
        return r;
    }
    if (k < 0 || om_call(&m, OM_CHDIR, "s", vp) < 0)
        return -1;
    if (om_status(&m) == OM_EXTERNAL && m.argc > 1 && m.args[1].is_bytes) {
        char ext[PATH_MAX];
        int r;
        snprintf(ext, sizeof ext, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        r = REAL(chdir)(ext);
        if (r == 0)
            om_cwd_set(NULL);
        return r;
    }
    if (om_status(&m) != 0)
        return om_reply_errno(&m);
    if (m.nfds < 1 || m.argc < 2 || !m.args[1].is_bytes) {
        om_msg_free(&m);
        errno = EPROTO;
        return -1;
    }
    if (REAL(fchdir)(m.fds[0]) < 0) {
        int saved = errno;
        om_msg_free(&m);
        errno = saved;
        return -1;
    }
    {
        char canon[PATH_MAX];
        snprintf(canon, sizeof canon, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_cwd_set(canon);
    }
    om_msg_free(&m);
    return 0;
}

OM_API int fchdir(int fd)
{
    struct om_file *f = om_fd_maybe_ours(fd) ? om_get_fd(fd) : NULL;
    int r = REAL(fchdir)(fd);
    if (r == 0) {
        if (f && f->kind == DT_DIR)
            om_cwd_set(f->vpath);
        else if (om_cwd_ours)
            om_cwd_set(NULL);
    }
    om_put(f);
    return r;
}

static char *cwd_copy(char *buf, size_t size)
{
    char vp[PATH_MAX], shown[PATH_MAX];
    size_t len;
    if (!om_cwd_get(vp, sizeof vp))
        return NULL;
    om_display_path(vp, shown, sizeof shown);
    len = strlen(shown);
    if (!buf) {
        size_t cap = size > len ? size : len + 1;
        buf = malloc(cap);
        if (!buf) {
            errno = ENOMEM;
            return (char *)-1;
        }
    } else if (size <= len) {
        errno = size == 0 ? EINVAL : ERANGE;
        return (char *)-1;
    }
    memcpy(buf, shown, len + 1);
    return buf;
}

OM_API char *getcwd(char *buf, size_t size)
{
    char *r;
    if (!om_ready() || !om_cwd_ours)
        return REAL(getcwd)(buf, size);
    r = cwd_copy(buf, size);
    if (r == (char *)-1)
        return NULL;
    return r ? r : REAL(getcwd)(buf, size);
}

OM_API char *__getcwd_chk(char *buf, size_t size, size_t buflen)
{
    if (size > buflen)
        return REAL(__getcwd_chk)(buf, size, buflen);
    return getcwd(buf, size);
}

OM_API char *get_current_dir_name(void)
{
    if (!om_ready() || !om_cwd_ours)
        return REAL(get_current_dir_name)();
    return getcwd(NULL, 0);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
OM_API char *getwd(char *buf)
{
    if (!om_ready() || !om_cwd_ours)
        return REAL(getwd)(buf);
    return getcwd(buf, PATH_MAX);
}
#pragma GCC diagnostic pop

/* ---- realpath --------------------------------------------------------------------------------- */
static char *realpath_object(const char *vp, char *resolved)
{
    struct om_msg m;
    char shown[PATH_MAX], canon[PATH_MAX];
    int st;
    if (om_call(&m, OM_REALPATH, "s", vp) < 0)
        return NULL;
    st = om_status(&m);
    if (st == OM_EXTERNAL && m.argc > 1 && m.args[1].is_bytes) {
        char ext[PATH_MAX];
        snprintf(ext, sizeof ext, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        return REAL(realpath)(ext, resolved);
    }
    if (st != 0) {
        om_reply_errno(&m);
        return NULL;
    }
    snprintf(canon, sizeof canon, "%.*s", (int)m.args[1].len, m.args[1].b);
    om_msg_free(&m);
    om_display_path(canon, shown, sizeof shown);
    if (resolved) {
        snprintf(resolved, PATH_MAX, "%s", shown);
        return resolved;
    }
    return strdup(shown);
}

OM_API char *realpath(const char *path, char *resolved)
{
    char vp[PATH_MAX];
    int k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k == 0)
        return REAL(realpath)(path, resolved);
    return k < 0 ? NULL : realpath_object(vp, resolved);
}

OM_API char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
    if (resolved && resolvedlen < PATH_MAX)
        return REAL(__realpath_chk)(path, resolved, resolvedlen);
    return realpath(path, resolved);
}

OM_API char *canonicalize_file_name(const char *path)
{
    return realpath(path, NULL);
}
