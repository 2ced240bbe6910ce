/* A fakeroot client killed while it holds faked's lock semaphore. Run inside a fakeroot-sysv
 * session (it needs FAKEROOTKEY): usage semhold FILE.
 *
 * fakeroot-sysv's clients (libfakeroot in every process of the session) serialise their
 * requests to faked with one semaphore, key FAKEROOTKEY + 2, taken with semop(-1, SEM_UNDO)
 * before sending a request and given back after the answer (communicate-sysv.c). A client
 * killed between the two would block every later client if the kernel did not undo its -1.
 *
 * This program forks a holder that takes the semaphore exactly as a client does and then
 * pauses, starts a real client (`chown 0:0 FILE`, which must wait for the lock), waits until
 * that client is queued on the semaphore, prints "CHECK <semid> <holder pid>" and reads one
 * line from stdin (the test inspects the namespace meanwhile), then SIGKILLs the holder. The
 * waiting chown must then finish, and the semaphore must be free again. Every line printed is
 * exact (pids are compared here, not printed), except the CHECK line. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "semhold: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "semhold: watchdog: not done after 20 s (client still blocked?)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

static const char *who(int pid, pid_t holder, pid_t waiter)
{
    return pid == holder ? "holder" : pid == waiter ? "waiter" : pid == getpid() ? "self" : "other";
}

int main(int argc, char **argv)
{
    const char *key_text = getenv("FAKEROOTKEY");
    if (argc != 2 || key_text == NULL) {
        fprintf(stderr, "usage: FAKEROOTKEY=KEY semhold FILE (inside fakeroot-sysv)\n");
        return 2;
    }
    signal(SIGALRM, watchdog_fired);
    alarm(20);
    key_t key = (key_t)(atol(key_text) + 2);
    int semid = semget(key, 1, 0);
    if (semid < 0)
        die("semget(FAKEROOTKEY + 2)");
    printf("idle: value %d ncount %d\n", semctl(semid, 0, GETVAL), semctl(semid, 0, GETNCNT));
    fflush(stdout);

    int ready[2];
    if (pipe(ready) < 0)
        die("pipe");
    pid_t holder = fork();
    if (holder < 0)
        die("fork");
    if (holder == 0) {
        struct sembuf take = { .sem_num = 0, .sem_op = -1, .sem_flg = SEM_UNDO };
        if (semop(semid, &take, 1) < 0)
            die("holder: semop(-1, SEM_UNDO)");
        (void)!write(ready[1], "x", 1);
        for (;;)
            pause();
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("read from holder");

    pid_t waiter = fork();
    if (waiter < 0)
        die("fork");
    if (waiter == 0) {
        execlp("chown", "chown", "0:0", argv[1], (char *)NULL);
        die("exec chown");
    }
    /* Until the chown is queued on the semaphore. */
    struct timespec tick = { 0, 2000000 };
    while (semctl(semid, 0, GETNCNT) != 1)
        nanosleep(&tick, NULL);
    int pid = semctl(semid, 0, GETPID);
    printf("held: value %d ncount %d zcount %d pid %s\n", semctl(semid, 0, GETVAL),
           semctl(semid, 0, GETNCNT), semctl(semid, 0, GETZCNT), who(pid, holder, waiter));
    printf("CHECK %d %d\n", semid, (int)holder);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        die("read the go-ahead from stdin");

    if (kill(holder, SIGKILL) < 0)
        die("kill");
    int status;
    if (waitpid(holder, &status, 0) != holder)
        die("waitpid holder");
    printf("holder: %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exited with status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (waitpid(waiter, &status, 0) != waiter)
        die("waitpid waiter");
    printf("waiter: %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exited with status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    pid = semctl(semid, 0, GETPID);
    printf("after: value %d ncount %d zcount %d pid %s\n", semctl(semid, 0, GETVAL),
           semctl(semid, 0, GETNCNT), semctl(semid, 0, GETZCNT), who(pid, holder, waiter));
    return 0;
}
