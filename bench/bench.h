/* What every side-by-side benchmark here shares: its clock, its median, CPU pinning. */
#ifndef IPCSHIM_BENCH_H
#define IPCSHIM_BENCH_H

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 99
/* Lost data would leave a benchmark waiting forever: each process gives up after this long. */
#define WATCHDOG_SECONDS 30

static __attribute__((unused)) double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static __attribute__((unused)) int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Pins the calling process to `cpu` (-1: leave it); 0, or -1 with errno set. */
static __attribute__((unused)) int pin_to(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* Who reports a failure (set by main; a forked child sets its role, NULL for none), and what
 * the process that made the benchmark's IPC object removes before it exits. */
static const char *bench_name = "bench";
static const char *bench_role;
static pid_t bench_owner;
static void (*bench_cleanup)(void);

/* Prints "NAME: [ROLE: ]message (errno N: text)" and exits 1 (the owner cleans up first). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn, unused));
static void fail(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    fprintf(stderr, "%s: ", bench_name);
    if (bench_role)
        fprintf(stderr, "%s: ", bench_role);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (errno %d: %s)\n", saved, strerror(saved));
    if (getpid() != bench_owner)
        _exit(1);
    if (bench_cleanup)
        bench_cleanup();
    exit(1);
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *watchdog_msg;

static void bench_watchdog_fired(int sig)
{
    (void)sig;
    (void)!write(2, watchdog_msg, strlen(watchdog_msg));
    _exit(3);
}

/* Kills this process (exit 3, saying `msg`) if it has not finished WATCHDOG_SECONDS from now;
 * fork clears the alarm, so a child calls it again. */
static __attribute__((unused)) void start_watchdog(const char *msg)
{
    watchdog_msg = msg;
    signal(SIGALRM, bench_watchdog_fired);
    alarm(WATCHDOG_SECONDS);
}

/* pin_to, or exit 1 naming `prog` and `role`. */
static __attribute__((unused)) void pin_or_exit(const char *prog, const char *role, int cpu)
{
    if (pin_to(cpu) < 0) {
        fprintf(stderr, "%s: %s: sched_setaffinity(CPU %d): ", prog, role, cpu);
        perror(NULL);
        exit(1);
    }
}

#endif
