// Queued real-time signals sent to a thread that makes syscalls without pause: every one must
// reach the handler exactly once, also those that land while the shim runs (held back, then
// let in). The thread alternates getppid with a failing execve whose large environment lacks
// LD_PRELOAD, which the shim rewrites (and must unmap again) under its guard. Signals also land
// while the thread is inside the trampolines of rewritten call sites.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static volatile int stop;
static char *env[301];
static int exec_errors;

static void on_rt(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)si; (void)uc;
    got++;
}

static void *busy(void *arg) {
    char *argv[] = {"nonexistent", NULL};
    while (!stop) {
        syscall(SYS_getppid);
        if (execve("/nonexistent/ipcshim-catchall", argv, env) != -1 || errno != ENOENT) exec_errors++;
    }
    return arg;
}

static int mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Sends n signals to a thread making syscalls, and waits (up to 5 s) for them all to arrive. */
static void storm(int n) {
    stop = 0;
    pthread_t t;
    pthread_create(&t, NULL, busy, NULL);
    union sigval v = {0};
    for (int i = 0; i < n; i++) {
        while (pthread_sigqueue(t, SIGRTMIN, v) == EAGAIN) sched_yield();
    }
    for (int waited = 0; got < n && waited < 5000; waited++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    stop = 1;
    pthread_join(t, NULL);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    for (int i = 0; i < 300; i++) {
        env[i] = malloc(64);
        snprintf(env[i], 64, "CATCHALL_TEST_VARIABLE_%03d=some-value-%d", i, i);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    // A first, shorter storm makes every call site it uses go through the shim once (the
    // catch-all rewrites some, which adds mappings); the second is the one measured.
    storm(n / 10);
    (void)mappings();
    int warm = got;
    got = 0;
    exec_errors = 0;
    int before = mappings();
    storm(n);
    // The thread's stack stays mapped (glibc caches it); a leaked envp copy would add more.
    printf("sent %d handled %d exec errors %d new mappings %d\n", n, (int)got, exec_errors,
           mappings() - before);
    if (warm != n / 10) return 1;
    return got == n ? 0 : 1;
}
