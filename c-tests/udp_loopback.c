/* Loopback UDP between shimmed sockets, over IPv4 and IPv6: an echo between two processes
 * with the senders' addresses as recvfrom gives them, datagram boundaries (empty ones too),
 * MSG_TRUNC (and the real length it returns), MSG_PEEK, FIONREAD (the next datagram's size),
 * an unbound sender's ephemeral port, connect filtering (a connected socket takes only its
 * peer's datagrams), SO_RCVBUF dropping what does not fit as the kernel counts it, poll and
 * epoll readiness, a blocking receive woken by another process, sendmmsg/recvmmsg, the
 * largest datagram, readv/writev, O_NONBLOCK, SO_RCVTIMEO, select and a signal. Under the shim no datagram may move through a kernel UDP socket (the
 * runner's strace check).
 */
#include "udp_common.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/time.h>

static const char *tag;

static void echo_processes(int fam)
{
	int port, r = udp_bound(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		int cport, c = udp_bound(fam, &cport);
		char buf[8] = { 0 };
		if (udp_sendto(c, fam, port, "hello", 5, 0) != 5 || recv(c, buf, sizeof buf, 0) != 5 ||
		    memcmp(buf, "world", 5))
			_exit(1);
		_exit(0);
	}
	char buf[16];
	struct sockaddr_storage src;
	socklen_t slen = sizeof src;
	long n = recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&src, &slen);
	printf("  recvfrom = %ld \"%.*s\", addrlen %u\n", n, (int)(n > 0 ? n : 0), buf, (unsigned)slen);
	IOSHOW(sendto(r, "world", 5, 0, (struct sockaddr *)&src, slen));
	show_status_io("client", io_reap(pid));
	close(r);
}

static void boundaries(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	IOSHOW(udp_sendto(a, fam, p2, "x", 1, 0));
	IOSHOW(udp_sendto(a, fam, p2, "hello", 5, 0));
	IOSHOW(udp_sendto(a, fam, p2, "", 0, 0));
	IOSHOW(udp_sendto(a, fam, p2, "truncated", 9, 0));
	udp_show_recvfrom("recvfrom(b, 100)", b, 100, 0, a);
	udp_show_recvfrom("recvfrom(b, 100)", b, 100, 0, a);
	udp_show_recvfrom("recvfrom(b, 100) empty", b, 100, 0, a);
	udp_show_recvfrom("recvfrom(b, 3, MSG_TRUNC)", b, 3, MSG_TRUNC, a);
	RECV(b, 100, MSG_DONTWAIT);
	IOSHOW(udp_sendto(a, fam, p2, "abcdef", 6, 0));
	char buf[4];
	struct iovec iov = { buf, 4 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	long n = recvmsg(b, &m, 0);
	printf("  recvmsg = %ld \"%.*s\", MSG_TRUNC in msg_flags: %s\n", n, (int)(n > 0 ? n : 0), buf,
	       m.msg_flags & MSG_TRUNC ? "yes" : "no");
	close(a);
	close(b);
}

static void peek_and_inq(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	show_inq("empty", b);
	IOSHOW(udp_sendto(a, fam, p2, "first", 5, 0));
	IOSHOW(udp_sendto(a, fam, p2, "second!", 7, 0));
	show_inq("two queued", b);
	udp_show_recvfrom("recvfrom(b, 3, MSG_PEEK)", b, 3, MSG_PEEK, a);
	udp_show_recvfrom("recvfrom(b, 100, MSG_PEEK)", b, 100, MSG_PEEK, a);
	RECV(b, 100, 0);
	show_inq("one queued", b);
	RECV(b, 100, 0);
	show_inq("drained", b);
	close(a);
	close(b);
}

static void unbound_sender(int fam)
{
	int port, r = udp_bound(fam, &port);
	int s = socket(fam, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(s, (struct sockaddr *)&ss, &len);
	printf("  port before: %s\n", ((struct sockaddr_in *)&ss)->sin_port ? "set" : "0");
	IOSHOW(udp_sendto(s, fam, port, "auto", 4, 0));
	len = sizeof ss;
	getsockname(s, (struct sockaddr *)&ss, &len);
	int any = fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0
				 : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
	printf("  port after: %s, address any: %s\n", ((struct sockaddr_in *)&ss)->sin_port ? "set" : "0",
	       any ? "yes" : "no");
	udp_show_recvfrom("recvfrom(r, 100)", r, 100, 0, s);
	IOSHOW(bind(s, (struct sockaddr *)&ss, len));
	close(s);
	close(r);
}

static void connect_filter(int fam)
{
	int pr, pa, pb, r = udp_bound(fam, &pr), a = udp_bound(fam, &pa), b = udp_bound(fam, &pb);
	IOSHOW(udp_connect(r, fam, pa));
	IOSHOW(udp_sendto(b, fam, pr, "from-b", 6, 0));
	IOSHOW(udp_sendto(a, fam, pr, "from-a", 6, 0));
	udp_show_recvfrom("recvfrom(r, 100)", r, 100, 0, a);
	RECV(r, 100, MSG_DONTWAIT);
	IOSHOW(send(r, "reply", 5, 0));
	udp_show_recvfrom("recvfrom(a, 100)", a, 100, 0, r);
	IOSHOW(write(r, "w", 1));
	RECV(a, 100, 0);
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	IOSHOW(connect(r, &un, sizeof un));
	IOSHOW(send(r, "x", 1, 0));
	/* Bound to port 0 (no SOCK_BINDPORT_LOCK): the disconnect unbinds it. */
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(r, (struct sockaddr *)&ss, &len);
	printf("  port after the disconnect: %s\n", ((struct sockaddr_in *)&ss)->sin_port ? "set" : "0");
	RECV(r, 100, MSG_DONTWAIT);
	close(a);
	close(b);
	close(r);
}

static void rcvbuf(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	int v = 4096;
	IOSHOW(setsockopt(b, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
	socklen_t len = sizeof v;
	getsockopt(b, SOL_SOCKET, SO_RCVBUF, &v, &len);
	printf("  SO_RCVBUF = %d\n", v);
	for (int i = 0; i < 20; i++)
		if (udp_sendto(a, fam, p2, "d", 1, 0) != 1)
			die("send small");
	int got = 0;
	char buf[4096];
	while (recv(b, buf, sizeof buf, MSG_DONTWAIT) >= 0)
		got++;
	printf("  20 sent, %d received (%s)\n", got, errname_io(errno));
	memset(buf, 'q', sizeof buf);
	for (int i = 0; i < 4; i++)
		if (udp_sendto(a, fam, p2, buf, 3000, 0) != 3000)
			die("send 3000");
	got = 0;
	while (recv(b, buf, sizeof buf, MSG_DONTWAIT) >= 0)
		got++;
	printf("  4 of 3000 bytes sent, %d received\n", got);
	close(a);
	close(b);
}

static void readiness(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	printf("  poll empty: %#x\n", udp_poll(b, POLLIN | POLLOUT, 0));
	IOSHOW(udp_sendto(a, fam, p2, "ping", 4, 0));
	printf("  poll queued: %#x\n", udp_poll(b, POLLIN | POLLOUT, 5000));
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 7 }, out[2];
	epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev);
	IOSHOW(epoll_wait(ep, out, 2, 5000));
	RECV(b, 100, 0);
	IOSHOW(epoll_wait(ep, out, 2, 0));
	pid_t pid = io_fork();
	if (pid == 0) {
		usleep(30000);
		_exit(udp_sendto(a, fam, p2, "later", 5, 0) == 5 ? 0 : 1);
	}
	int n = epoll_wait(ep, out, 2, 5000);
	printf("  epoll_wait for another process = %d, data %u\n", n, n == 1 ? out[0].data.u32 : 0);
	RECV(b, 100, 0);
	show_status_io("sender", io_reap(pid));
	pid = io_fork();
	if (pid == 0) {
		usleep(30000);
		_exit(udp_sendto(a, fam, p2, "wake", 4, 0) == 4 ? 0 : 1);
	}
	RECV(b, 100, 0);
	show_status_io("sender", io_reap(pid));
	close(ep);
	close(a);
	close(b);
}

static void mmsg(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	IOSHOW(udp_connect(a, fam, p2));
	struct iovec iv[3] = { { "one", 3 }, { "two!", 4 }, { "three", 5 } };
	struct mmsghdr ms[3];
	memset(ms, 0, sizeof ms);
	for (int i = 0; i < 3; i++) {
		ms[i].msg_hdr.msg_iov = &iv[i];
		ms[i].msg_hdr.msg_iovlen = 1;
	}
	IOSHOW(sendmmsg(a, ms, 3, 0));
	printf("  msg_len: %u %u %u\n", ms[0].msg_len, ms[1].msg_len, ms[2].msg_len);
	char bufs[4][8];
	struct iovec rv[4];
	struct sockaddr_storage names[4];
	struct mmsghdr rs[4];
	memset(rs, 0, sizeof rs);
	for (int i = 0; i < 4; i++) {
		rv[i] = (struct iovec){ bufs[i], 4 };
		rs[i].msg_hdr.msg_iov = &rv[i];
		rs[i].msg_hdr.msg_iovlen = 1;
		rs[i].msg_hdr.msg_name = &names[i];
		rs[i].msg_hdr.msg_namelen = sizeof names[i];
	}
	int n = IOSHOW(recvmmsg(b, rs, 4, MSG_DONTWAIT, NULL));
	for (int i = 0; i < n; i++)
		printf("  [%d] len %u \"%.*s\" namelen %u trunc %s\n", i, rs[i].msg_len,
		       (int)(rs[i].msg_len < 4 ? rs[i].msg_len : 4), bufs[i], rs[i].msg_hdr.msg_namelen,
		       rs[i].msg_hdr.msg_flags & MSG_TRUNC ? "yes" : "no");
	close(a);
	close(b);
}

static void largest(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	size_t max = fam == AF_INET ? 65507 : 65488;
	char *buf = malloc(max + 1);
	if (!buf)
		die("malloc");
	for (size_t i = 0; i < max; i++)
		buf[i] = (char)(i * 7);
	IOSHOW(udp_sendto(a, fam, p2, buf, max, 0));
	char *in = malloc(max + 10);
	long n = recv(b, in, max + 10, 0);
	printf("  recv = %ld, same bytes: %s\n", n, n == (long)max && !memcmp(in, buf, max) ? "yes" : "no");
	free(in);
	free(buf);
	close(a);
	close(b);
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void blocking_modes(int fam)
{
	int p1, p2, a = udp_bound(fam, &p1), b = udp_bound(fam, &p2);
	IOSHOW(udp_connect(a, fam, p2));
	struct iovec out[2] = { { "ab", 2 }, { "cde", 3 } };
	IOSHOW(writev(a, out, 2));
	char x[2], y[8] = { 0 };
	struct iovec in[2] = { { x, 2 }, { y, 8 } };
	long n = readv(b, in, 2);
	printf("  readv = %ld \"%.2s\" \"%s\"\n", n, x, y);
	int fl = fcntl(b, F_GETFL);
	fcntl(b, F_SETFL, fl | O_NONBLOCK);
	RECV(b, 10, 0);
	fcntl(b, F_SETFL, fl);
	struct timeval tv = { 0, 100000 };
	IOSHOW(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	RECV(b, 10, 0);
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(b, &rd);
	struct timeval zero = { 0, 0 };
	IOSHOW(select(b + 1, &rd, NULL, NULL, &zero));
	IOSHOW(send(a, "s", 1, 0));
	FD_SET(b, &rd);
	tv = (struct timeval){ 5, 0 };
	IOSHOW(select(b + 1, &rd, NULL, NULL, &tv));
	RECV(b, 10, 0);
	tv = (struct timeval){ 0, 0 };
	setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	RECV(b, 10, 0);
	signal(SIGALRM, SIG_DFL);
	close(a);
	close(b);
}

static void dual_stack(void)
{
	int port, r = udp_bound(AF_INET6, &port);
	close(r);
	r = socket(AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	if (bind(r, (struct sockaddr *)&any, sizeof any))
		die("bind ::");
	int p4, s = udp_bound(AF_INET, &p4);
	IOSHOW(udp_sendto(s, AF_INET, port, "v4", 2, 0));
	udp_show_recvfrom("recvfrom(r, 100) from IPv4", r, 100, 0, s);
	int p6, s6 = udp_bound(AF_INET6, &p6);
	IOSHOW(udp_sendto(s6, AF_INET6, port, "v6", 2, 0));
	udp_show_recvfrom("recvfrom(r, 100) from IPv6", r, 100, 0, s6);
	close(s);
	close(s6);
	close(r);
}

int main(void)
{
	setup();
	for (int i = 0; i < 2; i++) {
		int fam = g_fams[i];
		tag = fam_name(fam);
		printf("case %s_echo_processes\n", tag);
		echo_processes(fam);
		printf("case %s_boundaries_trunc\n", tag);
		boundaries(fam);
		printf("case %s_peek_fionread\n", tag);
		peek_and_inq(fam);
		printf("case %s_unbound_sender\n", tag);
		unbound_sender(fam);
		printf("case %s_connect_filter\n", tag);
		connect_filter(fam);
		printf("case %s_rcvbuf_drops\n", tag);
		rcvbuf(fam);
		printf("case %s_poll_epoll_wake\n", tag);
		readiness(fam);
		printf("case %s_mmsg\n", tag);
		mmsg(fam);
		printf("case %s_largest\n", tag);
		largest(fam);
		printf("case %s_blocking_modes\n", tag);
		blocking_modes(fam);
	}
	CASE("ipv6_dual_stack");
	dual_stack();
	return 0;
}
