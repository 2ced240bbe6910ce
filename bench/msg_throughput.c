/* Message queue throughput: the parent sends ITERS SIZE-byte messages per batch, the child
 * receives them and answers each batch with one message; prints the median over RUNS
 * batches as "<messages per second> msgs/s". The queue blocks the sender when it is full,
 * as the kernel's does (msg_qbytes = msgmnb).
 *
 * Usage: msg_throughput SIZE ITERS RUNS PARENT_CPU CHILD_CPU
 * Every message carries its number, which the child checks: a lost, duplicated or reordered
 * message fails the run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include "bench.h"

static int qid = -1;
static size_t size;

struct msg {
    long mtype;
    long n;
    char pad[8192];
};

static void remove_object(void)
{
    if (qid >= 0)
        msgctl(qid, IPC_RMID, NULL);
}

static void send(long type, long n, size_t len)
{
    static struct msg m;
    m.mtype = type;
    m.n = n;
    while (msgsnd(qid, &m, len, 0) < 0)
        if (errno != EINTR)
            fail("msgsnd(type %ld)", type);
}

static long recv(long type, size_t len)
{
    static struct msg m;
    ssize_t r;
    while ((r = msgrcv(qid, &m, sizeof m - sizeof m.mtype, type, 0)) < 0)
        if (errno != EINTR)
            fail("msgrcv(type %ld)", type);
    if ((size_t)r != len)
        fail("msgrcv(type %ld) = %zd bytes, want %zu", type, r, len);
    return m.n;
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "msg_throughput";
    bench_role = "parent";
    bench_cleanup = remove_object;
    if (argc != 6) {
        fprintf(stderr, "usage: msg_throughput SIZE ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    size = atol(argv[1]);
    long iters = atol(argv[2]);
    int runs = atoi(argv[3]);
    int parent_cpu = atoi(argv[4]), child_cpu = atoi(argv[5]);
    if (iters < 1 || runs < 1 || runs > MAX_RUNS || size < sizeof(long) || size > 8192) {
        fprintf(stderr, "usage: msg_throughput SIZE(8..8192) ITERS RUNS<=%d PARENT_CPU CHILD_CPU\n", MAX_RUNS);
        return 2;
    }
    qid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (qid < 0)
        fail("msgget");
    fflush(NULL);
    start_watchdog("msg_throughput: watchdog: not done after 30 s (lost message?), giving up\n");
    pin_or_exit("msg_throughput", "parent", parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        bench_role = "child";
        start_watchdog("msg_throughput: child: watchdog: not done after 30 s, giving up\n");
        pin_or_exit("msg_throughput", "child", child_cpu);
        long next = 0;
        for (int r = 0; r <= runs; r++) {
            for (long i = 0; i < iters; i++, next++) {
                long n = recv(1, size);
                if (n != next)
                    fail("message %ld: got %ld", next, n);
            }
            send(2, r, sizeof(long));
        }
        _exit(0);
    }
    double rate[MAX_RUNS];
    long n = 0;
    /* Batch 0 warms up. */
    for (int r = 0; r <= runs; r++) {
        double start = now_ns();
        for (long i = 0; i < iters; i++)
            send(1, n++, size);
        if (recv(2, sizeof(long)) != r)
            fail("batch %d: wrong answer", r);
        if (r > 0)
            rate[r - 1] = iters / ((now_ns() - start) / 1e9);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    if (msgctl(qid, IPC_RMID, NULL) < 0)
        fail("IPC_RMID");
    qsort(rate, runs, sizeof rate[0], cmp_double);
    printf("%.0f msgs/s\n", rate[runs / 2]);
    return 0;
}
