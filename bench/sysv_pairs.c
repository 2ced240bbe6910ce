/* Many independent pairs of processes at once, each pair on its own System V object, more
 * processes than CPUs: what per-object locking is for (issue 18).
 *
 *   sysv_pairs sem PAIRS ITERS RUNS   each pair ping-pongs ITERS times through two semaphores of
 *                                     its own set; prints round trips per second (all pairs)
 *   sysv_pairs msg PAIRS ITERS RUNS SIZE   each pair has its own queue: one process sends ITERS
 *                                     SIZE-byte messages, the other receives them; prints
 *                                     messages per second (all pairs)
 *
 * Every process of a run is forked first and waits at a start line (a kernel-free gate: a word
 * in an anonymous shared mapping, polled with sched_yield), so the timed part is the IPC alone,
 * from the gate's opening to the last process's exit. Prints the median of RUNS runs. The
 * placement is the caller's (taskset): all processes share the CPUs it allows.
 *
 * Checks: a semaphore round trip advances a per-pair counter in shared memory that each side
 * checks on its turn (a semop that returned without waiting shows up out of step); each message
 * carries its number, checked in order by the receiver, so a lost, duplicated or reordered
 * message fails the run; at the end every set is at 0 and every queue empty. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define MAX_PAIRS 256

struct shared {
    volatile int gate;
    volatile long counter[MAX_PAIRS];
};

static struct shared *sh;
static int ids[MAX_PAIRS];
static int npairs;
static int is_msg;

static void remove_objects(void)
{
    for (int p = 0; p < npairs; p++)
        if (ids[p] >= 0) {
            if (is_msg)
                msgctl(ids[p], IPC_RMID, NULL);
            else
                semctl(ids[p], 0, IPC_RMID);
            ids[p] = -1;
        }
}

static void wait_gate(int run)
{
    while (sh->gate != run)
        sched_yield();
}

static void semop1(int id, unsigned short num, short delta)
{
    struct sembuf sb = { .sem_num = num, .sem_op = delta, .sem_flg = 0 };
    while (semop(id, &sb, 1) < 0)
        if (errno != EINTR)
            fail("semop(sem %u, %d)", num, delta);
}

/* Pair p's first process: 2i -> 2i+1, raises 0, waits on 1. */
static void sem_ping(int p, long iters)
{
    for (long i = 0; i < iters; i++) {
        if (sh->counter[p] != 2 * i)
            fail("pair %d, trip %ld: counter %ld, want %ld", p, i, sh->counter[p], 2 * i);
        sh->counter[p] = 2 * i + 1;
        semop1(ids[p], 0, 1);
        semop1(ids[p], 1, -1);
    }
}

/* Its second: waits on 0, 2i+1 -> 2i+2, raises 1. */
static void sem_pong(int p, long iters)
{
    for (long i = 0; i < iters; i++) {
        semop1(ids[p], 0, -1);
        if (sh->counter[p] != 2 * i + 1)
            fail("pair %d, trip %ld: counter %ld on waking, want %ld", p, i, sh->counter[p], 2 * i + 1);
        sh->counter[p] = 2 * i + 2;
        semop1(ids[p], 1, 1);
    }
}

struct msg {
    long mtype;
    long n;
    char pad[8192];
};

static void msg_send(int p, long iters, size_t size)
{
    static struct msg m;
    m.mtype = 1;
    for (long i = 0; i < iters; i++) {
        m.n = i;
        while (msgsnd(ids[p], &m, size, 0) < 0)
            if (errno != EINTR)
                fail("pair %d: msgsnd", p);
    }
}

static void msg_recv(int p, long iters, size_t size)
{
    static struct msg m;
    for (long i = 0; i < iters; i++) {
        ssize_t r;
        while ((r = msgrcv(ids[p], &m, sizeof m - sizeof m.mtype, 0, 0)) < 0)
            if (errno != EINTR)
                fail("pair %d: msgrcv", p);
        if ((size_t)r != size || m.n != i)
            fail("pair %d: message %ld: got %zd bytes, number %ld", p, i, r, m.n);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sysv_pairs sem PAIRS ITERS RUNS | sysv_pairs msg PAIRS ITERS RUNS SIZE(8..8192)"
            " (PAIRS <= %d, RUNS <= %d)\n",
            MAX_PAIRS, MAX_RUNS);
    exit(2);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "sysv_pairs";
    bench_cleanup = remove_objects;
    if (argc < 5)
        usage();
    is_msg = strcmp(argv[1], "msg") == 0;
    if (!is_msg && strcmp(argv[1], "sem") != 0)
        usage();
    npairs = atoi(argv[2]);
    long iters = atol(argv[3]);
    int runs = atoi(argv[4]);
    size_t size = is_msg && argc == 6 ? (size_t)atol(argv[5]) : 0;
    if (npairs < 1 || npairs > MAX_PAIRS || iters < 1 || runs < 1 || runs > MAX_RUNS ||
        argc != (is_msg ? 6 : 5) || (is_msg && (size < sizeof(long) || size > 8192)))
        usage();
    for (int p = 0; p < npairs; p++)
        ids[p] = -1;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        fail("mmap");
    for (int p = 0; p < npairs; p++) {
        ids[p] = is_msg ? msgget(IPC_PRIVATE, IPC_CREAT | 0600) : semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
        if (ids[p] < 0)
            fail(is_msg ? "msgget" : "semget");
    }
    /* More processes than CPUs on a machine others share: a longer watchdog than bench.h's. */
    start_watchdog("sysv_pairs: watchdog: not done after 120 s (lost wake-up?), giving up\n");
    alarm(120);

    double rate[MAX_RUNS];
    for (int r = 0; r <= runs; r++) { /* run 0 warms up */
        long n = r == 0 ? iters / 10 + 1 : iters;
        sh->gate = -1;
        for (int p = 0; p < npairs; p++)
            sh->counter[p] = 0;
        fflush(NULL);
        pid_t pids[2 * MAX_PAIRS];
        for (int k = 0; k < 2 * npairs; k++) {
            pids[k] = fork();
            if (pids[k] < 0)
                fail("fork");
            if (pids[k] == 0) {
                bench_role = k % 2 ? "second" : "first";
                start_watchdog("sysv_pairs: child: watchdog: not done after 120 s, giving up\n");
                alarm(120);
                wait_gate(r);
                int p = k / 2;
                if (is_msg)
                    k % 2 ? msg_recv(p, n, size) : msg_send(p, n, size);
                else
                    k % 2 ? sem_pong(p, n) : sem_ping(p, n);
                _exit(0);
            }
        }
        double start = now_ns();
        sh->gate = r;
        for (int k = 0; k < 2 * npairs; k++) {
            int status;
            if (waitpid(pids[k], &status, 0) != pids[k])
                fail("waitpid");
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail("a child failed (wait status %#x)", status);
        }
        if (r > 0)
            rate[r - 1] = npairs * n / ((now_ns() - start) / 1e9);
        for (int p = 0; p < npairs; p++) {
            if (is_msg) {
                struct msqid_ds ds;
                if (msgctl(ids[p], IPC_STAT, &ds) < 0)
                    fail("msgctl(IPC_STAT)");
                if (ds.msg_qnum != 0)
                    fail("pair %d: %lu messages left", p, (unsigned long)ds.msg_qnum);
            } else if (semctl(ids[p], 0, GETVAL) != 0 || semctl(ids[p], 1, GETVAL) != 0) {
                fail("pair %d: semaphores not back at 0", p);
            }
        }
    }
    remove_objects();
    qsort(rate, runs, sizeof rate[0], cmp_double);
    printf("%.0f %s\n", rate[runs / 2], is_msg ? "msgs/s" : "trips/s");
    return 0;
}
