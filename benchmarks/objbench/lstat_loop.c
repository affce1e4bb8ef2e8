/* The shim's cost on local paths, measured inside one process: for every path listed in
 * argv[1] (one per line), lstat + open + read up to 4 KiB + close. Prints the seconds the
 * loop took and whether libobjmount is loaded in this process. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int shim_loaded(void)
{
    char line[4096];
    int found = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return -1;
    while (!found && fgets(line, sizeof line, maps))
        found = strstr(line, "libobjmount") != NULL;
    fclose(maps);
    return found;
}

int main(int argc, char **argv)
{
    static char buf[4096];
    char *list, **paths;
    size_t count = 0;
    long size;
    struct timespec t0, t1;
    FILE *f;
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-LIST\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "r");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0) {
        perror(argv[1]);
        return 1;
    }
    rewind(f);
    list = malloc((size_t)size + 1);
    paths = malloc(sizeof *paths * ((size_t)size / 2 + 1));
    if (!list || !paths || fread(list, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    list[size] = '\0';
    for (char *save = NULL, *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
        paths[count++] = p;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        int fd;
        if (lstat(paths[i], &st) != 0)
            continue;
        fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (read(fd, buf, sizeof buf) < 0)
            perror(paths[i]);
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f %d\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           shim_loaded());
    return 0;
}
