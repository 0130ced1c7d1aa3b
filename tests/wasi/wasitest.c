/* The repository's own WASI test program: one binary, a command per behaviour
 * (argv[1]), so that the test suite compiles it once. Built with
 * `python -m ziglang cc --target=wasm32-wasi` (tests/wasi/build.py). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Print "errno=N" for a failed call: the tests compare WASI errno values. */
static int fail(const char *what) {
    printf("%s: errno=%d\n", what, errno);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: wasitest COMMAND ...\n"); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "args")) {
        for (int i = 0; i < argc; i++) printf("%s\n", argv[i]);
    } else if (!strcmp(cmd, "env")) {
        int n = 0;
        while (environ[n]) n++;
        qsort(environ, n, sizeof *environ, cmp);
        for (int i = 0; i < n; i++) printf("%s\n", environ[i]);
    } else if (!strcmp(cmd, "cat")) {  /* stdin to stdout, then each file argument */
        char buf[4096];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
        for (int i = 2; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) return fail(argv[i]);
            while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
            fclose(f);
        }
    } else if (!strcmp(cmd, "write") && argc == 4) {  /* write FILE TEXT */
        FILE *f = fopen(argv[2], "wb");
        if (!f) return fail(argv[2]);
        fputs(argv[3], f);
        fclose(f);
        printf("wrote %zu\n", strlen(argv[3]));
    } else if (!strcmp(cmd, "ls") && argc == 3) {  /* sorted names, '.' and '..' left out */
        DIR *d = opendir(argv[2]);
        if (!d) return fail(argv[2]);
        char *names[256];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)) && n < 256) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp);
        for (int i = 0; i < n; i++) printf("%s\n", names[i]);
    } else if (!strcmp(cmd, "mkdir") && argc == 3) {
        if (mkdir(argv[2], 0755)) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "rm") && argc == 3) {
        if (unlink(argv[2])) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "symlink") && argc == 4) {  /* symlink TARGET LINK */
        if (symlink(argv[2], argv[3])) return fail(argv[3]);
        printf("ok\n");
    } else if (!strcmp(cmd, "rmdir") && argc == 3) {
        if (rmdir(argv[2])) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "mv") && argc == 4) {
        if (rename(argv[2], argv[3])) return fail(argv[3]);
        printf("ok\n");
    } else if (!strcmp(cmd, "link") && argc == 4) {  /* link EXISTING NEW */
        if (link(argv[2], argv[3])) return fail(argv[3]);
        printf("ok\n");
    } else if (!strcmp(cmd, "touch") && argc == 3) {  /* timestamps to the epoch, by path */
        struct timespec times[2] = {{0, 0}, {0, 0}};
        if (utimensat(AT_FDCWD, argv[2], times, 0)) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "futimes") && argc == 3) {  /* the same through a descriptor */
        struct timespec times[2] = {{0, 0}, {0, 0}};
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) return fail("open");
        if (futimens(fd, times)) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "truncate") && argc == 3) {
        if (truncate(argv[2], 0)) return fail(argv[2]);
        printf("ok\n");
    } else if (!strcmp(cmd, "writeat") && argc == 4) {  /* writeat DIR NAME: openat below DIR */
        int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (dir < 0) return fail("open");
        int fd = openat(dir, argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return fail(argv[3]);
        printf("ok\n");
    } else if (!strcmp(cmd, "stat") && argc == 3) {
        struct stat st;
        if (stat(argv[2], &st)) return fail(argv[2]);
        printf("size=%lld dir=%d\n", (long long)st.st_size, S_ISDIR(st.st_mode) ? 1 : 0);
    } else if (!strcmp(cmd, "clock")) {  /* realtime after 2020, monotonic never backwards */
        struct timespec a, b, r;
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int ok = r.tv_sec > 1577836800 &&
                 (b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec));
        printf("%s %lld\n", ok ? "ok" : "bad", (long long)r.tv_sec);
    } else if (!strcmp(cmd, "random")) {
        unsigned char buf[32];
        if (getentropy(buf, sizeof buf)) return fail("getentropy");
        for (size_t i = 0; i < sizeof buf; i++) printf("%02x", buf[i]);
        printf("\n");
    } else if (!strcmp(cmd, "sleep") && argc == 3) {  /* poll_oneoff with a clock */
        long want = atol(argv[2]);
        struct timespec t0, t1, d = {want / 1000, (want % 1000) * 1000000L};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nanosleep(&d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        printf("slept %s\n", ms >= want ? "enough" : "too little");
    } else if (!strcmp(cmd, "exit") && argc == 3) {
        printf("exiting\n");
        fflush(stdout);
        exit(atoi(argv[2]));
    } else if (!strcmp(cmd, "copy") && argc == 4) {  /* copy SRC DST in 64 KiB blocks */
        static char buf[65536];
        int in = open(argv[2], O_RDONLY), out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0) return fail("open");
        long long total = 0;
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, n) != n) return fail("write");
            total += n;
        }
        close(in);
        close(out);
        printf("copied %lld\n", total);
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    return 0;
}
