/* Pipe ping-pong: the parent writes 1 byte into one pipe, the child reads it and writes 1 byte
 * back through a second pipe, the parent reads it: one round trip. Prints the median over RUNS
 * batches of ITERS round trips as "<ns per round trip> ns".
 *
 * Usage: pipe_pingpong ITERS RUNS PARENT_CPU CHILD_CPU
 * Each process pins itself with sched_setaffinity (taskset would put both on the same set):
 * "0 0" puts both ends on CPU 0, "0 1" splits them. A CPU of -1 leaves that process unpinned.
 *
 * Both ends check every byte (the parent sends a running counter, the child answers with its
 * complement) and a clean end of file after the last one; any mismatch exits non-zero, so a
 * broken pipe implementation cannot report a fast number. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"


#define WATCHDOG_MSG "pipe_pingpong: watchdog: not done after " STR(WATCHDOG_SECONDS) " s (lost data?), giving up\n"

static const char *role = "parent";

static void put(int fd, unsigned char b)
{
    ssize_t n;
    do
        n = write(fd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        fprintf(stderr, "pipe_pingpong: %s: write returned %zd: ", role, n);
        perror(NULL);
        exit(1);
    }
}

static unsigned char get(int fd, unsigned char want)
{
    unsigned char b;
    ssize_t n;
    do
        n = read(fd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        fprintf(stderr, "pipe_pingpong: %s: read returned %zd (want 1 byte): ", role, n);
        perror(NULL);
        exit(1);
    }
    if (b != want) {
        fprintf(stderr, "pipe_pingpong: %s: read byte 0x%02x, want 0x%02x\n", role, b, want);
        exit(1);
    }
    return b;
}

static void expect_eof(int fd)
{
    unsigned char b;
    ssize_t n;
    do
        n = read(fd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 0) {
        fprintf(stderr, "pipe_pingpong: %s: read after the last byte returned %zd, want 0 (EOF)\n",
                role, n);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: pipe_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    int parent_cpu = atoi(argv[3]), child_cpu = atoi(argv[4]);
    if (iters < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: pipe_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    long warmup = iters / 10 + 1;
    long total = warmup + iters * runs;

    int down[2], up[2]; /* down: parent -> child; up: child -> parent */
    if (pipe(down) < 0 || pipe(up) < 0) {
        perror("pipe_pingpong: pipe");
        return 1;
    }
    fflush(NULL);
    start_watchdog(WATCHDOG_MSG);
    pin_or_exit("pipe_pingpong", role, parent_cpu);
    pid_t pid = fork();
    if (pid < 0) {
        perror("pipe_pingpong: fork");
        return 1;
    }
    if (pid == 0) {
        role = "child";
        start_watchdog(WATCHDOG_MSG); /* fork cleared the alarm */
        pin_or_exit("pipe_pingpong", role, child_cpu);
        close(down[1]);
        close(up[0]);
        for (long i = 0; i < total; i++) {
            unsigned char b = get(down[0], (unsigned char)i);
            put(up[1], (unsigned char)~b);
        }
        expect_eof(down[0]);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);

    double per_trip[MAX_RUNS];
    long i = 0;
    for (; i < warmup; i++) {
        put(down[1], (unsigned char)i);
        get(up[0], (unsigned char)~(unsigned char)i);
    }
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long end = i + iters; i < end; i++) {
            put(down[1], (unsigned char)i);
            get(up[0], (unsigned char)~(unsigned char)i);
        }
        per_trip[r] = (now_ns() - start) / iters;
    }
    close(down[1]);
    expect_eof(up[0]);

    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("pipe_pingpong: waitpid");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pipe_pingpong: child failed (wait status 0x%x)\n", status);
        return 1;
    }
    qsort(per_trip, runs, sizeof per_trip[0], cmp_double);
    printf("%.0f ns\n", per_trip[runs / 2]);
    return 0;
}
