/* Children SIGKILLed and reaped by a process of a namespace that holds no pipe or socket, for
 * tests/tests/counters.rs: a reaping of a killed child asks for a collection (it may have been
 * the last holder of something), unless there is nothing a collection could free. Each kill
 * comes after the collections' 100 ms spacing, so each would run one. Prints "done".
 * Usage: reap_killed DIR KILLS */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: reap_killed DIR KILLS\n");
		return 1;
	}
	for (int i = atoi(argv[2]); i > 0; i--) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			pause();
			_exit(0);
		}
		struct timespec gap = { 0, 150 * 1000 * 1000 };
		nanosleep(&gap, NULL);
		int st;
		if (kill(pid, SIGKILL) || waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st)) {
			perror("kill and reap");
			return 1;
		}
	}
	printf("done\n");
	return 0;
}
