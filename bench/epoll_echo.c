/* An epoll echo server over AF_UNIX: one server process (a listener and every accepted connection
 * in one level-triggered epoll set) and CLIENTS client processes, each with its own epoll set over
 * its share of CONNS connections. A round sends one SIZE-byte message on every connection of a
 * client and waits until each came back, checked byte for byte. Prints the median over RUNS runs
 * of ROUNDS rounds as "<round trips per second> msgs/s" (all clients together).
 *
 * Usage: epoll_echo CONNS CLIENTS ROUNDS SIZE RUNS SERVER_CPU CLIENT_CPU
 * (a CPU of -1 leaves that side unpinned). The coordinator (the parent) only starts and times the
 * runs through shared memory. A lost, duplicated or corrupted byte fails the run. */
#ifndef _GNU_SOURCE /* also given by the tests' compiler command */
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include "unix.h"

#define MAX_SIZE 4096
#define EVENTS 1024

struct shared {
    volatile int go;       /* run number the clients may start */
    volatile int done;     /* clients that finished the current run */
    volatile int ready;    /* clients connected */
    volatile int quit;
};

static struct shared *sh;
static long conns, clients, rounds, size;

/* The message of connection `c` of client `k` in round `r`: a header and bytes derived from it. */
static void message(unsigned char *m, long k, long c, long r)
{
    uint64_t h = (uint64_t)k << 48 | (uint64_t)c << 24 | (uint64_t)r;
    for (long i = 0; i < size; i++)
        m[i] = (unsigned char)(h >> (i % 8 * 8)) ^ (unsigned char)(i * 131);
}

static void nonblocking(int fd)
{
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        fail("fcntl(O_NONBLOCK)");
}

/* Per accepted connection: what is still to be written back. */
struct conn {
    int len, off;
    unsigned char buf[MAX_SIZE * 4];
};

static void server(int listener)
{
    bench_role = "server";
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener}, evs[EVENTS];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) < 0)
        fail("epoll");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    struct conn **tab = calloc(rl.rlim_cur, sizeof *tab);
    if (!tab)
        fail("calloc");
    for (;;) {
        int n = epoll_wait(ep, evs, EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if ((size_t)c >= rl.rlim_cur || !(tab[c] = calloc(1, sizeof **tab)))
                        fail("accept: fd %d", c);
                    ev = (struct epoll_event){.events = EPOLLIN, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
                        fail("epoll_ctl(ADD %d)", c);
                }
                if (errno != EAGAIN)
                    fail("accept4");
                continue;
            }
            struct conn *s = tab[fd];
            if (s->len == 0) {
                ssize_t k = read(fd, s->buf, sizeof s->buf);
                if (k == 0 || (k < 0 && errno == ECONNRESET)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    close(fd);
                    free(s);
                    tab[fd] = NULL;
                    continue;
                }
                if (k < 0) {
                    if (errno == EAGAIN)
                        continue;
                    fail("read");
                }
                s->len = (int)k;
                s->off = 0;
            }
            while (s->off < s->len) {
                ssize_t k = write(fd, s->buf + s->off, s->len - s->off);
                if (k < 0 && errno == EAGAIN)
                    break;
                if (k < 0)
                    fail("write");
                s->off += (int)k;
            }
            int want = s->off < s->len ? EPOLLOUT : EPOLLIN;
            if (s->off == s->len)
                s->len = 0;
            if (!(evs[i].events & want) || want == EPOLLOUT) {
                ev = (struct epoll_event){.events = want, .data.fd = fd};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
                    fail("epoll_ctl(MOD)");
            }
        }
    }
}

static void client(long k)
{
    static char role[32];
    snprintf(role, sizeof role, "client %ld", k);
    bench_role = role;
    long mine = conns / clients + (k < conns % clients);
    int *fds = calloc(mine, sizeof *fds);
    long *got = calloc(mine, sizeof *got);
    unsigned char *want = malloc(MAX_SIZE), *buf = malloc(MAX_SIZE);
    int ep = epoll_create1(0);
    if (!fds || !got || !want || !buf || ep < 0)
        fail("setup");
    for (long c = 0; c < mine; c++) {
        fds[c] = unix_connect();
        nonblocking(fds[c]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[c], &ev) < 0)
            fail("epoll_ctl(ADD)");
    }
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    struct epoll_event evs[EVENTS];
    for (int run = 1;; run++) {
        while (sh->go < run && !sh->quit)
            usleep(100);
        if (sh->quit)
            break;
        for (long r = 0; r < rounds; r++) {
            for (long c = 0; c < mine; c++) {
                message(want, k, c, r);
                if (write(fds[c], want, size) != size)
                    fail("write of round %ld on connection %ld", r, c);
                got[c] = 0;
            }
            long left = mine;
            while (left > 0) {
                int n = epoll_wait(ep, evs, EVENTS, 10000);
                if (n == 0)
                    fail("round %ld: %ld answers missing after 10 s", r, left);
                if (n < 0 && errno != EINTR)
                    fail("epoll_wait");
                for (int i = 0; i < n; i++) {
                    long c = (long)evs[i].data.u64;
                    ssize_t m = read(fds[c], buf, size - got[c]);
                    if (m < 0 && errno == EAGAIN)
                        continue;
                    if (m <= 0)
                        fail("read on connection %ld", c);
                    message(want, k, c, r);
                    if (memcmp(buf, want + got[c], m) != 0)
                        fail("connection %ld, round %ld: wrong bytes", c, r);
                    got[c] += m;
                    if (got[c] == size)
                        left--;
                    else if (got[c] > size)
                        fail("connection %ld: too many bytes", c);
                }
            }
        }
        __atomic_add_fetch(&sh->done, 1, __ATOMIC_SEQ_CST);
    }
    for (long c = 0; c < mine; c++)
        close(fds[c]);
    _exit(0);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "epoll_echo";
    bench_cleanup = unix_remove_path;
    if (argc != 8) {
        fprintf(stderr, "usage: epoll_echo CONNS CLIENTS ROUNDS SIZE RUNS SERVER_CPU CLIENT_CPU\n");
        return 2;
    }
    conns = atol(argv[1]);
    clients = atol(argv[2]);
    rounds = atol(argv[3]);
    size = atol(argv[4]);
    int runs = atoi(argv[5]), server_cpu = atoi(argv[6]), client_cpu = atoi(argv[7]);
    if (conns < 1 || clients < 1 || clients > conns || rounds < 1 || size < 1 || size > MAX_SIZE ||
        runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "epoll_echo: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)conns + 64 > rl.rlim_cur)
        fail("RLIMIT_NOFILE %ld is too low for %ld connections", (long)rl.rlim_cur, conns);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        fail("mmap");
    struct sockaddr_un a = unix_addr();
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) < 0 || listen(listener, 4096) < 0)
        fail("listener at %s", a.sun_path);
    nonblocking(listener);
    pid_t srv = fork();
    if (srv < 0)
        fail("fork");
    if (srv == 0) {
        if (pin_to(server_cpu) < 0)
            fail("pin");
        server(listener);
    }
    close(listener);
    pid_t *kids = calloc(clients, sizeof *kids);
    for (long k = 0; k < clients; k++) {
        if ((kids[k] = fork()) < 0)
            fail("fork");
        if (kids[k] == 0) {
            if (pin_to(client_cpu) < 0)
                fail("pin");
            client(k);
        }
    }
    start_watchdog("epoll_echo: watchdog: not done after " STR(WATCHDOG_SECONDS) " s, giving up\n");
    while (sh->ready < clients)
        usleep(1000);
    double rate[MAX_RUNS];
    for (int run = 1; run <= runs; run++) {
        sh->done = 0;
        double start = now_ns();
        __atomic_store_n(&sh->go, run, __ATOMIC_SEQ_CST);
        while (sh->done < clients) {
            int st;
            for (long k = 0; k < clients; k++)
                if (waitpid(kids[k], &st, WNOHANG) == kids[k])
                    fail("client %ld ended early", k);
            if (waitpid(srv, &st, WNOHANG) == srv)
                fail("the server ended early");
            usleep(200);
        }
        rate[run - 1] = conns * rounds / ((now_ns() - start) / 1e9);
    }
    sh->quit = 1;
    for (long k = 0; k < clients; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("client %ld failed", k);
    }
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    unix_remove_path();
    qsort(rate, runs, sizeof rate[0], cmp_double);
    printf("%.0f msgs/s\n", rate[runs / 2]);
    return 0;
}
