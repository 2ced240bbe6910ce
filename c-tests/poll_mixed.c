/* poll, ppoll and pselect sleeping on shim sockets and kernel fds at once, and on more
 * sockets than one futex_waitv takes: the waiter is woken by data another process writes to a
 * socket, by an eventfd, by a signal the ppoll mask lets through, or by its timeout, and reports
 * exactly the fds that are ready; so is a poller of an epoll fd whose set watches a socket. `poll_mixed ROUNDS only-rings` runs the ping-pongs ROUNDS
 * times and leaves out the case with more kernel fds than one io_uring sleep watches (the
 * strace test in tests/tests/poll_wait.rs counts the sleeps the others make).
 */
#include "common.h"
#include <sys/eventfd.h>

#define WIDE 150
#define EVENTFDS 70

static volatile sig_atomic_t usr1;
static void on_usr1(int s)
{
	(void)s;
	usr1++;
}

/* The child: echoes one byte per round on `fds[i % n]` until each of `rounds` came back. */
static void echo_child(int *fds, int n, int rounds)
{
	char c;
	for (int i = 0; i < rounds; i++) {
		int fd = fds[(i * 37) % n];
		if (read(fd, &c, 1) != 1 || write(fd, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

/* Parent side of a ping-pong: writes on pair (i*37)%n, polls all of `pfd` (the sockets first,
 * then any kernel fds), and checks that exactly that socket is readable. */
static int pingpong(int *mine, int n, struct pollfd *pfd, int npfd, int rounds)
{
	char c = 'x';
	for (int i = 0; i < rounds; i++) {
		int k = (i * 37) % n;
		if (write(mine[k], &c, 1) != 1)
			return -1;
		for (int j = 0; j < npfd; j++)
			pfd[j].revents = 0;
		int r = poll(pfd, npfd, 10000);
		if (r != 1 || pfd[k].revents != POLLIN) {
			printf("  round %d: poll = %d, revents of %d = %#x\n", i, r, k, pfd[k].revents);
			return -1;
		}
		if (read(mine[k], &c, 1) != 1)
			return -1;
	}
	return 0;
}

/* `n` socketpairs, a child echoing on them, and the parent's poll over them and `extra` kernel
 * fds. Prints whether every round came back on the right socket. */
static void run_pingpong(const char *what, int n, int *extra, int nextra, int rounds)
{
	int *mine = calloc(n, sizeof *mine), *theirs = calloc(n, sizeof *theirs);
	struct pollfd *pfd = calloc(n + nextra, sizeof *pfd);
	for (int i = 0; i < n; i++) {
		int sv[2];
		sk_pair(SOCK_STREAM, sv);
		mine[i] = sv[0];
		theirs[i] = sv[1];
		pfd[i] = (struct pollfd){ .fd = sv[0], .events = POLLIN };
	}
	for (int i = 0; i < nextra; i++)
		pfd[n + i] = (struct pollfd){ .fd = extra[i], .events = POLLIN };
	pid_t pid = fork();
	if (pid == 0)
		echo_child(theirs, n, rounds);
	int bad = pingpong(mine, n, pfd, n + nextra, rounds);
	int st;
	waitpid(pid, &st, 0);
	printf("  %s: %d rounds %s, child %s\n", what, rounds, bad ? "FAILED" : "ok",
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
	for (int i = 0; i < n; i++) {
		close(mine[i]);
		close(theirs[i]);
	}
	free(mine);
	free(theirs);
	free(pfd);
}

static void show_revents(const char *what, int r, struct pollfd *p, int n)
{
	printf("  %s = %d%s%s:", what, r, r < 0 ? " " : "", r < 0 ? errname_io(errno) : "");
	for (int i = 0; i < n; i++)
		printf(" %#x", p[i].revents);
	printf("\n");
}

int main(int argc, char **argv)
{
	sk_setup();
	alarm(50);
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	int only_rings = argc > 2 && strcmp(argv[2], "only-rings") == 0;
	int efd = eventfd(0, 0), sv[2], st;
	pid_t pid;

	CASE("socket_and_eventfd_pingpong");
	run_pingpong("poll {socket, eventfd}", 1, &efd, 1, rounds);

	CASE("wide_pingpong");
	run_pingpong("poll over 150 sockets", WIDE, NULL, 0, rounds);

	CASE("wide_and_eventfd_pingpong");
	run_pingpong("poll over 150 sockets and an eventfd", WIDE, &efd, 1, rounds);

	CASE("many_kernel_fds_pingpong");
	if (!only_rings) {
		int e[EVENTFDS];
		for (int i = 0; i < EVENTFDS; i++)
			e[i] = eventfd(0, 0);
		run_pingpong("poll over a socket and 70 eventfds", 1, e, EVENTFDS, rounds / 10);
		for (int i = 0; i < EVENTFDS; i++)
			close(e[i]);
	}

	CASE("eventfd_wakes_a_socket_poller");
	sk_pair(SOCK_STREAM, sv);
	pid = fork();
	if (pid == 0) {
		usleep(20000);
		uint64_t one = 1;
		_exit(write(efd, &one, 8) != 8);
	}
	{
		struct pollfd p[2] = { { sv[0], POLLIN, 0 }, { efd, POLLIN, 0 } };
		int r = poll(p, 2, 10000);
		show_revents("poll", r, p, 2);
		waitpid(pid, &st, 0);
		uint64_t v;
		IOSHOW(read(efd, &v, 8));
	}

	CASE("timeout_with_nothing_ready");
	{
		struct pollfd p[2] = { { sv[0], POLLIN, 0 }, { efd, POLLIN, 0 } };
		int r = poll(p, 2, 30);
		show_revents("poll 30 ms", r, p, 2);
		struct timespec ts = { 0, 30000000 };
		r = ppoll(p, 2, &ts, NULL);
		show_revents("ppoll 30 ms", r, p, 2);
	}

	CASE("peer_close_wakes_a_mixed_poller");
	pid = fork();
	if (pid == 0) {
		usleep(20000);
		_exit(close(sv[1]) != 0);
	}
	close(sv[1]);
	{
		struct pollfd p[2] = { { sv[0], POLLIN, 0 }, { efd, POLLIN, 0 } };
		int r = poll(p, 2, 10000);
		waitpid(pid, &st, 0);
		show_revents("poll after the peer's last close", r, p, 2);
	}
	close(sv[0]);

	CASE("socket_wakes_a_poller_of_an_epoll_fd");
	sk_pair(SOCK_STREAM, sv);
	{
		/* An epoll fd whose set watches a shim socket, polled beside an eventfd: the
		 * write into the socket wakes the poller. */
		int ep = epoll_create1(0);
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = 1 };
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e));
		pid = fork();
		if (pid == 0) {
			usleep(20000);
			_exit(write(sv[1], "e", 1) != 1);
		}
		struct pollfd p[2] = { { ep, POLLIN, 0 }, { efd, POLLIN, 0 } };
		int r = poll(p, 2, 10000);
		show_revents("poll {epoll fd, eventfd}", r, p, 2);
		waitpid(pid, &st, 0);
		char c;
		IOSHOW(read(sv[0], &c, 1));
		close(ep);
	}
	close(sv[0]);
	close(sv[1]);

	CASE("ppoll_mask_lets_a_signal_in");
	{
		struct sigaction sa = { .sa_handler = on_usr1 };
		sigaction(SIGUSR1, &sa, NULL);
		sigset_t block, during;
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigprocmask(SIG_BLOCK, &block, NULL);
		sigemptyset(&during);
		sk_pair(SOCK_STREAM, sv);
		pid_t me = getpid();
		pid = fork();
		if (pid == 0) {
			usleep(20000);
			_exit(kill(me, SIGUSR1) != 0);
		}
		struct pollfd p[1] = { { sv[0], POLLIN, 0 } };
		errno = 0;
		int r = ppoll(p, 1, NULL, &during);
		show_revents("ppoll on a socket, SIGUSR1 let in", r, p, 1);
		printf("  handler ran %d time(s)\n", (int)usr1);
		waitpid(pid, &st, 0);
		/* Blocked again after the call: a second one stays pending through a timed wait. */
		kill(me, SIGUSR1);
		struct timespec ts = { 0, 20000000 };
		r = ppoll(p, 1, &ts, &block);
		show_revents("ppoll with SIGUSR1 kept blocked", r, p, 1);
		printf("  handler ran %d time(s)\n", (int)usr1);
		sigprocmask(SIG_UNBLOCK, &block, NULL);
		printf("  after unblocking: %d time(s)\n", (int)usr1);
		close(sv[0]);
		close(sv[1]);
	}

	CASE("more_entries_than_rlimit_nofile");
	{
		struct pollfd p[65];
		struct rlimit rl, small;
		sk_pair(SOCK_STREAM, sv);
		IOSHOW(write(sv[1], "z", 1));
		for (int i = 0; i < 65; i++)
			p[i] = (struct pollfd){ .fd = i ? -1 : sv[0], .events = POLLIN };
		getrlimit(RLIMIT_NOFILE, &rl);
		small.rlim_cur = 64;
		small.rlim_max = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &small))
			die("setrlimit");
		IOSHOW(poll(p, 64, 0));
		IOSHOW(poll(p, 65, 0));
		struct timespec ts = { 0, 0 };
		IOSHOW(ppoll(p, 65, &ts, NULL));
		IOSHOW(syscall(SYS_ppoll, p, 65, 1L, NULL, 8L));
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit");
		close(sv[0]);
		close(sv[1]);
	}

	CASE("pselect_socket_and_eventfd");
	sk_pair(SOCK_STREAM, sv);
	pid = fork();
	if (pid == 0) {
		usleep(20000);
		_exit(write(sv[1], "y", 1) != 1);
	}
	{
		fd_set r;
		FD_ZERO(&r);
		FD_SET(sv[0], &r);
		FD_SET(efd, &r);
		sigset_t none;
		sigemptyset(&none);
		int n = pselect((sv[0] > efd ? sv[0] : efd) + 1, &r, NULL, NULL, NULL, &none);
		printf("  pselect = %d: socket %d, eventfd %d\n", n, FD_ISSET(sv[0], &r) != 0,
		       FD_ISSET(efd, &r) != 0);
		waitpid(pid, &st, 0);
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
