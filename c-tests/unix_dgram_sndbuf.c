/* Named AF_UNIX datagram sockets (socket() + bind/connect) with net/unix/af_unix.c's
 * accounting: each datagram's truesize is charged to its sender's sk_wmem_alloc until the
 * receiver takes it, so a sender's SIOCOUTQ, EAGAIN, blocking and POLLOUT follow its own
 * SO_SNDBUF whoever the receiver is (sock_alloc_send_pskb, unix_writable); a receiver's queue
 * takes at most max_dgram_qlen + 1 datagrams from senders it is not connected to
 * (unix_recvq_full), which a connected sender's POLLOUT also reflects (unix_dgram_poll).
 * Unconnected, connected and mutually connected senders, several senders to one receiver,
 * sending to oneself, SO_SNDBUF shrunk and raised (waking a blocked sender), a sender woken
 * by the receiver's reads, epoll's EPOLLOUT, and the datagrams of a killed or closed sender.
 * Fill counts and charges compared exactly. */
#include "common.h"
#include "sk_buf.h"
#include <sys/epoll.h>

static char g_buf[1 << 17];

static void set_sndbuf(const char *what, int fd, int v)
{
	errno = 0;
	int r = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	printf("  %s: setsockopt(%d) = %d %s, SO_SNDBUF now %d\n", what, v, r, r ? errname_io(errno) : "",
	       sndbuf(fd));
}

/* Datagrams of size sent with MSG_DONTWAIT (to a unless it is NULL) until one fails. */
static int fill(int s, size_t size, const struct sockaddr_un *a, socklen_t la)
{
	int count = 0;
	errno = 0;
	while (sendto(s, g_buf, size, MSG_DONTWAIT, (const struct sockaddr *)a, a ? la : 0) == (long)size)
		count++;
	return count;
}

static void show_fill(const char *what, int s, size_t size, const struct sockaddr_un *a, socklen_t la)
{
	int n = fill(s, size, a, la);
	int e = errno;
	printf("  %s: %d datagrams of %zu, then %s; SIOCOUTQ %d, POLLOUT %d\n", what, n, size, errname_io(e),
	       outq(s), pollout(s));
}

static int take(int r)
{
	int n = recv(r, g_buf, sizeof g_buf, MSG_DONTWAIT);
	if (n < 0)
		die("recv");
	return n;
}

static int drain(int fd)
{
	int count = 0;
	while (recv(fd, g_buf, sizeof g_buf, MSG_DONTWAIT) >= 0)
		count++;
	return count;
}

/* Fills s (connected) with datagrams of 64 KiB at the default send buffer, then a child
 * blocks in one more send: its pid, once it sleeps. */
static pid_t fill_then_block(int s)
{
	set_sndbuf("default", s, 212992 / 2);
	show_fill("send", s, 65536, NULL, 0);
	pid_t pid = io_fork();
	if (pid == 0) {
		errno = 0;
		long k = send(s, g_buf, 65536, 0);
		printf("  child: blocked send = %ld %s\n", k, errname_io(errno));
		_exit(0);
	}
	io_wait_sleeping(pid);
	return pid;
}

/* A child blocked in poll (or, with ep, epoll_wait) for POLLOUT on s (up to 5 s): its pid,
 * once it sleeps. */
static pid_t poll_child(int s, int ep)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		int n;
		unsigned ev = 0;
		if (ep) {
			struct epoll_event e = { .events = EPOLLOUT };
			int fd = epoll_create1(0);
			if (epoll_ctl(fd, EPOLL_CTL_ADD, s, &e))
				die("epoll_ctl");
			n = epoll_wait(fd, &e, 1, 5000);
			ev = n > 0 ? e.events : 0;
		} else {
			struct pollfd p = { s, POLLOUT, 0 };
			n = poll(&p, 1, 5000);
			ev = p.revents;
		}
		printf("  child: %s = %d, events %#x\n", ep ? "epoll_wait" : "poll", n, ev);
		_exit(0);
	}
	io_wait_sleeping(pid);
	return pid;
}

/* Takes datagrams from r until s is writable (POLLOUT): how many it took. */
static int take_until_pollout(int r, int s)
{
	int n = 0;
	while (!pollout(s)) {
		take(r);
		n++;
	}
	return n;
}

int main(void)
{
	sk_setup();
	alarm(30);
	signal(SIGPIPE, SIG_IGN);
	memset(g_buf, 'd', sizeof g_buf);
	int r, s, t, u, ep, n;
	pid_t pid;
	struct sockaddr_un a, b;
	socklen_t la, lb;
	la = sk_path(&a, "rcv");
	lb = sk_path(&b, "snd");

	CASE("dgram_sndbuf_defaults");
	s = sk_socket(SOCK_DGRAM);
	printf("  SO_SNDBUF %d, SIOCOUTQ %d, POLLOUT %d\n", sndbuf(s), outq(s), pollout(s));
	io_close(s);

	CASE("dgram_sndbuf_unconnected_small");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_socket(SOCK_DGRAM);
	show_fill("sendto", s, 100, &a, la);
	printf("  receiver SIOCINQ %d, SIOCOUTQ %d\n", inq(r), outq(r));
	take(r);
	printf("  one taken: sender SIOCOUTQ %d\n", outq(s));
	show_fill("sendto again", s, 100, &a, la);
	n = drain(r);
	printf("  drained %d, sender SIOCOUTQ %d\n", n, outq(s));
	io_close(s);

	CASE("dgram_sndbuf_unconnected_large");
	s = sk_socket(SOCK_DGRAM);
	show_fill("sendto", s, 65536, &a, la);
	printf("  receiver SIOCINQ %d\n", inq(r));
	for (int i = 0; i < 4; i++) {
		take(r);
		printf("  took one: sender SIOCOUTQ %d, POLLOUT %d\n", outq(s), pollout(s));
	}
	show_fill("sizes of 30000", s, 30000, &a, la);
	n = drain(r);
	printf("  drained %d, sender SIOCOUTQ %d\n", n, outq(s));
	io_close(s);

	CASE("dgram_sndbuf_connected");
	s = sk_connect(SOCK_DGRAM, &a, la);
	show_fill("send", s, 65536, NULL, 0);
	n = drain(r);
	printf("  drained %d, sender SIOCOUTQ %d, POLLOUT %d\n", n, outq(s), pollout(s));
	/* The receiver's queue limits first: POLLOUT goes with it (unix_dgram_peer_wake_me). */
	show_fill("send", s, 1, NULL, 0);
	take(r);
	printf("  took one: SIOCOUTQ %d, POLLOUT %d\n", outq(s), pollout(s));
	show_fill("send", s, 1, NULL, 0);
	n = drain(r);
	printf("  drained %d, sender SIOCOUTQ %d, POLLOUT %d\n", n, outq(s), pollout(s));
	io_close(s);

	CASE("dgram_sndbuf_mutual");
	s = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(connect(r, (struct sockaddr *)&b, lb));
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	show_fill("send", s, 1, NULL, 0);
	printf("  receiver SIOCINQ %d\n", inq(r));
	n = take_until_pollout(r, s);
	printf("  taken until POLLOUT: %d, SIOCOUTQ %d\n", n, outq(s));
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(s));
	show_fill("send", s, 5000, NULL, 0);
	n = take_until_pollout(r, s);
	printf("  taken until POLLOUT: %d, SIOCOUTQ %d\n", n, outq(s));
	printf("  drained %d\n", drain(r));
	show_fill("reply", r, 200, NULL, 0);
	n = drain(s);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(r));

	CASE("dgram_sndbuf_shrunk_and_raised");
	show_fill("send", s, 65536, NULL, 0);
	set_sndbuf("shrunk", s, 4096);
	IOSHOW(send(s, g_buf, 100, MSG_DONTWAIT));
	IOSHOW(send(s, g_buf, 65536, MSG_DONTWAIT));
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d, POLLOUT %d\n", n, outq(s), pollout(s));
	show_fill("send", s, 1000, NULL, 0);
	set_sndbuf("raised", s, 100000);
	show_fill("send", s, 1000, NULL, 0);
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(s));

	CASE("dgram_sndbuf_raise_wakes_a_blocked_sender");
	pid = fill_then_block(s);
	/* Printed once the child is done: it runs as soon as the option is set. */
	n = 1 << 20;
	n = setsockopt(s, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
	show_status_io("child", io_reap(pid));
	printf("  raised: setsockopt(1 << 20) = %d, SO_SNDBUF now %d\n", n, sndbuf(s));
	printf("  SIOCOUTQ %d\n", outq(s));
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(s));

	CASE("dgram_sndbuf_reads_wake_a_blocked_sender");
	pid = fill_then_block(s);
	for (int i = 0; i < 3; i++) {
		take(r);
		printf("  took one: POLLOUT %d\n", pollout(s));
	}
	take(r);
	show_status_io("child", io_reap(pid));
	printf("  SIOCOUTQ %d\n", outq(s));
	printf("  drained %d\n", drain(r));

	CASE("dgram_sndbuf_epoll_woken_by_reads");
	show_fill("send", s, 1, NULL, 0);
	ep = epoll_create1(0);
	{
		struct epoll_event e = { .events = EPOLLOUT, .data.u32 = 7 };
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s, &e));
	}
	if ((pid = io_fork()) == 0) {
		struct epoll_event e;
		int n = epoll_wait(ep, &e, 1, -1);
		printf("  child: epoll_wait = %d, events %#x, data %u\n", n, n > 0 ? e.events : 0,
		       n > 0 ? e.data.u32 : 0);
		_exit(0);
	}
	io_wait_sleeping(pid);
	n = take_until_pollout(r, s);
	show_status_io("child", io_reap(pid));
	printf("  taken until POLLOUT: %d\n", n);
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(s));
	io_close(ep);
	io_close(s);
	io_close(r);
	unlink(a.sun_path);
	unlink(b.sun_path);

	CASE("dgram_sndbuf_poll_woken");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(connect(r, (struct sockaddr *)&b, lb));
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	show_fill("send", s, 1, NULL, 0);
	pid = poll_child(s, 0);
	n = take_until_pollout(r, s);
	show_status_io("child", io_reap(pid));
	printf("  taken until POLLOUT: %d\n", n);
	drain(r);
	io_close(r);
	io_close(s);
	unlink(a.sun_path);
	unlink(b.sun_path);

	CASE("dgram_sndbuf_queue_full_wakes_poll_and_epoll");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_connect(SOCK_DGRAM, &a, la);
	show_fill("send", s, 1, NULL, 0);
	pid = poll_child(s, 0);
	take(r);
	show_status_io("child", io_reap(pid));
	show_fill("send", s, 1, NULL, 0);
	pid = poll_child(s, 1);
	take(r);
	show_status_io("child", io_reap(pid));
	drain(r);
	io_close(s);

	CASE("dgram_sndbuf_several_senders");
	s = sk_socket(SOCK_DGRAM);
	t = sk_connect(SOCK_DGRAM, &a, la);
	u = sk_socket(SOCK_DGRAM);
	for (int i = 0; i < 4; i++)
		IOSHOW(sendto(s, g_buf, 3000, 0, (struct sockaddr *)&a, la));
	for (int i = 0; i < 3; i++)
		IOSHOW(send(t, g_buf, 8000, 0));
	show_fill("u", u, 20000, &a, la);
	printf("  SIOCOUTQ s %d, t %d, u %d; POLLOUT s %d, t %d, u %d\n", outq(s), outq(t), outq(u), pollout(s),
	       pollout(t), pollout(u));
	for (int i = 0; i < 6; i++) {
		n = take(r);
		printf("  took %d: SIOCOUTQ s %d, t %d, u %d; POLLOUT t %d\n", n, outq(s), outq(t), outq(u),
		       pollout(t));
	}
	printf("  drained %d\n", drain(r));
	io_close(s);
	io_close(t);
	io_close(u);

	CASE("dgram_sndbuf_receiver_closed_wakes_a_blocked_sender");
	t = sk_listener(SOCK_DGRAM, &b, lb, -1);
	s = sk_socket(SOCK_DGRAM);
	show_fill("sendto", s, 65536, &a, la);
	if ((pid = io_fork()) == 0) {
		close(r); /* the parent's close is the last */
		errno = 0;
		long k = sendto(s, g_buf, 100, 0, (struct sockaddr *)&b, lb);
		printf("  child: blocked sendto another = %ld %s\n", k, errname_io(errno));
		_exit(0);
	}
	io_wait_sleeping(pid);
	io_close(r);
	show_status_io("child", io_reap(pid));
	printf("  SIOCOUTQ %d, other SIOCINQ %d\n", outq(s), inq(t));
	io_close(s);
	io_close(t);
	unlink(a.sun_path);
	unlink(b.sun_path);
	r = sk_listener(SOCK_DGRAM, &a, la, -1);

	CASE("dgram_sndbuf_to_self");
	show_fill("sendto self", r, 1, &a, la);
	printf("  SIOCINQ %d\n", inq(r));
	n = drain(r);
	printf("  drained %d, SIOCOUTQ %d\n", n, outq(r));

	CASE("dgram_sndbuf_dead_and_closed_senders");
	if ((pid = io_fork()) == 0) {
		int q = sk_socket(SOCK_DGRAM);
		for (int i = 0; i < 3; i++)
			sendto(q, g_buf, 1000 + i, 0, (struct sockaddr *)&a, la);
		printf("  child: sent 3, SIOCOUTQ %d\n", outq(q));
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	show_status_io("child", io_reap(pid));
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(sendto(s, g_buf, 2000, 0, (struct sockaddr *)&a, la));
	io_close(s);
	printf("  SIOCINQ %d\n", inq(r));
	for (int i = 0; i < 4; i++)
		printf("  took %d\n", take(r));
	IOSHOW(recv(r, g_buf, 10, MSG_DONTWAIT));
	io_close(r);
	unlink(a.sun_path);

	sk_cleanup();
	return 0;
}
