/* Message queue ping-pong between two processes through one queue: the parent sends a
 * SIZE-byte message of type 1 and waits for type 2; the child receives type 1 and answers
 * with type 2: one round trip. Prints the median over RUNS batches of ITERS round trips as
 * "<ns per round trip> ns".
 *
 * Usage: msg_pingpong ITERS RUNS PARENT_CPU CHILD_CPU SIZE
 * Each process pins itself ("0 0": both on CPU 0, "0 1": split; -1 leaves it unpinned).
 * Every message carries its round trip's number, which the other side checks, so a lost,
 * duplicated or reordered message fails the run; at the end the queue must be empty and
 * msg_lspid/msg_lrpid must name the parent (the last to send and receive). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include "bench.h"

#define STOP (-1L)

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

static void send(long type, long n)
{
    static struct msg m;
    m.mtype = type;
    m.n = n;
    while (msgsnd(qid, &m, size, 0) < 0)
        if (errno != EINTR)
            fail("msgsnd(type %ld)", type);
}

static long recv(long type)
{
    static struct msg m;
    ssize_t r;
    while ((r = msgrcv(qid, &m, sizeof m - sizeof m.mtype, type, 0)) < 0)
        if (errno != EINTR)
            fail("msgrcv(type %ld)", type);
    if ((size_t)r != size || m.mtype != type)
        fail("msgrcv(type %ld) = %zd bytes of type %ld", type, r, m.mtype);
    return m.n;
}

static void trip(long i)
{
    send(1, i);
    long n = recv(2);
    if (n != i)
        fail("round trip %ld: answer %ld", i, n);
}

int main(int argc, char **argv)
{
    bench_owner = getpid();
    bench_name = "msg_pingpong";
    bench_role = "parent";
    bench_cleanup = remove_object;
    if (argc != 6) {
        fprintf(stderr, "usage: msg_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU SIZE\n", MAX_RUNS);
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    int parent_cpu = atoi(argv[3]), child_cpu = atoi(argv[4]);
    size = atol(argv[5]);
    if (iters < 1 || runs < 1 || runs > MAX_RUNS || size < sizeof(long) || size > 8192) {
        fprintf(stderr, "usage: msg_pingpong ITERS RUNS<=%d PARENT_CPU CHILD_CPU SIZE(8..8192)\n", MAX_RUNS);
        return 2;
    }
    long warmup = iters / 10 + 1;
    qid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (qid < 0)
        fail("msgget");
    fflush(NULL);
    start_watchdog("msg_pingpong: watchdog: not done after 30 s (lost message?), giving up\n");
    pin_or_exit("msg_pingpong", "parent", parent_cpu);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0) {
        bench_role = "child";
        start_watchdog("msg_pingpong: child: watchdog: not done after 30 s, giving up\n");
        pin_or_exit("msg_pingpong", "child", child_cpu);
        for (long i = 0;; i++) {
            long n = recv(1);
            if (n == STOP)
                _exit(0);
            if (n != i)
                fail("round trip %ld: got %ld", i, n);
            send(2, n);
        }
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
    send(1, STOP);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child failed (wait status %#x)", status);
    struct msqid_ds ds;
    if (msgctl(qid, IPC_STAT, &ds) < 0)
        fail("IPC_STAT");
    if (ds.msg_qnum != 0 || ds.msg_lspid != bench_owner || ds.msg_lrpid != pid)
        fail("after the run: qnum %lu lspid %d lrpid %d", (unsigned long)ds.msg_qnum, ds.msg_lspid, ds.msg_lrpid);
    if (msgctl(qid, IPC_RMID, NULL) < 0)
        fail("IPC_RMID");
    qsort(per_trip, runs, sizeof per_trip[0], cmp_double);
    printf("%.0f ns\n", per_trip[runs / 2]);
    return 0;
}
