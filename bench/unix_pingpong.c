/* AF_UNIX ping-pong: the parent sends 1 byte, the child receives it and sends 1 byte back: one
 * round trip. Prints the median over RUNS batches of ITERS round trips as "<ns per round trip> ns".
 *
 * Usage: unix_pingpong ITERS RUNS PARENT_CPU CHILD_CPU stream|tcp|dgram|named
 * stream: a SOCK_STREAM connection made through a listener bound to a path (connect, accept);
 * tcp: the same over loopback TCP (127.0.0.1, TCP_NODELAY);
 * dgram: a SOCK_DGRAM socketpair; named: two SOCK_DGRAM sockets bound to paths, each sending to
 * the other's name with sendto (the syslog and DNS-resolver pattern). Each process pins itself ("0 0": both on CPU 0, "0 1": split;
 * -1 leaves it unpinned).
 *
 * The parent sends a running counter and the child answers with its complement; both check every
 * byte (and that a datagram is exactly one byte), and a stream ends with a clean end of file both
 * ways, so a broken socket implementation cannot report a fast number. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/wait.h>
#include "unix.h"

/* named: where this process sends (NULL: the connected peer). */
static struct sockaddr_un *dest;
static char child_path[96];

static void remove_paths(void)
{
    if (child_path[0])
        unlink(child_path);
    unix_remove_path();
}

/* A SOCK_DGRAM socket bound to addr. */
static int dgram_bound(struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0)
        fail("socket(SOCK_DGRAM)");
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0)
        fail("bind(%s)", addr->sun_path);
    return fd;
}

static void put(int fd, unsigned char b)
{
    ssize_t n;
    while ((n = sendto(fd, &b, 1, 0, (struct sockaddr *)dest, dest ? sizeof *dest : 0)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        fail("send = %zd", n);
}

/* Receives one byte (a datagram of exactly one byte) and checks it is `want`; want < 0: expect
 * the end of file. */
static void get(int fd, int want)
{
    unsigned char b[2];
    ssize_t n;
    while ((n = recv(fd, b, sizeof b, 0)) < 0 && errno == EINTR)
        ;
    if (want < 0 ? n != 0 : n != 1 || b[0] != want)
        fail("recv = %zd (byte 0x%02x), want %s 0x%02x", n, n > 0 ? b[0] : 0,
             want < 0 ? "end of file, not" : "1 byte", want < 0 ? 0 : want);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "unix_pingpong";
    bench_role = "parent";
    bench_cleanup = remove_paths;
    int named = argc == 6 && strcmp(argv[5], "named") == 0;
    int dgram = named || (argc == 6 && strcmp(argv[5], "dgram") == 0);
    bench_tcp = argc == 6 && strcmp(argv[5], "tcp") == 0;
    if (argc != 6 || (!dgram && !bench_tcp && strcmp(argv[5], "stream") != 0)) {
        fprintf(stderr, "usage: unix_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU stream|tcp|dgram|named\n", MAX_RUNS);
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    int parent_cpu = atoi(argv[3]), child_cpu = atoi(argv[4]);
    if (iters < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: unix_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU stream|tcp|dgram|named\n", MAX_RUNS);
        return 2;
    }
    long warmup = iters / 10 + 1;
    long total = warmup + iters * runs;

    int pair[2] = {-1, -1}, listener = -1;
    struct sockaddr_un parent_addr, child_addr;
    if (named) {
        parent_addr = unix_addr();
        child_addr = parent_addr;
        snprintf(child_path, sizeof child_path, "%s/child", unix_dir);
        strcpy(child_addr.sun_path, child_path);
        pair[0] = dgram_bound(&parent_addr);
        pair[1] = dgram_bound(&child_addr);
    } else if (dgram) {
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) < 0)
            fail("socketpair(SOCK_DGRAM)");
    } else {
        listener = unix_listener();
    }
    fflush(NULL);
    start_watchdog("unix_pingpong: watchdog: not done after " STR(WATCHDOG_SECONDS) " s (lost data?), giving up\n");
    pin_or_exit("unix_pingpong", "parent", parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        bench_role = "child";
        start_watchdog("unix_pingpong: child: watchdog: not done after " STR(WATCHDOG_SECONDS) " s, giving up\n");
        pin_or_exit("unix_pingpong", "child", child_cpu);
        int fd = dgram ? pair[1] : unix_connect();
        if (dgram)
            close(pair[0]);
        if (named)
            dest = &parent_addr;
        else
            close(listener);
        for (long i = 0; i < total; i++) {
            get(fd, (unsigned char)i);
            put(fd, (unsigned char)~i);
        }
        if (!dgram)
            get(fd, -1);
        _exit(0);
    }
    int fd = pair[0];
    if (named)
        dest = &child_addr;
    if (dgram) {
        close(pair[1]);
    } else {
        while ((fd = accept(listener, NULL, NULL)) < 0)
            if (errno != EINTR)
                fail("accept");
        close(listener);
    }

    double per_trip[MAX_RUNS];
    long i = 0;
    for (; i < warmup; i++) {
        put(fd, (unsigned char)i);
        get(fd, (unsigned char)~i);
    }
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long end = i + iters; i < end; i++) {
            put(fd, (unsigned char)i);
            get(fd, (unsigned char)~i);
        }
        per_trip[r] = (now_ns() - start) / iters;
    }
    if (!dgram) {
        if (shutdown(fd, SHUT_WR) < 0)
            fail("shutdown");
        get(fd, -1);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    remove_paths();
    qsort(per_trip, runs, sizeof per_trip[0], cmp_double);
    printf("%.0f ns\n", per_trip[runs / 2]);
    return 0;
}
