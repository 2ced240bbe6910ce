/* A workload with known counts for tests/tests/counters.rs:
 * shm: shmget, a child's shmat (the child is then SIGKILLed: one reaped process), IPC_STAT
 *      (which reaps it), IPC_RMID: 4 calls;
 * sem: one semop that sleeps until a child's semop wakes it: 1 wait, 1 wake-up;
 * pipes: one pipe, 3 writes of 1000 bytes by a child, 3 reads of 1000 by us: 6 calls. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

static void check(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

int main(void)
{
	int shm = shmget(IPC_PRIVATE, 4096, 0600);
	check(shm >= 0, "shmget");
	pid_t c = fork();
	if (c == 0) {
		check(shmat(shm, 0, 0) != (void *)-1, "shmat");
		raise(SIGSTOP);
		_exit(0);
	}
	int st;
	check(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st), "stop");
	kill(c, SIGKILL);
	check(waitpid(c, &st, 0) == c, "wait");
	struct shmid_ds ds;
	check(shmctl(shm, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0, "IPC_STAT");
	check(shmctl(shm, IPC_RMID, 0) == 0, "IPC_RMID");

	int sem = semget(IPC_PRIVATE, 1, 0600);
	check(sem >= 0, "semget");
	if (fork() == 0) {
		struct sembuf up = { 0, 1, 0 };
		usleep(200000);
		check(semop(sem, &up, 1) == 0, "semop up");
		_exit(0);
	}
	struct sembuf down = { 0, -1, 0 };
	check(semop(sem, &down, 1) == 0, "semop down");
	wait(0);

	int p[2];
	check(pipe(p) == 0, "pipe");
	if (fork() == 0) {
		char buf[1000];
		memset(buf, 'x', sizeof buf);
		for (int i = 0; i < 3; i++) {
			usleep(100000);
			check(write(p[1], buf, sizeof buf) == sizeof buf, "write");
		}
		_exit(0);
	}
	close(p[1]);
	for (int i = 0; i < 3; i++) {
		char buf[1000];
		check(read(p[0], buf, sizeof buf) == sizeof buf, "read");
	}
	wait(0);
	puts("done");
	return 0;
}
