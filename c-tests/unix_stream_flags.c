/* AF_UNIX stream data calls in detail: MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_TRUNC,
 * sendmsg/recvmsg with several iovecs, sendmmsg/recvmmsg, EFAULT, socket options (SO_TYPE,
 * SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_PASSCRED, SO_RCVTIMEO,
 * SO_SNDTIMEO), ioctls (FIONREAD, SIOCINQ, SIOCOUTQ), and signals that interrupt or restart
 * blocked recv and accept.
 */
#include "common.h"
#include <linux/sockios.h>

static volatile int g_usr1, g_notify = -1;

static void on_usr1(int sig)
{
	(void)sig;
	int e = errno;
	g_usr1++;
	if (g_notify >= 0 && write(g_notify, "n", 1) != 1)
		_exit(3);
	errno = e;
}

static void show_int_ioctl(const char *what, int fd, unsigned long req)
{
	int v = -1;
	errno = 0;
	if (ioctl(fd, req, &v))
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %d\n", what, v);
}

/* A child that installs SIGUSR1 with flags, then calls recv (or accept on a listener);
 * the parent signals it once it sleeps and, if feed, then writes to feedfd (or connects to a). */
static void signal_case(int fd, int feedfd, int listener, int flags, const struct sockaddr_un *a,
			socklen_t la, int feed)
{
	int p[2];
	io_pipe(p);
	pid_t pid = io_fork();
	if (pid == 0) {
		char buf[64];
		io_close(p[0]);
		g_notify = p[1];
		io_handler(SIGUSR1, on_usr1, flags);
		errno = 0;
		long n = listener ? accept(fd, NULL, NULL) : recv(fd, buf, sizeof buf, 0);
		int e = errno;
		if (listener)
			printf("  child: accept = %s, handler ran %d time(s)\n", n >= 0 ? "fd" : errname_io(e),
			       g_usr1);
		else if (n >= 0)
			printf("  child: recv = %ld \"%.*s\", handler ran %d time(s)\n", n, (int)n, buf, g_usr1);
		else
			printf("  child: recv = -1 %s, handler ran %d time(s)\n", errname_io(e), g_usr1);
		_exit(0);
	}
	io_close(p[1]);
	io_wait_sleeping(pid);
	kill(pid, SIGUSR1);
	io_wait(p[0]);
	if (feed) {
		io_wait_sleeping(pid);
		if (listener) {
			int c = sk_connect(SOCK_STREAM, a, la);
			show_status_io("child", io_reap(pid));
			io_close(c);
		} else {
			if (write(feedfd, "after the signal", 16) != 16)
				die("write");
			show_status_io("child", io_reap(pid));
		}
	} else {
		show_status_io("child", io_reap(pid));
	}
	io_close(p[0]);
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2], l;
	char buf[4096];
	long n;
	pid_t pid;
	struct sockaddr_un a;
	socklen_t la;
	struct timespec t0;

	CASE("flags_msg_peek");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(recv(sv[1], buf, 5, MSG_PEEK | MSG_DONTWAIT));
	IOSHOW(write(sv[0], "hello ", 6));
	IOSHOW(write(sv[0], "world", 5));
	sk_recv("recv(5, MSG_PEEK)", sv[1], 5, MSG_PEEK);
	sk_recv("recv(100, MSG_PEEK)", sv[1], 100, MSG_PEEK);
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	sk_recv("recv(3)", sv[1], 3, 0);
	sk_recv("recv(100, MSG_PEEK)", sv[1], 100, MSG_PEEK);
	sk_recv("recv(100)", sv[1], 100, 0);
	sk_recv("recv(100, MSG_PEEK|MSG_DONTWAIT)", sv[1], 100, MSG_PEEK | MSG_DONTWAIT);

	CASE("flags_msg_waitall");
	if ((pid = io_fork()) == 0) {
		pid_t parent = getppid();
		static const char *parts[] = { "abcd", "efgh", "ijkl" };
		for (int i = 0; i < 3; i++) {
			io_wait_sleeping(parent);
			if (write(sv[0], parts[i], 4) != 4)
				_exit(1);
		}
		_exit(0);
	}
	n = recv(sv[1], buf, 12, MSG_WAITALL);
	printf("  recv(12, MSG_WAITALL) = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	show_status_io("child", io_reap(pid));
	IOSHOW(write(sv[0], "short", 5));
	IOSHOW(shutdown(sv[0], SHUT_WR));
	sk_recv("recv(100, MSG_WAITALL) before EOF", sv[1], 100, MSG_WAITALL);
	sk_recv("recv(100, MSG_WAITALL) at EOF", sv[1], 100, MSG_WAITALL);
	closep(sv);
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[0], "abc", 3));
	sk_recv("recv(10, MSG_WAITALL|MSG_DONTWAIT)", sv[1], 10, MSG_WAITALL | MSG_DONTWAIT);

	CASE("flags_msg_trunc_and_unknown_flags");
	IOSHOW(write(sv[0], "0123456789", 10));
	IOSHOW(recv(sv[1], buf, 4, MSG_TRUNC));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	IOSHOW(recv(sv[1], NULL, 4, MSG_TRUNC));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	IOSHOW(recv(sv[1], buf, 100, MSG_ERRQUEUE));
	IOSHOW(write(sv[0], "cloexec", 7));
	sk_recv("recv(100, MSG_CMSG_CLOEXEC)", sv[1], 100, MSG_CMSG_CLOEXEC);
	IOSHOW(send(sv[0], "x", 1, MSG_CONFIRM));
	IOSHOW(send(sv[0], "y", 1, MSG_EOR));
	IOSHOW(send(sv[0], "z", 1, MSG_MORE));
	sk_recv("recv(100)", sv[1], 100, 0);
	closep(sv);

	CASE("flags_sendmsg_recvmsg_iovecs");
	sk_pair(SOCK_STREAM, sv);
	{
		struct iovec w[3] = { { "first|", 6 }, { "second|", 7 }, { "third", 5 } };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = w;
		m.msg_iovlen = 3;
		IOSHOW(sendmsg(sv[0], &m, 0));
		char x[4] = { 0 }, y[8] = { 0 }, z[32] = { 0 };
		struct iovec r[3] = { { x, 3 }, { y, 7 }, { z, sizeof z - 1 } };
		struct sockaddr_un from;
		memset(&m, 0, sizeof m);
		m.msg_iov = r;
		m.msg_iovlen = 3;
		m.msg_name = &from;
		m.msg_namelen = sizeof from;
		m.msg_flags = -1;
		IOSHOW(recvmsg(sv[1], &m, 0));
		printf("  x=\"%s\" y=\"%s\" z=\"%s\" msg_namelen=%u msg_flags=%s msg_controllen=%zu\n", x,
		       y, z, (unsigned)m.msg_namelen, sk_msgflags(m.msg_flags), m.msg_controllen);
		m.msg_iovlen = 0;
		IOSHOW(recvmsg(sv[1], &m, MSG_DONTWAIT));
		m.msg_iovlen = 2000;
		IOSHOW(sendmsg(sv[0], &m, 0));
	}

	CASE("flags_sendmmsg_recvmmsg");
	{
		struct iovec w[3] = { { "m1", 2 }, { "m22", 3 }, { "m333", 4 } };
		struct mmsghdr mm[3];
		memset(mm, 0, sizeof mm);
		for (int i = 0; i < 3; i++) {
			mm[i].msg_hdr.msg_iov = &w[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		IOSHOW(sendmmsg(sv[0], mm, 3, 0));
		printf("  msg_len: %u %u %u\n", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
		char r0[3] = { 0 }, r1[16] = { 0 };
		struct iovec r[2] = { { r0, 2 }, { r1, 15 } };
		memset(mm, 0, sizeof mm);
		for (int i = 0; i < 2; i++) {
			mm[i].msg_hdr.msg_iov = &r[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		IOSHOW(recvmmsg(sv[1], mm, 2, MSG_DONTWAIT, NULL));
		printf("  msg_len: %u %u, \"%s\" \"%s\"\n", mm[0].msg_len, mm[1].msg_len, r0, r1);
		IOSHOW(recvmmsg(sv[1], mm, 2, MSG_DONTWAIT, NULL));
		IOSHOW(sendmmsg(sv[0], mm, 0, 0));
	}
	closep(sv);

	CASE("flags_efault");
	sk_pair(SOCK_STREAM, sv);
	{
		char *edge = io_edge(100);
		memset(edge, 'e', 100);
		char *volatile bad = (char *)8;
		IOSHOW(write(sv[0], bad, 10));
		IOSHOW(send(sv[0], edge, 300, 0));
		printf("  FIONREAD = %d\n", io_nread(sv[1]));
		IOSHOW(write(sv[0], "0123456789", 10));
		IOSHOW(recv(sv[1], bad, 10, 0));
		printf("  FIONREAD after a bad recv = %d\n", io_nread(sv[1]));
		char *small = io_edge(4);
		IOSHOW(recv(sv[1], small, 10, 0));
		printf("  FIONREAD after a recv into 4 good bytes = %d\n", io_nread(sv[1]));
		io_drain(sv[1]);
		IOSHOW(sendmsg(sv[0], (struct msghdr *)bad, 0));
		IOSHOW(recvmsg(sv[1], (struct msghdr *)bad, MSG_DONTWAIT));
		struct iovec io = { bad, 5 };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		IOSHOW(sendmsg(sv[0], &m, 0));
		printf("  FIONREAD = %d\n", io_nread(sv[1]));
	}
	closep(sv);

	CASE("flags_socket_options");
	sk_pair(SOCK_STREAM, sv);
	sk_show_opt("SO_TYPE", sv[0], SOL_SOCKET, SO_TYPE);
	sk_show_opt("SO_DOMAIN", sv[0], SOL_SOCKET, SO_DOMAIN);
	sk_show_opt("SO_PROTOCOL", sv[0], SOL_SOCKET, SO_PROTOCOL);
	sk_show_opt("SO_ERROR", sv[0], SOL_SOCKET, SO_ERROR);
	sk_show_opt("SO_ACCEPTCONN", sv[0], SOL_SOCKET, SO_ACCEPTCONN);
	sk_show_opt("SO_PASSCRED", sv[0], SOL_SOCKET, SO_PASSCRED);
	{
		int v = 1;
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &v, sizeof v));
		sk_show_opt("SO_PASSCRED after set", sv[0], SOL_SOCKET, SO_PASSCRED);
		int rcv = -1, snd = -1;
		socklen_t sl = sizeof rcv;
		getsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &rcv, &sl);
		getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &snd, &sl);
		int fd = open("/proc/sys/net/core/wmem_default", O_RDONLY);
		n = read(fd, buf, 32);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		printf("  SO_SNDBUF equals net.core.wmem_default: %s\n", snd == atoi(buf) ? "yes" : "no");
		fd = open("/proc/sys/net/core/rmem_default", O_RDONLY);
		n = read(fd, buf, 32);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		printf("  SO_RCVBUF equals net.core.rmem_default: %s\n", rcv == atoi(buf) ? "yes" : "no");
		v = 10000;
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
		sk_show_opt("SO_SNDBUF after 10000", sv[0], SOL_SOCKET, SO_SNDBUF);
		v = 1;
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
		sk_show_opt("SO_SNDBUF after 1", sv[0], SOL_SOCKET, SO_SNDBUF);
		v = 3000;
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
		sk_show_opt("SO_RCVBUF after 3000", sv[0], SOL_SOCKET, SO_RCVBUF);
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, 2));
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, 9999, &v, sizeof v));
		IOSHOW(getsockopt(sv[0], SOL_SOCKET, 9999, &v, &sl));
		IOSHOW(getsockopt(sv[0], 0 /* SOL_IP */, 2, &v, &sl));
		IOSHOW(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, NULL, &sl));
		sl = 2;
		v = 0;
		IOSHOW(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &sl));
		printf("  value %d, optlen %u\n", v, (unsigned)sl);
		int pp[2];
		io_pipe(pp);
		sl = sizeof v;
		IOSHOW(getsockopt(pp[0], SOL_SOCKET, SO_TYPE, &v, &sl));
		closep(pp);
	}
	closep(sv);
	{
		int d = sk_socket(SOCK_DGRAM), q = sk_socket(SOCK_SEQPACKET);
		sk_show_opt("dgram SO_TYPE", d, SOL_SOCKET, SO_TYPE);
		sk_show_opt("seqpacket SO_TYPE", q, SOL_SOCKET, SO_TYPE);
		sk_show_opt("seqpacket SO_PROTOCOL", q, SOL_SOCKET, SO_PROTOCOL);
		io_close(d);
		io_close(q);
	}

	CASE("flags_ioctls");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[0], "12345", 5));
	IOSHOW(write(sv[0], "678", 3));
	show_int_ioctl("FIONREAD", sv[1], FIONREAD);
	show_int_ioctl("SIOCINQ", sv[1], SIOCINQ);
	{
		int v = -1;
		ioctl(sv[0], SIOCOUTQ, &v);
		printf("  SIOCOUTQ writer nonzero: %s\n", v > 0 ? "yes" : "no");
	}
	show_int_ioctl("SIOCOUTQ reader", sv[1], SIOCOUTQ);
	io_drain(sv[1]);
	show_int_ioctl("SIOCOUTQ writer after the read", sv[0], SIOCOUTQ);
	show_int_ioctl("FIONREAD drained", sv[1], FIONREAD);
	show_int_ioctl("unknown ioctl", sv[1], 0x89ff);
	la = sk_path(&a, "ioctl");
	l = sk_listener(SOCK_STREAM, &a, la, 1);
	show_int_ioctl("FIONREAD on a listener", l, FIONREAD);
	io_close(l);
	{
		int on = 1;
		IOSHOW(ioctl(sv[1], FIONBIO, &on));
		IOSHOW(recv(sv[1], buf, 1, 0));
		printf("  O_NONBLOCK after FIONBIO: %d\n", !!(fcntl(sv[1], F_GETFL) & O_NONBLOCK));
	}
	closep(sv);

	CASE("flags_rcvtimeo");
	sk_pair(SOCK_STREAM, sv);
	{
		struct timeval tv = { 0, 100000 }, got;
		socklen_t gl = sizeof got;
		IOSHOW(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
		getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &got, &gl);
		printf("  SO_RCVTIMEO = %ld.%06ld (optlen %u)\n", (long)got.tv_sec, (long)got.tv_usec,
		       (unsigned)gl);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(recv(sv[1], buf, 10, 0));
		printf("  waited at least 90 ms: %s\n", ms_since(&t0) >= 90 ? "yes" : "no");
		struct timeval bad = { 0, 1000000 };
		IOSHOW(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &bad, sizeof bad));
		IOSHOW(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, 4));
		IOSHOW(write(sv[0], "in time", 7));
		sk_recv("recv with data", sv[1], 10, 0);
	}

	CASE("flags_sndtimeo");
	{
		struct timeval tv = { 0, 100000 };
		IOSHOW(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
		io_fill(sv[0], 4096);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(write(sv[0], buf, 4096));
		printf("  waited at least 90 ms: %s\n", ms_since(&t0) >= 90 ? "yes" : "no");
		IOSHOW(send(sv[0], buf, 1, MSG_DONTWAIT));
	}
	closep(sv);

	CASE("flags_signal_interrupts_recv");
	sk_pair(SOCK_STREAM, sv);
	signal_case(sv[1], sv[0], 0, 0, NULL, 0, 0);
	printf("  FIONREAD = %d\n", io_nread(sv[1]));

	CASE("flags_signal_restarts_recv");
	/* With SA_RESTART the recv goes on sleeping and gets the data sent after the signal. */
	signal_case(sv[1], sv[0], 0, SA_RESTART, NULL, 0, 1);
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	closep(sv);

	CASE("flags_signal_and_accept");
	la = sk_path(&a, "acc");
	l = sk_listener(SOCK_STREAM, &a, la, 4);
	signal_case(l, -1, 1, 0, &a, la, 0);
	signal_case(l, -1, 1, SA_RESTART, &a, la, 1);
	io_close(l);

	sk_cleanup();
	return 0;
}
