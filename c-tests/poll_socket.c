/* poll, ppoll and select on AF_UNIX sockets: revents of stream, datagram and seqpacket sockets
 * in every state (idle, data, full, shut down, peer closed, listening with and without a
 * pending connection, unconnected), a connected datagram socket whose peer's queue is full,
 * waiters woken by another process, timeouts.
 */
#include "common.h"

#define ALL (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLWRNORM | POLLWRBAND | POLLRDHUP)

static void show_select(const char *what, int fd)
{
	fd_set r, w, x;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	FD_SET(fd, &x);
	struct timeval tv = { 0, 0 };
	errno = 0;
	int n = select(fd + 1, &r, &w, &x, &tv);
	if (n < 0)
		printf("  select %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  select %s = %d:%s%s%s\n", what, n, FD_ISSET(fd, &r) ? " read" : "",
		       FD_ISSET(fd, &w) ? " write" : "", FD_ISSET(fd, &x) ? " except" : "");
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2], l, c, s, pending;
	char buf[256];
	pid_t pid;
	struct sockaddr_un a;
	socklen_t la;
	struct timespec t0;

	CASE("poll_stream_pair_states");
	sk_pair(SOCK_STREAM, sv);
	show_poll1("idle", sv[0], ALL);
	show_poll1("idle, events 0", sv[0], 0);
	IOSHOW(write(sv[1], "data", 4));
	show_poll1("data queued", sv[0], ALL);
	show_poll1("writer side", sv[1], ALL);
	io_drain(sv[0]);
	io_fill(sv[1], 4096);
	show_poll1("writer, peer full", sv[1], ALL);
	show_poll1("reader of the full buffer", sv[0], ALL);
	io_drain(sv[0]);
	show_poll1("writer after the drain", sv[1], ALL);
	IOSHOW(shutdown(sv[1], SHUT_WR));
	show_poll1("peer SHUT_WR", sv[0], ALL);
	show_poll1("the SHUT_WR side", sv[1], ALL);
	io_close(sv[1]);
	show_poll1("peer closed", sv[0], ALL);
	io_close(sv[0]);
	{
		struct pollfd pf = { 999, POLLIN, 0 };
		IOSHOW(poll(&pf, 1, 0));
		printf("  fd 999 revents=%s\n", pollbits(pf.revents));
	}

	CASE("poll_listener_and_unconnected");
	la = sk_path(&a, "poll");
	s = sk_socket(SOCK_STREAM);
	show_poll1("new stream socket", s, ALL);
	if (bind(s, (struct sockaddr *)&a, la))
		die("bind");
	show_poll1("bound", s, ALL);
	if (listen(s, 2))
		die("listen");
	l = s;
	show_poll1("listening", l, ALL);
	c = sk_connect(SOCK_STREAM, &a, la);
	show_poll1("listener with a pending connection", l, ALL);
	show_poll1("connected client, not yet accepted", c, ALL);
	s = sk_accept(l);
	show_poll1("listener after accept", l, ALL);
	io_close(s);
	show_poll1("client, accepted end closed", c, ALL);
	io_close(c);

	CASE("poll_dgram_and_seqpacket");
	{
		int d = sk_socket(SOCK_DGRAM);
		show_poll1("unbound dgram", d, ALL);
		io_close(d);
		sk_pair(SOCK_DGRAM, sv);
		IOSHOW(send(sv[0], "", 0, 0));
		show_poll1("dgram with a zero-length datagram queued", sv[1], ALL);
		io_drain(sv[1]);
		int count = 0;
		while (send(sv[0], "q", 1, MSG_DONTWAIT) == 1)
			count++;
		show_poll1("dgram sender, peer queue full", sv[0], ALL);
		io_drain(sv[1]);
		show_poll1("dgram sender after the drain", sv[0], ALL);
		io_close(sv[1]);
		show_poll1("dgram, peer closed", sv[0], ALL);
		io_close(sv[0]);
		sk_pair(SOCK_SEQPACKET, sv);
		show_poll1("seqpacket idle", sv[0], ALL);
		IOSHOW(send(sv[1], "rec", 3, 0));
		show_poll1("seqpacket record queued", sv[0], ALL);
		io_close(sv[1]);
		show_poll1("seqpacket peer closed with a record queued", sv[0], ALL);
		io_close(sv[0]);
	}

	CASE("select_sockets");
	sk_pair(SOCK_STREAM, sv);
	show_select("idle", sv[0]);
	IOSHOW(write(sv[1], "x", 1));
	show_select("data", sv[0]);
	io_fill(sv[0], 4096);
	show_select("full writer", sv[0]);
	io_drain(sv[1]);
	io_close(sv[1]);
	show_select("peer closed", sv[0]);
	pending = sk_connect(SOCK_STREAM, &a, la);
	show_select("listener with a connection", l);
	io_close(sv[0]);

	CASE("poll_woken_by_other_process");
	sk_pair(SOCK_STREAM, sv);
	{
		pid_t me = getpid();
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			if (write(sv[1], "wake", 4) != 4)
				_exit(1);
			io_wait_sleeping(me);
			io_close(sv[1]);
			_exit(0);
		}
		io_close(sv[1]);
		struct pollfd pf = { sv[0], POLLIN | POLLRDHUP, 0 };
		errno = 0;
		int n = poll(&pf, 1, 5000);
		printf("  poll(5 s) = %d revents=%s\n", n, pollbits(pf.revents));
		io_drain(sv[0]);
		pf.revents = 0;
		n = poll(&pf, 1, 5000);
		printf("  poll(5 s) = %d revents=%s\n", n, pollbits(pf.revents));
		show_status_io("child", io_reap(pid));
		io_close(sv[0]);
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			int t = sk_connect(SOCK_STREAM, &a, la);
			io_wait_sleeping(me);
			io_close(t);
			_exit(0);
		}
		/* The listener still holds the select case's connection: accept it first. */
		io_close(sk_accept(l));
		io_close(pending);
		pf.fd = l;
		pf.events = POLLIN;
		pf.revents = 0;
		n = poll(&pf, 1, 5000);
		printf("  poll on the listener(5 s) = %d revents=%s\n", n, pollbits(pf.revents));
		s = sk_accept(l);
		fd_set r;
		FD_ZERO(&r);
		FD_SET(s, &r);
		struct timeval tv = { 5, 0 };
		n = select(s + 1, &r, NULL, NULL, &tv);
		printf("  select on the accepted socket(5 s) = %d read=%d, then read = %ld\n", n,
		       FD_ISSET(s, &r), (long)read(s, buf, sizeof buf));
		show_status_io("child", io_reap(pid));
		io_close(s);
	}

	CASE("poll_timeouts");
	sk_pair(SOCK_STREAM, sv);
	{
		struct pollfd pf = { sv[0], POLLIN, 0 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(poll(&pf, 1, 60));
		printf("  waited at least 50 ms: %s\n", ms_since(&t0) >= 50 ? "yes" : "no");
		struct timespec ts = { 0, 60 * 1000 * 1000 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(ppoll(&pf, 1, &ts, NULL));
		printf("  waited at least 50 ms: %s\n", ms_since(&t0) >= 50 ? "yes" : "no");
		fd_set r;
		FD_ZERO(&r);
		FD_SET(sv[0], &r);
		struct timeval tv = { 0, 60000 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(select(sv[0] + 1, &r, NULL, NULL, &tv));
		printf("  waited at least 50 ms: %s, read bit %d\n", ms_since(&t0) >= 50 ? "yes" : "no",
		       FD_ISSET(sv[0], &r));
	}
	closep(sv);
	io_close(l);

	sk_cleanup();
	return 0;
}
