/* Makes System V objects with fixed keys for tests/tests/proc_views.rs, which then looks at
 * them with util-linux tools. Prints the new object's id.
 *   ipc_helper shm KEY SIZE MODE FLAGS   FLAGS: a = attach, write the first page, detach;
 *                                        l = SHM_LOCK; h = attach, write, and hold until
 *                                        killed; r = IPC_RMID (after h: marked for removal)
 *   ipc_helper sem KEY NSEMS MODE        then semop(+2) on semaphore 1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "sem")) {
		int id = semget(strtol(argv[2], 0, 0), atoi(argv[3]), IPC_CREAT | strtol(argv[4], 0, 8));
		struct sembuf op = { .sem_num = 1, .sem_op = 2 };
		if (id < 0 || semop(id, &op, 1))
			die("sem");
		printf("%d\n", id);
		return 0;
	}
	if (argc < 6 || strcmp(argv[1], "shm"))
		return 2;
	const char *f = argv[5];
	int id = shmget(strtol(argv[2], 0, 0), atol(argv[3]), IPC_CREAT | strtol(argv[4], 0, 8));
	if (id < 0)
		die("shmget");
	if (strchr(f, 'l') && shmctl(id, SHM_LOCK, 0))
		die("SHM_LOCK");
	char *p = 0;
	if (strchr(f, 'a') || strchr(f, 'h')) {
		p = shmat(id, 0, 0);
		if (p == (void *)-1)
			die("shmat");
		p[0] = 1;
	}
	if (strchr(f, 'a') && shmdt(p))
		die("shmdt");
	if (strchr(f, 'r') && shmctl(id, IPC_RMID, 0))
		die("IPC_RMID");
	printf("%d\n", id);
	fflush(stdout);
	while (strchr(f, 'h'))
		pause();
	return 0;
}
