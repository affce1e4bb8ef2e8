/* Object files and directories: opening through the daemon, making bytes present
 * before the kernel reads them, storing at close, attributes. */
#include "objmount.h"

#include <sys/mman.h>

static int map_file(struct om_file *f, int memfd)
{
    struct stat st;
    void *p;
    if (REAL(fstat)(memfd, &st) != 0)
        return -1;
    p = REAL(mmap)(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -1;
    if (((struct om_map *)p)->magic != OM_MAP_MAGIC) {
        REAL(munmap)(p, (size_t)st.st_size);
        errno = EPROTO;
        return -1;
    }
    if (f->map)
        REAL(munmap)(f->map, f->map_len);
    f->map = p;
    f->map_len = (size_t)st.st_size;
    return 0;
}

int om_open_vpath(const char *vpath, int flags, mode_t mode, char *external, size_t extlen)
{
    struct om_msg m;
    struct om_file *f;
    struct stat st;
    int fd, kind;
    if (om_call(&m, OM_OPEN, "siii", vpath, (int64_t)flags, (int64_t)mode,
                (int64_t)om_umask()) < 0)
        return -1;
    if (om_status(&m) == OM_EXTERNAL && m.argc > 1 && m.args[1].is_bytes) {
        snprintf(external, extlen, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        return -2;
    }
    if (om_status(&m) != 0)
        return om_reply_errno(&m);
    if (m.argc < 4 + OM_ATTR_FIELDS || m.nfds < 1 || !m.args[3].is_bytes) {
        om_msg_free(&m);
        errno = EPROTO;
        return -1;
    }
    kind = (int)m.args[2].i;
    fd = m.fds[0];
    f = om_file_new();
    if (!f || REAL(fstat)(fd, &st) != 0) {
        free(f);
        om_msg_free(&m);
        errno = ENOMEM;
        return -1;
    }
    f->kind = kind;
    f->accmode = flags & O_ACCMODE;
    f->handle = (uint64_t)m.args[1].i;
    f->instance = om_instance();
    f->vpath = strndup(m.args[3].b, m.args[3].len);
    f->cache_dev = st.st_dev;
    f->cache_ino = st.st_ino;
    om_reply_attr(&m, 4, &f->attr);
    f->attr_changes = om_page_changes();
    if (kind == DT_REG && m.nfds > 1 && map_file(f, m.fds[1]) < 0) {
        om_put(f);
        om_msg_free(&m);
        return -1;
    }
    m.fds[0] = -1; /* the program's descriptor now */
    om_msg_free(&m);
    if (!(flags & O_CLOEXEC))
        REAL(fcntl)(fd, F_SETFD, 0);
    om_set_fd(fd, f);
    om_put(f);
    return fd;
}

int om_adopt(struct om_file *f)
{
    struct om_msg m;
    if (f->instance != om_instance() && om_instance() != 0) {
        errno = EIO;
        return -1;
    }
    if (om_call(&m, OM_ADOPT, "i", (int64_t)f->handle) < 0)
        return -1;
    if (om_status(&m) != 0)
        return om_reply_errno(&m);
    if (f->instance != om_instance()) {
        /* A descriptor from a daemon that is gone: its handle means nothing now. */
        om_msg_free(&m);
        errno = EIO;
        return -1;
    }
    if (m.argc >= 3 + OM_ATTR_FIELDS && m.args[2].is_bytes) {
        free(f->vpath);
        f->vpath = strndup(m.args[2].b, m.args[2].len);
        om_reply_attr(&m, 3, &f->attr);
        f->attr_changes = om_page_changes();
    }
    if (m.nfds > 0 && !f->map && map_file(f, m.fds[0]) < 0) {
        om_msg_free(&m);
        return -1;
    }
    om_msg_free(&m);
    return 0;
}

/* The answer to a request about an open file: its status, or EIO when the daemon that
 * answered is not the one that opened the file (it died meanwhile: the file is gone). */
static int file_reply(const struct om_file *f, struct om_msg *m)
{
    if (om_status(m) != 0)
        return om_reply_errno(m);
    om_msg_free(m);
    if (f->instance != om_instance()) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int om_fill(int fd, struct om_file *f, int64_t offset, int64_t length)
{
    struct om_msg m;
    (void)fd;
    if (f->instance != om_instance() && om_instance() != 0) {
        errno = EIO;
        return -1;
    }
    if (om_call(&m, OM_FILL, "iii", (int64_t)f->handle, offset, length) < 0)
        return -1;
    return file_reply(f, &m);
}

static int present(const struct om_map *map, int64_t offset, int64_t length)
{
    uint64_t bs = map->block_size, rs = map->remote_size, end;
    if (__atomic_load_n(&map->flags, __ATOMIC_ACQUIRE) & OM_MAP_COMPLETE)
        return 1;
    if (offset < 0)
        return 0;
    end = (uint64_t)offset + (uint64_t)length;
    if (end > rs)
        end = rs;
    if ((uint64_t)offset >= end)
        return 1; /* beyond the remote bytes: written here, or the end of the file */
    if (bs == 0)
        return 0;
    for (uint64_t b = (uint64_t)offset / bs; b <= (end - 1) / bs; b++) {
        if (b >= map->capacity || !(map->bits[b / 8] & (1u << (b % 8))))
            return 0;
    }
    return 1;
}

int om_ensure_range(int fd, struct om_file *f, int64_t offset, int64_t length,
                    uint32_t *seq_out)
{
    if (f->kind != DT_REG)
        return 0;
    if (!f->map && om_adopt(f) < 0)
        return -1;
    for (int tries = 0;; tries++) {
        uint32_t s = __atomic_load_n(&f->map->seq, __ATOMIC_ACQUIRE);
        if (!(s & 1) && present(f->map, offset, length)) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&f->map->seq, __ATOMIC_RELAXED) == s) {
                *seq_out = s;
                return 0;
            }
        }
        if (tries >= 8) {
            errno = EIO;
            return -1;
        }
        if (om_fill(fd, f, offset < 0 ? 0 : offset, offset < 0 ? -1 : length) < 0)
            return -1;
    }
}

int om_map_seq_same(struct om_file *f, uint32_t seq)
{
    if (!f->map)
        return 1;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&f->map->seq, __ATOMIC_ACQUIRE) == seq;
}

int om_fill_all_fd(int fd)
{
    struct om_file *f = om_get_fd(fd);
    uint32_t seq;
    int r = 0;
    if (!f)
        return 0;
    if (f->kind == DT_REG)
        r = om_ensure_range(fd, f, -1, -1, &seq);
    om_put(f);
    return r;
}

void om_write_failed(struct om_file *f, int err)
{
    struct om_msg m;
    if (f->instance == om_instance() &&
        om_call(&m, OM_DIRTY, "ii", (int64_t)f->handle, (int64_t)err) == 0)
        om_msg_free(&m);
}

int om_flush(struct om_file *f)
{
    struct om_msg m;
    if (f->instance != om_instance() && om_instance() != 0) {
        errno = EIO;
        return -1;
    }
    if (f->mapped_writable) {
        if (om_call(&m, OM_DIRTY, "i", (int64_t)f->handle) == 0)
            om_msg_free(&m);
    }
    if (om_call(&m, OM_FLUSH, "i", (int64_t)f->handle) < 0)
        return -1;
    return file_reply(f, &m);
}

/* ---- attributes --------------------------------------------------------------------------- */
void om_fill_stat(struct stat *st, const struct om_attr *a)
{
    memset(st, 0, sizeof *st);
    st->st_dev = (dev_t)om_st_dev();
    st->st_ino = (ino_t)a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = a->size;
    st->st_blksize = 128 * 1024;
    st->st_blocks = (a->size + 511) / 512;
    st->st_atim.tv_sec = a->atime / 1000000000;
    st->st_atim.tv_nsec = a->atime % 1000000000;
    st->st_mtim.tv_sec = a->mtime / 1000000000;
    st->st_mtim.tv_nsec = a->mtime % 1000000000;
    st->st_ctim.tv_sec = a->ctime / 1000000000;
    st->st_ctim.tv_nsec = a->ctime % 1000000000;
}

static int refresh_attr(struct om_file *f)
{
    struct om_msg m;
    uint64_t changes = om_page_changes();
    if (f->kind == DT_REG) {
        if (om_call(&m, OM_FSTAT, "i", (int64_t)f->handle) < 0)
            return -1;
    } else if (om_call(&m, OM_STAT, "si", f->vpath, (int64_t)OM_STAT_FOLLOW) < 0) {
        return -1;
    }
    if (om_status(&m) != 0)
        return om_reply_errno(&m);
    if (m.argc < 1 + OM_ATTR_FIELDS) {
        om_msg_free(&m);
        errno = EPROTO;
        return -1;
    }
    om_reply_attr(&m, 1, &f->attr);
    f->attr_changes = changes;
    om_msg_free(&m);
    return 0;
}

/* fstat of an object descriptor: the object's attributes, with the size and mtime the
 * kernel file has now (programs write it directly). */
int om_fstat_file(int fd, struct om_file *f, struct stat *st)
{
    struct stat k;
    struct om_attr a;
    if (REAL(fstat)(fd, &k) != 0)
        return -1;
    if (k.st_dev != f->cache_dev || k.st_ino != f->cache_ino) {
        om_fd_stale(fd, f);
        *st = k;
        return 0;
    }
    if (!om_stat_page() || f->attr_changes != om_page_changes()) {
        if (refresh_attr(f) < 0)
            return -1;
    }
    a = f->attr;
    if (f->kind == DT_REG) {
        a.size = k.st_size;
        a.mtime = (int64_t)k.st_mtim.tv_sec * 1000000000 + k.st_mtim.tv_nsec;
        if (a.ctime < a.mtime)
            a.ctime = a.mtime;
    }
    om_fill_stat(st, &a);
    return 0;
}

int om_stat_vpath(const char *vpath, int follow, struct stat *st, char *external,
                  size_t extlen)
{
    struct om_msg m;
    struct om_attr a;
    int hit = om_page_lookup(vpath, &a);
    if (hit == 0) {
        errno = ENOENT;
        return -1;
    }
    if (hit == 1 && !(follow && S_ISLNK(a.mode))) {
        om_fill_stat(st, &a);
        return 0;
    }
    if (om_call(&m, OM_STAT, "si", vpath, (int64_t)(follow ? OM_STAT_FOLLOW : 0)) < 0)
        return -1;
    if (om_status(&m) == OM_EXTERNAL && m.argc > 1 && m.args[1].is_bytes) {
        snprintf(external, extlen, "%.*s", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        return -2;
    }
    if (om_status(&m) != 0)
        return om_reply_errno(&m);
    if (m.argc < 1 + OM_ATTR_FIELDS) {
        om_msg_free(&m);
        errno = EPROTO;
        return -1;
    }
    om_reply_attr(&m, 1, &a);
    om_msg_free(&m);
    om_fill_stat(st, &a);
    return 0;
}

/* ---- listings ------------------------------------------------------------------------------ */
int om_list(struct om_file *f)
{
    struct om_dirent *entries = NULL;
    size_t n = 0, cap = 0;
    int64_t cookie = 0;
    do {
        struct om_msg m;
        const char *p, *end;
        if (om_call(&m, OM_LIST, "si", f->vpath, cookie) < 0)
            goto fail;
        if (om_status(&m) != 0) {
            om_reply_errno(&m);
            goto fail;
        }
        if (m.argc < 3 || !m.args[2].is_bytes) {
            om_msg_free(&m);
            errno = EPROTO;
            goto fail;
        }
        cookie = m.args[1].i;
        p = m.args[2].b;
        end = p + m.args[2].len;
        while (p + 11 <= end) {
            uint64_t ino;
            uint16_t len;
            memcpy(&ino, p, 8);
            memcpy(&len, p + 9, 2);
            if (p + 11 + len > end)
                break;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct om_dirent *grown = realloc(entries, ncap * sizeof *grown);
                if (!grown) {
                    om_msg_free(&m);
                    errno = ENOMEM;
                    goto fail;
                }
                entries = grown;
                cap = ncap;
            }
            entries[n].ino = ino;
            entries[n].type = (unsigned char)p[8];
            entries[n].name = strndup(p + 11, len);
            n++;
            p += 11 + len;
        }
        om_msg_free(&m);
    } while (cookie != 0);
    for (size_t i = 0; i < f->nentries; i++)
        free(f->entries[i].name);
    free(f->entries);
    f->entries = entries;
    f->nentries = n;
    f->cursor = 0;
    f->listed = 1;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        free(entries[i].name);
    free(entries);
    return -1;
}
