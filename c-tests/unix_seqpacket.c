/* AF_UNIX SOCK_SEQPACKET: record boundaries and truncation, zero-length records, MSG_PEEK and
 * MSG_TRUNC, bind/listen/accept/connect, errors on unconnected sockets and mismatched types,
 * EOF, EPIPE and ECONNRESET, EMSGSIZE, records carried between processes.
 */
#include "common.h"

static void show_rec(const char *what, int fd, size_t len, int flags)
{
	char buf[512];
	struct iovec io = { buf, len };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	errno = 0;
	long n = recvmsg(fd, &m, flags);
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %ld \"%.*s\" msg_flags=%s\n", what, n, (int)(n < (long)len ? n : (long)len), buf,
		       sk_msgflags(m.msg_flags));
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2], l, c, s;
	char buf[4096];
	long n;
	pid_t pid;
	struct sockaddr_un a, b;
	socklen_t la, lb;

	CASE("seq_record_boundaries");
	sk_pair(SOCK_SEQPACKET, sv);
	IOSHOW(send(sv[0], "first", 5, 0));
	IOSHOW(write(sv[0], "second", 6));
	IOSHOW(send(sv[0], "third record", 12, MSG_EOR));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	show_rec("recvmsg(100)", sv[1], 100, 0);
	show_rec("recvmsg(3)", sv[1], 3, 0);
	show_rec("recvmsg(100, MSG_PEEK)", sv[1], 100, MSG_PEEK);
	show_rec("recvmsg(5, MSG_TRUNC)", sv[1], 5, MSG_TRUNC);
	show_rec("recvmsg(100, MSG_DONTWAIT) empty", sv[1], 100, MSG_DONTWAIT);
	{
		struct iovec w[2] = { { "gathered ", 9 }, { "record", 6 } };
		IOSHOW(writev(sv[1], w, 2));
		char x[4] = { 0 }, y[32] = { 0 };
		struct iovec r[2] = { { x, 3 }, { y, 31 } };
		IOSHOW(readv(sv[0], r, 2));
		printf("  x=\"%s\" y=\"%s\"\n", x, y);
	}

	CASE("seq_zero_length_record");
	IOSHOW(send(sv[0], buf, 0, 0));
	IOSHOW(send(sv[0], "after", 5, 0));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	show_poll1("receiver", sv[1], POLLIN);
	show_rec("recvmsg(100)", sv[1], 100, 0);
	show_rec("recvmsg(100)", sv[1], 100, 0);

	CASE("seq_emsgsize_and_sendto");
	{
		static char big[300000];
		IOSHOW(send(sv[0], big, sizeof big, 0));
		IOSHOW(send(sv[0], big, 100000, 0));
		printf("  FIONREAD = %d\n", io_nread(sv[1]));
		n = recv(sv[1], big, sizeof big, 0);
		printf("  one recv = %ld\n", n);
	}
	la = sk_path(&a, "nowhere");
	IOSHOW(sendto(sv[0], "addressed", 9, 0, (struct sockaddr *)&a, la));
	show_rec("recvmsg(100)", sv[1], 100, MSG_DONTWAIT);
	IOSHOW(send(sv[0], "x", 1, MSG_OOB));
	closep(sv);

	CASE("seq_listen_connect_accept");
	la = sk_path(&a, "seq");
	l = sk_listener(SOCK_SEQPACKET, &a, la, 2);
	sk_show_opt("SO_ACCEPTCONN", l, SOL_SOCKET, SO_ACCEPTCONN);
	c = sk_socket(SOCK_SEQPACKET);
	IOSHOW(connect(c, (struct sockaddr *)&a, la));
	IOSHOW(connect(c, (struct sockaddr *)&a, la));
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	printf("  accept4: %s FD_CLOEXEC=%d\n", s >= 0 ? "fd" : errname_io(errno),
	       !!(fcntl(s, F_GETFD) & FD_CLOEXEC));
	sk_show_names("client", c);
	sk_show_names("accepted", s);
	sk_show_opt("accepted SO_TYPE", s, SOL_SOCKET, SO_TYPE);
	IOSHOW(send(c, "hello", 5, 0));
	IOSHOW(send(c, "there", 5, 0));
	show_rec("accepted recvmsg(100)", s, 100, 0);
	show_rec("accepted recvmsg(100)", s, 100, 0);
	io_set_nonblock(l, 1);
	IOSHOW(accept(l, NULL, NULL));
	io_set_nonblock(l, 0);

	CASE("seq_type_mismatch_and_unconnected");
	{
		int u = sk_socket(SOCK_SEQPACKET);
		IOSHOW(send(u, "x", 1, 0));
		IOSHOW(sendto(u, "x", 1, 0, (struct sockaddr *)&a, la));
		IOSHOW(recv(u, buf, 1, MSG_DONTWAIT));
		IOSHOW(listen(u, 1));
		lb = sk_path(&b, "stream");
		int t = sk_listener(SOCK_STREAM, &b, lb, 1);
		IOSHOW(connect(u, (struct sockaddr *)&b, lb));
		io_close(t);
		int st = sk_socket(SOCK_STREAM);
		IOSHOW(connect(st, (struct sockaddr *)&a, la));
		io_close(st);
		int d = sk_socket(SOCK_DGRAM);
		IOSHOW(sendto(d, "x", 1, 0, (struct sockaddr *)&a, la));
		io_close(d);
		IOSHOW(shutdown(u, SHUT_RDWR));
		io_close(u);
	}

	CASE("seq_eof_epipe_econnreset");
	IOSHOW(send(s, "for the client", 14, 0));
	IOSHOW(shutdown(s, SHUT_WR));
	show_rec("client", c, 100, 0);
	show_rec("client", c, 100, 0);
	IOSHOW(send(s, "x", 1, 0));
	IOSHOW(send(c, "still open", 10, 0));
	show_rec("accepted", s, 100, 0);
	io_close(s);
	show_rec("client after the close", c, 100, 0);
	IOSHOW(send(c, "x", 1, 0));
	io_close(c);
	c = sk_connect(SOCK_SEQPACKET, &a, la);
	s = sk_accept(l);
	IOSHOW(send(c, "never read", 10, 0));
	IOSHOW(send(s, "queued", 6, 0));
	io_close(s);
	show_poll1("client", c, POLLIN | POLLOUT | POLLRDHUP);
	show_rec("client", c, 100, 0);
	show_rec("client", c, 100, 0);
	io_close(c);

	CASE("seq_records_between_processes");
	c = sk_connect(SOCK_SEQPACKET, &a, la);
	s = sk_accept(l);
	if ((pid = io_fork()) == 0) {
		io_close(s);
		static char rec[9000];
		for (int i = 0; i < 12; i++) {
			size_t len = 1 + i * 700;
			memset(rec, 'a' + i, len);
			if (send(c, rec, len, 0) != (long)len)
				_exit(1);
		}
		n = recv(c, rec, sizeof rec, 0);
		printf("  child: reply = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), rec);
		_exit(0);
	}
	io_close(c);
	{
		int ok = 0;
		for (int i = 0; i < 12; i++) {
			n = recv(s, buf, sizeof buf, 0);
			size_t len = 1 + i * 700;
			int good = n == (long)(len < sizeof buf ? len : sizeof buf);
			for (long k = 0; good && k < n; k++)
				good = buf[k] == 'a' + i;
			ok += good;
		}
		printf("  records with their exact size and content (4096-byte buffer): %d of 12\n", ok);
	}
	n = send(s, "thanks", 6, 0);
	show_status_io("child", io_reap(pid));
	printf("  parent: send = %ld\n", n);
	show_rec("after the child exited", s, 100, 0);
	io_close(s);

	CASE("seq_blocked_recv_woken");
	c = sk_connect(SOCK_SEQPACKET, &a, la);
	s = sk_accept(l);
	if ((pid = io_fork()) == 0) {
		io_close(c);
		show_rec("child: recvmsg(3)", s, 3, 0);
		show_rec("child: recvmsg(100)", s, 100, 0);
		_exit(0);
	}
	io_close(s);
	io_wait_sleeping(pid);
	if (send(c, "truncated record", 16, 0) != 16)
		die("send");
	io_wait_sleeping(pid);
	io_close(c);
	show_status_io("child", io_reap(pid));
	io_close(l);

	sk_cleanup();
	return 0;
}
