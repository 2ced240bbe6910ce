/* Semaphore ping-pong between two processes through two semaphores of one set: the parent
 * raises semaphore 0 and waits on semaphore 1; the child waits on semaphore 0 and raises
 * semaphore 1: one round trip. Prints the median over RUNS batches of ITERS round trips as
 * "<ns per round trip> ns".
 *
 * Usage: sem_pingpong ITERS RUNS PARENT_CPU CHILD_CPU
 * Each process pins itself with sched_setaffinity (taskset would put both on the same set):
 * "0 0" puts both ends on CPU 0, "0 1" splits them. A CPU of -1 leaves that process unpinned.
 *
 * The semaphores must really order the two processes, or the run fails: they share a counter
 * (an anonymous shared mapping, not System V memory) that each side checks and advances only
 * while it holds its turn, so a semop that returned without waiting shows up as a counter out of
 * step. At the end both values must be 0 with no waiters, and sempid must name the process that
 * operated last on each semaphore (the child on 0, the parent on 1). */
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
#include <sys/sem.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

#define STOP (-1L)

static int semid = -1;
static volatile long *counter;

static void remove_object(void)
{
    if (semid >= 0)
        semctl(semid, 0, IPC_RMID);
}

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "sem_pingpong: watchdog: not done after 30 s (lost wake-up?), giving up\n";
    (void)!write(2, msg, sizeof msg - 1);
    if (getpid() == bench_owner)
        remove_object();
    _exit(3);
}

static void pin(int cpu)
{
    if (pin_to(cpu) < 0)
        fail("sched_setaffinity(CPU %d)", cpu);
}

static void op(unsigned short num, short delta)
{
    struct sembuf sb = { .sem_num = num, .sem_op = delta, .sem_flg = 0 };
    int rc;
    do
        rc = semop(semid, &sb, 1);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        fail("semop(sem %u, %d)", num, delta);
}

static void expect(int num, int cmd, const char *name, int want)
{
    int got = semctl(semid, num, cmd);
    if (got != want)
        fail("semctl(%d, %s) = %d, want %d", num, name, got, want);
}

/* The parent's half of round trip i: the counter goes 2i -> 2i+1 (parent) -> 2i+2 (child). */
static void trip(long i)
{
    if (*counter != 2 * i)
        fail("round trip %ld: counter %ld before sending, want %ld", i, *counter, 2 * i);
    *counter = 2 * i + 1;
    op(0, 1);
    op(1, -1);
    if (*counter != 2 * i + 2)
        fail("round trip %ld: counter %ld after the answer, want %ld", i, *counter, 2 * i + 2);
}

static void child(long total)
{
    for (long i = 0;; i++) {
        op(0, -1);
        long c = *counter;
        if (c == STOP) {
            if (i != total)
                fail("stopped after %ld round trips, want %ld", i, total);
            _exit(0);
        }
        if (c != 2 * i + 1)
            fail("round trip %ld: counter %ld on waking, want %ld", i, c, 2 * i + 1);
        *counter = 2 * i + 2;
        op(1, 1);
    }
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "sem_pingpong";
    bench_role = "parent";
    bench_cleanup = remove_object;
    if (argc != 5) {
        fprintf(stderr, "usage: sem_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    int parent_cpu = atoi(argv[3]), child_cpu = atoi(argv[4]);
    if (iters < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: sem_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    long warmup = iters / 10 + 1;
    long total = warmup + iters * runs;

    counter = mmap(NULL, sizeof *counter, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counter == MAP_FAILED)
        fail("mmap");
    semid = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    if (semid < 0)
        fail("semget");
    /* A new set starts at 0 on the kernel; check it, since the protocol relies on it. */
    expect(0, GETVAL, "GETVAL", 0);
    expect(1, GETVAL, "GETVAL", 0);

    fflush(NULL);
    signal(SIGALRM, watchdog_fired);
    alarm(WATCHDOG_SECONDS);
    pin(parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        bench_role = "child";
        alarm(WATCHDOG_SECONDS); /* fork cleared the alarm */
        pin(child_cpu);
        child(total);
    }

    double per_trip[MAX_RUNS];
    long i = 0;
    for (; i < warmup; i++)
        trip(i);
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long end = i + iters; i < end; i++)
            trip(i);
        per_trip[r] = (now_ns() - start) / iters;
    }
    *counter = STOP;
    op(0, 1);

    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    expect(0, GETVAL, "GETVAL", 0);
    expect(1, GETVAL, "GETVAL", 0);
    expect(0, GETNCNT, "GETNCNT", 0);
    expect(1, GETNCNT, "GETNCNT", 0);
    expect(0, GETPID, "GETPID", pid);
    expect(1, GETPID, "GETPID", bench_owner);
    if (semctl(semid, 0, IPC_RMID) < 0)
        fail("semctl(IPC_RMID)");
    semid = -1;

    qsort(per_trip, runs, sizeof per_trip[0], cmp_double);
    printf("%.0f ns\n", per_trip[runs / 2]);
    return 0;
}
