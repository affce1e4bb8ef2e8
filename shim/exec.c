/* Processes. Across exec, object descriptors are real kernel files the new program
 * inherits; OBJMOUNT_FDS tells its shim which ones are objects, and each is made whole
 * in the cache first (the new program may never be reached by the shim). The daemon
 * decides whether a program can be reached at all (static, Go, setuid), and serves
 * programs and scripts stored as objects from a local copy. */
#include "objmount.h"

#include <dlfcn.h>
#include <spawn.h>

extern char **environ;

static const char *self_path(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        Dl_info info;
        if (dladdr((void *)self_path, &info) && info.dli_fname)
            snprintf(path, sizeof path, "%s", info.dli_fname);
    }
    return path;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

struct fds_spec {
    char *buf;
    size_t len, cap;
    int any;
};

static int note_inherited(int fd, struct om_file *f, void *arg)
{
    struct fds_spec *spec = arg;
    int flags = REAL(fcntl)(fd, F_GETFD);
    struct stat st;
    char head[160];
    size_t need;
    if (flags < 0 || (flags & FD_CLOEXEC) || REAL(fstat)(fd, &st) != 0)
        return 0;
    if (f->kind == DT_REG && om_fill_all_fd(fd) < 0)
        return 0; /* it cannot be made whole: the program will see an error from it */
    snprintf(head, sizeof head, "%s%d:%d:%llu:%llu:%llu:%llu:", spec->len ? ";" : "", fd,
             f->kind, (unsigned long long)f->handle, (unsigned long long)f->instance,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    need = strlen(head) + 2 * strlen(f->vpath ? f->vpath : "") + 1;
    if (spec->len + need + 1 > spec->cap) {
        size_t cap = (spec->cap + need) * 2;
        char *grown = realloc(spec->buf, cap);
        if (!grown)
            return 1;
        spec->buf = grown;
        spec->cap = cap;
    }
    spec->len += (size_t)sprintf(spec->buf + spec->len, "%s", head);
    for (const char *p = f->vpath ? f->vpath : ""; *p; p++)
        spec->len += (size_t)sprintf(spec->buf + spec->len, "%02x", (unsigned char)*p);
    spec->any = 1;
    return 0;
}

static int inherited_objects(void)
{
    struct fds_spec spec = {0};
    om_for_each_fd(note_inherited, &spec);
    free(spec.buf);
    return spec.any;
}

/* The environment a program exec'd from here gets: the shim stays preloaded (programs
 * that clean their environment lose it otherwise), and knows the objects it inherits.
 * OBJMOUNT_DISABLE=1 in it removes the shim instead. */
char *const *om_exec_env(char *const envp[], int *allocated)
{
    size_t n = 0, out = 0;
    char **env;
    const char *preload = NULL, *disable = NULL;
    const char *self = self_path();
    struct fds_spec spec = {0};
    *allocated = 0;
    if (!om_ready() || !envp)
        return envp;
    for (char *const *v = envp; *v; v++, n++) {
        if (starts(*v, "LD_PRELOAD="))
            preload = *v + 11;
        else if (starts(*v, "OBJMOUNT_DISABLE="))
            disable = *v + 17;
    }
    env = calloc(n + 8, sizeof *env);
    if (!env)
        return envp;
    *allocated = 1;
    if (disable && *disable && strcmp(disable, "0") != 0) {
        /* Drop only this library from LD_PRELOAD. */
        for (char *const *v = envp; *v; v++) {
            if (starts(*v, "LD_PRELOAD=") && self[0]) {
                char *copy = malloc(strlen(*v) + 1), *w;
                const char *p = *v + 11;
                if (!copy)
                    continue;
                w = copy + sprintf(copy, "LD_PRELOAD=");
                while (*p) {
                    size_t len = strcspn(p, ": ");
                    if (len && !(len == strlen(self) && strncmp(p, self, len) == 0)) {
                        if (w[-1] != '=')
                            *w++ = ':';
                        memcpy(w, p, len);
                        w += len;
                    }
                    p += len;
                    while (*p == ':' || *p == ' ')
                        p++;
                }
                *w = '\0';
                env[out++] = copy;
            } else if (!starts(*v, "OBJMOUNT_FDS=")) {
                env[out++] = strdup(*v);
            }
        }
        return env;
    }
    for (char *const *v = envp; *v; v++)
        if (!starts(*v, "OBJMOUNT_FDS=") && !starts(*v, "LD_PRELOAD="))
            env[out++] = strdup(*v);
    if (self[0]) {
        if (!preload || !strstr(preload, self)) {
            size_t len = strlen(self) + (preload ? strlen(preload) + 1 : 0) + 12;
            char *v = malloc(len);
            if (v) {
                snprintf(v, len, "LD_PRELOAD=%s%s%s", self, preload && *preload ? ":" : "",
                         preload ? preload : "");
                env[out++] = v;
            }
        } else {
            env[out++] = strdup(preload - 11);
        }
    }
    {
        static const char *keep[] = {"OBJMOUNT_SOCKET", "OBJMOUNT_SESSION", "OBJMOUNT_ROOT"};
        for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
            const char *mine = getenv(keep[i]);
            int present = 0;
            for (char *const *v = envp; *v; v++)
                if (starts(*v, keep[i]) && (*v)[strlen(keep[i])] == '=')
                    present = 1;
            if (!present && mine) {
                size_t len = strlen(keep[i]) + strlen(mine) + 2;
                char *v = malloc(len);
                if (v) {
                    snprintf(v, len, "%s=%s", keep[i], mine);
                    env[out++] = v;
                }
            }
        }
    }
    om_for_each_fd(note_inherited, &spec);
    if (spec.any) {
        char *v = malloc(spec.len + 14);
        if (v) {
            sprintf(v, "OBJMOUNT_FDS=%s", spec.buf);
            env[out++] = v;
        }
    }
    free(spec.buf);
    return env;
}

void om_exec_env_free(char *const *env)
{
    for (char *const *v = env; *v; v++)
        free(*v);
    free((void *)env);
}

static int disabled_in(char *const envp[])
{
    for (char *const *v = envp; v && *v; v++)
        if (starts(*v, "OBJMOUNT_DISABLE=") && (*v)[17] && strcmp(*v + 17, "0") != 0)
            return 1;
    return 0;
}

/* Why exec'ing this program needs the daemon's opinion: it will be given object paths,
 * start in an object directory, or inherit object descriptors. */
static int exec_reasons(char *const argv[])
{
    int reasons = 0;
    for (char *const *a = argv + (argv && argv[0] ? 1 : 0); a && *a; a++)
        if (om_path_has_object(*a)) {
            reasons |= OM_EXEC_ARGS;
            break;
        }
    if (om_cwd_ours)
        reasons |= OM_EXEC_CWD;
    if (inherited_objects())
        reasons |= OM_EXEC_FDS;
    return reasons;
}

/* What to exec: the local path, possibly an interpreter in front. Returns 0, or an errno.
 * argv_out is NULL unless a new argument vector was built (for scripts stored as objects). */
struct prepared {
    char path[PATH_MAX];
    char **argv;
};

/* The daemon found this local program reachable moments ago, and it has not changed since
 * (same inode, mode, owner, size and times): no need to ask again at every exec. */
static int verdict_cached(const char *path)
{
    char key[PATH_MAX + 16];
    struct om_attr a;
    struct stat st;
    if (path[0] != '/' || snprintf(key, sizeof key, "%s%s", OM_EXEC_KEY, path) >= (int)sizeof key)
        return 0;
    if (om_page_lookup(key, &a) != 1 || REAL(stat)(path, &st) != 0)
        return 0;
    return (uint64_t)st.st_ino == a.ino && st.st_mode == a.mode && st.st_uid == a.uid &&
           st.st_gid == a.gid && st.st_size == a.size &&
           (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == a.mtime &&
           (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec == a.ctime;
}

static int prepare(const char *path, char *const argv[], char *const envp[], struct prepared *p)
{
    char vp[PATH_MAX];
    struct om_msg m;
    int k, reasons;
    p->argv = NULL;
    snprintf(p->path, sizeof p->path, "%s", path);
    if (!om_ready() || disabled_in(envp))
        return 0;
    k = om_classify(AT_FDCWD, path, vp, sizeof vp);
    if (k < 0)
        return errno;
    reasons = exec_reasons(argv);
    if (k == 0 && !reasons)
        return 0;
    if (k > 0)
        reasons |= OM_EXEC_ARGS;
    else if (verdict_cached(path))
        return 0;
    if (om_call(&m, OM_EXEC, "sii", k > 0 ? vp : path, (int64_t)(k > 0), (int64_t)reasons) < 0)
        return errno;
    if (om_status(&m) != 0) {
        int st = om_status(&m);
        if (st == EPERM && m.argc > 1 && m.args[1].is_bytes)
            dprintf(2, "%.*s\n", (int)m.args[1].len, m.args[1].b);
        om_msg_free(&m);
        return st > 0 ? st : EIO;
    }
    if (m.argc >= 3 && m.args[1].is_bytes && m.args[2].is_bytes) {
        snprintf(p->path, sizeof p->path, "%.*s", (int)m.args[1].len, m.args[1].b);
        if (m.args[2].len > 0) {
            /* A script stored as an object: run its interpreter on the object path, as
             * the kernel would, so that $0 is the path the program was asked for. */
            char line[PATH_MAX], *interp, *arg;
            size_t argc = 0;
            snprintf(line, sizeof line, "%.*s", (int)m.args[2].len, m.args[2].b);
            interp = strtok(line, " \t");
            arg = strtok(NULL, "");
            while (arg && (*arg == ' ' || *arg == '\t'))
                arg++;
            for (char *const *a = argv; a && *a; a++)
                argc++;
            p->argv = calloc(argc + 4, sizeof *p->argv);
            if (!p->argv || !interp) {
                om_msg_free(&m);
                free(p->argv);
                p->argv = NULL;
                return ENOEXEC;
            }
            {
                size_t i = 0;
                p->argv[i++] = strdup(interp);
                if (arg && *arg)
                    p->argv[i++] = strdup(arg);
                p->argv[i++] = strdup(path);
                for (size_t j = 1; j < argc; j++)
                    p->argv[i++] = strdup(argv[j]);
                p->argv[i] = NULL;
            }
            snprintf(p->path, sizeof p->path, "%s", interp);
        }
    }
    om_msg_free(&m);
    return 0;
}

static void release(struct prepared *p)
{
    if (p->argv) {
        for (char **a = p->argv; *a; a++)
            free(*a);
        free(p->argv);
    }
}

OM_API int execve(const char *path, char *const argv[], char *const envp[])
{
    struct prepared p;
    char *const *env;
    int allocated, err, r;
    if (!om_ready())
        return REAL(execve)(path, argv, envp);
    err = prepare(path, argv, envp, &p);
    if (err) {
        errno = err;
        return -1;
    }
    if (p.argv) {
        /* The interpreter itself goes through the same checks. */
        r = execve(p.path, p.argv, envp);
        err = errno;
        release(&p);
        errno = err;
        return r;
    }
    env = om_exec_env(envp, &allocated);
    r = REAL(execve)(p.path, argv, env);
    err = errno;
    if (allocated)
        om_exec_env_free(env);
    errno = err;
    return r;
}

OM_API int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

OM_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
    const char *path;
    char buf[PATH_MAX];
    int eacces = 0;
    if (!*file) {
        errno = ENOENT;
        return -1;
    }
    if (strchr(file, '/'))
        return execve(file, argv, envp);
    path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len + strlen(file) + 2 <= sizeof buf) {
            if (len == 0)
                snprintf(buf, sizeof buf, "%s", file);
            else
                snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, file);
            execve(buf, argv, envp);
            if (errno == EACCES)
                eacces = 1;
            else if (errno == ENOEXEC) {
                /* As glibc: a file without a #! line is a shell script. */
                size_t argc = 0;
                char **sh;
                for (char *const *a = argv; *a; a++)
                    argc++;
                sh = calloc(argc + 2, sizeof *sh);
                if (sh) {
                    sh[0] = (char *)"/bin/sh";
                    sh[1] = buf;
                    for (size_t i = 1; i < argc; i++)
                        sh[i + 1] = argv[i];
                    execve("/bin/sh", sh, envp);
                    free(sh);
                }
                return -1;
            } else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
                       errno != ENODEV && errno != ETIMEDOUT) {
                return -1;
            }
        }
        path += len;
        if (*path == ':')
            path++;
    }
    errno = eacces ? EACCES : ENOENT;
    return -1;
}

OM_API int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

#define COLLECT_ARGS(first, last_is_env)                                            \
    size_t argc = 1;                                                                \
    va_list ap;                                                                     \
    char **args;                                                                    \
    char *const *envp_ = environ;                                                   \
    va_start(ap, first);                                                            \
    while (va_arg(ap, char *))                                                      \
        argc++;                                                                     \
    va_end(ap);                                                                     \
    args = alloca((argc + 1) * sizeof *args);                                       \
    va_start(ap, first);                                                            \
    args[0] = (char *)(first);                                                      \
    for (size_t i = 1; i <= argc; i++)                                              \
        args[i] = va_arg(ap, char *);                                               \
    if (last_is_env)                                                                \
        envp_ = va_arg(ap, char *const *);                                          \
    va_end(ap);

OM_API int execl(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, 0)
    return execve(path, args, envp_);
}

OM_API int execle(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, 1)
    return execve(path, args, envp_);
}

OM_API int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, 0)
    return execvpe(file, args, envp_);
}

/* vfork's child shares the parent's memory, and runs these wrappers (dup2, close_range,
 * execve) before it execs: with fork it has its own copy of the shim's state. */
OM_API pid_t vfork(void)
{
    return fork();
}

static int spawn_common(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[],
                        int search)
{
    struct prepared p;
    char *const *env;
    int allocated, r;
    if (!om_ready())
        return search ? REAL(posix_spawnp)(pid, path, fa, attr, argv, envp)
                      : REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
    if (!search || strchr(path, '/')) {
        r = prepare(path, argv, envp, &p);
        if (r)
            return r;
        search = 0;
    } else {
        snprintf(p.path, sizeof p.path, "%s", path);
        p.argv = NULL;
    }
    env = om_exec_env(envp, &allocated);
    r = search ? REAL(posix_spawnp)(pid, p.path, fa, attr, argv, env)
               : REAL(posix_spawn)(pid, p.path, fa, attr, p.argv ? p.argv : argv, env);
    if (allocated)
        om_exec_env_free(env);
    release(&p);
    return r;
}

OM_API int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return spawn_common(pid, path, fa, attr, argv, envp, 0);
}

OM_API int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return spawn_common(pid, file, fa, attr, argv, envp, 1);
}
