/* Loopback UDP ping-pong: two sockets bound to 127.0.0.1 (or ::1), each sending 1-byte
 * datagrams to the other's name with sendto (the DNS and statsd pattern): the parent sends,
 * the child answers. Prints the median over RUNS batches of ITERS round trips as
 * "<ns per round trip> ns".
 *
 * Usage: udp_pingpong ITERS RUNS PARENT_CPU CHILD_CPU ipv4|ipv6 (each process pins itself;
 * -1 leaves it unpinned). Both check every byte, its source port and that each datagram is
 * exactly one byte, so a broken implementation cannot report a fast number. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "bench.h"

static struct sockaddr_storage names[2];
static socklen_t name_len;

static int bound(int fam, int i)
{
    int fd = socket(fam, SOCK_DGRAM, 0);
    if (fd < 0)
        fail("socket");
    struct sockaddr_storage ss = { 0 };
    if (fam == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        name_len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        name_len = sizeof *a;
    }
    socklen_t len = name_len;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || getsockname(fd, (struct sockaddr *)&names[i], &len) < 0)
        fail("bind");
    return fd;
}

/* The port in a name (same offset in sockaddr_in and sockaddr_in6). */
static unsigned short port_of(const struct sockaddr_storage *ss)
{
    return ((const struct sockaddr_in *)ss)->sin_port;
}

static void put(int fd, int to, unsigned char b)
{
    ssize_t n;
    while ((n = sendto(fd, &b, 1, 0, (struct sockaddr *)&names[to], name_len)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        fail("sendto = %zd", n);
}

static void get(int fd, int from, int want)
{
    unsigned char b[2];
    struct sockaddr_storage src;
    socklen_t len = sizeof src;
    ssize_t n;
    while ((n = recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&src, &len)) < 0 && errno == EINTR)
        ;
    if (n != 1 || b[0] != want || port_of(&src) != port_of(&names[from]))
        fail("recvfrom = %zd (byte 0x%02x), want 1 byte 0x%02x from the peer", n, n > 0 ? b[0] : 0, want);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "udp_pingpong";
    bench_role = "parent";
    int fam = argc == 6 && strcmp(argv[5], "ipv6") == 0 ? AF_INET6 : AF_INET;
    long iters = argc == 6 ? atol(argv[1]) : 0;
    int runs = argc == 6 ? atoi(argv[2]) : 0;
    if (argc != 6 || iters < 1 || runs < 1 || runs > MAX_RUNS ||
        (strcmp(argv[5], "ipv4") != 0 && strcmp(argv[5], "ipv6") != 0)) {
        fprintf(stderr, "usage: udp_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU ipv4|ipv6\n", MAX_RUNS);
        return 2;
    }
    int parent_cpu = atoi(argv[3]), child_cpu = atoi(argv[4]);
    long warmup = iters / 10 + 1;
    long total = warmup + iters * runs;
    int fds[2] = { bound(fam, 0), bound(fam, 1) };
    fflush(NULL);
    start_watchdog("udp_pingpong: watchdog: not done after " STR(WATCHDOG_SECONDS) " s (lost data?), giving up\n");
    pin_or_exit("udp_pingpong", "parent", parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        bench_role = "child";
        start_watchdog("udp_pingpong: child: watchdog: not done after " STR(WATCHDOG_SECONDS) " s, giving up\n");
        pin_or_exit("udp_pingpong", "child", child_cpu);
        close(fds[0]);
        for (long i = 0; i < total; i++) {
            get(fds[1], 0, (unsigned char)i);
            put(fds[1], 0, (unsigned char)~i);
        }
        _exit(0);
    }
    close(fds[1]);
    double per_trip[MAX_RUNS];
    long i = 0;
    for (; i < warmup; i++) {
        put(fds[0], 1, (unsigned char)i);
        get(fds[0], 1, (unsigned char)~i);
    }
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long end = i + iters; i < end; i++) {
            put(fds[0], 1, (unsigned char)i);
            get(fds[0], 1, (unsigned char)~i);
        }
        per_trip[r] = (now_ns() - start) / iters;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    qsort(per_trip, runs, sizeof per_trip[0], cmp_double);
    printf("%.0f ns\n", per_trip[runs / 2]);
    return 0;
}
