/* Loopback TCP connections the kernel carries, under the shim too: after a half-close
 * (shutdown gives the connection back), EPIPE with SIGPIPE (handled, and with MSG_NOSIGNAL)
 * after the peer's close or death (a peer killed with nothing unread: its kernel FIN),
 * out-of-band data, SO_RCVBUF set on a connection with bytes queued (they keep their order),
 * connect(AF_UNSPEC) and a new connect, a non-blocking connect accepted before its client
 * connects again, a client without the shim against a shim server, and
 * a shim client against a server without the shim (IPCSHIM_DISABLE=1; the kernel run
 * ignores it).
 * kernel-tcp: allowed
 */
#include "tcp_common.h"

static volatile int g_sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	g_sigpipes++;
}

static void half_close(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "req", 3));
	IOSHOW(shutdown(c, SHUT_WR));
	tcp_wait_for(s, POLLRDHUP);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	RECV(s, 10, 0);
	RECV(s, 10, 0);
	IOSHOW(write(s, "resp", 4));
	RECV(c, 10, 0);
	g_sigpipes = 0;
	IOSHOW(write(c, "x", 1));
	printf("  SIGPIPE %d\n", g_sigpipes);
	close(s);
	tcp_wait_for(c, POLLRDHUP);
	RECV(c, 10, 0);
	close(c);
	close(l);
}

static void epipe_after_close(int fam, int flags)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	close(s);
	tcp_wait_for(c, POLLRDHUP);
	g_sigpipes = 0;
	IOSHOW(send(c, "a", 1, flags));
	tcp_wait_for(c, POLLERR);
	IOSHOW(send(c, "b", 1, flags));
	IOSHOW(send(c, "c", 1, flags));
	printf("  SIGPIPE %d\n", g_sigpipes);
	RECV(c, 10, 0);
	close(c);
	close(l);
}

static void killed_peer(int fam)
{
	int port, l = tcp_listener(fam, &port), sync[2];
	io_pipe(sync);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = tcp_client(fam, port);
		(void)c;
		io_post(sync[1]);
		pause();
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	io_wait(sync[0]);
	kill(pid, SIGKILL);
	show_status_io("client", io_reap(pid));
	tcp_wait_for(s, POLLRDHUP);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	RECV(s, 10, 0);
	IOSHOW(send(s, "after", 5, MSG_NOSIGNAL));
	tcp_wait_for(s, POLLERR);
	IOSHOW(send(s, "again", 5, MSG_NOSIGNAL));
	RECV(s, 10, 0);
	closep(sync);
	close(s);
	close(l);
}

static void out_of_band(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "12", 2));
	IOSHOW(send(c, "ab", 2, MSG_OOB));
	IOSHOW(write(c, "34", 2));
	usleep(20000);
	int mark = -1;
	IOSHOW(ioctl(s, SIOCATMARK, &mark));
	printf("  at mark %d\n", mark);
	RECV(s, 10, 0);
	IOSHOW(ioctl(s, SIOCATMARK, &mark));
	printf("  at mark %d\n", mark);
	RECV(s, 10, MSG_OOB);
	RECV(s, 10, 0);
	close(c);
	close(s);
	close(l);
}

static void rcvbuf_midstream(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "first", 5));
	int sz = 65536;
	IOSHOW(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
	IOSHOW(write(c, "second", 6));
	RECV(s, 11, MSG_WAITALL);
	IOSHOW(write(s, "reply", 5));
	RECV(c, 10, 0);
	close(c);
	close(s);
	close(l);
}

/* connect(AF_UNSPEC) disconnects (the peer gets a reset); the socket then connects again. */
static void disconnect_reconnect(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "x", 1));
	RECV(s, 10, 0);
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	IOSHOW(connect(c, &unspec, sizeof unspec));
	tcp_wait_for(s, POLLERR);
	RECV(s, 10, 0);
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	int s2 = accept(l, NULL, NULL);
	IOSHOW(write(c, "again", 5));
	RECV(s2, 10, 0);
	close(c);
	close(s);
	close(s2);
	close(l);
}

/* A non-blocking connect whose handshake waits (the listener's queue is full: its SYN is
 * dropped and sent again a second later) is accepted before its client connects again (0,
 * as APR checks) and sends: the client's bytes must reach the accepted socket, through
 * nginx's edge-triggered epoll interest added after the accept. */
static void connect_again_after_accept(int fam)
{
	int port, l = tcp_listener(fam, &port);
	IOSHOW(listen(l, 0));
	int first = tcp_client(fam, port);
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	int c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	int s1 = accept(l, NULL, NULL);
	int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	printf("  accepted %d %d\n", s1 >= 0, s >= 0);
	tcp_wait_for(c, POLLOUT);
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	IOSHOW(write(c, "request", 7));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.fd = s };
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	/* EPOLLOUT may come first, EPOLLIN with the bytes' own edge. */
	int in = 0;
	for (int k = 0; k < 4 && !in; k++) {
		struct epoll_event got;
		if (epoll_wait(ep, &got, 1, 2000) != 1)
			break;
		in = (got.events & EPOLLIN) != 0;
	}
	printf("  EPOLLIN %d\n", in);
	RECV(s, 10, 0);
	IOSHOW(write(s, "reply", 5));
	tcp_wait_for(c, POLLIN);
	RECV(c, 10, 0);
	close(ep);
	close(c);
	close(s);
	close(s1);
	close(first);
	close(l);
}

/* The other side, run as a program without the shim. */
static int foreign(const char *role, int fam, int port, int out)
{
	if (!strcmp(role, "client")) {
		int c = tcp_client(fam, port);
		char buf[16] = { 0 };
		if (write(c, "from-kernel", 11) != 11 || recv(c, buf, 5, MSG_WAITALL) != 5 || memcmp(buf, "reply", 5))
			return 1;
		return 0;
	}
	/* Its port goes through a file: a pipe would be the shim's, which it does not see. */
	int l = tcp_listener(fam, &port);
	char text[16];
	int f = open("tcp_port.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int len = snprintf(text, sizeof text, "%d", port);
	if (f < 0 || write(f, text, len) != len || close(f) || rename("tcp_port.tmp", "tcp_port"))
		return 1;
	(void)out;
	int s = accept(l, NULL, NULL);
	char buf[16];
	long n = recv(s, buf, 6, MSG_WAITALL);
	if (n != 6 || write(s, buf, 6) != 6)
		return 1;
	recv(s, buf, 1, 0);
	return 0;
}

static pid_t spawn_foreign(const char *role, int fam, int port, int out)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		char f[16], p[16], o[16];
		snprintf(f, sizeof f, "%d", fam);
		snprintf(p, sizeof p, "%d", port);
		snprintf(o, sizeof o, "%d", out);
		setenv("IPCSHIM_DISABLE", "1", 1);
		execl("/proc/self/exe", "tcp_kernel", role, f, p, o, (char *)NULL);
		_exit(SETUP_FAIL);
	}
	return pid;
}

static void foreign_client(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t pid = spawn_foreign("client", fam, port, -1);
	int s = accept(l, NULL, NULL);
	RECV(s, 11, MSG_WAITALL);
	IOSHOW(write(s, "reply", 5));
	RECV(s, 10, 0);
	show_status_io("client", io_reap(pid));
	close(s);
	close(l);
}

static void foreign_server(int fam)
{
	int port = 0;
	unlink("tcp_port");
	pid_t pid = spawn_foreign("server", fam, 0, -1);
	for (int i = 0; i < 500 && port == 0; i++) {
		char text[16] = { 0 };
		int f = open("tcp_port", O_RDONLY);
		if (f >= 0 && read(f, text, sizeof text - 1) > 0)
			port = atoi(text);
		if (f >= 0)
			close(f);
		if (port == 0)
			usleep(10000);
	}
	if (port == 0)
		die("port");
	unlink("tcp_port");
	int c = tcp_client(fam, port);
	IOSHOW(write(c, "echo", 4));
	IOSHOW(write(c, "me", 2));
	RECV(c, 6, MSG_WAITALL);
	close(c);
	show_status_io("server", io_reap(pid));
}

int main(int argc, char **argv)
{
	if (argc == 5)
		return foreign(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	setup();
	alarm(60);
	io_handler(SIGPIPE, on_sigpipe, 0);
	for (int f = 0; f < 2; f++) {
		int fam = g_fams[f];
		const char *tag = fam_name(fam);
		printf("case half_close_%s\n", tag);
		half_close(fam);
		printf("case epipe_after_close_%s\n", tag);
		epipe_after_close(fam, 0);
		printf("case epipe_nosignal_%s\n", tag);
		epipe_after_close(fam, MSG_NOSIGNAL);
		printf("case killed_peer_%s\n", tag);
		killed_peer(fam);
		printf("case out_of_band_%s\n", tag);
		out_of_band(fam);
		printf("case rcvbuf_midstream_%s\n", tag);
		rcvbuf_midstream(fam);
		printf("case disconnect_reconnect_%s\n", tag);
		disconnect_reconnect(fam);
		printf("case connect_again_after_accept_%s\n", tag);
		connect_again_after_accept(fam);
		printf("case foreign_client_%s\n", tag);
		foreign_client(fam);
		printf("case foreign_server_%s\n", tag);
		foreign_server(fam);
	}
	return 0;
}
