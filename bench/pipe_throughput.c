/* Pipe throughput: the child writes WRITE_SIZE bytes per write() into a pipe, the parent reads
 * them with reads of up to 64 KiB. The parent times each batch of ITERS writes' worth of bytes
 * (it never reads across a batch boundary) and prints the median over RUNS batches as either
 * "<MB/s> MB/s" (10^6 bytes per second) or "<writes/s> writes/s", as UNIT says.
 *
 * Usage: pipe_throughput WRITE_SIZE ITERS RUNS PARENT_CPU CHILD_CPU UNIT
 * UNIT is MB/s or writes/s. Each process pins itself with sched_setaffinity (taskset would put
 * both on the same set): "0 0" puts both ends on CPU 0, "0 1" splits them; -1 leaves that process
 * unpinned.
 *
 * The stream's byte at offset k is pattern(k mod WRITE_SIZE). The reader checks the total byte
 * count, a clean end of file after it, and the first, middle and last byte of every read against
 * the pattern (a full compare would cost as much as the copy being measured); the writer checks
 * every write's return value. Any mismatch exits non-zero, so a broken pipe implementation cannot
 * report a fast number. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

#define READ_SIZE 65536
#define MAX_WRITE (1 << 20)

#define WATCHDOG_MSG "pipe_throughput: watchdog: not done after " STR(WATCHDOG_SECONDS) " s (lost data?), giving up\n"

static const char *role = "parent";

/* Never 0, so a zero-filled buffer does not pass the check. */
static unsigned char pattern(long i)
{
    return (unsigned char)((i * 131 + (i >> 8) * 7) % 255 + 1);
}

static void check(const unsigned char *buf, long len, long long off, long size)
{
    long at[3] = {0, len / 2, len - 1};
    for (int j = 0; j < 3; j++) {
        unsigned char want = pattern((long)((off + at[j]) % size));
        if (buf[at[j]] != want) {
            fprintf(stderr, "pipe_throughput: byte at stream offset %lld is 0x%02x, want 0x%02x\n",
                    off + at[j], buf[at[j]], want);
            exit(1);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: pipe_throughput WRITE_SIZE<=%d ITERS RUNS<=%d PARENT_CPU CHILD_CPU "
                    "MB/s|writes/s\n", MAX_WRITE, MAX_RUNS);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc != 7)
        usage();
    long size = atol(argv[1]);
    long iters = atol(argv[2]);
    int runs = atoi(argv[3]);
    int parent_cpu = atoi(argv[4]), child_cpu = atoi(argv[5]);
    const char *unit = argv[6];
    int mbps = strcmp(unit, "MB/s") == 0;
    if (size < 1 || size > MAX_WRITE || iters < 1 || runs < 1 || runs > MAX_RUNS ||
        (!mbps && strcmp(unit, "writes/s") != 0))
        usage();
    long warmup = iters / 10 + 1;
    long long batch_bytes = (long long)iters * size;
    long long warmup_bytes = (long long)warmup * size;
    long long total_bytes = warmup_bytes + batch_bytes * runs;
    long total_writes = warmup + iters * runs;

    int fds[2];
    if (pipe(fds) < 0) {
        perror("pipe_throughput: pipe");
        return 1;
    }
    fflush(NULL);
    start_watchdog(WATCHDOG_MSG);
    pin_or_exit("pipe_throughput", role, parent_cpu);
    pid_t pid = fork();
    if (pid < 0) {
        perror("pipe_throughput: fork");
        return 1;
    }
    if (pid == 0) { /* writer */
        role = "child";
        start_watchdog(WATCHDOG_MSG); /* fork cleared the alarm */
        pin_or_exit("pipe_throughput", role, child_cpu);
        close(fds[0]);
        unsigned char *out = malloc(size);
        if (!out) {
            perror("pipe_throughput: child: malloc");
            _exit(1);
        }
        for (long i = 0; i < size; i++)
            out[i] = pattern(i);
        for (long w = 0; w < total_writes; w++) {
            long done = 0;
            while (done < size) { /* a blocking pipe write is short only after a signal */
                ssize_t n = write(fds[1], out + done, size - done);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0) {
                    fprintf(stderr, "pipe_throughput: child: write returned %zd: ", n);
                    perror(NULL);
                    _exit(1);
                }
                done += n;
            }
        }
        _exit(0);
    }
    close(fds[1]);

    unsigned char *in = malloc(READ_SIZE);
    if (!in) {
        perror("pipe_throughput: malloc");
        return 1;
    }
    double rate[MAX_RUNS];
    long long off = 0;
    /* Reads the stream up to offset END, never past it. */
#define READ_UNTIL(END)                                                                          \
    while (off < (END)) {                                                                        \
        long long want = (END) - off;                                                            \
        ssize_t n = read(fds[0], in, want < READ_SIZE ? (size_t)want : READ_SIZE);               \
        if (n < 0 && errno == EINTR)                                                             \
            continue;                                                                            \
        if (n <= 0) {                                                                            \
            fprintf(stderr, "pipe_throughput: read returned %zd after %lld of %lld bytes: ", n,  \
                    off, total_bytes);                                                           \
            perror(NULL);                                                                        \
            return 1;                                                                            \
        }                                                                                        \
        check(in, n, off, size);                                                                 \
        off += n;                                                                                \
    }
    READ_UNTIL(warmup_bytes);
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        READ_UNTIL(warmup_bytes + batch_bytes * (r + 1));
        double secs = (now_ns() - start) / 1e9;
        rate[r] = mbps ? batch_bytes / 1e6 / secs : iters / secs;
    }
    ssize_t n;
    do
        n = read(fds[0], in, READ_SIZE);
    while (n < 0 && errno == EINTR);
    if (n != 0) {
        fprintf(stderr, "pipe_throughput: read after all %lld bytes returned %zd, want 0 (EOF)\n",
                total_bytes, n);
        return 1;
    }

    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("pipe_throughput: waitpid");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pipe_throughput: writer failed (wait status 0x%x)\n", status);
        return 1;
    }
    qsort(rate, runs, sizeof rate[0], cmp_double);
    printf("%.0f %s\n", rate[runs / 2], unit);
    return 0;
}
