/* The cost of system calls the shim does not serve, made from the program's own call sites:
 * what interposition adds to every call that has nothing to do with IPC (issue 23). Prints the
 * median over RUNS runs of ITERS operations as "<ns per operation> ns".
 *
 * Usage: syscall_cost ITERS RUNS CASE DIR
 *   getppid    getppid()
 *   stat       stat("/")
 *   openclose  open() + close() of a file in DIR
 *   fopenclose fopen() + fclose() of a file in DIR (glibc's internal openat and close)
 *   write      write() of 1 byte to /dev/null, through the PLT (the shim's exported write)
 *   read       read() of 1 byte from /dev/zero, through the PLT
 *   fcntl      fcntl(F_GETFD), through the PLT
 *   futexwake  FUTEX_WAKE on a word nobody waits on, from a `mov $NR, %eax; syscall` in this
 *              program (glibc has no futex wrapper; syscall() would go through its own export)
 *   pread      pread() of 4 KiB at offset 0 of a file in DIR
 *   mutex      a pthread mutex handed back and forth between two threads (a condition
 *              variable says whose turn it is): ns per round trip
 *   getppid_sud getppid() with Syscall User Dispatch armed over all user code and its selector
 *              open, so nothing traps (run without the shim): what SUD alone costs a call,
 *              the floor of any interposition built on it
 *
 * Times are CPU time of the process (both threads in `mutex`), not wall time: the machine's
 * other load does not count, and kernel and shim runs compare under any load. The clock is
 * read from a `mov $NR, %eax; syscall` of this program (not glibc's vDSO call, whose CPU-time
 * fallback would trap under the shim each time).
 *
 * Results are checked (the parent's pid, the file's contents, every turn taken), so a broken
 * interposition cannot report a fast number. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "bench.h"

static char path[4096];
static int fd = -1, null_fd = -1, zero_fd = -1;
static char page[4096];

static long futex_wake(uint32_t *word)
{
    long r;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile("mov $" STR(SYS_futex) ", %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"(word), "S"((long)FUTEX_WAKE_PRIVATE), "d"(1L), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

/* CPU time of the process, in ns. */
static double cpu_ns(void)
{
    struct timespec ts;
    long r;
    __asm__ volatile("mov $" STR(SYS_clock_gettime) ", %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"((long)CLOCK_PROCESS_CPUTIME_ID), "S"(&ts)
                     : "rcx", "r11", "memory");
    if (r)
        fail("clock_gettime");
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn;
static long rounds;

/* Waits for `me`'s turn and passes it on, `rounds` times. */
static void take_turns(int me)
{
    for (long i = 0; i < rounds; i++) {
        if (pthread_mutex_lock(&lock))
            fail("pthread_mutex_lock");
        while (turn != me)
            pthread_cond_wait(&turn_changed, &lock);
        turn = !me;
        pthread_cond_signal(&turn_changed);
        pthread_mutex_unlock(&lock);
    }
}

static void *other(void *arg)
{
    take_turns(1);
    return arg;
}

static void run_case(const char *name, long iters)
{
    if (!strcmp(name, "getppid_sud")) {
        static char selector; /* SYSCALL_DISPATCH_FILTER_ALLOW */
        static int armed;
        if (!armed && prctl(59 /* PR_SET_SYSCALL_USER_DISPATCH */, 1 /* ON */, 0x1000UL,
                            0x7fffffffe000UL, &selector))
            fail("PR_SET_SYSCALL_USER_DISPATCH");
        armed = 1;
        name = "getppid";
    }
    if (!strcmp(name, "getppid")) {
        pid_t want = getppid();
        for (long i = 0; i < iters; i++)
            if (getppid() != want)
                fail("getppid changed");
    } else if (!strcmp(name, "stat")) {
        struct stat st;
        for (long i = 0; i < iters; i++)
            if (stat("/", &st) || !S_ISDIR(st.st_mode))
                fail("stat /");
    } else if (!strcmp(name, "openclose")) {
        for (long i = 0; i < iters; i++) {
            int f = open(path, O_RDONLY);
            if (f < 0 || close(f))
                fail("open/close %s", path);
        }
    } else if (!strcmp(name, "fopenclose")) {
        for (long i = 0; i < iters; i++) {
            FILE *f = fopen(path, "r");
            if (!f || fclose(f))
                fail("fopen/fclose %s", path);
        }
    } else if (!strcmp(name, "write")) {
        for (long i = 0; i < iters; i++)
            if (write(null_fd, "x", 1) != 1)
                fail("write /dev/null");
    } else if (!strcmp(name, "read")) {
        char c = 1;
        for (long i = 0; i < iters; i++)
            if (read(zero_fd, &c, 1) != 1 || c != 0)
                fail("read /dev/zero");
    } else if (!strcmp(name, "fcntl")) {
        for (long i = 0; i < iters; i++)
            if (fcntl(null_fd, F_GETFD) != FD_CLOEXEC)
                fail("fcntl F_GETFD");
    } else if (!strcmp(name, "futexwake")) {
        uint32_t word = 0;
        for (long i = 0; i < iters; i++)
            if (futex_wake(&word) != 0)
                fail("FUTEX_WAKE");
    } else if (!strcmp(name, "pread")) {
        char buf[4096];
        for (long i = 0; i < iters; i++)
            if (pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf || buf[100] != page[100])
                fail("pread %s", path);
    } else if (!strcmp(name, "mutex")) {
        rounds = iters;
        turn = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, other, NULL))
            fail("pthread_create");
        take_turns(0);
        pthread_join(t, NULL);
        if (turn != 0)
            fail("turns lost");
    } else {
        fprintf(stderr, "syscall_cost: unknown case %s\n", name);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    bench_name = "syscall_cost";
    bench_owner = getpid();
    if (argc != 5) {
        fprintf(stderr, "usage: syscall_cost ITERS RUNS "
                        "getppid|getppid_sud|stat|openclose|fopenclose|write|read|fcntl|futexwake|pread|mutex DIR\n");
        return 2;
    }
    long iters = atol(argv[1]);
    int runs = atoi(argv[2]);
    if (iters <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "syscall_cost: bad ITERS or RUNS\n");
        return 2;
    }
    start_watchdog("syscall_cost: watchdog: not done after 30 s, giving up\n");
    snprintf(path, sizeof path, "%s/syscall_cost.%d", argv[4], (int)getpid());
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = (char)(i * 7);
    null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || zero_fd < 0)
        fail("open /dev/null, /dev/zero");
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, page, sizeof page) != (ssize_t)sizeof page)
        fail("create %s", path);
    double ns[MAX_RUNS];
    run_case(argv[3], iters / 10 + 1); /* warm up: first calls from each site */
    for (int r = 0; r < runs; r++) {
        double t0 = cpu_ns();
        run_case(argv[3], iters);
        ns[r] = (cpu_ns() - t0) / iters;
    }
    close(fd);
    unlink(path);
    qsort(ns, runs, sizeof ns[0], cmp_double);
    printf("%.1f ns\n", ns[runs / 2]);
    return 0;
}
