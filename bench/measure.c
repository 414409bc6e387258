/* SPDX-License-Identifier: MIT */
/*
 * measure.c - runs one command and reports its wall time, CPU time and
 * peak resident set size, for bench/programs.
 *
 *     measure [--preload LIB] --out FILE COMMAND [ARGUMENT...]
 *
 * The command inherits standard input, output and error; LIB, when given,
 * is put in its LD_PRELOAD (and in nobody else's). When it has finished,
 * one line goes to FILE:
 *
 *     MEASURE exit=S wall_s=W user_s=U sys_s=Y maxrss_kib=K
 *
 * S is the exit status, or 128 + the signal that killed it. The peak RSS
 * is the ru_maxrss that wait4 reports for the command. It is taken here,
 * in a small process, because Linux carries the peak of the process that
 * calls execve over into the new program's: a command started straight
 * from the Python runner would report at least the runner's own size.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds_of(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: measure [--preload LIB] --out FILE COMMAND [ARGUMENT...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *preload = NULL, *out = NULL;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--preload") == 0)
            preload = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else
            return usage();
    }
    if (!out || i >= argc)
        return usage();
    FILE *report = fopen(out, "w");
    if (!report) {
        fprintf(stderr, "measure: %s: %s\n", out, strerror(errno));
        return 2;
    }
    double start = now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "measure: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        if (preload && setenv("LD_PRELOAD", preload, 1) != 0)
            _exit(127);
        execvp(argv[i], argv + i);
        fprintf(stderr, "measure: %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
            return 2;
        }
    }
    double wall = now() - start;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fprintf(report, "MEASURE exit=%d wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kib=%ld\n",
            code, wall, seconds_of(ru.ru_utime), seconds_of(ru.ru_stime), ru.ru_maxrss);
    return fclose(report) == 0 ? 0 : 2;
}
