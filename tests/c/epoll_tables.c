/* Epoll sets with one interest in a pipe each (a shim object each under ipcshim).
 *   epoll_tables hold N    makes N sets and keeps them until its stdin closes;
 *   epoll_tables churn N   makes and closes N sets one after another.
 * Prints "held N" / "ok N", or the first call that failed with its errno (exit 1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int hold = !strcmp(argv[1], "hold"), n = atoi(argv[2]), q[2];
	struct rlimit lim = { 4096, 4096 };
	if (hold && setrlimit(RLIMIT_NOFILE, &lim))
		return perror("setrlimit"), 2;
	if (pipe(q))
		return perror("pipe"), 2;
	for (int i = 0; i < n; i++) {
		int e = epoll_create1(0);
		struct epoll_event one = { EPOLLIN, { .u64 = i } };
		if (e < 0)
			return printf("epoll_create1 failed at %d: %s\n", i, strerror(errno)), 1;
		if (epoll_ctl(e, EPOLL_CTL_ADD, q[0], &one))
			return printf("epoll_ctl failed at %d: %s\n", i, strerror(errno)), 1;
		if (!hold && close(e))
			return printf("close failed at %d: %s\n", i, strerror(errno)), 1;
	}
	printf("%s %d\n", hold ? "held" : "ok", n);
	fflush(stdout);
	if (hold)
		while (getchar() != EOF)
			;
	return 0;
}
