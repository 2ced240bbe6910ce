/* SO_RCVTIMEO/SO_SNDTIMEO as net/core/sock.c's sock_set_timeout takes them, on AF_UNIX
 * stream, seqpacket and datagram sockets, socketpairs and named ones: a negative tv_sec is a
 * timeout of 0 (blocking calls return EAGAIN at once, and the value reads back as 0.000000,
 * as no timeout does), tv_usec outside [0, 1000000) is EDOM, the _OLD (timeval) and _NEW
 * (__kernel_sock_timeval) variants, a short optlen, and what a later 0 or positive timeout
 * makes of it. Each blocking call runs under an alarm: a call that blocks where the kernel's
 * returns says EINTR instead of hanging the run.
 */
#include "common.h"

#ifndef SO_RCVTIMEO_OLD
#define SO_RCVTIMEO_OLD 20
#define SO_SNDTIMEO_OLD 21
#endif
#ifndef SO_RCVTIMEO_NEW
#define SO_RCVTIMEO_NEW 66
#define SO_SNDTIMEO_NEW 67
#endif

struct sock_tv {
	long long tv_sec, tv_usec;
};

static void on_alarm(int sig)
{
	(void)sig;
}

/* Arms the guard: a call still blocked after 20 s is interrupted (EINTR). */
static void guard(void)
{
	alarm(20);
}

static void unguard(void)
{
	alarm(0);
}

static void set_tv(const char *what, int fd, int opt, long long sec, long long usec, socklen_t len)
{
	struct sock_tv tv = { sec, usec };
	errno = 0;
	int r = setsockopt(fd, SOL_SOCKET, opt, &tv, len);
	if (r)
		printf("  %s {%lld, %lld} len %u = -1 %s\n", what, sec, usec, (unsigned)len, errname_io(errno));
	else
		printf("  %s {%lld, %lld} len %u = 0\n", what, sec, usec, (unsigned)len);
}

static void show_tv(const char *what, int fd, int opt)
{
	struct sock_tv tv = { -7, -7 };
	socklen_t len = sizeof tv;
	errno = 0;
	if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len))
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %lld.%06lld (optlen %u)\n", what, tv.tv_sec, tv.tv_usec, (unsigned)len);
}

/* The option rules, on one socket. */
static void rules(int fd)
{
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, -1, 0, 16);
	show_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, 0, -1, 16);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, 0, 1000000, 16);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, -1, 1000000, 16);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, -1, -1, 16);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, 1, 0, 8);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, 1, 1, 16);
	show_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD);
	show_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW);
	set_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW, -2, 5, 16);
	show_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW);
	set_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW, 0, 999999, 16);
	show_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW);
	set_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW, 0, 1000000, 16);
	set_tv("SO_RCVTIMEO_NEW", fd, SO_RCVTIMEO_NEW, 1, 0, 12);
	set_tv("SO_SNDTIMEO", fd, SO_SNDTIMEO_OLD, -3, 0, 16);
	show_tv("SO_SNDTIMEO", fd, SO_SNDTIMEO_OLD);
	set_tv("SO_SNDTIMEO_NEW", fd, SO_SNDTIMEO_NEW, 2, 500000, 16);
	show_tv("SO_SNDTIMEO", fd, SO_SNDTIMEO_OLD);
	set_tv("SO_SNDTIMEO_NEW", fd, SO_SNDTIMEO_NEW, 0, -5, 16);
	set_tv("SO_SNDTIMEO", fd, SO_SNDTIMEO_OLD, 0, 0, 16);
	set_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD, 0, 0, 16);
	show_tv("SO_RCVTIMEO", fd, SO_RCVTIMEO_OLD);
	show_tv("SO_SNDTIMEO", fd, SO_SNDTIMEO_OLD);
}

static long do_recvmsg(int fd, char *buf, size_t len)
{
	struct iovec io = { buf, len };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	return recvmsg(fd, &m, 0);
}

static long do_sendmsg(int fd, const char *buf, size_t len)
{
	struct iovec io = { (void *)buf, len };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	return sendmsg(fd, &m, 0);
}

/* Every blocking receive on an empty rx returns EAGAIN at once under a negative
 * SO_RCVTIMEO (of either variant); a forked child's too. */
static void recv_negative(int rx, int tx, int opt)
{
	char buf[64];
	set_tv("timeout", rx, opt, -1, 0, 16);
	guard();
	IOSHOW(read(rx, buf, sizeof buf));
	IOSHOW(recv(rx, buf, sizeof buf, 0));
	IOSHOW(recv(rx, buf, sizeof buf, MSG_WAITALL));
	IOSHOW(do_recvmsg(rx, buf, sizeof buf));
	IOSHOW(recvfrom(rx, buf, sizeof buf, 0, NULL, NULL));
	unguard();
	IOSHOW(write(tx, "abc", 3));
	sk_wait_readable(rx);
	sk_recv("recv with data", rx, sizeof buf, 0);
	pid_t pid = io_fork();
	if (pid == 0) {
		guard();
		errno = 0;
		long n = recv(rx, buf, sizeof buf, 0);
		printf("  child: recv = %ld %s\n", n, n < 0 ? errname_io(errno) : "");
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
}

/* A blocking receive on rx waits until tx sends. */
static void recv_blocks(int rx, int tx)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		guard();
		sk_recv("child: blocking recv", rx, 64, 0);
		_exit(0);
	}
	io_wait_sleeping(pid);
	if (write(tx, "late", 4) != 4)
		die("write");
	show_status_io("child", io_reap(pid));
}

/* A short positive timeout after the negative one waits again; {0, 0} blocks until data. */
static void recv_after(int rx, int tx)
{
	char buf[64];
	struct timespec t0;
	set_tv("SO_RCVTIMEO", rx, SO_RCVTIMEO_OLD, 0, 30000, 16);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	guard();
	IOSHOW(recv(rx, buf, sizeof buf, 0));
	unguard();
	printf("  waited at least 20 ms: %s\n", ms_since(&t0) >= 20 ? "yes" : "no");
	set_tv("SO_RCVTIMEO", rx, SO_RCVTIMEO_OLD, -1, 0, 16);
	set_tv("SO_RCVTIMEO", rx, SO_RCVTIMEO_OLD, 0, 0, 16);
	recv_blocks(rx, tx);
}

/* A full tx: every blocking send returns EAGAIN at once under a negative SO_SNDTIMEO (with
 * fds too, but for named datagram sockets, whose fds are the kernel's to carry). */
static void send_negative(int tx, int opt, int scm)
{
	static char big[4096];
	set_tv("timeout", tx, opt, -1, 0, 16);
	io_fill(tx, 256);
	guard();
	IOSHOW(write(tx, big, 256));
	IOSHOW(send(tx, big, 256, 0));
	IOSHOW(do_sendmsg(tx, big, 256));
	IOSHOW(sendto(tx, big, 256, 0, NULL, 0));
	if (scm) {
		int fds[2];
		io_pipe(fds);
		IOSHOW(sk_send_fds(tx, fds, 1, big, 256));
		closep(fds);
	}
	unguard();
	pid_t pid = io_fork();
	if (pid == 0) {
		guard();
		errno = 0;
		long n = send(tx, big, 256, 0);
		printf("  child: send = %ld %s\n", n, n < 0 ? errname_io(errno) : "");
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
}

/* One connected pair (rx receives what tx sends; rx2/tx2 the other way). */
static void pair_cases(const char *name, int rx, int tx, int scm)
{
	char c[64];
	snprintf(c, sizeof c, "%s_rules", name);
	CASE(c);
	rules(rx);
	snprintf(c, sizeof c, "%s_recv_negative", name);
	CASE(c);
	recv_negative(rx, tx, SO_RCVTIMEO_OLD);
	snprintf(c, sizeof c, "%s_recv_negative_new", name);
	CASE(c);
	recv_negative(rx, tx, SO_RCVTIMEO_NEW);
	snprintf(c, sizeof c, "%s_recv_after", name);
	CASE(c);
	recv_after(rx, tx);
	snprintf(c, sizeof c, "%s_send_negative", name);
	CASE(c);
	send_negative(tx, SO_SNDTIMEO_OLD, scm);
	snprintf(c, sizeof c, "%s_send_negative_new", name);
	CASE(c);
	set_tv("SO_SNDTIMEO", tx, SO_SNDTIMEO_OLD, 0, 0, 16);
	send_negative(tx, SO_SNDTIMEO_NEW, scm);
}

/* A socketpair: sv[1] receives. */
static void socketpair_cases(const char *name, int a, int b)
{
	pair_cases(name, b, a, 1);
}

int main(void)
{
	sk_setup();
	io_handler(SIGALRM, on_alarm, 0);
	sk_each_pair(socketpair_cases);

	for (size_t i = 0; i < 2; i++) {
		struct sockaddr_un a;
		char name[64];
		socklen_t la = sk_path(&a, sk_types[i].name);
		int l = sk_listener(sk_types[i].type, &a, la, 4);
		/* The client's timeouts are set before it connects. */
		int c = sk_socket(sk_types[i].type);
		snprintf(name, sizeof name, "named_%s_before_connect", sk_types[i].name);
		CASE(name);
		set_tv("SO_RCVTIMEO", c, SO_RCVTIMEO_OLD, -1, 0, 16);
		set_tv("SO_SNDTIMEO", c, SO_SNDTIMEO_NEW, -1, 0, 16);
		IOSHOW(connect(c, (struct sockaddr *)&a, la));
		int s = sk_accept(l);
		char buf[16];
		guard();
		IOSHOW(recv(c, buf, sizeof buf, 0));
		io_fill(c, 256);
		IOSHOW(send(c, buf, 1, 0));
		unguard();
		io_close(c);
		io_close(s);
		/* A listener's own timeout: accept says EAGAIN; what it accepts waits as usual. */
		snprintf(name, sizeof name, "named_%s_listener", sk_types[i].name);
		CASE(name);
		set_tv("SO_RCVTIMEO", l, SO_RCVTIMEO_OLD, -1, 0, 16);
		guard();
		IOSHOW(accept(l, NULL, NULL));
		unguard();
		c = sk_connect(sk_types[i].type, &a, la);
		s = sk_accept(l);
		show_tv("accepted SO_RCVTIMEO", s, SO_RCVTIMEO_OLD);
		recv_blocks(s, c);
		set_tv("SO_RCVTIMEO", l, SO_RCVTIMEO_OLD, 0, 0, 16);
		io_close(c);
		io_close(s);
		/* Once with the client receiving, once with the server. */
		for (int server = 0; server < 2; server++) {
			c = sk_connect(sk_types[i].type, &a, la);
			s = sk_accept(l);
			snprintf(name, sizeof name, "named_%s_%s_reads", sk_types[i].name, server ? "server" : "client");
			pair_cases(name, server ? s : c, server ? c : s, 1);
			io_close(c);
			io_close(s);
		}
		io_close(l);
	}

	{
		struct sockaddr_un a, b;
		socklen_t la = sk_path(&a, "dgram_rx"), lb = sk_path(&b, "dgram_tx");
		int rx = sk_listener(SOCK_DGRAM, &a, la, -1);
		int tx = sk_listener(SOCK_DGRAM, &b, lb, -1);
		if (connect(tx, (struct sockaddr *)&a, la))
			die("connect");
		pair_cases("named_dgram", rx, tx, 0);
		io_close(rx);
		io_close(tx);
	}

	sk_cleanup();
	return 0;
}
