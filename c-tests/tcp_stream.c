/* Loopback TCP between shimmed processes, over IPv4 and IPv6: connect/accept and an echo
 * between two processes, MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT, readv/writev, sendmsg/recvmsg
 * (no address, no control data), FIONREAD, SIOCOUTQ, poll and epoll readiness, end of file
 * after the peer's close, the reset of a close with unread data, a non-blocking connect
 * (EINPROGRESS, then POLLOUT), 4 MiB in one direction, many clients on one listener served
 * through epoll, a client SIGKILLed, one that exits with bytes unread (the kernel's reset),
 * SO_RCVTIMEO, an accept in a forked worker, an epoll interest taken before a connect, a
 * client that sent and closed before the server accepted, sendfile/splice, a half-close
 * (shutdown SHUT_WR) with the other direction still used, and 64 connects at once served as
 * ab and nginx do.
 * Under the shim no byte may move through a kernel TCP socket (the runner's strace check).
 */
#include "tcp_common.h"
#include <sys/sendfile.h>

static const char *tag;

static void echo_processes(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = tcp_client(fam, port);
		char buf[8] = { 0 };
		if (write(c, "hello", 5) != 5 || recv(c, buf, 5, MSG_WAITALL) != 5 || memcmp(buf, "world", 5))
			_exit(1);
		close(c);
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	RECV(s, 5, MSG_WAITALL);
	IOSHOW(write(s, "world", 5));
	RECV(s, 5, 0);
	show_status_io("client", io_reap(pid));
	close(s);
	close(l);
}

static void data_calls(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "abc", 3));
	RECV(s, 2, MSG_PEEK);
	show_inq("server", s);
	RECV(s, 10, 0);
	RECV(s, 10, MSG_DONTWAIT);
	IOSHOW(recv(s, NULL, 0, MSG_DONTWAIT));
	IOSHOW(write(c, "z", 1));
	IOSHOW(recv(s, NULL, 0, 0));
	RECV(s, 10, 0);

	pid_t pid = io_fork();
	if (pid == 0) {
		usleep(30000);
		write(c, "de", 2);
		usleep(30000);
		write(c, "fgh", 3);
		_exit(0);
	}
	RECV(s, 5, MSG_WAITALL);
	show_status_io("writer", io_reap(pid));

	struct iovec w[2] = { { "12", 2 }, { "345", 3 } };
	IOSHOW(writev(c, w, 2));
	char a[3] = { 0 }, b[10] = { 0 };
	struct iovec rv[2] = { { a, 2 }, { b, 10 } };
	long n = IOSHOW(readv(s, rv, 2));
	printf("  readv got \"%.2s\" \"%.*s\"\n", a, (int)(n > 2 ? n - 2 : 0), b);

	struct msghdr m = { 0 };
	struct iovec one = { "msg", 3 };
	m.msg_iov = &one;
	m.msg_iovlen = 1;
	IOSHOW(sendmsg(c, &m, MSG_NOSIGNAL));
	struct sockaddr_storage from;
	char ctl[64], got[16];
	struct iovec in = { got, sizeof got };
	struct msghdr r = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &in, .msg_iovlen = 1,
			    .msg_control = ctl, .msg_controllen = sizeof ctl, .msg_flags = -1 };
	n = IOSHOW(recvmsg(s, &r, 0));
	printf("  recvmsg \"%.*s\" namelen=%u controllen=%zu flags=%#x\n", (int)(n > 0 ? n : 0), got,
	       r.msg_namelen, (size_t)r.msg_controllen, r.msg_flags);
	IOSHOW(send(s, "back", 4, 0));
	socklen_t alen = sizeof from;
	n = IOSHOW(recvfrom(c, got, sizeof got, 0, (struct sockaddr *)&from, &alen));
	printf("  recvfrom \"%.*s\" addrlen=%u\n", (int)(n > 0 ? n : 0), got, alen);
	show_poll1("client", c, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	close(c);
	close(s);
	close(l);
}

static const char *epollbits(unsigned ev)
{
	static char buf[160];
	static const struct bitname names[] = {
		{ EPOLLIN, "EPOLLIN" }, { EPOLLPRI, "EPOLLPRI" }, { EPOLLOUT, "EPOLLOUT" },
		{ EPOLLERR, "EPOLLERR" }, { EPOLLHUP, "EPOLLHUP" }, { EPOLLRDNORM, "EPOLLRDNORM" },
		{ EPOLLWRNORM, "EPOLLWRNORM" }, { EPOLLWRBAND, "EPOLLWRBAND" }, { EPOLLRDHUP, "EPOLLRDHUP" },
	};
	return bits_text(buf, sizeof buf, ev, names, sizeof names / sizeof names[0]);
}

/* What epoll, poll and the queue ioctls say as data comes, is read, and the peer closes. */
static void readiness(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	unsigned all = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM | EPOLLWRBAND;
	struct epoll_event ev = { .events = all, .data.fd = c };
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
	struct epoll_event got;
	int n = epoll_wait(ep, &got, 1, 1000);
	printf("  idle: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	IOSHOW(write(s, "data", 4));
	n = epoll_wait(ep, &got, 1, 1000);
	printf("  data: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	show_inq("client", c);
	int outq = -1;
	IOSHOW(ioctl(s, SIOCOUTQ, &outq));
	printf("  SIOCOUTQ server <= 4: %d\n", outq >= 0 && outq <= 4);
	RECV(c, 10, 0);
	show_inq("client", c);
	close(s);
	tcp_wait_for(c, POLLRDHUP);
	n = epoll_wait(ep, &got, 1, 1000);
	printf("  closed: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	show_poll1("client", c, POLLIN | POLLOUT | POLLRDHUP | POLLPRI | POLLWRBAND);
	close(ep);
	close(c);
	close(l);
}

static void eof_after_close(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(c, "bye", 3));
	close(c);
	tcp_wait_for(s, POLLRDHUP);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	RECV(s, 10, 0);
	RECV(s, 10, 0);
	RECV(s, 10, MSG_PEEK);
	close(s);
	close(l);
}

static void reset_unread(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	IOSHOW(write(s, "unread", 6));
	IOSHOW(write(c, "read", 4));
	close(c);
	tcp_wait_for(s, POLLERR);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	RECV(s, 10, 0);
	RECV(s, 10, 0);
	RECV(s, 10, 0);
	IOSHOW(send(s, "x", 1, MSG_NOSIGNAL));
	close(s);
	close(l);
}

static void nonblocking_connect(int fam)
{
	int port, l = tcp_listener(fam, &port);
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	int c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	struct pollfd p = { c, POLLOUT, 0 };
	IOSHOW(poll(&p, 1, 5000));
	printf("  revents=%s\n", pollbits(p.revents));
	int err = -1;
	socklen_t elen = sizeof err;
	IOSHOW(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &elen));
	printf("  SO_ERROR=%s\n", err ? errname_io(err) : "0");
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	int s = accept(l, NULL, NULL);
	RECV(c, 10, 0);
	IOSHOW(write(c, "nb", 2));
	RECV(s, 10, 0);
	close(c);
	close(s);
	close(l);
}

static void big_transfer(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		static unsigned char buf[65536];
		int c = tcp_client(fam, port);
		for (long off = 0; off < (4 << 20); off += sizeof buf) {
			for (size_t i = 0; i < sizeof buf; i++)
				buf[i] = (unsigned char)((off + i) * 7 + (off + i) / 4093);
			if (write(c, buf, sizeof buf) != (long)sizeof buf)
				_exit(1);
		}
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	static unsigned char buf[100000];
	long total = 0, bad = 0, n;
	while ((n = read(s, buf, sizeof buf)) > 0) {
		for (long i = 0; i < n; i++)
			bad += buf[i] != (unsigned char)((total + i) * 7 + (total + i) / 4093);
		total += n;
	}
	printf("  read %ld bytes, %ld wrong, last read %ld\n", total, bad, n);
	show_status_io("writer", io_reap(pid));
	close(s);
	close(l);
}

#define CLIENTS 16

static void many_epoll(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t kids[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		kids[i] = io_fork();
		if (kids[i] == 0) {
			int c = tcp_client(fam, port);
			int v = i, back = -1;
			if (write(c, &v, 4) != 4 || recv(c, &back, 4, MSG_WAITALL) != 4 || back != i + 1000)
				_exit(1);
			_exit(0);
		}
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	int accepted = 0, answered = 0, closed = 0;
	while (closed < CLIENTS) {
		struct epoll_event got[8];
		int n = epoll_wait(ep, got, 8, 5000);
		if (n <= 0)
			die("epoll_wait");
		for (int k = 0; k < n; k++) {
			int fd = got[k].data.fd;
			if (fd == l) {
				int s = accept(l, NULL, NULL);
				struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = s };
				epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
				accepted++;
				continue;
			}
			int v;
			long r = read(fd, &v, 4);
			if (r == 4) {
				v += 1000;
				if (write(fd, &v, 4) == 4)
					answered++;
			} else if (r == 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				closed++;
			} else {
				die("read");
			}
		}
	}
	int ok = 0;
	for (int i = 0; i < CLIENTS; i++) {
		int st = io_reap(kids[i]);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	printf("  accepted %d answered %d closed %d clients ok %d\n", accepted, answered, closed, ok);
	close(ep);
	close(l);
}

static void killed_client(int fam)
{
	int port, l = tcp_listener(fam, &port), sync[2];
	io_pipe(sync);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = tcp_client(fam, port);
		if (write(c, "x", 1) != 1)
			_exit(1);
		io_post(sync[1]);
		pause();
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	io_wait(sync[0]);
	RECV(s, 10, 0);
	kill(pid, SIGKILL);
	show_status_io("client", io_reap(pid));
	tcp_wait_for(s, POLLRDHUP);
	RECV(s, 10, 0);
	closep(sync);
	close(s);
	close(l);
}

/* An edge-triggered epoll interest taken before a non-blocking connect (as nginx takes its
 * upstreams'): the connect's EPOLLOUT, the reply's EPOLLIN, the peer's close. */
static void epoll_before_connect(int fam)
{
	int port, l = tcp_listener(fam, &port);
	int c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = c };
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	IOSHOW(connect(c, (struct sockaddr *)&ss, len));
	struct epoll_event got;
	int n = epoll_wait(ep, &got, 1, 1000);
	printf("  connected: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	n = epoll_wait(ep, &got, 1, 50);
	printf("  again: %d\n", n);
	int s = accept(l, NULL, NULL);
	IOSHOW(write(s, "hi", 2));
	n = epoll_wait(ep, &got, 1, 1000);
	printf("  reply: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	RECV(c, 10, 0);
	IOSHOW(write(c, "ok", 2));
	RECV(s, 10, 0);
	close(s);
	n = epoll_wait(ep, &got, 1, 1000);
	printf("  closed: %d %s\n", n, n == 1 ? epollbits(got.events) : "-");
	RECV(c, 10, 0);
	close(ep);
	close(c);
	close(l);
}

/* A client that sends and closes before the server accepts: the server still reads it all,
 * then end of file. */
static void closed_before_accept(int fam)
{
	int port, l = tcp_listener(fam, &port);
	int c = tcp_client(fam, port);
	IOSHOW(write(c, "early", 5));
	IOSHOW(write(c, " bird", 5));
	close(c);
	int s = accept(l, NULL, NULL);
	RECV(s, 20, MSG_WAITALL);
	RECV(s, 20, 0);
	close(s);
	close(l);
}

/* sendfile from a file into the connection, splice out of it into a pipe. */
static void sendfile_splice(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s, p[2];
	tcp_pair(fam, l, port, &c, &s);
	char path[] = "tcp_sendfile_XXXXXX";
	int f = mkstemp(path);
	if (f < 0 || write(f, "from a file, through tcp", 24) != 24)
		die("file");
	unlink(path);
	off_t off = 5;
	IOSHOW(sendfile(c, f, &off, 19));
	printf("  offset now %ld\n", (long)off);
	io_pipe(p);
	IOSHOW(splice(s, NULL, p[1], NULL, 10, 0));
	char buf[32] = { 0 };
	long n = IOSHOW(read(p[0], buf, sizeof buf));
	printf("  pipe got \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
	RECV(s, 32, 0);
	close(f);
	closep(p);
	close(c);
	close(s);
	close(l);
}

/* A process that exits (not killed) with bytes it never read resets its connection. */
static void exit_unread(int fam)
{
	int port, l = tcp_listener(fam, &port), go[2];
	io_pipe(go);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = tcp_client(fam, port);
		(void)c;
		io_wait(go[0]);
		exit(0);
	}
	int s = accept(l, NULL, NULL);
	IOSHOW(write(s, "never read", 10));
	io_post(go[1]);
	show_status_io("client", io_reap(pid));
	tcp_wait_for(s, POLLRDHUP);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	RECV(s, 10, 0);
	RECV(s, 10, 0);
	closep(go);
	close(s);
	close(l);
}

/* SO_RCVTIMEO bounds a blocking receive (EAGAIN); the connection stays usable. */
static void receive_timeout(int fam)
{
	int port, l = tcp_listener(fam, &port), c, s;
	tcp_pair(fam, l, port, &c, &s);
	struct timeval tv = { 0, 60000 };
	IOSHOW(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	RECV(s, 10, 0);
	printf("  waited >= 50 ms: %d\n", ms_since(&t0) >= 50);
	IOSHOW(write(c, "late", 4));
	RECV(s, 10, 0);
	close(c);
	close(s);
	close(l);
}

/* A server that listens, then accepts in a child it forked (a pre-forked worker). */
static void accept_in_child(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		int s = accept(l, NULL, NULL);
		char buf[16];
		long n = recv(s, buf, sizeof buf, 0);
		if (n <= 0 || write(s, buf, n) != n)
			_exit(1);
		recv(s, buf, 1, 0);
		_exit(0);
	}
	int c = tcp_client(fam, port);
	IOSHOW(write(c, "worker", 6));
	RECV(c, 6, MSG_WAITALL);
	close(c);
	show_status_io("worker", io_reap(pid));
	close(l);
}

/* shutdown(SHUT_WR) of a served connection: a reader blocked before it gets every byte
 * queued, then end of file (and POLLIN|POLLRDHUP); it still sends to the half-closed side,
 * which reads that, then the end of file of its close; its own send then fails with EPIPE. */
static void half_close(int fam)
{
	int port, l = tcp_listener(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = tcp_client(fam, port);
		static char buf[4096];
		long got = 0, n;
		while ((n = read(c, buf, sizeof buf)) > 0)
			got += n;
		struct pollfd p = { c, POLLIN | POLLOUT | POLLRDHUP, 0 };
		if (n != 0 || got != 100000 || poll(&p, 1, 0) != 1 || p.revents != (POLLIN | POLLOUT | POLLRDHUP))
			_exit(1);
		if (write(c, "after", 5) != 5 || read(c, buf, 1) != 0)
			_exit(2);
		close(c);
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	usleep(30000); /* the client is blocked in its read */
	static char big[100000];
	memset(big, 'h', sizeof big);
	IOSHOW(write(s, big, sizeof big));
	IOSHOW(shutdown(s, SHUT_WR));
	RECV(s, 5, MSG_WAITALL);
	show_status_io("client", io_reap(pid));
	RECV(s, 10, 0);
	show_poll1("server", s, POLLIN | POLLOUT | POLLRDHUP);
	IOSHOW(send(s, "x", 1, MSG_NOSIGNAL));
	close(s);
	close(l);
}

/* ab's way, many at once: BURST non-blocking connects (ephemeral ports close together), each
 * connected again once it polls POLLOUT (0, as APR checks), a request written before the
 * server accepts; the server accepts them all (accept4, SOCK_NONBLOCK) and adds each with
 * EPOLLIN|EPOLLOUT|EPOLLET|EPOLLRDHUP (nginx's), then reads every request as edge-triggered
 * events come, and answers. */
#define BURST 64
static void burst_edge(int fam)
{
	int port, l = tcp_listener(fam, &port), c[BURST], sv[BURST], again = 0, sent = 0;
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	static const char req[] = "GET /mid.bin HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: ab\r\nAccept: */*\r\n\r\n";
	for (int i = 0; i < BURST; i++) {
		c[i] = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(c[i], (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
			die("connect");
	}
	for (int i = 0; i < BURST; i++) {
		tcp_wait_for(c[i], POLLOUT);
		again += connect(c[i], (struct sockaddr *)&ss, len) == 0;
		sent += write(c[i], req, sizeof req - 1) == (long)sizeof req - 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC), accepted = 0, requests = 0, answered = 0;
	for (int i = 0; i < BURST; i++) {
		int s = sv[i] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.fd = s };
		if (s < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &e))
			die("accept4 and add");
		accepted++;
	}
	while (requests < BURST) {
		struct epoll_event got[16];
		int n = epoll_wait(ep, got, 16, 5000);
		if (n <= 0)
			break;
		for (int k = 0; k < n; k++) {
			char buf[256];
			long r, total = 0;
			while ((r = read(got[k].data.fd, buf, sizeof buf)) > 0)
				total += r;
			if (total == (long)sizeof req - 1) {
				requests++;
				answered += write(got[k].data.fd, "200", 3) == 3;
			}
		}
	}
	int replies = 0;
	for (int i = 0; i < BURST; i++) {
		char b[8];
		tcp_wait_for(c[i], POLLIN);
		replies += recv(c[i], b, sizeof b, 0) == 3;
		close(c[i]);
	}
	printf("  connected again %d sent %d accepted %d requests %d answered %d replies %d\n", again, sent,
	       accepted, requests, answered, replies);
	for (int i = 0; i < BURST; i++)
		close(sv[i]);
	close(ep);
	close(l);
}

int main(void)
{
	setup();
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	for (int f = 0; f < 2; f++) {
		int fam = g_fams[f];
		tag = fam_name(fam);
		printf("case echo_processes_%s\n", tag);
		echo_processes(fam);
		printf("case data_calls_%s\n", tag);
		data_calls(fam);
		printf("case readiness_%s\n", tag);
		readiness(fam);
		printf("case eof_after_close_%s\n", tag);
		eof_after_close(fam);
		printf("case reset_unread_%s\n", tag);
		reset_unread(fam);
		printf("case nonblocking_connect_%s\n", tag);
		nonblocking_connect(fam);
		printf("case big_transfer_%s\n", tag);
		big_transfer(fam);
		printf("case many_epoll_%s\n", tag);
		many_epoll(fam);
		printf("case killed_client_%s\n", tag);
		killed_client(fam);
		printf("case epoll_before_connect_%s\n", tag);
		epoll_before_connect(fam);
		printf("case closed_before_accept_%s\n", tag);
		closed_before_accept(fam);
		printf("case sendfile_splice_%s\n", tag);
		sendfile_splice(fam);
		printf("case exit_unread_%s\n", tag);
		exit_unread(fam);
		printf("case receive_timeout_%s\n", tag);
		receive_timeout(fam);
		printf("case accept_in_child_%s\n", tag);
		accept_in_child(fam);
		printf("case burst_edge_%s\n", tag);
		burst_edge(fam);
		printf("case half_close_%s\n", tag);
		half_close(fam);
	}
	return 0;
}
