/* A message carrying SCM_RIGHTS read without taking its control data: read(2), recv,
 * recvmsg without a control buffer (gVisor's FDPassInterspersed2). The kernel's skb rules
 * decide: the message's data is read, its fds are closed (scm_recv with no room puts them),
 * a stream read stops after it, and the next message is read with its own data and no
 * control message. Over stream, seqpacket and datagram socketpairs and named stream and
 * seqpacket sockets. Whether a passed pipe's write end was closed is read at its read end:
 * EOF once every write end is gone, EAGAIN while one stays open (in flight).
 */
#include "common.h"

/* The pipe whose write end travels; its read end says whether that end is still open. */
static void show_pipe_closed(int rd)
{
	char c;
	io_set_nonblock(rd, 1);
	errno = 0;
	long n = read(rd, &c, 1);
	printf("  passed pipe's read end: %s\n", n == 0 ? "EOF (write end closed)" : n < 0 ? errname_io(errno) : "data");
	io_set_nonblock(rd, 0);
}

static void show_read(const char *what, long n, const char *buf)
{
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %ld \"%.*s\"\n", what, n, (int)n, buf);
}

/* What takes the first message without its control data. */
enum skip { BY_READ, BY_RECV, BY_RECVMSG };

static long take(enum skip how, int fd, char *buf, size_t len)
{
	errno = 0;
	switch (how) {
	case BY_READ:
		return read(fd, buf, len);
	case BY_RECV:
		return recv(fd, buf, len, 0);
	case BY_RECVMSG: {
		struct iovec io = { buf, len };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		long n = recvmsg(fd, &m, 0);
		if (n >= 0)
			printf("  recvmsg without a control buffer: msg_flags=%s\n", sk_msgflags(m.msg_flags));
		return n;
	}
	}
	return -1;
}

/* The next message, with a control buffer: its data and whether any fds came. */
static void next_message(int rx)
{
	char buf[64];
	int got[16], ngot = 0, fl = 0;
	errno = 0;
	long n = sk_recv_fds(rx, buf, sizeof buf, got, &ngot, 4, MSG_DONTWAIT, &fl);
	if (n < 0) {
		printf("  next recvmsg = -1 %s\n", errname_io(errno));
		return;
	}
	printf("  next recvmsg = %ld \"%.*s\", %d fd(s), msg_flags=%s\n", n, (int)n, buf, ngot, sk_msgflags(fl));
	for (int i = 0; i < ngot; i++)
		io_close(got[i]);
}

/* fds+"first" then "second" (and "zero," before, when lead), the first read past with how
 * into len bytes. */
static void skip_case(int tx, int rx, enum skip how, size_t len, int lead)
{
	char buf[64];
	int p[2];
	io_pipe(p);
	if (lead)
		IOSHOW(write(tx, "zero,", 5));
	IOSHOW(sk_send_fds(tx, &p[1], 1, "first", 5));
	io_close(p[1]);
	IOSHOW(write(tx, "second", 6));
	sk_wait_readable(rx);
	long n = take(how, rx, buf, len);
	show_read("first read", n, buf);
	show_pipe_closed(p[0]);
	next_message(rx);
	next_message(rx);
	io_close(p[0]);
}

/* MSG_PEEK of the fd message first: it stays, fds and all, for the read that follows. */
static void peek_case(int tx, int rx)
{
	char buf[64];
	int p[2];
	io_pipe(p);
	IOSHOW(sk_send_fds(tx, &p[1], 1, "first", 5));
	io_close(p[1]);
	IOSHOW(write(tx, "second", 6));
	sk_wait_readable(rx);
	errno = 0;
	long n = recv(rx, buf, sizeof buf, MSG_PEEK);
	show_read("peek", n, buf);
	show_pipe_closed(p[0]);
	n = read(rx, buf, sizeof buf);
	show_read("read", n, buf);
	show_pipe_closed(p[0]);
	next_message(rx);
	io_close(p[0]);
}

static void cases(const char *name, int tx, int rx)
{
	static const struct { enum skip how; const char *name; } hows[] = {
		{ BY_READ, "read" }, { BY_RECV, "recv" }, { BY_RECVMSG, "recvmsg" },
	};
	/* Buffers of the message's size, larger, shorter, and larger after plain data. */
	static const struct { size_t len; int lead; const char *name; } reads[] = {
		{ 5, 0, "exact" }, { 64, 0, "larger" }, { 3, 0, "shorter" }, { 64, 1, "after_data" },
	};
	char c[96];
	for (size_t i = 0; i < 3; i++)
		for (size_t k = 0; k < 4; k++) {
			snprintf(c, sizeof c, "%s_%s_%s", name, hows[i].name, reads[k].name);
			CASE(c);
			skip_case(tx, rx, hows[i].how, reads[k].len, reads[k].lead);
		}
	snprintf(c, sizeof c, "%s_peek_then_read", name);
	CASE(c);
	peek_case(tx, rx);
}

/* Named datagram sockets carry a message with ancillary data through the kernel:
 * unix_scm_skip_dgram.c runs them (this file, with NAMED_DGRAM). */
#ifdef NAMED_DGRAM
static void named_dgram(void)
{
	struct sockaddr_un a, b;
	socklen_t la = sk_path(&a, "dgram_rx"), lb = sk_path(&b, "dgram_tx");
	int rx = sk_listener(SOCK_DGRAM, &a, la, -1);
	int tx = sk_listener(SOCK_DGRAM, &b, lb, -1);
	if (connect(tx, (struct sockaddr *)&a, la) || connect(rx, (struct sockaddr *)&b, lb))
		die("connect");
	cases("named_dgram_connected", tx, rx);
	io_close(tx);
	io_close(rx);
	/* A receiver not connected back, from a sender without a name. */
	la = sk_path(&a, "dgram_rx2");
	rx = sk_listener(SOCK_DGRAM, &a, la, -1);
	tx = sk_socket(SOCK_DGRAM);
	if (connect(tx, (struct sockaddr *)&a, la))
		die("connect");
	cases("named_dgram_unnamed_sender", tx, rx);
	io_close(rx);
	io_close(tx);
}
#endif

int main(void)
{
	sk_setup();
#ifdef NAMED_DGRAM
	named_dgram();
	sk_cleanup();
	return 0;
#endif
	sk_each_pair(cases);
	for (size_t i = 0; i < 2; i++) {
		struct sockaddr_un a;
		char name[64];
		int l, c, s;
		sk_named_pair(sk_types[i].type, sk_types[i].name, &a, &l, &c, &s);
		snprintf(name, sizeof name, "named_%s", sk_types[i].name);
		cases(name, c, s);
		io_close(c);
		io_close(s);
		io_close(l);
	}
	sk_cleanup();
	return 0;
}
