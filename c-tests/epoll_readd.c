/* An AF_UNIX socket's interest DELeted and ADDed again at once, as event loops do at every
 * request (redis/ae: DEL of EPOLLIN, ADD of EPOLLOUT, and back), and MODs switching EPOLLOUT on
 * and off: the new interest's events and data, its place at the ready list's tail, level,
 * edge and ONESHOT after the re-add, ADD errors, a shutdown of one direction or a close while
 * an EPOLLOUT-only interest is registered (no event it does not want, and no busy wait, also
 * in a set with a kernel fd), other calls between the DEL and the ADD, and an epoll fd shared
 * with a forked child. */
#include "common.h"
#include <sys/eventfd.h>
#include <sys/resource.h>

/* DEL then ADD of fd with events and tag, with nothing between; both results printed. */
static void readd(int ep, int fd, unsigned events, unsigned long tag)
{
	struct epoll_event e = { .events = events, .data.u64 = tag }, none;
	errno = 0;
	long d = epoll_ctl(ep, EPOLL_CTL_DEL, fd, &none);
	int de = errno;
	errno = 0;
	long a = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	int ae = errno;
	show_io("  DEL", d, de);
	show_io("  ADD", a, ae);
}

static long cpu_us(void)
{
	struct rusage u;
	if (getrusage(RUSAGE_SELF, &u))
		die("getrusage");
	return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000L + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

/* A 200 ms wait that must find nothing: its result, and whether it slept (a busy wait
 * burns the CPU time it waits). */
static void idle_wait(const char *what, int ep)
{
	long t0 = cpu_us();
	ep_ordered(what, ep, 16, 200);
	printf("  slept: %s\n", cpu_us() - t0 < 100000 ? "yes" : "no (busy)");
}

/* A set (with an eventfd too if mixed) where a new socketpair's s[0] was added with EPOLLIN,
 * then DELeted and ADDed with EPOLLOUT, tag 2. */
static int out_only_set(int mixed, int s[2], int *efd)
{
	printf(" %s\n", mixed ? "with a kernel fd" : "sockets only");
	int ep = epoll_create1(0);
	*efd = eventfd(0, 0);
	if (mixed)
		ep_add(ep, *efd, EPOLLIN, 9);
	sk_pair(SOCK_STREAM, s);
	ep_add(ep, s[0], EPOLLIN, 1);
	readd(ep, s[0], EPOLLOUT, 2);
	return ep;
}

static void drain(int fd)
{
	char buf[4096];
	io_set_nonblock(fd, 1);
	while (read(fd, buf, sizeof buf) > 0)
		;
	io_set_nonblock(fd, 0);
}

int main(void)
{
	sk_setup();
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	struct epoll_event none;
	int s[2], t[2];

	CASE("del_add_switches_in_and_out");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		ep_add(ep, s[0], EPOLLIN, 1);
		ep_ordered("nothing to read", ep, 16, 0);
		readd(ep, s[0], EPOLLOUT, 2);
		ep_ordered("writable, new data", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 3);
		ep_ordered("nothing to read", ep, 16, 0);
		io_post(s[1]);
		ep_ordered("readable", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 4);
		ep_ordered("readable, level, new data", ep, 16, 0);
		readd(ep, s[0], EPOLLIN | EPOLLOUT, 5);
		ep_ordered("both", ep, 16, 0);
		for (int i = 0; i < 1000; i++) {
			struct epoll_event e = { .events = i & 1 ? EPOLLIN : EPOLLOUT, .data.u64 = 100 + (i & 1) };
			if (epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none) || epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &e))
				die("readd loop");
		}
		ep_ordered("after 1000 re-adds", ep, 16, 0);
		close(ep);
		close(s[0]);
		close(s[1]);
	}

	CASE("readd_goes_to_the_ready_list_tail");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		sk_pair(SOCK_STREAM, t);
		ep_add(ep, s[0], EPOLLIN, 1);
		ep_add(ep, t[0], EPOLLIN, 2);
		io_post(s[1]);
		io_post(t[1]);
		ep_ordered("in order", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 3);
		ep_ordered("re-added one last", ep, 16, 0);
		ep_ordered("one at a time", ep, 1, 0);
		readd(ep, t[0], EPOLLOUT, 4);
		ep_ordered("one at a time", ep, 1, 0);
		ep_ordered("one at a time", ep, 1, 0);
		close(ep);
		for (int i = 0; i < 2; i++) {
			close(s[i]);
			close(t[i]);
		}
	}

	CASE("edge_and_oneshot_after_readd");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		io_post(s[1]);
		ep_add(ep, s[0], EPOLLIN | EPOLLET, 1);
		ep_ordered("edge", ep, 16, 0);
		ep_ordered("no new edge", ep, 16, 0);
		readd(ep, s[0], EPOLLIN | EPOLLET, 2);
		ep_ordered("re-added: ready again", ep, 16, 0);
		ep_ordered("no new edge", ep, 16, 0);
		readd(ep, s[0], EPOLLIN | EPOLLONESHOT, 3);
		ep_ordered("oneshot", ep, 16, 0);
		ep_ordered("disabled", ep, 16, 0);
		readd(ep, s[0], EPOLLIN | EPOLLONESHOT, 4);
		ep_ordered("re-added: armed", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 5);
		ep_ordered("level from oneshot", ep, 16, 0);
		ep_ordered("level again", ep, 16, 0);
		readd(ep, s[0], EPOLLOUT | EPOLLET, 6);
		ep_ordered("edge out", ep, 16, 0);
		ep_ordered("no new edge", ep, 16, 0);
		readd(ep, s[0], EPOLLIN | EPOLLEXCLUSIVE, 7);
		ep_ordered("exclusive", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLIN, 8);
		readd(ep, s[0], EPOLLIN, 9);
		ep_ordered("level again", ep, 16, 0);
		close(ep);
		close(s[0]);
		close(s[1]);
	}

	CASE("mod_switching_epollout");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		ep_add(ep, s[0], EPOLLIN, 1);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLIN | EPOLLOUT, 2);
		ep_ordered("writable", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLIN, 3);
		ep_ordered("nothing", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLOUT, 4);
		ep_ordered("writable", ep, 16, 0);
		io_fill(s[0], 4096);
		ep_ordered("full", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLIN | EPOLLOUT, 5);
		io_post(s[1]);
		ep_ordered("readable, not writable", ep, 16, 0);
		drain(s[1]);
		ep_ordered("both", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLOUT, 6);
		readd(ep, s[0], EPOLLIN, 7);
		ep_ordered("readable", ep, 16, 0);
		close(ep);
		close(s[0]);
		close(s[1]);
	}

	CASE("peer_shutdown_while_epollout_only");
	for (int mixed = 0; mixed < 2; mixed++) {
		int efd, ep = out_only_set(mixed, s, &efd);
		io_fill(s[0], 4096);
		ep_ordered("full", ep, 16, 0);
		shutdown(s[1], SHUT_WR);
		idle_wait("peer's end of file, unwanted", ep);
		readd(ep, s[0], EPOLLIN, 3);
		ep_ordered("end of file", ep, 16, 0);
		readd(ep, s[0], EPOLLOUT, 4);
		idle_wait("unwanted again", ep);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLOUT | EPOLLRDHUP, 5);
		ep_ordered("rdhup", ep, 16, 0);
		ep_ctl("  MOD", ep, EPOLL_CTL_MOD, s[0], EPOLLOUT, 6);
		drain(s[1]);
		ep_ordered("writable", ep, 16, 0);
		shutdown(s[0], SHUT_RD);
		readd(ep, s[0], EPOLLOUT, 7);
		ep_ordered("own read side shut", ep, 16, 0);
		shutdown(s[0], SHUT_WR);
		readd(ep, s[0], EPOLLOUT, 8);
		ep_ordered("both shut", ep, 16, 0);
		close(ep);
		close(efd);
		close(s[0]);
		close(s[1]);
	}

	CASE("own_shutdown_while_registered");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		ep_add(ep, s[0], EPOLLOUT, 1);
		readd(ep, s[0], EPOLLIN | EPOLLRDHUP, 2);
		shutdown(s[0], SHUT_RD);
		ep_ordered("read side shut", ep, 16, 0);
		readd(ep, s[0], EPOLLOUT, 3);
		ep_ordered("writable", ep, 16, 0);
		shutdown(s[1], SHUT_RD);
		readd(ep, s[0], EPOLLOUT, 4);
		ep_ordered("peer's read side shut", ep, 16, 0);
		close(ep);
		close(s[0]);
		close(s[1]);
	}

	CASE("peer_closed_while_registered");
	for (int mixed = 0; mixed < 2; mixed++) {
		int efd, ep = out_only_set(mixed, s, &efd);
		close(s[1]);
		ep_ordered("hang-up", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 3);
		ep_ordered("hang-up and end of file", ep, 16, 0);
		readd(ep, s[0], EPOLLOUT, 4);
		ep_ordered("hang-up", ep, 16, 0);
		close(ep);
		close(efd);
		close(s[0]);
	}

	CASE("own_fd_closed_around_del");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		int d = dup(s[0]);
		ep_add(ep, s[0], EPOLLIN, 1);
		readd(ep, s[0], EPOLLOUT, 2);
		IOSHOW(close(d));
		ep_ordered("a dup closed: still there", ep, 16, 0);
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		IOSHOW(close(s[0]));
		sk_pair(SOCK_STREAM, t);
		printf("  same number: %s\n", t[0] == s[0] ? "yes" : "no");
		io_post(t[1]);
		ep_ordered("gone", ep, 16, 0);
		ep_add(ep, t[0], EPOLLIN | EPOLLOUT, 3);
		ep_ordered("the new socket", ep, 16, 0);
		close(ep);
		close(s[1]);
		close(t[0]);
		close(t[1]);
	}

	CASE("calls_between_del_and_add");
	{
		int ep = epoll_create1(0);
		sk_pair(SOCK_STREAM, s);
		sk_pair(SOCK_STREAM, t);
		ep_add(ep, s[0], EPOLLIN, 1);
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		io_post(s[1]);
		ep_ordered("deleted: nothing", ep, 16, 0);
		ep_add(ep, s[0], EPOLLIN, 2);
		ep_ordered("added after a write and a wait", ep, 16, 0);
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		ep_add(ep, t[0], EPOLLOUT, 3);
		ep_add(ep, s[0], EPOLLIN, 4);
		ep_ordered("another fd added between", ep, 16, 0);
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 5 }));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_MOD, s[0], &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 6 }));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 7 }));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 8 }));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &(struct epoll_event){ .events = 1u << 29 | EPOLLIN, .data.u64 = 9 }));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], (struct epoll_event *)8));
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 10 }));
		ep_ordered("after the errors", ep, 16, 0);
		close(ep);
		for (int i = 0; i < 2; i++) {
			close(s[i]);
			close(t[i]);
		}
	}

	CASE("fork_sharing_the_set");
	{
		int ep = epoll_create1(0), sync[2];
		if (pipe(sync))
			die("pipe");
		sk_pair(SOCK_STREAM, s);
		ep_add(ep, s[0], EPOLLIN, 1);
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], &none));
		pid_t pid = io_fork();
		if (pid == 0) {
			ep_ordered("child: deleted before the fork", ep, 16, 0);
			readd(ep, s[0], EPOLLOUT, 2);
			ep_ordered("child: its re-add", ep, 16, 0);
			io_post(sync[1]);
			_exit(0);
		}
		io_wait(sync[0]);
		ep_ordered("parent: the child's interest", ep, 16, 0);
		readd(ep, s[0], EPOLLIN, 3);
		io_post(s[1]);
		ep_ordered("parent: its re-add", ep, 16, 0);
		show_status_io("child", io_reap(pid));
		close(ep);
		close(s[0]);
		close(s[1]);
		close(sync[0]);
		close(sync[1]);
	}

	sk_cleanup();
	return 0;
}
