/* Process runner of bench/bench.py: runner ROOT LOG PROG [ARGS...]
 *
 * Forks; the child chroots into ROOT, sends stdout and stderr to LOG (appended) and execs
 * PROG. The parent waits with wait4() and prints "EXIT SECONDS MAXRSS_KIB CPU_SECONDS" on
 * stdout; CPU_SECONDS is wait4()'s user + system time (the process and every descendant it
 * waited for; work the kernel does on its own threads, such as loop devices' I/O, is not in it).
 *
 * Why not python's subprocess plus wait4 there: ru_maxrss survives execve() (the kernel keeps
 * the pre-exec high-water mark of the forking process), so every child of a 16 MiB python
 * would report at least 16 MiB. This runner is static and small, and it does the chroot itself,
 * so no chroot(8) process image counts either. ru_maxrss from wait4() is the largest peak RSS
 * of the process and of every descendant it waited for (not their sum).
 * Built by bench/run.sh into target/bench/runner. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: runner ROOT LOG PROG [ARGS...]\n");
        return 2;
    }
    int log = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log < 0) {
        perror(argv[2]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        if (chroot(argv[1]) != 0 || chdir("/") != 0) {
            perror("chroot");
            _exit(127);
        }
        if (dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(127);
        execv(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
                 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("%d %.9f %ld %.6f\n", code, s, ru.ru_maxrss, cpu);
    return 0;
}
