/* AF_UNIX send buffers as net/unix/af_unix.c accounts them: every skb's truesize is charged
 * to the sender's sk_sndbuf until the skb is read whole; a send goes on while the charge is
 * below the buffer (stream sends cut into skbs of at most min(sndbuf / 2 - 64, 36544) bytes,
 * a record one skb), POLLOUT and EPOLLOUT need four times the charge (plus one) to fit
 * (unix_writable), SIOCOUTQ is the charge. Stream, seqpacket and datagram socketpairs, stream
 * and seqpacket sockets connected through a name; fill counts and charges compared exactly.
 * SO_SNDBUF set on a live socket (shrunk below what is queued, raised to let a refused or
 * blocked send through), before connect, and larger records after raising it.
 */
#include "common.h"
#include "sk_buf.h"
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

static char g_buf[1 << 19];

/* Level-triggered EPOLLOUT through an epoll set watching fd. */
static int epollout(int ep)
{
	struct epoll_event e;
	int n = epoll_wait(ep, &e, 1, 0);
	if (n < 0)
		die("epoll_wait");
	return n;
}

static void set_sndbuf(const char *what, int fd, int opt, int v)
{
	errno = 0;
	int r = setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
	printf("  %s: setsockopt(%d) = %d %s, SO_SNDBUF now %d\n", what, v, r, r ? errname_io(errno) : "",
	       sndbuf(fd));
}

/* Sends of size until EAGAIN (MSG_DONTWAIT): how many, the bytes, and the last send before
 * which POLLOUT was still set. */
static long fill(int tx, size_t size, int *sends, int *last_pollout)
{
	long total = 0;
	ssize_t n;
	*sends = 0;
	*last_pollout = 0;
	for (;;) {
		int po = pollout(tx);
		n = send(tx, g_buf, size, MSG_DONTWAIT);
		if (n < 0)
			break;
		total += n;
		if (++*sends > 100000)
			die("fill never ends");
		if (po)
			*last_pollout = *sends;
	}
	if (errno != EAGAIN)
		die("fill send");
	return total;
}

/* Everything queued for rx, read and dropped. */
static void drain(int rx)
{
	while (recv(rx, g_buf, sizeof g_buf, MSG_DONTWAIT) > 0)
		;
}

/* tx's buffer back to the default, then filled with size-byte sends (printed). */
static void refill(int tx, size_t size)
{
	int sends, last;
	set_sndbuf("default", tx, SO_SNDBUF, 212992 / 2);
	long total = fill(tx, size, &sends, &last);
	printf("  %d sends, %ld bytes, SIOCOUTQ %d\n", sends, total, outq(tx));
}

/* A child blocked in a 1000-byte send on the full tx (its result printed as it ends). */
static pid_t blocked_sender(int tx)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		alarm(20);
		errno = 0;
		long n = send(tx, g_buf, 1000, 0);
		printf("  child: send = %ld %s\n", n, n < 0 ? errname_io(errno) : "");
		_exit(0);
	}
	io_wait_sleeping(pid);
	return pid;
}

/* One pair (tx sends to rx): fills with each size, then reads one send's worth at a time until
 * tx is writable again. */
static void fill_cases(const char *name, int tx, int rx, int stream)
{
	static const size_t sizes[] = { 1, 100, 193, 1000, 3777, 4096, 16065, 36544, 65536 };
	char c[96];
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLOUT };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tx, &ev))
		die("epoll");
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		int sends, last;
		snprintf(c, sizeof c, "%s_fill_%zu", name, sizes[i]);
		CASE(c);
		printf("  empty: SIOCOUTQ %d POLLOUT %d EPOLLOUT %d\n", outq(tx), pollout(tx), epollout(ep));
		long total = fill(tx, sizes[i], &sends, &last);
		printf("  %d sends, %ld bytes, POLLOUT before send %d; SIOCOUTQ %d SIOCINQ %d POLLOUT %d "
		       "EPOLLOUT %d\n",
		       sends, total, last, outq(tx), inq(rx), pollout(tx), epollout(ep));
		int reads = 0;
		while (!pollout(tx)) {
			ssize_t n = recv(rx, g_buf, sizes[i], MSG_DONTWAIT);
			if (n <= 0)
				die("fill read");
			reads++;
		}
		printf("  writable after %d reads: SIOCOUTQ %d SIOCINQ %d EPOLLOUT %d\n", reads, outq(tx), inq(rx),
		       epollout(ep));
		long rest = 0;
		ssize_t n;
		while ((n = recv(rx, g_buf, sizeof g_buf, MSG_DONTWAIT)) > 0)
			rest += n;
		printf("  drained %ld more: SIOCOUTQ %d\n", rest, outq(tx));
	}
	close(ep);

	if (stream) {
		/* A partly read skb stays charged until its last byte is read. */
		snprintf(c, sizeof c, "%s_partial_read", name);
		CASE(c);
		IOSHOW(send(tx, g_buf, 1000, 0));
		IOSHOW(send(tx, g_buf, 1000, 0));
		printf("  SIOCOUTQ %d\n", outq(tx));
		IOSHOW(recv(rx, g_buf, 500, 0));
		printf("  SIOCOUTQ %d SIOCINQ %d\n", outq(tx), inq(rx));
		IOSHOW(recv(rx, g_buf, 1000, 0));
		printf("  SIOCOUTQ %d SIOCINQ %d\n", outq(tx), inq(rx));
		IOSHOW(recv(rx, g_buf, 1000, 0));
		printf("  SIOCOUTQ %d SIOCINQ %d\n", outq(tx), inq(rx));
	}

	/* gVisor's SendBufferOverflow: a buffer shrunk below what is queued refuses the next send. */
	snprintf(c, sizeof c, "%s_shrink", name);
	CASE(c);
	for (int k = 0; k < 4; k++)
		IOSHOW(send(tx, g_buf, 4096, MSG_DONTWAIT));
	printf("  SIOCOUTQ %d\n", outq(tx));
	set_sndbuf("shrink", tx, SO_SNDBUF, 4096);
	IOSHOW(send(tx, g_buf, 1, MSG_DONTWAIT));
	printf("  POLLOUT %d\n", pollout(tx));
	IOSHOW(recv(rx, g_buf, 4096, 0));
	IOSHOW(recv(rx, g_buf, 4096, 0));
	IOSHOW(recv(rx, g_buf, 4096, 0));
	printf("  SIOCOUTQ %d POLLOUT %d\n", outq(tx), pollout(tx));
	IOSHOW(send(tx, g_buf, 1, MSG_DONTWAIT));
	IOSHOW(send(tx, g_buf, 1, MSG_DONTWAIT));
	/* The smaller buffer cuts a stream send into smaller skbs. */
	IOSHOW(recv(rx, g_buf, sizeof g_buf, 0));
	IOSHOW(recv(rx, g_buf, sizeof g_buf, MSG_DONTWAIT));
	IOSHOW(send(tx, g_buf, stream ? 10000 : 3000, MSG_DONTWAIT));
	printf("  SIOCOUTQ %d\n", outq(tx));
	drain(rx);

	/* Raising the buffer lets a refused send through at once. */
	snprintf(c, sizeof c, "%s_raise", name);
	CASE(c);
	refill(tx, 4096);
	set_sndbuf("raise", tx, SO_SNDBUF, 1 << 18);
	printf("  POLLOUT %d\n", pollout(tx));
	IOSHOW(send(tx, g_buf, 4096, MSG_DONTWAIT));
	int sends, last;
	long total = fill(tx, 4096, &sends, &last);
	printf("  %d more sends, %ld bytes, SIOCOUTQ %d\n", sends, total, outq(tx));
	drain(rx);

	/* ... and wakes a sender blocked on the full buffer once it is writable (sk_write_space):
	 * not for a buffer still below four times the charge. */
	snprintf(c, sizeof c, "%s_raise_wakes", name);
	CASE(c);
	refill(tx, 1000);
	pid_t pid = blocked_sender(tx);
	set_sndbuf("raise", tx, SO_SNDBUF, 1 << 18);
	io_wait_sleeping(pid);
	printf("  child still blocked: %s\n", waitpid(pid, NULL, WNOHANG) == 0 ? "yes" : "no");
	/* Printed once the woken child is done. */
	int big = 1 << 20;
	errno = 0;
	int r = setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	int e = errno;
	show_status_io("child", io_reap(pid));
	printf("  raise: setsockopt(%d) = %d %s, SO_SNDBUF now %d\n", big, r, r ? errname_io(e) : "", sndbuf(tx));
	printf("  SIOCOUTQ %d\n", outq(tx));
	drain(rx);

	/* A blocked sender goes on once reads bring the charge to a quarter of the buffer. */
	snprintf(c, sizeof c, "%s_blocked_sender", name);
	CASE(c);
	refill(tx, 1000);
	pid = blocked_sender(tx);
	int before = outq(tx), reads = 0;
	if (recv(rx, g_buf, 1000, MSG_DONTWAIT) != 1000)
		die("blocked_sender read");
	int skb = before - outq(tx);
	/* Up to the read that makes tx writable. */
	for (reads = 1; (outq(tx) - skb + 1) * 4 > sndbuf(tx); reads++)
		if (recv(rx, g_buf, 1000, MSG_DONTWAIT) != 1000)
			die("blocked_sender read");
	io_wait_sleeping(pid);
	printf("  after %d reads (skb charge %d, SIOCOUTQ %d) child still blocked: %s\n", reads, skb, outq(tx),
	       waitpid(pid, NULL, WNOHANG) == 0 ? "yes" : "no");
	ssize_t got = recv(rx, g_buf, 1000, MSG_DONTWAIT);
	show_status_io("child", io_reap(pid));
	printf("  the read after: %zd\n", got);
	printf("  SIOCOUTQ %d\n", outq(tx));
	drain(rx);

	if (!stream) {
		/* A record must fit the buffer (less 32 bytes); a raised buffer takes larger ones. */
		snprintf(c, sizeof c, "%s_large_record", name);
		CASE(c);
		IOSHOW(send(tx, g_buf, 212992 - 31, MSG_DONTWAIT));
		IOSHOW(send(tx, g_buf, 212992 - 32, MSG_DONTWAIT));
		printf("  SIOCOUTQ %d\n", outq(tx));
		IOSHOW(recv(rx, g_buf, sizeof g_buf, 0));
		set_sndbuf("raise", tx, SO_SNDBUF, 400000);
		IOSHOW(send(tx, g_buf, 300000, MSG_DONTWAIT));
		IOSHOW(send(tx, g_buf, 300000, MSG_DONTWAIT));
		IOSHOW(send(tx, g_buf, 300000, MSG_DONTWAIT));
		printf("  SIOCOUTQ %d SIOCINQ %d\n", outq(tx), inq(rx));
		IOSHOW(recv(rx, g_buf, sizeof g_buf, 0));
		IOSHOW(recv(rx, g_buf, sizeof g_buf, 0));
		printf("  SIOCOUTQ %d\n", outq(tx));
	}
	drain(rx);
	set_sndbuf("default", tx, SO_SNDBUF, 212992 / 2);
	/* Messages with fds past the ring's first 64 buffers (it grows): each keeps its fd. */
	snprintf(c, sizeof c, "%s_fds", name);
	CASE(c);
	int p[2];
	struct stat want, st;
	io_pipe(p);
	if (fstat(p[1], &want))
		die("fstat");
	int queued = 0;
	io_set_nonblock(tx, 1);
	while (queued < 150 && sk_send_fds(tx, &p[1], 1, "fd", 2) == 2)
		queued++;
	io_set_nonblock(tx, 0);
	printf("  %d messages with a pipe fd queued, SIOCOUTQ %d\n", queued, outq(tx));
	int with = 0;
	for (int k = 0; k < queued; k++) {
		int got[4], ngot = 0, fl = 0;
		char data[16];
		if (sk_recv_fds(rx, data, stream ? 2 : sizeof data, got, &ngot, 4, 0, &fl) != 2)
			die("fds recv");
		with += ngot == 1 && !fstat(got[0], &st) && st.st_ino == want.st_ino;
		for (int j = 0; j < ngot; j++)
			close(got[j]);
	}
	printf("  %d came with their fd, SIOCOUTQ %d\n", with, outq(tx));
	closep(p);

	set_sndbuf("default", tx, SO_SNDBUF, 212992 / 2);
}

int main(void)
{
	sk_setup();
	for (size_t i = 0; i < 3; i++) {
		int sv[2];
		char name[64];
		snprintf(name, sizeof name, "pair_%s", sk_types[i].name);
		sk_pair(sk_types[i].type, sv);
		fill_cases(name, sv[0], sv[1], sk_types[i].type == SOCK_STREAM);
		closep(sv);
	}

	for (size_t i = 0; i < 2; i++) {
		struct sockaddr_un a;
		char name[64];
		int l, c, s;
		socklen_t la = sk_named_pair(sk_types[i].type, sk_types[i].name, &a, &l, &c, &s);
		snprintf(name, sizeof name, "named_%s_client", sk_types[i].name);
		fill_cases(name, c, s, sk_types[i].type == SOCK_STREAM);
		snprintf(name, sizeof name, "named_%s_server", sk_types[i].name);
		fill_cases(name, s, c, sk_types[i].type == SOCK_STREAM);
		close(c);
		close(s);

		/* A buffer set before connect limits the connection's queue. */
		c = sk_socket(sk_types[i].type);
		snprintf(name, sizeof name, "named_%s_before_connect", sk_types[i].name);
		CASE(name);
		set_sndbuf("before connect", c, SO_SNDBUF, 8192);
		if (connect(c, (struct sockaddr *)&a, la))
			die("connect");
		s = sk_accept(l);
		int sends, last;
		long total = fill(c, 1, &sends, &last);
		printf("  %d sends, %ld bytes, POLLOUT before send %d, SIOCOUTQ %d\n", sends, total, last,
		       outq(c));
		total = fill(s, 1, &sends, &last);
		printf("  accepted side: %d sends, %ld bytes, SIOCOUTQ %d\n", sends, total, outq(s));
		close(c);
		close(s);
		close(l);
	}

	/* SO_SNDBUFFORCE takes CAP_NET_ADMIN and passes wmem_max. */
	CASE("sndbufforce");
	int sv[2];
	sk_pair(SOCK_STREAM, sv);
	set_sndbuf("force", sv[0], SO_SNDBUFFORCE, 3 << 20);
	int sends, last;
	long total = fill(sv[0], 65536, &sends, &last);
	printf("  %d sends, %ld bytes, SIOCOUTQ %d\n", sends, total, outq(sv[0]));
	closep(sv);
	sk_cleanup();
	return 0;
}
