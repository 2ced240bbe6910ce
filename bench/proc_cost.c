/* What a process costs apart from its calls (issue 18): PROCS forked processes wait on a start
 * line, then either exit at once ("exit") or first make what a System V worker's first calls
 * are ("sysv": a SEM_UNDO take and give of one of 50 sets' semaphore, a 200-byte send and
 * receive on one of 50 queues), then exit. Prints the median over RUNS runs of the CPU time the
 * processes used from the start line to their reaping, all of them: "<ms> ms". Their forks are
 * not in it (they are done before the start line).
 *
 * Usage: proc_cost PROCS RUNS exit|sysv
 *
 * Checked: every process's calls succeed, each message comes back whole, and once all are gone
 * every set is back at 1 (their SEM_UNDO) and every queue empty. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define OBJECTS 50
#define MSG_TEXT 200

static int sid[OBJECTS], qid[OBJECTS];

/* The start line, and the CPU microseconds the processes had used when they crossed it. */
struct shared {
    volatile int gate;
    volatile long before;
};

static void remove_objects(void)
{
    for (int i = 0; i < OBJECTS; i++) {
        if (sid[i] >= 0)
            semctl(sid[i], 0, IPC_RMID);
        if (qid[i] >= 0)
            msgctl(qid[i], IPC_RMID, NULL);
    }
}

static long cpu_us(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

struct msg {
    long mtype;
    char text[MSG_TEXT];
};

/* One process: the start line, then its calls (`sysv`) on objects `k`. */
static void process(struct shared *sh, int k, int sysv)
{
    bench_role = "process";
    while (!sh->gate)
        syscall(SYS_futex, &sh->gate, FUTEX_WAIT, 0, NULL, NULL, 0);
    __sync_fetch_and_add(&sh->before, cpu_us(RUSAGE_SELF));
    if (!sysv)
        _exit(0);
    int o = k % OBJECTS;
    struct sembuf take = { 0, -1, SEM_UNDO }, give = { 0, 1, SEM_UNDO };
    if (semop(sid[o], &take, 1) < 0 || semop(sid[o], &give, 1) < 0)
        fail("semop");
    struct msg m = { .mtype = 1 + k };
    for (int i = 0; i < MSG_TEXT; i++)
        m.text[i] = (char)(k + i);
    if (msgsnd(qid[o], &m, MSG_TEXT, 0) < 0)
        fail("msgsnd");
    memset(m.text, 0, MSG_TEXT);
    if (msgrcv(qid[o], &m, MSG_TEXT, 1 + k, 0) != MSG_TEXT)
        fail("msgrcv");
    for (int i = 0; i < MSG_TEXT; i++)
        if (m.text[i] != (char)(k + i))
            fail("message %d came back changed at byte %d", k, i);
    _exit(0);
}

/* One run: milliseconds of CPU the processes used from the start line to their reaping. */
static double run(struct shared *sh, int procs, int sysv)
{
    sh->gate = 0;
    sh->before = 0;
    long reaped_before = cpu_us(RUSAGE_CHILDREN);
    for (int k = 0; k < procs; k++) {
        pid_t pid = fork();
        if (pid < 0)
            fail("fork");
        if (pid == 0)
            process(sh, k, sysv);
    }
    /* Every process waiting on the line. */
    usleep(200000);
    sh->gate = 1;
    syscall(SYS_futex, &sh->gate, FUTEX_WAKE, procs, NULL, NULL, 0);
    for (int k = 0; k < procs; k++) {
        int st;
        if (wait(&st) < 0)
            fail("wait");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("a process failed (status %#x)", st);
    }
    for (int i = 0; i < OBJECTS; i++) {
        struct msqid_ds ds;
        if (semctl(sid[i], 0, GETVAL) != 1 || msgctl(qid[i], IPC_STAT, &ds) < 0 || ds.msg_qnum != 0)
            fail("object %d not back at its start (semaphore %d)", i, semctl(sid[i], 0, GETVAL));
    }
    return (double)(cpu_us(RUSAGE_CHILDREN) - reaped_before - sh->before) / 1000.0;
}

int main(int argc, char **argv)
{
    bench_name = "proc_cost";
    bench_owner = getpid();
    bench_cleanup = remove_objects;
    if (argc != 4 || (strcmp(argv[3], "exit") && strcmp(argv[3], "sysv"))) {
        fprintf(stderr, "usage: proc_cost PROCS RUNS exit|sysv\n");
        return 2;
    }
    int procs = atoi(argv[1]), runs = atoi(argv[2]), sysv = !strcmp(argv[3], "sysv");
    if (procs < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "proc_cost: PROCS >= 1, RUNS 1-%d\n", MAX_RUNS);
        return 2;
    }
    for (int i = 0; i < OBJECTS; i++)
        sid[i] = qid[i] = -1;
    for (int i = 0; i < OBJECTS; i++) {
        if ((sid[i] = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)) < 0 || semctl(sid[i], 0, SETVAL, 1) < 0)
            fail("semget");
        if ((qid[i] = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0)
            fail("msgget");
    }
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        fail("mmap");
    double ms[MAX_RUNS];
    for (int r = 0; r < runs; r++)
        ms[r] = run(sh, procs, sysv);
    remove_objects();
    qsort(ms, runs, sizeof ms[0], cmp_double);
    printf("%.1f ms\n", ms[runs / 2]);
    return 0;
}
