/* The "visibility gap" reader of bench/bench.py: reads PATH (open, read, close, by path each
 * time) in a tight loop until SIGTERM, then prints "total failed mismatched first_errno".
 * A read fails when open() or read() fails or returns nothing; it mismatches when the content
 * differs from the first successful read. Prints "ready" once the first read succeeded.
 * Built by bench/run.sh into target/bench/reader (static, so it also runs inside the chroot). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: reader PATH\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char want[4096], buf[4096];
    ssize_t wlen = -1;
    unsigned long long total = 0, failed = 0, mismatched = 0;
    int first_errno = 0;
    while (!stop) {
        if (wlen >= 0) total++; /* reads before the first success do not count */
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (wlen < 0) { usleep(1000); continue; }
            failed++;
            if (!first_errno) first_errno = errno;
            continue;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        int e = errno;
        close(fd);
        if (n <= 0) {
            if (wlen < 0) { usleep(1000); continue; }
            failed++;
            if (!first_errno) first_errno = n < 0 ? e : -1;
            continue;
        }
        if (wlen < 0) {
            memcpy(want, buf, (size_t)n);
            wlen = n;
            total = 1;
            printf("ready\n");
            fflush(stdout);
        } else if (n != wlen || memcmp(want, buf, (size_t)n) != 0) {
            mismatched++;
        }
    }
    printf("%llu %llu %llu %d\n", total, failed, mismatched, first_errno);
    return 0;
}
