/* Uncontended semop: one process takes and gives back a semaphore of value 1 (semop -1, then
 * semop +1), with or without SEM_UNDO. Prints the median over RUNS runs of ITERS pairs as
 * "<ns per semop> ns" (two semops per pair).
 *
 * Usage: sem_op ITERS RUNS plain|undo
 *
 * The semantics are checked around the timed loops, so an implementation that does not really
 * keep the semaphore cannot report a fast number: the value is 0 while held and 1 after each run,
 * a second take while held fails with EAGAIN under IPC_NOWAIT, sempid names the last caller, and
 * a child that exits while holding the semaphore leaves it at 0 without SEM_UNDO and gives it back
 * (value 1) with SEM_UNDO, also after running the timed loop itself (the undo adjustments of
 * thousands of ops must cancel out exactly). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

static int semid = -1;

static void remove_object(void)
{
    if (semid >= 0)
        semctl(semid, 0, IPC_RMID);
}

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "sem_op: watchdog: not done after 30 s, giving up\n";
    (void)!write(2, msg, sizeof msg - 1);
    if (getpid() == bench_owner)
        remove_object();
    _exit(3);
}

static void op(short delta, short flg)
{
    struct sembuf sb = { .sem_num = 0, .sem_op = delta, .sem_flg = flg };
    if (semop(semid, &sb, 1) < 0)
        fail("semop(%d, flags %#x)", delta, flg);
}

static void expect(int cmd, const char *name, int want)
{
    int got = semctl(semid, 0, cmd);
    if (got != want)
        fail("semctl(%s) = %d, want %d", name, got, want);
}

/* Runs ITERS take/give pairs. */
static void loop(long iters, short flg)
{
    for (long i = 0; i < iters; i++) {
        op(-1, flg);
        op(1, flg);
    }
}

/* A child takes the semaphore (after `warm` pairs of its own) and exits holding it; returns its
 * pid. */
static pid_t child_exits_holding(long warm, short flg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        loop(warm, flg);
        op(-1, flg);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    return pid;
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "sem_op";
    bench_cleanup = remove_object;
    if (argc != 4 || (strcmp(argv[3], "plain") != 0 && strcmp(argv[3], "undo") != 0)) {
        fprintf(stderr, "usage: sem_op ITERS RUNS<=%d plain|undo\n", MAX_RUNS);
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    int undo = strcmp(argv[3], "undo") == 0;
    short flg = undo ? SEM_UNDO : 0;
    if (iters < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: sem_op ITERS RUNS<=%d plain|undo\n", MAX_RUNS);
        return 2;
    }
    signal(SIGALRM, watchdog_fired);
    alarm(WATCHDOG_SECONDS);

    semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    if (semid < 0)
        fail("semget");
    if (semctl(semid, 0, SETVAL, 1) < 0)
        fail("semctl(SETVAL)");

    /* Held: the value is 0 and a second take cannot succeed. */
    op(-1, flg);
    expect(GETVAL, "GETVAL", 0);
    struct sembuf again = { .sem_num = 0, .sem_op = -1, .sem_flg = IPC_NOWAIT | flg };
    errno = 0;
    if (semop(semid, &again, 1) != -1 || errno != EAGAIN)
        fail("second take of a held semaphore did not fail with EAGAIN");
    op(1, flg);
    expect(GETVAL, "GETVAL", 1);

    loop(iters / 10 + 1, flg); /* warm up */
    double per_op[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        loop(iters, flg);
        per_op[r] = (now_ns() - start) / (2.0 * iters);
        expect(GETVAL, "GETVAL", 1);
        expect(GETPID, "GETPID", bench_owner);
    }

    /* A child that exits holding the semaphore: with SEM_UNDO the exit gives it back. */
    pid_t child = child_exits_holding(undo ? iters / 10 + 1 : 0, flg);
    expect(GETVAL, "GETVAL after a child exited holding the semaphore", undo ? 1 : 0);
    expect(GETPID, "GETPID after the child exited", child);
    if (!undo && semctl(semid, 0, SETVAL, 1) < 0)
        fail("semctl(SETVAL)");
    expect(GETNCNT, "GETNCNT", 0);

    if (semctl(semid, 0, IPC_RMID) < 0)
        fail("semctl(IPC_RMID)");
    semid = -1;
    qsort(per_op, runs, sizeof per_op[0], cmp_double);
    printf("%.1f ns\n", per_op[runs / 2]);
    return 0;
}
