/* AF_UNIX datagram sockets: message boundaries, truncation and MSG_TRUNC, zero-length
 * datagrams, sendto/recvfrom with the sender's address, connect and its filtering, errors
 * (ENOENT, EPROTOTYPE, ENOTCONN, EPERM, EMSGSIZE, EOPNOTSUPP, ECONNREFUSED), a full receive
 * queue, blocked senders and receivers woken by other processes, sendmmsg/recvmmsg, EFAULT. */
#include "common.h"

/* recvfrom into a 100-byte buffer (or len), printed with the sender's address. */
static long show_from(const char *what, int fd, size_t len, int flags)
{
	char buf[512];
	struct sockaddr_un from;
	socklen_t fl = sizeof from;
	memset(&from, 0x55, sizeof from);
	errno = 0;
	long n = recvfrom(fd, buf, len, flags, (struct sockaddr *)&from, &fl);
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %ld \"%.*s\" from %s\n", what, n, (int)(n < (long)len ? n : (long)len), buf,
		       sk_name(&from, fl));
	return n;
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2], r, s, t;
	char buf[4096];
	long n;
	pid_t pid;
	struct sockaddr_un a, b, c;
	socklen_t la, lb, lc;

	CASE("dgram_boundaries");
	sk_pair(SOCK_DGRAM, sv);
	IOSHOW(send(sv[0], "a", 1, 0));
	IOSHOW(send(sv[0], "bb", 2, 0));
	IOSHOW(write(sv[0], "ccc", 3));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	sk_recv("recv(100)", sv[1], 100, 0);
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	sk_recv("recv(100)", sv[1], 100, 0);
	sk_recv("read-like recv(100)", sv[1], 100, 0);
	sk_recv("recv(100, MSG_DONTWAIT) empty", sv[1], 100, MSG_DONTWAIT);
	{
		struct iovec w[2] = { { "two ", 4 }, { "iovecs", 6 } };
		IOSHOW(writev(sv[1], w, 2));
		sk_recv("recv(100) of a writev", sv[0], 100, 0);
	}

	CASE("dgram_truncation");
	IOSHOW(send(sv[0], "0123456789", 10, 0));
	sk_recv("recv(3)", sv[1], 3, 0);
	sk_recv("recv(100, MSG_DONTWAIT) after truncation", sv[1], 100, MSG_DONTWAIT);
	IOSHOW(send(sv[0], "0123456789", 10, 0));
	IOSHOW(recv(sv[1], buf, 3, MSG_TRUNC));
	IOSHOW(send(sv[0], "peekaboo", 8, 0));
	sk_recv("recv(4, MSG_PEEK)", sv[1], 4, MSG_PEEK);
	IOSHOW(recv(sv[1], buf, 4, MSG_PEEK | MSG_TRUNC));
	{
		char x[5] = { 0 };
		struct iovec io = { x, 4 };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		IOSHOW(recvmsg(sv[1], &m, 0));
		printf("  data \"%s\" msg_flags=%s\n", x, sk_msgflags(m.msg_flags));
		IOSHOW(send(sv[0], "fits", 4, 0));
		m.msg_flags = 0;
		IOSHOW(recvmsg(sv[1], &m, 0));
		printf("  data \"%s\" msg_flags=%s\n", x, sk_msgflags(m.msg_flags));
	}

	CASE("dgram_zero_length");
	IOSHOW(send(sv[0], buf, 0, 0));
	IOSHOW(send(sv[0], "after", 5, 0));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	show_poll1("receiver", sv[1], POLLIN);
	sk_recv("recv(100)", sv[1], 100, 0);
	sk_recv("recv(100)", sv[1], 100, 0);
	closep(sv);

	CASE("dgram_sendto_recvfrom_addresses");
	la = sk_path(&a, "rcv");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(sendto(s, "anon", 4, 0, (struct sockaddr *)&a, la));
	show_from("recvfrom, unbound sender", r, 100, 0);
	sk_show_names("unbound sender after sendto", s);
	lb = sk_path(&b, "snd");
	if (bind(s, (struct sockaddr *)&b, lb))
		die("bind");
	IOSHOW(sendto(s, "named", 5, 0, (struct sockaddr *)&a, la));
	show_from("recvfrom, bound sender", r, 100, 0);
	IOSHOW(sendto(r, "reply", 5, 0, (struct sockaddr *)&b, lb));
	show_from("recvfrom at the sender", s, 100, 0);
	io_close(s);
	s = sk_socket(SOCK_DGRAM);
	lc = sk_abstract(&c, "dsnd");
	if (bind(s, (struct sockaddr *)&c, lc))
		die("bind");
	IOSHOW(sendto(s, "abstract", 8, 0, (struct sockaddr *)&a, la));
	show_from("recvfrom, abstract sender", r, 100, 0);
	io_close(s);
	s = sk_socket(SOCK_DGRAM);
	{
		int one = 1;
		IOSHOW(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
	}
	IOSHOW(sendto(s, "passcred", 8, 0, (struct sockaddr *)&a, la));
	show_from("recvfrom, SO_PASSCRED sender (autobound)", r, 100, 0);
	{
		socklen_t small = 3;
		struct sockaddr_un from;
		IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&a, la));
		IOSHOW(recvfrom(r, buf, 10, 0, (struct sockaddr *)&from, &small));
		printf("  addrlen after a 3-byte address buffer: %u\n", (unsigned)small);
	}
	io_close(s);

	CASE("dgram_errors");
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(send(s, "x", 1, 0));
	IOSHOW(write(s, "x", 1));
	lb = sk_path(&b, "nobody-here");
	IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&b, lb));
	lb = sk_path(&b, "stream");
	t = sk_listener(SOCK_STREAM, &b, lb, 1);
	IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&b, lb));
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	io_close(t);
	{
		struct sockaddr_un bad = a;
		bad.sun_family = AF_INET;
		IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&bad, la));
		IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&a, 1));
	}
	IOSHOW(sendto(s, "x", 1, MSG_OOB, (struct sockaddr *)&a, la));
	IOSHOW(recv(r, buf, 1, MSG_OOB));
	IOSHOW(accept(s, NULL, NULL));
	IOSHOW(listen(s, 1));
	{
		static char big[300000];
		IOSHOW(sendto(s, big, sizeof big, 0, (struct sockaddr *)&a, la));
		IOSHOW(sendto(s, big, 200000, MSG_DONTWAIT, (struct sockaddr *)&a, la));
		printf("  FIONREAD at the receiver = %d\n", io_nread(r));
		n = recv(r, big, sizeof big, 0);
		printf("  received %ld\n", n);
	}
	IOSHOW(shutdown(s, SHUT_WR));
	IOSHOW(sendto(s, "x", 1, 0, (struct sockaddr *)&a, la));
	io_close(s);

	CASE("dgram_connect_filters");
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	sk_show_names("connected", s);
	IOSHOW(send(s, "via connect", 11, 0));
	show_from("recvfrom", r, 100, 0);
	lb = sk_path(&b, "third");
	t = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(sendto(s, "elsewhere", 9, 0, (struct sockaddr *)&b, lb));
	show_from("third", t, 100, MSG_DONTWAIT);
	/* r is not connected, t not either: both may send to s? s is unbound, so nobody can. */
	lc = sk_path(&c, "peer");
	{
		int p = sk_listener(SOCK_DGRAM, &c, lc, -1);
		IOSHOW(connect(p, (struct sockaddr *)&a, la));
		/* p is connected to r: a datagram from t to p is refused. */
		IOSHOW(sendto(t, "not from the peer", 17, 0, (struct sockaddr *)&c, lc));
		IOSHOW(sendto(r, "from the peer", 13, 0, (struct sockaddr *)&c, lc));
		show_from("connected receiver", p, 100, MSG_DONTWAIT);
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		IOSHOW(connect(p, &unspec, sizeof unspec));
		sk_show_names("after AF_UNSPEC connect", p);
		IOSHOW(sendto(t, "now accepted", 12, 0, (struct sockaddr *)&c, lc));
		show_from("disconnected receiver", p, 100, MSG_DONTWAIT);
		io_close(p);
	}
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	IOSHOW(send(s, "reconnected", 11, 0));
	show_from("third", t, 100, MSG_DONTWAIT);
	io_close(t);
	io_close(s);

	CASE("dgram_peer_closed");
	s = sk_socket(SOCK_DGRAM);
	lb = sk_path(&b, "short-lived");
	t = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	IOSHOW(send(s, "unread", 6, 0));
	io_close(t);
	show_poll1("sender", s, POLLIN | POLLOUT | POLLRDHUP);
	IOSHOW(send(s, "x", 1, 0));
	IOSHOW(send(s, "x", 1, 0));
	sk_show_names("after the peer died", s);
	io_close(s);
	sk_pair(SOCK_DGRAM, sv);
	IOSHOW(send(sv[0], "left", 4, 0));
	io_close(sv[1]);
	show_poll1("pair survivor", sv[0], POLLIN | POLLOUT | POLLRDHUP);
	IOSHOW(send(sv[0], "x", 1, 0));
	IOSHOW(send(sv[0], "x", 1, 0));
	IOSHOW(recv(sv[0], buf, 10, MSG_DONTWAIT));
	io_close(sv[0]);

	CASE("dgram_full_queue");
	sk_pair(SOCK_DGRAM, sv);
	{
		int count = 0;
		while (send(sv[0], "q", 1, MSG_DONTWAIT) == 1)
			count++;
		/* How many fit is the kernel's skb accounting (README: limitations). */
		printf("  1-byte datagrams queued before %s: at least 64: %s\n", errname_io(errno),
		       count >= 64 ? "yes" : "no");
		show_poll1("full sender", sv[0], POLLOUT);
		if ((pid = io_fork()) == 0) {
			errno = 0;
			n = send(sv[0], "late", 4, 0);
			printf("  child: blocked send = %ld %s\n", n, errname_io(errno));
			_exit(0);
		}
		io_wait_sleeping(pid);
		int got = 0;
		for (int i = 0; i < count; i++)
			got += recv(sv[1], buf, sizeof buf, 0) == 1 && buf[0] == 'q';
		show_status_io("child", io_reap(pid));
		printf("  received all of them: %s\n", got == count ? "yes" : "no");
		sk_recv("recv the blocked sender's", sv[1], 10, 0);
		show_poll1("sender", sv[0], POLLOUT);
	}
	closep(sv);

	CASE("dgram_blocked_recv_woken");
	if ((pid = io_fork()) == 0) {
		show_from("child: recvfrom", r, 100, 0);
		_exit(0);
	}
	io_wait_sleeping(pid);
	s = sk_socket(SOCK_DGRAM);
	lb = sk_path(&b, "waker");
	if (bind(s, (struct sockaddr *)&b, lb))
		die("bind");
	if (sendto(s, "wake", 4, 0, (struct sockaddr *)&a, la) != 4)
		die("sendto");
	show_status_io("child", io_reap(pid));
	io_close(s);

	CASE("dgram_many_senders");
	{
		pid_t w[3];
		for (int i = 0; i < 3; i++)
			if ((w[i] = io_fork()) == 0) {
				int q = sk_socket(SOCK_DGRAM);
				char msg[200];
				memset(msg, 'A' + i, sizeof msg);
				for (int k = 0; k < 20; k++)
					if (sendto(q, msg, 50 + i * 50, 0, (struct sockaddr *)&a, la) != 50 + i * 50)
						_exit(1);
				_exit(0);
			}
		int per[3] = { 0 }, bad = 0;
		for (int k = 0; k < 60; k++) {
			n = recv(r, buf, sizeof buf, 0);
			int who = buf[0] - 'A';
			int ok = who >= 0 && who < 3 && n == 50 + who * 50;
			for (long j = 0; ok && j < n; j++)
				ok = buf[j] == buf[0];
			if (ok)
				per[who]++;
			else
				bad++;
		}
		for (int i = 0; i < 3; i++)
			show_status_io("sender", io_reap(w[i]));
		printf("  whole datagrams per sender: %d %d %d, bad: %d\n", per[0], per[1], per[2], bad);
	}

	CASE("dgram_mmsg");
	sk_pair(SOCK_DGRAM, sv);
	{
		struct iovec w[3] = { { "one", 3 }, { "", 0 }, { "three", 5 } };
		struct mmsghdr mm[4];
		memset(mm, 0, sizeof mm);
		for (int i = 0; i < 3; i++) {
			mm[i].msg_hdr.msg_iov = &w[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		IOSHOW(sendmmsg(sv[0], mm, 3, 0));
		char rb[4][8];
		struct iovec ri[4];
		memset(mm, 0, sizeof mm);
		memset(rb, 0, sizeof rb);
		for (int i = 0; i < 4; i++) {
			ri[i].iov_base = rb[i];
			ri[i].iov_len = 4;
			mm[i].msg_hdr.msg_iov = &ri[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		IOSHOW(recvmmsg(sv[1], mm, 4, MSG_DONTWAIT, NULL));
		for (int i = 0; i < 3; i++)
			printf("  [%d] msg_len=%u \"%s\" msg_flags=%s\n", i, mm[i].msg_len, rb[i],
			       sk_msgflags(mm[i].msg_hdr.msg_flags));
		IOSHOW(send(sv[0], "w1", 2, 0));
		IOSHOW(recvmmsg(sv[1], mm, 4, MSG_WAITFORONE, NULL));
	}

	CASE("dgram_efault");
	{
		char *volatile bad = (char *)8;
		IOSHOW(send(sv[0], bad, 10, 0));
		printf("  FIONREAD = %d\n", io_nread(sv[1]));
		IOSHOW(send(sv[0], "lost?", 5, 0));
		IOSHOW(recv(sv[1], bad, 10, 0));
		IOSHOW(recv(sv[1], buf, 10, MSG_DONTWAIT));
		IOSHOW(send(sv[0], "peeked", 6, 0));
		IOSHOW(recv(sv[1], bad, 10, MSG_PEEK));
		sk_recv("recv after a bad peek", sv[1], 10, MSG_DONTWAIT);
	}
	closep(sv);
	io_close(r);

	sk_cleanup();
	return 0;
}
