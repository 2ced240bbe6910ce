// Syscalls from threads and from forks: "threads T N" (T threads, N getppid each),
// "forkthread N" (a thread forks; the child makes N getppid), "work N" (this process only).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long n;

static void work(void) {
    for (long i = 0; i < n; i++) getppid();
}

static void *thread_work(void *arg) {
    work();
    return arg;
}

static void *thread_fork(void *arg) {
    pid_t pid = fork();
    if (pid == 0) {
        work();
        printf("fork child in thread done\n");
        fflush(stdout);
        _exit(9);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("fork child status %d\n", WEXITSTATUS(st));
    return arg;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "threads") == 0) {
        int t = atoi(argv[2]);
        n = atol(argv[3]);
        pthread_t th[64];
        for (int i = 0; i < t && i < 64; i++) pthread_create(&th[i], NULL, thread_work, NULL);
        for (int i = 0; i < t && i < 64; i++) pthread_join(th[i], NULL);
        printf("%d threads done\n", t);
    } else if (argc == 3 && strcmp(argv[1], "forkthread") == 0) {
        n = atol(argv[2]);
        pthread_t th;
        pthread_create(&th, NULL, thread_fork, NULL);
        pthread_join(th, NULL);
    } else if (argc == 3 && strcmp(argv[1], "work") == 0) {
        n = atol(argv[2]);
        work();
        printf("work done\n");
    } else {
        fprintf(stderr, "usage\n");
        return 2;
    }
    return 0;
}
