/* Loopback listeners and port sharing, over IPv4 and IPv6: a listen backlog that overflows
 * (the kernel drops the SYN of a client past the accept queue's room, which connects once an
 * accept makes room: the shim leaves that connection to the kernel), SO_REUSEPORT groups of
 * TCP listeners and of UDP sockets (the kernel spreads connections and datagrams over the
 * group: the shim serves none of them).
 * kernel-tcp: allowed
 * kernel-udp: allowed
 */
#include "udp_common.h"

static int reuseport_listener(int fam, int *port, int type)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, *port, &ss);
	int on = 1, l = socket(fam, type, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) ||
	    bind(l, (struct sockaddr *)&ss, len) || (type == SOCK_STREAM && listen(l, 64)))
		die("reuseport listener");
	len = sizeof ss;
	if (getsockname(l, (struct sockaddr *)&ss, &len))
		die("getsockname");
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return l;
}

static void backlog_overflow(int fam)
{
	struct sockaddr_storage ss;
	int port;
	int l = tcp_listener_backlog(fam, 1, &port);
	int c1 = socket(fam, SOCK_STREAM, 0), c2 = socket(fam, SOCK_STREAM, 0);
	int c3 = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
	socklen_t len = tcp_addr(fam, port, &ss);
	IOSHOW(connect(c1, (struct sockaddr *)&ss, len));
	IOSHOW(connect(c2, (struct sockaddr *)&ss, len));
	IOSHOW(connect(c3, (struct sockaddr *)&ss, len));
	printf("  c3 polls POLLOUT within 200 ms: %s\n", udp_poll(c3, POLLOUT, 200) & POLLOUT ? "yes" : "no");
	int s1 = FDSHOW(accept(l, NULL, NULL));
	IOSHOW(write(c1, "one", 3));
	RECV(s1, 10, 0);
	printf("  c3 polls POLLOUT once there is room: %s\n",
	       udp_poll(c3, POLLOUT, 20000) & POLLOUT ? "yes" : "no");
	int err = -1;
	socklen_t elen = sizeof err;
	getsockopt(c3, SOL_SOCKET, SO_ERROR, &err, &elen);
	printf("  c3 SO_ERROR = %d\n", err);
	int s2 = FDSHOW(accept(l, NULL, NULL));
	IOSHOW(write(c2, "two", 3));
	RECV(s2, 10, 0);
	int s3 = FDSHOW(accept(l, NULL, NULL));
	close(s3);
	close(s2);
	close(s1);
	close(c3);
	close(c2);
	close(c1);
	close(l);
}

static void tcp_reuseport(int fam)
{
	int port = 0, a = reuseport_listener(fam, &port, SOCK_STREAM);
	int b = reuseport_listener(fam, &port, SOCK_STREAM);
	int c[8], got = 0, bytes = 0;
	for (int i = 0; i < 8; i++) {
		c[i] = tcp_client(fam, port);
		if (write(c[i], "r", 1) != 1)
			die("write");
	}
	for (int i = 0; i < 8; i++) {
		struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
		if (poll(p, 2, 5000) < 1)
			break;
		int s = accept(p[0].revents ? a : b, NULL, NULL);
		char x;
		if (s >= 0) {
			got++;
			bytes += read(s, &x, 1) == 1;
			close(s);
		}
	}
	printf("  8 clients, %d accepted by the group, %d bytes read\n", got, bytes);
	for (int i = 0; i < 8; i++)
		close(c[i]);
	close(a);
	close(b);
}

static void udp_reuseport(int fam)
{
	int port = 0, a = reuseport_listener(fam, &port, SOCK_DGRAM);
	int b = reuseport_listener(fam, &port, SOCK_DGRAM);
	int ps, s = udp_bound(fam, &ps), got = 0;
	for (int i = 0; i < 8; i++) {
		int t = udp_bound(fam, &ps);
		if (udp_sendto(t, fam, port, "u", 1, 0) != 1)
			die("sendto");
		close(t);
	}
	char x;
	for (int i = 0; i < 8; i++) {
		struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
		if (poll(p, 2, 5000) < 1)
			break;
		got += recv(p[0].revents ? a : b, &x, 1, 0) == 1;
	}
	printf("  8 datagrams, %d received by the group\n", got);
	close(s);
	close(a);
	close(b);
}

int main(void)
{
	setup();
	alarm(120);
	for (int i = 0; i < 2; i++) {
		int fam = g_fams[i];
		const char *tag = fam_name(fam);
		printf("case backlog_overflow_%s\n", tag);
		backlog_overflow(fam);
		printf("case tcp_reuseport_%s\n", tag);
		tcp_reuseport(fam);
		printf("case udp_reuseport_%s\n", tag);
		udp_reuseport(fam);
	}
	return 0;
}
