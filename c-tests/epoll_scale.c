/* epoll, poll and select at scale and in the kernel's order: 5000 interests in one set, the
 * ready list's order (the order in which items became ready; level-triggered items back at its
 * tail after each harvest), poll over 2000 fds, select beyond 1024 fds, an epoll fd polled and
 * selected, nested sets (readiness through an inner set, ELOOP for loops and deep chains,
 * EINVAL for a set in itself), EPOLLEXCLUSIVE waking the first of four processes (the first
 * live one after waiters were killed), and accept queue order under many clients.
 * Under the shim every byte moves through its pipes and sockets.
 */
#include "common.h"
#include <sys/select.h>

#define PIPES 2500
#define POLLPIPES 1000

static int rd[PIPES], wr[PIPES];

/* A child that writes a byte into fd once this process sleeps; wait_child() it after. */
static pid_t put_when_asleep(int fd)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		io_wait_sleeping(getppid());
		io_post(fd);
		_exit(0);
	}
	return pid;
}

/* epoll_wait for a count only, with its events checked against the tags [lo, hi). */
static int counted(int ep, int max, unsigned long lo, unsigned long hi)
{
	static struct epoll_event ev[1024];
	int n = epoll_wait(ep, ev, max, 0);
	for (int i = 0; i < n; i++)
		if (ev[i].data.u64 < lo || ev[i].data.u64 >= hi)
			printf("  (tag %lu outside [%lu, %lu))\n", (unsigned long)ev[i].data.u64, lo, hi);
	return n;
}

static int add(int ep, int fd, unsigned events, unsigned long tag)
{
	struct epoll_event e = { .events = events, .data.u64 = tag };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

static void many_interests(void)
{
	CASE("5000_interests_in_one_set");
	int ep = epoll_create1(0), bad = 0;
	for (int i = 0; i < PIPES; i++) {
		int p[2];
		if (pipe(p))
			die("pipe");
		rd[i] = p[0];
		wr[i] = p[1];
		bad += add(ep, rd[i], EPOLLIN, i) != 0;
		bad += add(ep, wr[i], EPOLLOUT | EPOLLONESHOT, 10000 + i) != 0;
	}
	printf("  adds failed: %d\n", bad);
	int got = 0, n;
	while ((n = counted(ep, 1024, 10000, 10000 + PIPES)) > 0)
		got += n;
	printf("  write ends reported once each: %d (then %d)\n", got, n);

	CASE("ready_list_order");
	int order[] = { 1200, 5, 2499, 77, 0, 1800 };
	for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++)
		io_post(wr[order[i]]);
	ep_ordered("all", ep, 16, 0);
	ep_ordered("again, level-triggered", ep, 16, 0);

	CASE("level_triggered_items_back_at_the_tail");
	ep_ordered("two", ep, 2, 0);
	ep_ordered("two more", ep, 2, 0);
	ep_ordered("two more", ep, 2, 0);
	ep_ordered("two more: the first two again", ep, 2, 0);
	io_post(wr[3]);
	ep_ordered("a new one after those", ep, 16, 0);

	CASE("drained_items_leave_the_list");
	io_wait(rd[5]);
	io_wait(rd[0]);
	ep_ordered("without 5 and 0", ep, 16, 0);
	for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++)
		if (order[i] != 5 && order[i] != 0)
			io_wait(rd[order[i]]);
	io_wait(rd[3]);
	ep_ordered("none", ep, 16, 0);

	CASE("edge_triggered_in_ready_order");
	for (int i = 0; i < 4; i++) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u64 = 100 + i };
		epoll_ctl(ep, EPOLL_CTL_MOD, rd[100 + i], &e);
	}
	io_post(wr[103]);
	io_post(wr[101]);
	io_post(wr[102]);
	ep_ordered("edges", ep, 16, 0);
	ep_ordered("no new edge", ep, 16, 0);
	io_post(wr[101]);
	ep_ordered("a new edge", ep, 16, 0);
	io_wait(rd[101]);
	io_wait(rd[101]);
	io_wait(rd[102]);
	io_wait(rd[103]);

	CASE("wait_over_a_big_set_sleeps_until_one_is_ready");
	pid_t pid = put_when_asleep(wr[2222]);
	ep_ordered("woken", ep, 16, 5000);
	wait_child(pid);
	io_wait(rd[2222]);

	CASE("close_leaves_the_set");
	io_post(wr[10]);
	io_post(wr[20]);
	close(rd[10]);
	close(wr[10]);
	ep_ordered("10 closed", ep, 16, 0);
	rd[10] = wr[10] = -1;
	io_wait(rd[20]);
	for (int i = 0; i < PIPES; i++)
		if (rd[i] >= 0) {
			close(rd[i]);
			close(wr[i]);
		}
	ep_ordered("all closed", ep, 16, 0);
	close(ep);
}

static void poll_many(void)
{
	CASE("poll_over_2000_fds");
	static struct pollfd fds[2 * POLLPIPES];
	for (int i = 0; i < POLLPIPES; i++) {
		int p[2];
		if (pipe(p))
			die("pipe");
		fds[2 * i] = (struct pollfd){ p[0], POLLIN, 0 };
		fds[2 * i + 1] = (struct pollfd){ p[1], POLLOUT, 0 };
	}
	io_post(fds[2 * 17 + 1].fd);
	io_post(fds[2 * 999 + 1].fd);
	errno = 0;
	int n = poll(fds, 2 * POLLPIPES, 0);
	printf("  poll = %d %s\n", n, n < 0 ? errname_io(errno) : "");
	int readable = 0, writable = 0;
	for (int i = 0; i < 2 * POLLPIPES; i++) {
		if (fds[i].revents & POLLIN) {
			printf("  readable: pipe %d\n", i / 2);
			readable++;
		}
		writable += !!(fds[i].revents & POLLOUT);
	}
	printf("  readable %d writable %d\n", readable, writable);

	CASE("poll_over_2000_fds_sleeps_until_one_is_ready");
	io_wait(fds[2 * 17].fd);
	io_wait(fds[2 * 999].fd);
	for (int i = 0; i < 2 * POLLPIPES; i += 2)
		fds[i + 1].events = 0;
	pid_t pid = put_when_asleep(fds[2 * 500 + 1].fd);
	n = poll(fds, 2 * POLLPIPES, 5000);
	printf("  poll = %d\n", n);
	for (int i = 0; i < 2 * POLLPIPES; i++)
		if (fds[i].revents)
			printf("  fd of pipe %d: %#x\n", i / 2, fds[i].revents);
	wait_child(pid);

	CASE("select_beyond_1024_fds");
	int top = fds[2 * POLLPIPES - 1].fd;
	unsigned long set[(top + 64) / 64], wset[(top + 64) / 64];
	memset(set, 0, sizeof set);
	memset(wset, 0, sizeof wset);
	for (int i = 0; i < 2 * POLLPIPES; i += 2)
		set[fds[i].fd / 64] |= 1UL << fds[i].fd % 64;
	int hi = fds[2 * 990 + 1].fd;
	wset[hi / 64] |= 1UL << hi % 64;
	n = select(top + 1, (fd_set *)set, (fd_set *)wset, NULL, &(struct timeval){ 0, 0 });
	printf("  select = %d, fd of pipe 990 writable: %d, above 1024: %d\n", n,
	       !!(wset[hi / 64] >> hi % 64 & 1), hi > 1024);
	for (int i = 0; i < 2 * POLLPIPES; i += 2)
		if (set[fds[i].fd / 64] >> fds[i].fd % 64 & 1)
			printf("  readable: pipe %d\n", i / 2);
	io_wait(fds[2 * 500].fd);
	for (int i = 0; i < 2 * POLLPIPES; i++)
		close(fds[i].fd);
}

static void epoll_fd_polled(void)
{
	CASE("epoll_fd_in_poll_and_select");
	int ep = epoll_create1(0), p[2];
	if (pipe(p))
		die("pipe");
	add(ep, p[0], EPOLLIN, 1);
	struct pollfd pf = { ep, POLLIN | POLLOUT, 0 };
	int n = poll(&pf, 1, 0);
	printf("  poll before = %d revents %#x\n", n, pf.revents);
	io_post(p[1]);
	n = poll(&pf, 1, 0);
	printf("  poll after a write = %d revents %#x\n", n, pf.revents);
	fd_set r;
	FD_ZERO(&r);
	FD_SET(ep, &r);
	n = select(ep + 1, &r, NULL, NULL, &(struct timeval){ 0, 0 });
	printf("  select = %d, set: %d\n", n, FD_ISSET(ep, &r));
	io_wait(p[0]);
	n = poll(&pf, 1, 0);
	printf("  poll after the read = %d revents %#x\n", n, pf.revents);

	CASE("poll_on_an_epoll_fd_sleeps_until_ready");
	pid_t pid = put_when_asleep(p[1]);
	n = poll(&pf, 1, 5000);
	printf("  poll = %d revents %#x\n", n, pf.revents);
	wait_child(pid);
	io_wait(p[0]);
	close(p[0]);
	close(p[1]);
	close(ep);
}

static void nested(void)
{
	CASE("nested_set_reports_its_readiness");
	int inner = epoll_create1(0), outer = epoll_create1(0), p[2];
	if (pipe(p))
		die("pipe");
	add(inner, p[0], EPOLLIN, 1);
	IOSHOW(add(outer, inner, EPOLLIN, 2));
	ep_ordered("outer, nothing ready", outer, 16, 0);
	io_post(p[1]);
	ep_ordered("outer", outer, 16, 0);
	ep_ordered("outer, level-triggered", outer, 16, 0);
	ep_ordered("inner", inner, 16, 0);
	io_wait(p[0]);
	ep_ordered("outer after the read", outer, 16, 0);

	CASE("nested_set_wakes_a_sleeper_of_the_outer");
	pid_t pid = put_when_asleep(p[1]);
	ep_ordered("outer", outer, 16, 5000);
	wait_child(pid);
	io_wait(p[0]);

	CASE("nested_edge_triggered");
	struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u64 = 3 };
	IOSHOW(epoll_ctl(outer, EPOLL_CTL_MOD, inner, &e));
	io_post(p[1]);
	ep_ordered("outer", outer, 16, 0);
	ep_ordered("outer, no new edge", outer, 16, 0);
	io_post(p[1]);
	ep_ordered("outer, a new write", outer, 16, 0);
	io_wait(p[0]);
	io_wait(p[0]);

	CASE("nested_loops_and_self");
	IOSHOW(add(inner, outer, EPOLLIN, 4));
	IOSHOW(add(outer, outer, EPOLLIN, 5));
	int third = epoll_create1(0);
	IOSHOW(add(third, outer, EPOLLIN, 6));
	IOSHOW(add(inner, third, EPOLLIN, 7));
	close(third);

	CASE("nested_depth");
	int chain[8];
	chain[0] = epoll_create1(0);
	add(chain[0], p[0], EPOLLIN, 0);
	for (int i = 1; i < 8; i++) {
		chain[i] = epoll_create1(0);
		char what[64];
		snprintf(what, sizeof what, "add set %d into set %d", i - 1, i);
		errno = 0;
		long r = add(chain[i], chain[i - 1], EPOLLIN, i);
		show_io(what, r, errno);
	}
	io_post(p[1]);
	for (int i = 0; i < 8; i++) {
		char what[32];
		snprintf(what, sizeof what, "set %d", i);
		ep_ordered(what, chain[i], 16, 0);
	}
	io_wait(p[0]);
	for (int i = 0; i < 8; i++)
		close(chain[i]);
	close(inner);
	close(outer);
	close(p[0]);
	close(p[1]);
}

/* Forks n children that each wait (2 s) on their own set watching fd with `events`; SIGKILLs
 * the first `killed` of them once all sleep (reaped if `reap`, else left as zombies); prints
 * which woke to an event after one byte went into wr. */
static void woken(const char *what, int n, int fd, int wr, unsigned events, int killed, int reap)
{
	pid_t pids[8];
	for (int i = 0; i < n; i++) {
		pids[i] = io_fork();
		if (pids[i] == 0) {
			int mine = epoll_create1(0);
			add(mine, fd, events, i);
			struct epoll_event e;
			_exit(epoll_wait(mine, &e, 1, 2000) > 0 ? 7 : 0);
		}
		/* One after another: which one wakes is the kernel's order (the first interest of
		 * an EPOLLEXCLUSIVE file). */
		io_wait_sleeping(pids[i]);
	}
	/* A killed waiter's set went with its files as it exited (exit_files, before any reaping). */
	for (int i = 0; i < killed; i++) {
		kill(pids[i], SIGKILL);
		if (reap)
			wait_child(pids[i]);
		else
			while (io_state_of(pids[i]) != 'Z')
				usleep(1000);
	}
	io_post(wr);
	int w = 0;
	char who[8];
	for (int i = 0; i < n; i++) {
		if (i < killed) {
			who[i] = 'k';
			if (!reap)
				wait_child(pids[i]);
			continue;
		}
		int st = wait_child(pids[i]);
		who[i] = WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 'w' : '-';
		w += who[i] == 'w';
	}
	printf("  %s: %d of %d woke:", what, w, n);
	for (int i = 0; i < n; i++)
		printf(" %c", who[i]);
	printf("\n");
}

static void wake_one(void)
{
	int p[2];
	if (pipe(p))
		die("pipe");
	CASE("exclusive_wakes_one_of_four_processes");
	woken("EPOLLEXCLUSIVE", 4, p[0], p[1], EPOLLIN | EPOLLEXCLUSIVE, 0, 0);
	io_wait(p[0]);

	CASE("exclusive_first_waiter_killed_and_reaped");
	woken("EPOLLEXCLUSIVE", 4, p[0], p[1], EPOLLIN | EPOLLEXCLUSIVE, 1, 1);
	io_wait(p[0]);

	CASE("exclusive_first_two_waiters_killed_unreaped");
	woken("EPOLLEXCLUSIVE", 4, p[0], p[1], EPOLLIN | EPOLLEXCLUSIVE, 2, 0);
	io_wait(p[0]);

	CASE("non_exclusive_wakes_all_four");
	woken("plain", 4, p[0], p[1], EPOLLIN, 0, 0);
	io_wait(p[0]);

	close(p[0]);
	close(p[1]);
}

/* Each client process connects in turn and sends its number; the server accepts them all
 * afterwards: the kernel's accept queue order, each connection with its own client's data. */
static void accept_order(void)
{
	struct sockaddr_un a;
	socklen_t len = sk_path(&a, "order");
	int l = sk_listener(SOCK_STREAM, &a, len, 512);
	CASE("accept_order_of_64_client_processes");
	int go[2];
	if (pipe(go))
		die("pipe");
	pid_t pids[64];
	for (int i = 0; i < 64; i++) {
		pids[i] = io_fork();
		if (pids[i] == 0) {
			int s = sk_connect(SOCK_STREAM, &a, len);
			char m = (char)i;
			if (write(s, &m, 1) != 1 || write(go[1], &m, 1) != 1)
				_exit(1);
			io_wait(s); /* until the server writes */
			_exit(0);
		}
		char c;
		if (read(go[0], &c, 1) != 1)
			die("read");
	}
	int bad = 0, fds[64];
	for (int i = 0; i < 64; i++) {
		fds[i] = accept(l, NULL, NULL);
		char m;
		if (fds[i] < 0 || read(fds[i], &m, 1) != 1 || m != (char)i)
			bad++;
	}
	printf("  out of order or lost: %d\n", bad);
	for (int i = 0; i < 64; i++) {
		io_post(fds[i]);
		wait_child(pids[i]);
		close(fds[i]);
	}

	CASE("accept_order_of_1000_connects_of_one_process");
	static int c[1000], s[1000];
	bad = 0;
	for (int k = 0; k < 1000; k += 250) {
		for (int i = k; i < k + 250; i++) {
			c[i] = sk_connect(SOCK_STREAM, &a, len);
			if (write(c[i], &i, sizeof i) != sizeof i)
				die("write");
		}
		for (int i = k; i < k + 250; i++) {
			int m = -1;
			s[i] = accept(l, NULL, NULL);
			if (s[i] < 0 || read(s[i], &m, sizeof m) != sizeof m || m != i)
				bad++;
		}
	}
	printf("  out of order or lost: %d\n", bad);

	CASE("1000_connections_in_one_server_set");
	int ep = epoll_create1(0);
	for (int i = 0; i < 1000; i++)
		add(ep, s[i], EPOLLIN, i);
	for (int i = 999; i >= 0; i -= 111)
		if (write(c[i], &i, sizeof i) != sizeof i)
			die("write");
	ep_ordered("ready connections", ep, 16, 0);
	for (int i = 999; i >= 0; i -= 111) {
		int m;
		if (read(s[i], &m, sizeof m) != sizeof m || m != i)
			printf("  connection %d: wrong data\n", i);
	}
	close(c[500]);
	ep_ordered("a client closed", ep, 16, 0);
	for (int i = 0; i < 1000; i++) {
		if (i != 500)
			close(c[i]);
		close(s[i]);
	}
	close(ep);
	close(l);
}

int main(void)
{
	sk_setup();
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < 8192)
		die("RLIMIT_NOFILE below 8192");
	/* The fds this test makes must get the same numbers in both runs (ipcshim diff compares
	 * them). The free fds below 1024 are taken, and the shim's own two fds (the last below the
	 * soft limit it started with, at most 4094 and 4095) are moved out of the way: with every
	 * fd up to 8189 open, a dup2 onto 4094 and 4095 (the shim first moves its fd there to the
	 * lowest free number above) leaves 8190 and 8191 to the shim, and 1024 on free for the
	 * test, in both runs. */
	int pad[1024], npad = 0, fd;
	while ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd < 8190)
		if (fd < 1024)
			pad[npad++] = fd;
	if (fd >= 0)
		close(fd);
	if (dup2(pad[0], 4094) != 4094 || dup2(pad[0], 4095) != 4095)
		die("dup2");
	for (fd = 1024; fd < 8190; fd++)
		close(fd);
	many_interests();
	poll_many();
	epoll_fd_polled();
	nested();
	wake_one();
	accept_order();
	for (int i = 0; i < npad; i++)
		close(pad[i]);
	sk_cleanup();
	return 0;
}
