/* epoll beyond level-triggering: EPOLLET on pipes and AF_UNIX sockets (EPOLLIN and EPOLLOUT
 * edges), EPOLLONESHOT and re-arming with MOD, EPOLLEXCLUSIVE (its errors, one waiter woken of
 * two), EPOLLRDHUP, an epoll fd inherited across fork and shared by processes, edge-triggered
 * wake-ups across processes.
 */
#include "common.h"
#include <sys/eventfd.h>

/* A child that waits on ep (timeout ms) and reports on pipe out: "tag bits" or "0"/"-1 E". */
static pid_t waiter(int ep, int timeout, int out)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		struct epoll_event e;
		char line[128];
		errno = 0;
		int n = epoll_wait(ep, &e, 1, timeout);
		int len = n > 0 ? snprintf(line, sizeof line, "1 tag %lu: %s", (unsigned long)e.data.u64,
					   epbits(e.events))
				: snprintf(line, sizeof line, "%d %s", n, n < 0 ? errname_io(errno) : "");
		if (write(out, line, len) != len)
			_exit(1);
		_exit(0);
	}
	return pid;
}

static void show_report(const char *what, int in)
{
	char line[128];
	long n = read(in, line, sizeof line);
	printf("  %s: epoll_wait = %.*s\n", what, (int)(n > 0 ? n : 0), line);
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int ep, p[2], sv[2], rep[2];
	char buf[256];
	pid_t pid, w1, w2;
	static char big[1 << 16];

	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	io_pipe(rep);

	CASE("et_pipe");
	io_pipe(p);
	ep_ctl("ADD read end EPOLLIN|EPOLLET", ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1);
	ep_show("empty", ep, 4, 0);
	IOSHOW(write(p[1], "ab", 2));
	ep_show("after a write", ep, 4, 0);
	ep_show("again, nothing new", ep, 4, 0);
	IOSHOW(read(p[0], buf, 1));
	ep_show("after a partial read", ep, 4, 0);
	IOSHOW(write(p[1], "c", 1));
	ep_show("after another write", ep, 4, 0);
	ep_ctl("MOD (re-arms the edge)", ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 2);
	ep_show("after MOD with data queued", ep, 4, 0);
	io_drain(p[0]);
	io_close(p[1]);
	ep_show("writer closed", ep, 4, 0);
	ep_show("again", ep, 4, 0);
	io_close(p[0]);

	CASE("et_socket_in_and_out");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD end 0 EPOLLIN|EPOLLOUT|EPOLLET", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLET, 3);
	ep_show("idle (writable edge at ADD)", ep, 4, 0);
	ep_show("again", ep, 4, 0);
	IOSHOW(write(sv[1], "in", 2));
	ep_show("data arrived", ep, 4, 0);
	ep_show("again", ep, 4, 0);
	io_fill(sv[0], 4096);
	ep_show("after filling the peer", ep, 4, 0);
	io_drain(sv[1]);
	ep_show("after the peer drained", ep, 4, 0);
	ep_show("again", ep, 4, 0);
	IOSHOW(shutdown(sv[1], SHUT_WR));
	ep_show("peer SHUT_WR", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	closep(sv);

	CASE("oneshot");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD EPOLLIN|EPOLLONESHOT", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLONESHOT, 4);
	IOSHOW(write(sv[1], "1", 1));
	ep_show("first event", ep, 4, 0);
	IOSHOW(write(sv[1], "2", 1));
	ep_show("disarmed", ep, 4, 0);
	ep_ctl("ADD again while disarmed", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 4);
	ep_ctl("MOD re-arms", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLONESHOT, 5);
	ep_show("re-armed", ep, 4, 0);
	ep_show("disarmed again", ep, 4, 0);
	ep_ctl("MOD to level-triggered", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 6);
	ep_show("level", ep, 4, 0);
	ep_show("level again", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);

	CASE("exclusive_errors");
	ep_ctl("ADD EPOLLEXCLUSIVE", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLEXCLUSIVE, 7);
	ep_ctl("MOD of an exclusive entry", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 7);
	ep_show("exclusive, data queued", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	ep_ctl("ADD EPOLLEXCLUSIVE|EPOLLONESHOT", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 8);
	ep_ctl("ADD plain", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 8);
	ep_ctl("MOD to EPOLLEXCLUSIVE", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLEXCLUSIVE, 8);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	{
		int inner = epoll_create1(0);
		ep_ctl("ADD an epoll fd with EPOLLEXCLUSIVE", ep, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLEXCLUSIVE, 9);
		io_close(inner);
	}
	closep(sv);

	CASE("exclusive_wakes_one_of_two");
	/* Two processes, each with its own epoll set holding the same pipe exclusively. */
	io_pipe(p);
	{
		int e1 = epoll_create1(0), e2 = epoll_create1(0);
		ep_ctl("ADD to set 1", e1, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLEXCLUSIVE, 11);
		ep_ctl("ADD to set 2", e2, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLEXCLUSIVE, 12);
		w1 = waiter(e1, 5000, rep[1]);
		io_wait_sleeping(w1);
		w2 = waiter(e2, 5000, rep[1]);
		io_wait_sleeping(w2);
		/* The kernel wakes "one or more" exclusive waiters (epoll(7)): the first, here; the
		 * shim wakes both (README: limitations). What both guarantee: after two writes each
		 * waiter has reported once, with its own set's tag. */
		if (write(p[1], "x", 1) != 1)
			die("write");
		pid_t first = waitpid(-1, NULL, 0);
		pid_t other = first == w1 ? w2 : w1;
		if (write(p[1], "y", 1) != 1)
			die("write");
		show_status_io("other waiter", io_reap(other));
		char lines[256];
		long n = read(rep[0], lines, sizeof lines - 1);
		lines[n > 0 ? n : 0] = 0;
		printf("  set 1 reported: %s, set 2 reported: %s\n", strstr(lines, "tag 11") ? "yes" : "no",
		       strstr(lines, "tag 12") ? "yes" : "no");
		io_close(e1);
		io_close(e2);
	}
	closep(p);

	CASE("rdhup");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD EPOLLIN|EPOLLRDHUP", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP, 13);
	ep_ctl("ADD peer EPOLLIN (no RDHUP asked)", ep, EPOLL_CTL_ADD, sv[1], EPOLLIN, 14);
	ep_show("idle", ep, 4, 0);
	IOSHOW(shutdown(sv[1], SHUT_WR));
	ep_show("peer SHUT_WR", ep, 4, 0);
	IOSHOW(shutdown(sv[1], SHUT_RD));
	ep_show("peer SHUT_RD too", ep, 4, 0);
	ep_ctl("DEL peer", ep, EPOLL_CTL_DEL, sv[1], 0, 0);
	closep(sv);
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD EPOLLRDHUP|EPOLLET", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP | EPOLLET, 15);
	ep_show("idle", ep, 4, 0);
	io_close(sv[1]);
	ep_show("peer closed", ep, 4, 0);
	ep_show("again (edge)", ep, 4, 0);
	io_close(sv[0]);

	CASE("inherited_across_fork");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD socket end 0", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 20);
	{
		int ack[2];
		io_pipe(ack);
		if ((pid = io_fork()) == 0) {
			io_close(ack[0]);
			ep_show("child: inherited set, nothing ready", ep, 4, 0);
			io_post(ack[1]);
			ep_show("child: epoll_wait(-1)", ep, 4, -1);
			_exit(0);
		}
		io_close(ack[1]);
		io_wait(ack[0]);
		io_wait_sleeping(pid);
		/* Added by the parent after the fork: the set is one object, the child sees it. */
		int e = eventfd(1, 0);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, e, &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 21 }))
			die("epoll_ctl");
		show_status_io("child", io_reap(pid));
		io_close(ack[0]);
		ep_show("parent", ep, 4, 0);
		ep_ctl("DEL eventfd", ep, EPOLL_CTL_DEL, e, 0, 0);
		io_close(e);
	}

	CASE("shared_set_oneshot_two_processes");
	ep_ctl("MOD socket to EPOLLIN|EPOLLONESHOT", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLONESHOT, 22);
	/* One waiter at a time: with two asleep on one set the kernel wakes the first to sleep,
	 * the shim both (README: limitations). */
	w1 = waiter(ep, 5000, rep[1]);
	io_wait_sleeping(w1);
	if (write(sv[1], "x", 1) != 1)
		die("write");
	show_report("the first process", rep[0]);
	show_status_io("first", io_reap(w1));
	w2 = waiter(ep, 5000, rep[1]);
	io_wait_sleeping(w2);
	if (write(sv[1], "y", 1) != 1)
		die("write");
	printf("  after more data, the disarmed interest wakes nobody: %s\n", io_nread(rep[0]) == 0 ? "yes" : "no");
	ep_ctl("MOD re-arms", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLONESHOT, 23);
	show_report("the second process", rep[0]);
	show_status_io("second", io_reap(w2));
	io_drain(sv[0]);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);

	CASE("et_wakeups_across_processes");
	ep_ctl("ADD EPOLLIN|EPOLLET", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLET, 24);
	{
		int ready[2];
		io_pipe(ready);
		if ((pid = io_fork()) == 0) {
			io_close(ready[0]);
			for (int round = 1; round <= 3; round++) {
				io_post(ready[1]);
				ep_show("child: epoll_wait(-1)", ep, 4, -1);
				ep_show("child: epoll_wait(0), no new data", ep, 4, 0);
			}
			io_post(ready[1]);
			ep_show("child: epoll_wait(100), data still unread", ep, 4, 100);
			_exit(0);
		}
		io_close(ready[1]);
		for (int round = 1; round <= 3; round++) {
			/* The child has made its previous calls and is (about to be) in epoll_wait(-1). */
			io_wait(ready[0]);
			io_wait_sleeping(pid);
			if (write(sv[1], "e", 1) != 1)
				die("write");
		}
		io_wait(ready[0]);
		int queued = io_nread(sv[0]);
		show_status_io("child", io_reap(pid));
		printf("  bytes queued, unread by the child: %d\n", queued);
		io_drain(sv[0]);
		io_close(ready[0]);
	}
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);

	CASE("et_pipe_writer_in_other_process");
	io_pipe(p);
	ep_ctl("ADD write end EPOLLOUT|EPOLLET", ep, EPOLL_CTL_ADD, p[1], EPOLLOUT | EPOLLET, 25);
	ep_show("empty pipe", ep, 4, 0);
	io_fill(p[1], 4096);
	ep_show("full", ep, 4, 0);
	{
		pid_t me = getpid();
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			/* One page read frees room: an EPOLLOUT edge. */
			if (read(p[0], big, 4096) != 4096)
				_exit(1);
			_exit(0);
		}
		ep_show("epoll_wait(-1), a child reads a page", ep, 4, -1);
		show_status_io("child", io_reap(pid));
	}
	ep_show("again", ep, 4, 0);
	closep(p);

	/* MODs of a level-triggered socket interest that leave its end-of-file and hang-up
	 * conditions as they were (redis-benchmark's EPOLLIN to EPOLLIN each request): new data
	 * and events take effect at once, the peer's shutdown and close are still seen, a sleeper
	 * in another process is woken by a MOD that makes the interest ready. */
	CASE("mod_level_triggered_socket");
	closep(sv);
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD EPOLLIN", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 30);
	ep_show("empty", ep, 4, 0);
	ep_ctl("MOD EPOLLIN, new tag", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 31);
	IOSHOW(write(sv[1], "ab", 2));
	ep_show("after a write", ep, 4, 0);
	ep_ctl("MOD EPOLLIN|EPOLLOUT", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLOUT, 32);
	ep_show("both", ep, 4, 0);
	ep_ctl("MOD EPOLLOUT", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT, 33);
	ep_show("writable only", ep, 4, 0);
	ep_ctl("MOD EPOLLIN", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 34);
	IOSHOW(read(sv[0], buf, sizeof buf));
	ep_show("drained", ep, 4, 0);
	ep_ctl("MOD EPOLLIN again", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 35);
	ep_show("still drained", ep, 4, 0);
	{
		pid_t me = getpid();
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			if (shutdown(sv[1], SHUT_WR))
				_exit(1);
			_exit(0);
		}
		ep_show("epoll_wait(-1), the peer shuts down writing", ep, 4, -1);
		show_status_io("child", io_reap(pid));
	}
	ep_ctl("MOD EPOLLIN after end of file", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 36);
	ep_show("end of file", ep, 4, 0);
	ep_ctl("MOD EPOLLIN|EPOLLRDHUP", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLRDHUP, 37);
	ep_show("with RDHUP", ep, 4, 0);
	ep_ctl("MOD EPOLLOUT|EPOLLRDHUP", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT | EPOLLRDHUP, 38);
	ep_show("writable, RDHUP", ep, 4, 0);
	ep_ctl("MOD EPOLLOUT", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT, 39);
	io_close(sv[1]);
	ep_show("peer closed", ep, 4, 0);
	ep_ctl("MOD EPOLLOUT again", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT, 40);
	ep_show("still closed", ep, 4, 0);
	ep_ctl("MOD EPOLLOUT|EPOLLEXCLUSIVE", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT | EPOLLEXCLUSIVE, 41);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	ep_ctl("MOD after DEL", ep, EPOLL_CTL_MOD, sv[0], EPOLLOUT, 42);
	io_close(sv[0]);
	{
		int s2[2], d;
		sk_pair(SOCK_STREAM, s2);
		ep_ctl("ADD EPOLLIN", ep, EPOLL_CTL_ADD, s2[0], EPOLLIN, 43);
		d = dup(s2[0]);
		io_close(s2[0]);
		ep_ctl("MOD through the closed fd", ep, EPOLL_CTL_MOD, s2[0], EPOLLIN, 44);
		IOSHOW(write(s2[1], "z", 1));
		ep_show("the dup keeps the interest", ep, 4, 0);
		ep_ctl("MOD of the dup (not in the set)", ep, EPOLL_CTL_MOD, d, EPOLLIN, 45);
		io_close(d);
		ep_show("last fd closed", ep, 4, 0);
		io_close(s2[1]);
	}

	/* DEL then ADD of the same socket, as event loops do at every request (the shim's kernel
	 * interest takes the new events with one MOD when nothing came between): the set shows
	 * nothing between the two, whatever is ready; errors, other calls, a fork and a close in
	 * between; edge-triggered, ONESHOT and EXCLUSIVE re-adds; a set that also has a kernel fd. */
	CASE("del_then_add_socket");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD EPOLLIN", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 50);
	IOSHOW(write(sv[1], "ab", 2));
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	ep_show("after DEL, data queued", ep, 4, 0);
	ep_ctl("ADD EPOLLOUT", ep, EPOLL_CTL_ADD, sv[0], EPOLLOUT, 51);
	ep_show("writable", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	ep_ctl("ADD EPOLLIN", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 52);
	ep_show("readable", ep, 4, 0);
	ep_ctl("ADD again", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 53);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	ep_ctl("MOD after DEL", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 54);
	ep_ctl("DEL after DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	{
		/* Re-added as asked each time: an edge at each ADD (twice), ONESHOT armed again,
		 * EXCLUSIVE (which only an ADD may set). */
		static const struct {
			const char *what;
			unsigned events;
		} readd[] = {
			{ "ADD EPOLLIN|EPOLLET", EPOLLIN | EPOLLET },
			{ "ADD EPOLLIN|EPOLLET again", EPOLLIN | EPOLLET },
			{ "ADD EPOLLIN|EPOLLONESHOT", EPOLLIN | EPOLLONESHOT },
			{ "ADD EPOLLIN|EPOLLEXCLUSIVE", EPOLLIN | EPOLLEXCLUSIVE },
		};
		for (int i = 0; i < 4; i++) {
			ep_ctl(readd[i].what, ep, EPOLL_CTL_ADD, sv[0], readd[i].events, 55 + i);
			ep_show("first wait", ep, 4, 0);
			ep_show("second wait", ep, 4, 0);
			if (readd[i].events & EPOLLEXCLUSIVE)
				ep_ctl("MOD of the exclusive interest", ep, EPOLL_CTL_MOD, sv[0], EPOLLIN, 59);
			ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
		}
	}
	ep_ctl("ADD EPOLLIN", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 60);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	{
		errno = 0;
		long r = epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], (struct epoll_event *)8);
		show_io("ADD with a bad event pointer", r, errno);
	}
	ep_ctl("ADD after the EFAULT", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 61);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	IOSHOW(read(sv[0], buf, 1));
	ep_ctl("ADD after a read between", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 62);
	ep_show("still one byte", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	{
		int ep2 = epoll_create1(0);
		if (ep2 < 0)
			die("epoll_create1");
		ep_ctl("ADD to another set", ep2, EPOLL_CTL_ADD, sv[0], EPOLLIN, 63);
		ep_show("the other set", ep2, 4, 0);
		ep_show("the first set", ep, 4, 0);
		ep_ctl("ADD back to the first", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 64);
		ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
		io_close(ep2);
	}
	if ((pid = io_fork()) == 0) {
		ep_show("child: the set after the parent's DEL", ep, 4, 0);
		ep_ctl("child: ADD", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 65);
		ep_show("child: readable", ep, 4, 0);
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	ep_show("parent: the child's interest", ep, 4, 0);
	ep_ctl("DEL", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
	{
		int e = eventfd(0, 0), d;
		if (e < 0)
			die("eventfd");
		ep_ctl("ADD an eventfd", ep, EPOLL_CTL_ADD, e, EPOLLIN, 66);
		ep_ctl("ADD the socket", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 67);
		ep_ctl("DEL the socket", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
		io_close(sv[1]);
		ep_show("peer closed, socket not in the set: epoll_wait(50)", ep, 4, 50);
		ep_ctl("ADD the socket", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 68);
		ep_show("end of file", ep, 4, 0);
		ep_ctl("DEL the socket", ep, EPOLL_CTL_DEL, sv[0], 0, 0);
		d = dup(sv[0]);
		io_close(sv[0]);
		ep_show("its fd closed (a dup left): epoll_wait(50)", ep, 4, 50);
		ep_ctl("ADD the dup", ep, EPOLL_CTL_ADD, d, EPOLLIN, 69);
		ep_show("through the dup", ep, 4, 0);
		ep_ctl("DEL the dup", ep, EPOLL_CTL_DEL, d, 0, 0);
		ep_ctl("DEL the eventfd", ep, EPOLL_CTL_DEL, e, 0, 0);
		io_close(d);
		io_close(e);
	}
	ep_show("empty set", ep, 4, 0);

	io_close(ep);
	closep(rep);

	sk_cleanup();
	return 0;
}
