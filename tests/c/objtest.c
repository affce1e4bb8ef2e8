/* Exercises of descriptor-level behaviour, run by tests/test_intercept_c.py under
 * `objmount run` with an object directory as argument. Each case prints what it saw;
 * the test checks the output and what the store holds. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x)                                                                    \
    do {                                                                            \
        if (!(x)) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x,      \
                    strerror(errno));                                               \
            exit(2);                                                                \
        }                                                                           \
    } while (0)

static char path[PATH_MAX];

static const char *at(const char *dir, const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void put(int fd, const char *s)
{
    CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

static void show(const char *file)
{
    char buf[4096];
    int fd = open(file, O_RDONLY);
    ssize_t n;
    CHECK(fd >= 0);
    n = read(fd, buf, sizeof buf - 1);
    CHECK(n >= 0);
    buf[n] = '\0';
    printf("%s", buf);
    CHECK(close(fd) == 0);
}

/* A forked child writes through the inherited descriptor and exits without closing. */
static int case_fork(const char *dir)
{
    int fd = open(at(dir, "forked"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int status;
    CHECK(fd >= 0);
    put(fd, "parent1\n");
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        put(fd, "child\n");
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    put(fd, "parent2\n");
    CHECK(close(fd) == 0);
    show(at(dir, "forked"));
    return 0;
}

/* vfork + exec of a shell that writes to an inherited object descriptor (fd 3). */
static int case_vfork(const char *dir)
{
    int fd = open(at(dir, "vforked"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int status;
    CHECK(fd >= 0);
    if (fd != 3) {
        CHECK(dup2(fd, 3) == 3);
        CHECK(close(fd) == 0);
    }
    pid = vfork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "echo from-vfork-child >&3", (char *)NULL);
        _exit(127);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(close(3) == 0);
    show(at(dir, "vforked"));
    return 0;
}

/* exec with an object descriptor open: the new program reads it (the file was made
 * whole first, and the new program's shim knows the descriptor). */
static int case_exec(const char *dir)
{
    int fd = open(at(dir, "execread"), O_WRONLY | O_CREAT | O_TRUNC, 0644), rd;
    CHECK(fd >= 0);
    put(fd, "inherited across exec\n");
    CHECK(close(fd) == 0);
    rd = open(at(dir, "execread"), O_RDONLY);
    CHECK(rd >= 0);
    CHECK(dup2(rd, 5) == 5);
    fflush(stdout);
    execl("/bin/sh", "sh", "-c", "cat <&5; stat -L -c %s /dev/fd/5", (char *)NULL);
    return 3;
}

static int case_dup(const char *dir)
{
    int fd = open(at(dir, "dup"), O_RDWR | O_CREAT | O_TRUNC, 0644), a, b, c, d, other;
    struct stat st;
    CHECK(fd >= 0);
    a = dup(fd);
    b = dup2(fd, 40);
    c = dup3(fd, 41, O_CLOEXEC);
    d = fcntl(fd, F_DUPFD_CLOEXEC, 50);
    CHECK(a >= 0 && b == 40 && c == 41 && d >= 50);
    put(fd, "0");
    put(a, "1");
    put(b, "2");
    put(c, "3");
    put(d, "4");
    CHECK(fstat(d, &st) == 0);
    printf("size via dup %lld\n", (long long)st.st_size);
    CHECK(close(fd) == 0 && close(a) == 0 && close(b) == 0 && close(c) == 0);
    CHECK(lseek(d, 0, SEEK_SET) == 0);
    put(d, "X");
    CHECK(close(d) == 0);
    show(at(dir, "dup"));
    printf("\n");
    /* dup2 onto an object descriptor closes it: that close stores the file. */
    fd = open(at(dir, "replaced"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    put(fd, "stored by dup2\n");
    other = open("/dev/null", O_WRONLY);
    CHECK(other >= 0 && dup2(other, fd) == fd);
    CHECK(close(other) == 0 && close(fd) == 0);
    show(at(dir, "replaced"));
    return 0;
}

static int case_close_range(const char *dir)
{
    int fds[5];
    char name[32], text[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "cr%d", i);
        fds[i] = open(at(dir, name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fds[i] >= 0);
        snprintf(text, sizeof text, "file %d\n", i);
        put(fds[i], text);
    }
    CHECK(close_range((unsigned)fds[0], (unsigned)fds[4], 0) == 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "cr%d", i);
        show(at(dir, name));
    }
    return 0;
}

static int case_at(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY), fd;
    struct stat st;
    char buf[PATH_MAX];
    ssize_t n;
    struct timespec times[2] = {{1000000000, 5}, {1500000000, 123456789}};
    CHECK(dfd >= 0);
    CHECK(fstat(dfd, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(mkdirat(dfd, "sub", 0755) == 0);
    fd = openat(dfd, "sub/f", O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    put(fd, "via openat\n");
    CHECK(close(fd) == 0);
    CHECK(openat(dfd, "sub/f", O_WRONLY | O_CREAT | O_EXCL, 0600) < 0 && errno == EEXIST);
    CHECK(fstatat(dfd, "sub/f", &st, 0) == 0);
    printf("size %lld mode %o\n", (long long)st.st_size, st.st_mode & 07777);
    CHECK(fchmodat(dfd, "sub/f", 0640, 0) == 0);
    CHECK(utimensat(dfd, "sub/f", times, 0) == 0);
    CHECK(fstatat(dfd, "sub/f", &st, AT_SYMLINK_NOFOLLOW) == 0);
    printf("mode %o mtime %lld.%09ld\n", st.st_mode & 07777, (long long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec);
    CHECK(faccessat(dfd, "sub/f", R_OK | W_OK, 0) == 0);
    CHECK(renameat(dfd, "sub/f", dfd, "g") == 0);
    CHECK(fstatat(dfd, "sub/f", &st, 0) < 0 && errno == ENOENT);
    CHECK(symlinkat("g", dfd, "l") == 0);
    n = readlinkat(dfd, "l", buf, sizeof buf);
    CHECK(n == 1 && buf[0] == 'g');
    CHECK(unlinkat(dfd, "sub", AT_REMOVEDIR) == 0);
    CHECK(unlinkat(dfd, "l", 0) == 0);
    /* fchdir into the object directory: relative names and getcwd follow. */
    CHECK(fchdir(dfd) == 0);
    CHECK(getcwd(buf, sizeof buf) != NULL);
    printf("cwd %s\n", strcmp(buf, dir) == 0 ? "is the object directory" : buf);
    fd = open("relative", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    put(fd, "relative after fchdir\n");
    CHECK(close(fd) == 0);
    show(at(dir, "relative"));
    show("g");
    CHECK(close(dfd) == 0);
    return 0;
}

static int case_mmap(const char *dir)
{
    size_t size = 3 * 1024 * 1024 + 17;
    unsigned char *buf = malloc(size), *p;
    uint64_t sum = 0;
    int fd;
    CHECK(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(i * 7 + i / 1000);
    fd = open(at(dir, "mapped"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, buf, size) == (ssize_t)size);
    CHECK(close(fd) == 0);
    fd = open(at(dir, "mapped"), O_RDONLY);
    CHECK(fd >= 0);
    p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(p != MAP_FAILED);
    CHECK(memcmp(p, buf, size) == 0);
    CHECK(munmap(p, size) == 0 && close(fd) == 0);
    printf("read mapping ok\n");
    fd = open(at(dir, "mapped"), O_RDWR);
    CHECK(fd >= 0);
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    memcpy(p + 1000, "WRITTEN THROUGH A MAPPING", 25);
    CHECK(msync(p, size, MS_SYNC) == 0);
    memcpy(p + size - 5, "TAIL!", 5);
    CHECK(munmap(p, size) == 0);
    CHECK(close(fd) == 0);
    fd = open(at(dir, "mapped"), O_RDONLY);
    CHECK(fd >= 0 && pread(fd, buf, 25, 1000) == 25);
    printf("%.25s\n", (char *)buf);
    CHECK(pread(fd, buf, 5, (off_t)size - 5) == 5);
    printf("%.5s\n", (char *)buf);
    for (size_t i = 0; i < 100; i++)
        sum += buf[i % 5];
    (void)sum;
    CHECK(close(fd) == 0);
    return 0;
}

/* stdio reads through glibc's own read: the file must be whole before fopen returns. */
static int case_fread(const char *file)
{
    FILE *f = fopen(file, "r");
    static uint32_t table[256];
    unsigned char buf[65536];
    uint32_t crc = 0xffffffffu;
    uint64_t total = 0;
    size_t n;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;
        for (int k = 0; k < 8; k++)
            v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
        table[i] = v;
    }
    CHECK(f);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; i++)
            crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
        total += n;
    }
    CHECK(!ferror(f) && fclose(f) == 0);
    printf("%llu %08x\n", (unsigned long long)total, crc ^ 0xffffffffu);
    return 0;
}

/* Writes to stdout (a redirection into an object path) and leaves without closing. */
static int case_exitwrite(void)
{
    put(1, "written by a program that never closes\n");
    _exit(0);
}

/* A signal handler that asks the daemon (readlink of an object path) while the program
 * is in the middle of its own requests: both finish. */
static const char *handler_path;
static volatile sig_atomic_t handled;
static void on_alarm(int sig)
{
    char target[64];
    int saved = errno;
    (void)sig;
    if (readlink(handler_path, target, sizeof target) < 0 && errno == EINVAL)
        handled++;
    errno = saved;
}

static int case_signals(const char *dir)
{
    static char hpath[PATH_MAX];
    struct sigaction sa;
    struct itimerval every = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    int fd;
    snprintf(hpath, sizeof hpath, "%s/target", dir);
    handler_path = hpath;
    fd = open(hpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && close(fd) == 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    CHECK(setitimer(ITIMER_REAL, &every, NULL) == 0);
    for (int i = 0; i < 150; i++) {
        fd = open(at(dir, "busy"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        put(fd, "busy\n");
        CHECK(close(fd) == 0);
    }
    CHECK(setitimer(ITIMER_REAL, &off, NULL) == 0);
    printf("%s\n", handled > 0 ? "handled" : "no signal arrived");
    return 0;
}

/* Local paths: the same output with and without the shim. */
static int walk_count;
static int count(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)p;
    (void)st;
    (void)type;
    (void)ftw;
    walk_count++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int case_local(const char *dir)
{
    char buf[PATH_MAX], tmpl[PATH_MAX];
    struct stat st;
    struct statx sx;
    struct dirent **names;
    glob_t g;
    int fd, n;
    FILE *f;
    void *p;
    CHECK(chdir(dir) == 0);
    CHECK(mkdir("d", 0750) == 0);
    fd = open("d/f", O_RDWR | O_CREAT | O_TRUNC, 0640);
    CHECK(fd >= 0);
    put(fd, "local bytes\n");
    CHECK(fstat(fd, &st) == 0);
    printf("fstat %lld %o\n", (long long)st.st_size, st.st_mode & 07777);
    CHECK(pread(fd, buf, 5, 6) == 5);
    printf("pread %.5s\n", buf);
    p = mmap(NULL, 12, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    printf("mmap %.5s\n", (char *)p);
    CHECK(munmap(p, 12) == 0 && close(fd) == 0);
    CHECK(stat("d/f", &st) == 0 && lstat("d", &st) == 0);
    CHECK(statx(AT_FDCWD, "d/f", 0, STATX_BASIC_STATS, &sx) == 0);
    printf("statx %llu\n", (unsigned long long)sx.stx_size);
    printf("missing %d %d\n", stat("nope", &st), errno);
    printf("access %d\n", access("d/f", R_OK));
    CHECK(symlink("f", "d/l") == 0);
    n = (int)readlink("d/l", buf, sizeof buf);
    printf("readlink %.*s\n", n, buf);
    CHECK(realpath("d/../d/l", buf) != NULL);
    printf("realpath ends %s\n", buf + strlen(buf) - 4);
    CHECK(rename("d/f", "d/g") == 0 && truncate("d/g", 5) == 0);
    f = fopen("d/g", "r");
    CHECK(f && fgets(buf, sizeof buf, f) && fclose(f) == 0);
    printf("fopen %s\n", buf);
    snprintf(tmpl, sizeof tmpl, "d/tmpXXXXXX");
    fd = mkstemp(tmpl);
    CHECK(fd >= 0 && close(fd) == 0 && unlink(tmpl) == 0);
    n = scandir("d", &names, NULL, by_name);
    CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        printf("scandir %s\n", names[i]->d_name);
        free(names[i]);
    }
    free(names);
    CHECK(glob("d/*", 0, NULL, &g) == 0);
    printf("glob %zu\n", g.gl_pathc);
    globfree(&g);
    CHECK(nftw(".", count, 8, FTW_PHYS) == 0);
    printf("nftw %d\n", walk_count);
    CHECK(getcwd(buf, sizeof buf) && strcmp(buf, dir) == 0);
    CHECK(unlink("d/l") == 0 && unlink("d/g") == 0 && rmdir("d") == 0);
    printf("opendir-missing %p %d\n", (void *)opendir("nope"), errno);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(argv[1], "fork"))
        return case_fork(argv[2]);
    if (!strcmp(argv[1], "vfork"))
        return case_vfork(argv[2]);
    if (!strcmp(argv[1], "exec"))
        return case_exec(argv[2]);
    if (!strcmp(argv[1], "dup"))
        return case_dup(argv[2]);
    if (!strcmp(argv[1], "close_range"))
        return case_close_range(argv[2]);
    if (!strcmp(argv[1], "at"))
        return case_at(argv[2]);
    if (!strcmp(argv[1], "mmap"))
        return case_mmap(argv[2]);
    if (!strcmp(argv[1], "fread"))
        return case_fread(argv[2]);
    if (!strcmp(argv[1], "exitwrite"))
        return case_exitwrite();
    if (!strcmp(argv[1], "signals"))
        return case_signals(argv[2]);
    if (!strcmp(argv[1], "local"))
        return case_local(argv[2]);
    return 2;
}
