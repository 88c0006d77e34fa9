/* The floor of a per-entry identity of directory extensions: walkfloor [-j THREADS] DIR...
 *
 * Walks each DIR (one tree per work item, THREADS workers taking the next tree) and does only
 * what any identity that sees an in-place edit of a file must do: getdents64 on every
 * directory, one statx per entry (not followed, no automount, the basic stats and the birth
 * time), and openat of each subdirectory (O_NOFOLLOW|O_DIRECTORY|O_NOATIME). Nothing is
 * hashed, sorted, kept or compared. Prints "ENTRIES THREADS": the number of entries below the
 * DIRs (the DIRs themselves not counted), so the caller can check that every entry was seen,
 * and the number of threads used.
 *
 * THREADS defaults to the number of CPUs this process may run on (sched_getaffinity), at most
 * one per tree: extmerge identifies its candidates on std::thread::available_parallelism()
 * threads, which is that count on a machine without a cgroup CPU quota.
 * Any failing call is an error (exit 1, naming the call and the path). Built by bench/run.sh
 * into target/bench/walkfloor (static; it runs inside the chroot). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* extmerge's getdents64 buffer (src/kernel/root_walk.rs DIRENT_BUF). */
#define DIRENT_BUF (32 << 10)
#define MAX_THREADS 256
#define MAX_DEPTH 256

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static char **trees;
static int ntrees;
static atomic_int next_tree;
static atomic_long total;
static atomic_int failed;

/* path is only for messages: the walk itself goes by directory fds. */
static void fail(const char *what, const char *path, const char *name, int err) {
    fprintf(stderr, "walkfloor: %s %s%s%s: %s\n", what, path, name ? "/" : "", name ? name : "",
            strerror(err));
    atomic_store(&failed, 1);
}

/* O_NOATIME needs the owner or CAP_FOWNER: without it, open normally (as extmerge does). */
static int open_dir(int at, const char *name) {
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(at, name, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = openat(at, name, flags);
    return fd;
}

/* Entries below the directory open as dfd (closed here), or -1 after an error. */
static long walk(int dfd, const char *path, int depth) {
    char *buf = malloc(DIRENT_BUF);
    long n = 0;
    if (!buf) {
        fail("allocating a buffer for", path, NULL, ENOMEM);
        close(dfd);
        return -1;
    }
    for (;;) {
        long r = syscall(SYS_getdents64, dfd, buf, DIRENT_BUF);
        if (r < 0) {
            fail("getdents64", path, NULL, errno);
            n = -1;
            break;
        }
        if (r == 0) break;
        for (long o = 0; o < r;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + o);
            o += d->d_reclen;
            if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
            struct statx st;
            if (statx(dfd, d->d_name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                      STATX_BASIC_STATS | STATX_BTIME, &st) != 0) {
                fail("statx", path, d->d_name, errno);
                n = -1;
                goto out;
            }
            n++;
            if (!S_ISDIR(st.stx_mode)) continue;
            if (depth >= MAX_DEPTH) {
                fail("descending (too deep) into", path, d->d_name, ELOOP);
                n = -1;
                goto out;
            }
            int c = open_dir(dfd, d->d_name);
            if (c < 0) {
                fail("opening directory", path, d->d_name, errno);
                n = -1;
                goto out;
            }
            /* Messages name the tree and the entry just below: enough to find it. */
            long below = walk(c, path, depth + 1);
            if (below < 0) {
                n = -1;
                goto out;
            }
            n += below;
        }
    }
out:
    free(buf);
    close(dfd);
    return n;
}

static void *worker(void *arg) {
    (void)arg;
    int i;
    while ((i = atomic_fetch_add(&next_tree, 1)) < ntrees) {
        int fd = open_dir(AT_FDCWD, trees[i]);
        if (fd < 0) {
            fail("opening directory", trees[i], NULL, errno);
            continue;
        }
        struct statx st; /* the tree's root itself, as extmerge looks at it too */
        if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &st) != 0) {
            fail("statx", trees[i], NULL, errno);
            close(fd);
            continue;
        }
        long n = walk(fd, trees[i], 1);
        if (n >= 0) atomic_fetch_add(&total, n);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 0, first = 1;
    if (argc > 2 && !strcmp(argv[1], "-j")) {
        char *end;
        long t = strtol(argv[2], &end, 10);
        if (*end || t < 1 || t > MAX_THREADS) {
            fprintf(stderr, "walkfloor: -j wants 1..%d, not %s\n", MAX_THREADS, argv[2]);
            return 2;
        }
        threads = (int)t;
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: walkfloor [-j THREADS] DIR...\n");
        return 2;
    }
    trees = argv + first;
    ntrees = argc - first;
    if (!threads) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) != 0) {
            perror("walkfloor: sched_getaffinity");
            return 1;
        }
        threads = CPU_COUNT(&set);
    }
    if (threads > ntrees) threads = ntrees;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&th[i], NULL, worker, NULL);
        if (e) {
            fprintf(stderr, "walkfloor: pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    if (atomic_load(&failed)) return 1;
    printf("%ld %d\n", (long)atomic_load(&total), threads);
    return 0;
}
