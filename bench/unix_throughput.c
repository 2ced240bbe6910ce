/* AF_UNIX stream throughput: the child writes WRITE_SIZE bytes per write() into a SOCK_STREAM
 * connection (made through a listener bound to a path, or with `tcp` over loopback TCP to
 * 127.0.0.1), the parent reads them with reads of up
 * to 64 KiB. The parent times each batch of ITERS writes' worth of bytes and prints the median
 * over RUNS batches as "<MB/s> MB/s" (10^6 bytes per second) or "<writes/s> writes/s".
 *
 * Usage: unix_throughput WRITE_SIZE ITERS RUNS PARENT_CPU CHILD_CPU UNIT [tcp]
 * UNIT is MB/s or writes/s. Each process pins itself ("0 0": both on CPU 0, "0 1": split; -1
 * leaves it unpinned).
 *
 * The stream's byte at offset k is pattern(k mod WRITE_SIZE). The reader checks the total byte
 * count, a clean end of file after it, and the first, middle and last byte of every read; the
 * writer checks every write's return value. Any mismatch exits non-zero. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/wait.h>
#include "unix.h"

#define READ_SIZE 65536
#define MAX_WRITE (1 << 20)

/* Never 0, so a zero-filled buffer does not pass the check. */
static unsigned char pattern(long i)
{
    return (unsigned char)((i * 131 + (i >> 8) * 7) % 255 + 1);
}

static void usage(void)
{
    fprintf(stderr, "usage: unix_throughput WRITE_SIZE<=%d ITERS RUNS<=%d PARENT_CPU CHILD_CPU MB/s|writes/s [tcp]\n",
            MAX_WRITE, MAX_RUNS);
    exit(2);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "unix_throughput";
    bench_role = "parent";
    bench_cleanup = unix_remove_path;
    if (argc != 7 && (argc != 8 || strcmp(argv[7], "tcp") != 0))
        usage();
    bench_tcp = argc == 8;
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

    int listener = unix_listener();
    fflush(NULL);
    start_watchdog("unix_throughput: watchdog: not done after " STR(WATCHDOG_SECONDS) " s (lost data?), giving up\n");
    pin_or_exit("unix_throughput", "parent", parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) { /* writer */
        bench_role = "child";
        start_watchdog("unix_throughput: child: watchdog: not done after " STR(WATCHDOG_SECONDS) " s, giving up\n");
        pin_or_exit("unix_throughput", "child", child_cpu);
        close(listener);
        int fd = unix_connect();
        unsigned char *out = malloc(size);
        if (!out)
            fail("malloc");
        for (long i = 0; i < size; i++)
            out[i] = pattern(i);
        for (long w = 0; w < total_writes; w++) {
            long done = 0;
            while (done < size) { /* a blocking stream write is short only after a signal */
                ssize_t n = write(fd, out + done, size - done);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    fail("write = %zd", n);
                done += n;
            }
        }
        _exit(0);
    }
    int fd;
    while ((fd = accept(listener, NULL, NULL)) < 0)
        if (errno != EINTR)
            fail("accept");
    close(listener);

    unsigned char *in = malloc(READ_SIZE);
    if (!in)
        fail("malloc");
    double rate[MAX_RUNS];
    long long off = 0;
    long long end = warmup_bytes;
    for (int r = -1; r < runs; r++) { /* r = -1: the warm-up */
        double start = now_ns();
        while (off < end) {
            long long want = end - off;
            ssize_t n = read(fd, in, want < READ_SIZE ? (size_t)want : READ_SIZE);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                fail("read = %zd after %lld of %lld bytes", n, off, total_bytes);
            long at[3] = {0, n / 2, n - 1};
            for (int j = 0; j < 3; j++)
                if (in[at[j]] != pattern((long)((off + at[j]) % size)))
                    fail("byte at stream offset %lld is 0x%02x, want 0x%02x", off + at[j], in[at[j]],
                         pattern((long)((off + at[j]) % size)));
            off += n;
        }
        if (r >= 0) {
            double secs = (now_ns() - start) / 1e9;
            rate[r] = mbps ? batch_bytes / 1e6 / secs : iters / secs;
        }
        end += batch_bytes;
    }
    ssize_t n;
    while ((n = read(fd, in, READ_SIZE)) < 0 && errno == EINTR)
        ;
    if (n != 0)
        fail("read after all %lld bytes = %zd, want 0 (end of file)", total_bytes, n);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("writer failed (wait status %#x)", status);
    unix_remove_path();
    qsort(rate, runs, sizeof rate[0], cmp_double);
    printf("%.0f %s\n", rate[runs / 2], unit);
    return 0;
}
