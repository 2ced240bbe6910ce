// Call sites the catch-all rewrites (a `mov $NR, %eax; syscall` whose call the shim does not
// serve): the program must not see the difference. Sites are glibc's and this program's own,
// the latter placed at chosen offsets so that each way of rewriting one is used (one aligned
// 8- or 16-byte store, or the 2-byte `jmp .` protocol while other threads run).
//   work N        N getppid() (glibc's site) and N calls of each of our sites
//   race T N      T threads start together on fresh sites and make N calls each
//   restart       a futex wait at a rewritten site, interrupted by a SA_RESTART handler
//   norestart     ... by a handler without SA_RESTART (EINTR)
//   handler-ipc   the interrupted thread sleeps in a rewritten site while the handler makes
//                 pipe calls (which the shim serves) and rewritten-site calls of its own
//   stopcont      nanosleep at a rewritten site, stopped and continued (restart_syscall)
//   cancel        pthread_cancel of a thread asleep in glibc's nanosleep (its cleanup runs)
//   fork N        a fork child and a vfork child make N calls at sites rewritten before
//   exec N        N calls, then exec of "work N" (a new image starts unrewritten)
//   closestorm N  N opens of /dev/null closed at a site of ours (fds the shim's table has not
//                 seen: its close stub asks the kernel about each first), under a storm of
//                 signals whose handler makes calls at the same site
//   passstorm N   N getppid() at a site of ours (a call the shim never serves, made through
//                 its pass entry) under a storm of signals whose handler checks that it never
//                 sees its thread interrupted in the site's trampoline or the pass entry
//   xorread N T   T threads (the main one if 1) each make N one-byte reads of /dev/zero at
//                 each of three `xor %eax, %eax; syscall` sites: glibc's read (through
//                 unbuffered stdio) and two of ours, one with glibc's `cmp; ja; ret` and
//                 alignment padding after it, one whose padding follows its function's end
//   fresh N       N opens of /dev/zero (glibc's open), each read once through one of our
//                 `xor` read sites (a fd the shim's table has not seen: the stub asks the
//                 kernel with lseek instead of trapping) and closed
//   exported N    N write()s of a byte to /dev/null and N fcntl(F_GETFD)s through the PLT: the
//                 shim's exported symbols, which pass them on with a `syscall` of their own
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

// getppid sites at `offset` bytes into a 64-byte block: 0 and 3 fit an aligned 8-byte word, 9
// an aligned 16-byte one, 12 to 15 and 44 neither.
#define SITE(name, offset)                                                                     \
    __asm__(".text\n.balign 64\n.fill " #offset ", 1, 0xcc\n" #name ":\n"                        \
            "mov $" STR(SYS_getppid) ", %eax\nsyscall\nret\n");                                \
    long name(void);
#define STR(x) STR2(x)
#define STR2(x) #x
SITE(site0, 0)
SITE(site3, 3)
SITE(site9, 9)
SITE(site12, 12)
SITE(site13, 13)
SITE(site14, 14)
SITE(site15, 15)
SITE(site44, 44)
static long (*const sites[])(void) = {site0, site3, site9, site12, site13, site14, site15, site44};
#define NSITES (int)(sizeof sites / sizeof sites[0])

// read(fd, buf, n) at `xor %eax, %eax; syscall` sites, as glibc's read makes it: the first
// followed by glibc's `cmp $-4095, %rax; ja; ret` and 11 bytes of alignment padding, the
// second by code the rewriter does not decode, its function's end and 5 bytes of padding
// before the next function (their FDEs from the .cfi directives).
__asm__(".text\n.balign 16\n.fill 8, 1, 0xcc\n"
        "xor_read_ret:\n.cfi_startproc\n"
        "xor %eax, %eax\nsyscall\ncmp $-4095, %rax\nja 1f\nret\n.balign 16\n"
        "1:\nneg %eax\nret\n.cfi_endproc\n"
        ".balign 16\nxor_read_fn:\n.cfi_startproc\n"
        "xor %eax, %eax\nsyscall\nmov %rax, %rdx\nmov %rdx, %rax\nret\n.cfi_endproc\n"
        ".balign 16\nxor_read_next:\n.cfi_startproc\nret\n.cfi_endproc\n");
long xor_read_ret(int fd, char *buf, long n);
long xor_read_fn(int fd, char *buf, long n);
long xor_read_next(void);

// FUTEX_WAIT and nanosleep from sites of this program.
static long futex_wait(uint32_t *word, uint32_t val) {
    long r;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile("mov $" STR(SYS_futex) ", %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"(word), "S"((long)FUTEX_WAIT_PRIVATE), "d"((long)val), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static long futex_wake(uint32_t *word) {
    long r;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile("mov $" STR(SYS_futex) ", %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"(word), "S"((long)FUTEX_WAKE_PRIVATE), "d"(1L), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static long sleep_at_site(const struct timespec *ts) {
    long r;
    __asm__ volatile("mov $" STR(SYS_nanosleep) ", %%eax\n\tsyscall"
                     : "=a"(r)
                     : "D"(ts), "S"(0L)
                     : "rcx", "r11", "memory");
    return r;
}

static pid_t parent;

// close(fd) with the carry flag set and known values in rsi and rdx, which the call must keep.
static int close_kept(int fd) {
    long r, si = 0x5151515151515151, dx = 0x0d0d0d0d0d0d0d0d;
    unsigned char cf;
    __asm__ volatile("stc\n\tmov $" STR(SYS_close) ", %%eax\n\tsyscall\n\tsetc %[cf]"
                     : "=a"(r), "+S"(si), "+d"(dx), [cf] "=r"(cf)
                     : "D"((long)fd)
                     : "rcx", "r11", "memory", "cc");
    return r == 0 && si == 0x5151515151515151 && dx == 0x0d0d0d0d0d0d0d0d && cf == 1;
}

// N calls at every site, each checked.
static int work(long n) {
    for (long i = 0; i < n; i++) {
        if (getppid() != parent) return 1;
        for (int s = 0; s < NSITES; s++)
            if (sites[s]() != parent) return 1;
    }
    return 0;
}

static pthread_barrier_t start;
static long per_thread;
static volatile int bad;

static void *racer(void *arg) {
    pthread_barrier_wait(&start);
    if (work(per_thread)) bad = 1;
    return arg;
}

static volatile sig_atomic_t hits;
static uint32_t word;
static int fds[2];
static volatile int handler_ipc, handler_bad;

static void on_alarm(int sig) {
    (void)sig;
    hits++;
    if (handler_ipc) {
        // Served by the shim while the interrupted thread sleeps in a rewritten site.
        char out[64], in[64];
        for (int i = 0; i < 64; i++) out[i] = (char)(i * 3 + hits);
        if (write(fds[1], out, sizeof out) != sizeof out || read(fds[0], in, sizeof in) != sizeof in ||
            memcmp(in, out, sizeof in) || work(10))
            handler_bad = 1;
    }
}

static void *waker(void *arg) {
    // Wakes the waiter once the handler has run (and the wait went on, or ended).
    while (!hits) usleep(1000);
    usleep(50000);
    __atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
    futex_wake(&word);
    return arg;
}

static int interrupted_wait(int restart, int ipc) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    handler_ipc = ipc;
    if (ipc && pipe(fds)) return 1;
    // The site's first call (the value differs: EAGAIN at once) rewrites it.
    for (int i = 0; i < 3; i++)
        if (futex_wait(&word, 1) != -EAGAIN) return 1;
    pthread_t t;
    pthread_create(&t, NULL, waker, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long r = futex_wait(&word, 0);
    pthread_join(t, NULL);
    printf("futex wait returned %s, handler ran %d time(s), word %u%s\n",
           r == 0 ? "0" : r == -EINTR ? "EINTR" : "something else", (int)hits, word,
           handler_bad ? ", handler's calls failed" : "");
    return 0;
}

static int stop_and_continue(void) {
    struct timespec zero = {0, 0}, ts = {0, 300000000};
    sleep_at_site(&zero);
    sleep_at_site(&zero);
    pid_t self = getpid(), kid = fork();
    if (kid == 0) {
        usleep(80000);
        kill(self, SIGSTOP);
        usleep(80000);
        kill(self, SIGCONT);
        _exit(0);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long r = sleep_at_site(&ts);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    waitpid(kid, NULL, 0);
    printf("nanosleep returned %ld, slept the whole time %d\n", r, took >= 0.3);
    return 0;
}

static void cleanup_ran(void *arg) {
    (void)arg;
    printf("cleanup of the sleeping thread ran\n");
}

static void *sleeper(void *arg) {
    struct timespec zero = {0, 0}, ts = {30, 0};
    pthread_cleanup_push(cleanup_ran, NULL);
    nanosleep(&zero, NULL);
    nanosleep(&zero, NULL);
    __atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
    nanosleep(&ts, NULL);
    pthread_cleanup_pop(0);
    return NULL;
}

static int cancel(void) {
    int ready = 0;
    pthread_t t;
    pthread_create(&t, NULL, sleeper, &ready);
    while (!__atomic_load_n(&ready, __ATOMIC_SEQ_CST)) usleep(1000);
    usleep(50000);
    pthread_cancel(t);
    void *res;
    pthread_join(t, &res);
    printf("canceled %d\n", res == PTHREAD_CANCELED);
    return 0;
}

static volatile sig_atomic_t storm_hits, storm_bad;
static volatile int storm_done;

static void on_storm(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    storm_hits++;
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || !close_kept(fd)) storm_bad = 1;
}

static void *storm_closer(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || !close_kept(fd)) storm_bad = 1;
    }
    storm_done = 1;
    return NULL;
}

/* Runs `body(n)` in a thread that SIGUSR1 (`handler`, SA_RESTART) hits every `spin` turns of
 * a loop, from when `*ready` is set (or `body` finished) until `body` sets storm_done; prints
 * whether `what` came out right and whether the handler ran. */
static int storm(void (*handler)(int, siginfo_t *, void *), void *(*body)(void *), long n, int spin,
                 volatile int *ready, const char *what) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, body, (void *)n);
    while (!*ready && !storm_done)
        ;
    while (!storm_done) {
        pthread_kill(t, SIGUSR1);
        for (volatile int turn = 0; turn < spin; turn++)
            ;
    }
    pthread_join(t, NULL);
    printf("%s right: %s, handler ran: %s\n", what, storm_bad ? "no" : "yes", storm_hits ? "yes" : "no");
    return storm_bad;
}

static volatile int at_once = 1;

static int close_storm(long n) {
    return storm(on_storm, storm_closer, n, 2000, &at_once, "closes");
}

// Under the shim, once site0 is rewritten: its trampoline and the shim code it jumps to (the
// pass entry, its `syscall` and the way back), decoded from the `jmp`s (see `patch.rs`:
// `mov`, `lea`, `pushq`, then `jmp`); zero on the kernel.
static uintptr_t tramp, pass_entry;
static volatile int pass_looping;

static uintptr_t jmp_target(const unsigned char *at) {
    int32_t rel;
    if (at[0] == 0xe9) {
        memcpy(&rel, at + 1, 4);
        return (uintptr_t)at + 5 + rel;
    }
    if (at[0] == 0xff && at[1] == 0x25) {
        memcpy(&rel, at + 2, 4);
        return *(const uintptr_t *)(at + 6 + rel);
    }
    return 0;
}

static void on_pass_storm(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    uintptr_t ip = (uintptr_t)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
    storm_hits++;
    if (pass_looping && ((ip - tramp < 64 && tramp) || (ip - pass_entry < 40 && pass_entry))) storm_bad = 1;
}

static void *pass_caller(void *arg) {
    long n = (long)arg;
    // The site's first calls trap (the second rewrites it) before the storm: a signal landing
    // in the catch-all's SIGSYS handler is the trap's business, not the pass entry's.
    for (int i = 0; i < 2; i++)
        if (site0() != parent) storm_bad = 1;
    tramp = jmp_target((const unsigned char *)site0);
    if (tramp) pass_entry = jmp_target((const unsigned char *)tramp + 16);
    const char *preload = getenv("LD_PRELOAD");
    if ((preload && strstr(preload, "ipcshim") && !tramp) || (tramp && !pass_entry)) storm_bad = 1;
    pass_looping = 1;
    for (long i = 0; i < n; i++)
        if (site0() != parent) storm_bad = 1;
    pass_looping = 0;
    storm_done = 1;
    return NULL;
}

static int pass_storm(long n) {
    return storm(on_pass_storm, pass_caller, n, 100, &pass_looping, "pass calls");
}

static int children(long n) {
    if (work(10)) return 1;
    parent = getpid();
    pid_t kid = fork();
    if (kid == 0) _exit(work(n) ? 1 : 5);
    int st;
    waitpid(kid, &st, 0);
    printf("fork child %d\n", WEXITSTATUS(st));
    kid = vfork();
    if (kid == 0) _exit(work(n) ? 1 : 6);
    waitpid(kid, &st, 0);
    printf("vfork child %d\n", WEXITSTATUS(st));
    return 0;
}

static long xor_n;
static volatile int xor_bad;

static void *xor_reader(void *arg) {
    (void)arg;
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    FILE *f = fdopen(dup(fd), "r");
    if (fd < 0 || !f || setvbuf(f, NULL, _IONBF, 0)) {
        xor_bad = 1;
        return NULL;
    }
    for (long i = 0; i < xor_n && !xor_bad; i++) {
        char a = 1, b = 1;
        if (xor_read_ret(fd, &a, 1) != 1 || xor_read_fn(fd, &b, 1) != 1 || a || b || fgetc(f) != 0)
            xor_bad = 1;
    }
    fclose(f);
    close(fd);
    return NULL;
}

static int xor_reads(long n, int threads) {
    xor_n = n;
    xor_read_next();
    if (threads <= 1) {
        xor_reader(NULL);
    } else {
        pthread_t t[16];
        for (int i = 0; i < threads && i < 16; i++) pthread_create(&t[i], NULL, xor_reader, NULL);
        for (int i = 0; i < threads && i < 16; i++) pthread_join(t[i], NULL);
    }
    printf("xor reads %s\n", xor_bad ? "wrong" : "right");
    return xor_bad;
}

static int fresh_reads(long n) {
    int wrong = 0;
    for (long i = 0; i < n && !wrong; i++) {
        char c = 1;
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        wrong = fd < 0 || xor_read_ret(fd, &c, 1) != 1 || c != 0 || close(fd) != 0;
    }
    printf("fresh reads %s\n", wrong ? "wrong" : "right");
    return wrong;
}

static int exported(long n) {
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    long wrong = fd < 0;
    for (long i = 0; i < n && !wrong; i++)
        wrong = write(fd, "x", 1) != 1 || fcntl(fd, F_GETFD) != FD_CLOEXEC;
    printf("exported calls %s\n", wrong ? "failed" : "done");
    return wrong != 0;
}

int main(int argc, char **argv) {
    parent = getppid();
    if (argc == 3 && !strcmp(argv[1], "work")) {
        int r = work(atol(argv[2]));
        printf("work %s\n", r ? "failed" : "done");
        return r;
    }
    if (argc == 4 && !strcmp(argv[1], "race")) {
        int n = atoi(argv[2]);
        per_thread = atol(argv[3]);
        pthread_t t[16];
        pthread_barrier_init(&start, NULL, n);
        for (int i = 0; i < n && i < 16; i++) pthread_create(&t[i], NULL, racer, NULL);
        for (int i = 0; i < n && i < 16; i++) pthread_join(t[i], NULL);
        printf("%d threads raced, %s\n", n, bad ? "wrong results" : "all results right");
        return bad;
    }
    if (argc == 2 && !strcmp(argv[1], "restart")) return interrupted_wait(1, 0);
    if (argc == 2 && !strcmp(argv[1], "norestart")) return interrupted_wait(0, 0);
    if (argc == 2 && !strcmp(argv[1], "handler-ipc")) return interrupted_wait(1, 1);
    if (argc == 2 && !strcmp(argv[1], "stopcont")) return stop_and_continue();
    if (argc == 2 && !strcmp(argv[1], "cancel")) return cancel();
    if (argc == 3 && !strcmp(argv[1], "fork")) return children(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "closestorm")) return close_storm(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "passstorm")) return pass_storm(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "exported")) return exported(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "fresh")) return fresh_reads(atol(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "xorread")) return xor_reads(atol(argv[2]), atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "exec")) {
        if (work(atol(argv[2]))) return 1;
        execl("/proc/self/exe", argv[0], "work", argv[2], (char *)NULL);
        return 1;
    }
    fprintf(stderr, "usage\n");
    return 2;
}
