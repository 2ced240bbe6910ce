/* EPOLLEXCLUSIVE wakes one of four processes, each waiting on its own set over one pipe, even
 * when the first of them is between two of its sleep's slices (a shim-only set's waiter looks
 * at the kernel's set after each 0.1 s slice). Run under `strace -f --seccomp-bpf -e
 * trace=epoll_wait -e inject=epoll_wait:delay_exit=...` (tests/tests/epoll_stress.rs), which
 * holds every such look in a tracing stop: the byte is written while the first waiter is held
 * there. `epoll_exclusive_look ROUNDS` prints one line per round: how many of the four woke.
 */
#include "../../c-tests/common.h"

static void round_of_four(int rd, int wr)
{
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		pids[i] = io_fork();
		if (pids[i] == 0) {
			int mine = epoll_create1(0);
			struct epoll_event e = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = i };
			if (epoll_ctl(mine, EPOLL_CTL_ADD, rd, &e))
				die("epoll_ctl");
			_exit(epoll_wait(mine, &e, 1, 5000) > 0 ? 7 : 0);
		}
		io_wait_sleeping(pids[i]);
	}
	/* The first waiter in a tracing stop: inside a look between two slices. */
	struct timespec ms = { 0, 1000 * 1000 };
	int i;
	for (i = 0; i < 20000 && io_state_of(pids[0]) != 't'; i++)
		nanosleep(&ms, NULL);
	if (i == 20000) {
		errno = ETIMEDOUT;
		die("first waiter never looked between slices");
	}
	io_post(wr);
	/* The others time out (none is killed: a waiter killed in its sleep stays counted). */
	int woke = 0;
	for (i = 0; i < 4; i++) {
		int st = wait_child(pids[i]);
		woke += WIFEXITED(st) && WEXITSTATUS(st) == 7;
	}
	printf("  %d of 4 woke\n", woke);
	io_wait(rd);
}

int main(int argc, char **argv)
{
	setup();
	int rounds = argc > 1 ? atoi(argv[1]) : 5, p[2];
	if (pipe(p))
		die("pipe");
	for (int r = 0; r < rounds; r++)
		round_of_four(p[0], p[1]);
	return 0;
}
