/* A segment of argv[1] MiB: shmget, shmat, every byte written, every page read back.
 * Prints "ok SUM" or the call that failed and its error. With argv[2] "hold", it then waits
 * attached to be killed; with "hold-removed", it removes the segment first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t size = (size_t)atol(argc > 1 ? argv[1] : "64") << 20;
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
	if (id < 0) {
		printf("shmget: %s\n", strerror(errno));
		return 1;
	}
	char *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		printf("shmat: %s\n", strerror(errno));
		return 1;
	}
	memset(p, 7, size);
	long sum = 0;
	for (size_t i = 0; i < size; i += 4096)
		sum += p[i];
	printf("ok %ld\n", sum);
	if (argc > 2 && strncmp(argv[2], "hold", 4) == 0) {
		if (strcmp(argv[2], "hold-removed") == 0 && shmctl(id, IPC_RMID, NULL) < 0)
			printf("IPC_RMID: %s\n", strerror(errno));
		printf("held\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	shmdt(p);
	shmctl(id, IPC_RMID, NULL);
	return 0;
}
