/* objmount's LD_PRELOAD shim: shared declarations.
 *
 * The shim decides per call whether a path or descriptor is an object's; everything
 * else goes straight to libc. All policy (names, permissions, caching, uploads) lives in
 * the Python daemon; the shim asks it and hands programs real kernel descriptors.
 * The protocol numbers and shared-memory layouts below mirror
 * src/objmount/frontends/intercept/{protocol,statpage}.py and core/blockmap.py; the
 * tests check that both sides agree.
 */
#ifndef OBJMOUNT_SHIM_H
#define OBJMOUNT_SHIM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#define OM_API __attribute__((visibility("default")))
#define OM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- protocol ---------------------------------------------------------------------- */
#define OM_PROTOCOL_VERSION 4
/* Prefix of the shared-table keys under which the daemon publishes "this local program is
 * reachable by LD_PRELOAD" (protocol.EXEC_VERDICT_KEY). */
#define OM_EXEC_KEY "/\001exec"
#define OM_MAX_FRAME (256 * 1024)
#define OM_MAX_ARGS 64
#define OM_MAX_FDS 4
#define OM_EXTERNAL (-1)

enum om_op {
    OM_REPLY = 0,
    OM_HELLO = 1,
    OM_STAT = 2,
    OM_OPEN = 3,
    OM_FSTAT = 4,
    OM_FILL = 5,
    OM_FLUSH = 6,
    OM_DIRTY = 7,
    OM_LIST = 8,
    OM_MKDIR = 9,
    OM_RMDIR = 10,
    OM_UNLINK = 11,
    OM_RENAME = 12,
    OM_SYMLINK = 13,
    OM_READLINK = 14,
    OM_SETATTR = 15,
    OM_ACCESS = 16,
    OM_REALPATH = 17,
    OM_CHDIR = 18,
    OM_STATFS = 19,
    OM_EXEC = 20,
    OM_ADOPT = 21,
    OM_LINK = 22,
    OM_MKNOD = 23,
    OM_SESSION_WAIT = 24,
    OM_XATTR = 25,
};

#define OM_STAT_FOLLOW 1
#define OM_SETATTR_MODE 1
#define OM_SETATTR_UID 2
#define OM_SETATTR_GID 4
#define OM_SETATTR_SIZE 8
#define OM_SETATTR_ATIME 16
#define OM_SETATTR_MTIME 32
#define OM_SETATTR_FOLLOW 64
#define OM_EXEC_ARGS 1
#define OM_EXEC_CWD 2
#define OM_EXEC_FDS 4
#define OM_XATTR_GET 0
#define OM_XATTR_SET 1
#define OM_XATTR_LIST 2
#define OM_XATTR_REMOVE 3
#define OM_ATTR_FIELDS 9

struct om_arg {
    int is_bytes;
    int64_t i;
    const char *b;
    uint32_t len;
};

/* A decoded reply. args point into buf; fds were received beside it. */
struct om_msg {
    int op;
    int argc;
    struct om_arg args[OM_MAX_ARGS];
    int fds[OM_MAX_FDS];
    int nfds;
    char *buf;
};

/* ---- shared memory (written by the daemon, read here) ------------------------------ */
#define OM_MAP_MAGIC 0x3150414d4d4a424fULL  /* "OBJMMAP1" */
#define OM_MAP_COMPLETE 1u
struct om_map {
    uint64_t magic;
    uint32_t seq;
    uint32_t flags;
    uint64_t block_size;
    uint64_t remote_size;
    uint64_t capacity;
    uint8_t pad[24];
    uint8_t bits[];
};

#define OM_PAGE_MAGIC 0x544154534d4a424fULL /* "OBJMSTAT" */
#define OM_PAGE_HEADER 4096
#define OM_SLOT_PROBES 4
#define OM_SLOT_ATTR 1
#define OM_SLOT_MISSING 2
struct om_page {
    uint64_t magic;
    uint32_t version;
    uint32_t slot_count;
    uint32_t slot_size;
    uint32_t pad;
    uint64_t instance;
    uint64_t changes;
    uint64_t epoch;
    int64_t st_dev;
};
struct om_slot {
    uint32_t seq;
    uint16_t path_len;
    uint8_t kind;
    uint8_t pad;
    uint64_t epoch;
    int64_t expires;
    uint64_t ino;
    uint32_t mode, nlink, uid, gid;
    int64_t size, atime, mtime, ctime;
    char path[];
};

/* The layouts the daemon writes (core/blockmap.py, frontends/intercept/statpage.py). */
_Static_assert(offsetof(struct om_map, seq) == 8 && offsetof(struct om_map, remote_size) == 24 &&
                   offsetof(struct om_map, bits) == 64,
               "struct om_map matches core/blockmap.py");
_Static_assert(offsetof(struct om_page, changes) == 32 && offsetof(struct om_page, epoch) == 40 &&
                   offsetof(struct om_page, st_dev) == 48,
               "struct om_page matches statpage.py");
_Static_assert(offsetof(struct om_slot, epoch) == 8 && offsetof(struct om_slot, ino) == 24 &&
                   offsetof(struct om_slot, size) == 48 && offsetof(struct om_slot, path) == 80,
               "struct om_slot matches statpage.py");

struct om_attr {
    uint64_t ino;
    uint32_t mode, nlink, uid, gid;
    int64_t size, atime, mtime, ctime;
};

/* ---- descriptors this process holds on objects ------------------------------------ */
struct om_dirent {
    uint64_t ino;
    unsigned char type;
    char *name;
};

/* One open file description (shared by dup'd descriptors, as in the kernel). */
struct om_file {
    int refs;
    int kind;               /* DT_REG or DT_DIR */
    int accmode;            /* O_RDONLY / O_WRONLY / O_RDWR */
    uint64_t handle;        /* the daemon's, for files */
    uint64_t instance;      /* of the daemon that gave it */
    char *vpath;            /* canonical object path, "/s3/bucket/key" */
    dev_t cache_dev;        /* identity of the kernel file behind the descriptor */
    ino_t cache_ino;
    struct om_map *map;     /* files: which blocks are present */
    size_t map_len;
    struct om_attr attr;    /* for fstat, valid while changes == attr_changes */
    uint64_t attr_changes;
    int mapped_writable;    /* a shared writable mapping exists: report it at close */
    /* directories: the listing a readdir stream walks */
    struct om_dirent *entries;
    size_t nentries;
    size_t cursor;
    int listed;
    char dirent_buf[sizeof(struct dirent64) + NAME_MAX + 1];
};

/* ---- core.c -------------------------------------------------------------------------- */
extern char om_root[PATH_MAX];
extern size_t om_root_len;
extern const char *om_root_base; /* its last component ("objmount") */
extern size_t om_root_base_len;
extern int om_active;

void om_init(void);
static inline int om_ready(void)
{
    extern int om_inited;
    if (OM_UNLIKELY(!__atomic_load_n(&om_inited, __ATOMIC_ACQUIRE)))
        om_init();
    return om_active;
}

void *om_dlsym(const char *name);
#define REAL(fn)                                                                    \
    ({                                                                              \
        static __typeof__(&fn) real_;                                               \
        __typeof__(&fn) f_ = __atomic_load_n(&real_, __ATOMIC_RELAXED);             \
        if (OM_UNLIKELY(!f_)) {                                                     \
            f_ = (__typeof__(&fn))om_dlsym(#fn);                                    \
            __atomic_store_n(&real_, f_, __ATOMIC_RELAXED);                         \
        }                                                                           \
        f_;                                                                         \
    })

/* Paths. om_classify: 0 local, 1 an object path (vpath written to out), -1 error. */
int om_vpath(int dirfd, const char *path, char *out, size_t outlen);
/* A relative name that may enter the namespace from the root's parent ("objmount/..."
 * opened from "/", as programs that walk paths component by component do). */
static inline int om_names_root(const char *path)
{
    return memcmp(path, om_root_base, om_root_base_len) == 0 &&
           (path[om_root_base_len] == '/' || path[om_root_base_len] == '\0');
}
/* "s3:/bucket/key" (what path normalisation makes of "s3://"), and "s3:" alone as a
 * relative name: tools that walk a path one component at a time (mkdir -p) meet it. */
static inline int om_is_uri(const char *path)
{
    return path[0] == 's' && path[1] == '3' && path[2] == ':' &&
           (path[3] == '/' || path[3] == '\0');
}
static inline int om_classify(int dirfd, const char *path, char *out, size_t outlen)
{
    extern int om_cwd_ours;
    extern struct om_file **om_fd_pages[];
    if (!om_ready() || path == NULL)
        return 0;
    if (path[0] == '/') {
        if (memcmp(path, om_root, om_root_len) != 0 ||
            (path[om_root_len] != '/' && path[om_root_len] != '\0'))
            return 0;
    } else if (!om_is_uri(path)) {
        if (dirfd == AT_FDCWD) {
            if (!__atomic_load_n(&om_cwd_ours, __ATOMIC_RELAXED) && !om_names_root(path))
                return 0;
        } else if ((dirfd < 0 || dirfd >= 65536 ||
                    !__atomic_load_n(&om_fd_pages[dirfd >> 10], __ATOMIC_ACQUIRE)) &&
                   !om_names_root(path)) {
            return 0;
        }
    }
    return om_vpath(dirfd, path, out, outlen);
}
void om_display_path(const char *vpath, char *out, size_t outlen);
int om_path_has_object(const char *s);

/* Descriptors. */
extern struct om_file **om_fd_pages[];
static inline int om_fd_maybe_ours(int fd)
{
    struct om_file **page;
    if (fd < 0 || fd >= 65536)
        return 0;
    page = __atomic_load_n(&om_fd_pages[fd >> 10], __ATOMIC_ACQUIRE);
    return page && __atomic_load_n(&page[fd & 1023], __ATOMIC_ACQUIRE) != NULL;
}
struct om_file *om_get_fd(int fd);     /* a reference, or NULL */
struct om_file *om_take_fd(int fd);    /* removes the entry; the caller owns its ref */
void om_set_fd(int fd, struct om_file *f); /* takes a new reference */
void om_put(struct om_file *f);
struct om_file *om_file_new(void);
int om_is_socket_fd(int fd);
void om_socket_lost(int fd);
void om_socket_in_range(unsigned int first, unsigned int last);
int om_fd_stale(int fd, struct om_file *f);
void om_for_each_fd(int (*fn)(int fd, struct om_file *f, void *arg), void *arg);

/* The wire format (codec.c). */
int om_encode(char *buf, size_t cap, int op, const struct om_arg *args, int n);
int om_decode(struct om_msg *m, const char *buf, size_t n);

/* Talking to the daemon: fmt has 'i' (int64_t), 's' (C string), 'b' (ptr, size_t). */
int om_call(struct om_msg *reply, int op, const char *fmt, ...);
void om_msg_free(struct om_msg *m);
int om_status(const struct om_msg *m);   /* errno-style status, or OM_EXTERNAL */
int om_reply_errno(struct om_msg *m);     /* sets errno from a failed reply, returns -1 */
void om_reply_attr(const struct om_msg *m, int first, struct om_attr *a);
uint64_t om_instance(void);
int64_t om_st_dev(void);
const struct om_page *om_stat_page(void);
int om_page_lookup(const char *vpath, struct om_attr *a); /* 1 attrs, 0 missing, -1 unknown */
uint64_t om_page_changes(void);

/* Files. */
int om_open_vpath(const char *vpath, int flags, mode_t mode, char *external, size_t extlen);
int om_fill(int fd, struct om_file *f, int64_t offset, int64_t length);
int om_fill_all_fd(int fd);
int om_ensure_range(int fd, struct om_file *f, int64_t offset, int64_t length,
                    uint32_t *seq_out);
int om_map_seq_same(struct om_file *f, uint32_t seq);
int om_flush(struct om_file *f);
/* A write to the cache file failed (full disk): the daemon will refuse to store it. */
void om_write_failed(struct om_file *f, int err);
void om_fill_stat(struct stat *st, const struct om_attr *a);
int om_fstat_file(int fd, struct om_file *f, struct stat *st);
int om_stat_vpath(const char *vpath, int follow, struct stat *st, char *external,
                  size_t extlen);
int om_list(struct om_file *f);
mode_t om_umask(void);
void om_umask_set(mode_t m);
int om_adopt(struct om_file *f);

/* Current directory. */
extern int om_cwd_ours;
int om_cwd_get(char *out, size_t outlen);   /* the vpath of the cwd, if ours */
void om_cwd_set(const char *vpath);          /* NULL: the cwd is local */

/* exec support (exec.c) */
char *const *om_exec_env(char *const envp[], int *allocated);
void om_exec_env_free(char *const *env);

/* Prototypes glibc no longer declares, or declares only when fortifying. */
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);
char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen);
char *__getcwd_chk(char *buf, size_t size, size_t buflen);
ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len, size_t buflen);

#endif
