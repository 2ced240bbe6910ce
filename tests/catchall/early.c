// A library preloaded after the shim whose constructor, which runs before the shim's, installs
// a SIGALRM handler with every signal in its mask, SIGSYS included. The handler makes a system
// call from its own `syscall` instruction, which traps into the catch-all at its first run:
// the shim must have found and wrapped that handler at start-up (SIGSYS taken out of the
// mask), or the trap with SIGSYS blocked kills the process.
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_alarm(int sig) {
    (void)sig;
    long pid;
    __asm__ volatile("mov %1, %%eax\n\tsyscall" : "=a"(pid) : "i"(SYS_getpid) : "rcx", "r11", "memory");
    const char *msg = pid == getpid() ? "early handler: pid ok\n" : "early handler: pid wrong\n";
    write(1, msg, strlen(msg));
}

__attribute__((constructor)) static void early(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigfillset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}
