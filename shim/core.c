/* Core of the shim: configuration, the table of object descriptors, the connection to
 * the daemon and its wire format, and the shared maps the daemon publishes. */
#include "objmount.h"

#include <dlfcn.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#ifndef OBJMOUNT_VERSION
#error "OBJMOUNT_VERSION must be defined by the build"
#endif

extern char **environ;

int om_inited;
int om_active;
char om_root[PATH_MAX] = "/objmount";
size_t om_root_len = 9;
const char *om_root_base = "objmount";
size_t om_root_base_len = 8;
int om_cwd_ours;
struct om_file **om_fd_pages[64];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_socket[PATH_MAX];
static char g_dir[PATH_MAX];
static char g_shadow[PATH_MAX];
static size_t g_shadow_len;
static char g_session[128];

static pthread_mutex_t g_fd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_cwd_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_cwd[PATH_MAX];
static int g_umask = -1;

static int g_sock = -1;
static pid_t g_sock_pid;
static int g_sock_lost;
static uint64_t g_instance;
static int64_t g_st_dev;
static int g_flags;
static struct om_page *g_page;
static size_t g_page_len;
static int g_refused;
static int g_complained;
static char g_wbuf[OM_MAX_FRAME];
static char g_rbuf[OM_MAX_FRAME];

void *om_dlsym(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "objmount shim: libc lacks a function it wraps\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        abort();
    }
    return f;
}

/* ---- configuration -------------------------------------------------------------------- */
static void fork_prepare(void)
{
    pthread_mutex_lock(&g_conn_lock);
    pthread_mutex_lock(&g_cwd_lock);
    pthread_mutex_lock(&g_fd_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&g_fd_lock);
    pthread_mutex_unlock(&g_cwd_lock);
    pthread_mutex_unlock(&g_conn_lock);
}

static void fork_child(void)
{
    pthread_mutex_unlock(&g_fd_lock);
    pthread_mutex_unlock(&g_cwd_lock);
    pthread_mutex_unlock(&g_conn_lock);
    /* The socket is shared with the parent: this process makes its own (om_call). */
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* OBJMOUNT_FDS: descriptors on objects inherited across exec, as
 * "fd:kind:handle:instance:dev:ino:hexvpath" entries separated by ';'. */
static void adopt_inherited(const char *spec)
{
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[2 * PATH_MAX + 128];
        if (len < sizeof entry) {
            int fd, kind;
            unsigned long long handle, instance, dev, ino;
            int consumed = 0;
            memcpy(entry, p, len);
            entry[len] = '\0';
            if (sscanf(entry, "%d:%d:%llu:%llu:%llu:%llu:%n", &fd, &kind, &handle, &instance,
                       &dev, &ino, &consumed) == 6 && consumed > 0) {
                struct stat st;
                const char *hex = entry + consumed;
                size_t n = strlen(hex) / 2;
                if (REAL(fstat)(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino &&
                    n < PATH_MAX) {
                    struct om_file *f = om_file_new();
                    if (f) {
                        f->vpath = malloc(n + 1);
                        if (f->vpath) {
                            for (size_t i = 0; i < n; i++)
                                f->vpath[i] = (char)(hexval(hex[2 * i]) << 4 |
                                                     hexval(hex[2 * i + 1]));
                            f->vpath[n] = '\0';
                        }
                        f->kind = kind;
                        f->handle = handle;
                        f->instance = instance;
                        f->cache_dev = st.st_dev;
                        f->cache_ino = st.st_ino;
                        f->accmode = REAL(fcntl)(fd, F_GETFL) & O_ACCMODE;
                        om_set_fd(fd, f);
                        om_put(f);
                    }
                }
            }
        }
        p = end ? end + 1 : NULL;
    }
}

static void detect_cwd(void)
{
    char buf[PATH_MAX];
    if (!REAL(getcwd)(buf, sizeof buf))
        return;
    if (strncmp(buf, g_shadow, g_shadow_len) == 0 &&
        (buf[g_shadow_len] == '/' || buf[g_shadow_len] == '\0')) {
        const char *rest = buf + g_shadow_len;
        om_cwd_set(*rest ? rest : "/");
    }
}

static void do_init(void)
{
    const char *sock = getenv("OBJMOUNT_SOCKET");
    const char *disable = getenv("OBJMOUNT_DISABLE");
    const char *root = getenv("OBJMOUNT_ROOT");
    const char *session = getenv("OBJMOUNT_SESSION");
    if (root && root[0] == '/' && strlen(root) > 1 && strlen(root) < sizeof om_root) {
        strcpy(om_root, root);
        om_root_len = strlen(om_root);
        while (om_root_len > 1 && om_root[om_root_len - 1] == '/')
            om_root[--om_root_len] = '\0';
        om_root_base = strrchr(om_root, '/') + 1;
        om_root_base_len = strlen(om_root_base);
    }
    if (session && strlen(session) < sizeof g_session)
        strcpy(g_session, session);
    if (sock && *sock && strlen(sock) < sizeof g_socket &&
        !(disable && *disable && strcmp(disable, "0") != 0)) {
        char *slash;
        strcpy(g_socket, sock);
        strcpy(g_dir, sock);
        slash = strrchr(g_dir, '/');
        if (slash)
            *slash = '\0';
        snprintf(g_shadow, sizeof g_shadow, "%s/shadow", g_dir);
        g_shadow_len = strlen(g_shadow);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        om_active = 1;
        __atomic_store_n(&om_inited, 1, __ATOMIC_RELEASE);
        if (getenv("OBJMOUNT_FDS"))
            adopt_inherited(getenv("OBJMOUNT_FDS"));
        detect_cwd();
        return;
    }
    __atomic_store_n(&om_inited, 1, __ATOMIC_RELEASE);
}

void om_init(void)
{
    pthread_once(&g_once, do_init);
}

__attribute__((constructor)) static void om_constructor(void)
{
    om_init();
}

/* ---- paths ------------------------------------------------------------------------------ */
static int join(char *out, size_t outlen, const char *base, const char *rel)
{
    size_t b = strlen(base), r = strlen(rel);
    int slash = b > 0 && base[b - 1] != '/';
    if (b + slash + r + 1 > outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(out, base, b);
    if (slash)
        out[b++] = '/';
    memcpy(out + b, rel, r + 1);
    return 1;
}

/* "objmount/..." relative to a local directory is ours when that directory is the root's
 * parent. Only names starting with the root's last component get here. */
static int from_root_parent(int dirfd, const char *path, char *out, size_t outlen)
{
    static dev_t parent_dev;
    static ino_t parent_ino;
    static int known;
    struct stat st;
    const char *rest;
    if (!om_names_root(path))
        return 0;
    if (!__atomic_load_n(&known, __ATOMIC_ACQUIRE)) {
        char parent[PATH_MAX];
        char *slash;
        snprintf(parent, sizeof parent, "%s", om_root);
        slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        if (REAL(stat)(parent, &st) != 0)
            return 0;
        parent_dev = st.st_dev;
        parent_ino = st.st_ino;
        __atomic_store_n(&known, 1, __ATOMIC_RELEASE);
    }
    if (REAL(fstatat)(dirfd, ".", &st, 0) != 0 || st.st_dev != parent_dev ||
        st.st_ino != parent_ino)
        return 0;
    rest = path + om_root_base_len;
    return join(out, outlen, "", *rest ? rest : "/");
}

int om_vpath(int dirfd, const char *path, char *out, size_t outlen)
{
    if (path[0] == '/') {
        const char *rest = path + om_root_len;
        return join(out, outlen, "", *rest ? rest : "/");
    }
    if (om_is_uri(path)) {
        const char *rest = path + 3;
        while (*rest == '/')
            rest++;
        return join(out, outlen, "/s3", rest);
    }
    if (path[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    if (dirfd == AT_FDCWD) {
        char cwd[PATH_MAX];
        if (!om_cwd_get(cwd, sizeof cwd))
            return from_root_parent(AT_FDCWD, path, out, outlen);
        return join(out, outlen, cwd, path);
    }
    struct om_file *f = om_get_fd(dirfd);
    int r;
    if (!f)
        return from_root_parent(dirfd, path, out, outlen);
    if (f->kind != DT_DIR) {
        om_put(f);
        errno = ENOTDIR;
        return -1;
    }
    r = join(out, outlen, f->vpath, path);
    om_put(f);
    return r;
}

void om_display_path(const char *vpath, char *out, size_t outlen)
{
    if (strcmp(vpath, "/") == 0)
        snprintf(out, outlen, "%s", om_root);
    else
        snprintf(out, outlen, "%s%s", om_root, vpath);
}

int om_path_has_object(const char *s)
{
    const char *hit = strstr(s, om_root);
    while (hit) {
        char next = hit[om_root_len];
        if ((hit == s || hit[-1] == '=' || hit[-1] == ':') && (next == '/' || next == '\0'))
            return 1;
        hit = strstr(hit + 1, om_root);
    }
    return strncmp(s, "s3:/", 4) == 0 || strstr(s, "=s3:/") != NULL;
}

int om_cwd_get(char *out, size_t outlen)
{
    int ours;
    pthread_mutex_lock(&g_cwd_lock);
    ours = om_cwd_ours;
    if (ours)
        snprintf(out, outlen, "%s", g_cwd);
    pthread_mutex_unlock(&g_cwd_lock);
    return ours;
}

void om_cwd_set(const char *vpath)
{
    pthread_mutex_lock(&g_cwd_lock);
    if (vpath) {
        snprintf(g_cwd, sizeof g_cwd, "%s", vpath);
        __atomic_store_n(&om_cwd_ours, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&om_cwd_ours, 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&g_cwd_lock);
}

mode_t om_umask(void)
{
    int m = __atomic_load_n(&g_umask, __ATOMIC_RELAXED);
    if (m < 0) {
        char buf[2048];
        int fd = REAL(open)("/proc/self/status", O_RDONLY | O_CLOEXEC);
        m = 022;
        if (fd >= 0) {
            ssize_t n = REAL(read)(fd, buf, sizeof buf - 1);
            REAL(close)(fd);
            if (n > 0) {
                char *line;
                buf[n] = '\0';
                line = strstr(buf, "Umask:");
                if (line)
                    m = (int)strtol(line + 6, NULL, 8);
            }
        }
        __atomic_store_n(&g_umask, m, __ATOMIC_RELAXED);
    }
    return (mode_t)m;
}

void om_umask_set(mode_t m)
{
    __atomic_store_n(&g_umask, (int)(m & 0777), __ATOMIC_RELAXED);
}

/* ---- descriptors ------------------------------------------------------------------------ */
struct om_file *om_file_new(void)
{
    struct om_file *f = calloc(1, sizeof *f);
    if (f)
        f->refs = 1;
    return f;
}

struct om_file *om_get_fd(int fd)
{
    struct om_file *f = NULL;
    if (!om_fd_maybe_ours(fd))
        return NULL;
    pthread_mutex_lock(&g_fd_lock);
    if (om_fd_pages[fd >> 10]) {
        f = om_fd_pages[fd >> 10][fd & 1023];
        if (f)
            f->refs++;
    }
    pthread_mutex_unlock(&g_fd_lock);
    return f;
}

struct om_file *om_take_fd(int fd)
{
    struct om_file *f = NULL;
    if (!om_fd_maybe_ours(fd))
        return NULL;
    pthread_mutex_lock(&g_fd_lock);
    if (om_fd_pages[fd >> 10]) {
        f = om_fd_pages[fd >> 10][fd & 1023];
        __atomic_store_n(&om_fd_pages[fd >> 10][fd & 1023], NULL, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_fd_lock);
    return f;
}

void om_set_fd(int fd, struct om_file *f)
{
    struct om_file *old = NULL;
    if (fd < 0 || fd >= 65536)
        return;
    pthread_mutex_lock(&g_fd_lock);
    if (!om_fd_pages[fd >> 10]) {
        struct om_file **page = calloc(1024, sizeof *page);
        if (!page) {
            pthread_mutex_unlock(&g_fd_lock);
            return;
        }
        __atomic_store_n(&om_fd_pages[fd >> 10], page, __ATOMIC_RELEASE);
    }
    old = om_fd_pages[fd >> 10][fd & 1023];
    if (f)
        f->refs++;
    __atomic_store_n(&om_fd_pages[fd >> 10][fd & 1023], f, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_fd_lock);
    if (old)
        om_put(old);
}

void om_put(struct om_file *f)
{
    int last;
    if (!f)
        return;
    pthread_mutex_lock(&g_fd_lock);
    last = --f->refs == 0;
    pthread_mutex_unlock(&g_fd_lock);
    if (!last)
        return;
    if (f->map)
        REAL(munmap)(f->map, f->map_len);
    for (size_t i = 0; i < f->nentries; i++)
        free(f->entries[i].name);
    free(f->entries);
    free(f->vpath);
    free(f);
}

void om_for_each_fd(int (*fn)(int fd, struct om_file *f, void *arg), void *arg)
{
    for (int page = 0; page < 64; page++) {
        if (!__atomic_load_n(&om_fd_pages[page], __ATOMIC_ACQUIRE))
            continue;
        for (int i = 0; i < 1024; i++) {
            int fd = page * 1024 + i;
            struct om_file *f = om_get_fd(fd);
            if (f) {
                int stop = fn(fd, f, arg);
                om_put(f);
                if (stop)
                    return;
            }
        }
    }
}

/* An entry whose descriptor was closed behind the shim's back (a glibc-internal close)
 * names another file now: forget it. */
int om_fd_stale(int fd, struct om_file *f)
{
    struct stat st;
    if (REAL(fstat)(fd, &st) != 0 || st.st_dev != f->cache_dev || st.st_ino != f->cache_ino) {
        struct om_file *taken = om_take_fd(fd);
        if (taken == f)
            om_put(taken);
        else if (taken)
            om_set_fd(fd, taken), om_put(taken);
        return 1;
    }
    return 0;
}

int om_is_socket_fd(int fd)
{
    return fd >= 0 && fd == __atomic_load_n(&g_sock, __ATOMIC_RELAXED) &&
           g_sock_pid == getpid();
}

void om_socket_lost(int fd)
{
    if (om_is_socket_fd(fd))
        __atomic_store_n(&g_sock_lost, 1, __ATOMIC_RELAXED);
}

/* The program closes a range of descriptors (close_range, closefrom): if the daemon's
 * socket is among them, this process will connect again when it needs to. */
void om_socket_in_range(unsigned int first, unsigned int last)
{
    int s = __atomic_load_n(&g_sock, __ATOMIC_RELAXED);
    if (s >= 0 && (unsigned)s >= first && (unsigned)s <= last)
        om_socket_lost(s);
}

/* ---- wire format (codec.c), from C varargs ---------------------------------------------- */
static int encode(char *buf, size_t cap, int op, const char *fmt, va_list ap)
{
    struct om_arg args[OM_MAX_ARGS];
    int n = 0;
    for (const char *f = fmt; *f; f++, n++) {
        if (n == OM_MAX_ARGS)
            return -1;
        memset(&args[n], 0, sizeof args[n]);
        if (*f == 'i') {
            args[n].i = va_arg(ap, int64_t);
        } else {
            args[n].is_bytes = 1;
            args[n].b = va_arg(ap, const char *);
            args[n].len = (uint32_t)(*f == 's' ? strlen(args[n].b) : va_arg(ap, size_t));
        }
    }
    return om_encode(buf, cap, op, args, n);
}

void om_msg_free(struct om_msg *m)
{
    for (int i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            REAL(close)(m->fds[i]);
    m->nfds = 0;
    free(m->buf);
    m->buf = NULL;
}

int om_status(const struct om_msg *m)
{
    if (m->argc < 1 || m->args[0].is_bytes)
        return EPROTO;
    return (int)m->args[0].i;
}

int om_reply_errno(struct om_msg *m)
{
    int st = om_status(m);
    if (st == EPROTO && m->argc > 1 && m->args[1].is_bytes && !g_complained) {
        g_complained = 1;
        dprintf(2, "%.*s\n", (int)m->args[1].len, m->args[1].b);
    }
    om_msg_free(m);
    errno = st > 0 ? st : EIO;
    return -1;
}

void om_reply_attr(const struct om_msg *m, int first, struct om_attr *a)
{
    const struct om_arg *v = &m->args[first];
    a->ino = (uint64_t)v[0].i;
    a->mode = (uint32_t)v[1].i;
    a->nlink = (uint32_t)v[2].i;
    a->uid = (uint32_t)v[3].i;
    a->gid = (uint32_t)v[4].i;
    a->size = v[5].i;
    a->atime = v[6].i;
    a->mtime = v[7].i;
    a->ctime = v[8].i;
}

/* ---- the connection --------------------------------------------------------------------- */
static void complain(const char *what)
{
    if (!g_complained) {
        g_complained = 1;
        dprintf(2, "objmount: %s: %s\n", what, strerror(errno));
    }
}

/* The daemon is gone: run the command it was started with (it daemonizes, and says so
 * by exiting). posix_spawn, not fork: fork would run this library's fork handlers, which
 * take the connection lock held here. */
static void start_daemon(void)
{
    static char disable[] = "OBJMOUNT_DISABLE=1";
    char path[PATH_MAX + 16], buf[4 * PATH_MAX];
    char *argv[16], *env[512];
    int argc = 0, e = 0, fd, status;
    ssize_t n;
    pid_t pid;
    snprintf(path, sizeof path, "%s/restart", g_dir);
    fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = REAL(read)(fd, buf, sizeof buf - 1);
    REAL(close)(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (char *p = buf; p < buf + n && argc < 15; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    for (char **v = environ; *v && e < 510; v++)
        if (strncmp(*v, "LD_PRELOAD=", 11) != 0 && strncmp(*v, "OBJMOUNT_", 9) != 0)
            env[e++] = *v;
    env[e++] = disable;
    env[e] = NULL;
    {
        /* The daemon logs to its own file: the program's output is not its to use. */
        posix_spawn_file_actions_t fa;
        int r;
        posix_spawn_file_actions_init(&fa);
        for (int i = 0; i < 3; i++)
            posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_RDWR, 0);
        r = REAL(posix_spawn)(&pid, argv[0], &fa, NULL, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
            return;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

static int try_connect(void)
{
    struct sockaddr_un addr;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(g_socket) >= sizeof addr.sun_path) {
        REAL(close)(s);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(addr.sun_path, g_socket, strlen(g_socket) + 1);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int saved = errno;
        REAL(close)(s);
        errno = saved;
        return -1;
    }
    {
        /* Out of the way of the program's own low descriptors. */
        int high = REAL(fcntl)(s, F_DUPFD_CLOEXEC, 700);
        if (high >= 0) {
            REAL(close)(s);
            s = high;
        }
    }
    return s;
}

static int exchange(int s, const char *req, int reqlen, struct om_msg *reply);

static int encode_call(char *buf, size_t cap, int op, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = encode(buf, cap, op, fmt, ap);
    va_end(ap);
    return n;
}

static int hello(int s)
{
    /* Its own buffer: the request that made us connect is waiting in g_wbuf. */
    char buf[sizeof g_session + PATH_MAX + 128];
    struct om_msg m;
    int n = encode_call(buf, sizeof buf, OM_HELLO, "isss", (int64_t)OM_PROTOCOL_VERSION,
                        OBJMOUNT_VERSION, g_session, om_root);
    memset(&m, 0, sizeof m);
    if (n < 0 || exchange(s, buf, n, &m) < 0)
        return -1;
    if (om_status(&m) != 0) {
        g_refused = 1;
        return om_reply_errno(&m);
    }
    if (m.argc < 6 || !m.args[1].is_bytes) {
        om_msg_free(&m);
        errno = EPROTO;
        return -1;
    }
    g_instance = (uint64_t)m.args[2].i;
    g_flags = (int)m.args[3].i;
    g_st_dev = m.args[4].i;
    if (g_page) {
        REAL(munmap)(g_page, g_page_len);
        g_page = NULL;
    }
    if (m.args[5].i > 0 && m.nfds > 0) {
        void *p = REAL(mmap)(NULL, (size_t)m.args[5].i, PROT_READ, MAP_SHARED, m.fds[0], 0);
        if (p != MAP_FAILED && ((struct om_page *)p)->magic == OM_PAGE_MAGIC) {
            g_page = p;
            g_page_len = (size_t)m.args[5].i;
        } else if (p != MAP_FAILED) {
            REAL(munmap)(p, (size_t)m.args[5].i);
        }
    }
    om_msg_free(&m);
    return 0;
}

/* With g_conn_lock held: a connected, greeted socket, or -1. */
static int connection(void)
{
    if (g_refused) {
        errno = EPROTO;
        return -1;
    }
    if (g_sock >= 0 && (g_sock_pid != getpid() || g_sock_lost)) {
        if (!g_sock_lost)
            REAL(close)(g_sock);
        g_sock = -1;
    }
    if (g_sock >= 0)
        return g_sock;
    /* A daemon that is dying (killed, its threads still exiting) may accept a
     * connection into its backlog and then reset it: try again, starting a new one. */
    for (int attempt = 0;; attempt++) {
        int s = try_connect();
        if (s < 0 && (errno == ENOENT || errno == ECONNREFUSED)) {
            start_daemon();
            for (int i = 0; i < 200 && s < 0; i++) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                s = try_connect();
                if (s < 0)
                    nanosleep(&ts, NULL);
            }
        }
        if (s < 0) {
            complain("cannot reach the objmount daemon");
            errno = EIO;
            return -1;
        }
        if (hello(s) < 0) {
            int saved = errno;
            REAL(close)(s);
            if ((saved == ECONNRESET || saved == EPIPE || saved == ENOTCONN) && attempt < 20) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            if (saved != EPROTO && !g_refused) {
                errno = saved;
                complain("lost the objmount daemon");
                saved = EIO;
            }
            errno = saved;
            return -1;
        }
        g_sock_pid = getpid();
        g_sock_lost = 0;
        __atomic_store_n(&g_sock, s, __ATOMIC_RELAXED);
        return s;
    }
}

/* Send one request and receive its reply (with any descriptors). */
static int exchange(int s, const char *req, int reqlen, struct om_msg *reply)
{
    struct iovec iov;
    struct msghdr mh;
    char cbuf[CMSG_SPACE(sizeof(int) * OM_MAX_FDS)];
    ssize_t n;
    for (;;) {
        n = send(s, req, (size_t)reqlen, MSG_NOSIGNAL);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n != reqlen)
        return -1;
    memset(&mh, 0, sizeof mh);
    iov.iov_base = g_rbuf;
    iov.iov_len = sizeof g_rbuf;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    for (;;) {
        n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n <= 0) {
        if (n == 0)
            errno = ECONNRESET;
        return -1;
    }
    reply->nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (reply->nfds < OM_MAX_FDS)
                    reply->fds[reply->nfds++] = fd;
                else
                    REAL(close)(fd);
            }
        }
    }
    reply->buf = malloc((size_t)n);
    if (!reply->buf) {
        om_msg_free(reply);
        errno = ENOMEM;
        return -1;
    }
    memcpy(reply->buf, g_rbuf, (size_t)n);
    if (om_decode(reply, reply->buf, (size_t)n) < 0 || reply->op != OM_REPLY) {
        om_msg_free(reply);
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int om_call(struct om_msg *reply, int op, const char *fmt, ...)
{
    va_list ap;
    int n, s, r = -1, saved;
    sigset_t all, old;
    memset(reply, 0, sizeof *reply);
    /* A signal handler that uses an object path while this thread waits for the daemon
     * would wait for this lock forever: handlers run once the answer is in. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&g_conn_lock);
    va_start(ap, fmt);
    n = encode(g_wbuf, sizeof g_wbuf, op, fmt, ap);
    va_end(ap);
    if (n < 0) {
        errno = ENAMETOOLONG;
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        s = connection();
        if (s < 0)
            goto out;
        r = exchange(s, g_wbuf, n, reply);
        if (r == 0)
            break;
        saved = errno;
        REAL(close)(g_sock);
        g_sock = -1;
        errno = saved;
        /* A request that was sent may have been carried out: only an unsent one is
         * sent again (to a new daemon). */
        if (saved != EPIPE && saved != ENOTCONN)
            break;
    }
    if (r < 0 && errno != EPROTO) {
        complain("lost the objmount daemon");
        errno = EIO;
    }
out:
    saved = errno;
    pthread_mutex_unlock(&g_conn_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return r;
}

uint64_t om_instance(void)
{
    return g_instance;
}

int64_t om_st_dev(void)
{
    return g_st_dev;
}

const struct om_page *om_stat_page(void)
{
    return g_page;
}

uint64_t om_page_changes(void)
{
    const struct om_page *pg = g_page;
    return pg ? __atomic_load_n(&pg->changes, __ATOMIC_ACQUIRE) : 0;
}

/* ---- the daemon's table of recent attributes -------------------------------------------- */
static uint32_t crc32(const char *s, size_t n)
{
    static uint32_t table[256];
    static int ready;
    uint32_t c = 0xffffffffu;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t v = i;
            for (int k = 0; k < 8; k++)
                v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
            table[i] = v;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ (uint8_t)s[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* The path as the daemon keys it: no "//", "/./" or trailing "/"; "..": unknown. */
static int normalize(const char *vpath, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = vpath;
    if (vpath[0] != '/' || (strlen(vpath) > 1 && vpath[strlen(vpath) - 1] == '/'))
        return -1;
    while (*p) {
        const char *q;
        size_t len;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        q = strchr(p, '/');
        len = q ? (size_t)(q - p) : strlen(p);
        if (len == 1 && p[0] == '.') {
            p += len;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (o + len + 2 > outlen)
            return -1;
        out[o++] = '/';
        memcpy(out + o, p, len);
        o += len;
        p += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return (int)o;
}

/* The daemon hands over its table in the greeting: a new process greets before its first
 * lookup, or its first stat of an object path would always be a question. */
static void greet(void)
{
    static pid_t greeted; /* once per process: if it fails, requests will say why */
    sigset_t all, old;
    int saved = errno;
    if (greeted == getpid())
        return;
    greeted = getpid();
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&g_conn_lock);
    (void)connection();
    pthread_mutex_unlock(&g_conn_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
}

int om_page_lookup(const char *vpath, struct om_attr *a)
{
    const struct om_page *pg = g_page;
    char key[1024];
    int len;
    uint32_t mask, first;
    uint64_t epoch;
    struct timespec now;
    int64_t now_ns;
    if (!pg && (g_sock < 0 || g_sock_pid != getpid())) {
        greet();
        pg = g_page;
    }
    if (!pg || pg->slot_count == 0)
        return -1;
    len = normalize(vpath, key, sizeof key);
    if (len < 0 || (size_t)len > pg->slot_size - sizeof(struct om_slot))
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    epoch = __atomic_load_n(&pg->epoch, __ATOMIC_ACQUIRE);
    mask = pg->slot_count - 1;
    first = crc32(key, (size_t)len) & mask;
    for (uint32_t i = 0; i < OM_SLOT_PROBES; i++) {
        const struct om_slot *s =
            (const void *)((const char *)pg + OM_PAGE_HEADER +
                           (size_t)((first + i) & mask) * pg->slot_size);
        uint32_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        struct om_attr got;
        uint8_t kind;
        int match;
        if (s1 & 1)
            continue;
        kind = s->kind;
        match = s->path_len == (uint16_t)len && kind != 0 && s->epoch == epoch &&
                s->expires > now_ns && memcmp(s->path, key, (size_t)len) == 0;
        got.ino = s->ino;
        got.mode = s->mode;
        got.nlink = s->nlink;
        got.uid = s->uid;
        got.gid = s->gid;
        got.size = s->size;
        got.atime = s->atime;
        got.mtime = s->mtime;
        got.ctime = s->ctime;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != s1 || !match)
            continue;
        if (kind == OM_SLOT_MISSING)
            return 0;
        *a = got;
        return 1;
    }
    return -1;
}
