/* What the AF_UNIX benchmarks share: a listener and a connection at one socket path. */
#ifndef IPCSHIM_BENCH_UNIX_H
#define IPCSHIM_BENCH_UNIX_H

#include <sys/socket.h>
#include <sys/un.h>
#include "bench.h"

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

/* A SOCK_STREAM socket listening at unix_path. */
static __attribute__((unused)) int unix_listener(void)
{
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

/* A SOCK_STREAM socket connected to the listener at unix_path. */
static __attribute__((unused)) int unix_connect(void)
{
    struct sockaddr_un a = unix_addr();
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("connect(%s)", a.sun_path);
    return fd;
}

#endif
