/* Loopback UDP the kernel carries or answers for shimmed sockets, over IPv4 and IPv6: the
 * ECONNREFUSED of a connected socket whose peer's port closed (on its next send and on its
 * next receive, after the ICMP port unreachable), a receiver with SO_REUSEADDR, one asking for
 * IP_PKTINFO/IPV6_RECVPKTINFO, a receiver SIGKILLed whose port is bound again with the any
 * address, MSG_MORE (corking), the error queue, broadcast to lo with and without
 * SO_BROADCAST, an IPv6-only socket sending to an IPv4-mapped address, a datagram too large,
 * shutdown, and a peer without the shim (IPCSHIM_DISABLE=1; the kernel run ignores it)
 * beside a shim sender. Datagrams may move through kernel UDP sockets here.
 * kernel-udp: allowed
 */
#include "udp_common.h"
#include <signal.h>

static void refused(int fam)
{
	int pa, pb, a = udp_bound(fam, &pa), b = udp_bound(fam, &pb);
	IOSHOW(udp_connect(a, fam, pb));
	IOSHOW(send(a, "x", 1, 0));
	RECV(b, 10, 0);
	close(b);
	IOSHOW(send(a, "y", 1, 0));
	printf("  POLLERR: %s\n", udp_poll(a, POLLIN, 5000) & POLLERR ? "yes" : "no");
	IOSHOW(send(a, "z", 1, 0));
	IOSHOW(send(a, "z", 1, 0));
	printf("  POLLERR: %s\n", udp_poll(a, POLLIN, 5000) & POLLERR ? "yes" : "no");
	RECV(a, 10, MSG_DONTWAIT);
	RECV(a, 10, MSG_DONTWAIT);
	int err = -1;
	socklen_t len = sizeof err;
	getsockopt(a, SOL_SOCKET, SO_ERROR, &err, &len);
	printf("  SO_ERROR = %s\n", err ? errname_io(err) : "0");
	close(a);
}

static void reuseaddr(int fam)
{
	int on = 1, pa, a = udp_bound(fam, &pa);
	int b = socket(fam, SOCK_DGRAM, 0);
	IOSHOW(setsockopt(b, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, 0, &ss);
	if (bind(b, (struct sockaddr *)&ss, len))
		die("bind");
	len = sizeof ss;
	getsockname(b, (struct sockaddr *)&ss, &len);
	int pb = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	IOSHOW(udp_sendto(a, fam, pb, "reuse", 5, 0));
	udp_show_recvfrom("recvfrom(b, 100)", b, 100, 0, a);
	close(a);
	close(b);
}

static void pktinfo(int fam)
{
	int on = 1, pa, pb, a = udp_bound(fam, &pa), b = udp_bound(fam, &pb);
	if (fam == AF_INET)
		IOSHOW(setsockopt(b, IPPROTO_IP, IP_PKTINFO, &on, sizeof on));
	else
		IOSHOW(setsockopt(b, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on));
	IOSHOW(udp_sendto(a, fam, pb, "info", 4, 0));
	char buf[16], cbuf[128];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	long n = recvmsg(b, &m, 0);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	printf("  recvmsg = %ld, control: %s\n", n,
	       c && (c->cmsg_type == IP_PKTINFO || c->cmsg_type == IPV6_PKTINFO) ? "pktinfo" : "none");
	close(a);
	close(b);
}

static void killed_receiver(int fam)
{
	/* The child holds the receiver alone once the parent closed its copy: no port number
	 * travels between them (ipcshim diff compares every IPC call's data). */
	int port, r0 = udp_bound(fam, &port);
	pid_t pid = io_fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	close(r0);
	int pa, a = udp_bound(fam, &pa);
	IOSHOW(udp_sendto(a, fam, port, "before", 6, 0));
	kill(pid, SIGKILL);
	show_status_io("receiver", io_reap(pid));
	int r = socket(fam, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	ss.ss_family = fam;
	((struct sockaddr_in *)&ss)->sin_port = htons(port);
	IOSHOW(bind(r, (struct sockaddr *)&ss, fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
	IOSHOW(udp_sendto(a, fam, port, "after", 5, 0));
	printf("  POLLIN: %s\n", udp_poll(r, POLLIN, 5000) & POLLIN ? "yes" : "no");
	udp_show_recvfrom("recvfrom(r, 100)", r, 100, MSG_DONTWAIT, a);
	close(a);
	close(r);
}

static void corked(int fam)
{
	int pa, pb, a = udp_bound(fam, &pa), b = udp_bound(fam, &pb);
	IOSHOW(udp_connect(a, fam, pb));
	IOSHOW(send(a, "ab", 2, MSG_MORE));
	RECV(b, 10, MSG_DONTWAIT);
	IOSHOW(send(a, "cd", 2, 0));
	RECV(b, 10, 0);
	char buf[16];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	IOSHOW(recvmsg(b, &m, MSG_ERRQUEUE | MSG_DONTWAIT));
	close(a);
	close(b);
}

static void refusals(int fam)
{
	int pa, a = udp_bound(fam, &pa);
	char *big = calloc(1, 70000);
	if (!big)
		die("calloc");
	IOSHOW(udp_sendto(a, fam, pa, big, 65508, 0));
	IOSHOW(udp_sendto(a, fam, pa, big, 65536, 0));
	free(big);
	IOSHOW(udp_sendto(a, fam, 0, "p", 1, 0));
	IOSHOW(shutdown(a, SHUT_RD));
	IOSHOW(udp_sendto(a, fam, pa, "self", 4, 0));
	RECV(a, 10, MSG_DONTWAIT);
	close(a);
	if (fam == AF_INET) {
		int u = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
		struct sockaddr_in bc = { .sin_family = AF_INET, .sin_port = htons(9),
					  .sin_addr.s_addr = htonl(0x7fffffff) };
		IOSHOW(sendto(u, "b", 1, 0, (struct sockaddr *)&bc, sizeof bc));
		IOSHOW(setsockopt(u, SOL_SOCKET, SO_BROADCAST, &on, sizeof on));
		IOSHOW(sendto(u, "b", 1, 0, (struct sockaddr *)&bc, sizeof bc));
		close(u);
	} else {
		int u = socket(AF_INET6, SOCK_DGRAM, 0), on = 1;
		IOSHOW(setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on));
		struct sockaddr_in6 m4 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
		inet_pton(AF_INET6, "::ffff:127.0.0.1", &m4.sin6_addr);
		IOSHOW(sendto(u, "m", 1, 0, (struct sockaddr *)&m4, sizeof m4));
		close(u);
	}
}

/* The other side, run as a program without the shim: a datagram to `port`, the reply. */
static int foreign(int fam, int port)
{
	int p, u = udp_bound(fam, &p);
	char buf[16] = { 0 };
	alarm(20);
	if (udp_sendto(u, fam, port, "from-kernel", 11, 0) != 11 || recv(u, buf, sizeof buf, 0) != 5 ||
	    memcmp(buf, "reply", 5))
		return 1;
	return 0;
}

static void foreign_peer(int fam)
{
	int pr, r = udp_bound(fam, &pr), ps, s = udp_bound(fam, &ps);
	pid_t pid = io_fork();
	if (pid == 0) {
		char f[16], p[16];
		snprintf(f, sizeof f, "%d", fam);
		snprintf(p, sizeof p, "%d", pr);
		setenv("IPCSHIM_DISABLE", "1", 1);
		execl("/proc/self/exe", "udp_kernel", f, p, (char *)NULL);
		_exit(SETUP_FAIL);
	}
	char buf[16];
	struct sockaddr_storage src;
	socklen_t slen = sizeof src;
	printf("  POLLIN: %s\n", udp_poll(r, POLLIN, 20000) & POLLIN ? "yes" : "no");
	show_inq("the foreign datagram", r);
	long n = recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&src, &slen);
	printf("  recvfrom = %ld \"%.*s\", addrlen %u\n", n, (int)(n > 0 ? n : 0), buf, (unsigned)slen);
	IOSHOW(udp_sendto(s, fam, pr, "shim", 4, 0));
	IOSHOW(sendto(r, "reply", 5, 0, (struct sockaddr *)&src, slen));
	udp_show_recvfrom("recvfrom(r, 100)", r, 100, 0, s);
	show_status_io("foreign peer", io_reap(pid));
	close(s);
	close(r);
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return foreign(atoi(argv[1]), atoi(argv[2]));
	setup();
	for (int i = 0; i < 2; i++) {
		int fam = g_fams[i];
		const char *tag = fam_name(fam);
		printf("case %s_econnrefused\n", tag);
		refused(fam);
		printf("case %s_reuseaddr_receiver\n", tag);
		reuseaddr(fam);
		printf("case %s_pktinfo_receiver\n", tag);
		pktinfo(fam);
		printf("case %s_killed_receiver_port_reused\n", tag);
		killed_receiver(fam);
		printf("case %s_msg_more_errqueue\n", tag);
		corked(fam);
		printf("case %s_refusals_shutdown\n", tag);
		refusals(fam);
		printf("case %s_foreign_peer\n", tag);
		foreign_peer(fam);
	}
	return 0;
}
