// Signal behaviour the catch-all must keep: "restart"/"norestart" (a SIGALRM handler with or
// without SA_RESTART interrupts a blocking read on a kernel pipe), "mask" (sigprocmask blocking
// every signal), "segv-handler" (the application's own SIGSEGV handler sees its fault),
// "segv-default" (an unhandled fault kills with SIGSEGV), "sigaction" (oldact reports what the
// application set, SIGSYS included), "cancel" (pthread_cancel of a thread blocked in read:
// glibc unwinds from its SIGCANCEL handler, through the shim's frames, running the cleanup of
// the application's frames; compiled with -fexceptions). "setxid": setgid in a threaded
// process (glibc signals every thread). "inherited": dispositions an exec'd image starts with
// (ignored ones kept, handlers back to the default), as sigaction reports them and as signals
// then behave, in an image that loads no library but libc (where the shim asks the kernel
// for a disposition only when the application first does). "alarm-spin": a SIGALRM
// lands while the program spins in its own code (its handler is early.c's, preloaded).
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static sigjmp_buf jb;

static void on_alarm(int sig) { (void)sig; hits++; }
static void on_usr1(int sig) { (void)sig; hits++; }
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    printf("SIGSEGV handler: code %d addr-is-0x10 %d\n", si->si_code, si->si_addr == (void *)0x10);
    fflush(stdout);
    siglongjmp(jb, 1);
}

static int read_interrupted(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    int fds[2];
    if (pipe(fds)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        // Writes after the alarm has fired in the parent.
        usleep(300000);
        write(fds[1], "late", 4);
        _exit(0);
    }
    close(fds[1]);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    char buf[16];
    ssize_t r = read(fds[0], buf, sizeof buf);
    int e = errno;
    printf("read returned %zd%s%s, handler ran %d time(s)\n", r, r < 0 ? " errno " : "",
           r < 0 ? strerror(e) : "", (int)hits);
    waitpid(pid, NULL, 0);
    return 0;
}

static int masks(void) {
    sigset_t all, old, now;
    sigfillset(&all);
    signal(SIGUSR1, on_usr1);
    if (sigprocmask(SIG_BLOCK, &all, &old)) { perror("sigprocmask"); return 1; }
    raise(SIGUSR1);
    // Syscalls with every signal blocked: each one traps under the shim.
    for (int i = 0; i < 100; i++) getppid();
    sigpending(&now);
    printf("after block: handler ran %d, SIGUSR1 pending %d\n", (int)hits, sigismember(&now, SIGUSR1));
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("blocked: SIGUSR1 %d SIGTERM %d SIGINT %d SIGKILL %d\n", sigismember(&now, SIGUSR1),
           sigismember(&now, SIGTERM), sigismember(&now, SIGINT), sigismember(&now, SIGKILL));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblock: handler ran %d\n", (int)hits);
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("blocked now: SIGUSR1 %d\n", sigismember(&now, SIGUSR1));
    return 0;
}

static int segv_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    for (int i = 0; i < 2; i++) {
        if (sigsetjmp(jb, 1) == 0) {
            *(volatile int *)0x10 = 1;
            printf("not reached\n");
        } else {
            printf("recovered %d\n", i);
        }
    }
    return 0;
}

static int segv_default(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    printf("faulting\n");
    fflush(stdout);
    *(volatile int *)0x10 = 1;
    printf("not reached\n");
    return 0;
}

static int actions(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGSYS);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGUSR2, NULL, &old);
    printf("SIGUSR2: ours %d restart %d nodefer %d siginfo %d mask SIGSYS %d SIGTERM %d\n",
           old.sa_handler == on_usr1, !!(old.sa_flags & SA_RESTART), !!(old.sa_flags & SA_NODEFER),
           !!(old.sa_flags & SA_SIGINFO), sigismember(&old.sa_mask, SIGSYS),
           sigismember(&old.sa_mask, SIGTERM));
    sigaction(SIGSEGV, NULL, &old);
    printf("SIGSEGV default %d\n", old.sa_handler == SIG_DFL);
    sigaction(SIGSYS, NULL, &old);
    printf("SIGSYS default %d\n", old.sa_handler == SIG_DFL);
    sa.sa_handler = SIG_IGN;
    printf("SIGSYS set %d\n", sigaction(SIGSYS, &sa, NULL));
    sigaction(SIGSYS, NULL, &old);
    printf("SIGSYS ignored %d\n", old.sa_handler == SIG_IGN);
    // Syscalls still work with the application's SIGSYS set to SIG_IGN, and a sent one is ignored.
    for (int i = 0; i < 10; i++) getppid();
    raise(SIGSYS);
    raise(SIGUSR2);
    printf("SIGUSR2 handler ran %d\n", (int)hits);
    // The application's own SIGSYS handler gets a sent SIGSYS.
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0;
    sigaction(SIGSYS, &sa, NULL);
    raise(SIGSYS);
    printf("SIGSYS handler ran %d\n", (int)hits);
    return 0;
}

static int cancel_fds[2];

static void cleanup_ran(int *unused) {
    (void)unused;
    printf("cleanup of the blocked frame ran\n");
}

static void blocked_read(void) {
    int guard __attribute__((cleanup(cleanup_ran))) = 0;
    char b[4];
    (void)guard;
    read(cancel_fds[0], b, sizeof b);
}

static void *blocked_thread(void *arg) {
    blocked_read();
    return arg;
}

static int cancel(void) {
    if (pipe(cancel_fds)) return 1;
    pthread_t t;
    void *res;
    pthread_create(&t, NULL, blocked_thread, NULL);
    usleep(100000);
    pthread_cancel(t);
    pthread_join(t, &res);
    printf("canceled %d\n", res == PTHREAD_CANCELED);
    return 0;
}

static void *idle_thread(void *arg) {
    pause();
    return arg;
}

static int setxid(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, idle_thread, NULL);
    printf("setgid %d, gid %d\n", setgid(getgid()), (int)getgid());
    return 0;
}

static void report(const char *name, int sig) {
    struct sigaction old;
    sigaction(sig, NULL, &old);
    printf("%s: %s flags %#x mask-empty %d\n", name,
           old.sa_handler == SIG_IGN ? "ignored" : old.sa_handler == SIG_DFL ? "default" : "handler",
           (unsigned)old.sa_flags, sigisemptyset(&old.sa_mask));
}

static int inherited(char *self) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    execl(self, self, "inherited-image", (char *)0);
    return 1;
}

static int inherited_image(void) {
    report("SIGPIPE", SIGPIPE);
    report("SIGUSR1", SIGUSR1);
    report("SIGINT", SIGINT);
    report("SIGTERM", SIGTERM);
    report("SIGRTMIN+5", SIGRTMIN + 5);
    // Ignored, then handled: each behaves as the kernel's would.
    raise(SIGPIPE);
    raise(SIGUSR1);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, &old);
    printf("old SIGUSR1 ignored %d\n", old.sa_handler == SIG_IGN);
    raise(SIGUSR1);
    sigaction(SIGRTMIN + 5, &sa, &old);
    printf("old SIGRTMIN+5 default %d\n", old.sa_handler == SIG_DFL);
    raise(SIGRTMIN + 5);
    printf("handlers ran %d\n", (int)hits);
    return 0;
}

static int alarm_spin(void) {
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    // The vDSO's clock: no system call while the signal may land.
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 300000000L);
    printf("spun\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return 2;
    if (!strcmp(argv[1], "restart")) return read_interrupted(1);
    if (!strcmp(argv[1], "norestart")) return read_interrupted(0);
    if (!strcmp(argv[1], "mask")) return masks();
    if (!strcmp(argv[1], "segv-handler")) return segv_handler();
    if (!strcmp(argv[1], "segv-default")) return segv_default();
    if (!strcmp(argv[1], "sigaction")) return actions();
    if (!strcmp(argv[1], "cancel")) return cancel();
    if (!strcmp(argv[1], "setxid")) return setxid();
    if (!strcmp(argv[1], "inherited")) return inherited(argv[0]);
    if (!strcmp(argv[1], "inherited-image")) return inherited_image();
    if (!strcmp(argv[1], "alarm-spin")) return alarm_spin();
    return 2;
}
