/* Many processes on many System V objects at once, some SIGKILLed at random
 * (tests/tests/sysv_stress.rs, issue 18): QUEUES message queues, each with SENDERS senders and
 * RECEIVERS receivers, and SETS semaphore sets, each with SEMWORKERS workers taking a mutex
 * (semaphore 0) and a token (semaphore 1, also taken with the mutex in one semop) with
 * SEM_UNDO. About a tenth of the senders and semaphore workers are SIGKILLed at random moments.
 *
 * Usage: sysv_stress SEED
 * Prints "ok MS KILLED MESSAGES SECTIONS OURS OTHERS" (MS: milliseconds from the start line to
 * the last process done, queues drained; OURS: CPU milliseconds this program's processes used
 * in that time; OTHERS: CPU milliseconds other programs used on this program's CPUs meanwhile)
 * or "FAIL reason" with exit status 1.
 *
 * Checks: every message a sender was told was sent is received exactly once (the one a killed
 * sender was sending at most once), whole (its text is a function of its sender and number),
 * and each receiver sees each sender's messages in order; no message is received twice. No two
 * processes are ever inside a set's mutex at once unless the earlier one was killed there, and
 * once everybody is gone every set is back at its start values (SEM_UNDO gave back what killed
 * processes held), with no sleeper left. */

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QUEUES 50
#define SENDERS 3
#define RECEIVERS 2
#define SETS 50
#define SEMWORKERS 5
#define MSGS 300      /* per sender */
#define SECTIONS 300  /* per semaphore worker */
#define TOKENS 2      /* semaphore 1's start value */
#define NSEND (QUEUES * SENDERS)
#define NRECV (QUEUES * RECEIVERS)
#define NSEM (SETS * SEMWORKERS)
#define NPROC (NSEND + NRECV + NSEM)
#define MAXTEXT 600

struct shared {
    volatile int gate;
    /* CPU microseconds the processes used before the gate opened */
    volatile long before_gate;
    /* sender s: messages it was told were sent; the one it is sending (-1: none) */
    volatile int sent[NSEND];
    volatile int sending[NSEND];
    /* receipts per sender and message number (counted by receivers and the final drain) */
    volatile uint8_t got[NSEND][MSGS];
    volatile int bad; /* first failure code */
    volatile int bad_info[3];
    /* per set: who is inside the mutex (pid, 0: nobody), sections done */
    volatile pid_t inside[SETS];
    volatile long sections[SETS];
};

static struct shared *sh;
static int qid[QUEUES], sid[SETS];

struct msg {
    long mtype;
    int sender, n;
    unsigned char text[MAXTEXT];
};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void failure(int code, int a, int b, int c)
{
    if (__sync_bool_compare_and_swap(&sh->bad, 0, code)) {
        sh->bad_info[0] = a;
        sh->bad_info[1] = b;
        sh->bad_info[2] = c;
    }
}

/* Message n of sender s: its length and text are functions of (s, n); some fit the ring (96
 * bytes), most take the locked path. */
static size_t msg_len(int s, int n)
{
    return 8 + (size_t)((s * 131 + n * 37) % 4 == 0 ? 40 : 100 + (s * 7 + n * 13) % (MAXTEXT - 100));
}

static unsigned char msg_byte(int s, int n, size_t i)
{
    return (unsigned char)(s * 31 + n * 17 + i * 7);
}

static long cpu_us(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* Asleep until the start line, so that what the processes use from there on is their work. */
static void wait_gate(void)
{
    while (!sh->gate)
        syscall(SYS_futex, &sh->gate, FUTEX_WAIT, 0, NULL, NULL, 0);
    __sync_fetch_and_add(&sh->before_gate, cpu_us(RUSAGE_SELF));
}

/* CPU milliseconds spent, by anyone, on the CPUs this process may run on (/proc/stat: user,
 * nice, system, irq, softirq, steal; 10 ms ticks). */
static double busy_ms(void)
{
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine) < 0)
        return 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[512];
    double ticks = 0;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8];
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 9 &&
            CPU_ISSET(cpu, &mine))
            ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    }
    fclose(f);
    return ticks * 1000.0 / sysconf(_SC_CLK_TCK);
}

static void sender(int s)
{
    struct msg m;
    m.mtype = 1;
    m.sender = s;
    int q = s / SENDERS;
    wait_gate();
    for (int n = 0; n < MSGS; n++) {
        size_t len = msg_len(s, n);
        m.n = n;
        for (size_t i = 0; i < len - 8; i++)
            m.text[i] = msg_byte(s, n, i);
        sh->sending[s] = n;
        while (msgsnd(qid[q], &m, len, 0) < 0)
            if (errno != EINTR) {
                failure(1, s, n, errno);
                _exit(1);
            }
        sh->sent[s] = n + 1;
        sh->sending[s] = -1;
    }
    _exit(0);
}

/* Notes a received message; false if it is bad. last[] is this receiver's last number seen per
 * sender (-1: none; NULL for the final drain). */
static int note(struct msg *m, ssize_t r, int *last)
{
    int s = m->sender, n = m->n;
    if (r < 8 || s < 0 || s >= NSEND || n < 0 || n >= MSGS || (size_t)r != msg_len(s, n)) {
        failure(2, s, n, (int)r);
        return 0;
    }
    for (size_t i = 0; i < (size_t)r - 8; i++)
        if (m->text[i] != msg_byte(s, n, i)) {
            failure(3, s, n, (int)i);
            return 0;
        }
    if (__sync_fetch_and_add(&sh->got[s][n], 1) != 0) {
        failure(4, s, n, 0);
        return 0;
    }
    if (last && n <= last[s]) {
        failure(5, s, n, last[s]);
        return 0;
    }
    if (last)
        last[s] = n;
    return 1;
}

/* Receives until the stop message (sender -1) the parent queues after every sender is done. */
static void receiver(int k)
{
    int q = k / RECEIVERS;
    static int last[NSEND];
    for (int s = 0; s < NSEND; s++)
        last[s] = -1;
    struct msg m;
    wait_gate();
    for (;;) {
        ssize_t r = msgrcv(qid[q], &m, MAXTEXT + 8, 0, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            failure(6, k, errno, 0);
            _exit(1);
        }
        if (r == 8 && m.sender == -1)
            _exit(0);
        if (!note(&m, r, last))
            _exit(1);
    }
}

static int dead(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return !p || p[2] == 'Z' || p[2] == 'X';
}

static void semworker(int w)
{
    int set = w / SEMWORKERS;
    /* No system call inside the section (under the shim, one the shim does not serve is
     * trapped, which would make its sections longer than the kernel's). */
    pid_t me = getpid();
    wait_gate();
    for (int i = 0; i < SECTIONS; i++) {
        /* Every other section also takes a token, in the same semop. */
        struct sembuf take[2] = { { 0, -1, SEM_UNDO }, { 1, -1, SEM_UNDO } };
        struct sembuf give[2] = { { 1, 1, SEM_UNDO }, { 0, 1, SEM_UNDO } };
        int two = i % 2;
        while (semop(sid[set], take, two ? 2 : 1) < 0)
            if (errno != EINTR) {
                failure(7, w, errno, 0);
                _exit(1);
            }
        /* Only a holder killed inside may have left its pid (its exit may still be running
         * when SEM_UNDO has given the mutex back). */
        pid_t prev = sh->inside[set];
        for (int t = 0; prev != 0 && !dead(prev); t++) {
            if (t == 1000) {
                failure(8, set, prev, me);
                _exit(1);
            }
            usleep(1000);
        }
        sh->inside[set] = me;
        sh->sections[set]++;
        for (unsigned spin = rnd() % 256; spin > 0; spin--)
            __asm__ volatile("pause");
        sh->inside[set] = 0;
        while (semop(sid[set], two ? give : give + 1, two ? 2 : 1) < 0)
            if (errno != EINTR) {
                failure(9, w, errno, 0);
                _exit(1);
            }
    }
    _exit(0);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void cleanup(void)
{
    for (int q = 0; q < QUEUES; q++)
        msgctl(qid[q], IPC_RMID, NULL);
    for (int s = 0; s < SETS; s++)
        semctl(sid[s], 0, IPC_RMID);
}

#define FAIL(...)                                                                                \
    do {                                                                                         \
        printf("FAIL ");                                                                         \
        printf(__VA_ARGS__);                                                                     \
        printf("\n");                                                                            \
        cleanup();                                                                               \
        return 1;                                                                                \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sysv_stress SEED\n");
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 0) * 0x9e3779b97f4a7c15ULL | 1;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 2;
    for (int q = 0; q < QUEUES; q++)
        if ((qid[q] = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0)
            FAIL("msgget: %s", strerror(errno));
    for (int s = 0; s < SETS; s++) {
        if ((sid[s] = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600)) < 0)
            FAIL("semget: %s", strerror(errno));
        unsigned short init[2] = { 1, TOKENS };
        if (semctl(sid[s], 0, SETALL, init) < 0)
            FAIL("SETALL: %s", strerror(errno));
    }
    for (int s = 0; s < NSEND; s++)
        sh->sending[s] = -1;

    static pid_t pid[NPROC];
    fflush(NULL);
    for (int k = 0; k < NPROC; k++) {
        pid[k] = fork();
        if (pid[k] < 0)
            FAIL("fork: %s", strerror(errno));
        if (pid[k] == 0) {
            rng_state ^= (uint64_t)(k + 1) * 0x2545f4914f6cdd1dULL;
            if (k < NSEND)
                sender(k);
            else if (k < NSEND + NRECV)
                receiver(k - NSEND);
            else
                semworker(k - NSEND - NRECV);
        }
    }
    /* Victims: a tenth of the senders and semaphore workers, each killed at a random moment in
     * the first 300 ms. */
    static int victim[NPROC];
    static double kill_at[NPROC];
    int victims = 0;
    for (int k = 0; k < NPROC; k++)
        if ((k < NSEND || k >= NSEND + NRECV) && rnd() % 10 == 0) {
            victim[victims] = k;
            kill_at[victims++] = (double)(rnd() % 300000) / 1000.0;
        }
    double busy_start = busy_ms();
    long self_start = cpu_us(RUSAGE_SELF);
    double start = now_ms();
    sh->gate = 1;
    syscall(SYS_futex, &sh->gate, FUTEX_WAKE, NPROC, NULL, NULL, 0);
    int killed = 0;
    for (int v = 0; v < victims;) {
        double t = now_ms() - start;
        if (t >= kill_at[v]) {
            if (kill(pid[victim[v]], SIGKILL) == 0)
                killed++;
            v++;
        } else {
            usleep(200);
        }
    }
    /* Senders and semaphore workers end by themselves (or were killed). */
    for (int k = 0; k < NPROC; k++) {
        if (k >= NSEND && k < NSEND + NRECV)
            continue;
        int st;
        if (waitpid(pid[k], &st, 0) != pid[k])
            FAIL("waitpid: %s", strerror(errno));
        if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
            FAIL("process %d exited with %d (failure %d: %d %d %d)", k, WEXITSTATUS(st), sh->bad,
                 sh->bad_info[0], sh->bad_info[1], sh->bad_info[2]);
    }
    /* One stop message per receiver, after every message sent. */
    for (int k = 0; k < NRECV; k++) {
        struct msg stop = { .mtype = 1, .sender = -1, .n = 0 };
        if (msgsnd(qid[k / RECEIVERS], &stop, 8, 0) < 0)
            FAIL("msgsnd(stop): %s", strerror(errno));
    }
    for (int k = NSEND; k < NSEND + NRECV; k++) {
        int st;
        if (waitpid(pid[k], &st, 0) != pid[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAIL("receiver %d failed (failure %d: %d %d %d)", k - NSEND, sh->bad, sh->bad_info[0],
                 sh->bad_info[1], sh->bad_info[2]);
    }
    /* What receivers left (messages sent after they last looked). */
    struct msg m;
    for (int q = 0; q < QUEUES; q++) {
        ssize_t r;
        while ((r = msgrcv(qid[q], &m, MAXTEXT + 8, 0, IPC_NOWAIT)) >= 0)
            if (!note(&m, r, NULL))
                break;
    }
    double ms = now_ms() - start;
    double ours = (cpu_us(RUSAGE_CHILDREN) - sh->before_gate + cpu_us(RUSAGE_SELF) - self_start) / 1000.0;
    double others = busy_ms() - busy_start - ours;
    if (sh->bad)
        FAIL("failure %d: %d %d %d", sh->bad, sh->bad_info[0], sh->bad_info[1], sh->bad_info[2]);
    long messages = 0;
    for (int s = 0; s < NSEND; s++)
        for (int n = 0; n < MSGS; n++) {
            int want = n < sh->sent[s];
            int maybe = n == sh->sending[s];
            if (sh->got[s][n] > 1 || (want && !sh->got[s][n]) || (!want && !maybe && sh->got[s][n]))
                FAIL("sender %d message %d: received %d times (sent %d, sending %d)", s, n, sh->got[s][n],
                     sh->sent[s], sh->sending[s]);
            messages += sh->got[s][n];
        }
    long sections = 0;
    for (int s = 0; s < SETS; s++) {
        sections += sh->sections[s];
        for (int num = 0; num < 2; num++) {
            int v = semctl(sid[s], num, GETVAL), want = num ? TOKENS : 1;
            int ncnt = semctl(sid[s], num, GETNCNT), zcnt = semctl(sid[s], num, GETZCNT);
            if (v != want || ncnt != 0 || zcnt != 0)
                FAIL("set %d semaphore %d: value %d (want %d), ncnt %d, zcnt %d", s, num, v, want, ncnt, zcnt);
        }
    }
    cleanup();
    printf("ok %.0f %d %ld %ld %.0f %.0f\n", ms, killed, messages, sections, ours, others > 0 ? others : 0);
    return 0;
}
