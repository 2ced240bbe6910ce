/* AF_UNIX connection cycle in one process. bind: socket, bind to a path, listen, a second socket
 * connecting to it, accept, one byte across, close all three and unlink the path; connect: the
 * same on one listener bound once (socket, connect, accept, a byte, two closes). Prints the
 * median over RUNS batches of ITERS cycles as "<ns per cycle> ns". tcp: connect's cycle over
 * loopback TCP (a listener on 127.0.0.1; the accepted side closes first, as an HTTP/1.0 server).
 *
 * Usage: unix_connect ITERS RUNS bind|connect|tcp
 * One process, so placement is taskset's: run.sh pins it to one CPU. The byte sent on the
 * connecting side must arrive on the accepted one, so a cycle that does not connect fails. */
#define _GNU_SOURCE
#include <errno.h>
#include "unix.h"

static int bound_once = -1;

static void cycle(long i)
{
    int listener = bound_once >= 0 ? bound_once : unix_listener();
    int client = unix_connect();
    int server;
    while ((server = accept(listener, NULL, NULL)) < 0)
        if (errno != EINTR)
            fail("accept");
    unsigned char b = (unsigned char)i, got;
    if (send(client, &b, 1, 0) != 1)
        fail("send");
    if (recv(server, &got, 1, 0) != 1 || got != b)
        fail("cycle %ld: the byte did not arrive", i);
    if (close(server) < 0 || close(client) < 0)
        fail("close");
    if (bound_once < 0 && (close(listener) < 0 || unlink(unix_path) < 0))
        fail("close and unlink the listener at %s", unix_path);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "unix_connect";
    bench_cleanup = unix_remove_path;
    long iters = argc == 4 ? atol(argv[1]) : 0;
    int runs = argc == 4 ? atoi(argv[2]) : 0;
    int rebind = argc == 4 && strcmp(argv[3], "bind") == 0;
    bench_tcp = argc == 4 && strcmp(argv[3], "tcp") == 0;
    if (iters < 1 || runs < 1 || runs > MAX_RUNS || (!rebind && !bench_tcp && strcmp(argv[3], "connect") != 0)) {
        fprintf(stderr, "usage: unix_connect ITERS RUNS<=%d bind|connect|tcp\n", MAX_RUNS);
        return 2;
    }
    if (!rebind)
        bound_once = unix_listener();
    start_watchdog("unix_connect: watchdog: not done after " STR(WATCHDOG_SECONDS) " s, giving up\n");
    long i = 0;
    for (; i < iters / 10 + 1; i++)
        cycle(i);
    double per_cycle[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long end = i + iters; i < end; i++)
            cycle(i);
        per_cycle[r] = (now_ns() - start) / iters;
    }
    if (bound_once >= 0)
        close(bound_once);
    unix_remove_path();
    qsort(per_cycle, runs, sizeof per_cycle[0], cmp_double);
    printf("%.0f ns\n", per_cycle[runs / 2]);
    return 0;
}
