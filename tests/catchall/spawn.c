// Process creation paths that glibc hides from symbol hooks: popen, system, posix_spawn (all
// clone(CLONE_VM|CLONE_VFORK) on a new stack) and vfork. "vforkwork N": a vfork child making N
// syscalls before _exit, to show the child is armed. "vforkexec N": N vfork children exec with
// an environment lacking LD_PRELOAD (the shim builds a new one in the memory they share with
// us), and our address space must not grow. "spawnloop N": N posix_spawns of /bin/true.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static long vm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld", &kib) == 1) break;
    fclose(f);
    return kib;
}

static int child_status(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "vforkwork") == 0) {
        long n = atol(argv[2]);
        pid_t pid = vfork();
        if (pid == 0) {
            for (long i = 0; i < n; i++) getppid();
            _exit(7);
        }
        printf("vfork child status %d\n", child_status(pid));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "vforkexec") == 0) {
        long n = atol(argv[2]), before = vm_kib();
        char *cargv[] = {"true", NULL}, *cenv[] = {"A=1", NULL};
        int failed = 0;
        for (long i = 0; i < n; i++) {
            pid_t pid = vfork();
            if (pid == 0) {
                execve("/bin/true", cargv, cenv);
                _exit(127);
            }
            failed += child_status(pid) != 0;
        }
        printf("%ld vfork+exec, %d failed, grew by more than 64 KiB: %d\n", n, failed,
               vm_kib() - before > 64);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "spawnloop") == 0) {
        long n = atol(argv[2]);
        char *cargv[] = {"true", NULL};
        int failed = 0;
        for (long i = 0; i < n; i++) {
            pid_t pid;
            failed += posix_spawn(&pid, "/bin/true", NULL, NULL, cargv, environ) != 0 ||
                      child_status(pid) != 0;
        }
        printf("%ld posix_spawn, %d failed\n", n, failed);
        return 0;
    }
    char line[256];
    FILE *p = popen("echo from-popen; echo second-line", "r");
    if (!p) { perror("popen"); return 1; }
    while (fgets(line, sizeof line, p)) printf("popen read: %s", line);
    printf("pclose %d\n", pclose(p));
    fflush(stdout);

    int rc = system("echo from-system; exit 3");
    printf("system %d\n", WEXITSTATUS(rc));
    fflush(stdout);

    pid_t pid;
    char *sargv[] = {"sh", "-c", "echo from-posix_spawn; exit 4", NULL};
    if (posix_spawnp(&pid, "sh", NULL, NULL, sargv, environ) != 0) { perror("posix_spawn"); return 1; }
    printf("posix_spawn child %d\n", child_status(pid));
    fflush(stdout);

    pid = vfork();
    if (pid == 0) {
        execlp("sh", "sh", "-c", "echo from-vfork; exit 5", (char *)NULL);
        _exit(127);
    }
    printf("vfork child %d\n", child_status(pid));
    return 0;
}
