/* What the stream socket benchmarks share: a listener and a connection at one socket path, or
 * (bench_tcp set) at 127.0.0.1 on a port the kernel picks. */
#ifndef IPCSHIM_BENCH_UNIX_H
#define IPCSHIM_BENCH_UNIX_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "bench.h"

/* Loopback TCP instead of AF_UNIX: the listener's name once it is bound. */
static int bench_tcp;
static struct sockaddr_in tcp_addr;

/* TCP_NODELAY, as request-response programs set it. */
static __attribute__((unused)) int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        fail("socket(AF_INET)");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        fail("setsockopt(TCP_NODELAY)");
    return fd;
}

/* AF_UNIX benchmarks: a socket path in a fresh directory on tmpfs (a bind on the root file system
 * costs several times more), removed with it by the owner (bench_cleanup = unix_remove_path). */
static char unix_dir[64], unix_path[80];

static __attribute__((unused)) void unix_remove_path(void)
{
    if (unix_path[0])
        unlink(unix_path);
    if (unix_dir[0])
        rmdir(unix_dir);
}

static __attribute__((unused)) struct sockaddr_un unix_addr(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!unix_dir[0]) {
        strcpy(unix_dir, "/dev/shm/ipcshim-bench-XXXXXX");
        if (!mkdtemp(unix_dir))
            fail("mkdtemp(%s)", unix_dir);
        snprintf(unix_path, sizeof unix_path, "%s/sock", unix_dir);
    }
    strcpy(a.sun_path, unix_path);
    return a;
}

/* A SOCK_STREAM socket listening at unix_path (or on 127.0.0.1, at tcp_addr). */
static __attribute__((unused)) int unix_listener(void)
{
    if (bench_tcp) {
        int fd = tcp_socket();
        socklen_t len = sizeof tcp_addr;
        tcp_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) < 0)
            fail("bind(127.0.0.1)");
        if (listen(fd, 16) < 0)
            fail("listen");
        if (getsockname(fd, (struct sockaddr *)&tcp_addr, &len) < 0)
            fail("getsockname");
        return fd;
    }
    struct sockaddr_un a = unix_addr();
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("bind(%s)", a.sun_path);
    if (listen(fd, 16) < 0)
        fail("listen");
    return fd;
}

/* A SOCK_STREAM socket connected to the listener at unix_path (or tcp_addr). */
static __attribute__((unused)) int unix_connect(void)
{
    if (bench_tcp) {
        int fd = tcp_socket();
        if (connect(fd, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) < 0)
            fail("connect(127.0.0.1:%d)", ntohs(tcp_addr.sin_port));
        return fd;
    }
    struct sockaddr_un a = unix_addr();
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("connect(%s)", a.sun_path);
    return fd;
}

#endif
